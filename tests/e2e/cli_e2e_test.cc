// The `moat` CLI against a real `moat serve`: commands that only make sense with a live server
// (the local invoking proxy, explaining a gateway decision). Each test starts its own server
// on free loopback ports; the CLI runs as a child process with MOAT_HOME (so it acts as the
// bootstrap admin), MOAT_API_ENDPOINT and a private MOAT_CONFIG.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "e2e/fake_upstream.h"
#include "e2e/moat_process.h"
#include "http/client.h"

extern char** environ;

namespace moat::e2e {
namespace {

constexpr char kProject[] = "cli-e2e";
constexpr char kRegion[] = "us-central1";

uint16_t FreePort() { return ClosedLoopbackPort(); }
std::string ReadFile(const std::string& path) { return ReadFileOrEmpty(path); }

class CliE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = MoatProcess::Start(MOAT_BIN);
    ASSERT_TRUE(m) << m.error().message;
    moat_ = std::move(*m);
    dir_ = moat_->home() + "/../cli";
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    if (HasFailure() && moat_) std::cerr << "---- moat serve stderr ----\n" << moat_->StderrTail();
    moat_.reset();
  }

  std::vector<std::string> Env() const {
    std::vector<std::string> env = {"MOAT_HOME=" + moat_->home(),
                                    "MOAT_API_ENDPOINT=" + moat_->api(),
                                    "MOAT_CONFIG=" + dir_ + "/config", "PATH=/usr/bin:/bin",
                                    "HOME=" + dir_};
    return env;
  }

  // Starts `moat ARGS…` with stdout/stderr to files; returns its pid.
  pid_t Spawn(const std::vector<std::string>& args, const std::string& tag) {
    pid_t pid = SpawnCli(MOAT_BIN, args, Env(), dir_, tag);
    EXPECT_GT(pid, 0);
    return pid;
  }

  CliResult Run(const std::vector<std::string>& args) {
    static int n = 0;
    std::string tag = "run" + std::to_string(++n);
    return WaitCli(Spawn(args, tag), dir_, tag);
  }

  std::unique_ptr<MoatProcess> moat_;
  std::string dir_;
};

// Polls until something accepts TCP connections on 127.0.0.1:port (bounded).
bool WaitListening(uint16_t port, pid_t pid) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) return false;  // exited
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

TEST_F(CliE2E, ServicesProxyInvokesAPrivateServiceWithTheCallersIdToken) {
  FakeUpstream up;
  auto svc = moat_->CreateUpstreamService(kProject, kRegion, "private-api", up.url());
  ASSERT_TRUE(svc) << svc.error().message;
  // Without the proxy (and without a token) the gateway refuses.
  auto direct = moat_->Gateway(svc->uri, GatewayRequest{});
  ASSERT_TRUE(direct);
  EXPECT_EQ(direct->status, 403);

  uint16_t port = FreePort();
  pid_t proxy = Spawn({"run", "services", "proxy", "private-api", "--region", kRegion,
                       "--project", kProject, "--port", std::to_string(port)},
                      "proxy");
  ASSERT_TRUE(WaitListening(port, proxy)) << ReadFile(dir_ + "/proxy.err");

  http::ClientRequest req;
  req.method = "POST";
  req.url = "http://127.0.0.1:" + std::to_string(port) + "/echo?x=1";
  req.headers.Add("Authorization", "Bearer not-forwarded");
  req.body = "hello through the proxy";
  auto r = http::Fetch(req);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200) << r->body;
  auto seen = up.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_EQ(seen[0].target, "/echo?x=1");
  EXPECT_EQ(seen[0].body, "hello through the proxy");
  // The proxy's own token replaced the local client's; it reaches the service signature-less.
  std::string auth = seen[0].Header("Authorization");
  EXPECT_EQ(auth.rfind("Bearer ", 0), 0u) << auth;
  EXPECT_NE(auth.find("SIGNATURE_REMOVED_BY_GOOGLE"), std::string::npos) << auth;
  EXPECT_EQ(auth.find("not-forwarded"), std::string::npos);

  // A second request reuses the cached token and still passes.
  auto again = http::Fetch(http::ClientRequest{.url = "http://127.0.0.1:" +
                                                      std::to_string(port) + "/second"});
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200);

  // SIGTERM ends it cleanly.
  ::kill(proxy, SIGTERM);
  int status = 0;
  ASSERT_EQ(::waitpid(proxy, &status, 0), proxy);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST_F(CliE2E, ServicesProxyRefusesABusyPortWithAClearError) {
  FakeUpstream up;
  auto svc = moat_->CreateUpstreamService(kProject, kRegion, "svc", up.url());
  ASSERT_TRUE(svc) << svc.error().message;
  CliResult r = Run({"run", "services", "proxy", "svc", "--region", kRegion, "--project",
                     kProject, "--port", std::to_string(moat_->gateway_port())});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--port"), std::string::npos) << r.err;
}

TEST_F(CliE2E, LoggingExplainNamesWhyTheGatewayRefused) {
  FakeUpstream up;
  auto svc = moat_->CreateUpstreamService(kProject, kRegion, "private", up.url());
  ASSERT_TRUE(svc) << svc.error().message;
  auto denied = moat_->Gateway(svc->uri, GatewayRequest{});
  ASSERT_TRUE(denied);
  ASSERT_EQ(denied->status, 403);
  std::string rid(denied->headers.Get("X-Request-Id"));
  ASSERT_FALSE(rid.empty());
  // The denial is audited asynchronously; explain until it is there (bounded).
  CliResult r;
  for (int i = 0; i < 100; ++i) {
    r = Run({"logging", "explain", rid});
    if (r.exit_code == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // poll interval
  }
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("decision: DENY"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("run.routes.invoke"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("no bearer token"), std::string::npos) << r.out;

  CliResult json = Run({"logging", "explain", rid, "--format=json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_NE(json.out.find("\"requestId\""), std::string::npos) << json.out;

  CliResult unknown = Run({"logging", "explain", "0000000000000000"});
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("0000000000000000"), std::string::npos) << unknown.err;

  CliResult read = Run({"logging", "read", "--kind=data-access", "--freshness=1h",
                        "--format=value(requestId)"});
  ASSERT_EQ(read.exit_code, 0) << read.err;
  EXPECT_NE(read.out.find(rid), std::string::npos) << read.out;
}

}  // namespace
}  // namespace moat::e2e
