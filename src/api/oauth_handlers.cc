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
#include "crypto/jwt.h"
#include "identity/oauth_token_endpoint.h"
#include "identity/principals.h"
#include "identity/token_issuer.h"
#include "state/live_state.h"

namespace moat::api {
namespace {

namespace bj = boost::json;

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

// refresh_token + target_audience: the endpoint checks the refresh token (and that its user
// is still enabled) and mints the user's tokens, as for a plain refresh; the reply's id_token
// is then replaced by one for the requested audience, minted for the subject of the
// just-issued access token (its claims are read without verification: this process minted it
// a moment ago and it never left the process). The identity endpoint has no target_audience
// parameter for refresh grants, hence this step here.
http::Response RefreshForAudience(const Env& env, TokenService& svc,
                                  std::map<std::string, std::string> form,
                                  const std::string& audience) {
  form.erase("target_audience");
  identity::HttpReply reply = svc.endpoint.Handle(form);
  if (reply.status != 200) return ToResponse(reply);
  auto body = json::ParseObject(reply.body, "token reply");
  if (!body) return OAuthErrorResponse(500, "server_error", "the token service failed");
  auto access = json::OptString(*body, "access_token");
  if (!access || !*access) {
    return OAuthErrorResponse(500, "server_error", "the token service failed");
  }
  // Minted by this server a moment ago: its claims are trusted without a second verification.
  auto decoded = crypto::DecodeUnverified(**access);
  if (!decoded) return OAuthErrorResponse(500, "server_error", "the token service failed");
  auto email = json::OptString(decoded->claims, "email");
  auto sub = json::OptString(decoded->claims, "sub");
  if (!email || !*email || !sub || !*sub) {
    return OAuthErrorResponse(500, "server_error", "the token service failed");
  }
  identity::TokenSubject subject{**email, **sub, identity::PrincipalKind::kUser};
  auto token = env.issuer->MintIdToken(subject, audience);
  if (!token) {
    if (token.error().code == Code::kInvalidArgument) {
      return OAuthErrorResponse(400, "invalid_request", token.error().message);
    }
    return OAuthErrorResponse(503, "temporarily_unavailable", "the token service is unavailable");
  }
  bj::object out = std::move(*body);
  out["id_token"] = token->token;
  return ToResponse(identity::HttpReply{200, reply.headers, json::Serialize(out)});
}

http::Response Token(const Env& env, TokenService& svc, const http::Request& req) {
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
  auto grant = form.find("grant_type");
  auto audience = form.find("target_audience");
  if (grant != form.end() && grant->second == "refresh_token" && audience != form.end()) {
    if (audience->second.empty()) {
      return OAuthErrorResponse(400, "invalid_request", "`target_audience` must not be empty");
    }
    std::string aud = audience->second;
    return RefreshForAudience(env, svc, std::move(form), aud);
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
      [&env, svc](const http::Request& req) { return Token(env, *svc, req); },
      /*blocking=*/true);
}

}  // namespace moat::api
