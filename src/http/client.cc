#include "http/client.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http/error.hpp>
#include <optional>

#include "http/stream.h"

namespace moat::http {

Result<ParsedUrl> ParseHttpUrl(std::string_view url) {
  ParsedUrl out;
  constexpr std::string_view kScheme = "http://";
  if (url.size() < kScheme.size() || !IEquals(url.substr(0, kScheme.size()), kScheme)) {
    return InvalidArgument("url `" + std::string(url) + "` must start with http://");
  }
  std::string_view rest = url.substr(kScheme.size());
  size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  std::string_view target = end == std::string_view::npos ? "/" : rest.substr(end);
  target = target.substr(0, target.find('#'));
  if (authority.empty() || authority.find('@') != std::string_view::npos) {
    return InvalidArgument("url `" + std::string(url) + "` has no valid host");
  }
  out.authority = std::string(authority);
  std::string_view host = authority, port;
  if (host.front() == '[') {
    size_t close = host.find(']');
    if (close == std::string_view::npos) return InvalidArgument("malformed ipv6 host in url");
    port = host.substr(close + 1);
    host = host.substr(1, close - 1);
    if (!port.empty()) {
      if (port.front() != ':') return InvalidArgument("malformed port in url");
      port.remove_prefix(1);
    }
  } else if (size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    port = host.substr(colon + 1);
    host = host.substr(0, colon);
  }
  if (host.empty()) return InvalidArgument("url `" + std::string(url) + "` has no host");
  if (!port.empty()) {
    if (port.size() > 5) return InvalidArgument("malformed port in url");
    unsigned v = 0;
    for (char c : port) {
      if (c < '0' || c > '9') return InvalidArgument("malformed port in url");
      v = v * 10 + static_cast<unsigned>(c - '0');
    }
    if (v == 0 || v > 65535) return InvalidArgument("malformed port in url");
    out.port = static_cast<uint16_t>(v);
  }
  out.host = std::string(host);
  out.target =
      target.empty() || target.front() == '?' ? "/" + std::string(target) : std::string(target);
  return out;
}

namespace {

// The request writer, run concurrently with the response reader so that a server answering
// early (401/403/413 before reading a large body, then closing) is heard instead of failing
// the exchange with "broken pipe".
struct WriteState {
  explicit WriteState(const asio::any_io_executor& ex) : finished(ex) {
    finished.expires_at(asio::steady_timer::time_point::max());
  }
  bool done = false;
  error_code ec;
  asio::steady_timer finished;  // cancelled when the writer completes
};

asio::awaitable<void> WriteRequest(Conn& conn, std::string_view data, WriteState& state) {
  state.ec = co_await WriteAll(conn, data);
  state.done = true;
  state.finished.cancel();
}

asio::awaitable<Result<ClientResponse>> ReadResponse(Conn& conn, const ClientRequest& req,
                                                     std::chrono::steady_clock::time_point
                                                         deadline) {
  ResponseHead head;
  for (;;) {
    size_t head_size = 0;
    auto left = deadline - std::chrono::steady_clock::now();
    ReadHeadStatus st = co_await ReadHead(conn, 64 * 1024, left, left, &head_size);
    if (st == ReadHeadStatus::kTimeout) {
      co_return Error{Code::kDeadlineExceeded, "request timed out"};
    }
    if (st != ReadHeadStatus::kOk) co_return Unavailable("no valid response from server");
    ParseError perr = ParseResponseHead(conn.Buffered().substr(0, head_size), req.method, &head);
    conn.buffer.consume(head_size);
    if (perr) co_return Unavailable("malformed response: " + std::string(perr.reason));
    if (head.status >= 200 || head.status == 101) break;  // skip interim 1xx
  }
  ClientResponse resp;
  resp.status = head.status;
  resp.headers = std::move(head.headers);
  BodyReader body(head.body, head.content_length, req.max_response_bytes);
  for (;;) {
    std::string_view d;
    error_code ec = co_await body.Next(conn, &d);
    if (ec == beast::error::timeout) co_return Error{Code::kDeadlineExceeded, "request timed out"};
    if (ec == beast::http::error::body_limit) {
      co_return ResourceExhausted("response body exceeds the client's limit");
    }
    if (ec) co_return Unavailable("cannot read response body: " + ec.message());
    if (d.empty()) break;
    resp.body.append(d);
  }
  co_return resp;
}

asio::awaitable<Result<ClientResponse>> DoFetch(const ClientRequest& req, const ParsedUrl& url) {
  auto deadline = std::chrono::steady_clock::now() + req.timeout;
  auto ex = co_await asio::this_coro::executor;
  Conn conn{ex};
  error_code ec = co_await Connect(conn.stream, url.host, url.port, req.timeout);
  if (ec == beast::error::timeout) co_return Error{Code::kDeadlineExceeded, "connect timed out"};
  if (ec) co_return Unavailable("cannot connect to `" + url.authority + "`: " + ec.message());

  Headers h = req.headers;
  if (!h.Has("host")) h.Add("Host", url.authority);
  h.Remove("content-length");
  h.Remove("transfer-encoding");
  h.Set("Connection", "close");
  if (!req.body.empty() || req.method == "POST" || req.method == "PUT" || req.method == "PATCH") {
    h.Add("Content-Length", std::to_string(req.body.size()));
  }
  std::string out;
  AppendRequestHead(&out, req.method, url.target, h);
  out += req.body;
  // One deadline for the whole exchange; the write and the read run at the same time.
  conn.stream.expires_at(deadline);
  WriteState write(ex);
  asio::co_spawn(ex, WriteRequest(conn, out, write), asio::detached);
  Result<ClientResponse> result = co_await ReadResponse(conn, req, deadline);
  // Join the writer before `conn` and `out` go away. A complete response ends the exchange
  // (the request has Connection: close), so an unfinished write is abandoned.
  // Closing (not just cancelling) also fails a write the writer has yet to start, e.g. the next
  // wait of a write that found the send buffer full.
  const bool abandoned = !write.done;
  conn.Close();
  if (abandoned) {
    auto [wait_ec] = co_await write.finished.async_wait(use_nothrow);
    (void)wait_ec;
  }
  if (result) co_return result;
  // No usable response: a failed send explains it better than the read error it caused,
  // unless the read ran out of time or the write was still going.
  if (abandoned || result.error().code == Code::kDeadlineExceeded || !write.ec) {
    co_return result;
  }
  if (write.ec == beast::error::timeout) {
    co_return Error{Code::kDeadlineExceeded, "request timed out"};
  }
  co_return Unavailable("cannot send request: " + write.ec.message());
}

}  // namespace

Result<ClientResponse> Fetch(const ClientRequest& request) {
  MOAT_TRY(ParsedUrl url, ParseHttpUrl(request.url));
  asio::io_context ioc(1);
  std::optional<Result<ClientResponse>> result;
  asio::co_spawn(ioc, DoFetch(request, url), [&](std::exception_ptr e, Result<ClientResponse> r) {
    if (e) {
      result.emplace(Unavailable("request failed"));
    } else {
      result.emplace(std::move(r));
    }
  });
  ioc.run();
  if (!result) return Unavailable("request failed");
  return std::move(*result);
}

}  // namespace moat::http
