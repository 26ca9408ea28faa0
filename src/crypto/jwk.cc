#include "crypto/jwk.h"

#include <algorithm>
#include <boost/json/array.hpp>
#include <set>

#include "common/base64.h"
#include "common/json.h"

namespace moat::crypto {
namespace {

constexpr const char* kPrivateMembers[] = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"};

Result<std::string> RequiredB64(const boost::json::object& o, const char* name,
                                std::string_view kty) {
  const boost::json::value* v = o.if_contains(name);
  if (v == nullptr) {
    return InvalidArgument(std::string(kty) + " JWK is missing `" + name + "`");
  }
  if (!v->is_string())
    return InvalidArgument(std::string("JWK member `") + name + "` must be a string");
  std::optional<std::string> bytes =
      Base64UrlDecode(std::string_view(v->as_string().data(), v->as_string().size()));
  if (!bytes || bytes->empty()) {
    return InvalidArgument(std::string("JWK member `") + name + "` is not canonical base64url");
  }
  return std::move(*bytes);
}

Result<std::string> OptionalString(const boost::json::object& o, const char* name) {
  const boost::json::value* v = o.if_contains(name);
  if (v == nullptr) return std::string();
  if (!v->is_string())
    return InvalidArgument(std::string("JWK member `") + name + "` must be a string");
  return std::string(v->as_string());
}

}  // namespace

boost::json::object PublicJwk(const PublicKey& key, std::string_view kid) {
  boost::json::object o;
  if (key.type() == KeyType::kRsa) {
    o["kty"] = "RSA";
    o["alg"] = "RS256";
    o["use"] = "sig";
    if (!kid.empty()) o["kid"] = kid;
    o["n"] = Base64UrlEncode(key.RsaModulus());
    o["e"] = Base64UrlEncode(key.RsaExponent());
  } else {
    o["kty"] = "EC";
    o["alg"] = "ES256";
    o["use"] = "sig";
    if (!kid.empty()) o["kid"] = kid;
    o["crv"] = "P-256";
    o["x"] = Base64UrlEncode(key.EcX());
    o["y"] = Base64UrlEncode(key.EcY());
  }
  return o;
}

Result<Jwk> ParsePublicJwk(const boost::json::object& o) {
  for (const char* m : kPrivateMembers) {
    if (o.contains(m)) {
      return InvalidArgument(std::string("JWK contains the private member `") + m +
                             "`; only public keys are accepted");
    }
  }
  Jwk jwk;
  MOAT_TRY(std::string kty, OptionalString(o, "kty"));
  MOAT_TRY(jwk.kid, OptionalString(o, "kid"));
  MOAT_TRY(jwk.alg, OptionalString(o, "alg"));
  MOAT_TRY(jwk.use, OptionalString(o, "use"));
  if (const boost::json::value* ops = o.if_contains("key_ops")) {
    if (!ops->is_array()) return InvalidArgument("JWK member `key_ops` must be an array");
    std::set<std::string> seen;
    for (const auto& op : ops->as_array()) {
      if (!op.is_string()) return InvalidArgument("JWK `key_ops` entries must be strings");
      std::string s(op.as_string());
      if (!seen.insert(s).second)
        return InvalidArgument("JWK `key_ops` repeats " + QuoteUntrusted(s));
      jwk.key_ops.push_back(std::move(s));
    }
  }
  if (kty == "RSA") {
    MOAT_TRY(std::string n, RequiredB64(o, "n", "RSA"));
    MOAT_TRY(std::string e, RequiredB64(o, "e", "RSA"));
    // RFC 7518 §6.3.1: integers use the minimum number of octets.
    if (n[0] == '\0' || e[0] == '\0') {
      return InvalidArgument("RSA JWK integers must not have leading zero octets");
    }
    MOAT_TRY(PublicKey key, PublicKey::FromRsaComponents(n, e));
    jwk.key = Share(std::move(key));
  } else if (kty == "EC") {
    MOAT_TRY(std::string crv, OptionalString(o, "crv"));
    if (crv != "P-256") {
      return InvalidArgument("EC JWK curve " + QuoteUntrusted(crv) +
                             " is not supported; only P-256 is");
    }
    MOAT_TRY(std::string x, RequiredB64(o, "x", "EC"));
    MOAT_TRY(std::string y, RequiredB64(o, "y", "EC"));
    MOAT_TRY(PublicKey key, PublicKey::FromEcP256Coordinates(x, y));
    jwk.key = Share(std::move(key));
  } else if (kty.empty()) {
    return InvalidArgument("JWK is missing `kty`");
  } else {
    return InvalidArgument("JWK key type " + QuoteUntrusted(kty) + " is not supported");
  }
  return jwk;
}

Status JwkUsableFor(const Jwk& jwk, JwsAlg alg) {
  std::string_view name = JwsAlgName(alg);
  if (!jwk.key || !KeyMatchesAlg(*jwk.key, alg)) {
    return InvalidArgument("key " + QuoteUntrusted(jwk.kid) + " cannot verify " +
                           std::string(name));
  }
  if (!jwk.alg.empty() && jwk.alg != name) {
    return InvalidArgument("key " + QuoteUntrusted(jwk.kid) + " is for " + QuoteUntrusted(jwk.alg) +
                           ", not " + std::string(name));
  }
  if (!jwk.use.empty() && jwk.use != "sig") {
    return InvalidArgument("key " + QuoteUntrusted(jwk.kid) + " is not a signature key");
  }
  if (!jwk.key_ops.empty() &&
      std::find(jwk.key_ops.begin(), jwk.key_ops.end(), "verify") == jwk.key_ops.end()) {
    return InvalidArgument("key " + QuoteUntrusted(jwk.kid) + " does not allow `verify`");
  }
  return Ok();
}

const Jwk* JwkSet::Find(std::string_view kid) const {
  for (const Jwk& k : keys) {
    if (k.kid == kid) return &k;
  }
  return nullptr;
}

Result<JwkSet> ParseJwks(std::string_view text) {
  if (text.size() > (1u << 20)) return InvalidArgument("JWK set is larger than 1 MiB");
  MOAT_TRY(boost::json::object doc, json::ParseObject(text, "JWK set"));
  const boost::json::value* keys = doc.if_contains("keys");
  if (keys == nullptr || !keys->is_array()) {
    return InvalidArgument("JWK set must have a `keys` array");
  }
  if (keys->as_array().size() > 100) return InvalidArgument("JWK set has more than 100 keys");
  JwkSet set;
  std::set<std::string> kids;
  size_t index = 0;
  for (const auto& v : keys->as_array()) {
    ++index;
    if (!v.is_object())
      return InvalidArgument("JWK set entry " + std::to_string(index) + " is not an object");
    const boost::json::object& o = v.as_object();
    for (const char* m : kPrivateMembers) {
      if (o.contains(m)) {
        return InvalidArgument("JWK set entry " + std::to_string(index) +
                               " contains private key material");
      }
    }
    Result<Jwk> jwk = ParsePublicJwk(o);
    if (!jwk) {
      std::string kid;
      if (const auto* k = o.if_contains("kid"); k != nullptr && k->is_string()) {
        kid = std::string(k->as_string());
      }
      set.skipped.push_back("key " + std::to_string(index) + " (" + QuoteUntrusted(kid) +
                            "): " + jwk.error().message);
      continue;
    }
    if (!jwk->kid.empty() && !kids.insert(jwk->kid).second) {
      return InvalidArgument("JWK set has two keys with the id " + QuoteUntrusted(jwk->kid));
    }
    set.keys.push_back(std::move(*jwk));
  }
  return set;
}

std::string SerializeJwks(const std::vector<boost::json::object>& jwks) {
  boost::json::array arr;
  for (const auto& o : jwks) arr.push_back(o);
  boost::json::object doc;
  doc["keys"] = std::move(arr);
  return json::Serialize(doc);
}

}  // namespace moat::crypto
