// System-managed service-account keys (Google's keyType SYSTEM_MANAGED): the keys that
// signJwt / signBlob sign with. Moat generates one for an account on first use, seals its
// private half with the master key (AES-256-GCM, aad = the store key) and publishes its public
// half with the account's user-managed keys at /service_accounts/v1/jwk/EMAIL and
// /robot/v1/metadata/x509/EMAIL, so signJwt output verifies like a self-signed JWT.
//
// Schedule: a key signs for `sign_period` (default 14 days, Google's maximum), is then
// replaced on the next use, and stays published (and accepted by the Verifier) until
// retire_time = sign_end + `verify_grace` (default 24 h), after which Reload drops it and
// Rotate deletes it.
//
// Storage: collection kSigningKeys, key "sa/UNIQUE_ID/KID" (the directory's kSaKeys documents
// describe user-managed keys only), JSON {kid, sa_email, sa_unique_id, public_key_pem,
// cert_pem, encrypted_private_key, valid_after, valid_before (= sign end), retire_time}.
//
// Thread-safety: all methods may be called from any thread; reads use an immutable snapshot.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/error.h"
#include "crypto/keys.h"
#include "identity/directory.h"

namespace moat::store {
class Store;
}

namespace moat::identity {

struct SystemManagedKey {
  std::string kid;
  std::string sa_email;
  std::string sa_unique_id;
  crypto::PublicKeyPtr public_key;
  std::shared_ptr<const crypto::PrivateKey> private_key;
  std::string cert_pem;
  TimePoint valid_after{};
  TimePoint valid_before{};  // end of signing
  TimePoint retire_time{};   // end of publication / verification
};

struct SystemManagedKeySet {
  std::unordered_map<std::string, std::shared_ptr<const SystemManagedKey>> by_kid;
  std::unordered_map<std::string, std::vector<std::shared_ptr<const SystemManagedKey>>>
      by_unique_id;
};

class SystemManagedKeys {
 public:
  SystemManagedKeys(store::Store& store, std::string master_key, const Clock& clock,
                    std::chrono::seconds sign_period = std::chrono::hours(24 * 14),
                    std::chrono::seconds verify_grace = std::chrono::hours(24));

  // The key `sa` signs with now, generating and storing one when it has none (or its key's
  // signing window is over). Errors: the store's; kDataLoss when a stored key does not decrypt.
  Result<std::shared_ptr<const SystemManagedKey>> ForSigning(const ServiceAccountRecord& sa);

  // Reloads the snapshot from the store (after a change-feed wake-up).
  Status Reload();
  // Deletes keys past retire_time. Returns how many.
  Result<int> DeleteRetired();

  std::shared_ptr<const SystemManagedKeySet> Snapshot() const { return snapshot_.load(); }
  // A published key by kid (nullptr if none or retired).
  std::shared_ptr<const SystemManagedKey> Find(std::string_view kid, TimePoint now) const;
  // The published keys of an account (by uniqueId).
  std::vector<std::shared_ptr<const SystemManagedKey>> KeysOf(std::string_view sa_unique_id,
                                                              TimePoint now) const;

 private:
  Status ReloadLocked();

  store::Store& store_;
  const std::string master_key_;
  const Clock& clock_;
  const std::chrono::seconds sign_period_, verify_grace_;
  std::mutex mu_;  // serializes generation and reloads
  std::atomic<std::shared_ptr<const SystemManagedKeySet>> snapshot_;
};

// /service_accounts/v1/jwk/EMAIL: {"keys":[JWK…]} of the account's enabled, currently valid
// user-managed keys and its published system-managed keys. `email_or_id` may be URL-decoded
// already. Errors: kNotFound for an unknown or deleted account.
Result<std::string> ServiceAccountJwks(const Directory& dir, const SystemManagedKeys* system_keys,
                                       std::string_view email_or_id, TimePoint now);
// /robot/v1/metadata/x509/EMAIL: {"KID":"-----BEGIN CERTIFICATE-----…"} for the same keys.
Result<std::string> ServiceAccountX509Certs(const Directory& dir,
                                            const SystemManagedKeys* system_keys,
                                            std::string_view email_or_id, TimePoint now);

// Is a user-managed key usable now (enabled, within [valid_after, valid_before), parsed) and
// does it belong to `sa` (same uniqueId)?
bool KeyUsable(const KeyRecord& key, const ServiceAccountRecord& sa, TimePoint now);
// Is the account usable (not disabled, not deleted)?
inline bool AccountUsable(const ServiceAccountRecord& sa) {
  return !sa.disabled && !sa.delete_time.has_value();
}

}  // namespace moat::identity
