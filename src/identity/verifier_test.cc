// The one verifier: Moat tokens, self-signed service-account JWTs, external issuers, the cache.
#include "identity/verifier.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "identity/token_test_util.h"

namespace moat::identity {
namespace {

using namespace std::chrono_literals;
using testing::kOrigin;
using testing::kServiceUrl;
using testing::TokenWorld;

class VerifierTest : public ::testing::Test {
 protected:
  std::string AliceIdToken(std::string aud = kServiceUrl) {
    auto t = w.issuer_.MintIdToken(
        {w.alice_.sa.email, w.alice_.sa.unique_id, PrincipalKind::kServiceAccount}, aud);
    EXPECT_TRUE(t.has_value());
    return t->token;
  }
  std::string Reason(const VerifyResult<std::shared_ptr<const Identity>>& r) {
    return r ? "ok" : r.error().reason;
  }
  TokenWorld w;
};

TEST_F(VerifierTest, AcceptsMoatIdTokenAtTheGateway) {
  auto r = w.verifier_->Verify(AliceIdToken(), w.Gateway());
  ASSERT_TRUE(r.has_value()) << r.error().message;
  const Identity& id = **r;
  EXPECT_EQ(id.member, "serviceAccount:alice@proj.iam.gserviceaccount.com");
  EXPECT_EQ(id.unique_id, w.alice_.sa.unique_id);
  EXPECT_EQ(id.kind, PrincipalKind::kServiceAccount);
  EXPECT_EQ(id.source, TokenSource::kMoat);
  EXPECT_EQ(id.key_id, (*w.keys_.Signer())->kid);
  EXPECT_EQ(id.expire_time, w.clock_.Now() + 1h);
  // Trailing-slash audience via the list, and a predicate.
  EXPECT_TRUE(w.verifier_->Verify(AliceIdToken(std::string(kServiceUrl) + "/"), w.Gateway()));
  VerifyRequest pred;
  pred.audience_predicate = [](std::string_view a) { return a == "https://custom.example"; };
  EXPECT_TRUE(w.verifier_->Verify(AliceIdToken("https://custom.example"), pred));
}

TEST_F(VerifierTest, RefusesWrongAudienceEvenWhenCached) {
  std::string token = AliceIdToken();
  ASSERT_TRUE(w.verifier_->Verify(token, w.Gateway()));
  VerifyRequest other;
  other.audiences = {"http://other.run.localhost:8080"};
  auto r = w.verifier_->Verify(token, other);
  EXPECT_EQ(Reason(r), "wrong_audience");
  EXPECT_EQ(r.error().code, Code::kUnauthenticated);
  // Not accepted at the API either: its audience is a service URL.
  EXPECT_EQ(Reason(w.verifier_->Verify(token, TokenWorld::Api())), "wrong_audience");
  // Uncached path says the same.
  w.verifier_->ClearCache();
  EXPECT_EQ(Reason(w.verifier_->Verify(token, other)), "wrong_audience");
}

TEST_F(VerifierTest, AccessTokensWorkForTheApiButNotTheGateway) {
  auto t = w.issuer_.MintAccessToken({w.alice_.sa.email, w.alice_.sa.unique_id}, {"scope-a"});
  ASSERT_TRUE(t.has_value());
  auto api = w.verifier_->Verify(t->token, TokenWorld::Api());
  ASSERT_TRUE(api.has_value()) << api.error().message;
  EXPECT_EQ((*api)->scope, "scope-a");
  EXPECT_EQ(Reason(w.verifier_->Verify(t->token, w.Gateway())), "wrong_audience");
}

TEST_F(VerifierTest, RefusesExpiredTokens) {
  std::string token = AliceIdToken();
  ASSERT_TRUE(w.verifier_->Verify(token, w.Gateway()));
  w.clock_.Advance(1h + 59s);
  EXPECT_TRUE(w.verifier_->Verify(token, w.Gateway()));  // within the 60 s skew
  w.clock_.Advance(1s);
  EXPECT_EQ(Reason(w.verifier_->Verify(token, w.Gateway())), "expired");
}

TEST_F(VerifierTest, CachedTokenOfADisabledAccountIsRefusedAtOnce) {
  std::string token = AliceIdToken();
  ASSERT_TRUE(w.verifier_->Verify(token, w.Gateway()));
  ASSERT_TRUE(w.verifier_->Verify(token, w.Gateway()));
  EXPECT_EQ(w.verifier_->stats().hits, 1u);
  w.FindSa(w.alice_.sa.email)->disabled = true;
  w.Publish();
  auto r = w.verifier_->Verify(token, w.Gateway());
  EXPECT_EQ(Reason(r), "account_disabled");
  EXPECT_EQ(Reason(w.verifier_->Verify(token, w.Gateway())), "account_disabled");
  // Re-enabled: accepted again.
  w.FindSa(w.alice_.sa.email)->disabled = false;
  w.Publish();
  EXPECT_TRUE(w.verifier_->Verify(token, w.Gateway()));
}

TEST_F(VerifierTest, DeletedOrUnknownAccountIsRefused) {
  std::string token = AliceIdToken();
  ASSERT_TRUE(w.verifier_->Verify(token, w.Gateway()));
  w.FindSa(w.alice_.sa.email)->delete_time = w.clock_.Now();
  w.Publish();
  EXPECT_EQ(Reason(w.verifier_->Verify(token, w.Gateway())), "account_deleted");
  w.inputs_.service_accounts.erase(w.inputs_.service_accounts.begin());
  w.Publish();
  EXPECT_EQ(Reason(w.verifier_->Verify(token, w.Gateway())), "unknown_account");
}

TEST_F(VerifierTest, MoatUserTokens) {
  auto t = w.issuer_.MintIdToken(
      {"carol@example.com", "200000000000000000003", PrincipalKind::kUser}, kOrigin);
  ASSERT_TRUE(t.has_value());
  auto r = w.verifier_->Verify(t->token, TokenWorld::Api());
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ((*r)->member, "user:carol@example.com");
  w.inputs_.users[0].disabled = true;
  w.Publish();
  EXPECT_EQ(Reason(w.verifier_->Verify(t->token, TokenWorld::Api())), "user_disabled");
}

TEST_F(VerifierTest, SelfSignedJwtOnlyForTheApi) {
  std::string token =
      w.SelfSigned(w.alice_, std::string(kOrigin) + "/v1/projects/proj/serviceAccounts");
  auto r = w.verifier_->Verify(token, TokenWorld::Api());
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ((*r)->source, TokenSource::kSelfSigned);
  EXPECT_EQ((*r)->key_id, w.alice_.key.key_id);
  EXPECT_EQ((*r)->member, "serviceAccount:" + w.alice_.sa.email);
  EXPECT_EQ(w.KeyUses(w.alice_.key.key_id), 1);
  EXPECT_TRUE(w.verifier_->Verify(token, TokenWorld::Api()));  // cached
  EXPECT_EQ(w.KeyUses(w.alice_.key.key_id), 2);
  VerifyRequest gw = w.Gateway();
  gw.audiences.push_back(std::string(kOrigin) + "/v1/projects/proj/serviceAccounts");
  EXPECT_EQ(Reason(w.verifier_->Verify(token, gw)), "self_signed_not_allowed");
  w.verifier_->ClearCache();
  EXPECT_EQ(Reason(w.verifier_->Verify(token, gw)), "self_signed_not_allowed");
}

TEST_F(VerifierTest, SelfSignedAudienceRules) {
  auto check = [&](const std::string& aud) {
    return Reason(w.verifier_->Verify(w.SelfSigned(w.alice_, aud), TokenWorld::Api()));
  };
  EXPECT_EQ(check(kOrigin), "ok");
  EXPECT_EQ(check(std::string(kOrigin) + "/"), "ok");
  EXPECT_EQ(check("https://iam.googleapis.com/"), "ok");
  EXPECT_EQ(check("https://run.googleapis.com/v2/projects"), "ok");
  EXPECT_EQ(check(std::string(kOrigin) + "/v1/x?y=z"), "wrong_audience");
  EXPECT_EQ(check(std::string(kOrigin) + "0/v1"), "wrong_audience");  // another port
  EXPECT_EQ(check("https://evil.com/.googleapis.com/"), "wrong_audience");
  EXPECT_EQ(check("https://googleapis.com.evil.com/"), "wrong_audience");
  EXPECT_EQ(check(kServiceUrl), "wrong_audience");
  // Lifetime over one hour.
  EXPECT_EQ(
      Reason(w.verifier_->Verify(w.SelfSigned(w.alice_, kOrigin, true, 3601), TokenWorld::Api())),
      "lifetime_too_long");
  // sub must equal iss.
  boost::json::object c;
  c["iss"] = w.alice_.sa.email;
  c["sub"] = "someone@else.com";
  c["aud"] = kOrigin;
  c["iat"] = w.Now();
  c["exp"] = w.Now() + 600;
  EXPECT_EQ(Reason(w.verifier_->Verify(TokenWorld::Sign(*w.alice_.priv, w.alice_.key.key_id, c),
                                       TokenWorld::Api())),
            "subject_mismatch");
}

TEST_F(VerifierTest, SelfSignedWithoutKidTriesEachKeyOfTheAccount) {
  auto r =
      w.verifier_->Verify(w.SelfSigned(w.alice_, kOrigin, /*with_kid=*/false), TokenWorld::Api());
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ((*r)->key_id, w.alice_.key.key_id);
  // Signed with bob's key but claiming alice: no key of alice verifies it.
  boost::json::object c;
  c["iss"] = w.alice_.sa.email;
  c["aud"] = kOrigin;
  c["iat"] = w.Now();
  c["exp"] = w.Now() + 600;
  EXPECT_EQ(Reason(w.verifier_->Verify(TokenWorld::Sign(*w.bob_.priv, "", c), TokenWorld::Api())),
            "bad_signature");
  // Bob's kid under alice's iss: not alice's key.
  EXPECT_EQ(Reason(w.verifier_->Verify(TokenWorld::Sign(*w.bob_.priv, w.bob_.key.key_id, c),
                                       TokenWorld::Api())),
            "unknown_key");
}

TEST_F(VerifierTest, DisabledOrExpiredKeyIsRefusedEvenWhenCached) {
  std::string token = w.SelfSigned(w.alice_, kOrigin);
  ASSERT_TRUE(w.verifier_->Verify(token, TokenWorld::Api()));
  w.FindKey(w.alice_.key.key_id)->disabled = true;
  w.Publish();
  EXPECT_EQ(Reason(w.verifier_->Verify(token, TokenWorld::Api())), "key_disabled");
  w.verifier_->ClearCache();
  EXPECT_EQ(Reason(w.verifier_->Verify(token, TokenWorld::Api())), "key_disabled");

  w.FindKey(w.alice_.key.key_id)->disabled = false;
  w.FindKey(w.alice_.key.key_id)->valid_before = w.clock_.Now() + 10min;
  w.Publish();
  ASSERT_TRUE(w.verifier_->Verify(token, TokenWorld::Api()));
  w.clock_.Advance(10min);  // the key expires while the token is cached
  EXPECT_EQ(Reason(w.verifier_->Verify(token, TokenWorld::Api())), "key_expired");
}

TEST_F(VerifierTest, WrongIssuerAndGarbageAreRefused) {
  boost::json::object c;
  c["iss"] = "https://accounts.google.com";
  c["aud"] = kServiceUrl;
  c["iat"] = w.Now();
  c["exp"] = w.Now() + 600;
  c["sub"] = "1";
  EXPECT_EQ(Reason(w.verifier_->Verify(TokenWorld::Sign(*w.alice_.priv, "k", c), w.Gateway())),
            "wrong_issuer");
  EXPECT_EQ(Reason(w.verifier_->Verify("not-a-token", w.Gateway())), "malformed");
  EXPECT_EQ(Reason(w.verifier_->Verify(std::string(20000, 'a'), w.Gateway())), "too_large");
  // A Moat-issuer token signed by a key that is not Moat's.
  c["iss"] = kOrigin;
  c["sub"] = w.alice_.sa.unique_id;
  EXPECT_EQ(Reason(w.verifier_->Verify(TokenWorld::Sign(*w.alice_.priv, w.alice_.key.key_id, c),
                                       w.Gateway())),
            "unknown_key");
  // Moat's kid, wrong signature.
  EXPECT_EQ(Reason(w.verifier_->Verify(
                TokenWorld::Sign(*w.alice_.priv, (*w.keys_.Signer())->kid, c), w.Gateway())),
            "bad_signature");
}

TEST_F(VerifierTest, ExternalIssuerTokens) {
  auto r = w.verifier_->Verify(w.IdpToken("Dave@Corp.com", true), w.Gateway());
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ((*r)->member, "user:dave@corp.com");
  EXPECT_EQ((*r)->source, TokenSource::kExternal);
  EXPECT_EQ((*r)->unique_id, "idp-user-7");
  EXPECT_EQ(Reason(w.verifier_->Verify(w.IdpToken("x@corp.com", false), w.Gateway())),
            "email_not_verified");
  EXPECT_TRUE(w.verifier_->Verify(w.IdpToken("y@corp.com", "true"), w.Gateway()));
  // API audiences: the issuer's configured client id.
  EXPECT_TRUE(
      w.verifier_->Verify(w.IdpToken("y@corp.com", true, "corp-client"), TokenWorld::Api()));
  EXPECT_EQ(Reason(w.verifier_->Verify(w.IdpToken("y@corp.com", true, "other"), TokenWorld::Api())),
            "wrong_audience");
  EXPECT_EQ(w.fetcher_.calls(), 1);
  // A built-in user of the same email who is disabled is refused.
  w.inputs_.users.push_back(UserRecord{"dave@corp.com", "9", "", "", true, {}});
  w.Publish();
  EXPECT_EQ(Reason(w.verifier_->Verify(w.IdpToken("dave@corp.com", true), w.Gateway())),
            "user_disabled");
  // Issuer no longer trusted: even the cached token is refused.
  std::string y = w.IdpToken("y@corp.com", true);
  ASSERT_TRUE(w.verifier_->Verify(y, w.Gateway()));
  w.inputs_.trusted_issuers.clear();
  w.Publish();
  EXPECT_EQ(Reason(w.verifier_->Verify(y, w.Gateway())), "wrong_issuer");
}

TEST_F(VerifierTest, ExternalJwksIsCachedAndServedStaleWhileRevalidating) {
  ASSERT_TRUE(w.verifier_->Verify(w.IdpToken("a@corp.com", true), w.Gateway()));
  ASSERT_TRUE(w.verifier_->Verify(w.IdpToken("b@corp.com", true), w.Gateway()));
  EXPECT_EQ(w.fetcher_.calls(), 1);  // max-age 600 s
  // Past max-age with the issuer down: the stale keys still verify; one refresh was tried.
  w.clock_.Advance(601s);
  w.fetcher_.SetReachable(false);
  ASSERT_TRUE(w.verifier_->Verify(w.IdpToken("c@corp.com", true), w.Gateway()));
  EXPECT_EQ(w.fetcher_.calls(), 2);
  ASSERT_TRUE(w.verifier_->Verify(w.IdpToken("d@corp.com", true), w.Gateway()));
  EXPECT_EQ(w.fetcher_.calls(), 2);  // failed refresh retried at most every 30 s
  w.clock_.Advance(31s);
  ASSERT_TRUE(w.verifier_->Verify(w.IdpToken("e@corp.com", true), w.Gateway()));
  EXPECT_EQ(w.fetcher_.calls(), 3);
  // The issuer rotates its key; once back up, the refresh picks it up.
  auto k2 = testing::TestKey(4);
  w.ServeIdpKeys({{w.idp_kid_, w.idp_key_}, {"idp-key-2", k2}}, 600s);
  w.clock_.Advance(31s);
  ASSERT_TRUE(w.verifier_->Verify(w.IdpToken("f@corp.com", true), w.Gateway()));
  EXPECT_EQ(w.fetcher_.calls(), 4);
  boost::json::object c = testing::Claims(w.IdpToken("g@corp.com", true));
  auto r = w.verifier_->Verify(TokenWorld::Sign(*k2, "idp-key-2", c), w.Gateway());
  EXPECT_TRUE(r.has_value()) << r.error().message;
}

TEST_F(VerifierTest, StaleRefreshRunsInTheBackgroundWhenAnExecutorIsGiven) {
  std::vector<std::function<void()>> tasks;
  w.MakeVerifier([&](std::function<void()> f) { tasks.push_back(std::move(f)); });
  ASSERT_TRUE(w.verifier_->Verify(w.IdpToken("a@corp.com", true), w.Gateway()));
  w.clock_.Advance(601s);
  ASSERT_TRUE(w.verifier_->Verify(w.IdpToken("b@corp.com", true), w.Gateway()));
  ASSERT_TRUE(w.verifier_->Verify(w.IdpToken("c@corp.com", true), w.Gateway()));
  EXPECT_EQ(w.fetcher_.calls(), 1);  // answered from the stale cache
  ASSERT_EQ(tasks.size(), 1u);       // one refresh scheduled, not two
  tasks[0]();
  EXPECT_EQ(w.fetcher_.calls(), 2);
}

TEST_F(VerifierTest, UnknownKidRefetchIsRateLimited) {
  ASSERT_TRUE(w.verifier_->Verify(w.IdpToken("a@corp.com", true), w.Gateway()));
  auto k2 = testing::TestKey(4);
  boost::json::object c = testing::Claims(w.IdpToken("a@corp.com", true));
  std::string t2 = TokenWorld::Sign(*k2, "idp-key-2", c);
  // Within 30 s of the last fetch: no refetch.
  EXPECT_EQ(Reason(w.verifier_->Verify(t2, w.Gateway())), "unknown_key");
  EXPECT_EQ(w.fetcher_.calls(), 1);
  w.clock_.Advance(30s);
  w.ServeIdpKeys({{w.idp_kid_, w.idp_key_}, {"idp-key-2", k2}}, 600s);
  c["iat"] = w.Now();
  c["exp"] = w.Now() + 600;
  t2 = TokenWorld::Sign(*k2, "idp-key-2", c);
  auto r = w.verifier_->Verify(t2, w.Gateway());
  EXPECT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(w.fetcher_.calls(), 2);
  // A stream of garbage kids cannot make Moat hammer the issuer.
  for (int i = 0; i < 20; ++i) {
    EXPECT_FALSE(
        w.verifier_->Verify(TokenWorld::Sign(*k2, "bogus-" + std::to_string(i), c), w.Gateway()));
  }
  EXPECT_EQ(w.fetcher_.calls(), 2);
}

TEST_F(VerifierTest, UnreachableIssuerIsUnavailableNotUnauthenticated) {
  w.fetcher_.SetReachable(false);
  auto r = w.verifier_->Verify(w.IdpToken("a@corp.com", true), w.Gateway());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Code::kUnavailable);
  EXPECT_EQ(r.error().reason, "issuer_unavailable");
  EXPECT_EQ(r.error().message, "issuer `https://idp.example.com` unavailable");
  EXPECT_EQ(r.error().ToError().code, Code::kUnavailable);
  // Rate-limited retries while down, then recovery.
  EXPECT_FALSE(w.verifier_->Verify(w.IdpToken("a@corp.com", true), w.Gateway()));
  EXPECT_EQ(w.fetcher_.calls(), 1);
  w.fetcher_.SetReachable(true);
  w.clock_.Advance(30s);
  EXPECT_TRUE(w.verifier_->Verify(w.IdpToken("a@corp.com", true), w.Gateway()));
}

TEST_F(VerifierTest, CacheIsBounded) {
  VerifierOptions o;
  o.issuer = w.urls_.issuer;
  o.api_origin = kOrigin;
  o.cache_capacity = 64;  // one entry per shard
  VerifierDeps d;
  d.clock = &w.clock_;
  d.directory = [&] { return w.dir_.load(); };
  d.signing_keys = &w.keys_;
  Verifier v(o, d);
  for (int i = 0; i < 300; ++i) {
    ASSERT_TRUE(v.Verify(
        AliceIdToken(kServiceUrl + std::string("/") + std::to_string(i)),
        VerifyRequest{VerifyPurpose::kGateway, {}, [](std::string_view) { return true; }}));
  }
  EXPECT_LE(v.stats().cache_size, 64u);
  EXPECT_EQ(v.stats().misses, 300u);
}

}  // namespace
}  // namespace moat::identity
