// Moat's built-in directory (docs/api.md "Moat's own"); every permission is checked on the root
// resource (organizations/moat), where `moat.*` roles are granted:
//   GET    /moat/v1/users                       moat.users.list
//   POST   /moat/v1/users                       moat.users.create   {email, password?,
//   displayName?} GET    /moat/v1/users/{email}               moat.users.get PATCH
//   /moat/v1/users/{email}?updateMask=   moat.users.update   displayName,password,disabled DELETE
//   /moat/v1/users/{email}               moat.users.delete GET    /moat/v1/groups moat.groups.list
//   POST   /moat/v1/groups                      moat.groups.create  {email, displayName?,
//   description?, members?} GET    /moat/v1/groups/{email}              moat.groups.get PATCH
//   /moat/v1/groups/{email}?updateMask=  moat.groups.update  displayName,description,members DELETE
//   /moat/v1/groups/{email}              moat.groups.delete POST /moat/v1/groups/{email}:addMember
//   moat.groups.update  {member} POST   /moat/v1/groups/{email}:removeMember moat.groups.update
//   {member} GET    /moat/v1/trustedIssuers              moat.trustedIssuers.list POST
//   /moat/v1/trustedIssuers              moat.trustedIssuers.create {id, issuer, jwksUri,
//   audiences?} GET    /moat/v1/trustedIssuers/{id}         moat.trustedIssuers.get DELETE
//   /moat/v1/trustedIssuers/{id}         moat.trustedIssuers.delete
// Responses never carry password hashes (identity/records.h JSON). A user created without a
// password gets a random 32-byte one nobody knows: such users sign in through a trusted issuer.
// Every mutation commits in one transaction with its audit entry: PATCHes are read-modify-writes
// here; create/delete/member operations are identity/principals.h's, given an AuditHook.
#include <boost/json.hpp>

#include "api/iam_common.h"
#include "api/routes.h"
#include "api/run_common.h"
#include "common/json.h"
#include "common/random.h"
#include "identity/principals.h"
#include "identity/records.h"

namespace moat::api {
namespace {

namespace bj = boost::json;
using store::Collection;

constexpr std::string_view kRoot = kMoatRootResource;

Result<std::string> StringField(const bj::object& o, std::string_view key) {
  MOAT_TRY(auto v, json::OptString(o, key));
  return v.value_or("");
}

Result<std::vector<std::string>> StringList(const bj::object& o, std::string_view key) {
  MOAT_TRY(const bj::array* a, json::OptArray(o, key));
  std::vector<std::string> out;
  if (!a) return out;
  for (const auto& v : *a) {
    if (!v.is_string()) return InvalidArgument("`" + std::string(key) + "` must hold strings");
    out.emplace_back(v.as_string());
  }
  return out;
}

// The update mask of a PATCH: `updateMask` in the query, else the body's updatable fields.
Result<std::vector<std::string>> PatchMask(const http::Request& req, const bj::object& body,
                                           std::initializer_list<std::string_view> allowed) {
  std::vector<std::string> mask;
  std::string_view q = req.QueryParam("updateMask");
  if (!q.empty()) {
    mask = SplitMask(q);
  } else {
    for (std::string_view f : allowed) {
      if (body.contains(f)) mask.emplace_back(f);
    }
  }
  if (mask.empty()) return InvalidArgument("updateMask is required");
  for (const std::string& m : mask) {
    bool ok = false;
    for (std::string_view f : allowed) ok = ok || m == f;
    if (!ok) return InvalidArgument("updateMask path `" + m + "` is not supported");
  }
  return mask;
}

bool Has(const std::vector<std::string>& mask, std::string_view f) {
  for (const auto& m : mask) {
    if (m == f) return true;
  }
  return false;
}

Result<std::string> EmailVar(const http::Request& req, std::string_view what) {
  std::string_view email = req.PathVar("email");
  MOAT_CHECK_OK(CheckPathSegment(email, what));
  return identity::NormalizeEmail(email, what);
}

// --- users ----------------------------------------------------------------------------------

Result<http::Response> ListUsers(const Env& env, Scope& s) {
  MOAT_CHECK_OK(s.Require(kRoot, "moat.users.list"));
  const http::Request& req = s.request();
  MOAT_TRY(int page_size, PageSizeParam(req.QueryParam("pageSize"), 50, 1000));
  identity::Users users(*env.store, *env.clock);
  MOAT_TRY(auto page, users.List(page_size, req.QueryParam("pageToken")));
  bj::array list;
  for (const auto& u : page.users) list.push_back(identity::UserToJson(u));
  bj::object out;
  out["users"] = std::move(list);
  if (!page.next_page_token.empty()) out["nextPageToken"] = page.next_page_token;
  return JsonResponse(out);
}

Result<http::Response> CreateUser(const Env& env, Scope& s) {
  MOAT_CHECK_OK(s.Require(kRoot, "moat.users.create"));
  MOAT_TRY(bj::object body, BodyObject(s.request()));
  MOAT_CHECK_OK(RejectUnknownFields(body, {"email", "password", "displayName"}));
  MOAT_TRY(std::string email, StringField(body, "email"));
  if (email.empty()) return InvalidArgument("email is required");
  MOAT_TRY(auto password, json::OptString(body, "password"));
  MOAT_TRY(std::string display_name, StringField(body, "displayName"));
  // No password: a random one nobody knows (sign-in through a trusted issuer only).
  std::string pw = password ? *password : RandomHex(32);
  identity::Users users(*env.store, *env.clock);
  auto audit = AuditHook<identity::UserRecord>(s, "moat.v1.Users.CreateUser", [](const auto& u) {
    return std::pair{"users/" + u.email, bj::object()};
  });
  MOAT_TRY(auto user, users.Create(email, pw, display_name, &audit));
  return JsonResponse(identity::UserToJson(user), audit.revision);
}

Result<http::Response> GetUser(const Env& env, Scope& s) {
  MOAT_CHECK_OK(s.Require(kRoot, "moat.users.get"));
  MOAT_TRY(std::string email, EmailVar(s.request(), "user email"));
  identity::Users users(*env.store, *env.clock);
  MOAT_TRY(auto user, users.Get(email));
  return JsonResponse(identity::UserToJson(user));
}

Result<http::Response> PatchUser(const Env& env, Scope& s) {
  MOAT_CHECK_OK(s.Require(kRoot, "moat.users.update"));
  MOAT_TRY(std::string email, EmailVar(s.request(), "user email"));
  MOAT_TRY(bj::object body, BodyObject(s.request()));
  MOAT_CHECK_OK(RejectUnknownFields(
      body, {"name", "email", "uniqueId", "displayName", "password", "disabled", "createTime"}));
  MOAT_TRY(auto mask, PatchMask(s.request(), body, {"displayName", "password", "disabled"}));
  MOAT_TRY(std::string display_name, StringField(body, "displayName"));
  if (display_name.size() > 100) return InvalidArgument("displayName must be at most 100 bytes");
  MOAT_TRY(auto disabled, json::OptBool(body, "disabled"));
  std::string hash;
  if (Has(mask, "password")) {  // Argon2id outside the write transaction
    MOAT_TRY(auto password, json::OptString(body, "password"));
    if (!password) return InvalidArgument("password is required by the updateMask");
    MOAT_TRY(hash, identity::HashPassword(*password));
  }
  MOAT_TRY(auto tx, env.store->Begin());
  MOAT_TRY(auto doc, tx->Get(Collection::kUsers, email));
  if (!doc) return NotFound("user `" + email + "` not found");
  MOAT_TRY(auto user, identity::UserFromDocument(doc->data));
  if (Has(mask, "displayName")) user.display_name = display_name;
  if (Has(mask, "password")) user.password_hash = hash;
  if (Has(mask, "disabled")) user.disabled = disabled.value_or(false);
  store::PutOptions o;
  o.parent = doc->parent;
  o.precondition = store::Precondition::EtagMatches(doc->etag);
  MOAT_CHECK_OK(tx->Put(Collection::kUsers, email, identity::UserToDocument(user), o));
  std::string joined;
  for (const auto& m : mask) joined += (joined.empty() ? "" : ",") + m;
  MOAT_CHECK_OK(tx->AppendAudit(
      s.Audit("moat.v1.Users.UpdateUser", "users/" + email, {{"updateMask", joined}})));
  MOAT_TRY(int64_t rev, tx->Commit());
  return JsonResponse(identity::UserToJson(user), rev);
}

Result<http::Response> DeleteUser(const Env& env, Scope& s) {
  MOAT_CHECK_OK(s.Require(kRoot, "moat.users.delete"));
  MOAT_TRY(std::string email, EmailVar(s.request(), "user email"));
  identity::Users users(*env.store, *env.clock);
  auto audit = AuditHook<identity::UserRecord>(s, "moat.v1.Users.DeleteUser", [](const auto& u) {
    return std::pair{"users/" + u.email, bj::object()};
  });
  MOAT_CHECK_OK(users.Delete(email, &audit));
  return JsonResponse(bj::object(), audit.revision);
}

// --- groups ---------------------------------------------------------------------------------

Result<http::Response> ListGroups(const Env& env, Scope& s) {
  MOAT_CHECK_OK(s.Require(kRoot, "moat.groups.list"));
  const http::Request& req = s.request();
  MOAT_TRY(int page_size, PageSizeParam(req.QueryParam("pageSize"), 50, 1000));
  identity::Groups groups(*env.store);
  MOAT_TRY(auto page, groups.List(page_size, req.QueryParam("pageToken")));
  bj::array list;
  for (const auto& g : page.groups) list.push_back(identity::GroupToJson(g));
  bj::object out;
  out["groups"] = std::move(list);
  if (!page.next_page_token.empty()) out["nextPageToken"] = page.next_page_token;
  return JsonResponse(out);
}

Result<http::Response> CreateGroup(const Env& env, Scope& s) {
  MOAT_CHECK_OK(s.Require(kRoot, "moat.groups.create"));
  MOAT_TRY(bj::object body, BodyObject(s.request()));
  MOAT_CHECK_OK(RejectUnknownFields(body, {"email", "displayName", "description", "members"}));
  MOAT_TRY(std::string email, StringField(body, "email"));
  if (email.empty()) return InvalidArgument("email is required");
  MOAT_TRY(std::string display_name, StringField(body, "displayName"));
  MOAT_TRY(std::string description, StringField(body, "description"));
  MOAT_TRY(auto members, StringList(body, "members"));
  identity::Groups groups(*env.store);
  auto audit = AuditHook<identity::GroupRecord>(s, "moat.v1.Groups.CreateGroup", [](const auto& g) {
    return std::pair{"groups/" + g.email, bj::object()};
  });
  MOAT_TRY(auto g, groups.Create(email, display_name, description, members, &audit));
  return JsonResponse(identity::GroupToJson(g), audit.revision);
}

Result<http::Response> GetGroup(const Env& env, Scope& s) {
  MOAT_CHECK_OK(s.Require(kRoot, "moat.groups.get"));
  MOAT_TRY(std::string email, EmailVar(s.request(), "group email"));
  identity::Groups groups(*env.store);
  MOAT_TRY(auto g, groups.Get(email));
  return JsonResponse(identity::GroupToJson(g));
}

Result<http::Response> PatchGroup(const Env& env, Scope& s) {
  MOAT_CHECK_OK(s.Require(kRoot, "moat.groups.update"));
  MOAT_TRY(std::string email, EmailVar(s.request(), "group email"));
  MOAT_TRY(bj::object body, BodyObject(s.request()));
  MOAT_CHECK_OK(
      RejectUnknownFields(body, {"name", "email", "displayName", "description", "members"}));
  MOAT_TRY(auto mask, PatchMask(s.request(), body, {"displayName", "description", "members"}));
  MOAT_TRY(std::string display_name, StringField(body, "displayName"));
  MOAT_TRY(std::string description, StringField(body, "description"));
  if (display_name.size() > 100) return InvalidArgument("displayName must be at most 100 bytes");
  if (description.size() > 256) return InvalidArgument("description must be at most 256 bytes");
  std::vector<std::string> members;
  if (Has(mask, "members")) {
    MOAT_TRY(auto raw, StringList(body, "members"));
    for (const auto& m : raw) {
      MOAT_TRY(std::string norm, identity::NormalizeGroupMember(m));
      bool dup = false;
      for (const auto& x : members) dup = dup || x == norm;
      if (!dup) members.push_back(std::move(norm));
    }
  }
  MOAT_TRY(auto tx, env.store->Begin());
  MOAT_TRY(auto doc, tx->Get(Collection::kGroups, email));
  if (!doc) return NotFound("group `" + email + "` not found");
  MOAT_TRY(auto g, identity::GroupFromDocument(doc->data));
  if (Has(mask, "displayName")) g.display_name = display_name;
  if (Has(mask, "description")) g.description = description;
  if (Has(mask, "members")) g.members = members;
  store::PutOptions o;
  o.parent = doc->parent;
  o.precondition = store::Precondition::EtagMatches(doc->etag);
  MOAT_CHECK_OK(tx->Put(Collection::kGroups, email, identity::GroupToDocument(g), o));
  std::string joined;
  for (const auto& m : mask) joined += (joined.empty() ? "" : ",") + m;
  MOAT_CHECK_OK(tx->AppendAudit(
      s.Audit("moat.v1.Groups.UpdateGroup", "groups/" + email, {{"updateMask", joined}})));
  MOAT_TRY(int64_t rev, tx->Commit());
  return JsonResponse(identity::GroupToJson(g), rev);
}

Result<http::Response> DeleteGroup(const Env& env, Scope& s) {
  MOAT_CHECK_OK(s.Require(kRoot, "moat.groups.delete"));
  MOAT_TRY(std::string email, EmailVar(s.request(), "group email"));
  identity::Groups groups(*env.store);
  auto audit = AuditHook<identity::GroupRecord>(s, "moat.v1.Groups.DeleteGroup", [](const auto& g) {
    return std::pair{"groups/" + g.email, bj::object()};
  });
  MOAT_CHECK_OK(groups.Delete(email, &audit));
  return JsonResponse(bj::object(), audit.revision);
}

Result<http::Response> GroupMember(const Env& env, Scope& s, bool add) {
  MOAT_CHECK_OK(s.Require(kRoot, "moat.groups.update"));
  MOAT_TRY(std::string email, EmailVar(s.request(), "group email"));
  MOAT_TRY(bj::object body, BodyObject(s.request()));
  MOAT_CHECK_OK(RejectUnknownFields(body, {"member"}));
  MOAT_TRY(std::string member, StringField(body, "member"));
  if (member.empty()) return InvalidArgument("member is required");
  identity::Groups groups(*env.store);
  auto audit = AuditHook<identity::GroupRecord>(
      s, add ? "moat.v1.Groups.AddMember" : "moat.v1.Groups.RemoveMember",
      [&member](const auto& g) {
        return std::pair{"groups/" + g.email, bj::object{{"member", member}}};
      });
  MOAT_TRY(auto g, add ? groups.AddMember(email, member, &audit)
                       : groups.RemoveMember(email, member, &audit));
  return JsonResponse(identity::GroupToJson(g), audit.revision);
}

// --- trusted issuers ------------------------------------------------------------------------

Result<http::Response> ListIssuers(const Env& env, Scope& s) {
  MOAT_CHECK_OK(s.Require(kRoot, "moat.trustedIssuers.list"));
  identity::TrustedIssuers issuers(*env.store);
  MOAT_TRY(auto all, issuers.List());
  bj::array list;
  for (const auto& i : all) list.push_back(identity::TrustedIssuerToJson(i));
  bj::object out;
  out["trustedIssuers"] = std::move(list);
  return JsonResponse(out);
}

Result<http::Response> CreateIssuer(const Env& env, Scope& s) {
  MOAT_CHECK_OK(s.Require(kRoot, "moat.trustedIssuers.create"));
  MOAT_TRY(bj::object body, BodyObject(s.request()));
  MOAT_CHECK_OK(RejectUnknownFields(body, {"id", "issuer", "jwksUri", "audiences"}));
  MOAT_TRY(std::string id, StringField(body, "id"));
  if (id.empty()) id = std::string(s.request().QueryParam("trustedIssuerId"));
  MOAT_TRY(std::string issuer, StringField(body, "issuer"));
  MOAT_TRY(std::string jwks_uri, StringField(body, "jwksUri"));
  MOAT_TRY(auto audiences, StringList(body, "audiences"));
  identity::TrustedIssuers issuers(*env.store);
  auto audit = AuditHook<identity::TrustedIssuerRecord>(
      s, "moat.v1.TrustedIssuers.CreateTrustedIssuer", [](const auto& t) {
        return std::pair{"trustedIssuers/" + t.id, bj::object{{"issuer", t.issuer}}};
      });
  MOAT_TRY(auto rec, issuers.Create(id, issuer, jwks_uri, audiences, &audit));
  return JsonResponse(identity::TrustedIssuerToJson(rec), audit.revision);
}

Result<http::Response> GetIssuer(const Env& env, Scope& s) {
  MOAT_CHECK_OK(s.Require(kRoot, "moat.trustedIssuers.get"));
  std::string_view id = s.request().PathVar("id");
  MOAT_CHECK_OK(CheckPathSegment(id, "trusted issuer id"));
  identity::TrustedIssuers issuers(*env.store);
  MOAT_TRY(auto rec, issuers.Get(id));
  return JsonResponse(identity::TrustedIssuerToJson(rec));
}

Result<http::Response> DeleteIssuer(const Env& env, Scope& s) {
  MOAT_CHECK_OK(s.Require(kRoot, "moat.trustedIssuers.delete"));
  std::string_view id = s.request().PathVar("id");
  MOAT_CHECK_OK(CheckPathSegment(id, "trusted issuer id"));
  identity::TrustedIssuers issuers(*env.store);
  auto audit = AuditHook<identity::TrustedIssuerRecord>(
      s, "moat.v1.TrustedIssuers.DeleteTrustedIssuer", [](const auto& t) {
        return std::pair{"trustedIssuers/" + t.id, bj::object{{"issuer", t.issuer}}};
      });
  MOAT_CHECK_OK(issuers.Delete(id, &audit));
  return JsonResponse(bj::object(), audit.revision);
}

}  // namespace

void RegisterDirectoryRoutes(http::Router& router, const Env& env) {
  using Fn = Result<http::Response> (*)(const Env&, Scope&);
  auto add = [&](std::string_view method, std::string_view pattern, Fn fn) {
    AddRoute(
        router, method, pattern,
        [&env, fn](const http::Request& req) {
          return Handle(env, req, [&](Scope& s) -> Result<http::Response> { return fn(env, s); });
        },
        /*blocking=*/true);
  };
  add("GET", "/moat/v1/users", &ListUsers);
  add("POST", "/moat/v1/users", &CreateUser);
  add("GET", "/moat/v1/users/{email}", &GetUser);
  add("PATCH", "/moat/v1/users/{email}", &PatchUser);
  add("DELETE", "/moat/v1/users/{email}", &DeleteUser);
  add("GET", "/moat/v1/groups", &ListGroups);
  add("POST", "/moat/v1/groups", &CreateGroup);
  add("GET", "/moat/v1/groups/{email}", &GetGroup);
  add("PATCH", "/moat/v1/groups/{email}", &PatchGroup);
  add("DELETE", "/moat/v1/groups/{email}", &DeleteGroup);
  add("POST", "/moat/v1/groups/{email}:addMember",
      [](const Env& e, Scope& s) { return GroupMember(e, s, true); });
  add("POST", "/moat/v1/groups/{email}:removeMember",
      [](const Env& e, Scope& s) { return GroupMember(e, s, false); });
  add("GET", "/moat/v1/trustedIssuers", &ListIssuers);
  add("POST", "/moat/v1/trustedIssuers", &CreateIssuer);
  add("GET", "/moat/v1/trustedIssuers/{id}", &GetIssuer);
  add("DELETE", "/moat/v1/trustedIssuers/{id}", &DeleteIssuer);
}

}  // namespace moat::api
