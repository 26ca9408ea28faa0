// The metadata server handler: flavor header, paths, tokens.
#include "identity/metadata_server.h"

#include <gtest/gtest.h>

#include "common/json.h"
#include "identity/token_test_util.h"

namespace moat::identity {
namespace {

using testing::TokenWorld;

class MetadataTest : public ::testing::Test {
 protected:
  MetadataTest()
      : handler_(
            w.issuer_, [this] { return w.dir_.load(); }, [this] { return w.alice_.sa.email; },
            MetadataServerOptions{"proj", "123456789", "us-central1", "us-central1-a"}) {}

  HttpReply Get(std::string path, std::map<std::string, std::string> query = {},
                std::vector<std::pair<std::string, std::string>> headers = {
                    {"metadata-flavor", "Google"}}) {
    auto r = handler_.Handle("GET", path, query, headers);
    bool flavor = false;
    for (const auto& [k, v] : r.headers) flavor |= (k == "Metadata-Flavor" && v == "Google");
    EXPECT_TRUE(flavor) << path;
    return r;
  }

  TokenWorld w;
  MetadataHandler handler_;
  const std::string sa_ = "/computeMetadata/v1/instance/service-accounts/default";
};

TEST_F(MetadataTest, RequiresTheFlavorHeaderAndRefusesProxies) {
  auto r = Get("/computeMetadata/v1/project/project-id", {}, {});
  EXPECT_EQ(r.status, 403);
  EXPECT_NE(r.body.find("Missing Metadata-Flavor:Google header."), std::string::npos);
  EXPECT_EQ(
      Get("/computeMetadata/v1/project/project-id", {}, {{"Metadata-Flavor", "google2"}}).status,
      403);
  EXPECT_EQ(Get("/computeMetadata/v1/project/project-id", {},
                {{"Metadata-Flavor", "Google"}, {"X-Forwarded-For", "1.2.3.4"}})
                .status,
            403);
  EXPECT_EQ(handler_
                .Handle("POST", "/computeMetadata/v1/project/project-id", {},
                        {{"Metadata-Flavor", "Google"}})
                .status,
            405);
}

TEST_F(MetadataTest, PingsAndProject) {
  EXPECT_EQ(Get("/").status, 200);
  EXPECT_EQ(Get("/computeMetadata/v1/instance").status, 200);
  EXPECT_EQ(Get("/computeMetadata/v1/instance/").status, 200);
  EXPECT_EQ(Get("/computeMetadata/v1/project/project-id").body, "proj");
  EXPECT_EQ(Get("/computeMetadata/v1/project/numeric-project-id").body, "123456789");
  EXPECT_EQ(Get("/computeMetadata/v1/instance/region").body,
            "projects/123456789/regions/us-central1");
  EXPECT_EQ(Get("/computeMetadata/v1/instance/zone").body,
            "projects/123456789/zones/us-central1-a");
  EXPECT_EQ(Get("/computeMetadata/v1/instance/nope").status, 404);
  EXPECT_EQ(Get("/other").status, 404);
}

TEST_F(MetadataTest, ServiceAccountInfo) {
  EXPECT_EQ(Get(sa_ + "/email").body, w.alice_.sa.email);
  EXPECT_EQ(
      Get("/computeMetadata/v1/instance/service-accounts/" + w.alice_.sa.email + "/email").body,
      w.alice_.sa.email);
  EXPECT_EQ(Get("/computeMetadata/v1/instance/service-accounts/other@x.com/email").status, 404);
  auto listing = Get("/computeMetadata/v1/instance/service-accounts/");
  EXPECT_EQ(listing.body, "default/\n" + w.alice_.sa.email + "/\n");
  auto info = Get(sa_ + "/", {{"recursive", "true"}});
  ASSERT_EQ(info.status, 200);
  auto o = json::ParseObject(info.body);
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->at("email"), boost::json::value(w.alice_.sa.email));
  EXPECT_EQ(o->at("aliases"), boost::json::array{"default"});
  EXPECT_EQ(o->at("scopes").as_array().size(), 1u);
}

TEST_F(MetadataTest, IdentityToken) {
  EXPECT_EQ(Get(sa_ + "/identity").status, 400);
  auto r = Get(sa_ + "/identity", {{"audience", testing::kServiceUrl}, {"format", "full"}});
  ASSERT_EQ(r.status, 200) << r.body;
  auto c = testing::Claims(r.body);
  EXPECT_EQ(c.at("aud"), boost::json::value(testing::kServiceUrl));
  EXPECT_EQ(c.at("email"), boost::json::value(w.alice_.sa.email));
  EXPECT_EQ(c.at("sub"), boost::json::value(w.alice_.sa.unique_id));
  EXPECT_EQ(c.at("google").at("compute_engine").at("project_id"), "proj");
  EXPECT_TRUE(w.verifier_->Verify(r.body, w.Gateway()));
  // Standard format: email still included, no google block. Encoded audience accepted.
  auto s = Get(sa_ + "/identity",
               {{"audience", "http%3A%2F%2Fhello-abc.us-central1.run.localhost%3A8080"},
                {"format", "standard"}});
  ASSERT_EQ(s.status, 200) << s.body;
  auto cs = testing::Claims(s.body);
  EXPECT_EQ(cs.at("aud"), boost::json::value(testing::kServiceUrl));
  EXPECT_EQ(cs.at("email"), boost::json::value(w.alice_.sa.email));
  EXPECT_FALSE(cs.contains("google"));
  EXPECT_EQ(Get(sa_ + "/identity", {{"audience", "x"}, {"format", "weird"}}).status, 400);
  // A disabled account gets no tokens.
  w.FindSa(w.alice_.sa.email)->disabled = true;
  w.Publish();
  EXPECT_EQ(Get(sa_ + "/identity", {{"audience", "x"}}).status, 403);
}

TEST_F(MetadataTest, AccessToken) {
  auto r = Get(sa_ + "/token", {{"scopes", "a,b"}});
  ASSERT_EQ(r.status, 200) << r.body;
  auto o = json::ParseObject(r.body);
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->at("token_type"), "Bearer");
  EXPECT_EQ(o->at("expires_in").as_int64(), 3600);
  auto id = w.verifier_->Verify(o->at("access_token").as_string(), TokenWorld::Api());
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ((*id)->scope, "a b");
}

}  // namespace
}  // namespace moat::identity
