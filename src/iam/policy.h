// The IAM allow policy (google.iam.v1.Policy) in Google's JSON wire format, Google's
// validation rules, version formatting, gcloud-style binding edits and policy diffs.
//
// Parse → (Normalize) → Validate is what setIamPolicy does; Serialize is faithful to the
// parsed value (proto3 JSON: default values are omitted, field order version, bindings,
// auditConfigs, etag). `auditConfigs` are kept and returned but do not affect decisions.
//
// Thread-safety: value types and pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace boost::json {
class object;
class value;
}  // namespace boost::json

namespace moat::iam {

class RoleCatalog;

// google.type.Expr
struct Condition {
  std::string expression;
  std::string title;
  std::string description;
  std::string location;
  bool operator==(const Condition&) const = default;
};

struct Binding {
  std::string role;
  std::vector<std::string> members;  // as written; Normalize folds duplicates
  std::optional<Condition> condition;
  bool operator==(const Binding&) const = default;
};

struct AuditLogConfig {
  std::string
      log_type;  // LOG_TYPE_UNSPECIFIED (omitted in JSON), ADMIN_READ, DATA_WRITE, DATA_READ
  std::vector<std::string> exempted_members;
  bool operator==(const AuditLogConfig&) const = default;
};

struct AuditConfig {
  std::string service;  // "allServices" or e.g. "run.googleapis.com"
  std::vector<AuditLogConfig> audit_log_configs;
  bool operator==(const AuditConfig&) const = default;
};

struct Policy {
  int version = 0;  // 0, 1 or 3 (validated by ValidatePolicy)
  std::vector<Binding> bindings;
  std::vector<AuditConfig> audit_configs;
  std::string etag;  // the base64 text as on the wire ("BwWWja0YfJA="); empty = absent

  bool HasConditions() const;
  bool operator==(const Policy&) const = default;
};

// Google's limits (GOOGLE.md §3.1): principals per policy (each occurrence counts) and groups.
inline constexpr size_t kMaxPolicyMembers = 1500;
inline constexpr size_t kMaxPolicyGroups = 250;
inline constexpr size_t kMaxConditionTitle = 100;
inline constexpr size_t kMaxConditionDescription = 256;

// Parses a policy. Accepts proto3 JSON: lowerCamel or original snake_case field names,
// null = absent, `version` as a number or a numeric string, `logType` as a name or number.
// Errors (INVALID_ARGUMENT), Google's wording lower-cased:
//   "invalid JSON payload received: unknown name `x` at `policy.bindings[0]`: cannot find field"
//   "invalid value at `policy.etag`: the etag must be base64"
//   "invalid value at `policy.bindings[0].members[1]`: expected a string"
// Nothing about roles or members is checked here (see ValidatePolicy).
Result<Policy> ParsePolicy(std::string_view json_text);
// `path` names the object in errors ("policy" inside a SetIamPolicyRequest).
Result<Policy> ParsePolicy(const boost::json::object& object, std::string_view path = "policy");

boost::json::object PolicyToJson(const Policy& policy);
std::string SerializePolicy(const Policy& policy);

// Google's setIamPolicy rules; the first violation is returned (INVALID_ARGUMENT):
//  - version is 0, 1 or 3; a policy with a condition needs version 3;
//  - every binding has a role the catalog knows and may use on `resource` (empty = skip the
//    resource check) and at least one member; every member parses (member.h);
//  - conditions compile (condition.h), have a title ≤ 100 and a description ≤ 256 characters;
//  - ≤ 1,500 members per policy, ≤ 250 of them groups, each occurrence counted (duplicates
//    inside one binding are folded first, as Normalize does);
//  - audit configs name a service; exempted members parse.
Status ValidatePolicy(const Policy& policy, const RoleCatalog& catalog,
                      std::string_view resource = "");

// Folds duplicate members inside a binding (emails compared case-insensitively, the first
// spelling kept) and merges bindings with the same role and an identical condition into the
// first of them, keeping order otherwise. Idempotent.
void NormalizePolicy(Policy& policy);

// getIamPolicy's `options.requestedPolicyVersion` (0 = unset): a policy with conditions needs
// 3, else INVALID_ARGUMENT "requested policy version (1) cannot be less than the existing
// policy version (3)". The result carries version 3 if it has conditions, 1 if it has
// bindings, else 0 (omitted). Invalid requested versions → INVALID_ARGUMENT.
Result<Policy> FormatForVersion(const Policy& policy, int requested_version);

// gcloud add-iam-policy-binding: adds `member` to the binding with this role and exactly this
// condition (creating the binding at the end if none), sets version 3 when a condition is
// given. Returns whether the policy changed. Errors: the member does not parse.
Result<bool> AddMember(Policy& policy, std::string_view role, std::string_view member,
                       const std::optional<Condition>& condition = std::nullopt);
// gcloud remove-iam-policy-binding: removes `member` from the binding with this role and
// exactly this condition (none = the unconditional binding); a binding left empty is removed.
// Errors: NOT_FOUND "policy binding with the specified principal, role, and condition not
// found!" (gcloud's wording).
Status RemoveMember(Policy& policy, std::string_view role, std::string_view member,
                    const std::optional<Condition>& condition = std::nullopt);

// One (role, member, condition) grant added or removed between two policies, for audit logs
// (Google's BindingDelta).
struct BindingDelta {
  enum class Action { kAdd, kRemove };
  Action action;
  std::string role;
  std::string member;
  std::optional<Condition> condition;
};
std::string_view ActionName(BindingDelta::Action a);  // "ADD" / "REMOVE"
// Removals first, then additions, each in policy order. Members compare case-insensitively.
std::vector<BindingDelta> DiffPolicies(const Policy& before, const Policy& after);
boost::json::value BindingDeltasToJson(const std::vector<BindingDelta>& deltas);

}  // namespace moat::iam
