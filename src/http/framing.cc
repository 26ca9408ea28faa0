#include "http/framing.h"

#include <algorithm>
#include <array>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace moat::http {
namespace {

constexpr std::array<bool, 256> kTokenChars = [] {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (unsigned char c : std::string_view("!#$%&'*+-.^_`|~")) t[c] = true;
  return t;
}();

int HexVal(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool IsFieldValueChar(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

// The index of the first byte at or after `from` that may not appear in a field value — a
// control character other than HTAB, or DEL — or raw.size() if there is none. In a valid field
// line that byte is the CR ending it, so one pass both finds the end of the line and checks
// the value (an ID token makes Authorization lines about a kilobyte long): 16 bytes at a time
// with SSE2, the last block overlapping what was already checked.
size_t FirstNonValueChar(std::string_view raw, size_t from) {
  const char* p = raw.data();
  const size_t n = raw.size();
  size_t i = from;
#if defined(__SSE2__)
  if (n - i >= 16) {
    const __m128i k1f = _mm_set1_epi8(0x1f), ktab = _mm_set1_epi8('\t'), kdel = _mm_set1_epi8(0x7f);
    auto bad = [&](size_t at) {
      __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + at));
      __m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(x, k1f), x);  // x <= 0x1f, unsigned
      ctl = _mm_andnot_si128(_mm_cmpeq_epi8(x, ktab), ctl);
      return static_cast<unsigned>(_mm_movemask_epi8(_mm_or_si128(ctl, _mm_cmpeq_epi8(x, kdel))));
    };
    // Most values end within their first 16 bytes.
    if (unsigned m = bad(i)) return i + static_cast<size_t>(__builtin_ctz(m));
    i += 16;
    // Long ones (tokens) then go 64 bytes a step with a coarser test — control bytes including
    // HTAB, and DEL — until a step finds one; from there 16 at a time with the exact test.
    auto coarse = [&](size_t at) {
      __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + at));
      return _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(x, k1f), x), _mm_cmpeq_epi8(x, kdel));
    };
    for (; i + 64 <= n; i += 64) {
      __m128i any = _mm_or_si128(_mm_or_si128(coarse(i), coarse(i + 16)),
                                 _mm_or_si128(coarse(i + 32), coarse(i + 48)));
      if (_mm_movemask_epi8(any) != 0) break;
    }
    for (; i + 16 <= n; i += 16) {
      if (unsigned m = bad(i)) return i + static_cast<size_t>(__builtin_ctz(m));
    }
    if (i == n) return n;
    // The tail: the last 16 bytes, without those before `i` (checked already).
    unsigned m = bad(n - 16) >> (i - (n - 16));
    return m ? i + static_cast<size_t>(__builtin_ctz(m)) : n;
  }
#endif
  for (; i < n; ++i) {
    if (!IsFieldValueChar(static_cast<unsigned char>(p[i]))) return i;
  }
  return n;
}

// Host: reg-name / IPv4 / [IPv6] with an optional port; no whitespace, no userinfo.
constexpr auto kHostChars = [] {
  std::array<bool, 256> t{};
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (unsigned char c : std::string_view("-._~:[]%!$&'()*+,;=")) t[c] = true;
  return t;
}();

bool IsValidHost(std::string_view h) {
  if (h.empty() || h.size() > 255) return false;
  bool ok = true;
  for (unsigned char c : h) ok &= kHostChars[c];
  return ok;
}

// Cuts the next CRLF-terminated line at `*pos`. A bare LF or (when `check_cr`) a CR anywhere
// else is an error. (ParseFields finds the end of a field line itself, while checking the value,
// and comes here only to explain a malformed one.)
bool NextLine(std::string_view raw, size_t* pos, std::string_view* line, ParseError* err,
              int status, bool check_cr = true) {
  size_t lf = raw.find('\n', *pos);
  if (lf == std::string_view::npos) {
    *err = {status, "unterminated line"};
    return false;
  }
  if (lf == *pos || raw[lf - 1] != '\r') {
    *err = {status, "bare LF in head"};
    return false;
  }
  *line = raw.substr(*pos, lf - 1 - *pos);
  if (check_cr && line->find('\r') != std::string_view::npos) {
    *err = {status, "bare CR in head"};
    return false;
  }
  *pos = lf + 1;
  return true;
}

// Why a field line whose name is not a run of token characters ending at a colon is refused.
const char* FieldLineError(std::string_view line) {
  if (line.front() == ' ' || line.front() == '\t') return "obsolete line folding";
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return "header line without colon";
  std::string_view name = line.substr(0, colon);
  if (name.empty()) return "empty header name";
  bool ws = name.find_first_of(" \t") != std::string_view::npos;
  return ws ? "whitespace before colon" : "invalid header name";
}

// Parses "name: value" lines up to the blank line.
bool ParseFields(std::string_view head, size_t start, Headers* headers, const HeadLimits& limits,
                 ParseError* err, int status, int too_many_status) {
  headers->Reserve(8);  // one allocation for a typical head, none once recycled
  // The field lines are copied into the Headers in one piece, and parsed there: the fields
  // are views into that copy.
  const std::string_view raw = headers->CopyBlock(head.substr(start));
  size_t pos = 0;
  const size_t n = raw.size();
  for (;;) {
    if (n - pos >= 2 && raw[pos] == '\r' && raw[pos + 1] == '\n') {
      pos += 2;  // the blank line
      break;
    }
    // A valid name is a run of token characters ending at the colon: one scan finds both.
    size_t colon = pos;
    while (colon < n && kTokenChars[static_cast<unsigned char>(raw[colon])]) ++colon;
    if (colon == pos || colon == n || raw[colon] != ':') {
      // Say what is wrong with the line (or with how it ends).
      std::string_view line;
      if (NextLine(raw, &pos, &line, err, status, /*check_cr=*/false)) {
        *err = {status, FieldLineError(line)};
      }
      return false;
    }
    // The value runs to the first byte that may not be in one, which must be the CR of CRLF.
    size_t end = FirstNonValueChar(raw, colon + 1);
    if (end >= n - 1 || raw[end] != '\r' || raw[end + 1] != '\n') {
      const char* why = end >= n - 1       ? "unterminated line"
                        : raw[end] == '\n' ? "bare LF in head"
                                           : "control character in header value";
      *err = {status, why};
      return false;
    }
    std::string_view name = raw.substr(pos, colon - pos);
    std::string_view value = raw.substr(colon + 1, end - colon - 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (headers->size() >= limits.max_fields) {
      *err = {too_many_status, "too many header fields"};
      return false;
    }
    headers->AddView(name, value);
    pos = end + 2;
  }
  if (pos != n) {
    *err = {status, "bytes after end of head"};
    return false;
  }
  return true;
}

// The fields the framing rules look at, found in one pass over the head: the first of each
// and how many there are.
struct FramingFields {
  struct Seen {
    std::string_view first;
    size_t count = 0;
    void Add(std::string_view v) {
      if (count++ == 0) first = v;
    }
  };
  Seen host, content_length, transfer_encoding, connection, upgrade, expect;
};

// Views into the bytes `h` owns, which adding a field does not move.
FramingFields ScanFramingFields(const Headers& h) {
  FramingFields s;
  for (const Field& f : h) {
    switch (f.id) {
      case FieldId::kHost:
        s.host.Add(f.value);
        break;
      case FieldId::kExpect:
        s.expect.Add(f.value);
        break;
      case FieldId::kUpgrade:
        s.upgrade.Add(f.value);
        break;
      case FieldId::kConnection:
        s.connection.Add(f.value);
        break;
      case FieldId::kContentLength:
        s.content_length.Add(f.value);
        break;
      case FieldId::kTransferEncoding:
        s.transfer_encoding.Add(f.value);
        break;
      default:
        break;
    }
  }
  return s;
}

// Content-Length: 1*DIGIT, at most 19 digits (fits uint64). Exactly one field.
bool ParseContentLength(const FramingFields::Seen& cl, uint64_t* out, ParseError* err, int status) {
  if (cl.count > 1) {
    *err = {status, "duplicate content-length"};
    return false;
  }
  std::string_view v = cl.first;
  if (v.empty() || v.size() > 19) {
    *err = {status, "invalid content-length"};
    return false;
  }
  uint64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') {
      *err = {status, "invalid content-length"};
      return false;
    }
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  *out = n;
  return true;
}

// Transfer-Encoding must be one field whose value is exactly "chunked".
bool CheckTransferEncoding(const FramingFields::Seen& te, ParseError* err, int status) {
  if (te.count != 1) {
    *err = {status, "repeated transfer-encoding"};
    return false;
  }
  if (!IEquals(te.first, "chunked")) {
    *err = {status, "unsupported transfer-encoding"};
    return false;
  }
  return true;
}

// The Connection options of all Connection fields, as one list. Usually there is one field,
// whose value is returned without a copy (into `h`); `storage` holds a combined list.
std::string_view ConnectionOptions(const Headers& h, const FramingFields::Seen& connection,
                                   std::string* storage) {
  if (connection.count == 0) return {};
  if (connection.count == 1) return connection.first;
  for (const Field& f : h) {
    if (f.id != FieldId::kConnection) continue;
    if (!storage->empty()) *storage += ',';
    *storage += f.value;
  }
  return *storage;
}

// RFC 9112 §9.3: "close" ends the connection in any version; HTTP/1.0 persists only with
// "keep-alive".
bool KeepAlive(std::string_view connection, int version_minor) {
  if (HasToken(connection, "close")) return false;
  return version_minor == 1 || HasToken(connection, "keep-alive");
}

// *s = v, reusing s's storage: clear + append, a plain copy (assign's general replace path,
// which allows for overlap, costs several times as much for short strings).
void CopyInto(std::string* s, std::string_view v) {
  s->clear();
  s->append(v);
}

bool StartsWithI(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && IEquals(s.substr(0, prefix.size()), prefix);
}

}  // namespace

bool IsTokenChar(unsigned char c) { return kTokenChars[c]; }

ParseError ParseRequestHead(std::string_view raw, RequestHead* out, const HeadLimits& limits) {
  ParseError err;
  out->Reset();
  // There is no separate pass for NUL and other control bytes: every byte of the head is
  // checked by the rules of its part (method and names: token characters; target: visible
  // ASCII; values: field-value characters), all of which refuse them.
  size_t pos = 0;
  // RFC 9112 §2.2: ignore empty lines before the request-line.
  while (raw.substr(pos, 2) == "\r\n") pos += 2;
  std::string_view line;
  if (!NextLine(raw, &pos, &line, &err, 400)) return err;

  size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) return {400, "malformed request line"};
  std::string_view method = line.substr(0, sp1);
  for (unsigned char c : method) {
    if (!IsTokenChar(c)) return {400, "invalid method"};
  }
  size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1) return {400, "malformed request line"};
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  for (unsigned char c : target) {
    if (c <= 0x20 || c >= 0x7f) return {400, "invalid request target"};
  }
  if (target.find('#') != std::string_view::npos) return {400, "fragment in request target"};
  if (version == "HTTP/1.1") {
    out->version_minor = 1;
  } else if (version == "HTTP/1.0") {
    out->version_minor = 0;
  } else if (version.size() == 8 && version.substr(0, 5) == "HTTP/" && version[6] == '.' &&
             version[5] >= '0' && version[5] <= '9' && version[7] >= '0' && version[7] <= '9') {
    return {505, "unsupported http version"};
  } else {
    return {400, "malformed http version"};
  }

  if (!ParseFields(raw, pos, &out->headers, limits, &err, 400, 431)) return err;
  const Headers& h = out->headers;
  FramingFields ff = ScanFramingFields(h);

  // Host: exactly one in HTTP/1.1, at most one in HTTP/1.0.
  size_t hosts = ff.host.count;
  if (hosts > 1) return {400, "duplicate host"};
  if (hosts == 0 && out->version_minor == 1) return {400, "missing host"};
  if (hosts == 1) {
    CopyInto(&out->host, ff.host.first);
    if (!IsValidHost(out->host)) return {400, "invalid host"};
  }

  if (method == "CONNECT") return {501, "connect is not supported"};
  if (target.front() == '/') {
    CopyInto(&out->target, target);
  } else if (target == "*") {
    if (method != "OPTIONS") return {400, "asterisk-form target without OPTIONS"};
    out->target = "*";
  } else if (StartsWithI(target, "http://") || StartsWithI(target, "https://")) {
    std::string_view rest = target.substr(target.find("://") + 3);
    size_t end = rest.find_first_of("/?");
    std::string_view authority = rest.substr(0, end);
    if (authority.find('@') != std::string_view::npos) return {400, "userinfo in request target"};
    if (hosts == 0) {
      out->host = std::string(authority);
      if (!IsValidHost(out->host)) return {400, "invalid host"};
      // What Moat routes on (host) must be what it forwards: give the fields the Host the
      // rewritten origin-form target no longer carries.
      out->headers.Add("Host", authority);
    } else if (!IEquals(authority, out->host)) {
      return {400, "request target authority differs from host"};
    }
    std::string_view path = end == std::string_view::npos ? std::string_view() : rest.substr(end);
    out->target = path.empty() || path.front() == '?' ? "/" + std::string(path) : std::string(path);
  } else {
    return {400, "invalid request target"};
  }
  CopyInto(&out->method, method);

  bool has_te = ff.transfer_encoding.count > 0;
  bool has_cl = ff.content_length.count > 0;
  if (has_te && has_cl) return {400, "both content-length and transfer-encoding"};
  if (has_te) {
    if (out->version_minor == 0) return {400, "transfer-encoding in http/1.0"};
    if (!CheckTransferEncoding(ff.transfer_encoding, &err, 400)) return err;
    out->body = BodyKind::kChunked;
  } else if (has_cl) {
    if (!ParseContentLength(ff.content_length, &out->content_length, &err, 400)) return err;
    out->body = BodyKind::kLength;
  }

  std::string combined;
  std::string_view connection = ConnectionOptions(h, ff.connection, &combined);
  // A proxy drops the fields named in Connection (RFC 9110 §7.6.1): naming Host would have the
  // gateway route on a Host it does not forward.
  if (HasToken(connection, "host")) return {400, "connection option names host"};
  out->keep_alive = KeepAlive(connection, out->version_minor);
  // RFC 9110 §7.8: a server must ignore Upgrade in an HTTP/1.0 request.
  out->websocket_upgrade = out->version_minor == 1 && out->method == "GET" &&
                           HasToken(connection, "upgrade") && ff.upgrade.count == 1 &&
                           HasToken(ff.upgrade.first, "websocket");
  if (ff.expect.count > 0) {
    if (ff.expect.count != 1 || !IEquals(ff.expect.first, "100-continue")) {
      return {417, "unsupported expectation"};
    }
    out->expect_continue = out->version_minor == 1;
  }
  return {};
}

ParseError ParseResponseHead(std::string_view raw, std::string_view request_method,
                             ResponseHead* out, const HeadLimits& limits) {
  ParseError err;
  out->Reset();
  size_t pos = 0;
  std::string_view line;
  if (!NextLine(raw, &pos, &line, &err, 502)) return err;
  if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || (line[7] != '0' && line[7] != '1') ||
      line[8] != ' ') {
    return {502, "malformed status line"};
  }
  out->version_minor = line[7] - '0';
  int status = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9') return {502, "malformed status code"};
    status = status * 10 + (line[i] - '0');
  }
  if (status < 100 || status > 599) return {502, "malformed status code"};
  if (line.size() > 12) {
    if (line[12] != ' ') return {502, "malformed status line"};
    for (unsigned char c : line.substr(13)) {
      if (!IsFieldValueChar(c)) return {502, "control character in reason phrase"};
    }
    CopyInto(&out->reason, line.substr(13));
  }
  out->status = status;
  if (!ParseFields(raw, pos, &out->headers, limits, &err, 502, 502)) return err;
  const Headers& h = out->headers;
  FramingFields ff = ScanFramingFields(h);

  std::string combined;
  out->keep_alive = KeepAlive(ConnectionOptions(h, ff.connection, &combined), out->version_minor);
  bool has_te = ff.transfer_encoding.count > 0;
  bool has_cl = ff.content_length.count > 0;
  if (has_te && has_cl) return {502, "both content-length and transfer-encoding"};
  if (has_te && out->version_minor == 0) return {502, "transfer-encoding in http/1.0"};
  if (has_te && !CheckTransferEncoding(ff.transfer_encoding, &err, 502)) return err;
  if (has_cl && !ParseContentLength(ff.content_length, &out->content_length, &err, 502)) return err;

  if (request_method == "HEAD" || status < 200 || status == 204 || status == 304) {
    out->body = BodyKind::kNone;
  } else if (has_te) {
    out->body = BodyKind::kChunked;
  } else if (has_cl) {
    out->body = BodyKind::kLength;
  } else {
    out->body = BodyKind::kUntilClose;
    out->keep_alive = false;
  }
  return {};
}

ChunkedDecoder::Step ChunkedDecoder::Fail(std::string_view why, size_t consumed) {
  state_ = State::kError;
  error_ = why;
  return {consumed, {}};
}

ChunkedDecoder::Step ChunkedDecoder::Feed(std::string_view in) {
  size_t i = 0;
  while (i < in.size()) {
    unsigned char c = static_cast<unsigned char>(in[i]);
    switch (state_) {
      case State::kSize: {
        int v = HexVal(static_cast<char>(c));
        if (v >= 0) {
          if (digits_ == 16) return Fail("chunk size too long", i);
          size_ = size_ * 16 + static_cast<uint64_t>(v);
          ++digits_;
          if (size_ >= (uint64_t{1} << 63)) return Fail("chunk size too large", i);
          ++i;
        } else if (digits_ == 0) {
          return Fail("invalid chunk size", i);
        } else if (c == ';') {
          state_ = State::kExt;
          ext_semicolon_ = true;
          ext_bytes_ = 0;
          ++i;
        } else if (c == ' ' || c == '\t') {
          state_ = State::kExt;
          ext_semicolon_ = false;
          ext_bytes_ = 0;
          ++i;
        } else if (c == '\r') {
          state_ = State::kSizeLf;
          ++i;
        } else {
          return Fail("invalid chunk size", i);
        }
        break;
      }
      case State::kExt:
        if (!ext_semicolon_) {
          // Only whitespace may separate the size from the first ';'.
          if (c == ';') {
            ext_semicolon_ = true;
          } else if (c != ' ' && c != '\t') {
            return Fail("invalid chunk size", i);
          }
          ++i;
        } else if (c == '\r') {
          state_ = State::kSizeLf;
          ++i;
        } else if (IsFieldValueChar(c)) {
          if (++ext_bytes_ > 4096) return Fail("chunk extension too long", i);
          ++i;
        } else {
          return Fail("invalid chunk extension", i);
        }
        break;
      case State::kSizeLf:
        if (c != '\n') return Fail("bare CR in chunk size line", i);
        ++i;
        state_ = size_ == 0 ? State::kTrailerStart : State::kData;
        break;
      case State::kData: {
        size_t n = static_cast<size_t>(std::min<uint64_t>(size_, in.size() - i));
        Step step{i + n, in.substr(i, n)};
        size_ -= n;
        if (size_ == 0) state_ = State::kDataCr;
        return step;
      }
      case State::kDataCr:
        if (c != '\r') return Fail("missing CRLF after chunk data", i);
        state_ = State::kDataLf;
        ++i;
        break;
      case State::kDataLf:
        if (c != '\n') return Fail("missing CRLF after chunk data", i);
        state_ = State::kSize;
        size_ = 0;
        digits_ = 0;
        ++i;
        break;
      case State::kTrailerStart:
        if (c == '\r') {
          state_ = State::kFinalLf;
          ++i;
        } else if (c == ' ' || c == '\t') {
          return Fail("obsolete line folding in trailer", i);
        } else {
          state_ = State::kTrailerLine;
          line_bytes_ = 0;
          trailer_seen_colon_ = false;
        }
        break;
      case State::kTrailerLine:
        if (c == '\r') {
          if (!trailer_seen_colon_) return Fail("malformed trailer field", i);
          state_ = State::kTrailerLf;
          ++i;
          break;
        }
        if (!trailer_seen_colon_) {
          if (c == ':') {
            if (line_bytes_ == 0) return Fail("malformed trailer field", i);
            trailer_seen_colon_ = true;
          } else if (!IsTokenChar(c)) {
            return Fail("malformed trailer field", i);
          }
        } else if (!IsFieldValueChar(c)) {
          return Fail("control character in trailer", i);
        }
        ++line_bytes_;
        if (++trailer_bytes_ > 16 * 1024) return Fail("trailers too large", i);
        ++i;
        break;
      case State::kTrailerLf:
        if (c != '\n') return Fail("bare CR in trailer", i);
        state_ = State::kTrailerStart;
        ++i;
        break;
      case State::kFinalLf:
        if (c != '\n') return Fail("bare CR after last chunk", i);
        state_ = State::kDone;
        return {i + 1, {}};
      case State::kDone:
      case State::kError:
        return {i, {}};
    }
  }
  return {i, {}};
}

}  // namespace moat::http
