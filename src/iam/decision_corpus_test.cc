// Replays the decision corpus: tests/testdata/decisions/*.json. Each file holds policies,
// groups and custom roles, and cases {principal, resource, permission, time?, expect,
// grantedBy?, closestReason?}; see tests/testdata/decisions/README.md.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/json.h"
#include "common/time.h"
#include "iam/evaluator.h"

namespace moat::iam {
namespace {

namespace bj = boost::json;

std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Principal ParsePrincipal(std::string_view s) {
  if (s.starts_with("user:")) return Principal::User(std::string(s.substr(5)));
  if (s.starts_with("serviceAccount:")) return Principal::ServiceAccount(std::string(s.substr(15)));
  EXPECT_EQ(s, "anonymous");
  return Principal::Anonymous();
}

Policy MustParse(const bj::value& v, const std::string& where) {
  auto p = ParsePolicy(v.as_object(), where);
  EXPECT_TRUE(p) << where << ": " << (p ? "" : p.error().message);
  return p ? *p : Policy{};
}

std::vector<std::filesystem::path> CorpusFiles() {
  std::vector<std::filesystem::path> files;
  for (const auto& e :
       std::filesystem::directory_iterator(MOAT_SOURCE_DIR "/tests/testdata/decisions")) {
    if (e.path().extension() == ".json") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

TEST(DecisionCorpusTest, EveryCaseDecidesAsRecorded) {
  auto files = CorpusFiles();
  ASSERT_GE(files.size(), 4u);
  size_t total = 0;
  for (const auto& file : files) {
    SCOPED_TRACE(file.filename().string());
    auto doc = json::ParseObject(ReadFile(file), "corpus file");
    ASSERT_TRUE(doc) << doc.error().message;
    PolicyInputs in;
    if (auto* r = doc->if_contains("root")) in.root = MustParse(*r, "root");
    if (auto* ps = doc->if_contains("projects")) {
      for (const auto& kv : ps->as_object())
        in.projects[kv.key()] = MustParse(kv.value(), kv.key());
    }
    if (auto* rs = doc->if_contains("resources")) {
      for (const auto& kv : rs->as_object())
        in.resources[kv.key()] = MustParse(kv.value(), kv.key());
    }
    if (auto* gs = doc->if_contains("groups")) {
      for (const auto& kv : gs->as_object()) {
        for (const auto& m : kv.value().as_array()) {
          in.groups[kv.key()].emplace_back(m.as_string());
        }
      }
    }
    if (auto* crs = doc->if_contains("customRoles")) {
      for (const auto& cr : crs->as_array()) {
        Role role;
        role.name = cr.at("name").as_string();
        for (const auto& p : cr.at("includedPermissions").as_array()) {
          role.included_permissions.emplace_back(p.as_string());
        }
        if (auto* st = cr.as_object().if_contains("stage")) role.stage = st->as_string();
        in.custom_roles.push_back(role);
      }
    }
    // Every policy in the corpus is one Moat would accept at set time, unless marked.
    bool expect_valid = !doc->contains("invalidOnPurpose");
    auto snap = Snapshot::Build(in);
    if (expect_valid) EXPECT_TRUE(snap->warnings().empty()) << snap->warnings().front();
    for (const auto& cv : doc->at("cases").as_array()) {
      const bj::object& c = cv.as_object();
      std::string name(c.at("name").as_string());
      SCOPED_TRACE(name);
      ++total;
      TimePoint now = *ParseRfc3339("2025-06-01T00:00:00Z");
      if (auto* t = c.if_contains("time")) now = *ParseRfc3339(t->as_string());
      PrincipalSet ps = snap->Resolve(ParsePrincipal(c.at("principal").as_string()));
      Decision d = snap->Check(ps, c.at("resource").as_string(), c.at("permission").as_string(),
                               now, Explain::kYes);
      std::string expect(c.at("expect").as_string());
      ASSERT_TRUE(expect == "allow" || expect == "deny") << expect;
      EXPECT_EQ(d.allowed, expect == "allow") << d.ToString();
      if (auto* g = c.if_contains("grantedBy")) {
        const bj::object& go = g->as_object();
        if (auto* l = go.if_contains("level"))
          EXPECT_EQ(LevelName(d.granted.level), l->as_string());
        if (auto* r = go.if_contains("role")) EXPECT_EQ(d.granted.role, r->as_string());
        if (auto* m = go.if_contains("member")) EXPECT_EQ(d.granted.member, m->as_string());
        if (auto* r = go.if_contains("resource")) EXPECT_EQ(d.granted.resource, r->as_string());
      }
      if (auto* reason = c.if_contains("closestReason")) {
        ASSERT_FALSE(d.closest.empty()) << d.ToString();
        EXPECT_EQ(MissReasonName(d.closest.front().reason), reason->as_string()) << d.ToString();
      }
      // The explanation agrees with the decision, and the fast path with the explained one.
      EXPECT_EQ(snap->Check(ps, c.at("resource").as_string(), c.at("permission").as_string(), now)
                    .allowed,
                d.allowed);
    }
  }
  EXPECT_GE(total, 60u);
}

}  // namespace
}  // namespace moat::iam
