// The OAuth2 token endpoint (POST /token, application/x-www-form-urlencoded) as pure logic:
// form parameters in, {status, headers, JSON body} out. The API layer parses the form and
// writes the reply.
//
// Grants:
//   - urn:ietf:params:oauth:grant-type:jwt-bearer (GOOGLE.md §8): `assertion` is a JWT signed
//     by a service-account key, checked by the ONE Verifier (purpose kAssertion: iss = the SA
//     email, key by kid or, without kid as Node's gtoken sends it, each usable key of the
//     account; aud = Moat's token URL or https://oauth2.googleapis.com/token; exp − iat ≤ 1 h;
//     sub absent or = iss). Its `target_audience` claim → {"id_token"} (aud = target_audience,
//     with email); else its `scope` claim → {"access_token","expires_in","token_type":"Bearer"}.
//   - password (username = a built-in user's email, password; checked by the caller-supplied
//     PasswordVerifier) and refresh_token → {"access_token","expires_in","token_type",
//     "id_token" (aud = Moat's API base URL), "refresh_token" (password grant only), "scope"}.
//     Refresh tokens are 256-bit random strings; only their SHA-256 is stored, in kSettings
//     documents "refresh_tokens/HEX" {email, unique_id, create_time, expire_time}. A refresh is
//     refused once the user is disabled or deleted.
// Errors follow RFC 6749 §5.2: 400 {"error":"invalid_request"|"invalid_grant"|
// "unsupported_grant_type","error_description":"…"}; 503 {"error":"temporarily_unavailable"}
// when no signing key or the store is unavailable. Every reply carries Cache-Control: no-store.
//
// Thread-safety: Handle may be called concurrently.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/error.h"
#include "identity/directory.h"
#include "identity/verifier.h"

namespace moat::store {
class Store;
}

namespace moat::identity {

class TokenIssuer;

inline constexpr std::string_view kJwtBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer";
inline constexpr std::string_view kRefreshTokenPrefix = "refresh_tokens/";

struct HttpReply {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// Checks a built-in user's password (idir implements it with Argon2id). Any error = refused.
using PasswordVerifier =
    std::function<Result<UserRecord>(std::string_view email, std::string_view password)>;

struct OAuthTokenEndpointOptions {
  std::chrono::seconds refresh_token_lifetime{std::chrono::hours(24 * 30)};
  std::chrono::seconds access_token_lifetime{std::chrono::hours(1)};
  // Scopes of password/refresh grants when the request names none.
  std::string default_user_scope = "openid email";
};

class OAuthTokenEndpoint {
 public:
  // All references must outlive this. `verify_password` may be empty (password grant off).
  OAuthTokenEndpoint(const TokenIssuer& issuer, Verifier& verifier, store::Store& store,
                     const Clock& clock, DirectoryProvider directory,
                     PasswordVerifier verify_password, OAuthTokenEndpointOptions options = {});

  HttpReply Handle(const std::map<std::string, std::string>& form);

 private:
  HttpReply JwtBearer(const std::map<std::string, std::string>& form);
  HttpReply Password(const std::map<std::string, std::string>& form);
  // With `target_audience`, the reply's id_token is for that audience (what
  // `moat auth print-identity-token` asks for a signed-in user) instead of the API's URL.
  HttpReply Refresh(const std::map<std::string, std::string>& form);
  HttpReply UserTokens(const UserRecord& user, const std::string& scope, bool new_refresh_token,
                       const std::string* id_audience = nullptr);

  const TokenIssuer& issuer_;
  Verifier& verifier_;
  store::Store& store_;
  const Clock& clock_;
  DirectoryProvider directory_;
  PasswordVerifier verify_password_;
  OAuthTokenEndpointOptions options_;
};

// An RFC 6749 error reply.
HttpReply OAuthError(int status, std::string_view error, std::string_view description);

}  // namespace moat::identity
