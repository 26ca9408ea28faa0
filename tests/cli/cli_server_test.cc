// The `moat` CLI (a child process) against a real `moat serve` on free loopback ports:
// --impersonate-service-account with and without roles/iam.serviceAccountTokenCreator,
// `auth print-identity-token` for an impersonated account, `run deploy --source DIR`, the
// local proxy (impersonated, with the gateway's request id relayed for `logging explain`) and
// the on-disk token cache. Each test starts its own server and config directory.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/base64.h"
#include "e2e/fake_upstream.h"
#include "e2e/moat_process.h"
#include "http/client.h"

namespace moat::cli_test {
namespace {

using e2e::FakeUpstream;
using e2e::GatewayRequest;
using e2e::MoatProcess;

constexpr char kProject[] = "cli-p";
constexpr char kRegion[] = "us-central1";

using e2e::CliResult;

std::string Slurp(const std::string& path) { return e2e::ReadFileOrEmpty(path); }
uint16_t FreePort() { return e2e::ClosedLoopbackPort(); }

// The claims of a compact JWS (empty object when unreadable).
boost::json::object Claims(const std::string& jwt) {
  size_t a = jwt.find('.'), b = jwt.rfind('.');
  if (a == std::string::npos || b == a) return {};
  auto text = Base64UrlDecode(jwt.substr(a + 1, b - a - 1));
  boost::system::error_code ec;
  auto v = boost::json::parse(text.value_or(""), ec);
  return !ec && v.is_object() ? v.as_object() : boost::json::object{};
}

// A JSON value as text: strings unquoted.
std::string S(const boost::json::value& v) {
  return v.is_string() ? std::string(v.as_string()) : boost::json::serialize(v);
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

class CliServer : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = MoatProcess::Start(MOAT_BIN);
    ASSERT_TRUE(m) << m.error().message;
    moat_ = std::move(*m);
    dir_ = moat_->home() + "/../cli-test";
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    for (pid_t pid : children_) {
      ::kill(pid, SIGTERM);
      int status = 0;
      ::waitpid(pid, &status, 0);
    }
    if (HasFailure() && moat_) std::cerr << "---- moat serve stderr ----\n" << moat_->StderrTail();
    moat_.reset();
  }

  // MOAT_HOME makes the bootstrap admin the fallback identity; an activated account wins.
  std::vector<std::string> Env() const {
    return {"MOAT_HOME=" + moat_->home(), "MOAT_API_ENDPOINT=" + moat_->api(),
            "MOAT_CONFIG=" + dir_ + "/config", "PATH=/usr/bin:/bin", "HOME=" + dir_};
  }

  pid_t Spawn(const std::vector<std::string>& args, const std::string& tag) {
    pid_t pid = e2e::SpawnCli(MOAT_BIN, args, Env(), dir_, tag);
    EXPECT_GT(pid, 0);
    return pid;
  }

  CliResult Run(const std::vector<std::string>& args) {
    std::string tag = "run" + std::to_string(++runs_);
    return e2e::WaitCli(Spawn(args, tag), dir_, tag);
  }

  // Runs until `done` holds (bounded; for effects that land asynchronously: audit entries,
  // a command service starting).
  template <class Pred>
  CliResult RunUntil(const std::vector<std::string>& args, Pred done) {
    CliResult r;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    do {
      r = Run(args);
      if (done(r)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // poll interval
    } while (std::chrono::steady_clock::now() < deadline);
    return r;
  }

  // A service account with a key, activated as the CLI's account.
  std::string ActivateNewAccount(const std::string& id) {
    auto email = moat_->CreateServiceAccount(kProject, id);
    EXPECT_TRUE(email) << email.error().message;
    if (!email) return "";
    auto key = moat_->CreateKey(kProject, *email);
    EXPECT_TRUE(key) << key.error().message;
    if (!key) return "";
    std::string path = dir_ + "/" + id + "-key.json";
    std::ofstream(path) << key->json;
    CliResult r = Run({"auth", "activate-service-account", "--key-file=" + path});
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    return *email;
  }

  static std::string SaPath(const std::string& email) {
    return std::string("/v1/projects/") + kProject + "/serviceAccounts/" + email;
  }

  bool WaitListening(uint16_t port, pid_t pid) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) return false;
      int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(port);
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
      ::close(fd);
      if (ok) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // poll interval
    }
    return false;
  }

  std::unique_ptr<MoatProcess> moat_;
  std::string dir_;
  std::vector<pid_t> children_;
  int runs_ = 0;
};

TEST_F(CliServer, ImpersonationWorksOnlyWithTokenCreatorOnTheServiceAccount) {
  FakeUpstream up;
  auto svc = moat_->CreateUpstreamService(kProject, kRegion, "hello", up.url());
  ASSERT_TRUE(svc) << svc.error().message;
  auto target = moat_->CreateServiceAccount(kProject, "viewer");
  ASSERT_TRUE(target) << target.error().message;
  ASSERT_EQ(moat_->AddBinding(svc->path, "serviceAccount:" + *target, "roles/run.viewer").status,
            200);
  std::string caller = ActivateNewAccount("caller");
  const std::vector<std::string> describe = {"run",      "services", "describe",  "hello",
                                             "--region", kRegion,    "--project", kProject};
  auto as_target = describe;
  as_target.push_back("--impersonate-service-account=" + *target);

  // The caller itself may not read the service.
  CliResult own = Run(describe);
  EXPECT_EQ(own.exit_code, 1) << own.Describe();
  // Nor impersonate the viewer yet: one clear line, no token material.
  CliResult refused = Run(as_target);
  EXPECT_EQ(refused.exit_code, 1) << refused.Describe();
  EXPECT_EQ(refused.err.rfind("ERROR: (moat.run.services.describe) ", 0), 0u) << refused.err;
  EXPECT_EQ(std::count(refused.err.begin(), refused.err.end(), '\n'), 1) << refused.err;
  EXPECT_NE(refused.err.find("PERMISSION_DENIED"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("iam.serviceAccounts.getAccessToken"), std::string::npos)
      << refused.err;
  EXPECT_EQ(refused.err.find("eyJ"), std::string::npos) << refused.err;

  ASSERT_EQ(moat_
                ->AddBinding(SaPath(*target), "serviceAccount:" + caller,
                             "roles/iam.serviceAccountTokenCreator")
                .status,
            200);
  CliResult ok = Run(as_target);
  ASSERT_EQ(ok.exit_code, 0) << ok.Describe();
  EXPECT_NE(ok.out.find("projects/cli-p/locations/us-central1/services/hello"), std::string::npos)
      << ok.out;
  // The impersonated token is cached (0600) and reused by the next command.
  std::string cache = dir_ + "/config/access_tokens.json";
  struct stat st;
  ASSERT_EQ(::stat(cache.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string before = Slurp(cache);
  CliResult again = Run(as_target);
  ASSERT_EQ(again.exit_code, 0) << again.Describe();
  EXPECT_EQ(Slurp(cache), before);
  // Still not the caller's own right.
  EXPECT_EQ(Run(describe).exit_code, 1);
  // Revoking the account drops its cached tokens.
  ASSERT_EQ(Run({"auth", "revoke", caller}).exit_code, 0);
  EXPECT_NE(::stat(cache.c_str(), &st), 0);
}

TEST_F(CliServer, PrintIdentityTokenForAnImpersonatedAccountOpensThePrivateService) {
  FakeUpstream up;
  auto svc = moat_->CreateUpstreamService(kProject, kRegion, "private", up.url());
  ASSERT_TRUE(svc) << svc.error().message;
  auto invoker = moat_->CreateServiceAccount(kProject, "invoker");
  ASSERT_TRUE(invoker) << invoker.error().message;
  ASSERT_EQ(moat_->AddBinding(svc->path, "serviceAccount:" + *invoker, "roles/run.invoker").status,
            200);
  std::string caller = ActivateNewAccount("developer");
  const std::vector<std::string> print = {"auth", "print-identity-token", "--audiences=" + svc->uri,
                                          "--impersonate-service-account=" + *invoker};

  CliResult refused = Run(print);
  EXPECT_EQ(refused.exit_code, 1) << refused.Describe();
  EXPECT_EQ(std::count(refused.err.begin(), refused.err.end(), '\n'), 1) << refused.err;
  EXPECT_NE(refused.err.find("iam.serviceAccounts.getOpenIdToken"), std::string::npos)
      << refused.err;
  EXPECT_EQ(refused.out, "");

  ASSERT_EQ(moat_
                ->AddBinding(SaPath(*invoker), "serviceAccount:" + caller,
                             "roles/iam.serviceAccountTokenCreator")
                .status,
            200);
  CliResult printed = Run(print);
  ASSERT_EQ(printed.exit_code, 0) << printed.Describe();
  std::string token = Trim(printed.out);
  boost::json::object claims = Claims(token);
  ASSERT_FALSE(claims.empty()) << token;
  EXPECT_EQ(S(claims["aud"]), svc->uri);
  EXPECT_EQ(S(claims["email"]), *invoker);
  // The caller's own token would be refused; the impersonated one is let through.
  auto r =
      moat_->Gateway(svc->uri, GatewayRequest{.headers = {{"Authorization", "Bearer " + token}}});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200) << r->body;
  CliResult own = Run({"auth", "print-identity-token", "--audiences=" + svc->uri});
  ASSERT_EQ(own.exit_code, 0) << own.Describe();
  EXPECT_EQ(S(Claims(Trim(own.out))["email"]), caller);
  auto denied = moat_->Gateway(
      svc->uri, GatewayRequest{.headers = {{"Authorization", "Bearer " + Trim(own.out)}}});
  ASSERT_TRUE(denied);
  EXPECT_EQ(denied->status, 403);
  // A second print reuses the cached ID token.
  CliResult second = Run(print);
  ASSERT_EQ(second.exit_code, 0);
  EXPECT_EQ(Trim(second.out), token);
}

TEST_F(CliServer, DeployFromSourceRunsTheProcfileWebCommand) {
  std::string src = dir_ + "/app";
  std::filesystem::create_directories(src);
  std::ofstream(src + "/index.html") << "hello from source\n";
  std::ofstream(src + "/Procfile")
      << "# served by moat\nweb: exec python3 -m http.server \"$PORT\" --bind 127.0.0.1\n";
  CliResult deploy = Run(
      {"run", "deploy", "from-src", "--source=" + src, "--region", kRegion, "--project", kProject});
  ASSERT_EQ(deploy.exit_code, 0) << deploy.Describe();
  ASSERT_EQ(deploy.out.rfind("Service URL: http://", 0), 0u) << deploy.out;
  std::string uri = Trim(deploy.out.substr(std::string("Service URL: ").size()));

  // Private by default: no token, no entry.
  auto anonymous = moat_->Gateway(uri, GatewayRequest{.path = "/index.html"});
  ASSERT_TRUE(anonymous);
  EXPECT_EQ(anonymous->status, 403);
  // The admin (roles/owner) invokes it through the CLI once the command is up.
  CliResult call = RunUntil({"run", "services", "call", "from-src", "--path=/index.html",
                             "--region", kRegion, "--project", kProject},
                            [](const CliResult& r) { return r.exit_code == 0; });
  ASSERT_EQ(call.exit_code, 0) << call.Describe();
  EXPECT_EQ(call.out, "hello from source\n");
  // What was deployed: the Procfile's command under sh, in DIR.
  CliResult described = Run({"run", "services", "describe", "from-src", "--region", kRegion,
                             "--project", kProject, "--format=json"});
  ASSERT_EQ(described.exit_code, 0) << described.Describe();
  auto svc = boost::json::parse(described.out);
  const auto& c0 = svc.at("template").at("containers").at(0);
  EXPECT_EQ(S(c0.at("workingDir")), std::filesystem::canonical(src).string());
  EXPECT_EQ(S(c0.at("command").at(0)), "/bin/sh");

  // A directory without a Procfile is refused with what to add.
  std::filesystem::create_directories(dir_ + "/empty");
  CliResult none = Run({"run", "deploy", "x", "--source=" + dir_ + "/empty", "--region", kRegion,
                        "--project", kProject});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.err.find("Procfile"), std::string::npos) << none.err;
}

TEST_F(CliServer, ImpersonatedProxyRelaysTheGatewayRequestIdThatExplainUnderstands) {
  FakeUpstream up;
  auto svc = moat_->CreateUpstreamService(kProject, kRegion, "api", up.url());
  ASSERT_TRUE(svc) << svc.error().message;
  auto robot = moat_->CreateServiceAccount(kProject, "robot-sa");
  ASSERT_TRUE(robot) << robot.error().message;
  // The admin may mint the robot's tokens; the robot may only view the service (close, but
  // not invoke).
  ASSERT_EQ(moat_
                ->AddBinding(SaPath(*robot), "serviceAccount:" + moat_->admin_key().client_email,
                             "roles/iam.serviceAccountTokenCreator")
                .status,
            200);
  ASSERT_EQ(moat_->AddBinding(svc->path, "serviceAccount:" + *robot, "roles/run.viewer").status,
            200);

  uint16_t port = FreePort();
  pid_t proxy =
      Spawn({"run", "services", "proxy", "api", "--region", kRegion, "--project", kProject,
             "--port", std::to_string(port), "--impersonate-service-account", *robot},
            "proxy");
  children_.push_back(proxy);
  ASSERT_TRUE(WaitListening(port, proxy)) << Slurp(dir_ + "/proxy.err");
  std::string base = "http://127.0.0.1:" + std::to_string(port);

  auto refused = http::Fetch(http::ClientRequest{.url = base + "/private?q=1"});
  ASSERT_TRUE(refused) << refused.error().message;
  EXPECT_EQ(refused->status, 403) << refused->body;
  EXPECT_TRUE(up.requests().empty());
  std::string rid(refused->headers.Get("X-Moat-Gateway-Request-Id"));
  ASSERT_FALSE(rid.empty());
  EXPECT_NE(refused->headers.Get("X-Request-Id"), rid);  // the proxy's own id is separate

  CliResult explain =
      RunUntil({"logging", "explain", rid}, [](const CliResult& r) { return r.exit_code == 0; });
  ASSERT_EQ(explain.exit_code, 0) << explain.Describe();
  EXPECT_NE(explain.out.find("decision: DENY (HTTP 403)"), std::string::npos) << explain.out;
  EXPECT_NE(explain.out.find("serviceAccount:" + *robot), std::string::npos) << explain.out;
  EXPECT_NE(explain.out.find("permission: run.routes.invoke"), std::string::npos) << explain.out;
  EXPECT_NE(explain.out.find("roles/run.viewer"), std::string::npos) << explain.out;

  // Granting the robot invoker lets the same proxy (same cached token) through.
  auto grant = moat_->AddBinding(svc->path, "serviceAccount:" + *robot, "roles/run.invoker");
  ASSERT_EQ(grant.status, 200) << grant.Describe();
  // Client headers pass through the proxy: read-your-writes on the gateway.
  http::ClientRequest after{.url = base + "/private?q=2"};
  after.headers.Add("X-Moat-Min-Revision", std::to_string(grant.revision));
  auto allowed = http::Fetch(after);
  ASSERT_TRUE(allowed) << allowed.error().message;
  EXPECT_EQ(allowed->status, 200) << allowed->body;
  auto seen = up.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].target, "/private?q=2");
  boost::json::object claims = Claims(seen[0].Header("Authorization").substr(7));
  EXPECT_EQ(S(claims["email"]), *robot);

  ::kill(proxy, SIGTERM);
  int status = 0;
  ASSERT_EQ(::waitpid(proxy, &status, 0), proxy);
  children_.clear();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  // The refused request was reported on the proxy's stderr with what to run.
  EXPECT_NE(Slurp(dir_ + "/proxy.err").find("moat logging explain " + rid), std::string::npos)
      << Slurp(dir_ + "/proxy.err");
}

}  // namespace
}  // namespace moat::cli_test
