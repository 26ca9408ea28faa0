#include "server/audit_sink.h"

#include <boost/json.hpp>

#include "common/json.h"
#include "common/log.h"

namespace moat::server {
namespace {
constexpr size_t kMaxQueued = 100'000;
constexpr size_t kMaxBatch = 500;
}  // namespace

AuditSink::AuditSink(store::Store& store, bool audit_allows)
    : store_(store), audit_allows_(audit_allows), thread_([this] { Run(); }) {}

AuditSink::~AuditSink() { Stop(); }

void AuditSink::RecordGatewayDecision(const gateway::GateRequest& r,
                                      const gateway::GateDecision& d) {
  if (d.allowed && !audit_allows_) return;
  store::AuditEntry e;
  e.kind = store::AuditKind::kDataAccess;
  e.principal = d.principal;
  e.method = "run.routes.invoke";
  e.resource = r.service.name;
  e.request_id = std::string(r.request_id);
  e.status = d.allowed ? "ALLOW" : "DENY";
  boost::json::object details;
  details["permission"] = "run.routes.invoke";
  details["decision"] = d.allowed ? "ALLOW" : "DENY";
  if (!d.allowed) {
    details["httpStatus"] = d.status;
    details["reason"] = d.reason;
  }
  details["tokenHeader"] = std::string(gateway::TokenHeaderName(d.token_header));
  details["httpMethod"] = std::string(r.method);
  details["host"] = std::string(r.host);
  details["remoteAddr"] = std::string(r.remote_addr);
  e.details = json::Serialize(details);
  Record(std::move(e));
}

void AuditSink::Record(store::AuditEntry entry) {
  std::lock_guard lock(mu_);
  if (stop_ || queue_.size() >= kMaxQueued) {
    ++dropped_;
    if (dropped_ == 1 || dropped_ % 10'000 == 0) {
      log::Error("audit queue full or stopped; dropping audit entries",
                 {{"dropped", std::to_string(dropped_)}});
    }
    return;
  }
  queue_.push_back(std::move(entry));
  cv_.notify_one();
}

uint64_t AuditSink::dropped() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

void AuditSink::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stop_ && !thread_.joinable()) return;
    stop_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

void AuditSink::Run() {
  while (true) {
    std::vector<store::AuditEntry> batch;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty() && stop_) return;
      while (!queue_.empty() && batch.size() < kMaxBatch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    auto tx = store_.Begin();
    Status st = tx ? Ok() : Status(tx.error());
    for (size_t i = 0; st && i < batch.size(); ++i) st = (*tx)->AppendAudit(batch[i]);
    if (st) {
      auto rev = (*tx)->Commit();
      if (!rev) st = rev.error();
    }
    if (!st) {
      // Keep the entries and retry: an audit log that silently loses denials is worse than a
      // late one. Back off so a full disk is not hammered.
      log::Error("cannot write audit entries; will retry", {{"error", st.error().message},
                                                            {"entries", std::to_string(batch.size())}});
      std::unique_lock lock(mu_);
      for (auto it = batch.rbegin(); it != batch.rend(); ++it) queue_.push_front(std::move(*it));
      if (stop_) return;  // shutting down: nothing more can be done
      cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stop_; });
    }
  }
}

}  // namespace moat::server
