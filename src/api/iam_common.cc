#include "api/iam_common.h"

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "common/log.h"
#include "http/message.h"
#include "identity/directory.h"
#include "state/live_state.h"
#include "store/store.h"

namespace moat::api {

Status CheckPathSegment(std::string_view value, std::string_view what) {
  if (value.empty() || value.find('/') != std::string_view::npos ||
      value.find('\0') != std::string_view::npos) {
    return InvalidArgument(std::string(what) + " `" + std::string(value) + "` is not valid");
  }
  return Ok();
}

Result<AccountTarget> ResolveAccount(const Scope& scope, std::string_view project,
                                     std::string_view account) {
  MOAT_CHECK_OK(CheckPathSegment(project, "project"));
  MOAT_CHECK_OK(CheckPathSegment(account, "service account"));
  AccountTarget t;
  std::string acct = http::ToLower(account);
  t.name = "projects/" + std::string(project) + "/serviceAccounts/" + acct;
  t.resource = t.name;
  t.project_id = std::string(project);
  const auto& dir = scope.view().directory;
  if (dir) {
    const identity::ServiceAccountRecord* sa = dir->FindServiceAccount(acct);
    if (sa && !sa->delete_time && (project == "-" || project == sa->project_id)) {
      t.resource = sa->Name();
      t.project_id = sa->project_id;
      t.email = sa->email;
    }
  }
  return t;
}

int64_t AuditAfter(const Scope& scope, std::string method, std::string resource,
                   boost::json::object details, std::string status) {
  store::Store& store = *scope.env().store;
  store::AuditEntry entry = scope.Audit(method, resource, std::move(details), std::move(status));
  std::string error;
  auto tx = store.Begin();
  if (tx) {
    Status appended = (*tx)->AppendAudit(entry);
    if (appended) {
      auto rev = (*tx)->Commit();
      if (rev) return *rev;
      error = rev.error().message;
    } else {
      error = appended.error().message;
    }
  } else {
    error = tx.error().message;
  }
  log::Error("audit entry lost after a committed change",
             {{"method", method}, {"resource", resource}, {"error", error}});
  auto current = store.CurrentRevision();
  return current ? *current : 0;
}

namespace {
std::atomic<uint64_t> g_responses[600];
}  // namespace

void CountResponse(int status) {
  if (status < 100 || status > 599) status = 599;
  g_responses[status].fetch_add(1, std::memory_order_relaxed);
}

std::string ResponseCountsText() {
  std::string out;
  for (int code = 100; code < 600; ++code) {
    uint64_t n = g_responses[code].load(std::memory_order_relaxed);
    if (n == 0) continue;
    out += "moat_api_responses_total{code=\"" + std::to_string(code) + "\"} " + std::to_string(n) +
           "\n";
  }
  return out;
}

namespace {

// Upper bounds (seconds) of the latency histogram's buckets; +Inf is implicit.
constexpr double kLatencyBuckets[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                      0.25,  0.5,   1,    2.5,   5,    10};
constexpr size_t kNumBuckets = std::size(kLatencyBuckets);

struct RouteStats {
  explicit RouteStats(std::string l) : label(std::move(l)) {}
  const std::string label;  // "GET /v2/…"
  std::mutex mu;            // guards codes
  std::map<int, uint64_t> codes;
  std::atomic<uint64_t> buckets[kNumBuckets + 1] = {};  // per bucket (not cumulative); last +Inf
  std::atomic<uint64_t> count{0};
  std::atomic<uint64_t> sum_ns{0};

  void Record(int status, std::chrono::nanoseconds elapsed) {
    {
      std::lock_guard lock(mu);
      ++codes[status];
    }
    double seconds = std::chrono::duration<double>(elapsed).count();
    size_t b = 0;
    while (b < kNumBuckets && seconds > kLatencyBuckets[b]) ++b;
    buckets[b].fetch_add(1, std::memory_order_relaxed);
    sum_ns.fetch_add(static_cast<uint64_t>(elapsed.count()), std::memory_order_relaxed);
    count.fetch_add(1, std::memory_order_relaxed);
  }
};

struct RouteRegistry {
  std::mutex mu;
  std::map<std::string, std::unique_ptr<RouteStats>> by_label;  // stable addresses
};

RouteRegistry& Registry() {
  static RouteRegistry* registry = new RouteRegistry();  // never destroyed: handlers may outlive
  return *registry;
}

RouteStats* StatsFor(std::string label) {
  RouteRegistry& r = Registry();
  std::lock_guard lock(r.mu);
  auto& slot = r.by_label[label];
  if (!slot) slot = std::make_unique<RouteStats>(std::move(label));
  return slot.get();
}

// A Prometheus label value: backslash, double quote and newline escaped.
std::string LabelValue(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string FormatSeconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", s);
  return buf;
}

}  // namespace

std::string RouteMetricsText() {
  std::vector<RouteStats*> routes;
  {
    RouteRegistry& r = Registry();
    std::lock_guard lock(r.mu);
    for (auto& [label, stats] : r.by_label) routes.push_back(stats.get());
  }
  std::string requests =
      "# HELP moat_api_requests_total API requests by route and HTTP status.\n"
      "# TYPE moat_api_requests_total counter\n";
  std::string latency =
      "# HELP moat_api_request_duration_seconds API request latency by route.\n"
      "# TYPE moat_api_request_duration_seconds histogram\n";
  for (RouteStats* st : routes) {
    uint64_t count = st->count.load(std::memory_order_relaxed);
    if (count == 0) continue;
    const std::string route = "route=\"" + LabelValue(st->label) + "\"";
    {
      std::lock_guard lock(st->mu);
      for (const auto& [code, n] : st->codes) {
        requests += "moat_api_requests_total{" + route + ",code=\"" + std::to_string(code) +
                    "\"} " + std::to_string(n) + "\n";
      }
    }
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= kNumBuckets; ++b) {
      cumulative += st->buckets[b].load(std::memory_order_relaxed);
      std::string le = b < kNumBuckets ? FormatSeconds(kLatencyBuckets[b]) : "+Inf";
      latency += "moat_api_request_duration_seconds_bucket{" + route + ",le=\"" + le + "\"} " +
                 std::to_string(cumulative) + "\n";
    }
    double sum = static_cast<double>(st->sum_ns.load(std::memory_order_relaxed)) / 1e9;
    latency += "moat_api_request_duration_seconds_sum{" + route + "} " + FormatSeconds(sum) + "\n";
    latency += "moat_api_request_duration_seconds_count{" + route + "} " +
               std::to_string(cumulative) + "\n";
  }
  return requests + latency;
}

void AddRoute(http::Router& router, std::string_view method, std::string_view pattern,
              http::RouteHandler handler, bool blocking) {
  RouteStats* stats = StatsFor(std::string(method) + " " + std::string(pattern));
  auto counted = [handler = std::move(handler), stats](const http::Request& req) {
    auto start = std::chrono::steady_clock::now();
    http::Response r = handler(req);
    CountResponse(r.status);
    stats->Record(r.status, std::chrono::steady_clock::now() - start);
    return r;
  };
  Status st = router.Add(method, pattern, std::move(counted), blocking);
  if (!st) {
    log::Error("route not registered", {{"method", std::string(method)},
                                        {"pattern", std::string(pattern)},
                                        {"error", st.error().message}});
  }
}

}  // namespace moat::api
