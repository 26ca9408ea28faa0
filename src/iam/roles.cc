#include "iam/roles.h"

#include <algorithm>
#include <initializer_list>
#include <set>

namespace moat::iam {
namespace {

// Every permission Moat knows. Google's names where Google has one (GOOGLE.md §2); `moat.*`
// for Moat's own resources (users, groups, trusted issuers, signing keys, audit logs).
const char* const kPermissionList[] = {
    // Cloud Run services and their children.
    "run.services.get",
    "run.services.list",
    "run.services.create",
    "run.services.update",
    "run.services.delete",
    "run.services.getIamPolicy",
    "run.services.setIamPolicy",
    "run.services.createTagBinding",
    "run.services.deleteTagBinding",
    "run.services.listTagBindings",
    "run.services.listEffectiveTags",
    "run.routes.get",
    "run.routes.list",
    "run.routes.invoke",
    "run.revisions.get",
    "run.revisions.list",
    "run.revisions.delete",
    "run.configurations.get",
    "run.configurations.list",
    "run.operations.get",
    "run.operations.list",
    "run.operations.delete",
    "run.locations.list",
    "run.jobs.get",
    "run.jobs.list",
    "run.jobs.create",
    "run.jobs.update",
    "run.jobs.delete",
    "run.jobs.run",
    "run.jobs.runWithOverrides",
    "run.jobs.getIamPolicy",
    "run.jobs.setIamPolicy",
    "run.executions.get",
    "run.executions.list",
    "run.executions.delete",
    "run.executions.cancel",
    "run.tasks.get",
    "run.tasks.list",
    "run.instances.invoke",
    "run.instances.getIamPolicy",
    "run.instances.setIamPolicy",
    "run.workerpools.get",
    "run.workerpools.list",
    "run.workerpools.create",
    "run.workerpools.update",
    "run.workerpools.delete",
    "run.workerpools.getIamPolicy",
    "run.workerpools.setIamPolicy",
    // Service accounts and keys.
    "iam.serviceAccounts.actAs",
    "iam.serviceAccounts.create",
    "iam.serviceAccounts.delete",
    "iam.serviceAccounts.disable",
    "iam.serviceAccounts.enable",
    "iam.serviceAccounts.get",
    "iam.serviceAccounts.list",
    "iam.serviceAccounts.update",
    "iam.serviceAccounts.undelete",
    "iam.serviceAccounts.getIamPolicy",
    "iam.serviceAccounts.setIamPolicy",
    "iam.serviceAccounts.getAccessToken",
    "iam.serviceAccounts.getOpenIdToken",
    "iam.serviceAccounts.implicitDelegation",
    "iam.serviceAccounts.signBlob",
    "iam.serviceAccounts.signJwt",
    "iam.serviceAccountKeys.create",
    "iam.serviceAccountKeys.delete",
    "iam.serviceAccountKeys.disable",
    "iam.serviceAccountKeys.enable",
    "iam.serviceAccountKeys.get",
    "iam.serviceAccountKeys.list",
    // Custom roles.
    "iam.roles.create",
    "iam.roles.delete",
    "iam.roles.get",
    "iam.roles.list",
    "iam.roles.undelete",
    "iam.roles.update",
    // Projects.
    "resourcemanager.projects.get",
    "resourcemanager.projects.list",
    "resourcemanager.projects.getIamPolicy",
    "resourcemanager.projects.setIamPolicy",
    // Moat's own resources.
    "moat.users.create",
    "moat.users.delete",
    "moat.users.get",
    "moat.users.list",
    "moat.users.update",
    "moat.groups.create",
    "moat.groups.delete",
    "moat.groups.get",
    "moat.groups.list",
    "moat.groups.update",
    "moat.trustedIssuers.create",
    "moat.trustedIssuers.delete",
    "moat.trustedIssuers.get",
    "moat.trustedIssuers.list",
    "moat.trustedIssuers.update",
    "moat.signingKeys.list",
    "moat.signingKeys.rotate",
    "moat.auditLogs.list",
};

// Service-account impersonation: only the token-creator roles carry these (not even owner).
const std::set<std::string_view> kTokenPermissions = {
    "iam.serviceAccounts.getAccessToken", "iam.serviceAccounts.getOpenIdToken",
    "iam.serviceAccounts.implicitDelegation", "iam.serviceAccounts.signBlob",
    "iam.serviceAccounts.signJwt"};

std::string_view Verb(std::string_view permission) {
  return permission.substr(permission.rfind('.') + 1);
}
std::string_view ServiceOf(std::string_view permission) {
  return permission.substr(0, permission.find('.'));
}
bool IsReadVerb(std::string_view verb) {
  return verb == "get" || verb == "list" || verb == "getIamPolicy" || verb == "listTagBindings" ||
         verb == "listEffectiveTags";
}

struct Index {
  std::vector<std::string> names;
  std::unordered_map<std::string_view, uint32_t> by_name;
  Index() {
    for (const char* p : kPermissionList) names.emplace_back(p);
    if (names.size() > kMaxPermissions) std::abort();  // INVARIANT: fits the bitset
    for (uint32_t i = 0; i < names.size(); ++i) by_name.emplace(names[i], i);
  }
};

const Index& PermIndex() {
  static const Index* index = new Index();
  return *index;
}

using Pred = bool (*)(std::string_view);

Role MakeRole(std::string name, std::string title, std::string description,
              std::vector<std::string> perms) {
  Role r;
  r.name = std::move(name);
  r.title = std::move(title);
  r.description = std::move(description);
  std::sort(perms.begin(), perms.end());
  perms.erase(std::unique(perms.begin(), perms.end()), perms.end());
  for (const auto& p : perms) {
    auto idx = PermissionIndex(p);
    if (!idx) std::abort();  // INVARIANT: predefined roles only use known permissions
    r.permissions.set(*idx);
  }
  r.included_permissions = std::move(perms);
  return r;
}

std::vector<std::string> Select(Pred pred) {
  std::vector<std::string> out;
  for (const auto& p : KnownPermissions()) {
    if (pred(p)) out.push_back(p);
  }
  return out;
}

std::vector<std::string> Plus(std::vector<std::string> a, std::initializer_list<const char*> b) {
  for (const char* p : b) a.emplace_back(p);
  return a;
}

bool IsRunViewer(std::string_view p) { return ServiceOf(p) == "run" && IsReadVerb(Verb(p)); }
bool IsRunDeveloper(std::string_view p) {
  if (ServiceOf(p) != "run") return false;
  std::string_view v = Verb(p);
  return v != "setIamPolicy" && v != "createTagBinding" && v != "deleteTagBinding";
}
bool IsRunAdmin(std::string_view p) { return ServiceOf(p) == "run"; }
bool IsOwner(std::string_view p) { return !kTokenPermissions.count(p); }
bool IsEditor(std::string_view p) {
  if (!IsOwner(p)) return false;
  std::string_view v = Verb(p);
  if (v == "setIamPolicy" || v == "createTagBinding" || v == "deleteTagBinding") return false;
  // Custom roles and Moat's identity configuration change who holds what: owner only.
  if (p.starts_with("iam.roles.")) return IsReadVerb(v);
  if (ServiceOf(p) == "moat") return IsReadVerb(v) || p == "moat.auditLogs.list";
  return true;
}
bool IsViewer(std::string_view p) {
  if (p == "moat.auditLogs.list") return true;
  return IsReadVerb(Verb(p));
}
bool IsSecurityAdmin(std::string_view p) {
  std::string_view v = Verb(p);
  return v == "getIamPolicy" || v == "setIamPolicy" || p == "moat.auditLogs.list" ||
         p.starts_with("iam.roles.") || p == "iam.serviceAccounts.get" ||
         p == "iam.serviceAccounts.list" || p == "iam.serviceAccountKeys.get" ||
         p == "iam.serviceAccountKeys.list" || p == "resourcemanager.projects.get" ||
         p == "resourcemanager.projects.list" || p == "run.services.get" ||
         p == "run.services.list";
}
bool IsSecurityReviewer(std::string_view p) {
  std::string_view v = Verb(p);
  return v == "getIamPolicy" || p == "iam.roles.get" || p == "iam.roles.list" ||
         p == "moat.auditLogs.list" || p == "resourcemanager.projects.get" ||
         p == "resourcemanager.projects.list";
}

std::vector<Role> BuildPredefined() {
  std::vector<Role> roles;
  roles.push_back(
      MakeRole("roles/owner", "Owner",
               "Full access to most Google Cloud resources. See the list of included permissions.",
               Select(IsOwner)));
  roles.push_back(MakeRole("roles/editor", "Editor",
                           "View, create, update, and delete most Google Cloud resources. See the "
                           "list of included permissions.",
                           Select(IsEditor)));
  roles.push_back(MakeRole(
      "roles/viewer", "Viewer",
      "View most Google Cloud resources. See the list of included permissions.", Select(IsViewer)));
  roles.push_back(MakeRole("roles/run.invoker", "Cloud Run Invoker",
                           "Can invoke Cloud Run services, instances and execute Cloud Run jobs.",
                           {"run.instances.invoke", "run.jobs.run", "run.routes.invoke"}));
  roles.push_back(MakeRole("roles/run.servicesInvoker", "Cloud Run Service Invoker",
                           "Can invoke Cloud Run services.", {"run.routes.invoke"}));
  roles.push_back(MakeRole("roles/run.viewer", "Cloud Run Viewer",
                           "Can view the state of all Cloud Run resources, including IAM policies.",
                           Plus(Select(IsRunViewer), {"resourcemanager.projects.get",
                                                      "resourcemanager.projects.list"})));
  roles.push_back(MakeRole("roles/run.developer", "Cloud Run Developer",
                           "Read and write access to all Cloud Run resources.",
                           Plus(Select(IsRunDeveloper), {"resourcemanager.projects.get",
                                                         "resourcemanager.projects.list"})));
  roles.push_back(MakeRole(
      "roles/run.admin", "Cloud Run Admin", "Full control over all Cloud Run resources.",
      Plus(Select(IsRunAdmin), {"resourcemanager.projects.get", "resourcemanager.projects.list"})));
  roles.push_back(
      MakeRole("roles/iam.serviceAccountUser", "Service Account User",
               "Run operations as the service account.",
               {"iam.serviceAccounts.actAs", "iam.serviceAccounts.get", "iam.serviceAccounts.list",
                "resourcemanager.projects.get", "resourcemanager.projects.list"}));
  roles.push_back(MakeRole(
      "roles/iam.serviceAccountTokenCreator", "Service Account Token Creator",
      "Impersonate service accounts (create OAuth2 access tokens, sign blobs or JWTs, etc).",
      {"iam.serviceAccounts.getAccessToken", "iam.serviceAccounts.getOpenIdToken",
       "iam.serviceAccounts.implicitDelegation", "iam.serviceAccounts.signBlob",
       "iam.serviceAccounts.signJwt", "iam.serviceAccounts.get", "iam.serviceAccounts.list",
       "resourcemanager.projects.get", "resourcemanager.projects.list"}));
  roles.push_back(MakeRole("roles/iam.serviceAccountOpenIdTokenCreator",
                           "Service Account OpenID Connect Identity Token Creator",
                           "Impersonate service accounts (create OIDC identity tokens).",
                           {"iam.serviceAccounts.getOpenIdToken"}));
  roles.push_back(MakeRole(
      "roles/iam.serviceAccountAdmin", "Service Account Admin",
      "Create and manage service accounts.",
      {"iam.serviceAccounts.create", "iam.serviceAccounts.delete", "iam.serviceAccounts.disable",
       "iam.serviceAccounts.enable", "iam.serviceAccounts.get", "iam.serviceAccounts.list",
       "iam.serviceAccounts.update", "iam.serviceAccounts.undelete",
       "iam.serviceAccounts.getIamPolicy", "iam.serviceAccounts.setIamPolicy",
       "resourcemanager.projects.get", "resourcemanager.projects.list"}));
  roles.push_back(MakeRole("roles/iam.serviceAccountKeyAdmin", "Service Account Key Admin",
                           "Create and manage (and rotate) service account keys.",
                           {"iam.serviceAccountKeys.create", "iam.serviceAccountKeys.delete",
                            "iam.serviceAccountKeys.disable", "iam.serviceAccountKeys.enable",
                            "iam.serviceAccountKeys.get", "iam.serviceAccountKeys.list",
                            "iam.serviceAccounts.get", "iam.serviceAccounts.list",
                            "resourcemanager.projects.get", "resourcemanager.projects.list"}));
  roles.push_back(
      MakeRole("roles/iam.roleAdmin", "Role Administrator",
               "Provides access to all custom roles in the project.",
               {"iam.roles.create", "iam.roles.delete", "iam.roles.get", "iam.roles.list",
                "iam.roles.undelete", "iam.roles.update", "resourcemanager.projects.get",
                "resourcemanager.projects.getIamPolicy"}));
  roles.push_back(MakeRole("roles/iam.roleViewer", "Role Viewer",
                           "Provides read access to all custom roles in the project.",
                           {"iam.roles.get", "iam.roles.list", "resourcemanager.projects.get",
                            "resourcemanager.projects.getIamPolicy"}));
  roles.push_back(MakeRole("roles/iam.securityAdmin", "Security Admin",
                           "Security admin role, with permissions to get and set any IAM policy.",
                           Select(IsSecurityAdmin)));
  roles.push_back(MakeRole("roles/iam.securityReviewer", "Security Reviewer",
                           "Security reviewer role, with permissions to get any IAM policy.",
                           Select(IsSecurityReviewer)));
  return roles;
}

bool IsRoleIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.';
}
bool IsParentIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == ':';
}

// "projects/P/…" → "projects/P"; "" for names outside a project.
std::string_view ProjectOf(std::string_view resource) {
  if (!resource.starts_with("projects/")) return {};
  auto end = resource.find('/', 9);
  return resource.substr(0, end);
}

}  // namespace

const std::vector<std::string>& KnownPermissions() { return PermIndex().names; }

std::optional<uint32_t> PermissionIndex(std::string_view permission) {
  const auto& idx = PermIndex();
  auto it = idx.by_name.find(permission);
  if (it == idx.by_name.end()) return std::nullopt;
  return it->second;
}

Status ValidatePermissionName(std::string_view permission) {
  if (permission.find('*') != std::string_view::npos) {
    return InvalidArgument("permission `" + std::string(permission) +
                           "` is not valid: permissions with wildcards (such as '*' or "
                           "'storage.*') are not allowed");
  }
  // service.resource.verb
  size_t dots = 0;
  bool ok = !permission.empty() && permission.size() <= 128 && permission.front() != '.' &&
            permission.back() != '.';
  for (size_t i = 0; ok && i < permission.size(); ++i) {
    char c = permission[i];
    if (c == '.') {
      ++dots;
      if (permission[i + 1] == '.') ok = false;
    } else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) {
      ok = false;
    }
  }
  if (!ok || dots < 2) {
    return InvalidArgument("permission `" + std::string(permission) +
                           "` is not valid: permissions look like `service.resource.verb`");
  }
  if (!PermissionIndex(permission)) {
    return InvalidArgument("permission `" + std::string(permission) + "` is not valid");
  }
  return Ok();
}

std::optional<std::string> CustomRoleParent(std::string_view name) {
  std::string_view kind;
  if (name.starts_with("projects/")) {
    kind = "projects/";
  } else if (name.starts_with("organizations/")) {
    kind = "organizations/";
  } else {
    return std::nullopt;
  }
  std::string_view rest = name.substr(kind.size());
  auto slash = rest.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash > 63) return std::nullopt;
  std::string_view parent_id = rest.substr(0, slash);
  if (!std::all_of(parent_id.begin(), parent_id.end(), IsParentIdChar)) return std::nullopt;
  std::string_view tail = rest.substr(slash);
  if (!tail.starts_with("/roles/")) return std::nullopt;
  std::string_view id = tail.substr(7);
  if (id.size() < 3 || id.size() > 64 || !std::all_of(id.begin(), id.end(), IsRoleIdChar)) {
    return std::nullopt;
  }
  return std::string(name.substr(0, kind.size() + slash));
}

RoleCatalog::RoleCatalog() : predefined_(BuildPredefined()) {
  for (size_t i = 0; i < predefined_.size(); ++i) predefined_index_.emplace(predefined_[i].name, i);
}

const RoleCatalog& RoleCatalog::Predefined() {
  static const RoleCatalog* catalog = new RoleCatalog();
  return *catalog;
}

Status RoleCatalog::AddCustomRole(Role role) {
  auto parent = CustomRoleParent(role.name);
  if (!parent) {
    return InvalidArgument("custom role name `" + role.name +
                           "` is not valid: use `projects/PROJECT/roles/ROLE_ID` where ROLE_ID "
                           "has 3 to 64 letters, digits, underscores or periods");
  }
  if (role.title.size() > 100) {
    return InvalidArgument("the title of role `" + role.name + "` is longer than 100 characters");
  }
  if (role.description.size() > 300) {
    return InvalidArgument("the description of role `" + role.name +
                           "` is longer than 300 characters");
  }
  static const std::set<std::string_view> kStages = {"ALPHA",      "BETA",     "GA",
                                                     "DEPRECATED", "DISABLED", "EAP"};
  if (role.stage.empty()) role.stage = "GA";
  if (!kStages.count(role.stage)) {
    return InvalidArgument("role stage `" + role.stage +
                           "` is not valid: use ALPHA, BETA, GA, DEPRECATED, DISABLED or EAP");
  }
  if (role.included_permissions.size() > 3000) {
    return InvalidArgument("role `" + role.name + "` has more than 3,000 permissions");
  }
  role.permissions.reset();
  for (const auto& p : role.included_permissions) {
    MOAT_CHECK_OK(ValidatePermissionName(p));
    role.permissions.set(*PermissionIndex(p));
  }
  std::sort(role.included_permissions.begin(), role.included_permissions.end());
  role.included_permissions.erase(
      std::unique(role.included_permissions.begin(), role.included_permissions.end()),
      role.included_permissions.end());
  role.custom = true;
  role.parent = *parent;
  // A DISABLED custom role stays in the catalog but grants nothing (Google's semantics).
  if (role.stage == "DISABLED") role.permissions.reset();
  std::string key = role.name;
  custom_.insert_or_assign(std::move(key), std::move(role));
  return Ok();
}

bool RoleCatalog::RemoveCustomRole(std::string_view name) {
  auto it = custom_.find(name);
  if (it == custom_.end()) return false;
  custom_.erase(it);
  return true;
}

const Role* RoleCatalog::Find(std::string_view name) const {
  if (auto it = predefined_index_.find(name); it != predefined_index_.end()) {
    return &predefined_[it->second];
  }
  if (auto it = custom_.find(name); it != custom_.end()) return &it->second;
  return nullptr;
}

std::vector<const Role*> RoleCatalog::All() const {
  std::vector<const Role*> out;
  for (const auto& r : predefined_) out.push_back(&r);
  std::vector<const Role*> custom;
  for (const auto& [name, r] : custom_) custom.push_back(&r);
  std::sort(custom.begin(), custom.end(),
            [](const Role* a, const Role* b) { return a->name < b->name; });
  out.insert(out.end(), custom.begin(), custom.end());
  return out;
}

Status RoleCatalog::CheckUsable(std::string_view role, std::string_view resource) const {
  const Role* r = Find(role);
  if (!r) return InvalidArgument("role `" + std::string(role) + "` is not supported");
  if (r->custom && !resource.empty()) {
    // A project's custom role is usable in that project's policies and below; an
    // organization's custom role anywhere (Moat has one root).
    if (r->parent.starts_with("projects/") && ProjectOf(resource) != r->parent) {
      return InvalidArgument("role `" + std::string(role) + "` is not supported for this resource");
    }
  }
  return Ok();
}

}  // namespace moat::iam
