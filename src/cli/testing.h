// Test fakes for the CLI's seams: a recording Transport with canned responses, a Signer
// whose "signature" exposes the claims, and a TestEnv with a private config directory.
// Test-only header.
#pragma once

#include <stdlib.h>

#include <boost/json.hpp>
#include <deque>
#include <filesystem>
#include <map>
#include <sstream>

#include "cli/cli.h"
#include "common/base64.h"
#include "common/json.h"

namespace moat::cli::testing {

// Requests are matched by "METHOD /path?query" (the URL without its origin); each key holds a
// queue of responses (the last one repeats). Unmatched requests get a Google 404 envelope.
class FakeTransport : public Transport {
 public:
  Result<HttpResponse> Send(const HttpRequest& request) override {
    requests.push_back(request);
    if (fail) return Unavailable("connection refused");
    std::string url = request.url;
    size_t slash = url.find('/', url.find("://") + 3);
    std::string key = request.method + " " + (slash == std::string::npos ? "/" : url.substr(slash));
    if (auto it = full_url.find(request.method + " " + url); it != full_url.end()) {
      return it->second;
    }
    auto it = routes.find(key);
    if (it == routes.end() || it->second.empty()) {
      return HttpResponse{
          404,
          {},
          R"({"error":{"code":404,"message":"no route `)" + key + R"(`","status":"NOT_FOUND"}})"};
    }
    HttpResponse r = it->second.front();
    if (it->second.size() > 1) it->second.pop_front();
    return r;
  }
  void On(const std::string& key, int status, const std::string& body) {
    routes[key].push_back(HttpResponse{status, {}, body});
  }
  void OnJson(const std::string& key, const boost::json::value& v) {
    On(key, 200, boost::json::serialize(v));
  }
  // The requests whose "METHOD path" starts with `prefix`.
  std::vector<HttpRequest> Find(const std::string& method, const std::string& path_prefix) const {
    std::vector<HttpRequest> out;
    for (const auto& r : requests) {
      size_t slash = r.url.find('/', r.url.find("://") + 3);
      std::string path = slash == std::string::npos ? "/" : r.url.substr(slash);
      if (r.method == method && path.rfind(path_prefix, 0) == 0) out.push_back(r);
    }
    return out;
  }

  std::map<std::string, std::deque<HttpResponse>> routes;
  std::map<std::string, HttpResponse> full_url;
  std::vector<HttpRequest> requests;
  bool fail = false;
};

// "fakejwt.<base64url(claims)>.<kid>": tests decode the claims with Claims().
class FakeSigner : public Signer {
 public:
  Result<std::string> SignJwt(std::string_view pem, std::string_view key_id,
                              const boost::json::object& claims) override {
    if (pem.find("PRIVATE KEY") == std::string_view::npos) {
      return InvalidArgument("not a private key");
    }
    return "fakejwt." + Base64UrlEncode(boost::json::serialize(claims)) + "." + std::string(key_id);
  }
  static boost::json::object Claims(std::string_view jwt) {
    size_t a = jwt.find('.'), b = jwt.rfind('.');
    auto text = Base64UrlDecode(jwt.substr(a + 1, b - a - 1));
    return boost::json::parse(text.value_or("{}")).as_object();
  }
};

inline std::string Header(const HttpRequest& r, std::string_view name) {
  for (const auto& [k, v] : r.headers)
    if (k == name) return v;
  return "";
}

inline boost::json::object KeyFile(const std::string& email, const std::string& project) {
  return {{"type", "service_account"},
          {"project_id", project},
          {"private_key_id", "0123456789abcdef0123456789abcdef01234567"},
          {"private_key", "-----BEGIN PRIVATE KEY-----\nMIIfake\n-----END PRIVATE KEY-----\n"},
          {"client_email", email},
          {"client_id", "1234567890"},
          {"token_uri", "https://oauth2.googleapis.com/token"}};
}

class TestEnv {
 public:
  TestEnv() {
    char tmpl[] = "/tmp/moat_cli_test_XXXXXX";
    dir = ::mkdtemp(tmpl);
    env.vars["MOAT_CONFIG"] = dir + "/config";
    env.out = &out;
    env.err = &err;
    env.in = &in;
    env.transport = &transport;
    env.signer = &signer;
    env.clock = &clock;
    env.sleep = [this](std::chrono::milliseconds) { ++sleeps; };
  }
  ~TestEnv() { std::filesystem::remove_all(dir); }

  int Run(std::vector<std::string> args) {
    out.str("");
    err.str("");
    return cli::Run(args, env);
  }
  std::string WriteFile(const std::string& name, const std::string& text) {
    std::string path = dir + "/" + name;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    FILE* f = std::fopen(path.c_str(), "w");
    std::fwrite(text.data(), 1, text.size(), f);
    std::fclose(f);
    return path;
  }
  // Activates a service account (through the CLI) and sets project/region.
  void Activate(const std::string& email = "admin@p.iam.gserviceaccount.com") {
    std::string key = WriteFile("key.json", json::Serialize(KeyFile(email, "p")));
    if (Run({"auth", "activate-service-account", "--key-file=" + key}) != 0) std::abort();
    if (Run({"config", "set", "region", "local"}) != 0) std::abort();
    if (Run({"config", "set", "project", "p"}) != 0) std::abort();
    transport.requests.clear();
  }

  std::string dir;
  Env env;
  std::ostringstream out, err;
  std::istringstream in;
  FakeTransport transport;
  FakeSigner signer;
  FakeClock clock;
  int sleeps = 0;
};

}  // namespace moat::cli::testing
