// The CLI's token cache (like gcloud's access_tokens.db): access tokens for Moat's API and ID
// tokens per audience, per account, kept in DIR/access_tokens.json (mode 0600, DIR 0700) so
// consecutive `moat` invocations do not mint a token each.
//
// A cached token is handed out only while it has more than kTokenReuseMargin (5 min) left
// before `expiry`. Entries are keyed by TokenCache::Key (account, the key that signs for it,
// impersonated account, API endpoint, kind and audience), so switching endpoint, key or
// impersonation never reuses a token minted for another.
//
// Untrusted input: the file is local but may be stale, truncated or hand-edited. A cache that
// is unreadable, malformed, not a regular file or readable by other users is ignored (and
// replaced on the next Save()); it is never fatal. Save() errors are reported to the caller,
// which treats them as warnings.
//
// Thread-safety: none; one CLI invocation owns one TokenCache.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"

namespace moat::cli {

inline constexpr int64_t kTokenReuseMargin = 300;  // seconds
inline constexpr size_t kMaxCachedTokens = 256;
inline constexpr std::string_view kTokenCacheFile = "access_tokens.json";

class TokenCache {
 public:
  struct Key {
    std::string account;        // the base identity (credentials entry)
    std::string credential_id;  // service account: private_key_id; user: ""
    std::string impersonated;   // "" when acting as `account` itself
    std::string endpoint;       // API origin the token is for / came from
    std::string kind;           // "access" or "id"
    std::string audience;       // ID tokens: the audience; else ""
  };

  // Reads DIR/access_tokens.json; a missing or unusable file gives an empty cache.
  static TokenCache Load(const std::string& dir);

  // The cached token for `key` if it is valid for more than kTokenReuseMargin after `now`.
  std::optional<std::string> Get(const Key& key, int64_t now) const;
  // Remembers `token` until `expiry` (unix seconds). Tokens that would never be reusable
  // (expiry <= now + margin) are not stored.
  void Put(const Key& key, std::string token, int64_t expiry, int64_t now);
  // Forgets one entry (e.g. a token the server refused).
  void Erase(const Key& key);
  // Forgets every token minted for `account` (as itself or impersonating someone).
  void EraseAccount(std::string_view account);
  void Clear();
  size_t size() const { return entries_.size(); }

  // Writes the cache atomically with mode 0600, leaving out expired entries and keeping at
  // most kMaxCachedTokens (the longest-lived). Removes the file when the cache is empty.
  Status Save(int64_t now) const;

  // Deletes DIR/access_tokens.json if present.
  static Status Remove(const std::string& dir);

 private:
  struct Entry {
    std::string account;
    std::string token;
    int64_t expiry = 0;
  };
  static std::string Serialize(const Key& key);

  std::string path_;
  std::map<std::string, Entry> entries_;
};

// The `exp` claim of a compact JWS, or nullopt when `token` is not a readable JWT.
std::optional<int64_t> JwtExpiry(std::string_view token);

}  // namespace moat::cli
