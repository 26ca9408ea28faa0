#include "identity/service_accounts.h"

#include <gtest/gtest.h>

#include <boost/json/array.hpp>
#include <boost/json/value.hpp>
#include <concepts>
#include <thread>

#include "common/base64.h"
#include "common/json.h"
#include "common/time.h"
#include "crypto/jwt.h"
#include "crypto/keys.h"
#include "crypto/x509.h"
#include "identity/directory_loader.h"
#include "identity/key_usage.h"
#include "identity/records.h"
#include "store/memory_store.h"

// Test-only: lets EXPECT_EQ compare a JSON value with a std::string (found by ADL).
namespace boost::json {
template <class S>
requires std::same_as<S, std::string> || std::same_as<S, std::string_view>
bool operator==(const value& v, const S& s) { return v.is_string() && v.as_string() == s; }
}  // namespace boost::json

namespace moat::identity {
namespace {

using namespace std::chrono_literals;
using store::Collection;

constexpr std::string_view kEmail = "robot-1@p.iam.gserviceaccount.com";
constexpr std::string_view kName = "projects/p/serviceAccounts/robot-1@p.iam.gserviceaccount.com";

class ServiceAccountsTest : public ::testing::Test {
 protected:
  ServiceAccountsTest() : store_(&clock_), sas_(store_, clock_, Options()) {}

  static KeyFileOptions Options() {
    KeyFileOptions o;
    o.token_uri = "http://127.0.0.1:9999/token";
    o.api_origin = "http://127.0.0.1:9999";
    return o;
  }

  ServiceAccountRecord MakeRobot() {
    auto sa = sas_.Create("p", "robot-1", "Robot", "");
    EXPECT_TRUE(sa) << sa.error().message;
    return *sa;
  }

  std::shared_ptr<const Directory> Load() {
    auto d = LoadDirectory(store_);
    EXPECT_TRUE(d) << d.error().message;
    return *d;
  }

  void PutPolicy(const std::string& key, std::string_view json) {
    ASSERT_TRUE(store_.Put(Collection::kPolicies, key, json));
  }
  boost::json::object GetPolicy(const std::string& key) {
    auto doc = store_.Get(Collection::kPolicies, key);
    EXPECT_TRUE(doc && *doc);
    return *json::ParseObject((*doc)->data);
  }

  // base64(PEM certificate) of a fresh key, as keys:upload takes it.
  static std::string UploadData(const crypto::PrivateKey& key, TimePoint nb, TimePoint na) {
    auto cert = crypto::CreateSelfSignedCertificate(key, "uploaded", nb, na);
    EXPECT_TRUE(cert);
    return Base64Encode(*cert);
  }

  FakeClock clock_{*ParseRfc3339("2024-05-01T12:00:00Z")};
  store::MemoryStore store_;
  ServiceAccounts sas_;
};

// --- accounts --------------------------------------------------------------------------

TEST_F(ServiceAccountsTest, CreateBuildsGoogleShapedAccountAndRecordsProject) {
  auto sa = sas_.Create("p", "robot-1", "Robot", "a robot");
  ASSERT_TRUE(sa) << sa.error().message;
  EXPECT_EQ(sa->email, kEmail);
  EXPECT_EQ(sa->Name(), kName);
  EXPECT_EQ(sa->unique_id.size(), 21u);
  EXPECT_EQ(sa->display_name, "Robot");
  EXPECT_EQ(sa->description, "a robot");
  EXPECT_FALSE(sa->disabled);
  EXPECT_EQ(sa->create_time, clock_.Now());
  auto project = store_.Get(Collection::kProjects, "projects/p");
  ASSERT_TRUE(project);
  EXPECT_TRUE(project->has_value());
  auto doc = store_.Get(Collection::kServiceAccounts, kName);
  ASSERT_TRUE(doc && *doc);
  EXPECT_EQ((*doc)->parent, "projects/p");
}

TEST_F(ServiceAccountsTest, AccountIdRulesUseGooglesMessage) {
  for (std::string_view bad : {"short", "1robot", "robot-", "Robot12", "robot_1",
                               "abcdefghijabcdefghijabcdefghija" /* 31 */, ""}) {
    auto r = sas_.Create("p", bad, "", "");
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, Code::kInvalidArgument);
    EXPECT_NE(r.error().message.find("must be 6-30 characters long, and match the regular "
                                     "expression [a-z]([-a-z0-9]*[a-z0-9])"),
              std::string::npos)
        << r.error().message;
  }
  EXPECT_TRUE(sas_.Create("p", "abcdef", "", ""));
  EXPECT_TRUE(sas_.Create("p", "abcdefghijabcdefghijabcdefghij", "", ""));
  EXPECT_TRUE(sas_.Create("p", "a-b-c-1", "", ""));
  EXPECT_FALSE(sas_.Create("-", "robot-1", "", ""));
  EXPECT_FALSE(sas_.Create("P!", "robot-1", "", ""));
  EXPECT_FALSE(sas_.Create("p", "robot-2", std::string(101, 'x'), ""));
  EXPECT_FALSE(sas_.Create("p", "robot-2", "", std::string(257, 'x')));
}

TEST_F(ServiceAccountsTest, DuplicateIsAlreadyExistsWithGooglesMessage) {
  MakeRobot();
  auto r = sas_.Create("p", "robot-1", "", "");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kAlreadyExists);
  EXPECT_EQ(r.error().message, "Service account ID already exists within project projects/p.");
}

TEST_F(ServiceAccountsTest, GetByEmailUniqueIdAndWildcard) {
  auto sa = MakeRobot();
  for (std::string name :
       {std::string(kName), "projects/p/serviceAccounts/" + sa.unique_id,
        "projects/-/serviceAccounts/" + std::string(kEmail),
        "projects/-/serviceAccounts/" + sa.unique_id,
        std::string("projects/p/serviceAccounts/ROBOT-1@P.iam.gserviceaccount.com")}) {
    auto got = sas_.Get(name);
    ASSERT_TRUE(got) << name << ": " << got.error().message;
    EXPECT_EQ(got->unique_id, sa.unique_id);
  }
  auto missing = sas_.Get("projects/p/serviceAccounts/nobody@p.iam.gserviceaccount.com");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kNotFound);
  auto wildcard = sas_.Get("projects/-/serviceAccounts/nobody@p.iam.gserviceaccount.com");
  ASSERT_FALSE(wildcard);
  EXPECT_EQ(wildcard.error().code, Code::kPermissionDenied);
  auto other_project = sas_.Get("projects/q/serviceAccounts/" + sa.unique_id);
  ASSERT_FALSE(other_project);
  EXPECT_EQ(other_project.error().code, Code::kNotFound);
  for (std::string_view bad : {"robot", "projects/p/serviceAccounts/", "projects/p/x/y",
                               "projects/p/serviceAccounts/a/b"}) {
    auto r = sas_.Get(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, Code::kInvalidArgument) << bad;
  }
}

TEST_F(ServiceAccountsTest, ListPagesWithGoogleDefaults) {
  for (int i = 0; i < 25; ++i) {
    ASSERT_TRUE(sas_.Create("p", "robot-" + std::to_string(100 + i), "", ""));
  }
  ASSERT_TRUE(sas_.Create("q", "other-robot", "", ""));
  auto first = sas_.List("p");
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->accounts.size(), 20u);
  ASSERT_FALSE(first->next_page_token.empty());
  auto second = sas_.List("p", 0, first->next_page_token);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->accounts.size(), 5u);
  EXPECT_TRUE(second->next_page_token.empty());
  auto big = sas_.List("p", 1000);
  ASSERT_TRUE(big);
  EXPECT_EQ(big->accounts.size(), 25u);
  auto empty = sas_.List("nothing-here");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->accounts.empty());
  EXPECT_FALSE(sas_.List("-"));
}

TEST_F(ServiceAccountsTest, PatchHonoursUpdateMask) {
  MakeRobot();
  auto r = sas_.Patch(kName, "New name", "ignored", "displayName");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->display_name, "New name");
  EXPECT_EQ(r->description, "");
  r = sas_.Patch(kName, "ignored", "desc", "description");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->display_name, "New name");
  EXPECT_EQ(r->description, "desc");
  r = sas_.Patch(kName, "A", "B", "display_name, description");
  ASSERT_TRUE(r);
  EXPECT_EQ(sas_.Get(kName)->display_name, "A");
  EXPECT_EQ(sas_.Get(kName)->description, "B");
  auto bad = sas_.Patch(kName, "A", "B", "email");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Code::kInvalidArgument);
  EXPECT_FALSE(sas_.Patch(kName, "A", "B", ""));
}

TEST_F(ServiceAccountsTest, DisableIsVisibleInTheDirectoryImmediately) {
  auto sa = MakeRobot();
  ASSERT_TRUE(sas_.Disable(kName));
  ASSERT_TRUE(sas_.Disable(kName));  // idempotent
  auto d = Load();
  ASSERT_NE(d->FindServiceAccount(kEmail), nullptr);
  EXPECT_TRUE(d->FindServiceAccount(kEmail)->disabled);
  EXPECT_TRUE(sas_.Get(kName)->disabled);
  ASSERT_TRUE(sas_.Enable("projects/-/serviceAccounts/" + sa.unique_id));
  EXPECT_FALSE(Load()->FindServiceAccount(sa.unique_id)->disabled);
}

// --- delete / undelete / purge ---------------------------------------------------------

TEST_F(ServiceAccountsTest, DeleteRewritesPolicyMembersAndUndeleteRevertsThem) {
  auto sa = MakeRobot();
  const std::string member = "serviceAccount:" + std::string(kEmail);
  PutPolicy("projects/p",
            R"({"version":3,"bindings":[{"role":"roles/run.invoker","members":["user:a@x.com",")" +
                member +
                R"("],"condition":{"title":"t","expression":"true"}},{"role":"roles/viewer",)"
                R"("members":["serviceAccount:ROBOT-1@p.iam.gserviceaccount.com"]}],)"
                R"("auditConfigs":[{"service":"allServices"}],"etag":"BwWWja0YfJA="})");
  PutPolicy("projects/p/locations/r/services/s",
            R"({"bindings":[{"role":"roles/run.invoker","members":["user:b@x.com"]}]})");
  PutPolicy(std::string(kName),
            R"({"bindings":[{"role":"roles/iam.serviceAccountUser","members":["user:c@x.com"]}]})");
  auto untouched_before = store_.Get(Collection::kPolicies, "projects/p/locations/r/services/s");

  ASSERT_TRUE(sas_.Delete(kName));
  const std::string deleted =
      "deleted:serviceAccount:" + std::string(kEmail) + "?uid=" + sa.unique_id;
  auto policy = GetPolicy("projects/p");
  const auto& bindings = policy.at("bindings").as_array();
  EXPECT_EQ(bindings[0].at("members").as_array()[0], "user:a@x.com");
  EXPECT_EQ(bindings[0].at("members").as_array()[1], deleted);
  EXPECT_EQ(bindings[0].at("condition").at("title"), "t");
  EXPECT_EQ(bindings[1].at("members").as_array()[0], deleted);
  EXPECT_EQ(policy.at("auditConfigs").as_array().size(), 1u);
  EXPECT_EQ(policy.at("version"), 3);
  EXPECT_EQ(policy.at("etag"), "BwWWja0YfJA=");
  // Unrelated policies are not rewritten (same etag).
  auto untouched_after = store_.Get(Collection::kPolicies, "projects/p/locations/r/services/s");
  EXPECT_EQ((*untouched_before)->etag, (*untouched_after)->etag);
  // The account's own policy moved away with it.
  EXPECT_FALSE(*store_.Get(Collection::kPolicies, std::string(kName)));

  auto gone = sas_.Get(kName);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, Code::kNotFound);
  auto listed = sas_.List("p");
  EXPECT_TRUE(listed->accounts.empty());
  auto d = Load();
  auto* found = d->FindServiceAccount(sa.unique_id);
  ASSERT_NE(found, nullptr);
  EXPECT_TRUE(found->delete_time.has_value());
  ASSERT_NE(d->FindServiceAccount(kEmail), nullptr);
  EXPECT_TRUE(d->FindServiceAccount(kEmail)->delete_time.has_value());

  clock_.Advance(24h * 29);
  auto restored = sas_.Undelete("projects/p/serviceAccounts/" + sa.unique_id);
  ASSERT_TRUE(restored) << restored.error().message;
  EXPECT_EQ(restored->unique_id, sa.unique_id);
  EXPECT_FALSE(restored->delete_time);
  policy = GetPolicy("projects/p");
  EXPECT_EQ(policy.at("bindings").as_array()[0].at("members").as_array()[1], member);
  EXPECT_EQ(policy.at("bindings").as_array()[1].at("members").as_array()[0], member);
  EXPECT_EQ(GetPolicy(std::string(kName)).at("bindings").as_array().size(), 1u);
  EXPECT_TRUE(sas_.Get(kName));
  EXPECT_FALSE(Load()->FindServiceAccount(sa.unique_id)->delete_time);
  // Undelete of a live account returns it unchanged.
  EXPECT_TRUE(sas_.Undelete("projects/-/serviceAccounts/" + sa.unique_id));
}

TEST_F(ServiceAccountsTest, UndeleteAfterThirtyDaysIsRefused) {
  auto sa = MakeRobot();
  ASSERT_TRUE(sas_.Delete(kName));
  clock_.Advance(24h * 30 + 1s);
  auto r = sas_.Undelete("projects/-/serviceAccounts/" + sa.unique_id);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kNotFound);
  EXPECT_NE(r.error().message.find("more than 30 days ago"), std::string::npos);
  auto unknown = sas_.Undelete("projects/p/serviceAccounts/123456789012345678901");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, Code::kNotFound);
}

TEST_F(ServiceAccountsTest, RecreatedEmailBlocksUndeleteAndHidesOldKeys) {
  auto old = MakeRobot();
  auto old_key = sas_.CreateKey(kName);
  ASSERT_TRUE(old_key) << old_key.error().message;
  ASSERT_TRUE(sas_.Delete(kName));
  auto fresh = MakeRobot();
  EXPECT_NE(fresh.unique_id, old.unique_id);
  auto keys = sas_.ListKeys(kName);
  ASSERT_TRUE(keys);
  EXPECT_TRUE(keys->empty());
  EXPECT_FALSE(sas_.GetKey(std::string(kName) + "/keys/" + old_key->key.key_id));

  auto d = Load();
  EXPECT_EQ(d->FindServiceAccount(kEmail)->unique_id, fresh.unique_id);
  const KeyRecord* k = d->FindKey(old_key->key.key_id);
  ASSERT_NE(k, nullptr);
  // A verifier looks the key's account up by unique id and finds it deleted.
  ASSERT_NE(d->FindServiceAccount(k->sa_unique_id), nullptr);
  EXPECT_TRUE(d->FindServiceAccount(k->sa_unique_id)->delete_time.has_value());

  auto r = sas_.Undelete("projects/p/serviceAccounts/" + old.unique_id);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kFailedPrecondition);
  EXPECT_NE(r.error().message.find("exists"), std::string::npos);
}

TEST_F(ServiceAccountsTest, PurgeRemovesOldDeletedAccountsAndTheirKeys) {
  auto sa = MakeRobot();
  auto key = sas_.CreateKey(kName);
  ASSERT_TRUE(key);
  ASSERT_TRUE(sas_.Create("p", "robot-2", "", ""));
  ASSERT_TRUE(sas_.Delete(kName));
  clock_.Advance(24h * 10);
  ASSERT_TRUE(sas_.Delete("projects/p/serviceAccounts/robot-2@p.iam.gserviceaccount.com"));
  clock_.Advance(24h * 20);
  auto purged = sas_.PurgeDeleted();
  ASSERT_TRUE(purged) << purged.error().message;
  EXPECT_EQ(*purged, 1);
  auto d = Load();
  EXPECT_EQ(d->FindServiceAccount(sa.unique_id), nullptr);
  EXPECT_EQ(d->FindKey(key->key.key_id), nullptr);
  EXPECT_NE(d->FindServiceAccount("robot-2@p.iam.gserviceaccount.com"), nullptr);
  EXPECT_EQ(*sas_.PurgeDeleted(), 0);
}

// --- keys ------------------------------------------------------------------------------

TEST_F(ServiceAccountsTest, CreateKeyReturnsAGoogleKeyFileWhosePrivateKeySignsVerifiableJwts) {
  auto sa = MakeRobot();
  auto created = sas_.CreateKey(kName, "KEY_ALG_RSA_2048", "TYPE_GOOGLE_CREDENTIALS_FILE");
  ASSERT_TRUE(created) << created.error().message;
  EXPECT_EQ(created->key.key_id.size(), 40u);
  EXPECT_EQ(created->key.sa_unique_id, sa.unique_id);
  EXPECT_EQ(created->key.valid_after, clock_.Now());
  EXPECT_EQ(created->key.valid_before, TimePoint::max());

  auto response = CreatedKeyToJson(*created);
  EXPECT_EQ(response.at("privateKeyType"), "TYPE_GOOGLE_CREDENTIALS_FILE");
  EXPECT_EQ(response.at("validBeforeTime"), "9999-12-31T23:59:59Z");
  EXPECT_EQ(response.at("keyOrigin"), "GOOGLE_PROVIDED");
  auto file_text = Base64Decode(std::string_view(response.at("privateKeyData").as_string()));
  ASSERT_TRUE(file_text);
  EXPECT_EQ(*file_text, created->key_file_json);
  auto file = json::ParseObject(*file_text);
  ASSERT_TRUE(file);
  EXPECT_EQ(file->at("type"), "service_account");
  EXPECT_EQ(file->at("project_id"), "p");
  EXPECT_EQ(file->at("private_key_id"), created->key.key_id);
  EXPECT_EQ(file->at("client_email"), kEmail);
  EXPECT_EQ(file->at("client_id"), sa.unique_id);
  EXPECT_EQ(file->at("auth_uri"), "https://accounts.google.com/o/oauth2/auth");
  EXPECT_EQ(file->at("token_uri"), "http://127.0.0.1:9999/token");
  EXPECT_EQ(file->at("auth_provider_x509_cert_url"), "http://127.0.0.1:9999/oauth2/v1/certs");
  EXPECT_EQ(file->at("client_x509_cert_url"),
            "http://127.0.0.1:9999/robot/v1/metadata/x509/robot-1%40p.iam.gserviceaccount.com");
  EXPECT_EQ(file->at("universe_domain"), "googleapis.com");
  std::string pem(file->at("private_key").as_string());
  EXPECT_EQ(pem.rfind("-----BEGIN PRIVATE KEY-----\n", 0), 0u);

  // The store never sees the private key.
  auto stored = store_.Get(Collection::kSaKeys, created->key.Name("p"));
  ASSERT_TRUE(stored && *stored);
  EXPECT_EQ((*stored)->data.find("PRIVATE KEY"), std::string::npos);
  EXPECT_EQ((*stored)->parent, kName);

  // Its private key signs a JWT that verifies with the stored public key.
  auto private_key = crypto::PrivateKey::FromPem(pem);
  ASSERT_TRUE(private_key);
  boost::json::object claims{{"iss", std::string(kEmail)},
                             {"sub", std::string(kEmail)},
                             {"aud", "https://moat.test/"},
                             {"iat", clock_.NowUnix()},
                             {"exp", clock_.NowUnix() + 3600}};
  auto jwt = crypto::EncodeJwt(crypto::JwsAlg::kRs256, *private_key, created->key.key_id, claims);
  ASSERT_TRUE(jwt);
  auto d = Load();
  crypto::KeyLookup lookup = [&](const crypto::KeyQuery& q) {
    std::vector<crypto::PublicKeyPtr> out;
    if (q.kid) {
      if (const KeyRecord* k = d->FindKey(*q.kid)) out.push_back(k->public_key);
    }
    return out;
  };
  crypto::JwtVerifyOptions options;
  options.issuers = {std::string(kEmail)};
  options.audiences = {"https://moat.test/"};
  options.clock = &clock_;
  auto verified = crypto::VerifyJwt(*jwt, lookup, options);
  ASSERT_TRUE(verified) << verified.error().message;
  EXPECT_EQ(verified->kid, created->key.key_id);

  // The stored certificate carries the same public key.
  auto cert = crypto::ParseCertificatePem(created->key.cert_pem);
  ASSERT_TRUE(cert);
  EXPECT_TRUE(cert->key.Equals(private_key->Public()));
  EXPECT_EQ(cert->subject_cn, sa.unique_id);
}

TEST_F(ServiceAccountsTest, CreateKeyRefusesUnsupportedTypes) {
  MakeRobot();
  auto a = sas_.CreateKey(kName, "KEY_ALG_RSA_1024");
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, Code::kInvalidArgument);
  auto b = sas_.CreateKey(kName, "", "TYPE_PKCS12_FILE");
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, Code::kInvalidArgument);
}

TEST_F(ServiceAccountsTest, KeysForDisabledOrDeletedAccountsAreRefused) {
  auto sa = MakeRobot();
  ASSERT_TRUE(sas_.Disable(kName));
  auto r = sas_.CreateKey(kName);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kFailedPrecondition);
  EXPECT_NE(r.error().message.find("disabled"), std::string::npos);
  auto priv = crypto::PrivateKey::GenerateRsa2048();
  auto up = sas_.UploadKey(kName, UploadData(*priv, clock_.Now(), clock_.Now() + 24h));
  ASSERT_FALSE(up);
  EXPECT_EQ(up.error().code, Code::kFailedPrecondition);
  ASSERT_TRUE(sas_.Enable(kName));
  ASSERT_TRUE(sas_.Delete(kName));
  auto deleted = sas_.CreateKey(kName);
  ASSERT_FALSE(deleted);
  EXPECT_EQ(deleted.error().code, Code::kNotFound);
}

TEST_F(ServiceAccountsTest, AtMostTenKeysPerAccount) {
  MakeRobot();
  std::string last_name;
  for (int i = 0; i < kMaxKeysPerServiceAccount; ++i) {
    auto k = sas_.CreateKey(kName);
    ASSERT_TRUE(k) << i << ": " << k.error().message;
    last_name = k->key.Name("p");
  }
  auto r = sas_.CreateKey(kName);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kFailedPrecondition);
  EXPECT_NE(r.error().message.find("10 keys"), std::string::npos) << r.error().message;
  // Disabled keys count too; deleting one frees a slot.
  ASSERT_TRUE(sas_.DisableKey(last_name));
  EXPECT_FALSE(sas_.CreateKey(kName));
  ASSERT_TRUE(sas_.DeleteKey(last_name));
  EXPECT_TRUE(sas_.CreateKey(kName));
}

TEST_F(ServiceAccountsTest, KeyExpirySettingAppliesToNewKeys) {
  MakeRobot();
  EXPECT_EQ(*sas_.GetKeyExpiryHours(), std::nullopt);
  for (int bad : {0, -1, 2161}) {
    auto r = sas_.SetKeyExpiryHours(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, Code::kInvalidArgument);
  }
  ASSERT_TRUE(sas_.SetKeyExpiryHours(24));
  EXPECT_EQ(*sas_.GetKeyExpiryHours(), 24);
  auto k = sas_.CreateKey(kName);
  ASSERT_TRUE(k);
  EXPECT_EQ(k->key.valid_before, clock_.Now() + 24h);
  EXPECT_EQ(KeyToJson(k->key, "p").at("validBeforeTime"), "2024-05-02T12:00:00Z");
  auto cert = crypto::ParseCertificatePem(k->key.cert_pem);
  ASSERT_TRUE(cert);
  EXPECT_EQ(cert->not_after, clock_.Now() + 24h);

  // Uploaded keys are capped too.
  auto priv = crypto::PrivateKey::GenerateRsa2048();
  auto up = sas_.UploadKey(kName, UploadData(*priv, clock_.Now() - 1h, clock_.Now() + 24h * 365));
  ASSERT_TRUE(up) << up.error().message;
  EXPECT_EQ(up->valid_before, clock_.Now() + 24h);

  ASSERT_TRUE(sas_.SetKeyExpiryHours(std::nullopt));
  EXPECT_EQ(*sas_.GetKeyExpiryHours(), std::nullopt);
  auto forever = sas_.CreateKey(kName);
  ASSERT_TRUE(forever);
  EXPECT_EQ(forever->key.valid_before, TimePoint::max());
}

TEST_F(ServiceAccountsTest, UploadKeyRegistersAUserProvidedCertificate) {
  MakeRobot();
  auto priv = crypto::PrivateKey::GenerateRsa2048();
  ASSERT_TRUE(priv);
  const TimePoint nb = clock_.Now() - 1h, na = clock_.Now() + 24h * 30;
  std::string data = UploadData(*priv, nb, na);
  auto up = sas_.UploadKey(kName, data);
  ASSERT_TRUE(up) << up.error().message;
  EXPECT_EQ(up->origin, KeyOrigin::kUserProvided);
  EXPECT_EQ(up->key_id, crypto::KeyId(priv->Public()));
  EXPECT_EQ(up->valid_after, nb);
  EXPECT_EQ(up->valid_before, na);
  auto got = sas_.GetKey(up->Name("p"));
  ASSERT_TRUE(got);
  EXPECT_EQ(KeyToJson(*got, "p").at("keyOrigin"), "USER_PROVIDED");
  EXPECT_EQ(KeyToJson(*got, "p", PublicKeyType::kX509PemFile).at("publicKeyData"), data);
  auto d = Load();
  ASSERT_NE(d->FindKey(up->key_id), nullptr);
  EXPECT_TRUE(d->FindKey(up->key_id)->public_key->Equals(priv->Public()));

  // The same public key cannot be registered twice, not even on another account.
  auto again = sas_.UploadKey(kName, data);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Code::kAlreadyExists);
  ASSERT_TRUE(sas_.Create("p", "robot-2", "", ""));
  auto elsewhere =
      sas_.UploadKey("projects/p/serviceAccounts/robot-2@p.iam.gserviceaccount.com", data);
  ASSERT_FALSE(elsewhere);
  EXPECT_EQ(elsewhere.error().code, Code::kAlreadyExists);
}

TEST_F(ServiceAccountsTest, UploadKeyRefusesBadInput) {
  MakeRobot();
  auto expect_invalid = [&](std::string_view data, std::string_view why) {
    auto r = sas_.UploadKey(kName, data);
    ASSERT_FALSE(r) << why;
    EXPECT_EQ(r.error().code, Code::kInvalidArgument) << why;
  };
  expect_invalid("not base64!", "bad base64");
  expect_invalid(Base64Encode("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
                 "garbage certificate");
  auto ec = crypto::PrivateKey::GenerateEcP256();
  ASSERT_TRUE(ec);
  expect_invalid(UploadData(*ec, clock_.Now() - 1h, clock_.Now() + 24h), "EC key");
  auto rsa = crypto::PrivateKey::GenerateRsa2048();
  expect_invalid(UploadData(*rsa, clock_.Now() - 48h, clock_.Now() - 24h), "expired");
}

TEST_F(ServiceAccountsTest, ListGetDisableEnableDeleteKeys) {
  MakeRobot();
  auto k1 = sas_.CreateKey(kName);
  auto k2 = sas_.CreateKey(kName);
  ASSERT_TRUE(k1 && k2);
  auto all = sas_.ListKeys(kName);
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), 2u);
  EXPECT_EQ(sas_.ListKeys(kName, {"USER_MANAGED"})->size(), 2u);
  EXPECT_EQ(sas_.ListKeys(kName, {"SYSTEM_MANAGED"})->size(), 0u);
  EXPECT_EQ(sas_.ListKeys(kName, {"SYSTEM_MANAGED", "USER_MANAGED"})->size(), 2u);
  auto bad = sas_.ListKeys(kName, {"KEY_TYPE_UNSPECIFIED"});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Code::kInvalidArgument);

  const std::string name1 = k1->key.Name("p");
  auto got = sas_.GetKey(name1);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->key_id, k1->key.key_id);
  // By unique id and through the wildcard too.
  auto sa = sas_.Get(kName);
  EXPECT_TRUE(
      sas_.GetKey("projects/-/serviceAccounts/" + sa->unique_id + "/keys/" + k1->key.key_id));

  ASSERT_TRUE(sas_.DisableKey(name1));
  EXPECT_TRUE(sas_.GetKey(name1)->disabled);
  EXPECT_TRUE(Load()->FindKey(k1->key.key_id)->disabled);
  ASSERT_TRUE(sas_.EnableKey(name1));
  EXPECT_FALSE(Load()->FindKey(k1->key.key_id)->disabled);

  ASSERT_TRUE(sas_.DeleteKey(name1));
  auto missing = sas_.GetKey(name1);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kNotFound);
  EXPECT_EQ(sas_.DeleteKey(name1).error().code, Code::kNotFound);
  EXPECT_EQ(sas_.ListKeys(kName)->size(), 1u);
  EXPECT_EQ(Load()->FindKey(k1->key.key_id), nullptr);
  EXPECT_EQ(sas_.GetKey(std::string(kName) + "/keys/" + std::string(40, '0')).error().code,
            Code::kNotFound);
  EXPECT_EQ(sas_.GetKey("projects/p/keys/x").error().code, Code::kInvalidArgument);
}

// --- last used -------------------------------------------------------------------------

TEST_F(ServiceAccountsTest, KeyUsageRecorderFlushesOnlyRealProgress) {
  MakeRobot();
  auto k = sas_.CreateKey(kName);
  ASSERT_TRUE(k);
  const std::string id = k->key.key_id;
  KeyUsageRecorder recorder(60s);
  EXPECT_EQ(*recorder.Flush(store_), 0);  // nothing recorded

  const TimePoint t0 = clock_.Now();
  recorder.Record(id, t0);
  recorder.Record(id, t0 - 5s);  // older uses never move it back
  auto n = recorder.Flush(store_);
  ASSERT_TRUE(n) << n.error().message;
  EXPECT_EQ(*n, 1);
  EXPECT_EQ(sas_.GetKey(k->key.Name("p"))->last_used, t0);
  EXPECT_EQ(KeyToJson(*sas_.GetKey(k->key.Name("p")), "p").at("lastUsedTime"), FormatRfc3339(t0));

  auto revision = store_.CurrentRevision();
  recorder.Record(id, t0 + 30s);
  EXPECT_EQ(*recorder.Flush(store_), 0);
  EXPECT_EQ(*store_.CurrentRevision(), *revision);  // no write at all

  recorder.Record(id, t0 + 61s);
  EXPECT_EQ(*recorder.Flush(store_), 1);
  EXPECT_EQ(Load()->FindKey(id)->last_used, t0 + 61s);

  // Unknown and deleted keys are forgotten.
  recorder.Record(std::string(40, 'f'), t0);
  EXPECT_EQ(*recorder.Flush(store_), 0);
  ASSERT_TRUE(sas_.DeleteKey(k->key.Name("p")));
  recorder.Record(id, t0 + 200s);
  EXPECT_EQ(*recorder.Flush(store_), 0);
}

TEST_F(ServiceAccountsTest, KeyUsageRecorderIsThreadSafe) {
  MakeRobot();
  auto k = sas_.CreateKey(kName);
  ASSERT_TRUE(k);
  KeyUsageRecorder recorder;
  std::vector<std::thread> threads;
  const TimePoint t0 = clock_.Now();
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 1000; ++i) {
        recorder.Record(k->key.key_id, t0 + std::chrono::seconds(t * 1000 + i));
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(*recorder.Flush(store_), 1);
  EXPECT_EQ(sas_.GetKey(k->key.Name("p"))->last_used, t0 + 3999s);
}

// --- directory -------------------------------------------------------------------------

TEST_F(ServiceAccountsTest, LoadDirectoryReadsEverythingAtOneRevision) {
  auto sa = MakeRobot();
  auto k = sas_.CreateKey(kName);
  ASSERT_TRUE(k);
  auto d = Load();
  EXPECT_EQ(d->revision(), *store_.CurrentRevision());
  EXPECT_EQ(d->inputs().service_accounts.size(), 1u);
  ASSERT_EQ(d->KeysOf(kEmail).size(), 1u);
  EXPECT_NE(d->KeysOf(kEmail)[0]->public_key, nullptr);
  // A corrupt document is skipped, not fatal.
  ASSERT_TRUE(store_.Put(Collection::kServiceAccounts, "projects/p/serviceAccounts/bad@x.com",
                         "{\"broken\":true}"));
  auto d2 = Load();
  EXPECT_EQ(d2->inputs().service_accounts.size(), 1u);
  EXPECT_GT(d2->revision(), d->revision());
}

}  // namespace
}  // namespace moat::identity
