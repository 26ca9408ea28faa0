// JWT verification, including a corpus of forged tokens: one per attack class, each refused
// with its own reason.
#include "crypto/jwt.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <map>
#include <thread>

#include "common/base64.h"
#include "common/json.h"
#include "crypto/hash.h"

namespace moat::crypto {
namespace {

using boost::json::object;

constexpr int64_t kNow = 1'700'000'000;
const char* kIss = "https://moat.local";
const char* kAud = "https://svc-abc.us-central1.run.localhost";

class CryptoJwt : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    rsa_ = new PrivateKey(PrivateKey::GenerateRsa2048().value());
    ec_ = new PrivateKey(PrivateKey::GenerateEcP256().value());
    other_rsa_ = new PrivateKey(PrivateKey::GenerateRsa2048().value());
  }
  static void TearDownTestSuite() {
    delete rsa_;
    delete ec_;
    delete other_rsa_;
  }

  void SetUp() override {
    keys_["rsa"] = Share(rsa_->Public());
    keys_["ec"] = Share(ec_->Public());
    options_.issuers = {kIss};
    options_.audiences = {kAud};
    options_.clock = &clock_;
  }

  object Claims() const {
    return {{"iss", kIss}, {"aud", kAud},        {"sub", "107145139691231222712"},
            {"iat", kNow}, {"exp", kNow + 3600}, {"email", "sa@p.iam.gserviceaccount.com"}};
  }

  KeyLookup Lookup() const {
    return [this](const KeyQuery& q) {
      std::vector<PublicKeyPtr> out;
      if (q.kid) {
        auto it = keys_.find(std::string(*q.kid));
        if (it != keys_.end()) out.push_back(it->second);
      }
      return out;
    };
  }

  // Hand-built token: any header, any payload text, signed by `key` with `alg` (or with the
  // given raw signature).
  static std::string Forge(const object& header, std::string_view payload, const PrivateKey* key,
                           JwsAlg alg) {
    std::string input = Base64UrlEncode(json::Serialize(header)) + "." + Base64UrlEncode(payload);
    std::string sig = key ? Sign(alg, *key, input).value() : std::string();
    return input + "." + Base64UrlEncode(sig);
  }
  static std::string Forge(const object& header, const object& claims, const PrivateKey* key,
                           JwsAlg alg) {
    return Forge(header, json::Serialize(claims), key, alg);
  }

  TokenResult<VerifiedJwt> Check(std::string_view token) const {
    return VerifyJwt(token, Lookup(), options_);
  }

  // Asserts refusal for `reason`, and that the message does not echo the token.
  void ExpectRefused(std::string_view token, TokenError reason, std::string_view fragment = "") {
    TokenResult<VerifiedJwt> r = Check(token);
    ASSERT_FALSE(r) << "token accepted; expected " << TokenErrorName(reason);
    EXPECT_EQ(r.error().reason, reason)
        << "got " << TokenErrorName(r.error().reason) << ": " << r.error().message;
    if (!fragment.empty()) {
      EXPECT_NE(r.error().message.find(fragment), std::string::npos) << r.error().message;
    }
    if (token.size() > 40) {
      EXPECT_EQ(r.error().message.find(token.substr(token.size() - 40)), std::string::npos);
    }
    EXPECT_EQ(r.error().ToError().code, Code::kUnauthenticated);
  }

  static PrivateKey* rsa_;
  static PrivateKey* ec_;
  static PrivateKey* other_rsa_;
  std::map<std::string, PublicKeyPtr> keys_;
  FakeClock clock_{TimePoint(Seconds(kNow))};
  JwtVerifyOptions options_;
};
PrivateKey* CryptoJwt::rsa_ = nullptr;
PrivateKey* CryptoJwt::ec_ = nullptr;
PrivateKey* CryptoJwt::other_rsa_ = nullptr;

TEST_F(CryptoJwt, EncodesGoogleHeaderAndVerifiesBothAlgorithms) {
  std::string token = EncodeJwt(JwsAlg::kRs256, *rsa_, "rsa", Claims()).value();
  EXPECT_EQ(Base64UrlDecode(token.substr(0, token.find('.'))).value(),
            R"({"alg":"RS256","kid":"rsa","typ":"JWT"})");
  TokenResult<VerifiedJwt> v = Check(token);
  ASSERT_TRUE(v) << v.error().message;
  EXPECT_EQ(v->kid, "rsa");
  EXPECT_EQ(v->iss, kIss);
  EXPECT_EQ(v->sub, "107145139691231222712");
  EXPECT_EQ(v->aud, std::vector<std::string>{kAud});
  EXPECT_EQ(v->exp, kNow + 3600);
  EXPECT_EQ(v->iat, kNow);
  EXPECT_EQ(v->claims.at("email"), "sa@p.iam.gserviceaccount.com");

  TokenResult<VerifiedJwt> e = Check(EncodeJwt(JwsAlg::kEs256, *ec_, "ec", Claims()).value());
  ASSERT_TRUE(e) << e.error().message;
  EXPECT_EQ(e->alg, JwsAlg::kEs256);
}

TEST_F(CryptoJwt, AudienceArraysAndPredicate) {
  object c = Claims();
  c["aud"] = boost::json::array{"https://other", kAud};
  TokenResult<VerifiedJwt> v = Check(EncodeJwt(JwsAlg::kRs256, *rsa_, "rsa", c).value());
  ASSERT_TRUE(v);
  EXPECT_EQ(v->aud.size(), 2u);

  c["aud"] = "https://custom.example.com";
  std::string token = EncodeJwt(JwsAlg::kRs256, *rsa_, "rsa", c).value();
  ExpectRefused(token, TokenError::kWrongAudience,
                "audience `https://custom.example.com` is not accepted");
  options_.audience_predicate = [](std::string_view a) {
    return a == "https://custom.example.com";
  };
  EXPECT_TRUE(Check(token));
}

TEST_F(CryptoJwt, ForgedAlgorithmHeaders) {
  object c = Claims();
  // alg none, no signature.
  ExpectRefused(Forge({{"alg", "none"}, {"kid", "rsa"}}, c, nullptr, JwsAlg::kRs256),
                TokenError::kUnsupportedAlgorithm, "`none`");
  ExpectRefused(Forge({{"alg", "NONE"}}, c, nullptr, JwsAlg::kRs256),
                TokenError::kUnsupportedAlgorithm);
  // HS256 "signed" with the RSA public key PEM as the HMAC secret (algorithm confusion).
  {
    object h{{"alg", "HS256"}, {"kid", "rsa"}, {"typ", "JWT"}};
    std::string input =
        Base64UrlEncode(json::Serialize(h)) + "." + Base64UrlEncode(json::Serialize(c));
    std::string mac = HmacSha256(rsa_->Public().ToSpkiPem(), input);
    ExpectRefused(input + "." + Base64UrlEncode(mac), TokenError::kUnsupportedAlgorithm, "`HS256`");
  }
  for (const char* alg : {"HS384", "HS512", "PS256", "RS384", "ES384", "EdDSA", "rs256"}) {
    ExpectRefused(Forge({{"alg", alg}, {"kid", "rsa"}}, c, rsa_, JwsAlg::kRs256),
                  TokenError::kUnsupportedAlgorithm);
  }
  // ES256 header naming the RSA key, validly ES256-signed by an EC key.
  ExpectRefused(Forge({{"alg", "ES256"}, {"kid", "rsa"}}, c, ec_, JwsAlg::kEs256),
                TokenError::kKeyMismatch);
  // RS256 header naming the EC key, validly RS256-signed by an RSA key.
  ExpectRefused(Forge({{"alg", "RS256"}, {"kid", "ec"}}, c, rsa_, JwsAlg::kRs256),
                TokenError::kKeyMismatch);
  // Missing or non-string alg.
  ExpectRefused(Forge({{"kid", "rsa"}}, c, rsa_, JwsAlg::kRs256), TokenError::kMalformed);
  ExpectRefused(Forge({{"alg", 1}}, c, rsa_, JwsAlg::kRs256), TokenError::kMalformed);
}

TEST_F(CryptoJwt, ForbiddenHeaders) {
  object c = Claims();
  for (const char* h : {"crit", "jku", "x5u", "jwk", "x5c"}) {
    object header{{"alg", "RS256"}, {"kid", "rsa"}};
    header[h] = std::string(h) == "jwk" ? boost::json::value(PublicJwk(other_rsa_->Public(), "rsa"))
                                        : boost::json::value("https://attacker.example/keys");
    // Signed by the attacker's key that the header points at.
    ExpectRefused(Forge(header, c, other_rsa_, JwsAlg::kRs256), TokenError::kForbiddenHeader,
                  std::string("`") + h + "`");
  }
  ExpectRefused(Forge({{"alg", "RS256"}, {"kid", "rsa"}, {"cty", "JWT"}}, c, rsa_, JwsAlg::kRs256),
                TokenError::kForbiddenHeader);
  ExpectRefused(
      Forge({{"alg", "RS256"}, {"kid", "rsa"}, {"typ", "at+jwt"}}, c, rsa_, JwsAlg::kRs256),
      TokenError::kBadType);
  EXPECT_TRUE(
      Check(Forge({{"alg", "RS256"}, {"kid", "rsa"}, {"typ", "jwt"}}, c, rsa_, JwsAlg::kRs256)));
  EXPECT_TRUE(Check(Forge({{"alg", "RS256"}, {"kid", "rsa"}}, c, rsa_, JwsAlg::kRs256)));
}

TEST_F(CryptoJwt, EncodingAttacks) {
  std::string good = EncodeJwt(JwsAlg::kRs256, *rsa_, "rsa", Claims()).value();
  ASSERT_TRUE(Check(good));
  size_t d1 = good.find('.'), d2 = good.rfind('.');
  std::string h = good.substr(0, d1), p = good.substr(d1 + 1, d2 - d1 - 1), s = good.substr(d2 + 1);
  // Padding, standard-alphabet characters, whitespace, non-zero spare bits.
  ExpectRefused(h + "=." + p + "." + s, TokenError::kMalformed, "base64url");
  ExpectRefused(h + "." + p + "." + s + "==", TokenError::kMalformed);
  ExpectRefused(h + "." + p + " ." + s, TokenError::kMalformed);
  std::string plus = s;
  for (char& ch : plus) {
    if (ch == '-') ch = '+';
    if (ch == '_') ch = '/';
  }
  if (plus != s) ExpectRefused(h + "." + p + "." + plus, TokenError::kMalformed);
  {
    // Flip the unused low bits of the last signature character (2048-bit sig: 256 bytes →
    // 342 chars with 4 spare bits): same bytes under a lax decoder, refused here.
    std::string t = s;
    static const std::string kAlphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t v = kAlphabet.find(t.back());
    t.back() = kAlphabet[v | 1];
    if (t != s) ExpectRefused(h + "." + p + "." + t, TokenError::kMalformed);
  }
  // Segment count.
  ExpectRefused(h + "." + p, TokenError::kMalformed, "three");
  ExpectRefused(good + "." + s, TokenError::kMalformed);
  ExpectRefused(good + ".", TokenError::kMalformed);
  ExpectRefused("", TokenError::kMalformed);
  ExpectRefused("..", TokenError::kMalformed);
  // Header not an object / not JSON.
  ExpectRefused(Base64UrlEncode("[1]") + "." + p + "." + s, TokenError::kMalformed);
  ExpectRefused(Base64UrlEncode("{\"alg\":\"RS256\"") + "." + p + "." + s, TokenError::kMalformed);
  // Huge token.
  object c = Claims();
  c["pad"] = std::string(20000, 'x');
  ExpectRefused(EncodeJwt(JwsAlg::kRs256, *rsa_, "rsa", c).value(), TokenError::kTooLarge);
}

TEST_F(CryptoJwt, DuplicateKeysRefused) {
  std::string payload = R"({"iss":"https://moat.local","aud":")" + std::string(kAud) +
                        R"(","exp":1700003600,"exp":1999999999})";
  ExpectRefused(Forge({{"alg", "RS256"}, {"kid", "rsa"}}, payload, rsa_, JwsAlg::kRs256),
                TokenError::kMalformed, "`exp` more than once");
  std::string header = R"({"alg":"RS256","kid":"rsa","alg":"none"})";
  std::string input = Base64UrlEncode(header) + "." + Base64UrlEncode(json::Serialize(Claims()));
  ExpectRefused(input + "." + Base64UrlEncode(Sign(JwsAlg::kRs256, *rsa_, input).value()),
                TokenError::kMalformed, "more than once");
  ExpectRefused(Forge({{"alg", "RS256"}, {"kid", "rsa"}}, "not json", rsa_, JwsAlg::kRs256),
                TokenError::kMalformed);
}

TEST_F(CryptoJwt, SignatureAttacks) {
  std::string good = EncodeJwt(JwsAlg::kRs256, *rsa_, "rsa", Claims()).value();
  size_t d1 = good.find('.'), d2 = good.rfind('.');
  // Tampered payload (claims changed, signature kept).
  object c = Claims();
  c["email"] = "admin@p.iam.gserviceaccount.com";
  ExpectRefused(good.substr(0, d1 + 1) + Base64UrlEncode(json::Serialize(c)) + good.substr(d2),
                TokenError::kBadSignature, "signature does not verify");
  // Signed by another key under our kid.
  ExpectRefused(EncodeJwt(JwsAlg::kRs256, *other_rsa_, "rsa", Claims()).value(),
                TokenError::kBadSignature);
  // Empty signature, for both algorithms.
  ExpectRefused(good.substr(0, d2 + 1), TokenError::kBadSignature);
  std::string es = EncodeJwt(JwsAlg::kEs256, *ec_, "ec", Claims()).value();
  ExpectRefused(es.substr(0, es.rfind('.') + 1), TokenError::kBadSignature);
  // ES256 signature in DER instead of r‖s.
  std::string es_input = es.substr(0, es.rfind('.'));
  std::string raw = Base64UrlDecode(es.substr(es.rfind('.') + 1)).value();
  ExpectRefused(es_input + "." + Base64UrlEncode(EcdsaRawToDer(raw).value()),
                TokenError::kBadSignature);
  // Unknown kid, and no kid with a lookup that only knows kids.
  ExpectRefused(EncodeJwt(JwsAlg::kRs256, *rsa_, "nope", Claims()).value(), TokenError::kUnknownKey,
                "unknown key id `nope`");
  ExpectRefused(EncodeJwt(JwsAlg::kRs256, *rsa_, "", Claims()).value(), TokenError::kUnknownKey,
                "issuer `https://moat.local`");
}

TEST_F(CryptoJwt, TimeChecksWithSkewBoundaries) {
  auto token = [&](const char* claim, boost::json::value v) {
    object c = Claims();
    if (v.is_null()) {
      c.erase(claim);
    } else {
      c[claim] = v;
    }
    return EncodeJwt(JwsAlg::kRs256, *rsa_, "rsa", c).value();
  };
  // exp: accepted while now < exp + 60; refused from exp + 60 on.
  EXPECT_TRUE(Check(token("exp", kNow - 59)));
  ExpectRefused(token("exp", kNow - 60), TokenError::kExpired,
                "token expired at 2023-11-14T22:12:20Z");
  ExpectRefused(token("exp", kNow - 3600), TokenError::kExpired);
  ExpectRefused(token("exp", nullptr), TokenError::kMissingClaim, "`exp`");
  ExpectRefused(token("exp", "1700003600"), TokenError::kBadClaim);
  ExpectRefused(token("exp", -5), TokenError::kBadClaim);
  ExpectRefused(token("exp", 1e300), TokenError::kBadClaim);
  EXPECT_TRUE(Check(token("exp", static_cast<double>(kNow) + 10.5)));
  // nbf and iat: accepted up to now + 60.
  EXPECT_TRUE(Check(token("nbf", kNow + 60)));
  ExpectRefused(token("nbf", kNow + 61), TokenError::kNotYetValid, "not valid before");
  EXPECT_TRUE(Check(token("iat", kNow + 60)));
  ExpectRefused(token("iat", kNow + 61), TokenError::kIssuedInFuture);
  ExpectRefused(token("iat", "now"), TokenError::kBadClaim);
  // The clock moves: a valid token expires.
  std::string t = token("exp", kNow + 100);
  EXPECT_TRUE(Check(t));
  clock_.Advance(std::chrono::seconds(160));
  ExpectRefused(t, TokenError::kExpired);
  clock_.Set(TimePoint(Seconds(kNow)));
  // Configurable skew.
  options_.skew = std::chrono::seconds(0);
  ExpectRefused(token("exp", kNow), TokenError::kExpired);
  EXPECT_TRUE(Check(token("exp", kNow + 1)));
  // Maximum lifetime.
  options_.max_lifetime = std::chrono::seconds(3600);
  EXPECT_TRUE(Check(token("exp", kNow + 3600)));
  ExpectRefused(token("exp", kNow + 3601), TokenError::kLifetimeTooLong);
  ExpectRefused(token("iat", nullptr), TokenError::kMissingClaim, "`iat`");
}

TEST_F(CryptoJwt, IssuerAndAudienceChecks) {
  auto token = [&](const char* claim, boost::json::value v) {
    object c = Claims();
    if (v.is_null()) {
      c.erase(claim);
    } else {
      c[claim] = v;
    }
    return EncodeJwt(JwsAlg::kRs256, *rsa_, "rsa", c).value();
  };
  ExpectRefused(token("iss", "https://evil.example"), TokenError::kWrongIssuer,
                "issuer `https://evil.example` is not accepted");
  ExpectRefused(token("iss", nullptr), TokenError::kMissingClaim);
  ExpectRefused(token("iss", 7), TokenError::kBadClaim);
  ExpectRefused(token("aud", "https://other"), TokenError::kWrongAudience);
  ExpectRefused(token("aud", boost::json::array{"https://a", "https://b"}),
                TokenError::kWrongAudience, "none of the audiences `https://a`, `https://b`");
  ExpectRefused(token("aud", boost::json::array{}), TokenError::kBadClaim);
  ExpectRefused(token("aud", boost::json::array{kAud, 3}), TokenError::kBadClaim);
  ExpectRefused(token("aud", nullptr), TokenError::kMissingClaim);
  ExpectRefused(token("sub", 12), TokenError::kBadClaim);
  // Empty allow-lists accept nothing.
  std::string good = token("sub", "x");
  options_.audiences.clear();
  ExpectRefused(good, TokenError::kWrongAudience);
  options_.audiences = {kAud};
  options_.issuers.clear();
  ExpectRefused(good, TokenError::kWrongIssuer);
}

TEST_F(CryptoJwt, KidlessTokensTryTheIssuersKeys) {
  // Node's gtoken sends assertions without kid: the lookup returns all keys of the issuer.
  KeyLookup by_issuer = [this](const KeyQuery& q) {
    std::vector<PublicKeyPtr> out;
    if (!q.kid && q.issuer == kIss) {
      out = {Share(other_rsa_->Public()), keys_["ec"], keys_["rsa"]};
    }
    return out;
  };
  std::string token = EncodeJwt(JwsAlg::kRs256, *rsa_, "", Claims()).value();
  TokenResult<VerifiedJwt> v = VerifyJwt(token, by_issuer, options_);
  ASSERT_TRUE(v) << v.error().message;
  EXPECT_EQ(v->kid, "");
}

TEST_F(CryptoJwt, JwksLookupHonoursJwkRestrictions) {
  boost::json::object enc = PublicJwk(rsa_->Public(), "rsa");
  enc["use"] = "enc";
  auto set = std::make_shared<JwkSet>(
      ParseJwks(SerializeJwks({PublicJwk(ec_->Public(), "ec"), enc})).value());
  KeyLookup lookup = JwksKeyLookup(set);
  EXPECT_TRUE(VerifyJwt(EncodeJwt(JwsAlg::kEs256, *ec_, "ec", Claims()).value(), lookup, options_));
  TokenResult<VerifiedJwt> r =
      VerifyJwt(EncodeJwt(JwsAlg::kRs256, *rsa_, "rsa", Claims()).value(), lookup, options_);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().reason, TokenError::kUnknownKey);
  r = VerifyJwt(Forge({{"alg", "RS256"}, {"kid", "ec"}}, Claims(), rsa_, JwsAlg::kRs256), lookup,
                options_);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().reason, TokenError::kKeyMismatch);
}

TEST_F(CryptoJwt, ConcurrentVerificationOnSharedKeys) {
  std::string rs = EncodeJwt(JwsAlg::kRs256, *rsa_, "rsa", Claims()).value();
  std::string es = EncodeJwt(JwsAlg::kEs256, *ec_, "ec", Claims()).value();
  std::string bad = rs.substr(0, rs.size() - 4) + "AAAA";
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        if (!Check(rs) || !Check(es) || Check(bad)) failures++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace moat::crypto
