#include "runtime/supervisor.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <sstream>
#include <string>
#include <thread>

namespace moat::runtime {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// A tiny server the tests run: writes its environment to $MARKER_DIR/env, prints one line on
// each stream, then listens on 127.0.0.1:$PORT. argv[1] picks how it treats SIGTERM.
constexpr char kServerPy[] = R"PY(
import os, signal, socket, sys
mode = sys.argv[1] if len(sys.argv) > 1 else "plain"
out = os.environ["MARKER_DIR"]
def mark(name):
    with open(os.path.join(out, name), "w") as f:
        f.write(str(os.getpid()))
if mode == "trap":
    def on_term(sig, frame):
        mark("term")
        sys.exit(0)
    signal.signal(signal.SIGTERM, on_term)
elif mode == "ignore":
    signal.signal(signal.SIGTERM, lambda sig, frame: mark("ignored"))
with open(os.path.join(out, "env.tmp"), "w") as f:
    for k, v in os.environ.items():
        f.write(k + "=" + v + "\n")
os.rename(os.path.join(out, "env.tmp"), os.path.join(out, "env"))
print("hello on stdout", flush=True)
print("hello on stderr", file=sys.stderr, flush=True)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(os.environ["PORT"])))
s.listen(16)
while True:
    c, _ = s.accept()
    c.sendall(b"ok")
    c.close()
)PY";

// Polls `pred` every few milliseconds until it holds or `timeout` passes.
bool PollUntil(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 10s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

bool ProcessExists(int pid) {
  if (pid <= 0) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return false;
  std::string line;
  std::getline(stat, line);
  // A zombie that is not our child will be reaped by init; count it as gone.
  auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
}

// Our direct children (any state, zombies included), from /proc.
std::vector<int> ChildrenOfThisProcess() {
  std::vector<int> out;
  DIR* d = opendir("/proc");
  if (d == nullptr) return out;
  const std::string me = std::to_string(getpid());
  while (dirent* ent = readdir(d)) {
    std::string name = ent->d_name;
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat("/proc/" + name + "/stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    std::string state, ppid;
    rest >> state >> ppid;
    if (ppid == me) out.push_back(std::stoi(name));
  }
  closedir(d);
  return out;
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::map<std::string, std::string> ReadEnvFile(const fs::path& p) {
  std::map<std::string, std::string> env;
  std::ifstream in(p);
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    if (eq != std::string::npos) env[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return env;
}

// Sends one HTTP/1.1 request to 127.0.0.1:port and returns the whole response.
std::string HttpRequest(uint16_t port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size())) {
    char buf[4096];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0) response.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return response;
}

bool LogsContain(const Supervisor& sup, const std::string& service, LogStream stream,
                 const std::string& needle) {
  auto logs = sup.Logs(service);
  if (!logs) return false;
  for (const auto& l : *logs) {
    if (l.stream == stream && l.text.find(needle) != std::string::npos) return true;
  }
  return false;
}

class RuntimeSupervisor : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/moat-runtime-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::ofstream(dir_ / "server.py") << kServerPy;
    fs::create_directories(dir_ / "logs");
    options_.log_dir = (dir_ / "logs").string();
    options_.backoff_base = 20ms;
    options_.backoff_cap = 200ms;
    options_.startup_timeout = 15s;
  }

  void TearDown() override {
    sup_.reset();  // destructor stops everything
    // Every child was reaped: nothing of ours is left, not even a zombie.
    EXPECT_TRUE(ChildrenOfThisProcess().empty());
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  Supervisor& Sup() {
    if (!sup_) sup_ = std::make_unique<Supervisor>(options_);
    return *sup_;
  }

  ProcessSpec ServerSpec(const std::string& service, const std::string& mode = "plain") {
    ProcessSpec spec;
    spec.service = service;
    spec.command = "exec python3 server.py " + mode;
    spec.working_dir = dir_.string();
    spec.env["MARKER_DIR"] = dir_.string();
    return spec;
  }

  fs::path dir_;
  SupervisorOptions options_;
  std::unique_ptr<Supervisor> sup_;
};

TEST_F(RuntimeSupervisor, StartsCommandWithContractEnvironmentAndBecomesReady) {
  setenv("MOAT_MASTER_KEY", "do-not-leak", 1);
  setenv("MOAT_TEST_UNRELATED", "also-not-passed", 1);
  ProcessSpec spec = ServerSpec("projects/p/locations/us-central1/services/hello");
  spec.env["GREETING"] = "hi there";
  spec.k_revision = "hello-00001-abc";
  spec.metadata_host = "127.0.0.1:45678";
  auto started = Sup().Start(spec);
  ASSERT_TRUE(started) << started.error().ToString();
  EXPECT_EQ(started->state, ProcessState::kStarting);
  EXPECT_GT(started->pid, 0);
  EXPECT_GT(started->port, 0);

  auto ready = Sup().WaitReady(spec.service, 15s);
  ASSERT_TRUE(ready) << ready.error().ToString();
  EXPECT_EQ(ready->state, ProcessState::kReady);
  EXPECT_EQ(ready->restarts, 0);
  EXPECT_EQ(HttpRequest(ready->port, "x"), "ok");

  ASSERT_TRUE(PollUntil([&] { return fs::exists(dir_ / "env"); }));
  auto env = ReadEnvFile(dir_ / "env");
  EXPECT_EQ(env["PORT"], std::to_string(ready->port));
  EXPECT_EQ(env["K_SERVICE"], "hello");
  EXPECT_EQ(env["K_REVISION"], "hello-00001-abc");
  EXPECT_EQ(env["K_CONFIGURATION"], "hello");
  EXPECT_EQ(env["GCE_METADATA_HOST"], "127.0.0.1:45678");
  EXPECT_EQ(env["GCE_METADATA_IP"], "127.0.0.1:45678");
  EXPECT_EQ(env["GREETING"], "hi there");
  // Moat's PATH is passed on (a pyenv shim for python3 may prepend to it).
  EXPECT_NE(env["PATH"].find(std::getenv("PATH")), std::string::npos);
  EXPECT_EQ(env.count("MOAT_MASTER_KEY"), 0u);
  EXPECT_EQ(env.count("MOAT_TEST_UNRELATED"), 0u);
  unsetenv("MOAT_MASTER_KEY");
  unsetenv("MOAT_TEST_UNRELATED");
}

TEST_F(RuntimeSupervisor, CapturesStdoutAndStderrInRingAndLogFile) {
  ProcessSpec spec = ServerSpec("projects/p/locations/r/services/logs");
  ASSERT_TRUE(Sup().Start(spec));
  ASSERT_TRUE(Sup().WaitReady(spec.service, 15s));
  ASSERT_TRUE(PollUntil([&] {
    return LogsContain(Sup(), spec.service, LogStream::kStdout, "hello on stdout") &&
           LogsContain(Sup(), spec.service, LogStream::kStderr, "hello on stderr");
  }));
  EXPECT_TRUE(LogsContain(Sup(), spec.service, LogStream::kSystem, "ready"));
  EXPECT_FALSE(LogsContain(Sup(), spec.service, LogStream::kStdout, "hello on stderr"));

  auto logs = Sup().Logs(spec.service);
  ASSERT_TRUE(logs);
  for (size_t i = 1; i < logs->size(); ++i) EXPECT_EQ((*logs)[i].seq, (*logs)[i - 1].seq + 1);
  auto last_two = Sup().Logs(spec.service, {}, 2);
  ASSERT_TRUE(last_two);
  ASSERT_EQ(last_two->size(), 2u);
  EXPECT_EQ(last_two->back().seq, logs->back().seq);
  auto future = Sup().Logs(spec.service, SystemClock().Now() + 1h);
  ASSERT_TRUE(future);
  EXPECT_TRUE(future->empty());

  fs::path file = dir_ / "logs" / "projects_p_locations_r_services_logs.log";
  std::string content = ReadFile(file);
  EXPECT_NE(content.find(" stdout hello on stdout\n"), std::string::npos) << content;
  EXPECT_NE(content.find(" stderr hello on stderr\n"), std::string::npos) << content;
  EXPECT_FALSE(Sup().Logs("nope"));
}

TEST_F(RuntimeSupervisor, RingIsBoundedAndLongAndUnterminatedLinesAreKept) {
  options_.log_ring_lines = 5;
  options_.max_line_bytes = 8;
  options_.backoff_base = 10s;  // exits once, then waits: the ring is stable
  ProcessSpec spec;
  spec.service = "ring";
  spec.command = "seq 1 20; printf '0123456789abcdef\\n'; printf tail";
  ASSERT_TRUE(Sup().Start(spec));
  ASSERT_TRUE(PollUntil([&] { return Sup().GetStatus("ring")->state == ProcessState::kBackoff; }));
  auto logs = Sup().Logs("ring");
  ASSERT_TRUE(logs);
  ASSERT_EQ(logs->size(), 5u);
  EXPECT_EQ((*logs)[0].text, "20");
  EXPECT_EQ((*logs)[1].text, "01234567");
  EXPECT_EQ((*logs)[2].text, "89abcdef");
  EXPECT_EQ((*logs)[3].text, "tail");
  EXPECT_EQ((*logs)[4].stream, LogStream::kSystem);
  EXPECT_NE((*logs)[4].text.find("exited with status 0"), std::string::npos);
}

TEST_F(RuntimeSupervisor, KilledProcessIsRestartedWithBackoff) {
  ProcessSpec spec = ServerSpec("victim");
  ASSERT_TRUE(Sup().Start(spec));
  auto first = Sup().WaitReady("victim", 15s);
  ASSERT_TRUE(first);
  ASSERT_EQ(kill(first->pid, SIGKILL), 0);

  ASSERT_TRUE(PollUntil([&] {
    auto s = Sup().GetStatus("victim");
    return s->restarts == 1 && s->state == ProcessState::kReady;
  }));
  auto second = Sup().GetStatus("victim");
  EXPECT_NE(second->pid, first->pid);
  EXPECT_EQ(second->port, first->port);  // the gateway's upstream stays valid
  EXPECT_EQ(second->last_exit_signal, SIGKILL);
  EXPECT_FALSE(second->last_exit_code.has_value());
  EXPECT_NE(second->last_error.find("SIGKILL"), std::string::npos) << second->last_error;
  EXPECT_FALSE(ProcessExists(first->pid));
  EXPECT_EQ(HttpRequest(second->port, "x"), "ok");
}

TEST_F(RuntimeSupervisor, CommandThatExitsImmediatelyBacksOffWithoutTightLoop) {
  options_.backoff_base = 50ms;
  options_.backoff_cap = 400ms;
  ProcessSpec spec;
  spec.service = "crasher";
  spec.command = "echo about to fail; exit 3";
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(Sup().Start(spec));
  bool saw_backoff = false;
  ASSERT_TRUE(PollUntil([&] {
    auto s = Sup().GetStatus("crasher");
    if (s->state == ProcessState::kBackoff) {
      saw_backoff = true;
      EXPECT_GT(s->restart_in.count(), -1);
      EXPECT_LE(s->restart_in, 400ms);
    }
    return s->restarts >= 4;
  }));
  auto elapsed = std::chrono::steady_clock::now() - t0;
  // Delays 50 + 100 + 200 ms precede the 4th death: no tight loop.
  EXPECT_GE(elapsed, 350ms);
  EXPECT_TRUE(saw_backoff);
  auto s = Sup().GetStatus("crasher");
  EXPECT_EQ(s->last_exit_code, 3);
  EXPECT_LE(s->restarts, 8);
  EXPECT_NE(s->last_error.find("before accepting connections"), std::string::npos);
  EXPECT_TRUE(LogsContain(Sup(), "crasher", LogStream::kStdout, "about to fail"));
  EXPECT_TRUE(LogsContain(Sup(), "crasher", LogStream::kSystem, "restarting in 100ms"));

  // WaitReady keeps waiting through restarts and then reports the state.
  auto wait = Sup().WaitReady("crasher", 100ms);
  ASSERT_FALSE(wait);
  EXPECT_EQ(wait.error().code, Code::kUnavailable);

  // Stop cancels the pending restart.
  ASSERT_TRUE(Sup().Stop("crasher"));
  EXPECT_EQ(Sup().GetStatus("crasher")->state, ProcessState::kStopped);
}

TEST_F(RuntimeSupervisor, BackoffResetsAfterAProcessStayedUp) {
  options_.backoff_reset_after = 300ms;
  ProcessSpec spec = ServerSpec("flaky");
  // The first three runs fail at once, then it serves.
  spec.command =
      "n=$(cat count 2>/dev/null || echo 0); echo $((n+1)) > count; "
      "[ \"$n\" -lt 3 ] && exit 1; exec python3 server.py";
  ASSERT_TRUE(Sup().Start(spec));
  ASSERT_TRUE(PollUntil([&] { return Sup().GetStatus("flaky")->state == ProcessState::kReady; }));
  auto up = Sup().GetStatus("flaky");
  EXPECT_EQ(up->restarts, 3);
  EXPECT_EQ(up->consecutive_failures, 3);
  EXPECT_TRUE(LogsContain(Sup(), "flaky", LogStream::kSystem, "restarting in 80ms"));
  // Let it stay up past backoff_reset_after (counted from its spawn), then kill it.
  auto since = std::chrono::steady_clock::now();
  PollUntil([&] { return std::chrono::steady_clock::now() - since > 350ms; }, 1s);
  ASSERT_EQ(kill(up->pid, SIGKILL), 0);
  ASSERT_TRUE(PollUntil([&] {
    auto s = Sup().GetStatus("flaky");
    return s->restarts == 4 && s->state == ProcessState::kReady;
  }));
  EXPECT_EQ(Sup().GetStatus("flaky")->consecutive_failures, 1);
  // The restart after the long run waited only backoff_base again.
  auto logs = Sup().Logs("flaky");
  ASSERT_TRUE(logs);
  bool found = false;
  for (const auto& l : *logs) {
    if (l.text.find("SIGKILL; restarting in 20ms") != std::string::npos) found = true;
  }
  EXPECT_TRUE(found);
}

TEST_F(RuntimeSupervisor, StartupTimeoutKillsAndCountsAsCrash) {
  options_.backoff_base = 10s;
  ProcessSpec spec;
  spec.service = "silent";
  spec.command = "exec sleep 60";  // never listens on PORT
  spec.startup_timeout = 150ms;
  auto started = Sup().Start(spec);
  ASSERT_TRUE(started);
  ASSERT_TRUE(
      PollUntil([&] { return Sup().GetStatus("silent")->state == ProcessState::kBackoff; }));
  auto s = Sup().GetStatus("silent");
  EXPECT_EQ(s->restarts, 1);
  EXPECT_EQ(s->last_exit_signal, SIGKILL);
  EXPECT_NE(s->last_error.find("did not accept connections on PORT"), std::string::npos);
  EXPECT_FALSE(ProcessExists(started->pid));
}

TEST_F(RuntimeSupervisor, StopSendsSigtermFirst) {
  ProcessSpec spec = ServerSpec("polite", "trap");
  ASSERT_TRUE(Sup().Start(spec));
  auto ready = Sup().WaitReady("polite", 15s);
  ASSERT_TRUE(ready);
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(Sup().Stop("polite", 10s));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_EQ(ReadFile(dir_ / "term"), std::to_string(ready->pid));
  auto s = Sup().GetStatus("polite");
  EXPECT_EQ(s->state, ProcessState::kStopped);
  EXPECT_EQ(s->pid, 0);
  EXPECT_EQ(s->last_exit_code, 0);
  EXPECT_EQ(s->restarts, 0);
  EXPECT_FALSE(ProcessExists(ready->pid));
  EXPECT_TRUE(Sup().Stop("polite"));  // idempotent
  EXPECT_FALSE(Sup().Stop("unknown"));
}

TEST_F(RuntimeSupervisor, StopSendsSigkillWhenSigtermIsIgnored) {
  ProcessSpec spec = ServerSpec("stubborn", "ignore");
  ASSERT_TRUE(Sup().Start(spec));
  auto ready = Sup().WaitReady("stubborn", 15s);
  ASSERT_TRUE(ready);
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(Sup().Stop("stubborn", 300ms));
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 5s);
  EXPECT_TRUE(fs::exists(dir_ / "ignored"));  // it saw SIGTERM and carried on
  auto s = Sup().GetStatus("stubborn");
  EXPECT_EQ(s->state, ProcessState::kStopped);
  EXPECT_EQ(s->last_exit_signal, SIGKILL);
  EXPECT_FALSE(ProcessExists(ready->pid));
  EXPECT_TRUE(LogsContain(Sup(), "stubborn", LogStream::kSystem, "sent SIGKILL"));
}

TEST_F(RuntimeSupervisor, StopKillsTheWholeProcessGroup) {
  ProcessSpec spec = ServerSpec("family");
  spec.command = "sleep 600 & echo $! > bg.pid; python3 server.py";
  ASSERT_TRUE(Sup().Start(spec));
  ASSERT_TRUE(Sup().WaitReady("family", 15s));
  ASSERT_TRUE(PollUntil([&] { return !ReadFile(dir_ / "bg.pid").empty(); }));
  int bg = std::stoi(ReadFile(dir_ / "bg.pid"));
  EXPECT_TRUE(ProcessExists(bg));
  ASSERT_TRUE(Sup().Stop("family", 2s));
  EXPECT_TRUE(PollUntil([&] { return !ProcessExists(bg); }));
}

TEST_F(RuntimeSupervisor, EnsureRunningRestartsAStoppedServiceOnTheSamePort) {
  ProcessSpec spec = ServerSpec("lazy");
  ASSERT_TRUE(Sup().Start(spec));
  auto first = Sup().WaitReady("lazy", 15s);
  ASSERT_TRUE(first);
  ASSERT_TRUE(Sup().Stop("lazy"));
  auto wait = Sup().WaitReady("lazy", 1s);
  ASSERT_FALSE(wait);
  EXPECT_EQ(wait.error().code, Code::kFailedPrecondition);

  auto again = Sup().EnsureRunning("lazy");
  ASSERT_TRUE(again) << again.error().ToString();
  EXPECT_EQ(again->state, ProcessState::kStarting);
  auto ready = Sup().WaitReady("lazy", 15s);
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->port, first->port);
  EXPECT_NE(ready->pid, first->pid);
  // Already running: a no-op.
  auto same = Sup().EnsureRunning("lazy");
  ASSERT_TRUE(same);
  EXPECT_EQ(same->pid, ready->pid);
  EXPECT_EQ(Sup().EnsureRunning("unknown").error().code, Code::kNotFound);
}

TEST_F(RuntimeSupervisor, NotifyWhenReadyAnswersWithoutBlocking) {
  ProcessSpec spec = ServerSpec("async");
  ASSERT_TRUE(Sup().Start(spec));
  std::promise<Result<ProcessStatus>> ready_promise;
  std::promise<bool> reentrant;
  Sup().NotifyWhenReady("async", 15s, [&](Result<ProcessStatus> r) {
    // Runs with no lock held: calling back into the supervisor is fine.
    reentrant.set_value(Sup().GetStatus("async").has_value());
    ready_promise.set_value(std::move(r));
  });
  auto ready = ready_promise.get_future().get();
  ASSERT_TRUE(ready) << ready.error().ToString();
  EXPECT_EQ(ready->state, ProcessState::kReady);
  EXPECT_TRUE(reentrant.get_future().get());

  // Already ready / unknown: answered at once on this thread.
  std::optional<Code> code;
  Sup().NotifyWhenReady("async", 1s,
                        [&](Result<ProcessStatus> r) { code = r ? Code::kOk : r.error().code; });
  EXPECT_EQ(code, Code::kOk);
  Sup().NotifyWhenReady("nope", 1s,
                        [&](Result<ProcessStatus> r) { code = r ? Code::kOk : r.error().code; });
  EXPECT_EQ(code, Code::kNotFound);

  // Never listens: times out with Unavailable.
  ProcessSpec silent;
  silent.service = "silent";
  silent.command = "exec sleep 60";
  ASSERT_TRUE(Sup().Start(silent));
  std::promise<Result<ProcessStatus>> timeout_promise;
  auto t0 = std::chrono::steady_clock::now();
  Sup().NotifyWhenReady("silent", 100ms,
                        [&](Result<ProcessStatus> r) { timeout_promise.set_value(std::move(r)); });
  auto timed_out = timeout_promise.get_future().get();
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 100ms);
  ASSERT_FALSE(timed_out);
  EXPECT_EQ(timed_out.error().code, Code::kUnavailable);
  EXPECT_NE(timed_out.error().message.find("STARTING"), std::string::npos);

  // A waiter pending at shutdown is answered too.
  std::promise<Result<ProcessStatus>> shutdown_promise;
  Sup().NotifyWhenReady("silent", 60s,
                        [&](Result<ProcessStatus> r) { shutdown_promise.set_value(std::move(r)); });
  Sup().Shutdown(100ms);
  auto at_shutdown = shutdown_promise.get_future().get();
  ASSERT_FALSE(at_shutdown);
  EXPECT_EQ(at_shutdown.error().code, Code::kFailedPrecondition);
}

TEST_F(RuntimeSupervisor, StateCellFollowsTheLifeCycleAcrossRemoveAndRestart) {
  auto cell = Sup().StateCell("cell");  // before the service exists
  EXPECT_EQ(cell->load(), ProcessState::kStopped);
  ASSERT_TRUE(Sup().Start(ServerSpec("cell")));
  ASSERT_TRUE(Sup().WaitReady("cell", 15s));
  EXPECT_EQ(cell->load(), ProcessState::kReady);
  ASSERT_TRUE(Sup().Stop("cell"));
  EXPECT_EQ(cell->load(), ProcessState::kStopped);
  ASSERT_TRUE(Sup().Remove("cell"));
  EXPECT_EQ(Sup().StateCell("cell"), cell);  // one cell per key, kept across Remove
  ASSERT_TRUE(Sup().Start(ServerSpec("cell")));
  EXPECT_EQ(cell->load(), ProcessState::kStarting);
  ASSERT_TRUE(Sup().WaitReady("cell", 15s));
  EXPECT_EQ(cell->load(), ProcessState::kReady);
}

TEST_F(RuntimeSupervisor, EnsureRunningNowCutsABackoffShort) {
  options_.backoff_base = 30s;  // left alone, the restart would come much later
  options_.backoff_cap = 30s;
  ASSERT_TRUE(Sup().Start(ServerSpec("eager")));
  auto first = Sup().WaitReady("eager", 15s);
  ASSERT_TRUE(first);
  ASSERT_EQ(kill(first->pid, SIGKILL), 0);
  ASSERT_TRUE(PollUntil([&] { return Sup().GetStatus("eager")->state == ProcessState::kBackoff; }));
  EXPECT_GT(Sup().GetStatus("eager")->restart_in, 10s);

  auto now = Sup().EnsureRunningNow("eager");
  ASSERT_TRUE(now) << now.error().ToString();
  EXPECT_EQ(now->state, ProcessState::kStarting);
  auto ready = Sup().WaitReady("eager", 15s);
  ASSERT_TRUE(ready);
  EXPECT_NE(ready->pid, first->pid);
  EXPECT_EQ(ready->port, first->port);
  EXPECT_EQ(ready->restarts, 1);
  EXPECT_TRUE(LogsContain(Sup(), "eager", LogStream::kSystem, "restarting now"));
  // Ready already: a no-op.
  EXPECT_EQ(Sup().EnsureRunningNow("eager")->pid, ready->pid);
  EXPECT_EQ(Sup().EnsureRunningNow("unknown").error().code, Code::kNotFound);
}

TEST_F(RuntimeSupervisor, EnsureRunningNowKeepsTheBackoffOfACrashLoop) {
  options_.backoff_base = 30s;
  options_.backoff_cap = 30s;
  ProcessSpec spec;
  spec.service = "looper";
  spec.command = "exit 3";
  ASSERT_TRUE(Sup().Start(spec));
  ASSERT_TRUE(
      PollUntil([&] { return Sup().GetStatus("looper")->state == ProcessState::kBackoff; }));
  // One failure in a row (< 2): restarted at once; it fails again.
  auto again = Sup().EnsureRunningNow("looper", 2);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->state, ProcessState::kStarting);
  ASSERT_TRUE(PollUntil([&] {
    auto s = Sup().GetStatus("looper");
    return s->state == ProcessState::kBackoff && s->consecutive_failures == 2;
  }));
  // Two in a row: the backoff stands.
  auto kept = Sup().EnsureRunningNow("looper", 2);
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->state, ProcessState::kBackoff);
  EXPECT_GT(kept->restart_in, 10s);
  EXPECT_EQ(kept->restarts, 2);
}

TEST_F(RuntimeSupervisor, NotifyWhenReadyFailOnExitAnswersAtTheFirstDeath) {
  ProcessSpec spec;
  spec.service = "dies";
  spec.command = "exit 7";
  std::promise<Result<ProcessStatus>> patient, impatient;
  ASSERT_TRUE(Sup().Start(spec));
  auto t0 = std::chrono::steady_clock::now();
  Sup().NotifyWhenReady(
      "dies", 60s, [&](Result<ProcessStatus> r) { impatient.set_value(std::move(r)); }, true);
  Sup().NotifyWhenReady("dies", 300ms,
                        [&](Result<ProcessStatus> r) { patient.set_value(std::move(r)); });
  auto fast = impatient.get_future().get();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  ASSERT_FALSE(fast);
  EXPECT_EQ(fast.error().code, Code::kUnavailable);
  EXPECT_NE(fast.error().message.find("exited before becoming ready"), std::string::npos)
      << fast.error().message;
  EXPECT_NE(fast.error().message.find("status 7"), std::string::npos) << fast.error().message;
  // Without fail_on_exit the waiter sits through the restarts until its timeout.
  auto slow = patient.get_future().get();
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 300ms);
  ASSERT_FALSE(slow);
  EXPECT_NE(slow.error().message.find("within"), std::string::npos) << slow.error().message;
}

TEST_F(RuntimeSupervisor, RequestStopReturnsWithoutWaitingForTheProcess) {
  options_.stop_grace = 400ms;
  ASSERT_TRUE(Sup().Start(ServerSpec("stubborn", "ignore")));
  auto ready = Sup().WaitReady("stubborn", 15s);
  ASSERT_TRUE(ready);
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(Sup().RequestStop("stubborn"));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 300ms);  // SIGTERM is ignored: no waiting
  EXPECT_EQ(Sup().GetStatus("stubborn")->state, ProcessState::kStopping);
  ASSERT_TRUE(
      PollUntil([&] { return Sup().GetStatus("stubborn")->state == ProcessState::kStopped; }));
  EXPECT_FALSE(ProcessExists(ready->pid));
  EXPECT_TRUE(LogsContain(Sup(), "stubborn", LogStream::kSystem, "SIGKILL"));
  EXPECT_EQ(Sup().RequestStop("unknown").error().code, Code::kNotFound);
}

TEST_F(RuntimeSupervisor, RejectsBadSpecsWithCleanErrors) {
  ProcessSpec ok = ServerSpec("svc");
  auto code_of = [&](ProcessSpec spec) {
    auto r = Sup().Start(std::move(spec));
    return r ? Code::kOk : r.error().code;
  };
  ProcessSpec s = ok;
  s.service = "";
  EXPECT_EQ(code_of(s), Code::kInvalidArgument);
  s = ok;
  s.service = std::string(300, 'a');
  EXPECT_EQ(code_of(s), Code::kInvalidArgument);
  s = ok;
  s.argv = {"python3"};  // both command and argv
  EXPECT_EQ(code_of(s), Code::kInvalidArgument);
  s = ok;
  s.command.clear();  // neither
  EXPECT_EQ(code_of(s), Code::kInvalidArgument);
  s = ok;
  s.env["PORT"] = "1";
  EXPECT_EQ(code_of(s), Code::kInvalidArgument);
  s = ok;
  s.env["K_SERVICE"] = "x";
  EXPECT_EQ(code_of(s), Code::kInvalidArgument);
  s = ok;
  s.env["A=B"] = "x";
  EXPECT_EQ(code_of(s), Code::kInvalidArgument);
  s = ok;
  s.working_dir = (dir_ / "missing").string();
  EXPECT_EQ(code_of(s), Code::kInvalidArgument);
  s = ok;
  s.command.clear();
  s.argv = {"moat-no-such-program-xyz"};
  auto r = Sup().Start(s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kInvalidArgument);
  EXPECT_EQ(r.error().message, "program `moat-no-such-program-xyz` was not found in PATH");
  s = ok;
  s.command.clear();
  s.argv = {"./not-there"};  // a path: the spawn itself fails
  EXPECT_EQ(code_of(s), Code::kUnavailable);

  ASSERT_EQ(code_of(ok), Code::kOk);
  EXPECT_EQ(code_of(ok), Code::kAlreadyExists);
  s = ServerSpec("other");
  s.port = Sup().GetStatus("svc")->port;
  auto clash = Sup().Start(s);
  ASSERT_FALSE(clash);
  EXPECT_EQ(clash.error().code, Code::kInvalidArgument);
  EXPECT_NE(clash.error().message.find("is used by another service"), std::string::npos);
  EXPECT_EQ(Sup().GetStatus("nope").error().code, Code::kNotFound);
}

TEST_F(RuntimeSupervisor, ArgvFormRunsWithoutShell) {
  ProcessSpec spec = ServerSpec("direct");
  spec.command.clear();
  spec.argv = {"python3", "server.py"};
  ASSERT_TRUE(Sup().Start(spec));
  auto ready = Sup().WaitReady("direct", 15s);
  ASSERT_TRUE(ready);
  std::string cmdline = ReadFile("/proc/" + std::to_string(ready->pid) + "/cmdline");
  EXPECT_NE(cmdline.find("server.py"), std::string::npos);
  EXPECT_EQ(cmdline.find("/bin/sh"), std::string::npos);
}

TEST_F(RuntimeSupervisor, RemoveForgetsTheService) {
  ProcessSpec spec = ServerSpec("gone");
  ASSERT_TRUE(Sup().Start(spec));
  ASSERT_TRUE(Sup().WaitReady("gone", 15s));
  ASSERT_TRUE(Sup().Remove("gone"));
  EXPECT_EQ(Sup().GetStatus("gone").error().code, Code::kNotFound);
  EXPECT_TRUE(Sup().List().empty());
}

TEST_F(RuntimeSupervisor, ShutdownStopsEverythingAndRefusesNewWork) {
  auto a = Sup().Start(ServerSpec("a"));
  auto b = Sup().Start(ServerSpec("b", "ignore"));
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(Sup().WaitReady("a", 15s));
  ASSERT_TRUE(Sup().WaitReady("b", 15s));
  auto list = Sup().List();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].service, "a");
  Sup().Shutdown(200ms);
  for (const auto& s : Sup().List()) EXPECT_EQ(s.state, ProcessState::kStopped);
  EXPECT_FALSE(ProcessExists(a->pid));
  EXPECT_FALSE(ProcessExists(b->pid));
  EXPECT_TRUE(ChildrenOfThisProcess().empty());
  EXPECT_EQ(Sup().Start(ServerSpec("c")).error().code, Code::kUnavailable);
  EXPECT_EQ(Sup().EnsureRunning("a").error().code, Code::kUnavailable);
  Sup().Shutdown();  // idempotent
}

TEST_F(RuntimeSupervisor, SeedFlaskAppRunsUnchanged) {
  ProcessSpec spec;
  spec.service = "projects/p/locations/us-central1/services/seed";
  spec.command = "python3 app.py";
  spec.working_dir = std::string(MOAT_SOURCE_DIR) + "/examples/seed";
  ASSERT_TRUE(Sup().Start(spec));
  auto ready = Sup().WaitReady(spec.service, 20s);
  ASSERT_TRUE(ready) << ready.error().ToString();

  const std::string body = "Testing public access";
  std::string post =
      HttpRequest(ready->port,
                  "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: curl/8.0\r\n"
                  "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: " +
                      std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
  EXPECT_EQ(post.rfind("HTTP/1.1 200", 0), 0u) << post;
  auto split = post.find("\r\n\r\n");
  ASSERT_NE(split, std::string::npos);
  EXPECT_EQ(post.substr(split + 4), "Hello! You sent: Testing public access");

  std::string get =
      HttpRequest(ready->port, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  split = get.find("\r\n\r\n");
  ASSERT_NE(split, std::string::npos);
  EXPECT_EQ(get.substr(split + 4), "Hello! You sent: ");

  // Werkzeug logs each request on stderr.
  EXPECT_TRUE(PollUntil([&] {
    return LogsContain(Sup(), spec.service, LogStream::kStderr, "\"POST / HTTP/1.1\" 200");
  }));
}

TEST(RuntimeHelpers, LogFileNameAndFreePort) {
  EXPECT_EQ(LogFileName("projects/p/locations/r/services/s"), "projects_p_locations_r_services_s");
  EXPECT_EQ(LogFileName("../etc/passwd"), ".._etc_passwd");
  auto port = PickFreeLoopbackPort();
  ASSERT_TRUE(port);
  EXPECT_GT(*port, 0);
  EXPECT_EQ(ProcessStateName(ProcessState::kBackoff), "BACKOFF");
  EXPECT_EQ(LogStreamName(LogStream::kStderr), "stderr");
}

}  // namespace
}  // namespace moat::runtime
