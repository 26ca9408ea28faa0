// The metadata server of one workload (GOOGLE.md §10) as pure logic: Handle(method, path,
// query, headers) → {status, headers, body}. The runtime module runs one listener per
// supervised workload and forwards requests here; the workload's client libraries
// (google-auth, gcp-metadata, Go's metadata package) then get tokens for the workload's
// service account without any key file.
//
// Rules: every reply carries `Metadata-Flavor: Google`. A request without the header
// `Metadata-Flavor: Google` is refused with 403 and Google's text; a request carrying
// X-Forwarded-For is refused with 403 (as GCE does: the metadata server must not be reachable
// through a proxy). Only GET (and HEAD) are served; others → 405.
//
// Paths under /computeMetadata/v1/:
//   instance/service-accounts/{default|EMAIL}/identity?audience=…[&format=standard|full]
//        → the raw ID token (email always included; format=full adds a `google` claim
//          block {compute_engine:{project_id, project_number}}); missing audience → 400.
//          The audience may arrive percent-encoded or raw (Node does not encode it).
//   …/{sa}/token[?scopes=a,b] → {"access_token","expires_in","token_type":"Bearer"}
//   …/{sa}/email, …/{sa}/aliases, …/{sa}/scopes, …/{sa}/?recursive=true (JSON
//        {aliases, email, scopes}), …/{sa}/ (listing), instance/service-accounts/ (listing)
//   project/project-id, project/numeric-project-id, instance/region, instance/zone (when
//   configured), instance/ and / (pings: 200). Anything else → 404.
//
// Thread-safety: Handle may be called concurrently.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "identity/oauth_token_endpoint.h"  // HttpReply
#include "identity/verifier.h"              // DirectoryProvider

namespace moat::identity {

class TokenIssuer;

struct MetadataServerOptions {
  std::string project_id;
  std::string numeric_project_id;  // default: "0"
  std::string region;              // "" → 404 for instance/region
  std::string zone;                // "" → 404 for instance/zone
  std::vector<std::string> default_scopes = {"https://www.googleapis.com/auth/cloud-platform"};
};

class MetadataHandler {
 public:
  // `service_account_email` returns the workload's service account (it may change when the
  // service is redeployed). References must outlive this.
  MetadataHandler(const TokenIssuer& issuer, DirectoryProvider directory,
                  std::function<std::string()> service_account_email,
                  MetadataServerOptions options);

  // `path` without the query string; `query` already split (values URL-decoded or not);
  // header names are matched case-insensitively.
  HttpReply Handle(std::string_view method, std::string_view path,
                   const std::map<std::string, std::string>& query,
                   const std::vector<std::pair<std::string, std::string>>& headers) const;

 private:
  HttpReply ServiceAccountPath(std::string_view sa, std::string_view rest,
                               const std::map<std::string, std::string>& query) const;

  const TokenIssuer& issuer_;
  DirectoryProvider directory_;
  std::function<std::string()> service_account_email_;
  MetadataServerOptions options_;
};

}  // namespace moat::identity
