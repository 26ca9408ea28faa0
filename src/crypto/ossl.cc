#include "crypto/ossl.h"

#include <openssl/err.h>

#include <cstdint>
#include <cstdlib>

namespace moat::crypto::internal {

const EVP_MD* Sha256Md() {
  static const EVP_MD* md = [] {
    EVP_MD* m = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (m == nullptr) std::abort();
    return m;
  }();
  return md;
}

const EVP_CIPHER* Aes256Gcm() {
  static const EVP_CIPHER* c = [] {
    EVP_CIPHER* x = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
    if (x == nullptr) std::abort();
    return x;
  }();
  return c;
}

void ClearErrors() { ERR_clear_error(); }

Bio MemReader(std::string_view data) {
  if (data.size() > static_cast<size_t>(INT32_MAX)) return Bio(BIO_new_mem_buf("", 0));
  return Bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

std::string BioContents(BIO* bio) {
  char* p = nullptr;
  long n = BIO_get_mem_data(bio, &p);
  if (n <= 0 || p == nullptr) return {};
  return std::string(p, static_cast<size_t>(n));
}

std::string BnBytes(const BIGNUM* bn, int width) {
  int n = BN_num_bytes(bn);
  int len = width > n ? width : n;
  std::string out(static_cast<size_t>(len), '\0');
  if (width > 0) {
    BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), len);
  } else {
    BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
  }
  return out;
}

}  // namespace moat::crypto::internal

namespace moat::crypto::internal {
namespace {
bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}
}  // namespace

std::string SinglePemLabel(std::string_view text) {
  static constexpr std::string_view kBegin = "-----BEGIN ";
  static constexpr std::string_view kEnd = "-----END ";
  static constexpr std::string_view kDashes = "-----";
  std::string_view s = Trim(text);
  if (s.substr(0, kBegin.size()) != kBegin) return {};
  size_t label_end = s.find(kDashes, kBegin.size());
  if (label_end == std::string_view::npos) return {};
  std::string_view label = s.substr(kBegin.size(), label_end - kBegin.size());
  if (label.empty() || label.size() > 64 || label.find('\n') != std::string_view::npos) return {};
  // Exactly one BEGIN and one END, and the END names the same label and ends the text.
  if (s.find(kBegin, 1) != std::string_view::npos) return {};
  size_t end = s.find(kEnd);
  if (end == std::string_view::npos) return {};
  std::string expected_tail = std::string(kEnd) + std::string(label) + std::string(kDashes);
  if (s.substr(end) != expected_tail) return {};
  return std::string(label);
}

}  // namespace moat::crypto::internal
