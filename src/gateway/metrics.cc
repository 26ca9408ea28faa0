#include "gateway/metrics.h"

#include <cstdio>

namespace moat::gateway {
namespace {
constexpr auto kRelaxed = std::memory_order_relaxed;
}

Metrics::Metrics() : shards_(new Shard[kShards]) {}
Metrics::~Metrics() = default;

void Metrics::CountRequest(size_t worker, int status) {
  int cls = status / 100;
  At(worker).requests[(cls >= 1 && cls <= 5) ? cls : 0].fetch_add(1, kRelaxed);
}

void Metrics::CountDenial(size_t worker, int status) {
  int i = status == 401 ? 0 : status == 503 ? 2 : 1;
  At(worker).denials[i].fetch_add(1, kRelaxed);
}

void Metrics::CountUnknownHost(size_t worker) { At(worker).unknown_host.fetch_add(1, kRelaxed); }
void Metrics::CountIngressDenial(size_t worker) {
  At(worker).ingress_denials.fetch_add(1, kRelaxed);
}
void Metrics::CountActivation(size_t worker) { At(worker).activations.fetch_add(1, kRelaxed); }

void Metrics::CountUpstreamError(size_t worker, UpstreamError e) {
  At(worker).upstream_errors[static_cast<int>(e)].fetch_add(1, kRelaxed);
}

void Metrics::ObserveUpstreamLatency(size_t worker, double seconds) {
  Shard& s = At(worker);
  size_t b = 0;
  while (b < kLatencyBuckets.size() && seconds > kLatencyBuckets[b]) ++b;
  s.latency_buckets[b].fetch_add(1, kRelaxed);
  s.latency_count.fetch_add(1, kRelaxed);
  s.latency_sum_us.fetch_add(static_cast<uint64_t>(seconds * 1e6), kRelaxed);
}

std::string Metrics::Render() const {
  auto sum = [&](auto field) {
    uint64_t t = 0;
    for (size_t i = 0; i < kShards; ++i) t += field(shards_[i]).load(kRelaxed);
    return t;
  };
  std::string out;
  char line[256];
  out += "# HELP moat_gateway_requests_total Requests answered by the gateway, by status class.\n";
  out += "# TYPE moat_gateway_requests_total counter\n";
  static const char* kClasses[] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
  for (int c = 0; c < 6; ++c) {
    std::snprintf(line, sizeof line, "moat_gateway_requests_total{code=\"%s\"} %llu\n", kClasses[c],
                  static_cast<unsigned long long>(
                      sum([c](const Shard& s) -> auto& { return s.requests[c]; })));
    out += line;
  }
  out += "# HELP moat_gateway_denials_total Requests denied by the gate, by reason class.\n";
  out += "# TYPE moat_gateway_denials_total counter\n";
  static const char* kDenials[] = {"unauthenticated", "forbidden", "unavailable"};
  for (int d = 0; d < 3; ++d) {
    std::snprintf(line, sizeof line, "moat_gateway_denials_total{reason=\"%s\"} %llu\n",
                  kDenials[d], static_cast<unsigned long long>(sum([d](const Shard& s) -> auto& {
                    return s.denials[d];
                  })));
    out += line;
  }
  out += "# HELP moat_gateway_unknown_host_total Requests for a host no service answers.\n";
  out += "# TYPE moat_gateway_unknown_host_total counter\n";
  out += "moat_gateway_unknown_host_total " +
         std::to_string(sum([](const Shard& s) -> auto& { return s.unknown_host; })) + "\n";
  out += "# HELP moat_gateway_ingress_denials_total Requests refused by the service's ingress "
         "setting.\n";
  out += "# TYPE moat_gateway_ingress_denials_total counter\n";
  out += "moat_gateway_ingress_denials_total " +
         std::to_string(sum([](const Shard& s) -> auto& { return s.ingress_denials; })) + "\n";
  out += "# HELP moat_gateway_activations_total Requests that started or waited for a command "
         "service (cold starts).\n";
  out += "# TYPE moat_gateway_activations_total counter\n";
  out += "moat_gateway_activations_total " +
         std::to_string(sum([](const Shard& s) -> auto& { return s.activations; })) + "\n";
  out += "# HELP moat_gateway_upstream_errors_total Failed upstream exchanges, by kind.\n";
  out += "# TYPE moat_gateway_upstream_errors_total counter\n";
  static const char* kErrors[] = {"connect", "timeout", "reset", "protocol"};
  for (int e = 0; e < 4; ++e) {
    std::snprintf(line, sizeof line, "moat_gateway_upstream_errors_total{kind=\"%s\"} %llu\n",
                  kErrors[e], static_cast<unsigned long long>(sum([e](const Shard& s) -> auto& {
                    return s.upstream_errors[e];
                  })));
    out += line;
  }
  out += "# HELP moat_gateway_upstream_latency_seconds Time to the upstream's response head.\n";
  out += "# TYPE moat_gateway_upstream_latency_seconds histogram\n";
  uint64_t cumulative = 0;
  for (size_t b = 0; b <= kLatencyBuckets.size(); ++b) {
    cumulative += sum([b](const Shard& s) -> auto& { return s.latency_buckets[b]; });
    if (b < kLatencyBuckets.size()) {
      std::snprintf(line, sizeof line,
                    "moat_gateway_upstream_latency_seconds_bucket{le=\"%g\"} %llu\n",
                    kLatencyBuckets[b], static_cast<unsigned long long>(cumulative));
    } else {
      std::snprintf(line, sizeof line,
                    "moat_gateway_upstream_latency_seconds_bucket{le=\"+Inf\"} %llu\n",
                    static_cast<unsigned long long>(cumulative));
    }
    out += line;
  }
  std::snprintf(
      line, sizeof line, "moat_gateway_upstream_latency_seconds_sum %.6f\n",
      static_cast<double>(sum([](const Shard& s) -> auto& { return s.latency_sum_us; })) / 1e6);
  out += line;
  out += "moat_gateway_upstream_latency_seconds_count " +
         std::to_string(sum([](const Shard& s) -> auto& { return s.latency_count; })) + "\n";
  return out;
}

}  // namespace moat::gateway
