#include "cli/token_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cerrno>
#include <cstring>
#include <vector>

#include "cli/config.h"
#include "common/base64.h"
#include "common/json.h"

namespace moat::cli {
namespace {

namespace js = boost::json;

constexpr int kFormatVersion = 1;

// Reads the cache file only when it is a private regular file; anything else is ignored.
std::optional<std::string> ReadPrivate(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return std::nullopt;
  struct stat st;
  bool ok = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077) == 0 &&
            st.st_uid == ::geteuid() && st.st_size <= (4 << 20);
  ::close(fd);
  if (!ok) return std::nullopt;
  auto text = ReadFile(path);
  if (!text) return std::nullopt;
  return *text;
}

}  // namespace

std::optional<int64_t> JwtExpiry(std::string_view token) {
  size_t a = token.find('.');
  if (a == std::string_view::npos) return std::nullopt;
  size_t b = token.find('.', a + 1);
  if (b == std::string_view::npos) return std::nullopt;
  auto payload = Base64UrlDecode(token.substr(a + 1, b - a - 1));
  if (!payload) return std::nullopt;
  auto claims = json::ParseObject(*payload, "token");
  if (!claims) return std::nullopt;
  auto exp = json::OptInt(*claims, "exp");
  if (!exp || !*exp) return std::nullopt;
  return **exp;
}

std::string TokenCache::Serialize(const Key& key) {
  // A JSON array: unambiguous whatever characters the parts hold.
  return json::Serialize(js::array{key.account, key.credential_id, key.impersonated, key.endpoint,
                                   key.kind, key.audience});
}

TokenCache TokenCache::Load(const std::string& dir) {
  TokenCache cache;
  cache.path_ = dir + "/" + std::string(kTokenCacheFile);
  auto text = ReadPrivate(cache.path_);
  if (!text) return cache;
  auto doc = json::ParseObject(*text, "token cache");
  if (!doc) return cache;
  auto version = json::OptInt(*doc, "version");
  if (!version || *version != kFormatVersion) return cache;
  auto tokens = json::OptObject(*doc, "tokens");
  if (!tokens || *tokens == nullptr) return cache;
  for (const auto& kv : **tokens) {
    if (!kv.value().is_object()) continue;
    const js::object& e = kv.value().as_object();
    auto account = json::OptString(e, "account");
    auto token = json::OptString(e, "token");
    auto expiry = json::OptInt(e, "expiry");
    if (!account || !*account || !token || !*token || (*token)->empty() || !expiry || !*expiry) {
      continue;  // one bad entry does not spoil the rest
    }
    cache.entries_[std::string(kv.key())] = Entry{**account, **token, **expiry};
  }
  return cache;
}

std::optional<std::string> TokenCache::Get(const Key& key, int64_t now) const {
  auto it = entries_.find(Serialize(key));
  if (it == entries_.end() || it->second.expiry - kTokenReuseMargin <= now) return std::nullopt;
  return it->second.token;
}

void TokenCache::Put(const Key& key, std::string token, int64_t expiry, int64_t now) {
  std::string k = Serialize(key);
  if (expiry - kTokenReuseMargin <= now || token.empty()) {
    entries_.erase(k);
    return;
  }
  entries_[k] = Entry{key.account, std::move(token), expiry};
}

void TokenCache::Erase(const Key& key) { entries_.erase(Serialize(key)); }

void TokenCache::EraseAccount(std::string_view account) {
  std::erase_if(entries_, [&](const auto& kv) { return kv.second.account == account; });
}

void TokenCache::Clear() { entries_.clear(); }

Status TokenCache::Save(int64_t now) const {
  std::vector<std::pair<const std::string*, const Entry*>> live;
  for (const auto& [k, e] : entries_) {
    if (e.expiry - kTokenReuseMargin > now) live.emplace_back(&k, &e);
  }
  if (live.size() > kMaxCachedTokens) {
    std::sort(live.begin(), live.end(),
              [](const auto& a, const auto& b) { return a.second->expiry > b.second->expiry; });
    live.resize(kMaxCachedTokens);
  }
  if (live.empty()) {
    if (::unlink(path_.c_str()) != 0 && errno != ENOENT) {
      return FailedPrecondition("cannot remove `" + path_ + "`: " + std::strerror(errno));
    }
    return Ok();
  }
  js::object tokens;
  for (const auto& [k, e] : live) {
    tokens[*k] = js::object{{"account", e->account}, {"token", e->token}, {"expiry", e->expiry}};
  }
  js::object doc{{"version", kFormatVersion}, {"tokens", std::move(tokens)}};
  return WritePrivateFile(path_, json::Serialize(doc));
}

Status TokenCache::Remove(const std::string& dir) {
  std::string path = dir + "/" + std::string(kTokenCacheFile);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return FailedPrecondition("cannot remove `" + path + "`: " + std::strerror(errno));
  }
  return Ok();
}

}  // namespace moat::cli
