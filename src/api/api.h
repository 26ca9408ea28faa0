// The control plane: Google-compatible REST (Cloud Run Admin v2, IAM v1, IAM Credentials v1,
// Resource Manager IAM, OAuth2/OIDC) plus Moat's own `/moat/v1` resources, served through one
// http::Router (docs/api.md is the reference).
//
// Every request is authenticated by the one verifier (through ApiDeps::authenticate) and
// authorized on the current LiveState View with Google's permission names; mutations run in
// one store transaction together with their admin-activity audit entry, and answer with
// `X-Moat-Revision` (the revision they created). `X-Moat-Min-Revision: N` on a request makes
// it wait until the View enforces revision N.
//
// Thread-safety: an Api is built once; its router's handlers run concurrently on the HTTP
// server's threads. Everything in ApiDeps must outlive it.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/clock.h"
#include "common/error.h"
#include "http/message.h"
#include "http/router.h"
#include "iam/evaluator.h"

namespace moat::store {
class Store;
}
namespace moat::state {
class LiveState;
}
namespace moat::identity {
class Verifier;
class TokenIssuer;
class SigningKeyManager;
class ServiceAccounts;
class KeyUsageRecorder;
class SystemManagedKeys;
}

namespace moat::api {

struct ApiConfig {
  // The API's origin, e.g. "http://127.0.0.1:8081" (no trailing slash). Self-signed JWTs may
  // use any URL on it as `aud`; key files name `${api_base}/token` as their token_uri.
  std::string api_base;
  // Moat's OIDC issuer (`iss` of the tokens it mints); defaults to api_base.
  std::string issuer;
  // The gateway's base URL, e.g. "http://127.0.0.1:8080", for service `uri`/`urls`.
  std::string gateway_base;
  // Longest a request waits for X-Moat-Min-Revision.
  std::chrono::milliseconds max_revision_wait{10'000};
};

// Who is calling, after verification.
struct Caller {
  iam::Principal principal;  // kAnonymous when no credential was presented
  std::string member;        // "serviceAccount:…" / "user:…"; "" for anonymous
  std::string unique_id;     // service account / user numeric id when known
  std::string key_id;        // the key that signed the credential, when relevant
  bool authenticated() const { return principal.authenticated(); }
};

// Verifies the request's credential. Returns an anonymous Caller when there is none, a Caller
// for a valid credential, and kUnauthenticated (401) / kUnavailable (503, an external issuer
// cannot be reached) when a credential is present but cannot be accepted.
using Authenticator = std::function<Result<Caller>(const http::Request&)>;

// One line of a command-run service's logs (`moat run services logs read`).
struct ServiceLogLine {
  TimePoint time{};
  std::string stream;  // "stdout", "stderr", "system"
  std::string text;
};

// What the API serves from. Everything must outlive the Api.
struct ApiServices {
  store::Store* store = nullptr;
  state::LiveState* live = nullptr;
  const Clock* clock = nullptr;
  identity::Verifier* verifier = nullptr;
  identity::TokenIssuer* issuer = nullptr;
  identity::SigningKeyManager* signing = nullptr;
  identity::ServiceAccounts* accounts = nullptr;
  identity::KeyUsageRecorder* key_usage = nullptr;  // optional
  // Per-account system-managed keys for signJwt/signBlob (optional: those answer 501).
  identity::SystemManagedKeys* system_keys = nullptr;
  // Optional: blocks until the service of `name` written at `revision` serves traffic (its
  // route is published and, for a command, the process is ready), like `gcloud run deploy`
  // waiting for the revision to be Ready. Errors surface as the operation's error.
  std::function<Status(const std::string& name, int64_t revision)> wait_service_ready;
  // Optional: the newest `limit` log lines of a command-run service.
  std::function<std::vector<ServiceLogLine>(const std::string& name, size_t limit)> service_logs;
  // Optional: extra text appended to /metrics (the gateway's counters).
  std::function<std::string()> extra_metrics;
  // Overrides the default authenticator (the one Verifier); for tests.
  Authenticator authenticate;
};

struct Env;

// The API: owns the handlers' environment and the router that serves them.
class Api {
 public:
  // Errors: a route that cannot be registered (a bug), kInvalidArgument for a bad config.
  static Result<std::unique_ptr<Api>> Create(ApiConfig config, ApiServices services);
  ~Api();
  std::shared_ptr<const http::Router> router() const { return router_; }
  const Env& env() const { return *env_; }

 private:
  Api() = default;
  std::unique_ptr<Env> env_;
  std::shared_ptr<http::Router> router_;
};

// The default Authenticator: `Authorization: Bearer TOKEN` through the Verifier for the API
// (Moat ID/access tokens, self-signed service-account JWTs whose aud is on the API's origin or
// https://SERVICE.googleapis.com/, trusted external issuers). No header → anonymous.
Authenticator MakeVerifierAuthenticator(identity::Verifier& verifier);

}  // namespace moat::api
