#include "e2e/moat_process.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/base64.h"
#include "common/json.h"
#include "crypto/jwt.h"
#include "crypto/keys.h"

extern char** environ;

namespace moat::e2e {
namespace {

namespace bj = boost::json;
using SteadyClock = std::chrono::steady_clock;

constexpr auto kReadyTimeout = std::chrono::seconds(60);
constexpr auto kStopGrace = std::chrono::seconds(10);

std::string ReadFile(const std::string& path) { return ReadFileOrEmpty(path); }

int64_t NowUnix() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string FormEncode(std::string_view s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

// Waits for `pid` to exit for at most `timeout` without sleeping (pidfd + poll); true if it
// exited (and was reaped).
bool WaitExit(pid_t pid, std::chrono::milliseconds timeout) {
  int status = 0;
  if (::waitpid(pid, &status, WNOHANG) == pid) return true;
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd >= 0) {
    pollfd p{pidfd, POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
    ::close(pidfd);
    if (n > 0) return ::waitpid(pid, &status, 0) == pid;
    return false;
  }
  // No pidfd (old kernel): poll waitpid on a short period.
  auto deadline = SteadyClock::now() + timeout;
  while (SteadyClock::now() < deadline) {
    if (::waitpid(pid, &status, WNOHANG) == pid) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

}  // namespace

Result<KeyFile> ParseKeyFile(std::string_view text) {
  MOAT_TRY(bj::object o, json::ParseObject(text, "key file"));
  KeyFile k;
  k.json = std::string(text);
  MOAT_TRY(auto email, json::OptString(o, "client_email"));
  MOAT_TRY(auto kid, json::OptString(o, "private_key_id"));
  MOAT_TRY(auto pem, json::OptString(o, "private_key"));
  if (!email || !kid || !pem) {
    return InvalidArgument("key file lacks client_email, private_key_id or private_key");
  }
  k.client_email = *email;
  k.private_key_id = *kid;
  k.private_key = *pem;
  return k;
}

std::string ApiResponse::Describe() const {
  return request_line + " -> " + std::to_string(status) + " " + body;
}

std::string ApiResponse::Str(std::initializer_list<std::string_view> path) const {
  const bj::value* v = &json;
  for (std::string_view p : path) {
    if (!v->is_object()) return {};
    v = v->as_object().if_contains(p);
    if (!v) return {};
  }
  return v->is_string() ? std::string(v->as_string()) : std::string();
}

Result<std::unique_ptr<MoatProcess>> MoatProcess::Start(const std::string& binary,
                                                        std::vector<std::string> extra_args) {
  std::unique_ptr<MoatProcess> p(new MoatProcess());
  char tmpl[] = "/tmp/moat-e2e-XXXXXX";
  if (!::mkdtemp(tmpl)) return Internal("cannot create a temp dir");
  p->temp_dir_ = tmpl;
  p->stderr_path_ = p->temp_dir_ + "/stderr.log";
  std::string home = p->temp_dir_ + "/home";

  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return Internal("pipe failed");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, pipe_fds[1], 1);
  posix_spawn_file_actions_addopen(&fa, 2, p->stderr_path_.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);

  std::vector<std::string> args = {binary,       "serve",          "--home",
                                   home,         "--gateway-addr", "127.0.0.1:0",
                                   "--api-addr", "127.0.0.1:0"};
  for (auto& a : extra_args) args.push_back(std::move(a));
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  // A fresh home gets its own master key: drop the caller's MOAT_* settings.
  std::vector<std::string> env_store;
  for (char** e = environ; *e; ++e) {
    std::string_view kv(*e);
    if (kv.starts_with("MOAT_MASTER_KEY=") || kv.starts_with("MOAT_HOME=")) continue;
    env_store.emplace_back(kv);
  }
  std::vector<char*> envp;
  for (auto& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);

  int rc = ::posix_spawn(&p->pid_, binary.c_str(), &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  ::close(pipe_fds[1]);
  p->stdout_fd_ = pipe_fds[0];
  if (rc != 0) {
    p->pid_ = -1;
    return Unavailable("cannot start `" + binary + "`: " + std::strerror(rc));
  }

  // The ready line, with a deadline.
  std::string line;
  auto deadline = SteadyClock::now() + kReadyTimeout;
  for (;;) {
    size_t nl = line.find('\n');
    if (nl != std::string::npos) {
      line.resize(nl);
      break;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                      SteadyClock::now());
    if (left.count() <= 0) {
      return Unavailable("moat serve printed no ready line within 60 s; stderr:\n" +
                         p->StderrTail());
    }
    pollfd pfd{p->stdout_fd_, POLLIN, 0};
    int n = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
    char buf[4096];
    ssize_t got = ::read(p->stdout_fd_, buf, sizeof buf);
    if (got <= 0) {
      return Unavailable("moat serve exited before it was ready; stderr:\n" + p->StderrTail());
    }
    line.append(buf, static_cast<size_t>(got));
  }
  auto ready = json::ParseObject(line, "ready line");
  if (!ready) return Internal("bad ready line `" + line + "`");
  auto gw = json::OptString(*ready, "gateway");
  auto api = json::OptString(*ready, "api");
  auto h = json::OptString(*ready, "home");
  if (!gw || !*gw || !api || !*api || !h || !*h) {
    return Internal("ready line lacks gateway/api/home: `" + line + "`");
  }
  p->gateway_ = **gw;
  p->api_ = **api;
  p->home_ = **h;
  auto gw_url = http::ParseHttpUrl(p->gateway_);
  if (!gw_url) return Internal("ready line has a bad gateway URL `" + p->gateway_ + "`");
  p->gateway_port_ = gw_url->port;
  auto key = ParseKeyFile(ReadFile(p->home_ + "/admin-key.json"));
  if (!key) return Internal("cannot read admin-key.json: " + key.error().message);
  p->admin_key_ = std::move(*key);
  return p;
}

MoatProcess::~MoatProcess() { Stop(); }

bool MoatProcess::Running() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

void MoatProcess::Stop() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    if (!WaitExit(pid_, kStopGrace)) {
      ::kill(pid_, SIGKILL);
      WaitExit(pid_, std::chrono::seconds(10));
    }
    pid_ = -1;
  }
  if (stdout_fd_ >= 0) {
    ::close(stdout_fd_);
    stdout_fd_ = -1;
  }
  if (!temp_dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(temp_dir_, ec);
    temp_dir_.clear();
  }
}

std::string MoatProcess::StderrTail(size_t max_bytes) const {
  std::string all = ReadFile(stderr_path_);
  if (all.size() > max_bytes) all = all.substr(all.size() - max_bytes);
  return all;
}

std::string MoatProcess::SelfSignedJwt(const KeyFile& key, const std::string& aud) const {
  auto pk = crypto::PrivateKey::FromPem(key.private_key);
  if (!pk) return "unparseable-key";
  int64_t now = NowUnix();
  bj::object claims;
  claims["iss"] = key.client_email;
  claims["sub"] = key.client_email;
  claims["aud"] = aud;
  claims["iat"] = now;
  claims["exp"] = now + 3600;
  auto jwt = crypto::EncodeJwt(crypto::JwsAlg::kRs256, *pk, key.private_key_id, claims);
  return jwt ? *jwt : std::string("unsignable");
}

std::string MoatProcess::AdminToken() const { return SelfSignedJwt(admin_key_, api_ + "/"); }

ApiResponse MoatProcess::Api(std::string_view method, const std::string& path,
                             const std::string& body, std::optional<std::string> token,
                             const std::vector<std::pair<std::string, std::string>>& headers) const {
  ApiResponse out;
  out.request_line = std::string(method) + " " + path + (body.empty() ? "" : " " + body);
  http::ClientRequest req;
  req.method = std::string(method);
  req.url = api_ + path;
  std::string bearer = token ? *token : AdminToken();
  if (!bearer.empty()) req.headers.Add("Authorization", "Bearer " + bearer);
  if (!body.empty()) req.headers.Add("Content-Type", "application/json");
  for (const auto& [n, v] : headers) req.headers.Add(n, v);
  req.body = body;
  auto r = http::Fetch(req);
  if (!r) {
    out.status = -1;
    out.body = "fetch failed: " + r.error().message;
    return out;
  }
  out.status = r->status;
  out.body = r->body;
  out.headers = r->headers;
  if (auto v = json::Parse(out.body, "response")) out.json = std::move(*v);
  std::string_view rev = out.headers.Get("X-Moat-Revision");
  if (!rev.empty()) out.revision = std::atoll(std::string(rev).c_str());
  return out;
}

namespace {

Result<std::string> TokenRequest(const std::string& api, const KeyFile& key, bj::object claims,
                                 std::string_view field) {
  auto pk = crypto::PrivateKey::FromPem(key.private_key);
  if (!pk) return pk.error();
  int64_t now = NowUnix();
  claims["iss"] = key.client_email;
  claims["aud"] = api + "/token";
  claims["iat"] = now;
  claims["exp"] = now + 3600;
  MOAT_TRY(std::string assertion,
           crypto::EncodeJwt(crypto::JwsAlg::kRs256, *pk, key.private_key_id, claims));
  http::ClientRequest req;
  req.method = "POST";
  req.url = api + "/token";
  req.headers.Add("Content-Type", "application/x-www-form-urlencoded");
  req.body = "grant_type=" + FormEncode("urn:ietf:params:oauth:grant-type:jwt-bearer") +
             "&assertion=" + FormEncode(assertion);
  MOAT_TRY(http::ClientResponse r, http::Fetch(req));
  if (r.status != 200) {
    return Unavailable("POST /token -> " + std::to_string(r.status) + " " + r.body);
  }
  MOAT_TRY(bj::object o, json::ParseObject(r.body, "token reply"));
  MOAT_TRY(auto token, json::OptString(o, field));
  if (!token || token->empty()) {
    return Internal("POST /token answered no `" + std::string(field) + "`: " + r.body);
  }
  return *token;
}

}  // namespace

Result<std::string> MoatProcess::IdTokenFor(const KeyFile& key, const std::string& audience) const {
  bj::object claims;
  claims["target_audience"] = audience;
  return TokenRequest(api_, key, std::move(claims), "id_token");
}

Result<std::string> MoatProcess::AccessTokenFor(const KeyFile& key) const {
  bj::object claims;
  claims["scope"] = "https://www.googleapis.com/auth/cloud-platform";
  return TokenRequest(api_, key, std::move(claims), "access_token");
}

Result<std::string> MoatProcess::CreateServiceAccount(const std::string& project,
                                                      const std::string& account_id) const {
  ApiResponse r = Api("POST", "/v1/projects/" + project + "/serviceAccounts",
                      "{\"accountId\":\"" + account_id + "\"}");
  if (r.status != 200) return Internal(r.Describe());
  std::string email = r.Str({"email"});
  if (email.empty()) return Internal("no email in " + r.Describe());
  return email;
}

Result<KeyFile> MoatProcess::CreateKey(const std::string& project, const std::string& email) const {
  ApiResponse r = Api("POST", "/v1/projects/" + project + "/serviceAccounts/" + email + "/keys", "{}");
  if (r.status != 200) return Internal(r.Describe());
  auto decoded = Base64Decode(r.Str({"privateKeyData"}));
  if (!decoded) return Internal("privateKeyData is not base64: " + r.Describe());
  return ParseKeyFile(*decoded);
}

Result<Service> MoatProcess::CreateService(const std::string& project, const std::string& region,
                                           const std::string& id, const std::string& template_json,
                                           const std::string& extra_fields) const {
  std::string parent = "/v2/projects/" + project + "/locations/" + region + "/services";
  std::string body = "{\"template\":" + template_json +
                     (extra_fields.empty() ? "" : "," + extra_fields) + "}";
  ApiResponse r = Api("POST", parent + "?serviceId=" + id, body);
  if (r.status != 200) return Internal(r.Describe());
  Service s;
  s.name = r.Str({"response", "name"});
  s.uri = r.Str({"response", "uri"});
  s.path = parent + "/" + id;
  s.revision = r.revision;
  if (s.uri.empty() || s.name.empty()) return Internal("no response.uri/name in " + r.Describe());
  return s;
}

Result<Service> MoatProcess::CreateUpstreamService(const std::string& project,
                                                   const std::string& region, const std::string& id,
                                                   const std::string& upstream_url) const {
  return CreateService(project, region, id, "{\"upstream\":\"" + upstream_url + "\"}");
}

ApiResponse MoatProcess::AddBinding(const std::string& resource_path, const std::string& member,
                                    const std::string& role,
                                    const std::string& condition_json) const {
  bj::object body;
  body["member"] = member;
  body["role"] = role;
  std::string text = json::Serialize(body);
  if (!condition_json.empty()) {
    text.pop_back();
    text += ",\"condition\":" + condition_json + "}";
  }
  return Api("POST", resource_path + ":addIamPolicyBinding", text);
}

ApiResponse MoatProcess::RemoveBinding(const std::string& resource_path, const std::string& member,
                                       const std::string& role) const {
  bj::object body;
  body["member"] = member;
  body["role"] = role;
  return Api("POST", resource_path + ":removeIamPolicyBinding", json::Serialize(body));
}

Result<http::ClientResponse> MoatProcess::Gateway(const std::string& service_url,
                                                  const GatewayRequest& request) const {
  MOAT_TRY(http::ParsedUrl url, http::ParseHttpUrl(service_url));
  http::ClientRequest req;
  req.method = request.method;
  req.url = gateway_ + request.path;
  req.headers.Add("Host", url.authority);
  for (const auto& [n, v] : request.headers) req.headers.Add(n, v);
  if (request.min_revision > 0) {
    req.headers.Add("X-Moat-Min-Revision", std::to_string(request.min_revision));
  }
  req.body = request.body;
  return http::Fetch(req);
}

uint16_t ClosedLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string CliResult::Describe() const {
  return "exit " + std::to_string(exit_code) + "\nstdout: " + out + "\nstderr: " + err;
}

pid_t SpawnCli(const std::string& binary, const std::vector<std::string>& args,
               const std::vector<std::string>& env, const std::string& dir,
               const std::string& tag) {
  std::vector<std::string> argv_s = {binary};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s = env;
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  std::string out = dir + "/" + tag + ".out", err = dir + "/" + tag + ".err";
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, binary.c_str(), &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

CliResult WaitCli(pid_t pid, const std::string& dir, const std::string& tag) {
  CliResult r;
  if (pid <= 0) {
    r.err = "the process did not start";
    return r;
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = ReadFileOrEmpty(dir + "/" + tag + ".out");
  r.err = ReadFileOrEmpty(dir + "/" + tag + ".err");
  return r;
}

}  // namespace moat::e2e
