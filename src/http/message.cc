#include "http/message.h"

#include <algorithm>

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

FieldId IdentifyField(std::string_view n) {
  // By length first: most names are none of these and are told apart with one comparison.
  switch (n.size()) {
    case 2:
      if (IEquals(n, "te")) return FieldId::kTe;
      break;
    case 4:
      if (IEquals(n, "host")) return FieldId::kHost;
      break;
    case 6:
      if (IEquals(n, "expect")) return FieldId::kExpect;
      break;
    case 7:
      if (IEquals(n, "upgrade")) return FieldId::kUpgrade;
      if (IEquals(n, "trailer")) return FieldId::kTrailer;
      break;
    case 10:
      if (IEquals(n, "connection")) return FieldId::kConnection;
      if (IEquals(n, "keep-alive")) return FieldId::kKeepAlive;
      break;
    case 11:
      if (IEquals(n, "traceparent")) return FieldId::kTraceparent;
      break;
    case 12:
      if (IEquals(n, "x-request-id")) return FieldId::kXRequestId;
      break;
    case 13:
      if (IEquals(n, "authorization")) return FieldId::kAuthorization;
      break;
    case 14:
      if (IEquals(n, "content-length")) return FieldId::kContentLength;
      break;
    case 15:
      if (IEquals(n, "x-forwarded-for")) return FieldId::kXForwardedFor;
      break;
    case 16:
      if (IEquals(n, "proxy-connection")) return FieldId::kProxyConnection;
      break;
    case 17:
      if (IEquals(n, "transfer-encoding")) return FieldId::kTransferEncoding;
      if (IEquals(n, "x-forwarded-proto")) return FieldId::kXForwardedProto;
      break;
    case 19:
      if (IEquals(n, "proxy-authorization")) return FieldId::kProxyAuthorization;
      if (IEquals(n, "x-moat-min-revision")) return FieldId::kXMoatMinRevision;
      break;
    case 26:
      if (IEquals(n, "x-serverless-authorization")) return FieldId::kServerlessAuthorization;
      break;
    default:
      break;
  }
  if (n.size() >= 7 && IEquals(n.substr(0, 7), "x-moat-")) return FieldId::kXMoat;
  if (n.size() >= 9 && IEquals(n.substr(0, 9), "x-google-")) return FieldId::kXGoogle;
  return FieldId::kOther;
}

const std::string* Headers::Find(std::string_view name) const {
  for (const Field& f : *this) {
    if (IEquals(f.name, name)) return &f.value;
  }
  return nullptr;
}

std::string_view Headers::Get(std::string_view name) const {
  const std::string* v = Find(name);
  return v ? std::string_view(*v) : std::string_view();
}

size_t Headers::Count(std::string_view name) const {
  size_t n = 0;
  for (const Field& f : *this) n += IEquals(f.name, name) ? 1 : 0;
  return n;
}

void Headers::Add(std::string name, std::string value) {
  FieldId id = IdentifyField(name);
  if (size_ < fields_.size()) {
    fields_[size_] = Field{std::move(name), std::move(value), id};
  } else {
    fields_.push_back(Field{std::move(name), std::move(value), id});
  }
  ++size_;
}

void Headers::AddCopy(std::string_view name, std::string_view value) {
  FieldId id = IdentifyField(name);
  if (size_ < fields_.size()) {
    Field& f = fields_[size_];
    f.name.assign(name);
    f.value.assign(value);
    f.id = id;
  } else {
    fields_.push_back(Field{std::string(name), std::string(value), id});
  }
  ++size_;
}

void Headers::Recycle() {
  constexpr size_t kMaxKept = 8 * 1024;
  for (size_t i = 0; i < size_; ++i) {
    Field& f = fields_[i];
    if (f.name.capacity() + f.value.capacity() > kMaxKept) f = Field{};
  }
  size_ = 0;
}

void Headers::Set(std::string_view name, std::string value) {
  Remove(name);
  Add(std::string(name), std::move(value));
}

size_t Headers::Remove(std::string_view name) {
  auto first = fields_.begin();
  auto last = first + static_cast<std::ptrdiff_t>(size_);
  // Kept fields move behind the live ones (std::remove would leave moved-from strings).
  auto kept = std::stable_partition(first, last,
                                    [&](const Field& f) { return !IEquals(f.name, name); });
  size_t removed = static_cast<size_t>(last - kept);
  size_ -= removed;
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
