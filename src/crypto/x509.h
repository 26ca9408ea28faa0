// X.509 certificates as Google's IAM uses them: the self-signed certificate of a
// service-account key (served at /robot/v1/metadata/x509/EMAIL and returned by keys.get with
// TYPE_X509_PEM_FILE), and the certificate a user uploads with keys:upload.
//
// Parsing handles untrusted input: exactly one PEM "CERTIFICATE" block, its key must pass the
// key policy of keys.h. Chains, extensions and trust are not evaluated: the certificate is a
// container for a public key and a validity window, as in Google's API.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/error.h"
#include "crypto/keys.h"

namespace moat::crypto {

// A self-signed X.509 v3 certificate (PEM) for `key` with subject and issuer CN=common_name,
// a random positive 128-bit serial, basicConstraints CA:FALSE, keyUsage digitalSignature,
// signed with SHA-256 (RSA PKCS#1 v1.5 or ECDSA). Errors: not_after <= not_before or a CN
// longer than 64 characters (kInvalidArgument), OpenSSL failure (kInternal).
Result<std::string> CreateSelfSignedCertificate(const PrivateKey& key, std::string_view common_name,
                                                TimePoint not_before, TimePoint not_after);

struct CertificateInfo {
  PublicKey key;
  TimePoint not_before;
  TimePoint not_after;
  std::string subject_cn;    // empty if the subject has no CN
  std::string serial_hex;    // lowercase hex
  bool self_signed = false;  // issuer == subject and the signature verifies under `key`
};

// Parses one PEM certificate. Errors (kInvalidArgument): not exactly one CERTIFICATE block,
// not a valid certificate, or its key fails the key policy.
Result<CertificateInfo> ParseCertificatePem(std::string_view pem);

}  // namespace moat::crypto
