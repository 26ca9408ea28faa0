// The ONE token verifier. Every path that accepts a bearer token (the gateway, Moat's API, the
// OAuth2 token endpoint's JWT-bearer assertions) calls Verifier::Verify, so the rules below
// hold everywhere.
//
// What is accepted, by the token's `iss`:
//   - Moat's issuer URL → a Moat ID/access token, verified with Moat's signing keys (the
//     SigningKeyManager snapshot). Its `sub` (uniqueId) must name a live, enabled service
//     account, or its email an enabled built-in user with that uniqueId. Audience: for
//     kGateway the request's audiences; for kApi any URL on Moat's API origin.
//   - a service-account email → a self-signed JWT of that account (GOOGLE.md §0, §8.1), only
//     for kApi (aud = any URL on the API origin, or https://SERVICE.googleapis.com/…) and
//     kAssertion (aud = Moat's token URL or https://oauth2.googleapis.com/token). The key is
//     picked by kid among the account's keys (user-managed keys of the Directory and the
//     system-managed keys of signJwt); without kid (Node gtoken) every usable key is tried.
//     The key must be enabled and inside [validAfter, validBefore); the account enabled and
//     not deleted; `sub`, if present, must equal `iss`; exp − iat ≤ 1 h.
//   - a trusted external issuer (Directory) → its JWKS fetched through JwksFetcher from the
//     issuer record's jwks_uri (never from the token), cached with the response's max-age,
//     served stale while a refresh runs (and while the issuer is down, up to max_jwks_stale),
//     refetched at most once per min_jwks_refetch_interval on an unknown kid. The token needs
//     `email` and `email_verified` true → user:EMAIL. Issuer unreachable with nothing cached →
//     kUnavailable "issuer `X` unavailable" (HTTP 503), not 401.
//   - anything else → refused (wrong_issuer).
//
// Cache: verified tokens are cached until exp (bounded, 64 mutex-sharded maps, FIFO eviction),
// so a repeated token costs a short hash, a map lookup and one memcmp, not an RSA
// verification. Entries are keyed by the whole token text (bucket hash over the last 32
// characters, i.e. the signature's end, which nobody can steer without the signing key):
// SHA-256 over a ~800-byte token alone costs ~0.8 µs here, four times the target per-hit cost.
// Holding tokens adds no exposure beyond what the process already holds (the signing keys). On
// every hit the audience rule is re-applied, and when the Directory snapshot differs from the
// one the entry was checked against, the account/user/key/issuer are re-checked against the
// CURRENT snapshot, so disabling an account or a key takes effect on the next request.
//
// Thread-safety: Verify may be called concurrently from any number of threads.
#pragma once

#include <array>
#include <atomic>
#include <boost/system/result.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/error.h"
#include "identity/directory.h"
#include "identity/token_issuer.h"

namespace moat::crypto {
struct JwkSet;
}

namespace moat::identity {

class SigningKeyManager;
class SystemManagedKeys;

enum class TokenSource { kMoat, kSelfSigned, kExternal };
std::string_view TokenSourceName(TokenSource s);  // "moat", "self_signed", "external"

// A verified caller.
struct Identity {
  std::string member;     // "serviceAccount:EMAIL" or "user:EMAIL" (IAM member string)
  std::string email;      // lowercase
  std::string unique_id;  // SA uniqueId, user uniqueId, or the external `sub`
  PrincipalKind kind = PrincipalKind::kServiceAccount;
  TokenSource source = TokenSource::kMoat;
  std::string key_id;  // the kid that verified the token
  std::string issuer;
  std::vector<std::string> audiences;
  std::string scope;  // Moat access tokens' `scope` claim; "" otherwise
  TimePoint expire_time{};
};

enum class VerifyPurpose {
  kGateway,    // a request to a service behind the gateway
  kApi,        // a request to Moat's own API
  kAssertion,  // a JWT-bearer assertion at the OAuth2 token endpoint (self-signed only)
};

struct VerifyRequest {
  VerifyPurpose purpose = VerifyPurpose::kGateway;
  // kGateway: accepted audiences (the service's URLs ± trailing slash, custom audiences) …
  std::vector<std::string> audiences;
  // … or any audience this accepts. Must be cheap and thread-safe. kApi also accepts these.
  std::function<bool(std::string_view)> audience_predicate;
};

struct VerifyFailure {
  Code code = Code::kUnauthenticated;  // kUnavailable for issuer_unavailable
  // Stable snake_case reason for audit logs: crypto::TokenErrorName values, or
  // account_disabled, account_deleted, unknown_account, user_disabled, key_disabled,
  // key_expired, email_not_verified, issuer_unavailable, self_signed_not_allowed,
  // subject_mismatch.
  std::string reason;
  std::string message;  // one lowercase sentence; never the token

  Error ToError() const { return Error{code, message}; }
};
[[noreturn]] void throw_exception_from_error(const VerifyFailure& f,
                                             const boost::source_location& loc);
template <class T>
using VerifyResult = boost::system::result<T, VerifyFailure>;

// What Moat asks of an HTTP client for external JWKS (the lead wires a real one).
struct JwksDocument {
  std::string body;
  std::optional<std::chrono::seconds> max_age;  // from Cache-Control, if any
};
class JwksFetcher {
 public:
  virtual ~JwksFetcher() = default;
  // GET `uri`. Any error (DNS, connect, timeout, non-200) is an Error (code ignored).
  virtual Result<JwksDocument> Fetch(const std::string& uri) = 0;
};

using DirectoryProvider = std::function<std::shared_ptr<const Directory>()>;
// Called after a user-managed or system-managed service-account key verified a token.
using KeyUsedCallback = std::function<void(const std::string& key_id, TimePoint when)>;

struct VerifierOptions {
  std::string issuer;      // Moat's issuer URL (no trailing slash)
  std::string api_origin;  // e.g. "http://127.0.0.1:8081" (no trailing slash)
  std::string token_url;   // Moat's token endpoint; default api_origin + "/token"
  std::chrono::seconds skew{60};
  size_t cache_capacity = 100'000;
  std::chrono::seconds max_self_signed_lifetime{3600};
  // External JWKS caching.
  std::chrono::seconds default_jwks_max_age{900};  // when the response has no max-age
  std::chrono::seconds max_jwks_max_age{86400};    // a larger max-age is clamped
  std::chrono::seconds max_jwks_stale{86400};      // serve stale keys at most this long
  std::chrono::seconds min_jwks_refetch_interval{30};
};

struct VerifierDeps {
  const Clock* clock = nullptr;                     // required
  DirectoryProvider directory;                      // required
  const SigningKeyManager* signing_keys = nullptr;  // required for Moat tokens
  const SystemManagedKeys* system_keys = nullptr;   // optional (signJwt keys)
  JwksFetcher* fetcher = nullptr;                   // optional (external issuers)
  // Runs a stale JWKS refresh in the background. Unset: the request that notices the
  // staleness refreshes inline while concurrent requests keep using the stale keys. Tasks
  // must run before the Verifier and the fetcher are destroyed.
  std::function<void(std::function<void()>)> background;
  KeyUsedCallback on_key_used;  // optional (idir's KeyUsageRecorder)
};

class Verifier {
 public:
  Verifier(VerifierOptions options, VerifierDeps deps);
  ~Verifier();

  VerifyResult<std::shared_ptr<const Identity>> Verify(std::string_view token,
                                                       const VerifyRequest& request);

  // True iff `aud` is on Moat's API origin: the origin itself or origin + "/path" (no query
  // or fragment).
  bool IsApiAudience(std::string_view aud) const;

  struct Stats {
    uint64_t hits = 0, misses = 0, jwks_fetches = 0;
    size_t cache_size = 0;
  };
  Stats stats() const;
  void ClearCache();

  const VerifierOptions& options() const { return options_; }

 private:
  struct Entry;
  struct Shard;
  struct IssuerKeys;

  VerifyResult<std::shared_ptr<const Identity>> VerifyUncached(std::string_view token,
                                                               const VerifyRequest& request,
                                                               const Directory& dir, TimePoint now,
                                                               TimePoint* valid_until);
  VerifyResult<std::shared_ptr<const Identity>> VerifyMoat(std::string_view token,
                                                           const VerifyRequest& request,
                                                           const Directory& dir, TimePoint now,
                                                           TimePoint* valid_until);
  VerifyResult<std::shared_ptr<const Identity>> VerifySelfSigned(
      std::string_view token, std::string_view iss, const VerifyRequest& request,
      const Directory& dir, TimePoint now, TimePoint* valid_until);
  VerifyResult<std::shared_ptr<const Identity>> VerifyExternal(
      std::string_view token, const TrustedIssuerRecord& issuer, std::optional<std::string> kid,
      const VerifyRequest& request, const Directory& dir, TimePoint now, TimePoint* valid_until);
  // Re-checks an identity against a Directory (cache hits after a snapshot change).
  // Returns the validity limit (exp + skew, capped by the key's validity) on success.
  std::optional<VerifyFailure> CheckStillValid(const Identity& id, const Directory& dir,
                                               TimePoint now, TimePoint* valid_until) const;
  bool AudienceAccepted(const Identity& id, const VerifyRequest& request,
                        const Directory& dir) const;
  bool AudienceAccepted(TokenSource source, std::string_view aud, const VerifyRequest& request,
                        const TrustedIssuerRecord* issuer) const;
  // The external issuer's key set (fetching if needed); kid = the token's kid, if any.
  VerifyResult<std::shared_ptr<const crypto::JwkSet>> IssuerKeySet(
      const TrustedIssuerRecord& issuer, const std::optional<std::string>& kid, TimePoint now);
  void Refresh(IssuerKeys& state);
  Shard& ShardFor(size_t hash);

  VerifierOptions options_;
  VerifierDeps deps_;
  std::vector<std::unique_ptr<Shard>> shards_;
  size_t shard_capacity_;
  std::mutex issuers_mu_;
  std::unordered_map<std::string, std::shared_ptr<IssuerKeys>> issuers_;  // by issuer+uri
  std::atomic<uint64_t> hits_{0}, misses_{0}, jwks_fetches_{0};
};

}  // namespace moat::identity
