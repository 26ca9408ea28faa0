#include "server/iam_gate.h"

#include <boost/json.hpp>
#include <unordered_map>

#include "common/json.h"
#include "http/message.h"
#include "iam/roles.h"

namespace moat::server {
namespace {

constexpr std::string_view kInvoke = "run.routes.invoke";

// Per worker thread: the View in use and principal sets resolved against its IAM snapshot.
struct ThreadCache {
  uint64_t owner = 0;  // LiveState::instance() of the LiveState the rest belongs to
  uint64_t generation = ~uint64_t{0};
  std::shared_ptr<const state::View> view;
  iam::PrincipalSet anonymous;
  std::unordered_map<std::string, iam::PrincipalSet> principals;  // member → set
  // The last service whose allUsers answer did not depend on time (empty: none) and that
  // answer, valid for this generation: a string compare instead of a policy check per request.
  std::string public_service;
  bool public_allowed = false;
};

}  // namespace


gateway::GateDecision IamGate::Decide(const gateway::GateRequest& req) {
  using gateway::GateDecision;
  using gateway::TokenHeader;
  thread_local ThreadCache cache;
  uint64_t gen = live_.generation();
  if (gen != cache.generation || cache.owner != live_.instance() || !cache.view) {
    cache.owner = live_.instance();
    cache.view = live_.Current();
    cache.generation = gen;
    cache.principals.clear();
    cache.anonymous = cache.view->iam->Resolve(iam::Principal::Anonymous());
    cache.public_service.clear();
  }
  const state::View& view = *cache.view;
  if (req.service.invoker_iam_disabled) return GateDecision::Allow(TokenHeader::kNone, "");
  TimePoint now = clock_.Now();
  static const uint32_t invoke = *iam::PermissionIndex(kInvoke);
  bool is_public;
  if (!cache.public_service.empty() && cache.public_service == req.service.name) {
    is_public = cache.public_allowed;
  } else {
    iam::Decision anyone = view.iam->Check(cache.anonymous, req.service.name, invoke, now);
    is_public = anyone.allowed;
    if (anyone.time_dependent) {
      cache.public_service.clear();  // a condition decided: ask again next time
    } else {
      cache.public_service = req.service.name;
      cache.public_allowed = is_public;
    }
  }
  if (is_public) return GateDecision::Allow(TokenHeader::kNone, "allUsers");

  TokenHeader which = TokenHeader::kNone;
  const std::string_view* header = nullptr;
  if (req.serverless_authorization) {
    which = TokenHeader::kServerlessAuthorization;
    header = req.serverless_authorization;
  } else if (req.authorization) {
    which = TokenHeader::kAuthorization;
    header = req.authorization;
  }
  std::string_view token = header ? http::BearerToken(*header) : std::string_view();
  if (token.empty()) {
    return GateDecision::Deny(
        403,
        header ? "the " + std::string(gateway::TokenHeaderName(which)) +
                     " header does not carry a bearer token"
               : "the request was not authenticated: no bearer token and the service is "
                 "not public",
        {}, which);
  }

  identity::VerifyRequest vr;
  vr.purpose = identity::VerifyPurpose::kGateway;
  const auto& audiences = req.service.audiences;
  vr.audience_predicate = [&audiences](std::string_view aud) {
    for (const auto& a : audiences) {
      if (a == aud) return true;
    }
    return false;
  };
  auto verified = verifier_.Verify(token, vr);
  if (!verified) {
    const auto& f = verified.error();
    int status = f.code == Code::kUnavailable ? 503 : 401;
    return GateDecision::Deny(status, "token refused (" + f.reason + "): " + f.message, {},
                              which);
  }
  const identity::Identity& id = **verified;

  auto it = cache.principals.find(id.member);
  if (it == cache.principals.end()) {
    if (cache.principals.size() > 10'000) cache.principals.clear();
    iam::Principal p = id.kind == identity::PrincipalKind::kServiceAccount
                           ? iam::Principal::ServiceAccount(id.email)
                           : iam::Principal::User(id.email);
    it = cache.principals.emplace(id.member, view.iam->Resolve(p)).first;
  }
  auto decision = view.iam->Check(it->second, req.service.name, invoke, now);
  if (decision.allowed) return GateDecision::Allow(which, id.member);
  auto explained = view.iam->Check(it->second, req.service.name, invoke, now, iam::Explain::kYes);
  return GateDecision::Deny(403, explained.ToString(), id.member, which);
}

}  // namespace moat::server
