// IAM policy methods for every policy-bearing resource, with one implementation:
//   services         GET  /v2/projects/{p}/locations/{l}/services/{s}:getIamPolicy   (+ /v1 alias)
//                    POST …:setIamPolicy | :testIamPermissions | :addIamPolicyBinding |
//                         :removeIamPolicyBinding
//   projects         POST /v1|v3/projects/{p}:getIamPolicy | … (Resource Manager)
//   the root policy  POST /moat/v1/root:getIamPolicy | …
//   service accounts POST /v1/projects/{p}/serviceAccounts/{sa}:getIamPolicy | …
//
// Semantics (GOOGLE.md §3.3): a resource without a policy answers {"etag":"ACAB"}; setIamPolicy
// replaces the fields named by updateMask (default "bindings,etag"), an etag that is not the
// stored one fails with 409 ABORTED and Google's message, no etag overwrites blindly; the
// stored policy is validated against the current role catalog. Atomic binding edits (Moat's
// extension) read, modify and write inside one store transaction, so they never conflict.
#include <boost/json.hpp>
#include <functional>

#include "api/handler_util.h"
#include "api/iam_common.h"
#include "api/routes.h"
#include "api/run_common.h"
#include "common/json.h"
#include "iam/policy.h"
#include "iam/roles.h"
#include "identity/directory.h"

namespace moat::api {
namespace {

namespace bj = boost::json;
using store::Collection;

// The etag of a resource that has no policy document yet.
constexpr std::string_view kEmptyPolicyEtag = "ACAB";

enum class Kind { kService, kProject, kRoot, kServiceAccount };

struct Target {
  Kind kind = Kind::kService;
  std::string resource;  // the IAM resource name (authorization, validation, audit)
  std::string doc_key;   // the policies-collection key
  std::string get_permission;
  std::string set_permission;
  std::string method_prefix;   // audit method names: PREFIX + "SetIamPolicy"
  std::string set_method;      // Google's name of setIamPolicy for this resource
  bool known_missing = false;  // resolution already showed the resource does not exist
};

Status CheckSegment(std::string_view value, std::string_view what) {
  if (value.empty() || value.find('/') != std::string_view::npos ||
      value.find('\0') != std::string_view::npos) {
    return InvalidArgument(std::string(what) + " `" + std::string(value) + "` is not valid");
  }
  return Ok();
}

using Resolver = std::function<Result<Target>(const Scope&, const http::Request&)>;

Result<Target> ResolveService(const Scope&, const http::Request& req) {
  MOAT_CHECK_OK(CheckSegment(req.PathVar("project"), "project"));
  MOAT_CHECK_OK(CheckSegment(req.PathVar("location"), "location"));
  MOAT_CHECK_OK(CheckSegment(req.PathVar("service"), "service"));
  Target t;
  t.kind = Kind::kService;
  t.resource = "projects/" + std::string(req.PathVar("project")) + "/locations/" +
               std::string(req.PathVar("location")) + "/services/" +
               std::string(req.PathVar("service"));
  t.doc_key = t.resource;
  t.get_permission = "run.services.getIamPolicy";
  t.set_permission = "run.services.setIamPolicy";
  t.method_prefix = "google.cloud.run.v2.Services.";
  t.set_method = "google.cloud.run.v2.Services.SetIamPolicy";
  return t;
}

Result<Target> ResolveProject(const Scope&, const http::Request& req) {
  MOAT_CHECK_OK(CheckSegment(req.PathVar("project"), "project"));
  Target t;
  t.kind = Kind::kProject;
  t.resource = "projects/" + std::string(req.PathVar("project"));
  t.doc_key = t.resource;
  t.get_permission = "resourcemanager.projects.getIamPolicy";
  t.set_permission = "resourcemanager.projects.setIamPolicy";
  t.method_prefix = "google.cloudresourcemanager.v1.Projects.";
  t.set_method = "google.cloudresourcemanager.v1.Projects.SetIamPolicy";
  return t;
}

Result<Target> ResolveRoot(const Scope&, const http::Request&) {
  Target t;
  t.kind = Kind::kRoot;
  t.resource = std::string(kRootResource);
  t.doc_key = std::string(kRootPolicyKey);
  t.get_permission = "resourcemanager.projects.getIamPolicy";
  t.set_permission = "resourcemanager.projects.setIamPolicy";
  t.method_prefix = "google.iam.v1.IAMPolicy.";
  t.set_method = "google.iam.v1.IAMPolicy.SetIamPolicy";
  return t;
}

// {sa} is an email or a unique id; the policy lives under the account's canonical name.
Result<Target> ResolveServiceAccount(const Scope& s, const http::Request& req) {
  std::string project(req.PathVar("project"));
  std::string sa(req.PathVar("sa"));
  MOAT_CHECK_OK(CheckSegment(project, "project"));
  MOAT_CHECK_OK(CheckSegment(sa, "service account"));
  Target t;
  t.kind = Kind::kServiceAccount;
  t.get_permission = "iam.serviceAccounts.getIamPolicy";
  t.set_permission = "iam.serviceAccounts.setIamPolicy";
  t.method_prefix = "google.iam.admin.v1.";
  t.set_method = "google.iam.admin.v1.SetIAMPolicy";
  const identity::ServiceAccountRecord* rec =
      s.view().directory ? s.view().directory->FindServiceAccount(sa) : nullptr;
  if (rec && !rec->delete_time && (project == "-" || project == rec->project_id)) {
    t.resource = rec->Name();
  } else {
    t.resource = "projects/" + project + "/serviceAccounts/" + sa;
    t.known_missing = true;
  }
  t.doc_key = t.resource;
  return t;
}

// Whether the resource exists (read inside `tx` where the store holds it).
Result<bool> Exists(const Target& t, store::Transaction& tx) {
  switch (t.kind) {
    case Kind::kService: {
      MOAT_TRY(auto doc, tx.Get(Collection::kServices, t.resource));
      return doc.has_value();
    }
    case Kind::kServiceAccount:
      return !t.known_missing;
    case Kind::kProject:  // projects exist implicitly (DESIGN.md: "implicit on first use")
    case Kind::kRoot:
      return true;
  }
  return false;
}

Error NotFoundError(const Target& t) {
  if (t.kind == Kind::kServiceAccount && t.resource.starts_with("projects/-/")) {
    // GOOGLE.md §3.4: a missing account through the `-` wildcard is PERMISSION_DENIED.
    return PermissionDeniedOn(t.resource, t.get_permission);
  }
  return NotFound("Resource '" + t.resource + "' was not found");
}

Result<iam::Policy> ParseStored(const std::optional<store::Document>& doc) {
  if (!doc) return iam::Policy{};
  auto p = iam::ParsePolicy(doc->data);
  if (!p) return Internal("the stored policy of `" + doc->key + "` cannot be read");
  return std::move(*p);
}

// The policy as answered: formatted for `version`, with the store etag.
Result<bj::object> PolicyResponse(const iam::Policy& policy, std::string_view etag, int version) {
  MOAT_TRY(iam::Policy out, iam::FormatForVersion(policy, version));
  out.etag = std::string(etag);
  return iam::PolicyToJson(out);
}

// options.requestedPolicyVersion, from the query or (POST) the body's `options`.
Result<int> RequestedVersion(const http::Request& req, const bj::object* body) {
  MOAT_TRY(int64_t v, QueryInt(req, "options.requestedPolicyVersion", 0));
  if (body) {
    MOAT_CHECK_OK(RejectUnknownFields(*body, {"options"}));
    MOAT_TRY(const bj::object* options, json::OptObject(*body, "options"));
    if (options) {
      MOAT_CHECK_OK(RejectUnknownFields(*options, {"requestedPolicyVersion"}, "options"));
      MOAT_TRY(auto bv, json::OptInt(*options, "requestedPolicyVersion"));
      if (bv) v = *bv;
    }
  }
  if (v < 0 || v > 1000)
    return InvalidArgument("invalid requested policy version `" + std::to_string(v) + "`");
  return static_cast<int>(v);
}

Result<http::Response> GetPolicy(Scope& s, const Resolver& resolve) {
  const http::Request& req = s.request();
  std::optional<bj::object> body;
  if (req.method == "POST") {
    MOAT_TRY(body, BodyObject(req));
  }
  MOAT_TRY(int version, RequestedVersion(req, body ? &*body : nullptr));
  MOAT_TRY(Target t, resolve(s, req));
  MOAT_CHECK_OK(s.Require(t.resource, t.get_permission));
  MOAT_TRY(auto tx, s.env().store->BeginRead());
  MOAT_TRY(bool exists, Exists(t, *tx));
  if (!exists) return NotFoundError(t);
  MOAT_TRY(auto doc, tx->Get(Collection::kPolicies, t.doc_key));
  tx->Rollback();
  if (!doc) {
    bj::object empty;
    empty["etag"] = std::string(kEmptyPolicyEtag);
    return JsonResponse(empty, 0);
  }
  MOAT_TRY(iam::Policy policy, ParseStored(doc));
  MOAT_TRY(bj::object out, PolicyResponse(policy, doc->etag, version));
  return JsonResponse(out);
}

// Writes the policy (creating the project record a project policy implies) and its audit
// entry in `tx`; returns the written document.
Result<store::Document> WritePolicy(Scope& s, store::Transaction& tx, const Target& t,
                                    const iam::Policy& before, const iam::Policy& after,
                                    const std::string& method) {
  if (t.kind == Kind::kProject) {
    MOAT_CHECK_OK(EnsureProject(tx, t.resource, s.now()));
  }
  iam::Policy stored = after;
  stored.etag.clear();
  MOAT_TRY(store::Document doc,
           tx.Put(Collection::kPolicies, t.doc_key, iam::SerializePolicy(stored)));
  bj::object details;
  details["bindingDeltas"] = iam::BindingDeltasToJson(iam::DiffPolicies(before, after));
  MOAT_CHECK_OK(tx.AppendAudit(s.Audit(method, t.resource, std::move(details))));
  return doc;
}

Result<http::Response> SetPolicy(Scope& s, const Resolver& resolve) {
  const http::Request& req = s.request();
  MOAT_TRY(bj::object body, BodyObject(req));
  MOAT_CHECK_OK(RejectUnknownFields(body, {"policy", "updateMask", "update_mask"}));
  MOAT_TRY(Target t, resolve(s, req));
  MOAT_CHECK_OK(s.Require(t.resource, t.set_permission));
  MOAT_TRY(const bj::object* policy_obj, json::OptObject(body, "policy"));
  if (!policy_obj) return InvalidArgument("field `policy` is required");
  MOAT_TRY(iam::Policy requested, iam::ParsePolicy(*policy_obj, "policy"));
  MOAT_TRY(auto mask_text, json::OptString(body, "updateMask"));
  if (!mask_text) {
    MOAT_TRY(mask_text, json::OptString(body, "update_mask"));
  }
  std::vector<std::string> mask = SplitMask(mask_text.value_or(""));
  if (mask.empty()) mask = {"bindings", "etag"};
  bool set_bindings = false, set_audit = false, set_version = false;
  for (const auto& path : mask) {
    if (path == "bindings") {
      set_bindings = true;
    } else if (path == "auditConfigs" || path == "audit_configs") {
      set_audit = true;
    } else if (path == "version") {
      set_version = true;
    } else if (path != "etag") {
      return InvalidArgument("update mask path `" + path +
                             "` is not valid: use bindings, etag, auditConfigs or version");
    }
  }

  MOAT_TRY(auto tx, s.env().store->Begin());
  MOAT_TRY(bool exists, Exists(t, *tx));
  if (!exists) return NotFoundError(t);
  MOAT_TRY(auto doc, tx->Get(Collection::kPolicies, t.doc_key));
  // The etag is always honoured when present (even if the mask omits it): a stale
  // read-modify-write must not silently win.
  if (!requested.etag.empty()) {
    std::string current = doc ? doc->etag : std::string(kEmptyPolicyEtag);
    if (requested.etag != current) {
      return Aborted(std::string(store::kConcurrentPolicyChangeMessage));
    }
  }
  MOAT_TRY(iam::Policy before, ParseStored(doc));
  iam::Policy after = before;
  if (set_bindings) {
    after.bindings = requested.bindings;
    after.version = requested.version;
  }
  if (set_version) after.version = requested.version;
  if (set_audit) after.audit_configs = requested.audit_configs;
  iam::NormalizePolicy(after);
  MOAT_CHECK_OK(iam::ValidatePolicy(after, s.view().iam->roles(), t.resource));
  MOAT_TRY(store::Document written, WritePolicy(s, *tx, t, before, after, t.set_method));
  MOAT_TRY(int64_t revision, tx->Commit());
  MOAT_TRY(bj::object out, PolicyResponse(after, written.etag, 3));
  return JsonResponse(out, revision);
}

Result<http::Response> TestPermissions(Scope& s, const Resolver& resolve) {
  // Like every Google API call, an anonymous one is refused (not answered as allUsers).
  if (!s.caller().authenticated()) {
    return Unauthenticated(
        "request is missing a valid credential; send `Authorization: Bearer TOKEN`");
  }
  const http::Request& req = s.request();
  MOAT_TRY(bj::object body, BodyObject(req));
  MOAT_CHECK_OK(RejectUnknownFields(body, {"permissions"}));
  MOAT_TRY(const bj::array* perms, json::OptArray(body, "permissions"));
  std::vector<std::string> names;
  if (perms) {
    for (const auto& p : *perms) {
      if (!p.is_string()) {
        return InvalidArgument("invalid value at `permissions`: expected a list of strings");
      }
      MOAT_CHECK_OK(iam::ValidatePermissionName(p.as_string()));
      names.emplace_back(p.as_string());
    }
  }
  MOAT_TRY(Target t, resolve(s, req));
  bj::object out;
  MOAT_TRY(auto tx, s.env().store->BeginRead());
  MOAT_TRY(bool exists, Exists(t, *tx));
  tx->Rollback();
  // GOOGLE.md §3.3: a missing resource yields an empty set, not NOT_FOUND.
  if (!exists) return JsonResponse(out);
  std::vector<std::string> held =
      s.view().iam->TestPermissions(s.principal_set(), t.resource, names, s.now());
  if (!held.empty()) {
    bj::array arr;
    for (auto& h : held) arr.emplace_back(h);
    out["permissions"] = std::move(arr);
  }
  return JsonResponse(out);
}

Result<std::optional<iam::Condition>> ConditionFrom(const bj::object& body) {
  MOAT_TRY(const bj::object* c, json::OptObject(body, "condition"));
  if (!c) return std::optional<iam::Condition>();
  MOAT_CHECK_OK(
      RejectUnknownFields(*c, {"expression", "title", "description", "location"}, "condition"));
  iam::Condition cond;
  MOAT_TRY(auto expression, json::OptString(*c, "expression"));
  MOAT_TRY(auto title, json::OptString(*c, "title"));
  MOAT_TRY(auto description, json::OptString(*c, "description"));
  MOAT_TRY(auto location, json::OptString(*c, "location"));
  if (!expression || expression->empty()) {
    return InvalidArgument("field `condition.expression` is required");
  }
  cond.expression = *expression;
  cond.title = title.value_or("");
  cond.description = description.value_or("");
  cond.location = location.value_or("");
  return std::optional<iam::Condition>(std::move(cond));
}

Result<http::Response> EditBinding(Scope& s, const Resolver& resolve, bool add) {
  const http::Request& req = s.request();
  MOAT_TRY(bj::object body, BodyObject(req));
  MOAT_CHECK_OK(RejectUnknownFields(body, {"member", "role", "condition"}));
  MOAT_TRY(auto member, json::OptString(body, "member"));
  MOAT_TRY(auto role, json::OptString(body, "role"));
  if (!member || member->empty()) return InvalidArgument("field `member` is required");
  if (!role || role->empty()) return InvalidArgument("field `role` is required");
  MOAT_TRY(auto condition, ConditionFrom(body));
  MOAT_TRY(Target t, resolve(s, req));
  MOAT_CHECK_OK(s.Require(t.resource, t.set_permission));

  MOAT_TRY(auto tx, s.env().store->Begin());
  MOAT_TRY(bool exists, Exists(t, *tx));
  if (!exists) return NotFoundError(t);
  MOAT_TRY(auto doc, tx->Get(Collection::kPolicies, t.doc_key));
  MOAT_TRY(iam::Policy before, ParseStored(doc));
  iam::Policy after = before;
  bool changed = true;
  if (add) {
    MOAT_TRY(changed, iam::AddMember(after, *role, *member, condition));
  } else {
    MOAT_CHECK_OK(iam::RemoveMember(after, *role, *member, condition));
  }
  iam::NormalizePolicy(after);
  MOAT_CHECK_OK(iam::ValidatePolicy(after, s.view().iam->roles(), t.resource));
  std::string etag = doc ? doc->etag : std::string(kEmptyPolicyEtag);
  if (changed) {
    MOAT_TRY(
        store::Document written,
        WritePolicy(s, *tx, t, before, after,
                    t.method_prefix + (add ? "AddIamPolicyBinding" : "RemoveIamPolicyBinding")));
    etag = written.etag;
  }
  // Unchanged (the member was already there): nothing is written; the revision is the one
  // the transaction read at.
  MOAT_TRY(int64_t revision, tx->Commit());
  bj::object out;
  MOAT_TRY(bj::object p, PolicyResponse(after, etag, 3));
  out["policy"] = std::move(p);
  return JsonResponse(out, revision);
}

void AddPolicyRoutes(http::Router& router, const Env& env, const std::string& base,
                     const char* get_method, Resolver resolve) {
  auto add = [&](const char* method, const std::string& verb,
                 std::function<Result<http::Response>(Scope&, const Resolver&)> fn) {
    AddRoute(
        router, method, base + ":" + verb,
        [&env, resolve, fn](const http::Request& req) {
          return Handle(env, req, [&](Scope& s) { return fn(s, resolve); });
        },
        /*blocking=*/true);
  };
  add(get_method, "getIamPolicy", GetPolicy);
  add("POST", "setIamPolicy", SetPolicy);
  add("POST", "testIamPermissions", TestPermissions);
  add("POST", "addIamPolicyBinding",
      [](Scope& s, const Resolver& r) { return EditBinding(s, r, true); });
  add("POST", "removeIamPolicyBinding",
      [](Scope& s, const Resolver& r) { return EditBinding(s, r, false); });
}

}  // namespace

void RegisterPolicyRoutes(http::Router& router, const Env& env) {
  for (const char* v : {"/v2", "/v1"}) {
    AddPolicyRoutes(router, env,
                    std::string(v) + "/projects/{project}/locations/{location}/services/{service}",
                    "GET", ResolveService);
  }
  for (const char* v : {"/v1", "/v3"}) {
    AddPolicyRoutes(router, env, std::string(v) + "/projects/{project}", "POST", ResolveProject);
  }
  AddPolicyRoutes(router, env, "/moat/v1/root", "POST", ResolveRoot);
  AddPolicyRoutes(router, env, "/v1/projects/{project}/serviceAccounts/{sa}", "POST",
                  ResolveServiceAccount);
}

}  // namespace moat::api
