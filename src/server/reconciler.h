// Reconciler: makes the data plane match the live state's services.
//
// On every View whose services changed it (on its own thread, so a slow process stop never
// delays policy updates) starts, restarts (new generation) or removes the command-run services
// in the runtime Supervisor — each with its own metadata server, so the workload gets tokens
// for its service account — and then publishes a new gateway RouteTable (Host → upstream,
// timeout, accepted audiences, invokerIamDisabled, ingress).
//
// Thread-safety: Apply from any thread (it only hands the View over).
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gateway/route_table.h"
#include "runtime/supervisor.h"
#include "server/activator.h"
#include "server/metadata_servers.h"
#include "state/live_state.h"

namespace moat::server {

class Reconciler {
 public:
  Reconciler(runtime::Supervisor& supervisor, MetadataServers& metadata,
             gateway::RouteTableHolder& routes, std::string gateway_base);
  ~Reconciler();
  // Command-run services get their Activator from `pool` (cold starts, scale to zero). Call
  // before the first Apply; the pool must outlive the reconciler's thread (Stop).
  void SetActivators(ActivatorPool* pool) { activators_ = pool; }
  void Apply(std::shared_ptr<const state::View> view);
  // Waits until the View of `revision` (or later) has been reconciled; false on timeout.
  bool WaitReconciled(int64_t revision, std::chrono::milliseconds timeout);
  // Non-blocking forms for the gateway's X-Moat-Min-Revision (gateway::RevisionWaiter). A
  // reconciled revision implies the live state (policies, directory) is at least there too:
  // the reconciler only sees Views the live state has already published.
  bool Reconciled(int64_t revision) const {
    return done_atomic_.load(std::memory_order_acquire) >= revision;
  }
  // Calls done(true) once `revision` is reconciled, done(false) on Stop or when too many
  // requests already wait (kMaxWaiters). Exactly once; possibly on the calling thread.
  void NotifyReconciled(int64_t revision, std::function<void(bool)> done);
  static constexpr size_t kMaxWaiters = 10'000;
  void Stop();

 private:
  void Run();
  void Reconcile(const state::View& view);
  // Sets done_revision_ (mu_ held) and moves the waiters it satisfies into `ready`.
  void AdvanceLocked(int64_t revision, std::vector<std::function<void(bool)>>* ready);

  runtime::Supervisor& supervisor_;
  MetadataServers& metadata_;
  gateway::RouteTableHolder& routes_;
  ActivatorPool* activators_ = nullptr;
  std::string gateway_base_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<const state::View> pending_;
  bool seen_view_ = false;         // guarded by mu_
  int64_t applied_revision_ = -1;  // the newest View handed to Apply; guarded by mu_
  bool busy_ = false;              // the thread is reconciling a View it took from pending_; mu_
  // The newest revision whose View changed nothing of ours but arrived while earlier work was
  // pending or in flight; it counts as reconciled once that work is published. Guarded by mu_.
  int64_t deferred_revision_ = -1;
  // INVARIANT: the published route table reflects a View at least as new as every View that
  // changed services or projects with revision <= done_revision_ (so a request released at
  // revision N finds every service deployed up to N).
  int64_t done_revision_ = -1;
  std::atomic<int64_t> done_atomic_{-1};
  std::multimap<int64_t, std::function<void(bool)>> waiters_;  // guarded by mu_
  bool stop_ = false;
  // Command services the supervisor runs: name → generation started.
  std::map<std::string, int64_t> running_;  // reconciler thread only
  std::thread thread_;
};

}  // namespace moat::server
