// The OAuth2 token endpoint, public and unauthenticated (GOOGLE.md §8; RFC 6749):
//   POST /token   application/x-www-form-urlencoded
//     grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=JWT
//         (target_audience claim → {"id_token"}; scope claim → {"access_token",…})
//     grant_type=password&username=EMAIL&password=…   → tokens + refresh_token
//     grant_type=refresh_token&refresh_token=…        → {"access_token","id_token",…}
//     grant_type=refresh_token&refresh_token=…&target_audience=AUD → the refresh reply
//         ({"access_token","expires_in","token_type","scope"}) whose "id_token" has aud = AUD
//         (what `moat auth print-identity-token` sends for a signed-in user)
// The grant logic is identity::OAuthTokenEndpoint's; this file parses the form and writes its
// reply (errors in OAuth's {"error","error_description"} format, Cache-Control: no-store).
// A parameter given twice is invalid_request (RFC 6749 §3.2: "MUST NOT be included more than
// once"). Passwords and tokens are never logged.
#include <boost/json.hpp>
#include <map>

#include "api/iam_common.h"
#include "api/routes.h"
#include "common/json.h"
#include "identity/oauth_token_endpoint.h"
#include "identity/principals.h"
#include "identity/token_issuer.h"
#include "state/live_state.h"

namespace moat::api {
namespace {

constexpr size_t kMaxFormBytes = 64 * 1024;

http::Response ToResponse(const identity::HttpReply& reply) {
  http::Response r = http::Response::Json(reply.status, reply.body);
  for (const auto& [name, value] : reply.headers) r.headers.Set(name, value);
  r.headers.Set("Cache-Control", "no-store");
  return r;
}

http::Response OAuthErrorResponse(int status, std::string_view error, std::string_view text) {
  return ToResponse(identity::OAuthError(status, error, text));
}

struct TokenService {
  TokenService(const Env& env)
      : users(*env.store, *env.clock),
        endpoint(
            *env.issuer, *env.verifier, *env.store, *env.clock,
            [&env] {
              auto view = env.live->Current();
              return view ? view->directory : nullptr;
            },
            [this](std::string_view email, std::string_view password) {
              return users.VerifyPassword(email, password);
            }) {}
  identity::Users users;
  identity::OAuthTokenEndpoint endpoint;
};

http::Response Token(TokenService& svc, const http::Request& req) {
  std::string_view type = req.headers.Get("Content-Type");
  std::string media = http::ToLower(type.substr(0, type.find(';')));
  while (!media.empty() && media.back() == ' ') media.pop_back();
  if (!media.empty() && media != "application/x-www-form-urlencoded") {
    return OAuthErrorResponse(400, "invalid_request",
                              "the body must be application/x-www-form-urlencoded");
  }
  if (req.body.size() > kMaxFormBytes) {
    return OAuthErrorResponse(400, "invalid_request", "the request body is too large");
  }
  std::map<std::string, std::string> form;
  for (auto& [name, value] : http::ParseQuery(req.body)) {
    if (!form.emplace(name, value).second) {
      return OAuthErrorResponse(400, "invalid_request", "parameter `" + name + "` is repeated");
    }
  }
  return ToResponse(svc.endpoint.Handle(form));
}

}  // namespace

void RegisterOAuthRoutes(http::Router& router, const Env& env) {
  if (!env.issuer || !env.verifier) {
    AddRoute(
        router, "POST", "/token",
        [](const http::Request&) {
          return OAuthErrorResponse(503, "temporarily_unavailable",
                                    "the token service is not enabled on this server");
        },
        false);
    return;
  }
  auto svc = std::make_shared<TokenService>(env);
  AddRoute(
      router, "POST", "/token",
      [svc](const http::Request& req) { return Token(*svc, req); },
      /*blocking=*/true);
}

}  // namespace moat::api
