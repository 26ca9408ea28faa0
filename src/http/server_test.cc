#include "http/server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <future>
#include <mutex>
#include <thread>

#include "http/client.h"
#include "http/handler.h"
#include "http/router.h"
#include "http/stream.h"
#include "http/test_util.h"

namespace moat::http {
namespace {

using testing::RawClient;

std::string ToHex(size_t n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%zx", n);
  return buf;
}

class HttpServerTest : public ::testing::Test {
 protected:
  void Start(ServerOptions opts = {}, RouterOptions ropts = {}) {
    auto router = std::make_shared<Router>();
    ASSERT_TRUE(router->Add("GET", "/hello/{name}", [](const Request& r) {
      return Response::Text(
          200, "hello " + std::string(r.PathVar("name")) + " q=" + std::string(r.QueryParam("q")));
    }));
    ASSERT_TRUE(router->Add("POST", "/echo", [](const Request& r) {
      Response resp = Response::Text(200, r.body);
      resp.headers.Add("X-Seen-Remote", r.remote_addr.empty() ? "no" : "yes");
      return resp;
    }));
    ASSERT_TRUE(router->Add(
        "GET", "/block",
        [this](const Request&) {
          std::unique_lock lock(mu_);
          entered_ = true;
          cv_.notify_all();
          cv_.wait(lock, [this] { return released_; });
          return Response::Text(200, "released");
        },
        /*blocking=*/true));
    opts.threads = 2;
    ropts.blocking_threads = 2;
    ropts.access_log = false;
    server_ = std::make_unique<Server>(opts, MakeRouterHandler(router, ropts));
    ASSERT_TRUE(server_->Start());
    base_ = "http://127.0.0.1:" + std::to_string(server_->port());
  }
  void TearDown() override {
    Release();
    if (server_) server_->Stop();
  }
  void Release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  void WaitEntered() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return entered_; });
  }

  std::unique_ptr<Server> server_;
  std::string base_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool entered_ = false;
  bool released_ = false;
};

TEST_F(HttpServerTest, ServesRoutesWithRequestIds) {
  Start();
  auto r = Fetch({.url = base_ + "/hello/w%20x?q=a+b"});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello w x q=a b");
  EXPECT_EQ(r->headers.Get("X-Request-Id").size(), 16u);
  auto r2 = Fetch({.url = base_ + "/hello/y"});
  ASSERT_TRUE(r2);
  EXPECT_NE(r2->headers.Get("X-Request-Id"), r->headers.Get("X-Request-Id"));

  auto e = Fetch({.method = "POST", .url = base_ + "/echo", .body = "payload"});
  ASSERT_TRUE(e);
  EXPECT_EQ(e->body, "payload");
  EXPECT_EQ(e->headers.Get("X-Seen-Remote"), "yes");

  auto nf = Fetch({.url = base_ + "/nope"});
  ASSERT_TRUE(nf);
  EXPECT_EQ(nf->status, 404);
  auto na = Fetch({.method = "DELETE", .url = base_ + "/echo"});
  ASSERT_TRUE(na);
  EXPECT_EQ(na->status, 405);
  EXPECT_EQ(na->headers.Get("Allow"), "POST");
}

TEST_F(HttpServerTest, KeepAliveCarriesSeveralRequestsIncludingChunked) {
  Start();
  RawClient c(server_->port());
  c.Send("GET /hello/a HTTP/1.1\r\nHost: x\r\n\r\n");
  auto r1 = c.Read();
  ASSERT_TRUE(r1);
  EXPECT_EQ(r1->body, "hello a q=");
  c.Send(
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\n\r\n"
      "GET /hello/b HTTP/1.1\r\nHost: x\r\n\r\n");  // pipelined
  auto r2 = c.Read("POST");
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->body, "abcdefg");
  auto r3 = c.Read();
  ASSERT_TRUE(r3);
  EXPECT_EQ(r3->body, "hello b q=");
}

// A FIN that arrives in the same segment as the request is consumed by the read that returns
// the request; no later epoll event announces it. The server must still see it and close
// once the answer is sent — a client that half-closes and reads to EOF (`nc -N`) would
// otherwise wait out the idle timeout (60 s here; the client gives up after 5).
TEST_F(HttpServerTest, RequestAndFinInOneSegmentAreAnsweredThenClosed) {
  Start();
  for (int i = 0; i < 3; ++i) {
    RawClient c(server_->port());
    // A request first, so that the server already waits on the connection when the segment
    // comes (on a new connection, registering it with epoll would report the FIN anyway).
    c.Send("GET /hello/first HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_TRUE(c.Read());
    int fd = c.socket().native_handle();
    int on = 1;
    // Corked, the request waits in the send queue; shutdown() then sends it with the FIN.
    ASSERT_EQ(::setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on), 0);
    timeval tv{5, 0};
    ASSERT_EQ(::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    c.Send("GET /hello/fin HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_EQ(::shutdown(fd, SHUT_WR), 0);
    auto r = c.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "hello fin q=");
    char b;
    EXPECT_EQ(::recv(fd, &b, 1, 0), 0) << "no EOF within 5 s: " << std::strerror(errno);
  }
}

// Once a read has emptied the socket, the next one waits for readiness: keep-alive requests
// do not each cost a recv(2) that finds nothing (before: one per request and more).
TEST_F(HttpServerTest, DrainedConnectionsWaitInsteadOfReadingNothing) {
  Start();
  RawClient c(server_->port());
  c.Send("GET /hello/a HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(c.Read());
  constexpr int kRequests = 100;
  uint64_t before = EmptyReads();
  for (int i = 0; i < kRequests; ++i) {
    c.Send("GET /hello/a HTTP/1.1\r\nHost: x\r\n\r\n");
    auto r = c.Read();
    ASSERT_TRUE(r);
    ASSERT_EQ(r->body, "hello a q=");
  }
  EXPECT_LT(EmptyReads() - before, static_cast<uint64_t>(kRequests / 4));
}

TEST_F(HttpServerTest, MalformedHeadsAre400AndClose) {
  Start();
  RawClient c(server_->port());
  c.Send(
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
      "0\r\n\r\nGET /hello/smuggled HTTP/1.1\r\nHost: x\r\n\r\n");
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->head.status, 400);
  EXPECT_TRUE(c.WaitClosed());
  EXPECT_EQ(c.buffered().find("smuggled"), std::string::npos);
}

TEST_F(HttpServerTest, OversizedHeadIs431) {
  ServerOptions o;
  o.max_head_bytes = 1024;
  Start(o);
  RawClient c(server_->port());
  c.Send("GET /hello/a HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(2000, 'a') + "\r\n\r\n");
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->head.status, 431);
}

TEST_F(HttpServerTest, OversizedBodyIs413BeforeReadingIt) {
  RouterOptions ro;
  ro.max_body_bytes = 100;
  Start({}, ro);
  RawClient c(server_->port());
  c.Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n");
  auto r = c.Read("POST");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->head.status, 413);
  // A chunked body that grows past the limit is cut off too.
  RawClient c2(server_->port());
  c2.Send(
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "80\r\n" +
      std::string(128, 'z') + "\r\n");
  auto r2 = c2.Read("POST");
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->head.status, 413);
}

TEST_F(HttpServerTest, SlowClientIsDisconnected) {
  ServerOptions o;
  o.head_timeout = std::chrono::milliseconds(200);
  o.idle_timeout = std::chrono::milliseconds(200);
  Start(o);
  RawClient partial(server_->port());
  partial.Send("GET /hello/a HTTP/1.1\r\nHost: x\r\n");  // never finishes the head
  EXPECT_TRUE(partial.WaitClosed());
  RawClient idle(server_->port());  // never sends anything
  EXPECT_TRUE(idle.WaitClosed());
}

TEST_F(HttpServerTest, ExpectContinueGetsInterimResponse) {
  Start();
  RawClient c(server_->port());
  c.Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n");
  while (c.buffered().find("\r\n\r\n") == std::string::npos) {
    char tmp[256];
    size_t n = c.socket().read_some(boost::asio::buffer(tmp));
    c.buffered().append(tmp, n);
  }
  EXPECT_EQ(c.buffered().rfind("HTTP/1.1 100 Continue\r\n\r\n", 0), 0u);
  c.buffered().clear();
  c.Send("ok");
  auto r = c.Read("POST");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "ok");
}

TEST_F(HttpServerTest, BlockingRouteTimesOutWith504) {
  RouterOptions ro;
  ro.blocking_timeout = std::chrono::milliseconds(100);
  Start({}, ro);
  auto r = Fetch({.url = base_ + "/block"});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 504);
}

TEST_F(HttpServerTest, StopLetsInFlightRequestFinish) {
  Start();
  auto pending = std::async(std::launch::async, [&] { return Fetch({.url = base_ + "/block"}); });
  WaitEntered();
  RawClient idle(server_->port());  // an idle keep-alive connection must not delay Stop
  auto stopped = std::async(std::launch::async, [&] { server_->Stop(); });
  Release();
  auto r = pending.get();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->body, "released");
  stopped.get();
  EXPECT_TRUE(idle.WaitClosed());
  EXPECT_FALSE(Fetch({.url = base_ + "/hello/x", .timeout = std::chrono::seconds(2)}));
}

TEST_F(HttpServerTest, ManyTinyFieldsWithinTheByteLimitAre431) {
  Start();  // defaults: 64 KiB head, 100 fields
  RawClient c(server_->port());
  std::string raw = "GET /hello/a HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 10'000; ++i) raw += "a:b\r\n";  // 50 KB
  c.Send(raw + "\r\n");
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->head.status, 431);
  EXPECT_TRUE(c.WaitClosed());
}

TEST_F(HttpServerTest, BareLfHeadIsAnswered400WithoutWaitingForTheHeadDeadline) {
  ServerOptions o;
  o.head_timeout = std::chrono::seconds(5);  // what a client would otherwise wait
  Start(o);
  for (std::string raw :
       {"GET /hello/a HTTP/1.1\nHost: x\n\n", "GET /hello/a HTTP/1.1\r\nHost: x\n\r\n",
        "GET /hello/a HTTP/1.1\r\nHost: x\r\n\n"}) {
    RawClient c(server_->port());
    c.Send(raw);
    auto r = c.Read();
    ASSERT_TRUE(r) << raw;
    EXPECT_EQ(r->head.status, 400);
    EXPECT_TRUE(c.WaitClosed());
  }
}

TEST_F(HttpServerTest, EmptyLinesBeforeTheRequestLineAreIgnoredAsByTheParser) {
  Start();
  RawClient c(server_->port());
  c.Send("\r\n\r\nGET /hello/a HTTP/1.1\r\nHost: x\r\n\r\n");
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->head.status, 200);
  EXPECT_EQ(r->body, "hello a q=");
  // A stray CRLF after a body, before the next pipelined request.
  c.Send(
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok\r\n\r\n\r\n"
      "GET /hello/b HTTP/1.1\r\nHost: x\r\n\r\n");
  auto r2 = c.Read("POST");
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->body, "ok");
  auto r3 = c.Read();
  ASSERT_TRUE(r3);
  EXPECT_EQ(r3->body, "hello b q=");
}

// A handler that answers without reading the request body and asks for keep-alive.
class IgnoresBodyHandler : public Handler {
 public:
  asio::awaitable<bool> Handle(Exchange& ex) override {
    ++calls;
    co_return co_await ex.WriteResponse(Response::Text(200, "seen " + ex.head.target), true);
  }
  std::atomic<int> calls{0};
};

TEST(HttpServerFraming, UnreadBodyIsNeverParsedAsTheNextRequest) {
  auto handler = std::make_shared<IgnoresBodyHandler>();
  Server server(ServerOptions{.host = "127.0.0.1", .port = 0, .threads = 1}, handler);
  ASSERT_TRUE(server.Start());
  const std::string inner = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
  for (std::string framing :
       {"Content-Length: " + std::to_string(inner.size()) + "\r\n\r\n" + inner,
        "Transfer-Encoding: chunked\r\n\r\n" + ToHex(inner.size()) + "\r\n" + inner +
            "\r\n0\r\n\r\n"}) {
    RawClient c(server.port());
    c.Send("POST /first HTTP/1.1\r\nHost: x\r\n" + framing);
    auto r = c.Read("POST");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "seen /first");
    EXPECT_TRUE(c.WaitClosed());  // the body was not consumed: the connection cannot go on
    EXPECT_EQ(c.buffered().find("smuggled"), std::string::npos);
  }
  EXPECT_EQ(handler->calls.load(), 2);
}

// A handler that answers with a large body without reading the request body, then tells the
// test its write has returned (the tail of the answer is then still in the kernel's buffers).
class BigAnswerHandler : public Handler {
 public:
  static constexpr size_t kAnswerBytes = 16 << 20;
  asio::awaitable<bool> Handle(Exchange& ex) override {
    bool ok = co_await ex.WriteResponse(Response::Text(413, std::string(kAnswerBytes, 'a')), true);
    written = true;
    co_return ok;
  }
  std::atomic<bool> written{false};
};

// Closing with unread input makes the kernel send a reset, which also throws away the
// answer's bytes not yet sent: the server must send FIN and drain instead (lingering close).
TEST(HttpServerLingeringClose, AnswerToAnUnreadBodyArrivesWhole) {
  auto handler = std::make_shared<BigAnswerHandler>();
  Server server(ServerOptions{.host = "127.0.0.1", .port = 0, .threads = 1}, handler);
  ASSERT_TRUE(server.Start());
  constexpr size_t kBody = 1 << 20;
  RawClient c(server.port());
  timeval tv{.tv_sec = 10, .tv_usec = 0};
  int fd = c.socket().native_handle();
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  c.Send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(kBody) +
         "\r\n\r\n" + std::string(64 << 10, 'b'));
  // Read the answer only until the server's write has returned, then send the rest of the
  // body (the server is closing meanwhile), then read everything that arrives.
  std::string got;
  char buf[64 << 10];
  while (!handler->written.load()) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    ASSERT_GT(n, 0) << std::strerror(errno);
    got.append(buf, static_cast<size_t>(n));
  }
  std::string rest(kBody - (64 << 10), 'b');
  (void)::send(fd, rest.data(), rest.size(), MSG_NOSIGNAL);  // may fail without lingering
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  size_t head_end = got.find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos);
  EXPECT_EQ(got.rfind("HTTP/1.1 413 ", 0), 0u);
  EXPECT_EQ(got.size() - head_end - 4, BigAnswerHandler::kAnswerBytes);
}

// A socket bound and listening before the server starts (moat serve does this for port 0,
// so the port is known, and held, before the servers are built) is adopted as is.
TEST(HttpServerListenFd, AdoptsABoundListeningSocket) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(::listen(fd, 16), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  uint16_t port = ntohs(addr.sin_port);
  auto handler = std::make_shared<IgnoresBodyHandler>();
  Server server(ServerOptions{.host = "127.0.0.1", .port = port, .listen_fd = fd, .threads = 1},
                handler);
  ASSERT_TRUE(server.Start());
  EXPECT_EQ(server.port(), port);
  {
    RawClient c(port);
    c.Send("GET /adopted HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    auto r = c.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "seen /adopted");
    EXPECT_TRUE(c.WaitClosed());
  }
  server.Stop();
  // The server owned the socket: it is closed, so the port can be bound again.
  int again = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ::setsockopt(again, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  EXPECT_EQ(::bind(again, reinterpret_cast<sockaddr*>(&addr), len), 0) << std::strerror(errno);
  ::close(again);
}

TEST(HttpClient, ParsesUrls) {
  auto u = ParseHttpUrl("http://[::1]:8080/a?b");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, 8080);
  EXPECT_EQ(u->target, "/a?b");
  u = ParseHttpUrl("http://svc.localhost?x=1");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->port, 80);
  EXPECT_EQ(u->target, "/?x=1");
  EXPECT_FALSE(ParseHttpUrl("https://x/"));
  EXPECT_FALSE(ParseHttpUrl("http://x:99999/"));
  EXPECT_FALSE(ParseHttpUrl("http://u@x/"));
  EXPECT_FALSE(ParseHttpUrl("http:///"));
}

TEST(HttpClient, ConnectionRefusedIsUnavailable) {
  // Bind and close a port so nothing listens on it.
  uint16_t port;
  {
    boost::asio::io_context ioc;
    boost::asio::ip::tcp::acceptor a(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();
  }
  auto r = Fetch({.url = "http://127.0.0.1:" + std::to_string(port) + "/"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kUnavailable);
}

TEST(HttpServerThreads, DefaultWorkerCountFollowsTheCpuAffinity) {
  // `taskset -c 0 moat serve` must not start one worker per core of the machine.
  cpu_set_t saved;
  ASSERT_EQ(sched_getaffinity(0, sizeof saved, &saved), 0);
  cpu_set_t one;
  CPU_ZERO(&one);
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &saved)) {
      CPU_SET(c, &one);
      break;
    }
  }
  ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0);
  auto router = std::make_shared<Router>();
  {
    Server one_cpu(ServerOptions{.host = "127.0.0.1", .port = 0},
                   MakeRouterHandler(router, RouterOptions{}));
    ASSERT_TRUE(one_cpu.Start());
    EXPECT_EQ(one_cpu.threads(), 1u);
  }
  ASSERT_EQ(sched_setaffinity(0, sizeof saved, &saved), 0);
  Server all(ServerOptions{.host = "127.0.0.1", .port = 0}, MakeRouterHandler(router, {}));
  ASSERT_TRUE(all.Start());
  EXPECT_EQ(all.threads(), static_cast<size_t>(CPU_COUNT(&saved)));
}

}  // namespace
}  // namespace moat::http
