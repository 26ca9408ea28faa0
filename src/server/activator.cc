#include "server/activator.h"

#include <atomic>
#include <vector>

#include "common/log.h"

namespace moat::server {

using Clock = std::chrono::steady_clock;

class ActivatorPool::ServiceActivator : public gateway::Activator,
                                        public std::enable_shared_from_this<ServiceActivator> {
 public:
  ServiceActivator(runtime::Supervisor& supervisor, std::string service)
      : supervisor_(supervisor), service_(std::move(service)) {
    Touch();
  }

  void Touch() override {
    last_use_.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
  }
  bool Ready() const override { return ready_.load(std::memory_order_acquire); }

  void Activate(std::chrono::milliseconds timeout, std::function<void(bool)> done) override {
    ready_.store(false, std::memory_order_release);
    Start(Clock::now() + timeout, std::make_shared<std::function<void(bool)>>(std::move(done)),
          2);
  }

  Clock::time_point last_use() const {
    return Clock::time_point(Clock::duration(last_use_.load(std::memory_order_relaxed)));
  }
  void MarkStopped() { ready_.store(false, std::memory_order_release); }
  const std::string& service() const { return service_; }

 private:
  // EnsureRunning, then wait for readiness. A service that was being stopped (by the reaper)
  // when the request came reports FailedPrecondition: start it again, a bounded number of times.
  void Start(Clock::time_point deadline, std::shared_ptr<std::function<void(bool)>> done,
             int retries) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      (*done)(false);
      return;
    }
    if (auto st = supervisor_.EnsureRunning(service_); !st) {
      log::Warn("cannot start the service on demand",
                {{"service", service_}, {"error", st.error().message}});
      (*done)(false);
      return;
    }
    supervisor_.NotifyWhenReady(
        service_, left,
        [this, self = shared_from_this(), deadline, done, retries](
            Result<runtime::ProcessStatus> r) {
          if (r && r->state == runtime::ProcessState::kReady) {
            ready_.store(true, std::memory_order_release);
            (*done)(true);
            return;
          }
          if (!r && r.error().code == Code::kFailedPrecondition && retries > 0) {
            Start(deadline, done, retries - 1);
            return;
          }
          if (!r) {
            log::Warn("service did not become ready for a waiting request",
                      {{"service", service_}, {"error", r.error().message}});
          }
          (*done)(false);
        });
  }

  runtime::Supervisor& supervisor_;
  const std::string service_;
  std::atomic<Clock::rep> last_use_{0};
  std::atomic<bool> ready_{false};
};

ActivatorPool::ActivatorPool(runtime::Supervisor& supervisor,
                             std::chrono::milliseconds scale_to_zero_after)
    : supervisor_(supervisor), idle_after_(scale_to_zero_after) {
  if (idle_after_.count() > 0) reaper_ = std::thread([this] { ReaperLoop(); });
}

ActivatorPool::~ActivatorPool() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (reaper_.joinable()) reaper_.join();
}

std::shared_ptr<gateway::Activator> ActivatorPool::For(const std::string& service) {
  std::lock_guard lock(mu_);
  auto& a = by_name_[service];
  if (!a) a = std::make_shared<ServiceActivator>(supervisor_, service);
  return a;
}

void ActivatorPool::SetKeepWarm(std::set<std::string> services) {
  std::lock_guard lock(mu_);
  keep_warm_ = std::move(services);
}

void ActivatorPool::Retain(const std::set<std::string>& services) {
  std::lock_guard lock(mu_);
  for (auto it = by_name_.begin(); it != by_name_.end();) {
    it = services.count(it->first) ? std::next(it) : by_name_.erase(it);
  }
}

size_t ActivatorPool::ReapIdle() {
  if (idle_after_.count() <= 0) return 0;
  std::vector<std::shared_ptr<ServiceActivator>> idle;
  {
    std::lock_guard lock(mu_);
    auto cutoff = Clock::now() - idle_after_;
    for (const auto& [name, a] : by_name_) {
      if (keep_warm_.count(name) || a->last_use() > cutoff) continue;
      idle.push_back(a);
    }
  }
  size_t stopped = 0;
  for (const auto& a : idle) {
    auto st = supervisor_.GetStatus(a->service());
    if (!st || st->state == runtime::ProcessState::kStopped ||
        st->state == runtime::ProcessState::kStopping) {
      continue;
    }
    if (a->last_use() > Clock::now() - idle_after_) continue;  // used meanwhile
    a->MarkStopped();
    if (auto s = supervisor_.Stop(a->service()); s) {
      ++stopped;
      log::Info("scaled an idle service to zero", {{"service", a->service()}});
    }
  }
  return stopped;
}

void ActivatorPool::ReaperLoop() {
  // Wakes a few times per idle period: a service is stopped at most ~25% after it went idle.
  auto period = std::max<std::chrono::milliseconds>(idle_after_ / 4, std::chrono::milliseconds(50));
  std::unique_lock lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, period, [&] { return stop_; });
    if (stop_) break;
    lock.unlock();
    ReapIdle();
    lock.lock();
  }
}

}  // namespace moat::server
