#include "identity/oauth_token_endpoint.h"

#include <boost/json.hpp>

#include "common/base64.h"
#include "common/json.h"
#include "common/random.h"
#include "common/time.h"
#include "crypto/hash.h"
#include "crypto/jwt.h"
#include "identity/token_issuer.h"
#include "store/store.h"

namespace moat::identity {
namespace {

HttpReply JsonReply(int status, const boost::json::object& body) {
  HttpReply r;
  r.status = status;
  r.headers = {{"Content-Type", "application/json; charset=utf-8"},
               {"Cache-Control", "no-store"},
               {"Pragma", "no-cache"}};
  r.body = json::Serialize(body);
  return r;
}

const std::string* Param(const std::map<std::string, std::string>& form, const char* name) {
  auto it = form.find(name);
  return it == form.end() || it->second.empty() ? nullptr : &it->second;
}

HttpReply FromError(const Error& e) {
  if (e.code == Code::kUnavailable || e.code == Code::kInternal) {
    return OAuthError(503, "temporarily_unavailable", "the token service is unavailable");
  }
  return OAuthError(400, "invalid_grant", e.message);
}

std::vector<std::string> SplitScopes(std::string_view s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = s.find_first_of(" ,", i);
    if (j == std::string_view::npos) j = s.size();
    if (j > i) out.emplace_back(s.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

std::string RefreshKey(std::string_view token) {
  return std::string(kRefreshTokenPrefix) + crypto::HexEncode(crypto::Sha256(token));
}

}  // namespace

HttpReply OAuthError(int status, std::string_view error, std::string_view description) {
  boost::json::object o;
  o["error"] = error;
  o["error_description"] = description;
  return JsonReply(status, o);
}

OAuthTokenEndpoint::OAuthTokenEndpoint(const TokenIssuer& issuer, Verifier& verifier,
                                       store::Store& store, const Clock& clock,
                                       DirectoryProvider directory,
                                       PasswordVerifier verify_password,
                                       OAuthTokenEndpointOptions options)
    : issuer_(issuer),
      verifier_(verifier),
      store_(store),
      clock_(clock),
      directory_(std::move(directory)),
      verify_password_(std::move(verify_password)),
      options_(std::move(options)) {}

HttpReply OAuthTokenEndpoint::Handle(const std::map<std::string, std::string>& form) {
  const std::string* grant = Param(form, "grant_type");
  if (grant == nullptr) return OAuthError(400, "invalid_request", "missing `grant_type`");
  if (*grant == kJwtBearerGrant) return JwtBearer(form);
  if (*grant == "password") return Password(form);
  if (*grant == "refresh_token") return Refresh(form);
  return OAuthError(400, "unsupported_grant_type",
                    "grant type " + crypto::QuoteUntrusted(*grant) + " is not supported");
}

HttpReply OAuthTokenEndpoint::JwtBearer(const std::map<std::string, std::string>& form) {
  const std::string* assertion = Param(form, "assertion");
  if (assertion == nullptr) return OAuthError(400, "invalid_request", "missing `assertion`");
  VerifyRequest req;
  req.purpose = VerifyPurpose::kAssertion;
  auto id = verifier_.Verify(*assertion, req);
  if (!id) {
    if (id.error().code == Code::kUnavailable) {
      return OAuthError(503, "temporarily_unavailable", id.error().message);
    }
    return OAuthError(400, "invalid_grant", "invalid assertion: " + id.error().message);
  }
  // The signature verified, so the claims can be read now.
  auto decoded = crypto::DecodeUnverified(*assertion);
  if (!decoded) return OAuthError(400, "invalid_grant", "invalid assertion");
  const auto& claims = decoded->claims;
  TokenSubject subject{(*id)->email, (*id)->unique_id, PrincipalKind::kServiceAccount};
  if (auto it = claims.find("target_audience"); it != claims.end()) {
    if (!it->value().is_string() || it->value().as_string().empty()) {
      return OAuthError(400, "invalid_request", "`target_audience` must be a non-empty string");
    }
    auto token = issuer_.MintIdToken(subject, std::string(it->value().as_string()));
    if (!token) return FromError(token.error());
    boost::json::object o;
    o["id_token"] = token->token;
    return JsonReply(200, o);
  }
  auto scope_it = claims.find("scope");
  if (scope_it == claims.end() || !scope_it->value().is_string() ||
      scope_it->value().as_string().empty()) {
    return OAuthError(400, "invalid_request",
                      "the assertion must carry a `target_audience` or a `scope` claim");
  }
  auto scopes = SplitScopes(scope_it->value().as_string());
  auto token = issuer_.MintAccessToken(subject, scopes, options_.access_token_lifetime);
  if (!token) return FromError(token.error());
  boost::json::object o;
  o["access_token"] = token->token;
  o["expires_in"] = std::chrono::duration_cast<Seconds>(token->expire_time - clock_.Now()).count();
  o["token_type"] = "Bearer";
  return JsonReply(200, o);
}

HttpReply OAuthTokenEndpoint::UserTokens(const UserRecord& user, const std::string& scope,
                                         bool new_refresh_token, const std::string* id_audience) {
  TokenSubject subject{user.email, user.unique_id, PrincipalKind::kUser};
  auto access =
      issuer_.MintAccessToken(subject, SplitScopes(scope), options_.access_token_lifetime);
  if (!access) return FromError(access.error());
  auto id = issuer_.MintIdToken(subject, id_audience ? *id_audience : issuer_.urls().api_base_url);
  if (!id) {
    if (id.error().code == Code::kInvalidArgument) {  // an audience the issuer refuses
      return OAuthError(400, "invalid_request", id.error().message);
    }
    return FromError(id.error());
  }
  boost::json::object o;
  o["access_token"] = access->token;
  o["expires_in"] = std::chrono::duration_cast<Seconds>(access->expire_time - clock_.Now()).count();
  o["token_type"] = "Bearer";
  o["id_token"] = id->token;
  o["scope"] = scope;
  if (new_refresh_token) {
    std::string refresh = Base64UrlEncode(RandomBytes(32));
    const TimePoint now = clock_.Now();
    boost::json::object doc;
    doc["email"] = user.email;
    doc["unique_id"] = user.unique_id;
    doc["scope"] = scope;
    doc["create_time"] = FormatRfc3339(now);
    doc["expire_time"] = FormatRfc3339(now + options_.refresh_token_lifetime);
    auto put = store_.Put(store::Collection::kSettings, RefreshKey(refresh), json::Serialize(doc));
    if (!put) return FromError(put.error());
    o["refresh_token"] = refresh;
  }
  return JsonReply(200, o);
}

HttpReply OAuthTokenEndpoint::Password(const std::map<std::string, std::string>& form) {
  const std::string* username = Param(form, "username");
  const std::string* password = Param(form, "password");
  if (username == nullptr || password == nullptr) {
    return OAuthError(400, "invalid_request", "missing `username` or `password`");
  }
  if (!verify_password_) {
    return OAuthError(400, "unsupported_grant_type", "the password grant is disabled");
  }
  auto user = verify_password_(*username, *password);
  // One message for every refusal: never reveal whether the user exists.
  if (!user || user->disabled) {
    if (!user && user.error().code == Code::kUnavailable) {
      return OAuthError(503, "temporarily_unavailable", "the token service is unavailable");
    }
    return OAuthError(400, "invalid_grant", "invalid username or password");
  }
  const std::string* scope = Param(form, "scope");
  return UserTokens(*user, scope ? *scope : options_.default_user_scope, true);
}

HttpReply OAuthTokenEndpoint::Refresh(const std::map<std::string, std::string>& form) {
  const std::string* refresh = Param(form, "refresh_token");
  if (refresh == nullptr) return OAuthError(400, "invalid_request", "missing `refresh_token`");
  // Present but empty is an error (not "no audience": the caller asked for one).
  const std::string* audience = nullptr;
  if (auto it = form.find("target_audience"); it != form.end()) {
    if (it->second.empty()) {
      return OAuthError(400, "invalid_request", "`target_audience` must not be empty");
    }
    audience = &it->second;
  }
  if (refresh->size() > 512) return OAuthError(400, "invalid_grant", "invalid refresh token");
  const std::string key = RefreshKey(*refresh);
  auto doc = store_.Get(store::Collection::kSettings, key);
  if (!doc) return FromError(doc.error());
  if (!*doc) return OAuthError(400, "invalid_grant", "invalid refresh token");
  auto o = json::ParseObject((*doc)->data, "refresh token");
  if (!o) return OAuthError(400, "invalid_grant", "invalid refresh token");
  auto email = json::OptString(*o, "email");
  auto uid = json::OptString(*o, "unique_id");
  auto exp = json::OptString(*o, "expire_time");
  auto scope = json::OptString(*o, "scope");
  std::optional<TimePoint> expire = exp && *exp ? ParseRfc3339(**exp) : std::nullopt;
  if (!email || !*email || !uid || !*uid || !expire) {
    return OAuthError(400, "invalid_grant", "invalid refresh token");
  }
  if (clock_.Now() >= *expire) {
    (void)store_.Delete(store::Collection::kSettings, key);
    return OAuthError(400, "invalid_grant", "the refresh token has expired");
  }
  auto dir = directory_ ? directory_() : nullptr;
  const UserRecord* user = dir ? dir->FindUser(**email) : nullptr;
  if (user == nullptr || user->unique_id != **uid) {
    return OAuthError(400, "invalid_grant", "the refresh token's user no longer exists");
  }
  if (user->disabled) return OAuthError(400, "invalid_grant", "the user is disabled");
  std::string s = scope && *scope ? **scope : options_.default_user_scope;
  return UserTokens(*user, s, false, audience);
}

}  // namespace moat::identity
