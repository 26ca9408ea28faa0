// `moat <group> <command>`: the gcloud-shaped client. Every verb except `serve` lands here.
//
// The CLI talks only to Moat's REST API (docs/api.md) through Env::transport; it never opens
// the store. Local state (config, credentials) lives in Env-resolved files under
// $MOAT_CONFIG or ~/.config/moat (see config.h).
//
// Exit codes: 0 success, 1 error (API error, I/O, a call that answered ≥ 400), 2 usage error
// (unknown command or flag, missing argument).
//
// Thread-safety: one Main() per Env at a time.
#pragma once

#include <chrono>
#include <functional>
#include <iosfwd>
#include <map>
#include <string>
#include <vector>

#include "cli/transport.h"
#include "common/clock.h"

namespace moat::cli {

struct Env {
  // Environment variables the CLI reads: HOME, MOAT_CONFIG, MOAT_API_ENDPOINT, MOAT_HOME.
  std::map<std::string, std::string> vars;
  std::ostream* out = nullptr;  // results
  std::ostream* err = nullptr;  // progress, prompts, errors
  std::istream* in = nullptr;   // confirmations, passwords
  // True when `in` is a terminal a person can answer prompts on. When false, destructive
  // commands require --quiet and passwords must come from --password-file or piped stdin.
  bool interactive = false;
  Transport* transport = nullptr;  // required for every command that calls the API
  Signer* signer = nullptr;        // required for service-account credentials
  ProxyRunner* proxy = nullptr;    // required for `run services proxy`
  const Clock* clock = nullptr;    // nullptr → SystemClock()
  // Waits between polls of a long-running operation; nullptr → std::this_thread::sleep_for.
  std::function<void(std::chrono::milliseconds)> sleep;

  // The process's environment and standard streams (transport/signer/proxy left null).
  static Env FromProcess();
};

// Parses `args` (without the program name), runs the command, returns the exit code.
int Run(const std::vector<std::string>& args, Env& env);
// Same, from main()'s argv (argv[0] is skipped).
int Main(int argc, char** argv, Env& env);

}  // namespace moat::cli
