#include <gtest/gtest.h>

#include "crypto/aead.h"
#include "crypto/hash.h"

namespace moat::crypto {
namespace {

TEST(CryptoHash, KnownVectors) {
  EXPECT_EQ(HexEncode(Sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(HexEncode(Sha256("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  // RFC 4231 test case 2.
  EXPECT_EQ(HexEncode(HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(HmacSha256("", "x").size(), 32u);
  EXPECT_EQ(HexEncode(std::string("\x00\xff\x10", 3)), "00ff10");
}

TEST(CryptoHash, ConstantTimeEquals) {
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_TRUE(ConstantTimeEquals("secret", "secret"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secreT"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secret1"));
}

class CryptoAead : public ::testing::Test {
 protected:
  std::string key_ = std::string(32, '\x42');
};

TEST_F(CryptoAead, RoundTripsAndUsesFreshNonces) {
  for (std::string plain : {std::string(), std::string("x"), std::string(5000, 'k')}) {
    Result<std::string> a = AeadSeal(key_, plain, "projects/p/keys/1");
    Result<std::string> b = AeadSeal(key_, plain, "projects/p/keys/1");
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->size(), plain.size() + kAeadNonceBytes + kAeadTagBytes);
    EXPECT_NE(*a, *b);  // random nonce
    Result<std::string> opened = AeadOpen(key_, *a, "projects/p/keys/1");
    ASSERT_TRUE(opened);
    EXPECT_EQ(*opened, plain);
  }
}

TEST_F(CryptoAead, DetectsEveryTamperedByte) {
  Result<std::string> sealed = AeadSeal(key_, "private key bytes", "ctx");
  ASSERT_TRUE(sealed);
  for (size_t i = 0; i < sealed->size(); ++i) {
    std::string t = *sealed;
    t[i] = static_cast<char>(t[i] ^ 0x01);
    Result<std::string> r = AeadOpen(key_, t, "ctx");
    ASSERT_FALSE(r) << "byte " << i;
    EXPECT_EQ(r.error().code, Code::kDataLoss);
  }
  EXPECT_FALSE(AeadOpen(key_, *sealed, "other ctx"));
  EXPECT_FALSE(AeadOpen(std::string(32, '\x43'), *sealed, "ctx"));
  EXPECT_FALSE(AeadOpen(key_, sealed->substr(0, 27), "ctx"));
  EXPECT_FALSE(AeadOpen(key_, sealed->substr(0, sealed->size() - 1), "ctx"));
  EXPECT_FALSE(AeadOpen(key_, "", "ctx"));
}

TEST_F(CryptoAead, RefusesBadKeySizes) {
  EXPECT_EQ(AeadSeal("short", "x", "").error().code, Code::kInvalidArgument);
  EXPECT_EQ(AeadOpen(std::string(16, 'k'), std::string(40, 'x'), "").error().code,
            Code::kInvalidArgument);
}

}  // namespace
}  // namespace moat::crypto
