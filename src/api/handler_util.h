// Internal to moat_api: what every handler file shares — the per-request scope (caller,
// View, authorization with Google's messages), JSON request/response helpers, the Google
// error envelope and admin-activity audit entries.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "api/api.h"
#include "common/clock.h"
#include "common/error.h"
#include "http/message.h"
#include "state/live_state.h"
#include "store/store.h"

namespace moat::api {

// What handlers need from the server; owned by Api.
struct Env : ApiServices {
  ApiConfig config;
};

// Google's JSON error envelope {"error":{"code","message","status","details":[]}} with the
// canonical code's HTTP status.
http::Response ErrorResponse(const Error& error);
// 200 (or `status`) with a JSON body; `revision` > 0 adds X-Moat-Revision.
http::Response JsonResponse(const boost::json::value& body, int64_t revision = 0,
                            int status = 200);

// The request body as a JSON object; an empty body is an empty object.
Result<boost::json::object> BodyObject(const http::Request& req);

// Per-request state: the authenticated caller and the View decisions are made on.
class Scope {
 public:
  // Authenticates, honours X-Moat-Min-Revision, and takes the current View.
  static Result<Scope> Open(const Env& env, const http::Request& req);

  const Caller& caller() const { return caller_; }
  const state::View& view() const { return *view_; }
  const std::shared_ptr<const state::View>& view_ptr() const { return view_; }
  const http::Request& request() const { return *req_; }
  const Env& env() const { return *env_; }
  TimePoint now() const { return env_->clock->Now(); }

  // Anonymous callers get UNAUTHENTICATED (401); callers without the permission get
  // PERMISSION_DENIED (403) "Permission 'P' denied on resource 'R' (or it may not exist)."
  Status Require(std::string_view resource, std::string_view permission) const;
  bool Has(std::string_view resource, std::string_view permission) const;
  const iam::PrincipalSet& principal_set() const { return principal_set_; }

  // An admin-activity audit entry for this request (status "OK" unless given).
  store::AuditEntry Audit(std::string method, std::string resource,
                          boost::json::object details = {}, std::string status = "OK") const;

 private:
  const Env* env_ = nullptr;
  const http::Request* req_ = nullptr;
  Caller caller_;
  std::shared_ptr<const state::View> view_;
  iam::PrincipalSet principal_set_;
};

// Runs `fn(scope)` with a Scope opened for `req`, turning an error anywhere into Google's
// envelope. Handlers are written as `return Handle(env, req, [&](Scope& s) -> Result<Response>)`.
template <class F>
http::Response Handle(const Env& env, const http::Request& req, F&& fn) {
  auto scope = Scope::Open(env, req);
  if (!scope) return ErrorResponse(scope.error());
  Result<http::Response> r = fn(*scope);
  if (!r) return ErrorResponse(r.error());
  return std::move(*r);
}

// Google's "Permission 'P' denied on resource 'R' (or it may not exist)."
Error PermissionDeniedOn(std::string_view resource, std::string_view permission);

// A bool query parameter ("true"/"false"/"1"/"0"; absent → default).
Result<bool> QueryBool(const http::Request& req, std::string_view name, bool default_value);
// An int query parameter (absent → default).
Result<int64_t> QueryInt(const http::Request& req, std::string_view name, int64_t default_value);

}  // namespace moat::api
