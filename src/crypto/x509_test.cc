#include "crypto/x509.h"

#include <gtest/gtest.h>

namespace moat::crypto {
namespace {

TEST(CryptoX509, SelfSignedRoundTripForRsaAndEc) {
  TimePoint nb(Seconds(1'700'000'000));
  TimePoint na(Seconds(1'700'000'000 + 10 * 365 * 86400));
  for (auto gen : {&PrivateKey::GenerateRsa2048, &PrivateKey::GenerateEcP256}) {
    PrivateKey key = gen().value();
    Result<std::string> pem =
        CreateSelfSignedCertificate(key, "sa@p.iam.gserviceaccount.com", nb, na);
    ASSERT_TRUE(pem) << pem.error().message;
    EXPECT_EQ(pem->rfind("-----BEGIN CERTIFICATE-----\n", 0), 0u);
    Result<CertificateInfo> info = ParseCertificatePem(*pem);
    ASSERT_TRUE(info) << info.error().message;
    EXPECT_TRUE(info->key.Equals(key.Public()));
    EXPECT_EQ(info->not_before, nb);
    EXPECT_EQ(info->not_after, na);
    EXPECT_EQ(info->subject_cn, "sa@p.iam.gserviceaccount.com");
    EXPECT_EQ(info->serial_hex.size(), 32u);
    EXPECT_TRUE(info->self_signed);
    // Serials are random.
    EXPECT_NE(
        ParseCertificatePem(CreateSelfSignedCertificate(key, "x", nb, na).value())->serial_hex,
        info->serial_hex);
  }
}

TEST(CryptoX509, RefusesBadInput) {
  PrivateKey key = PrivateKey::GenerateEcP256().value();
  TimePoint t(Seconds(1'700'000'000));
  EXPECT_FALSE(CreateSelfSignedCertificate(key, "cn", t, t));
  EXPECT_FALSE(CreateSelfSignedCertificate(key, "", t, t + Seconds(1)));
  std::string pem = CreateSelfSignedCertificate(key, "cn", t, t + Seconds(60)).value();
  EXPECT_FALSE(ParseCertificatePem(""));
  EXPECT_FALSE(ParseCertificatePem(pem + pem));
  EXPECT_FALSE(ParseCertificatePem(key.Public().ToSpkiPem()));
  std::string corrupt = pem;
  corrupt[100] = corrupt[100] == 'A' ? 'B' : 'A';
  Result<CertificateInfo> c = ParseCertificatePem(corrupt);
  // Either unparseable, or parsed with a signature that no longer verifies.
  EXPECT_TRUE(!c || !c->self_signed);
  Result<CertificateInfo> info = ParseCertificatePem("  \n" + pem + "\n\n");
  EXPECT_TRUE(info);
}

}  // namespace
}  // namespace moat::crypto
