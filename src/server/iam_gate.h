// IamGate: the data plane's authorization decision, Cloud Run's way (GOOGLE.md §1, §13).
//
//   1. invokerIamDisabled                         → allow, no token looked at
//   2. the anonymous caller holds run.routes.invoke (allUsers) → allow, no token needed
//   3. X-Serverless-Authorization if present (then only it), else Authorization;
//      no bearer token                             → 403
//   4. the one Verifier (cached) refuses it        → 401 (503 when an external issuer is down)
//   5. the verified principal lacks run.routes.invoke on the service (resource, project or root
//      policy; groups, domain:, allAuthenticatedUsers, conditions) → 403
//   6. otherwise                                   → allow
// Denials carry the exact reason (which token check failed, or which bindings came closest)
// for the audit log; the caller only ever sees Cloud Run's pages.
//
// Thread-safety: Decide runs concurrently on every gateway worker; per-thread caches only.
#pragma once

#include "common/clock.h"
#include "gateway/gate.h"
#include "identity/verifier.h"
#include "state/live_state.h"

namespace moat::server {

class IamGate : public gateway::Gate {
 public:
  IamGate(state::LiveState& live, identity::Verifier& verifier, const Clock& clock)
      : live_(live), verifier_(verifier), clock_(clock) {}
  gateway::GateDecision Decide(const gateway::GateRequest& request) override;

 private:
  state::LiveState& live_;
  identity::Verifier& verifier_;
  const Clock& clock_;
};

}  // namespace moat::server
