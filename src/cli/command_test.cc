// Argument parsing, help output, did-you-mean and exit codes.
#include "cli/command.h"

#include <gtest/gtest.h>

#include "cli/context.h"
#include "cli/format.h"
#include "cli/testing.h"

namespace moat::cli {
namespace {

CommandTree SmallTree() {
  CommandTree t;
  t.AddGroup({"run", "run things", ""});
  t.AddGroup({"run services", "services", ""});
  t.Add({"run services add-iam-policy-binding",
         "add a binding",
         "",
         {{"SERVICE", "svc"}},
         {{"member", FlagKind::kString, "m", "PRINCIPAL", true},
          {"allow", FlagKind::kBool, "b"},
          {"aud", FlagKind::kList, "l"},
          {"env", FlagKind::kDict, "d"},
          {"header", FlagKind::kRepeated, "h"},
          {"limit", FlagKind::kInt, "n"}},
         "yaml",
         false,
         "",
         false,
         nullptr});
  t.Add({"run services list", "list", "", {}, {}, "", true, "", false, nullptr});
  return t;
}

TEST(CliParse, FlagsInBothSpellingsListsDictsAndBools) {
  CommandTree t = SmallTree();
  auto p =
      t.Parse({"--project", "p", "run", "services", "add-iam-policy-binding", "svc",
               "--member=user:a@b", "--no-allow", "--aud=a,b", "--aud", "c", "--env=K=V,K2=V=2",
               "--header=X: 1,2", "--header", "Y: 3", "--limit", "5", "--region=r"});
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->command->path, "run services add-iam-policy-binding");
  EXPECT_EQ(p->args.at("SERVICE"), "svc");
  EXPECT_EQ(p->flags.at("project"), std::vector<std::string>{"p"});
  EXPECT_EQ(p->flags.at("member"), std::vector<std::string>{"user:a@b"});
  EXPECT_EQ(p->flags.at("allow"), std::vector<std::string>{"false"});
  EXPECT_EQ(p->flags.at("aud"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(p->flags.at("env"), (std::vector<std::string>{"K=V", "K2=V=2"}));
  EXPECT_EQ(p->flags.at("header"), (std::vector<std::string>{"X: 1,2", "Y: 3"}));
  EXPECT_EQ(p->flags.at("limit"), std::vector<std::string>{"5"});
  EXPECT_EQ(p->flags.at("region"), std::vector<std::string>{"r"});
}

TEST(CliParse, DoubleDashEndsFlags) {
  CommandTree t = SmallTree();
  auto p = t.Parse({"run", "services", "add-iam-policy-binding", "--member=x:y", "--", "--odd"});
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->args.at("SERVICE"), "--odd");
}

TEST(CliParse, UsageErrorsNameTheClosestMatch) {
  CommandTree t = SmallTree();
  auto e = t.Parse({"run", "servics", "list"});
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().message,
            "unknown command `servics` for `moat run`; did you mean `services`? (see `moat run "
            "--help`)");
  e = t.Parse({"run", "services", "add-iam-policy-binding", "s", "--membr=x"});
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message.find("unknown flag `--membr`"), std::string::npos);
  EXPECT_NE(e.error().message.find("did you mean `--member`?"), std::string::npos);
  EXPECT_NE(e.error().message.find("`moat run services add-iam-policy-binding --help`"),
            std::string::npos);
  e = t.Parse({"run", "services", "add-iam-policy-binding", "s"});
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message.find("flag `--member` is required"), std::string::npos);
  e = t.Parse({"run", "services", "add-iam-policy-binding", "--member=x:y"});
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message.find("argument SERVICE is required"), std::string::npos);
  e = t.Parse({"run", "services", "list", "extra"});
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message.find("unexpected argument `extra`"), std::string::npos);
  e = t.Parse({"run", "services", "add-iam-policy-binding", "s", "--member"});
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message.find("needs a value"), std::string::npos);
  e = t.Parse({"run", "services", "add-iam-policy-binding", "s", "--member=a:b", "--limit=x"});
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message.find("must be an integer"), std::string::npos);
  e = t.Parse({"run", "services", "add-iam-policy-binding", "s", "--member=a:b", "--env=nokey"});
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message.find("KEY=VALUE"), std::string::npos);
  e = t.Parse({"run", "services", "add-iam-policy-binding", "s", "--member=a:b", "--no-allow=1"});
  ASSERT_FALSE(e);
  e = t.Parse({"run", "services"});
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().message.find("needs a command"), std::string::npos);
  e = t.Parse({"run", "services", "list", "--no-region"});  // only bools have --no-
  ASSERT_FALSE(e);
}

TEST(CliParse, HelpAtEveryLevel) {
  CommandTree t = SmallTree();
  auto p = t.Parse({"run", "--help"});
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->help);
  EXPECT_EQ(p->help_path, "run");
  std::string group = t.Help("run services");
  EXPECT_NE(group.find("COMMANDS\n    add-iam-policy-binding    add a binding\n    list"),
            std::string::npos)
      << group;
  p = t.Parse({"run", "services", "add-iam-policy-binding", "-h"});
  ASSERT_TRUE(p);  // --help skips required-argument checks
  EXPECT_EQ(p->help_path, "run services add-iam-policy-binding");
  std::string help = t.Help(p->help_path);
  EXPECT_NE(help.find("SYNOPSIS\n    moat run services add-iam-policy-binding SERVICE "
                      "--member=PRINCIPAL [--[no-]allow]"),
            std::string::npos)
      << help;
  EXPECT_NE(help.find("REQUIRED FLAGS\n    --member=PRINCIPAL\n        m\n"), std::string::npos);
  EXPECT_NE(help.find("GLOBAL FLAGS"), std::string::npos);
  EXPECT_NE(help.find("--impersonate-service-account=SERVICE_ACCOUNT_EMAIL"), std::string::npos);
}

TEST(CliParse, ClosestMatch) {
  EXPECT_EQ(EditDistance("kitten", "sitting"), 3u);
  EXPECT_EQ(ClosestMatch("lst", {"list", "describe"}), "list");
  EXPECT_EQ(ClosestMatch("add-iam", {"add-iam-policy-binding", "get-iam-policy"}),
            "add-iam-policy-binding");
  EXPECT_EQ(ClosestMatch("zzzzzzzz", {"list", "describe"}), std::nullopt);
}

TEST(CliMain, ExitCodesAndHelpForEveryCommand) {
  testing::TestEnv t;
  EXPECT_EQ(t.Run({}), 2);
  EXPECT_EQ(t.Run({"--help"}), 0);
  EXPECT_NE(t.out.str().find("GROUPS\n    auth"), std::string::npos) << t.out.str();
  EXPECT_EQ(t.out.str().find("help-markdown"), std::string::npos);  // hidden
  EXPECT_EQ(t.Run({"run", "servces"}), 2);
  EXPECT_EQ(t.err.str(),
            "ERROR: unknown command `servces` for `moat run`; did you mean "
            "`services`? (see `moat run --help`)\n");
  for (const CommandSpec* c : Tree().Commands()) {
    std::vector<std::string> args;
    std::string word;
    for (char ch : c->path + " ") {
      if (ch == ' ') {
        args.push_back(word);
        word.clear();
      } else {
        word += ch;
      }
    }
    args.push_back("--help");
    ASSERT_EQ(t.Run(args), 0) << c->path;
    EXPECT_EQ(t.out.str().rfind("NAME\n    moat " + c->path + " - ", 0), 0u) << c->path;
    EXPECT_FALSE(c->summary.empty()) << c->path;
    ASSERT_TRUE(c->handler) << c->path;
    if (!c->default_format.empty()) {
      EXPECT_TRUE(ParseFormat(c->default_format)) << c->path;
    }
  }
}

TEST(CliMain, HelpMarkdownCoversEveryVisibleCommand) {
  testing::TestEnv t;
  ASSERT_EQ(t.Run({"help-markdown"}), 0);
  std::string md = t.out.str();
  EXPECT_EQ(md.rfind("# moat command reference\n", 0), 0u);
  for (const CommandSpec* c : Tree().Commands()) {
    bool listed = md.find("## `moat " + c->path + "`\n") != std::string::npos;
    EXPECT_EQ(listed, !c->hidden) << c->path;
  }
  EXPECT_NE(md.find("## `moat run services`\n"), std::string::npos);
  // The Markdown is the --help text verbatim, so docs cannot drift from it.
  ASSERT_EQ(t.Run({"run", "deploy", "--help"}), 0);
  std::string help = t.out.str();
  EXPECT_NE(md.find("## `moat run deploy`\n\n```text\n" + help + "```\n"), std::string::npos);
}

TEST(CliMain, IssueCommandsExist) {
  for (const char* path : {"run deploy",
                           "run services list",
                           "run services describe",
                           "run services delete",
                           "run services update",
                           "run services logs read",
                           "run services add-iam-policy-binding",
                           "run services remove-iam-policy-binding",
                           "run services get-iam-policy",
                           "run services set-iam-policy",
                           "run services call",
                           "run services proxy",
                           "projects add-iam-policy-binding",
                           "projects remove-iam-policy-binding",
                           "projects get-iam-policy",
                           "iam service-accounts create",
                           "iam service-accounts list",
                           "iam service-accounts describe",
                           "iam service-accounts update",
                           "iam service-accounts disable",
                           "iam service-accounts enable",
                           "iam service-accounts delete",
                           "iam service-accounts undelete",
                           "iam service-accounts add-iam-policy-binding",
                           "iam service-accounts get-iam-policy",
                           "iam service-accounts keys create",
                           "iam service-accounts keys list",
                           "iam service-accounts keys disable",
                           "iam service-accounts keys enable",
                           "iam service-accounts keys delete",
                           "iam roles create",
                           "iam groups create",
                           "iam users create",
                           "iam troubleshoot",
                           "auth activate-service-account",
                           "auth login",
                           "auth list",
                           "config set",
                           "auth print-identity-token"}) {
    EXPECT_NE(Tree().FindCommand(path), nullptr) << path;
  }
  const CommandSpec* deploy = Tree().FindCommand("run deploy");
  for (const char* flag :
       {"upstream", "command", "source", "service-account", "allow-unauthenticated",
        "invoker-iam-check", "add-custom-audiences", "set-env-vars"}) {
    bool found = false;
    for (const FlagSpec& f : deploy->flags) found = found || f.name == flag;
    EXPECT_TRUE(found) << flag;
  }
}

}  // namespace
}  // namespace moat::cli
