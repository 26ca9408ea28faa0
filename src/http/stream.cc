#include "http/stream.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http/error.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "common/random.h"
#include "http/readiness.h"

namespace moat::http {
namespace {
constexpr size_t kReadChunk = 64 * 1024;  // body reads
// Head reads start this small and use whatever room the buffer already has: an idle
// keep-alive connection then holds about this much (a head with an ID token is ~1.1 KB), not
// a 64 KiB buffer. Larger heads grow the buffer as they arrive.
constexpr size_t kHeadReadChunk = 2 * 1024;

// xoshiro256** per thread, seeded from the kernel CSPRNG: request ids need uniqueness, not
// secrecy, and must not cost a syscall per request.
struct FastRng {
  uint64_t s[4];
  FastRng() {
    for (auto& w : s) w = RandomU64();
  }
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t Next() {
    uint64_t result = Rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = Rotl(s[3], 45);
    return result;
  }
};

FastRng& Rng() {
  thread_local FastRng rng;
  return rng;
}

}  // namespace

// 16 lowercase hex digits of v at out[0, 16): with SSE2, all at once (a request id and a
// traceparent, four of these, are made for every request); else two at a time from a table.
void PutHex64(char* out, uint64_t v) {
#if defined(__SSE2__)
  // Most significant byte first; x86 is little-endian.
  __m128i x = _mm_cvtsi64_si128(static_cast<long long>(__builtin_bswap64(v)));
  const __m128i k0f = _mm_set1_epi8(0x0f);
  __m128i hi = _mm_and_si128(_mm_srli_epi16(x, 4), k0f);
  __m128i lo = _mm_and_si128(x, k0f);
  __m128i nibbles = _mm_unpacklo_epi8(hi, lo);  // hi0 lo0 hi1 lo1 …
  // '0' + n, and 'a' - '0' - 10 more where n > 9.
  __m128i letters = _mm_and_si128(_mm_cmpgt_epi8(nibbles, _mm_set1_epi8(9)), _mm_set1_epi8(39));
  __m128i ascii = _mm_add_epi8(_mm_add_epi8(nibbles, _mm_set1_epi8('0')), letters);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out), ascii);
#else
  static constexpr auto kPairs = [] {
    std::array<char, 512> t{};
    constexpr char kHex[] = "0123456789abcdef";
    for (int i = 0; i < 256; ++i) {
      t[2 * i] = kHex[i >> 4];
      t[2 * i + 1] = kHex[i & 15];
    }
    return t;
  }();
  for (int i = 14; i >= 0; i -= 2, v >>= 8) {
    out[i] = kPairs[2 * (v & 0xff)];
    out[i + 1] = kPairs[2 * (v & 0xff) + 1];
  }
#endif
}

namespace {

bool IsLowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}
}  // namespace

struct Stream::Watchdog {
  explicit Watchdog(const asio::any_io_executor& ex) : timer(ex) {}
  asio::steady_timer timer;
  Stream* owner = nullptr;  // nullptr once the stream is gone
  uint64_t generation = 0;  // of the pending wait; older completions are ignored
  bool armed = false;
  Clock::time_point at;
};

Stream::Clock::time_point Stream::CoarseNow() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return Clock::time_point(std::chrono::duration_cast<Clock::duration>(
      std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
}

Stream::Stream(asio::ip::tcp::socket s) : socket_(std::move(s)) {
  error_code ec;
  socket_.non_blocking(true, ec);
  SetUpReadiness();
}

void Stream::SetUpReadiness() {
#ifdef MOAT_HTTP_READINESS
  if (!socket_.is_open() || !socket_.non_blocking()) return;
  // The io_context's reactor (a lookup under a lock: once per connection, not per read).
  reactor_ = &asio::use_service<readiness::Reactor>(
      asio::query(socket_.get_executor(), asio::execution::context));
  peer_close_watched_ = readiness::WatchPeerClose(socket_, *reactor_);
#endif
}

void Stream::MarkDrained() {
#ifdef MOAT_HTTP_READINESS
  if (reactor_ != nullptr && socket_.is_open()) readiness::MarkDrained(socket_);
#endif
}

bool Stream::IsDrained() {
#ifdef MOAT_HTTP_READINESS
  return reactor_ != nullptr && socket_.is_open() && readiness::Drained(socket_);
#else
  return false;
#endif
}

uint64_t EmptyReads() {
#ifdef MOAT_HTTP_READINESS
  return readiness::g_empty_reads.load(std::memory_order_relaxed);
#else
  return 0;
#endif
}

Stream::~Stream() {
  if (watchdog_) {
    watchdog_->owner = nullptr;
    watchdog_->timer.cancel();
  }
}

void Stream::expires_at(Clock::time_point t) {
  deadline_ = t;
  timed_out_ = false;
  // An earlier deadline while an operation waits must bring the watchdog forward.
  if (waiting_ > 0) Arm();
}

void Stream::cancel() {
  error_code ec;
  socket_.cancel(ec);
}

void Stream::close() {
  error_code ec;
  socket_.close(ec);
}

void Stream::Arm() {
  if (deadline_ == Clock::time_point::max()) return;
  if (!watchdog_) {
    watchdog_ = std::make_shared<Watchdog>(socket_.get_executor());
    watchdog_->owner = this;
  }
  Watchdog& w = *watchdog_;
  if (w.armed && w.at <= deadline_) return;  // it fires early enough, then re-checks
  w.armed = true;
  w.at = deadline_;
  uint64_t generation = ++w.generation;
  w.timer.expires_at(deadline_);
  w.timer.async_wait([w = watchdog_, generation](error_code ec) {
    if (ec || w->owner == nullptr || w->generation != generation) return;
    w->armed = false;
    w->owner->OnWatchdog();
  });
}

void Stream::OnWatchdog() {
  if (waiting_ == 0 || deadline_ == Clock::time_point::max()) return;
  if (Clock::now() >= deadline_) {
    timed_out_ = true;
    cancel();
    return;
  }
  Arm();
}

// Before waiting: timeout if the deadline has passed, else the watchdog is armed for it.
error_code Stream::BeginWait() {
  if (deadline_ != Clock::time_point::max()) {
    // Coarse: a read a tick late only arms the watchdog, whose check is exact.
    if (timed_out_ || CoarseNow() >= deadline_) {
      timed_out_ = true;
      return beast::error::timeout;
    }
    Arm();
  }
  ++waiting_;
  return {};
}

// ReadSome's operation: BeginWait, the read, EndWait on completion. Not a coroutine, so that a
// read costs one coroutine frame (Asio's, for the awaitable) rather than two.
struct ReadInitiation {
  // Passes the associated executor and cancellation slot through (Asio's own operation
  // serves reads whose awaitable can be cancelled, e.g. under `&&`).
  template <typename Handler>
  struct EndWaitHandler {
    Stream* stream;
    Handler handler;
    using executor_type = asio::associated_executor_t<Handler, asio::any_io_executor>;
    executor_type get_executor() const noexcept {
      return asio::get_associated_executor(handler, stream->get_executor());
    }
    using cancellation_slot_type = asio::associated_cancellation_slot_t<Handler>;
    cancellation_slot_type get_cancellation_slot() const noexcept {
      return asio::get_associated_cancellation_slot(handler);
    }
    void operator()(error_code ec, size_t n) { std::move(handler)(stream->EndWait(ec), n); }
  };

  static error_code Finish(void* stream, error_code ec) {
    return static_cast<Stream*>(stream)->EndWait(ec);
  }

  template <typename Handler>
  void operator()(Handler&& handler, Stream* s, asio::mutable_buffer b) const {
    using H = std::decay_t<Handler>;
    if (error_code ec = s->BeginWait()) {
      asio::post(s->get_executor(),
                 [h = H(std::forward<Handler>(handler)), ec]() mutable { std::move(h)(ec, 0); });
      return;
    }
#ifdef MOAT_HTTP_READINESS
    if (s->reactor_ != nullptr && !asio::get_associated_cancellation_slot(handler).is_connected() &&
        readiness::StartRecv(handler, s->socket_, *s->reactor_, s->peer_close_watched_, b,
                             &ReadInitiation::Finish, s))
      return;
#endif
    s->socket_.async_read_some(b, EndWaitHandler<H>{s, H(std::forward<Handler>(handler))});
  }
};

asio::awaitable<std::tuple<error_code, size_t>> Stream::ReadSome(asio::mutable_buffer b) {
  return asio::async_initiate<decltype(use_nothrow), void(error_code, size_t)>(
      ReadInitiation(), use_nothrow, this, b);
}

error_code Stream::TrySend(std::span<const asio::const_buffer> bufs, size_t skip, size_t* sent) {
  constexpr size_t kMaxBuffers = 8;
  if (bufs.size() > kMaxBuffers) return asio::error::invalid_argument;
  iovec iov[kMaxBuffers];
  size_t count = 0;
  for (const asio::const_buffer& b : bufs) {
    size_t size = b.size();
    const char* data = static_cast<const char*>(b.data());
    if (skip >= size) {
      skip -= size;
      continue;
    }
    iov[count].iov_base = const_cast<char*>(data + skip);
    iov[count].iov_len = size - skip;
    skip = 0;
    ++count;
  }
  size_t first = 0;
  while (first < count) {
    msghdr msg{};
    msg.msg_iov = iov + first;
    msg.msg_iovlen = count - first;
    ssize_t n = ::sendmsg(socket_.native_handle(), &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return asio::error::would_block;
      return error_code(errno, asio::error::get_system_category());
    }
    auto left = static_cast<size_t>(n);
    *sent += left;
    while (first < count && left >= iov[first].iov_len) left -= iov[first++].iov_len;
    if (left > 0) {
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
  return {};
}

asio::awaitable<error_code> Stream::Write(std::span<const asio::const_buffer> bufs, size_t skip) {
  for (;;) {
    error_code ec = TrySend(bufs, skip, &skip);
    if (ec != asio::error::would_block) co_return ec;
    // The send buffer is full (a slow reader): wait until it drains.
    if (error_code wec = BeginWait()) co_return wec;
    auto [wait_ec] = co_await socket_.async_wait(asio::socket_base::wait_write, use_nothrow);
    if (error_code wec = EndWait(wait_ec)) co_return wec;
  }
}

asio::awaitable<error_code> Stream::Connect(const asio::ip::tcp::endpoint& ep) {
  if (error_code ec = BeginWait()) co_return ec;
  auto [cec] = co_await socket_.async_connect(ep, use_nothrow);
  if (error_code ec = EndWait(cec)) co_return ec;
  error_code ignored;
  socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
  socket_.non_blocking(true, ignored);
  SetUpReadiness();
  co_return error_code{};
}

void Conn::Close() {
  error_code ec;
  stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  stream.close();
}

asio::awaitable<ReadHeadStatus> ReadHead(Conn& c, size_t max_bytes,
                                         std::chrono::steady_clock::duration idle_timeout,
                                         std::chrono::steady_clock::duration head_timeout,
                                         size_t* head_size, bool skip_empty_lines) {
  bool started = c.buffer.size() > 0;
  c.stream.expires_after(started ? head_timeout : idle_timeout);
  size_t searched = 0;
  size_t lead = 0;  // bytes of empty lines before the first line
  for (;;) {
    std::string_view have = c.Buffered();
    // Resumes where it stopped as `have` grows.
    while (skip_empty_lines && have.substr(lead, 2) == "\r\n") lead += 2;
    searched = std::max(searched, lead);
    size_t from = std::max(lead, searched >= 3 ? searched - 3 : 0);
    size_t end = have.find("\r\n\r\n", from);
    if (end != std::string_view::npos && end + 4 <= max_bytes) {
      *head_size = end + 4;
      co_return ReadHeadStatus::kOk;
    }
    // A bare LF never belongs to a head the parsers accept (framing.h): end the head at the
    // first one, so that the peer gets its 400 now rather than at the head deadline.
    for (size_t lf = have.find('\n', searched); lf < max_bytes; lf = have.find('\n', lf + 1)) {
      if (lf == 0 || have[lf - 1] != '\r') {
        *head_size = lf + 1;
        co_return ReadHeadStatus::kOk;
      }
    }
    if (have.size() >= max_bytes) co_return ReadHeadStatus::kTooLarge;
    searched = have.size();
    size_t room = c.buffer.capacity() - c.buffer.size();
    size_t want = std::min(std::max(kHeadReadChunk, room), max_bytes - have.size());
    auto [ec, n] = co_await c.stream.ReadSome(c.buffer.prepare(want));
    c.buffer.commit(n);
    if (ec) {
      if (ec == beast::error::timeout) co_return ReadHeadStatus::kTimeout;
      if (ec == asio::error::eof && c.buffer.size() == 0) co_return ReadHeadStatus::kClosed;
      co_return ReadHeadStatus::kError;
    }
    if (!started && n > 0) {
      started = true;
      c.stream.expires_after(head_timeout);
    }
  }
}

BodyReader::BodyReader(BodyKind kind, uint64_t content_length, uint64_t limit)
    : kind_(kind), remaining_(content_length), limit_(limit) {
  done_ = kind == BodyKind::kNone || (kind == BodyKind::kLength && content_length == 0);
}

error_code BodyReader::TryNext(Conn& c, std::string_view* data, bool* need_read) {
  c.buffer.consume(pending_consume_);
  pending_consume_ = 0;
  *data = {};
  *need_read = false;
  if (done_) return {};
  for (;;) {
    std::string_view have = c.Buffered();
    if (have.empty()) {
      *need_read = true;
      return {};
    }
    switch (kind_) {
      case BodyKind::kLength: {
        size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, have.size()));
        *data = have.substr(0, n);
        pending_consume_ = n;
        remaining_ -= n;
        done_ = remaining_ == 0;
        break;
      }
      case BodyKind::kUntilClose:
        *data = have;
        pending_consume_ = have.size();
        break;
      case BodyKind::kChunked: {
        ChunkedDecoder::Step step = chunked_.Feed(have);
        if (chunked_.failed()) return beast::http::error::bad_chunk;
        if (!step.data.empty()) {
          *data = step.data;
          pending_consume_ = step.consumed;
          break;
        }
        c.buffer.consume(step.consumed);
        if (chunked_.done()) {
          done_ = true;
          return {};
        }
        if (step.consumed > 0) continue;
        *need_read = true;  // a partial chunk line: more input needed
        return {};
      }
      case BodyKind::kNone:
        done_ = true;
        return {};
    }
    bytes_ += data->size();
    if (bytes_ > limit_) return beast::http::error::body_limit;
    return {};
  }
}

asio::awaitable<error_code> BodyReader::Next(Conn& c, std::string_view* data) {
  for (;;) {
    bool need_read = false;
    error_code ec = TryNext(c, data, &need_read);
    if (ec || !need_read) co_return ec;
    auto [rec, n] = co_await c.stream.ReadSome(c.buffer.prepare(kReadChunk));
    c.buffer.commit(n);
    if (rec == asio::error::eof && kind_ == BodyKind::kUntilClose) {
      done_ = true;
      co_return error_code{};
    }
    if (rec == asio::error::eof) co_return beast::http::error::partial_message;
    if (rec) co_return rec;
  }
}


void AppendRequestHead(std::string* out, std::string_view method, std::string_view target,
                       const Headers& headers) {
  out->append(method);
  out->push_back(' ');
  out->append(target);
  out->append(" HTTP/1.1\r\n");
  for (const Field& f : headers) AppendField(out, f.name, f.value);
  out->append("\r\n");
}

void AppendResponseHead(std::string* out, int status, const Headers& headers) {
  char line[64];
  std::string_view reason = ReasonPhrase(status);
  int n = std::snprintf(line, sizeof line, "HTTP/1.1 %d ", status);
  out->append(line, static_cast<size_t>(n));
  out->append(reason);
  out->append("\r\n");
  for (const Field& f : headers) AppendField(out, f.name, f.value);
  out->append("\r\n");
}

asio::awaitable<void> LingeringClose(Conn& c, std::chrono::steady_clock::duration max) {
  error_code ec;
  if (!c.stream.socket().is_open()) co_return;
  c.stream.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  if (ec) co_return;
  c.buffer.clear();
  c.stream.expires_after(max);
  for (;;) {
    // Discarded: the prepared bytes are never committed.
    auto [rec, n] = co_await c.stream.ReadSome(c.buffer.prepare(kReadChunk));
    if (rec) co_return;  // the peer closed, an error, the deadline, or Stop()
  }
}

asio::awaitable<error_code> WriteAll(Conn& c, std::string_view data, size_t skip) {
  asio::const_buffer b(data.data(), data.size());
  co_return co_await c.stream.Write(std::span<const asio::const_buffer>(&b, 1), skip);
}

asio::awaitable<error_code> WriteChunk(Conn& c, std::string_view data) {
  if (data.empty()) co_return error_code{};
  char size_line[24];
  int n = std::snprintf(size_line, sizeof size_line, "%zx\r\n", data.size());
  std::array<asio::const_buffer, 3> bufs = {asio::buffer(size_line, static_cast<size_t>(n)),
                                            asio::buffer(data.data(), data.size()),
                                            asio::buffer("\r\n", 2)};
  co_return co_await c.stream.Write(bufs);
}

asio::awaitable<error_code> WriteLastChunk(Conn& c) { co_return co_await WriteAll(c, "0\r\n\r\n"); }

asio::awaitable<error_code> Connect(Stream& s, const std::string& host, uint16_t port,
                                    std::chrono::steady_clock::duration timeout) {
  using asio::ip::tcp;
  s.expires_after(timeout);
  error_code ec;
  // RFC 6761 §6.3: "localhost" and every name under ".localhost" are loopback, without asking
  // DNS (service URLs are http://SERVICE-HASH.REGION.run.localhost:PORT).
  auto is_localhost = [](std::string_view h) {
    if (!h.empty() && h.back() == '.') h.remove_suffix(1);
    constexpr std::string_view kSuffix = ".localhost";
    if (IEquals(h, "localhost")) return true;
    return h.size() > kSuffix.size() && IEquals(h.substr(h.size() - kSuffix.size()), kSuffix);
  };
  asio::ip::address addr = is_localhost(host) ? asio::ip::make_address("127.0.0.1", ec)
                                              : asio::ip::make_address(host, ec);
  if (!ec) co_return co_await s.Connect(tcp::endpoint(addr, port));
  tcp::resolver resolver(s.get_executor());
  auto [rec, results] = co_await resolver.async_resolve(host, std::to_string(port), use_nothrow);
  if (rec) co_return rec;
  error_code cec = asio::error::host_not_found;
  for (const auto& entry : results) {
    s.close();
    cec = co_await s.Connect(entry.endpoint());
    if (!cec || cec == beast::error::timeout) break;
  }
  co_return cec;
}

std::string NewRequestId() {
  std::string out(16, '0');
  PutHex64(out.data(), Rng().Next());
  return out;
}

bool IsValidTraceparent(std::string_view v) {
  // version "00" only: 2 + 1 + 32 + 1 + 16 + 1 + 2 = 55 characters.
  if (v.size() != 55 || v.substr(0, 3) != "00-" || v[35] != '-' || v[52] != '-') return false;
  std::string_view trace = v.substr(3, 32), span = v.substr(36, 16), flags = v.substr(53, 2);
  if (!IsLowerHex(trace) || !IsLowerHex(span) || !IsLowerHex(flags)) return false;
  return trace != std::string(32, '0') && span != std::string(16, '0');
}

TraceparentValue Traceparent(std::string_view incoming) {
  TraceparentValue out;
  if (IsValidTraceparent(incoming)) {
    std::copy(incoming.begin(), incoming.end(), out.chars.begin());
    return out;
  }
  // "00-" trace id (32) "-" span id (16) "-01"; the low bits set keep both ids non-zero.
  char* p = out.chars.data();
  std::memcpy(p, "00-", 3);
  FastRng& rng = Rng();
  PutHex64(p + 3, rng.Next() | 1);
  PutHex64(p + 19, rng.Next());
  p[35] = '-';
  PutHex64(p + 36, rng.Next() | 1);
  std::memcpy(p + 52, "-01", 3);
  return out;
}

}  // namespace moat::http
