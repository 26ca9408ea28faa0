// MetadataServers: one GCE/Cloud Run-style metadata server per command-run service, each on
// its own loopback port, answering for that service's runtime service account (GOOGLE.md §10).
// The workload finds it through GCE_METADATA_HOST / GCE_METADATA_IP, so Google's client
// libraries inside it mint ID tokens for their own identity with no key file.
//
// Thread-safety: Ensure/Remove/StopAll from one thread (the Reconciler's); the servers answer
// on their own threads.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "common/clock.h"
#include "common/error.h"
#include "http/server.h"
#include "identity/token_issuer.h"
#include "state/live_state.h"

namespace moat::server {

class MetadataServers {
 public:
  MetadataServers(const identity::TokenIssuer& issuer, state::LiveState& live, const Clock& clock)
      : issuer_(issuer), live_(live), clock_(clock) {}
  ~MetadataServers() { StopAll(); }
  // Starts (or keeps) the server of `service_name` answering for `service_account` (an email;
  // empty = the service has no identity: token requests fail with 404). Returns
  // "127.0.0.1:PORT".
  Result<std::string> Ensure(const std::string& service_name, const std::string& project,
                             const std::string& service_account);
  void Remove(const std::string& service_name);
  void StopAll();

 private:
  struct Entry {
    std::string service_account;
    std::string address;
    std::unique_ptr<http::Server> server;
  };
  const identity::TokenIssuer& issuer_;
  state::LiveState& live_;
  const Clock& clock_;
  std::map<std::string, Entry> servers_;
};

}  // namespace moat::server
