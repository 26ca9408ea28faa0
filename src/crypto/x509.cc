#include "crypto/x509.h"

#include <openssl/asn1.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <ctime>
#include <optional>

#include "common/random.h"
#include "crypto/hash.h"
#include "crypto/ossl.h"

namespace moat::crypto {
namespace {

using internal::Bio;
using internal::Bn;
using internal::X509Ptr;

int64_t ToUnix(TimePoint t) {
  return std::chrono::duration_cast<Seconds>(t.time_since_epoch()).count();
}

std::optional<TimePoint> FromAsn1(const ASN1_TIME* t) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return std::nullopt;
  time_t secs = timegm(&tm);
  // A nanosecond TimePoint ends in 2262; certificates often say 9999-12-31 ("never expires").
  constexpr int64_t kMaxSecs =
      std::chrono::duration_cast<Seconds>(TimePoint::max().time_since_epoch()).count();
  if (static_cast<int64_t>(secs) >= kMaxSecs) return TimePoint::max();
  if (static_cast<int64_t>(secs) <= -kMaxSecs) return TimePoint::min();
  return TimePoint(Seconds(static_cast<int64_t>(secs)));
}

bool AddExtension(X509* cert, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) return false;
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return ok == 1;
}

}  // namespace

Result<std::string> CreateSelfSignedCertificate(const PrivateKey& key, std::string_view common_name,
                                                TimePoint not_before, TimePoint not_after) {
  if (not_after <= not_before) return InvalidArgument("certificate validity window is empty");
  if (common_name.empty() || common_name.size() > 64) {
    return InvalidArgument("certificate common name must be 1 to 64 characters");
  }
  X509Ptr cert(X509_new());
  if (!cert) return Internal("certificate creation failed");
  // Serial: 16 random bytes with the top bit cleared, so the INTEGER is positive.
  std::string serial = RandomBytes(16);
  serial[0] = static_cast<char>(serial[0] & 0x7f);
  serial[0] = static_cast<char>(serial[0] | 0x01);  // and never has a leading zero byte
  Bn bn(BN_bin2bn(reinterpret_cast<const unsigned char*>(serial.data()), 16, nullptr));
  X509_NAME* name = X509_get_subject_name(cert.get());
  bool ok = bn && X509_set_version(cert.get(), X509_VERSION_3) == 1 &&
            BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get())) != nullptr &&
            ASN1_TIME_set(X509_getm_notBefore(cert.get()),
                          static_cast<time_t>(ToUnix(not_before))) != nullptr &&
            ASN1_TIME_set(X509_getm_notAfter(cert.get()), static_cast<time_t>(ToUnix(not_after))) !=
                nullptr &&
            X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                       reinterpret_cast<const unsigned char*>(common_name.data()),
                                       static_cast<int>(common_name.size()), -1, 0) == 1 &&
            X509_set_issuer_name(cert.get(), name) == 1 &&
            X509_set_pubkey(cert.get(), key.raw()) == 1 &&
            AddExtension(cert.get(), NID_basic_constraints, "critical,CA:FALSE") &&
            AddExtension(cert.get(), NID_key_usage, "critical,digitalSignature") &&
            AddExtension(cert.get(), NID_subject_key_identifier, "hash") &&
            X509_sign(cert.get(), key.raw(), internal::Sha256Md()) > 0;
  if (!ok) {
    internal::ClearErrors();
    return Internal("certificate creation failed");
  }
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert.get()) != 1) {
    internal::ClearErrors();
    return Internal("certificate encoding failed");
  }
  return internal::BioContents(bio.get());
}

Result<CertificateInfo> ParseCertificatePem(std::string_view pem) {
  if (pem.size() > 65536) return InvalidArgument("certificate PEM is too large");
  if (internal::SinglePemLabel(pem) != "CERTIFICATE") {
    return InvalidArgument("certificate must be one PEM block labelled `CERTIFICATE`");
  }
  Bio bio = internal::MemReader(pem);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) {
    internal::ClearErrors();
    return InvalidArgument("certificate PEM does not contain a valid X.509 certificate");
  }
  EVP_PKEY* pkey = X509_get_pubkey(cert.get());  // new reference
  if (pkey == nullptr) {
    internal::ClearErrors();
    return InvalidArgument("certificate has an unsupported public key");
  }
  MOAT_TRY(PublicKey key, PublicKey::Adopt(pkey));
  std::optional<TimePoint> nb = FromAsn1(X509_get0_notBefore(cert.get()));
  std::optional<TimePoint> na = FromAsn1(X509_get0_notAfter(cert.get()));
  if (!nb || !na) {
    internal::ClearErrors();
    return InvalidArgument("certificate has an invalid validity window");
  }
  CertificateInfo info{std::move(key), *nb, *na, "", "", false};
  X509_NAME* subject = X509_get_subject_name(cert.get());
  int idx = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (idx >= 0) {
    ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx));
    unsigned char* utf8 = nullptr;
    int len = ASN1_STRING_to_UTF8(&utf8, data);
    if (len >= 0) {
      info.subject_cn.assign(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
      OPENSSL_free(utf8);
    }
  }
  const ASN1_INTEGER* serial = X509_get0_serialNumber(cert.get());
  Bn serial_bn(ASN1_INTEGER_to_BN(serial, nullptr));
  if (serial_bn) info.serial_hex = HexEncode(internal::BnBytes(serial_bn.get()));
  info.self_signed = X509_NAME_cmp(subject, X509_get_issuer_name(cert.get())) == 0 &&
                     X509_verify(cert.get(), info.key.raw()) == 1;
  internal::ClearErrors();
  return info;
}

}  // namespace moat::crypto
