#include "server/activator.h"

#include <algorithm>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/log.h"

namespace moat::server {
namespace {

using Steady = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How often an activation may find its service stopped under it (the reaper stopping it as
// the request came in) and start it again before giving up.
constexpr int kStartRetries = 2;

int64_t Ticks(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// One Activate call. INVARIANT: `done` runs exactly once, by whoever flips `fired` first.
struct Activation {
  explicit Activation(std::function<void(bool)> d, Steady::time_point dl)
      : done(std::move(d)), deadline(dl) {}
  std::function<void(bool)> done;
  Steady::time_point deadline;
  std::atomic<bool> fired{false};
};

}  // namespace

struct SupervisorActivator::State : std::enable_shared_from_this<State> {
  State(runtime::Supervisor& s, std::string name, const Clock* c, int crash_loop)
      : supervisor(s),
        service(std::move(name)),
        clock(c != nullptr ? c : &SystemClock()),
        crash_loop_after(crash_loop),
        cell(s.StateCell(service)) {}

  void Finish(const std::shared_ptr<Activation>& a, bool ready) {
    if (a->fired.exchange(true, std::memory_order_acq_rel)) return;
    // The waiting request is about to be sent: idle time counts from now, not from its Touch
    // before a start that may have taken longer than the idle period.
    if (ready) last_use.store(Ticks(clock->Now()), std::memory_order_relaxed);
    {
      std::lock_guard lock(mu);
      pending.erase(a);
    }
    a->done(ready);
  }

  // EnsureRunningNow, then wait for this one attempt. Runs on the caller's thread first, then
  // on the supervisor's thread (its callbacks may call non-blocking Supervisor methods).
  void Attempt(const std::shared_ptr<Activation>& a, int retries) {
    if (a->fired.load(std::memory_order_acquire)) return;  // closed meanwhile
    auto left = std::chrono::ceil<milliseconds>(a->deadline - Steady::now());
    if (left.count() <= 0) {
      Finish(a, false);
      return;
    }
    auto started = supervisor.EnsureRunningNow(service, crash_loop_after);
    if (!started) {
      log::Warn("cannot start a service for a waiting request",
                {{"service", service}, {"error", started.error().message}});
      Finish(a, false);
      return;
    }
    supervisor.NotifyWhenReady(
        service, left,
        [self = shared_from_this(), a, retries](Result<runtime::ProcessStatus> r) {
          if (r && r->state == runtime::ProcessState::kReady) {
            self->Finish(a, true);
            return;
          }
          // Stopped under us (the reaper, a redeploy): start it again, a bounded number of times.
          if (!r && r.error().code == Code::kFailedPrecondition && retries > 0) {
            self->Attempt(a, retries - 1);
            return;
          }
          if (!r) {
            log::Warn("service did not become ready for a waiting request",
                      {{"service", self->service}, {"error", r.error().message}});
          }
          self->Finish(a, false);
        },
        /*fail_on_exit=*/true);
  }

  runtime::Supervisor& supervisor;
  const std::string service;
  const Clock* const clock;
  const int crash_loop_after;
  const std::shared_ptr<const std::atomic<runtime::ProcessState>> cell;
  std::atomic<int64_t> last_use{0};
  std::atomic<int64_t> in_flight{0};

  mutable std::mutex mu;
  bool closed = false;                            // guarded by mu
  std::set<std::shared_ptr<Activation>> pending;  // guarded by mu
};

SupervisorActivator::SupervisorActivator(runtime::Supervisor& supervisor, std::string service,
                                         const Clock* clock, int crash_loop_after)
    : state_(std::make_shared<State>(supervisor, std::move(service), clock, crash_loop_after)) {}

SupervisorActivator::~SupervisorActivator() = default;

void SupervisorActivator::BeginRequest() {
  state_->in_flight.fetch_add(1, std::memory_order_relaxed);
  state_->last_use.store(Ticks(state_->clock->Now()), std::memory_order_relaxed);
}

void SupervisorActivator::EndRequest() {
  // The time first: the reaper reads the count, then the time, so it sees either the request
  // still in flight or its end time — never an old time with the count already down.
  state_->last_use.store(Ticks(state_->clock->Now()), std::memory_order_release);
  state_->in_flight.fetch_sub(1, std::memory_order_release);
}

int64_t SupervisorActivator::requests_in_flight() const {
  return state_->in_flight.load(std::memory_order_acquire);
}

bool SupervisorActivator::Ready() const {
  return state_->cell->load(std::memory_order_acquire) == runtime::ProcessState::kReady;
}

void SupervisorActivator::Activate(milliseconds timeout, std::function<void(bool)> done) {
  auto a = std::make_shared<Activation>(std::move(done), Steady::now() + timeout);
  {
    std::lock_guard lock(state_->mu);
    if (!state_->closed) {
      state_->pending.insert(a);
    } else {
      a->fired.store(true);
    }
  }
  if (a->fired.load()) {
    a->done(false);
    return;
  }
  state_->Attempt(a, kStartRetries);
}

void SupervisorActivator::Close() {
  std::set<std::shared_ptr<Activation>> pending;
  {
    std::lock_guard lock(state_->mu);
    state_->closed = true;
    pending.swap(state_->pending);
  }
  for (const auto& a : pending) state_->Finish(a, false);
}

const std::string& SupervisorActivator::service() const { return state_->service; }

TimePoint SupervisorActivator::last_use() const {
  return TimePoint(std::chrono::duration_cast<TimePoint::duration>(
      std::chrono::nanoseconds(state_->last_use.load(std::memory_order_relaxed))));
}

size_t SupervisorActivator::pending_activations() const {
  std::lock_guard lock(state_->mu);
  return state_->pending.size();
}

// ---- ActivatorPool --------------------------------------------------------------------------

ActivatorPool::ActivatorPool(runtime::Supervisor& supervisor, ActivatorOptions options)
    : supervisor_(supervisor), options_([&] {
        if (options.clock == nullptr) options.clock = &SystemClock();
        if (options.scale_to_zero_after.count() < 0) options.scale_to_zero_after = milliseconds(0);
        return std::move(options);
      }()) {
  if (options_.scale_to_zero_after.count() > 0) reaper_ = std::thread([this] { ReaperLoop(); });
}

ActivatorPool::ActivatorPool(runtime::Supervisor& supervisor, milliseconds scale_to_zero_after)
    : ActivatorPool(supervisor, ActivatorOptions{.scale_to_zero_after = scale_to_zero_after}) {}

ActivatorPool::~ActivatorPool() { Shutdown(); }

void ActivatorPool::Shutdown() {
  std::map<std::string, std::shared_ptr<SupervisorActivator>> all;
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    all = by_name_;
  }
  cv_.notify_all();
  if (reaper_.joinable() && reaper_.get_id() != std::this_thread::get_id()) reaper_.join();
  for (const auto& [name, a] : all) a->Close();
}

std::shared_ptr<SupervisorActivator> ActivatorPool::For(const std::string& service) {
  std::lock_guard lock(mu_);
  auto& a = by_name_[service];
  if (!a) {
    a = std::make_shared<SupervisorActivator>(supervisor_, service, options_.clock,
                                              options_.crash_loop_after);
    if (stop_) a->Close();
  }
  return a;
}

void ActivatorPool::SetKeepWarm(std::set<std::string> services) {
  std::vector<std::string> wake;
  {
    std::lock_guard lock(mu_);
    for (auto it = scaled_down_.begin(); it != scaled_down_.end();) {
      if (services.count(*it) != 0) {
        wake.push_back(*it);
        it = scaled_down_.erase(it);
      } else {
        ++it;
      }
    }
    keep_warm_ = std::move(services);
    poked_ = true;  // a service no longer kept warm may be idle already
  }
  cv_.notify_all();
  for (const auto& name : wake) {
    auto st = supervisor_.GetStatus(name);
    if (!st || st->state != runtime::ProcessState::kStopped) continue;
    if (auto started = supervisor_.EnsureRunning(name); !started) {
      log::Warn("cannot start a service kept warm",
                {{"service", name}, {"error", started.error().message}});
    }
  }
}

void ActivatorPool::Retain(const std::set<std::string>& services) {
  std::lock_guard lock(mu_);
  for (auto it = by_name_.begin(); it != by_name_.end();) {
    it = services.count(it->first) != 0 ? std::next(it) : by_name_.erase(it);
  }
  for (auto it = scaled_down_.begin(); it != scaled_down_.end();) {
    it = services.count(*it) != 0 ? std::next(it) : scaled_down_.erase(it);
  }
}

size_t ActivatorPool::ReapIdle() {
  std::optional<TimePoint> next;
  return ReapPass(&next);
}

size_t ActivatorPool::ReapPass(std::optional<TimePoint>* next_expiry) {
  const auto idle_after = options_.scale_to_zero_after;
  if (idle_after.count() <= 0) return 0;
  std::vector<std::shared_ptr<SupervisorActivator>> candidates;
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, a] : by_name_) {
      if (keep_warm_.count(name) == 0) candidates.push_back(a);
    }
  }
  if (candidates.empty()) return 0;
  std::unordered_map<std::string, runtime::ProcessStatus> status;
  for (auto& s : supervisor_.List()) status.emplace(s.service, std::move(s));  // one lock

  size_t stopped = 0;
  for (const auto& a : candidates) {
    auto it = status.find(a->service());
    if (it == status.end()) continue;  // not defined (yet)
    const runtime::ProcessStatus& s = it->second;
    if (s.state == runtime::ProcessState::kStopped || s.state == runtime::ProcessState::kStopping) {
      continue;
    }
    // A request is waiting for it to start, or is being served: not idle, whatever the times
    // say (a request's end brings the next check: its end time is a new last use).
    if (a->pending_activations() > 0 || a->requests_in_flight() > 0) continue;
    // Idle since the last request, or since this process started if that is later.
    TimePoint expiry = std::max(a->last_use(), s.started_at) + idle_after;
    if (expiry > options_.clock->Now()) {
      if (!*next_expiry || expiry < **next_expiry) *next_expiry = expiry;
      continue;
    }
    if (auto st = supervisor_.RequestStop(a->service(), options_.stop_grace); !st) continue;
    {
      std::lock_guard lock(mu_);
      scaled_down_.insert(a->service());
    }
    ++stopped;
    log::Info("scaling an idle service to zero",
              {{"service", a->service()},
               {"idle_ms", std::to_string(std::chrono::duration_cast<milliseconds>(
                                              options_.clock->Now() - (expiry - idle_after))
                                              .count())}});
    if (options_.on_scaled_to_zero) options_.on_scaled_to_zero(a->service());
  }
  return stopped;
}

void ActivatorPool::ReaperLoop() {
  const auto idle_after = options_.scale_to_zero_after;
  std::unique_lock lock(mu_);
  while (!stop_) {
    poked_ = false;
    lock.unlock();
    std::optional<TimePoint> next;
    ReapPass(&next);
    lock.lock();
    // Sleep until the earliest running service can be idle. With none, a service started
    // after this pass cannot be idle before idle_after from now (idle time counts from its
    // start), so that is the longest sleep needed; requests only move expiries later (a busy
    // service skipped above is re-checked at the latest idle_after from now, and its expiry is
    // at least idle_after after its last request ends).
    auto wait = idle_after;
    if (next) {
      wait = std::clamp(
          std::chrono::duration_cast<milliseconds>(*next - options_.clock->Now()) + milliseconds(1),
          milliseconds(1), idle_after);
    }
    cv_.wait_for(lock, wait, [&] { return stop_ || poked_; });
  }
}

ActivatorFactory MakeActivatorFactory(ActivatorPool& pool) {
  return [&pool](const std::string& service) -> std::shared_ptr<gateway::Activator> {
    return pool.For(service);
  };
}

}  // namespace moat::server
