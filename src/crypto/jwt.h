// JSON Web Tokens (RFC 7519) over the JWS layer of jws.h: encoding for the token issuer and
// a complete verifier for the gateway, the API and the OAuth2 token endpoint.
//
// VerifyJwt checks, in this order, and stops at the first failure (each with its own
// TokenError reason and message):
//   1. DecodeUnverified: the strict JWS decode of jws.h, `typ` absent or "JWT" (any case), no
//      `cty`, and a payload that is a JSON object without duplicate keys;
//   2. key lookup by (kid, alg, unverified iss) through the caller's callback → kUnknownKey;
//   3. the key's type matches alg (an RSA key never verifies ES256, nor EC RS256) →
//      kKeyMismatch; then the signature → kBadSignature. Claims of a token that fails here
//      are never reported;
//   4. `exp` required and numeric; refused when now >= exp + skew (so with the default 60 s
//      skew a token is still accepted at exp + 59 s and refused at exp + 60 s);
//   5. `nbf`, `iat` numeric if present; refused when greater than now + skew;
//   6. optional maximum lifetime: exp - iat <= max_lifetime (iat then required);
//   7. `iss` required string, one of options.issuers;
//   8. `aud` required, a string or a non-empty array of strings, at least one accepted.
// Empty issuer/audience allow-lists accept nothing (fail closed).
//
// Thread-safety: pure functions; the callback may be called from any thread.
#pragma once

#include <boost/json/object.hpp>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "crypto/jwk.h"
#include "crypto/jws.h"
#include "crypto/keys.h"

namespace moat::crypto {

// Signs `claims` as a compact JWT with header {"alg", "kid" (omitted if empty), "typ":"JWT"}.
Result<std::string> EncodeJwt(JwsAlg alg, const PrivateKey& key, std::string_view kid,
                              const boost::json::object& claims);

struct UnverifiedJwt {
  DecodedJws jws;
  boost::json::object claims;
};

// Step 1 above. Nothing in the result is trustworthy until the signature is verified.
TokenResult<UnverifiedJwt> DecodeUnverified(std::string_view token,
                                            size_t max_bytes = kDefaultMaxTokenBytes);

// What the verifier asks the key store.
struct KeyQuery {
  std::optional<std::string_view> kid;  // header kid, if any
  JwsAlg alg;
  std::string_view issuer;  // unverified `iss` claim; empty if absent or not a string
};
// Returns the candidate keys (usually zero or one; several when the token has no kid and the
// issuer has several keys, as with Node's gtoken assertions). At most 16 are tried.
using KeyLookup = std::function<std::vector<PublicKeyPtr>(const KeyQuery&)>;

// A lookup over a fixed JWK set: matches kid (when present) and JwkUsableFor(alg).
KeyLookup JwksKeyLookup(std::shared_ptr<const JwkSet> set);

struct JwtVerifyOptions {
  // Accepted `iss` values (exact match). Empty: every token is refused.
  std::vector<std::string> issuers;
  // Accepted audiences (exact match) ...
  std::vector<std::string> audiences;
  // ... or, in addition, any audience this predicate accepts (e.g. a service-URL lookup).
  std::function<bool(std::string_view)> audience_predicate;
  // Time source; must outlive the call. Default: the system clock.
  const Clock* clock = nullptr;
  // Allowed clock difference for exp/nbf/iat. Default 60 s.
  std::chrono::seconds skew{60};
  // If set, exp - iat must not exceed it (and iat is required). Default: unset.
  std::optional<std::chrono::seconds> max_lifetime;
  size_t max_token_bytes = kDefaultMaxTokenBytes;
};

struct VerifiedJwt {
  boost::json::object header;
  boost::json::object claims;
  JwsAlg alg = JwsAlg::kRs256;
  std::string kid;  // empty if the header had none
  std::string iss;
  std::optional<std::string> sub;
  std::vector<std::string> aud;  // always a list, even when the claim was a string
  int64_t exp = 0;
  std::optional<int64_t> iat;
  std::optional<int64_t> nbf;
};

TokenResult<VerifiedJwt> VerifyJwt(std::string_view token, const KeyLookup& lookup,
                                   const JwtVerifyOptions& options);

}  // namespace moat::crypto
