// IpNetworks: a list of CIDR networks ("127.0.0.0/8,::1/128") and a membership test, for the
// gateway's ingress check (which remote addresses count as internal traffic).
//
// Contains() takes the text of an address (as in "ip:port" minus the port, brackets allowed)
// and allocates nothing. An IPv4-mapped IPv6 address (::ffff:10.0.0.1) is matched as the IPv4
// address it carries.
//
// Thread-safety: immutable after construction; Contains from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace moat::gateway {

class IpNetworks {
 public:
  IpNetworks() = default;  // matches nothing
  // Comma-separated CIDRs ("10.0.0.0/8, fd00::/8"); a bare address means a single host; an
  // empty string is the empty list.
  // Errors (kInvalidArgument) name the offending item; host bits set are refused
  // ("10.0.0.1/8") since they usually mean a typo.
  static Result<IpNetworks> Parse(std::string_view csv);
  // 127.0.0.0/8 and ::1/128.
  static IpNetworks Loopback();

  bool Contains(std::string_view ip) const;
  bool empty() const { return nets_.empty(); }
  // Canonical "a.b.c.d/n,x::/n".
  std::string ToString() const;

 private:
  struct Net {
    std::array<uint8_t, 16> addr{};
    bool v4 = false;
    int prefix = 0;
  };
  std::vector<Net> nets_;
};

// "ip:port" / "[v6]:port" / "ip" → the ip text (no brackets); "" when it has none.
std::string_view HostOfRemote(std::string_view remote);

}  // namespace moat::gateway
