#include "http/router.h"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <optional>

#include "common/log.h"
#include "http/handler.h"

namespace moat::http {
namespace {

std::string_view StatusName(int status) {
  switch (status) {
    case 400:
      return "INVALID_ARGUMENT";
    case 401:
      return "UNAUTHENTICATED";
    case 403:
      return "PERMISSION_DENIED";
    case 404:
      return "NOT_FOUND";
    case 405:
      return "UNIMPLEMENTED";
    case 409:
      return "ABORTED";
    case 413:
      return "RESOURCE_EXHAUSTED";
    case 429:
      return "RESOURCE_EXHAUSTED";
    case 501:
      return "UNIMPLEMENTED";
    case 503:
      return "UNAVAILABLE";
    case 504:
      return "DEADLINE_EXCEEDED";
    default:
      return status >= 500 ? "INTERNAL" : "FAILED_PRECONDITION";
  }
}

std::vector<std::string_view> SplitPath(std::string_view p) {
  std::vector<std::string_view> out;
  p.remove_prefix(1);  // leading '/'
  for (;;) {
    size_t slash = p.find('/');
    out.push_back(p.substr(0, slash));
    if (slash == std::string_view::npos) break;
    p.remove_prefix(slash + 1);
  }
  return out;
}

// Splits "name:verb" at the last ':'.
std::string_view CutVerb(std::string_view* last) {
  size_t colon = last->rfind(':');
  if (colon == std::string_view::npos) return {};
  std::string_view verb = last->substr(colon + 1);
  *last = last->substr(0, colon);
  return verb;
}

}  // namespace

Response ErrorResponse(int status, std::string_view message) {
  std::string body = "{\"error\":{\"code\":" + std::to_string(status) + ",\"message\":\"" +
                     log::JsonEscape(message) + "\",\"status\":\"" +
                     std::string(StatusName(status)) + "\"}}";
  return Response::Json(status, std::move(body));
}

Status Router::Add(std::string_view method, std::string_view pattern, RouteHandler handler,
                   bool blocking) {
  if (method.empty() || pattern.empty() || pattern.front() != '/') {
    return InvalidArgument("route pattern `" + std::string(pattern) + "` must start with '/'");
  }
  Route r;
  r.method = std::string(method);
  r.blocking = blocking;
  r.handler = std::move(handler);
  std::vector<std::string_view> segs = SplitPath(pattern);
  // The verb is after the last ':' that is outside braces in the last segment.
  std::string_view& last = segs.back();
  size_t close = last.rfind('}');
  size_t colon = last.rfind(':');
  if (colon != std::string_view::npos && (close == std::string_view::npos || colon > close)) {
    r.verb = std::string(last.substr(colon + 1));
    last = last.substr(0, colon);
    if (r.verb.empty())
      return InvalidArgument("empty custom verb in `" + std::string(pattern) + "`");
  }
  for (size_t i = 0; i < segs.size(); ++i) {
    std::string_view s = segs[i];
    if (!s.empty() && s.front() == '{') {
      if (s.back() != '}' || s.size() < 3) {
        return InvalidArgument("malformed variable in `" + std::string(pattern) + "`");
      }
      std::string_view inner = s.substr(1, s.size() - 2);
      int kind = 1;
      size_t eq = inner.find('=');
      if (eq != std::string_view::npos) {
        std::string_view sub = inner.substr(eq + 1);
        if (sub == "**") {
          if (i + 1 != segs.size()) {
            return InvalidArgument("`**` must be last in `" + std::string(pattern) + "`");
          }
          kind = 2;
        } else if (sub != "*") {
          return InvalidArgument("unsupported variable pattern in `" + std::string(pattern) + "`");
        }
        inner = inner.substr(0, eq);
      }
      if (inner.empty())
        return InvalidArgument("unnamed variable in `" + std::string(pattern) + "`");
      r.segments.emplace_back();
      r.var_kind.push_back(kind);
      r.var_names.emplace_back(inner);
    } else {
      if (s.find_first_of("{}") != std::string_view::npos) {
        return InvalidArgument("malformed segment in `" + std::string(pattern) + "`");
      }
      r.segments.emplace_back(s);
      r.var_kind.push_back(0);
      r.var_names.emplace_back();
      ++r.literals;
    }
  }
  routes_.push_back(std::move(r));
  return Ok();
}

Router::Match Router::Find(std::string_view method, std::string_view raw_path,
                           std::vector<std::pair<std::string, std::string>>* vars) const {
  Match m;
  if (raw_path.empty() || raw_path.front() != '/') {
    m.kind = Match::kBadPath;
    return m;
  }
  std::vector<std::string_view> raw = SplitPath(raw_path);
  std::string_view verb = CutVerb(&raw.back());
  std::vector<std::string> decoded(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    if (!PercentDecode(raw[i], &decoded[i], false)) {
      m.kind = Match::kBadPath;
      return m;
    }
  }
  std::vector<std::string> allowed;
  const Route* best = nullptr;
  const Route* get_fallback = nullptr;
  for (const Route& r : routes_) {
    if (r.verb != verb) continue;
    bool rest = !r.var_kind.empty() && r.var_kind.back() == 2;
    if (rest ? raw.size() < r.segments.size() : raw.size() != r.segments.size()) continue;
    bool ok = true;
    for (size_t i = 0; i < r.segments.size() && ok; ++i) {
      if (r.var_kind[i] == 0)
        ok = decoded[i] == r.segments[i];
      else if (r.var_kind[i] == 1)
        ok = !decoded[i].empty();
    }
    if (!ok) continue;
    if (std::find(allowed.begin(), allowed.end(), r.method) == allowed.end()) {
      allowed.push_back(r.method);
    }
    if (r.method == method) {
      if (best == nullptr || r.literals > best->literals) best = &r;
    } else if (method == "HEAD" && r.method == "GET") {
      if (get_fallback == nullptr || r.literals > get_fallback->literals) get_fallback = &r;
    }
  }
  if (best == nullptr) best = get_fallback;
  if (best == nullptr) {
    if (allowed.empty()) {
      m.kind = Match::kNotFound;
      return m;
    }
    if (std::find(allowed.begin(), allowed.end(), "GET") != allowed.end() &&
        std::find(allowed.begin(), allowed.end(), "HEAD") == allowed.end()) {
      allowed.push_back("HEAD");
    }
    std::sort(allowed.begin(), allowed.end());
    m.kind = Match::kMethodNotAllowed;
    for (const std::string& a : allowed) {
      if (!m.allow.empty()) m.allow += ", ";
      m.allow += a;
    }
    return m;
  }
  m.kind = Match::kFound;
  m.route = best;
  vars->clear();
  for (size_t i = 0; i < best->segments.size(); ++i) {
    if (best->var_kind[i] == 1) {
      vars->emplace_back(best->var_names[i], decoded[i]);
    } else if (best->var_kind[i] == 2) {
      std::string joined;
      for (size_t j = i; j < decoded.size(); ++j) {
        if (j > i) joined += '/';
        joined += decoded[j];
      }
      vars->emplace_back(best->var_names[i], std::move(joined));
    }
  }
  return m;
}

Response Router::Invoke(const Route& route, const Request& req) {
  try {
    return route.handler(req);
  } catch (const std::exception& e) {
    log::Error("handler failed", {{"request_id", req.request_id},
                                  {"method", req.method},
                                  {"path", req.path},
                                  {"error", e.what()}});
  } catch (...) {
    log::Error("handler failed",
               {{"request_id", req.request_id}, {"method", req.method}, {"path", req.path}});
  }
  return ErrorResponse(500, "internal error");
}

Response Router::Dispatch(Request& req) const {
  Match m = Find(req.method, std::string_view(req.target).substr(0, req.target.find('?')),
                 &req.path_vars);
  switch (m.kind) {
    case Match::kFound:
      return Invoke(*m.route, req);
    case Match::kBadPath:
      return ErrorResponse(400, "malformed request path");
    case Match::kMethodNotAllowed: {
      Response r =
          ErrorResponse(405, "method `" + req.method + "` is not allowed on `" + req.path + "`");
      r.headers.Add("Allow", m.allow);
      return r;
    }
    case Match::kNotFound:
      break;
  }
  return ErrorResponse(404, "no route for `" + req.path + "`");
}

namespace {

class RouterHandler : public Handler {
 public:
  RouterHandler(std::shared_ptr<const Router> router, RouterOptions options)
      : router_(std::move(router)), options_(std::move(options)) {
    if (options_.blocking_threads > 0) pool_.emplace(options_.blocking_threads);
  }
  ~RouterHandler() override {
    if (pool_) pool_->join();
  }

  void OnWorkerStop(size_t worker) override {
    // Blocking calls still running post their results to worker io_contexts; wait for them
    // while those io_contexts are alive.
    if (worker == 0 && pool_) pool_->join();
  }

  asio::awaitable<bool> Handle(Exchange& ex) override {
    Request req;
    req.method = ex.head.method;
    req.target = ex.head.target;
    if (!PercentDecode(ex.head.Path(), &req.path, false)) req.path = std::string(ex.head.Path());
    req.query = ParseQuery(ex.head.Query());
    req.headers = std::move(ex.head.headers);
    req.remote_addr = ex.remote_addr;
    req.request_id = ex.request_id;

    bool keep = ex.head.keep_alive;
    Response resp;
    int body_status = co_await ex.ReadFullBody(options_.max_body_bytes, &req.body);
    if (body_status < 0) co_return false;
    if (body_status == 413) {
      resp = ErrorResponse(
          413, "request body exceeds " + std::to_string(options_.max_body_bytes) + " bytes");
      keep = false;
    } else if (body_status != 0) {
      resp = ErrorResponse(400, "malformed request body");
      keep = false;
    } else {
      Router::Match m = router_->Find(req.method, ex.head.Path(), &req.path_vars);
      if (m.kind == Router::Match::kFound && m.route->blocking && pool_) {
        resp = co_await RunBlocking(ex, *m.route, std::move(req));
      } else if (m.kind == Router::Match::kFound) {
        resp = Router::Invoke(*m.route, req);
      } else {
        resp = router_->Dispatch(req);
      }
    }
    bool ok = co_await ex.WriteResponse(resp, keep);
    if (options_.access_log) {
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now() - ex.start)
                    .count();
      log::Info("request", {{"server", options_.name},
                            {"request_id", ex.request_id},
                            {"method", ex.head.method},
                            {"path", std::string(ex.head.Path())},
                            {"status", std::to_string(resp.status)},
                            {"latency_ms", std::to_string(ms)},
                            {"remote", ex.remote_addr}});
    }
    co_return ok&& keep;
  }

 private:
  struct PoolCall {
    explicit PoolCall(const asio::any_io_executor& ex) : timer(ex) {}
    asio::steady_timer timer;
    Request req;
    Response resp;
    bool done = false;
  };

  asio::awaitable<Response> RunBlocking(Exchange& ex, const Router::Route& route, Request req) {
    auto call = std::make_shared<PoolCall>(ex.conn.stream.get_executor());
    call->req = std::move(req);
    call->timer.expires_after(options_.blocking_timeout);
    asio::post(*pool_, [call, &route] {
      Response r = Router::Invoke(route, call->req);
      asio::post(call->timer.get_executor(), [call, r = std::move(r)]() mutable {
        call->resp = std::move(r);
        call->done = true;
        call->timer.cancel();
      });
    });
    co_await call->timer.async_wait(use_nothrow);
    if (!call->done) {
      log::Warn("handler exceeded its deadline",
                {{"request_id", ex.request_id}, {"path", call->req.path}});
      co_return ErrorResponse(504, "the request deadline was exceeded");
    }
    co_return std::move(call->resp);
  }

  std::shared_ptr<const Router> router_;
  RouterOptions options_;
  std::optional<asio::thread_pool> pool_;
};

}  // namespace

std::shared_ptr<Handler> MakeRouterHandler(std::shared_ptr<const Router> router,
                                           RouterOptions options) {
  return std::make_shared<RouterHandler>(std::move(router), std::move(options));
}

}  // namespace moat::http
