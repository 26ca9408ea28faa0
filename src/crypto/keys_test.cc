#include "crypto/keys.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "crypto/jws.h"

namespace moat::crypto {
namespace {

// PEM produced directly by OpenSSL (not by the code under test) for import tests.
std::string TraditionalPem(EVP_PKEY* pkey) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey_traditional(bio, pkey, nullptr, nullptr, 0, nullptr, nullptr);
  char* p = nullptr;
  long n = BIO_get_mem_data(bio, &p);
  std::string out(p, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

std::string Pkcs8Pem(EVP_PKEY* pkey, bool encrypted) {
  BIO* bio = BIO_new(BIO_s_mem());
  static char pass[] = "notasecret";
  PEM_write_bio_PKCS8PrivateKey(bio, pkey, encrypted ? EVP_aes_256_cbc() : nullptr,
                                encrypted ? pass : nullptr, encrypted ? 10 : 0, nullptr, nullptr);
  char* p = nullptr;
  long n = BIO_get_mem_data(bio, &p);
  std::string out(p, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

class CryptoKeys : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    rsa_ = new PrivateKey(PrivateKey::GenerateRsa2048().value());
    ec_ = new PrivateKey(PrivateKey::GenerateEcP256().value());
  }
  static void TearDownTestSuite() {
    delete rsa_;
    delete ec_;
  }
  static PrivateKey* rsa_;
  static PrivateKey* ec_;
};
PrivateKey* CryptoKeys::rsa_ = nullptr;
PrivateKey* CryptoKeys::ec_ = nullptr;

TEST_F(CryptoKeys, GeneratesKeysOfTheRightShape) {
  EXPECT_EQ(rsa_->type(), KeyType::kRsa);
  EXPECT_EQ(rsa_->bits(), 2048);
  EXPECT_EQ(ec_->type(), KeyType::kEcP256);
  EXPECT_EQ(ec_->bits(), 256);
  EXPECT_EQ(rsa_->Public().RsaExponent(), std::string("\x01\x00\x01", 3));
  EXPECT_EQ(rsa_->Public().RsaModulus().size(), 256u);
  EXPECT_EQ(ec_->Public().EcX().size(), 32u);
  EXPECT_TRUE(ec_->Public().RsaModulus().empty());
  EXPECT_FALSE(PrivateKey::GenerateRsa(1024));
}

TEST_F(CryptoKeys, Pkcs8PemRoundTrip) {
  for (PrivateKey* k : {rsa_, ec_}) {
    std::string pem = k->ToPkcs8Pem();
    EXPECT_EQ(pem.rfind("-----BEGIN PRIVATE KEY-----\n", 0), 0u);
    Result<PrivateKey> back = PrivateKey::FromPem(pem);
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_TRUE(back->Public().Equals(k->Public()));
    Result<PrivateKey> from_der = PrivateKey::FromPkcs8Der(k->ToPkcs8Der());
    ASSERT_TRUE(from_der);
    EXPECT_TRUE(from_der->Public().Equals(k->Public()));
    // A signature by the re-imported key verifies under the original public key.
    JwsAlg alg = AlgForKey(k->type());
    EXPECT_TRUE(Verify(alg, k->Public(), "m", Sign(alg, *back, "m").value()));
  }
}

TEST_F(CryptoKeys, AcceptsPkcs1AndSec1Pem) {
  std::string pkcs1 = TraditionalPem(rsa_->raw());
  ASSERT_EQ(pkcs1.rfind("-----BEGIN RSA PRIVATE KEY-----", 0), 0u);
  Result<PrivateKey> r = PrivateKey::FromPem(pkcs1);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->Public().Equals(rsa_->Public()));
  std::string sec1 = TraditionalPem(ec_->raw());
  ASSERT_EQ(sec1.rfind("-----BEGIN EC PRIVATE KEY-----", 0), 0u);
  Result<PrivateKey> e = PrivateKey::FromPem(sec1);
  ASSERT_TRUE(e) << e.error().message;
  EXPECT_TRUE(e->Public().Equals(ec_->Public()));
}

TEST_F(CryptoKeys, RefusesBadPrivateKeys) {
  Result<PrivateKey> enc = PrivateKey::FromPem(Pkcs8Pem(rsa_->raw(), true));
  ASSERT_FALSE(enc);
  EXPECT_EQ(enc.error().message, "encrypted private keys are not supported");
  EXPECT_FALSE(PrivateKey::FromPem(""));
  EXPECT_FALSE(PrivateKey::FromPem("not a pem"));
  EXPECT_FALSE(PrivateKey::FromPem(rsa_->Public().ToSpkiPem()));
  std::string pem = rsa_->ToPkcs8Pem();
  EXPECT_FALSE(PrivateKey::FromPem(pem + pem));         // two blocks
  EXPECT_FALSE(PrivateKey::FromPem(pem + "trailing"));  // trailing garbage
  std::string corrupt = pem;
  corrupt[40] = corrupt[40] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(PrivateKey::FromPem(corrupt));

  EVP_PKEY* small = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(1024));
  Result<PrivateKey> weak = PrivateKey::FromPem(Pkcs8Pem(small, false));
  ASSERT_FALSE(weak);
  EXPECT_EQ(weak.error().message, "RSA key of 1024 bits is too small; at least 2048 are required");
  EVP_PKEY_free(small);
  EVP_PKEY* p384 = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384");
  Result<PrivateKey> wrong_curve = PrivateKey::FromPem(Pkcs8Pem(p384, false));
  ASSERT_FALSE(wrong_curve);
  EXPECT_EQ(wrong_curve.error().message, "EC key must be on the P-256 curve");
  EVP_PKEY_free(p384);
  EVP_PKEY* ed = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  EXPECT_FALSE(PrivateKey::FromPem(Pkcs8Pem(ed, false)));
  EVP_PKEY_free(ed);
}

TEST_F(CryptoKeys, PublicKeyPemAndDerRoundTrip) {
  for (PrivateKey* k : {rsa_, ec_}) {
    PublicKey pub = k->Public();
    std::string pem = pub.ToSpkiPem();
    EXPECT_EQ(pem.rfind("-----BEGIN PUBLIC KEY-----\n", 0), 0u);
    Result<PublicKey> a = PublicKey::FromSpkiPem(pem);
    ASSERT_TRUE(a);
    EXPECT_TRUE(a->Equals(pub));
    Result<PublicKey> b = PublicKey::FromSpkiDer(pub.ToSpkiDer());
    ASSERT_TRUE(b);
    EXPECT_TRUE(b->Equals(pub));
    EXPECT_FALSE(PublicKey::FromSpkiDer(pub.ToSpkiDer() + "x"));
    EXPECT_FALSE(PublicKey::FromSpkiPem(pem + pem));
  }
  EXPECT_FALSE(rsa_->Public().Equals(ec_->Public()));
}

TEST_F(CryptoKeys, KeyIdIsStable40Hex) {
  std::string id = KeyId(rsa_->Public());
  EXPECT_EQ(id.size(), 40u);
  EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(id, KeyId(PublicKey::FromSpkiPem(rsa_->Public().ToSpkiPem()).value()));
  EXPECT_NE(id, KeyId(ec_->Public()));
}

TEST_F(CryptoKeys, RsaComponentPolicy) {
  PublicKey pub = rsa_->Public();
  EXPECT_TRUE(PublicKey::FromRsaComponents(pub.RsaModulus(), pub.RsaExponent()));
  EXPECT_FALSE(PublicKey::FromRsaComponents(pub.RsaModulus(), std::string("\x01", 1)));
  EXPECT_FALSE(PublicKey::FromRsaComponents(pub.RsaModulus(), std::string("\x01\x00\x00", 3)));
  EXPECT_FALSE(PublicKey::FromRsaComponents(pub.RsaModulus().substr(0, 128), pub.RsaExponent()));
  EXPECT_FALSE(IsRocaWeakModulus(pub.RsaModulus()));
}

}  // namespace
}  // namespace moat::crypto
