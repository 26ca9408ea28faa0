#include "cli/format.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

namespace moat::cli {
namespace {

namespace js = boost::json;

std::string R(const std::string& fmt, const std::string& json, bool list) {
  auto f = ParseFormat(fmt);
  EXPECT_TRUE(f) << fmt;
  return f ? Render(*f, js::parse(json), list) : "";
}

TEST(CliFormat, PrettyJsonSortsKeys) {
  EXPECT_EQ(ToPrettyJson(js::parse(R"({"b":[1,{"d":true,"c":null}],"a":"x","e":{},"f":[]})")),
            "{\n"
            "  \"a\": \"x\",\n"
            "  \"b\": [\n"
            "    1,\n"
            "    {\n"
            "      \"c\": null,\n"
            "      \"d\": true\n"
            "    }\n"
            "  ],\n"
            "  \"e\": {},\n"
            "  \"f\": []\n"
            "}\n");
}

TEST(CliFormat, YamlBlockStyleLikeGcloud) {
  EXPECT_EQ(ToYaml(js::parse(R"j({"version":3,"etag":"BwWWja0YfJA=","bindings":[
      {"role":"roles/run.invoker","members":["user:a@x.com","allUsers"],
       "condition":{"title":"t","expression":"request.time < timestamp('2020-10-01T00:00:00Z')"}}],
       "nested":[[1,2],[]], "empty":{}})j")),
            "bindings:\n"
            "- condition:\n"
            "    expression: request.time < timestamp('2020-10-01T00:00:00Z')\n"
            "    title: t\n"
            "  members:\n"
            "  - user:a@x.com\n"
            "  - allUsers\n"
            "  role: roles/run.invoker\n"
            "empty: {}\n"
            "etag: BwWWja0YfJA=\n"
            "nested:\n"
            "- - 1\n"
            "  - 2\n"
            "- []\n"
            "version: 3\n");
}

TEST(CliFormat, YamlQuotesAmbiguousStrings) {
  EXPECT_EQ(YamlScalar("plain text"), "plain text");
  EXPECT_EQ(YamlScalar(""), "''");
  EXPECT_EQ(YamlScalar("true"), "'true'");
  EXPECT_EQ(YamlScalar("No"), "'No'");
  EXPECT_EQ(YamlScalar("null"), "'null'");
  EXPECT_EQ(YamlScalar("123"), "'123'");
  EXPECT_EQ(YamlScalar("1.5e3"), "'1.5e3'");
  EXPECT_EQ(YamlScalar("2024-01-01T00:00:00Z"), "'2024-01-01T00:00:00Z'");
  EXPECT_EQ(YamlScalar("a: b"), "'a: b'");
  EXPECT_EQ(YamlScalar("x #y"), "'x #y'");
  EXPECT_EQ(YamlScalar("-leading"), "'-leading'");
  EXPECT_EQ(YamlScalar("*star"), "'*star'");
  EXPECT_EQ(YamlScalar("it's"), "it's");
  EXPECT_EQ(YamlScalar("'q'"), "'''q'''");
  EXPECT_EQ(YamlScalar(" pad"), "' pad'");
  EXPECT_EQ(YamlScalar("two\nlines"), "\"two\\nlines\"");
  EXPECT_EQ(YamlScalar("user:a@b.com"), "user:a@b.com");
  EXPECT_EQ(YamlScalar("http://x:80/p"), "http://x:80/p");
}

TEST(CliFormat, YamlListIsDocumentsSeparated) {
  EXPECT_EQ(R("yaml", R"([{"a":1},{"a":2}])", true), "a: 1\n---\na: 2\n");
  EXPECT_EQ(R("json", R"([{"a":1}])", true), "[\n  {\n    \"a\": 1\n  }\n]\n");
}

TEST(CliFormat, ValueSemantics) {
  EXPECT_EQ(R("value(name,tags,ok,missing,meta)",
              R"({"name":"n","tags":["a","b"],"ok":false,"meta":{"k":"v","j":1}})", false),
            "n\ta;b\tFalse\t\tj=1;k=v\n");
  EXPECT_EQ(R("value(bindings.role)", R"({"bindings":[{"role":"r1"},{"role":"r2"}]})", false),
            "r1;r2\n");
  EXPECT_EQ(R("value(bindings[1].members[0])",
              R"({"bindings":[{"members":["x"]},{"members":["y","z"]}]})", false),
            "y\n");
  EXPECT_EQ(R("value(name.basename(), name.segment(1))", R"([{"name":"projects/p/x/svc"}])", true),
            "svc\tp\n");
}

TEST(CliFormat, TableAlignsColumns) {
  EXPECT_EQ(
      R("table(name.basename():label=SERVICE, uri, displayName)",
        R"([{"name":"a/long-name","uri":"u","displayName":"D"},{"name":"b","uri":"uu"}])", true),
      "SERVICE    URI  DISPLAY_NAME\n"
      "long-name  u    D\n"
      "b          uu\n");
  EXPECT_EQ(R("table[no-heading](a,b)", R"([{"a":"x","b":["1","2"]}])", true), "x  1,2\n");
  EXPECT_EQ(R("table", R"([{"b":2,"a":"x","o":{}}])", true), "A  B\nx  2\n");
  EXPECT_EQ(R("table(a)", "[]", true), "");
  EXPECT_EQ(R("csv(a,b:label='B B')", R"([{"a":"x,y","b":"q\"r"}])", true),
            "a,B B\n\"x,y\",\"q\"\"r\"\n");
  EXPECT_EQ(R("none", R"({"a":1})", false), "");
}

TEST(CliFormat, BadFormatsAreErrors) {
  EXPECT_FALSE(ParseFormat("xml"));
  EXPECT_FALSE(ParseFormat("value"));
  EXPECT_FALSE(ParseFormat("value(a"));
  EXPECT_FALSE(ParseFormat("value(a.frob())"));
  EXPECT_FALSE(ParseFormat("value(a:wide)"));
  EXPECT_FALSE(ParseFormat("json(a)"));
  EXPECT_FALSE(ParseFormat("table[bogus](a)"));
  EXPECT_FALSE(ParseFormat("value(a[x])"));
  EXPECT_EQ(ParseFormat("xml").error().message,
            "unknown format `xml`; use json, yaml, table(…), value(…), csv(…) or none");
}

}  // namespace
}  // namespace moat::cli
