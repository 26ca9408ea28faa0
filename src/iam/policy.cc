#include "iam/policy.h"

#include <boost/json.hpp>
#include <set>
#include <unordered_set>

#include "common/base64.h"
#include "common/json.h"
#include "iam/condition.h"
#include "iam/member.h"
#include "iam/roles.h"

namespace moat::iam {
namespace {

namespace bj = boost::json;

std::string Idx(std::string_view path, size_t i) {
  return std::string(path) + "[" + std::to_string(i) + "]";
}

Error UnknownField(std::string_view name, std::string_view path) {
  return InvalidArgument("invalid JSON payload received: unknown name `" + std::string(name) +
                         "` at `" + std::string(path) + "`: cannot find field");
}
Error BadValue(std::string_view path, std::string_view why) {
  return InvalidArgument("invalid value at `" + std::string(path) + "`: " + std::string(why));
}

// Maps a JSON key to its lowerCamel proto field name if it is one of `fields` (given in
// lowerCamel), accepting the snake_case spelling too; rejects unknown names and a field given
// under both spellings.
struct FieldReader {
  const bj::object& obj;
  std::string_view path;
  std::vector<std::pair<std::string, const bj::value*>> found;

  Status Read(std::initializer_list<std::string_view> fields) {
    for (const auto& kv : obj) {
      std::string_view key = kv.key();
      std::string camel;
      for (size_t i = 0; i < key.size(); ++i) {
        if (key[i] == '_' && i + 1 < key.size() && key[i + 1] >= 'a' && key[i + 1] <= 'z') {
          camel += static_cast<char>(key[i + 1] - 'a' + 'A');
          ++i;
        } else {
          camel += key[i];
        }
      }
      bool known = false;
      for (auto f : fields) known = known || f == camel;
      if (!known) return UnknownField(key, path);
      for (const auto& [name, v] : found) {
        if (name == camel) {
          return InvalidArgument("invalid JSON payload received: field `" + camel + "` at `" +
                                 std::string(path) + "` is given twice");
        }
      }
      if (!kv.value().is_null()) found.emplace_back(camel, &kv.value());
    }
    return Ok();
  }
  const bj::value* Get(std::string_view name) const {
    for (const auto& [n, v] : found) {
      if (n == name) return v;
    }
    return nullptr;
  }
};

Result<std::string> ReadString(const bj::value* v, const std::string& path) {
  if (!v) return std::string();
  if (!v->is_string()) return BadValue(path, "expected a string");
  return std::string(v->as_string());
}

Result<std::vector<std::string>> ReadStrings(const bj::value* v, const std::string& path) {
  std::vector<std::string> out;
  if (!v) return out;
  if (!v->is_array()) return BadValue(path, "expected a list of strings");
  const auto& arr = v->as_array();
  out.reserve(arr.size());
  for (size_t i = 0; i < arr.size(); ++i) {
    if (!arr[i].is_string()) return BadValue(Idx(path, i), "expected a string");
    out.emplace_back(arr[i].as_string());
  }
  return out;
}

const bj::array* AsArray(const bj::value* v) {
  return v && v->is_array() ? &v->as_array() : nullptr;
}

Result<Condition> ParseCondition(const bj::value& v, const std::string& path) {
  if (!v.is_object()) return BadValue(path, "expected an object");
  FieldReader r{v.as_object(), path, {}};
  MOAT_CHECK_OK(r.Read({"expression", "title", "description", "location"}));
  Condition c;
  MOAT_TRY(c.expression, ReadString(r.Get("expression"), path + ".expression"));
  MOAT_TRY(c.title, ReadString(r.Get("title"), path + ".title"));
  MOAT_TRY(c.description, ReadString(r.Get("description"), path + ".description"));
  MOAT_TRY(c.location, ReadString(r.Get("location"), path + ".location"));
  return c;
}

Result<Binding> ParseBinding(const bj::value& v, const std::string& path) {
  if (!v.is_object()) return BadValue(path, "expected an object");
  FieldReader r{v.as_object(), path, {}};
  MOAT_CHECK_OK(r.Read({"role", "members", "condition"}));
  Binding b;
  MOAT_TRY(b.role, ReadString(r.Get("role"), path + ".role"));
  MOAT_TRY(b.members, ReadStrings(r.Get("members"), path + ".members"));
  if (const bj::value* c = r.Get("condition")) {
    MOAT_TRY(Condition cond, ParseCondition(*c, path + ".condition"));
    b.condition = std::move(cond);
  }
  return b;
}

constexpr std::string_view kLogTypes[] = {"LOG_TYPE_UNSPECIFIED", "ADMIN_READ", "DATA_WRITE",
                                          "DATA_READ"};

Result<AuditConfig> ParseAuditConfig(const bj::value& v, const std::string& path) {
  if (!v.is_object()) return BadValue(path, "expected an object");
  FieldReader r{v.as_object(), path, {}};
  MOAT_CHECK_OK(r.Read({"service", "auditLogConfigs"}));
  AuditConfig ac;
  MOAT_TRY(ac.service, ReadString(r.Get("service"), path + ".service"));
  const bj::value* logs = r.Get("auditLogConfigs");
  if (logs && !logs->is_array()) return BadValue(path + ".auditLogConfigs", "expected a list");
  if (const bj::array* arr = AsArray(logs)) {
    for (size_t i = 0; i < arr->size(); ++i) {
      std::string p = Idx(path + ".auditLogConfigs", i);
      if (!(*arr)[i].is_object()) return BadValue(p, "expected an object");
      FieldReader lr{(*arr)[i].as_object(), p, {}};
      MOAT_CHECK_OK(lr.Read({"logType", "exemptedMembers"}));
      AuditLogConfig lc;
      lc.log_type = "LOG_TYPE_UNSPECIFIED";
      if (const bj::value* lt = lr.Get("logType")) {
        if (lt->is_string()) {
          lc.log_type = std::string(lt->as_string());
          bool ok = false;
          for (auto name : kLogTypes) ok = ok || name == lc.log_type;
          if (!ok) return BadValue(p + ".logType", "`" + lc.log_type + "` is not a log type");
        } else if (lt->is_int64() && lt->as_int64() >= 0 && lt->as_int64() < 4) {
          lc.log_type = std::string(kLogTypes[lt->as_int64()]);
        } else {
          return BadValue(p + ".logType", "expected a log type name");
        }
      }
      MOAT_TRY(lc.exempted_members, ReadStrings(lr.Get("exemptedMembers"), p + ".exemptedMembers"));
      ac.audit_log_configs.push_back(std::move(lc));
    }
  }
  return ac;
}

std::string WithCommas(size_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

// The canonical key of a member string for folding and comparison; unparseable members
// compare by their text.
std::string MemberKey(std::string_view text) {
  auto m = ParseMember(text);
  return m ? m->Key() : std::string(text);
}

bool SameCondition(const std::optional<Condition>& a, const std::optional<Condition>& b) {
  return a == b;
}

}  // namespace

bool Policy::HasConditions() const {
  for (const auto& b : bindings) {
    if (b.condition) return true;
  }
  return false;
}

Result<Policy> ParsePolicy(std::string_view json_text) {
  MOAT_TRY(bj::object obj, json::ParseObject(json_text, "policy"));
  return ParsePolicy(obj, "policy");
}

Result<Policy> ParsePolicy(const bj::object& object, std::string_view path_view) {
  std::string path(path_view);
  FieldReader r{object, path, {}};
  MOAT_CHECK_OK(r.Read({"version", "bindings", "auditConfigs", "etag"}));
  Policy p;
  if (const bj::value* v = r.Get("version")) {
    int64_t version = 0;
    if (v->is_int64()) {
      version = v->as_int64();
    } else if (v->is_uint64()) {
      version = -1;
    } else if (v->is_string() && !v->as_string().empty() && v->as_string().size() < 10 &&
               std::all_of(v->as_string().begin(), v->as_string().end(),
                           [](char c) { return c >= '0' && c <= '9'; })) {
      version = std::stoll(std::string(v->as_string()));
    } else if (v->is_double() &&
               v->as_double() == static_cast<double>(static_cast<int>(v->as_double()))) {
      version = static_cast<int64_t>(v->as_double());
    } else {
      return BadValue(path + ".version", "expected an integer");
    }
    if (version < INT32_MIN || version > INT32_MAX || version == -1) {
      return BadValue(path + ".version", "the value is out of range");
    }
    p.version = static_cast<int>(version);
  }
  const bj::value* bindings = r.Get("bindings");
  if (bindings && !bindings->is_array()) return BadValue(path + ".bindings", "expected a list");
  if (const bj::array* arr = AsArray(bindings)) {
    p.bindings.reserve(arr->size());
    for (size_t i = 0; i < arr->size(); ++i) {
      MOAT_TRY(Binding b, ParseBinding((*arr)[i], Idx(path + ".bindings", i)));
      p.bindings.push_back(std::move(b));
    }
  }
  const bj::value* audit = r.Get("auditConfigs");
  if (audit && !audit->is_array()) return BadValue(path + ".auditConfigs", "expected a list");
  if (const bj::array* arr = AsArray(audit)) {
    for (size_t i = 0; i < arr->size(); ++i) {
      MOAT_TRY(AuditConfig ac, ParseAuditConfig((*arr)[i], Idx(path + ".auditConfigs", i)));
      p.audit_configs.push_back(std::move(ac));
    }
  }
  MOAT_TRY(p.etag, ReadString(r.Get("etag"), path + ".etag"));
  if (!p.etag.empty() && !Base64Decode(p.etag)) {
    return BadValue(path + ".etag", "the etag must be base64");
  }
  return p;
}

bj::object PolicyToJson(const Policy& policy) {
  bj::object o;
  if (policy.version != 0) o["version"] = policy.version;
  if (!policy.bindings.empty()) {
    bj::array bindings;
    for (const auto& b : policy.bindings) {
      bj::object bo;
      if (!b.role.empty()) bo["role"] = b.role;
      if (!b.members.empty()) {
        bj::array members;
        for (const auto& m : b.members) members.emplace_back(m);
        bo["members"] = std::move(members);
      }
      if (b.condition) {
        bj::object co;
        if (!b.condition->expression.empty()) co["expression"] = b.condition->expression;
        if (!b.condition->title.empty()) co["title"] = b.condition->title;
        if (!b.condition->description.empty()) co["description"] = b.condition->description;
        if (!b.condition->location.empty()) co["location"] = b.condition->location;
        bo["condition"] = std::move(co);
      }
      bindings.emplace_back(std::move(bo));
    }
    o["bindings"] = std::move(bindings);
  }
  if (!policy.audit_configs.empty()) {
    bj::array configs;
    for (const auto& ac : policy.audit_configs) {
      bj::object ao;
      if (!ac.service.empty()) ao["service"] = ac.service;
      if (!ac.audit_log_configs.empty()) {
        bj::array logs;
        for (const auto& lc : ac.audit_log_configs) {
          bj::object lo;
          if (!lc.log_type.empty() && lc.log_type != "LOG_TYPE_UNSPECIFIED")
            lo["logType"] = lc.log_type;
          if (!lc.exempted_members.empty()) {
            bj::array ex;
            for (const auto& m : lc.exempted_members) ex.emplace_back(m);
            lo["exemptedMembers"] = std::move(ex);
          }
          logs.emplace_back(std::move(lo));
        }
        ao["auditLogConfigs"] = std::move(logs);
      }
      configs.emplace_back(std::move(ao));
    }
    o["auditConfigs"] = std::move(configs);
  }
  if (!policy.etag.empty()) o["etag"] = policy.etag;
  return o;
}

std::string SerializePolicy(const Policy& policy) { return json::Serialize(PolicyToJson(policy)); }

Status ValidatePolicy(const Policy& policy, const RoleCatalog& catalog, std::string_view resource) {
  if (policy.version != 0 && policy.version != 1 && policy.version != 3) {
    return InvalidArgument("invalid policy version `" + std::to_string(policy.version) +
                           "`: valid values are 0, 1 and 3");
  }
  size_t members = 0;
  size_t groups = 0;
  for (size_t i = 0; i < policy.bindings.size(); ++i) {
    const Binding& b = policy.bindings[i];
    if (b.role.empty()) {
      return InvalidArgument("binding " + std::to_string(i) + " of the policy has no role");
    }
    MOAT_CHECK_OK(catalog.CheckUsable(b.role, resource));
    if (b.members.empty()) {
      return InvalidArgument(
          "each binding must contain at least one principal; the binding "
          "for role `" +
          b.role + "` has none");
    }
    std::unordered_set<std::string> seen;
    for (const auto& text : b.members) {
      MOAT_TRY(Member m, ParseMember(text));
      if (!seen.insert(m.Key()).second) continue;  // folded duplicate
      ++members;
      if (m.kind == MemberKind::kGroup) ++groups;
    }
    if (b.condition) {
      if (policy.version != 3) {
        return InvalidArgument("policy version `" + std::to_string(policy.version) +
                               "` cannot contain conditional role bindings (role `" + b.role +
                               "`); set `version` to 3");
      }
      const Condition& c = *b.condition;
      if (c.title.empty()) {
        return InvalidArgument("the condition on role `" + b.role + "` needs a title");
      }
      if (c.title.size() > kMaxConditionTitle) {
        return InvalidArgument("the condition title `" + c.title.substr(0, 40) +
                               "…` is longer than 100 characters");
      }
      if (c.description.size() > kMaxConditionDescription) {
        return InvalidArgument("the description of condition `" + c.title +
                               "` is longer than 256 characters");
      }
      MOAT_CHECK_OK(CompiledCondition::Compile(c.expression));
    }
  }
  if (members > kMaxPolicyMembers) {
    return InvalidArgument("the number of members in the policy (" + WithCommas(members) +
                           ") is larger than the maximum allowed size " +
                           WithCommas(kMaxPolicyMembers));
  }
  if (groups > kMaxPolicyGroups) {
    return InvalidArgument("the number of groups in the policy (" + WithCommas(groups) +
                           ") is larger than the maximum allowed size " +
                           WithCommas(kMaxPolicyGroups));
  }
  for (const auto& ac : policy.audit_configs) {
    if (ac.service.empty()) return InvalidArgument("an audit config has no `service`");
    for (const auto& lc : ac.audit_log_configs) {
      for (const auto& m : lc.exempted_members) MOAT_CHECK_OK(ParseMember(m));
    }
  }
  return Ok();
}

void NormalizePolicy(Policy& policy) {
  std::vector<Binding> out;
  std::vector<std::unordered_set<std::string>> keys;
  for (auto& b : policy.bindings) {
    size_t target = out.size();
    for (size_t i = 0; i < out.size(); ++i) {
      if (out[i].role == b.role && SameCondition(out[i].condition, b.condition)) {
        target = i;
        break;
      }
    }
    if (target == out.size()) {
      out.push_back(Binding{b.role, {}, b.condition});
      keys.emplace_back();
    }
    for (auto& m : b.members) {
      if (keys[target].insert(MemberKey(m)).second) out[target].members.push_back(std::move(m));
    }
  }
  policy.bindings = std::move(out);
}

Result<Policy> FormatForVersion(const Policy& policy, int requested_version) {
  if (requested_version != 0 && requested_version != 1 && requested_version != 3) {
    return InvalidArgument("invalid requested policy version `" +
                           std::to_string(requested_version) + "`: valid values are 0, 1 and 3");
  }
  Policy out = policy;
  if (policy.HasConditions()) {
    if (requested_version < 3) {
      return InvalidArgument("requested policy version (" + std::to_string(requested_version) +
                             ") cannot be less than the existing policy version (3)");
    }
    out.version = 3;
  } else {
    out.version = policy.bindings.empty() ? 0 : 1;
  }
  return out;
}

Result<bool> AddMember(Policy& policy, std::string_view role, std::string_view member,
                       const std::optional<Condition>& condition) {
  MOAT_TRY(Member m, ParseMember(member));
  std::string key = m.Key();
  if (condition) policy.version = 3;
  for (auto& b : policy.bindings) {
    if (b.role != role || !SameCondition(b.condition, condition)) continue;
    for (const auto& existing : b.members) {
      if (MemberKey(existing) == key) return false;
    }
    b.members.emplace_back(member);
    return true;
  }
  policy.bindings.push_back(Binding{std::string(role), {std::string(member)}, condition});
  return true;
}

Status RemoveMember(Policy& policy, std::string_view role, std::string_view member,
                    const std::optional<Condition>& condition) {
  std::string key = MemberKey(member);
  for (size_t i = 0; i < policy.bindings.size(); ++i) {
    Binding& b = policy.bindings[i];
    if (b.role != role || !SameCondition(b.condition, condition)) continue;
    for (size_t j = 0; j < b.members.size(); ++j) {
      if (MemberKey(b.members[j]) != key) continue;
      b.members.erase(b.members.begin() + static_cast<ptrdiff_t>(j));
      if (b.members.empty())
        policy.bindings.erase(policy.bindings.begin() + static_cast<ptrdiff_t>(i));
      return Ok();
    }
  }
  return NotFound("policy binding with the specified principal, role, and condition not found!");
}

std::string_view ActionName(BindingDelta::Action a) {
  return a == BindingDelta::Action::kAdd ? "ADD" : "REMOVE";
}

std::vector<BindingDelta> DiffPolicies(const Policy& before, const Policy& after) {
  // A grant is (role, condition, member key); collect each side's grants in order.
  struct Grant {
    const Binding* binding;
    const std::string* member;
    std::string key;
  };
  auto grants = [](const Policy& p) {
    std::vector<Grant> out;
    for (const auto& b : p.bindings) {
      for (const auto& m : b.members) out.push_back({&b, &m, MemberKey(m)});
    }
    return out;
  };
  auto contains = [](const std::vector<Grant>& set, const Grant& g) {
    for (const auto& o : set) {
      if (o.key == g.key && o.binding->role == g.binding->role &&
          o.binding->condition == g.binding->condition) {
        return true;
      }
    }
    return false;
  };
  std::vector<Grant> a = grants(before), b = grants(after);
  std::vector<BindingDelta> out;
  std::set<std::tuple<std::string, std::string, std::string>> emitted;
  auto emit = [&](BindingDelta::Action action, const Grant& g) {
    std::string cond = g.binding->condition ? g.binding->condition->expression + "\x1f" +
                                                  g.binding->condition->title + "\x1f" +
                                                  g.binding->condition->description
                                            : "";
    if (!emitted.emplace(std::string(ActionName(action)) + g.binding->role, cond, g.key).second) {
      return;
    }
    out.push_back({action, g.binding->role, *g.member, g.binding->condition});
  };
  for (const auto& g : a) {
    if (!contains(b, g)) emit(BindingDelta::Action::kRemove, g);
  }
  for (const auto& g : b) {
    if (!contains(a, g)) emit(BindingDelta::Action::kAdd, g);
  }
  return out;
}

bj::value BindingDeltasToJson(const std::vector<BindingDelta>& deltas) {
  bj::array arr;
  for (const auto& d : deltas) {
    bj::object o;
    o["action"] = ActionName(d.action);
    o["role"] = d.role;
    o["member"] = d.member;
    if (d.condition) {
      bj::object c;
      if (!d.condition->expression.empty()) c["expression"] = d.condition->expression;
      if (!d.condition->title.empty()) c["title"] = d.condition->title;
      if (!d.condition->description.empty()) c["description"] = d.condition->description;
      o["condition"] = std::move(c);
    }
    arr.emplace_back(std::move(o));
  }
  return arr;
}

}  // namespace moat::iam
