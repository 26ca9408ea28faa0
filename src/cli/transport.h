// The CLI's seams to the outside world: an HTTP transport, a JWT signer and a local proxy
// runner. The CLI never opens sockets or touches key material itself; `moat`'s main() wires
// real implementations (src/http's client, src/crypto's RS256 signer), tests wire fakes.
//
// Thread-safety: the CLI calls these from one thread; implementations need not be thread-safe.
#pragma once

#include <boost/json/fwd.hpp>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"

namespace moat::cli {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method;  // "GET", "POST", …
  std::string url;     // absolute: "http://127.0.0.1:8081/v2/projects/p/…?q=1"
  HeaderList headers;
  std::string body;
};

struct HttpResponse {
  int status = 0;
  HeaderList headers;
  std::string body;

  // First header called `name` (ASCII case-insensitive), or "".
  std::string_view Header(std::string_view name) const;
};

// Sends one request and buffers the whole response. A response with any status (including
// 4xx/5xx) is a success; an error means no response was received (connection refused,
// timeout, malformed response): return kUnavailable with a message naming the URL's origin.
class Transport {
 public:
  virtual ~Transport() = default;
  virtual Result<HttpResponse> Send(const HttpRequest& request) = 0;
};

// Signs a compact RS256 JWS: header {"alg":"RS256","typ":"JWT","kid":key_id} and the JSON
// serialization of `claims` as the payload. `private_key_pem` is the `private_key` member of
// a service-account key file (PKCS#8 or PKCS#1 PEM). Errors: kInvalidArgument for an
// unreadable or too weak key (message must not contain key material).
class Signer {
 public:
  virtual ~Signer() = default;
  virtual Result<std::string> SignJwt(std::string_view private_key_pem, std::string_view key_id,
                                      const boost::json::object& claims) = 0;
};

// `moat run services proxy`: serve plain HTTP on `listen_addr` and forward every request to
// `target_url`, adding `Authorization: Bearer <token()>` (token() returns a fresh ID token,
// minting a new one when the previous nears expiry). Blocks until interrupted (Ctrl-C), then
// returns Ok.
// The runner refuses a non-loopback listen address. Each response carries the gateway's
// request id as X-Moat-Gateway-Request-Id (the proxy's own server sets X-Request-Id); a 401 or
// 403 is reported through `notice` (one line naming `moat logging explain ID`).
struct ProxyOptions {
  std::string listen_addr;  // "127.0.0.1:8080"
  std::string target_url;   // the service URL
  std::function<Result<std::string>()> token;
  // One human-readable line per refused request; called from the proxy's threads, one call at
  // a time. May be empty.
  std::function<void(const std::string&)> notice;
};

class ProxyRunner {
 public:
  virtual ~ProxyRunner() = default;
  virtual Status Run(const ProxyOptions& options) = 0;
};

}  // namespace moat::cli
