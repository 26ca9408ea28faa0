// Asymmetric keys: RSA (2048+ bits, PKCS#1 v1.5 / RS256) and ECDSA P-256 (ES256).
//
// PublicKey and PrivateKey own one OpenSSL EVP_PKEY each. They are move-only; a verifier that
// hands one key to many threads wraps it in PublicKeyPtr (shared_ptr<const PublicKey>).
//
// Every import applies one key policy (ValidatePublicKeyPolicy below), because public keys
// arrive from untrusted places (keys:upload certificates, JWKS of external issuers, key
// files): RSA moduli of 2048..8192 bits, odd public exponents 3..2^64-1, no ROCA-weak moduli
// (CVE-2017-15361); EC keys only on P-256, with the point validated.
//
// Thread-safety: const methods may be called concurrently (OpenSSL allows concurrent use of
// one EVP_PKEY as long as nobody mutates it, and each operation here uses its own context).
#pragma once

#include <openssl/types.h>

#include <memory>
#include <string>
#include <string_view>

#include "common/error.h"

namespace moat::crypto {

enum class KeyType { kRsa, kEcP256 };

// "RSA" / "EC P-256".
std::string_view KeyTypeName(KeyType type);

class PublicKey {
 public:
  // SubjectPublicKeyInfo ("-----BEGIN PUBLIC KEY-----"). Exactly one block; no trailing data.
  static Result<PublicKey> FromSpkiPem(std::string_view pem);
  // DER SubjectPublicKeyInfo; the whole input must be consumed.
  static Result<PublicKey> FromSpkiDer(std::string_view der);
  // RSA from big-endian unsigned modulus and exponent (JWK "n"/"e" after base64url).
  static Result<PublicKey> FromRsaComponents(std::string_view n, std::string_view e);
  // P-256 from 32-byte big-endian affine coordinates (JWK "x"/"y"); the point must be on
  // the curve.
  static Result<PublicKey> FromEcP256Coordinates(std::string_view x, std::string_view y);

  PublicKey(PublicKey&& other) noexcept;
  PublicKey& operator=(PublicKey&& other) noexcept;
  PublicKey(const PublicKey&) = delete;
  PublicKey& operator=(const PublicKey&) = delete;
  ~PublicKey();

  KeyType type() const { return type_; }
  // Modulus size for RSA, 256 for P-256.
  int bits() const { return bits_; }

  std::string ToSpkiPem() const;
  std::string ToSpkiDer() const;
  // RSA only: minimal big-endian n and e. Empty strings for an EC key.
  std::string RsaModulus() const;
  std::string RsaExponent() const;
  // P-256 only: 32-byte big-endian x and y. Empty strings for an RSA key.
  std::string EcX() const;
  std::string EcY() const;

  // True iff both keys are the same public key.
  bool Equals(const PublicKey& other) const;

  // The underlying key, for the other files of moat_crypto. Never null.
  EVP_PKEY* raw() const { return pkey_; }
  // A verify context prepared once (SHA-256, PKCS#1 v1.5 for RSA) that callers duplicate per
  // operation with EVP_PKEY_CTX_dup and never use directly; null if preparation failed.
  EVP_PKEY_CTX* verify_template() const { return verify_template_; }

  // Takes ownership of `pkey` after checking the key policy.
  static Result<PublicKey> Adopt(EVP_PKEY* pkey);

 private:
  friend class PrivateKey;
  PublicKey(EVP_PKEY* pkey, KeyType type, int bits);
  EVP_PKEY* pkey_;
  KeyType type_;
  int bits_;
  EVP_PKEY_CTX* verify_template_ = nullptr;
};

using PublicKeyPtr = std::shared_ptr<const PublicKey>;

inline PublicKeyPtr Share(PublicKey&& key) {
  return std::make_shared<const PublicKey>(std::move(key));
}

class PrivateKey {
 public:
  // Fresh keys from the OpenSSL CSPRNG. Errors only if OpenSSL fails (returned as kInternal).
  static Result<PrivateKey> GenerateRsa(int bits = 2048);
  static Result<PrivateKey> GenerateRsa2048() { return GenerateRsa(2048); }
  static Result<PrivateKey> GenerateEcP256();

  // Unencrypted PEM: PKCS#8 "BEGIN PRIVATE KEY" (Google key files), PKCS#1 "BEGIN RSA
  // PRIVATE KEY" (older files, python test fixtures) or SEC1 "BEGIN EC PRIVATE KEY".
  // Encrypted PEM is refused (never prompts for a passphrase). The key must pass the policy.
  static Result<PrivateKey> FromPem(std::string_view pem);
  // DER PKCS#8 PrivateKeyInfo.
  static Result<PrivateKey> FromPkcs8Der(std::string_view der);

  PrivateKey(PrivateKey&& other) noexcept;
  PrivateKey& operator=(PrivateKey&& other) noexcept;
  PrivateKey(const PrivateKey&) = delete;
  PrivateKey& operator=(const PrivateKey&) = delete;
  ~PrivateKey();

  KeyType type() const { return type_; }
  int bits() const { return bits_; }

  // "-----BEGIN PRIVATE KEY-----" PKCS#8, unencrypted. The result is secret: never log it.
  std::string ToPkcs8Pem() const;
  std::string ToPkcs8Der() const;

  // The matching public key.
  PublicKey Public() const;

  EVP_PKEY* raw() const { return pkey_; }

 private:
  PrivateKey(EVP_PKEY* pkey, KeyType type, int bits) : pkey_(pkey), type_(type), bits_(bits) {}
  static Result<PrivateKey> Adopt(EVP_PKEY* pkey);
  EVP_PKEY* pkey_;
  KeyType type_;
  int bits_;
};

// Checks the key policy above on any EVP_PKEY (public or private). On failure the message
// says which rule failed, e.g. "RSA key of 1024 bits is too small; at least 2048 are required".
Status ValidatePublicKeyPolicy(EVP_PKEY* pkey);

// True iff the RSA modulus has the structure of keys from the Infineon library affected by
// ROCA (CVE-2017-15361), whose private keys can be factored.
bool IsRocaWeakModulus(std::string_view modulus_be);

// A 40-hex-digit key id (SHA-256 of the SPKI DER, truncated to 20 bytes), shaped like
// Google's `private_key_id` and used as the JWS `kid`. Stable for a given public key.
std::string KeyId(const PublicKey& key);

}  // namespace moat::crypto
