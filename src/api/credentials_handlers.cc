// IAM Service Account Credentials API v1 (GOOGLE.md §7), authenticated:
//   POST /v1/projects/-/serviceAccounts/{sa}:generateIdToken iam.serviceAccounts.getOpenIdToken
//   POST /v1/projects/-/serviceAccounts/{sa}:generateAccessToken iam.serviceAccounts.getAccessToken
//   POST /v1/projects/-/serviceAccounts/{sa}:signJwt              iam.serviceAccounts.signJwt
//   POST /v1/projects/-/serviceAccounts/{sa}:signBlob             iam.serviceAccounts.signBlob
// each on projects/P/serviceAccounts/EMAIL, with `delegates` hops needing
// iam.serviceAccounts.implicitDelegation on the next account (identity::IamCredentials does
// the chain; the Authorizer below answers on this request's View: the caller through the
// Scope, a delegate by resolving serviceAccount:DELEGATE on the same IAM snapshot).
// A target the View does not know answers 403 "(or it may not exist)" like every other
// refusal, so the endpoint does not reveal which accounts exist. Every call, allowed or not,
// gets an audit entry (method google.iam.credentials.v1.IAMCredentials.*; resource, delegates,
// audience or scopes; never a token, a signature or the signed payload).
#include <boost/json.hpp>

#include "api/iam_common.h"
#include "api/routes.h"
#include "common/json.h"
#include "identity/credentials.h"
#include "identity/directory.h"
#include "state/live_state.h"

namespace moat::api {
namespace {

namespace bj = boost::json;

enum class Method { kIdToken, kAccessToken, kSignJwt, kSignBlob };

struct MethodInfo {
  const char* verb;
  const char* audit_name;
  std::string_view permission;
};

MethodInfo Info(Method m) {
  switch (m) {
    case Method::kIdToken:
      return {"generateIdToken", "GenerateIdToken", identity::kPermGetOpenIdToken};
    case Method::kAccessToken:
      return {"generateAccessToken", "GenerateAccessToken", identity::kPermGetAccessToken};
    case Method::kSignJwt:
      return {"signJwt", "SignJwt", identity::kPermSignJwt};
    case Method::kSignBlob:
      return {"signBlob", "SignBlob", identity::kPermSignBlob};
  }
  return {"", "", ""};
}

// What the audit entry may say about the request: never the payload.
bj::object AuditDetails(const bj::object& body, Method m) {
  bj::object d;
  if (const auto* v = body.if_contains("delegates")) d["delegates"] = *v;
  if (m == Method::kIdToken) {
    if (const auto* v = body.if_contains("audience")) d["audience"] = *v;
  }
  if (m == Method::kAccessToken) {
    if (const auto* v = body.if_contains("scope")) d["scope"] = *v;
  }
  return d;
}

Result<http::Response> Call(const Env& env, Scope& s, identity::SystemManagedKeys* system_keys,
                            Method m) {
  const MethodInfo info = Info(m);
  if (!s.caller().authenticated()) {
    return Unauthenticated(
        "request is missing a valid credential; send `Authorization: Bearer TOKEN` (see `moat "
        "auth print-access-token`)");
  }
  if (s.request().PathVar("project") != "-") {
    return InvalidArgument(
        "the `-` wildcard character is required in the resource name; replacing it with a "
        "project ID is invalid");
  }
  std::string_view account = s.request().PathVar("account");
  MOAT_CHECK_OK(CheckPathSegment(account, "service account"));
  const std::string name = "projects/-/serviceAccounts/" + std::string(account);
  if (!env.issuer || !system_keys) {
    return MakeError(Code::kUnimplemented, "the IAM Credentials API is not enabled on this server");
  }
  // The body is parsed here only for the audit entry; IamCredentials parses it for real.
  bj::object body;
  if (!s.request().body.empty()) {
    auto parsed = json::ParseObject(s.request().body, "request body");
    if (!parsed) return parsed.error();
    body = std::move(*parsed);
  }
  const state::View& view = s.view();
  std::string resource = name;
  const identity::ServiceAccountRecord* target =
      view.directory ? view.directory->FindServiceAccount(http::ToLower(account)) : nullptr;
  if (target && !target->delete_time) resource = target->Name();

  auto audit = [&](const Error* error) {
    return AuditAfter(s, std::string("google.iam.credentials.v1.IAMCredentials.") + info.audit_name,
                      resource, AuditDetails(body, m),
                      error ? std::string(CodeName(error->code)) : std::string("OK"));
  };
  if (!target || target->delete_time) {
    Error e = PermissionDeniedOn(resource, info.permission);
    audit(&e);
    return e;
  }

  std::shared_ptr<const state::View> view_ptr = s.view_ptr();
  const std::string caller_member = s.caller().member;
  identity::Authorizer authorizer = [&s, view_ptr, caller_member](const std::string& member,
                                                                  const std::string& res,
                                                                  std::string_view permission) {
    if (member == caller_member) return s.Has(res, permission);
    constexpr std::string_view kSa = "serviceAccount:";
    if (!member.starts_with(kSa)) return false;
    iam::PrincipalSet ps =
        view_ptr->iam->Resolve(iam::Principal::ServiceAccount(member.substr(kSa.size())));
    return view_ptr->iam->Check(ps, res, permission, s.now()).allowed;
  };
  identity::IamCredentials creds(
      *env.issuer, *system_keys, *env.clock, [view_ptr] { return view_ptr->directory; },
      std::move(authorizer));
  const std::string& req_body = s.request().body.empty() ? std::string("{}") : s.request().body;
  Result<std::string> out = Error{};
  switch (m) {
    case Method::kIdToken:
      out = creds.GenerateIdTokenJson(caller_member, name, req_body);
      break;
    case Method::kAccessToken:
      out = creds.GenerateAccessTokenJson(caller_member, name, req_body);
      break;
    case Method::kSignJwt:
      out = creds.SignJwtJson(caller_member, name, req_body);
      break;
    case Method::kSignBlob:
      out = creds.SignBlobJson(caller_member, name, req_body);
      break;
  }
  if (!out) {
    Error e = out.error();
    audit(&e);
    return e;
  }
  audit(nullptr);  // credentials change nothing a reader would wait for: no X-Moat-Revision
  http::Response r = http::Response::Json(200, std::move(*out));
  r.headers.Set("Cache-Control", "no-store");
  return r;
}

}  // namespace

void RegisterCredentialsRoutesWith(http::Router& router, const Env& env,
                                   identity::SystemManagedKeys* system_keys) {
  for (Method m : {Method::kIdToken, Method::kAccessToken, Method::kSignJwt, Method::kSignBlob}) {
    AddRoute(
        router, "POST",
        std::string("/v1/projects/{project}/serviceAccounts/{account}:") + Info(m).verb,
        [&env, system_keys, m](const http::Request& req) {
          return Handle(env, req, [&](Scope& s) { return Call(env, s, system_keys, m); });
        },
        /*blocking=*/true);
  }
}

void RegisterCredentialsRoutes(http::Router& router, const Env& env) {
  RegisterCredentialsRoutesWith(router, env, SystemKeysOf(env));
}

}  // namespace moat::api
