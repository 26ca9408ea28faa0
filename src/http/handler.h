// The per-request seam between the Server (accept loop, keep-alive, head limits, framing
// checks, request ids) and what a listener does with a request: a Router (buffered JSON-API
// handlers, router.h) or the gateway's streaming proxy.
//
// A Handler runs on the Server's worker threads. Each connection lives on exactly one worker
// (Exchange::worker) for its whole life, so per-worker state indexed by it needs no lock.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <string>

#include "http/message.h"
#include "http/stream.h"

namespace moat::http {

// One request on a server connection: its validated head, the connection (for the body and
// the response) and per-request metadata.
class Exchange {
 public:
  Exchange(RequestHead& head, Conn& conn, std::string remote_addr, size_t worker)
      : head(head),
        conn(conn),
        body(head.body, head.content_length),
        remote_addr(std::move(remote_addr)),
        worker(worker) {}

  RequestHead& head;
  Conn& conn;
  BodyReader body;          // the request body, in the head's framing
  std::string request_id;   // 16 hex digits, sent back as X-Request-Id
  TraceparentValue traceparent;  // the client's if valid, else a new one
  std::string remote_addr;  // "ip:port" of the peer
  size_t worker = 0;        // index of the worker thread, < Server::threads()
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  int status = 0;  // status of the final response written (for logs)
  bool continue_sent = false;

  // Writes a complete buffered response: adds X-Request-Id, Content-Length (from the body)
  // and `Connection: close` when !keep_alive. Returns false on an I/O error.
  asio::awaitable<bool> WriteResponse(const Response& r, bool keep_alive);
  // Sends "100 Continue" once, if the client asked for it. Returns false on an I/O error.
  asio::awaitable<bool> SendContinue();
  // Reads the whole body into *out. Returns 0 on success, 413 if it exceeds `max_bytes`
  // (checked against Content-Length before reading anything), 400 on bad chunked framing,
  // -1 on an I/O error or timeout.
  asio::awaitable<int> ReadFullBody(size_t max_bytes, std::string* out);
};

class Handler {
 public:
  virtual ~Handler() = default;
  // Called once by Server::Start before any request, with the number of worker threads.
  virtual void Attach(size_t /*workers*/) {}
  // Handles one request and writes exactly one final response. Returns true if the
  // connection may carry another request (the Server also requires the request body to have
  // been read completely and the client to allow keep-alive). Must not throw on bad input;
  // an exception closes the connection and is logged.
  virtual asio::awaitable<bool> Handle(Exchange& ex) = 0;
  // Called on worker `worker`'s thread during Server::Stop after its connections have ended,
  // to release per-worker I/O objects (e.g. pooled upstream connections).
  virtual void OnWorkerStop(size_t /*worker*/) {}
};

}  // namespace moat::http
