#include "api/api.h"

#include <boost/json.hpp>

#include "api/handler_util.h"
#include "api/routes.h"
#include "http/message.h"
#include "identity/verifier.h"

namespace moat::api {
namespace {


// https://SERVICE.googleapis.com/ (what Google's libraries put in self-signed JWTs).
bool IsGoogleApisAudience(std::string_view aud) {
  constexpr std::string_view kPrefix = "https://";
  constexpr std::string_view kSuffix = ".googleapis.com/";
  if (aud.size() <= kPrefix.size() + kSuffix.size()) return false;
  if (aud.substr(0, kPrefix.size()) != kPrefix) return false;
  if (aud.substr(aud.size() - kSuffix.size()) != kSuffix) return false;
  auto host = aud.substr(kPrefix.size(), aud.size() - kPrefix.size() - kSuffix.size());
  for (char c : host) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

}  // namespace

Authenticator MakeVerifierAuthenticator(identity::Verifier& verifier) {
  return [&verifier](const http::Request& req) -> Result<Caller> {
    Caller caller;
    const std::string_view* header = req.headers.Find("Authorization");
    if (!header || header->empty()) return caller;  // anonymous
    if (req.headers.Count("Authorization") > 1) {
      return Unauthenticated("request has more than one `Authorization` header");
    }
    std::string_view token = http::BearerToken(*header);
    if (token.empty()) {
      return Unauthenticated("the `Authorization` header must be `Bearer TOKEN`");
    }
    identity::VerifyRequest vr;
    vr.purpose = identity::VerifyPurpose::kApi;
    vr.audience_predicate = [&verifier](std::string_view aud) {
      return verifier.IsApiAudience(aud) || IsGoogleApisAudience(aud);
    };
    auto id = verifier.Verify(token, vr);
    if (!id) {
      const auto& f = id.error();
      if (f.code == Code::kUnavailable) return Unavailable(f.message);
      return Unauthenticated("request had invalid authentication credentials: " + f.message);
    }
    const identity::Identity& who = **id;
    caller.principal = who.kind == identity::PrincipalKind::kServiceAccount
                           ? iam::Principal::ServiceAccount(who.email)
                           : iam::Principal::User(who.email);
    caller.member = who.member;
    caller.unique_id = who.unique_id;
    caller.key_id = who.key_id;
    return caller;
  };
}

Api::~Api() = default;

Result<std::unique_ptr<Api>> Api::Create(ApiConfig config, ApiServices services) {
  if (!services.store || !services.live || !services.clock) {
    return InvalidArgument("the API needs a store, a live state and a clock");
  }
  std::unique_ptr<Api> api(new Api());
  api->env_ = std::make_unique<Env>();
  Env& env = *api->env_;
  static_cast<ApiServices&>(env) = std::move(services);
  env.config = std::move(config);
  if (env.config.issuer.empty()) env.config.issuer = env.config.api_base;
  if (!env.authenticate) {
    if (!env.verifier) return InvalidArgument("the API needs a verifier or an authenticator");
    env.authenticate = MakeVerifierAuthenticator(*env.verifier);
  }
  api->router_ = std::make_shared<http::Router>();
  RegisterAllRoutes(*api->router_, env);
  return api;
}

}  // namespace moat::api
