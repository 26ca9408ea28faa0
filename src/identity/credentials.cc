#include "identity/credentials.h"

#include <boost/json.hpp>

#include "common/base64.h"
#include "common/json.h"
#include "common/time.h"
#include "crypto/jws.h"
#include "crypto/jwt.h"
#include "identity/credentials_keys.h"
#include "identity/token_issuer.h"

namespace moat::identity {
namespace {

constexpr std::string_view kNamePrefix = "projects/-/serviceAccounts/";
constexpr std::chrono::hours kMaxSignJwtLifetime{12};

Error Denied(std::string_view permission) {
  return PermissionDenied("Permission '" + std::string(permission) +
                          "' denied on resource (or it may not exist).");
}

Result<std::vector<std::string>> StringList(const boost::json::object& o, std::string_view key) {
  MOAT_TRY(auto arr, json::OptArray(o, key));
  std::vector<std::string> out;
  if (arr == nullptr) return out;
  for (const auto& v : *arr) {
    if (!v.is_string()) {
      return InvalidArgument("field `" + std::string(key) + "` must be a list of strings");
    }
    out.emplace_back(v.as_string());
  }
  return out;
}

// Python sends includeEmail as the string "true" (GOOGLE.md §7); accept both forms.
Result<bool> BoolOrString(const boost::json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) return false;
  if (it->value().is_bool()) return it->value().as_bool();
  if (it->value().is_string()) {
    if (it->value().as_string() == "true") return true;
    if (it->value().as_string() == "false") return false;
  }
  return InvalidArgument("field `" + std::string(key) + "` must be a boolean");
}

}  // namespace

Result<std::string> ParseCredentialsName(std::string_view name) {
  if (!name.starts_with(kNamePrefix) || name.size() == kNamePrefix.size() ||
      name.substr(kNamePrefix.size()).find('/') != std::string_view::npos) {
    return InvalidArgument("resource name " + crypto::QuoteUntrusted(name) +
                           " is invalid: use projects/-/serviceAccounts/EMAIL_OR_UNIQUE_ID (the "
                           "`-` wildcard character is required)");
  }
  return std::string(name.substr(kNamePrefix.size()));
}

IamCredentials::IamCredentials(const TokenIssuer& issuer, SystemManagedKeys& system_keys,
                               const Clock& clock, DirectoryProvider directory,
                               Authorizer authorizer)
    : issuer_(issuer),
      system_keys_(system_keys),
      clock_(clock),
      directory_(std::move(directory)),
      authorizer_(std::move(authorizer)) {}

Result<ServiceAccountRecord> IamCredentials::Authorize(const std::string& caller,
                                                       std::string_view name,
                                                       const std::vector<std::string>& delegates,
                                                       std::string_view permission) {
  MOAT_TRY(std::string target_id, ParseCredentialsName(name));
  std::vector<std::string> delegate_ids;
  for (const auto& d : delegates) {
    MOAT_TRY(std::string id, ParseCredentialsName(d));
    delegate_ids.push_back(std::move(id));
  }
  auto dir = directory_ ? directory_() : nullptr;
  if (!dir) return Unavailable("the identity directory is not loaded");
  auto resolve = [&](const std::string& id) -> Result<const ServiceAccountRecord*> {
    const ServiceAccountRecord* sa = dir->FindServiceAccount(id);
    if (sa == nullptr || sa->delete_time) {
      return NotFound("service account `" + id + "` not found");
    }
    return sa;
  };
  MOAT_TRY(const ServiceAccountRecord* target, resolve(target_id));
  std::string principal = caller;
  for (const auto& id : delegate_ids) {
    MOAT_TRY(const ServiceAccountRecord* hop, resolve(id));
    if (!authorizer_ || !authorizer_(principal, hop->Name(), kPermImplicitDelegation)) {
      return Denied(kPermImplicitDelegation);
    }
    if (hop->disabled) {
      return FailedPrecondition("delegate service account `" + hop->email + "` is disabled");
    }
    principal = "serviceAccount:" + hop->email;
  }
  if (!authorizer_ || !authorizer_(principal, target->Name(), permission)) {
    return Denied(permission);
  }
  if (target->disabled) {
    return FailedPrecondition("service account `" + target->email + "` is disabled");
  }
  return *target;
}

Result<std::string> IamCredentials::GenerateIdToken(const std::string& caller,
                                                    std::string_view name,
                                                    const GenerateIdTokenRequest& request) {
  MOAT_TRY(auto sa, Authorize(caller, name, request.delegates, kPermGetOpenIdToken));
  if (request.audience.empty()) return InvalidArgument("field `audience` is required");
  IdTokenOptions opts;
  opts.include_email = request.include_email;
  MOAT_TRY(auto token, issuer_.MintIdToken({sa.email, sa.unique_id, PrincipalKind::kServiceAccount},
                                           request.audience, opts));
  return token.token;
}

Result<AccessTokenResult> IamCredentials::GenerateAccessToken(
    const std::string& caller, std::string_view name, const GenerateAccessTokenRequest& request) {
  MOAT_TRY(auto sa, Authorize(caller, name, request.delegates, kPermGetAccessToken));
  if (request.scope.empty()) return InvalidArgument("field `scope` is required");
  if (request.lifetime <= Seconds(0) || request.lifetime > Seconds(3600)) {
    return InvalidArgument("field `lifetime` must be between 1s and 3600s");
  }
  MOAT_TRY(auto token,
           issuer_.MintAccessToken({sa.email, sa.unique_id, PrincipalKind::kServiceAccount},
                                   request.scope, request.lifetime));
  return AccessTokenResult{token.token, token.expire_time};
}

Result<SignResult> IamCredentials::SignJwt(const std::string& caller, std::string_view name,
                                           const SignRequest& request) {
  MOAT_TRY(auto sa, Authorize(caller, name, request.delegates, kPermSignJwt));
  MOAT_TRY(auto claims, json::ParseObject(request.payload, "payload"));
  MOAT_TRY(auto exp, json::OptInt(claims, "exp"));
  const int64_t now = clock_.NowUnix();
  if (!exp) return InvalidArgument("the JWT payload must contain an integer `exp` claim");
  if (*exp > now + std::chrono::duration_cast<Seconds>(kMaxSignJwtLifetime).count()) {
    return InvalidArgument("the JWT `exp` claim must be at most 12 hours in the future");
  }
  MOAT_TRY(auto key, system_keys_.ForSigning(sa));
  MOAT_TRY(auto jwt,
           crypto::EncodeJwt(crypto::JwsAlg::kRs256, *key->private_key, key->kid, claims));
  return SignResult{key->kid, std::move(jwt)};
}

Result<SignResult> IamCredentials::SignBlob(const std::string& caller, std::string_view name,
                                            const SignRequest& request) {
  MOAT_TRY(auto sa, Authorize(caller, name, request.delegates, kPermSignBlob));
  MOAT_TRY(auto key, system_keys_.ForSigning(sa));
  MOAT_TRY(auto sig, crypto::Sign(crypto::JwsAlg::kRs256, *key->private_key, request.payload));
  return SignResult{key->kid, std::move(sig)};
}

Result<std::string> IamCredentials::GenerateIdTokenJson(const std::string& caller,
                                                        std::string_view name,
                                                        std::string_view body) {
  MOAT_TRY(auto o, json::ParseObject(body));
  GenerateIdTokenRequest req;
  MOAT_TRY(req.delegates, StringList(o, "delegates"));
  MOAT_TRY(auto aud, json::OptString(o, "audience"));
  req.audience = aud.value_or("");
  MOAT_TRY(req.include_email, BoolOrString(o, "includeEmail"));
  MOAT_TRY(auto token, GenerateIdToken(caller, name, req));
  boost::json::object out;
  out["token"] = token;
  return json::Serialize(out);
}

Result<std::string> IamCredentials::GenerateAccessTokenJson(const std::string& caller,
                                                            std::string_view name,
                                                            std::string_view body) {
  MOAT_TRY(auto o, json::ParseObject(body));
  GenerateAccessTokenRequest req;
  MOAT_TRY(req.delegates, StringList(o, "delegates"));
  MOAT_TRY(req.scope, StringList(o, "scope"));
  MOAT_TRY(auto lifetime, json::OptString(o, "lifetime"));
  if (lifetime) {
    auto d = ParseDuration(*lifetime);
    if (!d) return InvalidArgument("field `lifetime` must be a duration such as \"3600s\"");
    req.lifetime = std::chrono::duration_cast<Seconds>(*d);
  }
  MOAT_TRY(auto r, GenerateAccessToken(caller, name, req));
  boost::json::object out;
  out["accessToken"] = r.access_token;
  out["expireTime"] = FormatRfc3339(r.expire_time);
  return json::Serialize(out);
}

Result<std::string> IamCredentials::SignJwtJson(const std::string& caller, std::string_view name,
                                                std::string_view body) {
  MOAT_TRY(auto o, json::ParseObject(body));
  SignRequest req;
  MOAT_TRY(req.delegates, StringList(o, "delegates"));
  MOAT_TRY(auto payload, json::OptString(o, "payload"));
  if (!payload) return InvalidArgument("field `payload` is required");
  req.payload = *payload;
  MOAT_TRY(auto r, SignJwt(caller, name, req));
  boost::json::object out;
  out["keyId"] = r.key_id;
  out["signedJwt"] = r.signed_data;
  return json::Serialize(out);
}

Result<std::string> IamCredentials::SignBlobJson(const std::string& caller, std::string_view name,
                                                 std::string_view body) {
  MOAT_TRY(auto o, json::ParseObject(body));
  SignRequest req;
  MOAT_TRY(req.delegates, StringList(o, "delegates"));
  MOAT_TRY(auto payload, json::OptString(o, "payload"));
  if (!payload) return InvalidArgument("field `payload` is required");
  auto raw = Base64Decode(*payload);
  if (!raw) return InvalidArgument("field `payload` must be base64");
  req.payload = std::move(*raw);
  MOAT_TRY(auto r, SignBlob(caller, name, req));
  boost::json::object out;
  out["keyId"] = r.key_id;
  out["signedBlob"] = Base64Encode(r.signed_data);
  return json::Serialize(out);
}

}  // namespace moat::identity
