#include "iam/policy.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "iam/roles.h"

namespace moat::iam {
namespace {

const RoleCatalog& Roles() { return RoleCatalog::Predefined(); }

Policy Parse(std::string_view text) {
  auto p = ParsePolicy(text);
  EXPECT_TRUE(p) << (p ? "" : p.error().message);
  return p ? *p : Policy{};
}

std::string ValidateMessage(std::string_view text) {
  Policy p = Parse(text);
  auto st = ValidatePolicy(p, Roles());
  if (st) return "";
  EXPECT_EQ(st.error().code, Code::kInvalidArgument);
  return st.error().message;
}

TEST(PolicyTest, RoundTripsGooglesShapeExactly) {
  const std::string text =
      R"J({"version":3,"bindings":[{"role":"roles/run.invoker","members":["user:alice@example.com","serviceAccount:sa@p.iam.gserviceaccount.com"],"condition":{"expression":"request.time < timestamp('2020-10-01T00:00:00.000Z')","title":"expirable access","description":"Does not grant access after Sep 2020"}},{"role":"roles/run.admin","members":["group:admins@example.com"]}],"auditConfigs":[{"service":"allServices","auditLogConfigs":[{"logType":"DATA_READ","exemptedMembers":["user:bob@example.com"]},{"logType":"ADMIN_READ"}]}],"etag":"BwWWja0YfJA="})J";
  Policy p = Parse(text);
  EXPECT_EQ(p.version, 3);
  ASSERT_EQ(p.bindings.size(), 2u);
  ASSERT_TRUE(p.bindings[0].condition);
  EXPECT_EQ(p.bindings[0].condition->title, "expirable access");
  EXPECT_EQ(p.audit_configs[0].audit_log_configs[0].exempted_members[0], "user:bob@example.com");
  EXPECT_EQ(p.etag, "BwWWja0YfJA=");
  EXPECT_EQ(SerializePolicy(p), text);
  EXPECT_TRUE(ValidatePolicy(p, Roles()));
}

TEST(PolicyTest, OmitsDefaultsLikeProto3Json) {
  EXPECT_EQ(SerializePolicy(Policy{}), "{}");
  Policy p;
  p.etag = "ACAB";
  EXPECT_EQ(SerializePolicy(p), R"J({"etag":"ACAB"})J");
  Policy q = Parse(R"J({"version":null,"bindings":[],"etag":"ACAB"})J");
  EXPECT_EQ(q.version, 0);
  EXPECT_EQ(SerializePolicy(q), R"J({"etag":"ACAB"})J");
}

TEST(PolicyTest, AcceptsProto3JsonVariants) {
  Policy p = Parse(
      R"J({"version":"1","audit_configs":[{"service":"run.googleapis.com","audit_log_configs":[{"log_type":3,"exempted_members":[]}]}]})J");
  EXPECT_EQ(p.version, 1);
  ASSERT_EQ(p.audit_configs.size(), 1u);
  EXPECT_EQ(p.audit_configs[0].audit_log_configs[0].log_type, "DATA_READ");
  EXPECT_EQ(
      SerializePolicy(p),
      R"J({"version":1,"auditConfigs":[{"service":"run.googleapis.com","auditLogConfigs":[{"logType":"DATA_READ"}]}]})J");
}

TEST(PolicyTest, RejectsUnknownFieldsAndBadTypes) {
  auto unknown = ParsePolicy(R"J({"bindings":[{"role":"roles/viewer","members":[],"extra":1}]})J");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().message,
            "invalid JSON payload received: unknown name `extra` at `policy.bindings[0]`: "
            "cannot find field");
  auto top = ParsePolicy(R"J({"versions":1})J");
  ASSERT_FALSE(top);
  EXPECT_NE(top.error().message.find("unknown name `versions` at `policy`"), std::string::npos);
  auto twice = ParsePolicy(R"J({"auditConfigs":[],"audit_configs":[]})J");
  ASSERT_FALSE(twice);
  EXPECT_NE(twice.error().message.find("given twice"), std::string::npos);
  auto member =
      ParsePolicy(R"J({"bindings":[{"role":"roles/viewer","members":["user:a@b.c",7]}]})J");
  ASSERT_FALSE(member);
  EXPECT_EQ(member.error().message,
            "invalid value at `policy.bindings[0].members[1]`: expected a string");
  auto etag = ParsePolicy(R"J({"etag":"not base64!"})J");
  ASSERT_FALSE(etag);
  EXPECT_EQ(etag.error().message, "invalid value at `policy.etag`: the etag must be base64");
  for (const char* bad :
       {R"J([])J", R"J({"version":1.5})J", R"J({"version":"x"})J", R"J({"version":99999999999})J",
        R"J({"bindings":{}})J", R"J({"bindings":[1]})J", R"J({"bindings":[{"condition":"x"}]})J",
        R"J({"bindings":[{"condition":{"expr":"true"}}]})J",
        R"J({"auditConfigs":[{"auditLogConfigs":[{"logType":"EVERYTHING"}]}]})J",
        R"J({"version":1,"version":3})J", R"J({"etag":"BwWWja0YfJA="} x)J"}) {
    EXPECT_FALSE(ParsePolicy(bad)) << bad;
  }
}

TEST(PolicyTest, ValidatesVersion) {
  EXPECT_EQ(ValidateMessage(R"J({"version":2})J"),
            "invalid policy version `2`: valid values are 0, 1 and 3");
  EXPECT_EQ(ValidateMessage(R"J({"version":3})J"), "");
  EXPECT_EQ(ValidateMessage(R"J({"version":0})J"), "");
}

TEST(PolicyTest, ConditionsRequireVersion3AndASupportedExpression) {
  const char* cond =
      R"J({"version":%d,"bindings":[{"role":"roles/run.invoker","members":["user:a@example.com"],"condition":{"title":"t","expression":"%s"}}]})J";
  char buf[512];
  std::snprintf(buf, sizeof buf, cond, 1, "request.time < timestamp('2030-01-01T00:00:00Z')");
  EXPECT_EQ(ValidateMessage(buf),
            "policy version `1` cannot contain conditional role bindings (role "
            "`roles/run.invoker`); set `version` to 3");
  std::snprintf(buf, sizeof buf, cond, 3, "request.time < timestamp('2030-01-01T00:00:00Z')");
  EXPECT_EQ(ValidateMessage(buf), "");
  std::snprintf(buf, sizeof buf, cond, 3, "request.path == '/x'");
  EXPECT_NE(ValidateMessage(buf).find("uses `request.path`, which Moat does not support"),
            std::string::npos);
  EXPECT_NE(
      ValidateMessage(
          R"J({"version":3,"bindings":[{"role":"roles/run.invoker","members":["user:a@example.com"],"condition":{"expression":"true"}}]})J")
          .find("needs a title"),
      std::string::npos);
}

TEST(PolicyTest, ValidatesRolesAndMembers) {
  EXPECT_EQ(
      ValidateMessage(
          R"J({"bindings":[{"role":"roles/run.superuser","members":["user:a@example.com"]}]})J"),
      "role `roles/run.superuser` is not supported");
  EXPECT_EQ(ValidateMessage(R"J({"bindings":[{"role":"roles/run.invoker","members":[]}]})J"),
            "each binding must contain at least one principal; the binding for role "
            "`roles/run.invoker` has none");
  EXPECT_EQ(ValidateMessage(
                R"J({"bindings":[{"role":"roles/run.invoker","members":["alice@example.com"]}]})J"),
            "invalid member `alice@example.com`: policy members must be of the form "
            "\"<type>:<value>\"");
  EXPECT_NE(
      ValidateMessage(R"J({"bindings":[{"members":["user:a@example.com"]}]})J").find("no role"),
      std::string::npos);
  EXPECT_EQ(
      ValidateMessage(
          R"J({"bindings":[{"role":"roles/run.invoker","members":["allUsers","allAuthenticatedUsers","domain:example.com","deleted:user:x@example.com?uid=1","principal://iam.googleapis.com/locations/global/workforcePools/p/subject/s"]}]})J"),
      "");
  // Another project's custom role.
  RoleCatalog catalog;
  Role r;
  r.name = "projects/other/roles/custom";
  r.included_permissions = {"run.routes.invoke"};
  ASSERT_TRUE(catalog.AddCustomRole(r));
  Policy p;
  p.bindings.push_back({"projects/other/roles/custom", {"user:a@example.com"}, std::nullopt});
  EXPECT_TRUE(ValidatePolicy(p, catalog, "projects/other/locations/r/services/s"));
  EXPECT_FALSE(ValidatePolicy(p, catalog, "projects/mine/locations/r/services/s"));
}

Policy WithMembers(size_t users, size_t groups, size_t bindings = 1) {
  Policy p;
  for (size_t b = 0; b < bindings; ++b) {
    Binding binding{b % 2 ? "roles/run.invoker" : "roles/run.viewer", {}, std::nullopt};
    for (size_t i = 0; i < users; ++i)
      binding.members.push_back("user:u" + std::to_string(i) + "@example.com");
    for (size_t i = 0; i < groups; ++i)
      binding.members.push_back("group:g" + std::to_string(i) + "@example.com");
    p.bindings.push_back(binding);
  }
  return p;
}

TEST(PolicyTest, EnforcesMemberLimitsCountingEachOccurrence) {
  EXPECT_TRUE(ValidatePolicy(WithMembers(1250, 250), Roles()));
  auto over = ValidatePolicy(WithMembers(1251, 250), Roles());
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().message,
            "the number of members in the policy (1,501) is larger than the maximum allowed "
            "size 1,500");
  auto groups = ValidatePolicy(WithMembers(0, 251), Roles());
  ASSERT_FALSE(groups);
  EXPECT_EQ(groups.error().message,
            "the number of groups in the policy (251) is larger than the maximum allowed size 250");
  // Each occurrence counts: 2 bindings × 751 members.
  EXPECT_FALSE(ValidatePolicy(WithMembers(751, 0, 2), Roles()));
  EXPECT_TRUE(ValidatePolicy(WithMembers(750, 0, 2), Roles()));
  // Duplicates within a binding are folded before counting.
  Policy dup = WithMembers(1500, 0);
  dup.bindings[0].members.push_back("user:U0@example.com");
  EXPECT_TRUE(ValidatePolicy(dup, Roles()));
}

TEST(PolicyTest, NormalizeFoldsDuplicatesAndMergesEqualBindings) {
  Policy p = Parse(R"J({"version":3,"bindings":[
    {"role":"roles/run.invoker","members":["user:Alice@example.com","user:alice@EXAMPLE.com","group:g@example.com"]},
    {"role":"roles/run.invoker","members":["user:bob@example.com","group:G@example.com"],"condition":{"title":"t","expression":"true"}},
    {"role":"roles/run.invoker","members":["user:carol@example.com","user:alice@example.com"]}]})J");
  NormalizePolicy(p);
  ASSERT_EQ(p.bindings.size(), 2u);
  EXPECT_EQ(p.bindings[0].members,
            (std::vector<std::string>{"user:Alice@example.com", "group:g@example.com",
                                      "user:carol@example.com"}));
  EXPECT_TRUE(p.bindings[1].condition);
  Policy again = p;
  NormalizePolicy(again);
  EXPECT_EQ(again, p);
}

TEST(PolicyTest, FormatForRequestedVersion) {
  Policy plain =
      Parse(R"J({"version":3,"bindings":[{"role":"roles/run.invoker","members":["allUsers"]}]})J");
  EXPECT_EQ(FormatForVersion(plain, 3)->version, 1);
  EXPECT_EQ(FormatForVersion(plain, 0)->version, 1);
  EXPECT_EQ(FormatForVersion(Policy{}, 3)->version, 0);
  Policy cond = Parse(
      R"J({"version":3,"bindings":[{"role":"roles/run.invoker","members":["allUsers"],"condition":{"title":"t","expression":"true"}}]})J");
  EXPECT_EQ(FormatForVersion(cond, 3)->version, 3);
  auto low = FormatForVersion(cond, 1);
  ASSERT_FALSE(low);
  EXPECT_EQ(low.error().message,
            "requested policy version (1) cannot be less than the existing policy version (3)");
  EXPECT_FALSE(FormatForVersion(plain, 2));
}

TEST(PolicyTest, AddAndRemoveMemberLikeGcloud) {
  Policy p;
  EXPECT_TRUE(*AddMember(p, "roles/run.invoker", "user:alice@example.com"));
  EXPECT_FALSE(*AddMember(p, "roles/run.invoker", "user:ALICE@example.com"));
  EXPECT_TRUE(*AddMember(p, "roles/run.invoker", "allUsers"));
  Condition c{"request.time < timestamp('2030-01-01T00:00:00Z')", "until 2030", "", ""};
  EXPECT_TRUE(*AddMember(p, "roles/run.invoker", "user:bob@example.com", c));
  EXPECT_EQ(p.version, 3);
  ASSERT_EQ(p.bindings.size(), 2u);
  EXPECT_FALSE(AddMember(p, "roles/run.invoker", "bob"));

  auto missing = RemoveMember(p, "roles/run.invoker", "user:bob@example.com");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Code::kNotFound);
  EXPECT_EQ(missing.error().message,
            "policy binding with the specified principal, role, and condition not found!");
  EXPECT_TRUE(RemoveMember(p, "roles/run.invoker", "user:bob@example.com", c));
  ASSERT_EQ(p.bindings.size(), 1u);  // the emptied conditional binding is gone
  EXPECT_TRUE(RemoveMember(p, "roles/run.invoker", "user:Alice@example.com"));
  EXPECT_EQ(p.bindings[0].members, (std::vector<std::string>{"allUsers"}));
}

TEST(PolicyTest, DiffListsRemovalsThenAdditions) {
  Policy before = Parse(
      R"J({"bindings":[{"role":"roles/run.invoker","members":["user:a@example.com","user:b@example.com"]}]})J");
  Policy after = Parse(
      R"J({"version":3,"bindings":[{"role":"roles/run.invoker","members":["user:B@example.com","allUsers"]},{"role":"roles/run.admin","members":["user:a@example.com"],"condition":{"title":"t","expression":"true"}}]})J");
  auto d = DiffPolicies(before, after);
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0].action, BindingDelta::Action::kRemove);
  EXPECT_EQ(d[0].member, "user:a@example.com");
  EXPECT_EQ(d[1].action, BindingDelta::Action::kAdd);
  EXPECT_EQ(d[1].member, "allUsers");
  EXPECT_EQ(d[2].role, "roles/run.admin");
  EXPECT_TRUE(d[2].condition);
  EXPECT_EQ(boost::json::serialize(BindingDeltasToJson({d[0]})),
            R"J([{"action":"REMOVE","role":"roles/run.invoker","member":"user:a@example.com"}])J");
  EXPECT_TRUE(DiffPolicies(after, after).empty());
}

}  // namespace
}  // namespace moat::iam
