// JSON Web Keys (RFC 7517/7518) for public RSA and P-256 keys, and JWK Sets.
//
// Export produces what Google serves at /service_accounts/v1/jwk/EMAIL and OIDC jwks_uri:
//   {"kty":"RSA","alg":"RS256","use":"sig","kid":"…","n":"…","e":"AQAB"}
//   {"kty":"EC","alg":"ES256","use":"sig","kid":"…","crv":"P-256","x":"…","y":"…"}
// Import is strict, because key sets come from external issuers over the network: required
// members present with the right types, canonical base64url, minimal-length RSA integers,
// exactly 32-byte P-256 coordinates on the curve, no private members (d, p, q, dp, dq, qi,
// oth, k), and the key policy of keys.h.
//
// Thread-safety: pure functions; a parsed JwkSet is immutable and may be shared.
#pragma once

#include <boost/json/object.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "crypto/jws.h"
#include "crypto/keys.h"

namespace moat::crypto {

struct Jwk {
  PublicKeyPtr key;
  std::string kid;                   // empty if absent
  std::string alg;                   // as given; empty if absent
  std::string use;                   // as given; empty if absent
  std::vector<std::string> key_ops;  // as given; empty if absent
};

// The JWK of `key` with "alg" (RS256/ES256), "use":"sig" and, if non-empty, "kid".
boost::json::object PublicJwk(const PublicKey& key, std::string_view kid);

// Strict import of one public JWK (see above). Errors are kInvalidArgument naming the member.
Result<Jwk> ParsePublicJwk(const boost::json::object& jwk);

// May `jwk` verify `alg` signatures? No if: its key type does not match alg; "alg" is present
// and differs; "use" is present and not "sig"; "key_ops" is present without "verify".
Status JwkUsableFor(const Jwk& jwk, JwsAlg alg);

struct JwkSet {
  std::vector<Jwk> keys;
  // Keys ignored as RFC 7517 §5 allows (unsupported kty/crv, or failing import), one
  // sentence each, e.g. "key 2 (`k1`): EC key must be on the P-256 curve".
  std::vector<std::string> skipped;

  // The key with this kid, or nullptr.
  const Jwk* Find(std::string_view kid) const;
};

// Parses {"keys":[…]} (at most 100 keys, 1 MiB). Fails as a whole if the document is not such
// an object, if any member carries private key material, or if two usable keys share a non-empty
// kid; unusable keys are skipped and listed.
Result<JwkSet> ParseJwks(std::string_view json);

// {"keys":[…]} from the given JWK objects (as PublicJwk builds them).
std::string SerializeJwks(const std::vector<boost::json::object>& jwks);

}  // namespace moat::crypto
