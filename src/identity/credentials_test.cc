// IAM Credentials: names, permissions, delegation chains, signJwt/signBlob with published keys.
#include "identity/credentials.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <set>
#include <tuple>

#include "common/base64.h"
#include "common/json.h"
#include "common/time.h"
#include "crypto/jwk.h"
#include "crypto/jws.h"
#include "identity/token_test_util.h"

namespace moat::identity {
namespace {

using namespace std::chrono_literals;
using testing::TokenWorld;

class CredentialsTest : public ::testing::Test {
 protected:
  CredentialsTest()
      : creds_(
            w.issuer_, w.system_keys_, w.clock_, [this] { return w.dir_.load(); },
            [this](const std::string& member, const std::string& resource,
                   std::string_view permission) {
              return grants_.count({member, resource, std::string(permission)}) != 0;
            }) {}

  void Grant(const std::string& member, const testing::TestAccount& on, std::string_view perm) {
    grants_.insert({member, on.sa.Name(), std::string(perm)});
  }
  static std::string Name(const testing::TestAccount& a) {
    return "projects/-/serviceAccounts/" + a.sa.email;
  }

  TokenWorld w;
  std::set<std::tuple<std::string, std::string, std::string>> grants_;
  IamCredentials creds_;
  const std::string caller_ = "user:carol@example.com";
};

TEST_F(CredentialsTest, NameNeedsTheWildcard) {
  Grant(caller_, w.alice_, kPermGetOpenIdToken);
  auto r = creds_.GenerateIdToken(caller_, "projects/proj/serviceAccounts/" + w.alice_.sa.email,
                                  {{}, "aud", false});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Code::kInvalidArgument);
  EXPECT_NE(r.error().message.find("`-` wildcard"), std::string::npos);
  EXPECT_TRUE(creds_.GenerateIdToken(caller_, Name(w.alice_), {{}, "aud", false}));
  // By unique id too.
  EXPECT_TRUE(creds_.GenerateIdToken(caller_, "projects/-/serviceAccounts/" + w.alice_.sa.unique_id,
                                     {{}, "aud", false}));
  auto missing = creds_.GenerateIdToken(caller_, "projects/-/serviceAccounts/nobody@x.com",
                                        {{}, "aud", false});
  EXPECT_EQ(missing.error().code, Code::kNotFound);
}

TEST_F(CredentialsTest, GenerateIdTokenNeedsGetOpenIdToken) {
  auto denied = creds_.GenerateIdToken(caller_, Name(w.alice_), {{}, "https://svc", true});
  ASSERT_FALSE(denied.has_value());
  EXPECT_EQ(denied.error().code, Code::kPermissionDenied);
  EXPECT_EQ(denied.error().message,
            "Permission 'iam.serviceAccounts.getOpenIdToken' denied on resource (or it may not "
            "exist).");
  Grant(caller_, w.alice_, kPermGetOpenIdToken);
  auto t = creds_.GenerateIdToken(caller_, Name(w.alice_), {{}, "https://svc", true});
  ASSERT_TRUE(t.has_value());
  auto c = testing::Claims(*t);
  EXPECT_EQ(c.at("aud"), "https://svc");
  EXPECT_EQ(c.at("email"), boost::json::value(w.alice_.sa.email));
  auto no_email = creds_.GenerateIdToken(caller_, Name(w.alice_), {{}, "https://svc", false});
  EXPECT_FALSE(testing::Claims(*no_email).contains("email"));
  // getOpenIdToken does not grant access tokens.
  auto at = creds_.GenerateAccessToken(caller_, Name(w.alice_), {{}, {"s"}, 3600s});
  EXPECT_EQ(at.error().code, Code::kPermissionDenied);
  // Disabled target: FailedPrecondition (only after the permission check).
  w.FindSa(w.alice_.sa.email)->disabled = true;
  w.Publish();
  EXPECT_EQ(creds_.GenerateIdToken(caller_, Name(w.alice_), {{}, "a", true}).error().code,
            Code::kFailedPrecondition);
  EXPECT_EQ(
      creds_.GenerateIdToken("user:mallory@x.com", Name(w.alice_), {{}, "a", true}).error().code,
      Code::kPermissionDenied);
}

TEST_F(CredentialsTest, DelegationChainIsEnforcedHopByHop) {
  auto carol = w.MakeAccount("carol-sa@proj.iam.gserviceaccount.com", "100000000000000000009");
  w.Publish();
  // caller → bob → carol-sa → alice
  std::vector<std::string> delegates = {Name(w.bob_), Name(carol)};
  auto call = [&] {
    return creds_.GenerateIdToken(caller_, Name(w.alice_), {delegates, "a", true});
  };
  EXPECT_EQ(call().error().message.find("implicitDelegation") != std::string::npos, true);
  Grant(caller_, w.bob_, kPermImplicitDelegation);
  EXPECT_EQ(call().error().code, Code::kPermissionDenied);
  Grant("serviceAccount:" + w.bob_.sa.email, carol, kPermImplicitDelegation);
  EXPECT_EQ(call().error().code, Code::kPermissionDenied);
  Grant(caller_, w.alice_, kPermGetOpenIdToken);  // the caller's own grant does not count
  auto r = call();
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("getOpenIdToken"), std::string::npos);
  Grant("serviceAccount:" + carol.sa.email, w.alice_, kPermGetOpenIdToken);
  auto ok = call();
  ASSERT_TRUE(ok.has_value()) << ok.error().message;
  EXPECT_EQ(testing::Claims(*ok).at("sub"), boost::json::value(w.alice_.sa.unique_id));
  // A malformed delegate name.
  delegates = {"projects/proj/serviceAccounts/" + w.bob_.sa.email};
  EXPECT_EQ(call().error().code, Code::kInvalidArgument);
}

TEST_F(CredentialsTest, GenerateAccessToken) {
  Grant(caller_, w.alice_, kPermGetAccessToken);
  auto r = creds_.GenerateAccessTokenJson(
      caller_, Name(w.alice_),
      R"({"scope":["https://www.googleapis.com/auth/cloud-platform"],"lifetime":"600s"})");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  auto o = json::ParseObject(*r);
  EXPECT_EQ(o->at("expireTime"), boost::json::value(FormatRfc3339(w.clock_.Now() + 600s)));
  auto id = w.verifier_->Verify(o->at("accessToken").as_string(), TokenWorld::Api());
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ((*id)->member, "serviceAccount:" + w.alice_.sa.email);
  EXPECT_EQ(
      creds_
          .GenerateAccessTokenJson(caller_, Name(w.alice_), R"({"scope":["s"],"lifetime":"7200s"})")
          .error()
          .code,
      Code::kInvalidArgument);
  EXPECT_EQ(creds_.GenerateAccessTokenJson(caller_, Name(w.alice_), R"({})").error().code,
            Code::kInvalidArgument);
}

TEST_F(CredentialsTest, SignJwtVerifiesWithThePublishedJwkAndAsASelfSignedJwt) {
  Grant(caller_, w.alice_, kPermSignJwt);
  boost::json::object claims;
  claims["iss"] = w.alice_.sa.email;
  claims["sub"] = w.alice_.sa.email;
  claims["aud"] = std::string(testing::kOrigin) + "/v1/projects";
  claims["iat"] = w.Now();
  claims["exp"] = w.Now() + 600;
  boost::json::object body;
  body["payload"] = json::Serialize(claims);
  auto r = creds_.SignJwtJson(caller_, Name(w.alice_), json::Serialize(body));
  ASSERT_TRUE(r.has_value()) << r.error().message;
  auto o = json::ParseObject(*r);
  std::string jwt(o->at("signedJwt").as_string());
  std::string kid(o->at("keyId").as_string());
  EXPECT_EQ(testing::Header(jwt).at("kid"), boost::json::value(kid));
  // Published at /service_accounts/v1/jwk/EMAIL and /robot/v1/metadata/x509/EMAIL.
  auto jwks =
      ServiceAccountJwks(*w.dir_.load(), &w.system_keys_, w.alice_.sa.email, w.clock_.Now());
  ASSERT_TRUE(jwks.has_value());
  auto set = crypto::ParseJwks(*jwks);
  ASSERT_TRUE(set.has_value());
  EXPECT_EQ(set->keys.size(), 2u);  // the user-managed key and the system-managed one
  ASSERT_NE(set->Find(kid), nullptr);
  crypto::JwtVerifyOptions vo;
  vo.issuers = {w.alice_.sa.email};
  vo.audiences = {std::string(testing::kOrigin) + "/v1/projects"};
  vo.clock = &w.clock_;
  EXPECT_TRUE(crypto::VerifyJwt(
      jwt, crypto::JwksKeyLookup(std::make_shared<crypto::JwkSet>(std::move(*set))), vo));
  auto certs =
      ServiceAccountX509Certs(*w.dir_.load(), &w.system_keys_, w.alice_.sa.email, w.clock_.Now());
  ASSERT_TRUE(certs.has_value());
  EXPECT_NE(certs->find(kid), std::string::npos);
  // Moat's API accepts it as a self-signed JWT.
  auto id = w.verifier_->Verify(jwt, TokenWorld::Api());
  ASSERT_TRUE(id.has_value()) << id.error().message;
  EXPECT_EQ((*id)->key_id, kid);
  // Same key on the next call; not generated again.
  auto again = creds_.SignJwtJson(caller_, Name(w.alice_), json::Serialize(body));
  EXPECT_EQ(json::ParseObject(*again)->at("keyId"), boost::json::value(kid));
  // exp required and at most 12 h ahead.
  claims["exp"] = w.Now() + 13 * 3600;
  body["payload"] = json::Serialize(claims);
  EXPECT_EQ(creds_.SignJwtJson(caller_, Name(w.alice_), json::Serialize(body)).error().code,
            Code::kInvalidArgument);
  // The stored private key is sealed.
  auto page = w.store_.List(store::Collection::kSigningKeys, {});
  for (const auto& d : page->documents) EXPECT_EQ(d.data.find("PRIVATE KEY"), std::string::npos);
  // Unknown account documents.
  EXPECT_EQ(
      ServiceAccountJwks(*w.dir_.load(), &w.system_keys_, "nobody@x", w.clock_.Now()).error().code,
      Code::kNotFound);
}

TEST_F(CredentialsTest, SignBlob) {
  EXPECT_EQ(creds_.SignBlobJson(caller_, Name(w.alice_), R"({"payload":"aGVsbG8="})").error().code,
            Code::kPermissionDenied);
  Grant(caller_, w.alice_, kPermSignBlob);
  auto r = creds_.SignBlobJson(caller_, Name(w.alice_), R"({"payload":"aGVsbG8="})");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  auto o = json::ParseObject(*r);
  auto sig = Base64Decode(o->at("signedBlob").as_string());
  ASSERT_TRUE(sig.has_value());
  auto key = w.system_keys_.Find(o->at("keyId").as_string(), w.clock_.Now());
  ASSERT_NE(key, nullptr);
  EXPECT_TRUE(crypto::Verify(crypto::JwsAlg::kRs256, *key->public_key, "hello", *sig));
  EXPECT_FALSE(crypto::Verify(crypto::JwsAlg::kRs256, *key->public_key, "hellO", *sig));
  EXPECT_EQ(creds_.SignBlobJson(caller_, Name(w.alice_), R"({"payload":"!!"})").error().code,
            Code::kInvalidArgument);
}

}  // namespace
}  // namespace moat::identity
