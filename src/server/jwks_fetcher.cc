#include "server/jwks_fetcher.h"

#include <charconv>

#include "http/client.h"

namespace moat::server {

Result<identity::JwksDocument> HttpJwksFetcher::Fetch(const std::string& uri) {
  http::ClientRequest req;
  req.url = uri;
  req.timeout = std::chrono::seconds(5);
  req.max_response_bytes = 1024 * 1024;
  req.headers.Add("Accept", "application/json");
  MOAT_TRY(auto resp, http::Fetch(req));
  if (resp.status != 200) {
    return Unavailable("the JWKS endpoint `" + uri + "` answered HTTP " +
                       std::to_string(resp.status));
  }
  identity::JwksDocument doc;
  doc.body = std::move(resp.body);
  // Cache-Control: max-age=N
  std::string_view cc = resp.headers.Get("Cache-Control");
  auto pos = cc.find("max-age=");
  if (pos != std::string_view::npos) {
    auto digits = cc.substr(pos + 8);
    int64_t secs = 0;
    auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), secs);
    if (ec == std::errc() && p != digits.data() && secs >= 0) doc.max_age = std::chrono::seconds(secs);
  }
  return doc;
}

}  // namespace moat::server
