// HttpJwksFetcher: fetches trusted external issuers' JWKS documents over HTTP for the
// Verifier (identity::JwksFetcher). Only the issuer's configured jwks_uri is ever fetched —
// never a URL taken from a token. Plain http only (this build has no TLS client); an https
// jwks_uri fails cleanly and the issuer's tokens are refused as "issuer unavailable".
#pragma once

#include "identity/verifier.h"

namespace moat::server {

class HttpJwksFetcher : public identity::JwksFetcher {
 public:
  Result<identity::JwksDocument> Fetch(const std::string& uri) override;
};

}  // namespace moat::server
