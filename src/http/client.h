// A small synchronous HTTP/1.1 client (plain http only) for the CLI and tests. Each call
// opens one connection (Connection: close), sends the request with Content-Length, and reads
// the whole response through the same strict framing code the server uses.
//
// The response is read while the request is still being written: a server that answers early
// (401/403/413 before reading a large body) and closes or stops reading gets its response
// returned, not "broken pipe"; the rest of the body is then abandoned.
//
// Thread-safety: Fetch may be called from any number of threads at once (no shared state).
#pragma once

#include <chrono>
#include <string>

#include "common/error.h"
#include "http/message.h"

namespace moat::http {

struct ClientRequest {
  std::string method = "GET";
  std::string url;  // http://host[:port]/path?query ; host may be [v6]
  Headers headers;  // Host, Content-Length and Connection are set by Fetch (Host if absent)
  std::string body;
  std::chrono::milliseconds timeout{30'000};  // whole exchange
  size_t max_response_bytes = 64 * 1024 * 1024;
};

struct ClientResponse {
  int status = 0;
  Headers headers;
  std::string body;
};

// Errors: kInvalidArgument (bad URL, non-http scheme), kUnavailable (connect/IO failure, or the
// server closed without a complete response), kDeadlineExceeded (timeout),
// kResourceExhausted (response too large).
Result<ClientResponse> Fetch(const ClientRequest& request);

struct ParsedUrl {
  std::string host;  // without brackets
  uint16_t port = 80;
  std::string target;     // "/path?query"
  std::string authority;  // as written (for Host)
};
Result<ParsedUrl> ParseHttpUrl(std::string_view url);

}  // namespace moat::http
