#include "http/stream.h"

#include <gtest/gtest.h>

#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <functional>
#include <optional>
#include <span>
#include <string>

namespace moat::http {
namespace {

using namespace std::chrono_literals;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// A Stream connected over loopback to a plain socket (`peer`) on the same io_context.
class StreamTest : public ::testing::Test {
 protected:
  StreamTest() : acceptor_(ioc_, {asio::ip::make_address("127.0.0.1"), 0}), peer_(ioc_) {
    tcp::socket client(ioc_);
    client.connect(acceptor_.local_endpoint());
    acceptor_.accept(peer_);
    stream_.emplace(std::move(client));
  }

  // Runs `body` to completion on the io_context, then destroys the stream (which cancels its
  // watchdog: a pending one would keep the io_context running until its deadline).
  template <typename F>
  void Run(F body) {
    bool finished = false;
    asio::co_spawn(ioc_, body(), [&](std::exception_ptr e) {
      finished = true;
      stream_.reset();
      if (e) std::rethrow_exception(e);
    });
    ioc_.run();
    ioc_.restart();
    ASSERT_TRUE(finished);
  }

  // Calls `fn` after `delay`, on the io_context.
  void After(Clock::duration delay, std::function<void()> fn) {
    auto t = std::make_shared<asio::steady_timer>(ioc_, delay);
    t->async_wait([t, fn = std::move(fn)](error_code ec) {
      if (!ec) fn();
    });
  }

  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  tcp::socket peer_;
  std::optional<Stream> stream_;
};

TEST_F(StreamTest, ReadTimesOutAtTheDeadlineAndStaysTimedOutUntilItMoves) {
  Run([&]() -> asio::awaitable<void> {
    char b[16];
    auto start = Clock::now();
    stream_->expires_after(100ms);
    auto [ec, n] = co_await stream_->ReadSome(asio::buffer(b));
    EXPECT_EQ(ec, beast::error::timeout);
    EXPECT_GE(Clock::now() - start, 90ms);  // deadlines come from a coarse clock
    // Still past the deadline: fails at once, without waiting.
    auto again = Clock::now();
    auto [ec2, n2] = co_await stream_->ReadSome(asio::buffer(b));
    EXPECT_EQ(ec2, beast::error::timeout);
    EXPECT_LT(Clock::now() - again, 50ms);
    // A new deadline makes the stream usable again.
    stream_->expires_after(10s);
    asio::write(peer_, asio::buffer("x", 1));
    auto [ec3, n3] = co_await stream_->ReadSome(asio::buffer(b));
    EXPECT_FALSE(ec3) << ec3.message();
    EXPECT_EQ(n3, 1u);
  });
}

TEST_F(StreamTest, MovingTheDeadlineLaterWhileWaitingDoesNotTimeOutEarly) {
  // The watchdog was armed for 50 ms; at 20 ms the deadline moves to 400 ms. The watchdog
  // fires at 50 ms, finds the deadline ahead and re-arms; data at 150 ms completes the read.
  After(20ms, [&] { stream_->expires_after(380ms); });
  After(150ms, [&] { asio::write(peer_, asio::buffer("hello", 5)); });
  Run([&]() -> asio::awaitable<void> {
    char b[16];
    stream_->expires_after(50ms);
    auto [ec, n] = co_await stream_->ReadSome(asio::buffer(b));
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_EQ(std::string(b, n), "hello");
  });
}

TEST_F(StreamTest, MovingTheDeadlineEarlierWhileWaitingTimesOutAtTheNewOne) {
  After(20ms, [&] { stream_->expires_after(50ms); });
  Run([&]() -> asio::awaitable<void> {
    char b[16];
    auto start = Clock::now();
    stream_->expires_after(30s);
    auto [ec, n] = co_await stream_->ReadSome(asio::buffer(b));
    EXPECT_EQ(ec, beast::error::timeout);
    EXPECT_GE(Clock::now() - start, 60ms);
    EXPECT_LT(Clock::now() - start, 10s);
  });
}

TEST_F(StreamTest, WriteToAPeerThatDoesNotReadWaitsThenTimesOut) {
  Run([&]() -> asio::awaitable<void> {
    std::string big(64 << 20, 'z');  // far more than both socket buffers hold
    stream_->expires_after(200ms);
    asio::const_buffer b(big.data(), big.size());
    size_t sent = 0;
    error_code ec = stream_->TrySend(std::span<const asio::const_buffer>(&b, 1), 0, &sent);
    EXPECT_EQ(ec, asio::error::would_block);
    EXPECT_GT(sent, 0u);
    EXPECT_LT(sent, big.size());
    ec = co_await stream_->Write(std::span<const asio::const_buffer>(&b, 1), sent);
    EXPECT_EQ(ec, beast::error::timeout);
  });
}

TEST_F(StreamTest, GatheredWriteSendsEveryBufferInOrder) {
  Run([&]() -> asio::awaitable<void> {
    std::array<asio::const_buffer, 3> bufs = {asio::buffer("ab", 2), asio::buffer("", 0),
                                              asio::buffer("cdef", 4)};
    // Skipping 3 bytes starts in the middle of the last buffer.
    error_code ec = co_await stream_->Write(bufs, 3);
    EXPECT_FALSE(ec);
    ec = co_await stream_->Write(bufs);
    EXPECT_FALSE(ec);
  });
  std::string got(9, '\0');
  asio::read(peer_, asio::buffer(got));
  EXPECT_EQ(got, "defabcdef");
}

TEST_F(StreamTest, CancelWakesAWaitingReadWithoutCallingItATimeout) {
  After(20ms, [&] { stream_->cancel(); });
  Run([&]() -> asio::awaitable<void> {
    char b[16];
    stream_->expires_after(30s);
    auto [ec, n] = co_await stream_->ReadSome(asio::buffer(b));
    EXPECT_EQ(ec, asio::error::operation_aborted);
  });
}

TEST_F(StreamTest, DestroyingAStreamWithAnArmedWatchdogIsSafe) {
  Run([&]() -> asio::awaitable<void> {
    char b[16];
    stream_->expires_after(20ms);
    auto [ec, n] = co_await stream_->ReadSome(asio::buffer(b));
    EXPECT_EQ(ec, beast::error::timeout);
    stream_->expires_after(50ms);
    After(1ms, [&] { stream_->cancel(); });
    auto [ec2, n2] = co_await stream_->ReadSome(asio::buffer(b));  // arms the watchdog again
    EXPECT_EQ(ec2, asio::error::operation_aborted);
    stream_.reset();  // its watchdog's completion comes later and must find the stream gone
  });
}

}  // namespace
}  // namespace moat::http

namespace moat::http {
namespace {

// ReadHead over loopback with the head arriving in two writes 20 ms apart (two reads), so that
// what lies at the boundary of the reads is checked too.
struct HeadRead {
  ReadHeadStatus status;
  size_t size = 0;
};
HeadRead ReadHeadInTwoParts(std::string first, std::string second, bool skip_empty_lines,
                            size_t max_bytes = 64 * 1024) {
  asio::io_context ioc;
  tcp::acceptor acceptor(ioc, {asio::ip::make_address("127.0.0.1"), 0});
  tcp::socket peer(ioc), accepted(ioc);
  peer.connect(acceptor.local_endpoint());
  acceptor.accept(accepted);
  std::optional<Conn> conn(std::in_place, std::move(accepted));
  asio::write(peer, asio::buffer(first));
  asio::steady_timer later(ioc, std::chrono::milliseconds(20));
  later.async_wait([&](error_code ec) {
    if (!ec && !second.empty()) asio::write(peer, asio::buffer(second));
  });
  HeadRead out{ReadHeadStatus::kError};
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        out.status = co_await ReadHead(*conn, max_bytes, std::chrono::seconds(5),
                                       std::chrono::seconds(5), &out.size, skip_empty_lines);
        later.cancel();
        conn.reset();  // and with it the stream's deadline watchdog
      },
      asio::detached);
  ioc.run();
  return out;
}

TEST(HttpReadHead, ABareLfEndsTheHeadAtOnceEvenAcrossReads) {
  const std::string rest = "\nHost: x\r\n\r\n";
  HeadRead r = ReadHeadInTwoParts("GET / HTTP/1.1\r", rest, false);  // CR, then LF: not bare
  EXPECT_EQ(r.status, ReadHeadStatus::kOk);
  EXPECT_EQ(r.size, 15 + rest.size());
  r = ReadHeadInTwoParts("GET / HTTP/1.1", "\nHost: x\n\n", false);
  EXPECT_EQ(r.status, ReadHeadStatus::kOk);
  EXPECT_EQ(r.size, 15u);  // just past the bare LF: the parser answers 400
  r = ReadHeadInTwoParts("\n", "", false);
  EXPECT_EQ(r.status, ReadHeadStatus::kOk);
  EXPECT_EQ(r.size, 1u);
  // A bare LF after the end of the head belongs to the body: not looked at.
  const std::string head = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  r = ReadHeadInTwoParts(head + "\nbody\n", "", false);
  EXPECT_EQ(r.status, ReadHeadStatus::kOk);
  EXPECT_EQ(r.size, head.size());
}

TEST(HttpReadHead, EmptyLinesBeforeARequestLineArePartOfTheHead) {
  const std::string head = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  HeadRead r = ReadHeadInTwoParts("\r\n\r", "\n" + head, true);
  EXPECT_EQ(r.status, ReadHeadStatus::kOk);
  EXPECT_EQ(r.size, 4 + head.size());
  // Responses are read without skipping (their parser does not skip them either).
  r = ReadHeadInTwoParts("\r\n\r\n" + head, "", false);
  EXPECT_EQ(r.status, ReadHeadStatus::kOk);
  EXPECT_EQ(r.size, 4u);
  // A flood of empty lines still counts against the head limit.
  std::string flood;
  for (int i = 0; i < 600; ++i) flood += "\r\n";
  r = ReadHeadInTwoParts(flood, "", true, 1024);
  EXPECT_EQ(r.status, ReadHeadStatus::kTooLarge);
}

}  // namespace
}  // namespace moat::http

namespace moat::http {
namespace {

// Request ids and traceparents are written with PutHex64: every nibble value at every
// position, against snprintf.
TEST(HttpIds, HexDigitsMatchPrintf) {
  std::vector<uint64_t> values = {0, ~uint64_t{0}, 0x0123456789abcdefULL, 0xfedcba9876543210ULL,
                                  0x8000000000000001ULL};
  for (int pos = 0; pos < 16; ++pos) {
    for (uint64_t nib = 0; nib < 16; ++nib) values.push_back(nib << (4 * pos));
  }
  uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (int i = 0; i < 1000; ++i)
    values.push_back(x = x * 6364136223846793005ULL + 1442695040888963407ULL);
  for (uint64_t v : values) {
    char got[17] = {};
    char want[17];
    PutHex64(got, v);
    std::snprintf(want, sizeof want, "%016llx", static_cast<unsigned long long>(v));
    ASSERT_STREQ(got, want);
  }
  for (int i = 0; i < 100; ++i) {
    std::string id = NewRequestId();
    ASSERT_EQ(id.size(), 16u);
    ASSERT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
    TraceparentValue t = Traceparent("");
    ASSERT_TRUE(IsValidTraceparent(t.view())) << t.view();
  }
}

}  // namespace
}  // namespace moat::http
