// Real implementations of the CLI's seams, for `moat`'s main(): the HTTP transport over
// src/http's synchronous client and the RS256 signer over src/crypto. Built as the separate
// library moat_cli_wiring so moat_cli itself links only moat_common.
//
// Thread-safety: both objects are stateless; safe to share.
#pragma once

#include <memory>

#include "cli/transport.h"

namespace moat::cli {

// Plain-http transport (http::Fetch), 30 s per exchange, 64 MiB response cap.
std::unique_ptr<Transport> MakeHttpTransport();
// RS256 (RSA keys) or ES256 (P-256 keys) signer for service-account key files.
std::unique_ptr<Signer> MakeCryptoSigner();
// `moat run services proxy`: an HTTP server on the given loopback address that forwards each
// request to the service with the active identity's ID token (src/cli/proxy.cc). Run blocks
// until SIGINT/SIGTERM.
std::unique_ptr<ProxyRunner> MakeHttpProxyRunner();

}  // namespace moat::cli
