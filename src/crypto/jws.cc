#include "crypto/jws.h"

#include <openssl/ecdsa.h>
#include <openssl/rsa.h>

#include <cstring>

#include "common/base64.h"
#include "common/json.h"
#include "crypto/hash.h"
#include "crypto/ossl.h"

namespace moat::crypto {
namespace {

using internal::Bn;
using internal::EcdsaSig;
using internal::PkeyCtx;

TokenFailure Fail(TokenError reason, std::string message) {
  return TokenFailure{reason, std::move(message)};
}

// A verify context for one call: digest-level verification with SHA-256 (and PKCS#1 v1.5
// padding for RSA). Per call, so one EVP_PKEY can be used from many threads at once.
PkeyCtx VerifyCtx(EVP_PKEY* pkey, bool rsa) {
  PkeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr));
  if (!ctx || EVP_PKEY_verify_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_signature_md(ctx.get(), internal::Sha256Md()) != 1 ||
      (rsa && EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1)) {
    internal::ClearErrors();
    return nullptr;
  }
  return ctx;
}

bool VerifyDigest(const PublicKey& key, std::string_view digest, std::string_view sig) {
  // INVARIANT: the template is only ever read (duplicated), so concurrent calls are safe.
  PkeyCtx ctx(key.verify_template() ? EVP_PKEY_CTX_dup(key.verify_template()) : nullptr);
  if (!ctx) ctx = VerifyCtx(key.raw(), key.type() == KeyType::kRsa);
  if (!ctx) return false;
  int rc =
      EVP_PKEY_verify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                      reinterpret_cast<const unsigned char*>(digest.data()), digest.size());
  if (rc != 1) internal::ClearErrors();
  return rc == 1;
}

// Parses a DER ECDSA-Sig-Value, refusing BER variants and trailing bytes by re-encoding and
// comparing (so exactly one byte string is accepted per (r, s)).
EcdsaSig ParseStrictDer(std::string_view der) {
  if (der.empty() || der.size() > 128) return nullptr;
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  EcdsaSig sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  if (!sig || p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    internal::ClearErrors();
    return nullptr;
  }
  unsigned char* re = nullptr;
  int len = i2d_ECDSA_SIG(sig.get(), &re);
  bool same = len == static_cast<int>(der.size()) && std::memcmp(re, der.data(), der.size()) == 0;
  OPENSSL_free(re);
  if (!same) return nullptr;
  return sig;
}

}  // namespace

std::string_view JwsAlgName(JwsAlg alg) { return alg == JwsAlg::kRs256 ? "RS256" : "ES256"; }

std::optional<JwsAlg> ParseJwsAlg(std::string_view name) {
  if (name == "RS256") return JwsAlg::kRs256;
  if (name == "ES256") return JwsAlg::kEs256;
  return std::nullopt;
}

JwsAlg AlgForKey(KeyType type) { return type == KeyType::kRsa ? JwsAlg::kRs256 : JwsAlg::kEs256; }

bool KeyMatchesAlg(const PublicKey& key, JwsAlg alg) { return AlgForKey(key.type()) == alg; }

std::string_view TokenErrorName(TokenError e) {
  switch (e) {
    case TokenError::kMalformed:
      return "malformed";
    case TokenError::kTooLarge:
      return "too_large";
    case TokenError::kUnsupportedAlgorithm:
      return "unsupported_algorithm";
    case TokenError::kForbiddenHeader:
      return "forbidden_header";
    case TokenError::kBadType:
      return "bad_type";
    case TokenError::kUnknownKey:
      return "unknown_key";
    case TokenError::kKeyMismatch:
      return "key_mismatch";
    case TokenError::kBadSignature:
      return "bad_signature";
    case TokenError::kMissingClaim:
      return "missing_claim";
    case TokenError::kBadClaim:
      return "bad_claim";
    case TokenError::kExpired:
      return "expired";
    case TokenError::kNotYetValid:
      return "not_yet_valid";
    case TokenError::kIssuedInFuture:
      return "issued_in_future";
    case TokenError::kLifetimeTooLong:
      return "lifetime_too_long";
    case TokenError::kWrongIssuer:
      return "wrong_issuer";
    case TokenError::kWrongAudience:
      return "wrong_audience";
  }
  return "unknown";
}

void throw_exception_from_error(const TokenFailure& f, const boost::source_location& loc) {
  throw_exception_from_error(f.ToError(), loc);
}

std::string QuoteUntrusted(std::string_view s) {
  constexpr size_t kMax = 64;
  std::string out = "`";
  for (size_t i = 0; i < s.size() && i < kMax; ++i) {
    char c = s[i];
    out += (c >= 0x20 && c < 0x7f && c != '`') ? c : '?';
  }
  if (s.size() > kMax) out += "...";
  out += '`';
  return out;
}

// ---- primitives ----

std::optional<std::string> EcdsaRawToDer(std::string_view raw) {
  if (raw.size() != 64) return std::nullopt;
  const auto* p = reinterpret_cast<const unsigned char*>(raw.data());
  Bn r(BN_bin2bn(p, 32, nullptr));
  Bn s(BN_bin2bn(p + 32, 32, nullptr));
  EcdsaSig sig(ECDSA_SIG_new());
  if (!r || !s || !sig || ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) {
    internal::ClearErrors();
    return std::nullopt;
  }
  r.release();  // now owned by sig
  s.release();
  unsigned char* der = nullptr;
  int len = i2d_ECDSA_SIG(sig.get(), &der);
  if (len <= 0) {
    internal::ClearErrors();
    return std::nullopt;
  }
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

std::optional<std::string> EcdsaDerToRaw(std::string_view der) {
  EcdsaSig sig = ParseStrictDer(der);
  if (!sig) return std::nullopt;
  const BIGNUM* r = ECDSA_SIG_get0_r(sig.get());
  const BIGNUM* s = ECDSA_SIG_get0_s(sig.get());
  if (BN_is_negative(r) || BN_is_negative(s) || BN_num_bytes(r) > 32 || BN_num_bytes(s) > 32) {
    return std::nullopt;
  }
  return internal::BnBytes(r, 32) + internal::BnBytes(s, 32);
}

Result<std::string> Sign(JwsAlg alg, const PrivateKey& key, std::string_view signing_input) {
  if (AlgForKey(key.type()) != alg) {
    return InvalidArgument("a " + std::string(KeyTypeName(key.type())) + " key cannot sign " +
                           std::string(JwsAlgName(alg)));
  }
  std::string digest = Sha256(signing_input);
  bool rsa = alg == JwsAlg::kRs256;
  PkeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key.raw(), nullptr));
  size_t len = 0;
  const auto* d = reinterpret_cast<const unsigned char*>(digest.data());
  if (!ctx || EVP_PKEY_sign_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_signature_md(ctx.get(), internal::Sha256Md()) != 1 ||
      (rsa && EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1) ||
      EVP_PKEY_sign(ctx.get(), nullptr, &len, d, digest.size()) != 1) {
    internal::ClearErrors();
    return Internal("signing failed");
  }
  std::string sig(len, '\0');
  if (EVP_PKEY_sign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, d,
                    digest.size()) != 1) {
    internal::ClearErrors();
    return Internal("signing failed");
  }
  sig.resize(len);
  if (rsa) return sig;
  std::optional<std::string> raw = EcdsaDerToRaw(sig);
  if (!raw) return Internal("signing failed");
  return *raw;
}

bool Verify(JwsAlg alg, const PublicKey& key, std::string_view signing_input,
            std::string_view signature) {
  if (!KeyMatchesAlg(key, alg)) return false;
  if (alg == JwsAlg::kRs256) {
    // PKCS#1 v1.5 signatures are exactly the modulus size (OpenSSL checks too; be explicit).
    if (signature.size() != static_cast<size_t>((key.bits() + 7) / 8)) return false;
    return VerifyDigest(key, Sha256(signing_input), signature);
  }
  std::optional<std::string> der = EcdsaRawToDer(signature);
  if (!der) return false;
  return VerifyDigest(key, Sha256(signing_input), *der);
}

bool VerifyEcdsaDer(const PublicKey& key, std::string_view message, std::string_view der_sig) {
  if (key.type() != KeyType::kEcP256) return false;
  if (!ParseStrictDer(der_sig)) return false;
  return VerifyDigest(key, Sha256(message), der_sig);
}

// ---- compact serialization ----

TokenResult<DecodedJws> DecodeJws(std::string_view compact, size_t max_bytes) {
  if (compact.size() > max_bytes) {
    return Fail(TokenError::kTooLarge,
                "token is larger than " + std::to_string(max_bytes) + " bytes");
  }
  size_t dot1 = compact.find('.');
  size_t dot2 = dot1 == compact.npos ? compact.npos : compact.find('.', dot1 + 1);
  if (dot2 == compact.npos || compact.find('.', dot2 + 1) != compact.npos) {
    return Fail(TokenError::kMalformed, "token must have exactly three dot-separated segments");
  }
  std::string_view h64 = compact.substr(0, dot1);
  std::string_view p64 = compact.substr(dot1 + 1, dot2 - dot1 - 1);
  std::string_view s64 = compact.substr(dot2 + 1);

  std::optional<std::string> header_json = Base64UrlDecode(h64);
  if (!header_json || header_json->empty()) {
    return Fail(TokenError::kMalformed, "token header is not canonical base64url");
  }
  Result<boost::json::object> header = json::ParseObject(*header_json, "token header");
  if (!header) return Fail(TokenError::kMalformed, header.error().message);

  DecodedJws out;
  const boost::json::value* alg = header->if_contains("alg");
  if (alg == nullptr) return Fail(TokenError::kMalformed, "token header has no `alg`");
  if (!alg->is_string()) return Fail(TokenError::kMalformed, "token header `alg` is not a string");
  std::string_view alg_name(alg->as_string().data(), alg->as_string().size());
  std::optional<JwsAlg> parsed_alg = ParseJwsAlg(alg_name);
  if (!parsed_alg) {
    return Fail(TokenError::kUnsupportedAlgorithm,
                "token algorithm " + QuoteUntrusted(alg_name) +
                    " is not accepted; only RS256 and ES256 are");
  }
  out.alg = *parsed_alg;
  for (const char* forbidden : {"crit", "jku", "x5u", "jwk", "x5c"}) {
    if (header->contains(forbidden)) {
      return Fail(TokenError::kForbiddenHeader,
                  std::string("token header `") + forbidden + "` is not accepted");
    }
  }
  if (const boost::json::value* kid = header->if_contains("kid")) {
    if (!kid->is_string())
      return Fail(TokenError::kMalformed, "token header `kid` is not a string");
    out.kid = std::string(kid->as_string());
  }
  if (const boost::json::value* typ = header->if_contains("typ")) {
    if (!typ->is_string())
      return Fail(TokenError::kMalformed, "token header `typ` is not a string");
  }

  std::optional<std::string> payload = Base64UrlDecode(p64);
  if (!payload) return Fail(TokenError::kMalformed, "token payload is not canonical base64url");
  std::optional<std::string> sig = Base64UrlDecode(s64);
  if (!sig) return Fail(TokenError::kMalformed, "token signature is not canonical base64url");

  out.header = std::move(*header);
  out.payload = std::move(*payload);
  out.signature = std::move(*sig);
  out.signing_input = std::string(compact.substr(0, dot2));
  return out;
}

TokenResult<void> VerifyJwsSignature(const DecodedJws& jws, const PublicKey& key) {
  if (!KeyMatchesAlg(key, jws.alg)) {
    return Fail(TokenError::kKeyMismatch, "a " + std::string(KeyTypeName(key.type())) +
                                              " key cannot verify " +
                                              std::string(JwsAlgName(jws.alg)) + " signatures");
  }
  if (!Verify(jws.alg, key, jws.signing_input, jws.signature)) {
    return Fail(TokenError::kBadSignature, "token signature does not verify");
  }
  return {};
}

Result<std::string> EncodeJws(JwsAlg alg, const PrivateKey& key, boost::json::object header,
                              std::string_view payload) {
  boost::json::object h;
  h["alg"] = JwsAlgName(alg);
  for (auto& kv : header) {
    if (kv.key() != "alg") h[kv.key()] = std::move(kv.value());
  }
  std::string input = Base64UrlEncode(json::Serialize(h)) + "." + Base64UrlEncode(payload);
  MOAT_TRY(std::string sig, Sign(alg, key, input));
  return input + "." + Base64UrlEncode(sig);
}

}  // namespace moat::crypto
