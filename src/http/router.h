// Router: method + path-pattern dispatch for JSON-API style handlers (the control-plane API,
// the metadata server). Patterns:
//   literal segments            /v2/projects
//   {var}                       one whole segment, percent-decoded ("a%2Fb" → "a/b")
//   {var=**}                    last segment only: the rest of the path, slashes included
//   :verb suffix                Google's custom methods: "/v2/…/services/{service}:getIamPolicy"
// A request's verb is what follows the last ':' of its last raw segment; routes with a verb
// match only that verb, routes without one only verb-less paths, so {service} never swallows
// ":getIamPolicy". Among matching routes the one with the most literal segments wins (ties:
// first added). No path match → 404; a path match with the wrong method → 405 with Allow.
// HEAD falls back to GET (the body is dropped on the wire).
//
// Thread-safety: build with Add() on one thread, then share as shared_ptr<const Router>;
// Find/Dispatch are const and safe from any thread. Handlers may run concurrently.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "http/message.h"

namespace moat::http {

class Handler;

// A handler gets the fully buffered request (path_vars filled) and returns the response.
// Throwing is for infrastructure failures only: it becomes a logged 500.
using RouteHandler = std::function<Response(const Request&)>;

// The JSON error envelope used for router-generated errors (404, 405, 413, 500, 504):
// {"error":{"code":404,"message":"…","status":"NOT_FOUND"}}.
Response ErrorResponse(int status, std::string_view message);

class Router {
 public:
  struct Route {
    std::string method;
    std::vector<std::string> segments;   // literal, or "{name}" / "{name=**}" kept parsed below
    std::vector<int> var_kind;           // per segment: 0 literal, 1 {var}, 2 {var=**}
    std::vector<std::string> var_names;  // per segment ("" for literals)
    std::string verb;
    int literals = 0;
    bool blocking = false;
    RouteHandler handler;
  };

  struct Match {
    enum Kind { kFound, kNotFound, kMethodNotAllowed, kBadPath } kind = kNotFound;
    const Route* route = nullptr;
    std::string allow;  // for kMethodNotAllowed: "GET, POST"
  };

  // Registers a route. `blocking` handlers run on the RouterHandler's thread pool (when it
  // has one) instead of the I/O thread. Errors: kInvalidArgument for a malformed pattern.
  Status Add(std::string_view method, std::string_view pattern, RouteHandler handler,
             bool blocking = false);

  // Matches `raw_path` (not yet percent-decoded, no query). On kFound fills *vars.
  Match Find(std::string_view method, std::string_view raw_path,
             std::vector<std::pair<std::string, std::string>>* vars) const;

  // Find + call: 404/405/400 as ErrorResponse, handler exceptions as a logged 500.
  Response Dispatch(Request& req) const;

  // Calls a matched route's handler, turning an exception into a logged 500.
  static Response Invoke(const Route& route, const Request& req);

 private:
  std::vector<Route> routes_;
};

struct RouterOptions {
  size_t max_body_bytes = 10 * 1024 * 1024;  // larger → 413
  // Threads for routes added with blocking=true; 0 runs them on the I/O thread too.
  int blocking_threads = 0;
  // Deadline for blocking routes (504 after it; the handler finishes in the background).
  std::chrono::milliseconds blocking_timeout{60'000};
  bool access_log = true;  // one JSON log line per request
  std::string name = "api";
};

// A Server Handler that serves `router`.
std::shared_ptr<Handler> MakeRouterHandler(std::shared_ptr<const Router> router,
                                           RouterOptions options = {});

}  // namespace moat::http
