// An HTTP/1.1 listener: binds HOST:PORT, runs N worker threads (one io_context each), accepts
// on a coroutine and hands each connection to one worker for its whole life. Per connection:
// keep-alive loop, idle and header-read deadlines (slowloris), head size limit (431), strict
// framing validation (framing.h; 400/505/501/417) before the Handler sees anything, a
// request id and traceparent per request.
//
// Thread-safety: Start/Stop/port from one controlling thread. The Handler is called on the
// worker threads. Stop() is graceful: stop accepting, wake idle keep-alive connections,
// let in-flight requests finish until `shutdown_grace`, then close what is left.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/error.h"

namespace moat::http {

class Handler;

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;                               // 0: an ephemeral port, see Server::port()
  // A socket already bound and listening (e.g. on an ephemeral port whose number had to be
  // known before the server starts): Start adopts it (and owns it from then on) instead of
  // binding host:port. -1: none.
  int listen_fd = -1;
  int threads = 0;  // 0: the CPUs this process may run on (its affinity mask, e.g. taskset)
  size_t max_head_bytes = 64 * 1024;               // request line + headers; larger → 431
  size_t max_header_fields = 100;                  // more → 431
  std::chrono::milliseconds idle_timeout{60'000};  // keep-alive wait for the next request
  std::chrono::milliseconds head_timeout{10'000};  // first byte → end of head
  std::chrono::milliseconds shutdown_grace{10'000};
  // Closing while the client may still be sending (a refused or unread request body, a
  // malformed head): the server sends FIN and reads and discards for up to this long before
  // closing, so that the client reads the answer instead of a reset (which would also drop
  // the answer's unsent bytes). 0: close at once.
  std::chrono::milliseconds lingering_close{5'000};
  std::string name = "http";  // for log lines
};

class Server {
 public:
  Server(ServerOptions options, std::shared_ptr<Handler> handler);
  ~Server();  // Stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and starts the workers. Errors: kUnavailable if the address cannot be bound,
  // kInvalidArgument for a bad host.
  Status Start();
  // The bound port (after Start).
  uint16_t port() const;
  size_t threads() const;
  // Graceful stop (see above); idempotent; blocks until the workers have exited.
  void Stop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moat::http
