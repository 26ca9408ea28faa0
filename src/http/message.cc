#include "http/message.h"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace moat::http {
namespace {
inline char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }
int HexVal(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = Lower(c);
  return out;
}

bool HasToken(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (IEquals(item, token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

std::string_view BearerToken(std::string_view v) {
  auto blank = [](char c) { return c == ' ' || c == '\t'; };
  while (!v.empty() && blank(v.front())) v.remove_prefix(1);
  while (!v.empty() && blank(v.back())) v.remove_suffix(1);
  if (v.size() < 7 || !IEquals(v.substr(0, 6), "bearer") || v[6] != ' ') return {};
  v.remove_prefix(7);
  while (!v.empty() && blank(v.front())) v.remove_prefix(1);
  return v;
}

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 411:
      return "Length Required";
    case 412:
      return "Precondition Failed";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 417:
      return "Expectation Failed";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

namespace {

// A lowercase name (letters, digits, '-') prepared for comparing names with it 2, 4 or 8 bytes
// at a time: the bytes, and a mask with 0x20 where the name has a letter. A byte x matches
// letter c when (x | 0x20) == c — that is x == c or x == c - 0x20 — and any other byte only
// when equal, so the comparison is exact for any input.
struct FoldedName {
  std::string_view name;
  uint64_t word[4] = {};
  uint64_t mask[4] = {};
  size_t chunk = 8;  // bytes per load: 2, 4 or 8 (loads never pass the end of the name)
  size_t chunks = 0;

  // Chunk k starts at k * chunk, except the last, which ends at the end of the name
  // (overlapping the one before).
  constexpr size_t Start(size_t k) const {
    return k + 1 < chunks ? k * chunk : name.size() - chunk;
  }
};

consteval FoldedName Fold(std::string_view s) {
  FoldedName f;
  f.name = s;
  f.chunk = s.size() >= 8 ? 8 : s.size() >= 4 ? 4 : 2;
  f.chunks = (s.size() + f.chunk - 1) / f.chunk;
  for (size_t k = 0; k < f.chunks; ++k) {
    size_t at = f.Start(k);
    for (size_t i = 0; i < f.chunk; ++i) {
      char c = s[at + i];
      f.word[k] |= uint64_t{static_cast<unsigned char>(c)} << (8 * i);
      if (c >= 'a' && c <= 'z') f.mask[k] |= uint64_t{0x20} << (8 * i);
    }
  }
  return f;
}

// Little-endian load of N (2, 4 or 8) bytes.
template <size_t N>
uint64_t Load(const char* p) {
  std::conditional_t<N == 8, uint64_t, std::conditional_t<N == 4, uint32_t, uint16_t>> v;
  std::memcpy(&v, p, N);
  if constexpr (std::endian::native == std::endian::big) {
    if constexpr (N == 8) v = __builtin_bswap64(v);
    if constexpr (N == 4) v = __builtin_bswap32(v);
    if constexpr (N == 2) v = __builtin_bswap16(v);
  }
  return v;
}

// `n` (of the same size) equals `F.name` ignoring ASCII case. F is a template argument so
// that its words, masks and chunk size are constants: a few loads and compares.
template <const FoldedName& F>
bool Matches(std::string_view n) {
  for (size_t k = 0; k < F.chunks; ++k) {
    uint64_t x = Load<F.chunk>(n.data() + F.Start(k));
    if ((x | F.mask[k]) != F.word[k]) return false;
  }
  return true;
}

// The names IdentifyField recognises.
constexpr FoldedName kTeName = Fold("te");
constexpr FoldedName kHostName = Fold("host");
constexpr FoldedName kExpectName = Fold("expect");
constexpr FoldedName kUpgradeName = Fold("upgrade");
constexpr FoldedName kTrailerName = Fold("trailer");
constexpr FoldedName kConnectionName = Fold("connection");
constexpr FoldedName kKeepAliveName = Fold("keep-alive");
constexpr FoldedName kTraceparentName = Fold("traceparent");
constexpr FoldedName kXRequestIdName = Fold("x-request-id");
constexpr FoldedName kAuthorizationName = Fold("authorization");
constexpr FoldedName kContentLengthName = Fold("content-length");
constexpr FoldedName kXForwardedForName = Fold("x-forwarded-for");
constexpr FoldedName kProxyConnectionName = Fold("proxy-connection");
constexpr FoldedName kTransferEncodingName = Fold("transfer-encoding");
constexpr FoldedName kXForwardedProtoName = Fold("x-forwarded-proto");
constexpr FoldedName kProxyAuthorizationName = Fold("proxy-authorization");
constexpr FoldedName kXMoatMinRevisionName = Fold("x-moat-min-revision");
constexpr FoldedName kXServerlessAuthorizationName = Fold("x-serverless-authorization");

}  // namespace

FieldId IdentifyField(std::string_view n) {
  // By length first: most names are none of these and are told apart with one comparison.
  switch (n.size()) {
    case 2:
      if (Matches<kTeName>(n)) return FieldId::kTe;
      break;
    case 4:
      if (Matches<kHostName>(n)) return FieldId::kHost;
      break;
    case 6:
      if (Matches<kExpectName>(n)) return FieldId::kExpect;
      break;
    case 7:
      if (Matches<kUpgradeName>(n)) return FieldId::kUpgrade;
      if (Matches<kTrailerName>(n)) return FieldId::kTrailer;
      break;
    case 10:
      if (Matches<kConnectionName>(n)) return FieldId::kConnection;
      if (Matches<kKeepAliveName>(n)) return FieldId::kKeepAlive;
      break;
    case 11:
      if (Matches<kTraceparentName>(n)) return FieldId::kTraceparent;
      break;
    case 12:
      if (Matches<kXRequestIdName>(n)) return FieldId::kXRequestId;
      break;
    case 13:
      if (Matches<kAuthorizationName>(n)) return FieldId::kAuthorization;
      break;
    case 14:
      if (Matches<kContentLengthName>(n)) return FieldId::kContentLength;
      break;
    case 15:
      if (Matches<kXForwardedForName>(n)) return FieldId::kXForwardedFor;
      break;
    case 16:
      if (Matches<kProxyConnectionName>(n)) return FieldId::kProxyConnection;
      break;
    case 17:
      if (Matches<kTransferEncodingName>(n)) return FieldId::kTransferEncoding;
      if (Matches<kXForwardedProtoName>(n)) return FieldId::kXForwardedProto;
      break;
    case 19:
      if (Matches<kProxyAuthorizationName>(n)) return FieldId::kProxyAuthorization;
      if (Matches<kXMoatMinRevisionName>(n)) return FieldId::kXMoatMinRevision;
      break;
    case 26:
      if (Matches<kXServerlessAuthorizationName>(n)) return FieldId::kServerlessAuthorization;
      break;
    default:
      break;
  }
  if (n.size() >= 7 && IEquals(n.substr(0, 7), "x-moat-")) return FieldId::kXMoat;
  if (n.size() >= 9 && IEquals(n.substr(0, 9), "x-google-")) return FieldId::kXGoogle;
  return FieldId::kOther;
}

const std::string_view* Headers::Find(std::string_view name) const {
  for (const Field& f : fields_) {
    if (IEquals(f.name, name)) return &f.value;
  }
  return nullptr;
}

std::string_view Headers::Get(std::string_view name) const {
  const std::string_view* v = Find(name);
  return v ? *v : std::string_view();
}

size_t Headers::Count(std::string_view name) const {
  size_t n = 0;
  for (const Field& f : fields_) n += IEquals(f.name, name) ? 1 : 0;
  return n;
}

Headers& Headers::operator=(const Headers& o) {
  if (this == &o) return *this;
  size_t total = 0;
  for (const Field& f : o.fields_) total += f.name.size() + f.value.size();
  std::vector<Field> fields;
  fields.reserve(o.fields_.size());
  std::unique_ptr<char[]> block(total > 0 ? new char[total] : nullptr);
  char* p = block.get();
  for (const Field& f : o.fields_) {
    std::string_view name(p, f.name.size());
    p = std::copy(f.name.begin(), f.name.end(), p);
    std::string_view value(p, f.value.size());
    p = std::copy(f.value.begin(), f.value.end(), p);
    fields.push_back(Field{name, value, f.id});
  }
  fields_ = std::move(fields);
  block_ = std::move(block);
  block_capacity_ = total;
  owned_.clear();
  return *this;
}

void Headers::Add(std::string_view name, std::string_view value) {
  std::string& s = owned_.emplace_back();
  s.reserve(name.size() + value.size());
  s.append(name);
  s.append(value);
  std::string_view bytes = s;
  fields_.push_back(
      Field{bytes.substr(0, name.size()), bytes.substr(name.size()), IdentifyField(name)});
}

void Headers::Clear() {
  fields_.clear();
  if (!owned_.empty()) owned_.clear();  // (clearing an empty deque still walks its map)
}

void Headers::Recycle() {
  Clear();
  constexpr size_t kMaxKept = 8 * 1024;
  if (block_capacity_ > kMaxKept) {
    block_.reset();
    block_capacity_ = 0;
  }
}

std::string_view Headers::CopyBlock(std::string_view bytes) {
  Clear();
  if (bytes.size() > block_capacity_) {
    // Room to grow a little, so heads of slightly varying size settle on one block.
    size_t cap = std::max(bytes.size(), std::min<size_t>(2 * block_capacity_, 64 * 1024));
    block_.reset(new char[cap]);
    block_capacity_ = cap;
  }
  std::copy(bytes.begin(), bytes.end(), block_.get());
  return {block_.get(), bytes.size()};
}

void Headers::Set(std::string_view name, std::string_view value) {
  // (`name` or `value` may view a field about to be removed: Remove keeps the bytes.)
  Remove(name);
  Add(name, value);
}

size_t Headers::Remove(std::string_view name) {
  auto kept = std::stable_partition(fields_.begin(), fields_.end(),
                                    [&](const Field& f) { return !IEquals(f.name, name); });
  size_t removed = static_cast<size_t>(fields_.end() - kept);
  fields_.erase(kept, fields_.end());
  return removed;
}

void RequestHead::Reset() {
  method.clear();
  target.clear();
  version_minor = 1;
  headers.Recycle();
  host.clear();
  body = BodyKind::kNone;
  content_length = 0;
  keep_alive = true;
  websocket_upgrade = false;
  expect_continue = false;
}

void ResponseHead::Reset() {
  status = 0;
  version_minor = 1;
  reason.clear();
  headers.Recycle();
  body = BodyKind::kNone;
  content_length = 0;
  keep_alive = true;
}

std::string_view RequestHead::Path() const {
  std::string_view t = target;
  return t.substr(0, t.find('?'));
}

std::string_view RequestHead::Query() const {
  std::string_view t = target;
  size_t q = t.find('?');
  return q == std::string_view::npos ? std::string_view() : t.substr(q + 1);
}

std::string_view Request::QueryParam(std::string_view name) const {
  for (const auto& [k, v] : query) {
    if (k == name) return v;
  }
  return {};
}

std::string_view Request::PathVar(std::string_view name) const {
  for (const auto& [k, v] : path_vars) {
    if (k == name) return v;
  }
  return {};
}

Response Response::Json(int status, std::string body) {
  Response r;
  r.status = status;
  r.headers.Add("Content-Type", "application/json; charset=UTF-8");
  r.body = std::move(body);
  return r;
}

Response Response::Text(int status, std::string body) {
  Response r;
  r.status = status;
  r.headers.Add("Content-Type", "text/plain; charset=utf-8");
  r.body = std::move(body);
  return r;
}

bool PercentDecode(std::string_view s, std::string* out, bool plus_is_space) {
  out->clear();
  out->reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) return false;
      int hi = HexVal(s[i + 1]);
      int lo = HexVal(s[i + 2]);
      if (hi < 0 || lo < 0) return false;
      char d = static_cast<char>(hi * 16 + lo);
      if (d == '\0') return false;
      out->push_back(d);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out->push_back(' ');
    } else {
      out->push_back(c);
    }
  }
  return true;
}

std::vector<std::pair<std::string, std::string>> ParseQuery(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    if (!pair.empty()) {
      size_t eq = pair.find('=');
      std::string k, v;
      bool ok = PercentDecode(pair.substr(0, eq), &k, true);
      if (eq != std::string_view::npos) ok = ok && PercentDecode(pair.substr(eq + 1), &v, true);
      if (ok) out.emplace_back(std::move(k), std::move(v));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return out;
}

}  // namespace moat::http
