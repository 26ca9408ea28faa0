// Internal to moat_api (the apiiam handler files: iam_*, credentials_*, oauth_*, discovery_*,
// directory_*, ops_*): helpers they share — resolving a service account named in a path to
// the resource name IAM checks, appending the audit entry of a mutation the identity module
// committed itself, list-page JSON, and registration helpers.
//
// Thread-safety: pure functions / per-request objects.
#pragma once

#include <boost/json/object.hpp>
#include <string>
#include <string_view>

#include "api/handler_util.h"
#include "http/router.h"

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

// The identity lifecycle functions (identity::ServiceAccounts, Users, Groups, TrustedIssuers)
// commit their own store transaction, so a handler cannot put its audit entry in the same
// transaction. This appends `entry` in a second transaction right after and returns the store
// revision to answer with (>= the mutation's). Compromise, accepted: a crash between the two
// commits loses the audit entry (never the change); a failing audit append is logged at ERROR
// and the request still succeeds (the change is already durable and must be reported).
// `status` is "OK" or the canonical code name of a refused request.
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

// Registers one route, counting its responses (CountResponse), and ignores the (impossible for our
// literal patterns) error after logging it.
void AddRoute(http::Router& router, std::string_view method, std::string_view pattern,
              http::RouteHandler handler, bool blocking);

}  // namespace moat::api
