// The roles catalog: Google's predefined roles Moat implements (GOOGLE.md §2), Moat's own
// permissions for its own resources, and custom roles (`projects/P/roles/NAME`).
//
// Every permission Moat knows is in one fixed, ordered list (KnownPermissions()); a role is
// a set of indices into it (a bitset), so the evaluator tests "role has permission" with one
// bit test. Custom roles may only use known permissions.
//
// Thread-safety: a RoleCatalog is a value; const methods are safe from any thread. The
// predefined catalog (Predefined()) is immutable and lives for the whole program.
#pragma once

#include <bitset>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/error.h"

namespace moat::iam {

// Upper bound on the number of known permissions (checked at start-up of the catalog).
inline constexpr size_t kMaxPermissions = 256;
using PermissionSet = std::bitset<kMaxPermissions>;

// Every permission Moat knows, in a stable order; index = position.
const std::vector<std::string>& KnownPermissions();
// Index of a known permission, or nullopt.
std::optional<uint32_t> PermissionIndex(std::string_view permission);

// Checks a permission named in testIamPermissions or a custom role: wildcards
// ("*", "run.*") → INVALID_ARGUMENT "permissions with wildcards … are not allowed";
// malformed → INVALID_ARGUMENT; well-formed but unknown → INVALID_ARGUMENT
// "permission `x.y.z` is not valid". (testIamPermissions callers may prefer to drop unknown
// permissions instead: use PermissionIndex.)
Status ValidatePermissionName(std::string_view permission);

struct Role {
  std::string name;  // "roles/run.invoker", "projects/P/roles/NAME"
  std::string title;
  std::string description;
  std::string stage = "GA";                       // GA, BETA, ALPHA, DEPRECATED, DISABLED, EAP
  std::vector<std::string> included_permissions;  // sorted, unique
  PermissionSet permissions;                      // the same set as indices
  bool custom = false;
  // For custom roles: the project ("projects/P") or organization that owns the role.
  std::string parent;
};

// Splits "projects/P/roles/NAME" / "organizations/O/roles/NAME" → parent "projects/P";
// nullopt when `name` is not a custom-role name. Role ids: 3–64 of [A-Za-z0-9_.].
std::optional<std::string> CustomRoleParent(std::string_view name);

class RoleCatalog {
 public:
  // The predefined roles only.
  RoleCatalog();

  // The shared immutable catalog of predefined roles.
  static const RoleCatalog& Predefined();

  // Adds or replaces a custom role. Errors (INVALID_ARGUMENT): the name is not
  // `projects/P/roles/NAME` or `organizations/O/roles/NAME`; a permission is malformed,
  // has a wildcard or is unknown; more than 3,000 permissions; title > 100 characters;
  // description > 300 characters; stage not one of Google's.
  Status AddCustomRole(Role role);
  // Removes a custom role; false if there was none.
  bool RemoveCustomRole(std::string_view name);

  // The role, or nullptr.
  const Role* Find(std::string_view name) const;
  // All roles, predefined first (in catalog order), then custom roles by name.
  std::vector<const Role*> All() const;

  // Whether `role` may be used in a policy attached to `resource` (a full resource name such
  // as "projects/P/locations/R/services/S"; empty = any). Errors (INVALID_ARGUMENT):
  // "role `roles/foo` is not supported" for unknown roles, and
  // "role `projects/q/roles/x` is not supported for this resource" for another project's
  // custom role.
  Status CheckUsable(std::string_view role, std::string_view resource) const;

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::vector<Role> predefined_;
  std::unordered_map<std::string, Role, Hash, std::equal_to<>> custom_;
  std::unordered_map<std::string, size_t, Hash, std::equal_to<>> predefined_index_;
};

}  // namespace moat::iam
