#include "identity/records.h"

#include <gtest/gtest.h>

#include <concepts>

#include "common/base64.h"
#include "common/json.h"
#include "common/time.h"
#include "crypto/keys.h"
#include "crypto/x509.h"

// Test-only: lets EXPECT_EQ compare a JSON value with a std::string (found by ADL).
namespace boost::json {
template <class S>
requires std::same_as<S, std::string> || std::same_as<S, std::string_view>
bool operator==(const value& v, const S& s) { return v.is_string() && v.as_string() == s; }
}  // namespace boost::json

namespace moat::identity {
namespace {

TimePoint At(std::string_view rfc3339) { return *ParseRfc3339(rfc3339); }

TEST(RecordsTest, ServiceAccountDocumentRoundTrips) {
  ServiceAccountRecord sa;
  sa.project_id = "p";
  sa.account_id = "robot-1";
  sa.email = "robot-1@p.iam.gserviceaccount.com";
  sa.unique_id = "112233445566778899001";
  sa.display_name = "Robot";
  sa.description = "does things";
  sa.disabled = true;
  sa.create_time = At("2024-01-02T03:04:05Z");
  sa.delete_time = At("2024-02-02T03:04:05.5Z");
  auto back = ServiceAccountFromDocument(ServiceAccountToDocument(sa));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->email, sa.email);
  EXPECT_EQ(back->unique_id, sa.unique_id);
  EXPECT_EQ(back->display_name, "Robot");
  EXPECT_EQ(back->description, "does things");
  EXPECT_TRUE(back->disabled);
  EXPECT_EQ(back->create_time, sa.create_time);
  EXPECT_EQ(back->delete_time, sa.delete_time);
  EXPECT_EQ(back->Name(), "projects/p/serviceAccounts/robot-1@p.iam.gserviceaccount.com");
}

TEST(RecordsTest, CorruptDocumentsAreInternalErrors) {
  auto a = ServiceAccountFromDocument("{\"projectId\":\"p\"}");
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, Code::kInternal);
  auto b = KeyFromDocument("not json");
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, Code::kInternal);
  auto c = GroupFromDocument("{\"email\":\"g@x.com\",\"members\":[1]}");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, Code::kInternal);
}

TEST(RecordsTest, KeyDocumentRoundTripsIncludingNeverExpires) {
  KeyRecord k;
  k.key_id = std::string(40, 'a');
  k.sa_email = "robot-1@p.iam.gserviceaccount.com";
  k.sa_unique_id = "1";
  k.public_key_pem = "PEM";
  k.cert_pem = "CERT";
  k.valid_after = At("2024-01-01T00:00:00Z");
  k.valid_before = TimePoint::max();
  k.origin = KeyOrigin::kUserProvided;
  k.disabled = true;
  k.last_used = At("2024-01-03T00:00:00Z");
  std::string doc = KeyToDocument(k, "p");
  EXPECT_NE(doc.find("\"validBeforeTime\":\"9999-12-31T23:59:59Z\""), std::string::npos);
  auto back = KeyFromDocument(doc);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->valid_before, TimePoint::max());
  EXPECT_EQ(back->valid_after, k.valid_after);
  EXPECT_EQ(back->origin, KeyOrigin::kUserProvided);
  EXPECT_TRUE(back->disabled);
  EXPECT_EQ(back->last_used, k.last_used);
  EXPECT_EQ(back->cert_pem, "CERT");
}

TEST(RecordsTest, KeyTimes) {
  EXPECT_EQ(FormatKeyTime(TimePoint::max()), "9999-12-31T23:59:59Z");
  EXPECT_EQ(ParseKeyTime("9999-12-31T23:59:59Z"), TimePoint::max());
  EXPECT_EQ(ParseKeyTime("3000-01-01T00:00:00Z"), TimePoint::max());
  EXPECT_EQ(ParseKeyTime("2024-01-01T00:00:00Z"), At("2024-01-01T00:00:00Z"));
  EXPECT_FALSE(ParseKeyTime("yesterday"));
}

TEST(RecordsTest, ServiceAccountWireJson) {
  ServiceAccountRecord sa;
  sa.project_id = "p";
  sa.account_id = "robot-1";
  sa.email = "robot-1@p.iam.gserviceaccount.com";
  sa.unique_id = "112233445566778899001";
  sa.display_name = "Robot";
  auto o = ServiceAccountToJson(sa);
  EXPECT_EQ(o.at("name"), "projects/p/serviceAccounts/robot-1@p.iam.gserviceaccount.com");
  EXPECT_EQ(o.at("projectId"), "p");
  EXPECT_EQ(o.at("uniqueId"), "112233445566778899001");
  EXPECT_EQ(o.at("oauth2ClientId"), "112233445566778899001");
  EXPECT_EQ(o.at("email"), sa.email);
  EXPECT_EQ(o.at("displayName"), "Robot");
  EXPECT_TRUE(o.contains("etag"));
  EXPECT_FALSE(o.contains("description"));
  EXPECT_FALSE(o.contains("disabled"));
  sa.disabled = true;
  EXPECT_EQ(ServiceAccountToJson(sa).at("disabled"), true);
}

TEST(RecordsTest, KeyWireJsonPublicKeyTypes) {
  auto priv = crypto::PrivateKey::GenerateRsa2048();
  ASSERT_TRUE(priv);
  auto pub = priv->Public();
  auto cert = crypto::CreateSelfSignedCertificate(*priv, "1", At("2024-01-01T00:00:00Z"),
                                                  At("2025-01-01T00:00:00Z"));
  ASSERT_TRUE(cert);
  KeyRecord k;
  k.key_id = crypto::KeyId(pub);
  k.sa_email = "robot-1@p.iam.gserviceaccount.com";
  k.sa_unique_id = "1";
  k.public_key_pem = pub.ToSpkiPem();
  k.cert_pem = *cert;
  k.valid_after = At("2024-01-01T00:00:00Z");
  k.valid_before = TimePoint::max();

  auto none = KeyToJson(k, "p");
  EXPECT_EQ(none.at("name"),
            "projects/p/serviceAccounts/robot-1@p.iam.gserviceaccount.com/keys/" + k.key_id);
  EXPECT_EQ(none.at("keyAlgorithm"), "KEY_ALG_RSA_2048");
  EXPECT_EQ(none.at("keyOrigin"), "GOOGLE_PROVIDED");
  EXPECT_EQ(none.at("keyType"), "USER_MANAGED");
  EXPECT_EQ(none.at("validAfterTime"), "2024-01-01T00:00:00Z");
  EXPECT_EQ(none.at("validBeforeTime"), "9999-12-31T23:59:59Z");
  EXPECT_FALSE(none.contains("publicKeyData"));
  EXPECT_FALSE(none.contains("privateKeyData"));
  EXPECT_FALSE(none.contains("lastUsedTime"));

  auto x509 = KeyToJson(k, "p", PublicKeyType::kX509PemFile);
  EXPECT_EQ(Base64Decode(std::string_view(x509.at("publicKeyData").as_string())), *cert);

  auto raw = KeyToJson(k, "p", PublicKeyType::kRawPublicKey);
  auto der = Base64Decode(std::string_view(raw.at("publicKeyData").as_string()));
  ASSERT_TRUE(der);
  auto parsed = crypto::PublicKey::FromSpkiDer(*der);
  ASSERT_TRUE(parsed);
  EXPECT_TRUE(parsed->Equals(pub));

  k.last_used = At("2024-06-01T00:00:00Z");
  k.disabled = true;
  auto used = KeyToJson(k, "p");
  EXPECT_EQ(used.at("lastUsedTime"), "2024-06-01T00:00:00Z");
  EXPECT_EQ(used.at("disabled"), true);
}

TEST(RecordsTest, ParsePublicKeyType) {
  EXPECT_EQ(*ParsePublicKeyType(""), PublicKeyType::kNone);
  EXPECT_EQ(*ParsePublicKeyType("TYPE_NONE"), PublicKeyType::kNone);
  EXPECT_EQ(*ParsePublicKeyType("TYPE_X509_PEM_FILE"), PublicKeyType::kX509PemFile);
  EXPECT_EQ(*ParsePublicKeyType("TYPE_RAW_PUBLIC_KEY"), PublicKeyType::kRawPublicKey);
  auto bad = ParsePublicKeyType("TYPE_PEM");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Code::kInvalidArgument);
}

TEST(RecordsTest, UserJsonNeverCarriesThePasswordHash) {
  UserRecord u{"alice@example.com", "1", "Alice", "$argon2id$secret-hash", false, {}};
  auto doc = UserToDocument(u);
  EXPECT_NE(doc.find("$argon2id$secret-hash"), std::string::npos);  // the store keeps it
  auto wire = json::Serialize(UserToJson(u));
  EXPECT_EQ(wire.find("argon2"), std::string::npos);
  EXPECT_EQ(wire.find("password"), std::string::npos);
  EXPECT_NE(wire.find("\"name\":\"users/alice@example.com\""), std::string::npos);
  auto back = UserFromDocument(doc);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->password_hash, u.password_hash);
}

TEST(RecordsTest, GroupAndIssuerRoundTrip) {
  GroupRecord g{"eng@example.com", "Eng", "engineers", {"user:a@example.com", "group:x@y.com"}};
  auto gb = GroupFromDocument(GroupToDocument(g));
  ASSERT_TRUE(gb);
  EXPECT_EQ(gb->members, g.members);
  EXPECT_EQ(GroupToJson(g).at("members").as_array().size(), 2u);
  TrustedIssuerRecord t{
      "corp", "https://idp.example.com", "https://idp.example.com/jwks", {"moat"}};
  auto tb = TrustedIssuerFromDocument(TrustedIssuerToDocument(t));
  ASSERT_TRUE(tb);
  EXPECT_EQ(tb->jwks_uri, t.jwks_uri);
  EXPECT_EQ(tb->audiences, t.audiences);
  EXPECT_EQ(TrustedIssuerToJson(t).at("name"), "trustedIssuers/corp");
}

TEST(RecordsTest, NormalizeEmail) {
  EXPECT_EQ(*NormalizeEmail("Alice@Example.COM"), "alice@example.com");
  for (std::string_view bad : {"", "alice", "@example.com", "a@b", "a@@b.com", "a b@c.com",
                               "a@.com", "a@b..com", "a@b.com.", "a:b@c.com"}) {
    auto r = NormalizeEmail(bad, "user email");
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, Code::kInvalidArgument);
  }
  EXPECT_FALSE(NormalizeEmail(std::string(250, 'a') + "@b.com"));
}

}  // namespace
}  // namespace moat::identity
