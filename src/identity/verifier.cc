#include "identity/verifier.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cstring>
#include <deque>

#include "common/log.h"
#include "crypto/jwk.h"
#include "crypto/jwt.h"
#include "identity/credentials_keys.h"
#include "identity/signing_keys.h"

namespace moat::identity {
namespace {

constexpr std::string_view kGoogleTokenUrl = "https://oauth2.googleapis.com/token";
constexpr size_t kNumShards = 64;
constexpr size_t kMaxCandidateKeys = 16;

VerifyFailure Fail(std::string reason, std::string message, Code code = Code::kUnauthenticated) {
  return VerifyFailure{code, std::move(reason), std::move(message)};
}

VerifyFailure FromToken(const crypto::TokenFailure& f) {
  return Fail(std::string(crypto::TokenErrorName(f.reason)), f.message);
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool HasQueryOrFragment(std::string_view s) {
  return s.find('?') != std::string_view::npos || s.find('#') != std::string_view::npos;
}

// https://SERVICE.googleapis.com/… (what Google's clients put in self-signed JWTs).
bool IsGoogleApisAudience(std::string_view aud) {
  constexpr std::string_view kScheme = "https://";
  constexpr std::string_view kSuffix = ".googleapis.com";
  if (!aud.starts_with(kScheme) || HasQueryOrFragment(aud)) return false;
  std::string_view rest = aud.substr(kScheme.size());
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return false;
  std::string_view host = rest.substr(0, slash);
  if (host.size() <= kSuffix.size() || !host.ends_with(kSuffix)) return false;
  for (char c : host.substr(0, host.size() - kSuffix.size())) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) return false;
  }
  return true;
}

bool InList(const std::vector<std::string>& list, std::string_view v) {
  return std::find(list.begin(), list.end(), v) != list.end();
}

std::optional<std::string> ClaimString(const boost::json::object& claims, std::string_view k) {
  auto it = claims.find(k);
  if (it == claims.end() || !it->value().is_string()) return std::nullopt;
  return std::string(it->value().as_string());
}

// The bucket hash of a cache entry: the token's last 32 characters (the end of its signature,
// which nobody can choose without the signing key). Equality still compares the whole token.
size_t TailHash(std::string_view token) {
  return std::hash<std::string_view>{}(token.substr(token.size() > 32 ? token.size() - 32 : 0));
}
struct TokenHash {
  size_t operator()(std::string_view t) const noexcept { return TailHash(t); }
};

const Directory& EmptyDirectory() {
  static const auto* dir = new std::shared_ptr<const Directory>(Directory::Build({}));
  return **dir;
}

}  // namespace

std::string_view TokenSourceName(TokenSource s) {
  switch (s) {
    case TokenSource::kMoat:
      return "moat";
    case TokenSource::kSelfSigned:
      return "self_signed";
    case TokenSource::kExternal:
      return "external";
  }
  return "unknown";
}

void throw_exception_from_error(const VerifyFailure& f, const boost::source_location&) {
  throw ErrorException(f.ToError());
}

struct Verifier::Entry {
  std::unique_ptr<const std::string> token;  // owns the bytes the map key views
  std::shared_ptr<const Identity> identity;  // null once a re-check failed (dead entry)
  TimePoint valid_until{};
  std::weak_ptr<const Directory> checked_against;
};

struct Verifier::Shard {
  std::mutex mu;
  // INVARIANT: `order` holds exactly the keys of `map`, oldest first; entries are erased only
  // from the front of `order` (expired and dead entries wait there), so no view dangles.
  std::unordered_map<std::string_view, Entry, TokenHash> map;
  std::deque<std::string_view> order;
};

struct Verifier::IssuerKeys {
  std::string issuer;
  std::string jwks_uri;
  std::mutex fetch_mu;  // held while fetching: one fetch per issuer at a time
  std::mutex mu;        // guards the fields below
  std::shared_ptr<const crypto::JwkSet> set;
  TimePoint fresh_until{};
  TimePoint stale_until{};
  TimePoint last_attempt{};
  bool has_attempted = false;
  bool last_failed = false;
  bool refreshing = false;
};

Verifier::Verifier(VerifierOptions options, VerifierDeps deps)
    : options_(std::move(options)), deps_(std::move(deps)) {
  while (!options_.api_origin.empty() && options_.api_origin.back() == '/') {
    options_.api_origin.pop_back();
  }
  if (options_.token_url.empty()) options_.token_url = options_.api_origin + "/token";
  if (deps_.clock == nullptr) deps_.clock = &SystemClock();
  for (size_t i = 0; i < kNumShards; ++i) shards_.push_back(std::make_unique<Shard>());
  shard_capacity_ = std::max<size_t>(1, options_.cache_capacity / kNumShards);
}

Verifier::~Verifier() = default;

Verifier::Shard& Verifier::ShardFor(size_t hash) { return *shards_[(hash >> 40) % kNumShards]; }

bool Verifier::IsApiAudience(std::string_view aud) const {
  const std::string& o = options_.api_origin;
  if (o.empty() || !aud.starts_with(o) || HasQueryOrFragment(aud)) return false;
  return aud.size() == o.size() || aud[o.size()] == '/';
}

bool Verifier::AudienceAccepted(TokenSource source, std::string_view aud,
                                const VerifyRequest& request,
                                const TrustedIssuerRecord* issuer) const {
  auto requested = [&] {
    return InList(request.audiences, aud) ||
           (request.audience_predicate && request.audience_predicate(aud));
  };
  switch (request.purpose) {
    case VerifyPurpose::kGateway:
      return source != TokenSource::kSelfSigned && requested();
    case VerifyPurpose::kApi:
      switch (source) {
        case TokenSource::kMoat:
          return IsApiAudience(aud) || requested();
        case TokenSource::kSelfSigned:
          return IsApiAudience(aud) || IsGoogleApisAudience(aud) || requested();
        case TokenSource::kExternal:
          return IsApiAudience(aud) || (issuer != nullptr && InList(issuer->audiences, aud)) ||
                 requested();
      }
      return false;
    case VerifyPurpose::kAssertion:
      return source == TokenSource::kSelfSigned &&
             (aud == options_.token_url || aud == kGoogleTokenUrl);
  }
  return false;
}

bool Verifier::AudienceAccepted(const Identity& id, const VerifyRequest& request,
                                const Directory& dir) const {
  const TrustedIssuerRecord* issuer =
      id.source == TokenSource::kExternal ? dir.FindIssuer(id.issuer) : nullptr;
  for (const auto& aud : id.audiences) {
    if (AudienceAccepted(id.source, aud, request, issuer)) return true;
  }
  return false;
}

std::optional<VerifyFailure> Verifier::CheckStillValid(const Identity& id, const Directory& dir,
                                                       TimePoint now,
                                                       TimePoint* valid_until) const {
  TimePoint limit = id.expire_time + options_.skew;
  if (now >= limit) return Fail("expired", "token expired");
  if (id.kind == PrincipalKind::kServiceAccount) {
    const ServiceAccountRecord* sa = dir.FindServiceAccount(id.unique_id);
    if (sa == nullptr || sa->unique_id != id.unique_id) {
      return Fail("unknown_account", "the token's service account no longer exists");
    }
    if (sa->delete_time) {
      return Fail("account_deleted", "service account `" + sa->email + "` is deleted");
    }
    if (sa->disabled) {
      return Fail("account_disabled", "service account `" + sa->email + "` is disabled");
    }
    if (id.source == TokenSource::kSelfSigned) {
      if (const KeyRecord* key = dir.FindKey(id.key_id);
          key != nullptr && key->sa_unique_id == sa->unique_id) {
        if (key->disabled) return Fail("key_disabled", "key `" + id.key_id + "` is disabled");
        if (now < key->valid_after || now >= key->valid_before) {
          return Fail("key_expired", "key `" + id.key_id + "` is not valid at this time");
        }
        limit = std::min(limit, key->valid_before);
      } else if (auto sys = deps_.system_keys != nullptr ? deps_.system_keys->Find(id.key_id, now)
                                                         : nullptr;
                 sys != nullptr && sys->sa_unique_id == sa->unique_id) {
        limit = std::min(limit, sys->retire_time);
      } else {
        return Fail("unknown_key", "key `" + id.key_id + "` no longer exists");
      }
    }
  } else if (id.source == TokenSource::kExternal) {
    if (dir.FindIssuer(id.issuer) == nullptr) {
      return Fail("wrong_issuer",
                  "token issuer " + crypto::QuoteUntrusted(id.issuer) + " is no longer trusted");
    }
    if (const UserRecord* u = dir.FindUser(id.email); u != nullptr && u->disabled) {
      return Fail("user_disabled", "user `" + id.email + "` is disabled");
    }
  } else {
    const UserRecord* u = dir.FindUser(id.email);
    if (u == nullptr || u->unique_id != id.unique_id) {
      return Fail("unknown_account", "the token's user no longer exists");
    }
    if (u->disabled) return Fail("user_disabled", "user `" + id.email + "` is disabled");
  }
  if (valid_until != nullptr) *valid_until = limit;
  return std::nullopt;
}

VerifyResult<std::shared_ptr<const Identity>> Verifier::Verify(std::string_view token,
                                                               const VerifyRequest& request) {
  if (token.size() > crypto::kDefaultMaxTokenBytes) {
    return Fail("too_large", "token is larger than 16 KiB");
  }
  const TimePoint now = deps_.clock->Now();
  std::shared_ptr<const Directory> dir_ptr = deps_.directory ? deps_.directory() : nullptr;
  const Directory& dir = dir_ptr ? *dir_ptr : EmptyDirectory();
  const bool cacheable = request.purpose != VerifyPurpose::kAssertion && dir_ptr != nullptr;

  const size_t hash = TailHash(token);
  if (cacheable) {
    Shard& shard = ShardFor(hash);
    std::shared_ptr<const Identity> hit;
    {
      std::lock_guard<std::mutex> lock(shard.mu);
      auto it = shard.map.find(token);
      if (it != shard.map.end() && it->second.identity && now < it->second.valid_until) {
        Entry& e = it->second;
        bool same_dir =
            !e.checked_against.owner_before(dir_ptr) && !dir_ptr.owner_before(e.checked_against);
        if (!same_dir) {
          TimePoint limit;
          if (auto failure = CheckStillValid(*e.identity, dir, now, &limit)) {
            e.identity = nullptr;  // dead; evicted in FIFO order
            return *failure;
          }
          e.checked_against = dir_ptr;
          e.valid_until = limit;
        }
        hit = e.identity;
      }
    }
    if (hit) {
      hits_.fetch_add(1, std::memory_order_relaxed);
      if (hit->source == TokenSource::kSelfSigned && request.purpose != VerifyPurpose::kApi) {
        return Fail("self_signed_not_allowed",
                    "self-signed service-account tokens are accepted only by moat's api");
      }
      if (!AudienceAccepted(*hit, request, dir)) {
        return Fail("wrong_audience", "token audience is not accepted here");
      }
      if (hit->source == TokenSource::kSelfSigned && deps_.on_key_used) {
        deps_.on_key_used(hit->key_id, now);
      }
      return hit;
    }
  }
  misses_.fetch_add(1, std::memory_order_relaxed);
  TimePoint valid_until{};
  auto result = VerifyUncached(token, request, dir, now, &valid_until);
  if (!result) return result;
  if ((*result)->source == TokenSource::kSelfSigned && deps_.on_key_used) {
    deps_.on_key_used((*result)->key_id, now);
  }
  if (cacheable) {
    Shard& shard = ShardFor(hash);
    std::lock_guard<std::mutex> lock(shard.mu);
    auto it = shard.map.find(token);
    if (it != shard.map.end()) {
      it->second.identity = *result;
      it->second.valid_until = valid_until;
      it->second.checked_against = dir_ptr;
    } else {
      while (shard.map.size() >= shard_capacity_ && !shard.order.empty()) {
        shard.map.erase(shard.order.front());
        shard.order.pop_front();
      }
      auto owned = std::make_unique<const std::string>(token);
      std::string_view view = *owned;
      shard.map.emplace(view, Entry{std::move(owned), *result, valid_until, dir_ptr});
      shard.order.push_back(view);
    }
  }
  return result;
}

VerifyResult<std::shared_ptr<const Identity>> Verifier::VerifyUncached(std::string_view token,
                                                                       const VerifyRequest& request,
                                                                       const Directory& dir,
                                                                       TimePoint now,
                                                                       TimePoint* valid_until) {
  auto decoded = crypto::DecodeUnverified(token);
  if (!decoded) return FromToken(decoded.error());
  auto iss = ClaimString(decoded->claims, "iss");
  if (!iss) return Fail("missing_claim", "token has no string `iss` claim");
  if (*iss == options_.issuer && !options_.issuer.empty()) {
    if (request.purpose == VerifyPurpose::kAssertion) {
      return Fail("wrong_issuer", "an assertion must be signed by a service-account key");
    }
    return VerifyMoat(token, request, dir, now, valid_until);
  }
  if (request.purpose != VerifyPurpose::kAssertion) {
    if (const TrustedIssuerRecord* issuer = dir.FindIssuer(*iss)) {
      return VerifyExternal(token, *issuer, decoded->jws.kid, request, dir, now, valid_until);
    }
  }
  if (iss->find('@') != std::string::npos) {
    return VerifySelfSigned(token, *iss, request, dir, now, valid_until);
  }
  return Fail("wrong_issuer", "token issuer " + crypto::QuoteUntrusted(*iss) + " is not trusted");
}

VerifyResult<std::shared_ptr<const Identity>> Verifier::VerifyMoat(std::string_view token,
                                                                   const VerifyRequest& request,
                                                                   const Directory& dir,
                                                                   TimePoint now,
                                                                   TimePoint* valid_until) {
  if (deps_.signing_keys == nullptr)
    return Fail("unknown_key", "moat's signing keys are not loaded");
  auto set = deps_.signing_keys->Snapshot();
  crypto::KeyLookup lookup = [&set](const crypto::KeyQuery& q) {
    std::vector<crypto::PublicKeyPtr> out;
    if (q.kid) {
      if (const SigningKey* k = set->Find(*q.kid)) out.push_back(k->public_key);
    }
    return out;
  };
  crypto::JwtVerifyOptions opts;
  opts.issuers = {options_.issuer};
  opts.audience_predicate = [&](std::string_view aud) {
    return AudienceAccepted(TokenSource::kMoat, aud, request, nullptr);
  };
  opts.clock = deps_.clock;
  opts.skew = options_.skew;
  opts.max_lifetime = deps_.signing_keys->options().max_token_lifetime;
  auto v = crypto::VerifyJwt(token, lookup, opts);
  if (!v) return FromToken(v.error());
  const SigningKey* key = set->Find(v->kid);
  if (key == nullptr || TimePoint(Seconds(v->exp)) > key->max_token_exp) {
    return Fail("bad_claim", "token expires after its signing key's publication window");
  }
  if (!v->sub || v->sub->empty()) return Fail("missing_claim", "token has no `sub` claim");
  auto id = std::make_shared<Identity>();
  id->unique_id = *v->sub;
  id->source = TokenSource::kMoat;
  id->key_id = v->kid;
  id->issuer = v->iss;
  id->audiences = v->aud;
  id->expire_time = TimePoint(Seconds(v->exp));
  id->scope = ClaimString(v->claims, "scope").value_or("");
  if (const ServiceAccountRecord* sa = dir.FindServiceAccount(*v->sub);
      sa != nullptr && sa->unique_id == *v->sub) {
    id->kind = PrincipalKind::kServiceAccount;
    id->email = Lower(sa->email);
    id->member = "serviceAccount:" + id->email;
  } else if (auto email = ClaimString(v->claims, "email")) {
    id->kind = PrincipalKind::kUser;
    id->email = Lower(*email);
    id->member = "user:" + id->email;
  } else {
    return Fail("unknown_account", "the token's subject is not a known account");
  }
  if (auto failure = CheckStillValid(*id, dir, now, valid_until)) return *failure;
  return std::shared_ptr<const Identity>(std::move(id));
}

VerifyResult<std::shared_ptr<const Identity>> Verifier::VerifySelfSigned(
    std::string_view token, std::string_view iss, const VerifyRequest& request,
    const Directory& dir, TimePoint now, TimePoint* valid_until) {
  if (request.purpose == VerifyPurpose::kGateway) {
    return Fail("self_signed_not_allowed",
                "self-signed service-account tokens are accepted only by moat's api");
  }
  const ServiceAccountRecord* sa = dir.FindServiceAccount(iss);
  if (sa == nullptr) {
    return Fail("unknown_account",
                "service account " + crypto::QuoteUntrusted(iss) + " does not exist");
  }
  auto decoded = crypto::DecodeJws(token);
  if (!decoded) return FromToken(decoded.error());
  // Candidate keys: by kid (any state, so a disabled key is reported as such after its
  // signature verified), or every usable key of the account when the token has no kid.
  struct Candidate {
    std::string kid;
    crypto::PublicKeyPtr key;
  };
  std::vector<Candidate> candidates;
  if (decoded->kid) {
    const std::string& kid = *decoded->kid;
    if (const KeyRecord* k = dir.FindKey(kid);
        k != nullptr && k->sa_unique_id == sa->unique_id && k->public_key) {
      candidates.push_back({kid, k->public_key});
    } else if (auto sys = deps_.system_keys ? deps_.system_keys->Find(kid, now) : nullptr;
               sys != nullptr && sys->sa_unique_id == sa->unique_id) {
      candidates.push_back({kid, sys->public_key});
    } else {
      return Fail("unknown_key", "key " + crypto::QuoteUntrusted(kid) +
                                     " is not a key of service account `" + sa->email + "`");
    }
  } else {
    for (const KeyRecord* k : dir.KeysOf(sa->email)) {
      if (KeyUsable(*k, *sa, now)) candidates.push_back({k->key_id, k->public_key});
    }
    if (deps_.system_keys != nullptr) {
      for (const auto& k : deps_.system_keys->KeysOf(sa->unique_id, now)) {
        candidates.push_back({k->kid, k->public_key});
      }
    }
    if (candidates.size() > kMaxCandidateKeys) candidates.resize(kMaxCandidateKeys);
    if (candidates.empty()) {
      return Fail("unknown_key", "service account `" + sa->email + "` has no usable key");
    }
  }
  crypto::JwtVerifyOptions opts;
  opts.issuers = {std::string(iss)};
  opts.audience_predicate = [&](std::string_view aud) {
    return AudienceAccepted(TokenSource::kSelfSigned, aud, request, nullptr);
  };
  opts.clock = deps_.clock;
  opts.skew = options_.skew;
  opts.max_lifetime = options_.max_self_signed_lifetime;
  std::optional<crypto::TokenFailure> first_failure;
  for (const auto& c : candidates) {
    crypto::PublicKeyPtr key = c.key;
    auto lookup = [key](const crypto::KeyQuery&) { return std::vector<crypto::PublicKeyPtr>{key}; };
    auto v = crypto::VerifyJwt(token, lookup, opts);
    if (!v) {
      // Another key may match a kid-less token; any other failure is final.
      if (v.error().reason == crypto::TokenError::kBadSignature && candidates.size() > 1) {
        if (!first_failure) first_failure = v.error();
        continue;
      }
      return FromToken(v.error());
    }
    if (v->sub && *v->sub != v->iss) {
      return Fail("subject_mismatch",
                  "a self-signed token's `sub` must equal its `iss` (no domain-wide delegation)");
    }
    auto id = std::make_shared<Identity>();
    id->kind = PrincipalKind::kServiceAccount;
    id->source = TokenSource::kSelfSigned;
    id->email = Lower(sa->email);
    id->member = "serviceAccount:" + id->email;
    id->unique_id = sa->unique_id;
    id->key_id = c.kid;
    id->issuer = v->iss;
    id->audiences = v->aud;
    id->expire_time = TimePoint(Seconds(v->exp));
    if (auto failure = CheckStillValid(*id, dir, now, valid_until)) return *failure;
    return std::shared_ptr<const Identity>(std::move(id));
  }
  return FromToken(*first_failure);
}

VerifyResult<std::shared_ptr<const Identity>> Verifier::VerifyExternal(
    std::string_view token, const TrustedIssuerRecord& issuer, std::optional<std::string> kid,
    const VerifyRequest& request, const Directory& dir, TimePoint now, TimePoint* valid_until) {
  auto set = IssuerKeySet(issuer, kid, now);
  if (!set) return set.error();
  crypto::JwtVerifyOptions opts;
  opts.issuers = {issuer.issuer};
  opts.audience_predicate = [&](std::string_view aud) {
    return AudienceAccepted(TokenSource::kExternal, aud, request, &issuer);
  };
  opts.clock = deps_.clock;
  opts.skew = options_.skew;
  auto v = crypto::VerifyJwt(token, crypto::JwksKeyLookup(*set), opts);
  if (!v) return FromToken(v.error());
  auto email = ClaimString(v->claims, "email");
  if (!email || email->empty()) return Fail("missing_claim", "token has no `email` claim");
  auto ev = v->claims.find("email_verified");
  bool verified =
      ev != v->claims.end() && ((ev->value().is_bool() && ev->value().as_bool()) ||
                                (ev->value().is_string() && ev->value().as_string() == "true"));
  if (!verified) return Fail("email_not_verified", "token's email is not verified");
  auto id = std::make_shared<Identity>();
  id->kind = PrincipalKind::kUser;
  id->source = TokenSource::kExternal;
  id->email = Lower(*email);
  id->member = "user:" + id->email;
  id->unique_id = v->sub.value_or("");
  id->key_id = v->kid;
  id->issuer = v->iss;
  id->audiences = v->aud;
  id->expire_time = TimePoint(Seconds(v->exp));
  if (auto failure = CheckStillValid(*id, dir, now, valid_until)) return *failure;
  return std::shared_ptr<const Identity>(std::move(id));
}

void Verifier::Refresh(IssuerKeys& state) {
  // Caller holds state.fetch_mu.
  {
    std::lock_guard<std::mutex> lock(state.mu);
    state.last_attempt = deps_.clock->Now();
    state.has_attempted = true;
  }
  jwks_fetches_.fetch_add(1, std::memory_order_relaxed);
  auto doc = deps_.fetcher->Fetch(state.jwks_uri);
  std::shared_ptr<const crypto::JwkSet> parsed;
  std::chrono::seconds max_age = options_.default_jwks_max_age;
  if (doc) {
    auto set = crypto::ParseJwks(doc->body);
    if (set) {
      parsed = std::make_shared<const crypto::JwkSet>(std::move(*set));
      if (doc->max_age) max_age = std::clamp(*doc->max_age, Seconds(0), options_.max_jwks_max_age);
    } else {
      log::Warn("external issuer served an invalid jwks",
                {{"issuer", state.issuer}, {"error", set.error().message}});
    }
  } else {
    log::Warn("external issuer jwks fetch failed",
              {{"issuer", state.issuer}, {"error", doc.error().message}});
  }
  const TimePoint done = deps_.clock->Now();
  std::lock_guard<std::mutex> lock(state.mu);
  state.refreshing = false;
  state.last_failed = parsed == nullptr;
  if (parsed) {
    state.set = std::move(parsed);
    state.fresh_until = done + max_age;
    state.stale_until = state.fresh_until + options_.max_jwks_stale;
  }
}

VerifyResult<std::shared_ptr<const crypto::JwkSet>> Verifier::IssuerKeySet(
    const TrustedIssuerRecord& issuer, const std::optional<std::string>& kid, TimePoint now) {
  auto unavailable = [&] {
    return Fail("issuer_unavailable", "issuer `" + issuer.issuer + "` unavailable",
                Code::kUnavailable);
  };
  if (deps_.fetcher == nullptr || issuer.jwks_uri.empty()) return unavailable();
  std::shared_ptr<IssuerKeys> state;
  {
    std::lock_guard<std::mutex> lock(issuers_mu_);
    auto& slot = issuers_[issuer.issuer + "\n" + issuer.jwks_uri];
    if (!slot) {
      slot = std::make_shared<IssuerKeys>();
      slot->issuer = issuer.issuer;
      slot->jwks_uri = issuer.jwks_uri;
    }
    state = slot;
  }
  const auto min_interval = options_.min_jwks_refetch_interval;
  std::shared_ptr<const crypto::JwkSet> stale;
  {
    std::lock_guard<std::mutex> lock(state->mu);
    const bool may_refetch = !state->has_attempted || now - state->last_attempt >= min_interval;
    const bool kid_known = !kid || (state->set && state->set->Find(*kid) != nullptr);
    if (state->set && now < state->fresh_until) {
      // Fresh. An unknown kid triggers a refetch, at most once per min_interval.
      if (kid_known || !may_refetch) return state->set;
    } else if (state->set && now < state->stale_until) {
      // Stale-while-revalidate: answer with the cached keys while one refresh runs.
      if (kid_known || !may_refetch) {
        if (state->refreshing || !may_refetch) return state->set;
        state->refreshing = true;
        if (deps_.background) stale = state->set;
        // else: this request refreshes inline; concurrent ones see `refreshing`.
      }
    } else if (!may_refetch) {
      return unavailable();  // nothing usable cached and the issuer failed moments ago
    }
  }
  if (stale) {
    deps_.background([this, state] {
      std::lock_guard<std::mutex> fetch_lock(state->fetch_mu);
      Refresh(*state);
    });
    return stale;
  }
  // Synchronous (single-flight) fetch: on a cold or expired cache, an unknown kid, or a stale
  // cache without a background executor (concurrent requests keep using the stale keys).
  {
    std::unique_lock<std::mutex> fetch_lock(state->fetch_mu, std::try_to_lock);
    if (!fetch_lock.owns_lock()) {
      std::lock_guard<std::mutex> lock(state->mu);
      if (state->set && now < state->stale_until) return state->set;  // someone is refreshing
    }
    if (!fetch_lock.owns_lock()) fetch_lock.lock();
    bool fetched_meanwhile;
    {
      std::lock_guard<std::mutex> lock(state->mu);
      fetched_meanwhile = state->has_attempted && state->last_attempt >= now &&
                          now - state->last_attempt < min_interval && state->set;
    }
    if (fetched_meanwhile) {
      std::lock_guard<std::mutex> lock(state->mu);
      state->refreshing = false;
    } else {
      Refresh(*state);
    }
  }
  std::lock_guard<std::mutex> lock(state->mu);
  if (state->set && now < state->stale_until) return state->set;
  return unavailable();
}

Verifier::Stats Verifier::stats() const {
  Stats s;
  s.hits = hits_.load();
  s.misses = misses_.load();
  s.jwks_fetches = jwks_fetches_.load();
  for (const auto& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard->mu);
    s.cache_size += shard->map.size();
  }
  return s;
}

void Verifier::ClearCache() {
  for (auto& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard->mu);
    shard->map.clear();
    shard->order.clear();
  }
}

}  // namespace moat::identity
