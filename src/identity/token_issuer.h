// The token issuer: Moat's OIDC ID tokens and access tokens, and the discovery document.
//
// ID tokens are RS256 JWTs, header {"alg":"RS256","kid":KID,"typ":"JWT"}, claims
//   {iss, aud, azp (= uniqueId), sub (= uniqueId), email, email_verified, iat, exp}
// exactly as Google's service-account ID tokens (GOOGLE.md §9.1), with iss = Moat's issuer
// URL. email/email_verified are omitted when include_email is false (generateIdToken's
// includeEmail). Lifetime ≤ 1 h and never past the signing key's MaxTokenExp (see
// signing_keys.h): a token never outlives the publication of the key that signed it.
//
// Access tokens are JWTs too (unlike Google's opaque ya29.… tokens): same claims with
// aud = Moat's API base URL and a `scope` claim (space-separated). The gateway refuses them
// because their aud is never a service URL; Moat's API accepts them (Verifier, purpose kApi).
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <boost/json/object.hpp>
#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/error.h"

namespace moat::identity {

class SigningKeyManager;

enum class PrincipalKind { kServiceAccount, kUser };

// Who a token is about.
struct TokenSubject {
  std::string email;
  std::string unique_id;
  PrincipalKind kind = PrincipalKind::kServiceAccount;
};

struct IssuerUrls {
  // Moat's issuer URL, the `iss` of every token, e.g. "http://127.0.0.1:8081". No trailing /.
  std::string issuer;
  // Moat's API base URL (origin), the `aud` of access tokens. Default: the issuer.
  std::string api_base_url;
  // Default: issuer + "/oauth2/v3/certs".
  std::string jwks_uri;
  // Default: issuer + "/token".
  std::string token_endpoint;

  // Fills the defaults.
  static IssuerUrls For(std::string issuer);
};

struct MintedToken {
  std::string token;
  TimePoint issue_time{};
  TimePoint expire_time{};
  std::string kid;
};

struct IdTokenOptions {
  bool include_email = true;
  std::chrono::seconds lifetime{std::chrono::hours(1)};  // clamped to ≤ 1 h
  // Extra claims (e.g. the metadata server's `google` block for format=full). They may not
  // override the standard claims above.
  boost::json::object extra_claims;
};

class TokenIssuer {
 public:
  // `keys` and `clock` must outlive this.
  TokenIssuer(const SigningKeyManager& keys, const Clock& clock, IssuerUrls urls);

  // Errors: kInvalidArgument (empty audience, empty subject id); kUnavailable (no signing key).
  Result<MintedToken> MintIdToken(const TokenSubject& subject, std::string_view audience,
                                  const IdTokenOptions& options = {}) const;

  // `scopes` go into the `scope` claim, space-separated. Lifetime clamped to ≤ 1 h.
  Result<MintedToken> MintAccessToken(const TokenSubject& subject,
                                      const std::vector<std::string>& scopes,
                                      std::chrono::seconds lifetime = std::chrono::hours(1)) const;

  // /.well-known/openid-configuration (JSON text).
  std::string OpenIdConfiguration() const;

  const IssuerUrls& urls() const { return urls_; }

 private:
  Result<MintedToken> Mint(const TokenSubject& subject, std::string_view audience,
                           bool include_email, std::chrono::seconds lifetime,
                           const boost::json::object& extra) const;

  const SigningKeyManager& keys_;
  const Clock& clock_;
  IssuerUrls urls_;
};

}  // namespace moat::identity
