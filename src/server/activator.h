// Cold starts and scale-to-zero for command-run services, on top of the runtime Supervisor.
//
// ActivatorPool hands the gateway one gateway::Activator per service (the same object for the
// same name, so use times survive route-table rebuilds). Activate starts a stopped service
// (Cloud Run's "started on first request after it stopped") or waits for one that is starting
// or restarting after a crash, without blocking the caller. With `scale_to_zero_after` > 0 a
// reaper thread stops (SIGTERM, then SIGKILL) a ready service nobody used for that long,
// unless it is kept warm (Cloud Run's scaling.minInstanceCount ≥ 1); the next allowed request
// starts it again.
//
// Thread-safety: every method may be called from any thread. Destroy the pool before the
// Supervisor (the destructor stops the reaper; activations in flight still complete).
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "gateway/route_table.h"
#include "runtime/supervisor.h"

namespace moat::server {

class ActivatorPool {
 public:
  ActivatorPool(runtime::Supervisor& supervisor, std::chrono::milliseconds scale_to_zero_after);
  ~ActivatorPool();
  ActivatorPool(const ActivatorPool&) = delete;
  ActivatorPool& operator=(const ActivatorPool&) = delete;

  // The Activator of `service` (created on first use).
  std::shared_ptr<gateway::Activator> For(const std::string& service);
  // Services never scaled to zero (min instances ≥ 1); replaces the previous set.
  void SetKeepWarm(std::set<std::string> services);
  // Forgets services that are gone (their Activators keep working for requests in flight).
  void Retain(const std::set<std::string>& services);
  // Runs one reaper pass now (tests; the reaper thread calls it too). Returns how many
  // services it stopped.
  size_t ReapIdle();

  class ServiceActivator;

 private:
  void ReaperLoop();

  runtime::Supervisor& supervisor_;
  const std::chrono::milliseconds idle_after_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::map<std::string, std::shared_ptr<ServiceActivator>> by_name_;  // guarded by mu_
  std::set<std::string> keep_warm_;                                   // guarded by mu_
  std::thread reaper_;
};

}  // namespace moat::server
