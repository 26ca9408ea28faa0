#include "e2e/fake_upstream.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <stdexcept>

#include "http/message.h"

namespace moat::e2e {
namespace {

constexpr size_t kMaxHead = 1 << 20;
constexpr size_t kMaxBody = 64 << 20;

bool ReadMore(int fd, std::string& buf) {
  char tmp[65536];
  ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
  if (n <= 0) return false;
  buf.append(tmp, static_cast<size_t>(n));
  return true;
}

void SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return;
    data.remove_prefix(static_cast<size_t>(n));
  }
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string RecordedRequest::Header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (http::IEquals(n, name)) return v;
  }
  return {};
}

size_t RecordedRequest::Count(std::string_view name) const {
  return static_cast<size_t>(std::count_if(headers.begin(), headers.end(),
                                           [&](const auto& f) { return http::IEquals(f.first, name); }));
}

FakeUpstream::FakeUpstream() {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 128) != 0) {
    throw std::runtime_error("fake upstream: cannot listen on 127.0.0.1:0");
  }
  socklen_t len = sizeof addr;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  if (::pipe(wake_pipe_) != 0) throw std::runtime_error("fake upstream: pipe failed");
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

FakeUpstream::~FakeUpstream() {
  stop_.store(true);
  char c = 'x';
  (void)!::write(wake_pipe_[1], &c, 1);
  acceptor_.join();
  {
    std::lock_guard lock(mu_);
    for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
  }
  for (auto& t : workers_) t.join();
  ::close(listen_fd_);
  ::close(wake_pipe_[0]);
  ::close(wake_pipe_[1]);
}

std::vector<RecordedRequest> FakeUpstream::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

void FakeUpstream::SetResponse(const std::string& path, std::string content_type,
                               std::string body) {
  std::lock_guard lock(mu_);
  fixed_[path] = {std::move(content_type), std::move(body)};
}

void FakeUpstream::AcceptLoop() {
  while (!stop_.load()) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_pipe_[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) continue;
    if (fds[1].revents) return;
    if (!(fds[0].revents & POLLIN)) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    timeval tv{10, 0};  // a stuck peer never blocks a worker for long
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::lock_guard lock(mu_);
    open_fds_.push_back(fd);
    workers_.emplace_back([this, fd] { Serve(fd); });
  }
}

void FakeUpstream::Serve(int fd) {
  std::string buf;
  size_t end;
  while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
    if (buf.size() > kMaxHead || !ReadMore(fd, buf)) {
      ::close(fd);
      return;
    }
  }
  RecordedRequest r;
  std::string_view head(buf.data(), end);
  size_t line_end = head.find("\r\n");
  std::string_view request_line = head.substr(0, line_end);
  size_t sp1 = request_line.find(' ');
  size_t sp2 = request_line.rfind(' ');
  r.method = std::string(request_line.substr(0, sp1));
  r.target = std::string(request_line.substr(sp1 + 1, sp2 - sp1 - 1));
  std::string_view rest = line_end == std::string_view::npos ? "" : head.substr(line_end + 2);
  while (!rest.empty()) {
    size_t e = rest.find("\r\n");
    std::string_view field = rest.substr(0, e);
    size_t colon = field.find(':');
    if (colon != std::string_view::npos) {
      r.headers.emplace_back(std::string(field.substr(0, colon)),
                             std::string(Trim(field.substr(colon + 1))));
    }
    if (e == std::string_view::npos) break;
    rest.remove_prefix(e + 2);
  }
  std::string body = buf.substr(end + 4);
  std::string cl = r.Header("content-length");
  if (!cl.empty()) {
    size_t want = std::strtoull(cl.c_str(), nullptr, 10);
    while (body.size() < want && body.size() <= kMaxBody && ReadMore(fd, body)) {
    }
    body.resize(std::min(body.size(), want));
  } else if (http::HasToken(r.Header("transfer-encoding"), "chunked")) {
    std::string decoded;
    size_t pos = 0;
    for (;;) {
      size_t crlf;
      while ((crlf = body.find("\r\n", pos)) == std::string::npos) {
        if (body.size() > kMaxBody || !ReadMore(fd, body)) break;
      }
      if (crlf == std::string::npos) break;
      size_t size = std::strtoull(body.substr(pos, crlf - pos).c_str(), nullptr, 16);
      pos = crlf + 2;
      if (size == 0) break;
      while (body.size() < pos + size + 2) {
        if (!ReadMore(fd, body)) break;
      }
      if (body.size() < pos + size) break;
      decoded += body.substr(pos, size);
      pos += size + 2;
    }
    body = std::move(decoded);
  }
  r.body = body;

  std::string type = "text/plain";
  std::string answer;
  {
    std::lock_guard lock(mu_);
    std::string path = r.target.substr(0, r.target.find('?'));
    if (auto it = fixed_.find(path); it != fixed_.end()) {
      type = it->second.first;
      answer = it->second.second;
    } else {
      answer = "upstream got " + r.method + " " + r.target + ": " + r.body;
    }
    requests_.push_back(std::move(r));
  }
  SendAll(fd, "HTTP/1.1 200 OK\r\nContent-Type: " + type +
                  "\r\nContent-Length: " + std::to_string(answer.size()) +
                  "\r\nConnection: close\r\n\r\n" + answer);
  ::shutdown(fd, SHUT_WR);
  // Drain until the peer closes so the close is clean (no RST on unread bytes).
  std::string ignored;
  while (ignored.size() < kMaxHead && ReadMore(fd, ignored)) {
  }
  std::lock_guard lock(mu_);
  open_fds_.erase(std::remove(open_fds_.begin(), open_fds_.end(), fd), open_fds_.end());
  ::close(fd);
}

}  // namespace moat::e2e
