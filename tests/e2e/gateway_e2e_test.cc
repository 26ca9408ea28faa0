// End-to-end: the real `moat serve` binary, Cloud Run's invocation decision table (GOOGLE.md
// §1, §13) driven through the API (IAM v1, Run v2, Resource Manager, Moat's own) and checked
// at the gateway, with a recording upstream that shows exactly what was (not) forwarded.
//
// Read-your-writes: a policy change answers X-Moat-Revision: N; the next gateway request sends
// X-Moat-Min-Revision: N (docs/api.md). Setup steps that are not the subject of a test also
// wait through the API (Sync) so each test checks only its own case deterministically; the
// gateway's own header handling is the subject of PolicyChangeEnforcedOnNextRequest,
// DisabledAccountRefusedOnNextRequest and GatewayHonoursMinRevision.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <regex>
#include <stdexcept>
#include <string>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <thread>

#include "common/json.h"
#include "common/time.h"
#include "crypto/jwk.h"
#include "crypto/jwt.h"
#include "crypto/keys.h"
#include "e2e/fake_upstream.h"
#include "e2e/moat_process.h"
#include "http/framing.h"
#include "http/test_util.h"

#ifndef MOAT_BIN
#error "MOAT_BIN must name the moat binary"
#endif

namespace moat::e2e {
namespace {

namespace bj = boost::json;

constexpr char kProject[] = "e2e";
constexpr char kRegion[] = "us-central1";

// A failed setup step ends the test with its message (gtest reports the exception).
template <class T>
T Must(Result<T> r, std::string_view what) {
  if (!r) throw std::runtime_error(std::string(what) + ": " + r.error().message);
  return std::move(*r);
}

void MustOk(const ApiResponse& r, std::string_view what) {
  if (r.status != 200) throw std::runtime_error(std::string(what) + ": " + r.Describe());
}

int64_t NowUnix() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Describe(const http::ClientResponse& r) {
  std::string s = std::to_string(r.status);
  for (const auto& f : r.headers) s += "\n  " + std::string(f.name) + ": " + std::string(f.value);
  return s + "\n" + r.body;
}

std::string DescribeUpstream(const FakeUpstream& up) {
  std::string s;
  for (const auto& r : up.requests()) {
    s += r.method + " " + r.target + " (" + std::to_string(r.body.size()) + " body bytes)\n";
  }
  return s.empty() ? "(nothing)" : s;
}

// "h.p.s" → "h.p".
std::string SignedPart(const std::string& jwt) { return jwt.substr(0, jwt.rfind('.')); }

struct Caller {
  std::string email;
  KeyFile key;
  std::string member() const { return "serviceAccount:" + email; }
};

class GatewayE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = MoatProcess::Start(MOAT_BIN);
    ASSERT_TRUE(m) << m.error().message;
    moat_ = std::move(*m);
  }

  void TearDown() override {
    if (HasFailure() && moat_) {
      std::cerr << "---- moat serve stderr (tail) ----\n" << moat_->StderrTail() << "\n";
    }
    moat_.reset();  // SIGTERM, SIGKILL after 10 s; removes the temp home
  }

  Service NewService(const std::string& id, const FakeUpstream& up) {
    return Must(moat_->CreateUpstreamService(kProject, kRegion, id, up.url()), "create service");
  }

  Caller NewCaller(const std::string& account_id) {
    Caller c;
    c.email = Must(moat_->CreateServiceAccount(kProject, account_id), "create service account");
    c.key = Must(moat_->CreateKey(kProject, c.email), "create key");
    return c;
  }

  std::string IdToken(const Caller& c, const std::string& audience) {
    return Must(moat_->IdTokenFor(c.key, audience), "mint ID token");
  }

  // Grants `role` on `resource_path` (an API path) to `member`; returns the revision after a
  // read-your-writes wait through the API.
  int64_t Grant(const std::string& resource_path, const std::string& member,
                const std::string& role) {
    ApiResponse r = moat_->AddBinding(resource_path, member, role);
    MustOk(r, "addIamPolicyBinding");
    Sync(r.revision);
    return r.revision;
  }

  // Waits (through the API's X-Moat-Min-Revision) until revision `rev` is enforced.
  void Sync(int64_t rev) {
    if (rev <= 0) return;
    ApiResponse r = moat_->Api("GET", "/v1/roles/run.invoker", "", std::nullopt,
                               {{"X-Moat-Min-Revision", std::to_string(rev)}});
    MustOk(r, "wait for revision " + std::to_string(rev));
  }

  http::ClientResponse Call(const Service& svc, GatewayRequest req = {}) {
    return Must(moat_->Gateway(svc.uri, req), "gateway request");
  }
  http::ClientResponse CallWithToken(const Service& svc, const std::string& token,
                                     int64_t min_revision = 0) {
    GatewayRequest req;
    req.headers = {{"Authorization", "Bearer " + token}};
    req.min_revision = min_revision;
    return Call(svc, req);
  }

  // The audit log's reason for a gateway response (polls: audit entries are written
  // asynchronously), for failure messages.
  std::string Why(const http::ClientResponse& r) {
    std::string id(r.headers.Get("X-Request-Id"));
    std::string out = Describe(r);
    if (id.empty() || r.status < 400) return out;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
      ApiResponse e = moat_->Api("GET", "/moat/v1/requests/" + id + ":explain");
      if (e.status != 404 || std::chrono::steady_clock::now() > deadline) {
        return out + "\nexplain: " + e.Describe();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  std::unique_ptr<MoatProcess> moat_;
};

void ExpectForbiddenPage(const http::ClientResponse& r, std::string_view path = "/") {
  EXPECT_EQ(r.status, 403) << Describe(r);
  EXPECT_NE(r.body.find("<title>403 Forbidden</title>"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("<h1>Error: Forbidden</h1>"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("Your client does not have permission to get URL <code>" +
                        std::string(path) + "</code> from this server."),
            std::string::npos)
      << r.body;
  EXPECT_EQ(r.headers.Get("Content-Type"), "text/html; charset=UTF-8");
  EXPECT_FALSE(r.headers.Get("X-Request-Id").empty()) << Describe(r);
}

void ExpectUnauthorizedPage(const http::ClientResponse& r) {
  EXPECT_EQ(r.status, 401) << Describe(r);
  EXPECT_NE(r.body.find("<title>401 Unauthorized</title>"), std::string::npos) << r.body;
  EXPECT_TRUE(r.headers.Get("WWW-Authenticate").starts_with("Bearer error=\"invalid_token\""))
      << Describe(r);
  EXPECT_FALSE(r.headers.Get("X-Request-Id").empty()) << Describe(r);
}

class RawGateway {
 public:
  explicit RawGateway(uint16_t port) : client_(port) {
    timeval tv{20, 0};  // never hang the test on a server that does not answer
    ::setsockopt(client_.socket().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  // Sends `bytes` and reads one response (status 0 when the connection closed without one).
  int Exchange(const std::string& bytes, std::string* body = nullptr) {
    try {
      client_.Send(bytes);
    } catch (const std::exception&) {
      // The server may close while a large head is still being written; read what it said.
    }
    auto r = client_.Read();
    if (!r) return 0;
    if (body) *body = r->body;
    return r->head.status;
  }

 private:
  http::testing::RawClient client_;
};

// --- 1. no token on a private service ---------------------------------------------------------

TEST_F(GatewayE2E, PrivateServiceWithoutTokenIs403) {
  FakeUpstream up;
  Service svc = NewService("hello", up);
  http::ClientResponse r = Call(svc);
  ExpectForbiddenPage(r);
  EXPECT_NE(r.body.find("<h2>Your client does not have permission"), std::string::npos);
  // An empty Authorization value is "no credential" too.
  http::ClientResponse empty = Call(svc, {.path = "/x", .headers = {{"Authorization", ""}}});
  ExpectForbiddenPage(empty, "/x");
  EXPECT_NE(r.headers.Get("X-Request-Id"), empty.headers.Get("X-Request-Id"));
  EXPECT_TRUE(up.requests().empty()) << DescribeUpstream(up);
}

// --- 2. tokens that fail verification → 401 ---------------------------------------------------

TEST_F(GatewayE2E, GarbageTokenIs401) {
  FakeUpstream up;
  Service svc = NewService("hello", up);
  Caller c = NewCaller("caller");
  Grant(svc.path, c.member(), "roles/run.invoker");
  for (std::string token : {"garbage", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30.AAAA"}) {
    SCOPED_TRACE(token);
    ExpectUnauthorizedPage(CallWithToken(svc, token));
  }
  // A valid token with its signature altered.
  std::string valid = IdToken(c, svc.uri);
  std::string tampered = SignedPart(valid) + "." + std::string(342, 'A');
  ExpectUnauthorizedPage(CallWithToken(svc, tampered));
  EXPECT_TRUE(up.requests().empty()) << DescribeUpstream(up);
}

// An expired ID token from a trusted issuer (Moat's own tokens cannot be minted expired from
// outside): the same token shape with a live `exp` is admitted, an expired one gets 401.
TEST_F(GatewayE2E, ExpiredTokenIs401) {
  FakeUpstream up;
  Service svc = NewService("hello", up);
  FakeUpstream idp;
  auto key = Must(crypto::PrivateKey::GenerateRsa2048(), "generate key");
  idp.SetResponse("/jwks", "application/json",
                  crypto::SerializeJwks({crypto::PublicJwk(key.Public(), "idp-key-1")}));
  const std::string issuer = "https://idp.e2e.example";
  ApiResponse ti = moat_->Api("POST", "/moat/v1/trustedIssuers",
                              "{\"id\":\"idp\",\"issuer\":\"" + issuer + "\",\"jwksUri\":\"" +
                                  idp.url() + "/jwks\"}");
  MustOk(ti, "create trusted issuer");
  Sync(ti.revision);
  Grant(svc.path, "user:alice@e2e.example", "roles/run.invoker");

  auto mint = [&](int64_t iat, int64_t exp) {
    bj::object claims;
    claims["iss"] = issuer;
    claims["sub"] = "alice-1";
    claims["email"] = "alice@e2e.example";
    claims["email_verified"] = true;
    claims["aud"] = svc.uri;
    claims["iat"] = iat;
    claims["exp"] = exp;
    return Must(crypto::EncodeJwt(crypto::JwsAlg::kRs256, key, "idp-key-1", claims), "sign");
  };
  int64_t now = NowUnix();
  http::ClientResponse live = CallWithToken(svc, mint(now, now + 600));
  EXPECT_EQ(live.status, 200) << "control: the live token must be admitted\n" << Describe(live);
  ExpectUnauthorizedPage(CallWithToken(svc, mint(now - 7200, now - 3600)));
  EXPECT_EQ(up.requests().size(), live.status == 200 ? 1u : 0u) << DescribeUpstream(up);
}

TEST_F(GatewayE2E, TokenForAnotherServiceIs401) {
  FakeUpstream up;
  Service a = NewService("svc-a", up);
  Service b = NewService("svc-b", up);
  Caller c = NewCaller("caller");
  Grant(a.path, c.member(), "roles/run.invoker");
  Grant(b.path, c.member(), "roles/run.invoker");
  std::string for_b = IdToken(c, b.uri);
  ExpectUnauthorizedPage(CallWithToken(a, for_b));
  EXPECT_TRUE(up.requests().empty()) << DescribeUpstream(up);
  http::ClientResponse ok = CallWithToken(b, for_b);
  EXPECT_EQ(ok.status, 200) << Describe(ok);
  // An audience that is no URL of any service.
  ExpectUnauthorizedPage(CallWithToken(a, IdToken(c, "https://elsewhere.example/")));
  EXPECT_EQ(up.requests().size(), 1u) << DescribeUpstream(up);
}

TEST_F(GatewayE2E, AccessTokenIs401) {
  FakeUpstream up;
  Service svc = NewService("hello", up);
  Caller c = NewCaller("caller");
  Grant(svc.path, c.member(), "roles/run.invoker");
  std::string access = Must(moat_->AccessTokenFor(c.key), "mint access token");
  ExpectUnauthorizedPage(CallWithToken(svc, access));
  // A self-signed JWT of the account (valid for the API, never for the gateway).
  ExpectUnauthorizedPage(CallWithToken(svc, moat_->SelfSignedJwt(c.key, svc.uri)));
  EXPECT_TRUE(up.requests().empty()) << DescribeUpstream(up);
}

// --- 3. a valid ID token with the invoker role ------------------------------------------------

TEST_F(GatewayE2E, ValidTokenIsForwardedWithSignatureRemoved) {
  FakeUpstream up;
  Service svc = NewService("hello", up);
  Caller c = NewCaller("caller");
  Grant(svc.path, c.member(), "roles/run.invoker");
  std::string token = IdToken(c, svc.uri);
  http::ClientResponse r = Call(svc, {.method = "POST",
                                      .path = "/echo/path?x=1&y=two",
                                      .headers = {{"Authorization", "Bearer " + token},
                                                  {"Content-Type", "text/plain"}},
                                      .body = "hello body"});
  ASSERT_EQ(r.status, 200) << Describe(r);
  EXPECT_EQ(r.body, "upstream got POST /echo/path?x=1&y=two: hello body");
  std::string request_id(r.headers.Get("X-Request-Id"));
  EXPECT_FALSE(request_id.empty()) << Describe(r);

  auto seen = up.requests();
  ASSERT_EQ(seen.size(), 1u);
  const RecordedRequest& got = seen[0];
  EXPECT_EQ(got.method, "POST");
  EXPECT_EQ(got.target, "/echo/path?x=1&y=two");
  EXPECT_EQ(got.body, "hello body");
  EXPECT_EQ(got.Count("Authorization"), 1u);
  EXPECT_EQ(got.Header("Authorization"), "Bearer " + SignedPart(token) +
                                             ".SIGNATURE_REMOVED_BY_GOOGLE");
  EXPECT_NE(got.Header("X-Forwarded-For").find("127.0.0.1"), std::string::npos)
      << got.Header("X-Forwarded-For");
  EXPECT_EQ(got.Header("X-Forwarded-Proto"), "http");
  EXPECT_TRUE(std::regex_match(got.Header("traceparent"),
                               std::regex("00-[0-9a-f]{32}-[0-9a-f]{16}-0[0-9a-f]")))
      << got.Header("traceparent");
  EXPECT_EQ(got.Header("X-Request-Id"), request_id);
  EXPECT_EQ(got.Header("Content-Type"), "text/plain");
  EXPECT_EQ(got.Count("X-Serverless-Authorization"), 0u);
}

// --- 4. header precedence -------------------------------------------------------------------

TEST_F(GatewayE2E, ServerlessAuthorizationWinsAndAuthorizationIsForwardedUntouched) {
  FakeUpstream up;
  Service svc = NewService("hello", up);
  Caller c = NewCaller("caller");
  Grant(svc.path, c.member(), "roles/run.invoker");
  std::string token = IdToken(c, svc.uri);
  http::ClientResponse r =
      Call(svc, {.headers = {{"X-Serverless-Authorization", "Bearer " + token},
                             {"Authorization", "Bearer app-level-token-not-a-jwt"}}});
  ASSERT_EQ(r.status, 200) << Describe(r);
  auto seen = up.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].Header("Authorization"), "Bearer app-level-token-not-a-jwt");
  EXPECT_EQ(seen[0].Header("X-Serverless-Authorization"),
            "Bearer " + SignedPart(token) + ".SIGNATURE_REMOVED_BY_GOOGLE");
}

TEST_F(GatewayE2E, OnlyServerlessAuthorizationIsUsedWhenPresent) {
  FakeUpstream up;
  Service svc = NewService("hello", up);
  Caller c = NewCaller("caller");
  Grant(svc.path, c.member(), "roles/run.invoker");
  std::string token = IdToken(c, svc.uri);
  http::ClientResponse r = Call(svc, {.headers = {{"X-Serverless-Authorization", "Bearer garbage"},
                                                  {"Authorization", "Bearer " + token}}});
  ExpectUnauthorizedPage(r);
  EXPECT_TRUE(up.requests().empty()) << DescribeUpstream(up);
}

// --- 5. audiences ---------------------------------------------------------------------------

TEST_F(GatewayE2E, TrailingSlashAndCustomAudiencesAreAccepted) {
  FakeUpstream up;
  Service svc = NewService("hello", up);
  Caller c = NewCaller("caller");
  Grant(svc.path, c.member(), "roles/run.invoker");
  ASSERT_NE(svc.uri.back(), '/');
  http::ClientResponse slash = CallWithToken(svc, IdToken(c, svc.uri + "/"));
  EXPECT_EQ(slash.status, 200) << Describe(slash);

  const std::string custom = "https://api.e2e.example/";
  std::string custom_token = IdToken(c, custom);
  ExpectUnauthorizedPage(CallWithToken(svc, custom_token));  // not an audience yet
  ApiResponse patch = moat_->Api("PATCH", svc.path + "?updateMask=customAudiences",
                                 "{\"customAudiences\":[\"" + custom + "\"]}");
  MustOk(patch, "patch customAudiences");
  http::ClientResponse r = CallWithToken(svc, custom_token, patch.revision);
  EXPECT_EQ(r.status, 200) << Describe(r);
  // The default URL stays an accepted audience.
  http::ClientResponse def = CallWithToken(svc, IdToken(c, svc.uri));
  EXPECT_EQ(def.status, 200) << Describe(def);
}

// --- 6. roles -------------------------------------------------------------------------------

TEST_F(GatewayE2E, OnlyRolesWithRunRoutesInvokeAdmit) {
  FakeUpstream up;
  Service svc = NewService("hello", up);
  Caller c = NewCaller("caller");
  std::string token = IdToken(c, svc.uri);
  ExpectForbiddenPage(CallWithToken(svc, token));  // verified, but no role at all

  Grant(svc.path, c.member(), "roles/run.viewer");
  ExpectForbiddenPage(CallWithToken(svc, token));
  EXPECT_TRUE(up.requests().empty()) << DescribeUpstream(up);

  Grant(svc.path, c.member(), "roles/run.servicesInvoker");
  http::ClientResponse r = CallWithToken(svc, token);
  EXPECT_EQ(r.status, 200) << Describe(r);
  EXPECT_EQ(up.requests().size(), 1u);
}

// --- 7. public principals -------------------------------------------------------------------

TEST_F(GatewayE2E, AllUsersNeedsNoToken) {
  FakeUpstream up;
  Service svc = NewService("hello", up);
  ExpectForbiddenPage(Call(svc));
  Grant(svc.path, "allUsers", "roles/run.invoker");
  http::ClientResponse r = Call(svc, {.method = "POST", .body = "Testing public access"});
  EXPECT_EQ(r.status, 200) << Describe(r);
  EXPECT_EQ(r.body, "upstream got POST /: Testing public access");
}

TEST_F(GatewayE2E, AllAuthenticatedUsersNeedsAValidToken) {
  FakeUpstream up;
  Service svc = NewService("hello", up);
  Caller c = NewCaller("anyone");  // holds no role of its own
  Grant(svc.path, "allAuthenticatedUsers", "roles/run.invoker");
  ExpectForbiddenPage(Call(svc));
  ExpectUnauthorizedPage(CallWithToken(svc, "garbage"));
  EXPECT_TRUE(up.requests().empty()) << DescribeUpstream(up);
  http::ClientResponse r = CallWithToken(svc, IdToken(c, svc.uri));
  EXPECT_EQ(r.status, 200) << Describe(r);
}

// --- 8. groups ------------------------------------------------------------------------------

TEST_F(GatewayE2E, GroupMembershipGrants) {
  FakeUpstream up;
  Service svc = NewService("hello", up);
  Caller member = NewCaller("member");
  Caller outsider = NewCaller("outsider");
  ApiResponse g = moat_->Api("POST", "/moat/v1/groups",
                             "{\"email\":\"team@e2e.example\",\"members\":[\"" + member.member() +
                                 "\"]}");
  MustOk(g, "create group");
  Sync(g.revision);
  Grant(svc.path, "group:team@e2e.example", "roles/run.invoker");
  http::ClientResponse r = CallWithToken(svc, IdToken(member, svc.uri));
  EXPECT_EQ(r.status, 200) << Describe(r);
  ExpectForbiddenPage(CallWithToken(svc, IdToken(outsider, svc.uri)));
}

TEST_F(GatewayE2E, NestedGroupMembershipGrants) {
  FakeUpstream up;
  Service svc = NewService("hello", up);
  Caller c = NewCaller("nested");
  MustOk(moat_->Api("POST", "/moat/v1/groups",
                    "{\"email\":\"inner@e2e.example\",\"members\":[\"" + c.member() + "\"]}"),
         "create inner group");
  ApiResponse outer = moat_->Api("POST", "/moat/v1/groups",
                                 "{\"email\":\"outer@e2e.example\",\"members\":"
                                 "[\"group:inner@e2e.example\"]}");
  MustOk(outer, "create outer group");
  Sync(outer.revision);
  Grant(svc.path, "group:outer@e2e.example", "roles/run.invoker");
  http::ClientResponse r = CallWithToken(svc, IdToken(c, svc.uri));
  EXPECT_EQ(r.status, 200) << Describe(r);
}

// --- 9. inherited grants --------------------------------------------------------------------

TEST_F(GatewayE2E, ProjectGrantCoversEveryServiceOfTheProject) {
  FakeUpstream up;
  Service a = NewService("svc-a", up);
  Service b = NewService("svc-b", up);
  Service other = Must(moat_->CreateUpstreamService("other-project", kRegion, "svc-c", up.url()),
                       "create service in another project");
  Caller c = NewCaller("caller");
  std::string ta = IdToken(c, a.uri), tb = IdToken(c, b.uri), tc = IdToken(c, other.uri);
  ExpectForbiddenPage(CallWithToken(a, ta));
  Grant(std::string("/v1/projects/") + kProject, c.member(), "roles/run.invoker");
  EXPECT_EQ(CallWithToken(a, ta).status, 200);
  EXPECT_EQ(CallWithToken(b, tb).status, 200);
  ExpectForbiddenPage(CallWithToken(other, tc));  // another project's service
}

TEST_F(GatewayE2E, ProjectSetIamPolicyGrants) {
  FakeUpstream up;
  Service svc = NewService("hello", up);
  Caller c = NewCaller("caller");
  std::string token = IdToken(c, svc.uri);
  // Keep the existing project bindings (read-modify-write, as gcloud does).
  ApiResponse get = moat_->Api("POST", std::string("/v1/projects/") + kProject + ":getIamPolicy",
                               "{\"options\":{\"requestedPolicyVersion\":3}}");
  MustOk(get, "project getIamPolicy");
  bj::object policy = get.json.as_object();
  bj::array bindings;
  if (auto* b = policy.if_contains("bindings")) bindings = b->as_array();
  bj::object binding;
  binding["role"] = "roles/run.invoker";
  binding["members"] = bj::array{bj::value(c.member())};
  bindings.push_back(binding);
  policy["bindings"] = bindings;
  bj::object body;
  body["policy"] = policy;
  ApiResponse set = moat_->Api("POST", std::string("/v1/projects/") + kProject + ":setIamPolicy",
                               json::Serialize(body));
  MustOk(set, "project setIamPolicy");
  Sync(set.revision);
  http::ClientResponse r = CallWithToken(svc, token);
  EXPECT_EQ(r.status, 200) << Describe(r);
}

TEST_F(GatewayE2E, RootGrantCoversEveryProject) {
  FakeUpstream up;
  Service a = NewService("hello", up);
  Service b = Must(moat_->CreateUpstreamService("other-project", kRegion, "svc-b", up.url()),
                   "create service in another project");
  Caller c = NewCaller("caller");
  std::string ta = IdToken(c, a.uri), tb = IdToken(c, b.uri);
  ExpectForbiddenPage(CallWithToken(a, ta));
  Grant("/moat/v1/root", c.member(), "roles/run.invoker");
  EXPECT_EQ(CallWithToken(a, ta).status, 200);
  EXPECT_EQ(CallWithToken(b, tb).status, 200);
}

// --- 10. conditions -------------------------------------------------------------------------

TEST_F(GatewayE2E, ConditionalBindingsFollowRequestTime) {
  FakeUpstream up;
  Service svc = NewService("hello", up);
  Caller c = NewCaller("caller");
  std::string token = IdToken(c, svc.uri);
  auto set_policy = [&](const std::string& expression) {
    bj::object cond;
    cond["title"] = "time bound";
    cond["expression"] = expression;
    bj::object binding;
    binding["role"] = "roles/run.invoker";
    binding["members"] = bj::array{bj::value(c.member())};
    binding["condition"] = cond;
    bj::object policy;
    policy["version"] = 3;
    policy["bindings"] = bj::array{binding};
    bj::object body;
    body["policy"] = policy;
    ApiResponse r = moat_->Api("POST", svc.path + ":setIamPolicy", json::Serialize(body));
    MustOk(r, "setIamPolicy with a condition");
    Sync(r.revision);
    return r.revision;
  };
  int64_t rev = set_policy("request.time < timestamp(\"2000-01-01T00:00:00Z\")");
  ExpectForbiddenPage(CallWithToken(svc, token, rev));
  rev = set_policy("request.time < timestamp(\"2100-01-01T00:00:00Z\")");
  http::ClientResponse r = CallWithToken(svc, token, rev);
  EXPECT_EQ(r.status, 200) << Why(r);
  // The same through the atomic edit with a condition (another account).
  Caller d = NewCaller("conditional");
  ApiResponse add = moat_->AddBinding(
      svc.path, d.member(), "roles/run.invoker",
      "{\"title\":\"expired\",\"expression\":\"request.time < "
      "timestamp(\\\"2000-01-01T00:00:00Z\\\")\"}");
  MustOk(add, "addIamPolicyBinding with a condition");
  Sync(add.revision);
  ExpectForbiddenPage(CallWithToken(svc, IdToken(d, svc.uri), add.revision));
}

// A public grant bounded in time ends when its time does, with no policy change: the gateway
// keeps the allUsers answer of a service only when no condition was evaluated to reach it.
TEST_F(GatewayE2E, ExpiringPublicGrantEndsWithoutAPolicyChange) {
  FakeUpstream up;
  Service svc = NewService("hello", up);
  auto until = std::chrono::system_clock::now() + std::chrono::seconds(2);
  ApiResponse add = moat_->AddBinding(
      svc.path, "allUsers", "roles/run.invoker",
      "{\"title\":\"briefly\",\"expression\":\"request.time < timestamp(\\\"" +
          FormatRfc3339(until) + "\\\")\"}");
  MustOk(add, "addIamPolicyBinding for allUsers with a condition");
  Sync(add.revision);
  http::ClientResponse open = Call(svc, {.min_revision = add.revision});
  EXPECT_EQ(open.status, 200) << Describe(open);
  // Polled (the same snapshot throughout) until the bound passes; then refused.
  int status = open.status;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (status == 200 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    status = Call(svc, {}).status;
  }
  EXPECT_EQ(status, 403);
  EXPECT_GE(std::chrono::system_clock::now(), until);
}

// Google accepts timestamps up to 9999-12-31T23:59:59Z. A far-future bound must either work
// or be refused when the policy is written, never be stored and then silently evaluate to
// false.
TEST_F(GatewayE2E, FarFutureConditionTimestampMatchesOrIsRefused) {
  FakeUpstream up;
  Service svc = NewService("hello", up);
  Caller c = NewCaller("caller");
  std::string token = IdToken(c, svc.uri);
  for (std::string bound : {"2999-01-01T00:00:00Z", "9999-12-31T23:59:59Z"}) {
    SCOPED_TRACE(bound);
    ApiResponse add = moat_->AddBinding(
        svc.path, c.member(), "roles/run.invoker",
        "{\"title\":\"far\",\"expression\":\"request.time < timestamp(\\\"" + bound + "\\\")\"}");
    if (add.status == 400) continue;  // refused up front: acceptable
    MustOk(add, "addIamPolicyBinding with a far-future condition");
    Sync(add.revision);
    http::ClientResponse r = CallWithToken(svc, token, add.revision);
    EXPECT_EQ(r.status, 200) << "the condition was stored but does not match now\n" << Why(r);
    MustOk(moat_->Api("POST", svc.path + ":setIamPolicy", "{\"policy\":{}}"), "clear policy");
  }
}

// --- 11. a policy change is enforced on the next request --------------------------------------

TEST_F(GatewayE2E, PolicyChangeEnforcedOnNextRequest) {
  FakeUpstream up;
  Service svc = NewService("hello", up);
  Caller c = NewCaller("caller");
  std::string token = IdToken(c, svc.uri);
  for (int round = 0; round < 5; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    ApiResponse add = moat_->AddBinding(svc.path, c.member(), "roles/run.invoker");
    MustOk(add, "grant");
    ASSERT_GT(add.revision, 0) << add.Describe();
    http::ClientResponse allowed = CallWithToken(svc, token, add.revision);
    EXPECT_EQ(allowed.status, 200) << Describe(allowed);
    ApiResponse remove = moat_->RemoveBinding(svc.path, c.member(), "roles/run.invoker");
    MustOk(remove, "revoke");
    ASSERT_GT(remove.revision, add.revision) << remove.Describe();
    http::ClientResponse denied = CallWithToken(svc, token, remove.revision);
    ExpectForbiddenPage(denied);
  }
}

// The same cycle, waiting for each revision through the API first: isolates stale gateway
// caches (per-thread IAM snapshots, verified-token cache) from the X-Moat-Min-Revision wait.
TEST_F(GatewayE2E, PolicyChangeEnforcedOnceTheRevisionIsLive) {
  FakeUpstream up;
  Service svc = NewService("hello", up);
  Caller c = NewCaller("caller");
  std::string token = IdToken(c, svc.uri);
  for (int round = 0; round < 5; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    ApiResponse add = moat_->AddBinding(svc.path, c.member(), "roles/run.invoker");
    MustOk(add, "grant");
    Sync(add.revision);
    // Several requests: they may land on different gateway worker threads.
    for (int i = 0; i < 4; ++i) EXPECT_EQ(CallWithToken(svc, token).status, 200);
    ApiResponse remove = moat_->RemoveBinding(svc.path, c.member(), "roles/run.invoker");
    MustOk(remove, "revoke");
    Sync(remove.revision);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(CallWithToken(svc, token).status, 403);
  }
}

// X-Moat-Min-Revision is honoured by the gateway: a revision that will not exist within the
// wait answers 503 instead of deciding on an older policy.
TEST_F(GatewayE2E, GatewayHonoursMinRevision) {
  FakeUpstream up;
  Service svc = NewService("hello", up);
  int64_t rev = Grant(svc.path, "allUsers", "roles/run.invoker");
  http::ClientResponse now = Call(svc, {.min_revision = rev});
  EXPECT_EQ(now.status, 200) << Describe(now);
  auto start = std::chrono::steady_clock::now();
  http::ClientResponse future = Call(svc, {.min_revision = rev + 1000});
  EXPECT_EQ(future.status, 503) << Describe(future);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  http::ClientResponse bad = Call(svc, {.headers = {{"X-Moat-Min-Revision", "soon"}}});
  EXPECT_EQ(bad.status, 400) << Describe(bad);
  EXPECT_EQ(up.requests().size(), 1u) << DescribeUpstream(up);
  for (const auto& r : up.requests()) EXPECT_EQ(r.Count("X-Moat-Min-Revision"), 0u);
}

// --- 12. a denied body never reaches the upstream ---------------------------------------------

TEST_F(GatewayE2E, DeniedRequestBodyNeverReachesUpstream) {
  FakeUpstream up;
  Service svc = NewService("hello", up);
  Caller c = NewCaller("norole");
  // Small enough to be written before the gateway answers and closes (http::Fetch writes the
  // whole body before it reads the response).
  std::string body(8 * 1024, 'S');
  GatewayRequest req{.method = "POST", .path = "/upload", .body = body};
  ExpectForbiddenPage(Call(svc, req), "/upload");
  req.headers = {{"Authorization", "Bearer garbage"}};
  ExpectUnauthorizedPage(Call(svc, req));
  req.headers = {{"Authorization", "Bearer " + IdToken(c, svc.uri)}};
  ExpectForbiddenPage(Call(svc, req), "/upload");
  std::string host = Must(http::ParseHttpUrl(svc.uri), "parse uri").authority;
  {
    // A body in the same packet as the head.
    RawGateway raw(moat_->gateway_port());
    EXPECT_EQ(raw.Exchange("POST /raw HTTP/1.1\r\nHost: " + host +
                           "\r\nContent-Length: 10\r\n\r\nsecret-pay"),
              403);
  }
  {
    // A large body: the gateway may close before all of it is written; either way nothing
    // reaches the upstream.
    RawGateway raw(moat_->gateway_port());
    int status = raw.Exchange("POST /big HTTP/1.1\r\nHost: " + host +
                              "\r\nContent-Length: 4194304\r\n\r\n" + std::string(4194304, 'B'));
    EXPECT_TRUE(status == 403 || status == 0) << status;
  }
  {
    // A chunked body.
    RawGateway raw(moat_->gateway_port());
    EXPECT_EQ(raw.Exchange("POST /chunked HTTP/1.1\r\nHost: " + host +
                           "\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nsecret\r\n0\r\n\r\n"),
              403);
  }
  EXPECT_TRUE(up.requests().empty()) << DescribeUpstream(up);
}

// --- 13. invokerIamDisabled -----------------------------------------------------------------

TEST_F(GatewayE2E, InvokerIamDisabledNeedsNoToken) {
  FakeUpstream up;
  Service open = Must(moat_->CreateService(kProject, kRegion, "open",
                                           "{\"upstream\":\"" + up.url() + "\"}",
                                           "\"invokerIamDisabled\":true"),
                      "create service");
  http::ClientResponse r = Call(open);
  EXPECT_EQ(r.status, 200) << Describe(r);

  // Toggled on an existing private service.
  Service svc = NewService("hello", up);
  ExpectForbiddenPage(Call(svc));
  ApiResponse on = moat_->Api("PATCH", svc.path + "?updateMask=invokerIamDisabled",
                              "{\"invokerIamDisabled\":true}");
  MustOk(on, "disable the invoker check");
  http::ClientResponse r2 = Call(svc, {.min_revision = on.revision});
  EXPECT_EQ(r2.status, 200) << Describe(r2);
  ApiResponse off = moat_->Api("PATCH", svc.path + "?updateMask=invokerIamDisabled",
                               "{\"invokerIamDisabled\":false}");
  MustOk(off, "enable the invoker check");
  ExpectForbiddenPage(Call(svc, {.min_revision = off.revision}));
}

// --- 14. request smuggling ------------------------------------------------------------------


TEST_F(GatewayE2E, SmugglingAttemptsAre400AndNeverForwarded) {
  FakeUpstream up;
  Service svc = NewService("hello", up);
  Grant(svc.path, "allUsers", "roles/run.invoker");
  std::string host = Must(http::ParseHttpUrl(svc.uri), "parse uri").authority;
  struct Case {
    const char* name;
    std::string bytes;
  } cases[] = {
      {"CL+TE", "POST / HTTP/1.1\r\nHost: " + host +
                    "\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX"},
      {"TE+CL", "POST / HTTP/1.1\r\nHost: " + host +
                    "\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\nX"},
      {"duplicate CL (different)", "POST / HTTP/1.1\r\nHost: " + host +
                                       "\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"},
      {"duplicate CL (same)", "POST / HTTP/1.1\r\nHost: " + host +
                                  "\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"},
      {"CL list", "POST / HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 5, 5\r\n\r\nhello"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    RawGateway raw(moat_->gateway_port());
    EXPECT_EQ(raw.Exchange(c.bytes), 400);
  }
  EXPECT_TRUE(up.requests().empty()) << DescribeUpstream(up);
  // Control: the same service answers a well-formed request.
  RawGateway raw(moat_->gateway_port());
  EXPECT_EQ(raw.Exchange("POST / HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 5\r\n\r\nhello"),
            200);
  EXPECT_EQ(up.requests().size(), 1u) << DescribeUpstream(up);
}

// --- 15. limits ----------------------------------------------------------------------------

TEST_F(GatewayE2E, OversizedHeadIs431AndOversizedBodyIs413) {
  FakeUpstream up;
  Service svc = NewService("hello", up);
  Grant(svc.path, "allUsers", "roles/run.invoker");
  std::string host = Must(http::ParseHttpUrl(svc.uri), "parse uri").authority;
  {
    RawGateway raw(moat_->gateway_port());
    EXPECT_EQ(raw.Exchange("GET / HTTP/1.1\r\nHost: " + host + "\r\nX-Big: " +
                           std::string(100 * 1024, 'a') + "\r\n\r\n"),
              431);
  }
  {
    RawGateway raw(moat_->gateway_port());
    EXPECT_EQ(raw.Exchange("POST / HTTP/1.1\r\nHost: " + host +
                           "\r\nContent-Length: " + std::to_string(32 * 1024 * 1024 + 1) +
                           "\r\n\r\nstart-of-a-body"),
              413);
  }
  EXPECT_TRUE(up.requests().empty()) << DescribeUpstream(up);
  // Control: the service itself answers.
  http::ClientResponse ok = Call(svc, {.method = "POST", .body = "small"});
  EXPECT_EQ(ok.status, 200) << Describe(ok);
}

// --- 16. upstream down ---------------------------------------------------------------------

TEST_F(GatewayE2E, UpstreamDownIs502AndOtherServicesKeepServing) {
  FakeUpstream up;
  Service good = NewService("good", up);
  Service dead = Must(moat_->CreateUpstreamService(kProject, kRegion, "dead",
                                                   "http://127.0.0.1:" +
                                                       std::to_string(ClosedLoopbackPort())),
                      "create service");
  Grant(good.path, "allUsers", "roles/run.invoker");
  Grant(dead.path, "allUsers", "roles/run.invoker");
  for (int i = 0; i < 3; ++i) {
    http::ClientResponse d = Call(dead);
    EXPECT_EQ(d.status, 502) << Describe(d);
    EXPECT_FALSE(d.headers.Get("X-Request-Id").empty());
    http::ClientResponse g = Call(good);
    EXPECT_EQ(g.status, 200) << Describe(g);
  }
  EXPECT_EQ(up.requests().size(), 3u);
}

// --- 17. explain a denial -------------------------------------------------------------------

TEST_F(GatewayE2E, DeniedRequestCanBeExplained) {
  FakeUpstream up;
  Service svc = NewService("hello", up);
  Caller c = NewCaller("caller");
  Grant(svc.path, c.member(), "roles/run.viewer");
  http::ClientResponse denied = CallWithToken(svc, IdToken(c, svc.uri));
  ExpectForbiddenPage(denied);
  std::string id(denied.headers.Get("X-Request-Id"));
  ASSERT_FALSE(id.empty());
  // The caller's page says nothing about why.
  EXPECT_EQ(denied.body.find("run.routes.invoke"), std::string::npos);

  // Audit entries are written asynchronously: poll until the entry is there (bounded).
  ApiResponse r;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  do {
    r = moat_->Api("GET", "/moat/v1/requests/" + id + ":explain");
    if (r.status != 404) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } while (std::chrono::steady_clock::now() < deadline);
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_EQ(r.Str({"requestId"}), id);
  const bj::value* entries = r.json.is_object() ? r.json.as_object().if_contains("entries") : nullptr;
  ASSERT_TRUE(entries && entries->is_array() && !entries->as_array().empty()) << r.Describe();
  const bj::object& e = entries->as_array()[0].as_object();
  EXPECT_EQ(e.at("status"), "DENY") << r.Describe();
  EXPECT_EQ(e.at("principal"), bj::value(c.member())) << r.Describe();
  EXPECT_EQ(e.at("resource"), bj::value(svc.name)) << r.Describe();
  const bj::object& details = e.at("details").as_object();
  ASSERT_TRUE(details.contains("reason")) << r.Describe();
  std::string reason(details.at("reason").as_string());
  EXPECT_FALSE(reason.empty());
  EXPECT_NE(reason.find("run.routes.invoke"), std::string::npos) << reason;
  EXPECT_EQ(details.at("httpStatus"), bj::value(403)) << r.Describe();
  // The token verified; the principal lacked the permission: the entry names the header.
  EXPECT_EQ(details.if_contains("tokenHeader") ? *details.if_contains("tokenHeader") : bj::value(),
            bj::value("Authorization"))
      << r.Describe();

  // A 401 is explained with the token check that failed.
  http::ClientResponse bad = CallWithToken(svc, "garbage");
  std::string bad_id(bad.headers.Get("X-Request-Id"));
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  do {
    r = moat_->Api("GET", "/moat/v1/requests/" + bad_id + ":explain");
    if (r.status != 404) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } while (std::chrono::steady_clock::now() < deadline);
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_NE(r.body.find("token refused"), std::string::npos) << r.Describe();
  EXPECT_NE(r.body.find("\"tokenHeader\":\"Authorization\""), std::string::npos)
      << r.Describe();

  // A token in X-Serverless-Authorization is named as such.
  http::ClientResponse via_serverless = Call(
      svc, {.headers = {{"X-Serverless-Authorization", "Bearer " + IdToken(c, svc.uri)}}});
  ExpectForbiddenPage(via_serverless);
  std::string vs_id(via_serverless.headers.Get("X-Request-Id"));
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  do {
    r = moat_->Api("GET", "/moat/v1/requests/" + vs_id + ":explain");
    if (r.status != 404) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } while (std::chrono::steady_clock::now() < deadline);
  ASSERT_EQ(r.status, 200) << r.Describe();
  EXPECT_NE(r.body.find("\"tokenHeader\":\"X-Serverless-Authorization\""), std::string::npos)
      << r.Describe();

  // Unauthenticated callers learn nothing.
  ApiResponse anon = moat_->Api("GET", "/moat/v1/requests/" + id + ":explain", "", "");
  EXPECT_EQ(anon.status, 401) << anon.Describe();
  // Neither does a caller without moat.auditLogs.list.
  ApiResponse other = moat_->Api("GET", "/moat/v1/requests/" + id + ":explain", "",
                                 moat_->SelfSignedJwt(c.key, moat_->api() + "/"));
  EXPECT_EQ(other.status, 403) << other.Describe();
}

// --- 18. disabling the account --------------------------------------------------------------

TEST_F(GatewayE2E, DisabledAccountRefusedOnNextRequest) {
  FakeUpstream up;
  Service svc = NewService("hello", up);
  Caller c = NewCaller("caller");
  Grant(svc.path, c.member(), "roles/run.invoker");
  std::string token = IdToken(c, svc.uri);
  http::ClientResponse ok = CallWithToken(svc, token);  // now in the verifier's cache
  ASSERT_EQ(ok.status, 200) << Describe(ok);
  ApiResponse dis = moat_->Api(
      "POST", std::string("/v1/projects/") + kProject + "/serviceAccounts/" + c.email + ":disable",
      "{}");
  MustOk(dis, "disable the account");
  ASSERT_GT(dis.revision, 0) << dis.Describe();
  ExpectUnauthorizedPage(CallWithToken(svc, token, dis.revision));
  ApiResponse en = moat_->Api(
      "POST", std::string("/v1/projects/") + kProject + "/serviceAccounts/" + c.email + ":enable",
      "{}");
  MustOk(en, "enable the account");
  http::ClientResponse again = CallWithToken(svc, token, en.revision);
  EXPECT_EQ(again.status, 200) << Why(again);
  EXPECT_EQ(up.requests().size(), 2u) << DescribeUpstream(up);
}

// --- a command-run service (the seed app) ---------------------------------------------------

TEST_F(GatewayE2E, CommandRunSeedAppIsPublicViaAllUsers) {
  if (std::system("python3 -c 'import flask' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "python3 with flask is needed for examples/seed/app.py";
  }
  bj::object container;
  container["image"] = "seed";
  container["command"] =
      bj::array{bj::value("python3"), bj::value(std::string(MOAT_SOURCE_DIR) + "/examples/seed/app.py")};
  bj::object tmpl;
  tmpl["containers"] = bj::array{container};
  Service svc = Must(moat_->CreateService(kProject, kRegion, "seed", json::Serialize(tmpl)),
                     "deploy the seed app");
  ExpectForbiddenPage(Call(svc, {.method = "POST", .body = "Testing public access"}));
  int64_t rev = Grant(svc.path, "allUsers", "roles/run.invoker");
  http::ClientResponse r =
      Call(svc, {.method = "POST",
                 .headers = {{"Content-Type", "application/x-www-form-urlencoded"}},
                 .body = "Testing public access",
                 .min_revision = rev});
  EXPECT_EQ(r.status, 200) << Describe(r);
  EXPECT_EQ(r.body, "Hello! You sent: Testing public access");
}

}  // namespace
}  // namespace moat::e2e

namespace moat::e2e {
namespace {

// Scale to zero and cold start: an idle command service is stopped; the next allowed request
// starts it again and is served; a refused request never starts it.
TEST(GatewayColdStartE2E, IdleCommandServiceStopsAndTheNextAllowedRequestStartsIt) {
  auto started = MoatProcess::Start(MOAT_BIN, {"--scale-to-zero-after=1s"});
  ASSERT_TRUE(started) << started.error().message;
  std::unique_ptr<MoatProcess> moat = std::move(*started);
  bj::object container;
  container["image"] = "python";
  container["command"] = bj::array{"sh", "-c", "exec python3 -m http.server $PORT --bind 127.0.0.1"};
  bj::object tmpl;
  tmpl["containers"] = bj::array{container};
  auto svc = moat->CreateService("cold", "us-central1", "files", json::Serialize(tmpl));
  ASSERT_TRUE(svc) << svc.error().message << "\n" << moat->StderrTail();
  ApiResponse grant = moat->AddBinding(svc->path, "allUsers", "roles/run.invoker");
  ASSERT_EQ(grant.status, 200) << grant.Describe();
  GatewayRequest req;
  req.min_revision = grant.revision;
  auto first = moat->Gateway(svc->uri, req);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 200);

  // Idle for the scale-to-zero period: the server says it stopped the service (polled).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (moat->StderrTail(1 << 20).find("an idle service to zero") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // poll interval
  }
  ASSERT_NE(moat->StderrTail(1 << 20).find("an idle service to zero"), std::string::npos)
      << moat->StderrTail();

  // The next request starts it again and is served.
  auto again = moat->Gateway(svc->uri);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200) << again->body << "\n" << moat->StderrTail();
  ApiResponse metrics = moat->Api("GET", "/metrics");
  EXPECT_NE(metrics.body.find("moat_gateway_activations_total "), std::string::npos);
  EXPECT_EQ(metrics.body.find("moat_gateway_activations_total 0\n"), std::string::npos)
      << metrics.body;
}

}  // namespace
}  // namespace moat::e2e

namespace moat::e2e {
namespace {

// Ingress (GOOGLE.md §1.6): with --internal-networks excluding 127.0.0.1, a service whose
// ingress is internal answers this test (a 127.0.0.1 caller) with Cloud Run's 404, even though
// allUsers may invoke it; a default-ingress service next to it serves. With the default
// networks (loopback is internal) the same kind of service serves.
Service PublicService(MoatProcess& moat, const std::string& id, const FakeUpstream& up,
                      const std::string& ingress, int64_t* revision) {
  std::string extra = ingress.empty() ? "" : "\"ingress\":\"" + ingress + "\"";
  Service svc = Must(moat.CreateService(kProject, kRegion, id,
                                        "{\"upstream\":\"" + up.url() + "\"}", extra),
                     "create service");
  ApiResponse grant = moat.AddBinding(svc.path, "allUsers", "roles/run.invoker");
  MustOk(grant, "grant allUsers");
  *revision = std::max(*revision, grant.revision);
  return svc;
}

TEST(GatewayIngressE2E, InternalIngressRefusesCallersOutsideTheInternalNetworksWith404) {
  auto started = MoatProcess::Start(MOAT_BIN, {"--internal-networks=10.0.0.0/8,fd00::/8"});
  ASSERT_TRUE(started) << started.error().message;
  std::unique_ptr<MoatProcess> moat = std::move(*started);
  FakeUpstream up;
  int64_t rev = 0;
  Service inside = PublicService(*moat, "inside", up, "INGRESS_TRAFFIC_INTERNAL_ONLY", &rev);
  Service lb = PublicService(*moat, "lb", up, "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER", &rev);
  Service open = PublicService(*moat, "open", up, "", &rev);

  auto refused = moat->Gateway(inside.uri, {.min_revision = rev});
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 404) << Describe(*refused);
  EXPECT_NE(refused->body.find("404"), std::string::npos) << refused->body;
  auto refused_lb = moat->Gateway(lb.uri, {.min_revision = rev});
  ASSERT_TRUE(refused_lb);
  EXPECT_EQ(refused_lb->status, 404) << Describe(*refused_lb);
  EXPECT_TRUE(up.requests().empty()) << DescribeUpstream(up);

  auto served = moat->Gateway(open.uri, {.min_revision = rev});
  ASSERT_TRUE(served);
  EXPECT_EQ(served->status, 200) << Describe(*served);
  EXPECT_EQ(up.requests().size(), 1u) << DescribeUpstream(up);

  // The access log names the reason; /metrics counts the refusals.
  EXPECT_NE(moat->StderrTail(1 << 20).find("\"reason\":\"ingress\""), std::string::npos)
      << moat->StderrTail();
  ApiResponse metrics = moat->Api("GET", "/metrics");
  EXPECT_NE(metrics.body.find("moat_gateway_ingress_denials_total 2\n"), std::string::npos)
      << metrics.body;
}

TEST(GatewayIngressE2E, LoopbackIsInternalByDefault) {
  auto started = MoatProcess::Start(MOAT_BIN);
  ASSERT_TRUE(started) << started.error().message;
  std::unique_ptr<MoatProcess> moat = std::move(*started);
  FakeUpstream up;
  int64_t rev = 0;
  Service inside = PublicService(*moat, "inside", up, "INGRESS_TRAFFIC_INTERNAL_ONLY", &rev);
  Service none = PublicService(*moat, "closed", up, "INGRESS_TRAFFIC_NONE", &rev);
  auto served = moat->Gateway(inside.uri, {.min_revision = rev});
  ASSERT_TRUE(served);
  EXPECT_EQ(served->status, 200) << Describe(*served);
  auto refused = moat->Gateway(none.uri, {.min_revision = rev});
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 404) << Describe(*refused);
  EXPECT_EQ(up.requests().size(), 1u) << DescribeUpstream(up);
}

TEST(GatewayIngressE2E, BadInternalNetworksFlagIsRefusedAtStart) {
  auto started = MoatProcess::Start(MOAT_BIN, {"--internal-networks=10.0.0.1/8"});
  ASSERT_FALSE(started);
  EXPECT_NE(started.error().message.find("--internal-networks"), std::string::npos)
      << started.error().message;
}

}  // namespace
}  // namespace moat::e2e

namespace moat::e2e {
namespace {

// Thousands of keep-alive clients need thousands of descriptors, and the usual soft limit is
// 1024: `moat serve` raises its soft limit to the hard one. Started with a soft limit of 256
// (inherited from this test), it still serves 600 clients holding their connections open.
TEST(GatewayCapacityE2E, ServesMoreKeepAliveClientsThanTheInheritedSoftFileLimit) {
  constexpr int kClients = 600;
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  ASSERT_GE(saved.rlim_max, static_cast<rlim_t>(2 * kClients))
      << "the hard open-files limit is too low to run this test";
  if (saved.rlim_cur < static_cast<rlim_t>(kClients + 200)) {
    rlimit mine = saved;
    mine.rlim_cur = std::min<rlim_t>(saved.rlim_max, kClients + 400);
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &mine), 0);
    saved = mine;
  }
  rlimit low = saved;
  low.rlim_cur = 256;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  auto started = MoatProcess::Start(MOAT_BIN);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  ASSERT_TRUE(started) << started.error().message;
  std::unique_ptr<MoatProcess> moat = std::move(*started);
  EXPECT_NE(moat->StderrTail(1 << 20).find("\"open_files_limit\":\"" +
                                            std::to_string(saved.rlim_max) + "\""),
            std::string::npos)
      << moat->StderrTail();

  FakeUpstream up;
  int64_t revision = 0;
  Service svc = PublicService(*moat, "crowd", up, "", &revision);
  std::string host = svc.uri.substr(svc.uri.find("://") + 3);
  std::string request = "GET /hello HTTP/1.1\r\nHost: " + host +
                        "\r\nX-Moat-Min-Revision: " + std::to_string(revision) + "\r\n\r\n";

  std::vector<int> fds;
  auto close_all = [&] {
    for (int fd : fds) ::close(fd);
    fds.clear();
  };
  for (int i = 0; i < kClients; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0) << "client socket " << i << ": " << std::strerror(errno);
    fds.push_back(fd);
    timeval tv{.tv_sec = 10, .tv_usec = 0};  // a refused accept shows as a timeout, not a hang
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(moat->gateway_port());
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0)
        << "client " << i << ": " << std::strerror(errno);
    ASSERT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(request.size()));
    // Read the whole response: the head, then Content-Length bytes of body.
    std::string got;
    size_t head_end = std::string::npos, want = 0;
    char buf[4096];
    while (head_end == std::string::npos || got.size() < want) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
      if (head_end == std::string::npos && (head_end = got.find("\r\n\r\n")) != std::string::npos) {
        http::ResponseHead head;
        if (http::ParseResponseHead(std::string_view(got).substr(0, head_end + 4), "GET", &head)) {
          want = std::string::npos;  // malformed: reported below
          break;
        }
        want = head_end + 4 + head.content_length;
      }
    }
    if (got.rfind("HTTP/1.1 200", 0) != 0 || got.size() < want) {
      std::string tail = moat->StderrTail(2000);
      close_all();
      FAIL() << "client " << i << " of " << kClients << " got `" << got.substr(0, 200)
             << "` (" << std::strerror(errno) << ")\n" << tail;
    }
  }
  EXPECT_EQ(up.requests().size(), static_cast<size_t>(kClients));
  close_all();
}

}  // namespace
}  // namespace moat::e2e
