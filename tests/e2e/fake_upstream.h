// A recording HTTP/1.1 upstream for end-to-end tests: listens on 127.0.0.1:0, answers every
// request (one per connection, `Connection: close`) and records what reached it (method,
// target, header fields in order, body), so tests can assert exactly what the gateway
// forwarded — or that nothing was.
//
// Default answer: 200 text/plain "upstream got METHOD TARGET: BODY". SetResponse(path, …)
// fixes the answer for one path (e.g. a JWKS document).
//
// Thread-safety: requests()/SetResponse from the test thread while the server threads run.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace moat::e2e {

struct RecordedRequest {
  std::string method;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  // The first value of `name` (case-insensitive), "" if absent.
  std::string Header(std::string_view name) const;
  size_t Count(std::string_view name) const;
};

class FakeUpstream {
 public:
  FakeUpstream();
  ~FakeUpstream();
  FakeUpstream(const FakeUpstream&) = delete;
  FakeUpstream& operator=(const FakeUpstream&) = delete;

  uint16_t port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<RecordedRequest> requests() const;
  void SetResponse(const std::string& path, std::string content_type, std::string body);

 private:
  void AcceptLoop();
  void Serve(int fd);

  int listen_fd_ = -1;
  int wake_pipe_[2] = {-1, -1};
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::vector<RecordedRequest> requests_;
  std::map<std::string, std::pair<std::string, std::string>> fixed_;  // path → (type, body)
  std::vector<int> open_fds_;
  std::vector<std::thread> workers_;
  std::thread acceptor_;
};

}  // namespace moat::e2e
