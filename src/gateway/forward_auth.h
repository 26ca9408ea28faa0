// Forward-auth: Moat as the external verifier of another proxy (nginx `auth_request`, Traefik
// ForwardAuth, Envoy ext_authz over HTTP). Every request on this listener is a question about
// an ORIGINAL request, described by headers the fronting proxy sets:
//
//   X-Forwarded-Host   | X-Original-Host    the original Host: picks the service (route table)
//   X-Forwarded-Method | X-Original-Method  the original method (default: this request's)
//   X-Forwarded-Uri    | X-Original-URI     the original origin-form target (default: "/")
//   X-Forwarded-For    | X-Real-IP          the original client (last X-Forwarded-For entry);
//                                           used for ingress and the audit entry
//   Authorization, X-Serverless-Authorization   the original request's credentials
//
// The same Gate and DenialHook as the gateway decide. Answers (tiny text bodies):
//   200  allowed: empty body, `X-Moat-Principal: <principal>` (when a token was verified)
//   401  + `WWW-Authenticate: Bearer error="invalid_token" …`
//   403  denied (also: no credential); 503: the issuer is unavailable (fail closed)
//   404  unknown host, or the service's ingress refuses the original client
//   400  no/repeated X-Forwarded-Host, a malformed URI, or repeated credential headers
// Every answer carries X-Request-Id. Tokens are never logged.
//
// Trust: these headers are believed as sent, so the listener must be reachable only by the
// fronting proxy (it binds loopback by default). Ingress: a service with internal ingress is
// reachable only when the original client address is known and in `internal_networks`.
//
// Usage:
//   ForwardAuth fa(ForwardAuthOptions{}, routes, gate);   // the gateway's holder and Gate
//   fa.SetDenialHook(hook);
//   http::Server server(http::ServerOptions{.port = 8082}, fa.handler());
//
// Thread-safety: SetDenialHook before the server starts; the handler runs on every worker.
#pragma once

#include <memory>

#include "gateway/gate.h"
#include "gateway/networks.h"
#include "gateway/route_table.h"

namespace moat::http {
class Handler;
}

namespace moat::gateway {

struct ForwardAuthOptions {
  bool access_log = true;  // one JSON line per decision (never the token)
  // Original client addresses that count as internal traffic (ingress `internal`).
  IpNetworks internal_networks = IpNetworks::Loopback();
};

class ForwardAuth {
 public:
  ForwardAuth(ForwardAuthOptions options, std::shared_ptr<RouteTableHolder> routes,
              std::shared_ptr<Gate> gate);
  ~ForwardAuth();

  void SetDenialHook(DenialHook hook);
  // The Server handler; the ForwardAuth must outlive the Server using it.
  std::shared_ptr<http::Handler> handler();

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace moat::gateway
