#include "api/iam_common.h"

#include <atomic>
#include <boost/json.hpp>

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

void AddRoute(http::Router& router, std::string_view method, std::string_view pattern,
              http::RouteHandler handler, bool blocking) {
  auto counted = [handler = std::move(handler)](const http::Request& req) {
    http::Response r = handler(req);
    CountResponse(r.status);
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
