// The compiled IAM evaluator: immutable policy snapshots and the decision function.
//
// Inputs (PolicyInputs) are the policies of one Moat installation — a root policy (Moat's
// stand-in for the organization), project policies, resource policies (services, service
// accounts) —, group memberships and custom roles. Snapshot::Build compiles them once: roles
// become permission bitsets, members interned ids, conditions compiled ASTs, and each
// policy an index member-id → bindings. A permission granted at any level applies to every
// resource below it (root → projects/P → projects/P/…).
//
// Decision rule (there are no deny policies in v1 allow policies):
//   allow  iff some binding, on the resource or an ancestor, whose role contains the
//          permission, lists a member that matches the principal, and has no condition or a
//          condition that evaluates to true;
//   deny   otherwise (default deny). A condition that fails to evaluate, that does not
//          compile, or a binding whose role is unknown never grants.
//
// Matching: `user:`/`serviceAccount:` by email (case-insensitive); `group:` if the principal
// is in the group, directly or through nested groups (cycles are harmless); `domain:D` if a
// *user*'s email domain is D; `allAuthenticatedUsers` any user or service account;
// `allUsers` anyone, including the anonymous caller. `deleted:`, `principal://`,
// `principalSet://` and GKE members never match.
//
// Threading: a Snapshot is immutable after Build; every const method may be called from any
// number of threads without locks. SnapshotHolder publishes a new snapshot atomically;
// readers never take a mutex. Build itself is pure and may run on any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "iam/policy.h"
#include "iam/roles.h"

namespace moat::iam {

enum class Level { kRoot, kProject, kResource };
std::string_view LevelName(Level level);  // "root", "project", "resource"

// Who is asking. Built by the caller from a verified token (or none).
struct Principal {
  enum class Kind { kAnonymous, kUser, kServiceAccount };
  Kind kind = Kind::kAnonymous;
  std::string email;  // empty for kAnonymous; compared case-insensitively

  static Principal Anonymous() { return {}; }
  static Principal User(std::string email) { return {Kind::kUser, std::move(email)}; }
  static Principal ServiceAccount(std::string email) {
    return {Kind::kServiceAccount, std::move(email)};
  }
  bool authenticated() const { return kind != Kind::kAnonymous; }
  // "user:alice@example.com", "serviceAccount:…", or "anonymous".
  std::string ToString() const;
};

// A principal resolved against one snapshot: the interned ids of every policy member it
// matches. Cheap to keep per token; valid for the snapshot that made it (Check re-resolves
// transparently, at some cost, when handed a set from another snapshot).
struct PrincipalSet {
  Principal principal;
  uint64_t snapshot_id = 0;
  // Most specific first: the identity, its groups (nearest first), its domain,
  // allAuthenticatedUsers, allUsers. Ids are only those known to the snapshot.
  std::vector<uint32_t> member_ids;
  // Lower-cased emails of every group the principal is in, transitively (for audit logs).
  std::vector<std::string> groups;
};

// A binding as the decision cites it. Views point into the Snapshot that made the Decision
// and stay valid while it is alive.
struct BindingRef {
  Level level = Level::kResource;
  std::string_view resource;   // the resource the policy is attached to ("projects/p", …)
  uint32_t binding_index = 0;  // index in that policy's `bindings`
  std::string_view role;
  std::string_view member;                // the member string that matched (empty if none did)
  std::string_view condition_title;       // empty when unconditional
  std::string_view condition_expression;  // empty when unconditional
};

// Why a binding near the request did not grant, most promising first.
enum class MissReason {
  kConditionFalse,       // member and role fit; the condition evaluated to false
  kConditionError,       // member and role fit; the condition failed to evaluate
  kConditionInvalid,     // member and role fit; the condition does not compile
  kRoleLacksPermission,  // the principal is a member, but the role lacks the permission
  kRoleUnknown,          // the principal is a member, but the role does not exist
  kPrincipalNotMember,   // the role has the permission, but the principal is not a member
};
std::string_view MissReasonName(MissReason r);  // "CONDITION_FALSE", …

struct ClosestBinding {
  BindingRef binding;
  MissReason reason;
};

enum class Explain { kNo, kYes };

struct Decision {
  bool allowed = false;
  std::string_view permission;   // static storage
  bool permission_known = true;  // false: the permission is not one Moat knows (always deny)
  BindingRef granted;            // meaningful when allowed
  // A condition was evaluated on the way to this answer, so it may change with request.time.
  // Otherwise the same snapshot gives the same answer for the same principal set, resource
  // and permission at any time (what lets a caller keep it).
  bool time_dependent = false;
  // Filled only when denied and Explain::kYes: at most kMaxClosest, most promising first.
  std::vector<ClosestBinding> closest;
  static constexpr size_t kMaxClosest = 10;

  // One English sentence for troubleshooting and audit logs.
  std::string ToString() const;
  // {"allowed":…,"permission":…,"grantedBy":{level,resource,role,member,condition},
  //  "closest":[{…,"reason":"CONDITION_FALSE"}]}
  boost::json::object ToJson() const;
};

struct PolicyInputs {
  std::string root_name = "organizations/moat";  // how the root policy's resource is named
  Policy root;
  std::unordered_map<std::string, Policy> projects;   // project id "p" → its policy
  std::unordered_map<std::string, Policy> resources;  // full resource name → its policy
  // Group email → its members ("user:…", "serviceAccount:…", "group:…"; others ignored).
  std::unordered_map<std::string, std::vector<std::string>> groups;
  std::vector<Role> custom_roles;
};

// The condition attributes of a resource name: resource.type and resource.service for
// projects, Cloud Run services and jobs, and service accounts; empty (absent) otherwise.
struct ResourceAttributes {
  std::string_view type;
  std::string_view service;
};
ResourceAttributes DescribeResource(std::string_view resource_name);

class Snapshot {
 public:
  // Compiles `inputs`. Never fails: what cannot be used (an unknown role, an unparseable
  // member, a condition outside the supported subset) is skipped — it never grants — and
  // described in warnings(). Policies should have passed ValidatePolicy when they were set.
  static std::shared_ptr<const Snapshot> Build(PolicyInputs inputs);
  // A snapshot that denies everything.
  static std::shared_ptr<const Snapshot> Empty();

  PrincipalSet Resolve(const Principal& principal) const;

  // The decision for `principal` doing `permission` on `resource` (a full resource name:
  // "projects/p/locations/r/services/s", "projects/p/serviceAccounts/e", "projects/p").
  // The allow path does not allocate. `now` feeds request.time.
  Decision Check(const PrincipalSet& principal, std::string_view resource,
                 std::string_view permission, TimePoint now, Explain explain = Explain::kNo) const;
  // Same with a pre-interned permission (PermissionIndex()).
  Decision Check(const PrincipalSet& principal, std::string_view resource, uint32_t permission,
                 TimePoint now, Explain explain = Explain::kNo) const;

  // testIamPermissions: the subset of `permissions` the principal holds, in request order.
  // Unknown permissions are simply not held; callers validate names first
  // (ValidatePermissionName).
  std::vector<std::string> TestPermissions(const PrincipalSet& principal, std::string_view resource,
                                           const std::vector<std::string>& permissions,
                                           TimePoint now) const;

  // The policy set directly on a resource ("projects/p" → the project policy, the root name
  // → the root policy), or nullptr.
  const Policy* FindPolicy(std::string_view resource) const;

  uint64_t id() const { return id_; }
  const RoleCatalog& roles() const { return catalog_; }
  const std::vector<std::string>& warnings() const { return warnings_; }

  // Implementation types (public so the .cc's helpers can name them; not an API).
  struct CompiledBinding;
  struct CompiledPolicy;
  struct ResourceEntry;
  ~Snapshot();

 private:
  Snapshot();
  const CompiledPolicy* ProjectPolicyOf(std::string_view resource) const;
  void Explainer(const PrincipalSet& ps, const CompiledPolicy* const* levels, size_t n,
                 uint32_t perm, std::string_view resource, TimePoint now, Decision& d) const;

  uint64_t id_ = 0;
  RoleCatalog catalog_;
  std::vector<std::string> warnings_;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Holds the current snapshot. Publish from the one thread that rebuilds; read from anywhere.
class SnapshotHolder {
 public:
  explicit SnapshotHolder(std::shared_ptr<const Snapshot> initial = Snapshot::Empty());

  std::shared_ptr<const Snapshot> Acquire() const {
    return current_.load(std::memory_order_acquire);
  }
  void Publish(std::shared_ptr<const Snapshot> snapshot);
  // Incremented by every Publish.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

  // A per-thread (or per-session) cache: Get() costs one atomic load while nothing changed,
  // and takes no reference-count traffic on the shared pointer. Not thread-safe itself.
  class Reader {
   public:
    explicit Reader(const SnapshotHolder& holder) : holder_(&holder) {}
    const Snapshot& Get();
    const std::shared_ptr<const Snapshot>& GetShared();

   private:
    const SnapshotHolder* holder_;
    uint64_t generation_ = ~uint64_t{0};
    std::shared_ptr<const Snapshot> cached_;
  };

 private:
  std::atomic<std::shared_ptr<const Snapshot>> current_;
  std::atomic<uint64_t> generation_{0};
};

}  // namespace moat::iam
