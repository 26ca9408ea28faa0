#include "cli/config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

namespace moat::cli {
namespace {

class CliConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/moat_cli_cfg_XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

mode_t Mode(const std::string& path) {
  struct stat st;
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 0777;
}

TEST_F(CliConfig, DirectoryResolution) {
  EXPECT_EQ(*ConfigDir({{"MOAT_CONFIG", "/x"}, {"HOME", "/h"}}), "/x");
  EXPECT_EQ(*ConfigDir({{"HOME", "/h"}}), "/h/.config/moat");
  EXPECT_FALSE(ConfigDir({}));
}

TEST_F(CliConfig, SaveCreatesPrivateFilesAndLoadsBack) {
  ::umask(022);
  std::string dir = dir_ + "/a/b";
  auto c = Config::Load(dir);
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->Set("project", "p"));
  ASSERT_TRUE(c->Set("api_endpoint", "http://127.0.0.1:1"));
  EXPECT_FALSE(c->Set("api_endpoint", "127.0.0.1:1"));
  EXPECT_FALSE(c->Set("region", "a\nb"));
  c->PutAccount("u@x", {{"type", "user"}, {"refresh_token", "r"}});
  ASSERT_TRUE(c->Save());
  EXPECT_EQ(Mode(dir_ + "/a"), 0700u);
  EXPECT_EQ(Mode(dir), 0700u);
  EXPECT_EQ(Mode(dir + "/config"), 0600u);
  EXPECT_EQ(Mode(dir + "/credentials.json"), 0600u);
  auto again = Config::Load(dir);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->Get("project"), "p");
  EXPECT_EQ(again->Get("api_endpoint"), "http://127.0.0.1:1");
  ASSERT_NE(again->Account("u@x"), nullptr);
  EXPECT_EQ(again->Account("u@x")->at("refresh_token"), "r");
  // No temp files are left behind.
  int files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir)) files += e.is_regular_file();
  EXPECT_EQ(files, 2);
}

TEST_F(CliConfig, WritePrivateFileReplacesAndStays0600) {
  std::string path = dir_ + "/k.json";
  ASSERT_TRUE(WritePrivateFile(path, "one"));
  ::chmod(path.c_str(), 0644);
  ASSERT_TRUE(WritePrivateFile(path, "two"));
  EXPECT_EQ(*ReadFile(path), "two");
  EXPECT_EQ(Mode(path), 0600u);
  EXPECT_EQ(ReadFile(dir_ + "/missing").error().code, Code::kNotFound);
}

TEST_F(CliConfig, BadFilesAreCleanErrors) {
  FILE* f = std::fopen((dir_ + "/config").c_str(), "w");
  std::fputs("[core]\nproject = p\nbogus line\n", f);
  std::fclose(f);
  auto c = Config::Load(dir_);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("line 3"), std::string::npos);
  f = std::fopen((dir_ + "/config").c_str(), "w");
  std::fputs("core/project = p\n", f);
  std::fclose(f);
  f = std::fopen((dir_ + "/credentials.json").c_str(), "w");
  std::fputs("{not json", f);
  std::fclose(f);
  ::chmod((dir_ + "/credentials.json").c_str(), 0600);
  c = Config::Load(dir_);
  ASSERT_FALSE(c);
}

TEST_F(CliConfig, KeyFileValidation) {
  boost::json::object key{{"type", "service_account"},
                          {"client_email", "a@p.iam.gserviceaccount.com"},
                          {"private_key", "pem"},
                          {"private_key_id", "k"}};
  EXPECT_EQ(*ValidateKeyFile(key), "a@p.iam.gserviceaccount.com");
  key.erase("private_key_id");
  EXPECT_EQ(ValidateKeyFile(key).error().message, "key file is missing `private_key_id`");
  key["type"] = "authorized_user";
  EXPECT_FALSE(ValidateKeyFile(key));
}

TEST_F(CliConfig, PropertyAliases) {
  EXPECT_EQ(CanonicalProperty("run/region"), "region");
  EXPECT_EQ(CanonicalProperty("core/account"), "account");
  EXPECT_EQ(CanonicalProperty("nope"), std::nullopt);
}

}  // namespace
}  // namespace moat::cli
