#include "http/server.h"

#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http/error.hpp>
#include <condition_variable>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_set>
#include <vector>

#include "common/log.h"
#include "http/handler.h"

namespace moat::http {

using asio::ip::tcp;

asio::awaitable<bool> Exchange::WriteResponse(const Response& r, bool keep_alive) {
  std::string out;
  out.reserve(256 + r.body.size());
  char line[64];
  int n = std::snprintf(line, sizeof line, "HTTP/1.1 %d ", r.status);
  out.append(line, static_cast<size_t>(n));
  out.append(ReasonPhrase(r.status));
  out.append("\r\n");
  for (const Field& f : r.headers) {
    if (f.id == FieldId::kContentLength || f.id == FieldId::kTransferEncoding ||
        f.id == FieldId::kConnection || f.id == FieldId::kXRequestId) {
      continue;
    }
    AppendField(&out, f.name, f.value);
  }
  AppendField(&out, "X-Request-Id", request_id);
  bool no_body = r.status < 200 || r.status == 204 || r.status == 304;
  if (!no_body) AppendField(&out, "Content-Length", std::to_string(r.body.size()));
  if (!keep_alive) AppendField(&out, "Connection", "close");
  out.append("\r\n");
  if (!no_body && head.method != "HEAD") out.append(r.body);
  status = r.status;
  conn.stream.expires_after(std::chrono::seconds(30));
  error_code ec = co_await WriteAll(conn, out);
  co_return !ec;
}

asio::awaitable<bool> Exchange::SendContinue() {
  if (!head.expect_continue || continue_sent) co_return true;
  continue_sent = true;
  conn.stream.expires_after(std::chrono::seconds(30));
  error_code ec = co_await WriteAll(conn, "HTTP/1.1 100 Continue\r\n\r\n");
  co_return !ec;
}

asio::awaitable<int> Exchange::ReadFullBody(size_t max_bytes, std::string* out) {
  out->clear();
  if (head.body == BodyKind::kLength && head.content_length > max_bytes) co_return 413;
  if (head.body == BodyKind::kNone) co_return 0;
  if (!co_await SendContinue()) co_return -1;
  if (head.body == BodyKind::kLength) out->reserve(head.content_length);
  body = BodyReader(head.body, head.content_length, max_bytes);
  conn.stream.expires_after(std::chrono::seconds(60));
  for (;;) {
    std::string_view d;
    error_code ec = co_await body.Next(conn, &d);
    if (ec == beast::http::error::body_limit) co_return 413;
    if (ec == beast::http::error::bad_chunk) co_return 400;
    if (ec) co_return -1;
    if (d.empty()) co_return 0;
    out->append(d);
  }
}

namespace {

struct ConnEntry {
  Conn* conn;
  bool idle;
};

struct Worker {
  // INVARIANT: touched only on this worker's thread. Declared before `ioc` so it outlives the
  // coroutine frames the io_context destroys.
  std::unordered_set<ConnEntry*> conns;
  // One thread runs it, and every socket registered with it is used only on that thread (the
  // accept loop registers sockets for other workers; registration stays locked): the
  // reactor skips its per-descriptor locks.
  asio::io_context ioc{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard;
  std::thread thread;
};

// The CPUs this process may run on: its affinity mask (taskset, cgroup cpusets), not the
// machine's core count — more workers than CPUs only adds context switches.
size_t UsableCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return static_cast<size_t>(n);
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

std::string EndpointString(const tcp::socket& s) {
  error_code ec;
  tcp::endpoint ep = s.remote_endpoint(ec);
  if (ec) return "";
  std::string a = ep.address().to_string();
  if (ep.address().is_v6()) a = "[" + a + "]";
  return a + ":" + std::to_string(ep.port());
}

}  // namespace

class Server::Impl {
 public:
  Impl(ServerOptions o, std::shared_ptr<Handler> h)
      : options_(std::move(o)), handler_(std::move(h)) {}

  Status Start();
  void Stop();
  asio::awaitable<void> AcceptLoop();
  asio::awaitable<void> Session(Worker& w, size_t index, tcp::socket socket);
  // Answers a head that cannot be served (then the connection closes). Its own coroutine, so
  // that this rare path does not enlarge the frame every idle connection keeps.
  asio::awaitable<void> Reject(Conn& conn, const std::string& remote, size_t index,
                               ParseError why, std::string method);
  void WaitForConnections(std::chrono::steady_clock::time_point deadline);
  void RunOnEachWorker(const std::function<void(Worker&, size_t)>& fn);

  ~Impl() {
    acceptor_.reset();
    if (options_.listen_fd >= 0) ::close(options_.listen_fd);  // never started
  }

  ServerOptions options_;
  std::shared_ptr<Handler> handler_;
  std::optional<tcp::acceptor> acceptor_;
  uint16_t port_ = 0;
  bool started_ = false;
  bool stopped_ = false;
  std::atomic<bool> stopping_{false};
  std::atomic<int> active_{0};
  std::atomic<bool> accept_done_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  // Last: destroyed first, while everything its coroutine frames refer to is still alive.
  std::vector<std::unique_ptr<Worker>> workers_;
};

Status Server::Impl::Start() {
  if (started_) return FailedPrecondition("server already started");
  error_code ec;
  asio::ip::address addr = asio::ip::make_address(options_.host, ec);
  if (ec) return InvalidArgument("invalid listen address `" + options_.host + "`");
  size_t n = options_.threads > 0 ? static_cast<size_t>(options_.threads) : UsableCpus();
  for (size_t i = 0; i < n; ++i) workers_.push_back(std::make_unique<Worker>());
  acceptor_.emplace(workers_[0]->ioc);
  tcp::endpoint ep(addr, options_.port);
  if (options_.listen_fd >= 0) {
    acceptor_->assign(ep.protocol(), options_.listen_fd, ec);
    if (ec) ::close(options_.listen_fd);
    options_.listen_fd = -1;  // the acceptor owns it now
  } else {
    acceptor_->open(ep.protocol(), ec);
    if (!ec) acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_->bind(ep, ec);
    if (!ec) acceptor_->listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    acceptor_.reset();
    workers_.clear();
    return Unavailable("cannot listen on `" + options_.host + ":" + std::to_string(options_.port) +
                       "`: " + ec.message());
  }
  port_ = acceptor_->local_endpoint().port();
  handler_->Attach(n);
  started_ = true;
  for (auto& w : workers_) {
    w->guard.emplace(w->ioc.get_executor());
    w->thread = std::thread([wp = w.get(), name = options_.name] {
      for (;;) {
        try {
          wp->ioc.run();
          return;
        } catch (const std::exception& e) {
          log::Error("uncaught exception on a server worker",
                     {{"server", name}, {"error", e.what()}});
        }
      }
    });
  }
  asio::co_spawn(workers_[0]->ioc, AcceptLoop(), [this](std::exception_ptr e) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        log::Error("accept loop failed", {{"server", options_.name}, {"error", ex.what()}});
      }
    }
    accept_done_ = true;
  });
  return Ok();
}

asio::awaitable<void> Server::Impl::AcceptLoop() {
  size_t next = 0;
  asio::steady_timer backoff(workers_[0]->ioc);
  while (!stopping_) {
    size_t index = next++ % workers_.size();
    Worker& w = *workers_[index];
    auto [ec, socket] = co_await acceptor_->async_accept(w.ioc, use_nothrow);
    if (ec) {
      if (stopping_ || ec == asio::error::operation_aborted) break;
      log::Warn("accept failed", {{"server", options_.name}, {"error", ec.message()}});
      // Out of descriptors and similar: back off instead of spinning.
      backoff.expires_after(std::chrono::milliseconds(50));
      co_await backoff.async_wait(use_nothrow);
      continue;
    }
    if (stopping_) break;
    ++active_;
    asio::co_spawn(w.ioc, Session(w, index, std::move(socket)), [this](std::exception_ptr e) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          log::Error("connection failed", {{"server", options_.name}, {"error", ex.what()}});
        }
      }
      if (--active_ == 0) {
        std::lock_guard lock(mu_);
        cv_.notify_all();
      }
    });
  }
}

asio::awaitable<void> Server::Impl::Session(Worker& w, size_t index, tcp::socket socket) {
  error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  std::string remote = EndpointString(socket);
  Conn conn{std::move(socket)};
  ConnEntry entry{&conn, true};
  w.conns.insert(&entry);
  struct Unregister {
    Worker& w;
    ConnEntry* e;
    ~Unregister() { w.conns.erase(e); }
  } unregister{w, &entry};

  HeadLimits limits{options_.max_header_fields};
  RequestHead head;  // reused: its strings keep their storage from one request to the next
  bool linger = false;
  for (;;) {
    entry.idle = true;
    if (stopping_) break;
    size_t head_size = 0;
    ReadHeadStatus st = co_await ReadHead(conn, options_.max_head_bytes, options_.idle_timeout,
                                          options_.head_timeout, &head_size,
                                          /*skip_empty_lines=*/true);
    entry.idle = false;
    if (st == ReadHeadStatus::kTooLarge) {
      co_await Reject(conn, remote, index, {431, "request header fields too large"}, "GET");
      linger = true;
      break;
    }
    if (st != ReadHeadStatus::kOk) break;

    ParseError perr = ParseRequestHead(conn.Buffered().substr(0, head_size), &head, limits);
    conn.buffer.consume(head_size);
    if (perr) {
      co_await Reject(conn, remote, index, perr, head.method);
      linger = true;
      break;
    }
    Exchange ex(head, conn, remote, index);
    ex.request_id = NewRequestId();
    ex.traceparent = Traceparent(head.headers.Get(FieldId::kTraceparent));
    bool keep = co_await handler_->Handle(ex);
    if (!keep || !head.keep_alive || !ex.body.done() || stopping_) {
      // Input may still be on its way when the body was left unread or more was sent.
      linger = !ex.body.done() || conn.buffer.size() > 0;
      break;
    }
    ex.body.Settle(conn);
  }
  if (linger && !stopping_ && options_.lingering_close.count() > 0) {
    entry.idle = true;  // Stop() cuts the wait short
    co_await LingeringClose(conn, options_.lingering_close);
  }
  conn.Close();
}

asio::awaitable<void> Server::Impl::Reject(Conn& conn, const std::string& remote, size_t index,
                                           ParseError why, std::string method) {
  RequestHead head;
  head.method = method.empty() ? "GET" : std::move(method);
  Exchange ex(head, conn, remote, index);
  ex.request_id = NewRequestId();
  if (why.status == 431) {
    co_await ex.WriteResponse(Response::Text(431, "request header fields too large\n"), false);
    co_return;
  }
  log::Info("rejected malformed request", {{"server", options_.name},
                                           {"request_id", ex.request_id},
                                           {"status", std::to_string(why.status)},
                                           {"reason", std::string(why.reason)},
                                           {"remote", remote}});
  co_await ex.WriteResponse(
      Response::Text(why.status, std::string(ReasonPhrase(why.status)) + "\n"), false);
}

void Server::Impl::RunOnEachWorker(const std::function<void(Worker&, size_t)>& fn) {
  std::vector<std::future<void>> done;
  for (size_t i = 0; i < workers_.size(); ++i) {
    auto p = std::make_shared<std::promise<void>>();
    done.push_back(p->get_future());
    asio::post(workers_[i]->ioc, [&fn, p, i, w = workers_[i].get()] {
      fn(*w, i);
      p->set_value();
    });
  }
  for (auto& f : done) f.wait();
}

void Server::Impl::WaitForConnections(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mu_);
  cv_.wait_until(lock, deadline, [this] { return active_.load() == 0; });
}

void Server::Impl::Stop() {
  if (!started_ || stopped_) return;
  stopped_ = true;
  stopping_ = true;
  auto deadline = std::chrono::steady_clock::now() + options_.shutdown_grace;
  std::promise<void> closed;
  asio::post(workers_[0]->ioc, [this, &closed] {
    error_code ec;
    acceptor_->close(ec);
    closed.set_value();
  });
  closed.get_future().wait();
  // Wake connections waiting for their next request; in-flight ones finish their request.
  RunOnEachWorker([](Worker& w, size_t) {
    for (ConnEntry* e : w.conns) {
      if (e->idle) e->conn->stream.cancel();
    }
  });
  WaitForConnections(deadline);
  if (active_.load() > 0) {
    log::Warn("closing connections still active after the shutdown grace period",
              {{"server", options_.name}, {"connections", std::to_string(active_.load())}});
    RunOnEachWorker([](Worker& w, size_t) {
      for (ConnEntry* e : w.conns) e->conn->Close();
    });
    WaitForConnections(std::chrono::steady_clock::now() + std::chrono::seconds(2));
  }
  RunOnEachWorker([this](Worker&, size_t i) { handler_->OnWorkerStop(i); });
  for (auto& w : workers_) {
    w->guard.reset();
    w->ioc.stop();
  }
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
  acceptor_.reset();
}

Server::Server(ServerOptions options, std::shared_ptr<Handler> handler)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler))) {}
Server::~Server() { Stop(); }
Status Server::Start() { return impl_->Start(); }
uint16_t Server::port() const { return impl_->port_; }
size_t Server::threads() const { return impl_->workers_.size(); }
void Server::Stop() { impl_->Stop(); }

}  // namespace moat::http
