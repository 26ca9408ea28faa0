// The identity directory: who exists and which credentials are valid right now.
//
// A Directory is an immutable snapshot built from the store (service accounts, their keys,
// built-in users, groups, trusted external issuers) and swapped atomically when the store's
// change feed moves, exactly like the IAM policy snapshot. The token verifier consults it on
// every cache hit, so disabling an account or a key takes effect on the next request without
// flushing the token cache, and the hot path makes no store call.
//
// Records mirror the JSON documents of the store collections `service_accounts`, `sa_keys`,
// `users`, `groups` and `trusted_issuers` (see records.h for their (de)serialization).
//
// Thread-safety: a Directory is immutable after Build; share it as shared_ptr<const Directory>
// and read it from any thread without locks.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "crypto/keys.h"

namespace moat::identity {

// A service account, as Google's IAM API v1 shows it (GOOGLE.md §6.1).
struct ServiceAccountRecord {
  std::string project_id;
  std::string account_id;  // the part before '@'
  std::string email;       // ACCOUNT@PROJECT.iam.gserviceaccount.com (lowercase)
  std::string unique_id;   // 21 decimal digits; stable across delete/undelete
  std::string display_name;
  std::string description;
  bool disabled = false;
  // Set while the account is deleted; undelete is possible until delete_time + 30 days.
  std::optional<TimePoint> delete_time;
  TimePoint create_time{};

  // projects/PROJECT/serviceAccounts/EMAIL
  std::string Name() const { return "projects/" + project_id + "/serviceAccounts/" + email; }
};

enum class KeyOrigin { kGoogleProvided, kUserProvided };

// A user-managed service-account key. Moat keeps only the public half.
struct KeyRecord {
  std::string key_id;  // 40 hex digits = key file private_key_id = JWT header kid
  std::string sa_email;
  std::string sa_unique_id;
  std::string public_key_pem;  // SubjectPublicKeyInfo
  std::string cert_pem;        // self-signed X.509 served at /robot/v1/metadata/x509/EMAIL
  TimePoint valid_after{};
  TimePoint valid_before{};  // TimePoint::max() when the key does not expire
  KeyOrigin origin = KeyOrigin::kGoogleProvided;
  bool disabled = false;
  std::optional<TimePoint> last_used;
  crypto::PublicKeyPtr public_key;  // parsed once when the snapshot is built

  // projects/PROJECT/serviceAccounts/EMAIL/keys/KEY_ID
  std::string Name(const std::string& project_id) const {
    return "projects/" + project_id + "/serviceAccounts/" + sa_email + "/keys/" + key_id;
  }
};

// A user of the built-in directory (self-contained installs).
struct UserRecord {
  std::string email;  // lowercase
  std::string unique_id;
  std::string display_name;
  std::string password_hash;  // libsodium crypto_pwhash_str (Argon2id); never the password
  bool disabled = false;
  TimePoint create_time{};
};

// group:EMAIL with members "user:…", "serviceAccount:…", "group:…" (nesting allowed).
struct GroupRecord {
  std::string email;
  std::string display_name;
  std::string description;
  std::vector<std::string> members;
};

// An external OIDC issuer whose ID tokens are accepted for `user:EMAIL` (email_verified).
struct TrustedIssuerRecord {
  std::string id;
  std::string issuer;                  // exact `iss` value
  std::string jwks_uri;                // fetched by Moat, never taken from a token
  std::vector<std::string> audiences;  // accepted `aud` values for Moat's API (may be empty)
};

class Directory {
 public:
  struct Inputs {
    std::vector<ServiceAccountRecord> service_accounts;
    std::vector<KeyRecord> keys;
    std::vector<UserRecord> users;
    std::vector<GroupRecord> groups;
    std::vector<TrustedIssuerRecord> trusted_issuers;
    int64_t revision = 0;  // the store revision these inputs were read at
  };

  // Builds the indexes. Keys whose PEM fails to parse are skipped (they can never verify).
  static std::shared_ptr<const Directory> Build(Inputs inputs);
  Directory() = default;  // empty; use Build

  // By email (case-insensitive) or numeric unique id. Deleted accounts are returned too
  // (check delete_time); when a deleted and a live account share an email, the email finds
  // the live one. A key's account is FindServiceAccount(key.sa_unique_id).
  const ServiceAccountRecord* FindServiceAccount(std::string_view email_or_id) const;
  const KeyRecord* FindKey(std::string_view key_id) const;
  std::vector<const KeyRecord*> KeysOf(std::string_view sa_email) const;
  const UserRecord* FindUser(std::string_view email) const;
  const GroupRecord* FindGroup(std::string_view email) const;
  const TrustedIssuerRecord* FindIssuer(std::string_view issuer) const;

  const Inputs& inputs() const { return inputs_; }
  int64_t revision() const { return inputs_.revision; }

 private:
  Inputs inputs_;
  std::unordered_map<std::string, size_t> sa_by_email_, sa_by_id_, key_by_id_, user_by_email_,
      group_by_email_, issuer_by_iss_;
  std::unordered_map<std::string, std::vector<size_t>> keys_by_sa_;
};

}  // namespace moat::identity
