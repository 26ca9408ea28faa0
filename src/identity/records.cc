#include "identity/records.h"

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/value.hpp>
#include <cctype>

#include "common/base64.h"
#include "common/json.h"
#include "common/time.h"
#include "crypto/keys.h"

namespace moat::identity {
namespace {

namespace bj = boost::json;

// Decoding a stored document: every failure means the document is corrupt.
Error Corrupt(std::string_view what, const Error& e) {
  return Internal("stored " + std::string(what) + " is corrupt: " + e.message);
}

class Reader {
 public:
  Reader(std::string_view what, const bj::object& o) : what_(what), o_(o) {}

  Result<std::string> Req(std::string_view key) {
    auto v = json::OptString(o_, key);
    if (!v) return Corrupt(what_, v.error());
    if (!*v) return Internal("stored " + std::string(what_) + " lacks `" + std::string(key) + "`");
    return std::move(**v);
  }
  Result<std::string> Opt(std::string_view key) {
    auto v = json::OptString(o_, key);
    if (!v) return Corrupt(what_, v.error());
    return v->value_or("");
  }
  Result<bool> Bool(std::string_view key) {
    auto v = json::OptBool(o_, key);
    if (!v) return Corrupt(what_, v.error());
    return v->value_or(false);
  }
  Result<std::optional<TimePoint>> OptTime(std::string_view key) {
    MOAT_TRY(std::string s, Opt(key));
    if (s.empty()) return std::optional<TimePoint>();
    auto t = ParseKeyTime(s);
    if (!t)
      return Internal("stored " + std::string(what_) + " has a bad `" + std::string(key) + "`");
    return std::optional<TimePoint>(*t);
  }
  Result<TimePoint> Time(std::string_view key) {
    MOAT_TRY(auto t, OptTime(key));
    if (!t) return Internal("stored " + std::string(what_) + " lacks `" + std::string(key) + "`");
    return *t;
  }
  Result<std::vector<std::string>> Strings(std::string_view key) {
    auto a = json::OptArray(o_, key);
    if (!a) return Corrupt(what_, a.error());
    std::vector<std::string> out;
    if (*a == nullptr) return out;
    for (const auto& v : **a) {
      if (!v.is_string()) {
        return Internal("stored " + std::string(what_) + " has a non-string in `" +
                        std::string(key) + "`");
      }
      out.emplace_back(v.as_string());
    }
    return out;
  }

 private:
  std::string_view what_;
  const bj::object& o_;
};

Result<bj::object> ParseDoc(std::string_view json, std::string_view what) {
  auto o = json::ParseObject(json, what);
  if (!o) return Corrupt(what, o.error());
  return std::move(*o);
}

bj::array ToArray(const std::vector<std::string>& v) {
  bj::array a;
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

}  // namespace

std::string FormatKeyTime(TimePoint t) {
  if (t == TimePoint::max()) return std::string(kNeverExpires);
  return FormatRfc3339(t);
}

std::optional<TimePoint> ParseKeyTime(std::string_view text) {
  if (text == kNeverExpires) return TimePoint::max();
  // Years past 2262 do not fit a nanosecond time_point: they mean "never" for our purposes.
  if (text.size() >= 4 &&
      std::all_of(text.begin(), text.begin() + 4, [](char c) { return c >= '0' && c <= '9'; })) {
    int year = std::stoi(std::string(text.substr(0, 4)));
    if (year >= 2262) return TimePoint::max();
  }
  return ParseRfc3339(text);
}

Result<std::string> NormalizeEmail(std::string_view email, std::string_view what) {
  std::string w(what);
  if (email.empty()) return InvalidArgument(w + " must not be empty");
  if (email.size() > 254) return InvalidArgument(w + " is longer than 254 characters");
  std::string out;
  out.reserve(email.size());
  for (unsigned char c : email) {
    if (c <= 0x20 || c == 0x7f || c == '"' || c == '<' || c == '>' || c == ',' || c == ';' ||
        c == '(' || c == ')' || c == '\\' || c == '[' || c == ']' || c == ':' || c == '?') {
      return InvalidArgument(w + " `" + std::string(email) + "` is not a valid email address");
    }
    out.push_back(static_cast<char>(std::tolower(c)));
  }
  size_t at = out.find('@');
  bool ok = at != std::string::npos && at > 0 && out.find('@', at + 1) == std::string::npos;
  if (ok) {
    std::string_view domain = std::string_view(out).substr(at + 1);
    ok = domain.size() >= 3 && domain.find('.') != std::string_view::npos &&
         domain.front() != '.' && domain.back() != '.' &&
         domain.find("..") == std::string_view::npos;
  }
  if (!ok) return InvalidArgument(w + " `" + std::string(email) + "` is not a valid email address");
  return out;
}

// --- service accounts ------------------------------------------------------------------------

std::string ServiceAccountToDocument(const ServiceAccountRecord& sa) {
  bj::object o;
  o["projectId"] = sa.project_id;
  o["accountId"] = sa.account_id;
  o["email"] = sa.email;
  o["uniqueId"] = sa.unique_id;
  o["displayName"] = sa.display_name;
  o["description"] = sa.description;
  o["disabled"] = sa.disabled;
  o["createTime"] = FormatRfc3339(sa.create_time);
  if (sa.delete_time) o["deleteTime"] = FormatRfc3339(*sa.delete_time);
  return json::Serialize(o);
}

Result<ServiceAccountRecord> ServiceAccountFromDocument(std::string_view json) {
  constexpr std::string_view kWhat = "service account";
  MOAT_TRY(bj::object o, ParseDoc(json, kWhat));
  Reader r(kWhat, o);
  ServiceAccountRecord sa;
  MOAT_TRY(sa.project_id, r.Req("projectId"));
  MOAT_TRY(sa.account_id, r.Req("accountId"));
  MOAT_TRY(sa.email, r.Req("email"));
  MOAT_TRY(sa.unique_id, r.Req("uniqueId"));
  MOAT_TRY(sa.display_name, r.Opt("displayName"));
  MOAT_TRY(sa.description, r.Opt("description"));
  MOAT_TRY(sa.disabled, r.Bool("disabled"));
  MOAT_TRY(sa.create_time, r.Time("createTime"));
  MOAT_TRY(sa.delete_time, r.OptTime("deleteTime"));
  return sa;
}

// --- keys ----------------------------------------------------------------------------------

std::string KeyToDocument(const KeyRecord& key, std::string_view project_id) {
  bj::object o;
  o["keyId"] = key.key_id;
  o["projectId"] = project_id;
  o["serviceAccountEmail"] = key.sa_email;
  o["serviceAccountUniqueId"] = key.sa_unique_id;
  o["publicKeyPem"] = key.public_key_pem;
  o["certPem"] = key.cert_pem;
  o["validAfterTime"] = FormatKeyTime(key.valid_after);
  o["validBeforeTime"] = FormatKeyTime(key.valid_before);
  o["keyOrigin"] = key.origin == KeyOrigin::kUserProvided ? "USER_PROVIDED" : "GOOGLE_PROVIDED";
  o["disabled"] = key.disabled;
  if (key.last_used) o["lastUsedTime"] = FormatRfc3339(*key.last_used);
  return json::Serialize(o);
}

Result<KeyRecord> KeyFromDocument(std::string_view json) {
  constexpr std::string_view kWhat = "service account key";
  MOAT_TRY(bj::object o, ParseDoc(json, kWhat));
  Reader r(kWhat, o);
  KeyRecord k;
  MOAT_TRY(k.key_id, r.Req("keyId"));
  MOAT_TRY(k.sa_email, r.Req("serviceAccountEmail"));
  MOAT_TRY(k.sa_unique_id, r.Req("serviceAccountUniqueId"));
  MOAT_TRY(k.public_key_pem, r.Req("publicKeyPem"));
  MOAT_TRY(k.cert_pem, r.Opt("certPem"));
  MOAT_TRY(k.valid_after, r.Time("validAfterTime"));
  MOAT_TRY(k.valid_before, r.Time("validBeforeTime"));
  MOAT_TRY(std::string origin, r.Req("keyOrigin"));
  if (origin == "USER_PROVIDED") {
    k.origin = KeyOrigin::kUserProvided;
  } else if (origin == "GOOGLE_PROVIDED") {
    k.origin = KeyOrigin::kGoogleProvided;
  } else {
    return Internal("stored service account key has an unknown `keyOrigin`");
  }
  MOAT_TRY(k.disabled, r.Bool("disabled"));
  MOAT_TRY(k.last_used, r.OptTime("lastUsedTime"));
  return k;
}

// --- users, groups, issuers ----------------------------------------------------------------

std::string UserToDocument(const UserRecord& user) {
  bj::object o;
  o["email"] = user.email;
  o["uniqueId"] = user.unique_id;
  o["displayName"] = user.display_name;
  o["passwordHash"] = user.password_hash;
  o["disabled"] = user.disabled;
  o["createTime"] = FormatRfc3339(user.create_time);
  return json::Serialize(o);
}

Result<UserRecord> UserFromDocument(std::string_view json) {
  constexpr std::string_view kWhat = "user";
  MOAT_TRY(bj::object o, ParseDoc(json, kWhat));
  Reader r(kWhat, o);
  UserRecord u;
  MOAT_TRY(u.email, r.Req("email"));
  MOAT_TRY(u.unique_id, r.Req("uniqueId"));
  MOAT_TRY(u.display_name, r.Opt("displayName"));
  MOAT_TRY(u.password_hash, r.Opt("passwordHash"));
  MOAT_TRY(u.disabled, r.Bool("disabled"));
  MOAT_TRY(u.create_time, r.Time("createTime"));
  return u;
}

std::string GroupToDocument(const GroupRecord& group) {
  bj::object o;
  o["email"] = group.email;
  o["displayName"] = group.display_name;
  o["description"] = group.description;
  o["members"] = ToArray(group.members);
  return json::Serialize(o);
}

Result<GroupRecord> GroupFromDocument(std::string_view json) {
  constexpr std::string_view kWhat = "group";
  MOAT_TRY(bj::object o, ParseDoc(json, kWhat));
  Reader r(kWhat, o);
  GroupRecord g;
  MOAT_TRY(g.email, r.Req("email"));
  MOAT_TRY(g.display_name, r.Opt("displayName"));
  MOAT_TRY(g.description, r.Opt("description"));
  MOAT_TRY(g.members, r.Strings("members"));
  return g;
}

std::string TrustedIssuerToDocument(const TrustedIssuerRecord& issuer) {
  bj::object o;
  o["id"] = issuer.id;
  o["issuer"] = issuer.issuer;
  o["jwksUri"] = issuer.jwks_uri;
  o["audiences"] = ToArray(issuer.audiences);
  return json::Serialize(o);
}

Result<TrustedIssuerRecord> TrustedIssuerFromDocument(std::string_view json) {
  constexpr std::string_view kWhat = "trusted issuer";
  MOAT_TRY(bj::object o, ParseDoc(json, kWhat));
  Reader r(kWhat, o);
  TrustedIssuerRecord t;
  MOAT_TRY(t.id, r.Req("id"));
  MOAT_TRY(t.issuer, r.Req("issuer"));
  MOAT_TRY(t.jwks_uri, r.Req("jwksUri"));
  MOAT_TRY(t.audiences, r.Strings("audiences"));
  return t;
}

// --- wire JSON -----------------------------------------------------------------------------

boost::json::object ServiceAccountToJson(const ServiceAccountRecord& sa) {
  bj::object o;
  o["name"] = sa.Name();
  o["projectId"] = sa.project_id;
  o["uniqueId"] = sa.unique_id;
  o["email"] = sa.email;
  if (!sa.display_name.empty()) o["displayName"] = sa.display_name;
  if (!sa.description.empty()) o["description"] = sa.description;
  // Deprecated in Google's API, which answers this same constant for every account.
  o["etag"] = "MDEwMjE5MjA=";
  o["oauth2ClientId"] = sa.unique_id;
  if (sa.disabled) o["disabled"] = true;
  return o;
}

Result<PublicKeyType> ParsePublicKeyType(std::string_view text) {
  if (text.empty() || text == "TYPE_NONE") return PublicKeyType::kNone;
  if (text == "TYPE_X509_PEM_FILE") return PublicKeyType::kX509PemFile;
  if (text == "TYPE_RAW_PUBLIC_KEY") return PublicKeyType::kRawPublicKey;
  return InvalidArgument("invalid value `" + std::string(text) +
                         "` for publicKeyType: expected TYPE_NONE, TYPE_X509_PEM_FILE or "
                         "TYPE_RAW_PUBLIC_KEY");
}

boost::json::object KeyToJson(const KeyRecord& key, std::string_view project_id,
                              PublicKeyType type) {
  bj::object o;
  o["name"] = key.Name(std::string(project_id));
  if (type == PublicKeyType::kX509PemFile) {
    o["publicKeyData"] = Base64Encode(key.cert_pem);
  } else if (type == PublicKeyType::kRawPublicKey) {
    std::string der;
    if (key.public_key) {
      der = key.public_key->ToSpkiDer();
    } else if (auto parsed = crypto::PublicKey::FromSpkiPem(key.public_key_pem)) {
      der = parsed->ToSpkiDer();
    }
    o["publicKeyData"] = Base64Encode(der);
  }
  o["validAfterTime"] = FormatKeyTime(key.valid_after);
  o["validBeforeTime"] = FormatKeyTime(key.valid_before);
  o["keyAlgorithm"] = "KEY_ALG_RSA_2048";
  o["keyOrigin"] = key.origin == KeyOrigin::kUserProvided ? "USER_PROVIDED" : "GOOGLE_PROVIDED";
  o["keyType"] = "USER_MANAGED";
  if (key.disabled) o["disabled"] = true;
  if (key.last_used) o["lastUsedTime"] = FormatRfc3339(*key.last_used);
  return o;
}

boost::json::object UserToJson(const UserRecord& user) {
  bj::object o;
  o["name"] = "users/" + user.email;
  o["email"] = user.email;
  o["uniqueId"] = user.unique_id;
  if (!user.display_name.empty()) o["displayName"] = user.display_name;
  if (user.disabled) o["disabled"] = true;
  o["createTime"] = FormatRfc3339(user.create_time);
  return o;
}

boost::json::object GroupToJson(const GroupRecord& group) {
  bj::object o;
  o["name"] = "groups/" + group.email;
  o["email"] = group.email;
  if (!group.display_name.empty()) o["displayName"] = group.display_name;
  if (!group.description.empty()) o["description"] = group.description;
  o["members"] = ToArray(group.members);
  return o;
}

boost::json::object TrustedIssuerToJson(const TrustedIssuerRecord& issuer) {
  bj::object o;
  o["name"] = "trustedIssuers/" + issuer.id;
  o["id"] = issuer.id;
  o["issuer"] = issuer.issuer;
  o["jwksUri"] = issuer.jwks_uri;
  o["audiences"] = ToArray(issuer.audiences);
  return o;
}

}  // namespace moat::identity
