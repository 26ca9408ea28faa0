// `moat serve`: wires the store, the live state, the identity services, the API, the gateway,
// the runtime and the per-service metadata servers into one process, and runs it until
// SIGINT/SIGTERM.
//
// Thread-safety: RunServe is called once from main().
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"

namespace moat::server {

struct ServeOptions {
  std::string home;  // --home, else $MOAT_HOME, else ./.moat
  std::string gateway_addr = "127.0.0.1:8080";
  std::string api_addr = "127.0.0.1:8081";
  // Public base URLs; default http://ADDR with the bound port.
  std::string gateway_url;
  std::string api_url;
  std::string issuer;  // default: api_url
  bool audit_allowed_requests = false;
  // Remote addresses that count as internal traffic for services whose ingress is
  // INGRESS_TRAFFIC_INTERNAL_ONLY / _INTERNAL_LOAD_BALANCER (comma-separated CIDRs).
  std::string internal_networks = "127.0.0.0/8,::1/128";
  bool access_log = true;         // --no-access-log turns the gateway's per-request line off
  std::string forward_auth_addr;  // --forward-auth-addr; "" = no forward-auth listener
  std::chrono::milliseconds scale_to_zero_after{0};  // 0: command services run until removed
  int threads = 0;  // 0: all cores
  // The gateway's response body on a missing credential etc. stays Cloud Run's; these only
  // shape Moat's own behaviour.
  std::chrono::seconds signing_key_period{std::chrono::hours(24 * 7)};
};

// Parses `moat serve` flags (argv after "serve"). Errors name the flag.
Result<ServeOptions> ParseServeFlags(const std::vector<std::string>& args);
extern const char kServeHelp[];

// Runs the server; returns the process exit code.
int RunServe(const ServeOptions& options);

}  // namespace moat::server
