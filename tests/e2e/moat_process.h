// End-to-end test harness: runs the real `moat serve` binary on free loopback ports with a
// fresh temporary home, and talks to it the way Google's clients do.
//
//   auto moat = MoatProcess::Start(MOAT_BIN);          // waits for the one-line ready message
//   auto sa = moat->CreateServiceAccount("p", "caller");
//   auto key = moat->CreateKey("p", *sa);              // a Google key file
//   auto svc = moat->CreateService("p", "us-central1", "hello", upstream.url());
//   moat->AddBinding(svc->path, "serviceAccount:" + *sa, "roles/run.invoker");
//   auto token = moat->IdTokenFor(*key, svc->uri);     // POST /token, JWT-bearer assertion
//   auto r = moat->Gateway(svc->uri, {.headers = {{"Authorization", "Bearer " + *token}}});
//
// The ready line ({"gateway","api","home"}) is read from a stdout pipe with poll() and a
// deadline (no sleeps). The server's stderr goes to a file in the temp dir (StderrTail() for
// failure messages). Stop() (also the destructor) sends SIGTERM, waits up to 10 s, then
// SIGKILL, and removes the temp dir.
//
// Test-only; not thread-safe (one test thread drives it).
#pragma once

#include <sys/types.h>

#include <boost/json/value.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "http/client.h"

namespace moat::e2e {

// A Google service-account key file (GOOGLE.md §6.3), the fields the tests use.
struct KeyFile {
  std::string json;  // the file as written
  std::string client_email;
  std::string private_key_id;
  std::string private_key;  // PKCS#8 PEM
};
Result<KeyFile> ParseKeyFile(std::string_view json);

struct ApiResponse {
  int status = 0;
  std::string body;
  boost::json::value json;  // null when the body is not JSON
  http::Headers headers;
  int64_t revision = 0;  // X-Moat-Revision, 0 when absent

  // "METHOD PATH → STATUS BODY" for assertion messages.
  std::string request_line;
  std::string Describe() const;
  // json.at(path...) helpers that return "" / nullptr instead of throwing.
  std::string Str(std::initializer_list<std::string_view> path) const;
};

// A created Cloud Run service.
struct Service {
  std::string name;  // projects/P/locations/R/services/S
  std::string path;  // /v2/projects/P/locations/R/services/S (the API path)
  std::string uri;   // http://S-HASH.R.run.localhost:PORT
  int64_t revision = 0;
};

struct GatewayRequest {
  std::string method = "GET";
  std::string path = "/";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  int64_t min_revision = 0;  // > 0: sends X-Moat-Min-Revision
};

class MoatProcess {
 public:
  // Starts `binary serve --home TMP/home --gateway-addr 127.0.0.1:0 --api-addr 127.0.0.1:0`.
  static Result<std::unique_ptr<MoatProcess>> Start(const std::string& binary,
                                                    std::vector<std::string> extra_args = {});
  ~MoatProcess();
  MoatProcess(const MoatProcess&) = delete;
  MoatProcess& operator=(const MoatProcess&) = delete;

  void Stop();
  bool Running();

  const std::string& gateway() const { return gateway_; }  // http://127.0.0.1:P
  const std::string& api() const { return api_; }          // http://127.0.0.1:Q
  const std::string& home() const { return home_; }
  uint16_t gateway_port() const { return gateway_port_; }
  const KeyFile& admin_key() const { return admin_key_; }
  std::string StderrTail(size_t max_bytes = 6000) const;

  // A self-signed JWT as Google's Node client sends it: header kid = private_key_id, claims
  // {iss = sub = client_email, aud, iat = now, exp = now + 3600}, RS256.
  std::string SelfSignedJwt(const KeyFile& key, const std::string& aud) const;
  // SelfSignedJwt(admin key, API base + "/").
  std::string AdminToken() const;

  // Calls the API. `token`: nullopt → the admin's self-signed JWT; "" → no Authorization.
  ApiResponse Api(std::string_view method, const std::string& path, const std::string& body = "",
                  std::optional<std::string> token = std::nullopt,
                  const std::vector<std::pair<std::string, std::string>>& headers = {}) const;

  // POST /token with a JWT-bearer assertion {iss, aud: API + "/token", target_audience, iat,
  // exp} → id_token.
  Result<std::string> IdTokenFor(const KeyFile& key, const std::string& audience) const;
  // The same with a `scope` claim → access_token.
  Result<std::string> AccessTokenFor(const KeyFile& key) const;

  // IAM v1: creates projects/P/serviceAccounts/{account_id}; returns its email.
  Result<std::string> CreateServiceAccount(const std::string& project,
                                           const std::string& account_id) const;
  // IAM v1: a new key of the account; returns the decoded key file.
  Result<KeyFile> CreateKey(const std::string& project, const std::string& email) const;
  // Run v2: creates a service whose template is `template_json` (an object's JSON text);
  // `extra_fields` are added at the top level of the Service (e.g. "\"invokerIamDisabled\":true").
  Result<Service> CreateService(const std::string& project, const std::string& region,
                                const std::string& id, const std::string& template_json,
                                const std::string& extra_fields = "") const;
  // A service whose template.upstream is `upstream_url`.
  Result<Service> CreateUpstreamService(const std::string& project, const std::string& region,
                                        const std::string& id,
                                        const std::string& upstream_url) const;
  // POST {resource_path}:addIamPolicyBinding / :removeIamPolicyBinding.
  ApiResponse AddBinding(const std::string& resource_path, const std::string& member,
                         const std::string& role, const std::string& condition_json = "") const;
  ApiResponse RemoveBinding(const std::string& resource_path, const std::string& member,
                            const std::string& role) const;

  // A request through the gateway to `service_url`'s host: connects to 127.0.0.1:gateway port
  // and sends the URL's authority as Host (Service URLs are *.localhost names nothing here
  // resolves).
  Result<http::ClientResponse> Gateway(const std::string& service_url,
                                       const GatewayRequest& request = {}) const;

 private:
  MoatProcess() = default;

  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string temp_dir_;
  std::string stderr_path_;
  std::string gateway_, api_, home_;
  uint16_t gateway_port_ = 0;
  KeyFile admin_key_;
};

// A loopback port nothing listens on (bound, then released).
uint16_t ClosedLoopbackPort();

// The whole contents of a file ("" when it cannot be read).
std::string ReadFileOrEmpty(const std::string& path);

// Running the `moat` CLI from a test: its exit code and what it printed.
struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
  std::string Describe() const;  // for assertion messages
};
// Starts `binary ARGS…` with exactly `env` as its environment, stdin from /dev/null and
// stdout/stderr into DIR/TAG.out and DIR/TAG.err; returns its pid (-1 if it did not start).
pid_t SpawnCli(const std::string& binary, const std::vector<std::string>& args,
               const std::vector<std::string>& env, const std::string& dir,
               const std::string& tag);
// Waits for a SpawnCli process to exit and collects its output.
CliResult WaitCli(pid_t pid, const std::string& dir, const std::string& tag);

}  // namespace moat::e2e
