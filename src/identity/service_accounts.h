// The store-side lifecycle of service accounts and their user-managed keys, with Google's
// IAM v1 semantics (GOOGLE.md §6, §12). No HTTP and no authorization: the API layer checks the
// caller's permissions, then calls these and maps the Error codes to Google's error envelope.
//
// Every operation runs in ONE store transaction, so a crash never leaves half an operation
// (e.g. an account deleted but its policy members not yet rewritten). Slow work (RSA key
// generation) happens before the write transaction opens; the transaction re-checks what it
// depends on.
//
// Storage layout:
//   - a live account: kServiceAccounts key "projects/P/serviceAccounts/EMAIL", parent
//     "projects/P"; the project is recorded in kProjects ("projects/P") on first use;
//   - a deleted account (restorable for 30 days): key "projects/P/serviceAccounts/UNIQUE_ID",
//     parent "deleted/projects/P", with deleteTime set; its own IAM policy moves with it the
//     same way (kPolicies "projects/P/serviceAccounts/UNIQUE_ID"), so a new account created
//     with the same email never inherits it;
//   - keys: kSaKeys key "projects/P/serviceAccounts/EMAIL/keys/KEY_ID", parent the account's
//     email name. Keys carry the account's uniqueId: a key belongs to an account only if the
//     uniqueIds match (keys of a deleted account stay, so the Directory can refuse them; they
//     are never shown under a re-created account of the same email).
// Verifiers must therefore look an account up by the key's sa_unique_id and refuse it when
// delete_time is set or it is disabled.
//
// Names accepted: "projects/P/serviceAccounts/EMAIL_OR_UNIQUE_ID", P may be the `-` wildcard
// (a missing account through the wildcard is kPermissionDenied, GOOGLE.md §3.4 quirk; with a
// project it is kNotFound). Key names append "/keys/KEY_ID".
//
// Every mutation takes an optional CommitHook (commit_hook.h): the API puts its audit entry in
// the mutation's own transaction through it.
//
// Thread-safety: an object may be used from any number of threads (the store serializes).
#pragma once

#include <boost/json/object.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/error.h"
#include "identity/commit_hook.h"
#include "identity/directory.h"

namespace moat::store {
class Store;
}

namespace moat::identity {

// Undelete window and purge age.
inline constexpr std::chrono::hours kUndeleteWindow{30 * 24};
// User-managed keys per service account (GOOGLE.md §6.2).
inline constexpr int kMaxKeysPerServiceAccount = 10;
// The kSettings document holding the maximum key age: {"hours": N}.
inline constexpr std::string_view kKeyExpirySetting = "iam.serviceAccountKeyExpiryHours";
inline constexpr int kMaxKeyExpiryHours = 2160;  // 90 days

// What goes into generated key files. token_uri and the x509 URL point at Moat, so Google's
// client libraries send their JWT-bearer assertions to Moat's token endpoint.
struct KeyFileOptions {
  std::string token_uri = "http://127.0.0.1:8081/token";
  // Moat's API origin (scheme://host:port, no trailing slash): client_x509_cert_url is
  // ORIGIN/robot/v1/metadata/x509/EMAIL (email URL-encoded), auth_provider_x509_cert_url is
  // ORIGIN/oauth2/v1/certs.
  std::string api_origin = "http://127.0.0.1:8081";
  std::string auth_uri = "https://accounts.google.com/o/oauth2/auth";
  std::string universe_domain = "googleapis.com";
};

struct ServiceAccountPage {
  std::vector<ServiceAccountRecord> accounts;  // ordered by email
  std::string next_page_token;                 // "" on the last page
};

struct CreatedKey {
  KeyRecord key;
  std::string project_id;
  // The Google JSON key file (GOOGLE.md §6.3), with the PKCS#8 private key. SECRET: returned
  // once to the caller, never stored, never logged.
  std::string key_file_json;
};

// keys.create's response body: the key JSON plus privateKeyType TYPE_GOOGLE_CREDENTIALS_FILE
// and privateKeyData = base64(key file).
boost::json::object CreatedKeyToJson(const CreatedKey& created);

class ServiceAccounts {
 public:
  // `store` and `clock` must outlive this object.
  ServiceAccounts(store::Store& store, const Clock& clock, KeyFileOptions options = {});

  // --- accounts --------------------------------------------------------------------------
  // accountId: 6-30 characters of `[a-z]([-a-z0-9]*[a-z0-9])` (kInvalidArgument with
  // Google's wording); displayName ≤ 100 bytes, description ≤ 256 bytes. Errors:
  // kAlreadyExists "Service account ID already exists within project projects/P." (Google's).
  Result<ServiceAccountRecord> Create(std::string_view project_id, std::string_view account_id,
                                      std::string_view display_name, std::string_view description,
                                      CommitHook<ServiceAccountRecord>* hook = nullptr);
  // A live (not deleted) account. kNotFound / kPermissionDenied (wildcard) when absent.
  Result<ServiceAccountRecord> Get(std::string_view name);
  // Live accounts of a project ordered by email; page_size <= 0 → 20, clamped to 100.
  // kInvalidArgument for the `-` wildcard or a bad page token.
  Result<ServiceAccountPage> List(std::string_view project_id, int page_size = 0,
                                  std::string_view page_token = "");
  // update_mask: comma-separated "displayName" / "description" (snake_case accepted);
  // empty or unknown paths are kInvalidArgument.
  Result<ServiceAccountRecord> Patch(std::string_view name, std::string_view display_name,
                                     std::string_view description, std::string_view update_mask,
                                     CommitHook<ServiceAccountRecord>* hook = nullptr);
  Status Disable(std::string_view name,
                 CommitHook<ServiceAccountRecord>* hook = nullptr);  // idempotent
  Status Enable(std::string_view name,
                CommitHook<ServiceAccountRecord>* hook = nullptr);  // idempotent
  // Marks the account deleted and, in the same transaction, rewrites every policy member
  // `serviceAccount:EMAIL` into `deleted:serviceAccount:EMAIL?uid=UNIQUE_ID`.
  Status Delete(std::string_view name, CommitHook<ServiceAccountRecord>* hook = nullptr);
  // `name` is "projects/P/serviceAccounts/UNIQUE_ID" (P may be `-`); an email also works
  // while no live account holds it. Restores the account and reverts the policy members.
  // Errors: kNotFound (unknown, or deleted more than 30 days ago), kFailedPrecondition (a
  // live account now holds the email). A live account is returned unchanged.
  Result<ServiceAccountRecord> Undelete(std::string_view name,
                                        CommitHook<ServiceAccountRecord>* hook = nullptr);
  // Permanently removes accounts deleted at least 30 days before now, their keys and their
  // policy. Returns how many accounts were removed.
  Result<int> PurgeDeleted();

  // --- keys ------------------------------------------------------------------------------
  // key_algorithm: "", KEY_ALG_UNSPECIFIED or KEY_ALG_RSA_2048; private_key_type: "",
  // TYPE_UNSPECIFIED or TYPE_GOOGLE_CREDENTIALS_FILE (PKCS#12 is kInvalidArgument). Errors:
  // kFailedPrecondition when the account is disabled or already has 10 keys.
  Result<CreatedKey> CreateKey(std::string_view sa_name, std::string_view key_algorithm = "",
                               std::string_view private_key_type = "",
                               CommitHook<KeyRecord>* hook = nullptr);
  // public_key_data: base64 of a PEM X.509 certificate holding an RSA-2048 key. The key's
  // validity is the certificate's, capped by the maximum key age. Errors: kInvalidArgument
  // (bad base64/certificate/key, expired), kAlreadyExists (same key already registered),
  // kFailedPrecondition (disabled account, 10 keys).
  Result<KeyRecord> UploadKey(std::string_view sa_name, std::string_view public_key_data,
                              CommitHook<KeyRecord>* hook = nullptr);
  // key_types: empty = all; "USER_MANAGED" / "SYSTEM_MANAGED"; KEY_TYPE_UNSPECIFIED or anything
  // else is kInvalidArgument. Returns the user-managed keys only (none when only SYSTEM_MANAGED
  // is asked for): system-managed keys are identity::SystemManagedKeys', which the API lists.
  Result<std::vector<KeyRecord>> ListKeys(std::string_view sa_name,
                                          const std::vector<std::string>& key_types = {});
  Result<KeyRecord> GetKey(std::string_view key_name);
  Status DeleteKey(std::string_view key_name, CommitHook<KeyRecord>* hook = nullptr);
  Status DisableKey(std::string_view key_name,
                    CommitHook<KeyRecord>* hook = nullptr);  // idempotent
  Status EnableKey(std::string_view key_name,
                   CommitHook<KeyRecord>* hook = nullptr);  // idempotent

  // --- maximum key age (iam.serviceAccountKeyExpiryHours) --------------------------------
  Result<std::optional<int>> GetKeyExpiryHours();
  // 1..2160 hours, or nullopt to unset. Applies to keys created or uploaded afterwards.
  Status SetKeyExpiryHours(std::optional<int> hours);

 private:
  Result<KeyRecord> StoreNewKey(std::string_view sa_name, const std::string& expected_unique_id,
                                KeyRecord key, std::string* project_id,
                                CommitHook<KeyRecord>* hook);
  Status SetDisabled(std::string_view name, bool disabled, CommitHook<ServiceAccountRecord>* hook);
  Status SetKeyDisabled(std::string_view key_name, bool disabled, CommitHook<KeyRecord>* hook);

  store::Store& store_;
  const Clock& clock_;
  KeyFileOptions options_;
};

}  // namespace moat::identity
