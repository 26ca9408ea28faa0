#include "http/framing.h"

#include <gtest/gtest.h>

#include <string>

namespace moat::http {
namespace {

RequestHead MustParse(std::string_view raw) {
  RequestHead h;
  ParseError e = ParseRequestHead(raw, &h);
  EXPECT_FALSE(e) << "unexpected " << e.status << " " << e.reason << " for: " << raw;
  return h;
}

int StatusOf(std::string_view raw) {
  RequestHead h;
  return ParseRequestHead(raw, &h).status;
}

TEST(HttpFraming, ParsesSimpleGet) {
  RequestHead h = MustParse("GET /a/b?x=1 HTTP/1.1\r\nHost: Example.com:8080\r\nX-A:  v  \r\n\r\n");
  EXPECT_EQ(h.method, "GET");
  EXPECT_EQ(h.target, "/a/b?x=1");
  EXPECT_EQ(h.Path(), "/a/b");
  EXPECT_EQ(h.Query(), "x=1");
  EXPECT_EQ(h.host, "Example.com:8080");
  EXPECT_EQ(h.headers.Get("x-a"), "v");
  EXPECT_EQ(h.body, BodyKind::kNone);
  EXPECT_TRUE(h.keep_alive);
}

TEST(HttpFraming, DerivesBodyFramingAndConnection) {
  RequestHead h = MustParse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n\r\n");
  EXPECT_EQ(h.body, BodyKind::kLength);
  EXPECT_EQ(h.content_length, 12u);
  h = MustParse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n");
  EXPECT_EQ(h.body, BodyKind::kChunked);
  h = MustParse("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, close\r\n\r\n");
  EXPECT_FALSE(h.keep_alive);
  h = MustParse("GET / HTTP/1.0\r\n\r\n");
  EXPECT_FALSE(h.keep_alive);
  h = MustParse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
  EXPECT_TRUE(h.keep_alive);
  h = MustParse(
      "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n"
      "Upgrade: websocket\r\n\r\n");
  EXPECT_TRUE(h.websocket_upgrade);
  h = MustParse("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n");
  EXPECT_TRUE(h.expect_continue);
  h = MustParse("\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n");  // leading empty lines
  EXPECT_EQ(h.method, "GET");
}

TEST(HttpFraming, RewritesAbsoluteFormWhenAuthorityMatchesHost) {
  RequestHead h =
      MustParse("GET http://svc.localhost:8080/p?q HTTP/1.1\r\nHost: SVC.localhost:8080\r\n\r\n");
  EXPECT_EQ(h.target, "/p?q");
  h = MustParse("GET http://svc.localhost HTTP/1.1\r\nHost: svc.localhost\r\n\r\n");
  EXPECT_EQ(h.target, "/");
  EXPECT_EQ(StatusOf("GET http://other/p HTTP/1.1\r\nHost: svc\r\n\r\n"), 400);
  EXPECT_EQ(StatusOf("GET http://user@svc/p HTTP/1.1\r\nHost: user@svc\r\n\r\n"), 400);
}

// The smuggling corpus: every request here must be refused before anything is forwarded.
struct Bad {
  const char* name;
  const char* raw;
  int status;
};

const Bad kSmuggling[] = {
    {"cl_and_te",
     "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
    {"te_and_cl",
     "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n", 400},
    {"duplicate_cl_same",
     "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n", 400},
    {"duplicate_cl_diff",
     "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n", 400},
    {"cl_list", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4, 4\r\n\r\n", 400},
    {"cl_plus", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +4\r\n\r\n", 400},
    {"cl_minus", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400},
    {"cl_hex", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n", 400},
    {"cl_space_inside", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 0\r\n\r\n", 400},
    {"cl_empty", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", 400},
    {"cl_overflow", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n",
     400},
    {"te_gzip_chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
     400},
    {"te_chunked_gzip", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
     400},
    {"te_double_chunked",
     "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400},
    {"te_two_fields",
     "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
     "chunked\r\n\r\n",
     400},
    {"te_identity", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n", 400},
    {"te_xchunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n", 400},
    {"te_quoted", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", 400},
    {"te_vtab",
     "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \x0b"
     "chunked\r\n\r\n",
     400},
    {"te_http10", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
    {"te_space_before_colon", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n",
     400},
    {"te_tab_before_colon", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding\t: chunked\r\n\r\n",
     400},
    {"obs_fold", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n chunked\r\n\r\n", 400},
    {"obs_fold_tab", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n", 400},
    {"leading_space_first_header", "GET / HTTP/1.1\r\n Host: h\r\n\r\n", 400},
    {"bare_lf_header", "GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n", 400},
    {"bare_lf_request_line", "GET / HTTP/1.1\nHost: h\r\n\r\n", 400},
    {"bare_cr_value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", 400},
    {"nul_value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n", 400},
    {"ctl_value",
     "GET / HTTP/1.1\r\nHost: h\r\nX: a\x01"
     "b\r\n\r\n",
     400},
    {"del_value",
     "GET / HTTP/1.1\r\nHost: h\r\nX: a\x7f"
     "b\r\n\r\n",
     400},
    {"bad_name_slash", "GET / HTTP/1.1\r\nHost: h\r\nX/Y: 1\r\n\r\n", 400},
    {"bad_name_at", "GET / HTTP/1.1\r\nHost: h\r\nX@Y: 1\r\n\r\n", 400},
    {"bad_name_utf8", "GET / HTTP/1.1\r\nHost: h\r\nX\xc3\xa9: 1\r\n\r\n", 400},
    {"empty_name", "GET / HTTP/1.1\r\nHost: h\r\n: 1\r\n\r\n", 400},
    {"no_colon", "GET / HTTP/1.1\r\nHost: h\r\nJustText\r\n\r\n", 400},
    {"missing_host", "GET / HTTP/1.1\r\n\r\n", 400},
    {"duplicate_host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
    {"host_with_space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
    {"host_with_slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400},
    {"host_empty", "GET / HTTP/1.1\r\nHost:\r\n\r\n", 400},
    {"method_bad_char", "G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
    {"two_spaces", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
    {"tab_separator", "GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", 400},
    {"trailing_space_version", "GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 400},
    {"lowercase_version", "GET / http/1.1\r\nHost: h\r\n\r\n", 400},
    {"http09", "GET /\r\n\r\n", 400},
    {"http2_version", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505},
    {"target_relative", "GET a/b HTTP/1.1\r\nHost: h\r\n\r\n", 400},
    {"target_fragment", "GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n", 400},
    {"target_utf8", "GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", 400},
    {"asterisk_get", "GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400},
    {"connect", "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", 501},
    {"expect_other", "POST / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\n",
     417},
    {"unterminated", "GET / HTTP/1.1\r\nHost: h\r\n", 400},
};

TEST(HttpFraming, RefusesSmugglingCorpus) {
  for (const Bad& b : kSmuggling) {
    std::string raw(b.raw, std::char_traits<char>::length(b.raw));
    if (std::string_view(b.name) == "nul_value") {
      constexpr char kNul[] = "GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n";
      raw = std::string(kNul, sizeof kNul - 1);
    }
    RequestHead h;
    ParseError e = ParseRequestHead(raw, &h);
    EXPECT_EQ(e.status, b.status) << b.name << " (" << e.reason << ")";
  }
}

TEST(HttpFraming, TooManyFieldsIs431) {
  std::string raw = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (int i = 0; i < 10; ++i) raw += "X-" + std::to_string(i) + ": v\r\n";
  raw += "\r\n";
  RequestHead h;
  EXPECT_EQ(ParseRequestHead(raw, &h, HeadLimits{5}).status, 431);
  EXPECT_FALSE(ParseRequestHead(raw, &h, HeadLimits{50}));
}

TEST(HttpFraming, ParsesResponses) {
  ResponseHead r;
  ASSERT_FALSE(ParseResponseHead("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "GET", &r));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, BodyKind::kLength);
  ASSERT_FALSE(ParseResponseHead("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD", &r));
  EXPECT_EQ(r.body, BodyKind::kNone);
  ASSERT_FALSE(ParseResponseHead("HTTP/1.1 204\r\n\r\n", "GET", &r));
  EXPECT_EQ(r.body, BodyKind::kNone);
  ASSERT_FALSE(ParseResponseHead("HTTP/1.0 200 OK\r\n\r\n", "GET", &r));
  EXPECT_EQ(r.body, BodyKind::kUntilClose);
  EXPECT_FALSE(r.keep_alive);
  ASSERT_FALSE(
      ParseResponseHead("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", &r));
  EXPECT_EQ(r.body, BodyKind::kChunked);
  EXPECT_EQ(
      ParseResponseHead(
          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", "GET", &r)
          .status,
      502);
  EXPECT_EQ(ParseResponseHead("HTTP/1.1 2000 OK\r\n\r\n", "GET", &r).status, 502);
  EXPECT_EQ(ParseResponseHead("HTTX/1.1 200 OK\r\n\r\n", "GET", &r).status, 502);
  EXPECT_EQ(ParseResponseHead("HTTP/1.1 200 OK\r\nA b: c\r\n\r\n", "GET", &r).status, 502);
}

// Decodes `in` fed in pieces of `step` bytes; returns decoded data or "ERR".
std::string Decode(std::string_view in, size_t step) {
  ChunkedDecoder d;
  std::string out;
  std::string pending;
  for (size_t i = 0; i < in.size() && !d.done(); i += step) {
    pending.append(in.substr(i, step));
    std::string_view view = pending;
    while (!view.empty() && !d.done()) {
      ChunkedDecoder::Step s = d.Feed(view);
      if (d.failed()) return "ERR";
      out.append(s.data);
      view.remove_prefix(s.consumed);
      if (s.consumed == 0) break;
    }
    pending = std::string(view);
  }
  return d.done() ? out : "INCOMPLETE";
}

TEST(HttpFraming, ChunkedDecodesAcrossAnySplit) {
  const std::string in = "5\r\nhello\r\nA;ext=\"v\"\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n";
  for (size_t step = 1; step <= in.size(); ++step) {
    EXPECT_EQ(Decode(in, step), "hello0123456789") << "step " << step;
  }
  EXPECT_EQ(Decode("0\r\n\r\n", 3), "");
  EXPECT_EQ(Decode("00005\r\nhello\r\n0\r\n\r\n", 7), "hello");
  EXPECT_EQ(Decode("5 ;a\r\nhello\r\n0\r\n\r\n", 100), "hello");
  EXPECT_EQ(Decode("5\r\nhel", 100), "INCOMPLETE");
}

TEST(HttpFraming, ChunkedRefusesLenientForms) {
  const char* bad[] = {
      "5\nhello\r\n0\r\n\r\n",                   // bare LF after size
      "5\r\nhello\n0\r\n\r\n",                   // bare LF after data
      "5\r\nhelloXX0\r\n\r\n",                   // data longer than size
      "-5\r\nhello\r\n0\r\n\r\n",                // sign
      "+5\r\nhello\r\n0\r\n\r\n",                // sign
      "0x5\r\nhello\r\n0\r\n\r\n",               // hex prefix
      " 5\r\nhello\r\n0\r\n\r\n",                // leading space
      "5 6\r\nhello\r\n0\r\n\r\n",               // two numbers
      "5 \r\nhello\r\n0\r\n\r\n",                // trailing whitespace without extension
      "\r\nhello\r\n0\r\n\r\n",                  // empty size
      "g\r\nhello\r\n0\r\n\r\n",                 // not hex
      "11111111111111111\r\n",                   // 17 digits
      "8000000000000000\r\n",                    // >= 2^63
      "5;a\x01\r\nhello\r\n0\r\n\r\n",           // control in extension
      "5;a\nb\r\nhello\r\n0\r\n\r\n",            // LF in extension
      "5\r\nhello\r\n0\r\nBad Name: v\r\n\r\n",  // trailer name
      "5\r\nhello\r\n0\r\n folded\r\n\r\n",      // trailer folding
      "5\r\nhello\r\n0\r\nnocolon\r\n\r\n",      // trailer without colon
      "5\r\nhello\r\n0\r\n\n",                   // bare LF at end
  };
  for (const char* b : bad) {
    EXPECT_EQ(Decode(b, 1000), "ERR") << b;
    EXPECT_EQ(Decode(b, 1), "ERR") << b;
  }
}

TEST(HttpFraming, ReusedHeadsCarryNothingOverFromTheLastMessage) {
  // The server parses every request of a connection into one RequestHead (and the gateway
  // every response of an upstream connection into one ResponseHead), to keep their storage.
  RequestHead h;
  ASSERT_FALSE(ParseRequestHead("POST /a?x=1 HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\n"
                                "Expect: 100-continue\r\nConnection: close\r\n"
                                "Authorization: Bearer " +
                                    std::string(900, 't') + "\r\nX-A: 1\r\n\r\n",
                                &h));
  EXPECT_EQ(h.body, BodyKind::kLength);
  EXPECT_TRUE(h.expect_continue);
  EXPECT_FALSE(h.keep_alive);
  ASSERT_FALSE(ParseRequestHead("GET /b HTTP/1.1\r\nHost: b.example\r\nX-B: 2\r\n\r\n", &h));
  EXPECT_EQ(h.method, "GET");
  EXPECT_EQ(h.target, "/b");
  EXPECT_EQ(h.host, "b.example");
  EXPECT_EQ(h.body, BodyKind::kNone);
  EXPECT_EQ(h.content_length, 0u);
  EXPECT_FALSE(h.expect_continue);
  EXPECT_TRUE(h.keep_alive);
  ASSERT_EQ(h.headers.size(), 2u);
  EXPECT_FALSE(h.headers.Has("authorization"));
  EXPECT_FALSE(h.headers.Has("x-a"));
  EXPECT_EQ(h.headers.Get("x-b"), "2");
  // A refused head leaves nothing usable behind either.
  EXPECT_TRUE(ParseRequestHead("GET / HTTP/1.1\r\nHost: c\r\nBad Name: v\r\n\r\n", &h));
  ASSERT_FALSE(ParseRequestHead("GET /d HTTP/1.0\r\n\r\n", &h));
  EXPECT_EQ(h.headers.size(), 0u);
  EXPECT_EQ(h.host, "");
  EXPECT_FALSE(h.keep_alive);

  ResponseHead r;
  ASSERT_FALSE(ParseResponseHead("HTTP/1.1 201 Made\r\nTransfer-Encoding: chunked\r\n\r\n", "GET",
                                 &r));
  EXPECT_EQ(r.body, BodyKind::kChunked);
  ASSERT_FALSE(ParseResponseHead("HTTP/1.1 204 No Content\r\nX-Z: z\r\n\r\n", "GET", &r));
  EXPECT_EQ(r.status, 204);
  EXPECT_EQ(r.reason, "No Content");
  EXPECT_EQ(r.body, BodyKind::kNone);
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers.Get("x-z"), "z");
  ASSERT_FALSE(ParseResponseHead("HTTP/1.1 200\r\nContent-Length: 3\r\n\r\n", "GET", &r));
  EXPECT_EQ(r.reason, "");
  EXPECT_EQ(r.content_length, 3u);

  // Copies carry the fields only.
  Headers copy = r.headers;
  EXPECT_EQ(copy.size(), 1u);
  EXPECT_EQ(copy.Get("content-length"), "3");
}

// Audit cases not in the smuggling corpus above.
TEST(HttpFraming, RefusesMalformedRequestLinesAndTargets) {
  EXPECT_EQ(StatusOf("GET / HTTP/1.10\r\nHost: h\r\n\r\n"), 400);
  EXPECT_EQ(StatusOf("GET / HTTP/1.2\r\nHost: h\r\n\r\n"), 505);
  EXPECT_EQ(StatusOf("GET /a b HTTP/1.1\r\nHost: h\r\n\r\n"), 400);  // space inside the target
  EXPECT_EQ(StatusOf("GET /a\x01z HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
  EXPECT_EQ(StatusOf("GET /a\tz HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
  EXPECT_EQ(StatusOf(" / HTTP/1.1\r\nHost: h\r\n\r\n"), 400);  // empty method
  EXPECT_EQ(StatusOf("GET / HTTP/1.1 x\r\nHost: h\r\n\r\n"), 400);
  // Authority-form outside CONNECT, asterisk-form outside OPTIONS.
  EXPECT_EQ(StatusOf("GET h:80 HTTP/1.1\r\nHost: h:80\r\n\r\n"), 400);
  EXPECT_EQ(StatusOf("POST * HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"), 400);
  EXPECT_EQ(MustParse("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n").target, "*");
  // Absolute-form with a scheme we do not speak, or an authority that differs only by a port.
  EXPECT_EQ(StatusOf("GET ftp://h/p HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
  EXPECT_EQ(StatusOf("GET http://h:80/p HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
  EXPECT_EQ(StatusOf("GET http:///p HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
}

TEST(HttpFraming, RefusesHostsThatCouldRouteElsewhere) {
  EXPECT_EQ(StatusOf("GET / HTTP/1.1\r\nHost: a@b\r\n\r\n"), 400);
  EXPECT_EQ(StatusOf("GET / HTTP/1.1\r\nHost: a\tb\r\n\r\n"), 400);
  EXPECT_EQ(StatusOf("GET / HTTP/1.1\r\nhost: a\r\nHOST: a\r\n\r\n"), 400);
  EXPECT_EQ(StatusOf("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
  EXPECT_EQ(StatusOf("GET http://a@b/p HTTP/1.0\r\n\r\n"), 400);
  EXPECT_EQ(MustParse("GET / HTTP/1.1\r\nHost:  a.example \r\n\r\n").host, "a.example");  // OWS
}

TEST(HttpFraming, AbsoluteFormWithoutHostForwardsTheAuthorityAsHost) {
  // HTTP/1.0 needs no Host: the target's authority is what Moat routes on (head.host), so the
  // fields forwarded upstream must carry the same Host, or the upstream routes on nothing.
  RequestHead h = MustParse("GET http://svc.example:8080/p?q HTTP/1.0\r\nX-A: 1\r\n\r\n");
  EXPECT_EQ(h.host, "svc.example:8080");
  EXPECT_EQ(h.target, "/p?q");
  EXPECT_EQ(h.headers.Count("host"), 1u);
  EXPECT_EQ(h.headers.Get("host"), "svc.example:8080");
  // Origin-form HTTP/1.0 without Host: no host to route on, none invented.
  h = MustParse("GET /p HTTP/1.0\r\n\r\n");
  EXPECT_EQ(h.host, "");
  EXPECT_FALSE(h.headers.Has("host"));
}

TEST(HttpFraming, UpgradeIsIgnoredInHttp10) {
  RequestHead h = MustParse(
      "GET /ws HTTP/1.0\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n");
  EXPECT_FALSE(h.websocket_upgrade);
  h = MustParse(
      "POST /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
  EXPECT_FALSE(h.websocket_upgrade);
}

TEST(HttpFraming, ContentLengthAndTransferEncodingEdges) {
  RequestHead h = MustParse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length:  1 \r\n\r\n");
  EXPECT_EQ(h.body, BodyKind::kLength);
  EXPECT_EQ(h.content_length, 1u);
  h = MustParse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9999999999999999999\r\n\r\n");
  EXPECT_EQ(h.content_length, 9999999999999999999u);  // 19 digits: the longest accepted
  h = MustParse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(h.body, BodyKind::kLength);
  EXPECT_EQ(h.content_length, 0u);
  EXPECT_EQ(StatusOf("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 1\r\n\r\n"), 400);
  EXPECT_EQ(
      StatusOf("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\ncontent-length: 2\r\n\r\n"),
      400);
  EXPECT_EQ(StatusOf("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1.0\r\n\r\n"), 400);
  EXPECT_EQ(StatusOf("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n"), 400);
  EXPECT_EQ(StatusOf("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n"), 400);
  EXPECT_EQ(StatusOf("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;q=1\r\n\r\n"), 400);
  EXPECT_EQ(
      StatusOf(
          "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n"),
      400);
  h = MustParse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: CHUNKED \r\n\r\n");
  EXPECT_EQ(h.body, BodyKind::kChunked);
}

TEST(HttpFraming, ManyTinyFieldsStopAtTheFieldLimit) {
  std::string raw = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (int i = 0; i < 20'000; ++i) raw += "a: b\r\n";
  raw += "\r\n";
  RequestHead h;
  ParseError e = ParseRequestHead(raw, &h);  // default HeadLimits: 100 fields
  EXPECT_EQ(e.status, 431);
  EXPECT_LE(h.headers.size(), HeadLimits{}.max_fields);
}

TEST(HttpFraming, ChunkExtensionsAndTrailers) {
  EXPECT_EQ(Decode("5;a;b=c;d=\"x;y z\"\r\nhello\r\n0;e\r\n\r\n", 1), "hello");
  EXPECT_EQ(Decode("5;a=\"x\ry\"\r\nhello\r\n0\r\n\r\n", 1000), "ERR");  // bare CR in quotes
  EXPECT_EQ(Decode("5;a\rb\r\nhello\r\n0\r\n\r\n", 1000), "ERR");
  EXPECT_EQ(Decode("5;" + std::string(5000, 'e') + "\r\nhello\r\n0\r\n\r\n", 1000), "ERR");
  EXPECT_EQ(Decode("5\r\nhello\r\r\n0\r\n\r\n", 1000), "ERR");  // stray CR after data
  EXPECT_EQ(Decode("5\r\nhello0\r\n\r\n", 1000), "ERR");        // no CRLF after data
  EXPECT_EQ(Decode("ffffffffffffffff\r\n", 1000), "ERR");       // 2^64 - 1
  EXPECT_EQ(Decode("0\r\nX-A: 1\r\nx-b:\r\nC: d e\t\r\n\r\n", 1), "");
  EXPECT_EQ(Decode("0\r\nX-A: 1\r\nX-A: 2\r\n\r\n", 3), "");
  EXPECT_EQ(Decode("0\r\n: v\r\n\r\n", 1000), "ERR");  // empty trailer name
  EXPECT_EQ(Decode("0\r\nX-A: a\x01\r\n\r\n", 1000), "ERR");
  EXPECT_EQ(Decode("0\r\nX-A: a\rb\r\n\r\n", 1000), "ERR");
  // The trailer section is bounded (16 KiB), however it is split into fields.
  std::string many = "0\r\n";
  for (int i = 0; i < 4000; ++i) many += "t: v\r\n";  // 16 KB counted (CRLFs are not)
  EXPECT_EQ(Decode(many + "\r\n", 4096), "");
  for (int i = 0; i < 200; ++i) many += "t: v\r\n";
  EXPECT_EQ(Decode(many + "\r\n", 4096), "ERR");
  EXPECT_EQ(Decode("0\r\nt: " + std::string(17 * 1024, 'v') + "\r\n\r\n", 4096), "ERR");
}

// A proxy removes the fields its Connection header names (RFC 9110 §7.6.1), so "Connection:
// host" would have the gateway route on a Host it then does not forward.
TEST(HttpFraming, ConnectionOptionNamingHostIs400) {
  EXPECT_EQ(StatusOf("GET / HTTP/1.1\r\nHost: h\r\nConnection: host\r\n\r\n"), 400);
  EXPECT_EQ(StatusOf("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nconnection: HOST\r\n\r\n"),
            400);
  EXPECT_EQ(StatusOf("GET http://h/ HTTP/1.0\r\nConnection: keep-alive, Host\r\n\r\n"), 400);
  EXPECT_EQ(MustParse("GET / HTTP/1.1\r\nHost: h\r\nConnection: x-host, hosts\r\n\r\n").host, "h");
}

// RFC 9112 §9.3: a "close" option ends the connection whatever the version; HTTP/1.0's
// keep-alive does not outweigh it.
TEST(HttpFraming, CloseWinsOverKeepAliveInHttp10) {
  EXPECT_FALSE(MustParse("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n").keep_alive);
  EXPECT_FALSE(
      MustParse("GET / HTTP/1.0\r\nConnection: close\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
  ResponseHead r;
  ASSERT_FALSE(ParseResponseHead(
      "HTTP/1.0 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n", "GET", &r));
  EXPECT_FALSE(r.keep_alive);
  ASSERT_FALSE(ParseResponseHead(
      "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", "GET", &r));
  EXPECT_TRUE(r.keep_alive);
}

// Field values are checked 16 bytes at a time, 64 at a time past their first 16 bytes, plus an
// overlapping tail: a control character or DEL is refused at every position of values of every
// length around those blocks, while tabs and obs-text (bytes >= 0x80) are accepted — with tabs
// all along the value (every coarse step sees one) and with none.
TEST(HttpFraming, ControlCharactersAreFoundAtEveryPositionOfAValue) {
  for (const std::string ok_chars : {"aZ9 \t~\x80\xff!", "aZ9 ~\x80\xff!-"})
    for (size_t len = 1; len <= 170; ++len) {
      std::string value;
      for (size_t i = 0; i < len; ++i) value.push_back(ok_chars[i % ok_chars.size()]);
      value.front() = 'v';  // leading and trailing whitespace would be trimmed, not checked
      value.back() = 'v';
      RequestHead h;
      ASSERT_FALSE(ParseRequestHead("GET / HTTP/1.1\r\nHost: a\r\nX: " + value + "\r\n\r\n", &h))
          << "length " << len;
      EXPECT_EQ(h.headers.Get("x"), value);
      for (size_t at = 0; at < len; ++at) {
        for (char bad : {'\x01', '\x1f', '\x7f', '\x0b', '\r'}) {
          std::string v = value;
          v[at] = bad;
          ParseError e = ParseRequestHead("GET / HTTP/1.1\r\nHost: a\r\nX: " + v + "\r\n\r\n", &h);
          ASSERT_EQ(e.status, 400) << "length " << len << " at " << at << " byte " << int(bad);
          EXPECT_EQ(e.reason, "control character in header value");
        }
      }
    }
}

// A field line's end is found by the same 16-byte scan that checks its value: lines of every
// length, ending at every offset of a block and in the overlapping last block of the head,
// are cut where they end; a value that runs off the end of the input is refused.
TEST(HttpFraming, FieldLinesAreCutWhereverTheyEnd) {
  for (size_t a = 0; a <= 40; ++a) {
    for (size_t b = 0; b <= 20; ++b) {
      std::string va(a, 'a'), vb(b, 'b');
      std::string raw = "GET / HTTP/1.1\r\nX-A: " + va + "\r\nHost: h\r\nX-B:" + vb + "\r\n\r\n";
      RequestHead h;
      ASSERT_FALSE(ParseRequestHead(raw, &h)) << a << " " << b;
      ASSERT_EQ(h.headers.size(), 3u);
      EXPECT_EQ(h.headers.Get("x-a"), va);
      EXPECT_EQ(h.headers.Get("host"), "h");
      EXPECT_EQ(h.headers.Get("x-b"), vb);
      // Cut short anywhere after the request line: never accepted, never read past the end.
      for (size_t cut = 16; cut < raw.size(); ++cut) {
        std::string part = raw.substr(0, cut);  // its own allocation: ASan sees an over-read
        EXPECT_TRUE(ParseRequestHead(part, &h)) << a << " " << b << " cut " << cut;
      }
    }
  }
  RequestHead h;
  EXPECT_EQ(ParseRequestHead("GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(40, 'v'), &h).reason,
            "unterminated line");
  EXPECT_EQ(
      ParseRequestHead("GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(40, 'v') + "\n\r\n", &h)
          .reason,
      "bare LF in head");
  EXPECT_EQ(ParseRequestHead("GET / HTTP/1.1\r\nHost: h\r\nX: v\rv\r\n\r\n", &h).reason,
            "control character in header value");
  EXPECT_EQ(ParseRequestHead("GET / HTTP/1.1\r\nHost: h\r\n\rX: v\r\n\r\n", &h).status, 400);
  EXPECT_EQ(ParseRequestHead("GET / HTTP/1.1\r\nHost: h\r\nX: v\r\n\r", &h).status, 400);
}

TEST(HttpMessage, FieldIdsFollowTheNameInAnyCase) {
  const std::pair<std::string_view, FieldId> known[] = {
      {"Host", FieldId::kHost},
      {"CONTENT-LENGTH", FieldId::kContentLength},
      {"transfer-Encoding", FieldId::kTransferEncoding},
      {"Connection", FieldId::kConnection},
      {"Keep-Alive", FieldId::kKeepAlive},
      {"Proxy-Connection", FieldId::kProxyConnection},
      {"TE", FieldId::kTe},
      {"Trailer", FieldId::kTrailer},
      {"Upgrade", FieldId::kUpgrade},
      {"Expect", FieldId::kExpect},
      {"authorization", FieldId::kAuthorization},
      {"X-Serverless-Authorization", FieldId::kServerlessAuthorization},
      {"Proxy-Authorization", FieldId::kProxyAuthorization},
      {"X-Forwarded-For", FieldId::kXForwardedFor},
      {"X-Forwarded-Proto", FieldId::kXForwardedProto},
      {"X-Request-ID", FieldId::kXRequestId},
      {"TraceParent", FieldId::kTraceparent},
      {"X-Moat-Min-Revision", FieldId::kXMoatMinRevision},
      {"X-MOAT-Anything", FieldId::kXMoat},
      {"x-moat-", FieldId::kXMoat},
      {"X-Google-Foo", FieldId::kXGoogle},
  };
  for (const auto& [name, id] : known) EXPECT_EQ(IdentifyField(name), id) << name;
  // Near misses: same length, one letter off, prefixes and extensions of known names, and
  // characters whose case-folding bit alone would match (`@` vs '`', `[` vs `{`).
  for (std::string_view other :
       {"hosts", "hos", "hosT2", "Authorizatio", "Authorizations", "x-moat", "x-moaT", "x-moat_a",
        "x-googl-a", "x-google", "Content-Type", "Date", "Server", "te2", "t@", "connectio[",
        "x-request-i@", "Upgrad@"}) {
    EXPECT_EQ(IdentifyField(other), FieldId::kOther) << other;
  }

  // Ids stay with their names however fields are added, removed or reused.
  RequestHead h;
  ASSERT_FALSE(
      ParseRequestHead("GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t\r\n"
                       "Connection: close\r\n\r\n",
                       &h));
  EXPECT_EQ(h.headers.Get(FieldId::kAuthorization), "Bearer t");
  EXPECT_EQ(h.headers.Count(FieldId::kConnection), 1u);
  // The same slots, now holding other names.
  ASSERT_FALSE(ParseRequestHead("GET / HTTP/1.1\r\nX-A: 1\r\nX-B: 2\r\nHost: b\r\n\r\n", &h));
  EXPECT_EQ(h.headers.Find(FieldId::kAuthorization), nullptr);
  EXPECT_EQ(h.headers.Find(FieldId::kConnection), nullptr);
  EXPECT_EQ(h.headers.Get(FieldId::kHost), "b");
  EXPECT_TRUE(h.keep_alive);

  Headers x;
  x.Add("X-Forwarded-For", "1.2.3.4");
  x.Add("Traceparent", "t");
  x.Add("X-Moat-Min-Revision", "7");
  EXPECT_EQ(x.Remove("x-forwarded-for"), 1u);
  EXPECT_EQ(x.Get(FieldId::kTraceparent), "t");
  EXPECT_EQ(x.Get(FieldId::kXMoatMinRevision), "7");
  EXPECT_EQ(x.Find(FieldId::kXForwardedFor), nullptr);
  x.Set("traceparent", "u");
  EXPECT_EQ(x.Count(FieldId::kTraceparent), 1u);
  EXPECT_EQ(x.Get(FieldId::kTraceparent), "u");
  Headers copy = x;
  EXPECT_EQ(copy.Get(FieldId::kXMoatMinRevision), "7");
  x.Recycle();
  x.Add("Server", "s");
  EXPECT_EQ(x.Find(FieldId::kXMoatMinRevision), nullptr);
  EXPECT_EQ(x.Find(FieldId::kTraceparent), nullptr);
}

// Fields are views into bytes the Headers owns: they survive the input they were parsed
// from, copies and moves (short fields too, whose strings would otherwise be moved inline),
// and Set with a value taken from the field it replaces.
TEST(HttpMessage, HeadersOwnTheBytesTheirFieldsView) {
  RequestHead h;
  {
    std::string raw =
        "GET / HTTP/1.1\r\nHost: a\r\nX-A: " + std::string(300, 'v') + "\r\nX-B: b\r\n\r\n";
    ASSERT_FALSE(ParseRequestHead(raw, &h));
    std::fill(raw.begin(), raw.end(), '#');  // the input is gone
  }
  EXPECT_EQ(h.headers.Get("x-a"), std::string(300, 'v'));
  EXPECT_EQ(h.headers.Get("x-b"), "b");
  Headers copy = h.headers;
  Headers moved = std::move(h.headers);
  // A moved-from Headers is empty and can be parsed into again.
  EXPECT_TRUE(h.headers.empty());
  ASSERT_FALSE(ParseRequestHead("GET / HTTP/1.1\r\nHost: c\r\nX-C: c\r\n\r\n", &h));
  EXPECT_EQ(h.headers.Get("x-c"), "c");
  Headers moved_again;
  moved_again = std::move(h.headers);
  ASSERT_FALSE(ParseRequestHead("GET / HTTP/1.1\r\nHost: d\r\n\r\n", &h));
  EXPECT_EQ(h.headers.Get("host"), "d");
  EXPECT_EQ(moved_again.Get("x-c"), "c");
  EXPECT_EQ(moved.Get("x-b"), "b");
  EXPECT_EQ(moved.Get(FieldId::kHost), "a");
  EXPECT_EQ(copy.Get("x-a"), std::string(300, 'v'));

  Headers small;
  for (int i = 0; i < 40; ++i) small.Add("N" + std::to_string(i), std::to_string(i));
  Headers small_moved = std::move(small);
  Headers assigned;
  assigned = std::move(small_moved);
  ASSERT_EQ(assigned.size(), 40u);
  for (int i = 0; i < 40; ++i) {
    EXPECT_EQ(assigned.Get("n" + std::to_string(i)), std::to_string(i));
  }
  assigned.Set("N7", assigned.Get("N8"));  // a value viewing a field still there
  assigned.Set("N8", assigned.Get("N8"));  // a value viewing the field it replaces
  EXPECT_EQ(assigned.Get("n7"), "8");
  EXPECT_EQ(assigned.Get("n8"), "8");
  EXPECT_EQ(assigned.Count("n8"), 1u);

  // One RequestHead parsing heads of growing and shrinking sizes: each parse's fields are
  // its own.
  for (size_t len : {10, 2000, 5, 70000, 3, 9000, 1}) {
    std::string v(len, 'x');
    ParseError e = ParseRequestHead("GET / HTTP/1.1\r\nHost: h\r\nX-V: " + v + "\r\n\r\n", &h);
    ASSERT_FALSE(e) << len << " " << e.reason;
    EXPECT_EQ(h.headers.Get("x-v"), v);
    EXPECT_EQ(h.host, "h");
  }
}

TEST(HttpMessage, BearerTokenTakesOnlyTheBearerScheme) {
  EXPECT_EQ(BearerToken("Bearer abc"), "abc");
  EXPECT_EQ(BearerToken(" \tbEaReR   a.b.c \t"), "a.b.c");
  EXPECT_EQ(BearerToken("Bearer"), "");
  EXPECT_EQ(BearerToken("Bearer "), "");
  EXPECT_EQ(BearerToken("Bearerabc"), "");
  EXPECT_EQ(BearerToken("Basic abc"), "");
  EXPECT_EQ(BearerToken("Bearer\tabc"), "");
  EXPECT_EQ(BearerToken(""), "");
}

}  // namespace
}  // namespace moat::http
