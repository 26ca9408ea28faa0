#include "api/handler_util.h"

#include <boost/json.hpp>
#include <charconv>

#include "common/json.h"
#include "common/log.h"

namespace moat::api {

http::Response ErrorResponse(const Error& error) {
  boost::json::object e;
  e["code"] = HttpStatus(error.code);
  e["message"] = error.message;
  e["status"] = std::string(CodeName(error.code));
  e["details"] = boost::json::array();
  boost::json::object body;
  body["error"] = std::move(e);
  http::Response r = http::Response::Json(HttpStatus(error.code), json::Serialize(body));
  if (error.code == Code::kUnauthenticated) {
    r.headers.Set("WWW-Authenticate", "Bearer realm=\"moat\"");
  }
  return r;
}

http::Response JsonResponse(const boost::json::value& body, int64_t revision, int status) {
  http::Response r = http::Response::Json(status, json::Serialize(body));
  if (revision > 0) r.headers.Set("X-Moat-Revision", std::to_string(revision));
  return r;
}

Result<boost::json::object> BodyObject(const http::Request& req) {
  if (req.body.empty()) return boost::json::object();
  return json::ParseObject(req.body, "request body");
}

Error PermissionDeniedOn(std::string_view resource, std::string_view permission) {
  return PermissionDenied("Permission '" + std::string(permission) + "' denied on resource '" +
                          std::string(resource) + "' (or it may not exist).");
}

Result<Scope> Scope::Open(const Env& env, const http::Request& req) {
  Scope s;
  s.env_ = &env;
  s.req_ = &req;
  MOAT_TRY(s.caller_, env.authenticate(req));
  std::string_view min_rev = req.headers.Get("X-Moat-Min-Revision");
  if (!min_rev.empty()) {
    int64_t rev = 0;
    auto [p, ec] = std::from_chars(min_rev.data(), min_rev.data() + min_rev.size(), rev);
    if (ec != std::errc() || p != min_rev.data() + min_rev.size() || rev < 0) {
      return InvalidArgument("header `X-Moat-Min-Revision` must be a revision number");
    }
    if (!env.live->WaitForRevision(rev, env.config.max_revision_wait)) {
      return Unavailable("revision " + std::to_string(rev) +
                         " is not enforced yet; retry the request");
    }
  }
  s.view_ = env.live->Current();
  s.principal_set_ = s.view_->iam->Resolve(s.caller_.principal);
  return s;
}

bool Scope::Has(std::string_view resource, std::string_view permission) const {
  return view_->iam->Check(principal_set_, resource, permission, now()).allowed;
}

Status Scope::Require(std::string_view resource, std::string_view permission) const {
  if (!caller_.authenticated()) {
    return Unauthenticated(
        "request is missing a valid credential; send `Authorization: Bearer TOKEN` (see `moat "
        "auth print-access-token`)");
  }
  if (Has(resource, permission)) return Ok();
  return PermissionDeniedOn(resource, permission);
}

store::AuditEntry Scope::Audit(std::string method, std::string resource,
                               boost::json::object details, std::string status) const {
  store::AuditEntry e;
  e.time = now();
  e.kind = store::AuditKind::kAdminActivity;
  e.principal = caller_.member;
  e.method = std::move(method);
  e.resource = std::move(resource);
  e.request_id = req_->request_id;
  e.status = std::move(status);
  e.details = json::Serialize(details);
  return e;
}

Result<bool> QueryBool(const http::Request& req, std::string_view name, bool default_value) {
  std::string_view v = req.QueryParam(name);
  if (v.empty()) return default_value;
  if (v == "true" || v == "1") return true;
  if (v == "false" || v == "0") return false;
  return InvalidArgument("query parameter `" + std::string(name) + "` must be true or false");
}

Result<int64_t> QueryInt(const http::Request& req, std::string_view name, int64_t default_value) {
  std::string_view v = req.QueryParam(name);
  if (v.empty()) return default_value;
  int64_t out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || p != v.data() + v.size()) {
    return InvalidArgument("query parameter `" + std::string(name) + "` must be an integer");
  }
  return out;
}

}  // namespace moat::api
