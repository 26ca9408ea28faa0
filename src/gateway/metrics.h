// Prometheus-style counters for the data plane. Writers are the gateway's workers: each
// worker writes its own cache-line-aligned shard (relaxed atomics, no contention); Render()
// sums the shards.
//
// Thread-safety: all methods are safe from any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace moat::gateway {

enum class UpstreamError { kConnect, kTimeout, kReset, kProtocol };

class Metrics {
 public:
  static constexpr std::array<double, 14> kLatencyBuckets = {
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

  Metrics();
  ~Metrics();
  void CountRequest(size_t worker, int status);
  // status: 401 → "unauthenticated", 403 → "forbidden", 503 → "unavailable".
  void CountDenial(size_t worker, int status);
  void CountUnknownHost(size_t worker);
  // A request refused by the service's ingress setting (404).
  void CountIngressDenial(size_t worker);
  // A request that had to start (or wait for) a command-run service.
  void CountActivation(size_t worker);
  void CountUpstreamError(size_t worker, UpstreamError e);
  // Time from the upstream request being sent to its response head arriving.
  void ObserveUpstreamLatency(size_t worker, double seconds);
  // The Prometheus text exposition format (version 0.0.4).
  std::string Render() const;

 private:
  static constexpr size_t kShards = 64;
  struct alignas(64) Shard {
    std::atomic<uint64_t> requests[6] = {};  // [0] other, [1..5] 1xx..5xx
    std::atomic<uint64_t> denials[3] = {};
    std::atomic<uint64_t> unknown_host{0};
    std::atomic<uint64_t> ingress_denials{0};
    std::atomic<uint64_t> activations{0};
    std::atomic<uint64_t> upstream_errors[4] = {};
    std::atomic<uint64_t> latency_buckets[kLatencyBuckets.size() + 1] = {};
    std::atomic<uint64_t> latency_count{0};
    std::atomic<uint64_t> latency_sum_us{0};
  };
  Shard& At(size_t worker) { return shards_[worker % kShards]; }
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace moat::gateway
