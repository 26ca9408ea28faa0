#include "iam/member.h"

#include <gtest/gtest.h>

namespace moat::iam {
namespace {

TEST(MemberTest, ParsesEveryGoogleForm) {
  struct Case {
    const char* text;
    MemberKind kind;
    const char* key;
  } cases[] = {
      {"allUsers", MemberKind::kAllUsers, "allUsers"},
      {"allAuthenticatedUsers", MemberKind::kAllAuthenticatedUsers, "allAuthenticatedUsers"},
      {"user:Alice@Example.com", MemberKind::kUser, "user:alice@example.com"},
      {"serviceAccount:sa@p.iam.gserviceaccount.com", MemberKind::kServiceAccount,
       "serviceAccount:sa@p.iam.gserviceaccount.com"},
      {"group:eng@example.com", MemberKind::kGroup, "group:eng@example.com"},
      {"domain:Example.COM", MemberKind::kDomain, "domain:example.com"},
      {"deleted:user:bob@example.com?uid=123456789", MemberKind::kDeleted,
       "deleted:user:bob@example.com?uid=123456789"},
      {"deleted:serviceAccount:sa@p.iam.gserviceaccount.com?uid=1", MemberKind::kDeleted,
       "deleted:serviceAccount:sa@p.iam.gserviceaccount.com?uid=1"},
      {"deleted:group:g@example.com?uid=42", MemberKind::kDeleted,
       "deleted:group:g@example.com?uid=42"},
      {"serviceAccount:my-proj.svc.id.goog[default/ksa]", MemberKind::kKubernetesSa,
       "serviceAccount:my-proj.svc.id.goog[default/ksa]"},
      {"principal://iam.googleapis.com/locations/global/workforcePools/pool/subject/alice",
       MemberKind::kFederated,
       "principal://iam.googleapis.com/locations/global/workforcePools/pool/subject/alice"},
      {"principalSet://iam.googleapis.com/locations/global/workforcePools/pool/*",
       MemberKind::kFederated,
       "principalSet://iam.googleapis.com/locations/global/workforcePools/pool/*"},
  };
  for (const auto& c : cases) {
    auto m = ParseMember(c.text);
    ASSERT_TRUE(m) << c.text << ": " << m.error().message;
    EXPECT_EQ(m->kind, c.kind) << c.text;
    EXPECT_EQ(m->Key(), c.key);
    EXPECT_EQ(m->text, c.text);
  }
}

TEST(MemberTest, OnlyBuiltInIdentitiesCanMatch) {
  EXPECT_TRUE(ParseMember("user:a@b.c")->CanMatch());
  EXPECT_TRUE(ParseMember("domain:b.c")->CanMatch());
  EXPECT_FALSE(ParseMember("deleted:user:a@b.c?uid=1")->CanMatch());
  EXPECT_FALSE(ParseMember("principalSet://iam.googleapis.com/x/*")->CanMatch());
}

TEST(MemberTest, RejectsMalformedMembersWithGoogleWording) {
  auto m = ParseMember("alice@example.com");
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, Code::kInvalidArgument);
  EXPECT_EQ(m.error().message,
            "invalid member `alice@example.com`: policy members must be of the form "
            "\"<type>:<value>\"");
  auto foo = ParseMember("foo:bar");
  ASSERT_FALSE(foo);
  EXPECT_NE(foo.error().message.find("unknown member type `foo`"), std::string::npos);
  for (const char* bad : {"",
                          "user:",
                          "user:alice",
                          "user:@example.com",
                          "user:alice@",
                          "user:a@b@c.com",
                          "user:a b@example.com",
                          "group:eng@-bad-.com",
                          "domain:",
                          "domain:exa mple.com",
                          "domain:a..b",
                          "serviceAccount:nope",
                          "deleted:user:a@b.com",
                          "deleted:user:a@b.com?uid=",
                          "deleted:user:a@b.com?uid=12x",
                          "deleted:domain:b.com?uid=1",
                          "allusers",
                          "User:a@b.com",
                          "principal://",
                          "principalSet://iam.googleapis.com"}) {
    EXPECT_FALSE(ParseMember(bad)) << bad;
  }
}

TEST(MemberTest, EmailAndDnsHelpers) {
  EXPECT_TRUE(IsPlausibleEmail("first.last+tag@sub.example.co"));
  EXPECT_TRUE(IsPlausibleEmail("alice@localhost"));
  EXPECT_FALSE(IsPlausibleEmail(".alice@example.com"));
  EXPECT_FALSE(IsPlausibleEmail("al..ice@example.com"));
  EXPECT_FALSE(IsPlausibleEmail(std::string(65, 'a') + "@example.com"));
  EXPECT_TRUE(IsDnsName("a-b.example.com"));
  EXPECT_FALSE(IsDnsName(std::string(64, 'a') + ".com"));
  EXPECT_EQ(AsciiLower("MiXeD@Ex.COM"), "mixed@ex.com");
}

}  // namespace
}  // namespace moat::iam
