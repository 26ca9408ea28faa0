#include "crypto/jwt.h"

#include <boost/json/array.hpp>
#include <cmath>

#include "common/json.h"
#include "common/time.h"

namespace moat::crypto {
namespace {

// NumericDate claims are accepted between the epoch and the end of year 9999, which keeps all
// arithmetic below free of overflow.
constexpr int64_t kMaxNumericDate = 253402300799;
constexpr size_t kMaxCandidates = 16;
constexpr size_t kMaxAudiences = 64;

TokenFailure Fail(TokenError reason, std::string message) {
  return TokenFailure{reason, std::move(message)};
}

std::string FormatUnix(int64_t t) { return FormatRfc3339(TimePoint(Seconds(t))); }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// Messages from the JSON parser may quote a key of the token; keep them short and printable.
std::string Sanitize(std::string_view m) {
  std::string out;
  for (size_t i = 0; i < m.size() && i < 160; ++i) {
    char c = m[i];
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  return out;
}

// A NumericDate claim: absent → nullopt; present with a non-numeric or out-of-range value →
// failure. Fractional seconds are truncated toward the past.
TokenResult<std::optional<int64_t>> NumericClaim(const boost::json::object& claims,
                                                 const char* name) {
  const boost::json::value* v = claims.if_contains(name);
  if (v == nullptr) return std::optional<int64_t>();
  int64_t t = -1;
  if (v->is_int64()) {
    t = v->as_int64();
  } else if (v->is_uint64()) {
    uint64_t x = v->as_uint64();
    t = x > static_cast<uint64_t>(kMaxNumericDate) ? -1 : static_cast<int64_t>(x);
  } else if (v->is_double()) {
    double d = v->as_double();
    if (!std::isfinite(d) || d < 0 || d > static_cast<double>(kMaxNumericDate)) {
      t = -1;
    } else {
      t = static_cast<int64_t>(std::floor(d));
    }
  } else {
    return Fail(TokenError::kBadClaim, std::string("claim `") + name + "` must be a number");
  }
  if (t < 0 || t > kMaxNumericDate) {
    return Fail(TokenError::kBadClaim, std::string("claim `") + name + "` is out of range");
  }
  return std::optional<int64_t>(t);
}

bool AudienceAccepted(std::string_view aud, const JwtVerifyOptions& o) {
  for (const auto& a : o.audiences) {
    if (a == aud) return true;
  }
  return o.audience_predicate && o.audience_predicate(aud);
}

}  // namespace

Result<std::string> EncodeJwt(JwsAlg alg, const PrivateKey& key, std::string_view kid,
                              const boost::json::object& claims) {
  boost::json::object header;
  if (!kid.empty()) header["kid"] = kid;
  header["typ"] = "JWT";
  return EncodeJws(alg, key, std::move(header), json::Serialize(claims));
}

TokenResult<UnverifiedJwt> DecodeUnverified(std::string_view token, size_t max_bytes) {
  TokenResult<DecodedJws> jws = DecodeJws(token, max_bytes);
  if (!jws) return jws.error();
  if (const boost::json::value* typ = jws->header.if_contains("typ")) {
    std::string_view t(typ->as_string().data(), typ->as_string().size());
    if (!EqualsIgnoreCase(t, "JWT")) {
      return Fail(TokenError::kBadType, "token type " + QuoteUntrusted(t) + " is not `JWT`");
    }
  }
  if (jws->header.contains("cty")) {
    return Fail(TokenError::kForbiddenHeader,
                "token header `cty` is not accepted (nested tokens are not supported)");
  }
  Result<boost::json::object> claims = json::ParseObject(jws->payload, "token payload");
  if (!claims) return Fail(TokenError::kMalformed, Sanitize(claims.error().message));
  return UnverifiedJwt{std::move(*jws), std::move(*claims)};
}

KeyLookup JwksKeyLookup(std::shared_ptr<const JwkSet> set) {
  return [set = std::move(set)](const KeyQuery& q) {
    std::vector<PublicKeyPtr> out;
    if (!set) return out;
    for (const Jwk& k : set->keys) {
      if (q.kid && k.kid != *q.kid) continue;
      // A kid naming a key of the other type is returned so the verifier reports the
      // algorithm mismatch; any other JWK restriction (alg, use, key_ops) hides the key.
      if (q.kid && k.key && !KeyMatchesAlg(*k.key, q.alg)) {
        out.push_back(k.key);
        continue;
      }
      if (JwkUsableFor(k, q.alg)) out.push_back(k.key);
    }
    return out;
  };
}

TokenResult<VerifiedJwt> VerifyJwt(std::string_view token, const KeyLookup& lookup,
                                   const JwtVerifyOptions& options) {
  TokenResult<UnverifiedJwt> decoded = DecodeUnverified(token, options.max_token_bytes);
  if (!decoded) return decoded.error();
  UnverifiedJwt& u = *decoded;

  // 2. key lookup
  KeyQuery query{};
  query.alg = u.jws.alg;
  if (u.jws.kid) query.kid = *u.jws.kid;
  const boost::json::value* iss_value = u.claims.if_contains("iss");
  if (iss_value != nullptr && iss_value->is_string()) {
    query.issuer = std::string_view(iss_value->as_string().data(), iss_value->as_string().size());
  }
  std::vector<PublicKeyPtr> candidates = lookup ? lookup(query) : std::vector<PublicKeyPtr>();
  if (candidates.size() > kMaxCandidates) candidates.resize(kMaxCandidates);
  bool any = false, any_matching = false, verified = false;
  for (const PublicKeyPtr& key : candidates) {
    if (!key) continue;
    any = true;
    if (!KeyMatchesAlg(*key, u.jws.alg)) continue;
    any_matching = true;
    if (Verify(u.jws.alg, *key, u.jws.signing_input, u.jws.signature)) {
      verified = true;
      break;
    }
  }
  if (!any) {
    if (u.jws.kid)
      return Fail(TokenError::kUnknownKey, "unknown key id " + QuoteUntrusted(*u.jws.kid));
    return Fail(TokenError::kUnknownKey,
                "no key is known for issuer " + QuoteUntrusted(query.issuer));
  }
  // 3. algorithm confusion, then the signature
  if (!any_matching) {
    return Fail(TokenError::kKeyMismatch, "the key for this token cannot verify " +
                                              std::string(JwsAlgName(u.jws.alg)) + " signatures");
  }
  if (!verified) return Fail(TokenError::kBadSignature, "token signature does not verify");

  // 4-6. time
  const Clock& clock = options.clock != nullptr ? *options.clock : SystemClock();
  const int64_t now = clock.NowUnix();
  const int64_t skew = options.skew.count() < 0 ? 0 : options.skew.count();
  TokenResult<std::optional<int64_t>> exp = NumericClaim(u.claims, "exp");
  if (!exp) return exp.error();
  if (!*exp) return Fail(TokenError::kMissingClaim, "token has no `exp` claim");
  TokenResult<std::optional<int64_t>> nbf = NumericClaim(u.claims, "nbf");
  if (!nbf) return nbf.error();
  TokenResult<std::optional<int64_t>> iat = NumericClaim(u.claims, "iat");
  if (!iat) return iat.error();
  if (now - skew >= **exp) {
    return Fail(TokenError::kExpired, "token expired at " + FormatUnix(**exp));
  }
  if (*nbf && **nbf > now + skew) {
    return Fail(TokenError::kNotYetValid, "token is not valid before " + FormatUnix(**nbf));
  }
  if (*iat && **iat > now + skew) {
    return Fail(TokenError::kIssuedInFuture,
                "token was issued in the future, at " + FormatUnix(**iat));
  }
  if (options.max_lifetime) {
    if (!*iat) return Fail(TokenError::kMissingClaim, "token has no `iat` claim");
    int64_t lifetime = **exp - **iat;
    if (lifetime > options.max_lifetime->count()) {
      return Fail(TokenError::kLifetimeTooLong,
                  "token lifetime of " + std::to_string(lifetime) + "s exceeds the maximum of " +
                      std::to_string(options.max_lifetime->count()) + "s");
    }
  }

  // 7. issuer
  if (iss_value == nullptr) return Fail(TokenError::kMissingClaim, "token has no `iss` claim");
  if (!iss_value->is_string()) return Fail(TokenError::kBadClaim, "claim `iss` must be a string");
  std::string iss(iss_value->as_string());
  bool iss_ok = false;
  for (const auto& i : options.issuers) iss_ok = iss_ok || i == iss;
  if (!iss_ok)
    return Fail(TokenError::kWrongIssuer, "issuer " + QuoteUntrusted(iss) + " is not accepted");

  // 8. audience
  std::vector<std::string> aud;
  const boost::json::value* aud_value = u.claims.if_contains("aud");
  if (aud_value == nullptr) return Fail(TokenError::kMissingClaim, "token has no `aud` claim");
  if (aud_value->is_string()) {
    aud.emplace_back(aud_value->as_string());
  } else if (aud_value->is_array() && !aud_value->as_array().empty() &&
             aud_value->as_array().size() <= kMaxAudiences) {
    for (const auto& a : aud_value->as_array()) {
      if (!a.is_string()) {
        return Fail(TokenError::kBadClaim, "claim `aud` must contain only strings");
      }
      aud.emplace_back(a.as_string());
    }
  } else {
    return Fail(TokenError::kBadClaim,
                "claim `aud` must be a string or a non-empty array of at most 64 strings");
  }
  bool aud_ok = false;
  for (const auto& a : aud) {
    if (AudienceAccepted(a, options)) {
      aud_ok = true;
      break;
    }
  }
  if (!aud_ok) {
    if (aud.size() == 1) {
      return Fail(TokenError::kWrongAudience,
                  "audience " + QuoteUntrusted(aud[0]) + " is not accepted");
    }
    std::string list;
    for (size_t i = 0; i < aud.size() && i < 3; ++i)
      list += (i ? ", " : "") + QuoteUntrusted(aud[i]);
    if (aud.size() > 3) list += ", ...";
    return Fail(TokenError::kWrongAudience, "none of the audiences " + list + " is accepted");
  }

  std::optional<std::string> sub;
  if (const boost::json::value* s = u.claims.if_contains("sub")) {
    if (!s->is_string()) return Fail(TokenError::kBadClaim, "claim `sub` must be a string");
    sub = std::string(s->as_string());
  }

  VerifiedJwt out;
  out.alg = u.jws.alg;
  out.kid = u.jws.kid.value_or("");
  out.iss = std::move(iss);
  out.sub = std::move(sub);
  out.aud = std::move(aud);
  out.exp = **exp;
  out.iat = *iat;
  out.nbf = *nbf;
  out.header = std::move(u.jws.header);
  out.claims = std::move(u.claims);
  return out;
}

}  // namespace moat::crypto
