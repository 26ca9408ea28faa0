// Operations endpoints:
//   GET /moat/v1/projects/{p}/locations/{l}/services/{s}:logs?limit=N   run.services.get
//       → {"entries":[{"timestamp","severity","textPayload"}]}, oldest first; severity ERROR for
//       stderr lines, INFO otherwise. Google's Cloud Logging would require
//       logging.logEntries.list on the project; Moat has no logging.* permissions, and whoever
//       may see a service's definition (its command, env) may see its output, so the service's
//       run.services.get is the check. 501 when the server runs no commands (no log source).
//   GET /healthz   "ok" (public)
//   GET /metrics   Prometheus text (public, like most exporters; bind the API to loopback or
//                  put it behind a proxy to restrict it): API responses by status, requests
//                  by route and status and a latency histogram by route (every API route:
//                  AddRoute), the store revision, the View's revision, then the gateway's
//                  counters (ApiServices::extra_metrics).
#include <boost/json.hpp>

#include "api/iam_common.h"
#include "api/routes.h"
#include "common/time.h"
#include "state/live_state.h"
#include "store/store.h"

namespace moat::api {
namespace {

namespace bj = boost::json;

constexpr int64_t kDefaultLogLimit = 100;
constexpr int64_t kMaxLogLimit = 10'000;

Result<http::Response> Logs(const Env& env, Scope& s) {
  const http::Request& req = s.request();
  std::string_view project = req.PathVar("project");
  std::string_view location = req.PathVar("location");
  std::string_view service = req.PathVar("service");
  MOAT_CHECK_OK(CheckPathSegment(project, "project"));
  MOAT_CHECK_OK(CheckPathSegment(location, "location"));
  MOAT_CHECK_OK(CheckPathSegment(service, "service"));
  std::string name = "projects/" + std::string(project) + "/locations/" + std::string(location) +
                     "/services/" + std::string(service);
  MOAT_CHECK_OK(s.Require(name, "run.services.get"));
  MOAT_TRY(int64_t limit, QueryInt(req, "limit", kDefaultLogLimit));
  if (limit <= 0) return InvalidArgument("query parameter `limit` must be positive");
  if (limit > kMaxLogLimit) limit = kMaxLogLimit;
  if (!s.view().FindByName(name)) return NotFound("service `" + name + "` not found");
  if (!env.service_logs) {
    return MakeError(Code::kUnimplemented, "this server keeps no service logs");
  }
  std::vector<ServiceLogLine> lines = env.service_logs(name, static_cast<size_t>(limit));
  bj::array entries;
  for (const ServiceLogLine& l : lines) {
    bj::object e;
    e["timestamp"] = FormatRfc3339(l.time);
    e["severity"] = l.stream == "stderr" ? "ERROR" : "INFO";
    e["textPayload"] = l.text;
    entries.push_back(std::move(e));
  }
  bj::object out;
  out["entries"] = std::move(entries);
  return JsonResponse(out);
}

http::Response Metrics(const Env& env) {
  std::string out;
  out += "# HELP moat_api_responses_total API responses by HTTP status.\n";
  out += "# TYPE moat_api_responses_total counter\n";
  out += ResponseCountsText();
  out += RouteMetricsText();
  out += "# HELP moat_store_revision The store's latest committed revision.\n";
  out += "# TYPE moat_store_revision gauge\n";
  if (auto rev = env.store->CurrentRevision()) {
    out += "moat_store_revision " + std::to_string(*rev) + "\n";
  }
  out += "# HELP moat_live_state_revision The revision the enforced View was built at.\n";
  out += "# TYPE moat_live_state_revision gauge\n";
  auto view = env.live->Current();
  out += "moat_live_state_revision " + std::to_string(view ? view->revision : 0) + "\n";
  if (env.extra_metrics) {
    std::string extra = env.extra_metrics();
    if (!extra.empty() && extra.back() != '\n') extra += '\n';
    out += extra;
  }
  http::Response r = http::Response::Text(200, std::move(out));
  r.headers.Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
  r.headers.Set("Cache-Control", "no-store");
  return r;
}

}  // namespace

void RegisterOpsRoutes(http::Router& router, const Env& env) {
  AddRoute(
      router, "GET", "/moat/v1/projects/{project}/locations/{location}/services/{service}:logs",
      [&env](const http::Request& req) {
        return Handle(env, req, [&](Scope& s) { return Logs(env, s); });
      },
      /*blocking=*/true);
  AddRoute(
      router, "GET", "/healthz",
      [](const http::Request&) {
        http::Response r = http::Response::Text(200, "ok");
        r.headers.Set("Cache-Control", "no-store");
        return r;
      },
      /*blocking=*/false);
  // CurrentRevision reads the store: blocking.
  AddRoute(
      router, "GET", "/metrics", [&env](const http::Request&) { return Metrics(env); },
      /*blocking=*/true);
}

}  // namespace moat::api
