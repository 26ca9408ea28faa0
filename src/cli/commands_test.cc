// Each command's HTTP request shape against a recording fake Transport, and its output and
// exit code.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>

#include "cli/context.h"
#include "cli/testing.h"

namespace moat::cli {
namespace {

namespace js = boost::json;
using testing::FakeSigner;
using testing::Header;
using testing::TestEnv;

const std::string kSvc = "/v2/projects/p/locations/local/services/hello";
const std::string kUri = "http://hello-x1.local.run.localhost:8080";

js::value Body(const HttpRequest& r) { return js::parse(r.body); }

js::object ServiceJson() {
  return {
      {"name", "projects/p/locations/local/services/hello"},
      {"uri", kUri},
      {"uid", "u-1"},
      {"etag", "\"e1\""},
      {"customAudiences", js::array{"aud-a"}},
      {"template",
       {{"upstream", "http://127.0.0.1:9000"},
        {"containers", js::array{js::object{
                           {"env", js::array{js::object{{"name", "KEEP"}, {"value", "1"}}}}}}}}}};
}

js::object DoneOp(const js::object& svc) {
  return {{"name", "projects/p/locations/local/operations/op1"}, {"done", true}, {"response", svc}};
}

TEST(CliCommands, DeployCreatesPrivateServiceAndPrintsUrl) {
  TestEnv t;
  t.Activate();
  t.transport.OnJson("PATCH " + kSvc + "?allowMissing=true", DoneOp(ServiceJson()));
  ASSERT_EQ(t.Run({"run", "deploy", "hello", "--upstream", "http://127.0.0.1:9000",
                   "--set-env-vars=A=1,B=two", "--service-account=rt@p.iam.gserviceaccount.com"}),
            0)
      << t.err.str();
  EXPECT_EQ(t.out.str(), "Service URL: " + kUri + "\n");
  ASSERT_EQ(t.transport.requests.size(), 2u);
  EXPECT_EQ(t.transport.requests[0].method, "GET");
  const HttpRequest& patch = t.transport.requests[1];
  EXPECT_EQ(patch.method, "PATCH");
  EXPECT_EQ(patch.url, "http://127.0.0.1:8081" + kSvc + "?allowMissing=true");
  EXPECT_EQ(Header(patch, "Content-Type"), "application/json");
  js::value body = Body(patch);
  EXPECT_EQ(body.at("name"), "projects/p/locations/local/services/hello");
  EXPECT_EQ(body.at("template").at("upstream"), "http://127.0.0.1:9000");
  EXPECT_EQ(body.at("template").at("serviceAccount"), "rt@p.iam.gserviceaccount.com");
  EXPECT_EQ(body.at("template").at("containers").at(0).at("env"),
            js::parse(R"([{"name":"A","value":"1"},{"name":"B","value":"two"}])"));
  // No IAM call without --allow-unauthenticated: private by default.
  EXPECT_TRUE(t.transport.Find("POST", kSvc + ":").empty());
  // The API call carries a self-signed JWT for the active service account.
  std::string auth = Header(patch, "Authorization");
  ASSERT_EQ(auth.rfind("Bearer ", 0), 0u);
  js::object claims = FakeSigner::Claims(auth.substr(7));
  EXPECT_EQ(claims.at("iss"), "admin@p.iam.gserviceaccount.com");
  EXPECT_EQ(claims.at("sub"), "admin@p.iam.gserviceaccount.com");
  EXPECT_EQ(claims.at("aud"), "http://127.0.0.1:8081/");
  EXPECT_EQ(claims.at("exp").as_int64() - claims.at("iat").as_int64(), 3600);
}

TEST(CliCommands, DeployAllowUnauthenticatedAddsAllUsersBinding) {
  TestEnv t;
  t.Activate();
  t.transport.OnJson("PATCH " + kSvc + "?allowMissing=true", DoneOp(ServiceJson()));
  t.transport.OnJson("POST " + kSvc + ":addIamPolicyBinding", js::parse(R"({"policy":{}})"));
  ASSERT_EQ(t.Run({"run", "deploy", "hello", "--command=python3 -m http.server '$PORT'",
                   "--allow-unauthenticated"}),
            0)
      << t.err.str();
  auto patch = t.transport.Find("PATCH", kSvc);
  ASSERT_EQ(patch.size(), 1u);
  js::value c0 = Body(patch[0]).at("template").at("containers").at(0);
  EXPECT_EQ(c0.at("command"), js::parse(R"(["python3","-m","http.server","$PORT"])"));
  auto add = t.transport.Find("POST", kSvc + ":addIamPolicyBinding");
  ASSERT_EQ(add.size(), 1u);
  EXPECT_EQ(Body(add[0]), js::parse(R"({"member":"allUsers","role":"roles/run.invoker"})"));
}

TEST(CliCommands, DeployExistingMergesAndRemovesPublicAccess) {
  TestEnv t;
  t.Activate();
  t.transport.OnJson("GET " + kSvc, ServiceJson());
  t.transport.OnJson("PATCH " + kSvc + "?allowMissing=true", DoneOp(ServiceJson()));
  t.transport.OnJson("GET " + kSvc + ":getIamPolicy?options.requestedPolicyVersion=3",
                     js::parse(R"({"bindings":[{"role":"roles/run.invoker",
                                   "members":["allUsers"]}],"etag":"BwE="})"));
  t.transport.OnJson("POST " + kSvc + ":removeIamPolicyBinding", js::parse(R"({"policy":{}})"));
  ASSERT_EQ(
      t.Run({"run", "deploy", "hello", "--no-allow-unauthenticated", "--add-custom-audiences=aud-b",
             "--update-env-vars=NEW=2", "--no-invoker-iam-check"}),
      0)
      << t.err.str();
  js::value body = Body(t.transport.Find("PATCH", kSvc)[0]);
  EXPECT_EQ(body.at("customAudiences"), js::parse(R"(["aud-a","aud-b"])"));
  EXPECT_EQ(body.at("invokerIamDisabled"), true);
  EXPECT_EQ(body.at("template").at("upstream"), "http://127.0.0.1:9000");
  EXPECT_EQ(body.at("template").at("containers").at(0).at("env"),
            js::parse(R"([{"name":"KEEP","value":"1"},{"name":"NEW","value":"2"}])"));
  EXPECT_FALSE(body.as_object().contains("uri"));  // output-only fields are not sent back
  EXPECT_FALSE(body.as_object().contains("uid"));
  EXPECT_EQ(body.at("etag"), "\"e1\"");
  auto rm = t.transport.Find("POST", kSvc + ":removeIamPolicyBinding");
  ASSERT_EQ(rm.size(), 1u);
  EXPECT_EQ(Body(rm[0]), js::parse(R"({"member":"allUsers","role":"roles/run.invoker"})"));
}

TEST(CliCommands, DeployFromSourceUsesProcfileWebEntry) {
  TestEnv t;
  t.Activate();
  t.WriteFile("app/Procfile", "worker: ./work\nweb: ./server --port $PORT\n");
  t.transport.OnJson("PATCH " + kSvc + "?allowMissing=true", DoneOp(ServiceJson()));
  ASSERT_EQ(t.Run({"run", "deploy", "hello", "--source", t.dir + "/app"}), 0) << t.err.str();
  js::value c0 = Body(t.transport.Find("PATCH", kSvc)[0]).at("template").at("containers").at(0);
  EXPECT_EQ(c0.at("command"), js::parse(R"(["/bin/sh","-c","./server --port $PORT"])"));
  EXPECT_EQ(c0.at("workingDir").as_string().find("/app"),
            c0.at("workingDir").as_string().size() - 4);
}

TEST(CliCommands, DeployNewServiceWithoutWhatToRunIsUsageError) {
  TestEnv t;
  t.Activate();
  EXPECT_EQ(t.Run({"run", "deploy", "hello"}), 2);
  EXPECT_NE(t.err.str().find("--upstream=URL"), std::string::npos) << t.err.str();
  EXPECT_TRUE(t.transport.Find("PATCH", "/").empty());
  EXPECT_EQ(t.Run({"run", "deploy", "Bad_Name", "--upstream=http://x"}), 2);
  EXPECT_EQ(t.Run({"run", "deploy", "hello", "--upstream=http://x", "--command=y"}), 2);
}

TEST(CliCommands, DeployPollsUnfinishedOperation) {
  TestEnv t;
  t.Activate();
  t.transport.OnJson("PATCH " + kSvc + "?allowMissing=true",
                     js::parse(R"({"name":"projects/p/locations/local/operations/op1",
                                   "done":false,"metadata":{}})"));
  t.transport.OnJson("GET /v2/projects/p/locations/local/operations/op1",
                     js::parse(R"({"name":"projects/p/locations/local/operations/op1",
                                   "done":false,"metadata":{}})"));
  t.transport.OnJson("GET /v2/projects/p/locations/local/operations/op1", DoneOp(ServiceJson()));
  ASSERT_EQ(t.Run({"run", "deploy", "hello", "--upstream=http://127.0.0.1:1"}), 0) << t.err.str();
  EXPECT_EQ(t.sleeps, 2);
  EXPECT_EQ(t.out.str(), "Service URL: " + kUri + "\n");
}

TEST(CliCommands, FailedOperationIsAnError) {
  TestEnv t;
  t.Activate();
  t.transport.OnJson(
      "PATCH " + kSvc + "?allowMissing=true",
      js::parse(R"({"name":"o","done":true,"error":{"code":3,"message":"bad upstream"}})"));
  EXPECT_EQ(t.Run({"run", "deploy", "hello", "--upstream=http://127.0.0.1:1"}), 1);
  EXPECT_NE(t.err.str().find("bad upstream"), std::string::npos);
}

TEST(CliCommands, UpdateRequiresExistingService) {
  TestEnv t;
  t.Activate();
  EXPECT_EQ(t.Run({"run", "services", "update", "hello", "--update-env-vars=A=1"}), 1);
  EXPECT_NE(t.err.str().find("NOT_FOUND"), std::string::npos);
  t.transport.OnJson("GET " + kSvc, ServiceJson());
  t.transport.OnJson("PATCH " + kSvc, DoneOp(ServiceJson()));
  EXPECT_EQ(t.Run({"run", "services", "update", "hello", "--clear-custom-audiences"}), 0)
      << t.err.str();
  EXPECT_EQ(Body(t.transport.Find("PATCH", kSvc).back()).at("customAudiences"), js::array());
}

TEST(CliCommands, ListPaginatesAndPrintsTable) {
  TestEnv t;
  t.Activate();
  const std::string base = "GET /v2/projects/p/locations/local/services?pageSize=100";
  t.transport.OnJson(base,
                     js::parse(R"({"services":[{"name":"projects/p/locations/local/services/a",
      "uri":"http://a","lastModifier":"x@y","updateTime":"2024-01-01T00:00:00Z"}],
      "nextPageToken":"t2"})"));
  t.transport.OnJson(base + "&pageToken=t2",
                     js::parse(R"({"services":[{"name":"projects/p/locations/local/services/bb",
                                   "uri":"http://bb"}]})"));
  ASSERT_EQ(t.Run({"run", "services", "list"}), 0) << t.err.str();
  EXPECT_EQ(t.out.str(),
            "SERVICE  REGION  URL        LAST_DEPLOYED_BY  LAST_DEPLOYED_AT\n"
            "a        local   http://a   x@y               2024-01-01T00:00:00Z\n"
            "bb       local   http://bb\n");
  ASSERT_EQ(t.Run({"run", "services", "list", "--format=value(uri)"}), 0);
  EXPECT_EQ(t.out.str(), "http://a\nhttp://bb\n");
}

TEST(CliCommands, DescribePrintsYamlOrProjection) {
  TestEnv t;
  t.Activate();
  t.transport.OnJson("GET " + kSvc, ServiceJson());
  ASSERT_EQ(t.Run({"run", "services", "describe", "hello"}), 0);
  EXPECT_NE(t.out.str().find("uri: " + kUri + "\n"), std::string::npos) << t.out.str();
  ASSERT_EQ(t.Run({"run", "services", "describe", "hello", "--format", "value(uri,uid)"}), 0);
  EXPECT_EQ(t.out.str(), kUri + "\tu-1\n");
  ASSERT_EQ(t.Run({"run", "services", "describe", "hello", "--format=json"}), 0);
  EXPECT_EQ(js::parse(t.out.str()), js::value(ServiceJson()));
}

TEST(CliCommands, DeleteConfirmsUnlessQuiet) {
  TestEnv t;
  t.Activate();
  t.transport.OnJson("DELETE " + kSvc, DoneOp(ServiceJson()));
  EXPECT_EQ(t.Run({"run", "services", "delete", "hello"}), 1);
  EXPECT_NE(t.err.str().find("--quiet"), std::string::npos);
  EXPECT_TRUE(t.transport.Find("DELETE", kSvc).empty());

  t.env.interactive = true;
  t.in.str("n\n");
  EXPECT_EQ(t.Run({"run", "services", "delete", "hello"}), 1);
  EXPECT_TRUE(t.transport.Find("DELETE", kSvc).empty());
  t.in.clear();
  t.in.str("y\n");
  EXPECT_EQ(t.Run({"run", "services", "delete", "hello"}), 0) << t.err.str();
  EXPECT_EQ(t.transport.Find("DELETE", kSvc).size(), 1u);
  t.env.interactive = false;
  EXPECT_EQ(t.Run({"run", "services", "delete", "hello", "--quiet"}), 0);
  EXPECT_EQ(t.Run({"-q", "run", "services", "delete", "hello"}), 0);
  EXPECT_EQ(t.transport.Find("DELETE", kSvc).size(), 3u);
  EXPECT_NE(t.err.str().find("Deleted service [hello]."), std::string::npos);
}

TEST(CliCommands, AddIamPolicyBindingUsesAtomicEndpoint) {
  TestEnv t;
  t.Activate();
  t.transport.OnJson("POST " + kSvc + ":addIamPolicyBinding", js::parse(R"({"policy":{
      "version":1,"etag":"BwWWja0YfJA=","bindings":[{"role":"roles/run.invoker",
      "members":["serviceAccount:c@p.iam.gserviceaccount.com"]}]}})"));
  ASSERT_EQ(t.Run({"run", "services", "add-iam-policy-binding", "hello",
                   "--member=serviceAccount:c@p.iam.gserviceaccount.com",
                   "--role=roles/run.invoker", "--region=local", "--project=p"}),
            0)
      << t.err.str();
  auto reqs = t.transport.Find("POST", kSvc + ":addIamPolicyBinding");
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(Body(reqs[0]), js::parse(R"({"member":"serviceAccount:c@p.iam.gserviceaccount.com",
                                         "role":"roles/run.invoker"})"));
  EXPECT_EQ(t.err.str(), "Updated IAM policy for service [hello].\n");
  EXPECT_EQ(t.out.str(),
            "bindings:\n"
            "- members:\n"
            "  - serviceAccount:c@p.iam.gserviceaccount.com\n"
            "  role: roles/run.invoker\n"
            "etag: BwWWja0YfJA=\n"
            "version: 1\n");
}

TEST(CliCommands, BindingConditionIsParsedLikeGcloud) {
  TestEnv t;
  t.Activate();
  t.transport.OnJson("POST " + kSvc + ":removeIamPolicyBinding", js::parse(R"({"policy":{}})"));
  ASSERT_EQ(t.Run({"run", "services", "remove-iam-policy-binding", "hello", "--member=user:a@x.com",
                   "--role=roles/run.invoker",
                   "--condition=expression=request.time < timestamp('2030-01-01T00:00:00Z'),"
                   "title=until 2030,description=a, b"}),
            0)
      << t.err.str();
  js::value body = Body(t.transport.Find("POST", kSvc + ":removeIamPolicyBinding")[0]);
  EXPECT_EQ(body.at("condition"),
            js::parse(R"j({"expression":"request.time < timestamp('2030-01-01T00:00:00Z')",
                          "title":"until 2030","description":"a, b"})j"));
  EXPECT_EQ(t.Run({"run", "services", "add-iam-policy-binding", "hello", "--member=a@x.com",
                   "--role=roles/run.invoker"}),
            2);
  EXPECT_NE(t.err.str().find("type prefix"), std::string::npos);
  EXPECT_EQ(t.Run({"run", "services", "add-iam-policy-binding", "hello", "--member=user:a@x.com",
                   "--role=run.invoker"}),
            2);
  EXPECT_EQ(t.Run({"run", "services", "add-iam-policy-binding", "hello", "--member=user:a@x.com"}),
            2);
  EXPECT_NE(t.err.str().find("`--role` is required"), std::string::npos);
}

TEST(CliCommands, GetAndSetIamPolicy) {
  TestEnv t;
  t.Activate();
  t.transport.OnJson("GET " + kSvc + ":getIamPolicy?options.requestedPolicyVersion=3",
                     js::parse(R"({"etag":"ACAB"})"));
  ASSERT_EQ(t.Run({"run", "services", "get-iam-policy", "hello"}), 0);
  EXPECT_EQ(t.out.str(), "etag: ACAB\n");

  std::string file = t.WriteFile("policy.yaml",
                                 "bindings:\n"
                                 "- role: roles/run.invoker\n"
                                 "  members:\n"
                                 "  - user:alice@example.com\n"
                                 "  condition:\n"
                                 "    title: t\n"
                                 "    expression: \"request.host == 'x'\"\n"
                                 "etag: BwWWja0YfJA=\n");
  t.transport.OnJson("POST " + kSvc + ":setIamPolicy", js::parse(R"({"version":3,"etag":"BwX="})"));
  ASSERT_EQ(t.Run({"run", "services", "set-iam-policy", "hello", file}), 0) << t.err.str();
  js::value body = Body(t.transport.Find("POST", kSvc + ":setIamPolicy")[0]);
  EXPECT_EQ(body.at("updateMask"), "bindings,etag");
  EXPECT_EQ(body.at("policy").at("version"), 3);  // conditions need version 3
  EXPECT_EQ(body.at("policy").at("etag"), "BwWWja0YfJA=");
  EXPECT_EQ(body.at("policy").at("bindings").at(0).at("condition").at("expression"),
            "request.host == 'x'");
  EXPECT_NE(t.err.str().find("Updated IAM policy for service [hello]."), std::string::npos);

  std::string bad = t.WriteFile("bad.yaml", "bindings: [\n");
  EXPECT_EQ(t.Run({"run", "services", "set-iam-policy", "hello", bad}), 1);
  EXPECT_NE(t.err.str().find("line 1"), std::string::npos) << t.err.str();
}

TEST(CliCommands, ConcurrentChangeShowsAbortedWithRetryHint) {
  TestEnv t;
  t.Activate();
  t.transport.On("POST " + kSvc + ":setIamPolicy", 409,
                 R"({"error":{"code":409,"message":"There were concurrent policy changes.",
                     "status":"ABORTED"}})");
  std::string file = t.WriteFile("p.json", R"({"bindings":[],"etag":"BwE="})");
  EXPECT_EQ(t.Run({"run", "services", "set-iam-policy", "hello", file}), 1);
  EXPECT_EQ(t.err.str(),
            "ERROR: (moat.run.services.set-iam-policy) ABORTED: There were concurrent policy "
            "changes. (re-run the command to retry)\n");
}

TEST(CliCommands, CallMintsIdTokenForServiceUrlAndFailsOnForbidden) {
  TestEnv t;
  t.Activate();
  t.transport.OnJson("GET " + kSvc, ServiceJson());
  t.transport.OnJson("POST /token", js::parse(R"({"id_token":"idtok"})"));
  t.transport.full_url["POST " + kUri + "/"] = HttpResponse{200, {}, "hello world"};
  ASSERT_EQ(
      t.Run({"run", "services", "call", "hello", "--data={\"a\":1}", "--header=X-Trace: 1,2"}), 0)
      << t.err.str();
  EXPECT_EQ(t.out.str(), "hello world\n");
  auto token_req = t.transport.Find("POST", "/token");
  ASSERT_EQ(token_req.size(), 1u);
  EXPECT_EQ(Header(token_req[0], "Authorization"), "");  // the token endpoint is public
  const std::string& form = token_req[0].body;
  const std::string prefix =
      "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=";
  ASSERT_EQ(form.rfind(prefix, 0), 0u) << form;
  js::object claims = FakeSigner::Claims(form.substr(prefix.size()));
  EXPECT_EQ(claims.at("target_audience").as_string(), kUri);
  EXPECT_EQ(claims.at("aud"), "http://127.0.0.1:8081/token");
  EXPECT_EQ(claims.at("iss"), "admin@p.iam.gserviceaccount.com");
  const HttpRequest& call = t.transport.requests.back();
  EXPECT_EQ(call.method, "POST");
  EXPECT_EQ(Header(call, "Authorization"), "Bearer idtok");
  EXPECT_EQ(Header(call, "X-Trace"), "1,2");
  EXPECT_EQ(Header(call, "Content-Type"), "application/json");
  EXPECT_EQ(call.body, "{\"a\":1}");

  t.transport.full_url["GET " + kUri + "/x?y=1"] = HttpResponse{403, {}, "Forbidden"};
  EXPECT_EQ(t.Run({"run", "services", "call", "hello", "--path=/x?y=1"}), 1);
  EXPECT_EQ(t.out.str(), "Forbidden\n");
  EXPECT_NE(t.err.str().find("HTTP 403"), std::string::npos) << t.err.str();
}

TEST(CliCommands, ImpersonationUsesIamCredentials) {
  TestEnv t;
  t.Activate();
  const std::string sa = "/v1/projects/-/serviceAccounts/inv@p.iam.gserviceaccount.com";
  t.transport.OnJson("POST " + sa + ":generateAccessToken",
                     js::parse(R"({"accessToken":"acc","expireTime":"2030-01-01T00:00:00Z"})"));
  t.transport.OnJson("POST " + sa + ":generateIdToken", js::parse(R"({"token":"imp-id"})"));
  t.transport.OnJson("GET " + kSvc, ServiceJson());
  t.transport.full_url["GET " + kUri + "/"] = HttpResponse{200, {}, "ok\n"};
  ASSERT_EQ(t.Run({"run", "services", "call", "hello",
                   "--impersonate-service-account=inv@p.iam.gserviceaccount.com"}),
            0)
      << t.err.str();
  auto gen = t.transport.Find("POST", sa + ":generateIdToken");
  ASSERT_EQ(gen.size(), 1u);
  EXPECT_EQ(Body(gen[0]), js::parse(R"({"audience":")" + kUri + R"(","includeEmail":true})"));
  // Minted with the caller's own credentials (it needs getOpenIdToken on the account), not with
  // the impersonated account's access token.
  EXPECT_EQ(FakeSigner::Claims(Header(gen[0], "Authorization").substr(7)).at("iss"),
            "admin@p.iam.gserviceaccount.com");
  // The service GET ran with the impersonated access token.
  EXPECT_EQ(Header(t.transport.Find("GET", kSvc)[0], "Authorization"), "Bearer acc");
  EXPECT_EQ(Header(t.transport.requests.back(), "Authorization"), "Bearer imp-id");
  EXPECT_EQ(Body(t.transport.Find("POST", sa + ":generateAccessToken")[0]).at("scope"),
            js::parse(R"(["https://www.googleapis.com/auth/cloud-platform"])"));
}

TEST(CliCommands, PrintIdentityTokenDefaultsToApiAudience) {
  TestEnv t;
  t.Activate();
  t.transport.OnJson("POST /token", js::parse(R"({"id_token":"tok"})"));
  ASSERT_EQ(t.Run({"auth", "print-identity-token", "--audiences=https://svc"}), 0);
  EXPECT_EQ(t.out.str(), "tok\n");
  std::string form = t.transport.requests.back().body;
  js::object claims = FakeSigner::Claims(form.substr(form.find("assertion=") + 10));
  EXPECT_EQ(claims.at("target_audience"), "https://svc");
  ASSERT_EQ(t.Run({"auth", "print-identity-token"}), 0);
  form = t.transport.requests.back().body;
  EXPECT_EQ(FakeSigner::Claims(form.substr(form.find("assertion=") + 10)).at("target_audience"),
            "http://127.0.0.1:8081");
}

TEST(CliCommands, LoginStoresRefreshTokenAndUsesIt) {
  TestEnv t;
  t.transport.On("POST /token", 200, R"({"access_token":"a1","refresh_token":"r1"})");
  t.in.str("s3cret\n");
  ASSERT_EQ(t.Run({"auth", "login", "alice@example.com"}), 0) << t.err.str();
  EXPECT_EQ(t.transport.requests[0].body,
            "grant_type=password&username=alice%40example.com&password=s3cret");
  t.transport.requests.clear();
  t.transport.OnJson("POST /v1/projects/p:getIamPolicy", js::parse(R"({"etag":"ACAB"})"));
  ASSERT_EQ(t.Run({"projects", "get-iam-policy", "p"}), 0) << t.err.str();
  ASSERT_EQ(t.transport.requests.size(), 2u);
  EXPECT_EQ(t.transport.requests[0].body, "grant_type=refresh_token&refresh_token=r1");
  EXPECT_EQ(Header(t.transport.requests[1], "Authorization"), "Bearer a1");
  EXPECT_EQ(Body(t.transport.requests[1]),
            js::parse(R"({"options":{"requestedPolicyVersion":3}})"));
  ASSERT_EQ(t.Run({"auth", "list"}), 0);
  EXPECT_EQ(t.out.str(), "ACTIVE  ACCOUNT            TYPE\n*       alice@example.com  user\n");
  // Wrong password: the API's OAuth error is shown on one line.
  t.transport.routes.clear();
  t.transport.On("POST /token", 400,
                 R"({"error":"invalid_grant","error_description":"wrong password"})");
  std::string pw = t.WriteFile("pw", "nope\n");
  EXPECT_EQ(t.Run({"auth", "login", "bob@example.com", "--password-file", pw}), 1);
  EXPECT_EQ(t.err.str(), "ERROR: (moat.auth.login) invalid_grant: wrong password\n");
}

TEST(CliCommands, NoAccountErrorNamesWhatToDo) {
  TestEnv t;
  EXPECT_EQ(t.Run({"run", "services", "list", "--project=p", "--region=r"}), 1);
  EXPECT_EQ(t.err.str(),
            "ERROR: (moat.run.services.list) no active account; run `moat auth "
            "activate-service-account --key-file=FILE` or `moat auth login USER`\n");
  EXPECT_TRUE(t.transport.requests.empty());
}

TEST(CliCommands, MoatHomeAdminKeyIsTheFallbackIdentityAndProject) {
  TestEnv t;
  t.WriteFile("home/admin-key.json",
              json::Serialize(testing::KeyFile("moat-admin@adm.iam.gserviceaccount.com", "adm")));
  t.env.vars["MOAT_HOME"] = t.dir + "/home";
  t.env.vars["MOAT_API_ENDPOINT"] = "http://127.0.0.1:9999/";
  t.transport.OnJson("GET /v2/projects/adm/locations/r/services?pageSize=100",
                     js::parse(R"({"services":[]})"));
  ASSERT_EQ(t.Run({"run", "services", "list", "--region=r"}), 0) << t.err.str();
  EXPECT_EQ(t.err.str(), "Listed 0 items.\n");
  const HttpRequest& r = t.transport.requests.back();
  EXPECT_EQ(r.url, "http://127.0.0.1:9999/v2/projects/adm/locations/r/services?pageSize=100");
  EXPECT_EQ(FakeSigner::Claims(Header(r, "Authorization").substr(7)).at("iss"),
            "moat-admin@adm.iam.gserviceaccount.com");
  EXPECT_EQ(FakeSigner::Claims(Header(r, "Authorization").substr(7)).at("aud"),
            "http://127.0.0.1:9999/");
}

TEST(CliCommands, UnreachableApiSaysHowToFixIt) {
  TestEnv t;
  t.Activate();
  t.transport.fail = true;
  EXPECT_EQ(t.Run({"run", "services", "describe", "hello"}), 1);
  EXPECT_NE(t.err.str().find("cannot reach `http://127.0.0.1:8081`"), std::string::npos);
  EXPECT_NE(t.err.str().find("moat serve"), std::string::npos);
  std::string err = t.err.str();
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
}

TEST(CliCommands, PermissionDeniedIsOneLine) {
  TestEnv t;
  t.Activate();
  t.transport.On(
      "GET " + kSvc, 403,
      R"({"error":{"code":403,"message":"permission `run.services.get` denied on service `hello`","status":"PERMISSION_DENIED"}})");
  EXPECT_EQ(t.Run({"run", "services", "describe", "hello"}), 1);
  EXPECT_EQ(t.err.str(),
            "ERROR: (moat.run.services.describe) PERMISSION_DENIED: permission "
            "`run.services.get` denied on service `hello`\n");
}

TEST(CliCommands, ProjectsBindings) {
  TestEnv t;
  t.Activate();
  t.transport.OnJson("POST /v1/projects/other:addIamPolicyBinding", js::parse(R"({"policy":{}})"));
  ASSERT_EQ(t.Run({"projects", "add-iam-policy-binding", "other", "--member=group:g@x.com",
                   "--role=roles/run.invoker"}),
            0)
      << t.err.str();
  EXPECT_EQ(t.err.str(), "Updated IAM policy for project [other].\n");
  EXPECT_EQ(t.out.str(), "{}\n");
}

TEST(CliCommands, ServiceAccountLifecycle) {
  TestEnv t;
  t.Activate();
  t.transport.OnJson("POST /v1/projects/p/serviceAccounts",
                     js::parse(R"({"email":"caller@p.iam.gserviceaccount.com"})"));
  ASSERT_EQ(t.Run({"iam", "service-accounts", "create", "caller", "--display-name=Caller"}), 0)
      << t.err.str();
  EXPECT_EQ(Body(t.transport.requests.back()),
            js::parse(R"({"accountId":"caller","serviceAccount":{"displayName":"Caller"}})"));
  EXPECT_EQ(t.Run({"iam", "service-accounts", "create", "ab"}), 2);

  const std::string sa = "/v1/projects/q/serviceAccounts/x-sa@q.iam.gserviceaccount.com";
  t.transport.OnJson("GET " + sa, js::parse(R"({"email":"x-sa@q.iam.gserviceaccount.com"})"));
  ASSERT_EQ(t.Run({"iam", "service-accounts", "describe", "x-sa@q.iam.gserviceaccount.com"}), 0);
  EXPECT_EQ(t.out.str(), "email: x-sa@q.iam.gserviceaccount.com\n");

  t.transport.OnJson("POST " + sa + ":disable", js::object());
  ASSERT_EQ(t.Run({"iam", "service-accounts", "disable", "x-sa@q.iam.gserviceaccount.com"}), 0);
  EXPECT_EQ(t.transport.requests.back().body, "{}");
  EXPECT_EQ(t.err.str(), "Disabled service account [x-sa@q.iam.gserviceaccount.com].\n");

  t.transport.OnJson("PATCH " + sa, js::parse(R"({"displayName":"N"})"));
  ASSERT_EQ(t.Run({"iam", "service-accounts", "update", "x-sa@q.iam.gserviceaccount.com",
                   "--display-name=N"}),
            0);
  EXPECT_EQ(Body(t.transport.requests.back()),
            js::parse(R"({"serviceAccount":{"displayName":"N"},"updateMask":"displayName"})"));

  t.transport.OnJson("DELETE " + sa, js::object());
  ASSERT_EQ(t.Run({"iam", "service-accounts", "delete", "x-sa@q.iam.gserviceaccount.com", "-q"}),
            0);
  t.transport.OnJson("POST /v1/projects/p/serviceAccounts/1234:undelete",
                     js::parse(R"({"restoredAccount":{"email":"x"}})"));
  ASSERT_EQ(t.Run({"iam", "service-accounts", "undelete", "1234"}), 0);
  EXPECT_EQ(t.out.str(), "email: x\n");

  t.transport.OnJson("GET /v1/projects/p/serviceAccounts?pageSize=100",
                     js::parse(R"({"accounts":[{"displayName":"Caller","email":"c@p",
                                   "disabled":false}]})"));
  ASSERT_EQ(t.Run({"iam", "service-accounts", "list"}), 0);
  EXPECT_EQ(t.out.str(), "DISPLAY NAME  EMAIL  DISABLED\nCaller        c@p    False\n");

  t.transport.OnJson("POST " + sa + ":getIamPolicy?options.requestedPolicyVersion=3",
                     js::parse(R"({"etag":"ACAB"})"));
  ASSERT_EQ(t.Run({"iam", "service-accounts", "get-iam-policy", "x-sa@q.iam.gserviceaccount.com"}),
            0);
  EXPECT_EQ(t.out.str(), "etag: ACAB\n");
}

TEST(CliCommands, KeysCreateWritesPrivateKeyFile) {
  TestEnv t;
  t.Activate();
  const std::string sa = "/v1/projects/p/serviceAccounts/c@p.iam.gserviceaccount.com/keys";
  std::string keyfile = R"({"type":"service_account","private_key_id":"k1"})";
  t.transport.OnJson("POST " + sa, js::object{{"name", "projects/p/serviceAccounts/c/keys/k1"},
                                              {"privateKeyData", Base64Encode(keyfile)}});
  std::string out = t.dir + "/new-key.json";
  ASSERT_EQ(t.Run({"iam", "service-accounts", "keys", "create", out,
                   "--iam-account=c@p.iam.gserviceaccount.com"}),
            0)
      << t.err.str();
  EXPECT_EQ(Body(t.transport.requests.back()),
            js::parse(R"({"privateKeyType":"TYPE_GOOGLE_CREDENTIALS_FILE",
                          "keyAlgorithm":"KEY_ALG_RSA_2048"})"));
  auto text = ReadFile(out);
  ASSERT_TRUE(text);
  EXPECT_EQ(*text, keyfile);
  struct stat st;
  ASSERT_EQ(::stat(out.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(t.err.str(),
            "created key [k1] of type [json] as [" + out + "] for [c@p.iam.gserviceaccount.com]\n");

  t.transport.OnJson("GET " + sa + "?keyTypes=USER_MANAGED",
                     js::parse(R"({"keys":[{"name":"projects/p/serviceAccounts/c/keys/k1",
                                   "validAfterTime":"2024-01-01T00:00:00Z","disabled":true}]})"));
  ASSERT_EQ(t.Run({"iam", "service-accounts", "keys", "list", "--managed-by=user",
                   "--iam-account=c@p.iam.gserviceaccount.com"}),
            0)
      << t.err.str();
  EXPECT_EQ(t.out.str(),
            "KEY_ID  CREATED_AT            EXPIRES_AT  DISABLED\n"
            "k1      2024-01-01T00:00:00Z              True\n");
  t.transport.OnJson("POST " + sa + "/k1:disable", js::object());
  ASSERT_EQ(t.Run({"iam", "service-accounts", "keys", "disable", "k1",
                   "--iam-account=c@p.iam.gserviceaccount.com"}),
            0);
  EXPECT_EQ(t.Run({"iam", "service-accounts", "keys", "delete", "k1"}), 2);  // --iam-account
}

TEST(CliCommands, CustomRoles) {
  TestEnv t;
  t.Activate();
  t.transport.OnJson("POST /v1/projects/p/roles", js::parse(R"({"name":"projects/p/roles/lite"})"));
  ASSERT_EQ(t.Run({"iam", "roles", "create", "lite", "--title=Lite",
                   "--permissions=run.routes.invoke,run.services.get"}),
            0)
      << t.err.str();
  EXPECT_EQ(Body(t.transport.requests.back()), js::parse(R"({"roleId":"lite","role":{"title":"Lite",
                "includedPermissions":["run.routes.invoke","run.services.get"]}})"));
  t.transport.OnJson("GET /v1/projects/p/roles/lite",
                     js::parse(R"({"includedPermissions":["a","b"],"etag":"E"})"));
  t.transport.OnJson("PATCH /v1/projects/p/roles/lite?updateMask=includedPermissions",
                     js::object());
  ASSERT_EQ(
      t.Run({"iam", "roles", "update", "lite", "--add-permissions=c", "--remove-permissions=a"}), 0)
      << t.err.str();
  EXPECT_EQ(Body(t.transport.requests.back()),
            js::parse(R"({"includedPermissions":["b","c"],"etag":"E"})"));
  t.transport.OnJson("GET /v1/roles/run.invoker", js::parse(R"({"name":"roles/run.invoker"})"));
  ASSERT_EQ(t.Run({"iam", "roles", "describe", "roles/run.invoker"}), 0);
  EXPECT_EQ(t.out.str(), "name: roles/run.invoker\n");
}

TEST(CliCommands, DirectoryAndTroubleshoot) {
  TestEnv t;
  t.Activate();
  std::string pw = t.WriteFile("pw.txt", "hunter22\n");
  t.transport.OnJson("POST /moat/v1/users", js::parse(R"({"email":"a@x.com"})"));
  ASSERT_EQ(t.Run({"iam", "users", "create", "a@x.com", "--password-file=" + pw}), 0)
      << t.err.str();
  EXPECT_EQ(Body(t.transport.requests.back()),
            js::parse(R"({"email":"a@x.com","password":"hunter22"})"));
  t.transport.OnJson("POST /moat/v1/groups/devs@x.com:addMember", js::object());
  ASSERT_EQ(t.Run({"iam", "groups", "add-member", "devs@x.com", "--member=user:a@x.com"}), 0);
  EXPECT_EQ(Body(t.transport.requests.back()), js::parse(R"({"member":"user:a@x.com"})"));
  t.transport.OnJson("POST /moat/v1/iam:troubleshoot", js::parse(R"({"access":"GRANTED"})"));
  ASSERT_EQ(t.Run({"iam", "troubleshoot", "--service=hello", "--principal=user:a@x.com"}), 0);
  EXPECT_EQ(Body(t.transport.requests.back()),
            js::parse(R"({"principal":"user:a@x.com","permission":"run.routes.invoke",
              "resource":"//run.googleapis.com/projects/p/locations/local/services/hello"})"));
  EXPECT_EQ(t.out.str(), "access: GRANTED\n");
}

TEST(CliCommands, LogsRead) {
  TestEnv t;
  t.Activate();
  t.transport.OnJson("GET /moat/v1/projects/p/locations/local/services/hello:logs?limit=5",
                     js::parse(R"({"entries":[{"timestamp":"T1","severity":"INFO",
                                   "textPayload":"started"}]})"));
  ASSERT_EQ(t.Run({"run", "services", "logs", "read", "hello", "--limit=5"}), 0) << t.err.str();
  EXPECT_EQ(t.out.str(), "T1\tINFO\tstarted\n");
}

TEST(CliCommands, ProxyHandsTheRunnerAFreshTokenSource) {
  struct FakeProxy : ProxyRunner {
    Status Run(const ProxyOptions& o) override {
      seen = o;
      auto tok = o.token();
      token = tok ? *tok : "";
      return Ok();
    }
    ProxyOptions seen;
    std::string token;
  } proxy;
  TestEnv t;
  t.Activate();
  t.env.proxy = &proxy;
  t.transport.OnJson("GET " + kSvc, ServiceJson());
  t.transport.OnJson("POST /token", js::parse(R"({"id_token":"px"})"));
  ASSERT_EQ(t.Run({"run", "services", "proxy", "hello", "--port=9090"}), 0) << t.err.str();
  EXPECT_EQ(proxy.seen.listen_addr, "127.0.0.1:9090");
  EXPECT_EQ(proxy.seen.target_url, kUri);
  EXPECT_EQ(proxy.token, "px");
}

TEST(CliCommands, LoggingExplainPrintsTheDecisionAndTheClosestBindings) {
  TestEnv t;
  t.Activate();
  t.transport.OnJson("GET /moat/v1/requests/abc:explain", js::parse(R"({"requestId":"abc",
      "entries":[{"time":"2026-01-01T00:00:00Z","kind":"DATA_ACCESS",
        "principal":"serviceAccount:r@p.iam.gserviceaccount.com","method":"run.routes.invoke",
        "resource":"projects/p/locations/local/services/hello","requestId":"abc","status":"DENY",
        "details":{"permission":"run.routes.invoke","decision":"DENY","httpStatus":403,
          "reason":"missing run.routes.invoke","httpMethod":"GET","host":"hello.local"}}]})"));
  t.transport.OnJson("POST /moat/v1/iam:troubleshoot", js::parse(R"({"access":"NOT_GRANTED",
      "decision":{"allowed":false,"permission":"run.routes.invoke","explanation":"denied",
        "closest":[{"level":"RESOURCE","resource":"projects/p/locations/local/services/hello",
          "bindingIndex":0,"role":"roles/run.viewer",
          "member":"serviceAccount:r@p.iam.gserviceaccount.com",
          "reason":"ROLE_LACKS_PERMISSION"}]}})"));
  ASSERT_EQ(t.Run({"logging", "explain", "abc"}), 0) << t.err.str();
  std::string out = t.out.str();
  EXPECT_NE(out.find("decision: DENY (HTTP 403)"), std::string::npos) << out;
  EXPECT_NE(out.find("reason:     missing run.routes.invoke"), std::string::npos) << out;
  EXPECT_NE(out.find("  - roles/run.viewer for serviceAccount:r@p.iam.gserviceaccount.com on "
                     "projects/p/locations/local/services/hello: ROLE_LACKS_PERMISSION"),
            std::string::npos)
      << out;
  auto ts = t.transport.Find("POST", "/moat/v1/iam:troubleshoot");
  ASSERT_EQ(ts.size(), 1u);
  EXPECT_EQ(Body(ts[0]), js::parse(R"({"principal":"serviceAccount:r@p.iam.gserviceaccount.com",
      "resource":"projects/p/locations/local/services/hello","permission":"run.routes.invoke"})"));
  // --format=json is the API's answer as is, without the troubleshooter.
  t.transport.requests.clear();
  ASSERT_EQ(t.Run({"logging", "explain", "abc", "--format=json"}), 0);
  EXPECT_EQ(js::parse(t.out.str()).at("requestId"), "abc");
  EXPECT_TRUE(t.transport.Find("POST", "/moat/v1/iam:troubleshoot").empty());
  // An unknown id is the API's one-line 404.
  EXPECT_EQ(t.Run({"logging", "explain", "nope"}), 1);
  std::string err = t.err.str();
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
}

TEST(CliCommands, ConfigSetGetUnsetAndFilePermissions) {
  TestEnv t;
  ASSERT_EQ(t.Run({"config", "set", "core/project", "my-proj"}), 0);
  EXPECT_EQ(t.err.str(), "Updated property [project].\n");
  ASSERT_EQ(t.Run({"config", "get", "project"}), 0);
  EXPECT_EQ(t.out.str(), "my-proj\n");
  ASSERT_EQ(t.Run({"config", "get", "api_endpoint"}), 0);
  EXPECT_EQ(t.out.str(), "http://127.0.0.1:8081\n");
  EXPECT_EQ(t.Run({"config", "set", "api_endpoint", "ftp://x"}), 1);
  EXPECT_EQ(t.Run({"config", "set", "projcet", "x"}), 2);
  EXPECT_NE(t.err.str().find("did you mean `project`?"), std::string::npos) << t.err.str();
  ASSERT_EQ(t.Run({"config", "unset", "project"}), 0);
  ASSERT_EQ(t.Run({"config", "get", "project"}), 0);
  EXPECT_EQ(t.out.str(), "");
  EXPECT_EQ(t.err.str(), "(unset)\n");
  struct stat st;
  ASSERT_EQ(::stat((t.dir + "/config").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(::stat((t.dir + "/config/config").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((t.dir + "/config/credentials.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(CliCommands, ActivateAndRevoke) {
  TestEnv t;
  std::string key =
      t.WriteFile("k.json", json::Serialize(testing::KeyFile("a@p.iam.gserviceaccount.com", "p")));
  EXPECT_EQ(t.Run({"auth", "activate-service-account", "other@x", "--key-file", key}), 1);
  ASSERT_EQ(t.Run({"auth", "activate-service-account", "--key-file", key}), 0);
  EXPECT_EQ(t.err.str(),
            "Activated service account credentials for: [a@p.iam.gserviceaccount.com]\n");
  auto creds = ReadFile(t.dir + "/config/credentials.json");
  ASSERT_TRUE(creds);
  EXPECT_NE(creds->find("PRIVATE KEY"), std::string::npos);
  std::string bad = t.WriteFile("bad.json", R"({"type":"authorized_user"})");
  EXPECT_EQ(t.Run({"auth", "activate-service-account", "--key-file", bad}), 1);
  EXPECT_NE(t.err.str().find("service_account"), std::string::npos);
  ASSERT_EQ(t.Run({"auth", "revoke"}), 0);
  ASSERT_EQ(t.Run({"auth", "list"}), 0);
  EXPECT_EQ(t.out.str(), "");
  EXPECT_NE(t.err.str().find("No credentialed accounts."), std::string::npos);
}

TEST(CliCommands, CredentialsReadableByOthersAreRefused) {
  TestEnv t;
  t.Activate();
  ASSERT_EQ(::chmod((t.dir + "/config/credentials.json").c_str(), 0644), 0);
  EXPECT_EQ(t.Run({"run", "services", "describe", "hello"}), 1);
  EXPECT_NE(t.err.str().find("chmod 600"), std::string::npos);
  EXPECT_TRUE(t.transport.requests.empty());
}

TEST(CliCommands, VerbosityDebugLogsRequestsWithoutTokens) {
  TestEnv t;
  t.Activate();
  t.transport.OnJson("GET " + kSvc, ServiceJson());
  ASSERT_EQ(t.Run({"run", "services", "describe", "hello", "--verbosity=debug"}), 0);
  EXPECT_NE(t.err.str().find("DEBUG: GET http://127.0.0.1:8081" + kSvc), std::string::npos);
  EXPECT_EQ(t.err.str().find("fakejwt"), std::string::npos);
}

}  // namespace
}  // namespace moat::cli
