#include "server/serve.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <boost/json.hpp>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include "api/api.h"
#include "api/routes.h"
#include "common/json.h"
#include "common/log.h"
#include "common/time.h"
#include "gateway/forward_auth.h"
#include "gateway/gateway.h"
#include "http/client.h"
#include "http/router.h"
#include "http/server.h"
#include "identity/credentials_keys.h"
#include "identity/key_usage.h"
#include "identity/master_key.h"
#include "identity/service_accounts.h"
#include "identity/signing_keys.h"
#include "identity/token_issuer.h"
#include "identity/verifier.h"
#include "runtime/supervisor.h"
#include "server/audit_sink.h"
#include "server/bootstrap.h"
#include "server/iam_gate.h"
#include "server/jwks_fetcher.h"
#include "server/activator.h"
#include "server/reconciler.h"
#include "server/metadata_servers.h"
#include "state/live_state.h"
#include "store/sqlite_store.h"

namespace moat::server {

const char kServeHelp[] =
    "usage: moat serve [flags]\n"
    "\n"
    "Runs Moat: the gateway (services behind Cloud Run's invoker IAM) and the API.\n"
    "\n"
    "flags:\n"
    "  --home DIR            state directory (default: $MOAT_HOME, else ./.moat)\n"
    "  --gateway-addr H:P    gateway listener (default 127.0.0.1:8080; port 0 = pick one)\n"
    "  --api-addr H:P        API listener (default 127.0.0.1:8081; port 0 = pick one)\n"
    "  --gateway-url URL     public base URL of the gateway (default http://GATEWAY-ADDR)\n"
    "  --api-url URL         public base URL of the API (default http://API-ADDR)\n"
    "  --issuer URL          OIDC issuer of minted tokens (default: the API URL)\n"
    "  --audit-allowed       also write an audit entry for every allowed gateway request\n"
    "  --internal-networks CIDRS  comma-separated networks whose callers are internal traffic\n"
    "                        for services with ingress `internal` (default\n"
    "                        127.0.0.0/8,::1/128); others get 404 from those services\n"
    "  --threads N           worker threads per listener (default: the CPUs moat may use)\n"
    "  --no-access-log       no JSON access-log line per gateway request (denials are still\n"
    "                        audited)\n"
    "  --forward-auth-addr H:P  also answer nginx auth_request / Traefik ForwardAuth questions\n"
    "                        on H:P (X-Forwarded-Host/-Method/-Uri; default: off)\n"
    "  --scale-to-zero-after D  stop a command-run service unused for D (e.g. 15m); the next\n"
    "                        allowed request starts it again. Services with\n"
    "                        scaling.minInstanceCount >= 1 stay up (default 0: never)\n";

namespace {

Result<std::pair<std::string, uint16_t>> SplitAddr(std::string_view flag, std::string_view addr) {
  auto colon = addr.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return InvalidArgument("flag `" + std::string(flag) + "` must be HOST:PORT, not `" +
                           std::string(addr) + "`");
  }
  std::string host(addr.substr(0, colon));
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  int port = 0;
  for (char c : addr.substr(colon + 1)) {
    if (c < '0' || c > '9') return InvalidArgument("flag `" + std::string(flag) + "` has a bad port");
    port = port * 10 + (c - '0');
    if (port > 65535) return InvalidArgument("flag `" + std::string(flag) + "` has a bad port");
  }
  return std::make_pair(host, static_cast<uint16_t>(port));
}

std::string UrlFor(const std::string& host, uint16_t port) {
  bool v6 = host.find(':') != std::string::npos;
  return "http://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

// A listener's port. Port 0: the socket is bound and listening now, on an ephemeral port,
// and handed to the server as *listen_fd — the URLs built before the servers start must carry
// the port the listener holds (picking a free port and binding it later would race every
// other process on the machine for it).
Result<uint16_t> ResolvePort(const std::string& flag, const std::string& host, uint16_t port,
                             int* listen_fd) {
  *listen_fd = -1;
  if (port != 0) return port;
  sockaddr_storage ss{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    len = sizeof *v4;
  } else if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    len = sizeof *v6;
  } else {
    return InvalidArgument("flag `" + flag + "` needs an IP address, not `" + host + "`");
  }
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Unavailable("cannot open a socket: " + std::string(std::strerror(errno)));
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, SOMAXCONN) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    std::string why = std::strerror(errno);
    ::close(fd);
    return Unavailable("cannot listen on `" + host + ":0` (flag `" + flag + "`): " + why);
  }
  *listen_fd = fd;
  return ntohs(ss.ss_family == AF_INET ? v4->sin_port : v6->sin6_port);
}

std::atomic<bool> g_stop{false};

// `gcloud run deploy` returns when the new revision serves: the View of the write is
// reconciled (route published, process started) and a command-run service accepts
// connections.
Status WaitServiceReady(state::LiveState& live, Reconciler& reconciler,
                        runtime::Supervisor& supervisor, const std::string& name,
                        int64_t revision) {
  constexpr auto kTimeout = std::chrono::seconds(60);
  if (!live.WaitForRevision(revision, kTimeout) || !reconciler.WaitReconciled(revision, kTimeout)) {
    return Unavailable("the service `" + name + "` was saved but is not serving yet; retry");
  }
  auto view = live.Current();
  const auto* spec = view->FindByName(name);
  if (!spec || !spec->runs_command()) return Ok();
  auto st = supervisor.WaitReady(name, std::chrono::duration_cast<std::chrono::milliseconds>(kTimeout));
  if (!st) {
    return Unavailable("the service `" + name + "` did not start listening on $PORT: " +
                       st.error().message + "; see `moat run services logs read`");
  }
  return Ok();
}

}  // namespace

Result<ServeOptions> ParseServeFlags(const std::vector<std::string>& args) {
  ServeOptions o;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i];
    std::string value;
    bool has_value = false;
    auto eq = a.find('=');
    if (a.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
      has_value = true;
    }
    auto take = [&](std::string* out) -> Status {
      if (has_value) {
        *out = value;
        return Ok();
      }
      if (i + 1 >= args.size()) return InvalidArgument("flag `" + a + "` needs a value");
      *out = args[++i];
      return Ok();
    };
    if (a == "--home") {
      MOAT_CHECK_OK(take(&o.home));
    } else if (a == "--gateway-addr") {
      MOAT_CHECK_OK(take(&o.gateway_addr));
    } else if (a == "--api-addr") {
      MOAT_CHECK_OK(take(&o.api_addr));
    } else if (a == "--gateway-url") {
      MOAT_CHECK_OK(take(&o.gateway_url));
    } else if (a == "--api-url") {
      MOAT_CHECK_OK(take(&o.api_url));
    } else if (a == "--issuer") {
      MOAT_CHECK_OK(take(&o.issuer));
    } else if (a == "--internal-networks") {
      MOAT_CHECK_OK(take(&o.internal_networks));
      auto nets = gateway::IpNetworks::Parse(o.internal_networks);
      if (!nets) {
        return InvalidArgument("flag `--internal-networks`: " + nets.error().message);
      }
    } else if (a == "--audit-allowed") {
      o.audit_allowed_requests = true;
    } else if (a == "--forward-auth-addr") {
      MOAT_CHECK_OK(take(&o.forward_auth_addr));
      if (o.forward_auth_addr.empty()) {
        return InvalidArgument("flag `--forward-auth-addr` must be HOST:PORT");
      }
    } else if (a == "--no-access-log") {
      o.access_log = false;
    } else if (a == "--scale-to-zero-after") {
      std::string v;
      MOAT_CHECK_OK(take(&v));
      auto d = ParseFlagDuration(v);
      if (v == "0") {
        o.scale_to_zero_after = std::chrono::milliseconds(0);
      } else if (d && v.back() != 'd') {
        o.scale_to_zero_after = *d;
      } else {
        return InvalidArgument("flag `--scale-to-zero-after` must be a duration such as 90s, 15m "
                               "or 1h (0 = never), not `" + v + "`");
      }
    } else if (a == "--threads") {
      std::string v;
      MOAT_CHECK_OK(take(&v));
      o.threads = std::atoi(v.c_str());
      if (o.threads < 0 || o.threads > 256) return InvalidArgument("flag `--threads` must be 0..256");
    } else {
      return InvalidArgument("unknown flag `" + a + "` for `moat serve`; see `moat serve --help`");
    }
  }
  return o;
}

namespace {

// Every keep-alive client holds a descriptor (two while a request is proxied), and the usual
// soft limit is 1024: raise it to the hard limit, as nginx (worker_rlimit_nofile) and Go's
// runtime do. Returns the soft limit in force. Commands Moat runs inherit it; they start
// with few descriptors, so even select()-based programs keep working.
rlim_t RaiseOpenFilesLimit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit raised = rl;
    raised.rlim_cur = rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) return raised.rlim_cur;
  }
  return rl.rlim_cur;
}

}  // namespace

int RunServe(const ServeOptions& in) {
  ServeOptions opt = in;
  auto fail = [](const Error& e) {
    std::fprintf(stderr, "moat serve: %s\n", e.message.c_str());
    return 1;
  };
  // Signals are handled by sigwait below; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  const rlim_t open_files = RaiseOpenFilesLimit();

  std::string home = store::ResolveHome(opt.home);
  std::error_code ec;
  std::filesystem::create_directories(home, ec);
  if (ec) return fail(Unavailable("cannot create the home directory `" + home + "`: " + ec.message()));
  ::chmod(home.c_str(), 0700);

  auto gw_addr = SplitAddr("--gateway-addr", opt.gateway_addr);
  if (!gw_addr) return fail(gw_addr.error());
  auto api_addr = SplitAddr("--api-addr", opt.api_addr);
  if (!api_addr) return fail(api_addr.error());
  // Port-0 listeners (ResolvePort): the servers take them over when built (below); a failure
  // before that closes them here.
  int gw_fd = -1, api_fd = -1;
  struct CloseUnclaimed {
    int& gw;
    int& api;
    ~CloseUnclaimed() {
      for (int fd : {gw, api}) {
        if (fd >= 0) ::close(fd);
      }
    }
  } close_unclaimed{gw_fd, api_fd};
  auto gw_port = ResolvePort("--gateway-addr", gw_addr->first, gw_addr->second, &gw_fd);
  if (!gw_port) return fail(gw_port.error());
  auto api_port = ResolvePort("--api-addr", api_addr->first, api_addr->second, &api_fd);
  if (!api_port) return fail(api_port.error());
  if (opt.gateway_url.empty()) opt.gateway_url = UrlFor(gw_addr->first, *gw_port);
  if (opt.api_url.empty()) opt.api_url = UrlFor(api_addr->first, *api_port);
  while (!opt.api_url.empty() && opt.api_url.back() == '/') opt.api_url.pop_back();
  if (opt.issuer.empty()) opt.issuer = opt.api_url;

  const Clock& clock = SystemClock();
  auto store = store::SqliteStore::Open(home);
  if (!store) return fail(store.error());

  auto master = identity::LoadOrCreateMasterKey(home, std::getenv("MOAT_MASTER_KEY"));
  if (!master) return fail(master.error());
  identity::SigningKeyOptions sk_opts;
  sk_opts.sign_period = opt.signing_key_period;
  identity::SigningKeyManager signing(**store, *master, clock, sk_opts);
  if (auto st = signing.Rotate(); !st) return fail(st.error());

  identity::SystemManagedKeys system_keys(**store, *master, clock);
  if (auto st = system_keys.Reload(); !st) return fail(st.error());

  state::LiveState live(**store);
  if (auto st = live.Start(); !st) return fail(st.error());

  identity::KeyFileOptions kf;
  kf.token_uri = opt.api_url + "/token";
  kf.api_origin = opt.api_url;
  identity::ServiceAccounts accounts(**store, clock, kf);
  if (auto st = Bootstrap(**store, accounts, home, clock); !st) return fail(st.error());

  identity::KeyUsageRecorder key_usage;
  identity::TokenIssuer issuer(signing, clock, identity::IssuerUrls::For(opt.issuer));
  HttpJwksFetcher fetcher;
  identity::VerifierOptions vopts;
  vopts.issuer = opt.issuer;
  vopts.api_origin = opt.api_url;
  identity::VerifierDeps vdeps;
  vdeps.clock = &clock;
  vdeps.directory = [&live] { return live.CurrentForThisThread()->directory; };
  vdeps.signing_keys = &signing;
  vdeps.system_keys = &system_keys;
  vdeps.fetcher = &fetcher;
  vdeps.on_key_used = [&key_usage](const std::string& kid, TimePoint t) { key_usage.Record(kid, t); };
  identity::Verifier verifier(vopts, vdeps);

  // --- data plane (declared first: the API reports on it) ---
  auto routes = std::make_shared<gateway::RouteTableHolder>();
  auto gate = std::make_shared<IamGate>(live, verifier, clock);
  gateway::GatewayOptions gw_options;
  gw_options.access_log = opt.access_log;
  auto internal_networks = gateway::IpNetworks::Parse(opt.internal_networks);
  if (!internal_networks) return fail(internal_networks.error());
  gw_options.internal_networks = std::move(*internal_networks);
  gateway::Gateway gateway(gw_options, routes, gate);
  AuditSink audit(**store, opt.audit_allowed_requests);
  gateway.SetDenialHook([&audit](const gateway::GateRequest& r, const gateway::GateDecision& d) {
    audit.RecordGatewayDecision(r, d);
  });

  runtime::SupervisorOptions rt_options;
  rt_options.log_dir = home + "/logs";
  runtime::Supervisor supervisor(rt_options);
  MetadataServers metadata(issuer, live, clock);
  ActivatorPool activators(supervisor, opt.scale_to_zero_after);
  Reconciler reconciler(supervisor, metadata, *routes, opt.gateway_url);
  reconciler.SetActivators(&activators);
  gateway::RevisionWaiter waiter;
  waiter.reached = [&reconciler](int64_t revision) { return reconciler.Reconciled(revision); };
  waiter.notify = [&reconciler](int64_t revision, std::function<void(bool)> done) {
    reconciler.NotifyReconciled(revision, std::move(done));
  };
  gateway.SetRevisionWaiter(std::move(waiter));
  live.AddListener([&](const std::shared_ptr<const state::View>& v) {
    for (auto c : v->changed) {
      if (c == store::Collection::kSigningKeys) {
        if (auto st = signing.Reload(); !st) {
          log::Error("cannot reload signing keys", {{"error", st.error().message}});
        }
        if (auto st = system_keys.Reload(); !st) {
          log::Error("cannot reload system-managed keys", {{"error", st.error().message}});
        }
        break;
      }
    }
    reconciler.Apply(v);
  });

  // --- control plane ---
  api::ApiConfig api_config;
  api_config.api_base = opt.api_url;
  api_config.issuer = opt.issuer;
  api_config.gateway_base = opt.gateway_url;
  api::ApiServices services;
  services.store = store->get();
  services.live = &live;
  services.clock = &clock;
  services.verifier = &verifier;
  services.issuer = &issuer;
  services.signing = &signing;
  services.accounts = &accounts;
  services.key_usage = &key_usage;
  services.system_keys = &system_keys;
  services.wait_service_ready = [&](const std::string& name, int64_t revision) -> Status {
    return WaitServiceReady(live, reconciler, supervisor, name, revision);
  };
  services.service_logs = [&supervisor](const std::string& name, size_t limit) {
    std::vector<api::ServiceLogLine> out;
    auto lines = supervisor.Logs(name, {}, limit);
    if (!lines) return out;
    for (const auto& l : *lines) {
      out.push_back(api::ServiceLogLine{l.time, std::string(runtime::LogStreamName(l.stream)),
                                        l.text});
    }
    return out;
  };
  services.extra_metrics = [&gateway, &audit, &verifier] {
    identity::Verifier::Stats vs = verifier.stats();
    return gateway.RenderMetrics() + "# TYPE moat_audit_dropped_total counter\n" +
           "moat_audit_dropped_total " + std::to_string(audit.dropped()) + "\n" +
           "# HELP moat_token_cache_lookups_total Token verifications by verifier cache result.\n"
           "# TYPE moat_token_cache_lookups_total counter\n"
           "moat_token_cache_lookups_total{result=\"hit\"} " + std::to_string(vs.hits) + "\n" +
           "moat_token_cache_lookups_total{result=\"miss\"} " + std::to_string(vs.misses) + "\n" +
           "# TYPE moat_token_cache_entries gauge\n"
           "moat_token_cache_entries " + std::to_string(vs.cache_size) + "\n" +
           "# TYPE moat_jwks_fetches_total counter\n"
           "moat_jwks_fetches_total " + std::to_string(vs.jwks_fetches) + "\n";
  };
  auto api = api::Api::Create(api_config, std::move(services));
  if (!api) return fail(api.error());

  http::ServerOptions api_server_opts;
  api_server_opts.host = api_addr->first;
  api_server_opts.port = *api_port;
  api_server_opts.listen_fd = std::exchange(api_fd, -1);
  api_server_opts.threads = opt.threads;
  api_server_opts.name = "api";
  http::RouterOptions router_opts;
  router_opts.blocking_threads = 4;
  http::Server api_server(api_server_opts, http::MakeRouterHandler((*api)->router(), router_opts));
  if (auto st = api_server.Start(); !st) return fail(st.error());

  http::ServerOptions gw_server_opts;
  gw_server_opts.host = gw_addr->first;
  gw_server_opts.port = *gw_port;
  gw_server_opts.listen_fd = std::exchange(gw_fd, -1);
  gw_server_opts.threads = opt.threads;
  gw_server_opts.name = "gateway";
  http::Server gw_server(gw_server_opts, gateway.handler());
  if (auto st = gw_server.Start(); !st) return fail(st.error());

  // --- forward-auth listener: the same routes, Gate and audit hook ---
  std::unique_ptr<gateway::ForwardAuth> forward_auth;
  std::unique_ptr<http::Server> fa_server;
  if (!opt.forward_auth_addr.empty()) {
    auto fa_addr = SplitAddr("--forward-auth-addr", opt.forward_auth_addr);
    if (!fa_addr) return fail(fa_addr.error());
    gateway::ForwardAuthOptions fa_options;
    fa_options.access_log = opt.access_log;
    fa_options.internal_networks = gw_options.internal_networks;
    forward_auth = std::make_unique<gateway::ForwardAuth>(fa_options, routes, gate);
    forward_auth->SetDenialHook(
        [&audit](const gateway::GateRequest& r, const gateway::GateDecision& d) {
          audit.RecordGatewayDecision(r, d);
        });
    http::ServerOptions fa_server_opts;
    fa_server_opts.host = fa_addr->first;
    fa_server_opts.port = fa_addr->second;
    fa_server_opts.threads = opt.threads;
    fa_server_opts.name = "forward-auth";
    fa_server = std::make_unique<http::Server>(fa_server_opts, forward_auth->handler());
    if (auto st = fa_server->Start(); !st) return fail(st.error());
    log::Info("forward-auth listening",
              {{"addr", UrlFor(fa_addr->first, static_cast<uint16_t>(fa_server->port()))}});
  }
  // --- end forward-auth listener ---

  log::Info("moat serve is ready", {{"gateway", opt.gateway_url}, {"api", opt.api_url},
                                    {"home", home},
                                    {"open_files_limit", std::to_string(open_files)}});
  if (open_files < 4096) {
    log::Warn("the open-files limit is low: each client connection needs a descriptor",
              {{"open_files_limit", std::to_string(open_files)},
               {"fix", "raise the hard limit (ulimit -Hn, LimitNOFILE= in a systemd unit)"}});
  }
  // One line on stdout that scripts and tests wait for (after the log lines above, so that a
  // reader of both sees them once it has this one).
  std::printf("{\"gateway\":\"%s\",\"api\":\"%s\",\"home\":\"%s\"}\n", opt.gateway_url.c_str(),
              opt.api_url.c_str(), log::JsonEscape(home).c_str());
  std::fflush(stdout);

  // Periodic work: signing-key rotation, key last-used times, purging deleted accounts.
  std::mutex tick_mu;
  std::condition_variable tick_cv;
  std::thread ticker([&] {
    auto next_purge = std::chrono::steady_clock::now();
    std::unique_lock lock(tick_mu);
    while (!g_stop.load()) {
      tick_cv.wait_for(lock, std::chrono::seconds(5));
      if (g_stop.load()) break;
      lock.unlock();
      if (auto st = signing.Rotate(); !st) {
        log::Error("signing key rotation failed", {{"error", st.error().message}});
      }
      if (auto n = key_usage.Flush(**store); !n) {
        log::Warn("cannot record key use", {{"error", n.error().message}});
      }
      if (std::chrono::steady_clock::now() >= next_purge) {
        (void)accounts.PurgeDeleted();
        (void)system_keys.DeleteRetired();
        next_purge = std::chrono::steady_clock::now() + std::chrono::hours(1);
      }
      lock.lock();
    }
  });

  int sig = 0;
  sigwait(&signals, &sig);
  log::Info("shutting down", {{"signal", std::to_string(sig)}});
  g_stop.store(true);
  {
    std::lock_guard lock(tick_mu);
    tick_cv.notify_all();
  }
  ticker.join();
  reconciler.Stop();  // answers requests waiting on X-Moat-Min-Revision while the gateway runs
  if (fa_server) fa_server->Stop();
  gw_server.Stop();
  api_server.Stop();
  live.Stop();
  supervisor.Shutdown();
  metadata.StopAll();
  audit.Stop();
  (void)key_usage.Flush(**store);
  return 0;
}

}  // namespace moat::server
