#include "server/activator.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace moat::server {
namespace {

using namespace std::chrono_literals;
using runtime::ProcessState;
namespace fs = std::filesystem;

// One short request, start to end, as the gateway reports it.
template <typename A>
void Served(const A& activator) {
  activator->BeginRequest();
  activator->EndRequest();
}

// Listens on 127.0.0.1:$PORT and answers "ok" to every connection. SIGTERM ends it.
constexpr char kServerPy[] = R"PY(
import os, socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(os.environ["PORT"])))
s.listen(64)
while True:
    c, _ = s.accept()
    c.sendall(b"ok")
    c.close()
)PY";

// Connects to 127.0.0.1:port and returns what the server sends before closing.
std::string Fetch(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    char buf[64];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

// Polls `pred` until it holds or `timeout` passes (for states with no callback to wait on).
bool PollUntil(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 10s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

size_t CountLogLines(runtime::Supervisor& sup, const std::string& service,
                     const std::string& needle) {
  size_t n = 0;
  if (auto logs = sup.Logs(service)) {
    for (const auto& l : *logs) n += l.text.find(needle) != std::string::npos ? 1 : 0;
  }
  return n;
}

// Collects done() calls: how many per activation, and their results.
class Callbacks {
 public:
  explicit Callbacks(size_t n) : calls_(n, 0), results_(n, false) {}
  std::function<void(bool)> For(size_t i) {
    return [this, i](bool ready) {
      std::lock_guard lock(mu_);
      ++calls_[i];
      results_[i] = ready;
      ++total_;
      cv_.notify_all();
    };
  }
  bool WaitAll(std::chrono::milliseconds timeout = 20s) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return total_ >= calls_.size(); });
  }
  int calls(size_t i) {
    std::lock_guard lock(mu_);
    return calls_[i];
  }
  bool result(size_t i) {
    std::lock_guard lock(mu_);
    return results_[i];
  }
  size_t total() {
    std::lock_guard lock(mu_);
    return total_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int> calls_;
  std::vector<bool> results_;
  size_t total_ = 0;
};

class ServerActivator : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/moat-activator-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::ofstream(dir_ / "server.py") << kServerPy;
    options_.backoff_base = 20ms;
    options_.backoff_cap = 200ms;
    options_.startup_timeout = 15s;
    options_.stop_grace = 2s;
  }

  void TearDown() override {
    pool_.reset();
    sup_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  runtime::Supervisor& Sup() {
    if (!sup_) sup_ = std::make_unique<runtime::Supervisor>(options_);
    return *sup_;
  }

  ActivatorPool& Pool(ActivatorOptions o = {}) {
    if (!pool_) pool_ = std::make_unique<ActivatorPool>(Sup(), std::move(o));
    return *pool_;
  }

  runtime::ProcessSpec ServerSpec(const std::string& service) {
    runtime::ProcessSpec spec;
    spec.service = service;
    spec.command = "exec python3 server.py";
    spec.working_dir = dir_.string();
    return spec;
  }

  // Defines `service` and leaves it stopped, as after a scale to zero.
  uint16_t DefineStopped(const runtime::ProcessSpec& spec) {
    auto st = Sup().Start(spec);
    EXPECT_TRUE(st);
    EXPECT_TRUE(Sup().Stop(spec.service));
    EXPECT_EQ(Sup().GetStatus(spec.service)->state, ProcessState::kStopped);
    return st ? st->port : 0;
  }

  fs::path dir_;
  FakeClock fake_clock_;  // outlives the supervisor and the pool that may use it
  runtime::SupervisorOptions options_;
  std::unique_ptr<runtime::Supervisor> sup_;
  std::unique_ptr<ActivatorPool> pool_;
};

TEST_F(ServerActivator, ActivateStartsAStoppedServiceAndItsPortAccepts) {
  uint16_t port = DefineStopped(ServerSpec("svc"));
  auto activator = Pool().For("svc");
  EXPECT_FALSE(activator->Ready());

  std::promise<bool> ready;
  activator->Activate(15s, [&](bool ok) { ready.set_value(ok); });
  ASSERT_TRUE(ready.get_future().get());
  EXPECT_TRUE(activator->Ready());
  EXPECT_EQ(Sup().GetStatus("svc")->port, port);  // the gateway's upstream did not move
  EXPECT_EQ(Fetch(port), "ok");
  EXPECT_EQ(activator->pending_activations(), 0u);

  // Ready already: answered at once, on this thread, without a new process.
  int pid = Sup().GetStatus("svc")->pid;
  std::optional<bool> again;
  activator->Activate(1s, [&](bool ok) { again = ok; });
  EXPECT_EQ(again, true);
  EXPECT_EQ(Sup().GetStatus("svc")->pid, pid);

  // Ready() follows the supervisor (a stop by anyone), not a flag of its own.
  ASSERT_TRUE(Sup().Stop("svc"));
  EXPECT_FALSE(activator->Ready());
}

TEST_F(ServerActivator, CommandThatExitsAtOnceFailsWellBeforeTheTimeout) {
  runtime::ProcessSpec spec;
  spec.service = "broken";
  spec.command = "echo no config >&2; exit 2";
  ASSERT_TRUE(Sup().Start(spec));
  ASSERT_TRUE(Sup().Stop("broken"));
  auto activator = Pool().For("broken");

  std::promise<bool> done;
  auto t0 = std::chrono::steady_clock::now();
  activator->Activate(20s, [&](bool ok) { done.set_value(ok); });
  auto f = done.get_future();
  ASSERT_EQ(f.wait_for(15s), std::future_status::ready);
  EXPECT_FALSE(f.get());
  // One attempt: the answer comes when that process dies, not when the 20 s run out.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  EXPECT_FALSE(activator->Ready());
}

TEST_F(ServerActivator, ServiceThatNeverListensFailsAtTheTimeout) {
  runtime::ProcessSpec spec;
  spec.service = "mute";
  spec.command = "exec sleep 60";
  ASSERT_TRUE(Sup().Start(spec));
  ASSERT_TRUE(Sup().Stop("mute", 10ms));
  std::promise<bool> done;
  auto t0 = std::chrono::steady_clock::now();
  Pool().For("mute")->Activate(200ms, [&](bool ok) { done.set_value(ok); });
  EXPECT_FALSE(done.get_future().get());
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, 200ms);
  EXPECT_LT(took, 5s);
}

TEST_F(ServerActivator, UnknownServiceFailsAtOnce) {
  std::optional<bool> result;
  Pool().For("nobody")->Activate(10s, [&](bool ok) { result = ok; });
  EXPECT_EQ(result, false);  // synchronously: nothing to wait for
}

TEST_F(ServerActivator, ConcurrentActivationsShareOneStartAndEachCallbackRunsOnce) {
  uint16_t port = DefineStopped(ServerSpec("shared"));
  size_t spawned_before = CountLogLines(Sup(), "shared", "started process");
  auto activator = Pool().For("shared");

  constexpr size_t kCallers = 16;
  Callbacks cb(kCallers);
  std::vector<std::thread> threads;
  std::promise<void> go;
  std::shared_future<void> start = go.get_future().share();
  for (size_t i = 0; i < kCallers; ++i) {
    threads.emplace_back([&, i] {
      start.wait();
      activator->Activate(15s, cb.For(i));
    });
  }
  go.set_value();
  for (auto& t : threads) t.join();
  ASSERT_TRUE(cb.WaitAll());
  for (size_t i = 0; i < kCallers; ++i) {
    EXPECT_EQ(cb.calls(i), 1) << i;
    EXPECT_TRUE(cb.result(i)) << i;
  }
  EXPECT_EQ(CountLogLines(Sup(), "shared", "started process"), spawned_before + 1);
  EXPECT_EQ(Fetch(port), "ok");
  EXPECT_EQ(activator->pending_activations(), 0u);
}

TEST_F(ServerActivator, CrashedServiceIsRestartedNowInsteadOfAfterItsBackoff) {
  options_.backoff_base = 30s;  // left alone, the restart would come after 30 s
  options_.backoff_cap = 30s;
  ASSERT_TRUE(Sup().Start(ServerSpec("crashy")));
  auto first = Sup().WaitReady("crashy", 15s);
  ASSERT_TRUE(first);
  auto activator = Pool().For("crashy");
  EXPECT_TRUE(activator->Ready());
  ASSERT_EQ(kill(first->pid, SIGKILL), 0);
  ASSERT_TRUE(
      PollUntil([&] { return Sup().GetStatus("crashy")->state == ProcessState::kBackoff; }));
  EXPECT_FALSE(activator->Ready());

  std::promise<bool> done;
  auto t0 = std::chrono::steady_clock::now();
  activator->Activate(20s, [&](bool ok) { done.set_value(ok); });
  ASSERT_TRUE(done.get_future().get());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 15s);
  auto now = Sup().GetStatus("crashy");
  EXPECT_EQ(now->state, ProcessState::kReady);
  EXPECT_EQ(now->restarts, 1);
  EXPECT_EQ(Fetch(now->port), "ok");
}

TEST_F(ServerActivator, CrashLoopingServiceKeepsItsBackoff) {
  options_.backoff_base = 30s;
  options_.backoff_cap = 30s;
  runtime::ProcessSpec spec;
  spec.service = "loop";
  spec.command = "exit 1";
  ASSERT_TRUE(Sup().Start(spec));
  ASSERT_TRUE(PollUntil([&] { return Sup().GetStatus("loop")->state == ProcessState::kBackoff; }));
  ActivatorOptions o;
  o.crash_loop_after = 1;  // one failure in a row already counts as a loop
  auto activator = Pool(o).For("loop");
  std::promise<bool> done;
  activator->Activate(150ms, [&](bool ok) { done.set_value(ok); });
  EXPECT_FALSE(done.get_future().get());  // waited for the scheduled restart, which is too far
  auto s = Sup().GetStatus("loop");
  EXPECT_EQ(s->state, ProcessState::kBackoff);
  EXPECT_EQ(s->restarts, 1);  // no respawn on behalf of the request
}

TEST_F(ServerActivator, ReaperStopsAnIdleServiceButNotATouchedOrWarmOne) {
  FakeClock& clock = fake_clock_;
  options_.clock = &clock;
  for (const char* name : {"idle", "busy", "warm"}) {
    ASSERT_TRUE(Sup().Start(ServerSpec(name)));
    ASSERT_TRUE(Sup().WaitReady(name, 15s));
  }
  ActivatorOptions o;
  o.clock = &clock;
  o.scale_to_zero_after = 60s;
  ActivatorPool& pool = Pool(o);
  pool.SetKeepWarm({"warm"});
  auto idle = pool.For("idle");
  auto busy = pool.For("busy");
  auto warm = pool.For("warm");
  for (auto* a : {idle.get(), busy.get(), warm.get()}) Served(a);
  EXPECT_EQ(pool.ReapIdle(), 0u);

  clock.Advance(30s);
  Served(busy);
  clock.Advance(31s);
  EXPECT_EQ(pool.ReapIdle(), 1u);
  ASSERT_TRUE(PollUntil([&] { return Sup().GetStatus("idle")->state == ProcessState::kStopped; }));
  EXPECT_FALSE(idle->Ready());
  EXPECT_EQ(Sup().GetStatus("busy")->state, ProcessState::kReady);
  EXPECT_EQ(Sup().GetStatus("warm")->state, ProcessState::kReady);
  EXPECT_EQ(pool.ReapIdle(), 0u);  // stopped services are not stopped again

  // The next request starts it again; a fresh process gets a full idle period even though
  // the gateway has not touched it yet.
  std::promise<bool> done;
  idle->Activate(15s, [&](bool ok) { done.set_value(ok); });
  ASSERT_TRUE(done.get_future().get());
  EXPECT_EQ(pool.ReapIdle(), 0u);
  clock.Advance(61s);
  Served(busy);
  EXPECT_EQ(pool.ReapIdle(), 1u);  // "idle" again; "busy" was touched; "warm" is kept warm
  ASSERT_TRUE(PollUntil([&] { return Sup().GetStatus("idle")->state == ProcessState::kStopped; }));

  // Becoming warm (min instances raised) starts what the reaper stopped.
  pool.SetKeepWarm({"warm", "idle"});
  ASSERT_TRUE(Sup().WaitReady("idle", 15s));
  EXPECT_EQ(Sup().GetStatus("warm")->state, ProcessState::kReady);
}

TEST_F(ServerActivator, ReaperNeverStopsAServiceWhileARequestIsInFlight) {
  FakeClock& clock = fake_clock_;
  options_.clock = &clock;
  ASSERT_TRUE(Sup().Start(ServerSpec("stream")));
  ASSERT_TRUE(Sup().WaitReady("stream", 15s));
  ActivatorOptions o;
  o.clock = &clock;
  o.scale_to_zero_after = 60s;
  ActivatorPool& pool = Pool(o);
  auto a = pool.For("stream");
  a->BeginRequest();  // a long download, or an open WebSocket
  a->BeginRequest();
  clock.Advance(10min);
  EXPECT_EQ(pool.ReapIdle(), 0u);
  a->EndRequest();
  EXPECT_EQ(a->requests_in_flight(), 1);
  EXPECT_EQ(pool.ReapIdle(), 0u);  // one is still running
  clock.Advance(1min);
  a->EndRequest();
  EXPECT_EQ(a->requests_in_flight(), 0);
  // Idle time counts from the end of the last request, not from its start.
  clock.Advance(59s);
  EXPECT_EQ(pool.ReapIdle(), 0u);
  EXPECT_EQ(Sup().GetStatus("stream")->state, ProcessState::kReady);
  clock.Advance(2s);
  EXPECT_EQ(pool.ReapIdle(), 1u);
  ASSERT_TRUE(
      PollUntil([&] { return Sup().GetStatus("stream")->state == ProcessState::kStopped; }));
}

TEST_F(ServerActivator, ReaperThreadScalesToZeroOnItsOwnAndStopsPromptly) {
  ASSERT_TRUE(Sup().Start(ServerSpec("nap")));
  ASSERT_TRUE(Sup().WaitReady("nap", 15s));
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> reaped;
  ActivatorOptions o;
  o.scale_to_zero_after = 300ms;
  o.on_scaled_to_zero = [&](const std::string& service) {
    std::lock_guard lock(mu);
    reaped.push_back(service);
    cv.notify_all();
  };
  ActivatorPool& pool = Pool(o);
  auto a = pool.For("nap");
  Served(a);
  auto touched = std::chrono::steady_clock::now();
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return !reaped.empty(); }));
    EXPECT_EQ(reaped, std::vector<std::string>{"nap"});
  }
  EXPECT_GE(std::chrono::steady_clock::now() - touched, 300ms);
  ASSERT_TRUE(PollUntil([&] { return Sup().GetStatus("nap")->state == ProcessState::kStopped; }));

  // A request brings it back; the reaper is still running and will stop it again later, but
  // shutting the pool down ends the reaper at once.
  std::promise<bool> done;
  Served(a);
  a->Activate(15s, [&](bool ok) { done.set_value(ok); });
  ASSERT_TRUE(done.get_future().get()) << [&] {
    std::string all;
    for (const auto& l : *Sup().Logs("nap")) all += l.text + "\n";
    return all;
  }();
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(reaped.size(), 1u);  // never while a request waited for the start
  }
  auto t0 = std::chrono::steady_clock::now();
  pool.Shutdown();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 250ms);
}

TEST_F(ServerActivator, PoolShutdownFailsPendingActivations) {
  runtime::ProcessSpec spec;
  spec.service = "slow";
  spec.command = "exec sleep 60";  // starts, never listens
  ASSERT_TRUE(Sup().Start(spec));
  ASSERT_TRUE(Sup().Stop("slow", 10ms));
  ActivatorOptions o;
  o.scale_to_zero_after = std::chrono::hours(1);
  ActivatorPool& pool = Pool(o);
  auto a = pool.For("slow");
  Callbacks cb(2);
  a->Activate(60s, cb.For(0));
  a->Activate(60s, cb.For(1));
  EXPECT_EQ(a->pending_activations(), 2u);
  EXPECT_EQ(cb.total(), 0u);

  auto t0 = std::chrono::steady_clock::now();
  pool.Shutdown();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);  // reaper sleeping for 1 h ended too
  ASSERT_TRUE(cb.WaitAll(1s));
  EXPECT_EQ(cb.calls(0), 1);
  EXPECT_EQ(cb.calls(1), 1);
  EXPECT_FALSE(cb.result(0));
  EXPECT_FALSE(cb.result(1));
  EXPECT_EQ(a->pending_activations(), 0u);

  std::optional<bool> late;
  a->Activate(60s, [&](bool ok) { late = ok; });
  EXPECT_EQ(late, false);
  std::optional<bool> fresh;
  pool.For("other")->Activate(60s, [&](bool ok) { fresh = ok; });
  EXPECT_EQ(fresh, false);

  // The supervisor's own waiters fire later at its shutdown and find them settled.
  Sup().Shutdown(10ms);
  EXPECT_EQ(cb.calls(0), 1);
  EXPECT_EQ(cb.calls(1), 1);
}

TEST_F(ServerActivator, SupervisorShutdownFailsPendingActivations) {
  runtime::ProcessSpec spec;
  spec.service = "slow";
  spec.command = "exec sleep 60";
  ASSERT_TRUE(Sup().Start(spec));
  auto a = std::make_shared<SupervisorActivator>(Sup(), "slow");
  std::promise<bool> done;
  a->Activate(60s, [&](bool ok) { done.set_value(ok); });
  auto f = done.get_future();
  EXPECT_EQ(f.wait_for(50ms), std::future_status::timeout);
  Sup().Shutdown(10ms);
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  EXPECT_FALSE(f.get());
  std::optional<bool> after;
  a->Activate(1s, [&](bool ok) { after = ok; });
  EXPECT_EQ(after, false);
}

TEST_F(ServerActivator, FactoryReturnsTheSameActivatorPerServiceUntilRetainDropsIt) {
  ActivatorPool& pool = Pool();
  ActivatorFactory factory = MakeActivatorFactory(pool);
  auto a = factory("projects/p/locations/r/services/a");
  EXPECT_EQ(a, factory("projects/p/locations/r/services/a"));
  EXPECT_EQ(a, pool.For("projects/p/locations/r/services/a"));
  EXPECT_NE(a, factory("projects/p/locations/r/services/b"));
  Served(a);  // survives route-table rebuilds: same object, same last use
  auto used = static_cast<SupervisorActivator*>(a.get())->last_use();
  EXPECT_EQ(pool.For("projects/p/locations/r/services/a")->last_use(), used);
  pool.Retain({"projects/p/locations/r/services/b"});
  EXPECT_NE(a, factory("projects/p/locations/r/services/a"));
  EXPECT_EQ(pool.ReapIdle(), 0u);  // scale to zero off: a no-op
}

}  // namespace
}  // namespace moat::server
