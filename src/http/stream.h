// Coroutine I/O building blocks over Asio/Beast shared by the server, the clients and the
// gateway's proxy: a TCP stream with timeouts plus its unread bytes (Conn), reading a head up
// to "\r\n\r\n" with a size limit, streaming a body in any framing (BodyReader), writing
// heads and chunks, and connecting with a deadline. All functions report errors through
// error codes (never exceptions).
//
// Include only from .cc files that do I/O (Beast headers are heavy).
// Thread-safety: a Conn is used by one coroutine at a time, on one thread.
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <chrono>
#include <limits>
#include <string>
#include <string_view>

#include "http/framing.h"
#include "http/message.h"

namespace moat::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
using error_code = boost::system::error_code;
inline constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

// A connected TCP stream (with Beast's per-operation deadline) and the bytes read from it
// but not yet consumed.
struct Conn {
  explicit Conn(beast::tcp_stream s) : stream(std::move(s)) {}
  beast::tcp_stream stream;
  beast::flat_buffer buffer;

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
asio::awaitable<ReadHeadStatus> ReadHead(Conn& c, size_t max_bytes,
                                         std::chrono::steady_clock::duration idle_timeout,
                                         std::chrono::steady_clock::duration head_timeout,
                                         size_t* head_size);

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
void AppendField(std::string* out, std::string_view name, std::string_view value);

asio::awaitable<error_code> WriteAll(Conn& c, std::string_view data);
// One chunk in the chunked coding ("hex\r\n" data "\r\n"); empty data is skipped.
asio::awaitable<error_code> WriteChunk(Conn& c, std::string_view data);
// The last chunk with no trailers.
asio::awaitable<error_code> WriteLastChunk(Conn& c);

// Connects `s` to host:port (IP literal or a name to resolve) within `timeout`.
asio::awaitable<error_code> Connect(beast::tcp_stream& s, const std::string& host, uint16_t port,
                                    std::chrono::steady_clock::duration timeout);

// Per-thread fast random ids (seeded from the CSPRNG): 16 lowercase hex digits.
std::string NewRequestId();
// A W3C traceparent: `incoming` when well-formed, else a new one ("00-<32hex>-<16hex>-01").
std::string Traceparent(std::string_view incoming);
bool IsValidTraceparent(std::string_view v);

}  // namespace moat::http
