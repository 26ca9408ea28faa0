#include "iam/evaluator.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <thread>

#include "common/time.h"

namespace moat::iam {
namespace {

constexpr std::string_view kSvc = "projects/p/locations/r/services/s";

TimePoint Now() { return *ParseRfc3339("2025-06-01T00:00:00Z"); }

Policy P(std::string_view json) {
  auto p = ParsePolicy(json);
  EXPECT_TRUE(p) << p.error().message;
  return *p;
}

TEST(EvaluatorTest, DefaultDenyOnAnEmptySnapshot) {
  auto snap = Snapshot::Empty();
  for (auto principal : {Principal::Anonymous(), Principal::User("a@example.com")}) {
    Decision d =
        snap->Check(snap->Resolve(principal), kSvc, "run.routes.invoke", Now(), Explain::kYes);
    EXPECT_FALSE(d.allowed);
    EXPECT_TRUE(d.closest.empty());
    EXPECT_NE(d.ToString().find("is not granted"), std::string::npos);
  }
}

TEST(EvaluatorTest, DecisionExplainsTheGrant) {
  PolicyInputs in;
  in.resources[std::string(kSvc)] =
      P(R"J({"bindings":[{"role":"roles/run.invoker","members":["user:alice@example.com"]}]})J");
  auto snap = Snapshot::Build(std::move(in));
  Decision d = snap->Check(snap->Resolve(Principal::User("alice@example.com")), kSvc,
                           "run.routes.invoke", Now());
  ASSERT_TRUE(d.allowed);
  EXPECT_EQ(d.granted.level, Level::kResource);
  EXPECT_EQ(d.granted.resource, kSvc);
  EXPECT_EQ(d.granted.binding_index, 0u);
  EXPECT_EQ(d.ToString(),
            "`run.routes.invoke` is granted to `user:alice@example.com` by role "
            "`roles/run.invoker` in the resource policy of `projects/p/locations/r/services/s`");
  auto j = d.ToJson();
  EXPECT_EQ(j["allowed"], true);
  EXPECT_EQ(j["grantedBy"].as_object()["role"], "roles/run.invoker");
  EXPECT_EQ(j["grantedBy"].as_object()["level"], "resource");
}

TEST(EvaluatorTest, DenialListsClosestBindingsMostPromisingFirst) {
  PolicyInputs in;
  in.projects["p"] = P(R"J({"version":3,"bindings":[
      {"role":"roles/run.invoker","members":["user:bob@example.com"]},
      {"role":"roles/run.viewer","members":["user:alice@example.com"]},
      {"role":"roles/run.invoker","members":["user:alice@example.com"],"condition":{"title":"expired","expression":"request.time < timestamp('2020-01-01T00:00:00Z')"}}]})J");
  auto snap = Snapshot::Build(std::move(in));
  auto ps = snap->Resolve(Principal::User("alice@example.com"));
  Decision d = snap->Check(ps, kSvc, "run.routes.invoke", Now(), Explain::kYes);
  ASSERT_FALSE(d.allowed);
  ASSERT_EQ(d.closest.size(), 3u);
  EXPECT_EQ(d.closest[0].reason, MissReason::kConditionFalse);
  EXPECT_EQ(d.closest[0].binding.condition_title, "expired");
  EXPECT_EQ(d.closest[1].reason, MissReason::kRoleLacksPermission);
  EXPECT_EQ(d.closest[1].binding.role, "roles/run.viewer");
  EXPECT_EQ(d.closest[2].reason, MissReason::kPrincipalNotMember);
  EXPECT_EQ(d.closest[2].binding.level, Level::kProject);
  std::string s = d.ToString();
  EXPECT_NE(s.find("condition `expired`: the condition evaluated to false"), std::string::npos)
      << s;
  EXPECT_EQ(d.ToJson()["closest"].as_array()[0].as_object()["reason"], "CONDITION_FALSE");
  // Without Explain the denial carries no list (and does not allocate one).
  EXPECT_TRUE(snap->Check(ps, kSvc, "run.routes.invoke", Now()).closest.empty());
  // The answer came after evaluating a condition: it may change with time.
  EXPECT_TRUE(d.time_dependent);
}

// Whether a Decision may change with request.time: only when a condition was evaluated on
// the way to it (the gateway keeps answers that are not).
TEST(EvaluatorTest, DecisionsSayWhetherTheyDependOnTime) {
  PolicyInputs in;
  in.projects["p"] = P(R"J({"version":3,"bindings":[
      {"role":"roles/run.invoker","members":["user:bob@example.com"]},
      {"role":"roles/run.invoker","members":["user:carol@example.com"],"condition":{"title":"until","expression":"request.time < timestamp('2030-01-01T00:00:00Z')"}}]})J");
  auto snap = Snapshot::Build(std::move(in));
  auto check = [&](const Principal& p, TimePoint t) {
    return snap->Check(snap->Resolve(p), kSvc, "run.routes.invoke", t);
  };
  Decision bob = check(Principal::User("bob@example.com"), Now());
  EXPECT_TRUE(bob.allowed);
  EXPECT_FALSE(bob.time_dependent);
  Decision carol = check(Principal::User("carol@example.com"), Now());
  EXPECT_TRUE(carol.allowed);
  EXPECT_TRUE(carol.time_dependent);
  Decision later =
      check(Principal::User("carol@example.com"), *ParseRfc3339("2031-01-01T00:00:00Z"));
  EXPECT_FALSE(later.allowed);
  EXPECT_TRUE(later.time_dependent);
  Decision anyone = check(Principal::Anonymous(), Now());
  EXPECT_FALSE(anyone.allowed);
  EXPECT_FALSE(anyone.time_dependent);  // no binding lists allUsers: nothing was evaluated
}

TEST(EvaluatorTest, UnsupportedConditionsAndUnknownRolesNeverGrantAndAreReported) {
  PolicyInputs in;
  in.resources[std::string(kSvc)] = P(R"J({"version":3,"bindings":[
      {"role":"roles/run.invoker","members":["user:a@example.com"],"condition":{"title":"t","expression":"request.path == '/'"}},
      {"role":"roles/run.nonexistent","members":["user:a@example.com"]},
      {"role":"roles/run.invoker","members":["not-a-member"]}]})J");
  auto snap = Snapshot::Build(std::move(in));
  EXPECT_EQ(snap->warnings().size(), 3u);
  Decision d = snap->Check(snap->Resolve(Principal::User("a@example.com")), kSvc,
                           "run.routes.invoke", Now(), Explain::kYes);
  EXPECT_FALSE(d.allowed);
  ASSERT_EQ(d.closest.size(), 3u);
  EXPECT_EQ(d.closest[0].reason, MissReason::kConditionInvalid);
  EXPECT_EQ(d.closest[1].reason, MissReason::kRoleUnknown);
  EXPECT_EQ(d.closest[2].reason, MissReason::kPrincipalNotMember);  // the unparseable member
}

TEST(EvaluatorTest, PrincipalSetIncludesGroupsDomainAndPublicMembers) {
  PolicyInputs in;
  in.resources[std::string(kSvc)] = P(
      R"J({"bindings":[{"role":"roles/run.invoker","members":["group:outer@example.com","domain:example.com","allAuthenticatedUsers"]}]})J");
  in.groups["outer@example.com"] = {"group:inner@example.com"};
  in.groups["inner@example.com"] = {"user:alice@example.com", "group:outer@example.com"};
  auto snap = Snapshot::Build(std::move(in));
  auto ps = snap->Resolve(Principal::User("Alice@Example.com"));
  EXPECT_EQ(ps.groups, (std::vector<std::string>{"inner@example.com", "outer@example.com"}));
  EXPECT_EQ(ps.member_ids.size(), 6u);  // self, 2 groups, domain, allAuthenticatedUsers, allUsers
  auto anon = snap->Resolve(Principal::Anonymous());
  EXPECT_EQ(anon.member_ids.size(), 1u);
  EXPECT_TRUE(anon.groups.empty());
}

TEST(EvaluatorTest, APrincipalSetFromAnOlderSnapshotIsReResolved) {
  PolicyInputs a;
  a.resources[std::string(kSvc)] =
      P(R"J({"bindings":[{"role":"roles/run.invoker","members":["user:x@example.com"]}]})J");
  auto old_snap = Snapshot::Build(a);
  auto ps = old_snap->Resolve(Principal::User("bob@example.com"));
  PolicyInputs b;
  b.resources[std::string(kSvc)] = P(
      R"J({"bindings":[{"role":"roles/run.invoker","members":["user:y@example.com","user:bob@example.com"]}]})J");
  auto new_snap = Snapshot::Build(b);
  EXPECT_NE(old_snap->id(), new_snap->id());
  EXPECT_FALSE(old_snap->Check(ps, kSvc, "run.routes.invoke", Now()).allowed);
  EXPECT_TRUE(new_snap->Check(ps, kSvc, "run.routes.invoke", Now()).allowed);
}

TEST(EvaluatorTest, TestPermissionsReturnsTheHeldSubsetInOrder) {
  PolicyInputs in;
  in.projects["p"] =
      P(R"J({"bindings":[{"role":"roles/run.developer","members":["user:d@example.com"]}]})J");
  auto snap = Snapshot::Build(std::move(in));
  auto held = snap->TestPermissions(snap->Resolve(Principal::User("d@example.com")), kSvc,
                                    {"run.services.setIamPolicy", "run.routes.invoke",
                                     "bogus.perm.x", "run.services.get", "run.routes.invoke"},
                                    Now());
  EXPECT_EQ(held, (std::vector<std::string>{"run.routes.invoke", "run.services.get"}));
}

TEST(EvaluatorTest, FindPolicyAndResourceAttributes) {
  PolicyInputs in;
  in.root = P(R"J({"bindings":[{"role":"roles/viewer","members":["user:r@example.com"]}]})J");
  in.projects["p"] = P(R"J({"etag":"AAAA"})J");
  in.resources[std::string(kSvc)] = P(R"J({"etag":"BBBB"})J");
  in.resources["projects/p"] = P(R"J({"etag":"CCCC"})J");  // not a resource inside a project
  auto snap = Snapshot::Build(std::move(in));
  EXPECT_EQ(snap->FindPolicy("projects/p")->etag, "AAAA");
  EXPECT_EQ(snap->FindPolicy(kSvc)->etag, "BBBB");
  EXPECT_EQ(snap->FindPolicy("organizations/moat")->bindings.size(), 1u);
  EXPECT_EQ(snap->FindPolicy("projects/q"), nullptr);
  EXPECT_EQ(snap->warnings().size(), 1u);
  EXPECT_EQ(DescribeResource(kSvc).type, "run.googleapis.com/Service");
  EXPECT_EQ(DescribeResource("projects/p/serviceAccounts/a@p.iam.gserviceaccount.com").service,
            "iam.googleapis.com");
  EXPECT_EQ(DescribeResource("projects/p").type, "cloudresourcemanager.googleapis.com/Project");
  EXPECT_EQ(DescribeResource("projects/p/locations/r/jobs/j").type, "run.googleapis.com/Job");
  EXPECT_TRUE(DescribeResource("projects/p/locations/r/services/s/extra").type.empty());
  EXPECT_TRUE(DescribeResource("folders/1").type.empty());
}

TEST(EvaluatorTest, HolderPublishesAtomicallyToReaders) {
  SnapshotHolder holder;
  SnapshotHolder::Reader reader(holder);
  const auto alice = Principal::User("alice@example.com");
  EXPECT_FALSE(
      reader.Get().Check(reader.Get().Resolve(alice), kSvc, "run.routes.invoke", Now()).allowed);
  std::atomic<bool> stop{false};
  std::atomic<int> reads{0};
  std::thread t([&] {
    SnapshotHolder::Reader r(holder);
    while (!stop.load()) {
      const Snapshot& s = r.Get();
      (void)s.Check(s.Resolve(alice), kSvc, "run.routes.invoke", Now());
      reads.fetch_add(1);
    }
  });
  for (int i = 0; i < 20; ++i) {
    PolicyInputs in;
    in.resources[std::string(kSvc)] =
        P(R"J({"bindings":[{"role":"roles/run.invoker","members":["user:alice@example.com"]}]})J");
    holder.Publish(Snapshot::Build(std::move(in)));
  }
  while (reads.load() < 10) std::this_thread::yield();
  stop = true;
  t.join();
  EXPECT_EQ(holder.generation(), 20u);
  const Snapshot& now = reader.Get();
  EXPECT_EQ(now.id(), holder.Acquire()->id());
  EXPECT_TRUE(now.Check(now.Resolve(alice), kSvc, "run.routes.invoke", Now()).allowed);
}

}  // namespace
}  // namespace moat::iam
