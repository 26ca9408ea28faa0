// Host → service routing for the data plane. A RouteTable is an immutable snapshot built by
// the control plane (or tests) and published through a RouteTableHolder; the gateway's
// workers read it without taking a lock (each worker caches the current snapshot and only
// reloads it when the holder's version changes).
//
// Thread-safety: RouteTable is immutable once published (build it on one thread, then
// Set()). RouteTableHolder::Set/Get/version are safe from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/error.h"

namespace moat::gateway {

// Starts a command-run service that is not running (Cloud Run's cold start, "started on first
// request after it stopped") and records use for scale-to-zero. Implemented by the server on
// top of the runtime supervisor; services fronting an upstream URL have none. The gateway only
// activates a service for a request the Gate allowed (a refused caller never wakes a service).
//
// Thread-safety: every method may be called concurrently from any gateway worker.
class Activator {
 public:
  virtual ~Activator() = default;
  // Called when an allowed request routed to the service starts and when it has ended (its
  // response sent, its WebSocket closed, or given up), exactly once each (cheap: atomics). A
  // service with a request in flight is never idle; idle time counts from the last end.
  virtual void BeginRequest() = 0;
  virtual void EndRequest() = 0;
  // True when the service's process is running and ready to take requests (cheap).
  virtual bool Ready() const = 0;
  // Starts the service if it is stopped (a no-op when it is already starting). Calls
  // `done(true)` once it is ready, `done(false)` when it cannot become ready within `timeout`
  // (it exited on start, the supervisor is shutting down, …). Exactly once, from any thread,
  // possibly before Activate returns. The upstream port does not change across activations.
  virtual void Activate(std::chrono::milliseconds timeout, std::function<void(bool ready)> done) = 0;
};

// Cloud Run's `ingress` (GOOGLE.md §1.6), a network gate applied before IAM. Moat has no VPC:
// "internal" means the caller's address is in GatewayOptions::internal_networks.
enum class Ingress : uint8_t {
  kAll,       // INGRESS_TRAFFIC_ALL (and UNSPECIFIED, Cloud Run's default): anyone
  kInternal,  // INGRESS_TRAFFIC_INTERNAL_ONLY, INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER
  kNone,      // INGRESS_TRAFFIC_NONE, and any value Moat does not know (fail closed)
};
// The run v2 enum name → Ingress; "" is INGRESS_TRAFFIC_ALL.
Ingress ParseIngress(std::string_view value);

// What the gateway knows about one service.
struct ServiceEntry {
  std::string name;           // "projects/P/locations/R/services/S"
  std::string upstream_host;  // IP literal or a resolvable name
  uint16_t upstream_port = 0;
  std::chrono::milliseconds request_timeout{300'000};  // Cloud Run's default; → 504
  std::vector<std::string> audiences;  // accepted token audiences (URLs + custom audiences)
  bool invoker_iam_disabled = false;   // for the Gate
  Ingress ingress = Ingress::kAll;     // checked before the Gate; refused → 404
  // Opaque per-service data owned by the Gate implementation (e.g. a compiled policy).
  std::shared_ptr<const void> gate_context;
  // Command-run services: starts the process on demand; null for upstream-URL services.
  std::shared_ptr<Activator> activator;
};

class RouteTable {
 public:
  // Maps `host` (case-insensitive; a port or trailing dot is ignored) to `service`.
  // Errors: kInvalidArgument for an empty host, kAlreadyExists for a host mapped twice.
  Status Add(std::string_view host, std::shared_ptr<const ServiceEntry> service);
  // The service for a Host header value ("My-Svc.run.localhost:8080"), or nullptr.
  const std::shared_ptr<const ServiceEntry>* Find(std::string_view host_header) const;
  size_t size() const { return by_host_.size(); }

  // Lowercases and strips the port and a trailing dot: "A.B:80" → "a.b", "[::1]:80" → "[::1]".
  static std::string_view Normalize(std::string_view host, char* buf, size_t buf_size);

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::shared_ptr<const ServiceEntry>, Hash, std::equal_to<>>
      by_host_;
};

class RouteTableHolder {
 public:
  RouteTableHolder() : table_(std::make_shared<const RouteTable>()) {}
  // Publishes a new snapshot; in-flight requests keep the service entry they started with.
  void Set(std::shared_ptr<const RouteTable> table);
  std::shared_ptr<const RouteTable> Get() const { return table_.load(std::memory_order_acquire); }
  // Incremented by every Set (readers poll it to refresh a cached snapshot).
  uint64_t version() const { return version_.load(std::memory_order_acquire); }

 private:
  std::atomic<std::shared_ptr<const RouteTable>> table_;
  std::atomic<uint64_t> version_{1};
};

}  // namespace moat::gateway
