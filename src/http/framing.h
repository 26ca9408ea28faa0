// Strict HTTP/1.1 framing: a hand-written validator/parser for request and response heads and
// an incremental chunked-body decoder. Pure functions over bytes (no I/O), so the smuggling
// corpus in framing_test.cc exercises them directly.
//
// Why not Beast's parser alone: Boost 1.81's parser accepts some CL/TE orderings and lenient
// forms that let a front end and a back end disagree on where a request ends. Everything here
// refuses ambiguity: both Content-Length and Transfer-Encoding, duplicate or malformed
// Content-Length, any Transfer-Encoding other than exactly `chunked`, obsolete line folding,
// whitespace before a colon, non-token header names, bare CR or LF, NUL and other controls.
//
// Handles untrusted input: yes. Thread-safety: pure functions; ChunkedDecoder is a value type.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "http/message.h"

namespace moat::http {

struct HeadLimits {
  size_t max_fields = 100;  // more fields → 431
};

// The outcome of parsing a head: status 0 means success; otherwise the HTTP status to answer
// with (400, 431, 501, 505; for responses: 502) and a short reason for logs (never secrets).
struct ParseError {
  int status = 0;
  std::string_view reason;
  explicit operator bool() const { return status != 0; }
};

// Parses a request head: `raw` is everything up to and including the blank line
// ("…\r\n\r\n"); leading empty lines are ignored. On success fills `out` (and derives its body
// framing, keep-alive, websocket upgrade and Expect), else returns the error. An absolute-form
// target is rewritten to origin-form; its authority must equal Host, and when there is no Host
// (HTTP/1.0) it becomes `host` and is added to the fields as Host, so that what a proxy routes
// on is what it forwards; for the same reason a Connection option naming `host` is a 400 (a
// proxy removes the fields Connection names). More than `limits.max_fields` fields → 431
// (parsing stops there).
ParseError ParseRequestHead(std::string_view raw, RequestHead* out, const HeadLimits& limits = {});

// Parses a response head from an upstream. `request_method` decides whether a body follows
// (HEAD, and 1xx/204/304 responses have none). Errors carry status 502.
ParseError ParseResponseHead(std::string_view raw, std::string_view request_method,
                             ResponseHead* out, const HeadLimits& limits = {});

// True for RFC 9110 token characters (tchar).
bool IsTokenChar(unsigned char c);

// Incremental decoder for the chunked transfer coding (RFC 9112 §7.1), strict:
// chunk-size is 1–16 hex digits with no leading whitespace and no sign, its value < 2^63;
// extensions (";name[=value]") are allowed up to 4 KiB and must not contain controls; every
// line ends in CRLF (a bare LF or CR is an error); chunk data is followed by exactly CRLF;
// trailer fields are syntax-checked, limited to 16 KiB, and discarded.
class ChunkedDecoder {
 public:
  struct Step {
    size_t consumed = 0;    // bytes of input used by this step
    std::string_view data;  // decoded body bytes (a subrange of the input), may be empty
  };

  // Consumes a prefix of `in`. Call repeatedly with the unconsumed rest; when `in` is fully
  // consumed without reaching done(), more input is needed.
  Step Feed(std::string_view in);
  bool done() const { return state_ == State::kDone; }
  bool failed() const { return state_ == State::kError; }
  std::string_view error() const { return error_; }

 private:
  enum class State {
    kSize,
    kExt,
    kSizeLf,
    kData,
    kDataCr,
    kDataLf,
    kTrailerStart,
    kTrailerLine,
    kTrailerLf,
    kFinalLf,
    kDone,
    kError,
  };
  Step Fail(std::string_view why, size_t consumed);

  State state_ = State::kSize;
  uint64_t size_ = 0;
  int digits_ = 0;
  size_t ext_bytes_ = 0;
  size_t trailer_bytes_ = 0;
  size_t line_bytes_ = 0;
  bool trailer_seen_colon_ = false;
  bool ext_semicolon_ = false;
  std::string_view error_;
};

}  // namespace moat::http
