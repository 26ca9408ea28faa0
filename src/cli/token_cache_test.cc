// The token cache on its own (file format, expiry margin, corrupt and unsafe files) and as the
// commands use it (reuse across invocations, revoke/activate, a refused cached token).
#include "cli/token_cache.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "cli/config.h"
#include "cli/testing.h"

namespace moat::cli {
namespace {

namespace js = boost::json;
using testing::FakeSigner;
using testing::Header;
using testing::TestEnv;

constexpr int64_t kNow = 1'700'000'000;

TokenCache::Key AccessKey(std::string account = "a@p.iam.gserviceaccount.com") {
  return {std::move(account), "kid1", "", "http://127.0.0.1:8081", "access", ""};
}

std::string CachePath(const std::string& dir) { return dir + "/" + std::string(kTokenCacheFile); }

class CliTokenCache : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/moat_cli_tc_XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(CliTokenCache, ReusesATokenUntilFiveMinutesBeforeExpiry) {
  TokenCache c = TokenCache::Load(dir_);
  c.Put(AccessKey(), "tok", kNow + 3600, kNow);
  EXPECT_EQ(c.Get(AccessKey(), kNow), "tok");
  EXPECT_EQ(c.Get(AccessKey(), kNow + 3600 - 301), "tok");
  EXPECT_EQ(c.Get(AccessKey(), kNow + 3600 - 300), std::nullopt);
  // A token that is already inside the margin is not stored at all.
  c.Put(AccessKey("b@x"), "short", kNow + 200, kNow);
  EXPECT_EQ(c.size(), 1u);
}

TEST_F(CliTokenCache, KeysSeparateEndpointImpersonationAudienceAndSigningKey) {
  TokenCache c = TokenCache::Load(dir_);
  c.Put(AccessKey(), "base", kNow + 3600, kNow);
  TokenCache::Key k = AccessKey();
  k.endpoint = "http://127.0.0.1:9999";
  EXPECT_EQ(c.Get(k, kNow), std::nullopt);
  k = AccessKey();
  k.impersonated = "sa@p.iam.gserviceaccount.com";
  EXPECT_EQ(c.Get(k, kNow), std::nullopt);
  k = AccessKey();
  k.credential_id = "kid2";
  EXPECT_EQ(c.Get(k, kNow), std::nullopt);
  k = AccessKey();
  k.kind = "id";
  k.audience = "http://svc";
  c.Put(k, "id-svc", kNow + 3600, kNow);
  k.audience = "http://other";
  EXPECT_EQ(c.Get(k, kNow), std::nullopt);
  k.audience = "http://svc";
  EXPECT_EQ(c.Get(k, kNow), "id-svc");
  EXPECT_EQ(c.Get(AccessKey(), kNow), "base");
}

TEST_F(CliTokenCache, SavesPrivatelyAndLoadsBack) {
  ::umask(022);
  TokenCache c = TokenCache::Load(dir_);
  c.Put(AccessKey(), "tok", kNow + 3600, kNow);
  c.Put(AccessKey("gone@x"), "old", kNow + 400, kNow);
  ASSERT_TRUE(c.Save(kNow + 200));  // "old" is within the margin by now: dropped
  struct stat st;
  ASSERT_EQ(::stat(CachePath(dir_).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  TokenCache back = TokenCache::Load(dir_);
  EXPECT_EQ(back.size(), 1u);
  EXPECT_EQ(back.Get(AccessKey(), kNow), "tok");
  // Emptied: the file goes away.
  back.Clear();
  ASSERT_TRUE(back.Save(kNow));
  EXPECT_NE(::stat(CachePath(dir_).c_str(), &st), 0);
}

TEST_F(CliTokenCache, KeepsOnlyTheLongestLivedWhenFull) {
  TokenCache c = TokenCache::Load(dir_);
  for (size_t i = 0; i < kMaxCachedTokens + 10; ++i) {
    TokenCache::Key k = AccessKey();
    k.kind = "id";
    k.audience = "aud" + std::to_string(i);
    c.Put(k, "t" + std::to_string(i), kNow + 1000 + static_cast<int64_t>(i), kNow);
  }
  ASSERT_TRUE(c.Save(kNow));
  TokenCache back = TokenCache::Load(dir_);
  EXPECT_EQ(back.size(), kMaxCachedTokens);
  TokenCache::Key first = AccessKey();
  first.kind = "id";
  first.audience = "aud0";
  EXPECT_EQ(back.Get(first, kNow), std::nullopt);
  first.audience = "aud" + std::to_string(kMaxCachedTokens + 9);
  EXPECT_TRUE(back.Get(first, kNow));
}

TEST_F(CliTokenCache, CorruptOrUnsafeFilesAreIgnored) {
  for (const char* text :
       {"", "{", "[]", "null", R"({"version":2,"tokens":{}})", R"({"version":1,"tokens":[]})",
        R"({"version":1,"tokens":{"k":{"token":1}}})",
        R"({"version":1,"version":1,"tokens":{}})"}) {
    ASSERT_TRUE(WritePrivateFile(CachePath(dir_), text));
    TokenCache c = TokenCache::Load(dir_);
    EXPECT_EQ(c.size(), 0u) << text;
    // …and the next save replaces it with a valid file.
    c.Put(AccessKey(), "tok", kNow + 3600, kNow);
    ASSERT_TRUE(c.Save(kNow)) << text;
    EXPECT_EQ(TokenCache::Load(dir_).Get(AccessKey(), kNow), "tok") << text;
  }
  // One bad entry among good ones spoils only itself.
  TokenCache good = TokenCache::Load(dir_);
  ASSERT_TRUE(WritePrivateFile(
      CachePath(dir_), R"({"version":1,"tokens":{"x":{"account":"a","token":"","expiry":1},"y":7,)"
                       R"("z":{"account":"a","token":"t","expiry":1700003600}}})"));
  EXPECT_EQ(TokenCache::Load(dir_).size(), 1u);
  // A file readable by others may have been read or planted: not trusted.
  ASSERT_TRUE(good.Save(kNow));
  ASSERT_EQ(::chmod(CachePath(dir_).c_str(), 0644), 0);
  EXPECT_EQ(TokenCache::Load(dir_).size(), 0u);
  // A directory in its place is not fatal either.
  std::filesystem::remove(CachePath(dir_));
  std::filesystem::create_directory(CachePath(dir_));
  EXPECT_EQ(TokenCache::Load(dir_).size(), 0u);
}

TEST_F(CliTokenCache, EraseAccountDropsItsTokensOnly) {
  TokenCache c = TokenCache::Load(dir_);
  c.Put(AccessKey("a@x"), "a", kNow + 3600, kNow);
  TokenCache::Key imp = AccessKey("a@x");
  imp.impersonated = "sa@x";
  c.Put(imp, "a-as-sa", kNow + 3600, kNow);
  c.Put(AccessKey("b@x"), "b", kNow + 3600, kNow);
  c.EraseAccount("a@x");
  EXPECT_EQ(c.size(), 1u);
  EXPECT_EQ(c.Get(AccessKey("b@x"), kNow), "b");
}

TEST(CliTokenCacheJwt, ExpiryIsReadFromTheClaims) {
  EXPECT_EQ(JwtExpiry("h." + Base64UrlEncode(R"({"exp":1234})") + ".s"), 1234);
  EXPECT_EQ(JwtExpiry("opaque"), std::nullopt);
  EXPECT_EQ(JwtExpiry("h.!!.s"), std::nullopt);
  EXPECT_EQ(JwtExpiry("h." + Base64UrlEncode(R"({"exp":"soon"})") + ".s"), std::nullopt);
  EXPECT_EQ(JwtExpiry("h." + Base64UrlEncode(R"({"iat":1})") + ".s"), std::nullopt);
}

// --- through the commands ---

const std::string kSvc = "/v2/projects/p/locations/local/services/hello";
const std::string kUri = "http://hello-x1.local.run.localhost:8080";

std::string Jwt(int64_t exp, const std::string& tag) {
  return "h." + Base64UrlEncode(R"({"exp":)" + std::to_string(exp) + R"(,"t":")" + tag + "\"}") +
         ".s";
}

js::object Service() {
  return {{"name", "projects/p/locations/local/services/hello"}, {"uri", kUri}};
}

TEST(CliTokenCacheCommands, AccessTokenIsReusedAcrossInvocationsUntilNearExpiry) {
  TestEnv t;
  t.Activate();
  t.transport.OnJson("GET " + kSvc, Service());
  ASSERT_EQ(t.Run({"run", "services", "describe", "hello"}), 0) << t.err.str();
  std::string first = Header(t.transport.requests.back(), "Authorization");
  t.clock.Advance(std::chrono::minutes(30));
  ASSERT_EQ(t.Run({"run", "services", "describe", "hello"}), 0) << t.err.str();
  EXPECT_EQ(Header(t.transport.requests.back(), "Authorization"), first);
  struct stat st;
  ASSERT_EQ(::stat((t.dir + "/config/access_tokens.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // 56 minutes after minting: within five minutes of exp, so a new one is signed.
  t.clock.Advance(std::chrono::minutes(26));
  ASSERT_EQ(t.Run({"run", "services", "describe", "hello"}), 0) << t.err.str();
  std::string renewed = Header(t.transport.requests.back(), "Authorization");
  EXPECT_NE(renewed, first);
  EXPECT_EQ(FakeSigner::Claims(renewed.substr(7)).at("iat").as_int64(), t.clock.NowUnix());
  // The token itself never appears on the terminal.
  EXPECT_EQ(t.err.str().find("fakejwt"), std::string::npos);
}

TEST(CliTokenCacheCommands, IdTokensAreCachedPerAudience) {
  TestEnv t;
  t.Activate();
  int64_t exp = t.clock.NowUnix() + 3600;
  t.transport.On("POST /token", 200, R"({"id_token":")" + Jwt(exp, "one") + R"("})");
  t.transport.On("POST /token", 200, R"({"id_token":")" + Jwt(exp, "two") + R"("})");
  ASSERT_EQ(t.Run({"auth", "print-identity-token", "--audiences=https://a"}), 0);
  EXPECT_EQ(t.out.str(), Jwt(exp, "one") + "\n");
  ASSERT_EQ(t.Run({"auth", "print-identity-token", "--audiences=https://a"}), 0);
  EXPECT_EQ(t.out.str(), Jwt(exp, "one") + "\n");
  EXPECT_EQ(t.transport.Find("POST", "/token").size(), 1u);
  ASSERT_EQ(t.Run({"auth", "print-identity-token", "--audiences=https://b"}), 0);
  EXPECT_EQ(t.out.str(), Jwt(exp, "two") + "\n");
  EXPECT_EQ(t.transport.Find("POST", "/token").size(), 2u);
}

TEST(CliTokenCacheCommands, ImpersonatedTokensAreKeptApartFromTheCallers) {
  TestEnv t;
  t.Activate();
  const std::string sa = "/v1/projects/-/serviceAccounts/inv@p.iam.gserviceaccount.com";
  t.transport.OnJson("POST " + sa + ":generateAccessToken",
                     js::parse(R"({"accessToken":"acc","expireTime":"2030-01-01T00:00:00Z"})"));
  t.transport.OnJson("GET " + kSvc, Service());
  const std::string imp = "--impersonate-service-account=inv@p.iam.gserviceaccount.com";
  ASSERT_EQ(t.Run({"run", "services", "describe", "hello", imp}), 0) << t.err.str();
  EXPECT_EQ(Header(t.transport.requests.back(), "Authorization"), "Bearer acc");
  ASSERT_EQ(t.Run({"run", "services", "describe", "hello", imp}), 0) << t.err.str();
  EXPECT_EQ(Header(t.transport.requests.back(), "Authorization"), "Bearer acc");
  EXPECT_EQ(t.transport.Find("POST", sa).size(), 1u);
  ASSERT_EQ(t.Run({"run", "services", "describe", "hello"}), 0) << t.err.str();
  EXPECT_NE(Header(t.transport.requests.back(), "Authorization"), "Bearer acc");
}

TEST(CliTokenCacheCommands, RevokeAndActivateDropTheCache) {
  TestEnv t;
  t.Activate();
  t.transport.OnJson("GET " + kSvc, Service());
  ASSERT_EQ(t.Run({"run", "services", "describe", "hello"}), 0);
  std::string path = t.dir + "/config/access_tokens.json";
  ASSERT_TRUE(ReadFile(path));
  ASSERT_EQ(t.Run({"auth", "revoke"}), 0) << t.err.str();
  EXPECT_FALSE(ReadFile(path));

  t.Activate();
  ASSERT_EQ(t.Run({"run", "services", "describe", "hello"}), 0);
  ASSERT_TRUE(ReadFile(path));
  t.Activate("other@p.iam.gserviceaccount.com");
  EXPECT_FALSE(ReadFile(path));
}

TEST(CliTokenCacheCommands, ACorruptCacheIsRewrittenNotFatal) {
  TestEnv t;
  t.Activate();
  t.transport.OnJson("GET " + kSvc, Service());
  std::string path = t.dir + "/config/access_tokens.json";
  ASSERT_TRUE(WritePrivateFile(path, "{\"version\":1,\"tokens\":{\"trunc"));
  ASSERT_EQ(t.Run({"run", "services", "describe", "hello"}), 0) << t.err.str();
  EXPECT_EQ(t.err.str(), "");
  EXPECT_EQ(TokenCache::Load(t.dir + "/config").size(), 1u);
}

TEST(CliTokenCacheCommands, ARefusedCachedTokenIsReplacedOnce) {
  TestEnv t;
  t.Activate();
  t.transport.OnJson("GET " + kSvc, Service());
  ASSERT_EQ(t.Run({"run", "services", "describe", "hello"}), 0);
  std::string cached = Header(t.transport.requests.back(), "Authorization");
  // The server was reset and no longer knows the token; the retry signs a new one.
  t.clock.Advance(std::chrono::seconds(10));
  t.transport.routes.clear();
  t.transport.On("GET " + kSvc, 401,
                 R"({"error":{"code":401,"message":"bad token","status":"UNAUTHENTICATED"}})");
  t.transport.OnJson("GET " + kSvc, Service());
  t.transport.requests.clear();
  ASSERT_EQ(t.Run({"run", "services", "describe", "hello"}), 0) << t.err.str();
  ASSERT_EQ(t.transport.requests.size(), 2u);
  EXPECT_EQ(Header(t.transport.requests[0], "Authorization"), cached);
  EXPECT_NE(Header(t.transport.requests[1], "Authorization"), cached);
  // A fresh token that is refused is an error, not a loop.
  t.transport.routes.clear();
  t.transport.On("GET " + kSvc, 401,
                 R"({"error":{"code":401,"message":"bad token","status":"UNAUTHENTICATED"}})");
  t.transport.requests.clear();
  EXPECT_EQ(t.Run({"run", "services", "describe", "hello"}), 1);
  EXPECT_EQ(t.transport.requests.size(), 2u);
  EXPECT_NE(t.err.str().find("bad token"), std::string::npos) << t.err.str();
}

TEST(CliTokenCacheCommands, CallRetriesARefusedCachedIdTokenOnce) {
  TestEnv t;
  t.Activate();
  int64_t exp = t.clock.NowUnix() + 3600;
  t.transport.OnJson("GET " + kSvc, Service());
  t.transport.On("POST /token", 200, R"({"id_token":")" + Jwt(exp, "old") + R"("})");
  t.transport.On("POST /token", 200, R"({"id_token":")" + Jwt(exp, "new") + R"("})");
  t.transport.full_url["GET " + kUri + "/"] = HttpResponse{200, {}, "ok"};
  ASSERT_EQ(t.Run({"run", "services", "call", "hello"}), 0) << t.err.str();
  // Now the service refuses the cached token once.
  t.transport.full_url.clear();
  struct Refuse401Once : Transport {
    testing::FakeTransport* inner;
    std::string refused;
    Result<HttpResponse> Send(const HttpRequest& r) override {
      if (r.url == kUri + "/") {
        inner->requests.push_back(r);
        if (Header(r, "Authorization") == refused) return HttpResponse{401, {}, "expired"};
        return HttpResponse{200, {}, "fresh ok"};
      }
      return inner->Send(r);
    }
  } refuse;
  refuse.inner = &t.transport;
  refuse.refused = "Bearer " + Jwt(exp, "old");
  t.env.transport = &refuse;
  ASSERT_EQ(t.Run({"run", "services", "call", "hello"}), 0) << t.err.str();
  EXPECT_EQ(t.out.str(), "fresh ok\n");
  EXPECT_EQ(Header(t.transport.requests.back(), "Authorization"), "Bearer " + Jwt(exp, "new"));
}

}  // namespace
}  // namespace moat::cli
