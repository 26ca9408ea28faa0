// The forward-auth listener on 127.0.0.1:0 with a fake Gate: what nginx auth_request /
// Traefik ForwardAuth send, and what they get back.
#include "gateway/forward_auth.h"

#include <gtest/gtest.h>

#include <mutex>
#include <stdexcept>

#include "gateway/pages.h"
#include "http/server.h"
#include "http/test_util.h"

namespace moat::gateway {
namespace {

using http::testing::RawClient;

constexpr char kGood[] = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";
constexpr char kOther[] = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJib2IifQ.b3RoZXJzaWc";
constexpr char kDown[] = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJkb3duIn0.ZG93bg";
constexpr char kThrow[] = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0aHJvdyJ9.dGhyb3c";
constexpr char kSvcHost[] = "svc-abc123.us-central1.run.localhost";

// Records what it was asked; decides like the gateway test's FakeGate.
class FakeGate : public Gate {
 public:
  struct Seen {
    std::string service, method, target, host, remote, request_id;
  };
  GateDecision Decide(const GateRequest& r) override {
    {
      std::lock_guard lock(mu);
      seen.push_back({r.service.name, std::string(r.method), std::string(r.target),
                      std::string(r.host), std::string(r.remote_addr), std::string(r.request_id)});
    }
    if (r.service.invoker_iam_disabled) return GateDecision::Allow(TokenHeader::kNone, "");
    const std::string_view* tok =
        r.serverless_authorization ? r.serverless_authorization : r.authorization;
    TokenHeader th = r.serverless_authorization ? TokenHeader::kServerlessAuthorization
                                                : TokenHeader::kAuthorization;
    if (tok == nullptr) return GateDecision::Deny(403, "no credential");
    if (*tok == std::string("Bearer ") + kGood) {
      return GateDecision::Allow(th, "user:alice@example.com");
    }
    if (*tok == std::string("Bearer ") + kOther) {
      return GateDecision::Deny(403, "lacks run.routes.invoke", "user:bob@example.com", th);
    }
    if (*tok == std::string("Bearer ") + kDown) return GateDecision::Deny(503, "issuer down");
    if (*tok == std::string("Bearer ") + kThrow) throw std::runtime_error("boom");
    if (*tok == "Bearer weird") return GateDecision::Deny(418, "odd status");
    return GateDecision::Deny(401, "bad signature", "", th);
  }
  std::vector<Seen> Calls() {
    std::lock_guard lock(mu);
    return seen;
  }
  std::mutex mu;
  std::vector<Seen> seen;
};

class ForwardAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    routes_ = std::make_shared<RouteTableHolder>();
    auto t = std::make_shared<RouteTable>();
    auto add = [&](std::string host, bool public_svc, Ingress ingress) {
      auto e = std::make_shared<ServiceEntry>();
      e->name = "projects/p/locations/us-central1/services/" + host.substr(0, host.find('.'));
      e->upstream_host = "127.0.0.1";
      e->upstream_port = 9;  // never contacted: forward-auth only decides
      e->invoker_iam_disabled = public_svc;
      e->ingress = ingress;
      ASSERT_TRUE(t->Add(host, e));
    };
    add(kSvcHost, false, Ingress::kAll);
    add("public.run.localhost", true, Ingress::kAll);
    add("internal.run.localhost", true, Ingress::kInternal);
    add("closed.run.localhost", true, Ingress::kNone);
    routes_->Set(t);
    gate_ = std::make_shared<FakeGate>();
    ForwardAuthOptions fo;
    fo.access_log = getenv("MOAT_TEST_ACCESS_LOG") != nullptr;
    auto nets = IpNetworks::Parse("10.0.0.0/8");
    ASSERT_TRUE(nets);
    fo.internal_networks = *nets;
    fa_ = std::make_unique<ForwardAuth>(fo, routes_, gate_);
    fa_->SetDenialHook([this](const GateRequest& r, const GateDecision& d) {
      std::lock_guard lock(mu_);
      denials_.push_back(std::string(r.request_id) + " " + std::to_string(d.status) + " " +
                         d.reason);
    });
    http::ServerOptions so;
    so.threads = 2;
    server_ = std::make_unique<http::Server>(so, fa_->handler());
    ASSERT_TRUE(server_->Start());
  }
  void TearDown() override { server_->Stop(); }

  // One question on a fresh connection.
  http::testing::RawResponse Ask(const std::string& extra, std::string method = "GET") {
    RawClient c(server_->port());
    c.Send(method + " /auth HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra + "\r\n");
    auto r = c.Read(method);
    EXPECT_TRUE(r);
    return r ? *r : http::testing::RawResponse{};
  }
  static std::string Fwd(std::string host = kSvcHost) {
    return "X-Forwarded-Host: " + host + "\r\nX-Forwarded-Method: POST\r\n" +
           "X-Forwarded-Uri: /orders/7?q=1\r\n";
  }
  static std::string Auth(const char* token) {
    return std::string("Authorization: Bearer ") + token + "\r\n";
  }
  std::vector<std::string> Denials() {
    std::lock_guard lock(mu_);
    return denials_;
  }

  std::shared_ptr<RouteTableHolder> routes_;
  std::shared_ptr<FakeGate> gate_;
  std::unique_ptr<ForwardAuth> fa_;
  std::unique_ptr<http::Server> server_;
  std::mutex mu_;
  std::vector<std::string> denials_;
};

TEST_F(ForwardAuthTest, AllowedAnswers200WithPrincipalAndAsksAboutTheOriginalRequest) {
  auto r = Ask(Fwd() + Auth(kGood) + "X-Forwarded-For: 203.0.113.9, 198.51.100.4\r\n");
  EXPECT_EQ(r.head.status, 200);
  EXPECT_EQ(r.body, "");
  EXPECT_EQ(r.head.headers.Get("X-Moat-Principal"), "user:alice@example.com");
  std::string rid(r.head.headers.Get("X-Request-Id"));
  EXPECT_EQ(rid.size(), 16u);
  auto calls = gate_->Calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].service, "projects/p/locations/us-central1/services/svc-abc123");
  EXPECT_EQ(calls[0].method, "POST");
  EXPECT_EQ(calls[0].target, "/orders/7?q=1");
  EXPECT_EQ(calls[0].host, kSvcHost);
  EXPECT_EQ(calls[0].remote, "198.51.100.4");  // the entry the fronting proxy appended
  EXPECT_EQ(calls[0].request_id, rid);
  EXPECT_TRUE(Denials().empty());
}

TEST_F(ForwardAuthTest, OriginalHeadersAndHostPortAreAccepted) {
  auto r = Ask(std::string("X-Original-Host: SVC-ABC123.us-central1.run.localhost:8080\r\n") +
               "X-Original-Method: DELETE\r\nX-Original-URI: /x\r\nX-Real-IP: 10.1.2.3\r\n" +
               "X-Serverless-Authorization: Bearer " + kGood + "\r\n");
  EXPECT_EQ(r.head.status, 200);
  auto calls = gate_->Calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].method, "DELETE");
  EXPECT_EQ(calls[0].target, "/x");
  EXPECT_EQ(calls[0].remote, "10.1.2.3");
}

TEST_F(ForwardAuthTest, DefaultsToThisRequestsMethodAndRootUri) {
  auto r = Ask(std::string("X-Forwarded-Host: ") + kSvcHost + "\r\n" + Auth(kGood), "HEAD");
  EXPECT_EQ(r.head.status, 200);
  auto calls = gate_->Calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].method, "HEAD");
  EXPECT_EQ(calls[0].target, "/");
  EXPECT_EQ(calls[0].remote.rfind("127.0.0.1:", 0), 0u);  // unknown client: the proxy's address
}

TEST_F(ForwardAuthTest, DenialsMapToStatusesAndReachTheHook) {
  auto bad = Ask(Fwd() + Auth("a.b.c"));
  EXPECT_EQ(bad.head.status, 401);
  EXPECT_EQ(bad.head.headers.Get("WWW-Authenticate"), kWwwAuthenticate);
  EXPECT_EQ(bad.body, "401 Unauthorized\n");
  EXPECT_FALSE(bad.head.headers.Has("X-Moat-Principal"));

  auto other = Ask(Fwd() + Auth(kOther));
  EXPECT_EQ(other.head.status, 403);
  EXPECT_FALSE(other.head.headers.Has("WWW-Authenticate"));
  EXPECT_FALSE(other.head.headers.Has("X-Moat-Principal"));  // only allowed answers name one

  EXPECT_EQ(Ask(Fwd()).head.status, 403);                 // no credential
  EXPECT_EQ(Ask(Fwd() + Auth(kDown)).head.status, 503);   // issuer down: closed
  EXPECT_EQ(Ask(Fwd() + Auth(kThrow)).head.status, 503);  // the gate threw
  EXPECT_EQ(Ask(Fwd() + "Authorization: Bearer weird\r\n").head.status, 403);  // odd → 403

  auto d = Denials();
  ASSERT_EQ(d.size(), 6u);  // every denial is audited, with the gate's own status and reason
  EXPECT_NE(d[0].find(" 401 bad signature"), std::string::npos);
  EXPECT_NE(d[1].find(" 403 lacks run.routes.invoke"), std::string::npos);
  EXPECT_NE(d[2].find(" 403 no credential"), std::string::npos);
  EXPECT_NE(d[3].find(" 503 issuer down"), std::string::npos);
  EXPECT_NE(d[4].find(" 503 gate failed: boom"), std::string::npos);
  EXPECT_NE(d[5].find(" 418 odd status"), std::string::npos);
}

TEST_F(ForwardAuthTest, PublicServiceIsAllowedWithoutToken) {
  auto r = Ask(Fwd("public.run.localhost"));
  EXPECT_EQ(r.head.status, 200);
  EXPECT_FALSE(r.head.headers.Has("X-Moat-Principal"));
}

TEST_F(ForwardAuthTest, UnknownHostIs404AndNeverAsksTheGate) {
  EXPECT_EQ(Ask(Fwd("nope.run.localhost") + Auth(kGood)).head.status, 404);
  EXPECT_TRUE(gate_->Calls().empty());
}

TEST_F(ForwardAuthTest, MalformedQuestionsAre400) {
  EXPECT_EQ(Ask(Auth(kGood)).head.status, 400);  // no X-Forwarded-Host
  EXPECT_EQ(Ask("X-Forwarded-Host: \r\n" + Auth(kGood)).head.status, 400);
  EXPECT_EQ(Ask(Fwd() + "X-Forwarded-Host: public.run.localhost\r\n" + Auth(kGood)).head.status,
            400);  // which one?
  EXPECT_EQ(
      Ask("X-Forwarded-Host: a.run.localhost, " + std::string(kSvcHost) + "\r\n" + Auth(kGood))
          .head.status,
      400);
  EXPECT_EQ(Ask("X-Forwarded-Host: " + std::string(kSvcHost) + "\r\nX-Forwarded-Uri: orders\r\n" +
                Auth(kGood))
                .head.status,
            400);
  EXPECT_EQ(Ask("X-Forwarded-Host: " + std::string(kSvcHost) + "\r\nX-Forwarded-Method: GE(T\r\n" +
                Auth(kGood))
                .head.status,
            400);
  EXPECT_TRUE(gate_->Calls().empty());
}

TEST_F(ForwardAuthTest, RepeatedCredentialHeadersAre400BeforeTheGate) {
  EXPECT_EQ(Ask(Fwd() + Auth(kGood) + Auth(kOther)).head.status, 400);
  EXPECT_EQ(Ask(Fwd() + "X-Serverless-Authorization: Bearer x\r\n" +
                "X-Serverless-Authorization: Bearer " + kGood + "\r\n")
                .head.status,
            400);
  EXPECT_TRUE(gate_->Calls().empty());
}

TEST_F(ForwardAuthTest, IngressUsesTheOriginalClientAndFailsClosedWhenUnknown) {
  // Internal ingress: the forward-auth caller itself is loopback, which must not count.
  EXPECT_EQ(Ask(Fwd("internal.run.localhost")).head.status, 404);
  EXPECT_EQ(Ask(Fwd("internal.run.localhost") + "X-Forwarded-For: 203.0.113.9\r\n").head.status,
            404);
  EXPECT_EQ(
      Ask(Fwd("internal.run.localhost") + "X-Forwarded-For: 203.0.113.9, 10.0.0.7\r\n").head.status,
      200);
  EXPECT_EQ(Ask(Fwd("closed.run.localhost") + "X-Forwarded-For: 10.0.0.7\r\n").head.status, 404);
  EXPECT_EQ(gate_->Calls().size(), 1u);  // only the allowed source reached the gate
}

TEST_F(ForwardAuthTest, KeepsTheConnectionAcrossQuestions) {
  RawClient c(server_->port());
  std::string q = "GET /auth HTTP/1.1\r\nHost: 127.0.0.1\r\n" + Fwd() + Auth(kGood) + "\r\n";
  std::string no = "GET /auth HTTP/1.1\r\nHost: 127.0.0.1\r\n" + Fwd() + Auth(kOther) + "\r\n";
  c.Send(q + no + q);  // pipelined
  for (int want : {200, 403, 200}) {
    auto r = c.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->head.status, want);
  }
  EXPECT_EQ(gate_->Calls().size(), 3u);
}

TEST_F(ForwardAuthTest, ABodyIsNotReadAndTheConnectionCloses) {
  RawClient c(server_->port());
  c.Send("POST /auth HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n" + Fwd() + Auth(kGood) +
         "\r\nhello");
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->head.status, 200);
  EXPECT_FALSE(r->head.keep_alive);
  EXPECT_TRUE(c.WaitClosed());
}

TEST_F(ForwardAuthTest, RouteChangesApplyToTheNextQuestion) {
  EXPECT_EQ(Ask(Fwd("new.run.localhost") + Auth(kGood)).head.status, 404);
  auto t = std::make_shared<RouteTable>();
  auto e = std::make_shared<ServiceEntry>();
  e->name = "projects/p/locations/us-central1/services/new";
  ASSERT_TRUE(t->Add("new.run.localhost", e));
  routes_->Set(t);
  EXPECT_EQ(Ask(Fwd("new.run.localhost") + Auth(kGood)).head.status, 200);
}

}  // namespace
}  // namespace moat::gateway
