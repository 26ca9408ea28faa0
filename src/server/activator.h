// Cold starts and scale to zero for command-run services, on top of runtime::Supervisor.
//
// SupervisorActivator is the gateway::Activator of one command-run service: Ready() reads the
// supervisor's lock-free state cell, BeginRequest()/EndRequest() count the allowed requests in
// flight and store the time of the last one, and
// Activate() starts a stopped service ("started on first request after it stopped") and calls
// back once it accepts connections, without blocking the caller.
//
// ActivatorPool owns one SupervisorActivator per service name (the same object for the same
// name, so use times survive route-table rebuilds) and, when `scale_to_zero_after` > 0, a
// reaper thread that stops (SIGTERM, then SIGKILL after the grace period) every running
// service nobody used for that long — Cloud Run with min instances 0 — except the services
// kept warm (Cloud Run's scaling.minInstanceCount >= 1). The next allowed request starts it
// again through Activate.
//
// Decisions worth knowing:
// - A service in backoff after a crash is restarted at once by Activate (a request is
//   waiting; making it wait out up to 30 s of backoff helps nobody) unless it is crash-looping
//   (`crash_loop_after` failures in a row): then the backoff stands, so a broken command is not
//   respawned once per request.
// - Activate waits for one start attempt: if that process dies before it accepts connections,
//   done(false) comes at once (the gateway answers 503) rather than after the whole timeout.
// - Idle time counts from the later of the last request's start or end and the start of the
//   current process, so a freshly deployed (or crash-restarted) service gets a full idle
//   period. A service with a request in flight (a long download, an open WebSocket) is never
//   idle, however long the request runs.
//
// Thread-safety: every method of both classes may be called from any thread. The Supervisor
// must outlive the pool and every activator (the gateway's route table may hold activators
// after the pool is gone: they then refuse to activate).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "common/clock.h"
#include "gateway/route_table.h"
#include "runtime/supervisor.h"

namespace moat::server {

struct ActivatorOptions {
  // Stop a running command service that no request used for this long. 0 (default): never.
  std::chrono::milliseconds scale_to_zero_after{0};
  // SIGTERM → SIGKILL grace when scaling to zero; unset: the supervisor's stop_grace (10 s).
  std::optional<std::chrono::milliseconds> stop_grace;
  // Activate restarts a service in backoff at once unless it failed this many times in a row.
  int crash_loop_after = 3;
  // Clock of BeginRequest()/EndRequest() and of the idle reaper. Must be the Supervisor's clock (idle time is
  // compared with ProcessStatus::started_at). Not owned; outlives the pool.
  const Clock* clock = &SystemClock();
  // Called on the reaper thread after a service was told to stop for being idle (metrics,
  // tests). Must not block.
  std::function<void(const std::string& service)> on_scaled_to_zero;
};

// The Activator of one service. Create it with std::make_shared (or through ActivatorPool).
class SupervisorActivator : public gateway::Activator {
 public:
  SupervisorActivator(runtime::Supervisor& supervisor, std::string service,
                      const Clock* clock = &SystemClock(), int crash_loop_after = 3);
  ~SupervisorActivator() override;
  SupervisorActivator(const SupervisorActivator&) = delete;
  SupervisorActivator& operator=(const SupervisorActivator&) = delete;

  // Records "used now" (one relaxed atomic store).
  void BeginRequest() override;
  void EndRequest() override;
  // The supervisor's state is kReady (one acquire load; no lock).
  bool Ready() const override;
  // Starts the service if it is stopped, restarts it now if it is in backoff (unless it is
  // crash-looping), or joins a start in progress; then calls done(true) when it accepts
  // connections, done(false) when the attempt dies, `timeout` passes, the service is unknown,
  // or the supervisor / this activator shuts down. Exactly once, from any thread (the
  // supervisor's thread or, when the answer is known at once, the caller's). Never blocks.
  // Concurrent calls share one start.
  void Activate(std::chrono::milliseconds timeout, std::function<void(bool ready)> done) override;

  // Answers every pending activation with done(false) and makes later ones fail at once.
  // Idempotent.
  void Close();

  const std::string& service() const;
  TimePoint last_use() const;  // the clock's epoch before the first request
  int64_t requests_in_flight() const;
  size_t pending_activations() const;

 private:
  struct State;
  std::shared_ptr<State> state_;  // shared with the supervisor's callbacks
};

using ActivatorFactory =
    std::function<std::shared_ptr<gateway::Activator>(const std::string& service)>;

class ActivatorPool {
 public:
  ActivatorPool(runtime::Supervisor& supervisor, ActivatorOptions options);
  ActivatorPool(runtime::Supervisor& supervisor, std::chrono::milliseconds scale_to_zero_after);
  ~ActivatorPool();  // Shutdown()
  ActivatorPool(const ActivatorPool&) = delete;
  ActivatorPool& operator=(const ActivatorPool&) = delete;

  // The activator of `service`, created on first use; the same object until Retain drops it.
  std::shared_ptr<SupervisorActivator> For(const std::string& service);
  // Services never scaled to zero (min instances >= 1); replaces the previous set. A service
  // the reaper stopped that is now kept warm is started again.
  void SetKeepWarm(std::set<std::string> services);
  // Forgets the services not in `services` (their activators keep working for the requests
  // that hold them).
  void Retain(const std::set<std::string>& services);
  // One reaper pass now; the number of services told to stop. No-op when scale to zero is off.
  size_t ReapIdle();
  // Stops the reaper (promptly: it waits on a condition variable), fails every pending
  // activation with done(false), and makes later activations fail. Idempotent; the destructor
  // calls it. Does not stop services (the Supervisor's shutdown does).
  void Shutdown();

 private:
  size_t ReapPass(std::optional<TimePoint>* next_expiry);
  void ReaperLoop();

  runtime::Supervisor& supervisor_;
  const ActivatorOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;   // guarded by mu_
  bool poked_ = false;  // guarded by mu_: re-run a pass now
  std::map<std::string, std::shared_ptr<SupervisorActivator>> by_name_;  // guarded by mu_
  std::set<std::string> keep_warm_;                                      // guarded by mu_
  std::set<std::string> scaled_down_;  // guarded by mu_: stopped by the reaper, not since started
  std::thread reaper_;
};

// `pool.For` as the factory the route-table builder takes. The pool must outlive it.
ActivatorFactory MakeActivatorFactory(ActivatorPool& pool);

}  // namespace moat::server
