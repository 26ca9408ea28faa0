// `moat run services proxy`: a loopback HTTP server that forwards every request to one
// service, adding the active identity's ID token for that service (like `gcloud run services
// proxy`). Requests and responses are buffered (32 MiB each way); the token is reused until
// five minutes before it expires.
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

#include "cli/token_cache.h"
#include "cli/wiring.h"
#include "common/log.h"
#include "http/client.h"
#include "http/router.h"
#include "http/server.h"

namespace moat::cli {
namespace {

constexpr size_t kMaxBody = 32u * 1024 * 1024;

// Connection-specific fields (RFC 9110 §7.6.1) and those the proxy sets itself.
bool DropRequestField(std::string_view n) {
  using http::IEquals;
  return IEquals(n, "host") || IEquals(n, "authorization") || IEquals(n, "connection") ||
         IEquals(n, "keep-alive") || IEquals(n, "proxy-connection") || IEquals(n, "te") ||
         IEquals(n, "trailer") || IEquals(n, "transfer-encoding") || IEquals(n, "upgrade") ||
         IEquals(n, "content-length") || IEquals(n, "proxy-authorization") || IEquals(n, "expect");
}
bool DropResponseField(std::string_view n) {
  using http::IEquals;
  return IEquals(n, "connection") || IEquals(n, "keep-alive") || IEquals(n, "transfer-encoding") ||
         IEquals(n, "content-length") || IEquals(n, "trailer") || IEquals(n, "upgrade") ||
         IEquals(n, "x-request-id");
}

class TokenSource {
 public:
  explicit TokenSource(std::function<Result<std::string>()> mint) : mint_(std::move(mint)) {}
  Result<std::string> Get() {
    std::lock_guard lock(mu_);
    int64_t now = static_cast<int64_t>(std::time(nullptr));
    if (!token_.empty() && now < expiry_ - 300) return token_;
    MOAT_TRY(std::string t, mint_());
    token_ = std::move(t);
    // Unreadable expiry → 0: the token is then used for one request only.
    expiry_ = JwtExpiry(token_).value_or(0);
    return token_;
  }

 private:
  std::mutex mu_;  // the minting Context is not thread-safe: one mint at a time
  std::function<Result<std::string>()> mint_;
  std::string token_;
  int64_t expiry_ = 0;
};

struct Notifier {
  std::mutex mu;
  std::function<void(const std::string&)> fn;
  void operator()(const std::string& line) {
    if (!fn) return;
    std::lock_guard lock(mu);
    fn(line);
  }
};

http::Response Forward(const std::string& target_url, TokenSource& tokens, Notifier& notice,
                       const http::Request& req) {
  auto token = tokens.Get();
  if (!token) {
    return http::Response::Text(
        502, "moat proxy: cannot get an ID token: " + token.error().message + "\n");
  }
  http::ClientRequest out;
  out.method = req.method;
  out.url = target_url + req.target;
  for (const auto& f : req.headers) {
    if (!DropRequestField(f.name)) out.headers.Add(f.name, f.value);
  }
  out.headers.Add("Authorization", "Bearer " + *token);
  out.body = req.body;
  out.timeout = std::chrono::minutes(5);
  out.max_response_bytes = kMaxBody;
  auto resp = http::Fetch(out);
  if (!resp) {
    return http::Response::Text(502, "moat proxy: " + resp.error().message + "\n");
  }
  http::Response r;
  r.status = resp->status;
  for (const auto& f : resp->headers) {
    if (!DropResponseField(f.name)) r.headers.Add(f.name, f.value);
  }
  // Our server replaces X-Request-Id with its own; keep the gateway's, which is what
  // `moat logging explain` looks up.
  std::string gateway_id(resp->headers.Get("X-Request-Id"));
  if (!gateway_id.empty()) r.headers.Add("X-Moat-Gateway-Request-Id", gateway_id);
  if (r.status == 401 || r.status == 403) {
    notice(req.method + " " + req.path + " → " + std::to_string(r.status) +
           (gateway_id.empty() ? std::string()
                               : "; run `moat logging explain " + gateway_id + "` to see why"));
  }
  r.body = std::move(resp->body);
  return r;
}

class HttpProxyRunner : public ProxyRunner {
 public:
  Status Run(const ProxyOptions& o) override {
    size_t colon = o.listen_addr.rfind(':');
    if (colon == std::string::npos) {
      return InvalidArgument("proxy address `" + o.listen_addr + "` must be HOST:PORT");
    }
    std::string host = o.listen_addr.substr(0, colon);
    if (host != "127.0.0.1" && host != "::1" && host != "[::1]") {
      return InvalidArgument("the proxy listens on loopback only, not `" + host + "`");
    }
    if (host == "[::1]") host = "::1";
    int port = std::atoi(o.listen_addr.c_str() + colon + 1);
    if (port <= 0 || port > 65535) {
      return InvalidArgument("flag `--port` must be 1..65535, not `" +
                             o.listen_addr.substr(colon + 1) + "`");
    }
    auto tokens = std::make_shared<TokenSource>(o.token);
    // Mint once before listening: a caller who cannot get a token learns it now, not per request.
    if (auto first = tokens->Get(); !first) return first.error();

    auto router = std::make_shared<http::Router>();
    std::string target = o.target_url;
    auto notice = std::make_shared<Notifier>();
    notice->fn = o.notice;
    auto handler = [target, tokens, notice](const http::Request& req) {
      return Forward(target, *tokens, *notice, req);
    };
    for (const char* m : {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}) {
      MOAT_CHECK_OK(router->Add(m, "/{path=**}", handler, /*blocking=*/true));
      MOAT_CHECK_OK(router->Add(m, "/", handler, /*blocking=*/true));
    }
    http::RouterOptions ropts;
    ropts.name = "proxy";
    ropts.access_log = false;
    ropts.max_body_bytes = kMaxBody;
    ropts.blocking_threads = 4;
    ropts.blocking_timeout = std::chrono::minutes(5);
    http::ServerOptions sopts;
    sopts.host = host;
    sopts.port = static_cast<uint16_t>(port);
    sopts.threads = 1;
    sopts.name = "proxy";

    // Block SIGINT/SIGTERM before the server's threads start (they inherit the mask), then
    // wait for one here.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigset_t old;
    pthread_sigmask(SIG_BLOCK, &signals, &old);
    http::Server server(sopts, http::MakeRouterHandler(router, ropts));
    if (auto st = server.Start(); !st) {
      pthread_sigmask(SIG_SETMASK, &old, nullptr);
      return Unavailable("cannot listen on " + o.listen_addr + ": " + st.error().message +
                         " (pick another port with --port)");
    }
    int sig = 0;
    sigwait(&signals, &sig);
    server.Stop();
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    return Ok();
  }
};

}  // namespace

std::unique_ptr<ProxyRunner> MakeHttpProxyRunner() { return std::make_unique<HttpProxyRunner>(); }

}  // namespace moat::cli
