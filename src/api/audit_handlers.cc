// Moat's audit log API:
//   GET /moat/v1/auditLogs?resource=&resourcePrefix=&principal=&kind=&startTime=&endTime=
//       &pageSize=&pageToken=                      → {"entries":[…],"nextPageToken"}
//   GET /moat/v1/requests/{requestId}:explain      → {"requestId","entries":[…]}
// Entries are newest first: {id, time, kind, principal, method, resource, requestId, status,
// details}. ADMIN_ACTIVITY entries come from API mutations (policy changes carry
// details.bindingDeltas); DATA_ACCESS entries from the gateway's decisions (a denial's reason
// is in details, never in the response the caller got).
//
// Authorization: `moat.auditLogs.list`. A query confined to one project (resource or
// resourcePrefix inside projects/P) needs it on projects/P and only returns that project's
// entries; any other query needs it on the root (organizations/moat). :explain returns the
// entries of the request the caller may list, PERMISSION_DENIED if there are some but none
// of them, NOT_FOUND if there are none.
#include <boost/json.hpp>

#include "api/handler_util.h"
#include "api/iam_common.h"
#include "api/routes.h"
#include "api/run_common.h"
#include "common/json.h"
#include "common/time.h"

namespace moat::api {
namespace {

namespace bj = boost::json;

constexpr std::string_view kPermission = "moat.auditLogs.list";

bj::object EntryJson(const store::AuditRecord& r) {
  bj::object o;
  o["id"] = std::to_string(r.id);
  o["time"] = FormatRfc3339(r.entry.time);
  o["kind"] = std::string(store::AuditKindName(r.entry.kind));
  o["principal"] = r.entry.principal;
  o["method"] = r.entry.method;
  o["resource"] = r.entry.resource;
  o["requestId"] = r.entry.request_id;
  o["status"] = r.entry.status;
  auto details = json::Parse(r.entry.details, "audit details");
  o["details"] = details ? std::move(*details) : bj::value(r.entry.details);
  return o;
}

Result<std::optional<TimePoint>> TimeParam(const http::Request& req, std::string_view name) {
  std::string_view v = req.QueryParam(name);
  if (v.empty()) return std::optional<TimePoint>();
  auto t = ParseRfc3339(v);
  if (!t) {
    return InvalidArgument("query parameter `" + std::string(name) +
                           "` must be an RFC 3339 time such as `2024-01-02T03:04:05Z`");
  }
  return std::optional<TimePoint>(*t);
}

Result<http::Response> ListAuditLogs(Scope& s) {
  const http::Request& req = s.request();
  store::AuditQuery q;
  std::string resource(req.QueryParam("resource"));
  std::string prefix(req.QueryParam("resourcePrefix"));
  if (!resource.empty() && !prefix.empty()) {
    return InvalidArgument("pass `resource` or `resourcePrefix`, not both");
  }
  q.resource = resource.empty() ? prefix : resource;
  q.resource_is_prefix = !prefix.empty();
  q.principal = std::string(req.QueryParam("principal"));
  std::string_view kind = req.QueryParam("kind");
  if (kind == "ADMIN_ACTIVITY") {
    q.kind = store::AuditKind::kAdminActivity;
  } else if (kind == "DATA_ACCESS") {
    q.kind = store::AuditKind::kDataAccess;
  } else if (!kind.empty()) {
    return InvalidArgument("query parameter `kind` must be ADMIN_ACTIVITY or DATA_ACCESS");
  }
  MOAT_TRY(q.start_time, TimeParam(req, "startTime"));
  MOAT_TRY(q.end_time, TimeParam(req, "endTime"));
  MOAT_TRY(q.page_size,
           PageSizeParam(req.QueryParam("pageSize"), store::kDefaultPageSize, store::kMaxPageSize));
  q.page_token = std::string(req.QueryParam("pageToken"));
  // INVARIANT: a project-scoped caller only sees entries of that project.
  std::string project = ProjectOf(q.resource);
  MOAT_CHECK_OK(s.Require(project.empty() ? std::string(kRootResource) : project, kPermission));
  MOAT_TRY(store::AuditPage page, s.env().store->QueryAudit(q));
  bj::array entries;
  for (const auto& r : page.records) {
    if (!project.empty() && ProjectOf(r.entry.resource) != project) continue;
    entries.emplace_back(EntryJson(r));
  }
  bj::object out;
  if (!entries.empty()) out["entries"] = std::move(entries);
  if (!page.next_page_token.empty()) out["nextPageToken"] = page.next_page_token;
  return JsonResponse(out);
}

Result<http::Response> ExplainRequest(Scope& s) {
  std::string request_id(s.request().PathVar("requestId"));
  if (request_id.empty()) return InvalidArgument("a request id is required");
  if (!s.caller().authenticated()) return s.Require(kRootResource, kPermission).error();
  store::AuditQuery q;
  q.request_id = request_id;
  q.kind = store::AuditKind::kDataAccess;
  q.page_size = store::kMaxPageSize;
  MOAT_TRY(store::AuditPage page, s.env().store->QueryAudit(q));
  if (page.records.empty()) {
    return NotFound("no gateway decision was recorded for request `" + request_id + "`");
  }
  bj::array entries;
  std::string denied_on;
  for (const auto& r : page.records) {
    std::string project = ProjectOf(r.entry.resource);
    std::string scope = project.empty() ? std::string(kRootResource) : project;
    if (!s.Has(scope, kPermission)) {
      denied_on = scope;
      continue;
    }
    entries.emplace_back(EntryJson(r));
  }
  if (entries.empty()) return PermissionDeniedOn(denied_on, kPermission);
  bj::object out;
  out["requestId"] = request_id;
  out["entries"] = std::move(entries);
  return JsonResponse(out);
}

}  // namespace

void RegisterAuditRoutes(http::Router& router, const Env& env) {
  AddRoute(
      router, "GET", "/moat/v1/auditLogs",
      [&env](const http::Request& req) { return Handle(env, req, ListAuditLogs); },
      /*blocking=*/true);
  AddRoute(
      router, "GET", "/moat/v1/requests/{requestId}:explain",
      [&env](const http::Request& req) { return Handle(env, req, ExplainRequest); },
      /*blocking=*/true);
}

}  // namespace moat::api
