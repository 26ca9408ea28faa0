#include "identity/token_issuer.h"

#include <algorithm>
#include <boost/json.hpp>

#include "common/json.h"
#include "crypto/jwt.h"
#include "identity/signing_keys.h"

namespace moat::identity {

IssuerUrls IssuerUrls::For(std::string issuer) {
  while (!issuer.empty() && issuer.back() == '/') issuer.pop_back();
  IssuerUrls u;
  u.issuer = issuer;
  u.api_base_url = issuer;
  u.jwks_uri = issuer + "/oauth2/v3/certs";
  u.token_endpoint = issuer + "/token";
  return u;
}

TokenIssuer::TokenIssuer(const SigningKeyManager& keys, const Clock& clock, IssuerUrls urls)
    : keys_(keys), clock_(clock), urls_(std::move(urls)) {
  IssuerUrls defaults = IssuerUrls::For(urls_.issuer);
  if (urls_.api_base_url.empty()) urls_.api_base_url = defaults.api_base_url;
  if (urls_.jwks_uri.empty()) urls_.jwks_uri = defaults.jwks_uri;
  if (urls_.token_endpoint.empty()) urls_.token_endpoint = defaults.token_endpoint;
}

Result<MintedToken> TokenIssuer::Mint(const TokenSubject& subject, std::string_view audience,
                                      bool include_email, std::chrono::seconds lifetime,
                                      const boost::json::object& extra) const {
  if (audience.empty()) return InvalidArgument("the audience must not be empty");
  if (subject.unique_id.empty()) return InvalidArgument("the token subject has no unique id");
  MOAT_TRY(auto key, keys_.Signer());
  const TimePoint now = clock_.Now();
  lifetime = std::clamp(lifetime, std::chrono::seconds(1), keys_.options().max_token_lifetime);
  // INVARIANT: exp <= the key's max_token_exp, so the token expires while its key is still
  // published (and for jwks_max_age more).
  TimePoint exp = std::min(now + lifetime, key->max_token_exp);
  const int64_t iat_s = std::chrono::duration_cast<Seconds>(now.time_since_epoch()).count();
  const int64_t exp_s = std::chrono::duration_cast<Seconds>(exp.time_since_epoch()).count();
  boost::json::object claims;
  for (const auto& [k, v] : extra) claims[k] = v;
  claims["iss"] = urls_.issuer;
  claims["aud"] = audience;
  claims["azp"] = subject.unique_id;
  claims["sub"] = subject.unique_id;
  if (include_email && !subject.email.empty()) {
    claims["email"] = subject.email;
    claims["email_verified"] = true;
  } else {
    claims.erase("email");
    claims.erase("email_verified");
  }
  claims["iat"] = iat_s;
  claims["exp"] = exp_s;
  MOAT_TRY(auto token,
           crypto::EncodeJwt(crypto::JwsAlg::kRs256, *key->private_key, key->kid, claims));
  return MintedToken{std::move(token), TimePoint(Seconds(iat_s)), TimePoint(Seconds(exp_s)),
                     key->kid};
}

Result<MintedToken> TokenIssuer::MintIdToken(const TokenSubject& subject, std::string_view audience,
                                             const IdTokenOptions& options) const {
  return Mint(subject, audience, options.include_email, options.lifetime, options.extra_claims);
}

Result<MintedToken> TokenIssuer::MintAccessToken(const TokenSubject& subject,
                                                 const std::vector<std::string>& scopes,
                                                 std::chrono::seconds lifetime) const {
  std::string scope;
  for (const auto& s : scopes) {
    if (s.empty()) continue;
    if (!scope.empty()) scope += ' ';
    scope += s;
  }
  boost::json::object extra;
  extra["scope"] = scope;
  return Mint(subject, urls_.api_base_url, /*include_email=*/true, lifetime, extra);
}

std::string TokenIssuer::OpenIdConfiguration() const {
  boost::json::object o;
  o["issuer"] = urls_.issuer;
  o["jwks_uri"] = urls_.jwks_uri;
  o["token_endpoint"] = urls_.token_endpoint;
  o["response_types_supported"] = boost::json::array{"id_token"};
  o["subject_types_supported"] = boost::json::array{"public"};
  o["id_token_signing_alg_values_supported"] = boost::json::array{"RS256"};
  o["grant_types_supported"] = boost::json::array{"urn:ietf:params:oauth:grant-type:jwt-bearer",
                                                  "password", "refresh_token"};
  o["token_endpoint_auth_methods_supported"] = boost::json::array{"none"};
  o["scopes_supported"] = boost::json::array{"openid", "email"};
  o["claims_supported"] =
      boost::json::array{"aud", "azp", "email", "email_verified", "exp", "iat", "iss", "sub"};
  return json::Serialize(o);
}

}  // namespace moat::identity
