// POST /moat/v1/iam:troubleshoot {principal, resource, permission} — Moat's Policy
// Troubleshooter: would PRINCIPAL get PERMISSION on RESOURCE, and why (or why not), decided on
// the current View exactly as the gateway and the API decide.
//
// The answer reveals which bindings at every level (root, project, resource) grant or nearly
// grant, so the caller needs to be able to read those policies: Moat requires
// `resourcemanager.projects.getIamPolicy` on the resource's project (for resources outside a
// project, on the root `organizations/moat`).
#include <boost/json.hpp>

#include "api/handler_util.h"
#include "api/iam_common.h"
#include "api/routes.h"
#include "api/run_common.h"
#include "common/json.h"
#include "iam/member.h"
#include "iam/roles.h"

namespace moat::api {
namespace {

namespace bj = boost::json;

// "//run.googleapis.com/projects/p/…" → "projects/p/…" (Google's full resource names).
std::string StripServicePrefix(std::string_view resource) {
  if (resource.starts_with("//")) {
    size_t slash = resource.find('/', 2);
    if (slash == std::string_view::npos) return {};
    resource.remove_prefix(slash + 1);
  }
  return std::string(resource);
}

Result<iam::Principal> ParsePrincipal(std::string_view text) {
  auto member = iam::ParseMember(text);
  if (member && member->kind == iam::MemberKind::kUser) return iam::Principal::User(member->value);
  if (member && member->kind == iam::MemberKind::kServiceAccount &&
      member->value.find('[') == std::string::npos) {
    return iam::Principal::ServiceAccount(member->value);
  }
  return InvalidArgument("principal `" + std::string(text) +
                         "` is not valid: use `user:EMAIL` or `serviceAccount:EMAIL`");
}

Result<http::Response> Troubleshoot(Scope& s) {
  MOAT_TRY(bj::object body, BodyObject(s.request()));
  MOAT_CHECK_OK(RejectUnknownFields(body, {"principal", "resource", "permission"}));
  MOAT_TRY(auto principal_text, json::OptString(body, "principal"));
  MOAT_TRY(auto resource_text, json::OptString(body, "resource"));
  MOAT_TRY(auto permission, json::OptString(body, "permission"));
  if (!principal_text || principal_text->empty()) {
    return InvalidArgument("field `principal` is required");
  }
  if (!resource_text || resource_text->empty()) {
    return InvalidArgument("field `resource` is required");
  }
  if (!permission || permission->empty()) return InvalidArgument("field `permission` is required");
  std::string resource = StripServicePrefix(*resource_text);
  if (resource.empty() || resource.find("//") != std::string::npos) {
    return InvalidArgument("resource `" + *resource_text + "` is not a resource name");
  }
  MOAT_TRY(iam::Principal principal, ParsePrincipal(*principal_text));
  MOAT_CHECK_OK(iam::ValidatePermissionName(*permission));
  std::string project = ProjectOf(resource);
  MOAT_CHECK_OK(s.Require(project.empty() ? std::string(kRootResource) : project,
                          "resourcemanager.projects.getIamPolicy"));

  const iam::Snapshot& snapshot = *s.view().iam;
  iam::PrincipalSet set = snapshot.Resolve(principal);
  iam::Decision d = snapshot.Check(set, resource, *permission, s.now(), iam::Explain::kYes);
  bj::object out;
  out["principal"] = principal.ToString();
  out["resource"] = resource;
  out["permission"] = *permission;
  out["access"] = d.allowed ? "GRANTED" : "NOT_GRANTED";
  out["decision"] = d.ToJson();
  if (!set.groups.empty()) {
    bj::array groups;
    for (const auto& g : set.groups) groups.emplace_back("group:" + g);
    out["groups"] = std::move(groups);
  }
  return JsonResponse(out);
}

}  // namespace

void RegisterTroubleshootRoutes(http::Router& router, const Env& env) {
  AddRoute(
      router, "POST", "/moat/v1/iam:troubleshoot",
      [&env](const http::Request& req) { return Handle(env, req, Troubleshoot); },
      /*blocking=*/false);
}

}  // namespace moat::api
