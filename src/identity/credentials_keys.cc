#include "identity/credentials_keys.h"

#include <boost/json.hpp>

#include "common/json.h"
#include "common/time.h"
#include "crypto/jwk.h"
#include "crypto/x509.h"
#include "identity/signing_keys.h"
#include "store/store.h"

namespace moat::identity {
namespace {

using store::Collection;
constexpr std::string_view kPrefix = "sa/";

std::string StoreKey(std::string_view unique_id, std::string_view kid) {
  return std::string(kPrefix) + std::string(unique_id) + "/" + std::string(kid);
}

struct Stored {
  std::string kid, sa_email, sa_unique_id, public_key_pem, cert_pem, encrypted_private_key;
  TimePoint valid_after{}, valid_before{}, retire_time{};
};

std::string Serialize(const Stored& s) {
  boost::json::object o;
  o["kid"] = s.kid;
  o["sa_email"] = s.sa_email;
  o["sa_unique_id"] = s.sa_unique_id;
  o["public_key_pem"] = s.public_key_pem;
  o["cert_pem"] = s.cert_pem;
  o["encrypted_private_key"] = s.encrypted_private_key;
  o["valid_after"] = FormatRfc3339(s.valid_after);
  o["valid_before"] = FormatRfc3339(s.valid_before);
  o["retire_time"] = FormatRfc3339(s.retire_time);
  return json::Serialize(o);
}

Result<Stored> Parse(std::string_view text) {
  MOAT_TRY(auto o, json::ParseObject(text, "system-managed key"));
  Stored s;
  auto str = [&](std::string_view f, std::string* out) -> Status {
    MOAT_TRY(auto v, json::OptString(o, f));
    if (!v) return InvalidArgument("system-managed key field `" + std::string(f) + "` is missing");
    *out = *v;
    return Ok();
  };
  auto time = [&](std::string_view f, TimePoint* out) -> Status {
    std::string v;
    MOAT_CHECK_OK(str(f, &v));
    auto t = ParseRfc3339(v);
    if (!t)
      return InvalidArgument("system-managed key field `" + std::string(f) + "` is not a time");
    *out = *t;
    return Ok();
  };
  MOAT_CHECK_OK(str("kid", &s.kid));
  MOAT_CHECK_OK(str("sa_email", &s.sa_email));
  MOAT_CHECK_OK(str("sa_unique_id", &s.sa_unique_id));
  MOAT_CHECK_OK(str("public_key_pem", &s.public_key_pem));
  MOAT_CHECK_OK(str("cert_pem", &s.cert_pem));
  MOAT_CHECK_OK(str("encrypted_private_key", &s.encrypted_private_key));
  MOAT_CHECK_OK(time("valid_after", &s.valid_after));
  MOAT_CHECK_OK(time("valid_before", &s.valid_before));
  MOAT_CHECK_OK(time("retire_time", &s.retire_time));
  return s;
}

Result<std::vector<store::Document>> ListAll(store::Transaction& txn) {
  std::vector<store::Document> out;
  std::string token;
  do {
    store::ListOptions lo;
    lo.page_token = token;
    lo.page_size = store::kMaxPageSize;
    MOAT_TRY(auto page, txn.List(Collection::kSigningKeys, lo));
    for (auto& d : page.documents) {
      if (d.key.starts_with(kPrefix)) out.push_back(std::move(d));
    }
    token = page.next_page_token;
  } while (!token.empty());
  return out;
}

}  // namespace

SystemManagedKeys::SystemManagedKeys(store::Store& store, std::string master_key,
                                     const Clock& clock, std::chrono::seconds sign_period,
                                     std::chrono::seconds verify_grace)
    : store_(store),
      master_key_(std::move(master_key)),
      clock_(clock),
      sign_period_(sign_period),
      verify_grace_(verify_grace),
      snapshot_(std::make_shared<const SystemManagedKeySet>()) {}

Status SystemManagedKeys::Reload() {
  std::lock_guard<std::mutex> lock(mu_);
  return ReloadLocked();
}

Status SystemManagedKeys::ReloadLocked() {
  auto previous = snapshot_.load();
  MOAT_TRY(auto txn, store_.BeginRead());
  MOAT_TRY(auto docs, ListAll(*txn));
  auto set = std::make_shared<SystemManagedKeySet>();
  for (const auto& doc : docs) {
    auto s = Parse(doc.data);
    if (!s) return MakeError(Code::kDataLoss, "system-managed key `" + doc.key + "` is corrupt");
    auto key = std::make_shared<SystemManagedKey>();
    key->kid = s->kid;
    key->sa_email = s->sa_email;
    key->sa_unique_id = s->sa_unique_id;
    key->cert_pem = s->cert_pem;
    key->valid_after = s->valid_after;
    key->valid_before = s->valid_before;
    key->retire_time = s->retire_time;
    auto old = previous->by_kid.find(s->kid);
    if (old != previous->by_kid.end() && old->second->sa_unique_id == s->sa_unique_id) {
      key->public_key = old->second->public_key;
      key->private_key = old->second->private_key;
    } else {
      auto pub = crypto::PublicKey::FromSpkiPem(s->public_key_pem);
      if (!pub || crypto::KeyId(*pub) != s->kid) {
        return MakeError(Code::kDataLoss, "system-managed key `" + s->kid + "` is corrupt");
      }
      auto priv = OpenPrivateKey(master_key_, s->encrypted_private_key, doc.key);
      if (!priv || !priv->Public().Equals(*pub)) {
        return MakeError(Code::kDataLoss, "system-managed key `" + s->kid +
                                              "` cannot be decrypted (tampered, or sealed under "
                                              "another master key)");
      }
      key->public_key = crypto::Share(std::move(*pub));
      key->private_key = std::make_shared<const crypto::PrivateKey>(std::move(*priv));
    }
    set->by_unique_id[key->sa_unique_id].push_back(key);
    set->by_kid[key->kid] = std::move(key);
  }
  snapshot_.store(std::move(set));
  return Ok();
}

Result<std::shared_ptr<const SystemManagedKey>> SystemManagedKeys::ForSigning(
    const ServiceAccountRecord& sa) {
  auto pick = [&](const SystemManagedKeySet& set, TimePoint now) {
    std::shared_ptr<const SystemManagedKey> best;
    auto it = set.by_unique_id.find(sa.unique_id);
    if (it == set.by_unique_id.end()) return best;
    for (const auto& k : it->second) {
      if (k->valid_after <= now && now < k->valid_before &&
          (!best || k->valid_after > best->valid_after)) {
        best = k;
      }
    }
    return best;
  };
  if (auto k = pick(*snapshot_.load(), clock_.Now())) return k;
  std::lock_guard<std::mutex> lock(mu_);
  MOAT_CHECK_OK(ReloadLocked());  // another thread or replica may have created one
  const TimePoint now = clock_.Now();
  if (auto k = pick(*snapshot_.load(), now)) return k;

  MOAT_TRY(auto priv, crypto::PrivateKey::GenerateRsa2048());
  crypto::PublicKey pub = priv.Public();
  Stored s;
  s.kid = crypto::KeyId(pub);
  s.sa_email = sa.email;
  s.sa_unique_id = sa.unique_id;
  s.public_key_pem = pub.ToSpkiPem();
  s.valid_after = now;
  s.valid_before = now + sign_period_;
  s.retire_time = s.valid_before + verify_grace_;
  std::string cn = sa.unique_id;  // ≤ 64 characters, unlike some emails
  MOAT_TRY(s.cert_pem,
           crypto::CreateSelfSignedCertificate(priv, cn, now - Seconds(60), s.retire_time));
  const std::string key = StoreKey(sa.unique_id, s.kid);
  MOAT_TRY(s.encrypted_private_key, SealPrivateKey(master_key_, priv, key));
  {
    MOAT_TRY(auto txn, store_.Begin());
    store::PutOptions po;
    po.precondition = store::Precondition::MustNotExist();
    MOAT_TRY(auto doc, txn->Put(Collection::kSigningKeys, key, Serialize(s), po));
    (void)doc;
    MOAT_TRY(auto rev, txn->Commit());
    (void)rev;
  }
  MOAT_CHECK_OK(ReloadLocked());
  if (auto k = pick(*snapshot_.load(), now)) return k;
  return Internal("the new system-managed key could not be loaded");
}

Result<int> SystemManagedKeys::DeleteRetired() {
  std::lock_guard<std::mutex> lock(mu_);
  const TimePoint now = clock_.Now();
  int n = 0;
  {
    MOAT_TRY(auto txn, store_.Begin());
    MOAT_TRY(auto docs, ListAll(*txn));
    for (const auto& doc : docs) {
      auto s = Parse(doc.data);
      if (s && s->retire_time > now) continue;
      MOAT_TRY(auto deleted, txn->Delete(Collection::kSigningKeys, doc.key));
      n += deleted ? 1 : 0;
    }
    MOAT_TRY(auto rev, txn->Commit());
    (void)rev;
  }
  MOAT_CHECK_OK(ReloadLocked());
  return n;
}

std::shared_ptr<const SystemManagedKey> SystemManagedKeys::Find(std::string_view kid,
                                                                TimePoint now) const {
  auto set = snapshot_.load();
  auto it = set->by_kid.find(std::string(kid));
  if (it == set->by_kid.end() || it->second->retire_time <= now) return nullptr;
  return it->second;
}

std::vector<std::shared_ptr<const SystemManagedKey>> SystemManagedKeys::KeysOf(
    std::string_view sa_unique_id, TimePoint now) const {
  std::vector<std::shared_ptr<const SystemManagedKey>> out;
  auto set = snapshot_.load();
  auto it = set->by_unique_id.find(std::string(sa_unique_id));
  if (it == set->by_unique_id.end()) return out;
  for (const auto& k : it->second) {
    if (k->retire_time > now && k->valid_after <= now + Seconds(60)) out.push_back(k);
  }
  return out;
}

bool KeyUsable(const KeyRecord& key, const ServiceAccountRecord& sa, TimePoint now) {
  return key.public_key && !key.disabled && key.sa_unique_id == sa.unique_id &&
         key.valid_after <= now && now < key.valid_before;
}

namespace {

template <class Fn>
Status ForEachPublishedKey(const Directory& dir, const SystemManagedKeys* system_keys,
                           std::string_view email_or_id, TimePoint now, Fn fn) {
  const ServiceAccountRecord* sa = dir.FindServiceAccount(email_or_id);
  if (sa == nullptr || sa->delete_time) {
    return NotFound("service account `" + std::string(email_or_id) + "` not found");
  }
  for (const KeyRecord* k : dir.KeysOf(sa->email)) {
    if (KeyUsable(*k, *sa, now)) fn(k->key_id, *k->public_key, k->cert_pem);
  }
  if (system_keys != nullptr) {
    for (const auto& k : system_keys->KeysOf(sa->unique_id, now)) {
      fn(k->kid, *k->public_key, k->cert_pem);
    }
  }
  return Ok();
}

}  // namespace

Result<std::string> ServiceAccountJwks(const Directory& dir, const SystemManagedKeys* system_keys,
                                       std::string_view email_or_id, TimePoint now) {
  std::vector<boost::json::object> jwks;
  MOAT_CHECK_OK(ForEachPublishedKey(
      dir, system_keys, email_or_id, now,
      [&](const std::string& kid, const crypto::PublicKey& key, const std::string&) {
        jwks.push_back(crypto::PublicJwk(key, kid));
      }));
  return crypto::SerializeJwks(jwks);
}

Result<std::string> ServiceAccountX509Certs(const Directory& dir,
                                            const SystemManagedKeys* system_keys,
                                            std::string_view email_or_id, TimePoint now) {
  boost::json::object certs;
  MOAT_CHECK_OK(ForEachPublishedKey(
      dir, system_keys, email_or_id, now,
      [&](const std::string& kid, const crypto::PublicKey&, const std::string& cert) {
        if (!cert.empty()) certs[kid] = cert;
      }));
  return json::Serialize(certs);
}

}  // namespace moat::identity
