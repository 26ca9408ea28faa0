// Master key, signing-key rotation, encryption at rest, and the token issuer's claims.
#include "identity/signing_keys.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <set>

#include "common/base64.h"
#include "common/json.h"
#include "crypto/jwk.h"
#include "crypto/jwt.h"
#include "identity/master_key.h"
#include "identity/token_test_util.h"
#include "store/memory_store.h"

namespace moat::identity {
namespace {

using namespace std::chrono_literals;
using testing::Claims;
using testing::Header;
using testing::TokenWorld;

std::string TempDir() {
  auto p = std::filesystem::temp_directory_path() / ("moat-mk-" + RandomHex(6));
  return p.string();
}

TEST(MasterKey, CreatedWithMode0600AndReused) {
  std::string home = TempDir();
  auto k1 = LoadOrCreateMasterKey(home, nullptr);
  ASSERT_TRUE(k1.has_value()) << k1.error().message;
  EXPECT_EQ(k1->size(), 32u);
  struct stat st {};
  ASSERT_EQ(::stat((home + "/master.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto k2 = LoadOrCreateMasterKey(home, "");
  ASSERT_TRUE(k2.has_value());
  EXPECT_EQ(*k1, *k2);
  std::filesystem::remove_all(home);
}

TEST(MasterKey, GroupReadableFileIsRefused) {
  std::string home = TempDir();
  ASSERT_TRUE(LoadOrCreateMasterKey(home, nullptr).has_value());
  ASSERT_EQ(::chmod((home + "/master.key").c_str(), 0644), 0);
  auto k = LoadOrCreateMasterKey(home, nullptr);
  ASSERT_FALSE(k.has_value());
  EXPECT_EQ(k.error().code, Code::kFailedPrecondition);
  EXPECT_NE(k.error().message.find("has mode 0644"), std::string::npos) << k.error().message;
  EXPECT_NE(k.error().message.find("chmod 600"), std::string::npos);
  std::filesystem::remove_all(home);
}

TEST(MasterKey, EnvironmentWinsAndIsValidated) {
  std::string raw(32, '\x07');
  auto k = LoadOrCreateMasterKey("/nonexistent/never-created", Base64Encode(raw).c_str());
  ASSERT_TRUE(k.has_value());
  EXPECT_EQ(*k, raw);
  EXPECT_FALSE(std::filesystem::exists("/nonexistent/never-created"));
  auto bad = LoadOrCreateMasterKey("/tmp", Base64Encode(std::string(16, 'x')).c_str());
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, Code::kInvalidArgument);
  EXPECT_FALSE(LoadOrCreateMasterKey("/tmp", "not base64!").has_value());
}

TEST(MasterKey, CorruptFileIsRefused) {
  std::string home = TempDir();
  std::filesystem::create_directories(home);
  {
    std::ofstream f(home + "/master.key");
    f << "short";
  }
  ::chmod((home + "/master.key").c_str(), 0600);
  auto k = LoadOrCreateMasterKey(home, nullptr);
  ASSERT_FALSE(k.has_value());
  EXPECT_EQ(k.error().code, Code::kInvalidArgument);
  std::filesystem::remove_all(home);
}

struct Minted {
  std::string token;
  std::string kid;
  int64_t iat = 0, exp = 0;
};

// 30 simulated days, Rotate() every 20 minutes, one token minted per step. A verifier whose
// JWKS copy is as old as the Cache-Control max-age allows must accept every token until its
// exp and never after; a key leaves the JWKS only after every token it signed expired (plus
// the cache age).
TEST(SigningKeys, RotationOverThirtyDaysNeverStrandsACachedVerifier) {
  FakeClock clock;
  store::MemoryStore store(&clock);
  SigningKeyOptions opts;  // 7 d signing, 1 h tokens, 1 h JWKS max-age
  SigningKeyManager keys(store, RandomBytes(32), clock, opts);
  TokenIssuer issuer(keys, clock, IssuerUrls::For(testing::kOrigin));
  const TimePoint t0 = clock.Now();
  const auto step = 20min;
  const int steps = static_cast<int>((30 * 24h) / step);

  std::vector<std::string> jwks_at(steps);
  std::vector<Minted> tokens;
  std::map<std::string, std::pair<int64_t, int64_t>> sign_span;  // kid → first/last iat
  for (int i = 0; i < steps; ++i) {
    clock.Set(t0 + i * step);
    ASSERT_TRUE(keys.Rotate().has_value());
    ASSERT_TRUE(keys.Rotate().has_value());  // idempotent
    jwks_at[i] = keys.JwksJson();
    auto t = issuer.MintIdToken(
        {"a@p.iam.gserviceaccount.com", "1", PrincipalKind::kServiceAccount}, "https://svc");
    ASSERT_TRUE(t.has_value()) << t.error().message;
    Minted m{t->token, t->kid, clock.NowUnix(),
             std::chrono::duration_cast<Seconds>(t->expire_time.time_since_epoch()).count()};
    EXPECT_EQ(m.exp - m.iat, 3600);
    auto [it, inserted] = sign_span.try_emplace(m.kid, m.iat, m.iat);
    if (!inserted) it->second.second = m.iat;
    tokens.push_back(std::move(m));
  }
  // Keys rotated, each signing at most 7 days.
  EXPECT_GE(sign_span.size(), 4u);
  for (const auto& [kid, span] : sign_span) {
    EXPECT_LE(span.second - span.first, 7 * 24 * 3600) << kid;
  }
  auto step_of = [&](int64_t unix) {
    int64_t d = unix - std::chrono::duration_cast<Seconds>(t0.time_since_epoch()).count();
    return static_cast<int>(std::min<int64_t>(steps - 1, std::max<int64_t>(0, d / 1200)));
  };
  auto verify_with = [&](const Minted& m, const std::string& jwks, int64_t at) {
    auto set = crypto::ParseJwks(jwks);
    EXPECT_TRUE(set.has_value());
    FakeClock vclock{TimePoint(Seconds(at))};
    crypto::JwtVerifyOptions vo;
    vo.issuers = {testing::kOrigin};
    vo.audiences = {"https://svc"};
    vo.clock = &vclock;
    vo.skew = 0s;
    return crypto::VerifyJwt(m.token, crypto::JwksKeyLookup(std::make_shared<crypto::JwkSet>(*set)),
                             vo);
  };
  int checks = 0;
  for (size_t n = 0; n < tokens.size(); n += 1) {
    const Minted& m = tokens[n];
    for (int64_t at : {m.iat, m.iat + 1200, m.iat + 2400, m.exp - 1}) {
      if (step_of(at) >= steps - 1 && at > m.iat) continue;  // past the simulation
      // Freshest JWKS, and the oldest a verifier may still use (fetched max-age ago).
      int fresh = step_of(at);
      int64_t oldest_fetch = at - 3600;
      int oldest = step_of(oldest_fetch);  // the JWKS as it was when fetched max-age ago
      if (oldest > fresh) oldest = fresh;
      for (int idx : {fresh, oldest}) {
        auto v = verify_with(m, jwks_at[idx], at);
        ASSERT_TRUE(v.has_value()) << "token " << n << " at +" << (at - m.iat)
                                   << "s with JWKS of step " << idx << ": " << v.error().message;
        ++checks;
      }
    }
    // Never after exp.
    auto late = verify_with(m, jwks_at[step_of(m.exp)], m.exp);
    ASSERT_FALSE(late.has_value());
    EXPECT_EQ(late.error().reason, crypto::TokenError::kExpired);
  }
  EXPECT_GT(checks, 10000);
  // A kid leaves the JWKS only once every token it signed expired at least max-age ago, and it
  // does leave (no unbounded growth).
  std::map<std::string, int64_t> last_exp;
  for (const auto& m : tokens) last_exp[m.kid] = std::max(last_exp[m.kid], m.exp);
  std::set<std::string> seen;
  size_t max_published = 0;
  for (int i = 0; i < steps; ++i) {
    auto set = crypto::ParseJwks(jwks_at[i]);
    ASSERT_TRUE(set.has_value());
    max_published = std::max(max_published, set->keys.size());
    const int64_t now =
        std::chrono::duration_cast<Seconds>((t0 + i * step).time_since_epoch()).count();
    for (const auto& k : set->keys) seen.insert(k.kid);
    for (const auto& kid : seen) {
      if (set->Find(kid) != nullptr || last_exp.count(kid) == 0) continue;
      EXPECT_GE(now, last_exp[kid] + 3600) << "kid " << kid << " retired too early";
    }
  }
  EXPECT_LE(max_published, 3u);
  auto final_set = crypto::ParseJwks(jwks_at[steps - 1]);
  EXPECT_EQ(final_set->Find(tokens.front().kid), nullptr) << "the first key was never retired";
}

TEST(SigningKeys, NextKeyIsPublishedBeforeItSigns) {
  TokenWorld w;
  auto snap = w.keys_.Snapshot();
  ASSERT_EQ(snap->keys.size(), 2u);
  auto signer = w.keys_.Signer();
  ASSERT_TRUE(signer.has_value());
  const auto& next = snap->keys[1];
  EXPECT_NE(next->kid, (*signer)->kid);
  EXPECT_GE(next->sign_start - next->publish_time, 1h);
  EXPECT_EQ(next->sign_start, (*signer)->sign_end);
  EXPECT_NE(w.keys_.JwksJson().find(next->kid), std::string::npos);
  EXPECT_EQ(w.keys_.CacheControl(), "public, max-age=3600, must-revalidate, no-transform");
  auto certs = json::ParseObject(w.keys_.CertsPemJson());
  ASSERT_TRUE(certs.has_value());
  EXPECT_EQ(certs->size(), 2u);
  EXPECT_TRUE(certs->at((*signer)->kid).as_string().starts_with("-----BEGIN CERTIFICATE-----"));
}

TEST(SigningKeys, LapsedScheduleExtendsThePublishedKeyInsteadOfSigningWithAnUnseenOne) {
  TokenWorld w;
  auto before = w.keys_.Snapshot();
  // Rotate() last ran at t0 (key 1 signing, key 2 next); the server was then down past key 2's
  // signing window but not past its retirement.
  w.clock_.Advance(14 * 24h + 30min);
  ASSERT_TRUE(w.keys_.Rotate().has_value());
  auto signer = w.keys_.Signer();
  ASSERT_TRUE(signer.has_value());
  EXPECT_NE(before->Find((*signer)->kid), nullptr) << "signs with a key nobody has cached";
  auto snap = w.keys_.Snapshot();
  auto next = std::find_if(snap->keys.begin(), snap->keys.end(),
                           [&](const auto& k) { return k->sign_start >= (*signer)->sign_end; });
  ASSERT_NE(next, snap->keys.end());
  EXPECT_GE((*next)->sign_start - w.clock_.Now(), 1h);
}

TEST(SigningKeys, PrivateKeysAreEncryptedAtRestAndTamperingIsRefused) {
  TokenWorld w;
  auto page = w.store_.List(store::Collection::kSigningKeys, {});
  ASSERT_TRUE(page.has_value());
  ASSERT_EQ(page->documents.size(), 2u);
  auto doc = page->documents[0];
  EXPECT_EQ(doc.data.find("PRIVATE KEY"), std::string::npos);
  auto stored = ParseStoredSigningKey(doc.data);
  ASSERT_TRUE(stored.has_value());
  EXPECT_TRUE(OpenPrivateKey(w.master_, stored->encrypted_private_key, stored->kid).has_value());
  EXPECT_FALSE(OpenPrivateKey(w.master_, stored->encrypted_private_key, "other-kid").has_value());
  EXPECT_FALSE(OpenPrivateKey(RandomBytes(32), stored->encrypted_private_key, stored->kid));

  // Another master key cannot load the store.
  SigningKeyManager other(w.store_, RandomBytes(32), w.clock_);
  auto r = other.Reload();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Code::kDataLoss);

  // Flip one ciphertext byte: refused, and the previous snapshot stays in use.
  auto sealed = Base64Decode(stored->encrypted_private_key);
  (*sealed)[20] ^= 0x01;
  stored->encrypted_private_key = Base64Encode(*sealed);
  ASSERT_TRUE(
      w.store_.Put(store::Collection::kSigningKeys, doc.key, SerializeStoredSigningKey(*stored))
          .has_value());
  SigningKeyManager fresh(w.store_, w.master_, w.clock_);
  auto reload = fresh.Reload();
  ASSERT_FALSE(reload.has_value());
  EXPECT_EQ(reload.error().code, Code::kDataLoss);
  EXPECT_FALSE(fresh.Signer().has_value());
  EXPECT_TRUE(w.keys_.Signer().has_value());
}

TEST(TokenIssuer, IdTokenHeaderAndClaimsAreExact) {
  TokenWorld w;
  auto t = w.issuer_.MintIdToken(
      {w.alice_.sa.email, w.alice_.sa.unique_id, PrincipalKind::kServiceAccount},
      testing::kServiceUrl);
  ASSERT_TRUE(t.has_value());
  auto h = Header(t->token);
  EXPECT_EQ(h.size(), 3u);
  EXPECT_EQ(h.at("alg"), "RS256");
  EXPECT_EQ(h.at("typ"), "JWT");
  EXPECT_EQ(h.at("kid"), boost::json::value((*w.keys_.Signer())->kid));
  auto c = Claims(t->token);
  EXPECT_EQ(c.size(), 8u);
  EXPECT_EQ(c.at("iss"), boost::json::value(testing::kOrigin));
  EXPECT_EQ(c.at("aud"), boost::json::value(testing::kServiceUrl));
  EXPECT_EQ(c.at("azp"), boost::json::value(w.alice_.sa.unique_id));
  EXPECT_EQ(c.at("sub"), boost::json::value(w.alice_.sa.unique_id));
  EXPECT_EQ(c.at("email"), boost::json::value(w.alice_.sa.email));
  EXPECT_EQ(c.at("email_verified"), true);
  EXPECT_EQ(c.at("iat").as_int64(), w.Now());
  EXPECT_EQ(c.at("exp").as_int64(), w.Now() + 3600);

  IdTokenOptions no_email;
  no_email.include_email = false;
  no_email.lifetime = 5h;  // clamped
  auto t2 = w.issuer_.MintIdToken(
      {w.alice_.sa.email, w.alice_.sa.unique_id, PrincipalKind::kServiceAccount}, "aud", no_email);
  ASSERT_TRUE(t2.has_value());
  auto c2 = Claims(t2->token);
  EXPECT_FALSE(c2.contains("email"));
  EXPECT_FALSE(c2.contains("email_verified"));
  EXPECT_EQ(c2.at("exp").as_int64() - c2.at("iat").as_int64(), 3600);
  EXPECT_FALSE(w.issuer_.MintIdToken({"x", "1"}, "").has_value());
}

TEST(TokenIssuer, AccessTokenIsAJwtForTheApi) {
  TokenWorld w;
  auto t =
      w.issuer_.MintAccessToken({w.alice_.sa.email, w.alice_.sa.unique_id},
                                {"https://www.googleapis.com/auth/cloud-platform", "email"}, 600s);
  ASSERT_TRUE(t.has_value());
  auto c = Claims(t->token);
  EXPECT_EQ(c.at("aud"), boost::json::value(testing::kOrigin));
  EXPECT_EQ(c.at("scope"), "https://www.googleapis.com/auth/cloud-platform email");
  EXPECT_EQ(c.at("exp").as_int64() - c.at("iat").as_int64(), 600);
}

TEST(TokenIssuer, OpenIdConfiguration) {
  TokenWorld w;
  auto o = json::ParseObject(w.issuer_.OpenIdConfiguration());
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->at("issuer"), boost::json::value(testing::kOrigin));
  EXPECT_EQ(o->at("jwks_uri"),
            boost::json::value(std::string(testing::kOrigin) + "/oauth2/v3/certs"));
  EXPECT_EQ(o->at("token_endpoint"), boost::json::value(std::string(testing::kOrigin) + "/token"));
  EXPECT_EQ(o->at("id_token_signing_alg_values_supported"), boost::json::array{"RS256"});
  EXPECT_EQ(o->at("subject_types_supported"), boost::json::array{"public"});
}

TEST(TokenIssuer, NoSignerMeansUnavailable) {
  FakeClock clock;
  store::MemoryStore store(&clock);
  SigningKeyManager keys(store, RandomBytes(32), clock);
  TokenIssuer issuer(keys, clock, IssuerUrls::For(testing::kOrigin));
  auto t = issuer.MintIdToken({"a", "1"}, "aud");
  ASSERT_FALSE(t.has_value());
  EXPECT_EQ(t.error().code, Code::kUnavailable);
}

}  // namespace
}  // namespace moat::identity
