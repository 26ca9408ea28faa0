// Tests of the Cloud Run services, IAM policy, custom role, troubleshoot and audit handlers,
// called through the Router (no sockets) over a MemoryStore and a LiveState.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <thread>

#include "api/handler_util.h"
#include "api/routes.h"
#include "cli/context.h"
#include "common/json.h"
#include "common/time.h"
#include "identity/records.h"
#include "state/live_state.h"
#include "state/service.h"
#include "store/memory_store.h"

namespace moat::api {
namespace {

namespace bj = boost::json;
using store::Collection;

constexpr char kOwner[] = "user:owner@example.com";
constexpr char kEditor[] = "user:editor@example.com";
constexpr char kViewer[] = "user:viewer@example.com";
constexpr char kRunAdmin[] = "user:runadmin@example.com";
constexpr char kOutsider[] = "user:mallory@example.com";
constexpr char kRunner[] = "runner@p.iam.gserviceaccount.com";
constexpr char kBase[] = "/v2/projects/p/locations/us-central1/services";
constexpr char kHello[] = "/v2/projects/p/locations/us-central1/services/hello";
constexpr char kHelloName[] = "projects/p/locations/us-central1/services/hello";

struct Reply {
  int status = 0;
  bj::value body;
  int64_t revision = 0;
  const bj::object& obj() const { return body.as_object(); }
  std::string Str(std::string_view key) const {
    auto* v = body.as_object().if_contains(key);
    return v && v->is_string() ? std::string(v->as_string()) : std::string();
  }
  std::string ErrorStatus() const { return std::string(body.at("error").at("status").as_string()); }
  std::string ErrorMessage() const {
    return std::string(body.at("error").at("message").as_string());
  }
};

class ApiRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::make_unique<store::MemoryStore>(&clock_);
    PutPolicy("root",
              R"({"bindings":[{"role":"roles/owner","members":["user:owner@example.com"]}]})");
    PutPolicy("projects/p", R"({"bindings":[
        {"role":"roles/editor","members":["user:editor@example.com"]},
        {"role":"roles/viewer","members":["user:viewer@example.com"]},
        {"role":"roles/run.admin","members":["user:runadmin@example.com"]}]})");
    PutServiceAccount("runner", "111111111111111111111", false);
    PutServiceAccount("off", "222222222222222222222", true);
    live_ = std::make_unique<state::LiveState>(*store_);
    ASSERT_TRUE(live_->Start());
    env_.config.api_base = "http://127.0.0.1:8081";
    env_.config.gateway_base = "http://127.0.0.1:8080";
    env_.config.max_revision_wait = std::chrono::milliseconds(5000);
    env_.store = store_.get();
    env_.live = live_.get();
    env_.clock = &clock_;
    env_.authenticate = [](const http::Request& req) -> Result<Caller> {
      Caller c;
      std::string_view auth = req.headers.Get("Authorization");
      if (auth.empty()) return c;
      if (!auth.starts_with("Bearer ")) return Unauthenticated("bad credential");
      std::string member(auth.substr(7));
      if (member.starts_with("user:")) {
        c.principal = iam::Principal::User(member.substr(5));
      } else if (member.starts_with("serviceAccount:")) {
        c.principal = iam::Principal::ServiceAccount(member.substr(15));
      } else {
        return Unauthenticated("bad credential");
      }
      c.member = member;
      return c;
    };
    RegisterRunServiceRoutes(router_, env_);
    RegisterPolicyRoutes(router_, env_);
    RegisterRoleRoutes(router_, env_);
    RegisterTroubleshootRoutes(router_, env_);
    RegisterAuditRoutes(router_, env_);
  }
  void TearDown() override { live_->Stop(); }

  void PutPolicy(const std::string& key, const std::string& json) {
    ASSERT_TRUE(store_->Put(Collection::kPolicies, key, json));
  }
  void PutServiceAccount(const std::string& id, const std::string& unique_id, bool disabled) {
    identity::ServiceAccountRecord sa;
    sa.project_id = "p";
    sa.account_id = id;
    sa.email = id + "@p.iam.gserviceaccount.com";
    sa.unique_id = unique_id;
    sa.disabled = disabled;
    sa.create_time = clock_.Now();
    store::PutOptions o;
    o.parent = "projects/p";
    ASSERT_TRUE(store_->Put(Collection::kServiceAccounts, sa.Name(),
                            identity::ServiceAccountToDocument(sa), o));
  }

  Reply Call(const std::string& method, const std::string& target, const std::string& caller,
             const std::string& body = "") {
    http::Request req;
    req.method = method;
    req.target = target;
    size_t q = target.find('?');
    http::PercentDecode(std::string_view(target).substr(0, q), &req.path, false);
    if (q != std::string::npos) req.query = http::ParseQuery(target.substr(q + 1));
    if (!caller.empty()) req.headers.Add("Authorization", "Bearer " + caller);
    req.body = body;
    req.request_id = "req-" + std::to_string(++request_counter_);
    http::Response resp = router_.Dispatch(req);
    Reply r;
    r.status = resp.status;
    auto parsed = json::Parse(resp.body, "response");
    EXPECT_TRUE(parsed) << resp.body;
    if (parsed) r.body = *parsed;
    std::string_view rev = resp.headers.Get("X-Moat-Revision");
    if (!rev.empty()) {
      r.revision = std::stoll(std::string(rev));
      EXPECT_TRUE(live_->WaitForRevision(r.revision, std::chrono::seconds(5)));
    }
    return r;
  }

  static std::string ServiceBody(const std::string& extra = "") {
    return R"({"template":{"upstream":"http://127.0.0.1:9000")" + extra + "}}";
  }
  Reply CreateHello(const std::string& caller = kOwner, const std::string& body = ServiceBody()) {
    return Call("POST", std::string(kBase) + "?serviceId=hello", caller, body);
  }

  FakeClock clock_;
  std::unique_ptr<store::MemoryStore> store_;
  std::unique_ptr<state::LiveState> live_;
  Env env_;
  http::Router router_;
  std::atomic<int> request_counter_{0};
};

// --- services -----------------------------------------------------------------------------

TEST_F(ApiRunTest, CreateAnswersAnOperationAndStoresGooglesServiceJson) {
  Reply op =
      CreateHello(kOwner, ServiceBody(R"(,"serviceAccount":"runner@p.iam.gserviceaccount.com")"));
  ASSERT_EQ(op.status, 200) << bj::serialize(op.body);
  EXPECT_GT(op.revision, 0);
  std::string op_name = op.Str("name");
  EXPECT_TRUE(op_name.starts_with("projects/p/locations/us-central1/operations/")) << op_name;
  EXPECT_EQ(op.obj().at("done"), bj::value(true));
  EXPECT_EQ(op.obj().at("metadata").at("@type"), "type.googleapis.com/google.cloud.run.v2.Service");
  EXPECT_EQ(op.obj().at("response").at("@type"), "type.googleapis.com/google.cloud.run.v2.Service");
  EXPECT_EQ(op.obj().at("response").at("name"), kHelloName);

  Reply svc = Call("GET", kHello, kOwner);
  ASSERT_EQ(svc.status, 200);
  const auto& s = svc.obj();
  EXPECT_EQ(s.at("name"), kHelloName);
  EXPECT_EQ(s.at("generation"), "1");  // int64 as a JSON string
  EXPECT_EQ(s.at("observedGeneration"), "1");
  EXPECT_EQ(s.at("uid").as_string().size(), 36u);
  EXPECT_EQ(s.at("creator"), "owner@example.com");
  EXPECT_EQ(s.at("lastModifier"), "owner@example.com");
  EXPECT_EQ(s.at("createTime"), bj::value(FormatRfc3339(clock_.Now())));
  EXPECT_EQ(s.at("reconciling"), bj::value(false));
  EXPECT_EQ(s.at("terminalCondition").at("type"), "Ready");
  EXPECT_EQ(s.at("terminalCondition").at("state"), "CONDITION_SUCCEEDED");
  std::string url = "http://" + state::HostFor("p", "us-central1", "hello") + ":8080";
  EXPECT_EQ(s.at("uri"), bj::value(url));
  EXPECT_EQ(s.at("urls"), bj::array({bj::value(url)}));
  EXPECT_TRUE(std::string(s.at("latestReadyRevision").as_string())
                  .starts_with(std::string(kHelloName) + "/revisions/hello-00001-"));
  auto doc = store_->Get(Collection::kServices, kHelloName);
  ASSERT_TRUE(doc && *doc);
  EXPECT_EQ(s.at("etag"), bj::value((*doc)->etag));
  EXPECT_EQ(s.at("template").at("serviceAccount"), kRunner);
  // The project is recorded on first use; the operation can be read back.
  auto project = store_->Get(Collection::kProjects, "projects/p");
  ASSERT_TRUE(project && *project);
  Reply got_op = Call("GET", "/v2/" + op_name, kViewer);
  ASSERT_EQ(got_op.status, 200);
  EXPECT_EQ(got_op.body, op.body);
  EXPECT_EQ(Call("GET", "/v2/projects/p/locations/us-central1/operations/nope", kOwner).status,
            404);
  // The View serves it.
  ASSERT_NE(live_->Current()->FindByName(kHelloName), nullptr);
}

TEST_F(ApiRunTest, UrlsFollowTheGatewayBase) {
  ASSERT_EQ(CreateHello().status, 200);
  env_.config.gateway_base = "http://127.0.0.1:9090";
  Reply svc = Call("GET", kHello, kOwner);
  EXPECT_EQ(svc.obj().at("uri"),
            bj::value("http://" + state::HostFor("p", "us-central1", "hello") + ":9090"));
}

TEST_F(ApiRunTest, CreateRejectsInvalidInput) {
  for (const char* id :
       {"1abc", "abc-", "ABC", "a_b", "a1234567890123456789012345678901234567890123456789"}) {
    Reply r = Call("POST", std::string(kBase) + "?serviceId=" + id, kOwner, ServiceBody());
    EXPECT_EQ(r.status, 400) << id;
  }
  // 49 characters is fine.
  EXPECT_EQ(Call("POST", std::string(kBase) + "?serviceId=a" + std::string(48, 'b'), kOwner,
                 ServiceBody())
                .status,
            200);
  EXPECT_EQ(Call("POST", kBase, kOwner, ServiceBody()).status, 400);  // no serviceId
  EXPECT_EQ(CreateHello(kOwner, "{}").status, 400);                   // no template
  Reply both = CreateHello(
      kOwner, R"({"template":{"upstream":"http://x:1","containers":[{"command":["x"]}]}})");
  EXPECT_EQ(both.status, 400);
  EXPECT_NE(both.ErrorMessage().find("exactly one"), std::string::npos);
  Reply unknown = CreateHello(kOwner, R"({"bogus":1,"template":{"upstream":"http://x:1"}})");
  EXPECT_EQ(unknown.status, 400);
  EXPECT_NE(unknown.ErrorMessage().find("Unknown name \"bogus\""), std::string::npos);
  EXPECT_EQ(CreateHello(kOwner, R"({"template":{"upstream":"ftp://x"}})").status, 400);
  EXPECT_EQ(CreateHello(kOwner, ServiceBody() + "").status, 200);
  Reply again = CreateHello();
  EXPECT_EQ(again.status, 409);
  EXPECT_EQ(again.ErrorStatus(), "ALREADY_EXISTS");
}

TEST_F(ApiRunTest, ValidateOnlyWritesNothing) {
  Reply r = Call("POST", std::string(kBase) + "?serviceId=hello&validateOnly=true", kOwner,
                 ServiceBody());
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.revision, 0);
  EXPECT_EQ(Call("GET", kHello, kOwner).status, 404);
}

TEST_F(ApiRunTest, CreatePermissionsFollowGoogle) {
  std::string sa = R"(,"serviceAccount":"runner@p.iam.gserviceaccount.com")";
  EXPECT_EQ(CreateHello("").status, 401);
  Reply viewer = CreateHello(kViewer);
  EXPECT_EQ(viewer.status, 403);
  EXPECT_EQ(viewer.ErrorMessage(), "Permission 'run.services.create' denied on resource '" +
                                       std::string(kHelloName) + "' (or it may not exist).");
  // run.admin lacks iam.serviceAccounts.actAs; Editor has it.
  Reply admin = CreateHello(kRunAdmin, ServiceBody(sa));
  EXPECT_EQ(admin.status, 403);
  EXPECT_NE(admin.ErrorMessage().find("iam.serviceAccounts.actAs"), std::string::npos);
  EXPECT_EQ(CreateHello(kEditor, ServiceBody(sa)).status, 200);
  // A disabled or missing account is refused.
  EXPECT_EQ(Call("POST", std::string(kBase) + "?serviceId=two", kOwner,
                 ServiceBody(R"(,"serviceAccount":"off@p.iam.gserviceaccount.com")"))
                .status,
            400);
  EXPECT_EQ(Call("POST", std::string(kBase) + "?serviceId=three", kOwner,
                 ServiceBody(R"(,"serviceAccount":"ghost@p.iam.gserviceaccount.com")"))
                .status,
            400);
  // invokerIamDisabled needs run.services.setIamPolicy: Editor lacks it, run.admin has it.
  std::string open = R"({"invokerIamDisabled":true,"template":{"upstream":"http://x:1"}})";
  EXPECT_EQ(Call("POST", std::string(kBase) + "?serviceId=pub", kEditor, open).status, 403);
  EXPECT_EQ(Call("POST", std::string(kBase) + "?serviceId=pub", kRunAdmin, open).status, 200);
}

TEST_F(ApiRunTest, ListPagesWithNextPageToken) {
  for (const char* id : {"a-svc", "b-svc", "c-svc"}) {
    ASSERT_EQ(Call("POST", std::string(kBase) + "?serviceId=" + id, kOwner, ServiceBody()).status,
              200);
  }
  Reply p1 = Call("GET", std::string(kBase) + "?pageSize=2", kViewer);
  ASSERT_EQ(p1.status, 200);
  ASSERT_EQ(p1.obj().at("services").as_array().size(), 2u);
  EXPECT_EQ(p1.obj().at("services").at(0).at("name"),
            "projects/p/locations/us-central1/services/a-svc");
  EXPECT_EQ(p1.obj().at("services").at(0).at("generation"), "1");
  std::string token = p1.Str("nextPageToken");
  ASSERT_FALSE(token.empty());
  Reply p2 = Call("GET", std::string(kBase) + "?pageSize=2&pageToken=" + token, kViewer);
  ASSERT_EQ(p2.status, 200);
  ASSERT_EQ(p2.obj().at("services").as_array().size(), 1u);
  EXPECT_FALSE(p2.obj().contains("nextPageToken"));
  EXPECT_EQ(Call("GET", "/v2/projects/p/locations/-/services", kOwner).status, 400);
  EXPECT_EQ(Call("GET", kBase, kOutsider).status, 403);
  EXPECT_EQ(Call("GET", "/v2/projects/p/locations/europe-west1/services", kOwner).body,
            bj::value(bj::object()));
}

TEST_F(ApiRunTest, PatchWithUpdateMaskKeepsUidAndBumpsGeneration) {
  ASSERT_EQ(CreateHello().status, 200);
  Reply before = Call("GET", kHello, kOwner);
  Reply op = Call("PATCH", std::string(kHello) + "?updateMask=description,labels", kEditor,
                  R"({"description":"hi","labels":{"team":"a"},"ingress":"INGRESS_TRAFFIC_NONE"})");
  ASSERT_EQ(op.status, 200) << bj::serialize(op.body);
  EXPECT_EQ(op.obj().at("response").at("generation"), "2");
  Reply after = Call("GET", kHello, kOwner);
  EXPECT_EQ(after.obj().at("uid"), before.obj().at("uid"));
  EXPECT_EQ(after.obj().at("generation"), "2");
  EXPECT_EQ(after.obj().at("description"), "hi");
  EXPECT_EQ(after.obj().at("labels").at("team"), "a");
  EXPECT_FALSE(after.obj().contains("ingress"));  // not in the mask
  EXPECT_EQ(after.obj().at("template"), before.obj().at("template"));
  EXPECT_EQ(after.obj().at("creator"), "owner@example.com");
  EXPECT_EQ(after.obj().at("lastModifier"), "editor@example.com");
  EXPECT_NE(after.Str("etag"), before.Str("etag"));
  EXPECT_TRUE(std::string(after.obj().at("latestReadyRevision").as_string())
                  .find("/revisions/hello-00002-") != std::string::npos);

  // A stale etag in the body is refused; a bad mask path too.
  Reply stale = Call("PATCH", std::string(kHello) + "?updateMask=description", kOwner,
                     R"({"description":"x","etag":")" + before.Str("etag") + R"("})");
  EXPECT_EQ(stale.status, 409);
  EXPECT_EQ(stale.ErrorStatus(), "ABORTED");
  EXPECT_EQ(Call("PATCH", std::string(kHello) + "?updateMask=uid", kOwner, "{}").status, 400);
  // Full replacement without a mask; changing the runtime identity needs actAs.
  Reply admin = Call("PATCH", kHello, kRunAdmin,
                     ServiceBody(R"(,"serviceAccount":"runner@p.iam.gserviceaccount.com")"));
  EXPECT_EQ(admin.status, 403);
  Reply full = Call("PATCH", kHello, kOwner,
                    R"({"template":{"containers":[{"command":["/bin/app"],"args":["-v"]}]}})");
  ASSERT_EQ(full.status, 200);
  EXPECT_FALSE(full.obj().at("response").as_object().contains("description"));
  EXPECT_EQ(Call("PATCH", kHello, kViewer, ServiceBody()).status, 403);
}

TEST_F(ApiRunTest, PatchMissingIsNotFoundUnlessAllowMissing) {
  EXPECT_EQ(Call("PATCH", kHello, kOwner, ServiceBody()).status, 404);
  EXPECT_EQ(Call("PATCH", kHello, kViewer, ServiceBody()).status, 403);
  Reply created = Call("PATCH", std::string(kHello) + "?allowMissing=true", kOwner, ServiceBody());
  ASSERT_EQ(created.status, 200);
  EXPECT_EQ(created.obj().at("response").at("generation"), "1");
  EXPECT_EQ(Call("GET", kHello, kOwner).status, 200);
}

TEST_F(ApiRunTest, DeleteHonoursEtagAndDropsThePolicy) {
  ASSERT_EQ(CreateHello().status, 200);
  ASSERT_EQ(Call("POST", std::string(kHello) + ":addIamPolicyBinding", kOwner,
                 R"({"member":"allUsers","role":"roles/run.invoker"})")
                .status,
            200);
  EXPECT_EQ(Call("DELETE", kHello, kViewer).status, 403);
  Reply stale = Call("DELETE", std::string(kHello) + "?etag=AAAAAAAAAAE=", kOwner);
  EXPECT_EQ(stale.status, 409);
  std::string etag = Call("GET", kHello, kOwner).Str("etag");
  // Etags are base64: escaped as a client does ('+' would read as a space; unescaped, this
  // test failed whenever the etag had one).
  Reply op = Call("DELETE", std::string(kHello) + "?etag=" + cli::Escape(etag), kOwner);
  ASSERT_EQ(op.status, 200);
  EXPECT_EQ(op.obj().at("response").at("name"), kHelloName);
  EXPECT_TRUE(op.obj().at("response").as_object().contains("deleteTime"));
  EXPECT_EQ(Call("GET", kHello, kOwner).status, 404);
  EXPECT_EQ(Call("DELETE", kHello, kOwner).status, 404);
  ASSERT_EQ(CreateHello().status, 200);
  Reply policy = Call("GET", std::string(kHello) + ":getIamPolicy", kOwner);
  EXPECT_EQ(policy.body, bj::parse(R"({"etag":"ACAB"})"));
}

// --- IAM policies -------------------------------------------------------------------------

TEST_F(ApiRunTest, EmptyPolicyThenSetWithEtagsLikeGoogle) {
  ASSERT_EQ(CreateHello().status, 200);
  std::string get = std::string(kHello) + ":getIamPolicy";
  std::string set = std::string(kHello) + ":setIamPolicy";
  Reply empty = Call("GET", get, kViewer);
  ASSERT_EQ(empty.status, 200);
  EXPECT_EQ(empty.body, bj::parse(R"({"etag":"ACAB"})"));

  std::string policy =
      R"({"policy":{"bindings":[{"role":"roles/run.invoker","members":["user:bob@example.com"]}],"etag":"ACAB"}})";
  Reply first = Call("POST", set, kOwner, policy);
  ASSERT_EQ(first.status, 200) << bj::serialize(first.body);
  EXPECT_EQ(first.obj().at("version"), 1);
  std::string etag = first.Str("etag");
  EXPECT_NE(etag, "ACAB");
  EXPECT_EQ(Call("GET", get, kViewer).body, first.body);

  // The same (now stale) etag again: 409 ABORTED with Google's message.
  Reply stale = Call("POST", set, kOwner, policy);
  EXPECT_EQ(stale.status, 409);
  EXPECT_EQ(stale.ErrorStatus(), "ABORTED");
  EXPECT_EQ(stale.ErrorMessage(), std::string(store::kConcurrentPolicyChangeMessage));

  // No etag: blind overwrite.
  Reply blind =
      Call("POST", set, kOwner,
           R"({"policy":{"bindings":[{"role":"roles/run.invoker","members":["allUsers"]}]}})");
  ASSERT_EQ(blind.status, 200);
  EXPECT_EQ(blind.obj().at("bindings").at(0).at("members").at(0), "allUsers");
  EXPECT_EQ(blind.obj().at("bindings").as_array().size(), 1u);

  // Errors: invalid role, unknown field, bad mask.
  EXPECT_EQ(Call("POST", set, kOwner,
                 R"({"policy":{"bindings":[{"role":"roles/nope","members":["allUsers"]}]}})")
                .status,
            400);
  EXPECT_EQ(Call("POST", set, kOwner, R"({"policy":{},"bogus":1})").status, 400);
  EXPECT_EQ(Call("POST", set, kOwner, R"({"policy":{},"updateMask":"owners"})").status, 400);
  EXPECT_EQ(Call("POST", set, kOwner, R"({})").status, 400);
}

TEST_F(ApiRunTest, OnlyOwnersAndRunAdminsSetPolicies) {
  ASSERT_EQ(CreateHello().status, 200);
  std::string set = std::string(kHello) + ":setIamPolicy";
  std::string pub =
      R"({"policy":{"bindings":[{"role":"roles/run.invoker","members":["allUsers"]}]}})";
  Reply editor = Call("POST", set, kEditor, pub);
  EXPECT_EQ(editor.status, 403);
  EXPECT_EQ(editor.ErrorMessage(), "Permission 'run.services.setIamPolicy' denied on resource '" +
                                       std::string(kHelloName) + "' (or it may not exist).");
  EXPECT_EQ(Call("POST", std::string(kHello) + ":addIamPolicyBinding", kEditor,
                 R"({"member":"allUsers","role":"roles/run.invoker"})")
                .status,
            403);
  EXPECT_EQ(Call("POST", set, kRunAdmin, pub).status, 200);
  EXPECT_EQ(Call("POST", set, kOwner, pub).status, 200);
  EXPECT_EQ(Call("GET", std::string(kHello) + ":getIamPolicy", kViewer).status, 200);
  EXPECT_EQ(Call("GET", std::string(kHello) + ":getIamPolicy", kOutsider).status, 403);
  EXPECT_EQ(Call("GET", std::string(kHello) + ":getIamPolicy", "").status, 401);
  // The v1 alias reads the same policy.
  EXPECT_EQ(
      Call("GET", "/v1/projects/p/locations/us-central1/services/hello:getIamPolicy", kViewer).body,
      Call("GET", std::string(kHello) + ":getIamPolicy", kViewer).body);
  // A missing service: NOT_FOUND for who may read it, PERMISSION_DENIED otherwise.
  EXPECT_EQ(Call("GET", std::string(kBase) + "/ghost:getIamPolicy", kOwner).status, 404);
  EXPECT_EQ(Call("GET", std::string(kBase) + "/ghost:getIamPolicy", kOutsider).status, 403);
  EXPECT_EQ(Call("POST", std::string(kBase) + "/ghost:setIamPolicy", kOwner, pub).status, 404);
}

TEST_F(ApiRunTest, RequestedPolicyVersionWithConditions) {
  ASSERT_EQ(CreateHello().status, 200);
  std::string cond_policy = R"J({"policy":{"version":3,"bindings":[{"role":"roles/run.invoker",
      "members":["user:bob@example.com"],"condition":{"title":"until 2030",
      "expression":"request.time < timestamp('2030-01-01T00:00:00Z')"}}]}})J";
  // Conditions need version 3.
  std::string v1 = cond_policy;
  v1.replace(v1.find("\"version\":3"), 11, "\"version\":1");
  EXPECT_EQ(Call("POST", std::string(kHello) + ":setIamPolicy", kOwner, v1).status, 400);
  Reply set = Call("POST", std::string(kHello) + ":setIamPolicy", kOwner, cond_policy);
  ASSERT_EQ(set.status, 200) << bj::serialize(set.body);
  EXPECT_EQ(set.obj().at("version"), 3);
  Reply low = Call("GET", std::string(kHello) + ":getIamPolicy", kOwner);
  EXPECT_EQ(low.status, 400);
  EXPECT_NE(low.ErrorMessage().find("cannot be less than"), std::string::npos);
  Reply v3 =
      Call("GET", std::string(kHello) + ":getIamPolicy?options.requestedPolicyVersion=3", kOwner);
  ASSERT_EQ(v3.status, 200);
  EXPECT_EQ(v3.obj().at("version"), 3);
  EXPECT_EQ(v3.obj().at("bindings").at(0).at("condition").at("title"), "until 2030");
  EXPECT_EQ(
      Call("GET", std::string(kHello) + ":getIamPolicy?options.requestedPolicyVersion=2", kOwner)
          .status,
      400);
}

TEST_F(ApiRunTest, TestIamPermissionsReturnsTheHeldSubset) {
  ASSERT_EQ(CreateHello().status, 200);
  std::string test = std::string(kHello) + ":testIamPermissions";
  std::string perms =
      R"({"permissions":["run.services.get","run.services.setIamPolicy","run.routes.invoke"]})";
  Reply admin = Call("POST", test, kRunAdmin, perms);
  ASSERT_EQ(admin.status, 200);
  EXPECT_EQ(admin.obj().at("permissions").as_array().size(), 3u);
  Reply viewer = Call("POST", test, kViewer, perms);
  EXPECT_EQ(viewer.obj().at("permissions"), bj::array({bj::value("run.services.get")}));
  EXPECT_EQ(Call("POST", test, kOutsider, perms).body, bj::value(bj::object()));
  EXPECT_EQ(Call("POST", test, kOwner, R"({"permissions":["run.*"]})").status, 400);
  // A missing resource answers the empty set.
  EXPECT_EQ(Call("POST", std::string(kBase) + "/ghost:testIamPermissions", kOwner, perms).body,
            bj::value(bj::object()));
}

TEST_F(ApiRunTest, ProjectLevelGrantLetsAUserReadAService) {
  ASSERT_EQ(CreateHello().status, 200);
  EXPECT_EQ(Call("GET", kHello, "user:bob@example.com").status, 403);
  Reply add = Call("POST", "/v1/projects/p:addIamPolicyBinding", kOwner,
                   R"({"member":"user:bob@example.com","role":"roles/run.viewer"})");
  ASSERT_EQ(add.status, 200) << bj::serialize(add.body);
  EXPECT_GT(add.revision, 0);
  EXPECT_EQ(Call("GET", kHello, "user:bob@example.com").status, 200);
  // The project policy reads back through Resource Manager v1 and v3.
  Reply v1 = Call("POST", "/v1/projects/p:getIamPolicy", kViewer,
                  R"({"options":{"requestedPolicyVersion":3}})");
  ASSERT_EQ(v1.status, 200);
  EXPECT_EQ(v1.body, add.obj().at("policy"));
  EXPECT_EQ(Call("POST", "/v3/projects/p:getIamPolicy", kViewer, "").body, v1.body);
  // Editor cannot set a project policy; remove works and is atomic too.
  EXPECT_EQ(Call("POST", "/v1/projects/p:removeIamPolicyBinding", kEditor,
                 R"({"member":"user:bob@example.com","role":"roles/run.viewer"})")
                .status,
            403);
  ASSERT_EQ(Call("POST", "/v1/projects/p:removeIamPolicyBinding", kOwner,
                 R"({"member":"user:bob@example.com","role":"roles/run.viewer"})")
                .status,
            200);
  EXPECT_EQ(Call("GET", kHello, "user:bob@example.com").status, 403);
  Reply missing = Call("POST", "/v1/projects/p:removeIamPolicyBinding", kOwner,
                       R"({"member":"user:bob@example.com","role":"roles/run.viewer"})");
  EXPECT_EQ(missing.status, 404);
}

TEST_F(ApiRunTest, ConcurrentAddIamPolicyBindingNeverConflicts) {
  ASSERT_EQ(CreateHello().status, 200);
  constexpr int kThreads = 20;
  std::vector<int> statuses(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      statuses[i] = Call("POST", std::string(kHello) + ":addIamPolicyBinding", kOwner,
                         R"({"member":"user:u)" + std::to_string(i) +
                             R"(@example.com","role":"roles/run.invoker"})")
                        .status;
    });
  }
  for (auto& t : threads) t.join();
  for (int s : statuses) EXPECT_EQ(s, 200);
  Reply policy = Call("GET", std::string(kHello) + ":getIamPolicy", kOwner);
  ASSERT_EQ(policy.obj().at("bindings").as_array().size(), 1u);
  EXPECT_EQ(policy.obj().at("bindings").at(0).at("members").as_array().size(), kThreads + 0u);
}

TEST_F(ApiRunTest, AddIamPolicyBindingWithConditionAndValidation) {
  ASSERT_EQ(CreateHello().status, 200);
  std::string add = std::string(kHello) + ":addIamPolicyBinding";
  Reply r = Call("POST", add, kOwner,
                 R"J({"member":"user:bob@example.com","role":"roles/run.invoker",
                     "condition":{"title":"t","expression":"request.time < timestamp('2030-01-01T00:00:00Z')"}})J");
  ASSERT_EQ(r.status, 200) << bj::serialize(r.body);
  EXPECT_EQ(r.obj().at("policy").at("version"), 3);
  EXPECT_EQ(r.obj().at("policy").at("bindings").at(0).at("condition").at("title"), "t");
  EXPECT_EQ(Call("POST", add, kOwner, R"({"member":"bob","role":"roles/run.invoker"})").status,
            400);
  EXPECT_EQ(Call("POST", add, kOwner, R"({"member":"allUsers","role":"roles/nope"})").status, 400);
  EXPECT_EQ(Call("POST", add, kOwner, R"({"role":"roles/run.invoker"})").status, 400);
  // Adding an existing member writes nothing and keeps the etag.
  Reply once = Call("POST", add, kOwner, R"({"member":"allUsers","role":"roles/run.invoker"})");
  Reply twice = Call("POST", add, kOwner, R"({"member":"allUsers","role":"roles/run.invoker"})");
  EXPECT_EQ(once.obj().at("policy"), twice.obj().at("policy"));
}

TEST_F(ApiRunTest, RootAndServiceAccountPolicies) {
  Reply root = Call("POST", "/moat/v1/root:getIamPolicy", kOwner, "{}");
  ASSERT_EQ(root.status, 200);
  EXPECT_EQ(root.obj().at("bindings").at(0).at("role"), "roles/owner");
  EXPECT_EQ(Call("POST", "/moat/v1/root:getIamPolicy", kEditor, "{}").status, 403);
  Reply add = Call("POST", "/moat/v1/root:addIamPolicyBinding", kOwner,
                   R"({"member":"user:sec@example.com","role":"roles/iam.securityReviewer"})");
  ASSERT_EQ(add.status, 200);
  EXPECT_EQ(Call("POST", "/moat/v1/root:getIamPolicy", "user:sec@example.com", "{}").status, 200);

  std::string by_email = "/v1/projects/p/serviceAccounts/runner@p.iam.gserviceaccount.com";
  std::string by_id = "/v1/projects/-/serviceAccounts/111111111111111111111";
  EXPECT_EQ(Call("POST", by_email + ":getIamPolicy", kOwner, "").body,
            bj::parse(R"({"etag":"ACAB"})"));
  Reply set = Call("POST", by_id + ":addIamPolicyBinding", kOwner,
                   R"({"member":"user:bob@example.com","role":"roles/iam.serviceAccountUser"})");
  ASSERT_EQ(set.status, 200) << bj::serialize(set.body);
  EXPECT_EQ(Call("POST", by_email + ":getIamPolicy", kViewer, "").body, set.obj().at("policy"));
  EXPECT_EQ(Call("POST", by_email + ":setIamPolicy", kEditor, R"({"policy":{}})").status, 403);
  // Bob can now act as the account: he may deploy it as a runtime identity.
  Reply test = Call("POST", by_email + ":testIamPermissions", "user:bob@example.com",
                    R"({"permissions":["iam.serviceAccounts.actAs"]})");
  EXPECT_EQ(test.obj().at("permissions").as_array().size(), 1u);
  EXPECT_EQ(
      Call("POST", "/v1/projects/p/serviceAccounts/ghost@p.iam.gserviceaccount.com:getIamPolicy",
           kOwner, "")
          .status,
      404);
  EXPECT_EQ(
      Call("POST", "/v1/projects/-/serviceAccounts/ghost@p.iam.gserviceaccount.com:getIamPolicy",
           kOwner, "")
          .status,
      403);
}

// --- roles --------------------------------------------------------------------------------

TEST_F(ApiRunTest, PredefinedRoles) {
  Reply invoker = Call("GET", "/v1/roles/run.invoker", kOutsider);
  ASSERT_EQ(invoker.status, 200);
  EXPECT_EQ(invoker.obj().at("name"), "roles/run.invoker");
  EXPECT_EQ(invoker.obj().at("title"), "Cloud Run Invoker");
  EXPECT_EQ(invoker.obj().at("includedPermissions"),
            bj::parse(R"(["run.instances.invoke","run.jobs.run","run.routes.invoke"])"));
  EXPECT_EQ(Call("GET", "/v1/roles/nope", kOutsider).status, 404);
  EXPECT_EQ(Call("GET", "/v1/roles/run.invoker", "").status, 401);
  Reply basic = Call("GET", "/v1/roles?pageSize=3", kOutsider);
  ASSERT_EQ(basic.obj().at("roles").as_array().size(), 3u);
  EXPECT_FALSE(basic.obj().at("roles").at(0).as_object().contains("includedPermissions"));
  EXPECT_EQ(basic.Str("nextPageToken"), "3");
  Reply full = Call("GET", "/v1/roles?view=FULL&pageSize=1", kOutsider);
  EXPECT_TRUE(full.obj().at("roles").at(0).as_object().contains("includedPermissions"));
  EXPECT_EQ(Call("GET", "/v1/roles?pageToken=zz", kOutsider).status, 400);
}

TEST_F(ApiRunTest, CustomRoleLifecycleAndUseInAPolicy) {
  ASSERT_EQ(CreateHello().status, 200);
  std::string body = R"({"roleId":"svcReader","role":{"title":"Service reader",
      "description":"reads services","includedPermissions":["run.services.list","run.services.get"]}})";
  EXPECT_EQ(Call("POST", "/v1/projects/p/roles", kEditor, body).status, 403);
  Reply created = Call("POST", "/v1/projects/p/roles", kOwner, body);
  ASSERT_EQ(created.status, 200) << bj::serialize(created.body);
  EXPECT_EQ(created.obj().at("name"), "projects/p/roles/svcReader");
  EXPECT_EQ(created.obj().at("stage"), "GA");
  EXPECT_EQ(created.obj().at("includedPermissions"),
            bj::parse(R"(["run.services.get","run.services.list"])"));
  EXPECT_FALSE(created.Str("etag").empty());
  EXPECT_EQ(Call("POST", "/v1/projects/p/roles", kOwner, body).status, 409);
  EXPECT_EQ(Call("POST", "/v1/projects/p/roles", kOwner,
                 R"({"roleId":"bad","role":{"includedPermissions":["run.*"]}})")
                .status,
            400);
  EXPECT_EQ(Call("POST", "/v1/projects/p/roles", kOwner,
                 R"({"roleId":"x","role":{"includedPermissions":["run.services.get"]}})")
                .status,
            400);

  // Use it in a service policy.
  Reply add = Call("POST", std::string(kHello) + ":addIamPolicyBinding", kOwner,
                   R"({"member":"user:carol@example.com","role":"projects/p/roles/svcReader"})");
  ASSERT_EQ(add.status, 200) << bj::serialize(add.body);
  EXPECT_EQ(Call("GET", kHello, "user:carol@example.com").status, 200);

  // Update, list, delete (stops granting), undelete.
  Reply patched = Call("PATCH", "/v1/projects/p/roles/svcReader?updateMask=title", kOwner,
                       R"({"title":"Reader"})");
  ASSERT_EQ(patched.status, 200);
  EXPECT_EQ(patched.obj().at("title"), "Reader");
  EXPECT_EQ(patched.obj().at("description"), "reads services");
  EXPECT_EQ(Call("PATCH", "/v1/projects/p/roles/svcReader", kOwner,
                 R"({"title":"x","etag":")" + created.Str("etag") + R"("})")
                .status,
            409);
  Reply list = Call("GET", "/v1/projects/p/roles", kViewer);
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(list.obj().at("roles").as_array().size(), 1u);
  Reply deleted = Call("DELETE", "/v1/projects/p/roles/svcReader", kOwner);
  ASSERT_EQ(deleted.status, 200);
  EXPECT_EQ(deleted.obj().at("deleted"), bj::value(true));
  EXPECT_EQ(Call("GET", kHello, "user:carol@example.com").status, 403);
  EXPECT_EQ(Call("GET", "/v1/projects/p/roles/svcReader", kViewer).obj().at("deleted"),
            bj::value(true));
  EXPECT_FALSE(Call("GET", "/v1/projects/p/roles", kViewer).obj().contains("roles"));
  EXPECT_EQ(Call("GET", "/v1/projects/p/roles?showDeleted=true", kViewer)
                .obj()
                .at("roles")
                .as_array()
                .size(),
            1u);
  EXPECT_EQ(Call("POST", "/v1/projects/p/roles", kOwner, body).status, 409);
  ASSERT_EQ(Call("POST", "/v1/projects/p/roles/svcReader:undelete", kOwner, "{}").status, 200);
  EXPECT_EQ(Call("GET", kHello, "user:carol@example.com").status, 200);
  EXPECT_EQ(Call("GET", "/v1/projects/p/roles/ghost", kOwner).status, 404);
}

// --- troubleshoot and audit ---------------------------------------------------------------

TEST_F(ApiRunTest, TroubleshootExplainsTheDecision) {
  ASSERT_EQ(CreateHello().status, 200);
  ASSERT_EQ(Call("POST", std::string(kHello) + ":addIamPolicyBinding", kOwner,
                 R"({"member":"user:bob@example.com","role":"roles/run.invoker"})")
                .status,
            200);
  std::string granted = R"({"principal":"user:bob@example.com","resource":"//run.googleapis.com/)" +
                        std::string(kHelloName) + R"(","permission":"run.routes.invoke"})";
  Reply g = Call("POST", "/moat/v1/iam:troubleshoot", kViewer, granted);
  ASSERT_EQ(g.status, 200) << bj::serialize(g.body);
  EXPECT_EQ(g.obj().at("access"), "GRANTED");
  EXPECT_EQ(g.obj().at("decision").at("grantedBy").at("role"), "roles/run.invoker");
  EXPECT_EQ(g.obj().at("resource"), kHelloName);

  std::string denied = R"({"principal":"user:viewer@example.com","resource":")" +
                       std::string(kHelloName) + R"(","permission":"run.routes.invoke"})";
  Reply d = Call("POST", "/moat/v1/iam:troubleshoot", kViewer, denied);
  ASSERT_EQ(d.status, 200);
  EXPECT_EQ(d.obj().at("access"), "NOT_GRANTED");
  ASSERT_TRUE(d.obj().at("decision").as_object().contains("closest"));
  EXPECT_FALSE(std::string(d.obj().at("decision").at("explanation").as_string()).empty());

  EXPECT_EQ(Call("POST", "/moat/v1/iam:troubleshoot", kOutsider, denied).status, 403);
  EXPECT_EQ(Call("POST", "/moat/v1/iam:troubleshoot", kViewer,
                 R"({"principal":"bob","resource":"projects/p","permission":"run.routes.invoke"})")
                .status,
            400);
  EXPECT_EQ(Call("POST", "/moat/v1/iam:troubleshoot", kViewer,
                 R"({"principal":"user:a@b.c","resource":"projects/p","permission":"run.*"})")
                .status,
            400);
}

TEST_F(ApiRunTest, AuditLogRecordsBindingDeltas) {
  ASSERT_EQ(CreateHello().status, 200);
  ASSERT_EQ(
      Call(
          "POST", std::string(kHello) + ":setIamPolicy", kOwner,
          R"({"policy":{"bindings":[{"role":"roles/run.invoker","members":["user:bob@example.com"]}]}})")
          .status,
      200);
  ASSERT_EQ(Call("POST", std::string(kHello) + ":setIamPolicy", kOwner,
                 R"({"policy":{"bindings":[{"role":"roles/run.invoker","members":["allUsers"]}]}})")
                .status,
            200);
  Reply logs = Call(
      "GET", std::string("/moat/v1/auditLogs?kind=ADMIN_ACTIVITY&resource=") + kHelloName, kOwner);
  ASSERT_EQ(logs.status, 200) << bj::serialize(logs.body);
  const auto& entries = logs.obj().at("entries").as_array();
  ASSERT_EQ(entries.size(), 3u);  // newest first: set, set, create
  const auto& last = entries.at(0).as_object();
  EXPECT_EQ(last.at("method"), "google.cloud.run.v2.Services.SetIamPolicy");
  EXPECT_EQ(last.at("principal"), kOwner);
  EXPECT_EQ(last.at("kind"), "ADMIN_ACTIVITY");
  EXPECT_EQ(last.at("status"), "OK");
  EXPECT_FALSE(std::string(last.at("requestId").as_string()).empty());
  EXPECT_EQ(
      last.at("details").at("bindingDeltas"),
      bj::parse(R"([{"action":"REMOVE","role":"roles/run.invoker","member":"user:bob@example.com"},
                          {"action":"ADD","role":"roles/run.invoker","member":"allUsers"}])"));
  EXPECT_EQ(entries.at(2).at("method"), "google.cloud.run.v2.Services.CreateService");

  Reply paged = Call("GET", "/moat/v1/auditLogs?pageSize=1&resourcePrefix=projects/p", kOwner);
  ASSERT_EQ(paged.obj().at("entries").as_array().size(), 1u);
  Reply next = Call("GET",
                    "/moat/v1/auditLogs?pageSize=1&resourcePrefix=projects/p&pageToken=" +
                        paged.Str("nextPageToken"),
                    kOwner);
  ASSERT_EQ(next.status, 200);
  EXPECT_NE(next.obj().at("entries").at(0).at("id"), paged.obj().at("entries").at(0).at("id"));
  EXPECT_EQ(Call("GET", "/moat/v1/auditLogs", kOutsider).status, 403);
  EXPECT_EQ(Call("GET", "/moat/v1/auditLogs?kind=OTHER", kOwner).status, 400);
  EXPECT_EQ(Call("GET", "/moat/v1/auditLogs?startTime=yesterday", kOwner).status, 400);
  EXPECT_FALSE(Call("GET", "/moat/v1/auditLogs?startTime=2100-01-01T00:00:00Z", kOwner)
                   .obj()
                   .contains("entries"));
}

TEST_F(ApiRunTest, ExplainReturnsTheGatewaysDecision) {
  store::AuditEntry e;
  e.kind = store::AuditKind::kDataAccess;
  e.principal = "user:bob@example.com";
  e.method = "run.routes.invoke";
  e.resource = kHelloName;
  e.request_id = "gw-123";
  e.status = "DENY";
  e.details = R"({"reason":"the principal is not a member"})";
  ASSERT_TRUE(store_->AppendAudit(e));
  Reply r = Call("GET", "/moat/v1/requests/gw-123:explain", kOwner);
  ASSERT_EQ(r.status, 200) << bj::serialize(r.body);
  EXPECT_EQ(r.obj().at("requestId"), "gw-123");
  ASSERT_EQ(r.obj().at("entries").as_array().size(), 1u);
  EXPECT_EQ(r.obj().at("entries").at(0).at("status"), "DENY");
  EXPECT_EQ(r.obj().at("entries").at(0).at("details").at("reason"),
            "the principal is not a member");
  EXPECT_EQ(Call("GET", "/moat/v1/requests/gw-123:explain", kOutsider).status, 403);
  EXPECT_EQ(Call("GET", "/moat/v1/requests/unknown:explain", kOwner).status, 404);
}

}  // namespace
}  // namespace moat::api
