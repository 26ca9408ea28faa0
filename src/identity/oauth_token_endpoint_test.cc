// OAuth2 token endpoint: JWT-bearer (Python and Node shapes), password and refresh grants.
#include "identity/oauth_token_endpoint.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "common/json.h"
#include "identity/token_test_util.h"

namespace moat::identity {
namespace {

using namespace std::chrono_literals;
using testing::kOrigin;
using testing::TokenWorld;

class OAuthTest : public ::testing::Test {
 protected:
  OAuthTest()
      : endpoint_(
            w.issuer_, *w.verifier_, w.store_, w.clock_, [this] { return w.dir_.load(); },
            [this](std::string_view email, std::string_view password) -> Result<UserRecord> {
              if (email == "carol@example.com" && password == "hunter2") {
                return *w.dir_.load()->FindUser(email);
              }
              return Unauthenticated("bad password");
            }) {}

  boost::json::object Body(const HttpReply& r) {
    auto o = json::ParseObject(r.body);
    EXPECT_TRUE(o.has_value()) << r.body;
    return o ? *o : boost::json::object{};
  }

  // google-auth (Python) IDTokenCredentials: kid, aud = Google's token URL, target_audience.
  std::string PythonAssertion(const testing::TestAccount& a, std::string target) {
    boost::json::object c;
    c["iat"] = w.Now();
    c["exp"] = w.Now() + 3600;
    c["iss"] = a.sa.email;
    c["aud"] = "https://oauth2.googleapis.com/token";
    c["target_audience"] = target;
    return TokenWorld::Sign(*a.priv, a.key.key_id, c);
  }

  HttpReply Post(std::map<std::string, std::string> form) { return endpoint_.Handle(form); }
  HttpReply Bearer(const std::string& assertion) {
    return Post({{"grant_type", std::string(kJwtBearerGrant)}, {"assertion", assertion}});
  }

  TokenWorld w;
  OAuthTokenEndpoint endpoint_;
};

TEST_F(OAuthTest, PythonStyleAssertionGivesAnIdToken) {
  auto r = Bearer(PythonAssertion(w.alice_, testing::kServiceUrl));
  ASSERT_EQ(r.status, 200) << r.body;
  auto body = Body(r);
  ASSERT_EQ(body.size(), 1u);
  std::string id_token(body.at("id_token").as_string());
  auto c = testing::Claims(id_token);
  EXPECT_EQ(c.at("iss"), boost::json::value(kOrigin));
  EXPECT_EQ(c.at("aud"), boost::json::value(testing::kServiceUrl));
  EXPECT_EQ(c.at("sub"), boost::json::value(w.alice_.sa.unique_id));
  EXPECT_EQ(c.at("azp"), boost::json::value(w.alice_.sa.unique_id));
  EXPECT_EQ(c.at("email"), boost::json::value(w.alice_.sa.email));
  EXPECT_EQ(c.at("email_verified"), true);
  EXPECT_EQ(c.at("exp").as_int64() - c.at("iat").as_int64(), 3600);
  // The token passes the gateway for that service.
  EXPECT_TRUE(w.verifier_->Verify(id_token, w.Gateway()));
  EXPECT_EQ(w.KeyUses(w.alice_.key.key_id), 1);
  bool no_store = false;
  for (const auto& [k, v] : r.headers) no_store |= (k == "Cache-Control" && v == "no-store");
  EXPECT_TRUE(no_store);
}

TEST_F(OAuthTest, NodeStyleAssertionWithoutKidAndMoatTokenUrl) {
  // gtoken: header {alg} only, sub and scope absent, target_audience added.
  boost::json::object c;
  c["iss"] = w.bob_.sa.email;
  c["aud"] = std::string(kOrigin) + "/token";
  c["iat"] = w.Now();
  c["exp"] = w.Now() + 3600;
  c["target_audience"] = "https://aud.example";
  auto r = Bearer(TokenWorld::Sign(*w.bob_.priv, "", c));
  ASSERT_EQ(r.status, 200) << r.body;
  auto claims = testing::Claims(std::string(Body(r).at("id_token").as_string()));
  EXPECT_EQ(claims.at("aud"), "https://aud.example");
  EXPECT_EQ(claims.at("sub"), boost::json::value(w.bob_.sa.unique_id));
}

TEST_F(OAuthTest, ScopeGivesAnAccessToken) {
  boost::json::object c;
  c["iss"] = w.alice_.sa.email;
  c["aud"] = "https://oauth2.googleapis.com/token";
  c["iat"] = w.Now();
  c["exp"] = w.Now() + 3600;
  c["scope"] = "https://www.googleapis.com/auth/cloud-platform";
  auto r = Bearer(TokenWorld::Sign(*w.alice_.priv, w.alice_.key.key_id, c));
  ASSERT_EQ(r.status, 200) << r.body;
  auto body = Body(r);
  EXPECT_EQ(body.at("token_type"), "Bearer");
  EXPECT_EQ(body.at("expires_in").as_int64(), 3600);
  auto api = w.verifier_->Verify(body.at("access_token").as_string(), TokenWorld::Api());
  ASSERT_TRUE(api.has_value());
  EXPECT_EQ((*api)->scope, "https://www.googleapis.com/auth/cloud-platform");
}

TEST_F(OAuthTest, BadAssertionsAreInvalidGrant) {
  auto expect_invalid_grant = [&](const std::string& assertion) {
    auto r = Bearer(assertion);
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(Body(r).at("error"), "invalid_grant") << r.body;
  };
  boost::json::object c;
  c["iss"] = w.alice_.sa.email;
  c["aud"] = "https://example.com/token";  // wrong aud
  c["iat"] = w.Now();
  c["exp"] = w.Now() + 3600;
  c["target_audience"] = "x";
  expect_invalid_grant(TokenWorld::Sign(*w.alice_.priv, w.alice_.key.key_id, c));
  c["aud"] = "https://oauth2.googleapis.com/token";
  c["exp"] = w.Now() + 7200;  // too long
  expect_invalid_grant(TokenWorld::Sign(*w.alice_.priv, w.alice_.key.key_id, c));
  c["exp"] = w.Now() + 3600;
  expect_invalid_grant(TokenWorld::Sign(*w.bob_.priv, w.alice_.key.key_id, c));  // bad sig
  expect_invalid_grant("garbage");
  // A Moat ID token is not an assertion.
  auto id = w.issuer_.MintIdToken({w.alice_.sa.email, w.alice_.sa.unique_id},
                                  "https://oauth2.googleapis.com/token");
  expect_invalid_grant(id->token);
  // Disabled account.
  w.FindSa(w.alice_.sa.email)->disabled = true;
  w.Publish();
  expect_invalid_grant(PythonAssertion(w.alice_, "x"));
  // Neither target_audience nor scope.
  c.erase("target_audience");
  auto r = Bearer(TokenWorld::Sign(*w.bob_.priv, w.bob_.key.key_id, [&] {
    auto d = c;
    d["iss"] = w.bob_.sa.email;
    return d;
  }()));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Body(r).at("error"), "invalid_request");
}

TEST_F(OAuthTest, GrantTypeErrors) {
  auto r = Post({{"grant_type", "client_credentials"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Body(r).at("error"), "unsupported_grant_type");
  r = Post({});
  EXPECT_EQ(Body(r).at("error"), "invalid_request");
  r = Post({{"grant_type", std::string(kJwtBearerGrant)}});
  EXPECT_EQ(Body(r).at("error"), "invalid_request");
}

TEST_F(OAuthTest, PasswordAndRefreshFlows) {
  auto bad =
      Post({{"grant_type", "password"}, {"username", "carol@example.com"}, {"password", "wrong"}});
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(Body(bad).at("error"), "invalid_grant");

  auto r = Post(
      {{"grant_type", "password"}, {"username", "carol@example.com"}, {"password", "hunter2"}});
  ASSERT_EQ(r.status, 200) << r.body;
  auto body = Body(r);
  auto id = w.verifier_->Verify(body.at("id_token").as_string(), TokenWorld::Api());
  ASSERT_TRUE(id.has_value()) << id.error().message;
  EXPECT_EQ((*id)->member, "user:carol@example.com");
  EXPECT_EQ(testing::Claims(std::string(body.at("id_token").as_string())).at("aud"),
            boost::json::value(kOrigin));
  EXPECT_TRUE(w.verifier_->Verify(body.at("access_token").as_string(), TokenWorld::Api()));
  std::string refresh(body.at("refresh_token").as_string());
  // Only the hash is stored.
  auto page = w.store_.List(store::Collection::kSettings, {});
  ASSERT_EQ(page->documents.size(), 1u);
  EXPECT_EQ(page->documents[0].key.find(refresh), std::string::npos);
  EXPECT_EQ(page->documents[0].data.find(refresh), std::string::npos);

  w.clock_.Advance(2h);
  auto r2 = Post({{"grant_type", "refresh_token"}, {"refresh_token", refresh}});
  ASSERT_EQ(r2.status, 200) << r2.body;
  auto b2 = Body(r2);
  EXPECT_FALSE(b2.contains("refresh_token"));
  EXPECT_TRUE(w.verifier_->Verify(b2.at("id_token").as_string(), TokenWorld::Api()));
  // target_audience: the same reply, its ID token for that audience, about the same user.
  auto r4 = Post({{"grant_type", "refresh_token"},
                  {"refresh_token", refresh},
                  {"target_audience", "https://svc.example"}});
  ASSERT_EQ(r4.status, 200) << r4.body;
  auto b4 = Body(r4);
  auto claims = testing::Claims(std::string(b4.at("id_token").as_string()));
  EXPECT_EQ(claims.at("aud"), boost::json::value("https://svc.example"));
  EXPECT_EQ(claims.at("email"), boost::json::value("carol@example.com"));
  EXPECT_TRUE(b4.contains("access_token"));
  EXPECT_FALSE(b4.contains("refresh_token"));
  auto empty = Post({{"grant_type", "refresh_token"},
                     {"refresh_token", refresh},
                     {"target_audience", ""}});
  EXPECT_EQ(empty.status, 400);
  EXPECT_EQ(Body(empty).at("error"), "invalid_request");

  EXPECT_EQ(Body(Post({{"grant_type", "refresh_token"}, {"refresh_token", "nope"}})).at("error"),
            "invalid_grant");
  // Disabled user: refused.
  w.inputs_.users[0].disabled = true;
  w.Publish();
  auto r3 = Post({{"grant_type", "refresh_token"}, {"refresh_token", refresh}});
  EXPECT_EQ(r3.status, 400);
  EXPECT_EQ(Body(r3).at("error"), "invalid_grant");
  // Expired after 30 days.
  w.inputs_.users[0].disabled = false;
  w.Publish();
  w.clock_.Advance(31 * 24h);
  EXPECT_EQ(Post({{"grant_type", "refresh_token"}, {"refresh_token", refresh}}).status, 400);
}

}  // namespace
}  // namespace moat::identity
