// AuditSink: writes the gateway's data-access audit entries (every denial, and every allow
// when enabled) to the store off the request path. Decide() on a worker thread only queues;
// a background thread commits batches (one transaction per batch, at most every 50 ms).
//
// The queue is bounded (100,000 entries): past that, entries are counted as dropped and an
// error is logged, because blocking the data plane on a slow disk would turn an audit problem
// into an outage. Stop() drains what is queued.
//
// Thread-safety: Record* from any thread.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "gateway/gate.h"
#include "store/store.h"

namespace moat::server {

class AuditSink {
 public:
  explicit AuditSink(store::Store& store, bool audit_allows = false);
  ~AuditSink();
  void RecordGatewayDecision(const gateway::GateRequest& request,
                             const gateway::GateDecision& decision);
  void Record(store::AuditEntry entry);
  bool audit_allows() const { return audit_allows_; }
  // Drains the queue and stops the writer. Idempotent.
  void Stop();
  uint64_t dropped() const;

 private:
  void Run();
  store::Store& store_;
  bool audit_allows_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<store::AuditEntry> queue_;
  bool stop_ = false;
  uint64_t dropped_ = 0;
  std::thread thread_;
};

}  // namespace moat::server
