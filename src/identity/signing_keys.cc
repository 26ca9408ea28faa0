#include "identity/signing_keys.h"

#include <algorithm>
#include <boost/json.hpp>

#include "common/base64.h"
#include "common/json.h"
#include "common/log.h"
#include "common/time.h"
#include "crypto/aead.h"
#include "crypto/jwk.h"
#include "crypto/x509.h"
#include "store/store.h"

namespace moat::identity {
namespace {

using store::Collection;
constexpr std::string_view kKeyPrefix = "moat/";

Result<TimePoint> GetTime(const boost::json::object& o, std::string_view field) {
  MOAT_TRY(auto s, json::OptString(o, field));
  if (!s) return InvalidArgument("signing key field `" + std::string(field) + "` is missing");
  auto t = ParseRfc3339(*s);
  if (!t) return InvalidArgument("signing key field `" + std::string(field) + "` is not a time");
  return *t;
}

Result<std::string> GetString(const boost::json::object& o, std::string_view field) {
  MOAT_TRY(auto s, json::OptString(o, field));
  if (!s) return InvalidArgument("signing key field `" + std::string(field) + "` is missing");
  return *s;
}

}  // namespace

std::string SigningKeyStoreKey(std::string_view kid) {
  return std::string(kKeyPrefix) + std::string(kid);
}

std::string SerializeStoredSigningKey(const StoredSigningKey& k) {
  boost::json::object o;
  o["kid"] = k.kid;
  o["alg"] = "RS256";
  o["public_key_pem"] = k.public_key_pem;
  o["cert_pem"] = k.cert_pem;
  o["encrypted_private_key"] = k.encrypted_private_key;
  o["publish_time"] = FormatRfc3339(k.publish_time);
  o["sign_start"] = FormatRfc3339(k.sign_start);
  o["sign_end"] = FormatRfc3339(k.sign_end);
  o["retire_time"] = FormatRfc3339(k.retire_time);
  return json::Serialize(o);
}

Result<StoredSigningKey> ParseStoredSigningKey(std::string_view text) {
  MOAT_TRY(auto o, json::ParseObject(text, "signing key"));
  StoredSigningKey k;
  MOAT_TRY(k.kid, GetString(o, "kid"));
  MOAT_TRY(k.public_key_pem, GetString(o, "public_key_pem"));
  MOAT_TRY(k.cert_pem, GetString(o, "cert_pem"));
  MOAT_TRY(k.encrypted_private_key, GetString(o, "encrypted_private_key"));
  MOAT_TRY(k.publish_time, GetTime(o, "publish_time"));
  MOAT_TRY(k.sign_start, GetTime(o, "sign_start"));
  MOAT_TRY(k.sign_end, GetTime(o, "sign_end"));
  MOAT_TRY(k.retire_time, GetTime(o, "retire_time"));
  return k;
}

Result<std::string> SealPrivateKey(std::string_view master_key, const crypto::PrivateKey& key,
                                   std::string_view aad) {
  MOAT_TRY(auto sealed, crypto::AeadSeal(master_key, key.ToPkcs8Der(), aad));
  return Base64Encode(sealed);
}

Result<crypto::PrivateKey> OpenPrivateKey(std::string_view master_key, std::string_view sealed_b64,
                                          std::string_view aad) {
  auto sealed = Base64Decode(sealed_b64);
  if (!sealed) return MakeError(Code::kDataLoss, "sealed private key is not valid base64");
  MOAT_TRY(auto der, crypto::AeadOpen(master_key, *sealed, aad));
  auto key = crypto::PrivateKey::FromPkcs8Der(der);
  if (!key) return MakeError(Code::kDataLoss, "sealed private key does not hold a valid key");
  return std::move(*key);
}

const SigningKey* SigningKeySet::Find(std::string_view kid) const {
  for (const auto& k : keys) {
    if (k->kid == kid) return k.get();
  }
  return nullptr;
}

std::shared_ptr<const SigningKey> SigningKeySet::SignerAt(TimePoint now) const {
  std::shared_ptr<const SigningKey> best;
  for (const auto& k : keys) {
    if (k->sign_start <= now && now < k->sign_end && k->private_key) {
      if (!best || k->sign_start > best->sign_start) best = k;
    }
  }
  return best;
}

SigningKeyManager::SigningKeyManager(store::Store& store, std::string master_key,
                                     const Clock& clock, SigningKeyOptions options)
    : store_(store),
      master_key_(std::move(master_key)),
      clock_(clock),
      options_(options),
      snapshot_(std::make_shared<const SigningKeySet>()) {}

TimePoint SigningKeyManager::RetireTime(TimePoint sign_end) const {
  return sign_end + options_.max_token_lifetime + options_.jwks_max_age + options_.skew;
}

std::string SigningKeyManager::CacheControl() const {
  return "public, max-age=" + std::to_string(options_.jwks_max_age.count()) +
         ", must-revalidate, no-transform";
}

Result<StoredSigningKey> SigningKeyManager::NewKey(TimePoint publish, TimePoint sign_start,
                                                   TimePoint sign_end) {
  MOAT_TRY(auto priv, crypto::PrivateKey::GenerateRsa(options_.rsa_bits));
  crypto::PublicKey pub = priv.Public();
  StoredSigningKey k;
  k.kid = crypto::KeyId(pub);
  k.public_key_pem = pub.ToSpkiPem();
  k.publish_time = publish;
  k.sign_start = sign_start;
  k.sign_end = sign_end;
  k.retire_time = RetireTime(sign_end);
  MOAT_TRY(k.cert_pem, crypto::CreateSelfSignedCertificate(priv, "moat-oidc-signing-key",
                                                           publish - options_.skew,
                                                           k.retire_time + options_.skew));
  MOAT_TRY(k.encrypted_private_key, SealPrivateKey(master_key_, priv, k.kid));
  return k;
}

Status SigningKeyManager::Rotate() {
  const TimePoint now = clock_.Now();
  MOAT_TRY(auto txn, store_.Begin());
  std::vector<StoredSigningKey> keys;
  std::vector<bool> dirty;
  std::string page_token;
  do {
    store::ListOptions lo;
    lo.page_token = page_token;
    lo.page_size = store::kMaxPageSize;
    MOAT_TRY(auto page, txn->List(Collection::kSigningKeys, lo));
    for (const auto& doc : page.documents) {
      if (!doc.key.starts_with(kKeyPrefix)) continue;
      auto parsed = ParseStoredSigningKey(doc.data);
      if (!parsed) {
        return MakeError(Code::kDataLoss, "stored signing key `" + doc.key +
                                              "` is corrupt: " + parsed.error().message);
      }
      if (parsed->retire_time <= now) {
        MOAT_TRY(auto deleted, txn->Delete(Collection::kSigningKeys, doc.key));
        (void)deleted;
        continue;
      }
      keys.push_back(std::move(*parsed));
      dirty.push_back(false);
    }
    page_token = page.next_page_token;
  } while (!page_token.empty());

  // The current signer: the latest key whose signing window contains now.
  auto find_current = [&]() -> int {
    int best = -1;
    for (size_t i = 0; i < keys.size(); ++i) {
      if (keys[i].sign_start <= now && now < keys[i].sign_end &&
          (best < 0 || keys[i].sign_start > keys[best].sign_start)) {
        best = static_cast<int>(i);
      }
    }
    return best;
  };
  int cur = find_current();
  if (cur < 0) {
    // No key signs now. Prefer extending the most recent published key (verifiers already
    // have it) over a key nobody has seen; only a fresh install signs with a brand-new key.
    int last = -1;
    for (size_t i = 0; i < keys.size(); ++i) {
      if (last < 0 || keys[i].sign_end > keys[last].sign_end) last = static_cast<int>(i);
    }
    if (last >= 0) {
      auto& k = keys[last];
      k.sign_start = std::min(k.sign_start, now);
      k.sign_end = std::max(k.sign_end, now + Seconds(1));
      k.retire_time = RetireTime(k.sign_end);
      dirty[last] = true;
      cur = last;
      log::Warn("signing key schedule lapsed; extending the last published key", {{"kid", k.kid}});
    } else {
      MOAT_TRY(auto k, NewKey(now, now, now + options_.sign_period));
      keys.push_back(std::move(k));
      dirty.push_back(true);
      cur = static_cast<int>(keys.size()) - 1;
    }
  }
  // The successor: any key starting at or after the current key's end.
  bool has_successor = false;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (static_cast<int>(i) != cur && keys[i].sign_start >= keys[cur].sign_end) {
      has_successor = true;
    }
  }
  if (!has_successor) {
    // INVARIANT: a key is published at least jwks_max_age + skew before it signs.
    TimePoint start = std::max(keys[cur].sign_end, now + options_.jwks_max_age + options_.skew);
    if (start > keys[cur].sign_end) {
      keys[cur].sign_end = start;  // keep signing with the published key until then
      keys[cur].retire_time = RetireTime(start);
      dirty[cur] = true;
    }
    MOAT_TRY(auto k, NewKey(now, start, start + options_.sign_period));
    keys.push_back(std::move(k));
    dirty.push_back(true);
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    if (!dirty[i]) continue;
    MOAT_TRY(auto doc, txn->Put(Collection::kSigningKeys, SigningKeyStoreKey(keys[i].kid),
                                SerializeStoredSigningKey(keys[i])));
    (void)doc;
  }
  MOAT_TRY(auto rev, txn->Commit());
  (void)rev;
  return Reload();
}

Status SigningKeyManager::Reload() {
  std::lock_guard<std::mutex> lock(reload_mu_);
  auto previous = snapshot_.load();
  MOAT_TRY(auto txn, store_.BeginRead());
  MOAT_TRY(auto revision, store_.CurrentRevision());
  auto set = std::make_shared<SigningKeySet>();
  set->store_revision = revision;
  std::string page_token;
  do {
    store::ListOptions lo;
    lo.page_token = page_token;
    lo.page_size = store::kMaxPageSize;
    MOAT_TRY(auto page, txn->List(Collection::kSigningKeys, lo));
    for (const auto& doc : page.documents) {
      if (!doc.key.starts_with(kKeyPrefix)) continue;
      auto stored = ParseStoredSigningKey(doc.data);
      if (!stored) {
        return MakeError(Code::kDataLoss, "stored signing key `" + doc.key +
                                              "` is corrupt: " + stored.error().message);
      }
      auto key = std::make_shared<SigningKey>();
      key->kid = stored->kid;
      key->public_key_pem = stored->public_key_pem;
      key->cert_pem = stored->cert_pem;
      key->publish_time = stored->publish_time;
      key->sign_start = stored->sign_start;
      key->sign_end = stored->sign_end;
      key->retire_time = stored->retire_time;
      key->max_token_exp = stored->sign_end + options_.max_token_lifetime;
      // Reuse the decrypted key of the previous snapshot when nothing changed.
      const SigningKey* old = previous->Find(stored->kid);
      if (old != nullptr && old->public_key_pem == stored->public_key_pem && old->private_key) {
        key->public_key = old->public_key;
        key->private_key = old->private_key;
      } else {
        auto pub = crypto::PublicKey::FromSpkiPem(stored->public_key_pem);
        if (!pub || crypto::KeyId(*pub) != stored->kid) {
          return MakeError(Code::kDataLoss,
                           "stored signing key `" + stored->kid + "` has an invalid public key");
        }
        auto priv = OpenPrivateKey(master_key_, stored->encrypted_private_key, stored->kid);
        if (!priv) {
          return MakeError(Code::kDataLoss, "signing key `" + stored->kid +
                                                "` cannot be decrypted (tampered, or sealed "
                                                "under another master key)");
        }
        if (!priv->Public().Equals(*pub)) {
          return MakeError(Code::kDataLoss,
                           "signing key `" + stored->kid + "` does not match its public key");
        }
        key->public_key = crypto::Share(std::move(*pub));
        key->private_key = std::make_shared<const crypto::PrivateKey>(std::move(*priv));
      }
      set->keys.push_back(std::move(key));
    }
    page_token = page.next_page_token;
  } while (!page_token.empty());
  std::sort(set->keys.begin(), set->keys.end(),
            [](const auto& a, const auto& b) { return a->sign_start < b->sign_start; });
  std::vector<boost::json::object> jwks;
  boost::json::object certs;
  for (const auto& k : set->keys) {
    jwks.push_back(crypto::PublicJwk(*k->public_key, k->kid));
    certs[k->kid] = k->cert_pem;
  }
  set->jwks_json = crypto::SerializeJwks(jwks);
  set->certs_json = json::Serialize(certs);
  snapshot_.store(std::move(set));
  return Ok();
}

Result<std::shared_ptr<const SigningKey>> SigningKeyManager::Signer() const {
  auto key = Snapshot()->SignerAt(clock_.Now());
  if (!key) return Unavailable("no token signing key is active; key rotation has not run");
  return key;
}

}  // namespace moat::identity
