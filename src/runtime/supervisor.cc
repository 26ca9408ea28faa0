#include "runtime/supervisor.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

#include "common/log.h"
#include "common/time.h"

namespace moat::runtime {
namespace {

using Steady = std::chrono::steady_clock;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

constexpr std::string_view kReservedEnv[] = {"PORT", "K_SERVICE", "K_REVISION", "K_CONFIGURATION"};
constexpr size_t kMaxServiceKeyLength = 200;
// Readiness probes start fast (most servers listen within tens of ms) and slow down.
constexpr milliseconds kFirstProbeDelay{5};
constexpr milliseconds kMaxProbeInterval{100};
// Without a pidfd (old kernels) exits are noticed by polling waitid at this interval.
constexpr milliseconds kExitPollInterval{20};
constexpr size_t kReadChunk = 64 << 10;
// Per wake-up and pipe, so one chatty child cannot starve the others.
constexpr int kMaxReadsPerWake = 16;

std::string ErrnoText(int err) {
  char buf[128];
  // GNU strerror_r returns the message (maybe not in buf).
  return strerror_r(err, buf, sizeof buf);
}

std::string FormatMs(Duration d) {
  if (d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + "s";
  return std::to_string(d.count()) + "ms";
}

std::string SignalName(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev != nullptr ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

void CloseFd(int& fd) {
  if (fd >= 0) {
    ::close(fd);
    fd = -1;
  }
}

bool HasNul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

// Finds `name` in the colon-separated `path` the way execvp would (relative directories are
// skipped: the child's working directory differs from ours).
std::optional<std::string> SearchPath(const std::string& name, const std::string& path) {
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    start = end + 1;
    if (dir.empty() || dir[0] != '/') continue;
    std::string candidate = dir + "/" + name;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return std::nullopt;
}

// Non-blocking connect to 127.0.0.1:port; true when something accepts connections there.
bool ProbePort(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    ok = true;
  } else if (errno == EINPROGRESS) {
    // Rare on loopback (full accept queue); bounded so the supervisor thread stays responsive.
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, 50) == 1) {
      int err = 0;
      socklen_t len = sizeof err;
      ok = ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
    }
  }
  ::close(fd);
  return ok;
}

std::map<std::string, std::string> DefaultBaseEnv() {
  std::map<std::string, std::string> env;
  const char* path = std::getenv("PATH");
  env["PATH"] = (path != nullptr && *path != '\0') ? path : "/usr/local/bin:/usr/bin:/bin";
  for (const char* name : {"HOME", "LANG"}) {
    if (const char* v = std::getenv(name); v != nullptr) env[name] = v;
  }
  return env;
}

// What Spawn needs, computed once per Start (validated, paths resolved).
struct LaunchPlan {
  std::string exe;
  std::vector<std::string> argv;
  std::vector<std::string> envp;  // "NAME=value"
  std::string working_dir;
};

}  // namespace

std::string_view ProcessStateName(ProcessState s) {
  switch (s) {
    case ProcessState::kStopped:
      return "STOPPED";
    case ProcessState::kStarting:
      return "STARTING";
    case ProcessState::kReady:
      return "READY";
    case ProcessState::kBackoff:
      return "BACKOFF";
    case ProcessState::kStopping:
      return "STOPPING";
  }
  return "UNKNOWN";
}

std::string_view LogStreamName(LogStream s) {
  switch (s) {
    case LogStream::kStdout:
      return "stdout";
    case LogStream::kStderr:
      return "stderr";
    case LogStream::kSystem:
      return "system";
  }
  return "unknown";
}

std::string LogFileName(std::string_view service) {
  std::string out(service);
  for (char& c : out) {
    bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '.' || c == '_' || c == '-';
    if (!safe) c = '_';
  }
  return out;
}

Result<uint16_t> PickFreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Unavailable("could not pick a free loopback port");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
            ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  ::close(fd);
  if (!ok || addr.sin_port == 0) return Unavailable("could not pick a free loopback port");
  return ntohs(addr.sin_port);
}

struct Supervisor::Impl {
  struct Entry {
    ProcessSpec spec;
    LaunchPlan plan;
    ProcessState state = ProcessState::kStopped;  // written only through SetState
    // Lock-free copy of `state` for StateCell readers (shared by every Entry of this key).
    std::shared_ptr<std::atomic<ProcessState>> cell;
    uint64_t deaths = 0;  // unexpected exits and failed respawns, ever (fail_on_exit waiters)

    // The current process. INVARIANT: pid != 0 ⇔ a child was spawned and is not yet reaped,
    // so signalling the group -pid cannot hit a recycled pid (only the supervisor thread
    // reaps, under mu_). The fds are closed only by the supervisor thread.
    pid_t pid = 0;
    int out_fd = -1;
    int err_fd = -1;
    int pidfd = -1;
    std::string out_partial;
    std::string err_partial;
    Steady::time_point spawned{};
    Steady::time_point probe_at{};
    milliseconds probe_interval{kFirstProbeDelay};
    Steady::time_point startup_deadline{};
    bool startup_timed_out = false;
    Steady::time_point kill_at{};  // kStopping: when SIGKILL follows SIGTERM
    bool kill_sent = false;
    Steady::time_point restart_at{};  // kBackoff

    uint64_t stops_completed = 0;  // lets Stop wait for *its* stop, not a later state
    int restarts = 0;
    int consecutive_failures = 0;
    std::optional<int> last_exit_code;
    std::optional<int> last_exit_signal;
    std::string last_error;
    TimePoint started_at{};

    std::deque<LogLine> ring;
    size_t ring_bytes = 0;
    uint64_t next_seq = 1;
    std::string log_path;
    int log_fd = -1;
    uint64_t log_size = 0;
  };
  using EntryPtr = std::shared_ptr<Entry>;

  struct Waiter {
    std::string service;
    Steady::time_point deadline;
    Duration timeout;
    ReadyCallback done;
    bool fail_on_exit = false;
    uint64_t deaths = 0;  // the entry's count when the waiter registered
  };
  using Fired = std::vector<std::pair<ReadyCallback, Result<ProcessStatus>>>;

  explicit Impl(SupervisorOptions o) : options(std::move(o)) {
    if (options.clock == nullptr) options.clock = &SystemClock();
    if (!options.base_env) options.base_env = DefaultBaseEnv();
    options.log_ring_lines = std::max<size_t>(options.log_ring_lines, 1);
    options.max_line_bytes = std::max<size_t>(options.max_line_bytes, 1);
    options.backoff_base = std::max(options.backoff_base, Duration(1));
    options.backoff_cap = std::max(options.backoff_cap, options.backoff_base);
    if (!options.log_dir.empty()) {
      std::error_code ec;
      std::filesystem::create_directories(options.log_dir, ec);  // Start reports failures
    }
    wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
    thread = std::thread([this] { Run(); });
  }

  ~Impl() {
    for (auto& [key, e] : entries) CloseFd(e->log_fd);
    CloseFd(wake_fd);
  }

  void Wake() {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd, &one, sizeof one);
  }

  EntryPtr Find(std::string_view service) const {
    auto it = entries.find(service);
    return it == entries.end() ? nullptr : it->second;
  }

  // Every state change goes through here so StateCell readers see it. Caller holds mu.
  static void SetState(Entry& e, ProcessState s) {
    e.state = s;
    e.cell->store(s, std::memory_order_release);
  }

  // The cell of `service`, created (kStopped) on first use and kept for the Supervisor's
  // lifetime. Caller holds mu.
  std::shared_ptr<std::atomic<ProcessState>> CellFor(std::string_view service) {
    auto it = cells.find(service);
    if (it == cells.end()) {
      it = cells
               .emplace(std::string(service),
                        std::make_shared<std::atomic<ProcessState>>(ProcessState::kStopped))
               .first;
    }
    return it->second;
  }

  ProcessStatus StatusOf(const Entry& e) const {
    ProcessStatus s;
    s.service = e.spec.service;
    s.state = e.state;
    s.pid = e.pid;
    s.port = e.spec.port;
    s.restarts = e.restarts;
    s.consecutive_failures = e.consecutive_failures;
    s.last_exit_code = e.last_exit_code;
    s.last_exit_signal = e.last_exit_signal;
    s.last_error = e.last_error;
    s.started_at = e.started_at;
    if (e.state == ProcessState::kBackoff) {
      s.restart_in = std::max(Duration(0), duration_cast<Duration>(e.restart_at - Steady::now()));
    }
    return s;
  }

  // WaitReady's answer for `service` now, or nullopt to keep waiting. Caller holds mu.
  std::optional<Result<ProcessStatus>> ReadyAnswer(std::string_view service,
                                                   Steady::time_point deadline, Duration timeout,
                                                   const Waiter* waiter = nullptr) const {
    EntryPtr e = Find(service);
    const std::string quoted = "`" + std::string(service) + "`";
    if (!e) return Result<ProcessStatus>(NotFound("service " + quoted + " was not found"));
    if (e->state == ProcessState::kReady) return Result<ProcessStatus>(StatusOf(*e));
    if (e->state == ProcessState::kStopped) {
      return Result<ProcessStatus>(FailedPrecondition("service " + quoted + " is stopped"));
    }
    if (waiter != nullptr && waiter->fail_on_exit && e->deaths > waiter->deaths) {
      return Result<ProcessStatus>(Unavailable(
          "service " + quoted + " exited before becoming ready (" + e->last_error + ")"));
    }
    if (Steady::now() >= deadline || quit) {
      return Result<ProcessStatus>(
          Unavailable("service " + quoted + " did not become ready within " + FormatMs(timeout) +
                      " (state " + std::string(ProcessStateName(e->state)) + ")"));
    }
    return std::nullopt;
  }

  // Moves the answered waiters into `fired`. Caller holds mu.
  void CollectWaiters(Fired& fired) {
    for (auto it = waiters.begin(); it != waiters.end();) {
      if (auto answer = ReadyAnswer(it->service, it->deadline, it->timeout, &*it)) {
        fired.emplace_back(std::move(it->done), std::move(*answer));
        it = waiters.erase(it);
      } else {
        ++it;
      }
    }
  }

  static void RunFired(Fired& fired) {
    for (auto& [done, result] : fired) done(std::move(result));
    fired.clear();
  }

  // ---- logs -------------------------------------------------------------------------------

  void WriteLogFile(Entry& e, const LogLine& line) {
    if (e.log_fd < 0) return;
    std::string rec = FormatRfc3339(line.time);
    rec += ' ';
    rec += LogStreamName(line.stream);
    rec += ' ';
    rec += line.text;
    rec += '\n';
    if (e.log_size + rec.size() > options.max_log_file_bytes && e.log_size > 0) {
      CloseFd(e.log_fd);
      std::string old = e.log_path + ".1";
      ::rename(e.log_path.c_str(), old.c_str());
      e.log_fd = ::open(e.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      e.log_size = 0;
      if (e.log_fd < 0) return;
    }
    size_t off = 0;
    while (off < rec.size()) {
      ssize_t n = ::write(e.log_fd, rec.data() + off, rec.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // disk full etc.: the in-memory ring still has the line
      off += static_cast<size_t>(n);
    }
    e.log_size += off;
  }

  void AddLine(Entry& e, LogStream stream, std::string_view text) {
    LogLine line;
    line.seq = e.next_seq++;
    line.time = options.clock->Now();
    line.stream = stream;
    line.text.assign(text);
    WriteLogFile(e, line);
    e.ring_bytes += line.text.size();
    e.ring.push_back(std::move(line));
    while (e.ring.size() > options.log_ring_lines ||
           (e.ring_bytes > options.log_ring_bytes && e.ring.size() > 1)) {
      e.ring_bytes -= e.ring.front().text.size();
      e.ring.pop_front();
    }
  }

  void AddChunk(Entry& e, LogStream stream, std::string& partial, std::string_view data) {
    partial.append(data);
    size_t start = 0;
    for (;;) {
      size_t nl = partial.find('\n', start);
      if (nl == std::string::npos) break;
      std::string_view line(partial.data() + start, nl - start);
      while (line.size() > options.max_line_bytes) {
        AddLine(e, stream, line.substr(0, options.max_line_bytes));
        line.remove_prefix(options.max_line_bytes);
      }
      AddLine(e, stream, line);
      start = nl + 1;
    }
    partial.erase(0, start);
    while (partial.size() >= options.max_line_bytes) {
      AddLine(e, stream, std::string_view(partial).substr(0, options.max_line_bytes));
      partial.erase(0, options.max_line_bytes);
    }
  }

  void FlushPartial(Entry& e, LogStream stream, std::string& partial) {
    if (!partial.empty()) AddLine(e, stream, partial);
    partial.clear();
  }

  // Reads what the pipe holds now (bounded); closes it on EOF or error.
  void ReadPipe(Entry& e, int& fd, LogStream stream, std::string& partial) {
    char buf[kReadChunk];
    for (int i = 0; i < kMaxReadsPerWake && fd >= 0; ++i) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n > 0) {
        AddChunk(e, stream, partial, std::string_view(buf, static_cast<size_t>(n)));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      FlushPartial(e, stream, partial);
      CloseFd(fd);
    }
  }

  // ---- spawning -----------------------------------------------------------------------------

  // Spawns e's process. Caller holds mu_. On failure e has no process and last_error says why.
  Status Spawn(Entry& e) {
    int out[2] = {-1, -1};
    int err[2] = {-1, -1};
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
      int saved = errno;
      for (int fd : {out[0], out[1], err[0], err[1]}) {
        if (fd >= 0) ::close(fd);
      }
      e.last_error = "could not create pipes: " + ErrnoText(saved);
      return Unavailable("could not start service `" + e.spec.service + "`: " + e.last_error);
    }
    // Only our read ends are non-blocking; the child's stdout/stderr stay blocking.
    ::fcntl(out[0], F_SETFL, O_NONBLOCK);
    ::fcntl(err[0], F_SETFL, O_NONBLOCK);

    std::vector<char*> argv;
    for (auto& a : e.plan.argv) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (auto& v : e.plan.envp) envp.push_back(v.data());
    envp.push_back(nullptr);

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    // Belt and braces beside O_CLOEXEC: fds other threads opened without it stay with us.
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    if (!e.plan.working_dir.empty()) {
      posix_spawn_file_actions_addchdir_np(&fa, e.plan.working_dir.c_str());
    }
    sigset_t empty_mask;
    sigemptyset(&empty_mask);
    sigset_t defaults;  // signals Moat ignores (SIGPIPE) must not stay ignored in the child
    sigemptyset(&defaults);
    for (int sig = 1; sig < NSIG; ++sig) {
      if (sig != SIGKILL && sig != SIGSTOP) sigaddset(&defaults, sig);
    }
    posix_spawnattr_setsigmask(&attr, &empty_mask);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setpgroup(&attr, 0);  // own process group: Stop signals the whole group
    posix_spawnattr_setflags(
        &attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid = 0;
    int rc = ::posix_spawn(&pid, e.plan.exe.c_str(), &fa, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    ::close(out[1]);
    ::close(err[1]);
    if (rc != 0) {
      ::close(out[0]);
      ::close(err[0]);
      e.last_error = "could not run `" + e.plan.argv[0] + "`: " + ErrnoText(rc);
      AddLine(e, LogStream::kSystem, e.last_error);
      return Unavailable("could not start service `" + e.spec.service + "`: " + e.last_error);
    }
    e.pid = pid;
    e.out_fd = out[0];
    e.err_fd = err[0];
    e.out_partial.clear();
    e.err_partial.clear();
    e.pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));  // -1: fall back to polling
    auto now = Steady::now();
    e.spawned = now;
    e.started_at = options.clock->Now();
    SetState(e, ProcessState::kStarting);
    e.probe_interval = kFirstProbeDelay;
    e.probe_at = now + kFirstProbeDelay;
    e.startup_deadline = now + e.spec.startup_timeout.value_or(options.startup_timeout);
    e.startup_timed_out = false;
    e.kill_sent = false;
    AddLine(
        e, LogStream::kSystem,
        "started process " + std::to_string(pid) + " (PORT=" + std::to_string(e.spec.port) + ")");
    cv.notify_all();
    Wake();
    return Ok();
  }

  void ScheduleRestart(Entry& e, std::string why) {
    auto now = Steady::now();
    bool long_run =
        e.spawned != Steady::time_point{} && now - e.spawned >= options.backoff_reset_after;
    e.consecutive_failures = long_run ? 1 : e.consecutive_failures + 1;
    Duration delay = options.backoff_base;
    for (int i = 1; i < e.consecutive_failures && delay < options.backoff_cap; ++i) delay *= 2;
    delay = std::min(delay, options.backoff_cap);
    e.restarts += 1;
    e.deaths += 1;
    SetState(e, ProcessState::kBackoff);
    e.restart_at = now + delay;
    AddLine(e, LogStream::kSystem, why + "; restarting in " + FormatMs(delay));
    log::Warn("service process died",
              {{"service", e.spec.service}, {"reason", why}, {"restart_in", FormatMs(delay)}});
  }

  // Sends SIGTERM to a live process group and arms the SIGKILL timer.
  void BeginStop(Entry& e, Duration grace) {
    switch (e.state) {
      case ProcessState::kStopped:
        return;
      case ProcessState::kBackoff:
        SetState(e, ProcessState::kStopped);
        e.stops_completed += 1;
        AddLine(e, LogStream::kSystem, "stopped (pending restart cancelled)");
        cv.notify_all();
        return;
      case ProcessState::kStopping: {
        auto at = Steady::now() + grace;
        if (at < e.kill_at) e.kill_at = at;
        Wake();
        return;
      }
      case ProcessState::kStarting:
      case ProcessState::kReady:
        SetState(e, ProcessState::kStopping);
        e.kill_sent = false;
        e.kill_at = Steady::now() + grace;
        if (e.pid != 0) ::kill(-e.pid, SIGTERM);
        AddLine(e, LogStream::kSystem, "stopping: sent SIGTERM, grace " + FormatMs(grace));
        cv.notify_all();
        Wake();
        return;
    }
  }

  // ---- supervisor thread --------------------------------------------------------------------

  // Reaps e's process if it has exited. Caller holds mu_.
  void CheckExit(Entry& e) {
    siginfo_t si{};
    int r = ::waitid(P_PID, static_cast<id_t>(e.pid), &si, WEXITED | WNOHANG | WNOWAIT);
    if (r == 0 && si.si_pid == 0) return;  // still running
    if (r == 0) {
      // The leader is a zombie, so its pid — our pgid — cannot be recycled yet: kill what is
      // left of the group (a shell's child, a forgotten background job), then reap.
      ::kill(-e.pid, SIGKILL);
      siginfo_t reaped{};
      while (::waitid(P_PID, static_cast<id_t>(e.pid), &reaped, WEXITED) != 0 && errno == EINTR) {
      }
    }
    std::string how;
    e.last_exit_code.reset();
    e.last_exit_signal.reset();
    if (r != 0) {
      how = "process " + std::to_string(e.pid) + " exited (status unknown)";
    } else if (si.si_code == CLD_EXITED) {
      e.last_exit_code = si.si_status;
      how = "process " + std::to_string(e.pid) + " exited with status " +
            std::to_string(si.si_status);
    } else {
      e.last_exit_signal = si.si_status;
      how = "process " + std::to_string(e.pid) + " was killed by " + SignalName(si.si_status);
    }
    // Everything the process wrote before exiting is in the pipes now.
    if (e.out_fd >= 0) ReadPipe(e, e.out_fd, LogStream::kStdout, e.out_partial);
    if (e.err_fd >= 0) ReadPipe(e, e.err_fd, LogStream::kStderr, e.err_partial);
    FlushPartial(e, LogStream::kStdout, e.out_partial);
    FlushPartial(e, LogStream::kStderr, e.err_partial);
    CloseFd(e.out_fd);
    CloseFd(e.err_fd);
    CloseFd(e.pidfd);
    e.pid = 0;

    if (e.state == ProcessState::kStopping || shutting_down) {
      SetState(e, ProcessState::kStopped);
      e.last_error = "stopped";
      e.stops_completed += 1;
      AddLine(e, LogStream::kSystem, how + "; stopped");
    } else {
      if (e.startup_timed_out) {
        how = "did not accept connections on PORT " + std::to_string(e.spec.port) + " within " +
              FormatMs(e.spec.startup_timeout.value_or(options.startup_timeout)) + "; " + how;
      } else if (e.state == ProcessState::kStarting) {
        how += " before accepting connections on PORT " + std::to_string(e.spec.port);
      }
      e.last_error = how;
      ScheduleRestart(e, how);
    }
    cv.notify_all();
  }

  void HandleTimers(Entry& e, Steady::time_point now) {
    switch (e.state) {
      case ProcessState::kStarting:
        if (e.pid == 0 || e.startup_timed_out) return;
        if (now >= e.startup_deadline) {
          e.startup_timed_out = true;
          ::kill(-e.pid, SIGKILL);
          return;
        }
        if (now >= e.probe_at) {
          if (ProbePort(e.spec.port)) {
            SetState(e, ProcessState::kReady);
            AddLine(e, LogStream::kSystem,
                    "ready: accepting connections on PORT " + std::to_string(e.spec.port));
            cv.notify_all();
          } else {
            e.probe_interval = std::min(e.probe_interval * 2, kMaxProbeInterval);
            e.probe_at = now + e.probe_interval;
          }
        }
        return;
      case ProcessState::kStopping:
        if (e.pid != 0 && !e.kill_sent && now >= e.kill_at) {
          e.kill_sent = true;
          ::kill(-e.pid, SIGKILL);
          AddLine(e, LogStream::kSystem, "still running after the grace period: sent SIGKILL");
        }
        return;
      case ProcessState::kBackoff:
        if (!shutting_down && now >= e.restart_at) {
          if (!Spawn(e)) ScheduleRestart(e, e.last_error);
          cv.notify_all();
        }
        return;
      case ProcessState::kStopped:
      case ProcessState::kReady:
        return;
    }
  }

  void Run() {
    std::unique_lock lock(mu);
    std::vector<pollfd> fds;
    struct Ref {
      EntryPtr entry;
      int which;  // 0 stdout, 1 stderr, 2 pidfd
    };
    std::vector<Ref> refs;
    Fired fired;
    while (!quit) {
      fds.clear();
      refs.clear();
      fds.push_back({wake_fd, POLLIN, 0});
      auto now = Steady::now();
      auto deadline = now + std::chrono::hours(1);
      for (auto& [key, e] : entries) {
        if (e->pid != 0) {
          if (e->out_fd >= 0) {
            fds.push_back({e->out_fd, POLLIN, 0});
            refs.push_back({e, 0});
          }
          if (e->err_fd >= 0) {
            fds.push_back({e->err_fd, POLLIN, 0});
            refs.push_back({e, 1});
          }
          if (e->pidfd >= 0) {
            fds.push_back({e->pidfd, POLLIN, 0});
            refs.push_back({e, 2});
          } else {
            deadline = std::min(deadline, now + kExitPollInterval);
          }
        }
        switch (e->state) {
          case ProcessState::kStarting:
            if (!e->startup_timed_out) {
              deadline = std::min({deadline, e->probe_at, e->startup_deadline});
            }
            break;
          case ProcessState::kStopping:
            if (!e->kill_sent) deadline = std::min(deadline, e->kill_at);
            break;
          case ProcessState::kBackoff:
            deadline = std::min(deadline, e->restart_at);
            break;
          default:
            break;
        }
      }
      for (const auto& w : waiters) deadline = std::min(deadline, w.deadline);
      auto wait = duration_cast<milliseconds>(deadline - now);
      // Round up so a timer is not woken for a fraction of a millisecond early, repeatedly.
      int timeout_ms = static_cast<int>(std::clamp<int64_t>(wait.count() + 1, 0, 3'600'000));
      if (deadline <= now) timeout_ms = 0;

      lock.unlock();
      int n = ::poll(fds.data(), fds.size(), timeout_ms);
      lock.lock();
      if (n < 0 && errno != EINTR) {
        log::Error("supervisor poll failed", {{"error", ErrnoText(errno)}});
      }
      if (n > 0 && (fds[0].revents & POLLIN)) {
        uint64_t v;
        [[maybe_unused]] ssize_t r = ::read(wake_fd, &v, sizeof v);
      }
      for (size_t i = 0; n > 0 && i < refs.size(); ++i) {
        if (fds[i + 1].revents == 0) continue;
        Entry& e = *refs[i].entry;
        // Only this thread closes these fds, so fds[i + 1].fd still belongs to e — unless
        // the process was reaped and respawned meanwhile, which also happens only here.
        if (refs[i].which == 0 && e.out_fd == fds[i + 1].fd) {
          ReadPipe(e, e.out_fd, LogStream::kStdout, e.out_partial);
        } else if (refs[i].which == 1 && e.err_fd == fds[i + 1].fd) {
          ReadPipe(e, e.err_fd, LogStream::kStderr, e.err_partial);
        }
      }
      now = Steady::now();
      for (auto& [key, e] : entries) {
        if (e->pid != 0) CheckExit(*e);
        HandleTimers(*e, now);
      }
      CollectWaiters(fired);
      if (!fired.empty()) {
        lock.unlock();
        RunFired(fired);
        lock.lock();
      }
    }
    // Shutdown: every service is stopped now, so each remaining waiter gets its answer.
    CollectWaiters(fired);
    lock.unlock();
    RunFired(fired);
  }

  SupervisorOptions options;
  mutable std::mutex mu;
  std::condition_variable cv;  // any state change of any entry
  std::map<std::string, EntryPtr, std::less<>> entries;
  bool accepting = true;       // false once Shutdown began
  bool shutting_down = false;  // every exit now ends in kStopped
  bool quit = false;           // ends Run()
  int wake_fd = -1;
  std::thread thread;
  std::once_flag shutdown_once;
  std::vector<Waiter> waiters;  // NotifyWhenReady callers, answered by the supervisor thread
  // StateCell()s by service key; never erased, so a cell outlives Remove and a later Start of
  // the same key publishes into the same cell.
  std::map<std::string, std::shared_ptr<std::atomic<ProcessState>>, std::less<>> cells;
};

// ---- public API ---------------------------------------------------------------------------

Supervisor::Supervisor(SupervisorOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

Supervisor::~Supervisor() { Shutdown(); }

namespace {

Result<LaunchPlan> MakePlan(ProcessSpec& spec, const std::map<std::string, std::string>& base) {
  if (spec.service.empty()) return InvalidArgument("a service key is required");
  if (spec.service.size() > kMaxServiceKeyLength || HasNul(spec.service)) {
    return InvalidArgument("the service key is too long or contains a NUL byte");
  }
  const std::string quoted = "`" + spec.service + "`";
  if (spec.command.empty() == spec.argv.empty()) {
    return InvalidArgument("service " + quoted + " needs exactly one of a command or an argv");
  }
  LaunchPlan plan;
  if (!spec.command.empty()) {
    if (HasNul(spec.command)) return InvalidArgument("the command contains a NUL byte");
    plan.exe = "/bin/sh";
    plan.argv = {"/bin/sh", "-c", spec.command};
  } else {
    for (const auto& a : spec.argv) {
      if (HasNul(a)) return InvalidArgument("an argument contains a NUL byte");
    }
    if (spec.argv[0].empty()) return InvalidArgument("the program name is empty");
    plan.argv = spec.argv;
  }
  if (!spec.working_dir.empty()) {
    struct stat st {};
    if (HasNul(spec.working_dir) || ::stat(spec.working_dir.c_str(), &st) != 0 ||
        !S_ISDIR(st.st_mode)) {
      return InvalidArgument("working directory `" + spec.working_dir + "` does not exist");
    }
    plan.working_dir = spec.working_dir;
  }

  std::map<std::string, std::string> env = base;
  for (const auto& [name, value] : spec.env) {
    if (name.empty() || name.find('=') != std::string::npos || HasNul(name) || HasNul(value)) {
      return InvalidArgument("invalid environment variable name `" + name + "`");
    }
    for (std::string_view reserved : kReservedEnv) {
      if (name == reserved) {
        return InvalidArgument("environment variable `" + name + "` is reserved");
      }
    }
    env[name] = value;
  }
  if (spec.k_service.empty()) {
    size_t slash = spec.service.rfind('/');
    spec.k_service = slash == std::string::npos ? spec.service : spec.service.substr(slash + 1);
  }
  if (spec.k_revision.empty()) spec.k_revision = spec.k_service + "-00001";
  if (spec.k_configuration.empty()) spec.k_configuration = spec.k_service;
  for (const std::string* v :
       {&spec.k_service, &spec.k_revision, &spec.k_configuration, &spec.metadata_host}) {
    if (HasNul(*v)) return InvalidArgument("a runtime variable contains a NUL byte");
  }
  env["PORT"] = std::to_string(spec.port);
  env["K_SERVICE"] = spec.k_service;
  env["K_REVISION"] = spec.k_revision;
  env["K_CONFIGURATION"] = spec.k_configuration;
  if (!spec.metadata_host.empty()) {
    env["GCE_METADATA_HOST"] = spec.metadata_host;
    env["GCE_METADATA_IP"] = spec.metadata_host;
  }

  if (plan.exe.empty()) {
    const std::string& prog = plan.argv[0];
    if (prog.find('/') != std::string::npos) {
      plan.exe = prog;  // relative paths resolve against working_dir in the child
    } else {
      auto path = env.find("PATH");
      auto found = SearchPath(prog, path == env.end() ? std::string() : path->second);
      if (!found) return InvalidArgument("program `" + prog + "` was not found in PATH");
      plan.exe = *found;
    }
  }
  for (const auto& [name, value] : env) plan.envp.push_back(name + "=" + value);
  return plan;
}

}  // namespace

Result<ProcessStatus> Supervisor::Start(ProcessSpec spec) {
  Impl& im = *impl_;
  std::unique_lock lock(im.mu);
  if (!im.accepting) return Unavailable("the supervisor is shutting down");
  Impl::EntryPtr e = im.Find(spec.service);
  if (e && e->state != ProcessState::kStopped) {
    return AlreadyExists("service `" + spec.service + "` is already running");
  }
  auto port_taken = [&](uint16_t port) {
    for (const auto& [key, other] : im.entries) {
      if (other != e && other->spec.port == port) return true;
    }
    return false;
  };
  if (spec.port == 0) {
    if (e) {
      spec.port = e->spec.port;  // a redeploy keeps its port, the gateway routes to it
    } else {
      // bind(0) may hand out a port we gave another (not yet listening) service.
      for (int attempt = 0; attempt < 16 && (spec.port == 0 || port_taken(spec.port)); ++attempt) {
        MOAT_TRY(spec.port, PickFreeLoopbackPort());
      }
      if (port_taken(spec.port)) return Unavailable("could not pick a free loopback port");
    }
  } else if (port_taken(spec.port)) {
    return InvalidArgument("port `" + std::to_string(spec.port) + "` is used by another service");
  }
  MOAT_TRY(LaunchPlan plan, MakePlan(spec, *im.options.base_env));
  if (!e) {
    e = std::make_shared<Impl::Entry>();
    e->cell = im.CellFor(spec.service);
    im.entries.emplace(spec.service, e);
  }
  if (e->log_fd < 0 && !im.options.log_dir.empty()) {
    e->log_path = im.options.log_dir + "/" + LogFileName(spec.service) + ".log";
    e->log_fd = ::open(e->log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (e->log_fd < 0) {
      return Unavailable("could not open the log file of service `" + spec.service + "`");
    }
    struct stat st {};
    e->log_size = ::fstat(e->log_fd, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  }
  e->spec = std::move(spec);
  e->plan = std::move(plan);
  e->restarts = 0;
  e->consecutive_failures = 0;
  MOAT_CHECK_OK(im.Spawn(*e));
  return im.StatusOf(*e);
}

Status Supervisor::Stop(std::string_view service, std::optional<Duration> grace) {
  Impl& im = *impl_;
  std::unique_lock lock(im.mu);
  Impl::EntryPtr e = im.Find(service);
  if (!e) return NotFound("service `" + std::string(service) + "` was not found");
  if (e->state == ProcessState::kStopped) return Ok();
  uint64_t target = e->stops_completed + 1;
  im.BeginStop(*e, grace.value_or(im.options.stop_grace));
  im.cv.wait(lock, [&] { return e->stops_completed >= target; });
  return Ok();
}

Status Supervisor::Remove(std::string_view service, std::optional<Duration> grace) {
  MOAT_CHECK_OK(Stop(service, grace));
  Impl& im = *impl_;
  std::unique_lock lock(im.mu);
  auto it = im.entries.find(service);
  // Another thread may have started it again between Stop and here.
  if (it == im.entries.end()) return Ok();
  if (it->second->state != ProcessState::kStopped) {
    return Aborted("service `" + std::string(service) + "` was started again while stopping");
  }
  CloseFd(it->second->log_fd);
  im.entries.erase(it);
  im.cv.notify_all();
  return Ok();
}

Result<ProcessStatus> Supervisor::EnsureRunning(std::string_view service) {
  Impl& im = *impl_;
  std::unique_lock lock(im.mu);
  Impl::EntryPtr e = im.Find(service);
  if (!e) return NotFound("service `" + std::string(service) + "` was not found");
  if (e->state == ProcessState::kStopped) {
    if (!im.accepting) return Unavailable("the supervisor is shutting down");
    MOAT_CHECK_OK(im.Spawn(*e));
  }
  return im.StatusOf(*e);
}

Result<ProcessStatus> Supervisor::WaitReady(std::string_view service, Duration timeout) {
  Impl& im = *impl_;
  auto deadline = Steady::now() + timeout;
  std::unique_lock lock(im.mu);
  for (;;) {
    if (auto answer = im.ReadyAnswer(service, deadline, timeout)) return std::move(*answer);
    im.cv.wait_until(lock, deadline);
  }
}

Result<ProcessStatus> Supervisor::EnsureRunningNow(std::string_view service, int crash_loop_after) {
  Impl& im = *impl_;
  std::unique_lock lock(im.mu);
  Impl::EntryPtr e = im.Find(service);
  if (!e) return NotFound("service `" + std::string(service) + "` was not found");
  if (!im.accepting && (e->state == ProcessState::kStopped || e->state == ProcessState::kBackoff)) {
    return Unavailable("the supervisor is shutting down");
  }
  if (e->state == ProcessState::kStopped) {
    MOAT_CHECK_OK(im.Spawn(*e));
  } else if (e->state == ProcessState::kBackoff && e->consecutive_failures < crash_loop_after) {
    im.AddLine(*e, LogStream::kSystem, "restarting now: a request is waiting");
    // As the supervisor thread's timer would, but without waiting out the delay.
    Status spawned = im.Spawn(*e);
    if (!spawned) im.ScheduleRestart(*e, e->last_error);
    im.cv.notify_all();
    if (!spawned) return spawned.error();
  }
  return im.StatusOf(*e);
}

Status Supervisor::RequestStop(std::string_view service, std::optional<Duration> grace) {
  Impl& im = *impl_;
  std::unique_lock lock(im.mu);
  Impl::EntryPtr e = im.Find(service);
  if (!e) return NotFound("service `" + std::string(service) + "` was not found");
  im.BeginStop(*e, grace.value_or(im.options.stop_grace));
  return Ok();
}

std::shared_ptr<const std::atomic<ProcessState>> Supervisor::StateCell(std::string_view service) {
  std::unique_lock lock(impl_->mu);
  return impl_->CellFor(service);
}

void Supervisor::NotifyWhenReady(std::string_view service, Duration timeout, ReadyCallback done,
                                 bool fail_on_exit) {
  Impl& im = *impl_;
  auto deadline = Steady::now() + timeout;
  std::optional<Result<ProcessStatus>> answer;
  {
    std::unique_lock lock(im.mu);
    answer = im.ReadyAnswer(service, deadline, timeout);
    if (!answer) {
      Impl::Waiter w{std::string(service), deadline, timeout, std::move(done)};
      w.fail_on_exit = fail_on_exit;
      if (Impl::EntryPtr e = im.Find(service)) w.deaths = e->deaths;
      im.waiters.push_back(std::move(w));
      im.Wake();
      return;
    }
  }
  done(std::move(*answer));
}

Result<ProcessStatus> Supervisor::GetStatus(std::string_view service) const {
  std::unique_lock lock(impl_->mu);
  Impl::EntryPtr e = impl_->Find(service);
  if (!e) return NotFound("service `" + std::string(service) + "` was not found");
  return impl_->StatusOf(*e);
}

std::vector<ProcessStatus> Supervisor::List() const {
  std::unique_lock lock(impl_->mu);
  std::vector<ProcessStatus> out;
  for (const auto& [key, e] : impl_->entries) out.push_back(impl_->StatusOf(*e));
  return out;
}

Result<std::vector<LogLine>> Supervisor::Logs(std::string_view service, TimePoint since,
                                              size_t limit) const {
  std::unique_lock lock(impl_->mu);
  Impl::EntryPtr e = impl_->Find(service);
  if (!e) return NotFound("service `" + std::string(service) + "` was not found");
  std::vector<LogLine> out;
  for (auto it = e->ring.rbegin(); it != e->ring.rend() && out.size() < limit; ++it) {
    if (it->time < since) continue;  // no early exit: a test clock may move backwards
    out.push_back(*it);
  }
  std::reverse(out.begin(), out.end());
  return out;
}

void Supervisor::Shutdown(std::optional<Duration> grace) {
  Impl& im = *impl_;
  std::call_once(im.shutdown_once, [&] {
    {
      std::unique_lock lock(im.mu);
      im.accepting = false;
      im.shutting_down = true;
      for (auto& [key, e] : im.entries) im.BeginStop(*e, grace.value_or(im.options.stop_grace));
      im.cv.wait(lock, [&] {
        return std::all_of(im.entries.begin(), im.entries.end(), [](const auto& kv) {
          return kv.second->state == ProcessState::kStopped;
        });
      });
      im.quit = true;
      im.Wake();
    }
    im.thread.join();
  });
}

}  // namespace moat::runtime
