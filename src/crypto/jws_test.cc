#include "crypto/jws.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "common/base64.h"

namespace moat::crypto {
namespace {

TEST(CryptoJws, SignVerifyBothAlgorithms) {
  PrivateKey rsa = PrivateKey::GenerateRsa2048().value();
  PrivateKey ec = PrivateKey::GenerateEcP256().value();
  std::string input(600, 'a');
  std::string rs = Sign(JwsAlg::kRs256, rsa, input).value();
  EXPECT_EQ(rs.size(), 256u);
  EXPECT_TRUE(Verify(JwsAlg::kRs256, rsa.Public(), input, rs));
  EXPECT_FALSE(Verify(JwsAlg::kRs256, rsa.Public(), input + "b", rs));
  EXPECT_FALSE(Verify(JwsAlg::kEs256, rsa.Public(), input, rs));  // wrong alg for key
  EXPECT_FALSE(Verify(JwsAlg::kRs256, rsa.Public(), input, rs.substr(1)));
  EXPECT_FALSE(Verify(JwsAlg::kRs256, rsa.Public(), input, std::string(1, '\0') + rs));

  std::string es = Sign(JwsAlg::kEs256, ec, input).value();
  EXPECT_EQ(es.size(), 64u);
  EXPECT_TRUE(Verify(JwsAlg::kEs256, ec.Public(), input, es));
  EXPECT_FALSE(Verify(JwsAlg::kRs256, ec.Public(), input, es));
  EXPECT_FALSE(Verify(JwsAlg::kEs256, ec.Public(), input, es + std::string(1, '\0')));
  EXPECT_FALSE(Verify(JwsAlg::kEs256, ec.Public(), input, std::string(64, '\0')));
  // DER form of the same signature verifies through the DER path, and only there.
  std::string der = EcdsaRawToDer(es).value();
  EXPECT_TRUE(VerifyEcdsaDer(ec.Public(), input, der));
  EXPECT_FALSE(Verify(JwsAlg::kEs256, ec.Public(), input, der));
  EXPECT_EQ(EcdsaDerToRaw(der).value(), es);
  EXPECT_FALSE(VerifyEcdsaDer(ec.Public(), input, der + std::string(1, '\0')));
  EXPECT_FALSE(Sign(JwsAlg::kEs256, rsa, input));
}

TEST(CryptoJws, EncodeAndDecode) {
  PrivateKey ec = PrivateKey::GenerateEcP256().value();
  std::string token =
      EncodeJws(JwsAlg::kEs256, ec, {{"kid", "k"}, {"alg", "none"}}, "payload").value();
  std::string header = Base64UrlDecode(token.substr(0, token.find('.'))).value();
  EXPECT_EQ(header, R"({"alg":"ES256","kid":"k"})");
  TokenResult<DecodedJws> d = DecodeJws(token);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->payload, "payload");
  EXPECT_EQ(d->kid, "k");
  EXPECT_TRUE(VerifyJwsSignature(*d, ec.Public()));
  TokenResult<DecodedJws> small = DecodeJws(token, 10);
  ASSERT_FALSE(small);
  EXPECT_EQ(small.error().reason, TokenError::kTooLarge);
}

TEST(CryptoJws, QuoteUntrustedBoundsAndCleansInput) {
  EXPECT_EQ(QuoteUntrusted("kid"), "`kid`");
  EXPECT_EQ(QuoteUntrusted("a`b\n"), "`a?b?`");
  EXPECT_EQ(QuoteUntrusted(std::string(100, 'x')), "`" + std::string(64, 'x') + "...`");
  EXPECT_EQ(TokenErrorName(TokenError::kWrongAudience), "wrong_audience");
}

}  // namespace
}  // namespace moat::crypto
