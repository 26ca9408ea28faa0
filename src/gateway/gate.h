// The authorization seam of the data plane. The gateway asks a Gate once per request, on the
// request head only, before a single body byte is forwarded. Implementations (identity + iam
// modules) verify the bearer token (cached) and evaluate the service's invoker policy on an
// immutable snapshot; Decide must not block on I/O.
//
// Decision rules the gateway applies around the Gate (GOOGLE.md §1.3, §1.5, §13):
//  - Allow: the header named by `token_header` is forwarded with its JWT signature replaced
//    by SIGNATURE_REMOVED_BY_GOOGLE; when X-Serverless-Authorization carried the token,
//    Authorization is forwarded untouched. An unverified X-Serverless-Authorization is never
//    forwarded.
//  - Deny 401: Cloud Run's 401 page + WWW-Authenticate; 403: the 403 page; 503: "issuer
//    unavailable" (fail closed). Any other deny status is treated as 403. `reason` goes to
//    the logs and the denial hook, never to the client.
//  - Requests with more than one Authorization or X-Serverless-Authorization field are
//    refused with 400 before the Gate is asked.
//
// Thread-safety: Decide is called concurrently from every gateway worker thread.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "gateway/route_table.h"
#include "http/message.h"

namespace moat::gateway {

enum class TokenHeader {
  kNone,                     // no token was verified (public service, invoker IAM disabled)
  kAuthorization,            // "Authorization: Bearer …" carried the verified token
  kServerlessAuthorization,  // "X-Serverless-Authorization: Bearer …" carried it
};
std::string_view TokenHeaderName(TokenHeader h);

struct GateRequest {
  const ServiceEntry& service;
  std::string_view method;
  std::string_view target;  // origin-form, query included
  std::string_view host;
  const http::Headers& headers;
  const std::string_view* authorization;             // nullptr when absent
  const std::string_view* serverless_authorization;  // nullptr when absent
  std::string_view remote_addr;                 // "ip:port"
  std::string_view request_id;
};

struct GateDecision {
  bool allowed = false;
  // Allow: the header whose token was verified (and is forwarded). Deny: the header the token
  // was taken from (kNone when the request carried none), for logs and the audit entry.
  TokenHeader token_header = TokenHeader::kNone;
  std::string principal;  // allow: e.g. "serviceAccount:sa@p.iam.gserviceaccount.com", for logs
  int status = 403;       // deny: 401, 403 or 503
  std::string reason;     // deny: for logs/audit only

  static GateDecision Allow(TokenHeader h, std::string principal) {
    GateDecision d;
    d.allowed = true;
    d.token_header = h;
    d.principal = std::move(principal);
    d.status = 0;
    return d;
  }
  static GateDecision Deny(int status, std::string reason, std::string principal = {},
                           TokenHeader h = TokenHeader::kNone) {
    GateDecision d;
    d.status = status;
    d.reason = std::move(reason);
    d.principal = std::move(principal);
    d.token_header = h;
    return d;
  }
};

class Gate {
 public:
  virtual ~Gate() = default;
  virtual GateDecision Decide(const GateRequest& request) = 0;
};

// Called on the worker thread for every denial (after the decision, before the response is
// written). Must be fast and must not throw; queue work elsewhere for slow sinks.
using DenialHook = std::function<void(const GateRequest&, const GateDecision&)>;

}  // namespace moat::gateway
