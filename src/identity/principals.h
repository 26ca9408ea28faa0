// The store-side lifecycle of the built-in directory's users and groups and of trusted
// external OIDC issuers. No HTTP and no authorization (the API layer does both).
//
// Storage: kUsers key = email, kGroups key = email, kTrustedIssuers key = id; documents as in
// records.h. Emails are lowercased. Each operation is ONE store transaction; password hashing
// (Argon2id, ~50 ms and 64 MiB per call) runs outside the write transaction. Create, Delete
// and the member operations take an optional CommitHook (commit_hook.h) through which the API
// adds its audit entry to the same transaction.
//
// Thread-safety: objects may be used from any number of threads.
#pragma once

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

inline constexpr size_t kMinPasswordLength = 8;
inline constexpr size_t kMaxPasswordLength = 1024;

// libsodium crypto_pwhash_str (Argon2id, OPSLIMIT/MEMLIMIT_INTERACTIVE). The result embeds
// its salt and parameters and never contains the password. Errors: kInvalidArgument (length
// outside 8..1024 bytes), kInternal (out of memory).
Result<std::string> HashPassword(std::string_view password);
// True iff `password` matches `hash` (constant time in the password; false for a malformed
// hash).
bool CheckPassword(std::string_view hash, std::string_view password);

struct UserPage {
  std::vector<UserRecord> users;
  std::string next_page_token;
};

class Users {
 public:
  Users(store::Store& store, const Clock& clock);

  // Errors: kInvalidArgument (email, password shorter than 8 characters, displayName over 100
  // bytes), kAlreadyExists.
  Result<UserRecord> Create(std::string_view email, std::string_view password,
                            std::string_view display_name, CommitHook<UserRecord>* hook = nullptr);
  Result<UserRecord> Get(std::string_view email);  // kNotFound
  // Ordered by email; page_size <= 0 → 50, clamped to 1000.
  Result<UserPage> List(int page_size = 0, std::string_view page_token = "");
  // The user if the password is right. Unknown user and wrong password both answer
  // kUnauthenticated "invalid email or password" after the same amount of hashing work; a
  // disabled user with the right password is kPermissionDenied.
  Result<UserRecord> VerifyPassword(std::string_view email, std::string_view password);
  Status SetPassword(std::string_view email, std::string_view password);
  Status Disable(std::string_view email);                                         // idempotent
  Status Enable(std::string_view email);                                          // idempotent
  Status Delete(std::string_view email, CommitHook<UserRecord>* hook = nullptr);  // kNotFound

 private:
  Status SetDisabled(std::string_view email, bool disabled);
  store::Store& store_;
  const Clock& clock_;
};

struct GroupPage {
  std::vector<GroupRecord> groups;
  std::string next_page_token;
};

class Groups {
 public:
  explicit Groups(store::Store& store);

  // members: each "user:EMAIL", "serviceAccount:EMAIL" or "group:EMAIL" (emails lowercased,
  // duplicates folded). displayName ≤ 100 bytes, description ≤ 256 bytes. Errors:
  // kInvalidArgument, kAlreadyExists.
  Result<GroupRecord> Create(std::string_view email, std::string_view display_name,
                             std::string_view description,
                             const std::vector<std::string>& members = {},
                             CommitHook<GroupRecord>* hook = nullptr);
  Result<GroupRecord> Get(std::string_view email);  // kNotFound
  Result<GroupPage> List(int page_size = 0, std::string_view page_token = "");
  Status Delete(std::string_view email, CommitHook<GroupRecord>* hook = nullptr);  // kNotFound
  // Idempotent (with a hook, an existing member still commits the hook's writes). Nesting is
  // allowed, cycles included (the IAM evaluator is cycle-safe).
  Result<GroupRecord> AddMember(std::string_view group_email, std::string_view member,
                                CommitHook<GroupRecord>* hook = nullptr);
  // kNotFound when the member is not in the group.
  Result<GroupRecord> RemoveMember(std::string_view group_email, std::string_view member,
                                   CommitHook<GroupRecord>* hook = nullptr);

 private:
  store::Store& store_;
};

// Checks and normalizes a group member ("user:"/"serviceAccount:"/"group:" + email, email
// lowercased). kInvalidArgument otherwise.
Result<std::string> NormalizeGroupMember(std::string_view member);

class TrustedIssuers {
 public:
  explicit TrustedIssuers(store::Store& store);

  // id: 1-63 characters of [a-z0-9-] starting with a letter. issuer and jwks_uri: absolute
  // https:// URLs without query or fragment (http:// only for localhost, 127.0.0.1 or [::1],
  // for tests). audiences: non-empty strings, duplicates folded. Errors: kInvalidArgument,
  // kAlreadyExists (same id, or another record with the same issuer).
  Result<TrustedIssuerRecord> Create(std::string_view id, std::string_view issuer,
                                     std::string_view jwks_uri,
                                     const std::vector<std::string>& audiences,
                                     CommitHook<TrustedIssuerRecord>* hook = nullptr);
  Result<TrustedIssuerRecord> Get(std::string_view id);  // kNotFound
  Result<std::vector<TrustedIssuerRecord>> List();
  // kNotFound
  Status Delete(std::string_view id, CommitHook<TrustedIssuerRecord>* hook = nullptr);

 private:
  store::Store& store_;
};

}  // namespace moat::identity
