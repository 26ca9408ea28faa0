// Test helpers: a blocking raw-socket HTTP client that can send arbitrary bytes (malformed
// heads, smuggling attempts) and read responses with the production response parser.
// Test-only; never linked into a binary.
#pragma once

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <optional>
#include <string>

#include "http/framing.h"

namespace moat::http::testing {

struct RawResponse {
  ResponseHead head;
  std::string body;
};

class RawClient {
 public:
  explicit RawClient(uint16_t port) : socket_(ioc_) {
    socket_.connect({boost::asio::ip::make_address("127.0.0.1"), port});
  }
  void Send(std::string_view bytes) {
    boost::asio::write(socket_, boost::asio::buffer(bytes.data(), bytes.size()));
  }
  // Reads one response (Content-Length, chunked or until-close bodies). nullopt when the
  // server closed the connection before a complete response.
  std::optional<RawResponse> Read(std::string_view method = "GET") {
    for (;;) {
      size_t end = buf_.find("\r\n\r\n");
      if (end != std::string::npos) {
        RawResponse r;
        if (ParseResponseHead(std::string_view(buf_).substr(0, end + 4), method, &r.head)) {
          return std::nullopt;
        }
        buf_.erase(0, end + 4);
        if (r.head.status < 200 && r.head.status != 101) continue;
        if (!ReadBody(r)) return std::nullopt;
        return r;
      }
      if (!Fill()) return std::nullopt;
    }
  }
  // True when the server closes the connection (reads until EOF, discarding data).
  bool WaitClosed() {
    while (Fill()) {
    }
    return true;
  }
  std::string& buffered() { return buf_; }
  boost::asio::ip::tcp::socket& socket() { return socket_; }

 private:
  bool Fill() {
    char tmp[65536];
    boost::system::error_code ec;
    size_t n = socket_.read_some(boost::asio::buffer(tmp), ec);
    if (ec) return false;
    buf_.append(tmp, n);
    return true;
  }
  bool ReadBody(RawResponse& r) {
    switch (r.head.body) {
      case BodyKind::kNone:
        return true;
      case BodyKind::kLength:
        while (buf_.size() < r.head.content_length) {
          if (!Fill()) return false;
        }
        r.body = buf_.substr(0, r.head.content_length);
        buf_.erase(0, r.head.content_length);
        return true;
      case BodyKind::kUntilClose:
        while (Fill()) {
        }
        r.body = std::move(buf_);
        buf_.clear();
        return true;
      case BodyKind::kChunked: {
        ChunkedDecoder d;
        for (;;) {
          std::string_view view = buf_;
          while (!view.empty() && !d.done()) {
            ChunkedDecoder::Step s = d.Feed(view);
            if (d.failed()) return false;
            r.body.append(s.data);
            view.remove_prefix(s.consumed);
          }
          buf_ = std::string(view);
          if (d.done()) return true;
          if (!Fill()) return false;
        }
      }
    }
    return false;
  }

  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::socket socket_;
  std::string buf_;
};

}  // namespace moat::http::testing
