#include "http/client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <functional>
#include <future>
#include <memory>
#include <thread>

#include "http/handler.h"
#include "http/router.h"
#include "http/server.h"

namespace moat::http {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

// A one-connection raw server on 127.0.0.1:0 that runs `serve` on the accepted socket in its
// own thread (so tests can misbehave exactly like a real early-answering server).
class RawServer {
 public:
  explicit RawServer(std::function<void(tcp::socket&)> serve)
      : acceptor_(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this, serve = std::move(serve)] {
      boost::system::error_code ec;
      tcp::socket s(ioc_);
      acceptor_.accept(s, ec);
      if (ec) return;
      serve(s);
      s.close(ec);
    });
  }
  ~RawServer() {
    boost::system::error_code ec;
    acceptor_.close(ec);
    thread_.join();
  }
  std::string url(std::string_view path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
  }

 private:
  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::thread thread_;
};

// Reads until the end of the request head; returns the bytes read (head and any body bytes
// that came with it).
std::string ReadRequestHead(tcp::socket& s) {
  std::string got;
  char buf[4096];
  boost::system::error_code ec;
  while (got.find("\r\n\r\n") == std::string::npos) {
    size_t n = s.read_some(asio::buffer(buf), ec);
    if (ec) break;
    got.append(buf, n);
  }
  return got;
}

ClientRequest BigPost(std::string url, size_t body_bytes) {
  ClientRequest req;
  req.method = "POST";
  req.url = std::move(url);
  req.body.assign(body_bytes, 'x');
  req.timeout = std::chrono::seconds(30);
  return req;
}

TEST(HttpClientTest, ReturnsAnEarlyResponseSentBeforeTheBodyWasRead) {
  std::atomic<bool> saw_head{false};
  RawServer server([&](tcp::socket& s) {
    std::string head = ReadRequestHead(s);
    saw_head = head.rfind("POST /upload HTTP/1.1\r\n", 0) == 0;
    std::string resp =
        "HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\nConnection: close\r\n\r\nforbidden";
    boost::system::error_code ec;
    asio::write(s, asio::buffer(resp), ec);
    // Close with most of the 8 MiB body unread: the kernel answers the client's further
    // segments with RST, which is what made the old client fail with "broken pipe".
  });
  auto r = Fetch(BigPost(server.url("/upload"), 8 * 1024 * 1024));
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->status, 403);
  EXPECT_EQ(r->body, "forbidden");
  EXPECT_EQ(r->headers.Get("Connection"), "close");
  EXPECT_TRUE(saw_head);
}

TEST(HttpClientTest, ReturnsAnEarlyResponseWhileTheServerKeepsTheConnectionOpen) {
  // The server answers 413 and then neither reads nor closes until the test is done with the
  // client: Fetch must return the response instead of waiting for its write to finish.
  std::promise<void> client_returned;
  std::shared_future<void> returned = client_returned.get_future().share();
  RawServer server([returned](tcp::socket& s) {
    ReadRequestHead(s);
    std::string resp = "HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n";
    boost::system::error_code ec;
    asio::write(s, asio::buffer(resp), ec);
    returned.wait();
  });
  ClientRequest req = BigPost(server.url("/upload"), 16 * 1024 * 1024);
  req.timeout = std::chrono::seconds(10);
  auto start = std::chrono::steady_clock::now();
  auto r = Fetch(req);
  auto took = std::chrono::steady_clock::now() - start;
  client_returned.set_value();
  // Well under the deadline: the unfinished write was abandoned, not waited for.
  EXPECT_LT(took, std::chrono::seconds(5));
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->status, 413);
  EXPECT_TRUE(r->body.empty());
}

TEST(HttpClientTest, ServerThatClosesWithoutAnsweringIsUnavailable) {
  RawServer server([&](tcp::socket& s) { ReadRequestHead(s); });
  auto r = Fetch(BigPost(server.url("/upload"), 8 * 1024 * 1024));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kUnavailable);
}

TEST(HttpClientTest, SilentServerTimesOutDuringTheWrite) {
  // Reads nothing at all: the write blocks once the socket buffers are full, and the whole
  // exchange deadline ends it.
  std::promise<void> client_returned;
  std::shared_future<void> returned = client_returned.get_future().share();
  RawServer server([returned](tcp::socket&) { returned.wait(); });
  ClientRequest req = BigPost(server.url("/upload"), 64 * 1024 * 1024);
  req.timeout = std::chrono::milliseconds(300);
  auto r = Fetch(req);
  client_returned.set_value();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kDeadlineExceeded) << r.error().ToString();
}

TEST(HttpClientTest, LargeUploadToAServerThatReadsItAllStillWorks) {
  auto router = std::make_shared<Router>();
  ASSERT_TRUE(router->Add("POST", "/echo", [](const Request& r) {
    return Response::Text(200, std::to_string(r.body.size()) + ":" +
                                   (r.body == std::string(r.body.size(), 'x') ? "ok" : "bad"));
  }));
  RouterOptions ro;
  ro.access_log = false;
  Server server({.host = "127.0.0.1", .port = 0, .threads = 1}, MakeRouterHandler(router, ro));
  ASSERT_TRUE(server.Start());
  auto r = Fetch(
      BigPost("http://127.0.0.1:" + std::to_string(server.port()) + "/echo", 6 * 1024 * 1024));
  server.Stop();
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, std::to_string(6 * 1024 * 1024) + ":ok");
}

TEST(HttpClientTest, RouterRejectsAnOversizedBodyWith413AndTheClientSeesIt) {
  // Moat's own router answers 413 before reading a body over its limit.
  auto router = std::make_shared<Router>();
  ASSERT_TRUE(router->Add("POST", "/echo", [](const Request&) { return Response::Text(200, ""); }));
  RouterOptions ro;
  ro.access_log = false;
  ro.max_body_bytes = 1024;
  Server server({.host = "127.0.0.1", .port = 0, .threads = 1}, MakeRouterHandler(router, ro));
  ASSERT_TRUE(server.Start());
  auto r = Fetch(
      BigPost("http://127.0.0.1:" + std::to_string(server.port()) + "/echo", 8 * 1024 * 1024));
  server.Stop();
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->status, 413);
}

}  // namespace
}  // namespace moat::http
