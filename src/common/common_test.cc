#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <string>

#include "common/base64.h"
#include "common/error.h"
#include "common/json.h"
#include "common/log.h"
#include "common/random.h"
#include "common/time.h"

namespace moat {
namespace {

TEST(Base64, RoundTripsAllLengths) {
  std::string data;
  for (int i = 0; i < 40; ++i) {
    EXPECT_EQ(*Base64Decode(Base64Encode(data)), data);
    EXPECT_EQ(*Base64UrlDecode(Base64UrlEncode(data)), data);
    data += static_cast<char>(i * 37);
  }
}

TEST(Base64, KnownVectors) {
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64UrlEncode("\xfb\xff"), "-_8");
  EXPECT_EQ(*Base64Decode("BwWWja0YfJA="), std::string("\x07\x05\x96\x8d\xad\x18\x7c\x90", 8));
}

TEST(Base64, RejectsNonCanonicalInput) {
  EXPECT_FALSE(Base64UrlDecode("Zm8="));   // padding not allowed in base64url
  EXPECT_FALSE(Base64UrlDecode("Zm9"));    // trailing bits not zero ("Zm8" is canonical)
  EXPECT_TRUE(Base64UrlDecode("Zm8"));
  EXPECT_FALSE(Base64UrlDecode("Z"));      // impossible length
  EXPECT_FALSE(Base64UrlDecode("Zm+v"));   // wrong alphabet
  EXPECT_FALSE(Base64Decode("Zm8"));       // missing padding
  EXPECT_FALSE(Base64Decode("Zm9=") );     // trailing bits
  EXPECT_FALSE(Base64Decode("Zm 8="));
}

TEST(Time, FormatsAndParsesRfc3339) {
  auto t = ParseRfc3339("2020-10-01T00:00:00.000Z");
  ASSERT_TRUE(t);
  EXPECT_EQ(std::chrono::duration_cast<Seconds>(t->time_since_epoch()).count(), 1601510400);
  EXPECT_EQ(FormatRfc3339(*t), "2020-10-01T00:00:00Z");
  auto u = ParseRfc3339("2020-10-01T02:00:00.5+02:00");
  ASSERT_TRUE(u);
  EXPECT_EQ(FormatRfc3339(*u), "2020-10-01T00:00:00.500Z");
  EXPECT_FALSE(ParseRfc3339("2020-02-30T00:00:00Z"));
  EXPECT_FALSE(ParseRfc3339("2020-10-01 00:00:00Z"));
  EXPECT_FALSE(ParseRfc3339("2020-10-01T00:00:00"));
  EXPECT_TRUE(ParseRfc3339("2024-02-29T23:59:59Z"));
}

TEST(Time, Durations) {
  EXPECT_EQ(*ParseDuration("300s"), std::chrono::seconds(300));
  EXPECT_EQ(*ParseDuration("1.5s"), std::chrono::milliseconds(1500));
  EXPECT_FALSE(ParseDuration("300"));
  EXPECT_FALSE(ParseDuration("s"));
  EXPECT_EQ(FormatDuration(std::chrono::milliseconds(1500)), "1.5s");
  EXPECT_EQ(FormatDuration(std::chrono::seconds(3600)), "3600s");
}

TEST(Json, RefusesDuplicateKeysAndGarbage) {
  EXPECT_TRUE(json::Parse(R"({"a":1,"b":{"a":2}})"));
  auto dup = json::Parse(R"({"a":1,"a":2})");
  ASSERT_FALSE(dup);
  EXPECT_NE(dup.error().message.find("`a`"), std::string::npos);
  EXPECT_FALSE(json::Parse(R"({"a":1} x)"));
  EXPECT_FALSE(json::Parse(R"({"a":)"));
  EXPECT_FALSE(json::ParseObject("[1]"));
}

TEST(Json, TypedGettersNameTheField) {
  auto o = *json::ParseObject(R"({"version":"x","n":"42","b":true})");
  auto v = json::OptInt(o, "version");
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().message, "field `version` must be an integer, not a string");
  EXPECT_EQ(**json::OptInt(o, "n"), 42);
  EXPECT_FALSE(*json::OptInt(o, "missing"));
  EXPECT_TRUE(**json::OptBool(o, "b"));
}

TEST(Error, CanonicalHttpMapping) {
  EXPECT_EQ(HttpStatus(Code::kAborted), 409);
  EXPECT_EQ(HttpStatus(Code::kUnauthenticated), 401);
  EXPECT_EQ(HttpStatus(Code::kFailedPrecondition), 400);
  EXPECT_EQ(CodeName(Code::kPermissionDenied), "PERMISSION_DENIED");
}

TEST(Random, Shapes) {
  EXPECT_EQ(RandomHex(20).size(), 40u);
  std::string uuid = RandomUuid();
  EXPECT_EQ(uuid.size(), 36u);
  EXPECT_EQ(uuid[14], '4');
  std::string id = RandomNumericId();
  EXPECT_EQ(id.size(), 21u);
  EXPECT_NE(id[0], '0');
  EXPECT_NE(RandomHex(16), RandomHex(16));
}

}  // namespace
}  // namespace moat

TEST(Time, ParseFlagDurationTakesGcloudsShortForms) {
  EXPECT_EQ(*moat::ParseFlagDuration("90s"), std::chrono::seconds(90));
  EXPECT_EQ(*moat::ParseFlagDuration("15m"), std::chrono::minutes(15));
  EXPECT_EQ(*moat::ParseFlagDuration("1h"), std::chrono::hours(1));
  EXPECT_EQ(*moat::ParseFlagDuration("7d"), std::chrono::hours(24 * 7));
  for (const char* bad : {"", "s", "1", "1.5h", "-1h", "1w", "h1", "123456789s"}) {
    EXPECT_FALSE(moat::ParseFlagDuration(bad)) << bad;
  }
}

TEST(Log, WritesOneJsonLinePerCallWithEscapedFields) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  moat::log::SetFd(fds[1]);
  std::string temp = "from a temporary";
  moat::log::Info("hello \"world\"", {{"plain", "value"},
                                      {"tricky", "a\\b\n\t\x01\"c"},
                                      {"number", std::to_string(42)},
                                      {"view", std::string_view(temp)}});
  moat::log::Info("second");
  moat::log::SetFd(2);
  ::close(fds[1]);
  std::string all;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) all.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  size_t nl = all.find('\n');
  ASSERT_NE(nl, std::string::npos);
  EXPECT_EQ(all.size(), all.find('\n', nl + 1) + 1);  // exactly two lines
  auto v = boost::json::parse(all.substr(0, nl)).as_object();
  EXPECT_EQ(v.at("severity").as_string(), "INFO");
  EXPECT_EQ(v.at("message").as_string(), "hello \"world\"");
  EXPECT_EQ(v.at("plain").as_string(), "value");
  EXPECT_EQ(v.at("tricky").as_string(), "a\\b\n\t\x01\"c");
  EXPECT_EQ(v.at("number").as_string(), "42");
  EXPECT_EQ(v.at("view").as_string(), "from a temporary");
  std::string time(v.at("time").as_string());
  ASSERT_EQ(time.size(), 30u) << time;  // YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ
  EXPECT_TRUE(moat::ParseRfc3339(time)) << time;
}
