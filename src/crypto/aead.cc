#include "crypto/aead.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <climits>

#include "common/random.h"
#include "crypto/ossl.h"

namespace moat::crypto {
namespace {

using internal::CipherCtx;

const unsigned char* U(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

Error Corrupt() {
  internal::ClearErrors();
  return MakeError(Code::kDataLoss,
                   "sealed data is corrupt or was sealed under another key or context");
}

}  // namespace

Result<std::string> AeadSeal(std::string_view key, std::string_view plaintext,
                             std::string_view aad) {
  if (key.size() != kAeadKeyBytes) return InvalidArgument("encryption key must be 32 bytes");
  if (plaintext.size() > INT_MAX / 2 || aad.size() > INT_MAX / 2) {
    return InvalidArgument("data to seal is too large");
  }
  std::string nonce = RandomBytes(kAeadNonceBytes);
  std::string out = nonce;
  out.resize(kAeadNonceBytes + plaintext.size() + kAeadTagBytes);
  auto* ct = reinterpret_cast<unsigned char*>(out.data()) + kAeadNonceBytes;
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int len = 0, fin = 0;
  if (!ctx ||
      EVP_EncryptInit_ex2(ctx.get(), internal::Aes256Gcm(), U(key), U(nonce), nullptr) != 1 ||
      (!aad.empty() &&
       EVP_EncryptUpdate(ctx.get(), nullptr, &len, U(aad), static_cast<int>(aad.size())) != 1) ||
      EVP_EncryptUpdate(ctx.get(), ct, &len, U(plaintext), static_cast<int>(plaintext.size())) !=
          1 ||
      EVP_EncryptFinal_ex(ctx.get(), ct + len, &fin) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kAeadTagBytes, ct + plaintext.size()) !=
          1) {
    internal::ClearErrors();
    return Internal("encryption failed");
  }
  return out;
}

Result<std::string> AeadOpen(std::string_view key, std::string_view sealed, std::string_view aad) {
  if (key.size() != kAeadKeyBytes) return InvalidArgument("encryption key must be 32 bytes");
  if (sealed.size() < kAeadNonceBytes + kAeadTagBytes || sealed.size() > INT_MAX / 2 ||
      aad.size() > INT_MAX / 2) {
    return Corrupt();
  }
  std::string_view nonce = sealed.substr(0, kAeadNonceBytes);
  std::string_view ct =
      sealed.substr(kAeadNonceBytes, sealed.size() - kAeadNonceBytes - kAeadTagBytes);
  std::string tag(sealed.substr(sealed.size() - kAeadTagBytes));
  std::string plain(ct.size(), '\0');
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int len = 0, fin = 0;
  if (!ctx ||
      EVP_DecryptInit_ex2(ctx.get(), internal::Aes256Gcm(), U(key), U(nonce), nullptr) != 1 ||
      (!aad.empty() &&
       EVP_DecryptUpdate(ctx.get(), nullptr, &len, U(aad), static_cast<int>(aad.size())) != 1) ||
      EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()), &len, U(ct),
                        static_cast<int>(ct.size())) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kAeadTagBytes, tag.data()) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()) + len, &fin) !=
          1) {
    // Never hand back unauthenticated plaintext.
    OPENSSL_cleanse(plain.data(), plain.size());
    return Corrupt();
  }
  return plain;
}

}  // namespace moat::crypto
