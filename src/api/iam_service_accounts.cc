// IAM API v1 service accounts (GOOGLE.md §6.1):
//   GET    /v1/projects/{p}/serviceAccounts                 iam.serviceAccounts.list   on
//   projects/P POST   /v1/projects/{p}/serviceAccounts                 iam.serviceAccounts.create
//   on projects/P GET    /v1/projects/{p}/serviceAccounts/{sa}            iam.serviceAccounts.get
//   PATCH  /v1/projects/{p}/serviceAccounts/{sa}            iam.serviceAccounts.update
//   PUT    /v1/projects/{p}/serviceAccounts/{sa}            iam.serviceAccounts.update (deprecated)
//   DELETE /v1/projects/{p}/serviceAccounts/{sa}            iam.serviceAccounts.delete
//   POST   /v1/projects/{p}/serviceAccounts/{sa}:undelete   iam.serviceAccounts.undelete
//   POST   /v1/projects/{p}/serviceAccounts/{sa}:enable     iam.serviceAccounts.enable
//   POST   /v1/projects/{p}/serviceAccounts/{sa}:disable    iam.serviceAccounts.disable
// Per-account permissions are checked on projects/P/serviceAccounts/EMAIL ({sa} may be the
// email or the uniqueId, {p} the `-` wildcard). The store work is identity::ServiceAccounts';
// each mutation's audit entry is appended in the same transaction (AuditHook).
#include <boost/json.hpp>

#include "api/iam_common.h"
#include "api/routes.h"
#include "api/run_common.h"
#include "common/json.h"
#include "identity/records.h"
#include "identity/service_accounts.h"

namespace moat::api {
namespace {

namespace bj = boost::json;

constexpr std::string_view kMethodPrefix = "google.iam.admin.v1.";

Result<identity::ServiceAccounts*> Accounts(const Env& env) {
  if (!env.accounts) {
    return MakeError(Code::kUnimplemented, "service accounts are not enabled on this server");
  }
  return env.accounts;
}

// The ServiceAccount fields a client may send back (read-only ones are ignored).
Status CheckServiceAccountFields(const bj::object& sa, std::string_view path) {
  return RejectUnknownFields(sa,
                             {"name", "projectId", "uniqueId", "email", "displayName",
                              "description", "oauth2ClientId", "disabled", "etag"},
                             path);
}

Result<std::string> StringField(const bj::object& o, std::string_view key) {
  MOAT_TRY(auto v, json::OptString(o, key));
  return v.value_or("");
}

Result<http::Response> List(const Env& env, Scope& s) {
  const http::Request& req = s.request();
  std::string_view project = req.PathVar("project");
  MOAT_CHECK_OK(CheckPathSegment(project, "project"));
  MOAT_CHECK_OK(s.Require("projects/" + std::string(project), "iam.serviceAccounts.list"));
  MOAT_TRY(int page_size, PageSizeParam(req.QueryParam("pageSize"), 20, 100));
  MOAT_TRY(auto* accounts, Accounts(env));
  MOAT_TRY(auto page, accounts->List(project, page_size, req.QueryParam("pageToken")));
  bj::object out;
  bj::array list;
  for (const auto& sa : page.accounts) list.push_back(identity::ServiceAccountToJson(sa));
  if (!list.empty()) out["accounts"] = std::move(list);
  if (!page.next_page_token.empty()) out["nextPageToken"] = page.next_page_token;
  return JsonResponse(out);
}

Result<http::Response> Create(const Env& env, Scope& s) {
  const http::Request& req = s.request();
  std::string_view project = req.PathVar("project");
  MOAT_CHECK_OK(CheckPathSegment(project, "project"));
  std::string project_name = "projects/" + std::string(project);
  MOAT_CHECK_OK(s.Require(project_name, "iam.serviceAccounts.create"));
  MOAT_TRY(bj::object body, BodyObject(req));
  MOAT_CHECK_OK(RejectUnknownFields(body, {"accountId", "serviceAccount"}));
  MOAT_TRY(std::string account_id, StringField(body, "accountId"));
  if (account_id.empty()) return InvalidArgument("accountId is required");
  std::string display_name, description;
  MOAT_TRY(const bj::object* sa, json::OptObject(body, "serviceAccount"));
  if (sa) {
    MOAT_CHECK_OK(CheckServiceAccountFields(*sa, "service_account"));
    MOAT_TRY(display_name, StringField(*sa, "displayName"));
    MOAT_TRY(description, StringField(*sa, "description"));
  }
  MOAT_TRY(auto* accounts, Accounts(env));
  auto audit = AuditHook<identity::ServiceAccountRecord>(
      s, std::string(kMethodPrefix) + "CreateServiceAccount", [](const auto& sa) {
        return std::pair{sa.Name(), bj::object{{"uniqueId", sa.unique_id}}};
      });
  MOAT_TRY(auto created, accounts->Create(project, account_id, display_name, description, &audit));
  return JsonResponse(identity::ServiceAccountToJson(created), audit.revision);
}

Result<http::Response> Get(const Env& env, Scope& s) {
  const http::Request& req = s.request();
  MOAT_TRY(auto t, ResolveAccount(s, req.PathVar("project"), req.PathVar("account")));
  MOAT_CHECK_OK(s.Require(t.resource, "iam.serviceAccounts.get"));
  MOAT_TRY(auto* accounts, Accounts(env));
  MOAT_TRY(auto sa, accounts->Get(t.name));
  return JsonResponse(identity::ServiceAccountToJson(sa));
}

// PATCH {"serviceAccount":{…},"updateMask":"displayName,description"} (the mask may also be a
// query parameter); PUT takes a ServiceAccount and updates the fields it carries.
Result<http::Response> Update(const Env& env, Scope& s, bool patch) {
  const http::Request& req = s.request();
  MOAT_TRY(auto t, ResolveAccount(s, req.PathVar("project"), req.PathVar("account")));
  MOAT_CHECK_OK(s.Require(t.resource, "iam.serviceAccounts.update"));
  MOAT_TRY(bj::object body, BodyObject(req));
  bj::object sa;
  std::string mask;
  if (patch) {
    MOAT_CHECK_OK(RejectUnknownFields(body, {"serviceAccount", "updateMask"}));
    MOAT_TRY(const bj::object* inner, json::OptObject(body, "serviceAccount"));
    if (inner) sa = *inner;
    MOAT_CHECK_OK(CheckServiceAccountFields(sa, "service_account"));
    MOAT_TRY(mask, StringField(body, "updateMask"));
    if (mask.empty()) mask = std::string(req.QueryParam("updateMask"));
    if (mask.empty()) return InvalidArgument("updateMask is required");
  } else {
    sa = std::move(body);
    MOAT_CHECK_OK(CheckServiceAccountFields(sa, ""));
    if (sa.contains("displayName")) mask = "displayName";
    if (sa.contains("description")) mask += mask.empty() ? "description" : ",description";
  }
  MOAT_TRY(std::string display_name, StringField(sa, "displayName"));
  MOAT_TRY(std::string description, StringField(sa, "description"));
  MOAT_TRY(auto* accounts, Accounts(env));
  if (mask.empty()) {  // PUT without an updatable field: nothing changes
    MOAT_TRY(auto current, accounts->Get(t.name));
    return JsonResponse(identity::ServiceAccountToJson(current));
  }
  auto audit = AuditHook<identity::ServiceAccountRecord>(
      s, std::string(kMethodPrefix) + (patch ? "PatchServiceAccount" : "UpdateServiceAccount"),
      [&mask](const auto& sa) {
        return std::pair{sa.Name(), bj::object{{"updateMask", mask}}};
      });
  MOAT_TRY(auto updated, accounts->Patch(t.name, display_name, description, mask, &audit));
  return JsonResponse(identity::ServiceAccountToJson(updated), audit.revision);
}

enum class Op { kDelete, kEnable, kDisable };

Result<http::Response> Mutate(const Env& env, Scope& s, Op op) {
  const http::Request& req = s.request();
  MOAT_TRY(auto t, ResolveAccount(s, req.PathVar("project"), req.PathVar("account")));
  const char* perm = op == Op::kDelete   ? "iam.serviceAccounts.delete"
                     : op == Op::kEnable ? "iam.serviceAccounts.enable"
                                         : "iam.serviceAccounts.disable";
  MOAT_CHECK_OK(s.Require(t.resource, perm));
  if (op != Op::kDelete) {
    MOAT_TRY(bj::object body, BodyObject(req));
    MOAT_CHECK_OK(RejectUnknownFields(body, {}));
  }
  MOAT_TRY(auto* accounts, Accounts(env));
  const char* method = op == Op::kDelete   ? "DeleteServiceAccount"
                       : op == Op::kEnable ? "EnableServiceAccount"
                                           : "DisableServiceAccount";
  // The record is the account as it is live (its canonical email name, also for a delete).
  auto audit = AuditHook<identity::ServiceAccountRecord>(
      s, std::string(kMethodPrefix) + method, [](const auto& sa) {
        return std::pair{sa.Name(), bj::object{{"uniqueId", sa.unique_id}}};
      });
  switch (op) {
    case Op::kDelete:
      MOAT_CHECK_OK(accounts->Delete(t.name, &audit));
      break;
    case Op::kEnable:
      MOAT_CHECK_OK(accounts->Enable(t.name, &audit));
      break;
    case Op::kDisable:
      MOAT_CHECK_OK(accounts->Disable(t.name, &audit));
      break;
  }
  return JsonResponse(bj::object(), audit.revision);
}

// Undelete names the deleted account by uniqueId (an email works while no live account holds
// it). The permission is checked on projects/P/serviceAccounts/UNIQUE_ID: the deleted
// account's own policy lives under that name, so a new account's policy with the same email
// grants nothing here; project-level grants apply as usual.
Result<http::Response> Undelete(const Env& env, Scope& s) {
  const http::Request& req = s.request();
  std::string_view project = req.PathVar("project");
  std::string_view account = req.PathVar("account");
  MOAT_CHECK_OK(CheckPathSegment(project, "project"));
  MOAT_CHECK_OK(CheckPathSegment(account, "service account"));
  std::string acct = http::ToLower(account);
  std::string name = "projects/" + std::string(project) + "/serviceAccounts/" + acct;
  std::string resource = name;
  if (const auto& dir = s.view().directory) {
    const identity::ServiceAccountRecord* sa = dir->FindServiceAccount(acct);
    if (sa && (project == "-" || project == sa->project_id)) {
      resource = "projects/" + sa->project_id + "/serviceAccounts/" + sa->unique_id;
    }
  }
  MOAT_CHECK_OK(s.Require(resource, "iam.serviceAccounts.undelete"));
  MOAT_TRY(bj::object body, BodyObject(req));
  MOAT_CHECK_OK(RejectUnknownFields(body, {}));
  MOAT_TRY(auto* accounts, Accounts(env));
  auto audit = AuditHook<identity::ServiceAccountRecord>(
      s, std::string(kMethodPrefix) + "UndeleteServiceAccount", [](const auto& sa) {
        return std::pair{sa.Name(), bj::object{{"uniqueId", sa.unique_id}}};
      });
  MOAT_TRY(auto restored, accounts->Undelete(name, &audit));
  bj::object out;
  out["restoredAccount"] = identity::ServiceAccountToJson(restored);
  return JsonResponse(out, audit.revision);
}

}  // namespace

void RegisterIamServiceAccountRoutes(http::Router& router, const Env& env) {
  using Fn = Result<http::Response> (*)(const Env&, Scope&);
  auto add = [&](std::string_view method, std::string_view pattern, auto fn) {
    AddRoute(
        router, method, pattern,
        [&env, fn](const http::Request& req) {
          return Handle(env, req, [&](Scope& s) -> Result<http::Response> { return fn(env, s); });
        },
        /*blocking=*/true);
  };
  constexpr std::string_view kCollection = "/v1/projects/{project}/serviceAccounts";
  constexpr std::string_view kOne = "/v1/projects/{project}/serviceAccounts/{account}";
  add("GET", kCollection, Fn(&List));
  add("POST", kCollection, Fn(&Create));
  add("GET", kOne, Fn(&Get));
  add("PATCH", kOne, [](const Env& e, Scope& s) { return Update(e, s, true); });
  add("PUT", kOne, [](const Env& e, Scope& s) { return Update(e, s, false); });
  add("DELETE", kOne, [](const Env& e, Scope& s) { return Mutate(e, s, Op::kDelete); });
  add("POST", std::string(kOne) + ":undelete", Fn(&Undelete));
  add("POST", std::string(kOne) + ":enable",
      [](const Env& e, Scope& s) { return Mutate(e, s, Op::kEnable); });
  add("POST", std::string(kOne) + ":disable",
      [](const Env& e, Scope& s) { return Mutate(e, s, Op::kDisable); });
}

}  // namespace moat::api
