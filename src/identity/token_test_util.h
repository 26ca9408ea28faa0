// Shared fixture for the identity_tokens_test binary: a MemoryStore, a FakeClock, Moat's
// signing keys, a hand-built Directory and a fake JWKS fetcher.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/random.h"
#include "crypto/jwk.h"
#include "crypto/jwt.h"
#include "identity/credentials_keys.h"
#include "identity/directory.h"
#include "identity/signing_keys.h"
#include "identity/token_issuer.h"
#include "identity/verifier.h"
#include "store/memory_store.h"

namespace moat::identity::testing {

inline constexpr char kOrigin[] = "http://127.0.0.1:8081";
inline constexpr char kServiceUrl[] = "http://hello-abc.us-central1.run.localhost:8080";

class FakeFetcher : public JwksFetcher {
 public:
  Result<JwksDocument> Fetch(const std::string& uri) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++calls_;
    last_uri_ = uri;
    if (!reachable_) return Unavailable("connection refused");
    return JwksDocument{body_, max_age_};
  }
  void Serve(std::string body, std::optional<std::chrono::seconds> max_age) {
    std::lock_guard<std::mutex> lock(mu_);
    body_ = std::move(body);
    max_age_ = max_age;
    reachable_ = true;
  }
  void SetReachable(bool r) {
    std::lock_guard<std::mutex> lock(mu_);
    reachable_ = r;
  }
  int calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }

 private:
  mutable std::mutex mu_;
  std::string body_ = R"({"keys":[]})";
  std::optional<std::chrono::seconds> max_age_;
  bool reachable_ = true;
  int calls_ = 0;
  std::string last_uri_;
};

// A service account with one RSA key whose private half the test holds.
struct TestAccount {
  ServiceAccountRecord sa;
  KeyRecord key;
  std::shared_ptr<crypto::PrivateKey> priv;
};

inline std::shared_ptr<crypto::PrivateKey> NewRsaKey() {
  auto k = crypto::PrivateKey::GenerateRsa2048();
  EXPECT_TRUE(k.has_value());
  return std::make_shared<crypto::PrivateKey>(std::move(*k));
}

// Fixed per-process test keys (RSA generation dominates test time); index → key.
inline std::shared_ptr<crypto::PrivateKey> TestKey(size_t index) {
  static std::mutex mu;
  static std::vector<std::shared_ptr<crypto::PrivateKey>> pool;
  std::lock_guard<std::mutex> lock(mu);
  while (pool.size() <= index) pool.push_back(NewRsaKey());
  return pool[index];
}

class TokenWorld {
 public:
  TokenWorld()
      : store_(&clock_),
        master_(RandomBytes(32)),
        keys_(store_, master_, clock_),
        urls_(IssuerUrls::For(kOrigin)),
        issuer_(keys_, clock_, urls_),
        system_keys_(store_, master_, clock_) {
    EXPECT_TRUE(keys_.Rotate().has_value());
    alice_ = MakeAccount("alice@proj.iam.gserviceaccount.com", "100000000000000000001", 0);
    bob_ = MakeAccount("bob@proj.iam.gserviceaccount.com", "100000000000000000002", 1);
    idp_key_ = TestKey(2);
    idp_kid_ = "idp-key-1";
    inputs_.users.push_back(
        UserRecord{"carol@example.com", "200000000000000000003", "Carol", "", false, {}});
    inputs_.trusted_issuers.push_back(TrustedIssuerRecord{
        "corp", "https://idp.example.com", "https://idp.example.com/jwks", {"corp-client"}});
    ServeIdpKeys({{idp_kid_, idp_key_}}, std::chrono::seconds(600));
    Publish();
    MakeVerifier();
  }

  TestAccount MakeAccount(const std::string& email, const std::string& uid, size_t key_index = 3) {
    TestAccount a;
    a.sa.project_id = "proj";
    a.sa.account_id = email.substr(0, email.find('@'));
    a.sa.email = email;
    a.sa.unique_id = uid;
    a.priv = TestKey(key_index);
    crypto::PublicKey pub = a.priv->Public();
    a.key.key_id = crypto::KeyId(pub);
    a.key.sa_email = email;
    a.key.sa_unique_id = uid;
    a.key.public_key_pem = pub.ToSpkiPem();
    a.key.valid_after = clock_.Now() - std::chrono::hours(1);
    a.key.valid_before = TimePoint::max();
    inputs_.service_accounts.push_back(a.sa);
    inputs_.keys.push_back(a.key);
    return a;
  }

  void ServeIdpKeys(
      const std::vector<std::pair<std::string, std::shared_ptr<crypto::PrivateKey>>>& keys,
      std::optional<std::chrono::seconds> max_age) {
    std::vector<boost::json::object> jwks;
    for (const auto& [kid, k] : keys) jwks.push_back(crypto::PublicJwk(k->Public(), kid));
    fetcher_.Serve(crypto::SerializeJwks(jwks), max_age);
  }

  // Rebuilds the Directory from inputs_ (as the change feed would).
  void Publish() { dir_.store(Directory::Build(inputs_)); }

  ServiceAccountRecord* FindSa(const std::string& email) {
    for (auto& s : inputs_.service_accounts) {
      if (s.email == email) return &s;
    }
    return nullptr;
  }
  KeyRecord* FindKey(const std::string& kid) {
    for (auto& k : inputs_.keys) {
      if (k.key_id == kid) return &k;
    }
    return nullptr;
  }

  void MakeVerifier(std::function<void(std::function<void()>)> background = {}) {
    VerifierOptions o;
    o.issuer = urls_.issuer;
    o.api_origin = kOrigin;
    VerifierDeps d;
    d.clock = &clock_;
    d.directory = [this] { return dir_.load(); };
    d.signing_keys = &keys_;
    d.system_keys = &system_keys_;
    d.fetcher = &fetcher_;
    d.background = std::move(background);
    d.on_key_used = [this](const std::string& kid, TimePoint) {
      std::lock_guard<std::mutex> lock(used_mu_);
      ++key_uses_[kid];
    };
    verifier_ = std::make_unique<Verifier>(o, d);
  }

  int KeyUses(const std::string& kid) {
    std::lock_guard<std::mutex> lock(used_mu_);
    return key_uses_[kid];
  }

  int64_t Now() const { return clock_.NowUnix(); }

  static std::string Sign(const crypto::PrivateKey& key, std::string_view kid,
                          const boost::json::object& claims) {
    auto t = crypto::EncodeJwt(crypto::JwsAlg::kRs256, key, kid, claims);
    EXPECT_TRUE(t.has_value());
    return t ? *t : std::string();
  }

  // A self-signed JWT of `a` (Node googleapis style).
  std::string SelfSigned(const TestAccount& a, std::string aud, bool with_kid = true,
                         int64_t lifetime = 3600) {
    boost::json::object c;
    c["iss"] = a.sa.email;
    c["sub"] = a.sa.email;
    c["aud"] = aud;
    c["iat"] = Now();
    c["exp"] = Now() + lifetime;
    return Sign(*a.priv, with_kid ? a.key.key_id : "", c);
  }

  std::string IdpToken(const std::string& email, boost::json::value email_verified,
                       std::string aud = kServiceUrl, std::string kid = "") {
    boost::json::object c;
    c["iss"] = "https://idp.example.com";
    c["sub"] = "idp-user-7";
    c["aud"] = aud;
    c["email"] = email;
    c["email_verified"] = email_verified;
    c["iat"] = Now();
    c["exp"] = Now() + 3600;
    return Sign(*idp_key_, kid.empty() ? idp_kid_ : kid, c);
  }

  VerifyRequest Gateway() const {
    VerifyRequest r;
    r.purpose = VerifyPurpose::kGateway;
    r.audiences = {kServiceUrl, std::string(kServiceUrl) + "/"};
    return r;
  }
  static VerifyRequest Api() {
    VerifyRequest r;
    r.purpose = VerifyPurpose::kApi;
    return r;
  }

  FakeClock clock_;
  store::MemoryStore store_;
  std::string master_;
  SigningKeyManager keys_;
  IssuerUrls urls_;
  TokenIssuer issuer_;
  SystemManagedKeys system_keys_;
  FakeFetcher fetcher_;
  Directory::Inputs inputs_;
  std::atomic<std::shared_ptr<const Directory>> dir_;
  TestAccount alice_, bob_;
  std::shared_ptr<crypto::PrivateKey> idp_key_;
  std::string idp_kid_;
  std::unique_ptr<Verifier> verifier_;
  std::mutex used_mu_;
  std::map<std::string, int> key_uses_;
};

inline boost::json::object Claims(const std::string& jwt) {
  auto d = crypto::DecodeUnverified(jwt);
  EXPECT_TRUE(d.has_value());
  return d ? d->claims : boost::json::object{};
}
inline boost::json::object Header(const std::string& jwt) {
  auto d = crypto::DecodeUnverified(jwt);
  EXPECT_TRUE(d.has_value());
  return d ? d->jws.header : boost::json::object{};
}

}  // namespace moat::identity::testing
