// Internal to moat_crypto: RAII deleters for OpenSSL objects and the error-queue helper.
// Not part of the public API (other modules include keys.h, jws.h, … instead).
#pragma once

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <string>
#include <string_view>

namespace moat::crypto::internal {

template <class T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};

using Bio = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using Bn = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using BnCtx = std::unique_ptr<BN_CTX, Deleter<BN_CTX, BN_CTX_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX, EVP_MD_CTX_free>>;
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, Deleter<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free>>;
using EcdsaSig = std::unique_ptr<ECDSA_SIG, Deleter<ECDSA_SIG, ECDSA_SIG_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using X509NamePtr = std::unique_ptr<X509_NAME, Deleter<X509_NAME, X509_NAME_free>>;

// SHA-256 and AES-256-GCM fetched once from the default provider (implicit fetches by name on
// every call are measurably slower in OpenSSL 3). Never null; aborts if OpenSSL lacks them.
const EVP_MD* Sha256Md();
const EVP_CIPHER* Aes256Gcm();

// Drops whatever OpenSSL queued: our errors carry their own messages, and a stale queue would
// otherwise leak into an unrelated later call on the same thread.
void ClearErrors();

// A read-only memory BIO over `data` (not copied; `data` must outlive the BIO).
Bio MemReader(std::string_view data);
// Everything written to a memory BIO, as a string.
std::string BioContents(BIO* bio);

// Big-endian unsigned bytes of a BIGNUM, left-padded with zeros to `width` if width > 0.
std::string BnBytes(const BIGNUM* bn, int width = 0);

}  // namespace moat::crypto::internal

namespace moat::crypto::internal {

// The label of the only PEM block in `text` ("PUBLIC KEY", "CERTIFICATE", …), or empty if
// `text` is not exactly one well-formed block surrounded by optional whitespace.
std::string SinglePemLabel(std::string_view text);

}  // namespace moat::crypto::internal
