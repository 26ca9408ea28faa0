// OIDC discovery and public keys (GOOGLE.md §9.3), public and unauthenticated:
//   GET /.well-known/openid-configuration   TokenIssuer::OpenIdConfiguration()
//   GET /oauth2/v3/certs                    Moat's signing keys as a JWKS
//   GET /oauth2/v1/certs                    the same as {"KID": "PEM certificate"}
//   GET /service_accounts/v1/jwk/{email}    an account's enabled user-managed keys and its
//                                           system-managed (signJwt/signBlob) keys, as a JWKS
//   GET /robot/v1/metadata/x509/{email}     the same keys as {"KID": "PEM certificate"}
// The signing-key documents carry SigningKeyManager::CacheControl() (its max-age is what the
// rotation schedule is built around); per-account documents are cached 5 minutes (a disabled
// or deleted key must stop verifying soon; Google advises refreshing every 15 minutes).
// Unknown or deleted accounts answer 404 NOT_FOUND.
#include <boost/json.hpp>

#include "api/iam_common.h"
#include "api/routes.h"
#include "identity/credentials_keys.h"
#include "identity/signing_keys.h"
#include "identity/token_issuer.h"
#include "state/live_state.h"

namespace moat::api {
namespace {

constexpr char kAccountKeysCacheControl[] = "public, max-age=300";

http::Response JsonText(std::string body, std::string cache_control) {
  http::Response r = http::Response::Json(200, std::move(body));
  r.headers.Set("Cache-Control", std::move(cache_control));
  return r;
}

http::Response NotEnabled(std::string_view what) {
  return ErrorResponse(
      MakeError(Code::kUnimplemented, std::string(what) + " is not enabled on this server"));
}

}  // namespace

// Declared in routes.h (one line) for the wiring that has a SystemManagedKeys to offer.
void RegisterDiscoveryRoutesWith(http::Router& router, const Env& env,
                                 identity::SystemManagedKeys* system_keys) {
  AddRoute(
      router, "GET", "/.well-known/openid-configuration",
      [&env](const http::Request&) {
        if (!env.issuer) return NotEnabled("the token issuer");
        return JsonText(env.issuer->OpenIdConfiguration(), "public, max-age=3600");
      },
      false);
  AddRoute(
      router, "GET", "/oauth2/v3/certs",
      [&env](const http::Request&) {
        if (!env.signing) return NotEnabled("the token issuer");
        return JsonText(env.signing->JwksJson(), env.signing->CacheControl());
      },
      false);
  AddRoute(
      router, "GET", "/oauth2/v1/certs",
      [&env](const http::Request&) {
        if (!env.signing) return NotEnabled("the token issuer");
        return JsonText(env.signing->CertsPemJson(), env.signing->CacheControl());
      },
      false);
  auto account_keys = [&env, system_keys](bool jwk) {
    return [&env, system_keys, jwk](const http::Request& req) {
      std::string_view email = req.PathVar("email");
      Status seg = CheckPathSegment(email, "service account");
      if (!seg) return ErrorResponse(seg.error());
      auto view = env.live->Current();
      if (!view || !view->directory) return ErrorResponse(Unavailable("no directory loaded yet"));
      TimePoint now = env.clock->Now();
      Result<std::string> body =
          jwk ? identity::ServiceAccountJwks(*view->directory, system_keys, email, now)
              : identity::ServiceAccountX509Certs(*view->directory, system_keys, email, now);
      if (!body) return ErrorResponse(body.error());
      return JsonText(std::move(*body), kAccountKeysCacheControl);
    };
  };
  AddRoute(router, "GET", "/service_accounts/v1/jwk/{email}", account_keys(true), false);
  AddRoute(router, "GET", "/robot/v1/metadata/x509/{email}", account_keys(false), false);
}

void RegisterDiscoveryRoutes(http::Router& router, const Env& env) {
  RegisterDiscoveryRoutesWith(router, env, SystemKeysOf(env));
}

}  // namespace moat::api
