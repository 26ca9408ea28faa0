// Randomized robustness test for the request-head parser and the chunked decoder: mutates a
// small corpus of valid inputs (deterministic seed) and checks that nothing crashes and that
// whatever is accepted satisfies the invariants the gateway relies on to forward requests
// without being framed differently upstream. Run it under -DMOAT_SANITIZE=ON too.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "http/framing.h"
#include "http/stream.h"

namespace moat::http {
namespace {

constexpr int kIterations = 100'000;

// std::mt19937_64's output is specified by the standard (distributions are not): the same
// inputs on every platform.
class Mutator {
 public:
  explicit Mutator(uint64_t seed) : rng_(seed) {}
  size_t Below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(rng_() % n); }

  std::string Mutate(std::string s) {
    static constexpr std::string_view kSplice[] = {"\r",
                                                   "\n",
                                                   "\r\n",
                                                   std::string_view("\0", 1),
                                                   " ",
                                                   "\t",
                                                   ":",
                                                   ",",
                                                   ";",
                                                   "\"",
                                                   "0",
                                                   "1",
                                                   "9",
                                                   "a",
                                                   "F",
                                                   "-",
                                                   "+",
                                                   "\x7f",
                                                   "\x80",
                                                   "\r\n\r\n",
                                                   "\r\n ",
                                                   "Content-Length: 3\r\n",
                                                   "Transfer-Encoding: chunked\r\n",
                                                   "Host: x\r\n",
                                                   "Content-Length: 0\r\n",
                                                   "Transfer-Encoding: gzip, chunked\r\n",
                                                   "http://h/",
                                                   "@",
                                                   "*",
                                                   "HTTP/1.1",
                                                   "\r\n0\r\n\r\n"};
    size_t edits = 1 + Below(4);
    for (size_t e = 0; e < edits; ++e) {
      size_t at = Below(s.size() + 1);
      switch (Below(5)) {
        case 0:  // flip a bit
          if (!s.empty()) s[at % s.size()] ^= static_cast<char>(1 << Below(8));
          break;
        case 1:  // delete a run
          if (!s.empty()) s.erase(at % s.size(), 1 + Below(3));
          break;
        case 2:  // insert a splice
          s.insert(at, kSplice[Below(std::size(kSplice))]);
          break;
        case 3:  // overwrite a byte with a splice byte
          if (!s.empty()) s[at % s.size()] = kSplice[Below(std::size(kSplice))].front();
          break;
        case 4: {  // duplicate a slice
          size_t from = Below(s.size());
          s.insert(at, s.substr(from, 1 + Below(24)));
          break;
        }
      }
    }
    return s;
  }

 private:
  std::mt19937_64 rng_;
};

bool AllTokenChars(std::string_view s) {
  for (unsigned char c : s) {
    if (!IsTokenChar(c)) return false;
  }
  return !s.empty();
}

// Checks what the gateway relies on in an accepted head. Returns "" or the broken invariant.
std::string Violation(const RequestHead& h) {
  if (!AllTokenChars(h.method)) return "method is not a token";
  if (h.target.empty()) return "empty target";
  if (h.target == "*") {
    if (h.method != "OPTIONS") return "asterisk-form without OPTIONS";
  } else if (h.target.front() != '/') {
    return "target not in origin-form";
  }
  for (unsigned char c : h.target) {
    if (c <= 0x20 || c >= 0x7f || c == '#') return "bad byte in target";
  }
  if (h.version_minor != 0 && h.version_minor != 1) return "bad version";
  size_t cl = 0, te = 0, host = 0;
  std::string_view cl_value, te_value, host_value;
  for (const Field& f : h.headers) {
    if (!AllTokenChars(f.name)) return "field name is not a token";
    for (unsigned char c : f.value) {
      if ((c < 0x20 && c != '\t') || c == 0x7f) return "control byte in a field value";
    }
    if (!f.value.empty() && (f.value.front() == ' ' || f.value.front() == '\t' ||
                             f.value.back() == ' ' || f.value.back() == '\t')) {
      return "untrimmed field value";
    }
    if (IEquals(f.name, "content-length")) ++cl, cl_value = f.value;
    if (IEquals(f.name, "transfer-encoding")) ++te, te_value = f.value;
    if (IEquals(f.name, "host")) ++host, host_value = f.value;
  }
  if (cl > 1 || te > 1 || (cl && te)) return "more than one framing";
  switch (h.body) {
    case BodyKind::kNone:
      if (cl || te) return "framing field without a body kind";
      break;
    case BodyKind::kLength: {
      if (cl != 1) return "length body without content-length";
      if (cl_value.empty() || cl_value.size() > 19) return "bad content-length accepted";
      uint64_t n = 0;
      for (char c : cl_value) {
        if (c < '0' || c > '9') return "non-digit content-length accepted";
        n = n * 10 + static_cast<uint64_t>(c - '0');
      }
      if (n != h.content_length) return "content_length differs from the field";
      break;
    }
    case BodyKind::kChunked:
      if (te != 1 || !IEquals(te_value, "chunked")) return "chunked body without exactly chunked";
      if (h.version_minor != 1) return "transfer-encoding in http/1.0";
      break;
    case BodyKind::kUntilClose:
      return "request read until close";
  }
  if (host > 1) return "several hosts";
  if (h.version_minor == 1 && host != 1) return "http/1.1 without host";
  if (!h.host.empty() && (host != 1 || host_value != h.host)) return "routed host not forwarded";
  for (char c : h.host) {
    if (c == '@' || c == ' ' || c == '\t') return "bad byte in host";
  }
  if (h.expect_continue && h.version_minor != 1) return "100-continue for http/1.0";
  if (h.websocket_upgrade && (h.version_minor != 1 || h.method != "GET")) {
    return "upgrade outside an http/1.1 GET";
  }
  return "";
}

TEST(HttpFramingFuzz, MutatedRequestHeadsKeepTheInvariants) {
  const std::string corpus[] = {
      "GET /a?b=1 HTTP/1.1\r\nHost: h.example\r\nUser-Agent: x/1\r\n\r\n",
      "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n",
      "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n",
      "GET http://h:8080/x?y HTTP/1.0\r\n\r\n",
      "GET HTTP://h/x HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\n",
      "OPTIONS * HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
      "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
      "\r\nPUT /z HTTP/1.0\r\nHost: h:1\r\nContent-Length: 00012\r\n\r\n",
  };
  Mutator m(0x6d6f6174);  // "moat"
  RequestHead h, again;
  int accepted = 0;
  for (int i = 0; i < kIterations; ++i) {
    std::string raw = m.Mutate(corpus[m.Below(std::size(corpus))]);
    if (ParseRequestHead(raw, &h)) continue;
    ++accepted;
    std::string why = Violation(h);
    ASSERT_EQ(why, "") << "iteration " << i << ": " << ::testing::PrintToString(raw);
    if (h.host.empty()) continue;
    // What the gateway forwards (origin-form, the same fields, HTTP/1.1) parses to the same
    // request: the upstream cannot frame or route it differently.
    std::string forwarded;
    AppendRequestHead(&forwarded, h.method, h.target, h.headers);
    ParseError e = ParseRequestHead(forwarded, &again);
    ASSERT_FALSE(e) << "iteration " << i << ": " << e.reason << " for "
                    << ::testing::PrintToString(forwarded);
    EXPECT_EQ(again.method, h.method);
    EXPECT_EQ(again.target, h.target);
    EXPECT_EQ(again.host, h.host);
    EXPECT_EQ(again.body, h.body);
    EXPECT_EQ(again.content_length, h.content_length);
  }
  // The mutations must leave enough valid heads for the invariants to mean something.
  EXPECT_GT(accepted, kIterations / 20);
}

struct Decoded {
  enum { kDone, kFailed, kIncomplete } outcome;
  std::string data;
  size_t end = 0;  // bytes consumed when done
  bool operator==(const Decoded&) const = default;
};

// Decodes `in` delivered in pieces that end at `cuts` (ascending), as BodyReader does: the
// unconsumed rest of each delivery is kept and offered again with the next piece.
Decoded DecodeCut(std::string_view in, const std::vector<size_t>& cuts) {
  ChunkedDecoder d;
  Decoded out{Decoded::kIncomplete, {}, 0};
  size_t offered = 0;  // bytes of `in` delivered so far
  size_t pos = 0;      // bytes consumed
  for (size_t k = 0; k <= cuts.size(); ++k) {
    offered = k < cuts.size() ? cuts[k] : in.size();
    while (pos < offered) {
      std::string_view view = in.substr(pos, offered - pos);
      ChunkedDecoder::Step s = d.Feed(view);
      EXPECT_LE(s.consumed, view.size());
      if (!s.data.empty()) {  // a subrange of what was offered
        EXPECT_GE(s.data.data(), view.data());
        EXPECT_LE(s.data.data() + s.data.size(), view.data() + s.consumed);
      }
      out.data.append(s.data);
      pos += s.consumed;
      if (d.failed()) {
        out.outcome = Decoded::kFailed;
        out.end = 0;
        EXPECT_EQ(d.Feed(in.substr(pos)).consumed, 0u);
        return out;
      }
      if (d.done()) {
        out.outcome = Decoded::kDone;
        out.end = pos;
        EXPECT_EQ(d.Feed(in.substr(pos)).consumed, 0u);
        return out;
      }
      if (s.consumed == 0) break;
    }
  }
  return out;
}

TEST(HttpFramingFuzz, MutatedChunkedBodiesDecodeTheSameHoweverSplit) {
  const std::string corpus[] = {
      "5\r\nhello\r\n0\r\n\r\n",
      "3;a=b\r\nabc\r\nA;q=\"x y\"\r\n0123456789\r\n0\r\nT: v\r\n\r\n",
      "1\r\nx\r\n000\r\nX-A: 1\r\nX-B: 2\r\n\r\nGET / HTTP/1.1\r\n\r\n",
      "0\r\n\r\n",
      "10 ; e\r\n0123456789abcdef\r\n0\r\n\r\n5\r\nnext!\r\n",
  };
  Mutator m(0x6368756e6bULL);  // "chunk"
  int done = 0;
  for (int i = 0; i < kIterations; ++i) {
    std::string in = m.Mutate(corpus[m.Below(std::size(corpus))]);
    Decoded whole = DecodeCut(in, {});
    std::vector<size_t> cuts;
    for (size_t at = m.Below(8); at < in.size(); at += 1 + m.Below(8)) cuts.push_back(at);
    Decoded split = DecodeCut(in, cuts);
    ASSERT_TRUE(whole == split) << "iteration " << i << ": " << ::testing::PrintToString(in);
    ASSERT_LE(whole.data.size(), in.size());
    if (whole.outcome == Decoded::kDone) {
      ++done;
      ASSERT_LE(whole.data.size(), whole.end);
      // The bytes after the end are the next message's: re-chunking the data and appending
      // them again must end at the same place (what the gateway sends upstream).
      std::string rechunked;
      if (!whole.data.empty()) {
        char size[24];
        std::snprintf(size, sizeof size, "%zx\r\n", whole.data.size());
        rechunked = size + whole.data + "\r\n";
      }
      rechunked += "0\r\n\r\n";
      Decoded again = DecodeCut(rechunked + in.substr(whole.end), {});
      ASSERT_EQ(again.outcome, Decoded::kDone);
      ASSERT_EQ(again.data, whole.data);
      ASSERT_EQ(again.end, rechunked.size());
    }
  }
  EXPECT_GT(done, kIterations / 20);
}

}  // namespace
}  // namespace moat::http
