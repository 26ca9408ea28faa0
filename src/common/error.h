// Error type and Result<T> shared by every module.
//
// Input-dependent failures (bad JSON, unknown resource, stale etag…) are returned as
// Result<T>; infrastructure failures that the caller cannot handle locally may throw and are
// caught once at the request root. A denied authorization is a *decision*, not an Error.
//
// Codes are Google's canonical codes (google/rpc/code.proto) so the API layer maps them to
// HTTP and to the JSON error envelope in one place (HttpStatus, CodeName).
//
// Thread-safety: value types; safe to copy across threads.
#pragma once

#include <boost/system/result.hpp>
#include <string>
#include <string_view>
#include <utility>

namespace moat {

enum class Code : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

// "INVALID_ARGUMENT", "NOT_FOUND", … as in google.rpc.Code.
std::string_view CodeName(Code code);
// Canonical code → HTTP status (GOOGLE.md §3.4): ABORTED → 409, UNAUTHENTICATED → 401, …
int HttpStatus(Code code);

struct Error {
  Code code = Code::kUnknown;
  // One lowercase sentence for the caller; user input in backticks; no internals, no secrets.
  std::string message;

  std::string ToString() const;
};

inline Error MakeError(Code code, std::string message) { return Error{code, std::move(message)}; }
inline Error InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
inline Error NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
inline Error AlreadyExists(std::string m) { return {Code::kAlreadyExists, std::move(m)}; }
inline Error PermissionDenied(std::string m) { return {Code::kPermissionDenied, std::move(m)}; }
inline Error FailedPrecondition(std::string m) { return {Code::kFailedPrecondition, std::move(m)}; }
inline Error Aborted(std::string m) { return {Code::kAborted, std::move(m)}; }
inline Error Unauthenticated(std::string m) { return {Code::kUnauthenticated, std::move(m)}; }
inline Error Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
inline Error Internal(std::string m) { return {Code::kInternal, std::move(m)}; }
inline Error ResourceExhausted(std::string m) { return {Code::kResourceExhausted, std::move(m)}; }

// Thrown by Result<T>::value() on an error (boost::system::result finds it by ADL).
class ErrorException : public std::exception {
 public:
  explicit ErrorException(Error e) : error_(std::move(e)), what_(error_.ToString()) {}
  const char* what() const noexcept override { return what_.c_str(); }
  const Error& error() const { return error_; }

 private:
  Error error_;
  std::string what_;
};

[[noreturn]] void throw_exception_from_error(const Error& e, const boost::source_location& loc);

template <class T>
using Result = boost::system::result<T, Error>;
using Status = boost::system::result<void, Error>;

inline Status Ok() { return {}; }

}  // namespace moat

// MOAT_TRY(auto x, Expr()) — evaluates a Result; on error returns the error from the caller.
#define MOAT_CONCAT_INNER(a, b) a##b
#define MOAT_CONCAT(a, b) MOAT_CONCAT_INNER(a, b)
#define MOAT_TRY_IMPL(tmp, decl, expr) \
  auto tmp = (expr);                   \
  if (!tmp) return tmp.error();        \
  decl = std::move(*tmp)
#define MOAT_TRY(decl, expr) MOAT_TRY_IMPL(MOAT_CONCAT(moat_try_, __LINE__), decl, expr)
// MOAT_CHECK_OK(Expr()) — for Result<void>/Status.
#define MOAT_CHECK_OK(expr)                                 \
  do {                                                      \
    auto moat_status_ = (expr);                             \
    if (!moat_status_) return moat_status_.error();         \
  } while (0)
