// Supervisor: runs `--command` services the way Cloud Run runs a container (GOOGLE.md §11).
//
// Each service is one process group started from a ProcessSpec with a clean environment:
// PATH/HOME/LANG from Moat's own environment (never anything else of Moat's, so secrets such
// as MOAT_MASTER_KEY do not leak), the user's env vars, and the contract variables PORT,
// K_SERVICE, K_REVISION, K_CONFIGURATION, plus GCE_METADATA_HOST / GCE_METADATA_IP when the
// caller gives the address of the service's own metadata server.
//
// Life cycle of one service:
//
//   Start ──► kStarting ──(PORT accepts TCP on 127.0.0.1)──► kReady
//                │  ▲                                           │
//   died / startup timeout                                 died (any exit not asked for)
//                ▼  │ backoff elapsed                           │
//             kBackoff ◄────────────────────────────────────────┘
//   Stop (any state) ──► kStopping ──(SIGTERM, grace, SIGKILL to the group; reaped)──► kStopped
//   EnsureRunning on kStopped ──► kStarting (the "start on first request" path)
//   EnsureRunningNow also on kBackoff ──► kStarting (a request is waiting; not in a crash loop)
//
// Restart delays double from backoff_base to backoff_cap; a process that stayed up at least
// backoff_reset_after before dying restarts after backoff_base again.
//
// stdout and stderr are captured line by line into a bounded in-memory ring per service
// (Logs()) and appended to `<log_dir>/<file-safe service key>.log`.
//
// Threading: one supervisor thread owns the children (poll(2) on pipes, pidfds, timers).
// Every public method is thread-safe and may be called from any thread; Stop, Shutdown and
// WaitReady block the calling thread (on a condition variable, never a sleep) and therefore
// must not be called from a coroutine running on an io_context thread that must stay
// responsive: such callers use NotifyWhenReady instead. The destructor stops every service
// (SIGTERM, grace, SIGKILL) and reaps it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/error.h"

namespace moat::runtime {

using Duration = std::chrono::milliseconds;

// What to run for one service. Plain data; validated by Supervisor::Start.
struct ProcessSpec {
  // Unique key of the service, e.g. "projects/p/locations/r/services/hello". Required.
  std::string service;
  // Shell command line, run as `/bin/sh -c COMMAND`. Exactly one of command / argv is set.
  std::string command;
  // Alternative to `command`: argv[0] is a path, or a name looked up in the child's PATH.
  std::vector<std::string> argv;
  // Working directory of the child; empty = Moat's current directory.
  std::string working_dir;
  // User env vars (`--set-env-vars`). May not set PORT, K_SERVICE, K_REVISION or
  // K_CONFIGURATION (reserved, as on Cloud Run); names must not contain '=' or NUL.
  std::map<std::string, std::string> env;
  // PORT given to the child. 0 = the supervisor picks a free loopback port once, at Start,
  // and keeps it across restarts and later Starts (the gateway routes to it; read it from
  // ProcessStatus). Two services never share a port (InvalidArgument).
  uint16_t port = 0;
  // K_SERVICE (default: the last path segment of `service`), K_REVISION (e.g.
  // "hello-00001-abc"; default "<K_SERVICE>-00001"), K_CONFIGURATION (default: K_SERVICE).
  std::string k_service;
  std::string k_revision;
  std::string k_configuration;
  // "127.0.0.1:PORT" of this service's metadata server; sets GCE_METADATA_HOST and
  // GCE_METADATA_IP. Empty = neither is set.
  std::string metadata_host;
  // Overrides SupervisorOptions::startup_timeout for this service.
  std::optional<Duration> startup_timeout;
};

enum class ProcessState {
  kStopped,   // defined, not running (never started, or stopped by Stop)
  kStarting,  // spawned, PORT not yet accepting connections
  kReady,     // PORT accepts connections
  kBackoff,   // died unexpectedly (or missed the startup timeout); restarts at next_restart
  kStopping,  // Stop in progress: SIGTERM sent, SIGKILL after the grace period
};
std::string_view ProcessStateName(ProcessState s);  // "STOPPED", "STARTING", …

struct ProcessStatus {
  std::string service;
  ProcessState state = ProcessState::kStopped;
  int pid = 0;                          // 0 when no process is alive
  uint16_t port = 0;                    // PORT of the service (stable across restarts)
  int restarts = 0;                     // unexpected deaths followed by a restart, ever
  int consecutive_failures = 0;         // deaths since the last run that lasted backoff_reset_after
  std::optional<int> last_exit_code;    // of the last process that exited normally
  std::optional<int> last_exit_signal;  // of the last process killed by a signal
  std::string last_error;               // why the last process ended, or why a spawn failed
  TimePoint started_at{};               // of the current/last process (options.clock)
  Duration restart_in{0};               // in kBackoff: time left until the next attempt
};

enum class LogStream { kStdout, kStderr, kSystem };  // kSystem: lines Moat adds (exits, restarts)
std::string_view LogStreamName(LogStream s);         // "stdout", "stderr", "system"

struct LogLine {
  uint64_t seq = 0;  // increases by one per line of the service, never reused
  TimePoint time{};  // when Moat read the line (options.clock)
  LogStream stream = LogStream::kStdout;
  std::string text;  // without the newline; raw bytes (not necessarily UTF-8)
};

struct SupervisorOptions {
  // Directory for `<service>.log` files; created if missing. Empty = in-memory logs only.
  std::string log_dir;
  // In-memory ring per service: at most this many lines and this many bytes of text.
  size_t log_ring_lines = 10'000;
  size_t log_ring_bytes = 8 << 20;
  // Longer lines are split into pieces of this size.
  size_t max_line_bytes = 16 << 10;
  // A log file bigger than this is renamed to `<name>.log.1` (replacing it) and restarted.
  uint64_t max_log_file_bytes = 64ull << 20;
  // How long a process may take to accept connections on PORT before it is killed and
  // counted as a crash.
  Duration startup_timeout = std::chrono::seconds(30);
  // Restart delay: backoff_base doubling per consecutive failure, at most backoff_cap; reset
  // when a process stayed up for backoff_reset_after.
  Duration backoff_base{100};
  Duration backoff_cap = std::chrono::seconds(30);
  Duration backoff_reset_after = std::chrono::seconds(60);
  // Default grace period between SIGTERM and SIGKILL.
  Duration stop_grace = std::chrono::seconds(10);
  // Base environment of every child. Unset = PATH, HOME and LANG copied from Moat's own
  // environment (PATH defaults to /usr/local/bin:/usr/bin:/bin when Moat has none).
  std::optional<std::map<std::string, std::string>> base_env;
  // Timestamps of log lines and ProcessStatus::started_at. Timers (probes, backoff, grace)
  // use the monotonic clock; tests shorten them through the durations above. Not owned.
  const Clock* clock = &SystemClock();
};

class Supervisor {
 public:
  // Starts the supervisor thread; throws std::system_error if the OS refuses (no fds).
  explicit Supervisor(SupervisorOptions options = {});
  ~Supervisor();  // Shutdown()
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Defines `spec.service` (replacing the spec of a stopped service) and starts it. Returns
  // the status right after spawning (state kStarting) without waiting for readiness.
  // InvalidArgument: bad spec (empty key, neither/both of command and argv, reserved or bad
  // env names, unknown working dir, argv[0] not found, `port` used by another service).
  // AlreadyExists: the service is running, starting or in backoff (Stop it first; a new
  // revision is Stop + Start). Unavailable: shutting down, no free port, log file not
  // writable, spawn failed (the service then stays defined, kStopped, with last_error and a
  // system log line saying why).
  Result<ProcessStatus> Start(ProcessSpec spec);

  // Stops the service: SIGTERM to its process group, SIGKILL after `grace` (default
  // options.stop_grace), reaps it; cancels a pending restart. Blocks until kStopped. The
  // definition is kept (EnsureRunning starts it again). NotFound for an unknown service.
  Status Stop(std::string_view service, std::optional<Duration> grace = std::nullopt);

  // Stop, then forget the service (its in-memory logs too; the log file stays).
  Status Remove(std::string_view service, std::optional<Duration> grace = std::nullopt);

  // Starts a kStopped service again with its last spec (same PORT); no-op in any other state
  // (a service in kBackoff keeps its backoff). NotFound for an unknown service.
  Result<ProcessStatus> EnsureRunning(std::string_view service);

  // EnsureRunning for a caller with a request waiting: also ends a pending backoff at once
  // (restarts now) unless the service has failed `crash_loop_after` or more times in a row, in
  // which case the backoff stands so that a crash-looping command is not respawned once per
  // request. No-op in kStarting, kReady and kStopping. NotFound for an unknown service;
  // Unavailable while shutting down or when the spawn fails (the service then goes to kBackoff).
  Result<ProcessStatus> EnsureRunningNow(std::string_view service, int crash_loop_after = 3);

  // Stop without waiting: sends SIGTERM (SIGKILL follows after `grace`) and returns; the
  // service passes through kStopping to kStopped on the supervisor thread. A pending restart
  // is cancelled at once. Safe on any thread, including in NotifyWhenReady callbacks.
  // NotFound for an unknown service.
  Status RequestStop(std::string_view service, std::optional<Duration> grace = std::nullopt);

  // The service's state as a lock-free cell, for hot paths (the gateway asks "ready?" per
  // request): load(std::memory_order_acquire). One cell per key for the Supervisor's
  // lifetime, kept across Stop, Remove and a later Start of the same key; kStopped for a key
  // that is not defined. Costs a map entry per distinct key ever asked for.
  std::shared_ptr<const std::atomic<ProcessState>> StateCell(std::string_view service);

  // Blocks until the service is kReady, up to `timeout`. Keeps waiting through crashes and
  // restarts. Unavailable on timeout (the message says which state it was in);
  // FailedPrecondition if it is or becomes kStopped; NotFound for an unknown service.
  Result<ProcessStatus> WaitReady(std::string_view service, Duration timeout);

  // The non-blocking form of WaitReady, for event loops: calls `done` exactly once with what
  // WaitReady would have returned. It runs on the supervisor thread with no lock held (it may
  // call the Supervisor), or on the calling thread when the answer is known at once or the
  // supervisor has shut down. Keep it short: post to your own executor. It must not call the
  // blocking methods (Stop, Remove, WaitReady, Shutdown): on the supervisor thread they would
  // wait for that very thread.
  // `fail_on_exit`: answer Unavailable as soon as a process of the service dies (or a respawn
  // fails) after this call, instead of waiting through restarts: "wait for one attempt".
  using ReadyCallback = std::function<void(Result<ProcessStatus>)>;
  void NotifyWhenReady(std::string_view service, Duration timeout, ReadyCallback done,
                       bool fail_on_exit = false);

  Result<ProcessStatus> GetStatus(std::string_view service) const;
  std::vector<ProcessStatus> List() const;  // sorted by service key

  // Lines with time >= since, oldest first; at most `limit` of them (the newest ones).
  // NotFound for an unknown service.
  Result<std::vector<LogLine>> Logs(std::string_view service, TimePoint since = {},
                                    size_t limit = 1000) const;

  // Stops every service in parallel (SIGTERM now, SIGKILL after `grace`), reaps them all and
  // ends the supervisor thread. Later Start/EnsureRunning calls fail with Unavailable.
  // Idempotent.
  void Shutdown(std::optional<Duration> grace = std::nullopt);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A loopback port that was free a moment ago: binds 127.0.0.1:0, reads the port, closes.
// Race: another process may take the port between this call and the child's bind; the child
// then fails to listen, dies, and is restarted with backoff (same port). Unavailable if no
// socket could be bound.
Result<uint16_t> PickFreeLoopbackPort();

// `service` made safe as a file name: characters outside [A-Za-z0-9._-] become '_'
// ("projects/p/locations/r/services/s" → "projects_p_locations_r_services_s").
std::string LogFileName(std::string_view service);

}  // namespace moat::runtime
