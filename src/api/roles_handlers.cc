// IAM API v1 roles (iam.googleapis.com): predefined roles (read-only) and custom roles of a
// project (docs/api.md).
//
// Custom roles are stored in the roles collection, key = the role name
// ("projects/P/roles/ID"), parent "projects/P", as {"title","description","stage",
// "includedPermissions":[…],"deleted":bool,"deleteTime"?} — the shape LiveState compiles into
// the IAM snapshot (a deleted role grants nothing). A deleted role keeps its id: it can be
// undeleted, and a new role cannot take the id while the document exists.
//
// Permissions: predefined roles need only an authenticated caller (as on Google); custom roles
// need iam.roles.{create,get,list,update,delete,undelete} on projects/P.
#include <boost/json.hpp>

#include "api/handler_util.h"
#include "api/iam_common.h"
#include "api/routes.h"
#include "api/run_common.h"
#include "common/json.h"
#include "common/time.h"
#include "iam/roles.h"

namespace moat::api {
namespace {

namespace bj = boost::json;
using store::Collection;

// Google's etag of predefined roles.
constexpr std::string_view kPredefinedEtag = "AA==";

struct StoredRole {
  std::string title, description, stage = "GA";
  std::vector<std::string> permissions;
  bool deleted = false;
  std::string delete_time;
};

Result<StoredRole> ParseStoredRole(const store::Document& doc) {
  auto o = json::ParseObject(doc.data, "role document");
  if (!o) return Internal("the stored role `" + doc.key + "` cannot be read");
  StoredRole r;
  MOAT_TRY(auto title, json::OptString(*o, "title"));
  MOAT_TRY(auto description, json::OptString(*o, "description"));
  MOAT_TRY(auto stage, json::OptString(*o, "stage"));
  MOAT_TRY(auto deleted, json::OptBool(*o, "deleted"));
  MOAT_TRY(auto delete_time, json::OptString(*o, "deleteTime"));
  MOAT_TRY(const bj::array* perms, json::OptArray(*o, "includedPermissions"));
  r.title = title.value_or("");
  r.description = description.value_or("");
  if (stage && !stage->empty()) r.stage = *stage;
  r.deleted = deleted.value_or(false);
  r.delete_time = delete_time.value_or("");
  if (perms) {
    for (const auto& p : *perms) {
      if (p.is_string()) r.permissions.emplace_back(p.as_string());
    }
  }
  return r;
}

std::string StoredRoleJson(const StoredRole& r) {
  bj::object o;
  o["title"] = r.title;
  o["description"] = r.description;
  o["stage"] = r.stage;
  bj::array perms;
  for (const auto& p : r.permissions) perms.emplace_back(p);
  o["includedPermissions"] = std::move(perms);
  o["deleted"] = r.deleted;
  if (!r.delete_time.empty()) o["deleteTime"] = r.delete_time;
  return json::Serialize(o);
}

// Google's Role JSON. BASIC view omits includedPermissions.
bj::object RoleJson(std::string_view name, const StoredRole& r, std::string_view etag, bool full) {
  bj::object o;
  o["name"] = std::string(name);
  if (!r.title.empty()) o["title"] = r.title;
  if (!r.description.empty()) o["description"] = r.description;
  if (full && !r.permissions.empty()) {
    bj::array perms;
    for (const auto& p : r.permissions) perms.emplace_back(p);
    o["includedPermissions"] = std::move(perms);
  }
  o["stage"] = r.stage;
  o["etag"] = std::string(etag);
  if (r.deleted) o["deleted"] = true;
  return o;
}

StoredRole FromRole(const iam::Role& role) {
  StoredRole r;
  r.title = role.title;
  r.description = role.description;
  r.stage = role.stage;
  r.permissions = role.included_permissions;
  return r;
}

Result<bool> FullView(const http::Request& req, bool default_full) {
  std::string_view v = req.QueryParam("view");
  if (v.empty()) return default_full;
  if (v == "FULL") return true;
  if (v == "BASIC") return false;
  return InvalidArgument("query parameter `view` must be BASIC or FULL");
}

Status CheckId(std::string_view v, std::string_view what) {
  if (v.empty() || v.find('/') != std::string_view::npos) {
    return InvalidArgument(std::string(what) + " `" + std::string(v) + "` is not valid");
  }
  return Ok();
}

// Validates a custom role through the catalog (on a copy of the current one) and returns it
// normalized (sorted, unique permissions; default stage).
Result<StoredRole> Validated(const Scope& s, const std::string& name, const StoredRole& r) {
  iam::Role role;
  role.name = name;
  role.title = r.title;
  role.description = r.description;
  role.stage = r.stage;
  role.included_permissions = r.permissions;
  role.custom = true;
  iam::RoleCatalog catalog = s.view().iam->roles();
  MOAT_CHECK_OK(catalog.AddCustomRole(role));
  const iam::Role* added = catalog.Find(name);
  if (!added) return Internal("the role could not be validated");
  return FromRole(*added);
}

// Reads title/description/stage/includedPermissions from a Role object into `r` (only the
// fields in `fields`, or every present one when `fields` is empty).
Status ReadRoleFields(const bj::object& o, StoredRole& r, const std::vector<std::string>& fields) {
  MOAT_CHECK_OK(RejectUnknownFields(
      o, {"name", "title", "description", "includedPermissions", "stage", "etag", "deleted"},
      "role"));
  auto wanted = [&](std::string_view f) {
    if (fields.empty()) return o.contains(f);
    return std::find(fields.begin(), fields.end(), f) != fields.end();
  };
  if (wanted("title")) {
    MOAT_TRY(auto v, json::OptString(o, "title"));
    r.title = v.value_or("");
  }
  if (wanted("description")) {
    MOAT_TRY(auto v, json::OptString(o, "description"));
    r.description = v.value_or("");
  }
  if (wanted("stage")) {
    MOAT_TRY(auto v, json::OptString(o, "stage"));
    r.stage = v && !v->empty() ? *v : "GA";
  }
  if (wanted("includedPermissions")) {
    MOAT_TRY(const bj::array* perms, json::OptArray(o, "includedPermissions"));
    r.permissions.clear();
    if (perms) {
      for (const auto& p : *perms) {
        if (!p.is_string()) {
          return InvalidArgument(
              "invalid value at `role.includedPermissions`: expected a list of strings");
        }
        r.permissions.emplace_back(p.as_string());
      }
    }
  }
  return Ok();
}

std::string CustomName(const http::Request& req) {
  return "projects/" + std::string(req.PathVar("project")) + "/roles/" +
         std::string(req.PathVar("role"));
}

Error RoleNotFound(std::string_view name) {
  return NotFound("The role named " + std::string(name) + " was not found.");
}

// --- predefined ---------------------------------------------------------------------------

Result<http::Response> ListPredefined(Scope& s) {
  const http::Request& req = s.request();
  if (!s.caller().authenticated()) return s.Require(kRootResource, "iam.roles.list").error();
  MOAT_TRY(bool full, FullView(req, false));
  std::vector<const iam::Role*> roles;
  for (const iam::Role* r : iam::RoleCatalog::Predefined().All()) {
    if (!r->custom) roles.push_back(r);
  }
  MOAT_TRY(int page_size, PageSizeParam(req.QueryParam("pageSize"), 300, 1000));
  MOAT_TRY(size_t offset, ParseOffsetToken(req.QueryParam("pageToken"), roles.size()));
  bj::array arr;
  size_t end = std::min(roles.size(), offset + static_cast<size_t>(page_size));
  for (size_t i = offset; i < end; ++i) {
    arr.emplace_back(RoleJson(roles[i]->name, FromRole(*roles[i]), kPredefinedEtag, full));
  }
  bj::object out;
  if (!arr.empty()) out["roles"] = std::move(arr);
  if (end < roles.size()) out["nextPageToken"] = std::to_string(end);
  return JsonResponse(out);
}

Result<http::Response> GetPredefined(Scope& s) {
  std::string name = "roles/" + std::string(s.request().PathVar("role"));
  if (!s.caller().authenticated()) return s.Require(name, "iam.roles.get").error();
  const iam::Role* r = iam::RoleCatalog::Predefined().Find(name);
  if (!r || r->custom) return RoleNotFound(name);
  return JsonResponse(RoleJson(r->name, FromRole(*r), kPredefinedEtag, true));
}

// --- custom -------------------------------------------------------------------------------

Result<http::Response> ListCustom(Scope& s) {
  const http::Request& req = s.request();
  MOAT_CHECK_OK(CheckId(req.PathVar("project"), "project"));
  std::string parent = "projects/" + std::string(req.PathVar("project"));
  MOAT_CHECK_OK(s.Require(parent, "iam.roles.list"));
  MOAT_TRY(bool full, FullView(req, false));
  MOAT_TRY(bool show_deleted, QueryBool(req, "showDeleted", false));
  MOAT_TRY(int page_size, PageSizeParam(req.QueryParam("pageSize"), 300, 1000));
  store::ListOptions opts;
  opts.parent = parent;
  opts.page_size = page_size;
  opts.page_token = std::string(req.QueryParam("pageToken"));
  MOAT_TRY(store::ListPage page, s.env().store->List(Collection::kRoles, opts));
  bj::array arr;
  for (const auto& doc : page.documents) {
    auto r = ParseStoredRole(doc);
    if (!r || (r->deleted && !show_deleted)) continue;
    arr.emplace_back(RoleJson(doc.key, *r, doc.etag, full));
  }
  bj::object out;
  if (!arr.empty()) out["roles"] = std::move(arr);
  if (!page.next_page_token.empty()) out["nextPageToken"] = page.next_page_token;
  return JsonResponse(out);
}

Result<http::Response> GetCustom(Scope& s) {
  const http::Request& req = s.request();
  MOAT_CHECK_OK(CheckId(req.PathVar("project"), "project"));
  MOAT_CHECK_OK(CheckId(req.PathVar("role"), "role"));
  std::string name = CustomName(req);
  MOAT_CHECK_OK(s.Require("projects/" + std::string(req.PathVar("project")), "iam.roles.get"));
  MOAT_TRY(auto doc, s.env().store->Get(Collection::kRoles, name));
  if (!doc) return RoleNotFound(name);
  MOAT_TRY(StoredRole r, ParseStoredRole(*doc));
  return JsonResponse(RoleJson(name, r, doc->etag, true));
}

Result<http::Response> CreateCustom(Scope& s) {
  const http::Request& req = s.request();
  MOAT_CHECK_OK(CheckId(req.PathVar("project"), "project"));
  std::string parent = "projects/" + std::string(req.PathVar("project"));
  MOAT_CHECK_OK(s.Require(parent, "iam.roles.create"));
  MOAT_TRY(bj::object body, BodyObject(req));
  MOAT_CHECK_OK(RejectUnknownFields(body, {"roleId", "role"}));
  MOAT_TRY(auto role_id, json::OptString(body, "roleId"));
  if (!role_id || role_id->empty()) return InvalidArgument("field `roleId` is required");
  std::string name = parent + "/roles/" + *role_id;
  if (!iam::CustomRoleParent(name)) {
    return InvalidArgument("role id `" + *role_id +
                           "` is not valid: it has 3 to 64 letters, digits, underscores or "
                           "periods");
  }
  MOAT_TRY(const bj::object* role_obj, json::OptObject(body, "role"));
  StoredRole r;
  if (role_obj) MOAT_CHECK_OK(ReadRoleFields(*role_obj, r, {}));
  MOAT_TRY(r, Validated(s, name, r));

  MOAT_TRY(auto tx, s.env().store->Begin());
  MOAT_TRY(auto existing, tx->Get(Collection::kRoles, name));
  if (existing) {
    return AlreadyExists("A role named " + *role_id + " in " + parent +
                         " already exists (a deleted role keeps its id until it is purged).");
  }
  MOAT_CHECK_OK(EnsureProject(*tx, parent, s.now()));
  store::PutOptions put;
  put.parent = parent;
  put.precondition = store::Precondition::MustNotExist();
  MOAT_TRY(store::Document doc, tx->Put(Collection::kRoles, name, StoredRoleJson(r), put));
  MOAT_CHECK_OK(tx->AppendAudit(s.Audit("google.iam.admin.v1.CreateRole", name)));
  MOAT_TRY(int64_t revision, tx->Commit());
  return JsonResponse(RoleJson(name, r, doc.etag, true), revision);
}

// PATCH (update), DELETE and :undelete share the read-modify-write.
enum class Edit { kUpdate, kDelete, kUndelete };

Result<http::Response> EditCustom(Scope& s, Edit edit) {
  const http::Request& req = s.request();
  MOAT_CHECK_OK(CheckId(req.PathVar("project"), "project"));
  MOAT_CHECK_OK(CheckId(req.PathVar("role"), "role"));
  std::string parent = "projects/" + std::string(req.PathVar("project"));
  std::string name = CustomName(req);
  const char* permission = edit == Edit::kUpdate   ? "iam.roles.update"
                           : edit == Edit::kDelete ? "iam.roles.delete"
                                                   : "iam.roles.undelete";
  MOAT_CHECK_OK(s.Require(parent, permission));
  bj::object body;
  if (edit != Edit::kDelete) {
    MOAT_TRY(body, BodyObject(req));
  }
  if (edit == Edit::kUndelete) MOAT_CHECK_OK(RejectUnknownFields(body, {"etag"}));
  MOAT_TRY(auto body_etag, json::OptString(body, "etag"));
  std::string etag = body_etag.value_or(std::string(req.QueryParam("etag")));

  MOAT_TRY(auto tx, s.env().store->Begin());
  MOAT_TRY(auto doc, tx->Get(Collection::kRoles, name));
  if (!doc) return RoleNotFound(name);
  if (!etag.empty() && etag != doc->etag) {
    return Aborted("the etag of role `" + name +
                   "` does not match: it was changed since it was read; read it and retry");
  }
  MOAT_TRY(StoredRole r, ParseStoredRole(*doc));
  std::string method;
  switch (edit) {
    case Edit::kUpdate: {
      if (r.deleted) {
        return FailedPrecondition("role `" + name + "` is deleted; undelete it first");
      }
      std::vector<std::string> mask;
      for (auto& p : SplitMask(req.QueryParam("updateMask"))) {
        if (p != "title" && p != "description" && p != "includedPermissions" &&
            p != "included_permissions" && p != "stage") {
          return InvalidArgument("update mask path `" + p +
                                 "` is not valid: use title, description, includedPermissions "
                                 "or stage");
        }
        mask.push_back(p == "included_permissions" ? "includedPermissions" : p);
      }
      MOAT_CHECK_OK(ReadRoleFields(body, r, mask));
      MOAT_TRY(r, Validated(s, name, r));
      method = "google.iam.admin.v1.UpdateRole";
      break;
    }
    case Edit::kDelete:
      if (r.deleted) return FailedPrecondition("role `" + name + "` is already deleted");
      r.deleted = true;
      r.delete_time = FormatRfc3339(s.now());
      method = "google.iam.admin.v1.DeleteRole";
      break;
    case Edit::kUndelete:
      if (!r.deleted) return FailedPrecondition("role `" + name + "` is not deleted");
      r.deleted = false;
      r.delete_time.clear();
      method = "google.iam.admin.v1.UndeleteRole";
      break;
  }
  store::PutOptions put;
  put.parent = parent;
  put.precondition = store::Precondition::EtagMatches(doc->etag);
  MOAT_TRY(store::Document written, tx->Put(Collection::kRoles, name, StoredRoleJson(r), put));
  MOAT_CHECK_OK(tx->AppendAudit(s.Audit(method, name)));
  MOAT_TRY(int64_t revision, tx->Commit());
  return JsonResponse(RoleJson(name, r, written.etag, true), revision);
}

}  // namespace

void RegisterRoleRoutes(http::Router& router, const Env& env) {
  auto add = [&](const char* method, const char* path,
                 std::function<Result<http::Response>(Scope&)> fn) {
    AddRoute(
        router, method, path, [&env, fn](const http::Request& req) { return Handle(env, req, fn); },
        /*blocking=*/true);
  };
  add("GET", "/v1/roles", ListPredefined);
  add("GET", "/v1/roles/{role}", GetPredefined);
  add("GET", "/v1/projects/{project}/roles", ListCustom);
  add("POST", "/v1/projects/{project}/roles", CreateCustom);
  add("GET", "/v1/projects/{project}/roles/{role}", GetCustom);
  add("PATCH", "/v1/projects/{project}/roles/{role}",
      [](Scope& s) { return EditCustom(s, Edit::kUpdate); });
  add("DELETE", "/v1/projects/{project}/roles/{role}",
      [](Scope& s) { return EditCustom(s, Edit::kDelete); });
  add("POST", "/v1/projects/{project}/roles/{role}:undelete",
      [](Scope& s) { return EditCustom(s, Edit::kUndelete); });
}

}  // namespace moat::api
