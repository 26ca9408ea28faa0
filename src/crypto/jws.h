// JSON Web Signature (RFC 7515), compact serialization, restricted to RS256 and ES256.
//
// Signing and verification primitives plus a strict decoder of compact JWS. The decoder is
// the first thing untrusted tokens meet, so it refuses, before any key is looked up:
//   - anything but exactly three '.'-separated segments, or more than max_bytes;
//   - non-canonical base64url in any segment (padding, stray characters, non-zero spare bits);
//   - a header that is not a JSON object, or has duplicate keys;
//   - `alg` other than "RS256" / "ES256" (so "none", "NONE", HS*, PS*, ES384, … all fail);
//   - `crit` (we understand no extensions), and `jku`, `x5u`, `jwk`, `x5c` (keys named by the
//     token itself are never fetched nor trusted);
//   - a `kid` or `typ` that is not a string.
// Every failure carries a TokenError reason so callers (the gateway's audit log) can say
// exactly which check failed. Messages never contain the token.
//
// Thread-safety: all functions are pure or use per-call OpenSSL contexts; keys may be shared.
#pragma once

#include <boost/json/object.hpp>
#include <boost/system/result.hpp>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"
#include "crypto/keys.h"

namespace moat::crypto {

enum class JwsAlg { kRs256, kEs256 };

// "RS256" / "ES256".
std::string_view JwsAlgName(JwsAlg alg);
// Exact, case-sensitive match of the two supported names; anything else is nullopt.
std::optional<JwsAlg> ParseJwsAlg(std::string_view name);
// The algorithm a key signs with: RS256 for RSA, ES256 for P-256.
JwsAlg AlgForKey(KeyType type);
// True iff `key` may verify `alg` (RSA↔RS256, P-256↔ES256): the algorithm-confusion guard.
bool KeyMatchesAlg(const PublicKey& key, JwsAlg alg);

// Why a token was refused. Stable names (TokenErrorName) go into audit logs.
enum class TokenError {
  kMalformed,             // segments, base64url, JSON shape
  kTooLarge,              // over the size cap
  kUnsupportedAlgorithm,  // alg none / HS* / PS* / anything but RS256, ES256
  kForbiddenHeader,       // crit, jku, x5u, jwk, x5c
  kBadType,               // typ present and not "JWT"
  kUnknownKey,            // no key for this kid (or issuer) is known
  kKeyMismatch,           // the key cannot verify this alg, or its JWK forbids the use
  kBadSignature,          // signature does not verify (includes wrong length)
  kMissingClaim,          // exp, iss, aud (or iat when a max lifetime is set) absent
  kBadClaim,              // a claim with the wrong type
  kExpired,               // now >= exp + skew
  kNotYetValid,           // nbf > now + skew
  kIssuedInFuture,        // iat > now + skew
  kLifetimeTooLong,       // exp - iat > max lifetime
  kWrongIssuer,
  kWrongAudience,
};

// "malformed", "too_large", "unsupported_algorithm", … (snake_case, for logs and metrics).
std::string_view TokenErrorName(TokenError e);

struct TokenFailure {
  TokenError reason = TokenError::kMalformed;
  // One lowercase sentence, e.g. "token expired at 2026-01-01T00:00:00Z".
  std::string message;

  // As a moat::Error with code kUnauthenticated (the API maps it to 401).
  Error ToError() const { return Unauthenticated(message); }
};

// Needed by boost::system::result<T, TokenFailure>::value().
[[noreturn]] void throw_exception_from_error(const TokenFailure& f,
                                             const boost::source_location& loc);

template <class T>
using TokenResult = boost::system::result<T, TokenFailure>;

// Quotes untrusted text for a message: at most 64 characters, non-printables as '?', in
// backticks.
std::string QuoteUntrusted(std::string_view s);

// ---- primitives ----

// Signs `signing_input` (the ASCII "header.payload"). RS256: 256-byte PKCS#1 v1.5 signature
// for a 2048-bit key. ES256: 64 bytes r‖s (RFC 7518 §3.4). Errors: the key does not match
// `alg` (kInvalidArgument), or OpenSSL failed (kInternal).
Result<std::string> Sign(JwsAlg alg, const PrivateKey& key, std::string_view signing_input);

// True iff `signature` is a valid `alg` signature of `signing_input` under `key`. False when
// the key type does not match alg, when the length is wrong (RS256: modulus size; ES256:
// exactly 64 bytes) or when r, s are out of range.
bool Verify(JwsAlg alg, const PublicKey& key, std::string_view signing_input,
            std::string_view signature);

// ECDSA P-256 SHA-256 over a strict-DER signature (no BER, no trailing bytes). For tests
// and for interop with DER producers.
bool VerifyEcdsaDer(const PublicKey& key, std::string_view message, std::string_view der_sig);
// r‖s (64 bytes) ↔ DER ECDSA-Sig-Value. nullopt on wrong sizes or non-DER input.
std::optional<std::string> EcdsaRawToDer(std::string_view raw);
std::optional<std::string> EcdsaDerToRaw(std::string_view der);

// ---- compact serialization ----

constexpr size_t kDefaultMaxTokenBytes = 16 * 1024;

struct DecodedJws {
  boost::json::object header;
  JwsAlg alg = JwsAlg::kRs256;
  std::optional<std::string> kid;
  std::string payload;        // decoded bytes
  std::string signing_input;  // "header.payload" as received
  std::string signature;      // decoded bytes
};

// Strict decode as described at the top. Does not verify the signature.
TokenResult<DecodedJws> DecodeJws(std::string_view compact,
                                  size_t max_bytes = kDefaultMaxTokenBytes);

// Verifies a decoded JWS against `key`: kKeyMismatch if the key cannot do the header's alg,
// kBadSignature if the signature does not verify.
TokenResult<void> VerifyJwsSignature(const DecodedJws& jws, const PublicKey& key);

// Builds "b64url(header).b64url(payload).b64url(sig)". The header gets "alg" set from `alg`
// (overriding any given value); other members are kept in order.
Result<std::string> EncodeJws(JwsAlg alg, const PrivateKey& key, boost::json::object header,
                              std::string_view payload);

}  // namespace moat::crypto
