#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "state/live_state.h"
#include "state/service.h"
#include "store/memory_store.h"

namespace moat::state {
namespace {

constexpr char kService[] = R"({
  "name": "projects/p/locations/us-central1/services/api",
  "uid": "u-1", "generation": "3",
  "invokerIamDisabled": false,
  "customAudiences": ["https://api.example.com"],
  "template": {"upstream": "http://127.0.0.1:9000", "timeout": "30s",
               "serviceAccount": "Runner@p.iam.gserviceaccount.com"}
})";

TEST(StateService, ParsesUpstreamServiceDocument) {
  auto spec = ParseServiceDoc(kService);
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ(spec->project, "p");
  EXPECT_EQ(spec->region, "us-central1");
  EXPECT_EQ(spec->service_id, "api");
  EXPECT_EQ(spec->generation, 3);
  EXPECT_EQ(spec->upstream, "http://127.0.0.1:9000");
  EXPECT_EQ(spec->timeout, std::chrono::seconds(30));
  EXPECT_EQ(spec->service_account, "runner@p.iam.gserviceaccount.com");
  EXPECT_FALSE(spec->runs_command());
  EXPECT_EQ(spec->host, HostFor("p", "us-central1", "api"));
  EXPECT_EQ(spec->host.rfind("api-", 0), 0u);
  EXPECT_NE(spec->host.find(".us-central1.run.localhost"), std::string::npos);
}

TEST(StateService, ParsesCommandServiceDocument) {
  auto spec = ParseServiceDoc(R"({"name":"projects/p/locations/r/services/s","template":{
      "containers":[{"command":["python3"],"args":["app.py"],"workingDir":"/tmp",
                     "env":[{"name":"A","value":"1"}]}]}})");
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_TRUE(spec->runs_command());
  EXPECT_EQ(spec->command, (std::vector<std::string>{"python3", "app.py"}));
  EXPECT_EQ(spec->env.size(), 1u);
  EXPECT_EQ(spec->working_dir, "/tmp");
}

TEST(StateService, RefusesAmbiguousOrEmptyTemplates) {
  EXPECT_FALSE(ParseServiceDoc(R"({"name":"projects/p/locations/r/services/s","template":{}})"));
  EXPECT_FALSE(ParseServiceDoc(R"({"name":"projects/p/locations/r/services/s","template":{
      "upstream":"http://x","containers":[{"command":["y"]}]}})"));
  EXPECT_FALSE(ParseServiceDoc(R"({"name":"bad","template":{"upstream":"http://x"}})"));
  EXPECT_FALSE(ParseServiceDoc(R"({"name":"projects/p/locations/r/services/s",
      "template":{"upstream":"http://x","timeout":"soon"}})"));
}

TEST(StateService, UrlsAndAudiencesFollowTheGatewayPort) {
  auto spec = *ParseServiceDoc(kService);
  auto urls = UrlsFor(spec, "http://127.0.0.1:8080");
  ASSERT_EQ(urls.size(), 1u);
  EXPECT_EQ(urls[0], "http://" + spec.host + ":8080");
  auto auds = AudiencesFor(spec, "http://127.0.0.1:8080");
  EXPECT_NE(std::find(auds.begin(), auds.end(), urls[0]), auds.end());
  EXPECT_NE(std::find(auds.begin(), auds.end(), urls[0] + "/"), auds.end());
  EXPECT_NE(std::find(auds.begin(), auds.end(), "https://api.example.com"), auds.end());
}

TEST(StateLive, FollowsCommitsAndGivesReadYourWrites) {
  store::MemoryStore store;
  LiveState live(store);
  ASSERT_TRUE(live.Start());
  EXPECT_EQ(live.Current()->services.size(), 0u);

  auto put = store.Put(store::Collection::kServices,
                       "projects/p/locations/us-central1/services/api", kService);
  ASSERT_TRUE(put);
  ASSERT_TRUE(live.WaitForRevision(put->revision, std::chrono::seconds(5)));
  auto view = live.Current();
  ASSERT_EQ(view->services.size(), 1u);
  EXPECT_NE(view->FindByHost(view->services[0].host), nullptr);

  // A policy granting an invoker is enforced once its revision is reached.
  auto policy = store.Put(store::Collection::kPolicies,
                          "projects/p/locations/us-central1/services/api",
                          R"({"bindings":[{"role":"roles/run.invoker",
                              "members":["user:alice@example.com"]}]})");
  ASSERT_TRUE(policy);
  ASSERT_TRUE(live.WaitForRevision(policy->revision, std::chrono::seconds(5)));
  view = live.Current();
  auto alice = view->iam->Resolve(iam::Principal::User("alice@example.com"));
  EXPECT_TRUE(view->iam
                  ->Check(alice, "projects/p/locations/us-central1/services/api",
                          "run.routes.invoke", SystemClock().Now())
                  .allowed);
  // Unrelated collections still advance the published revision.
  auto setting = store.Put(store::Collection::kSettings, "x", "{}");
  ASSERT_TRUE(setting);
  EXPECT_TRUE(live.WaitForRevision(setting->revision, std::chrono::seconds(5)));
  live.Stop();
}

TEST(StateLive, BrokenServiceDocumentsAreReportedNotServed) {
  store::MemoryStore store;
  ASSERT_TRUE(store.Put(store::Collection::kServices, "projects/p/locations/r/services/bad",
                        R"({"name":"projects/p/locations/r/services/bad","template":{}})"));
  LiveState live(store);
  ASSERT_TRUE(live.Start());
  EXPECT_EQ(live.Current()->services.size(), 0u);
  EXPECT_EQ(live.Current()->broken_services.size(), 1u);
}

}  // namespace
}  // namespace moat::state
