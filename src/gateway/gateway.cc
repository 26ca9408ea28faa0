#include "gateway/gateway.h"

#include <sys/socket.h>

#include <array>
#include <atomic>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/container/small_vector.hpp>
#include <cerrno>
#include <charconv>
#include <unordered_map>
#include <vector>

#include "common/log.h"
#include "gateway/metrics.h"
#include "gateway/pages.h"
#include "http/handler.h"
#include "http/stream.h"

namespace moat::gateway {

namespace asio = boost::asio;
namespace beast = boost::beast;
using http::BodyKind;
using http::Conn;
using http::error_code;
using http::use_nothrow;
using namespace boost::asio::experimental::awaitable_operators;
using Clock = std::chrono::steady_clock;

std::string_view TokenHeaderName(TokenHeader h) {
  switch (h) {
    case TokenHeader::kNone:
      return "none";
    case TokenHeader::kAuthorization:
      return "Authorization";
    case TokenHeader::kServerlessAuthorization:
      return "X-Serverless-Authorization";
  }
  return "none";
}

namespace {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// A connection to an upstream, pooled with the response head it last carried (whose strings
// keep their storage for the next response).
struct Upstream : Conn {
  explicit Upstream(const asio::any_io_executor& ex) : Conn(ex) {}
  http::ResponseHead resp;
};

// Bodies (RelayBody): buffered pieces are gathered into writes of about kBatchBytes; a piece
// at least kDirectPiece long is written from the read buffer without being copied.
constexpr size_t kBatchBytes = 16 * 1024;
constexpr size_t kDirectPiece = 8 * 1024;

// INVARIANT: touched only on its worker's thread.
struct WorkerState {
  uint64_t routes_version = 0;
  std::shared_ptr<const RouteTable> routes;
  // The last Host looked up in `routes` (empty: none) and what it found (into `routes`).
  std::string last_host;
  const std::shared_ptr<const ServiceEntry>* last_found = nullptr;
  // Idle upstream connections by "host:port".
  using Pool = std::vector<std::unique_ptr<Upstream>>;
  std::unordered_map<std::string, Pool, StringHash, std::equal_to<>> idle;
  // The pool used last and its upstream (a request acquires and releases the same one):
  // pools are never erased while the worker runs, and map nodes do not move.
  Pool* last_pool = nullptr;
  std::string last_pool_host;
  uint16_t last_pool_port = 0;

  Pool& PoolFor(const ServiceEntry& svc) {
    if (last_pool && last_pool_port == svc.upstream_port && last_pool_host == svc.upstream_host) {
      return *last_pool;
    }
    std::string key = svc.upstream_host + ':' + std::to_string(svc.upstream_port);
    auto it = idle.find(std::string_view(key));
    if (it == idle.end()) it = idle.emplace(std::move(key), Pool()).first;
    last_pool = &it->second;
    last_pool_host = svc.upstream_host;
    last_pool_port = svc.upstream_port;
    return *last_pool;
  }
  // Access-log lines not written yet, and whether a flush is posted (see AccessLog).
  log::LineBatch log_batch;
  bool log_flush_posted = false;
};

using http::FieldId;

// RFC 9110 §7.6.1 connection-specific fields (plus Proxy-Connection).
bool IsHopByHop(FieldId id) {
  switch (id) {
    case FieldId::kConnection:
    case FieldId::kKeepAlive:
    case FieldId::kProxyConnection:
    case FieldId::kTe:
    case FieldId::kTrailer:
    case FieldId::kTransferEncoding:
    case FieldId::kUpgrade:
      return true;
    default:
      return false;
  }
}

// Field names listed in the Connection header(s) (they are hop-by-hop too). Usually one or
// two ("keep-alive", "close"), kept without a heap allocation.
using TokenList = boost::container::small_vector<std::string_view, 4>;
TokenList ConnectionTokens(const http::Headers& h) {
  TokenList out;
  for (const http::Field& f : h) {
    if (f.id != FieldId::kConnection) continue;
    std::string_view list = f.value;
    while (!list.empty()) {
      size_t comma = list.find(',');
      std::string_view item = list.substr(0, comma);
      while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
      while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
      if (!item.empty()) out.push_back(item);
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
  }
  return out;
}

bool Named(const TokenList& tokens, std::string_view name) {
  for (std::string_view t : tokens) {
    if (http::IEquals(t, name)) return true;
  }
  return false;
}
// Whether `f` is connection-specific: hop-by-hop by name or listed in Connection.
bool ConnectionSpecific(const http::Field& f, const TokenList& named) {
  return IsHopByHop(f.id) || (!named.empty() && Named(named, f.name));
}

// "HTTP/1.1 NNN " (status 100–999).
void AppendStatusLineStart(std::string* out, int status) {
  char line[13] = {'H', 'T', 'T', 'P', '/', '1', '.', '1', ' ', '0', '0', '0', ' '};
  line[9] = static_cast<char>('0' + status / 100 % 10);
  line[10] = static_cast<char>('0' + status / 10 % 10);
  line[11] = static_cast<char>('0' + status % 10);
  out->append(line, sizeof line);
}

std::string_view ClientIp(std::string_view remote) {
  size_t colon = remote.rfind(':');
  std::string_view ip = colon == std::string_view::npos ? remote : remote.substr(0, colon);
  if (ip.size() >= 2 && ip.front() == '[' && ip.back() == ']') ip = ip.substr(1, ip.size() - 2);
  return ip;
}

std::atomic<uint64_t> g_pool_probes{0};

// A pooled connection is reusable only if the upstream has not closed it or sent stray bytes.
bool StillUsable(Conn& c) {
  if (c.buffer.size() != 0 || !c.stream.socket().is_open()) return false;
  // Its last read drained it and the reactor has seen nothing arrive since (a close, stray
  // bytes and errors all make the socket readable, which epoll reports): no probe needed.
  // Not a syscall per reuse — and the probe, a recv on the idle socket, made the upstream's
  // side of the loopback measurably dearer (docs/benchmarks.md).
  if (c.stream.IsDrained()) return true;
  g_pool_probes.fetch_add(1, std::memory_order_relaxed);
  char b;
  ssize_t n = ::recv(c.stream.socket().native_handle(), &b, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) return false;
  // Nothing is pending, so the response read can wait for it without trying first.
  c.stream.MarkDrained();
  return true;
}

struct LogInfo {
  const ServiceEntry* service = nullptr;
  std::string_view decision = "none";
  std::string_view principal;  // into the request's GateDecision, which outlives the log line
  std::string reason;
  TokenHeader token_header = TokenHeader::kNone;
  int64_t upstream_ms = -1;
};

}  // namespace

class Gateway::Impl {
 public:
  Impl(GatewayOptions o, std::shared_ptr<RouteTableHolder> routes, std::shared_ptr<Gate> gate)
      : options_(std::move(o)), routes_(std::move(routes)), gate_(std::move(gate)) {}

  void Attach(size_t n) { workers_ = std::vector<WorkerState>(n); }
  void OnWorkerStop(size_t w) {
    if (w < workers_.size()) {
      FlushAccessLog(workers_[w]);
      workers_[w].idle.clear();
      workers_[w].last_pool = nullptr;
      workers_[w].routes.reset();
      workers_[w].last_host.clear();
    }
  }
  static void FlushAccessLog(WorkerState& ws) {
    ws.log_batch.Flush();
    ws.log_flush_posted = false;
  }
  asio::awaitable<bool> Handle(http::Exchange& ex);

  GatewayOptions options_;
  std::shared_ptr<RouteTableHolder> routes_;
  std::shared_ptr<Gate> gate_;
  DenialHook hook_;
  RevisionWaiter waiter_;
  Metrics metrics_;
  std::vector<WorkerState> workers_;

 private:
  asio::awaitable<bool> Reply(http::Exchange& ex, LogInfo& li, int status, std::string body,
                              bool keep, bool www_authenticate = false);
  void AccessLog(const http::Exchange& ex, const LogInfo& li);
  // The request head for the upstream, into *out.
  void UpstreamHead(const http::Exchange& ex, const GateDecision& d, bool websocket,
                    std::string* out);
  std::unique_ptr<Upstream> Acquire(WorkerState& ws, const ServiceEntry& svc);
  void Release(WorkerState& ws, const ServiceEntry& svc, std::unique_ptr<Upstream> c);
  asio::awaitable<bool> Forward(http::Exchange& ex, LogInfo& li, const ServiceEntry& svc,
                                const GateDecision& d);
  asio::awaitable<bool> RelayResponse(http::Exchange& ex, LogInfo& li, WorkerState& ws,
                                      const ServiceEntry& svc, std::unique_ptr<Upstream> up,
                                      http::ResponseHead& resp, bool upstream_reusable);
  asio::awaitable<bool> Tunnel(http::Exchange& ex, LogInfo& li, const ServiceEntry& svc,
                               const GateDecision& d);
  // X-Moat-Min-Revision: 0 = go on; otherwise the status to answer (400 malformed, 503 not
  // reached in time).
  asio::awaitable<int> AwaitMinRevision(http::Exchange& ex, std::string_view value,
                                        LogInfo& li);
  // Calls `start(done)`, where `done(bool)` may run on any thread, and waits without blocking
  // the worker until it is called or `deadline` passes.
  enum class Signal { kYes, kNo, kTimedOut };
  asio::awaitable<Signal> AwaitSignal(http::Exchange& ex, Clock::time_point deadline,
                                      const std::function<void(std::function<void(bool)>)>& start);
  // Starts a command-run service that is not running and waits (without blocking the worker)
  // until it is ready or `deadline` passes. True when it is ready.
  asio::awaitable<bool> AwaitActivation(http::Exchange& ex, Activator& activator,
                                        Clock::time_point deadline);
};

namespace {

class GatewayHandler : public http::Handler {
 public:
  explicit GatewayHandler(std::shared_ptr<Gateway::Impl> impl) : impl_(std::move(impl)) {}
  void Attach(size_t workers) override { impl_->Attach(workers); }
  asio::awaitable<bool> Handle(http::Exchange& ex) override { return impl_->Handle(ex); }
  void OnWorkerStop(size_t worker) override { impl_->OnWorkerStop(worker); }

 private:
  std::shared_ptr<Gateway::Impl> impl_;
};

// Streams `body` from `from` to `to` after the bytes already in `batch` (a head, say), in
// chunked framing when `chunked` (ending with the last chunk). What `from` has buffered is
// gathered into writes of up to kBatchBytes — a body of many small chunks must not cost a
// system call (and a segment) per chunk — flushed at the end and before waiting for input, so
// a stream is never held back; pieces of kDirectPiece or more go out from the read buffer
// without a copy. Stops at the first read error (*read_ec; `batch` may then hold unsent
// bytes) or write error (*write_ec).
asio::awaitable<void> RelayBody(http::BodyReader& body, Conn& from, Conn& to, std::string& batch,
                                bool chunked, error_code* read_ec, error_code* write_ec) {
  for (;;) {
    std::string_view piece;
    bool need_read = false;
    error_code rec = body.TryNext(from, &piece, &need_read);
    if (!rec && need_read) {
      if (!batch.empty()) {
        size_t sent = 0;
        *write_ec = http::TryWriteAll(to, batch, &sent);
        if (*write_ec == asio::error::would_block)
          *write_ec = co_await http::WriteAll(to, batch, sent);
        batch.clear();
        if (*write_ec) co_return;
      }
      rec = co_await body.Next(from, &piece);
    }
    if (rec) {
      *read_ec = rec;
      co_return;
    }
    const bool end = piece.empty();
    char size_line[24];
    size_t size_len = 0;
    if (chunked && !end) {
      size_len = static_cast<size_t>(
          std::snprintf(size_line, sizeof size_line, "%zx\r\n", piece.size()));
    }
    if (piece.size() >= kDirectPiece) {
      std::array<asio::const_buffer, 4> bufs = {
          asio::buffer(batch), asio::buffer(size_line, size_len),
          asio::buffer(piece.data(), piece.size()), asio::buffer("\r\n", chunked ? 2 : 0)};
      size_t sent = 0;
      *write_ec = to.stream.TrySend(bufs, 0, &sent);
      if (*write_ec == asio::error::would_block) *write_ec = co_await to.stream.Write(bufs, sent);
      batch.clear();
      if (*write_ec) co_return;
      continue;
    }
    batch.append(size_line, size_len);
    batch.append(piece);
    if (chunked) batch.append(end ? "0\r\n\r\n" : "\r\n");
    if (end || batch.size() >= kBatchBytes) {
      size_t sent = 0;
      *write_ec = http::TryWriteAll(to, batch, &sent);
      if (*write_ec == asio::error::would_block)
        *write_ec = co_await http::WriteAll(to, batch, sent);
      batch.clear();
      if (*write_ec || end) co_return;
    }
  }
}

asio::awaitable<void> Pump(Conn& from, Conn& to) {
  for (;;) {
    if (from.buffer.size() > 0) {
      error_code wec = co_await http::WriteAll(to, from.Buffered());
      from.buffer.consume(from.buffer.size());
      if (wec) break;
    }
    auto [ec, n] = co_await from.stream.ReadSome(from.buffer.prepare(16 * 1024));
    from.buffer.commit(n);
    if (ec && from.buffer.size() == 0) break;
  }
  error_code ignored;
  to.stream.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
}

}  // namespace

void Gateway::Impl::AccessLog(const http::Exchange& ex, const LogInfo& li) {
  if (!options_.access_log) return;
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - ex.start).count();
  // Numbers without a std::string each (one line per request: this is on the hot path).
  char status[12], latency[24], upstream[24];
  auto num = [](char* buf, size_t size, int64_t v) {
    auto [end, ec] = std::to_chars(buf, buf + size, v);
    return std::string_view(buf, ec == std::errc() ? static_cast<size_t>(end - buf) : 0);
  };
  // Lines are batched per worker and written once the handlers that are ready have run (a
  // posted flush: before the worker next waits for I/O), so a busy worker makes one write(2)
  // for many requests instead of one each (log::LineBatch keeps a batch within what stays
  // atomic on a pipe).
  WorkerState& ws = workers_[ex.worker];
  bool added = ws.log_batch.Add(log::Severity::kInfo, "request",
            {{"request_id", ex.request_id},
             {"service", li.service ? std::string_view(li.service->name) : std::string_view()},
             {"host", ex.head.host},
             {"method", ex.head.method},
             {"path", ex.head.Path()},
             {"principal", li.principal},
             {"decision", li.decision},
             {"token_header", TokenHeaderName(li.token_header)},
             {"status", num(status, sizeof status, ex.status)},
             {"latency_ms", num(latency, sizeof latency, ms)},
             {"upstream_ms", li.upstream_ms < 0 ? std::string_view()
                                                : num(upstream, sizeof upstream, li.upstream_ms)},
             {"reason", li.reason},
             {"remote", ex.remote_addr}});
  if (added && !ws.log_batch.empty() && !ws.log_flush_posted) {
    ws.log_flush_posted = true;
    asio::post(ex.conn.stream.get_executor(), [&ws] { FlushAccessLog(ws); });
  }
}

asio::awaitable<bool> Gateway::Impl::Reply(http::Exchange& ex, LogInfo& li, int status,
                                           std::string body, bool keep, bool www_authenticate) {
  http::Response r;
  r.status = status;
  r.headers.Add("Content-Type", std::string(kHtmlContentType));
  if (www_authenticate) r.headers.Add("WWW-Authenticate", std::string(kWwwAuthenticate));
  r.body = std::move(body);
  // An announced body that was not read cannot be skipped safely: close instead.
  keep = keep && ex.head.keep_alive && ex.body.done();
  bool ok = co_await ex.WriteResponse(r, keep);
  metrics_.CountRequest(ex.worker, status);
  AccessLog(ex, li);
  co_return ok&& keep;
}

asio::awaitable<Gateway::Impl::Signal> Gateway::Impl::AwaitSignal(
    http::Exchange& ex, Clock::time_point deadline,
    const std::function<void(std::function<void(bool)>)>& start) {
  // A timer the callback cancels. The callback is posted to this connection's executor, so the
  // state is only touched on this thread; a callback after the deadline finds it settled.
  struct Wait {
    explicit Wait(const asio::any_io_executor& e) : timer(e) {}
    asio::steady_timer timer;
    int result = -1;  // -1 pending, 0 no, 1 yes
  };
  auto w = std::make_shared<Wait>(ex.conn.stream.get_executor());
  w->timer.expires_at(deadline);
  start([w](bool ok) {
    asio::post(w->timer.get_executor(), [w, ok] {
      if (w->result != -1) return;
      w->result = ok ? 1 : 0;
      w->timer.cancel();
    });
  });
  co_await w->timer.async_wait(use_nothrow);
  if (w->result == -1) {
    w->result = 0;
    co_return Signal::kTimedOut;
  }
  co_return w->result == 1 ? Signal::kYes : Signal::kNo;
}

asio::awaitable<int> Gateway::Impl::AwaitMinRevision(http::Exchange& ex, std::string_view value,
                                                     LogInfo& li) {
  int64_t revision = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), revision);
  if (value.empty() || ec != std::errc() || end != value.data() + value.size() || revision < 0) {
    li.reason = "malformed X-Moat-Min-Revision";
    co_return 400;
  }
  if (!waiter_.reached || !waiter_.notify) {
    li.reason = "X-Moat-Min-Revision cannot be honoured: no revision source";
    co_return 503;
  }
  if (waiter_.reached(revision)) co_return 0;
  auto notify = [&](std::function<void(bool)> done) {
    waiter_.notify(revision, std::move(done));
  };
  Signal r = co_await AwaitSignal(ex, Clock::now() + waiter_.max_wait, notify);
  if (r == Signal::kYes) co_return 0;
  if (r == Signal::kNo) {
    li.reason = "X-Moat-Min-Revision " + std::to_string(revision) +
                " cannot be waited for (shutting down or too many waiting requests)";
    co_return 503;
  }
  li.reason = "X-Moat-Min-Revision " + std::to_string(revision) + " not enforced within " +
              std::to_string(waiter_.max_wait.count()) + " ms";
  co_return 503;
}
asio::awaitable<bool> Gateway::Impl::AwaitActivation(http::Exchange& ex, Activator& activator,
                                                      Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  auto activate = [&](std::function<void(bool)> done) {
    activator.Activate(std::max(left, std::chrono::milliseconds(1)), std::move(done));
  };
  Signal r = co_await AwaitSignal(ex, deadline, activate);
  co_return r == Signal::kYes;
}

asio::awaitable<bool> Gateway::Impl::Handle(http::Exchange& ex) {
  WorkerState& ws = workers_[ex.worker];
  LogInfo li;
  if (const std::string_view* min_rev = ex.head.headers.Find(FieldId::kXMoatMinRevision)) {
    int status = co_await AwaitMinRevision(ex, *min_rev, li);
    if (status != 0) {
      co_return co_await Reply(ex, li, status, ErrorPage(status), status != 400);
    }
  }
  uint64_t v = routes_->version();
  if (v != ws.routes_version) {
    ws.routes = routes_->Get();
    ws.routes_version = v;
    ws.last_host.clear();
  }
  // Clients of a service send the same Host again and again: the last lookup is kept, keyed
  // by the exact bytes of the header (the table lowercases and strips a port for its own).
  const std::shared_ptr<const ServiceEntry>* found;
  if (!ws.last_host.empty() && ws.last_host == ex.head.host) {
    found = ws.last_found;
  } else {
    found = ws.routes->Find(ex.head.host);
    ws.last_host.assign(ex.head.host);
    ws.last_found = found;
  }
  if (found == nullptr) {
    metrics_.CountUnknownHost(ex.worker);
    li.reason = "unknown host";
    co_return co_await Reply(ex, li, 404, ErrorPage(404), true);
  }
  // Keep the entry alive for the whole request even if the table is swapped meanwhile.
  std::shared_ptr<const ServiceEntry> svc = *found;
  li.service = svc.get();
  // Ingress is a network gate in front of IAM: a refused source never reaches the Gate (nor
  // wakes a stopped service) and sees the page of a host that does not exist.
  if (svc->ingress != Ingress::kAll &&
      (svc->ingress == Ingress::kNone ||
       !options_.internal_networks.Contains(HostOfRemote(ex.remote_addr)))) {
    metrics_.CountIngressDenial(ex.worker);
    li.decision = "deny";
    li.reason = "ingress";
    co_return co_await Reply(ex, li, 404, ErrorPage(404), true);
  }

  const http::Headers& h = ex.head.headers;
  // The credential fields, in one pass.
  const std::string_view* authorization = nullptr;
  const std::string_view* serverless = nullptr;
  bool repeated = false;
  for (const http::Field& f : h) {
    if (f.id == FieldId::kAuthorization) {
      repeated |= authorization != nullptr;
      authorization = &f.value;
    } else if (f.id == FieldId::kServerlessAuthorization) {
      repeated |= serverless != nullptr;
      serverless = &f.value;
    }
  }
  if (repeated) {
    li.reason = "repeated credential header";
    co_return co_await Reply(ex, li, 400, ErrorPage(400), false);
  }
  GateRequest greq{*svc,          ex.head.method, ex.head.target, ex.head.host, h,
                   authorization, serverless,     ex.remote_addr, ex.request_id};
  GateDecision d;
  try {
    d = gate_->Decide(greq);
  } catch (const std::exception& e) {
    d = GateDecision::Deny(503, std::string("gate failed: ") + e.what());
  }
  li.principal = d.principal;
  if (!d.allowed) {
    int status = (d.status == 401 || d.status == 403 || d.status == 503) ? d.status : 403;
    li.decision = "deny";
    li.reason = d.reason;
    li.token_header = d.token_header;
    metrics_.CountDenial(ex.worker, status);
    if (hook_) {
      try {
        hook_(greq, d);
      } catch (const std::exception& e) {
        log::Error("denial hook failed", {{"request_id", ex.request_id}, {"error", e.what()}});
      }
    }
    std::string path(ex.head.Path());
    std::string body = status == 401   ? UnauthorizedPage(path)
                       : status == 403 ? ForbiddenPage(path)
                                       : ErrorPage(503);
    co_return co_await Reply(ex, li, status, std::move(body), true, status == 401);
  }
  li.decision = "allow";
  li.token_header = d.token_header;
  // Only an allowed request may start a stopped service. While it is in flight (until this
  // coroutine ends, whichever way), the service is not idle.
  struct InFlight {
    Activator* activator = nullptr;
    ~InFlight() {
      if (activator) activator->EndRequest();
    }
  } in_flight;
  if (svc->activator) {
    svc->activator->BeginRequest();
    in_flight.activator = svc->activator.get();
    if (!svc->activator->Ready()) {
      metrics_.CountActivation(ex.worker);
      bool ready =
          co_await AwaitActivation(ex, *svc->activator, Clock::now() + svc->request_timeout);
      if (!ready) {
        li.reason = "service failed to start";
        co_return co_await Reply(ex, li, 503, ErrorPage(503), true);
      }
    }
  }

  if (ex.head.body == BodyKind::kLength &&
      ex.head.content_length > options_.max_request_body_bytes) {
    li.reason = "request body too large";
    co_return co_await Reply(ex, li, 413, ErrorPage(413), false);
  }
  if (ex.head.websocket_upgrade) {
    if (ex.head.body != BodyKind::kNone) {
      li.reason = "upgrade request with a body";
      co_return co_await Reply(ex, li, 400, ErrorPage(400), false);
    }
    co_return co_await Tunnel(ex, li, *svc, d);
  }
  co_return co_await Forward(ex, li, *svc, d);
}

void Gateway::Impl::UpstreamHead(const http::Exchange& ex, const GateDecision& d, bool websocket,
                                 std::string* out_ptr) {
  const http::RequestHead& head = ex.head;
  TokenList named = ConnectionTokens(head.headers);
  std::string& out = *out_ptr;
  out.clear();
  out.reserve(512 + head.target.size() + head.headers.size() * 48);
  out.append(head.method);
  out.push_back(' ');
  out.append(head.target);
  out.append(" HTTP/1.1\r\n");
  std::string xff;
  for (const http::Field& f : head.headers) {
    if (ConnectionSpecific(f, named)) continue;
    switch (f.id) {
      // Moat sets these itself (or drops them: framing, Moat's own controls).
      case FieldId::kContentLength:
      case FieldId::kExpect:
      case FieldId::kProxyAuthorization:
      case FieldId::kXRequestId:
      case FieldId::kXForwardedProto:
      case FieldId::kTraceparent:
      case FieldId::kXMoat:
      case FieldId::kXMoatMinRevision:
        continue;
      case FieldId::kXGoogle:
        if (options_.strip_google_headers) continue;
        break;
      case FieldId::kXForwardedFor:
        if (!xff.empty()) xff += ", ";
        xff += f.value;
        continue;
      case FieldId::kAuthorization:
        if (d.token_header == TokenHeader::kAuthorization) {
          AppendStrippedJwtField(&out, f.name, f.value);
          continue;
        }
        break;
      case FieldId::kServerlessAuthorization:
        // Forwarded only when it carried the verified token, and never with its signature.
        if (d.token_header == TokenHeader::kServerlessAuthorization) {
          AppendStrippedJwtField(&out, f.name, f.value);
        }
        continue;
      default:
        break;
    }
    http::AppendField(&out, f.name, f.value);
  }
  if (!xff.empty()) xff += ", ";
  xff += ClientIp(ex.remote_addr);
  http::AppendField(&out, "X-Forwarded-For", xff);
  http::AppendField(&out, "X-Forwarded-Proto", "http");
  http::AppendField(&out, "traceparent", ex.traceparent.view());
  http::AppendField(&out, "X-Request-Id", ex.request_id);
  if (websocket) {
    http::AppendField(&out, "Connection", "Upgrade");
    http::AppendField(&out, "Upgrade", head.headers.Get(FieldId::kUpgrade));
  } else if (head.body == BodyKind::kLength) {
    http::AppendField(&out, "Content-Length", std::to_string(head.content_length));
  } else if (head.body == BodyKind::kChunked) {
    http::AppendField(&out, "Transfer-Encoding", "chunked");
  }
  out.append("\r\n");
}

std::unique_ptr<Upstream> Gateway::Impl::Acquire(WorkerState& ws, const ServiceEntry& svc) {
  WorkerState::Pool& pool = ws.PoolFor(svc);
  while (!pool.empty()) {
    std::unique_ptr<Upstream> c = std::move(pool.back());
    pool.pop_back();
    // Checked (StillUsable): besides a close, that catches bytes the upstream sent after its
    // response, which would otherwise be read as the next request's response (possibly
    // another user's). A close seen only afterwards is still retried by the caller.
    if (StillUsable(*c)) {
      return c;
    }
    c->Close();
  }
  return nullptr;
}

void Gateway::Impl::Release(WorkerState& ws, const ServiceEntry& svc, std::unique_ptr<Upstream> c) {
  WorkerState::Pool& pool = ws.PoolFor(svc);
  if (pool.size() >= options_.max_idle_upstream_connections) {
    c->Close();
    return;
  }
  c->stream.expires_never();
  pool.push_back(std::move(c));
}

asio::awaitable<bool> Gateway::Impl::Forward(http::Exchange& ex, LogInfo& li,
                                             const ServiceEntry& svc, const GateDecision& d) {
  WorkerState& ws = workers_[ex.worker];
  const auto deadline = http::Stream::CoarseNow() + svc.request_timeout;  // seconds long
  ex.conn.stream.expires_at(deadline);
  // The head is built in the client connection's scratch buffer (no allocation once it has
  // grown); RelayResponse reuses the buffer once the upstream has answered.
  std::string& head = ex.conn.scratch;
  UpstreamHead(ex, d, false, &head);
  const bool has_body = ex.head.body != BodyKind::kNone;

  std::unique_ptr<Upstream> up;
  Clock::time_point sent_at;
  bool upstream_reusable = true;
  for (int attempt = 0;; ++attempt) {
    up = attempt == 0 ? Acquire(ws, svc) : nullptr;
    bool reused = up != nullptr;
    if (!up) {
      up = std::make_unique<Upstream>(ex.conn.stream.get_executor());
      auto left = deadline - Clock::now();
      auto budget = std::min<Clock::duration>(options_.connect_timeout, left);
      error_code ec =
          co_await http::Connect(up->stream, svc.upstream_host, svc.upstream_port, budget);
      if (ec && ec != beast::error::timeout && svc.activator && attempt == 0) {
        // A command-run service that crashed, is restarting or was replaced by a new revision:
        // wait for it (as Cloud Run holds requests for a starting instance), then retry once.
        metrics_.CountActivation(ex.worker);
        if (co_await AwaitActivation(ex, *svc.activator, deadline)) {
          up = std::make_unique<Upstream>(ex.conn.stream.get_executor());
          left = deadline - Clock::now();
          budget = std::min<Clock::duration>(options_.connect_timeout, left);
          ec = co_await http::Connect(up->stream, svc.upstream_host, svc.upstream_port, budget);
        }
      }
      if (ec) {
        bool timeout = ec == beast::error::timeout;
        metrics_.CountUpstreamError(ex.worker, timeout && Clock::now() >= deadline
                                                   ? UpstreamError::kTimeout
                                                   : UpstreamError::kConnect);
        li.reason = "upstream connect failed: " + ec.message();
        int status = timeout && Clock::now() >= deadline ? 504 : 502;
        co_return co_await Reply(ex, li, status, ErrorPage(status), true);
      }
    }
    up->stream.expires_at(deadline);
    sent_at = Clock::now();

    // Head, then the body streamed in the client's framing (re-chunked when chunked).
    error_code up_ec;
    if (has_body) {
      if (!co_await ex.SendContinue()) co_return false;
      // The body follows the head in the head's own buffer (a request whose body was sent is
      // never retried, so the head is not needed again).
      error_code cec;
      co_await RelayBody(ex.body, ex.conn, *up, head, ex.head.body == BodyKind::kChunked, &cec,
                         &up_ec);
      if (cec) {
        li.reason = "client body: " + cec.message();
        up->Close();
        if (cec == beast::http::error::bad_chunk) {
          co_return co_await Reply(ex, li, 400, ErrorPage(400), false);
        }
        co_return false;
      }
    } else {
      size_t sent = 0;
      up_ec = http::TryWriteAll(*up, head, &sent);
      if (up_ec == asio::error::would_block) up_ec = co_await http::WriteAll(*up, head, sent);
    }

    http::ReadHeadStatus st = http::ReadHeadStatus::kError;
    http::ParseError perr;
    // The upstream may have answered early (e.g. 413) and closed without reading the whole
    // body, which fails the write: its answer is still readable, so look for it.
    const bool answered_early = up_ec && up_ec != beast::error::timeout;
    if (!up_ec || answered_early) {
      for (;;) {
        size_t head_size = 0;
        auto left = deadline - Clock::now();
        st = co_await http::ReadHead(*up, 64 * 1024, left, left, &head_size);
        if (st != http::ReadHeadStatus::kOk) break;
        perr = http::ParseResponseHead(up->Buffered().substr(0, head_size), ex.head.method,
                                       &up->resp);
        up->buffer.consume(head_size);
        if (perr || up->resp.status >= 200) break;
        // Interim 1xx responses (100, 103) are not relayed; 101 without an upgrade is invalid.
        if (up->resp.status == 101) {
          perr = {502, "unexpected 101"};
          break;
        }
      }
    }
    if (st == http::ReadHeadStatus::kOk && !perr) {  // got a response head
      if (up_ec) {
        li.reason = "upstream answered before reading the body";
        upstream_reusable = false;
      }
      break;
    }

    bool timed_out = up_ec == beast::error::timeout || st == http::ReadHeadStatus::kTimeout ||
                     Clock::now() >= deadline;
    bool nothing_received =
        up->buffer.size() == 0 && !perr &&
        (up_ec || st == http::ReadHeadStatus::kClosed || st == http::ReadHeadStatus::kError);
    up->Close();
    // A pooled connection the upstream closed meanwhile: retry once on a fresh one, if the
    // request had no body (nothing was consumed from the client).
    if (reused && !has_body && nothing_received && !timed_out && attempt == 0) continue;
    int status;
    if (timed_out) {
      metrics_.CountUpstreamError(ex.worker, UpstreamError::kTimeout);
      li.reason = "upstream timeout";
      status = 504;
    } else if (perr || st == http::ReadHeadStatus::kTooLarge) {
      metrics_.CountUpstreamError(ex.worker, UpstreamError::kProtocol);
      li.reason = perr ? "upstream response: " + std::string(perr.reason)
                       : "upstream response head too large";
      status = 502;
    } else {
      metrics_.CountUpstreamError(ex.worker, UpstreamError::kReset);
      li.reason = "upstream closed the connection";
      status = 502;
    }
    co_return co_await Reply(ex, li, status, ErrorPage(status), !has_body || ex.body.done());
  }
  double secs = std::chrono::duration<double>(Clock::now() - sent_at).count();
  metrics_.ObserveUpstreamLatency(ex.worker, secs);
  li.upstream_ms = static_cast<int64_t>(secs * 1000);
  http::ResponseHead& resp = up->resp;
  co_return co_await RelayResponse(ex, li, ws, svc, std::move(up), resp, upstream_reusable);
}

asio::awaitable<bool> Gateway::Impl::RelayResponse(http::Exchange& ex, LogInfo& li, WorkerState& ws,
                                                   const ServiceEntry& svc,
                                                   std::unique_ptr<Upstream> up,
                                                   http::ResponseHead& resp,
                                                   bool upstream_reusable) {
  TokenList named = ConnectionTokens(resp.headers);
  const bool client_11 = ex.head.version_minor == 1;
  // How the body goes to the client: as-is with Content-Length, re-chunked, or until close.
  enum class Out { kNone, kLength, kChunked, kUntilClose } out_kind;
  switch (resp.body) {
    case BodyKind::kNone:
      out_kind = Out::kNone;
      break;
    case BodyKind::kLength:
      out_kind = Out::kLength;
      break;
    default:
      out_kind = client_11 ? Out::kChunked : Out::kUntilClose;
      break;
  }
  bool keep = ex.head.keep_alive && out_kind != Out::kUntilClose && ex.body.done();

  std::string& head = ex.conn.scratch;  // the request head sent upstream is no longer needed
  head.clear();
  head.reserve(256 + resp.headers.size() * 48);
  AppendStatusLineStart(&head, resp.status);
  head.append(resp.reason.empty() ? http::ReasonPhrase(resp.status) : resp.reason);
  head.append("\r\n");
  for (const http::Field& f : resp.headers) {
    if (ConnectionSpecific(f, named) || f.id == FieldId::kXRequestId) continue;
    // (Kept on HEAD and 304 answers, where it describes the representation; never on a 204.)
    if (f.id == FieldId::kContentLength && (out_kind != Out::kNone || resp.status == 204)) {
      continue;
    }
    http::AppendField(&head, f.name, f.value);
  }
  http::AppendField(&head, "X-Request-Id", ex.request_id);
  if (out_kind == Out::kLength) {
    http::AppendField(&head, "Content-Length", std::to_string(resp.content_length));
  } else if (out_kind == Out::kChunked) {
    http::AppendField(&head, "Transfer-Encoding", "chunked");
  }
  if (!keep) http::AppendField(&head, "Connection", "close");
  head.append("\r\n");
  ex.status = resp.status;
  metrics_.CountRequest(ex.worker, resp.status);

  http::BodyReader body(resp.body, resp.content_length);
  error_code rec, wec;
  co_await RelayBody(body, *up, ex.conn, head, out_kind == Out::kChunked, &rec, &wec);
  bool ok = !rec && !wec;
  if (rec) {
    metrics_.CountUpstreamError(
        ex.worker, rec == beast::error::timeout ? UpstreamError::kTimeout : UpstreamError::kReset);
    li.reason = "upstream body: " + rec.message();
    // What was gathered still goes out (the head, at least): the client then sees the body
    // cut short by the close, as when the failure comes later.
    if (!head.empty()) (void)co_await http::WriteAll(ex.conn, head);
  } else if (wec) {
    li.reason = "client write: " + wec.message();
  }
  if (ok && upstream_reusable && resp.keep_alive && resp.body != BodyKind::kUntilClose &&
      body.done()) {
    body.Settle(*up);
    Release(ws, svc, std::move(up));
  } else {
    up->Close();
  }
  AccessLog(ex, li);
  co_return ok&& keep;
}

asio::awaitable<bool> Gateway::Impl::Tunnel(http::Exchange& ex, LogInfo& li,
                                            const ServiceEntry& svc, const GateDecision& d) {
  WorkerState& ws = workers_[ex.worker];
  const auto deadline = http::Stream::CoarseNow() + svc.request_timeout;  // seconds long
  auto up = std::make_unique<Upstream>(ex.conn.stream.get_executor());
  error_code ec = co_await http::Connect(
      up->stream, svc.upstream_host, svc.upstream_port,
      std::min<Clock::duration>(options_.connect_timeout, deadline - Clock::now()));
  if (ec) {
    // As for other requests: past the service's request timeout it is a 504.
    bool late = ec == beast::error::timeout && Clock::now() >= deadline;
    metrics_.CountUpstreamError(ex.worker, late ? UpstreamError::kTimeout : UpstreamError::kConnect);
    li.reason = "upstream connect failed: " + ec.message();
    co_return co_await Reply(ex, li, late ? 504 : 502, ErrorPage(late ? 504 : 502), false);
  }
  up->stream.expires_at(deadline);
  ex.conn.stream.expires_at(deadline);
  UpstreamHead(ex, d, true, &ex.conn.scratch);
  ec = co_await http::WriteAll(*up, ex.conn.scratch);
  http::ResponseHead resp;
  http::ParseError perr{502, "no response"};
  bool timed_out = ec == beast::error::timeout;
  while (!ec) {
    size_t head_size = 0;
    auto left = deadline - Clock::now();
    http::ReadHeadStatus st = co_await http::ReadHead(*up, 64 * 1024, left, left, &head_size);
    timed_out = st == http::ReadHeadStatus::kTimeout;
    if (st != http::ReadHeadStatus::kOk) break;
    perr = http::ParseResponseHead(up->Buffered().substr(0, head_size), "GET", &resp);
    up->buffer.consume(head_size);
    // Interim responses (103 Early Hints) before the 101 or the refusal are not relayed.
    if (perr || resp.status == 101 || resp.status >= 200) break;
    perr = {502, "no response"};
  }
  if (timed_out) {
    metrics_.CountUpstreamError(ex.worker, UpstreamError::kTimeout);
    li.reason = "upstream did not answer the upgrade within the request timeout";
    up->Close();
    co_return co_await Reply(ex, li, 504, ErrorPage(504), false);
  }
  if (perr) {
    metrics_.CountUpstreamError(ex.worker, UpstreamError::kProtocol);
    li.reason = "upstream upgrade failed";
    up->Close();
    co_return co_await Reply(ex, li, 502, ErrorPage(502), false);
  }
  if (resp.status != 101) {
    // The upstream refused the upgrade: relay its answer and close.
    ex.head.keep_alive = false;
    co_return co_await RelayResponse(ex, li, ws, svc, std::move(up), resp, false);
  }
  TokenList named = ConnectionTokens(resp.headers);
  std::string head = "HTTP/1.1 101 Switching Protocols\r\n";
  for (const http::Field& f : resp.headers) {
    if (ConnectionSpecific(f, named) || f.id == FieldId::kXRequestId) continue;
    http::AppendField(&head, f.name, f.value);
  }
  http::AppendField(&head, "Connection", "Upgrade");
  http::AppendField(&head, "Upgrade", resp.headers.Get(FieldId::kUpgrade));
  http::AppendField(&head, "X-Request-Id", ex.request_id);
  head.append("\r\n");
  ex.status = 101;
  metrics_.CountRequest(ex.worker, 101);
  error_code wec = co_await http::WriteAll(ex.conn, head);
  if (wec) {
    up->Close();
    co_return false;
  }
  // Bytes in both directions until either side closes or the request deadline passes.
  co_await (Pump(ex.conn, *up) && Pump(*up, ex.conn));
  up->Close();
  AccessLog(ex, li);
  co_return false;
}

Gateway::Gateway(GatewayOptions options, std::shared_ptr<RouteTableHolder> routes,
                 std::shared_ptr<Gate> gate)
    : impl_(std::make_shared<Impl>(std::move(options), std::move(routes), std::move(gate))) {}
Gateway::~Gateway() = default;
void Gateway::SetDenialHook(DenialHook hook) { impl_->hook_ = std::move(hook); }
void Gateway::SetRevisionWaiter(RevisionWaiter waiter) { impl_->waiter_ = std::move(waiter); }
std::shared_ptr<http::Handler> Gateway::handler() {
  return std::make_shared<GatewayHandler>(impl_);
}
std::string Gateway::RenderMetrics() const { return impl_->metrics_.Render(); }

uint64_t PooledConnectionProbes() { return g_pool_probes.load(std::memory_order_relaxed); }

}  // namespace moat::gateway
