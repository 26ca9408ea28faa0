// Internal to moat_api (the apiiam handler files: iam_*, credentials_*, oauth_*, discovery_*,
// directory_*, ops_*): helpers they share — resolving a service account named in a path to
// the resource name IAM checks, putting a mutation's audit entry into the identity module's
// transaction (AuditHook), list-page JSON, and registration helpers (per-route metrics).
//
// Thread-safety: pure functions / per-request objects.
#pragma once

#include <boost/json/object.hpp>
#include <string>
#include <string_view>
#include <utility>

#include "api/handler_util.h"
#include "http/router.h"
#include "identity/commit_hook.h"

namespace moat::identity {
class SystemManagedKeys;
}

namespace moat::api {

// A service account named by a request path: projects/{project}/serviceAccounts/{account},
// where account is an email (any case) or a uniqueId and project may be the `-` wildcard.
struct AccountTarget {
  // The name handed to identity::ServiceAccounts ("projects/P/serviceAccounts/ACCOUNT", the
  // email lowercased).
  std::string name;
  // The resource permissions are checked on: the account's canonical name
  // "projects/P/serviceAccounts/EMAIL" when the View knows the live account, else `name` (a
  // missing account then fails authorization unless the caller holds the permission on an
  // ancestor, and the identity call answers NOT_FOUND / the wildcard's PERMISSION_DENIED).
  std::string resource;
  std::string project_id;  // the account's project when known, else the path's
  std::string email;       // "" when the View does not know the account
};
// Errors: kInvalidArgument for an empty or malformed segment.
Result<AccountTarget> ResolveAccount(const Scope& scope, std::string_view project,
                                     std::string_view account);

// kInvalidArgument unless `value` is a non-empty path segment without '/' or NUL (`what` names
// it in the message).
Status CheckPathSegment(std::string_view value, std::string_view what);

// A CommitHook for an identity lifecycle call (identity::ServiceAccounts, Users, Groups,
// TrustedIssuers) that appends this request's admin-activity audit entry for `method` inside
// the call's own transaction: the change and its audit entry commit together or not at all.
// `describe(record)` returns {resource name, details}. After the call, the hook's `revision` is
// the revision to answer with. `scope` must outlive the hook.
template <class Record, class Describe>
identity::CommitHook<Record> AuditHook(const Scope& scope, std::string method, Describe describe) {
  identity::CommitHook<Record> hook;
  hook.before_commit = [&scope, method = std::move(method), describe = std::move(describe)](
                           store::Transaction& tx, const Record& record) -> Status {
    std::pair<std::string, boost::json::object> d = describe(record);
    return tx.AppendAudit(scope.Audit(method, std::move(d.first), std::move(d.second)));
  };
  return hook;
}

// Appends an audit entry for a request that changed nothing in the store (e.g. a minted
// token) in its own transaction and returns the store revision to answer with. A failing append
// is logged at ERROR and the request still succeeds. `status` is "OK" or the canonical code
// name of a refused request. Mutations use AuditHook / their own transaction instead.
int64_t AuditAfter(const Scope& scope, std::string method, std::string resource,
                   boost::json::object details = {}, std::string status = "OK");

// The root resource moat.* permissions are checked on (iam::PolicyInputs::root_name).
inline constexpr std::string_view kMoatRootResource = "organizations/moat";

// Env's SystemManagedKeys when api.h's ApiServices has a `system_keys` member, else nullptr
// (detected at compile time so this file builds before and after that member exists).
template <class E>
identity::SystemManagedKeys* SystemKeysOf(const E& env) {
  if constexpr (requires { env.system_keys; }) {
    return env.system_keys;
  } else {
    return nullptr;
  }
}

// Responses served by routes registered through AddRoute, by HTTP status (for /metrics).
// Lock-free counters; statuses outside 100..599 are counted as 599.
void CountResponse(int status);
// "moat_api_responses_total{code=\"200\"} 12\n"… for every non-zero status, ascending.
std::string ResponseCountsText();

// Per-route request metrics of every route registered through AddRoute (every API route), in
// Prometheus text: moat_api_requests_total{route="GET /v2/…/services/{service}",code="200"}
// and the latency histogram moat_api_request_duration_seconds{route=…} (_bucket{le=…}, _sum,
// _count), for routes that served at least one request. The route label is the registered
// method and pattern (bounded cardinality: never the request's path). Process-wide: two Api
// objects registering the same route share its series.
std::string RouteMetricsText();

// Registers one route, counting its responses (CountResponse) and its per-route requests and
// latency (RouteMetricsText), and ignores the (impossible for our literal patterns) error after
// logging it. Every API route goes through here.
void AddRoute(http::Router& router, std::string_view method, std::string_view pattern,
              http::RouteHandler handler, bool blocking);

}  // namespace moat::api
