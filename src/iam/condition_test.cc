#include "iam/condition.h"

#include <gtest/gtest.h>

#include "common/time.h"

namespace moat::iam {
namespace {

ConditionContext Ctx(std::string_view time = "2025-06-01T00:00:00Z",
                     std::string_view name = "projects/p/locations/r/services/frontend") {
  return ConditionContext{*ParseRfc3339(time), name, "run.googleapis.com/Service",
                          "run.googleapis.com"};
}

ConditionResult Eval(std::string_view expr, const ConditionContext& ctx = Ctx()) {
  auto c = CompiledCondition::Compile(expr);
  EXPECT_TRUE(c) << expr << ": " << (c ? "" : c.error().message);
  if (!c) return ConditionResult::kError;
  return c->Evaluate(ctx);
}

constexpr auto T = ConditionResult::kTrue;
constexpr auto F = ConditionResult::kFalse;
constexpr auto E = ConditionResult::kError;

TEST(ConditionTest, TimeComparisons) {
  EXPECT_EQ(Eval("request.time < timestamp('2030-01-01T00:00:00Z')"), T);
  EXPECT_EQ(Eval("request.time < timestamp(\"2020-10-01T00:00:00.000Z\")"), F);
  EXPECT_EQ(Eval("request.time >= timestamp('2025-06-01T00:00:00Z')"), T);
  EXPECT_EQ(Eval("request.time > timestamp('2025-06-01T00:00:00Z')"), F);
  EXPECT_EQ(Eval("request.time <= timestamp('2025-06-01T02:00:00+02:00')"), T);
  EXPECT_EQ(Eval("request.time == timestamp('2025-06-01T00:00:00Z')"), T);
  EXPECT_EQ(Eval("request.time != timestamp('2025-06-01T00:00:00Z')"), F);
  EXPECT_EQ(Eval("timestamp('2024-01-01T00:00:00Z') < request.time"), T);
}

TEST(ConditionTest, ResourceAttributes) {
  EXPECT_EQ(Eval("resource.name == 'projects/p/locations/r/services/frontend'"), T);
  EXPECT_EQ(Eval("resource.name != 'projects/p/locations/r/services/frontend'"), F);
  EXPECT_EQ(Eval("resource.name.startsWith('projects/p/locations/r/services/front')"), T);
  EXPECT_EQ(Eval("resource.name.startsWith(\"projects/q/\")"), F);
  EXPECT_EQ(Eval("resource.name.endsWith('/frontend')"), T);
  EXPECT_EQ(Eval("resource.type == 'run.googleapis.com/Service'"), T);
  EXPECT_EQ(Eval("resource.service == 'iam.googleapis.com'"), F);
  EXPECT_EQ(Eval("'abc'.startsWith('ab')"), T);
  EXPECT_EQ(Eval("'it\\'s' == \"it's\""), T);
}

TEST(ConditionTest, LogicFollowsCel) {
  EXPECT_EQ(Eval("true && !false"), T);
  EXPECT_EQ(Eval("false || (true && false)"), F);
  EXPECT_EQ(Eval("!(resource.name.endsWith('/admin')) && request.time < "
                 "timestamp('2030-01-01T00:00:00Z')"),
            T);
  EXPECT_EQ(Eval("true == true"), T);
  // An absent attribute is an error; CEL's && / || absorb it when the other side decides.
  ConditionContext no_type = Ctx();
  no_type.resource_type = "";
  EXPECT_EQ(Eval("resource.type == 'x'", no_type), E);
  EXPECT_EQ(Eval("!(resource.type == 'x')", no_type), E);
  EXPECT_EQ(Eval("resource.type == 'x' || true", no_type), T);
  EXPECT_EQ(Eval("resource.type == 'x' || false", no_type), E);
  EXPECT_EQ(Eval("false && resource.type == 'x'", no_type), F);
  EXPECT_EQ(Eval("resource.type == 'x' && true", no_type), E);
  EXPECT_EQ(Eval("resource.type.startsWith('run')", no_type), E);
}

void ExpectUnsupported(std::string_view expr, std::string_view part) {
  auto c = CompiledCondition::Compile(expr);
  ASSERT_FALSE(c) << expr;
  EXPECT_EQ(c.error().code, Code::kInvalidArgument);
  std::string want = "uses `" + std::string(part) + "`, which Moat does not support";
  EXPECT_NE(c.error().message.find(want), std::string::npos) << c.error().message;
  EXPECT_NE(c.error().message.find("supported: request.time"), std::string::npos);
}

TEST(ConditionTest, RejectsWhatIsOutsideTheSubsetNamingIt) {
  ExpectUnsupported("request.path.startsWith('/admin')", "request.path");
  ExpectUnsupported("resource.matchTag('env', 'prod')", "resource.matchTag()");
  ExpectUnsupported("api.getAttribute('x', [])", "api.getAttribute()");
  ExpectUnsupported("has(resource.name)", "has()");
  ExpectUnsupported("resource.name.matches('^p')", ".matches()");
  ExpectUnsupported("request.time.getHours('Europe/Berlin') > 9", "request.time.getHours()");
  ExpectUnsupported("resource.name in ['a']", "in");
  ExpectUnsupported("resource.name == 'a' + 'b'", "+");
  ExpectUnsupported("request.time < timestamp('2030-01-01T00:00:00Z') + duration('1h')", "+");
  ExpectUnsupported("size(resource.name) > 3", "size()");
  ExpectUnsupported("resource.name < 'b'", "< on strings");
  ExpectUnsupported("1 == 1", "number literals (1)");
  ExpectUnsupported("r'x' == 'x'", "r'…' literals");
}

TEST(ConditionTest, RejectsInvalidExpressions) {
  for (const char* bad : {"", "   ", "resource.name", "resource.name ==", "(true", "true)",
                          "'unterminated", "timestamp('yesterday') < request.time",
                          "request.time == 'x'", "resource.name.startsWith(true)", "!'x'",
                          "true && 'x'", "timestamp(request.time)", "true false"}) {
    auto c = CompiledCondition::Compile(bad);
    EXPECT_FALSE(c) << bad;
    if (!c) {
      EXPECT_EQ(c.error().code, Code::kInvalidArgument);
    }
  }
  auto ts = CompiledCondition::Compile("request.time < timestamp('2030-13-01T00:00:00Z')");
  ASSERT_FALSE(ts);
  EXPECT_NE(ts.error().message.find("is not an RFC 3339 timestamp"), std::string::npos);
}

TEST(ConditionTest, EnforcesLimits) {
  std::string deep(40, '(');
  deep += "true" + std::string(40, ')');
  EXPECT_FALSE(CompiledCondition::Compile(deep));
  std::string nots(100, '!');
  EXPECT_FALSE(CompiledCondition::Compile(nots + "true"));
  std::string many = "true";
  for (int i = 0; i < 13; ++i) many += " && true";
  EXPECT_FALSE(CompiledCondition::Compile(many));
  std::string twelve = "true";
  for (int i = 0; i < 11; ++i) twelve += " || false";
  EXPECT_TRUE(CompiledCondition::Compile(twelve));
  std::string huge = "resource.name == '" + std::string(kMaxExpressionBytes, 'a') + "'";
  auto c = CompiledCondition::Compile(huge);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("longer than 12800 bytes"), std::string::npos);
}

}  // namespace
}  // namespace moat::iam
