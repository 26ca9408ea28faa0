// The real signer and transport behind the CLI's seams.
#include "cli/wiring.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include "crypto/jws.h"
#include "crypto/keys.h"

namespace moat::cli {
namespace {

TEST(CliWiring, SignerProducesVerifiableRs256WithKid) {
  auto key = crypto::PrivateKey::GenerateRsa2048();
  ASSERT_TRUE(key);
  auto signer = MakeCryptoSigner();
  boost::json::object claims{{"iss", "a@p.iam.gserviceaccount.com"}, {"aud", "http://x/"}};
  auto jwt = signer->SignJwt(key->ToPkcs8Pem(), "kid-1", claims);
  ASSERT_TRUE(jwt) << jwt.error().message;
  auto decoded = crypto::DecodeJws(*jwt);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->alg, crypto::JwsAlg::kRs256);
  EXPECT_EQ(decoded->kid, "kid-1");
  EXPECT_EQ(decoded->header.at("typ"), "JWT");
  EXPECT_EQ(boost::json::parse(decoded->payload), boost::json::value(claims));
  EXPECT_TRUE(crypto::VerifyJwsSignature(*decoded, key->Public()));
}

TEST(CliWiring, SignerRefusesGarbageKeyWithoutEchoingIt) {
  auto jwt = MakeCryptoSigner()->SignJwt("-----BEGIN PRIVATE KEY-----\nSECRETSTUFF\n", "k", {});
  ASSERT_FALSE(jwt);
  EXPECT_EQ(jwt.error().message.find("SECRETSTUFF"), std::string::npos);
}

TEST(CliWiring, TransportReportsUnreachableServer) {
  auto t = MakeHttpTransport();
  // Port 1 on loopback: nothing listens there in the test environment.
  auto r = t->Send(HttpRequest{"GET", "http://127.0.0.1:1/healthz", {}, ""});
  EXPECT_FALSE(r);
}

TEST(CliWiring, ProxyRefusesANonLoopbackAddressBeforeMintingAToken) {
  int mints = 0;
  ProxyOptions o{"0.0.0.0:8080", "http://svc", [&mints]() -> Result<std::string> {
                   ++mints;
                   return std::string("tok");
                 }};
  Status st = MakeHttpProxyRunner()->Run(o);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, Code::kInvalidArgument);
  EXPECT_NE(st.error().message.find("loopback"), std::string::npos) << st.error().message;
  EXPECT_EQ(mints, 0);
}

TEST(CliWiring, ProxyThatCannotGetATokenFailsBeforeListening) {
  ProxyOptions o{"127.0.0.1:1", "http://svc",
                 []() -> Result<std::string> { return PermissionDenied("no getOpenIdToken"); }};
  Status st = MakeHttpProxyRunner()->Run(o);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().message, "no getOpenIdToken");
}

}  // namespace
}  // namespace moat::cli
