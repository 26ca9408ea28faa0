#include "cli/yaml.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <string>

#include "cli/format.h"

namespace moat::cli {
namespace {

namespace js = boost::json;

js::value Y(const std::string& text) {
  auto v = ParseYaml(text);
  EXPECT_TRUE(v) << (v ? "" : v.error().message);
  return v ? *v : js::value();
}

TEST(CliYaml, PolicyAsGcloudPrintsIt) {
  EXPECT_EQ(Y("# my policy\n"
              "bindings:\n"
              "- members:\n"
              "  - user:alice@example.com   # alice\n"
              "  - 'serviceAccount:sa@p.iam.gserviceaccount.com'\n"
              "  role: roles/run.invoker\n"
              "  condition:\n"
              "    title: \"expires\"\n"
              "    expression: request.time < timestamp('2020-10-01T00:00:00.000Z')\n"
              "etag: BwWWja0YfJA=\n"
              "version: 3\n"),
            js::parse(R"j({"bindings":[{"members":["user:alice@example.com",
                "serviceAccount:sa@p.iam.gserviceaccount.com"],"role":"roles/run.invoker",
                "condition":{"title":"expires",
                "expression":"request.time < timestamp('2020-10-01T00:00:00.000Z')"}}],
                "etag":"BwWWja0YfJA=","version":3})j"));
}

TEST(CliYaml, ScalarsFlowAndIndentedLists) {
  EXPECT_EQ(Y("---\na: 1\nb: -2.5\nc: true\nd: ~\ne:\nf: 'it''s'\ng: \"q\\\"\\n\"\n"
              "h: [x, 'y z', 3]\ni: {k: v, n: [1]}\nj: []\nk: '007'\nl:\n    - x\n    - y\n"
              "m: a: b is not a key\n"),
            js::parse(R"({"a":1,"b":-2.5,"c":true,"d":null,"e":null,"f":"it's","g":"q\"\n",
                "h":["x","y z",3],"i":{"k":"v","n":[1]},"j":[],"k":"007","l":["x","y"],
                "m":"a: b is not a key"})"));
  EXPECT_EQ(Y("- - a\n  - b\n- c\n-\n  d: 1\n"), js::parse(R"([["a","b"],"c",{"d":1}])"));
  EXPECT_EQ(Y(""), js::value(nullptr));
  EXPECT_EQ(Y("just text"), js::value("just text"));
}

TEST(CliYaml, BlockScalars) {
  EXPECT_EQ(Y("a: |\n  line1\n  line2\nb: >-\n  folded\n  text\nc: |+\n  keep\n\nd: x\n"),
            js::parse(R"({"a":"line1\nline2\n","b":"folded text","c":"keep\n\n","d":"x"})"));
}

TEST(CliYaml, JsonIsDetected) {
  EXPECT_EQ(Y(R"({"bindings": [], "etag": "ACAB"})"),
            js::parse(R"({"bindings":[],"etag":"ACAB"})"));
  EXPECT_FALSE(ParseYaml(R"({"a":1,"a":2})"));  // duplicate keys refused
}

TEST(CliYaml, ErrorsCarryLineNumbers) {
  auto e = ParseYaml("a: 1\n  b: 2\n", "policy");
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().message, "policy line 2: unexpected indentation");
  e = ParseYaml("a: 1\na: 2\n");
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message.find("duplicate key `a`"), std::string::npos);
  EXPECT_FALSE(ParseYaml("a: &x 1\nb: *x\n"));
  EXPECT_FALSE(ParseYaml("a: 'open\n"));
  EXPECT_FALSE(ParseYaml("a: [1, 2\n"));
  EXPECT_FALSE(ParseYaml("a: 1\n---\nb: 2\n"));
  EXPECT_FALSE(ParseYaml("a:\n\t- x\n"));
  EXPECT_FALSE(ParseYaml("- a\nb: 1\n"));
  std::string deep;
  for (int i = 0; i < 200; ++i) deep += std::string(i * 2, ' ') + "k:\n";
  EXPECT_FALSE(ParseYaml(deep));
  EXPECT_FALSE(ParseYaml(std::string(500, '[')));
}

TEST(CliYaml, RoundTripsTheYamlPrinter) {
  js::value v = js::parse(R"({"s":["true","123","","a: b","- x","#c","2024-01-01",
      "multi\nline","'q'","plain words"],"n":{"deep":[{"x":[[1,{"y":null}]]}]},"b":false,
      "f":1.5,"empty":{},"list":[]})");
  auto back = ParseYaml(ToYaml(v));
  ASSERT_TRUE(back) << back.error().message << "\n" << ToYaml(v);
  EXPECT_EQ(*back, v) << ToYaml(v);
}

}  // namespace
}  // namespace moat::cli
