// The data plane: an IAM-enforcing reverse proxy. For each request on the gateway listener:
// route by Host (RouteTableHolder) → 404 page if unknown; the service's ingress setting → 404
// page when the caller's address may not reach it (decided before the Gate); ask the Gate on
// the head only → 401/403/503 Cloud Run pages (the body is never forwarded, the connection is closed when a
// body was announced); otherwise forward to the service's upstream over a per-worker
// keep-alive pool, streaming bodies both ways, WebSocket upgrades tunnelled after the same
// check.
//
// Upstream failures: cannot connect / reset or garbage before the response head → 502
// (upstream_errors{kind=connect|reset|protocol}); no response head within the service's
// request_timeout → 504; a failure after the response head was sent → the client connection
// is closed (the response is truncated, as Cloud Run does).
//
// Usage:
//   auto routes = std::make_shared<RouteTableHolder>();
//   Gateway gw(GatewayOptions{}, routes, my_gate);        // my_gate: shared_ptr<Gate>
//   gw.SetDenialHook([](const GateRequest&, const GateDecision&) { … });
//   http::Server server(http::ServerOptions{.port = 8080}, gw.handler());
//   server.Start();  …  routes->Set(new_table);  …  gw.RenderMetrics();
//
// Thread-safety: configure (SetDenialHook) before the server starts; RenderMetrics from any
// thread. The Gateway must outlive the Server using its handler.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "gateway/gate.h"
#include "gateway/networks.h"
#include "gateway/route_table.h"

namespace moat::http {
class Handler;
}

namespace moat::gateway {

struct GatewayOptions {
  // Content-Length request bodies above this → 413 before anything is forwarded (Cloud Run's
  // HTTP/1 limit). Chunked request bodies are streamed without a limit.
  uint64_t max_request_body_bytes = 32ull * 1024 * 1024;
  std::chrono::milliseconds connect_timeout{5'000};
  size_t max_idle_upstream_connections = 64;  // per upstream, per worker
  bool access_log = true;                     // one JSON line per request
  bool strip_google_headers = true;           // drop client-sent X-Google-* (GOOGLE.md §11.3)
  // Remote addresses whose requests count as internal traffic for services with internal
  // ingress (`moat serve --internal-networks`).
  IpNetworks internal_networks = IpNetworks::Loopback();
};

// Read-your-writes for the data plane: a request carrying `X-Moat-Min-Revision: N` is decided
// only once the gateway enforces store revision N or later (policies, directory and routes).
// `reached(n)` answers at once (hot path); `notify(n, done)` calls `done(true)` once revision n
// is enforced, or `done(false)` when it refuses to wait (shutting down, too many waiters) —
// exactly once, from any thread, possibly before it returns. The gateway bounds the wait by
// `max_wait` and answers 503 when it runs out.
struct RevisionWaiter {
  std::function<bool(int64_t revision)> reached;
  std::function<void(int64_t revision, std::function<void(bool)> done)> notify;
  std::chrono::milliseconds max_wait{10'000};
};

class Gateway {
 public:
  Gateway(GatewayOptions options, std::shared_ptr<RouteTableHolder> routes,
          std::shared_ptr<Gate> gate);
  ~Gateway();

  void SetDenialHook(DenialHook hook);
  // Without a waiter, X-Moat-Min-Revision is refused with 503 (it cannot be honoured).
  void SetRevisionWaiter(RevisionWaiter waiter);
  // The Server handler; may be used by one Server.
  std::shared_ptr<http::Handler> handler();
  std::string RenderMetrics() const;

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// How many times, in this process, a pooled upstream connection was probed with a recv
// before reuse because the reactor had seen something arrive on it (or could not tell).
uint64_t PooledConnectionProbes();

}  // namespace moat::gateway
