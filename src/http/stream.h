// Coroutine I/O building blocks over Asio/Beast shared by the server, the clients and the
// gateway's proxy: a TCP stream with timeouts plus its unread bytes (Conn), reading a head up
// to "\r\n\r\n" with a size limit, streaming a body in any framing (BodyReader), writing
// heads and chunks, and connecting with a deadline. All functions report errors through
// error codes (never exceptions).
//
// Include only from .cc files that do I/O (Beast headers are heavy).
// Thread-safety: a Conn is used by one coroutine at a time, on one thread.
#pragma once

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <chrono>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <tuple>

#include "http/framing.h"
#include "http/message.h"

namespace boost::asio::detail {
class epoll_reactor;
}

namespace moat::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
using error_code = boost::system::error_code;
inline constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

// A TCP socket with a deadline, built for the proxy's hot path:
// - Writes go straight to send(2)/sendmsg(2) and return without suspending when the kernel
//   takes the bytes (the usual case); only a full send buffer waits for writability.
// - Reads use Asio's reactor with an operation that knows when the socket is drained
//   (readiness.h): after a short read the next read waits for readiness, rather than first
//   calling recv(2) only to get EAGAIN.
// - The deadline costs nothing per operation: it is a stored time point, and one lazily armed
//   timer per stream (its "watchdog") fires at the earliest deadline an operation waited
//   under. When it fires, an operation still waiting past the deadline is cancelled and
//   reports beast::error::timeout; otherwise it re-arms for the current deadline. Moving the
//   deadline later (every request does) therefore re-arms nothing.
// A deadline applies to operations that have to wait: an operation that completes at once
// succeeds even after it. Once an operation timed out, every later one fails with
// beast::error::timeout until the deadline is moved.
//
// Thread-safety: one thread; at most one read and one write (or connect) in flight.
class Stream {
 public:
  using Clock = std::chrono::steady_clock;
  // steady_clock's time from CLOCK_MONOTONIC_COARSE: the same clock, read at a fraction of the
  // cost, up to one scheduler tick (1–4 ms) behind.
  static Clock::time_point CoarseNow();

  explicit Stream(const asio::any_io_executor& ex) : socket_(ex) {}
  // Takes a connected socket (e.g. from accept) and makes it non-blocking.
  explicit Stream(asio::ip::tcp::socket s);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  asio::ip::tcp::socket& socket() { return socket_; }
  asio::any_io_executor get_executor() { return socket_.get_executor(); }

  // From a coarse clock read (a few ms behind at most; several reads per request): the
  // deadline may come up to that much early.
  void expires_after(Clock::duration d) { expires_at(CoarseNow() + d); }
  void expires_at(Clock::time_point t);
  void expires_never() { expires_at(Clock::time_point::max()); }
  // Wakes waiting operations with asio::error::operation_aborted.
  void cancel();
  void close();

  // Reads at least one byte into `b`: asio::error::eof at the end of the stream,
  // beast::error::timeout past the deadline.
  asio::awaitable<std::tuple<error_code, size_t>> ReadSome(asio::mutable_buffer b);
  // Sends what the kernel takes now from `bufs` (at most 8), skipping the first `skip` bytes,
  // without waiting. Adds the bytes sent to *sent; error_code() when everything was sent,
  // asio::error::would_block when the send buffer is full.
  error_code TrySend(std::span<const asio::const_buffer> bufs, size_t skip, size_t* sent);
  // Writes every byte of `bufs` (at most 8) after the first `skip`: at once when the kernel
  // takes them (no suspension), waiting while the send buffer is full.
  asio::awaitable<error_code> Write(std::span<const asio::const_buffer> bufs, size_t skip = 0);
  asio::awaitable<error_code> Connect(const asio::ip::tcp::endpoint& ep);
  // The caller has just seen the receive queue empty — no data, FIN or error pending (a
  // non-blocking recv(MSG_PEEK) failed with EAGAIN): the next read waits for readiness.
  void MarkDrained();
  // The last read found the receive queue empty and the reactor has reported no data, FIN
  // or error on the socket since (always false where readiness.h is not compiled in).
  bool IsDrained();

 private:
  struct Watchdog;
  friend struct ReadInitiation;
  // Around every operation that may wait: BeginWait fails with timeout once the deadline has
  // passed, else arms the watchdog; EndWait maps a cancellation by the watchdog to timeout.
  error_code BeginWait();
  error_code EndWait(error_code ec) {
    --waiting_;
    return ec == asio::error::operation_aborted && timed_out_ ? error_code(beast::error::timeout)
                                                              : ec;
  }
  void Arm();
  void OnWatchdog();
  // On a connected socket: looks up the reactor and watches for the peer's FIN.
  void SetUpReadiness();

  asio::ip::tcp::socket socket_;
  asio::detail::epoll_reactor* reactor_ = nullptr;  // set when readiness.h is in use
  bool peer_close_watched_ = false;                 // registered for EPOLLRDHUP
  Clock::time_point deadline_ = Clock::time_point::max();
  int waiting_ = 0;  // operations in flight that may wait
  bool timed_out_ = false;
  std::shared_ptr<Watchdog> watchdog_;  // created by the first wait under a deadline
};

// A connected TCP stream (with a deadline) and the bytes read from it but not yet consumed.
struct Conn {
  explicit Conn(const asio::any_io_executor& ex) : stream(ex) {}
  explicit Conn(asio::ip::tcp::socket s) : stream(std::move(s)) {}
  Stream stream;
  beast::flat_buffer buffer;
  // Free for the connection's owner: an output buffer that keeps its capacity from one
  // request to the next (the gateway builds heads in it).
  std::string scratch;

  std::string_view Buffered() const {
    auto d = buffer.data();
    return {static_cast<const char*>(d.data()), d.size()};
  }
  // Half-closes then closes, ignoring errors.
  void Close();
};

enum class ReadHeadStatus {
  kOk,        // a head of *head_size bytes is at the front of conn.buffer
  kClosed,    // the peer closed before sending a byte (normal end of keep-alive)
  kTooLarge,  // no "\r\n\r\n" within max_bytes
  kTimeout,   // idle or header deadline passed
  kError,     // connection error, or EOF in the middle of a head
};

// Reads until the blank line ending a head. While nothing is buffered the deadline is
// `idle_timeout`; from the first byte the whole head must arrive within `head_timeout`.
// With `skip_empty_lines` (requests: ParseRequestHead skips them, RFC 9112 §2.2), empty lines
// before the first line are part of the head, not its end. A bare LF ends the head at once
// (kOk, *head_size just past it): no parser accepts one, so the peer gets its 400/502 now
// instead of at the deadline.
asio::awaitable<ReadHeadStatus> ReadHead(Conn& c, size_t max_bytes,
                                         std::chrono::steady_clock::duration idle_timeout,
                                         std::chrono::steady_clock::duration head_timeout,
                                         size_t* head_size, bool skip_empty_lines = false);

// Streams a message body in the framing its head declared. Usage:
//   BodyReader r(kind, length);
//   for (;;) { std::string_view d; auto ec = co_await r.Next(conn, &d);
//              if (ec) fail; if (d.empty()) break; use d (valid until the next Next) }
// Errors: beast::http::error::partial_message (peer closed early), bad_chunk (framing),
// body_limit (more than `limit` bytes), or the socket's error (timeouts included).
class BodyReader {
 public:
  BodyReader() = default;
  BodyReader(BodyKind kind, uint64_t content_length,
             uint64_t limit = std::numeric_limits<uint64_t>::max());
  asio::awaitable<error_code> Next(Conn& c, std::string_view* data);
  // Next without reading: the next piece from what `c` has buffered, or *need_read when
  // there is none (then *data is empty and the body is not done). Lets a relay gather many
  // small chunks into one write and flush before it has to wait for input.
  error_code TryNext(Conn& c, std::string_view* data, bool* need_read);
  bool done() const { return done_; }
  uint64_t bytes() const { return bytes_; }
  // Drops the bytes of the last piece Next returned from `c`'s buffer (Next does this lazily,
  // so the piece stays valid until the next call). Call it before reusing `c` for another
  // message once done() — otherwise the last piece would be read as the next message's start.
  void Settle(Conn& c) {
    c.buffer.consume(pending_consume_);
    pending_consume_ = 0;
  }

 private:
  BodyKind kind_ = BodyKind::kNone;
  uint64_t remaining_ = 0;
  uint64_t limit_ = 0;
  uint64_t bytes_ = 0;
  size_t pending_consume_ = 0;
  bool done_ = true;
  ChunkedDecoder chunked_;
};

// "METHOD target HTTP/1.1\r\n" + fields + "\r\n".
void AppendRequestHead(std::string* out, std::string_view method, std::string_view target,
                       const Headers& headers);
// "HTTP/1.1 status Reason\r\n" + fields + "\r\n".
void AppendResponseHead(std::string* out, int status, const Headers& headers);
// Inline: most names and values are literals, whose lengths are then known at compile time.
inline void AppendField(std::string* out, std::string_view name, std::string_view value) {
  size_t at = out->size();
  out->resize(at + name.size() + value.size() + 4);
  char* p = out->data() + at;
  p = std::copy(name.begin(), name.end(), p);
  *p++ = ':';
  *p++ = ' ';
  p = std::copy(value.begin(), value.end(), p);
  *p++ = '\r';
  *p = '\n';
}

// Ends a connection whose peer may still be sending: sends FIN, then reads and discards
// until the peer closes, an error, or `max` has passed; the caller closes. Closing at once
// with unread input would send a reset, which also drops our unsent bytes (the answer).
asio::awaitable<void> LingeringClose(Conn& c, std::chrono::steady_clock::duration max);

// Writes every byte of `data` after the first `skip`, waiting while the send buffer is full.
asio::awaitable<error_code> WriteAll(Conn& c, std::string_view data, size_t skip = 0);
// WriteAll's first attempt as a plain function: sends what the kernel takes now. Returns the
// outcome, or asio::error::would_block when bytes remain (*sent of them went out) — then
// `co_await WriteAll(c, data, *sent)` finishes. The hot path writes this way: a write that
// completes at once (the usual case) then costs no coroutine frames.
//   size_t sent = 0;
//   error_code ec = TryWriteAll(c, data, &sent);
//   if (ec == asio::error::would_block) ec = co_await WriteAll(c, data, sent);
inline error_code TryWriteAll(Conn& c, std::string_view data, size_t* sent) {
  asio::const_buffer b(data.data(), data.size());
  return c.stream.TrySend(std::span<const asio::const_buffer>(&b, 1), 0, sent);
}
// One chunk in the chunked coding ("hex\r\n" data "\r\n"); empty data is skipped.
asio::awaitable<error_code> WriteChunk(Conn& c, std::string_view data);
// The last chunk with no trailers.
asio::awaitable<error_code> WriteLastChunk(Conn& c);

// Connects `s` to host:port (IP literal or a name to resolve) within `timeout`.
asio::awaitable<error_code> Connect(Stream& s, const std::string& host, uint16_t port,
                                    std::chrono::steady_clock::duration timeout);

// Per-thread fast random ids (seeded from the CSPRNG): 16 lowercase hex digits.
std::string NewRequestId();
// The 16 lowercase hex digits of `v`, most significant first, at out[0, 16).
void PutHex64(char* out, uint64_t v);

// How many reads so far, in this process, called recv(2) and found nothing to read (EAGAIN).
// For tests and benchmarks: a drained socket should be waited on, not read.
uint64_t EmptyReads();
// A W3C traceparent value ("00-<32hex>-<16hex>-<2hex>", always 55 characters), kept inline:
// one is made for every request.
struct TraceparentValue {
  std::array<char, 55> chars{};
  std::string_view view() const { return {chars.data(), chars.size()}; }
};
// `incoming` when well-formed, else a new one ("00-<32hex>-<16hex>-01").
TraceparentValue Traceparent(std::string_view incoming);
bool IsValidTraceparent(std::string_view v);

}  // namespace moat::http
