#include "gateway/networks.h"

#include <arpa/inet.h>

#include <cstring>

namespace moat::gateway {
namespace {

// Parses an address (no brackets, no zone); false when it is not one. `out` is in network
// order: 4 bytes for IPv4, 16 for IPv6. IPv4-mapped IPv6 addresses become IPv4.
bool ParseAddr(std::string_view text, std::array<uint8_t, 16>* out, bool* v4) {
  char buf[INET6_ADDRSTRLEN + 1];
  if (text.empty() || text.size() >= sizeof buf) return false;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  out->fill(0);
  if (::inet_pton(AF_INET, buf, out->data()) == 1) {
    *v4 = true;
    return true;
  }
  if (::inet_pton(AF_INET6, buf, out->data()) != 1) return false;
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(out->data(), kMapped, sizeof kMapped) == 0) {
    std::memmove(out->data(), out->data() + 12, 4);
    std::memset(out->data() + 4, 0, 12);
    *v4 = true;
  } else {
    *v4 = false;
  }
  return true;
}

bool PrefixMatches(const uint8_t* a, const uint8_t* b, int prefix) {
  int full = prefix / 8;
  if (std::memcmp(a, b, static_cast<size_t>(full)) != 0) return false;
  int rest = prefix % 8;
  if (rest == 0) return true;
  auto mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[full] & mask) == (b[full] & mask);
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string_view HostOfRemote(std::string_view remote) {
  if (!remote.empty() && remote.front() == '[') {
    size_t close = remote.find(']');
    return close == std::string_view::npos ? std::string_view() : remote.substr(1, close - 1);
  }
  size_t colon = remote.find(':');
  if (colon == std::string_view::npos) return remote;
  // More than one colon without brackets: a bare IPv6 address.
  if (remote.find(':', colon + 1) != std::string_view::npos) return remote;
  return remote.substr(0, colon);
}

Result<IpNetworks> IpNetworks::Parse(std::string_view csv) {
  IpNetworks out;
  if (Trim(csv).empty()) return out;  // no network is internal
  std::string_view rest = csv;
  while (true) {
    size_t comma = rest.find(',');
    std::string_view item = Trim(rest.substr(0, comma));
    auto bad = [&](std::string_view why) {
      return InvalidArgument("network `" + std::string(item) + "` is not valid: " +
                             std::string(why));
    };
    if (item.empty()) return InvalidArgument("empty network in `" + std::string(csv) + "`");
    Net n;
    size_t slash = item.find('/');
    if (!ParseAddr(item.substr(0, slash), &n.addr, &n.v4)) {
      return bad("expected an IPv4 or IPv6 CIDR such as 10.0.0.0/8");
    }
    int max = n.v4 ? 32 : 128;
    n.prefix = max;
    if (slash != std::string_view::npos) {
      std::string_view p = item.substr(slash + 1);
      if (p.empty() || p.size() > 3) return bad("bad prefix length");
      int v = 0;
      for (char c : p) {
        if (c < '0' || c > '9') return bad("bad prefix length");
        v = v * 10 + (c - '0');
      }
      if (v > max) return bad("prefix length too large");
      // An IPv4-mapped network written in IPv6 form keeps its IPv4 meaning.
      if (n.v4 && item.find(':') != std::string_view::npos) {
        if (v < 96) return bad("prefix length too small for an IPv4-mapped address");
        v -= 96;
      }
      n.prefix = v;
    }
    // Host bits must be zero.
    for (int bit = n.prefix; bit < max; ++bit) {
      if (n.addr[static_cast<size_t>(bit / 8)] & (0x80 >> (bit % 8))) {
        return bad("host bits are set after the prefix");
      }
    }
    out.nets_.push_back(n);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return out;
}

IpNetworks IpNetworks::Loopback() {
  auto n = Parse("127.0.0.0/8,::1/128");
  return n ? std::move(*n) : IpNetworks();
}

bool IpNetworks::Contains(std::string_view ip) const {
  std::array<uint8_t, 16> addr;
  bool v4 = false;
  if (nets_.empty() || !ParseAddr(ip, &addr, &v4)) return false;
  for (const Net& n : nets_) {
    if (n.v4 == v4 && PrefixMatches(addr.data(), n.addr.data(), n.prefix)) return true;
  }
  return false;
}

std::string IpNetworks::ToString() const {
  std::string out;
  for (const Net& n : nets_) {
    char buf[INET6_ADDRSTRLEN];
    if (::inet_ntop(n.v4 ? AF_INET : AF_INET6, n.addr.data(), buf, sizeof buf) == nullptr) continue;
    if (!out.empty()) out.push_back(',');
    out.append(buf);
    out.push_back('/');
    out.append(std::to_string(n.prefix));
  }
  return out;
}

}  // namespace moat::gateway
