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
// put in an audit entry (only the key's name is). Each mutation's audit entry is appended in the
// mutation's own transaction (AuditHook).
//
// SYSTEM_MANAGED keys are the account's signJwt/signBlob keys (identity::SystemManagedKeys,
// published until retired): keys.list shows them (no keyTypes, or keyTypes=SYSTEM_MANAGED) with
// keyType SYSTEM_MANAGED, keyOrigin GOOGLE_PROVIDED and validBeforeTime = end of signing;
// keys.get finds them (publicKeyType works); delete/disable/enable answer FAILED_PRECONDITION
// (Moat rotates them).
#include <boost/json.hpp>

#include "api/iam_common.h"
#include "api/routes.h"
#include "api/run_common.h"
#include "common/json.h"
#include "identity/credentials_keys.h"
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
  std::string unique_id;
};

Result<KeyScope> Authorize(const Env& env, Scope& s, std::string_view permission) {
  const http::Request& req = s.request();
  KeyScope k;
  MOAT_TRY(k.account, ResolveAccount(s, req.PathVar("project"), req.PathVar("account")));
  MOAT_CHECK_OK(s.Require(k.account.resource, permission));
  k.project_id = k.account.project_id;
  const identity::ServiceAccountRecord* known =
      k.account.email.empty() || !s.view().directory
          ? nullptr
          : s.view().directory->FindServiceAccount(k.account.email);
  if (known) {
    k.unique_id = known->unique_id;
  } else {  // not in the View (yet): ask the store
    MOAT_TRY(auto* accounts, Accounts(env));
    MOAT_TRY(auto sa, accounts->Get(k.account.name));
    k.project_id = sa.project_id;
    k.account.email = sa.email;
    k.unique_id = sa.unique_id;
  }
  return k;
}

// The account's published system-managed keys, as KeyRecords (none without SystemManagedKeys).
std::vector<identity::KeyRecord> SystemKeys(const Env& env, const KeyScope& k, TimePoint now) {
  std::vector<identity::KeyRecord> out;
  identity::SystemManagedKeys* system = SystemKeysOf(env);
  if (!system || k.unique_id.empty()) return out;
  for (const auto& sk : system->KeysOf(k.unique_id, now)) {
    identity::KeyRecord r;
    r.key_id = sk->kid;
    r.sa_email = k.account.email;
    r.sa_unique_id = sk->sa_unique_id;
    r.cert_pem = sk->cert_pem;
    r.public_key = sk->public_key;
    r.valid_after = sk->valid_after;
    r.valid_before = sk->valid_before;
    r.origin = identity::KeyOrigin::kGoogleProvided;
    out.push_back(std::move(r));
  }
  return out;
}

bj::object SystemKeyToJson(const identity::KeyRecord& key, const std::string& project_id,
                           identity::PublicKeyType type = identity::PublicKeyType::kNone) {
  bj::object o = identity::KeyToJson(key, project_id, type);
  o["keyType"] = "SYSTEM_MANAGED";
  return o;
}

std::optional<identity::KeyRecord> FindSystemKey(const Env& env, const KeyScope& k,
                                                 std::string_view key_id, TimePoint now) {
  std::string id = http::ToLower(key_id);
  for (auto& key : SystemKeys(env, k, now)) {
    if (key.key_id == id) return std::move(key);
  }
  return std::nullopt;
}

// The audit hook of a key mutation: resource = the key's canonical name, details {keyId}.
identity::CommitHook<identity::KeyRecord> KeyAudit(const Scope& s, std::string_view method,
                                                   const std::string& project_id) {
  return AuditHook<identity::KeyRecord>(
      s, std::string(kMethodPrefix) + std::string(method), [project_id](const auto& key) {
        return std::pair{key.Name(project_id), bj::object{{"keyId", key.key_id}}};
      });
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
  MOAT_TRY(auto keys, accounts->ListKeys(k.account.name, types));  // also validates `types`
  bj::array list;
  for (const auto& key : keys) list.push_back(identity::KeyToJson(key, k.project_id));
  bool system = types.empty();
  for (const auto& t : types) system = system || t == "SYSTEM_MANAGED";
  if (system) {
    for (const auto& key : SystemKeys(env, k, s.now())) {
      list.push_back(SystemKeyToJson(key, k.project_id));
    }
  }
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
  auto audit = KeyAudit(s, "CreateServiceAccountKey", k.project_id);
  MOAT_TRY(auto created,
           accounts->CreateKey(k.account.name, alg.value_or(""), type.value_or(""), &audit));
  return JsonResponse(identity::CreatedKeyToJson(created), audit.revision);
}

Result<http::Response> Upload(const Env& env, Scope& s) {
  MOAT_TRY(KeyScope k, Authorize(env, s, "iam.serviceAccountKeys.create"));
  MOAT_TRY(bj::object body, BodyObject(s.request()));
  MOAT_CHECK_OK(RejectUnknownFields(body, {"publicKeyData"}));
  MOAT_TRY(auto data, json::OptString(body, "publicKeyData"));
  if (!data || data->empty()) return InvalidArgument("publicKeyData is required");
  MOAT_TRY(auto* accounts, Accounts(env));
  auto audit = KeyAudit(s, "UploadServiceAccountKey", k.project_id);
  MOAT_TRY(auto key, accounts->UploadKey(k.account.name, *data, &audit));
  return JsonResponse(identity::KeyToJson(key, k.project_id), audit.revision);
}

Result<http::Response> Get(const Env& env, Scope& s) {
  MOAT_TRY(KeyScope k, Authorize(env, s, "iam.serviceAccountKeys.get"));
  std::string_view key_id = s.request().PathVar("key");
  MOAT_CHECK_OK(CheckPathSegment(key_id, "key"));
  MOAT_TRY(auto type, identity::ParsePublicKeyType(s.request().QueryParam("publicKeyType")));
  if (auto system = FindSystemKey(env, k, key_id, s.now())) {
    return JsonResponse(SystemKeyToJson(*system, k.project_id, type));
  }
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
  const char* verb = op == Op::kDelete ? "deleted" : op == Op::kDisable ? "disabled" : "enabled";
  if (auto system = FindSystemKey(env, k, key_id, s.now())) {
    return FailedPrecondition("service account key `" + system->Name(k.project_id) +
                              "` is a system-managed key and cannot be " + verb +
                              "; Moat rotates it");
  }
  MOAT_TRY(auto* accounts, Accounts(env));
  std::string name = KeyName(k, key_id);
  const char* method = op == Op::kDelete    ? "DeleteServiceAccountKey"
                       : op == Op::kDisable ? "DisableServiceAccountKey"
                                            : "EnableServiceAccountKey";
  auto audit = KeyAudit(s, method, k.project_id);
  switch (op) {
    case Op::kDelete:
      MOAT_CHECK_OK(accounts->DeleteKey(name, &audit));
      break;
    case Op::kDisable:
      MOAT_CHECK_OK(accounts->DisableKey(name, &audit));
      break;
    case Op::kEnable:
      MOAT_CHECK_OK(accounts->EnableKey(name, &audit));
      break;
  }
  return JsonResponse(bj::object(), audit.revision);
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
