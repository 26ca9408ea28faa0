#include "iam/evaluator.h"

#include <algorithm>
#include <boost/json.hpp>
#include <span>
#include <unordered_set>

#include "iam/condition.h"
#include "iam/member.h"

namespace moat::iam {
namespace {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <class V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

constexpr size_t kMaxWarnings = 200;

// "projects/p/…" → "p"; empty if the name is not under a project.
std::string_view ProjectId(std::string_view resource) {
  if (!resource.starts_with("projects/")) return {};
  std::string_view rest = resource.substr(9);
  return rest.substr(0, rest.find('/'));
}

std::atomic<uint64_t> next_snapshot_id{1};

}  // namespace

// An open-addressing map from member id to the bindings that list it: one multiply and a
// probe or two per lookup, no pointers to chase.
class MemberIndex {
 public:
  struct Entry {
    uint32_t binding;
    uint32_t member_pos;  // index in the source binding's `members`
  };

  void Build(std::vector<std::pair<uint32_t, Entry>> items) {
    std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first < b.first : a.second.binding < b.second.binding;
    });
    size_t distinct = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      if (i == 0 || items[i].first != items[i - 1].first) ++distinct;
    }
    bits_ = 1;
    while ((size_t{1} << bits_) < distinct * 2) ++bits_;
    slots_.assign(size_t{1} << bits_, Slot{});
    entries_.clear();
    entries_.reserve(items.size());
    for (size_t i = 0; i < items.size();) {
      size_t j = i;
      uint32_t key = items[i].first;
      uint32_t start = static_cast<uint32_t>(entries_.size());
      for (; j < items.size() && items[j].first == key; ++j) {
        // Keep one entry per (member, binding): the first occurrence.
        if (j > i && items[j].second.binding == items[j - 1].second.binding) continue;
        entries_.push_back(items[j].second);
      }
      size_t slot = Hash(key);
      while (slots_[slot].key != kEmpty) slot = (slot + 1) & (slots_.size() - 1);
      slots_[slot] = Slot{key, start, static_cast<uint32_t>(entries_.size()) - start};
      i = j;
    }
  }

  std::span<const Entry> Find(uint32_t key) const {
    size_t slot = Hash(key);
    for (;;) {
      const Slot& s = slots_[slot];
      if (s.key == key) return {entries_.data() + s.start, s.count};
      if (s.key == kEmpty) return {};
      slot = (slot + 1) & (slots_.size() - 1);
    }
  }

 private:
  static constexpr uint32_t kEmpty = ~uint32_t{0};
  struct Slot {
    uint32_t key = kEmpty;
    uint32_t start = 0;
    uint32_t count = 0;
  };
  size_t Hash(uint32_t key) const { return (key * 0x9E3779B1u) >> (32 - bits_); }

  int bits_ = 1;
  std::vector<Slot> slots_ = std::vector<Slot>(2);
  std::vector<Entry> entries_;
};

struct Snapshot::CompiledBinding {
  const Role* role = nullptr;  // nullptr: unknown or unusable here → never grants
  int32_t condition = -1;      // index into Impl::conditions; -1: unconditional
  bool condition_invalid = false;
};

struct Snapshot::CompiledPolicy {
  std::string resource;
  Level level = Level::kResource;
  Policy source;
  PermissionSet any;  // union of what the usable bindings grant
  std::vector<CompiledBinding> bindings;
  MemberIndex index;
};

struct Snapshot::ResourceEntry {
  int32_t policy = -1;
  int32_t project = -1;
};

struct Snapshot::Impl {
  StringMap<uint32_t> member_ids;
  std::vector<std::string> member_keys;
  std::vector<std::vector<uint32_t>> parents;  // member id → ids of groups that list it
  std::vector<CompiledCondition> conditions;
  std::vector<CompiledPolicy> policies;
  int32_t root = -1;
  std::string root_name;
  StringMap<int32_t> projects;  // project id → policy
  StringMap<ResourceEntry> resources;
  uint32_t all_users = 0;
  uint32_t all_authenticated = 0;

  uint32_t Intern(std::string key) {
    auto it = member_ids.find(key);
    if (it != member_ids.end()) return it->second;
    uint32_t id = static_cast<uint32_t>(member_keys.size());
    member_keys.push_back(key);
    member_ids.emplace(std::move(key), id);
    parents.emplace_back();
    return id;
  }
  std::optional<uint32_t> Lookup(std::string_view key) const {
    auto it = member_ids.find(key);
    if (it == member_ids.end()) return std::nullopt;
    return it->second;
  }
};

std::string_view LevelName(Level level) {
  switch (level) {
    case Level::kRoot:
      return "root";
    case Level::kProject:
      return "project";
    case Level::kResource:
      return "resource";
  }
  return "resource";
}

std::string_view MissReasonName(MissReason r) {
  switch (r) {
    case MissReason::kConditionFalse:
      return "CONDITION_FALSE";
    case MissReason::kConditionError:
      return "CONDITION_ERROR";
    case MissReason::kConditionInvalid:
      return "CONDITION_INVALID";
    case MissReason::kRoleLacksPermission:
      return "ROLE_LACKS_PERMISSION";
    case MissReason::kRoleUnknown:
      return "ROLE_UNKNOWN";
    case MissReason::kPrincipalNotMember:
      return "PRINCIPAL_NOT_MEMBER";
  }
  return "UNKNOWN";
}

std::string Principal::ToString() const {
  switch (kind) {
    case Kind::kAnonymous:
      return "anonymous";
    case Kind::kUser:
      return "user:" + email;
    case Kind::kServiceAccount:
      return "serviceAccount:" + email;
  }
  return "anonymous";
}

ResourceAttributes DescribeResource(std::string_view name) {
  if (!name.starts_with("projects/")) return {};
  std::string_view rest = name.substr(9);
  size_t slash = rest.find('/');
  if (slash == 0) return {};
  if (slash == std::string_view::npos) {
    return {"cloudresourcemanager.googleapis.com/Project", "cloudresourcemanager.googleapis.com"};
  }
  rest = rest.substr(slash + 1);
  if (rest.starts_with("serviceAccounts/") && rest.find('/', 16) == std::string_view::npos) {
    return {"iam.googleapis.com/ServiceAccount", "iam.googleapis.com"};
  }
  if (rest.starts_with("locations/")) {
    size_t s2 = rest.find('/', 10);
    if (s2 == std::string_view::npos) return {};
    std::string_view kind = rest.substr(s2 + 1);
    size_t s3 = kind.find('/');
    if (s3 == std::string_view::npos || kind.find('/', s3 + 1) != std::string_view::npos) return {};
    kind = kind.substr(0, s3);
    if (kind == "services") return {"run.googleapis.com/Service", "run.googleapis.com"};
    if (kind == "jobs") return {"run.googleapis.com/Job", "run.googleapis.com"};
    if (kind == "workerPools") return {"run.googleapis.com/WorkerPool", "run.googleapis.com"};
  }
  return {};
}

Snapshot::Snapshot() : impl_(std::make_unique<Impl>()) {}
Snapshot::~Snapshot() = default;

std::shared_ptr<const Snapshot> Snapshot::Empty() { return Build(PolicyInputs{}); }

std::shared_ptr<const Snapshot> Snapshot::Build(PolicyInputs inputs) {
  std::shared_ptr<Snapshot> snap(new Snapshot());
  snap->id_ = next_snapshot_id.fetch_add(1);
  Impl& impl = *snap->impl_;
  auto warn = [&snap](std::string w) {
    if (snap->warnings_.size() < kMaxWarnings) snap->warnings_.push_back(std::move(w));
  };

  for (auto& role : inputs.custom_roles) {
    std::string name = role.name;
    if (auto st = snap->catalog_.AddCustomRole(std::move(role)); !st) {
      warn("custom role `" + name + "` ignored: " + st.error().message);
    }
  }

  impl.all_users = impl.Intern("allUsers");
  impl.all_authenticated = impl.Intern("allAuthenticatedUsers");

  // Groups: member → containing groups (the reverse edges the resolver walks upwards).
  for (const auto& [group, members] : inputs.groups) {
    if (!IsPlausibleEmail(group)) {
      warn("group `" + group + "` ignored: not an email address");
      continue;
    }
    uint32_t gid = impl.Intern("group:" + AsciiLower(group));
    for (const auto& text : members) {
      auto m = ParseMember(text);
      if (!m || (m->kind != MemberKind::kUser && m->kind != MemberKind::kServiceAccount &&
                 m->kind != MemberKind::kGroup)) {
        warn("member `" + text + "` of group `" + group + "` ignored");
        continue;
      }
      uint32_t mid = impl.Intern(m->Key());
      auto& p = impl.parents[mid];
      if (std::find(p.begin(), p.end(), gid) == p.end()) p.push_back(gid);
    }
  }

  StringMap<int32_t> condition_cache;
  impl.policies.reserve(inputs.projects.size() + inputs.resources.size() + 1);
  auto compile = [&](std::string resource, Level level, Policy policy) -> int32_t {
    CompiledPolicy cp;
    cp.resource = std::move(resource);
    cp.level = level;
    cp.source = std::move(policy);
    std::vector<std::pair<uint32_t, MemberIndex::Entry>> items;
    for (uint32_t bi = 0; bi < cp.source.bindings.size(); ++bi) {
      const Binding& b = cp.source.bindings[bi];
      CompiledBinding cb;
      if (auto st = snap->catalog_.CheckUsable(b.role, level == Level::kRoot ? "" : cp.resource);
          st) {
        cb.role = snap->catalog_.Find(b.role);
      } else {
        warn("binding for role `" + b.role + "` on `" + cp.resource +
             "` never grants: " + st.error().message);
      }
      if (b.condition) {
        auto it = condition_cache.find(b.condition->expression);
        if (it != condition_cache.end()) {
          cb.condition = it->second;
        } else {
          auto cc = CompiledCondition::Compile(b.condition->expression);
          if (cc) {
            cb.condition = static_cast<int32_t>(impl.conditions.size());
            impl.conditions.push_back(std::move(*cc));
          } else {
            warn("binding for role `" + b.role + "` on `" + cp.resource +
                 "` never grants: " + cc.error().message);
          }
          condition_cache.emplace(b.condition->expression, cb.condition);
        }
        cb.condition_invalid = cb.condition < 0;
      }
      if (cb.role && !cb.condition_invalid) cp.any |= cb.role->permissions;
      for (uint32_t mi = 0; mi < b.members.size(); ++mi) {
        auto m = ParseMember(b.members[mi]);
        if (!m) {
          warn("member `" + b.members[mi] + "` on `" + cp.resource + "` ignored");
          continue;
        }
        if (!m->CanMatch()) continue;
        items.push_back({impl.Intern(m->Key()), MemberIndex::Entry{bi, mi}});
      }
      cp.bindings.push_back(cb);
    }
    cp.index.Build(std::move(items));
    impl.policies.push_back(std::move(cp));
    return static_cast<int32_t>(impl.policies.size() - 1);
  };

  impl.root_name = inputs.root_name;
  impl.root = compile(inputs.root_name, Level::kRoot, std::move(inputs.root));
  for (auto& [project, policy] : inputs.projects) {
    int32_t idx = compile("projects/" + project, Level::kProject, std::move(policy));
    impl.projects.emplace(project, idx);
  }
  for (auto& [name, policy] : inputs.resources) {
    std::string_view project = ProjectId(name);
    if (project.empty() || name.size() == 9 + project.size()) {
      warn("resource policy on `" + name + "` ignored: not a resource inside a project");
      continue;
    }
    ResourceEntry e;
    if (auto it = impl.projects.find(project); it != impl.projects.end()) e.project = it->second;
    e.policy = compile(name, Level::kResource, std::move(policy));
    impl.resources.emplace(name, e);
  }
  return snap;
}

PrincipalSet Snapshot::Resolve(const Principal& principal) const {
  const Impl& impl = *impl_;
  PrincipalSet ps;
  ps.principal = principal;
  ps.snapshot_id = id_;
  if (principal.authenticated()) {
    std::string email = AsciiLower(principal.email);
    std::string key =
        (principal.kind == Principal::Kind::kUser ? "user:" : "serviceAccount:") + email;
    if (auto self = impl.Lookup(key)) {
      ps.member_ids.push_back(*self);
      // Breadth-first up the group graph: nearest groups first; `visited` makes cycles and
      // diamonds harmless.
      std::vector<uint32_t> queue{*self};
      std::unordered_set<uint32_t> visited{*self};
      for (size_t i = 0; i < queue.size(); ++i) {
        for (uint32_t g : impl.parents[queue[i]]) {
          if (!visited.insert(g).second) continue;
          queue.push_back(g);
          ps.member_ids.push_back(g);
          ps.groups.push_back(impl.member_keys[g].substr(6));  // strip "group:"
        }
      }
    }
    if (principal.kind == Principal::Kind::kUser) {
      auto at = email.rfind('@');
      if (at != std::string::npos) {
        if (auto d = impl.Lookup("domain:" + email.substr(at + 1))) ps.member_ids.push_back(*d);
      }
    }
    ps.member_ids.push_back(impl.all_authenticated);
  }
  ps.member_ids.push_back(impl.all_users);
  return ps;
}

const Snapshot::CompiledPolicy* Snapshot::ProjectPolicyOf(std::string_view resource) const {
  std::string_view project = ProjectId(resource);
  if (project.empty()) return nullptr;
  auto it = impl_->projects.find(project);
  return it == impl_->projects.end() ? nullptr : &impl_->policies[it->second];
}

const Policy* Snapshot::FindPolicy(std::string_view resource) const {
  if (auto it = impl_->resources.find(resource); it != impl_->resources.end()) {
    return &impl_->policies[it->second.policy].source;
  }
  if (resource == impl_->root_name) return &impl_->policies[impl_->root].source;
  std::string_view project = ProjectId(resource);
  if (!project.empty() && resource.size() == 9 + project.size()) {
    if (const CompiledPolicy* p = ProjectPolicyOf(resource)) return &p->source;
  }
  return nullptr;
}

Decision Snapshot::Check(const PrincipalSet& principal, std::string_view resource,
                         std::string_view permission, TimePoint now, Explain explain) const {
  auto idx = PermissionIndex(permission);
  if (!idx) {
    Decision d;
    d.permission_known = false;
    return d;
  }
  return Check(principal, resource, *idx, now, explain);
}

Decision Snapshot::Check(const PrincipalSet& principal, std::string_view resource, uint32_t perm,
                         TimePoint now, Explain explain) const {
  Decision d;
  const auto& known = KnownPermissions();
  if (perm >= known.size()) {
    d.permission_known = false;
    return d;
  }
  d.permission = known[perm];
  const Impl& impl = *impl_;

  std::optional<PrincipalSet> re_resolved;
  const PrincipalSet* ps = &principal;
  if (principal.snapshot_id != id_) {
    re_resolved = Resolve(principal.principal);
    ps = &*re_resolved;
  }

  // The policies that apply, most specific first.
  const CompiledPolicy* levels[3];
  size_t n = 0;
  if (auto it = impl.resources.find(resource); it != impl.resources.end()) {
    levels[n++] = &impl.policies[it->second.policy];
    if (it->second.project >= 0) levels[n++] = &impl.policies[it->second.project];
  } else if (const CompiledPolicy* project = ProjectPolicyOf(resource)) {
    levels[n++] = project;
  }
  levels[n++] = &impl.policies[impl.root];

  ConditionContext ctx;
  bool ctx_ready = false;
  for (size_t l = 0; l < n; ++l) {
    const CompiledPolicy& p = *levels[l];
    if (!p.any.test(perm)) continue;
    for (uint32_t mid : ps->member_ids) {
      for (const auto& e : p.index.Find(mid)) {
        const CompiledBinding& b = p.bindings[e.binding];
        if (!b.role || !b.role->permissions.test(perm) || b.condition_invalid) continue;
        const Binding& src = p.source.bindings[e.binding];
        if (b.condition >= 0) {
          d.time_dependent = true;
          if (!ctx_ready) {
            ResourceAttributes attrs = DescribeResource(resource);
            ctx = ConditionContext{now, resource, attrs.type, attrs.service};
            ctx_ready = true;
          }
          if (impl.conditions[b.condition].Evaluate(ctx) != ConditionResult::kTrue) continue;
        }
        d.allowed = true;
        d.granted = BindingRef{p.level,
                               p.resource,
                               e.binding,
                               src.role,
                               src.members[e.member_pos],
                               src.condition ? std::string_view(src.condition->title) : "",
                               src.condition ? std::string_view(src.condition->expression) : ""};
        return d;
      }
    }
  }
  if (explain == Explain::kYes) Explainer(*ps, levels, n, perm, resource, now, d);
  return d;
}

void Snapshot::Explainer(const PrincipalSet& ps, const CompiledPolicy* const* levels, size_t n,
                         uint32_t perm, std::string_view resource, TimePoint now,
                         Decision& d) const {
  ResourceAttributes attrs = DescribeResource(resource);
  ConditionContext ctx{now, resource, attrs.type, attrs.service};
  std::vector<ClosestBinding> found;
  for (size_t l = 0; l < n; ++l) {
    const CompiledPolicy& p = *levels[l];
    // For each binding, the position of the first member that matches the principal.
    std::vector<int64_t> matched(p.bindings.size(), -1);
    for (uint32_t mid : ps.member_ids) {
      for (const auto& e : p.index.Find(mid)) {
        if (matched[e.binding] < 0) matched[e.binding] = e.member_pos;
      }
    }
    for (uint32_t bi = 0; bi < p.bindings.size(); ++bi) {
      const CompiledBinding& b = p.bindings[bi];
      const Binding& src = p.source.bindings[bi];
      BindingRef ref{p.level,
                     p.resource,
                     bi,
                     src.role,
                     matched[bi] >= 0 ? std::string_view(src.members[matched[bi]]) : "",
                     src.condition ? std::string_view(src.condition->title) : "",
                     src.condition ? std::string_view(src.condition->expression) : ""};
      bool has_perm = b.role && b.role->permissions.test(perm);
      if (!b.role) {
        if (matched[bi] >= 0) found.push_back({ref, MissReason::kRoleUnknown});
      } else if (!has_perm) {
        if (matched[bi] >= 0) found.push_back({ref, MissReason::kRoleLacksPermission});
      } else if (matched[bi] < 0) {
        found.push_back({ref, MissReason::kPrincipalNotMember});
      } else if (b.condition_invalid) {
        found.push_back({ref, MissReason::kConditionInvalid});
      } else if (b.condition >= 0) {
        ConditionResult r = impl_->conditions[b.condition].Evaluate(ctx);
        if (r != ConditionResult::kTrue) {
          found.push_back({ref, r == ConditionResult::kFalse ? MissReason::kConditionFalse
                                                             : MissReason::kConditionError});
        }
      }
    }
  }
  std::stable_sort(found.begin(), found.end(),
                   [](const auto& a, const auto& b) { return a.reason < b.reason; });
  if (found.size() > Decision::kMaxClosest) found.resize(Decision::kMaxClosest);
  d.closest = std::move(found);
}

std::vector<std::string> Snapshot::TestPermissions(const PrincipalSet& principal,
                                                   std::string_view resource,
                                                   const std::vector<std::string>& permissions,
                                                   TimePoint now) const {
  std::optional<PrincipalSet> re_resolved;
  const PrincipalSet* ps = &principal;
  if (principal.snapshot_id != id_) {
    re_resolved = Resolve(principal.principal);
    ps = &*re_resolved;
  }
  std::vector<std::string> held;
  for (const auto& p : permissions) {
    if (Check(*ps, resource, p, now).allowed &&
        std::find(held.begin(), held.end(), p) == held.end()) {
      held.push_back(p);
    }
  }
  return held;
}

namespace {

std::string Describe(const BindingRef& b) {
  std::string s = "role `" + std::string(b.role) + "` in the " + std::string(LevelName(b.level)) +
                  " policy of `" + std::string(b.resource) + "`";
  if (!b.condition_title.empty() || !b.condition_expression.empty()) {
    s += " with condition `" +
         std::string(b.condition_title.empty() ? b.condition_expression : b.condition_title) + "`";
  }
  return s;
}

boost::json::object BindingJson(const BindingRef& b) {
  boost::json::object o;
  o["level"] = LevelName(b.level);
  o["resource"] = b.resource;
  o["bindingIndex"] = b.binding_index;
  o["role"] = b.role;
  if (!b.member.empty()) o["member"] = b.member;
  if (!b.condition_title.empty() || !b.condition_expression.empty()) {
    boost::json::object c;
    c["title"] = b.condition_title;
    c["expression"] = b.condition_expression;
    o["condition"] = std::move(c);
  }
  return o;
}

}  // namespace

std::string Decision::ToString() const {
  std::string perm = "`" + std::string(permission) + "`";
  if (!permission_known) return "the permission is not one Moat knows, so it is not granted";
  if (allowed) {
    return perm + " is granted to `" + std::string(granted.member) + "` by " + Describe(granted);
  }
  if (closest.empty()) {
    return perm +
           " is not granted: no binding on the resource or its ancestors gives it to "
           "this principal";
  }
  std::string s = perm + " is not granted; closest bindings: ";
  for (size_t i = 0; i < closest.size(); ++i) {
    const auto& c = closest[i];
    if (i) s += "; ";
    s += Describe(c.binding);
    switch (c.reason) {
      case MissReason::kConditionFalse:
        s += ": the condition evaluated to false";
        break;
      case MissReason::kConditionError:
        s += ": the condition could not be evaluated";
        break;
      case MissReason::kConditionInvalid:
        s += ": the condition is not supported";
        break;
      case MissReason::kRoleLacksPermission:
        s += ": the principal is a member through `" + std::string(c.binding.member) +
             "` but the role lacks the permission";
        break;
      case MissReason::kRoleUnknown:
        s += ": the principal is a member through `" + std::string(c.binding.member) +
             "` but the role does not exist";
        break;
      case MissReason::kPrincipalNotMember:
        s += ": the role has the permission but the principal is not a member";
        break;
    }
  }
  return s;
}

boost::json::object Decision::ToJson() const {
  boost::json::object o;
  o["allowed"] = allowed;
  o["permission"] = permission;
  if (!permission_known) o["permissionKnown"] = false;
  if (allowed) o["grantedBy"] = BindingJson(granted);
  if (!closest.empty()) {
    boost::json::array arr;
    for (const auto& c : closest) {
      boost::json::object co = BindingJson(c.binding);
      co["reason"] = MissReasonName(c.reason);
      arr.emplace_back(std::move(co));
    }
    o["closest"] = std::move(arr);
  }
  o["explanation"] = ToString();
  return o;
}

SnapshotHolder::SnapshotHolder(std::shared_ptr<const Snapshot> initial)
    : current_(std::move(initial)) {}

void SnapshotHolder::Publish(std::shared_ptr<const Snapshot> snapshot) {
  current_.store(std::move(snapshot), std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
}

const std::shared_ptr<const Snapshot>& SnapshotHolder::Reader::GetShared() {
  uint64_t g = holder_->generation();
  if (g != generation_ || !cached_) {
    // Load the pointer after the generation: the pointer is at least as new as `g`.
    cached_ = holder_->Acquire();
    generation_ = g;
  }
  return cached_;
}

const Snapshot& SnapshotHolder::Reader::Get() { return *GetShared(); }

}  // namespace moat::iam
