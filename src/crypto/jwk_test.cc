#include "crypto/jwk.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "common/base64.h"

namespace moat::crypto {
namespace {

boost::json::object Obj(std::string_view s) { return boost::json::parse(s).as_object(); }

class CryptoJwk : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    rsa_ = new PrivateKey(PrivateKey::GenerateRsa2048().value());
    ec_ = new PrivateKey(PrivateKey::GenerateEcP256().value());
  }
  static void TearDownTestSuite() {
    delete rsa_;
    delete ec_;
  }
  static PrivateKey* rsa_;
  static PrivateKey* ec_;
};
PrivateKey* CryptoJwk::rsa_ = nullptr;
PrivateKey* CryptoJwk::ec_ = nullptr;

TEST_F(CryptoJwk, ExportsGoogleShapeAndRoundTrips) {
  boost::json::object r = PublicJwk(rsa_->Public(), "k1");
  EXPECT_EQ(r["kty"], "RSA");
  EXPECT_EQ(r["alg"], "RS256");
  EXPECT_EQ(r["use"], "sig");
  EXPECT_EQ(r["kid"], "k1");
  EXPECT_EQ(r["e"], "AQAB");
  Result<Jwk> back = ParsePublicJwk(r);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_TRUE(back->key->Equals(rsa_->Public()));
  EXPECT_EQ(back->kid, "k1");
  EXPECT_TRUE(JwkUsableFor(*back, JwsAlg::kRs256));
  EXPECT_FALSE(JwkUsableFor(*back, JwsAlg::kEs256));

  boost::json::object e = PublicJwk(ec_->Public(), "");
  EXPECT_EQ(e["crv"], "P-256");
  EXPECT_FALSE(e.contains("kid"));
  EXPECT_EQ(e["x"].as_string().size(), 43u);
  Result<Jwk> eb = ParsePublicJwk(e);
  ASSERT_TRUE(eb) << eb.error().message;
  EXPECT_TRUE(eb->key->Equals(ec_->Public()));
  EXPECT_TRUE(JwkUsableFor(*eb, JwsAlg::kEs256));
}

TEST_F(CryptoJwk, ImportIsStrict) {
  boost::json::object good = PublicJwk(rsa_->Public(), "k");
  auto with = [&](const char* k, boost::json::value v) {
    boost::json::object o = good;
    o[k] = std::move(v);
    return ParsePublicJwk(o);
  };
  auto without = [&](const char* k) {
    boost::json::object o = good;
    o.erase(k);
    return ParsePublicJwk(o);
  };
  EXPECT_FALSE(without("n"));
  EXPECT_FALSE(without("e"));
  EXPECT_FALSE(without("kty"));
  EXPECT_FALSE(with("kty", "oct"));
  EXPECT_FALSE(with("n", 5));
  EXPECT_FALSE(with("e", "AQAB="));  // padding
  EXPECT_FALSE(with("e", "AQAC"));   // even exponent
  EXPECT_FALSE(with("e", "AQ"));     // exponent 1
  EXPECT_FALSE(with("n", boost::json::string(Base64UrlEncode(
                             std::string(1, '\0') + rsa_->Public().RsaModulus()))));  // leading 0
  Result<Jwk> priv = with("d", "AQAB");
  ASSERT_FALSE(priv);
  EXPECT_EQ(priv.error().message,
            "JWK contains the private member `d`; only public keys are accepted");
  EXPECT_FALSE(with("key_ops", boost::json::array{"verify", "verify"}));
  EXPECT_FALSE(with("kid", 3));

  boost::json::object ec = PublicJwk(ec_->Public(), "e");
  boost::json::object bad_curve = ec;
  bad_curve["crv"] = "P-384";
  EXPECT_FALSE(ParsePublicJwk(bad_curve));
  boost::json::object off_curve = ec;
  std::string y = Base64UrlDecode(std::string(ec["y"].as_string())).value();
  y[31] = static_cast<char>(y[31] ^ 1);
  off_curve["y"] = Base64UrlEncode(y);
  Result<Jwk> off = ParsePublicJwk(off_curve);
  ASSERT_FALSE(off);
  boost::json::object short_x = ec;
  short_x["x"] = Base64UrlEncode(std::string(31, '\x01'));
  EXPECT_FALSE(ParsePublicJwk(short_x));
}

TEST_F(CryptoJwk, UsabilityFollowsAlgUseAndKeyOps) {
  Jwk j = ParsePublicJwk(PublicJwk(rsa_->Public(), "k")).value();
  j.alg = "PS256";
  EXPECT_FALSE(JwkUsableFor(j, JwsAlg::kRs256));
  j.alg = "";
  j.use = "enc";
  EXPECT_FALSE(JwkUsableFor(j, JwsAlg::kRs256));
  j.use = "";
  j.key_ops = {"encrypt"};
  EXPECT_FALSE(JwkUsableFor(j, JwsAlg::kRs256));
  j.key_ops = {"sign", "verify"};
  EXPECT_TRUE(JwkUsableFor(j, JwsAlg::kRs256));
}

TEST_F(CryptoJwk, JwksParseAndSerialize) {
  std::string text = SerializeJwks({PublicJwk(rsa_->Public(), "a"), PublicJwk(ec_->Public(), "b")});
  Result<JwkSet> set = ParseJwks(text);
  ASSERT_TRUE(set) << set.error().message;
  ASSERT_EQ(set->keys.size(), 2u);
  EXPECT_TRUE(set->skipped.empty());
  ASSERT_NE(set->Find("b"), nullptr);
  EXPECT_EQ(set->Find("b")->key->type(), KeyType::kEcP256);
  EXPECT_EQ(set->Find("zzz"), nullptr);

  // Unsupported key types are skipped, as RFC 7517 §5 allows.
  boost::json::object okp = Obj(
      R"({"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"ed"})");
  Result<JwkSet> mixed = ParseJwks(SerializeJwks({PublicJwk(rsa_->Public(), "a"), okp}));
  ASSERT_TRUE(mixed);
  EXPECT_EQ(mixed->keys.size(), 1u);
  ASSERT_EQ(mixed->skipped.size(), 1u);
  EXPECT_NE(mixed->skipped[0].find("`ed`"), std::string::npos);

  EXPECT_FALSE(
      ParseJwks(SerializeJwks({PublicJwk(rsa_->Public(), "a"), PublicJwk(ec_->Public(), "a")})));
  boost::json::object leaked = PublicJwk(rsa_->Public(), "p");
  leaked["d"] = "AQAB";
  EXPECT_FALSE(ParseJwks(SerializeJwks({leaked})));
  EXPECT_FALSE(ParseJwks("[]"));
  EXPECT_FALSE(ParseJwks(R"({"keys":{}})"));
  EXPECT_FALSE(ParseJwks(R"({"keys":[],"keys":[]})"));
  EXPECT_FALSE(ParseJwks(R"({"keys":[1]})"));
}

}  // namespace
}  // namespace moat::crypto
