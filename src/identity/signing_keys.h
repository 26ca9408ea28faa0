// Moat's own OIDC signing keys (system-managed): generation, rotation, encryption at rest, and
// the published key documents (JWKS at /oauth2/v3/certs, PEM map at /oauth2/v1/certs).
//
// Schedule of one key (all times stored with the key, so every replica agrees):
//
//   publish_time ── ≥ jwks_max_age ──► sign_start ── sign_period ──► sign_end
//        ──► retire_time = sign_end + max_token_lifetime + jwks_max_age + skew
//
// - A key is in the JWKS from publish_time until it is deleted at retire_time.
// - The successor of the signing key is created (published) as soon as the current key starts
//   signing, with sign_start = the current key's sign_end, so it is published a whole
//   sign_period (default 7 days) before it signs, far more than jwks_max_age.
// - A key signs only tokens with exp <= sign_end + max_token_lifetime (MaxTokenExp; the
//   TokenIssuer clamps to it), so every token it signed expires at least jwks_max_age + skew
//   before the key leaves the JWKS: a verifier whose cached JWKS is at most jwks_max_age old
//   (the Cache-Control max-age we serve) never meets an unknown kid, before, during or after a
//   rotation.
// - If Rotate() was not called in time (server down), the last key is extended rather than
//   a never-published key starting to sign at once; only a fresh install (no key at all)
//   creates a key that signs immediately.
//
// Storage: collection kSigningKeys, key "moat/KID", JSON
//   {kid, alg:"RS256", public_key_pem, cert_pem, encrypted_private_key (base64 of
//    AES-256-GCM(master key, PKCS#8 DER, aad = kid)), publish_time, sign_start, sign_end,
//    retire_time (RFC 3339)}.
// The store never sees a private key in clear; decrypted keys live only in memory snapshots.
//
// Thread-safety: Rotate/Reload may run on any thread (they serialize on the store transaction
// and an internal mutex); Snapshot/Signer/Jwks* are lock-free reads of an immutable snapshot.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/error.h"
#include "crypto/keys.h"

namespace moat::store {
class Store;
}

namespace moat::identity {

struct SigningKeyOptions {
  // How long one key signs. Default 7 days (Google: at most two weeks).
  std::chrono::seconds sign_period{std::chrono::hours(24 * 7)};
  // The longest token lifetime Moat issues. Default 1 h.
  std::chrono::seconds max_token_lifetime{std::chrono::hours(1)};
  // Cache-Control max-age of the JWKS and PEM documents. Default 1 h.
  std::chrono::seconds jwks_max_age{std::chrono::hours(1)};
  // Extra margin for clock differences between Moat and verifiers. Default 60 s.
  std::chrono::seconds skew{60};
  // RSA modulus size. Default 2048 (Google's default; verifiers everywhere accept it).
  int rsa_bits = 2048;
};

// One signing key in a snapshot. Immutable.
struct SigningKey {
  std::string kid;
  crypto::PublicKeyPtr public_key;
  std::shared_ptr<const crypto::PrivateKey> private_key;
  std::string public_key_pem;
  std::string cert_pem;
  TimePoint publish_time{};
  TimePoint sign_start{};
  TimePoint sign_end{};
  TimePoint retire_time{};
  // The latest `exp` this key may put in a token: sign_end + max_token_lifetime.
  TimePoint max_token_exp{};
};

// The key set as loaded by Reload(). Immutable; share as shared_ptr<const SigningKeySet>.
struct SigningKeySet {
  std::vector<std::shared_ptr<const SigningKey>> keys;  // ordered by sign_start
  std::string jwks_json;                                // {"keys":[…]} of every key in `keys`
  std::string certs_json;                               // {"KID":"-----BEGIN CERTIFICATE…"}
  int64_t store_revision = 0;

  const SigningKey* Find(std::string_view kid) const;
  // The key whose [sign_start, sign_end) contains `now` (the latest such), or nullptr.
  std::shared_ptr<const SigningKey> SignerAt(TimePoint now) const;
};

// The stored form (exposed for tests and for `moat` admin tooling).
struct StoredSigningKey {
  std::string kid;
  std::string public_key_pem;
  std::string cert_pem;
  std::string encrypted_private_key;  // base64
  TimePoint publish_time{}, sign_start{}, sign_end{}, retire_time{};
};
std::string SerializeStoredSigningKey(const StoredSigningKey& k);
Result<StoredSigningKey> ParseStoredSigningKey(std::string_view json);
// The store key of a signing key: "moat/KID".
std::string SigningKeyStoreKey(std::string_view kid);

// Seals / opens a private key with the master key (AES-256-GCM, aad = `aad`), base64 text.
Result<std::string> SealPrivateKey(std::string_view master_key, const crypto::PrivateKey& key,
                                   std::string_view aad);
Result<crypto::PrivateKey> OpenPrivateKey(std::string_view master_key, std::string_view sealed_b64,
                                          std::string_view aad);

class SigningKeyManager {
 public:
  // `store`, `clock` must outlive this. `master_key`: 32 bytes (see master_key.h).
  SigningKeyManager(store::Store& store, std::string master_key, const Clock& clock,
                    SigningKeyOptions options = {});

  // Idempotent; call at start and periodically (e.g. every minute). In one store
  // transaction: deletes retired keys, makes sure a key signs now and its successor is
  // published, then commits and reloads. Errors: the store's; kDataLoss if a stored key
  // cannot be decrypted (then nothing is written).
  Status Rotate();

  // Loads the key set from the store into a new snapshot (after a change-feed wake-up).
  // Errors: the store's; kDataLoss when a key does not decrypt or does not match its public
  // key (tampered or sealed under another master key); the previous snapshot stays in place.
  Status Reload();

  // The current snapshot (never null; empty before the first Reload).
  std::shared_ptr<const SigningKeySet> Snapshot() const { return snapshot_.load(); }

  // The key that signs now. kUnavailable if none (Rotate has not run, or the clock is past
  // the last key's sign_end).
  Result<std::shared_ptr<const SigningKey>> Signer() const;

  // The published documents and their Cache-Control header value.
  std::string JwksJson() const { return Snapshot()->jwks_json; }
  std::string CertsPemJson() const { return Snapshot()->certs_json; }
  std::string CacheControl() const;

  const SigningKeyOptions& options() const { return options_; }
  const Clock& clock() const { return clock_; }

 private:
  TimePoint RetireTime(TimePoint sign_end) const;
  Result<StoredSigningKey> NewKey(TimePoint publish, TimePoint sign_start, TimePoint sign_end);

  store::Store& store_;
  const std::string master_key_;
  const Clock& clock_;
  const SigningKeyOptions options_;
  std::mutex reload_mu_;  // serializes Reload (snapshot building)
  std::atomic<std::shared_ptr<const SigningKeySet>> snapshot_;
};

}  // namespace moat::identity
