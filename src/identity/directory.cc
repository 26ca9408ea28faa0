#include "identity/directory.h"

#include <algorithm>
#include <cctype>

namespace moat::identity {
namespace {
std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

template <class Map>
size_t Lookup(const Map& m, const std::string& key) {
  auto it = m.find(key);
  return it == m.end() ? SIZE_MAX : it->second;
}
}  // namespace

std::shared_ptr<const Directory> Directory::Build(Inputs inputs) {
  auto d = std::make_shared<Directory>();
  d->inputs_ = std::move(inputs);
  auto& in = d->inputs_;
  for (size_t i = 0; i < in.service_accounts.size(); ++i) {
    const auto& sa = in.service_accounts[i];
    // A deleted account and a re-created one may share an email: the email finds the live
    // one (or, among deleted ones, the last deleted); the unique id always finds its own.
    auto [it, inserted] = d->sa_by_email_.try_emplace(Lower(sa.email), i);
    if (!inserted) {
      const auto& held = in.service_accounts[it->second];
      bool replace =
          held.delete_time.has_value() && (!sa.delete_time || *sa.delete_time > *held.delete_time);
      if (replace) it->second = i;
    }
    d->sa_by_id_[sa.unique_id] = i;
  }
  for (auto& key : in.keys) {
    if (!key.public_key) {
      auto parsed = crypto::PublicKey::FromSpkiPem(key.public_key_pem);
      if (parsed) key.public_key = crypto::Share(std::move(*parsed));
    }
  }
  for (size_t i = 0; i < in.keys.size(); ++i) {
    if (!in.keys[i].public_key) continue;  // unparsable: can never verify anything
    d->key_by_id_[in.keys[i].key_id] = i;
    d->keys_by_sa_[Lower(in.keys[i].sa_email)].push_back(i);
  }
  for (size_t i = 0; i < in.users.size(); ++i) d->user_by_email_[Lower(in.users[i].email)] = i;
  for (size_t i = 0; i < in.groups.size(); ++i) d->group_by_email_[Lower(in.groups[i].email)] = i;
  for (size_t i = 0; i < in.trusted_issuers.size(); ++i) {
    d->issuer_by_iss_[in.trusted_issuers[i].issuer] = i;
  }
  return d;
}

const ServiceAccountRecord* Directory::FindServiceAccount(std::string_view email_or_id) const {
  size_t i = Lookup(sa_by_email_, Lower(email_or_id));
  if (i == SIZE_MAX) i = Lookup(sa_by_id_, std::string(email_or_id));
  return i == SIZE_MAX ? nullptr : &inputs_.service_accounts[i];
}

const KeyRecord* Directory::FindKey(std::string_view key_id) const {
  size_t i = Lookup(key_by_id_, std::string(key_id));
  return i == SIZE_MAX ? nullptr : &inputs_.keys[i];
}

std::vector<const KeyRecord*> Directory::KeysOf(std::string_view sa_email) const {
  std::vector<const KeyRecord*> out;
  auto it = keys_by_sa_.find(Lower(sa_email));
  if (it != keys_by_sa_.end()) {
    for (size_t i : it->second) out.push_back(&inputs_.keys[i]);
  }
  return out;
}

const UserRecord* Directory::FindUser(std::string_view email) const {
  size_t i = Lookup(user_by_email_, Lower(email));
  return i == SIZE_MAX ? nullptr : &inputs_.users[i];
}

const GroupRecord* Directory::FindGroup(std::string_view email) const {
  size_t i = Lookup(group_by_email_, Lower(email));
  return i == SIZE_MAX ? nullptr : &inputs_.groups[i];
}

const TrustedIssuerRecord* Directory::FindIssuer(std::string_view issuer) const {
  size_t i = Lookup(issuer_by_iss_, std::string(issuer));
  return i == SIZE_MAX ? nullptr : &inputs_.trusted_issuers[i];
}

}  // namespace moat::identity
