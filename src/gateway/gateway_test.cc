// Integration tests: the gateway on 127.0.0.1:0 with a fake Gate, in front of a real
// upstream (a blocking in-test server that records every byte it receives).
#include "gateway/gateway.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <thread>

#include "common/log.h"
#include "gateway/pages.h"
#include "http/client.h"
#include "http/server.h"
#include "http/stream.h"
#include "http/test_util.h"

namespace moat::gateway {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using http::testing::RawClient;

constexpr char kGood[] = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";
constexpr char kOther[] = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJib2IifQ.b3RoZXJzaWc";
constexpr char kDown[] = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJkb3duIn0.ZG93bg";
constexpr char kSvcHost[] = "svc-abc123.us-central1.run.localhost";

// A blocking HTTP/1.1 upstream: one thread per connection, records requests.
class Upstream {
 public:
  struct Seen {
    std::string head;
    std::string body;
  };
  // Answers requests whose path starts with "/script" (after the head is read, before any
  // body): writes whatever it likes; returns whether to go on serving the connection.
  using Script = std::function<bool(Upstream&, tcp::socket&, const http::RequestHead&,
                                    std::string& buf)>;

  Upstream() : acceptor_(ioc_, {asio::ip::make_address("127.0.0.1"), 0}) {
    port_ = acceptor_.local_endpoint().port();
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }
  ~Upstream() {
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
    accept_thread_.join();
    {
      std::lock_guard lock(mu_);
      for (auto& s : sockets_) {
        if (s->is_open()) ::shutdown(s->native_handle(), SHUT_RDWR);
      }
    }
    for (auto& t : threads_) t.join();
  }
  uint16_t port() const { return port_; }
  void SetScript(Script s) {
    std::lock_guard lock(mu_);
    script_ = std::move(s);
  }
  // Connections whose serving thread ended (the socket is then closed).
  size_t closed() {
    std::lock_guard lock(mu_);
    return closed_;
  }
  // Closes with SO_LINGER 0: the peer sees a reset, not a FIN.
  void Reset(tcp::socket& s) {
    std::lock_guard lock(mu_);
    boost::system::error_code ec;
    s.set_option(tcp::socket::linger(true, 0), ec);
    s.close(ec);
  }
  bool Fill(tcp::socket& s, std::string& buf) {
    char tmp[65536];
    boost::system::error_code ec;
    size_t n = s.read_some(asio::buffer(tmp), ec);
    if (ec) return false;
    buf.append(tmp, n);
    return true;
  }
  void Write(tcp::socket& s, std::string_view data) {
    boost::system::error_code ec;
    asio::write(s, asio::buffer(data.data(), data.size()), ec);
  }
  // Reads the request body announced by `h` from `buf` and the socket.
  bool ReadBody(tcp::socket& s, const http::RequestHead& h, std::string& buf, std::string* body) {
    if (h.body == http::BodyKind::kLength) {
      while (buf.size() < h.content_length) {
        if (!Fill(s, buf)) return false;
      }
      *body = buf.substr(0, h.content_length);
      buf.erase(0, h.content_length);
    } else if (h.body == http::BodyKind::kChunked) {
      http::ChunkedDecoder d;
      for (;;) {
        std::string_view v = buf;
        while (!v.empty() && !d.done() && !d.failed()) {
          auto st = d.Feed(v);
          body->append(st.data);
          v.remove_prefix(st.consumed);
        }
        buf = std::string(v);
        if (d.failed()) return false;
        if (d.done()) break;
        if (!Fill(s, buf)) return false;
      }
    }
    return true;
  }
  std::vector<Seen> seen() {
    std::lock_guard lock(mu_);
    return seen_;
  }
  size_t connections() {
    std::lock_guard lock(mu_);
    return sockets_.size();
  }
  // Blocks until at least n requests were recorded (bounded, so a bug fails instead of hangs).
  bool WaitSeen(size_t n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return seen_.size() >= n; });
  }

 private:
  void AcceptLoop() {
    for (;;) {
      auto sock = std::make_shared<tcp::socket>(ioc_);
      boost::system::error_code ec;
      acceptor_.accept(*sock, ec);
      if (ec) return;
      std::lock_guard lock(mu_);
      sockets_.push_back(sock);
      threads_.emplace_back([this, sock] {
        Serve(*sock);
        std::lock_guard lock(mu_);
        boost::system::error_code ignored;
        sock->close(ignored);
        ++closed_;
      });
    }
  }

  void Serve(tcp::socket& s) {
    std::string buf;
    for (;;) {
      size_t end;
      while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
        if (!Fill(s, buf)) return;
      }
      std::string raw = buf.substr(0, end + 4);
      buf.erase(0, end + 4);
      http::RequestHead h;
      if (http::ParseRequestHead(raw, &h)) {
        Write(s, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        return;
      }
      Seen seen{raw, ""};
      if (h.Path().rfind("/script", 0) == 0) {
        Script script;
        {
          std::lock_guard lock(mu_);
          script = script_;
        }
        Record(seen);
        if (!script || !script(*this, s, h, buf)) return;
        continue;
      }
      if (h.Path() == "/ws" || h.Path() == "/ws-hints") {
        Record(seen);
        // Beast closes the socket when the WebSocket closes; the destructor must not shut it
        // down at the same time (a race ThreadSanitizer reports), so this thread takes the
        // descriptor over, under the lock the destructor holds. The tunnel ends when the
        // client (through the gateway) closes.
        tcp::socket own(ioc_);
        {
          std::lock_guard lock(mu_);
          own.assign(tcp::v4(), s.release());
        }
        boost::beast::websocket::stream<tcp::socket&> ws(own);
        boost::system::error_code ec;
        if (h.Path() == "/ws-hints") {  // an interim response before the 101
          Write(own, "HTTP/1.1 103 Early Hints\r\nLink: </app.js>; rel=preload\r\n\r\n");
        }
        ws.accept(asio::buffer(raw + buf), ec);
        if (ec) return;
        for (;;) {
          boost::beast::flat_buffer b;
          ws.read(b, ec);
          if (ec) return;
          ws.text(ws.got_text());
          ws.write(b.data(), ec);
          if (ec) return;
        }
      }
      if (!ReadBody(s, h, buf, &seen.body)) return;
      Record(seen);
      std::string_view path = h.Path();
      if (path == "/hang") {
        while (Fill(s, buf)) {
        }
        return;
      }
      if (path == "/reset") {
        Write(s, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789");
        boost::system::error_code ec;
        s.shutdown(tcp::socket::shutdown_both, ec);  // dies mid-response
        return;
      }
      if (path == "/big") {
        size_t n = std::stoul(std::string(h.Query().substr(2)));  // "n=<bytes>"
        Write(s, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        for (size_t sent = 0; sent < n;) {
          size_t k = std::min<size_t>(65536, n - sent);
          std::string chunk(k, '\0');
          for (size_t i = 0; i < k; ++i) chunk[i] = static_cast<char>('a' + (sent + i) % 26);
          char size_line[32];
          std::snprintf(size_line, sizeof size_line, "%zx\r\n", k);
          Write(s, std::string(size_line) + chunk + "\r\n");
          sent += k;
        }
        Write(s, "0\r\n\r\n");
        continue;
      }
      std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(seen.body.size()) +
                         "\r\nX-Upstream: yes\r\nConnection: X-Secret-Hop\r\nX-Secret-Hop: 1\r\n"
                         "X-Request-Id: upstream-chosen\r\n\r\n" +
                         seen.body;
      Write(s, resp);
    }
  }

  void Record(const Seen& s) {
    std::lock_guard lock(mu_);
    seen_.push_back(s);
    cv_.notify_all();
  }

  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  uint16_t port_;
  std::thread accept_thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::shared_ptr<tcp::socket>> sockets_;
  std::vector<std::thread> threads_;
  std::vector<Seen> seen_;
  Script script_;
  size_t closed_ = 0;
};

class FakeGate : public Gate {
 public:
  GateDecision Decide(const GateRequest& r) override {
    ++calls;
    if (r.service.invoker_iam_disabled) return GateDecision::Allow(TokenHeader::kNone, "");
    const std::string_view* tok =
        r.serverless_authorization ? r.serverless_authorization : r.authorization;
    TokenHeader th = r.serverless_authorization ? TokenHeader::kServerlessAuthorization
                                                : TokenHeader::kAuthorization;
    if (tok == nullptr || tok->empty()) return GateDecision::Deny(403, "no credential");
    if (*tok == std::string("Bearer ") + kGood) {
      return GateDecision::Allow(th, "user:alice@example.com");
    }
    if (*tok == std::string("Bearer ") + kOther) {
      return GateDecision::Deny(403, "lacks run.routes.invoke", "user:bob@example.com", th);
    }
    if (*tok == std::string("Bearer ") + kDown) return GateDecision::Deny(503, "issuer down");
    return GateDecision::Deny(401, "bad signature");
  }
  std::atomic<int> calls{0};
};

uint16_t ClosedPort() {
  asio::io_context ioc;
  tcp::acceptor a(ioc, {asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

class GatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    routes_ = std::make_shared<RouteTableHolder>();
    routes_->Set(MakeTable());
    gate_ = std::make_shared<FakeGate>();
    GatewayOptions go;
    go.max_request_body_bytes = 64 * 1024;
    go.access_log = getenv("MOAT_TEST_ACCESS_LOG") != nullptr;
    gateway_ = std::make_unique<Gateway>(go, routes_, gate_);
    gateway_->SetDenialHook([this](const GateRequest& r, const GateDecision& d) {
      std::lock_guard lock(mu_);
      denials_.push_back(std::string(r.request_id) + " " + std::to_string(d.status) + " " +
                         d.reason + " [" + std::string(TokenHeaderName(d.token_header)) + "]");
    });
    http::ServerOptions so;
    so.threads = 2;
    so.max_head_bytes = 8 * 1024;
    server_ = std::make_unique<http::Server>(so, gateway_->handler());
    ASSERT_TRUE(server_->Start());
  }
  void TearDown() override { server_->Stop(); }

  std::shared_ptr<RouteTable> MakeTable() {
    auto t = std::make_shared<RouteTable>();
    auto add = [&](std::string host, uint16_t port, bool public_svc = false,
                   std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
      auto e = std::make_shared<ServiceEntry>();
      e->name = "projects/p/locations/us-central1/services/" + host.substr(0, host.find('.'));
      e->upstream_host = "127.0.0.1";
      e->upstream_port = port;
      e->invoker_iam_disabled = public_svc;
      e->request_timeout = timeout;
      EXPECT_TRUE(t->Add(host, e));
    };
    add(kSvcHost, upstream_.port());
    add("public.run.localhost", upstream_.port(), true);
    add("down.run.localhost", ClosedPort());
    add("slow.run.localhost", upstream_.port(), false, std::chrono::milliseconds(300));
    return t;
  }

  // Swaps in the usual table plus a public service `name` at `host`, fronting `port`.
  void RouteWith(const std::string& host, const std::string& name, uint16_t port) {
    auto t = MakeTable();
    auto e = std::make_shared<ServiceEntry>();
    e->name = "projects/p/locations/l/services/" + name;
    e->upstream_host = "127.0.0.1";
    e->upstream_port = port;
    e->invoker_iam_disabled = true;
    ASSERT_TRUE(t->Add(host, e));
    routes_->Set(t);
  }

  std::optional<http::testing::RawResponse> Send(RawClient& c, const std::string& req,
                                                 std::string_view method = "GET") {
    c.Send(req);
    return c.Read(method);
  }
  std::string Get(std::string path, std::string extra, std::string host = kSvcHost) {
    return "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\n" + extra + "\r\n";
  }
  uint16_t port() { return server_->port(); }

  Upstream upstream_;
  std::shared_ptr<RouteTableHolder> routes_;
  std::shared_ptr<FakeGate> gate_;
  std::unique_ptr<Gateway> gateway_;
  std::unique_ptr<http::Server> server_;
  std::mutex mu_;
  std::vector<std::string> denials_;
};

TEST_F(GatewayTest, AllowedRequestReachesUpstreamWithStrippedSignatureAndForwardedHeaders) {
  RawClient c(port());
  const std::string tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  auto r = Send(c, Get("/echo?x=1", std::string("Authorization: Bearer ") + kGood +
                                        "\r\nX-Forwarded-For: 203.0.113.9\r\n"
                                        "Connection: keep-alive, X-Drop\r\nX-Drop: 1\r\n"
                                        "X-Google-Internal: spoof\r\nX-Moat-Principal: spoof\r\n"
                                        "Proxy-Authorization: Basic eA==\r\n"
                                        "X-Request-Id: spoofed\r\ntraceparent: " +
                                        tp + "\r\n"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->head.status, 200);
  std::string rid(r->head.headers.Get("X-Request-Id"));
  EXPECT_EQ(rid.size(), 16u);
  EXPECT_EQ(r->head.headers.Count("X-Request-Id"), 1u);
  EXPECT_EQ(r->head.headers.Get("X-Upstream"), "yes");
  EXPECT_FALSE(r->head.headers.Has("X-Secret-Hop"));  // named by the upstream's Connection

  ASSERT_TRUE(upstream_.WaitSeen(1));
  std::string h = upstream_.seen()[0].head;
  EXPECT_EQ(h.rfind("GET /echo?x=1 HTTP/1.1\r\n", 0), 0u);
  EXPECT_NE(h.find("Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9."
                   "SIGNATURE_REMOVED_BY_GOOGLE\r\n"),
            std::string::npos)
      << h;
  EXPECT_EQ(h.find("c2lnbmF0dXJl"), std::string::npos);  // the signature never leaves
  EXPECT_NE(h.find("X-Forwarded-For: 203.0.113.9, 127.0.0.1\r\n"), std::string::npos);
  EXPECT_NE(h.find("X-Forwarded-Proto: http\r\n"), std::string::npos);
  EXPECT_NE(h.find("traceparent: " + tp + "\r\n"), std::string::npos);
  EXPECT_NE(h.find("X-Request-Id: " + rid + "\r\n"), std::string::npos);
  EXPECT_NE(h.find(std::string("Host: ") + kSvcHost + "\r\n"), std::string::npos);
  for (const char* gone : {"X-Drop", "spoof", "Proxy-Authorization", "Connection:", "spoofed"}) {
    EXPECT_EQ(h.find(gone), std::string::npos) << gone;
  }
}

TEST_F(GatewayTest, ServerlessAuthorizationWinsAndAuthorizationPassesUntouched) {
  RawClient c(port());
  auto r = Send(c, Get("/echo", std::string("X-Serverless-Authorization: Bearer ") + kGood +
                                    "\r\nAuthorization: Bearer app-level.opaque.token\r\n"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->head.status, 200);
  ASSERT_TRUE(upstream_.WaitSeen(1));
  std::string h = upstream_.seen()[0].head;
  EXPECT_NE(h.find("X-Serverless-Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9."
                   "SIGNATURE_REMOVED_BY_GOOGLE\r\n"),
            std::string::npos)
      << h;
  EXPECT_NE(h.find("Authorization: Bearer app-level.opaque.token\r\n"), std::string::npos);
  // Missing traceparent: the gateway adds one.
  EXPECT_NE(h.find("traceparent: 00-"), std::string::npos);
}

TEST_F(GatewayTest, PublicServiceDropsUnverifiedServerlessHeader) {
  RawClient c(port());
  auto r = Send(c, Get("/echo",
                       "X-Serverless-Authorization: Bearer forged.forged.forged\r\n"
                       "Authorization: Bearer app.token.value\r\n",
                       "PUBLIC.run.localhost:8080"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->head.status, 200);
  ASSERT_TRUE(upstream_.WaitSeen(1));
  std::string h = upstream_.seen()[0].head;
  EXPECT_EQ(h.find("X-Serverless-Authorization"), std::string::npos);
  EXPECT_NE(h.find("Authorization: Bearer app.token.value\r\n"), std::string::npos);
}

TEST_F(GatewayTest, DenialsGetCloudRunPagesAndNoBodyReachesUpstream) {
  {
    RawClient c(port());
    auto r = Send(c,
                  "POST /upload HTTP/1.1\r\nHost: " + std::string(kSvcHost) +
                      "\r\nAuthorization: Bearer not.a.valid\r\nContent-Length: 11\r\n\r\n"
                      "SECRET-BODY",
                  "POST");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->head.status, 401);
    EXPECT_EQ(r->head.headers.Get("Content-Type"), "text/html; charset=UTF-8");
    EXPECT_EQ(r->head.headers.Get("WWW-Authenticate"),
              "Bearer error=\"invalid_token\" error_description=\"The access token could not be "
              "verified\"");
    EXPECT_EQ(r->body, UnauthorizedPage("/upload"));
    EXPECT_EQ(r->body.find("bad signature"), std::string::npos);  // reason stays internal
    EXPECT_TRUE(c.WaitClosed());  // body announced but not read → connection closed
  }
  {
    RawClient c(port());
    auto r = Send(c, Get("/a<b>?q=1", ""));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->head.status, 403);
    EXPECT_EQ(r->body,
              "<html><head>\n"
              "<meta http-equiv=\"content-type\" content=\"text/html;charset=utf-8\">\n"
              "<title>403 Forbidden</title>\n"
              "</head>\n"
              "<body text=#000000 bgcolor=#ffffff>\n"
              "<h1>Error: Forbidden</h1>\n"
              "<h2>Your client does not have permission to get URL <code>/a&lt;b&gt;</code> "
              "from this server.</h2>\n"
              "<h2></h2>\n"
              "</body></html>\n");
    EXPECT_FALSE(r->head.headers.Has("WWW-Authenticate"));
    // No body announced: the connection stays usable.
    auto r2 = Send(c, Get("/x", std::string("Authorization: Bearer ") + kOther + "\r\n"));
    ASSERT_TRUE(r2);
    EXPECT_EQ(r2->head.status, 403);
    auto r3 = Send(c, Get("/x", std::string("Authorization: Bearer ") + kDown + "\r\n"));
    ASSERT_TRUE(r3);
    EXPECT_EQ(r3->head.status, 503);
  }
  {
    // Expect: 100-continue on a denied request: no 100, straight to the 403.
    RawClient c(port());
    auto r = Send(c,
                  "PUT /x HTTP/1.1\r\nHost: " + std::string(kSvcHost) +
                      "\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
                  "PUT");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->head.status, 403);
  }
  // A sentinel allowed request: the upstream must have seen it and nothing before it.
  RawClient c(port());
  auto ok = Send(c, Get("/sentinel", std::string("Authorization: Bearer ") + kGood + "\r\n"));
  ASSERT_TRUE(ok);
  ASSERT_TRUE(upstream_.WaitSeen(1));
  auto seen = upstream_.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].head.rfind("GET /sentinel ", 0), 0u);
  EXPECT_EQ(upstream_.connections(), 1u);
  std::lock_guard lock(mu_);
  ASSERT_EQ(denials_.size(), 5u);
  EXPECT_NE(denials_[0].find(" 401 bad signature"), std::string::npos);
  std::string metrics = gateway_->RenderMetrics();
  EXPECT_NE(metrics.find("moat_gateway_denials_total{reason=\"unauthenticated\"} 1\n"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("moat_gateway_denials_total{reason=\"forbidden\"} 3\n"),
            std::string::npos);
  EXPECT_NE(metrics.find("moat_gateway_denials_total{reason=\"unavailable\"} 1\n"),
            std::string::npos);
  EXPECT_NE(metrics.find("moat_gateway_requests_total{code=\"2xx\"} 1\n"), std::string::npos);
  EXPECT_NE(metrics.find("moat_gateway_upstream_latency_seconds_count 1\n"), std::string::npos);
}

TEST_F(GatewayTest, UnknownHostIs404AndRouteSwapIsSeen) {
  RawClient c(port());
  auto r = Send(c, Get("/", "", "nope.run.localhost"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->head.status, 404);
  EXPECT_EQ(r->body, ErrorPage(404));
  EXPECT_EQ(gate_->calls.load(), 0);  // routing happens before the gate
  RouteWith("nope.run.localhost", "new", upstream_.port());
  auto r2 = Send(c, Get("/", "", "nope.run.localhost"));
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->head.status, 200);
  // Hosts in turn on one connection (one worker, which keeps its last lookup): each reaches
  // its own service, whatever the case of the Host header.
  gate_->calls = 0;
  const std::pair<std::string, int> turns[] = {{"nope.run.localhost", 200},
                                               {"NOPE.run.localhost:80", 200},
                                               {kSvcHost, 403},
                                               {"public.run.localhost", 200},
                                               {"nope.run.localhost", 200},
                                               {"other.run.localhost", 404},
                                               {kSvcHost, 403}};
  for (const auto& [host, status] : turns) {
    auto r3 = Send(c, Get("/", "", host));
    ASSERT_TRUE(r3) << host;
    EXPECT_EQ(r3->head.status, status) << host;  // kSvcHost is private: no token, 403
  }
  EXPECT_EQ(gate_->calls.load(), 6);  // every routed request, not the unknown host
}

TEST_F(GatewayTest, LimitsAndSmugglingAreRefusedBeforeForwarding) {
  {
    RawClient c(port());
    auto r = Send(c, Get("/", std::string("Authorization: Bearer ") + kGood +
                                  "\r\nX-Big: " + std::string(9000, 'a') + "\r\n"));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->head.status, 431);
  }
  {
    RawClient c(port());
    auto r = Send(c,
                  "POST / HTTP/1.1\r\nHost: " + std::string(kSvcHost) +
                      "\r\nAuthorization: Bearer " + kGood + "\r\nContent-Length: 100000\r\n\r\n",
                  "POST");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->head.status, 413);
    EXPECT_TRUE(c.WaitClosed());
  }
  {
    RawClient c(port());
    auto r = Send(c,
                  "POST / HTTP/1.1\r\nHost: " + std::string(kSvcHost) +
                      "\r\nAuthorization: Bearer " + kGood +
                      "\r\nContent-Length: 45\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
                  "POST");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->head.status, 400);
    EXPECT_TRUE(c.WaitClosed());
  }
  {
    RawClient c(port());
    auto r = Send(c, Get("/", std::string("Authorization: Bearer ") + kGood +
                                  "\r\nAuthorization: Bearer other.x.y\r\n"));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->head.status, 400);
  }
  RawClient c(port());
  ASSERT_TRUE(Send(c, Get("/sentinel", std::string("Authorization: Bearer ") + kGood + "\r\n")));
  ASSERT_TRUE(upstream_.WaitSeen(1));
  auto seen = upstream_.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].head.rfind("GET /sentinel ", 0), 0u);
}

TEST_F(GatewayTest, ChunkedRequestAndLargeChunkedResponseStream) {
  RawClient c(port());
  auto r = Send(c,
                "POST /echo HTTP/1.1\r\nHost: " + std::string(kSvcHost) +
                    "\r\nAuthorization: Bearer " + kGood +
                    "\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n",
                "POST");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->head.status, 200);
  EXPECT_EQ(r->body, "hello world");
  ASSERT_TRUE(upstream_.WaitSeen(1));
  auto seen = upstream_.seen();
  EXPECT_EQ(seen[0].body, "hello world");
  EXPECT_NE(seen[0].head.find("Transfer-Encoding: chunked\r\n"), std::string::npos);

  const size_t n = 5 * 1024 * 1024 + 7;
  auto big = Send(c, Get("/big?n=" + std::to_string(n),
                         std::string("Authorization: Bearer ") + kGood + "\r\n"));
  ASSERT_TRUE(big);
  EXPECT_EQ(big->head.status, 200);
  EXPECT_EQ(big->head.body, http::BodyKind::kChunked);
  ASSERT_EQ(big->body.size(), n);
  for (size_t i = 0; i < n; i += 4099) {
    ASSERT_EQ(big->body[i], static_cast<char>('a' + i % 26)) << i;
  }
  // A large Content-Length body from the client within the limit is forwarded whole.
  std::string payload(60000, 'q');
  auto r3 = Send(c,
                 "POST /echo HTTP/1.1\r\nHost: " + std::string(kSvcHost) +
                     "\r\nAuthorization: Bearer " + kGood +
                     "\r\nContent-Length: " + std::to_string(payload.size()) + "\r\n\r\n" + payload,
                 "POST");
  ASSERT_TRUE(r3);
  EXPECT_EQ(r3->body, payload);
}

TEST_F(GatewayTest, KeepAliveReusesUpstreamConnection) {
  RawClient c(port());
  for (int i = 0; i < 5; ++i) {
    auto r = Send(c, Get("/echo", std::string("Authorization: Bearer ") + kGood + "\r\n"));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->head.status, 200);
  }
  // Responses whose body arrives in the same segment as their head (the common case for small
  // bodies) must leave the pooled connection clean, too.
  for (int i = 0; i < 5; ++i) {
    auto r = Send(c, "POST /echo HTTP/1.1\r\nHost: " + std::string(kSvcHost) +
                         "\r\nAuthorization: Bearer " + kGood +
                         "\r\nContent-Length: 5\r\n\r\nhello");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->head.status, 200);
    EXPECT_EQ(r->body, "hello");
  }
  EXPECT_EQ(upstream_.connections(), 1u);
}

// Each worker keeps the pool it used last at hand: requests for services on different
// upstreams, in turn on one connection, each reach their own upstream and reuse its pooled
// connection.
TEST_F(GatewayTest, ServicesOnDifferentUpstreamsUseTheirOwnPools) {
  Upstream other;
  RouteWith("other.run.localhost", "other", other.port());
  RawClient c(port());
  for (int i = 0; i < 6; ++i) {
    std::string host = i % 2 == 0 ? "public.run.localhost" : "other.run.localhost";
    auto r = Send(c, Get("/echo-" + std::to_string(i), "", host));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->head.status, 200);
  }
  auto mine = upstream_.seen();
  auto theirs = other.seen();
  ASSERT_EQ(mine.size(), 3u);
  ASSERT_EQ(theirs.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(mine[i].head.starts_with("GET /echo-" + std::to_string(2 * i) + " "))
        << mine[i].head;
    EXPECT_TRUE(theirs[i].head.starts_with("GET /echo-" + std::to_string(2 * i + 1) + " "))
        << theirs[i].head;
  }
  EXPECT_EQ(upstream_.connections(), 1u);
  EXPECT_EQ(other.connections(), 1u);
}

TEST_F(GatewayTest, UpstreamFailuresMapTo502And504AndGatewayKeepsServing) {
  RawClient c(port());
  auto down = Send(
      c, Get("/", std::string("Authorization: Bearer ") + kGood + "\r\n", "down.run.localhost"));
  ASSERT_TRUE(down);
  EXPECT_EQ(down->head.status, 502);
  auto slow = Send(c, Get("/hang", std::string("Authorization: Bearer ") + kGood + "\r\n",
                          "slow.run.localhost"));
  ASSERT_TRUE(slow);
  EXPECT_EQ(slow->head.status, 504);
  {
    RawClient c2(port());
    c2.Send(Get("/reset", std::string("Authorization: Bearer ") + kGood + "\r\n"));
    // The head arrives, then the truncated body ends in a closed connection.
    EXPECT_FALSE(c2.Read());
  }
  auto ok = Send(c, Get("/echo", std::string("Authorization: Bearer ") + kGood + "\r\n"));
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->head.status, 200);
  std::string m = gateway_->RenderMetrics();
  EXPECT_NE(m.find("moat_gateway_upstream_errors_total{kind=\"connect\"} 1\n"), std::string::npos)
      << m;
  EXPECT_NE(m.find("moat_gateway_upstream_errors_total{kind=\"timeout\"} 1\n"), std::string::npos);
  EXPECT_NE(m.find("moat_gateway_upstream_errors_total{kind=\"reset\"} 1\n"), std::string::npos);
}

TEST_F(GatewayTest, SyncClientWorksThroughGateway) {
  http::ClientRequest req;
  req.method = "POST";
  req.url = "http://127.0.0.1:" + std::to_string(port()) + "/echo";
  req.headers.Add("Host", kSvcHost);
  req.headers.Add("Authorization", std::string("Bearer ") + kGood);
  req.body = "via client";
  auto r = http::Fetch(req);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "via client");
}

TEST_F(GatewayTest, WebSocketIsTunnelledAfterTheGate) {
  namespace websocket = boost::beast::websocket;
  asio::io_context ioc;
  {
    websocket::stream<tcp::socket> ws(ioc);
    ws.next_layer().connect({asio::ip::make_address("127.0.0.1"), port()});
    boost::system::error_code ec;
    ws.handshake(kSvcHost, "/ws", ec);  // no token → 403, handshake fails
    EXPECT_TRUE(ec);
  }
  websocket::stream<tcp::socket> ws(ioc);
  ws.next_layer().connect({asio::ip::make_address("127.0.0.1"), port()});
  ws.set_option(websocket::stream_base::decorator([](websocket::request_type& req) {
    req.set(boost::beast::http::field::authorization, std::string("Bearer ") + kGood);
  }));
  ws.handshake(kSvcHost, "/ws");
  for (std::string msg : {std::string("hello"), std::string(100000, 'w')}) {
    ws.write(asio::buffer(msg));
    boost::beast::flat_buffer b;
    ws.read(b);
    EXPECT_EQ(boost::beast::buffers_to_string(b.data()), msg);
  }
  ws.close(websocket::close_code::normal);
  auto seen = upstream_.seen();
  ASSERT_EQ(seen.size(), 1u);  // the denied upgrade never reached the upstream
  EXPECT_NE(seen[0].head.find("SIGNATURE_REMOVED_BY_GOOGLE"), std::string::npos);
}

TEST(GatewayPages, StripsSignaturesOrRefuses) {
  EXPECT_EQ(*StripJwtSignature("Bearer a.b.c"), "Bearer a.b.SIGNATURE_REMOVED_BY_GOOGLE");
  EXPECT_EQ(*StripJwtSignature("bearer  a.b."), "Bearer a.b.SIGNATURE_REMOVED_BY_GOOGLE");
  EXPECT_FALSE(StripJwtSignature("Basic a.b.c"));
  EXPECT_FALSE(StripJwtSignature("Bearer opaque"));
  EXPECT_FALSE(StripJwtSignature("Bearer a.b.c.d.e"));
  EXPECT_FALSE(StripJwtSignature("Bearer .b.c"));
  std::string line = "x";
  EXPECT_TRUE(AppendStrippedJwtField(&line, "Authorization", "bearer  a.b.c"));
  EXPECT_EQ(line, "xAuthorization: Bearer a.b.SIGNATURE_REMOVED_BY_GOOGLE\r\n");
  EXPECT_FALSE(AppendStrippedJwtField(&line, "Authorization", "Bearer a.b"));
  EXPECT_EQ(line, "xAuthorization: Bearer a.b.SIGNATURE_REMOVED_BY_GOOGLE\r\n");
  EXPECT_EQ(HtmlEscape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
  EXPECT_NE(
      UnauthorizedPage("/").find(
          "<h2>Your client does not have permission to the requested URL <code>/</code>.</h2>"),
      std::string::npos);
}

TEST(GatewayRouteTable, NormalizesHosts) {
  RouteTable t;
  auto e = std::make_shared<ServiceEntry>();
  ASSERT_TRUE(t.Add("My-Svc.run.localhost", e));
  EXPECT_FALSE(t.Add("my-svc.RUN.localhost:9", e));  // same host
  EXPECT_FALSE(t.Add("", e));
  EXPECT_NE(t.Find("MY-SVC.run.localhost:8080"), nullptr);
  EXPECT_NE(t.Find("my-svc.run.localhost."), nullptr);
  EXPECT_EQ(t.Find("other.run.localhost"), nullptr);
  EXPECT_EQ(t.Find(""), nullptr);
  ASSERT_TRUE(t.Add("[::1]:80", e));
  EXPECT_NE(t.Find("[::1]"), nullptr);
}

}  // namespace
}  // namespace moat::gateway

namespace moat::gateway {
namespace {

// A revision source the test advances by hand.
struct FakeRevisions {
  std::mutex mu;
  std::condition_variable cv;
  int64_t at = 5;
  std::vector<std::pair<int64_t, std::function<void(bool)>>> waiting;
  RevisionWaiter Waiter(std::chrono::milliseconds max_wait) {
    RevisionWaiter w;
    w.max_wait = max_wait;
    w.reached = [this](int64_t r) {
      std::lock_guard lock(mu);
      return at >= r;
    };
    w.notify = [this](int64_t r, std::function<void(bool)> done) {
      std::unique_lock lock(mu);
      if (at >= r) {
        lock.unlock();
        done(true);
        return;
      }
      waiting.emplace_back(r, std::move(done));
      cv.notify_all();
    };
    return w;
  }
  size_t Waiting() {
    std::lock_guard lock(mu);
    return waiting.size();
  }
  bool WaitForWaiter() {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(10), [&] { return !waiting.empty(); });
  }
  void Advance(int64_t to) {
    std::vector<std::function<void(bool)>> ready;
    {
      std::lock_guard lock(mu);
      at = to;
      for (auto it = waiting.begin(); it != waiting.end();) {
        if (it->first <= at) {
          ready.push_back(std::move(it->second));
          it = waiting.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& d : ready) d(true);  // from this (foreign) thread, as the reconciler does
  }
};

TEST_F(GatewayTest, MinRevisionWaitsForTheRevisionThenDecides) {
  FakeRevisions revs;
  gateway_->SetRevisionWaiter(revs.Waiter(std::chrono::seconds(20)));
  std::string auth = std::string("Authorization: Bearer ") + kGood + "\r\n";
  RawClient c(port());
  // Already enforced: no wait.
  auto now = Send(c, Get("/echo", auth + "X-Moat-Min-Revision: 5\r\n"));
  ASSERT_TRUE(now);
  EXPECT_EQ(now->head.status, 200);
  // Not yet: the request waits (nothing reaches the upstream) until the revision arrives.
  size_t before = upstream_.seen().size();
  RawClient c2(port());
  c2.Send(Get("/echo", auth + "X-Moat-Min-Revision: 7\r\n"));
  ASSERT_TRUE(revs.WaitForWaiter());
  ASSERT_EQ(revs.Waiting(), 1u);
  EXPECT_EQ(upstream_.seen().size(), before);
  revs.Advance(7);
  auto later = c2.Read("GET");
  ASSERT_TRUE(later);
  EXPECT_EQ(later->head.status, 200);
  ASSERT_TRUE(upstream_.WaitSeen(before + 1));
  // The header never reaches the upstream.
  for (const auto& s : upstream_.seen()) {
    EXPECT_EQ(s.head.find("X-Moat-Min-Revision"), std::string::npos) << s.head;
  }
}

TEST_F(GatewayTest, MinRevisionNotReachedIs503AndMalformedIs400) {
  FakeRevisions revs;
  gateway_->SetRevisionWaiter(revs.Waiter(std::chrono::milliseconds(200)));
  std::string auth = std::string("Authorization: Bearer ") + kGood + "\r\n";
  size_t before = upstream_.seen().size();
  RawClient c(port());
  auto late = Send(c, Get("/echo", auth + "X-Moat-Min-Revision: 99\r\n"));
  ASSERT_TRUE(late);
  EXPECT_EQ(late->head.status, 503);
  for (std::string bad : {"soon", "-1", "", "1x", "99999999999999999999"}) {
    RawClient b(port());
    auto r = Send(b, Get("/echo", auth + "X-Moat-Min-Revision: " + bad + "\r\n"));
    ASSERT_TRUE(r) << bad;
    EXPECT_EQ(r->head.status, 400) << bad;
  }
  EXPECT_EQ(upstream_.seen().size(), before);
  // A late release after the 503 is harmless.
  revs.Advance(100);
}

TEST_F(GatewayTest, MinRevisionRefusedByTheSourceIs503AtOnce) {
  // A source that will not wait (shutting down, too many waiters) answers false at once: the
  // request gets its 503 without sitting out max_wait, and nothing is forwarded.
  RevisionWaiter w;
  w.max_wait = std::chrono::seconds(30);
  w.reached = [](int64_t r) { return r <= 5; };
  w.notify = [](int64_t, std::function<void(bool)> done) { done(false); };
  gateway_->SetRevisionWaiter(std::move(w));
  std::string auth = std::string("Authorization: Bearer ") + kGood + "\r\n";
  size_t before = upstream_.seen().size();
  RawClient c(port());
  auto start = std::chrono::steady_clock::now();
  auto r = Send(c, Get("/echo", auth + "X-Moat-Min-Revision: 6\r\n"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->head.status, 503);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_EQ(upstream_.seen().size(), before);
  // The connection stays usable, and a reached revision is decided as usual.
  auto ok = Send(c, Get("/echo", auth + "X-Moat-Min-Revision: 5\r\n"));
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->head.status, 200);
}

}  // namespace
}  // namespace moat::gateway

namespace moat::gateway {
namespace {

// An Activator whose "service" is the test's upstream: Activate answers from another thread.
class FakeActivator : public Activator {
 public:
  explicit FakeActivator(bool succeeds) : succeeds_(succeeds) {}
  void BeginRequest() override {
    ++touches;
    ++in_flight;
  }
  void EndRequest() override {
    ++ends;
    --in_flight;
  }
  bool Ready() const override { return ready.load(); }
  void Activate(std::chrono::milliseconds, std::function<void(bool)> done) override {
    ++activations;
    std::thread([this, done = std::move(done)] {
      if (succeeds_) ready = true;
      done(succeeds_);
    }).detach();
  }
  std::atomic<int> touches{0}, ends{0}, in_flight{0}, activations{0};
  std::atomic<bool> ready{false};

 private:
  bool succeeds_;
};

// Polls `done` every millisecond for up to 10 s.
bool Eventually(const std::function<bool()>& done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

TEST_F(GatewayTest, RequestsStayInFlightForTheActivatorUntilTheyEnd) {
  // Scale to zero must not stop a service under a long request: the activator hears the
  // start and the end of every allowed request, a WebSocket's whole life included.
  namespace websocket = boost::beast::websocket;
  auto a = std::make_shared<FakeActivator>(true);
  a->ready = true;
  auto t = std::make_shared<RouteTable>();
  auto e = std::make_shared<ServiceEntry>();
  e->name = "projects/p/locations/r/services/live";
  e->upstream_host = "127.0.0.1";
  e->upstream_port = upstream_.port();
  e->activator = a;
  ASSERT_TRUE(t->Add("live.r.run.localhost", e));
  routes_->Set(t);

  RawClient c(port());
  auto r = Send(c, Get("/echo", std::string("Authorization: Bearer ") + kGood + "\r\n",
                       "live.r.run.localhost"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->head.status, 200);
  ASSERT_TRUE(Eventually([&] { return a->ends.load() == 1; }));
  EXPECT_EQ(a->in_flight.load(), 0);

  asio::io_context ioc;
  websocket::stream<tcp::socket> ws(ioc);
  ws.next_layer().connect({asio::ip::make_address("127.0.0.1"), port()});
  ws.set_option(websocket::stream_base::decorator([](websocket::request_type& req) {
    req.set(boost::beast::http::field::authorization, std::string("Bearer ") + kGood);
  }));
  ws.handshake("live.r.run.localhost", "/ws");
  ws.write(asio::buffer(std::string("ping")));
  boost::beast::flat_buffer b;
  ws.read(b);
  EXPECT_EQ(a->in_flight.load(), 1);  // the tunnel is a request in flight
  EXPECT_EQ(a->touches.load(), 2);
  ws.close(websocket::close_code::normal);
  ASSERT_TRUE(Eventually([&] { return a->in_flight.load() == 0; }));
  EXPECT_EQ(a->ends.load(), 2);
}

TEST_F(GatewayTest, OnlyAllowedRequestsStartAStoppedService) {
  auto starts = std::make_shared<FakeActivator>(true);
  auto fails = std::make_shared<FakeActivator>(false);
  auto t = std::make_shared<RouteTable>();
  auto entry = [&](std::string host, std::shared_ptr<Activator> a) {
    auto e = std::make_shared<ServiceEntry>();
    e->name = "projects/p/locations/r/services/" + host.substr(0, host.find('.'));
    e->upstream_host = "127.0.0.1";
    e->upstream_port = upstream_.port();
    e->activator = std::move(a);
    ASSERT_TRUE(t->Add(host, e));
  };
  entry("cold.r.run.localhost", starts);
  entry("broken.r.run.localhost", fails);
  routes_->Set(t);
  std::string good = std::string("Authorization: Bearer ") + kGood + "\r\n";
  std::string other = std::string("Authorization: Bearer ") + kOther + "\r\n";

  // A refused caller never wakes the service.
  RawClient c(port());
  auto denied = Send(c, Get("/echo", other, "cold.r.run.localhost"));
  ASSERT_TRUE(denied);
  EXPECT_EQ(denied->head.status, 403);
  EXPECT_EQ(starts->activations.load(), 0);
  EXPECT_EQ(starts->touches.load(), 0);

  // An allowed one starts it, waits, and is served; the next one finds it ready.
  RawClient c2(port());
  auto first = Send(c2, Get("/echo", good, "cold.r.run.localhost"));
  ASSERT_TRUE(first);
  EXPECT_EQ(first->head.status, 200);
  auto second = Send(c2, Get("/echo", good, "cold.r.run.localhost"));
  ASSERT_TRUE(second);
  EXPECT_EQ(second->head.status, 200);
  EXPECT_EQ(starts->activations.load(), 1);
  EXPECT_EQ(starts->touches.load(), 2);

  // A service that cannot start: 503, nothing forwarded.
  size_t before = upstream_.seen().size();
  RawClient c3(port());
  auto broken = Send(c3, Get("/echo", good, "broken.r.run.localhost"));
  ASSERT_TRUE(broken);
  EXPECT_EQ(broken->head.status, 503);
  EXPECT_EQ(upstream_.seen().size(), before);
  EXPECT_NE(gateway_->RenderMetrics().find("moat_gateway_activations_total 2"), std::string::npos)
      << gateway_->RenderMetrics();
}

TEST_F(GatewayTest, RefusedUpstreamOfACommandServiceWaitsForItsRestart) {
  // The activator says "ready" but nothing listens (the process just crashed): the gateway
  // asks it to (re)start and retries once it is ready.
  class Restarting : public Activator {
   public:
    explicit Restarting(std::function<void()> restart) : restart_(std::move(restart)) {}
    void BeginRequest() override {}
    void EndRequest() override {}
    bool Ready() const override { return true; }
    void Activate(std::chrono::milliseconds, std::function<void(bool)> done) override {
      ++activations;
      restart_();
      done(true);
    }
    std::atomic<int> activations{0};

   private:
    std::function<void()> restart_;
  };
  uint16_t port_for_service = ClosedPort();
  auto t = std::make_shared<RouteTable>();
  auto e = std::make_shared<ServiceEntry>();
  e->name = "projects/p/locations/r/services/crashy";
  e->upstream_host = "127.0.0.1";
  e->upstream_port = port_for_service;
  // "Restart" = a listener on the service's port that relays to the test upstream.
  asio::io_context relay_ioc;
  std::unique_ptr<tcp::acceptor> relay;
  std::thread relay_thread;
  auto restarting = std::make_shared<Restarting>([&] {
    relay = std::make_unique<tcp::acceptor>(
        relay_ioc, tcp::endpoint{asio::ip::make_address("127.0.0.1"), port_for_service});
    relay_thread = std::thread([&] {
      tcp::socket s(relay_ioc);
      boost::system::error_code ec;
      relay->accept(s, ec);
      if (ec) return;
      char buf[4096];
      size_t n = s.read_some(asio::buffer(buf), ec);
      (void)n;
      std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nrestarted";
      asio::write(s, asio::buffer(resp), ec);
    });
  });
  e->activator = restarting;
  ASSERT_TRUE(t->Add("crashy.r.run.localhost", e));
  routes_->Set(t);
  RawClient c(port());
  auto r = Send(c, Get("/", std::string("Authorization: Bearer ") + kGood + "\r\n",
                       "crashy.r.run.localhost"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->head.status, 200);
  EXPECT_EQ(r->body, "restarted");
  EXPECT_EQ(restarting->activations.load(), 1);
  if (relay_thread.joinable()) relay_thread.join();
}


// --- ingress --------------------------------------------------------------------------------

TEST(GatewayNetworks, ParsesCidrListsAndMatchesAddresses) {
  auto n = IpNetworks::Parse(" 10.0.0.0/8, 192.168.1.7 ,fd00::/8,::1/128");
  ASSERT_TRUE(n) << n.error().message;
  EXPECT_EQ(n->ToString(), "10.0.0.0/8,192.168.1.7/32,fd00::/8,::1/128");
  EXPECT_TRUE(n->Contains("10.0.0.1"));
  EXPECT_TRUE(n->Contains("10.255.255.255"));
  EXPECT_FALSE(n->Contains("11.0.0.1"));
  EXPECT_TRUE(n->Contains("192.168.1.7"));
  EXPECT_FALSE(n->Contains("192.168.1.8"));
  EXPECT_TRUE(n->Contains("fd12:3456::1"));
  EXPECT_FALSE(n->Contains("fe80::1"));
  EXPECT_TRUE(n->Contains("::1"));
  EXPECT_FALSE(n->Contains("127.0.0.1"));
  EXPECT_TRUE(n->Contains("::ffff:10.1.2.3"));  // IPv4-mapped: matched as IPv4
  EXPECT_FALSE(n->Contains(""));
  EXPECT_FALSE(n->Contains("not-an-ip"));
  EXPECT_FALSE(n->Contains("10.0.0.1:80"));  // callers pass the address only

  auto odd = IpNetworks::Parse("0.0.0.0/0,10.1.128.0/17");
  ASSERT_TRUE(odd);
  EXPECT_TRUE(odd->Contains("8.8.8.8"));
  EXPECT_FALSE(odd->Contains("::2"));  // an IPv4 network never matches IPv6

  auto lo = IpNetworks::Loopback();
  EXPECT_EQ(lo.ToString(), "127.0.0.0/8,::1/128");
  EXPECT_TRUE(lo.Contains("127.0.0.1"));
  EXPECT_TRUE(lo.Contains("127.9.9.9"));
  EXPECT_TRUE(lo.Contains("::1"));
  EXPECT_FALSE(lo.Contains("10.0.0.1"));

  auto none = IpNetworks::Parse("  ");
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
  EXPECT_FALSE(none->Contains("127.0.0.1"));
  EXPECT_FALSE(IpNetworks().Contains("127.0.0.1"));

  for (std::string_view bad : {"10.0.0.0/33", "10.0.0.1/8", "10.0.0.0/", "10.0.0.0/x",
                               "10.0.0.0/8,", ",10.0.0.0/8", "300.0.0.0/8", "fd00::/129",
                               "example.com", "10.0.0.0/8/8", "fe80::1%eth0", "10.0.0.0/0008"}) {
    auto r = IpNetworks::Parse(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_EQ(r.error().code, Code::kInvalidArgument) << bad;
    }
  }
  EXPECT_NE(IpNetworks::Parse("10.0.0.1/8").error().message.find("`10.0.0.1/8`"),
            std::string::npos);

  EXPECT_EQ(HostOfRemote("127.0.0.1:5555"), "127.0.0.1");
  EXPECT_EQ(HostOfRemote("[::1]:5555"), "::1");
  EXPECT_EQ(HostOfRemote("::1"), "::1");
  EXPECT_EQ(HostOfRemote("10.0.0.1"), "10.0.0.1");
  EXPECT_EQ(HostOfRemote("[::1"), "");
}

TEST(GatewayIngress, ParsesCloudRunValuesAndFailsClosed) {
  EXPECT_EQ(ParseIngress(""), Ingress::kAll);
  EXPECT_EQ(ParseIngress("INGRESS_TRAFFIC_ALL"), Ingress::kAll);
  EXPECT_EQ(ParseIngress("INGRESS_TRAFFIC_UNSPECIFIED"), Ingress::kAll);
  EXPECT_EQ(ParseIngress("INGRESS_TRAFFIC_INTERNAL_ONLY"), Ingress::kInternal);
  EXPECT_EQ(ParseIngress("INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"), Ingress::kInternal);
  EXPECT_EQ(ParseIngress("INGRESS_TRAFFIC_NONE"), Ingress::kNone);
  EXPECT_EQ(ParseIngress("ingress_traffic_all"), Ingress::kNone);  // unknown → closed
  EXPECT_EQ(ParseIngress("SOMETHING_NEW"), Ingress::kNone);
}

class GatewayIngressTest : public GatewayTest {
 protected:
  // Restarts the gateway with `internal` as its internal networks and a table of one service
  // per ingress mode (each with an activator, to show a refused source never wakes one).
  void Restart(IpNetworks internal) {
    server_->Stop();
    server_.reset();
    GatewayOptions go;
    go.access_log = getenv("MOAT_TEST_ACCESS_LOG") != nullptr;
    go.internal_networks = std::move(internal);
    gateway_ = std::make_unique<Gateway>(go, routes_, gate_);
    http::ServerOptions so;
    so.threads = 2;
    server_ = std::make_unique<http::Server>(so, gateway_->handler());
    ASSERT_TRUE(server_->Start());
    auto t = std::make_shared<RouteTable>();
    for (auto [host, mode] : {std::pair{"all.r.run.localhost", Ingress::kAll},
                              std::pair{"internal.r.run.localhost", Ingress::kInternal},
                              std::pair{"none.r.run.localhost", Ingress::kNone}}) {
      auto e = std::make_shared<ServiceEntry>();
      e->name = std::string("projects/p/locations/r/services/") + host;
      e->upstream_host = "127.0.0.1";
      e->upstream_port = upstream_.port();
      e->ingress = mode;
      auto a = std::make_shared<FakeActivator>(true);
      a->ready = true;
      activators_.push_back(a);
      e->activator = a;
      ASSERT_TRUE(t->Add(host, e));
    }
    routes_->Set(t);
  }
  int Status(const std::string& host) {
    RawClient c(port());
    auto r = Send(c, Get("/", std::string("Authorization: Bearer ") + kGood + "\r\n", host));
    if (!r) return 0;
    if (r->head.status == 404) {
      EXPECT_EQ(r->body, ErrorPage(404));
    }
    return r->head.status;
  }
  std::vector<std::shared_ptr<FakeActivator>> activators_;
};

TEST_F(GatewayIngressTest, InternalOnlyServicesRefuseOutsideCallersWith404BeforeTheGate) {
  // 127.0.0.1 is not internal here.
  Restart(*IpNetworks::Parse("10.0.0.0/8,::1/128"));
  EXPECT_EQ(Status("all.r.run.localhost"), 200);
  EXPECT_EQ(gate_->calls.load(), 1);
  EXPECT_EQ(Status("internal.r.run.localhost"), 404);
  EXPECT_EQ(Status("none.r.run.localhost"), 404);
  EXPECT_EQ(gate_->calls.load(), 1);  // refused before the Gate was asked
  EXPECT_EQ(activators_[1]->touches.load(), 0);
  EXPECT_EQ(activators_[2]->touches.load(), 0);
  ASSERT_TRUE(upstream_.WaitSeen(1));
  EXPECT_EQ(upstream_.seen().size(), 1u);
  {
    // The connection stays usable after an ingress refusal.
    RawClient c(port());
    auto r = Send(c, Get("/", "", "internal.r.run.localhost"));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->head.status, 404);
    auto r2 = Send(c, Get("/", std::string("Authorization: Bearer ") + kGood + "\r\n",
                          "all.r.run.localhost"));
    ASSERT_TRUE(r2);
    EXPECT_EQ(r2->head.status, 200);
  }
  std::string metrics = gateway_->RenderMetrics();
  EXPECT_NE(metrics.find("moat_gateway_ingress_denials_total 3\n"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("moat_gateway_unknown_host_total 0\n"), std::string::npos) << metrics;
}

TEST_F(GatewayIngressTest, InternalCallersPassIngressAndStillFaceTheGate) {
  Restart(IpNetworks::Loopback());
  EXPECT_EQ(Status("all.r.run.localhost"), 200);
  EXPECT_EQ(Status("internal.r.run.localhost"), 200);
  EXPECT_EQ(Status("none.r.run.localhost"), 404);  // NONE refuses everyone
  EXPECT_EQ(gate_->calls.load(), 2);
  // Passing ingress is not authorization: a caller without a token is still refused.
  RawClient c(port());
  auto r = Send(c, Get("/", "", "internal.r.run.localhost"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->head.status, 403);
  EXPECT_EQ(activators_[1]->touches.load(), 1);
}

TEST_F(GatewayTest, DenialsCarryTheTokenHeaderToTheHook) {
  RawClient c(port());
  auto r = Send(c, Get("/", std::string("X-Serverless-Authorization: Bearer ") + kOther + "\r\n"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->head.status, 403);
  auto r2 = Send(c, Get("/", std::string("Authorization: Bearer ") + kOther + "\r\n"));
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->head.status, 403);
  auto r3 = Send(c, Get("/", ""));
  ASSERT_TRUE(r3);
  EXPECT_EQ(r3->head.status, 403);
  std::lock_guard lock(mu_);
  ASSERT_EQ(denials_.size(), 3u);
  EXPECT_NE(denials_[0].find(" 403 lacks run.routes.invoke [X-Serverless-Authorization]"),
            std::string::npos)
      << denials_[0];
  EXPECT_NE(denials_[1].find(" 403 lacks run.routes.invoke [Authorization]"), std::string::npos)
      << denials_[1];
  EXPECT_NE(denials_[2].find(" 403 no credential [none]"), std::string::npos) << denials_[2];
}

}  // namespace
}  // namespace moat::gateway

// --- the response path against a misbehaving upstream --------------------------------------

namespace moat::gateway {
namespace {

std::string Auth() { return std::string("Authorization: Bearer ") + kGood + "\r\n"; }

// Everything the gateway sends until it closes the connection.
std::string ReadToClose(RawClient& c) {
  std::string out = std::move(c.buffered());
  c.buffered().clear();
  char tmp[65536];
  for (;;) {
    boost::system::error_code ec;
    size_t n = c.socket().read_some(asio::buffer(tmp), ec);
    if (ec) return out;
    out.append(tmp, n);
  }
}

size_t OpenSockets() {
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    n += std::filesystem::read_symlink(e.path(), ec).string().rfind("socket:", 0) == 0;
  }
  return n;
}

// Each answer once, on a keep-alive connection the upstream would go on serving.
TEST_F(GatewayTest, MalformedUpstreamResponseHeadsAre502AndTheConnectionIsDropped) {
  const std::vector<std::string> bad = {
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
      "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello",
      "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nhello",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n",
      "HTTP/2 200\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nNo-Colon\r\nContent-Length: 0\r\n\r\n",
      std::string("HTTP/1.1 200 OK\r\nX-Nul: a\0b\r\nContent-Length: 0\r\n\r\n", 50),
      "HTTP/1.1 200 OK\r\nX-Big: " + std::string(70 * 1024, 'a') + "\r\nContent-Length: 0\r\n\r\n",
      // A 101 the client did not ask for.
      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
      "\r\n\r\n",
  };
  upstream_.SetScript([&](Upstream& u, tcp::socket& s, const http::RequestHead& h, std::string&) {
    u.Write(s, bad[std::stoul(std::string(h.Path().substr(strlen("/script/"))))]);
    return true;
  });
  RawClient c(port());
  for (size_t i = 0; i < bad.size(); ++i) {
    auto r = Send(c, Get("/script/" + std::to_string(i), Auth()));
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->head.status, 502) << i;
    EXPECT_EQ(r->body, ErrorPage(502)) << i;
  }
  // No connection that carried a bad answer was used again.
  EXPECT_EQ(upstream_.connections(), bad.size());
  auto ok = Send(c, Get("/echo", Auth()));
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->head.status, 200);
  EXPECT_EQ(upstream_.connections(), bad.size() + 1);
  std::string m = gateway_->RenderMetrics();
  EXPECT_NE(m.find("moat_gateway_upstream_errors_total{kind=\"protocol\"} " +
                   std::to_string(bad.size()) + "\n"),
            std::string::npos)
      << m;
}

TEST_F(GatewayTest, BrokenUpstreamBodyAfterTheHeadClosesBothConnections) {
  // Bad chunk framing (the upstream then waits), and a reset in the middle of a body.
  upstream_.SetScript([](Upstream& u, tcp::socket& s, const http::RequestHead& h, std::string&) {
    if (h.Path() == "/script/badchunk") {
      u.Write(s, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n");
      return true;
    }
    u.Write(s, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort");
    u.Reset(s);
    return false;
  });
  for (std::string path : {"/script/badchunk", "/script/reset"}) {
    RawClient c(port());
    c.Send(Get(path, Auth()));
    EXPECT_FALSE(c.Read()) << path;  // the head, part of the body, then the end
    EXPECT_TRUE(c.WaitClosed());
  }
  ASSERT_TRUE(Eventually([&] { return upstream_.closed() == 2; }));
  RawClient c(port());
  auto ok = Send(c, Get("/echo", Auth()));
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->head.status, 200);
  EXPECT_EQ(upstream_.connections(), 3u);
  std::string m = gateway_->RenderMetrics();
  EXPECT_NE(m.find("moat_gateway_upstream_errors_total{kind=\"reset\"} 2\n"), std::string::npos)
      << m;
}

// Segments a socket has received: the kernel's tcp_info.tcpi_segs_in (uapi offset 140;
// glibc's struct tcp_info stops before it).
uint32_t SegmentsIn(int fd) {
  unsigned char info[256] = {};
  socklen_t len = sizeof info;
  uint32_t segs_in = 0;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, info, &len) == 0 && len >= 144) {
    std::memcpy(&segs_in, info + 140, sizeof segs_in);
  }
  return segs_in;
}

// A chunked body of thousands of tiny chunks reaches the upstream whole, in a few segments:
// the gateway gathers what the client already sent into one write instead of making a
// system call (and sending a segment) per chunk.
TEST_F(GatewayTest, TinyChunksAreGatheredIntoFewWrites) {
  upstream_.SetScript([](Upstream& u, tcp::socket& s, const http::RequestHead& h, std::string& buf) {
    std::string body;
    if (!u.ReadBody(s, h, buf, &body)) return false;
    std::string answer =
        std::to_string(body.size()) + " " + std::to_string(SegmentsIn(s.native_handle()));
    u.Write(s, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(answer.size()) +
                   "\r\n\r\n" + answer);
    return true;
  });
  constexpr int kChunks = 4000;
  std::string chunks;
  for (int i = 0; i < kChunks; ++i) chunks += "1\r\nx\r\n";
  RawClient c(port());
  c.Send("POST /script/tiny HTTP/1.1\r\nHost: " + std::string(kSvcHost) + "\r\n" + Auth() +
         "Transfer-Encoding: chunked\r\n\r\n" + chunks + "0\r\n\r\n");
  auto r = c.Read("POST");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->head.status, 200) << r->body;
  size_t space = r->body.find(' ');
  ASSERT_NE(space, std::string::npos) << r->body;
  EXPECT_EQ(r->body.substr(0, space), std::to_string(kChunks));
  // The handshake, the head and a body of 24 KB in 16 KiB batches: a handful of segments,
  // where a write per chunk would send thousands.
  int segs = std::stoi(r->body.substr(space + 1));
  EXPECT_GT(segs, 0) << r->body;
  EXPECT_LT(segs, 50) << r->body;
}

// The other direction: an upstream's chunked answer of many small chunks, sent at once,
// reaches the client re-chunked in one write (head included), not a write per chunk.
TEST_F(GatewayTest, SmallResponseChunksAreGatheredIntoOneWrite) {
  constexpr int kChunks = 200;
  upstream_.SetScript([](Upstream& u, tcp::socket& s, const http::RequestHead&, std::string&) {
    std::string answer = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < kChunks; ++i) answer += "1\r\ny\r\n";
    u.Write(s, answer + "0\r\n\r\n");
    return true;
  });
  RawClient c(port());
  uint32_t before = SegmentsIn(c.socket().native_handle());
  auto r = Send(c, Get("/script/chunks", Auth()));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->head.status, 200);
  EXPECT_EQ(r->body, std::string(kChunks, 'y'));
  uint32_t segments = SegmentsIn(c.socket().native_handle()) - before;
  EXPECT_GT(segments, 0u);
  EXPECT_LE(segments, 3u);  // one write; a write per chunk would be 200 segments
}

TEST_F(GatewayTest, InterimResponsesAreDroppedAndTheFinalOneArrivesIntact) {
  upstream_.SetScript([](Upstream& u, tcp::socket& s, const http::RequestHead& h, std::string& buf) {
    std::string body;
    u.Write(s, "HTTP/1.1 100 Continue\r\n\r\n");
    if (!u.ReadBody(s, h, buf, &body)) return false;
    u.Write(s,
            "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
            "HTTP/1.1 200 OK\r\nContent-Length: " +
                std::to_string(body.size() + 5) + "\r\nX-Final: 1\r\n\r\nfinal" + body);
    return true;
  });
  {
    RawClient c(port());
    c.Send(Get("/script/interim", Auth() + "Connection: close\r\n"));
    std::string got = ReadToClose(c);
    EXPECT_EQ(got.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << got;
    EXPECT_NE(got.find("X-Final: 1\r\n"), std::string::npos) << got;
    EXPECT_EQ(got.substr(got.size() - 9), "\r\n\r\nfinal") << got;
  }
  {
    // The client asked for 100-continue: it gets exactly one 100, from the gateway.
    RawClient c(port());
    c.Send("POST /script/interim HTTP/1.1\r\nHost: " + std::string(kSvcHost) + "\r\n" + Auth() +
           "Expect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
    std::string got = ReadToClose(c);
    EXPECT_EQ(got.rfind("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", 0), 0u) << got;
    EXPECT_EQ(got.find("103"), std::string::npos) << got;
    EXPECT_EQ(got.substr(got.size() - 14), "\r\n\r\nfinalhello") << got;
  }
}

TEST_F(GatewayTest, InterimResponseBeforeA101StillOpensTheWebSocket) {
  namespace websocket = boost::beast::websocket;
  asio::io_context ioc;
  websocket::stream<tcp::socket> ws(ioc);
  ws.next_layer().connect({asio::ip::make_address("127.0.0.1"), port()});
  ws.set_option(websocket::stream_base::decorator([](websocket::request_type& req) {
    req.set(boost::beast::http::field::authorization, std::string("Bearer ") + kGood);
  }));
  boost::system::error_code ec;
  ws.handshake(kSvcHost, "/ws-hints", ec);
  ASSERT_FALSE(ec) << ec.message();
  ws.write(asio::buffer(std::string("hi")));
  boost::beast::flat_buffer b;
  ws.read(b);
  EXPECT_EQ(boost::beast::buffers_to_string(b.data()), "hi");
  ws.close(websocket::close_code::normal);
}

TEST_F(GatewayTest, BodilessResponsesDoNotWaitForABodyAndKeepTheConnection) {
  upstream_.SetScript([](Upstream& u, tcp::socket& s, const http::RequestHead& h, std::string&) {
    if (h.Path() == "/script/head") {
      u.Write(s, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nX-Head: 1\r\n\r\n");
    } else if (h.Path() == "/script/204") {
      u.Write(s, "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n");
    } else {
      u.Write(s, "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nETag: \"v1\"\r\n\r\n");
    }
    return true;
  });
  RawClient c(port());
  auto head = Send(c, "HEAD /script/head HTTP/1.1\r\nHost: " + std::string(kSvcHost) + "\r\n" +
                          Auth() + "\r\n",
                   "HEAD");
  ASSERT_TRUE(head);
  EXPECT_EQ(head->head.status, 200);
  EXPECT_EQ(head->head.headers.Get("Content-Length"), "1000");  // a HEAD answer keeps it
  EXPECT_EQ(head->head.headers.Get("X-Head"), "1");
  auto no_content = Send(c, Get("/script/204", Auth()));
  ASSERT_TRUE(no_content);
  EXPECT_EQ(no_content->head.status, 204);
  EXPECT_FALSE(no_content->head.headers.Has("Content-Length"));  // RFC 9110 §8.6: not on a 204
  auto not_modified = Send(c, Get("/script/304", Auth()));
  ASSERT_TRUE(not_modified);
  EXPECT_EQ(not_modified->head.status, 304);
  EXPECT_EQ(not_modified->head.headers.Get("ETag"), "\"v1\"");
  auto ok = Send(c, Get("/echo", Auth()));
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->head.status, 200);
  EXPECT_TRUE(c.buffered().empty());
  EXPECT_EQ(upstream_.connections(), 1u);  // one pooled connection carried all four
}

TEST_F(GatewayTest, CloseDelimitedUpstreamBodyIsRelayedWhole) {
  std::string payload(200 * 1024, 'x');
  for (size_t i = 0; i < payload.size(); i += 1000) payload[i] = static_cast<char>('a' + i % 26);
  upstream_.SetScript([&](Upstream& u, tcp::socket& s, const http::RequestHead&, std::string&) {
    u.Write(s, "HTTP/1.1 200 OK\r\nX-Eof: 1\r\n\r\n" + payload);
    boost::system::error_code ec;
    s.shutdown(tcp::socket::shutdown_send, ec);
    return false;
  });
  RawClient c(port());
  auto r = Send(c, Get("/script/eof", Auth()));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->head.status, 200);
  EXPECT_EQ(r->head.body, http::BodyKind::kChunked);  // re-framed for an HTTP/1.1 client
  EXPECT_EQ(r->body, payload);
  auto ok = Send(c, Get("/echo", Auth()));  // the client connection stays usable
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->head.status, 200);
  EXPECT_EQ(upstream_.connections(), 2u);  // the closed one was not pooled

  RawClient old(port());
  old.Send("GET /script/eof HTTP/1.0\r\nHost: " + std::string(kSvcHost) + "\r\n" + Auth() +
           "\r\n");
  auto r10 = old.Read();
  ASSERT_TRUE(r10);
  EXPECT_EQ(r10->head.body, http::BodyKind::kUntilClose);
  EXPECT_EQ(r10->head.headers.Get("Connection"), "close");
  EXPECT_EQ(r10->body, payload);
}

TEST_F(GatewayTest, HopByHopResponseFieldsAreDroppedAndSetCookiesKeptInOrder) {
  upstream_.SetScript([](Upstream& u, tcp::socket& s, const http::RequestHead&, std::string&) {
    u.Write(s,
            "HTTP/1.1 200 OK\r\nConnection: X-Hop, keep-alive\r\nKeep-Alive: timeout=5\r\n"
            "Proxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-Tr\r\nUpgrade: h2c\r\n"
            "X-Hop: secret\r\nSet-Cookie: a=1; Path=/\r\nX-Mid: m\r\nSet-Cookie: b=2, c=3\r\n"
            "set-cookie: d=4\r\nContent-Length: 2\r\n\r\nok");
    return true;
  });
  RawClient c(port());
  auto r = Send(c, Get("/script/hop", Auth()));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->head.status, 200);
  EXPECT_EQ(r->body, "ok");
  for (const char* gone :
       {"Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Upgrade", "X-Hop"}) {
    EXPECT_FALSE(r->head.headers.Has(gone)) << gone;
  }
  EXPECT_EQ(r->head.headers.Get("X-Mid"), "m");
  std::vector<std::string> cookies;
  for (const http::Field& f : r->head.headers) {
    if (http::IEquals(f.name, "set-cookie")) cookies.push_back(std::string(f.value));
  }
  EXPECT_EQ(cookies, (std::vector<std::string>{"a=1; Path=/", "b=2, c=3", "d=4"}));
}

TEST_F(GatewayTest, EarlyUpstreamAnswerToAnUnreadBodyReachesTheClient) {
  // The upstream refuses a large streamed upload after its head and closes without reading
  // it: the client gets that answer (not a 502), then the connection ends.
  upstream_.SetScript([](Upstream& u, tcp::socket& s, const http::RequestHead&, std::string&) {
    u.Write(s, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\n\r\nbig!");
    u.Reset(s);
    return false;
  });
  RawClient c(port());
  c.Send("POST /script/early HTTP/1.1\r\nHost: " + std::string(kSvcHost) + "\r\n" + Auth() +
         "Transfer-Encoding: chunked\r\n\r\n");
  std::thread sender([&] {
    std::string chunk = "40000\r\n" + std::string(0x40000, 'u') + "\r\n";
    for (int i = 0; i < 64; ++i) {  // 16 MiB, more than the socket buffers hold
      boost::system::error_code ec;
      asio::write(c.socket(), asio::buffer(chunk), ec);
      if (ec) return;
    }
  });
  auto r = c.Read("POST");
  if (r) {
    EXPECT_EQ(r->head.status, 413);
    EXPECT_EQ(r->body, "big!");
    EXPECT_EQ(r->head.headers.Get("Connection"), "close");
  }
  boost::system::error_code ec;
  c.socket().shutdown(tcp::socket::shutdown_both, ec);  // ends the sender's writes
  sender.join();
  ASSERT_TRUE(r);
  RawClient c2(port());
  auto ok = Send(c2, Get("/echo", Auth()));
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->head.status, 200);
}

TEST_F(GatewayTest, UpstreamStallingInTheMiddleOfItsHeadIs504) {
  upstream_.SetScript([](Upstream& u, tcp::socket& s, const http::RequestHead&, std::string& buf) {
    u.Write(s, "HTTP/1.1 200 OK\r\nContent-Le");
    while (u.Fill(s, buf)) {
    }
    return false;
  });
  RawClient c(port());
  auto start = std::chrono::steady_clock::now();
  auto r = Send(c, Get("/script/half", Auth(), "slow.run.localhost"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->head.status, 504);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  auto ok = Send(c, Get("/echo", Auth(), "slow.run.localhost"));  // still usable
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->head.status, 200);
  ASSERT_TRUE(Eventually([&] { return upstream_.closed() == 1; }));  // the stalled one
}

// A WebSocket upgrade the upstream never answers is a 504 at the service's request timeout,
// as for any other request (it used to be a 502).
TEST_F(GatewayTest, UnansweredUpgradeIs504) {
  upstream_.SetScript([](Upstream& u, tcp::socket& s, const http::RequestHead&, std::string& buf) {
    while (u.Fill(s, buf)) {
    }
    return false;
  });
  RawClient c(port());
  c.Send("GET /script/ws-stall HTTP/1.1\r\nHost: slow.run.localhost\r\n" + Auth() +
         "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->head.status, 504);
  std::string m = gateway_->RenderMetrics();
  EXPECT_NE(m.find("moat_gateway_upstream_errors_total{kind=\"timeout\"} 1\n"), std::string::npos)
      << m;
}

TEST_F(GatewayTest, ClientLeavingMidResponseClosesTheUpstreamConnection) {
  const size_t sockets = OpenSockets();
  {
    RawClient c(port());
    c.Send(Get("/big?n=" + std::to_string(64 * 1024 * 1024), Auth()));
    char tmp[4096];
    asio::read(c.socket(), asio::buffer(tmp));  // the head and the start of the body
    boost::system::error_code ec;
    c.socket().set_option(tcp::socket::linger(true, 0), ec);
  }  // the client resets
  // The gateway closes the upstream connection instead of pooling it mid-body, and holds no
  // descriptor for either side.
  ASSERT_TRUE(Eventually([&] { return upstream_.closed() == 1; }));
  ASSERT_TRUE(Eventually([&] { return OpenSockets() == sockets; }))
      << OpenSockets() << " vs " << sockets;
  RawClient c(port());
  auto ok = Send(c, Get("/echo", Auth()));
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->head.status, 200);
  EXPECT_EQ(upstream_.connections(), 2u);
}

TEST_F(GatewayTest, PooledConnectionClosedByTheUpstreamIsNotUsed) {
  // The upstream answers keep-alive, then closes the idle connection.
  upstream_.SetScript([](Upstream& u, tcp::socket& s, const http::RequestHead&, std::string&) {
    u.Write(s, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    return false;
  });
  RawClient c(port());
  auto first = Send(c, Get("/script/once", Auth()));
  ASSERT_TRUE(first);
  EXPECT_EQ(first->head.status, 200);
  ASSERT_TRUE(Eventually([&] { return upstream_.closed() == 1; }));
  // Without a body: retried transparently on a fresh connection.
  auto get = Send(c, Get("/echo", Auth()));
  ASSERT_TRUE(get);
  EXPECT_EQ(get->head.status, 200);
  auto again = Send(c, Get("/script/once", Auth()));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->head.status, 200);
  ASSERT_TRUE(Eventually([&] { return upstream_.closed() == 2; }));
  // With a body (which cannot be replayed): the dead connection is detected before use.
  auto post = Send(c,
                   "POST /echo HTTP/1.1\r\nHost: " + std::string(kSvcHost) + "\r\n" + Auth() +
                       "Content-Length: 5\r\n\r\nhello",
                   "POST");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->head.status, 200);
  EXPECT_EQ(post->body, "hello");
  EXPECT_EQ(upstream_.connections(), 3u);
  EXPECT_EQ(upstream_.seen().size(), 4u);
}

}  // namespace
}  // namespace moat::gateway

namespace moat::gateway {
namespace {

TEST_F(GatewayTest, StrayBytesOnAnIdlePooledConnectionNeverBecomeTheNextResponse) {
  // An upstream that sends more than it announced, after its response: whatever it sent must
  // not be read as the answer to the next request (possibly another user's).
  std::atomic<bool> stray_sent{false};
  upstream_.SetScript([&](Upstream& u, tcp::socket& s, const http::RequestHead&, std::string&) {
    u.Write(s, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // after the gateway pooled it
    u.Write(s, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nX-Stray: 1\r\n\r\nstray!");
    stray_sent = true;
    return true;
  });
  RawClient c(port());
  auto first = Send(c, Get("/script/extra", Auth()));
  ASSERT_TRUE(first);
  EXPECT_EQ(first->body, "ok");
  ASSERT_TRUE(Eventually([&] { return stray_sent.load(); }));
  ASSERT_TRUE(Eventually([&] { return upstream_.connections() == 1; }));
  uint64_t probes = PooledConnectionProbes();
  auto next = Send(c, Get("/echo", Auth()));  // (pools are per worker: same client connection)
  ASSERT_TRUE(next);
  EXPECT_EQ(next->head.status, 200);
  EXPECT_FALSE(next->head.headers.Has("X-Stray"));
  EXPECT_EQ(next->head.headers.Get("X-Upstream"), "yes");
  // The stray bytes made the idle socket readable: the reactor saw it, so it was probed.
  EXPECT_GE(PooledConnectionProbes(), probes + 1);
}

// A pooled connection on which nothing arrived since its last read drained it is reused
// without a probe: the reactor would have seen data, a FIN or an error arrive (the tests
// around this one show those connections are still probed and not used).
TEST_F(GatewayTest, QuietPooledConnectionsAreReusedWithoutAProbe) {
  RawClient c(port());
  uint64_t probes = PooledConnectionProbes();
  for (int i = 0; i < 20; ++i) {
    auto r = Send(c, Get("/echo", Auth()));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->head.status, 200);
  }
  EXPECT_EQ(upstream_.connections(), 1u);
  EXPECT_LE(PooledConnectionProbes() - probes, 1u);  // at most after the first response
}

}  // namespace
}  // namespace moat::gateway

namespace moat::gateway {
namespace {

// A response whose last bytes and FIN come in one segment, on a pooled connection the gateway
// already waits on: the read that returns the bytes also consumes the FIN, and no later epoll
// event announces it. The body (delimited by the close) must still end there, not at the
// request timeout.
TEST_F(GatewayTest, UpstreamBodyAndFinInOneSegmentEndTheResponseAtOnce) {
  upstream_.SetScript([](Upstream& u, tcp::socket& s, const http::RequestHead&, std::string&) {
    int on = 1;
    ::setsockopt(s.native_handle(), IPPROTO_TCP, TCP_CORK, &on, sizeof on);
    u.Write(s, "HTTP/1.1 200 OK\r\nX-Fin: 1\r\n\r\nuntil the end");
    boost::system::error_code ec;
    s.shutdown(tcp::socket::shutdown_send, ec);  // corked: sent with the bytes above
    return false;
  });
  RawClient c(port());
  timeval tv{5, 0};
  ASSERT_EQ(::setsockopt(c.socket().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
  for (int i = 0; i < 3; ++i) {
    auto first = Send(c, Get("/echo", Auth()));  // pools a connection for the next request
    ASSERT_TRUE(first);
    auto r = Send(c, Get("/script/fin", Auth()));
    ASSERT_TRUE(r) << "no complete response within 5 s";
    EXPECT_EQ(r->head.status, 200);
    EXPECT_EQ(r->body, "until the end");
  }
}

// Reads wait for readiness once a socket is drained, on both sides of the proxy: keep-alive
// requests through a pooled upstream connection do not each cost recv(2) calls that find
// nothing (before: about two per request).
TEST_F(GatewayTest, DrainedConnectionsWaitInsteadOfReadingNothing) {
  RawClient c(port());
  ASSERT_TRUE(Send(c, Get("/echo", Auth())));
  constexpr int kRequests = 100;
  uint64_t before = http::EmptyReads();
  for (int i = 0; i < kRequests; ++i) {
    auto r = Send(c, Get("/echo", Auth()));
    ASSERT_TRUE(r);
    ASSERT_EQ(r->head.status, 200);
  }
  EXPECT_LT(http::EmptyReads() - before, static_cast<uint64_t>(kRequests / 4));
  EXPECT_EQ(upstream_.connections(), 1u);
}

}  // namespace
}  // namespace moat::gateway

namespace moat::gateway {
namespace {

// The access log is written in batches: each write(2) of the log fd arrives here as one
// message (a SOCK_SEQPACKET pair), so the tests see exactly how lines were grouped.
class GatewayAccessLogTest : public GatewayTest {
 protected:
  void SetUp() override {
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, log_fds_), 0);
    log::SetFd(log_fds_[0]);
    GatewayTest::SetUp();
    server_->Stop();
    GatewayOptions go;
    go.access_log = true;
    gateway_ = std::make_unique<Gateway>(go, routes_, gate_);
    http::ServerOptions so;
    so.threads = 1;
    server_ = std::make_unique<http::Server>(so, gateway_->handler());
    ASSERT_TRUE(server_->Start());
  }
  void TearDown() override {
    GatewayTest::TearDown();
    log::SetFd(2);
    ::close(log_fds_[0]);
    ::close(log_fds_[1]);
  }
  // The writes (one string each) until `lines` access-log lines have arrived; stops early
  // after 10 s without one.
  std::vector<std::string> Writes(size_t lines) {
    std::vector<std::string> writes;
    size_t seen = 0;
    timeval tv{10, 0};
    ::setsockopt(log_fds_[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (seen < lines) {
      std::string buf(64 * 1024, '\0');
      ssize_t n = ::recv(log_fds_[1], buf.data(), buf.size(), 0);
      if (n <= 0) break;
      buf.resize(static_cast<size_t>(n));
      for (size_t at = buf.find("\"message\":\"request\""); at != std::string::npos;
           at = buf.find("\"message\":\"request\"", at + 1))
        ++seen;
      if (buf.find("\"message\":\"request\"") != std::string::npos) writes.push_back(buf);
    }
    return writes;
  }
  int log_fds_[2] = {-1, -1};
};

TEST_F(GatewayAccessLogTest, ALoneRequestIsLoggedWithoutWaitingForMore) {
  RawClient c(port());
  auto r = Send(c, Get("/echo", std::string("Authorization: Bearer ") + kGood + "\r\n"));
  ASSERT_TRUE(r);
  std::vector<std::string> writes = Writes(1);
  ASSERT_EQ(writes.size(), 1u) << "the line never came";
  EXPECT_NE(writes[0].find(std::string(r->head.headers.Get("X-Request-Id"))), std::string::npos);
  EXPECT_NE(writes[0].find("\"status\":\"200\""), std::string::npos) << writes[0];
}

// Requests answered back to back (pipelined 404s: no upstream to wait for) share writes, and
// every write is whole lines within the size that stays atomic on a pipe.
TEST_F(GatewayAccessLogTest, LinesOfRequestsServedTogetherShareWrites) {
  constexpr size_t kRequests = 40;
  std::string burst;
  for (size_t i = 0; i < kRequests; ++i) burst += Get("/p" + std::to_string(i), "", "nowhere.run.localhost");
  RawClient c(port());
  c.Send(burst);
  for (size_t i = 0; i < kRequests; ++i) {
    auto r = c.Read();
    ASSERT_TRUE(r);
    ASSERT_EQ(r->head.status, 404);
  }
  std::vector<std::string> writes = Writes(kRequests);
  size_t lines = 0;
  for (const std::string& w : writes) {
    EXPECT_LE(w.size(), log::kAtomicWriteBytes);
    ASSERT_EQ(w.back(), '\n');
    for (size_t start = 0; start < w.size();) {
      size_t end = w.find('\n', start);
      EXPECT_EQ(w[start], '{');
      EXPECT_EQ(w[end - 1], '}');
      ++lines;
      start = end + 1;
    }
  }
  EXPECT_EQ(lines, kRequests);
  EXPECT_LT(writes.size(), kRequests / 4) << "lines were not batched";
}

}  // namespace
}  // namespace moat::gateway
