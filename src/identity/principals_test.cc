#include "identity/principals.h"

#include <gtest/gtest.h>

#include "common/time.h"
#include "identity/directory_loader.h"
#include "store/memory_store.h"

namespace moat::identity {
namespace {

class PrincipalsTest : public ::testing::Test {
 protected:
  FakeClock clock_{*ParseRfc3339("2024-05-01T12:00:00Z")};
  store::MemoryStore store_{&clock_};
  Users users_{store_, clock_};
  Groups groups_{store_};
  TrustedIssuers issuers_{store_};
};

TEST_F(PrincipalsTest, PasswordsAreHashedWithArgon2id) {
  auto u = users_.Create("Alice@Example.com", "correct horse", "Alice");
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(u->email, "alice@example.com");
  EXPECT_EQ(u->unique_id.size(), 21u);
  EXPECT_EQ(u->password_hash.rfind("$argon2id$", 0), 0u);
  EXPECT_EQ(u->password_hash.find("correct horse"), std::string::npos);
  auto doc = store_.Get(store::Collection::kUsers, "alice@example.com");
  ASSERT_TRUE(doc && *doc);
  EXPECT_EQ((*doc)->data.find("correct horse"), std::string::npos);
  // Two hashes of one password differ (random salt).
  EXPECT_NE(*HashPassword("correct horse"), *HashPassword("correct horse"));
  EXPECT_TRUE(CheckPassword(u->password_hash, "correct horse"));
  EXPECT_FALSE(CheckPassword(u->password_hash, "correct horsE"));
  EXPECT_FALSE(CheckPassword("not a hash", "correct horse"));
}

TEST_F(PrincipalsTest, VerifyPasswordGivesOneAnswerForUnknownUserAndWrongPassword) {
  ASSERT_TRUE(users_.Create("alice@example.com", "correct horse", ""));
  auto ok = users_.VerifyPassword("ALICE@example.com", "correct horse");
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->email, "alice@example.com");
  auto wrong = users_.VerifyPassword("alice@example.com", "battery staple");
  auto unknown = users_.VerifyPassword("bob@example.com", "correct horse");
  auto malformed = users_.VerifyPassword("not-an-email", "correct horse");
  ASSERT_FALSE(wrong);
  ASSERT_FALSE(unknown);
  ASSERT_FALSE(malformed);
  EXPECT_EQ(wrong.error().code, Code::kUnauthenticated);
  EXPECT_EQ(wrong.error().message, unknown.error().message);
  EXPECT_EQ(wrong.error().message, malformed.error().message);
  EXPECT_EQ(unknown.error().code, Code::kUnauthenticated);

  ASSERT_TRUE(users_.Disable("alice@example.com"));
  auto disabled = users_.VerifyPassword("alice@example.com", "correct horse");
  ASSERT_FALSE(disabled);
  EXPECT_EQ(disabled.error().code, Code::kPermissionDenied);
  // A wrong password on a disabled user still says nothing about the account.
  EXPECT_EQ(users_.VerifyPassword("alice@example.com", "nope nope").error().code,
            Code::kUnauthenticated);
  ASSERT_TRUE(users_.Enable("alice@example.com"));
  EXPECT_TRUE(users_.VerifyPassword("alice@example.com", "correct horse"));
}

TEST_F(PrincipalsTest, UserLifecycle) {
  auto short_pw = users_.Create("a@example.com", "1234567", "");
  ASSERT_FALSE(short_pw);
  EXPECT_EQ(short_pw.error().code, Code::kInvalidArgument);
  EXPECT_EQ(short_pw.error().message, "password must be at least 8 characters long");
  EXPECT_EQ(users_.Create("nope", "12345678", "").error().code, Code::kInvalidArgument);
  ASSERT_TRUE(users_.Create("a@example.com", "12345678", "A"));
  EXPECT_EQ(users_.Create("A@example.com", "12345678", "").error().code, Code::kAlreadyExists);
  ASSERT_TRUE(users_.Create("b@example.com", "12345678", "B"));

  ASSERT_TRUE(users_.SetPassword("a@example.com", "new password"));
  EXPECT_FALSE(users_.VerifyPassword("a@example.com", "12345678"));
  EXPECT_TRUE(users_.VerifyPassword("a@example.com", "new password"));
  EXPECT_EQ(users_.SetPassword("a@example.com", "short").error().code, Code::kInvalidArgument);
  EXPECT_EQ(users_.SetPassword("zz@example.com", "long enough").error().code, Code::kNotFound);

  auto list = users_.List();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->users.size(), 2u);
  EXPECT_EQ(list->users[0].email, "a@example.com");
  auto page = users_.List(1);
  ASSERT_TRUE(page);
  EXPECT_EQ(page->users.size(), 1u);
  EXPECT_FALSE(page->next_page_token.empty());

  EXPECT_EQ(users_.Get("a@example.com")->display_name, "A");
  ASSERT_TRUE(users_.Delete("a@example.com"));
  EXPECT_EQ(users_.Get("a@example.com").error().code, Code::kNotFound);
  EXPECT_EQ(users_.Delete("a@example.com").error().code, Code::kNotFound);
  EXPECT_EQ(users_.Disable("a@example.com").error().code, Code::kNotFound);
}

TEST_F(PrincipalsTest, GroupMembership) {
  auto g = groups_.Create(
      "Eng@Example.com", "Engineering", "all engineers",
      {"user:Alice@example.com", "user:alice@example.com", "group:admins@example.com"});
  ASSERT_TRUE(g) << g.error().message;
  EXPECT_EQ(g->email, "eng@example.com");
  EXPECT_EQ(g->members,
            (std::vector<std::string>{"user:alice@example.com", "group:admins@example.com"}));
  EXPECT_EQ(groups_.Create("eng@example.com", "", "").error().code, Code::kAlreadyExists);
  EXPECT_EQ(groups_.Create("x@example.com", "", "", {"domain:example.com"}).error().code,
            Code::kInvalidArgument);

  auto added =
      groups_.AddMember("eng@example.com", "serviceAccount:robot-1@p.iam.gserviceaccount.com");
  ASSERT_TRUE(added);
  EXPECT_EQ(added->members.size(), 3u);
  auto again =
      groups_.AddMember("eng@example.com", "serviceAccount:ROBOT-1@p.iam.gserviceaccount.com");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->members.size(), 3u);  // idempotent
  for (std::string_view bad : {"alice@example.com", "user:", "allUsers", "user:nope"}) {
    EXPECT_EQ(groups_.AddMember("eng@example.com", bad).error().code, Code::kInvalidArgument)
        << bad;
  }
  EXPECT_EQ(groups_.AddMember("nobody@example.com", "user:a@b.com").error().code, Code::kNotFound);

  // Cycles are data, not errors.
  ASSERT_TRUE(groups_.Create("admins@example.com", "", "", {"group:eng@example.com"}));

  auto removed = groups_.RemoveMember("eng@example.com", "user:alice@example.com");
  ASSERT_TRUE(removed);
  EXPECT_EQ(removed->members.size(), 2u);
  auto absent = groups_.RemoveMember("eng@example.com", "user:alice@example.com");
  ASSERT_FALSE(absent);
  EXPECT_EQ(absent.error().code, Code::kNotFound);
  EXPECT_NE(absent.error().message.find("is not a member"), std::string::npos);

  EXPECT_EQ(groups_.List()->groups.size(), 2u);
  EXPECT_EQ(groups_.Get("eng@example.com")->members.size(), 2u);
  ASSERT_TRUE(groups_.Delete("admins@example.com"));
  EXPECT_EQ(groups_.Delete("admins@example.com").error().code, Code::kNotFound);
  EXPECT_EQ(groups_.Get("admins@example.com").error().code, Code::kNotFound);
}

TEST_F(PrincipalsTest, TrustedIssuers) {
  auto t = issuers_.Create("corp", "https://idp.example.com", "https://idp.example.com/jwks",
                           {"moat", "moat"});
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->audiences, std::vector<std::string>{"moat"});
  EXPECT_TRUE(
      issuers_.Create("local", "http://127.0.0.1:5556/dex", "http://localhost:5556/keys", {}));
  EXPECT_EQ(issuers_.Create("corp", "https://other.example.com", "https://other.example.com/k", {})
                .error()
                .code,
            Code::kAlreadyExists);
  EXPECT_EQ(issuers_.Create("corp2", "https://idp.example.com", "https://idp.example.com/k", {})
                .error()
                .code,
            Code::kAlreadyExists);
  for (auto [iss, jwks] : std::vector<std::pair<std::string, std::string>>{
           {"http://idp.example.com", "https://idp.example.com/k"},
           {"https://idp2.example.com", "ftp://idp2.example.com/k"},
           {"https://idp2.example.com?x=1", "https://idp2.example.com/k"},
           {"https://user@idp2.example.com", "https://idp2.example.com/k"},
           {"https://", "https://idp2.example.com/k"},
           {"https://idp2.example.com", "https://idp2.example.com/k#frag"}}) {
    EXPECT_EQ(issuers_.Create("x", iss, jwks, {}).error().code, Code::kInvalidArgument) << iss;
  }
  EXPECT_EQ(issuers_.Create("Bad_Id", "https://a.example.com", "https://a.example.com/k", {})
                .error()
                .code,
            Code::kInvalidArgument);
  EXPECT_EQ(issuers_.List()->size(), 2u);
  EXPECT_EQ(issuers_.Get("corp")->jwks_uri, "https://idp.example.com/jwks");
  ASSERT_TRUE(issuers_.Delete("local"));
  EXPECT_EQ(issuers_.Delete("local").error().code, Code::kNotFound);
  EXPECT_EQ(issuers_.Get("local").error().code, Code::kNotFound);
}

TEST_F(PrincipalsTest, LoadDirectorySeesUsersGroupsAndIssuers) {
  ASSERT_TRUE(users_.Create("alice@example.com", "correct horse", "Alice"));
  ASSERT_TRUE(groups_.Create("eng@example.com", "", "", {"user:alice@example.com"}));
  ASSERT_TRUE(issuers_.Create("corp", "https://idp.example.com", "https://idp.example.com/k", {}));
  auto d = LoadDirectory(store_);
  ASSERT_TRUE(d);
  ASSERT_NE((*d)->FindUser("ALICE@example.com"), nullptr);
  EXPECT_FALSE((*d)->FindUser("alice@example.com")->disabled);
  ASSERT_NE((*d)->FindGroup("eng@example.com"), nullptr);
  EXPECT_EQ((*d)->FindGroup("eng@example.com")->members.size(), 1u);
  ASSERT_NE((*d)->FindIssuer("https://idp.example.com"), nullptr);
  ASSERT_TRUE(users_.Disable("alice@example.com"));
  auto d2 = LoadDirectory(store_);
  ASSERT_TRUE(d2);
  EXPECT_TRUE((*d2)->FindUser("alice@example.com")->disabled);
  EXPECT_GT((*d2)->revision(), (*d)->revision());
}

}  // namespace
}  // namespace moat::identity
