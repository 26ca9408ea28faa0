// HTTP/1.1 message pieces shared by every listener and client: a header list with
// case-insensitive lookup, parsed request/response heads, and the buffered Request/Response
// used by Router handlers.
//
// Thread-safety: value types; one thread at a time per object.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace moat::http {

// ASCII case-insensitive comparison (header names, tokens). Inline: the proxy compares every
// header name against a dozen others, and most differ in length.
inline bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    unsigned char x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if (x == y) continue;
    if ((x | 0x20) != (y | 0x20) || (x | 0x20) < 'a' || (x | 0x20) > 'z') return false;
  }
  return true;
}
std::string ToLower(std::string_view s);
// "OK", "Not Found", … ("Unknown" for unregistered codes).
std::string_view ReasonPhrase(int status);
// True if `list` (a comma-separated header value such as Connection) contains `token`,
// compared case-insensitively.
bool HasToken(std::string_view list, std::string_view token);
// The credential of an Authorization-style value: "Bearer abc" → "abc" (scheme
// case-insensitive, surrounding spaces and tabs ignored); "" for any other value.
std::string_view BearerToken(std::string_view header_value);

// The field names that framing and proxying act on, recognised once when a field is added to
// a Headers: the proxy then asks "is this hop-by-hop?", "is this the Authorization field?" with
// a byte compare instead of comparing names. kXMoat and kXGoogle stand for the whole
// `x-moat-` and `x-google-` prefixes (kXMoatMinRevision aside).
enum class FieldId : uint8_t {
  kOther,
  kHost,
  kContentLength,
  kTransferEncoding,
  kConnection,
  kKeepAlive,
  kProxyConnection,
  kTe,
  kTrailer,
  kUpgrade,
  kExpect,
  kAuthorization,
  kServerlessAuthorization,  // X-Serverless-Authorization
  kProxyAuthorization,
  kXForwardedFor,
  kXForwardedProto,
  kXRequestId,
  kTraceparent,
  kXMoatMinRevision,
  kXMoat,    // any other x-moat-*
  kXGoogle,  // x-google-*
};
FieldId IdentifyField(std::string_view name);

struct Field {
  std::string_view name;  // into the Headers' storage (see Headers)
  std::string_view value;
  FieldId id = FieldId::kOther;  // IdentifyField(name)
};

// An ordered multimap of header fields; lookups ignore ASCII case of names.
//
// Names and values are views into storage the Headers owns: a parsed head is copied into it
// in one piece (CopyBlock, then AddView for each field), and a field added with Add or Set gets
// its own copy. The views stay valid until the Headers is cleared, recycled, refilled with
// CopyBlock, assigned to or destroyed — moving a Headers keeps them valid. A parser that fills
// one Headers per connection reuses the block and stops allocating once it has grown.
class Headers {
 public:
  Headers() = default;
  Headers(const Headers& o) { *this = o; }
  Headers& operator=(const Headers& o);  // copies the fields into one block of its own
  Headers(Headers&& o) noexcept
      : fields_(std::move(o.fields_)),
        block_(std::move(o.block_)),
        block_capacity_(std::exchange(o.block_capacity_, 0)),
        owned_(std::move(o.owned_)) {
    o.fields_.clear();
    o.owned_.clear();
  }
  Headers& operator=(Headers&& o) noexcept {
    if (this != &o) {
      fields_ = std::move(o.fields_);
      block_ = std::move(o.block_);
      block_capacity_ = std::exchange(o.block_capacity_, 0);
      owned_ = std::move(o.owned_);
      o.fields_.clear();
      o.owned_.clear();
    }
    return *this;
  }

  // The first value of `name`, or nullptr.
  const std::string_view* Find(std::string_view name) const;
  // The first value of `name`, or "".
  std::string_view Get(std::string_view name) const;
  bool Has(std::string_view name) const { return Find(name) != nullptr; }
  size_t Count(std::string_view name) const;
  // The same by id (not kOther, kXMoat or kXGoogle, which stand for many names).
  const std::string_view* Find(FieldId id) const {
    for (const Field& f : fields_) {
      if (f.id == id) return &f.value;
    }
    return nullptr;
  }
  std::string_view Get(FieldId id) const {
    const std::string_view* v = Find(id);
    return v ? *v : std::string_view();
  }
  size_t Count(FieldId id) const {
    size_t n = 0;
    for (const Field& f : fields_) n += f.id == id ? 1 : 0;
    return n;
  }
  // Appends a field, copying its name and value.
  void Add(std::string_view name, std::string_view value);
  // Replaces every field called `name` with one field.
  void Set(std::string_view name, std::string_view value);
  // Removes every field called `name`; returns how many were removed.
  size_t Remove(std::string_view name);
  void Clear();
  // Clear, for a parser about to fill the same Headers again: keeps the block unless it is
  // unusually large, rather than holding that for the connection's whole life.
  void Recycle();

  // For parsers: clears the Headers, copies `bytes` (a head's field lines) into its block and
  // returns the copy, whose pieces AddView then takes as fields without copying them again.
  std::string_view CopyBlock(std::string_view bytes);
  // Appends a field whose name and value lie in what the last CopyBlock returned.
  void AddView(std::string_view name, std::string_view value) {
    fields_.push_back(Field{name, value, IdentifyField(name)});
  }
  void Reserve(size_t n) { fields_.reserve(n); }

  size_t size() const { return fields_.size(); }
  bool empty() const { return fields_.empty(); }
  std::vector<Field>::const_iterator begin() const { return fields_.begin(); }
  std::vector<Field>::const_iterator end() const { return fields_.end(); }

 private:
  std::vector<Field> fields_;
  // The bytes of a parsed head (CopyBlock) or of a copied Headers: a heap block, so moving
  // the Headers does not move it.
  std::unique_ptr<char[]> block_;
  size_t block_capacity_ = 0;
  // The bytes of fields added one by one, one string each ("name" + "value"): a deque does not
  // move its elements as it grows or when it is moved, so views into them stay valid.
  std::deque<std::string> owned_;
};

// How a message body is delimited (RFC 9112 §6.3).
enum class BodyKind {
  kNone,        // no body
  kLength,      // Content-Length bytes
  kChunked,     // Transfer-Encoding: chunked
  kUntilClose,  // responses only: read until the connection closes
};

struct RequestHead {
  std::string method;
  // Origin-form ("/path?query"), or "*" for OPTIONS. Absolute-form targets are rewritten to
  // origin-form by the parser (after checking their authority against Host).
  std::string target;
  int version_minor = 1;  // HTTP/1.<minor>, 0 or 1
  Headers headers;
  std::string host;  // the Host header value ("" for HTTP/1.0 without one)
  BodyKind body = BodyKind::kNone;
  uint64_t content_length = 0;  // when body == kLength
  bool keep_alive = true;       // from version and Connection
  bool websocket_upgrade = false;
  bool expect_continue = false;

  std::string_view Path() const;   // target up to '?'
  std::string_view Query() const;  // after '?', "" if none
  // Back to a default-constructed value, keeping the storage of its strings and fields.
  void Reset();
};

struct ResponseHead {
  int status = 0;
  int version_minor = 1;
  std::string reason;
  Headers headers;
  BodyKind body = BodyKind::kNone;
  uint64_t content_length = 0;
  bool keep_alive = true;

  // Back to a default-constructed value, keeping the storage of its strings and fields.
  void Reset();
};

// A fully buffered request as Router handlers see it.
struct Request {
  std::string method;
  std::string target;                                      // as received (origin-form)
  std::string path;                                        // percent-decoded path
  std::vector<std::pair<std::string, std::string>> query;  // decoded, in order
  Headers headers;
  std::string body;
  std::string remote_addr;  // "ip:port"
  std::string request_id;
  std::vector<std::pair<std::string, std::string>> path_vars;  // filled by Router

  // First query value / path variable called `name`, or "".
  std::string_view QueryParam(std::string_view name) const;
  std::string_view PathVar(std::string_view name) const;
};

struct Response {
  int status = 200;
  Headers headers;
  std::string body;

  static Response Json(int status, std::string body);
  static Response Text(int status, std::string body);
};

// Percent-decodes `s`; '+' becomes ' ' when `plus_is_space`. Returns false on a malformed
// escape or a decoded NUL.
bool PercentDecode(std::string_view s, std::string* out, bool plus_is_space);
// Splits and decodes an application/x-www-form-urlencoded query string. Malformed pairs are
// skipped.
std::vector<std::pair<std::string, std::string>> ParseQuery(std::string_view query);

}  // namespace moat::http
