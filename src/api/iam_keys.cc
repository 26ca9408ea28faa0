// IAM API v1 service-account keys (GOOGLE.md §6.2), permissions on the account
// (projects/P/serviceAccounts/EMAIL):
//   GET    /v1/projects/{p}/serviceAccounts/{sa}/keys[?keyTypes=…]   iam.serviceAccountKeys.list
//   POST   /v1/projects/{p}/serviceAccounts/{sa}/keys                iam.serviceAccountKeys.create
//   POST   /v1/projects/{p}/serviceAccounts/{sa}/keys:upload         iam.serviceAccountKeys.create
//   GET    /v1/projects/{p}/serviceAccounts/{sa}/keys/{key}          iam.serviceAccountKeys.get
//   DELETE /v1/projects/{p}/serviceAccounts/{sa}/keys/{key}          iam.serviceAccountKeys.delete
//   POST   /v1/projects/{p}/serviceAccounts/{sa}/keys/{key}:disable  iam.serviceAccountKeys.disable
//   POST   /v1/projects/{p}/serviceAccounts/{sa}/keys/{key}:enable   iam.serviceAccountKeys.enable
// keys.create answers the key file (privateKeyData) exactly once: it is never logged and never
// put in an audit entry (only the key's name is).
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

// The account (resolved, authorized) a key request is about, and its project.
struct KeyScope {
  AccountTarget account;
  std::string project_id;
};

Result<KeyScope> Authorize(const Env& env, Scope& s, std::string_view permission) {
  const http::Request& req = s.request();
  KeyScope k;
  MOAT_TRY(k.account, ResolveAccount(s, req.PathVar("project"), req.PathVar("account")));
  MOAT_CHECK_OK(s.Require(k.account.resource, permission));
  k.project_id = k.account.project_id;
  if (k.account.email.empty()) {  // not in the View (yet): ask the store
    MOAT_TRY(auto* accounts, Accounts(env));
    MOAT_TRY(auto sa, accounts->Get(k.account.name));
    k.project_id = sa.project_id;
    k.account.email = sa.email;
  }
  return k;
}

std::string KeyName(const KeyScope& k, std::string_view key_id) {
  return k.account.name + "/keys/" + std::string(key_id);
}

Result<http::Response> List(const Env& env, Scope& s) {
  MOAT_TRY(KeyScope k, Authorize(env, s, "iam.serviceAccountKeys.list"));
  std::vector<std::string> types;
  for (const auto& [name, value] : s.request().query) {
    if (name == "keyTypes") types.push_back(value);
  }
  MOAT_TRY(auto* accounts, Accounts(env));
  MOAT_TRY(auto keys, accounts->ListKeys(k.account.name, types));
  bj::array list;
  for (const auto& key : keys) list.push_back(identity::KeyToJson(key, k.project_id));
  bj::object out;
  if (!list.empty()) out["keys"] = std::move(list);
  return JsonResponse(out);
}

Result<http::Response> Create(const Env& env, Scope& s) {
  MOAT_TRY(KeyScope k, Authorize(env, s, "iam.serviceAccountKeys.create"));
  MOAT_TRY(bj::object body, BodyObject(s.request()));
  MOAT_CHECK_OK(RejectUnknownFields(body, {"privateKeyType", "keyAlgorithm"}));
  MOAT_TRY(auto type, json::OptString(body, "privateKeyType"));
  MOAT_TRY(auto alg, json::OptString(body, "keyAlgorithm"));
  MOAT_TRY(auto* accounts, Accounts(env));
  MOAT_TRY(auto created, accounts->CreateKey(k.account.name, alg.value_or(""), type.value_or("")));
  int64_t rev = AuditAfter(s, std::string(kMethodPrefix) + "CreateServiceAccountKey",
                           created.key.Name(created.project_id), {{"keyId", created.key.key_id}});
  return JsonResponse(identity::CreatedKeyToJson(created), rev);
}

Result<http::Response> Upload(const Env& env, Scope& s) {
  MOAT_TRY(KeyScope k, Authorize(env, s, "iam.serviceAccountKeys.create"));
  MOAT_TRY(bj::object body, BodyObject(s.request()));
  MOAT_CHECK_OK(RejectUnknownFields(body, {"publicKeyData"}));
  MOAT_TRY(auto data, json::OptString(body, "publicKeyData"));
  if (!data || data->empty()) return InvalidArgument("publicKeyData is required");
  MOAT_TRY(auto* accounts, Accounts(env));
  MOAT_TRY(auto key, accounts->UploadKey(k.account.name, *data));
  int64_t rev = AuditAfter(s, std::string(kMethodPrefix) + "UploadServiceAccountKey",
                           key.Name(k.project_id), {{"keyId", key.key_id}});
  return JsonResponse(identity::KeyToJson(key, k.project_id), rev);
}

Result<http::Response> Get(const Env& env, Scope& s) {
  MOAT_TRY(KeyScope k, Authorize(env, s, "iam.serviceAccountKeys.get"));
  std::string_view key_id = s.request().PathVar("key");
  MOAT_CHECK_OK(CheckPathSegment(key_id, "key"));
  MOAT_TRY(auto type, identity::ParsePublicKeyType(s.request().QueryParam("publicKeyType")));
  MOAT_TRY(auto* accounts, Accounts(env));
  MOAT_TRY(auto key, accounts->GetKey(KeyName(k, key_id)));
  return JsonResponse(identity::KeyToJson(key, k.project_id, type));
}

enum class Op { kDelete, kDisable, kEnable };

Result<http::Response> Mutate(const Env& env, Scope& s, Op op) {
  const char* perm = op == Op::kDelete    ? "iam.serviceAccountKeys.delete"
                     : op == Op::kDisable ? "iam.serviceAccountKeys.disable"
                                          : "iam.serviceAccountKeys.enable";
  MOAT_TRY(KeyScope k, Authorize(env, s, perm));
  std::string_view key_id = s.request().PathVar("key");
  MOAT_CHECK_OK(CheckPathSegment(key_id, "key"));
  if (op != Op::kDelete) {
    MOAT_TRY(bj::object body, BodyObject(s.request()));
    MOAT_CHECK_OK(RejectUnknownFields(body, {}));
  }
  MOAT_TRY(auto* accounts, Accounts(env));
  std::string name = KeyName(k, key_id);
  const char* method = nullptr;
  switch (op) {
    case Op::kDelete:
      MOAT_CHECK_OK(accounts->DeleteKey(name));
      method = "DeleteServiceAccountKey";
      break;
    case Op::kDisable:
      MOAT_CHECK_OK(accounts->DisableKey(name));
      method = "DisableServiceAccountKey";
      break;
    case Op::kEnable:
      MOAT_CHECK_OK(accounts->EnableKey(name));
      method = "EnableServiceAccountKey";
      break;
  }
  std::string resource = "projects/" + k.project_id + "/serviceAccounts/" + k.account.email +
                         "/keys/" + std::string(key_id);
  int64_t rev = AuditAfter(s, std::string(kMethodPrefix) + method, resource,
                           {{"keyId", std::string(key_id)}});
  return JsonResponse(bj::object(), rev);
}

}  // namespace

void RegisterIamKeyRoutes(http::Router& router, const Env& env) {
  using Fn = Result<http::Response> (*)(const Env&, Scope&);
  auto add = [&](std::string_view method, std::string pattern, Fn fn) {
    AddRoute(
        router, method, pattern,
        [&env, fn](const http::Request& req) {
          return Handle(env, req, [&](Scope& s) -> Result<http::Response> { return fn(env, s); });
        },
        /*blocking=*/true);
  };
  const std::string keys = "/v1/projects/{project}/serviceAccounts/{account}/keys";
  const std::string key = keys + "/{key}";
  add("GET", keys, &List);
  add("POST", keys, &Create);
  add("POST", keys + ":upload", &Upload);
  add("GET", key, &Get);
  add("DELETE", key, [](const Env& e, Scope& s) { return Mutate(e, s, Op::kDelete); });
  add("POST", key + ":disable", [](const Env& e, Scope& s) { return Mutate(e, s, Op::kDisable); });
  add("POST", key + ":enable", [](const Env& e, Scope& s) { return Mutate(e, s, Op::kEnable); });
}

}  // namespace moat::api
