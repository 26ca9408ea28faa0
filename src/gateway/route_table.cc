#include "gateway/route_table.h"

namespace moat::gateway {

Ingress ParseIngress(std::string_view v) {
  if (v.empty() || v == "INGRESS_TRAFFIC_ALL" || v == "INGRESS_TRAFFIC_UNSPECIFIED") {
    return Ingress::kAll;
  }
  if (v == "INGRESS_TRAFFIC_INTERNAL_ONLY" || v == "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER") {
    return Ingress::kInternal;
  }
  return Ingress::kNone;
}

std::string_view RouteTable::Normalize(std::string_view host, char* buf, size_t buf_size) {
  if (host.empty()) return {};
  if (host.front() == '[') {
    size_t close = host.find(']');
    if (close != std::string_view::npos) host = host.substr(0, close + 1);
  } else if (size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  if (host.size() > buf_size) return {};
  for (size_t i = 0; i < host.size(); ++i) {
    char c = host[i];
    buf[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
  }
  return {buf, host.size()};
}

Status RouteTable::Add(std::string_view host, std::shared_ptr<const ServiceEntry> service) {
  char buf[256];
  std::string_view key = Normalize(host, buf, sizeof buf);
  if (key.empty()) return InvalidArgument("invalid service host `" + std::string(host) + "`");
  auto [it, inserted] = by_host_.emplace(std::string(key), std::move(service));
  if (!inserted) return AlreadyExists("host `" + std::string(host) + "` is already routed");
  return Ok();
}

const std::shared_ptr<const ServiceEntry>* RouteTable::Find(std::string_view host_header) const {
  char buf[256];
  std::string_view key = Normalize(host_header, buf, sizeof buf);
  if (key.empty()) return nullptr;
  auto it = by_host_.find(key);
  return it == by_host_.end() ? nullptr : &it->second;
}

void RouteTableHolder::Set(std::shared_ptr<const RouteTable> table) {
  table_.store(std::move(table), std::memory_order_release);
  version_.fetch_add(1, std::memory_order_acq_rel);
}

}  // namespace moat::gateway
