// IamGate's public (allUsers) path: the answer it keeps per worker thread between requests
// must never outlive what decided it — a policy change (a new snapshot) or, for a grant under
// a condition, the passing of time.
#include "server/iam_gate.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "common/clock.h"
#include "common/time.h"
#include "http/message.h"
#include "store/memory_store.h"

namespace moat::server {
namespace {

constexpr char kPublic[] = "projects/p/locations/us-central1/services/public";
constexpr char kTimed[] = "projects/p/locations/us-central1/services/timed";
constexpr char kPrivate[] = "projects/p/locations/us-central1/services/private";

class IamGateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Put(kPublic, R"({"bindings":[{"role":"roles/run.invoker","members":["allUsers"]}]})");
    Put(kTimed, R"J({"version":3,"bindings":[{"role":"roles/run.invoker","members":["allUsers"],
        "condition":{"title":"until 2030","expression":
        "request.time < timestamp('2030-01-01T00:00:00Z')"}}]})J");
    ASSERT_TRUE(live_.Start());
    ASSERT_TRUE(live_.WaitForRevision(revision_, std::chrono::seconds(5)));
    clock_.Set(*ParseRfc3339("2029-12-31T23:59:59Z"));
    for (auto [entry, name] : {std::pair{&public_, kPublic}, std::pair{&timed_, kTimed},
                               std::pair{&private_, kPrivate}}) {
      entry->name = name;
      entry->upstream_host = "127.0.0.1";
    }
  }
  void TearDown() override { live_.Stop(); }

  void Put(const std::string& resource, const std::string& policy) {
    auto put = store_.Put(store::Collection::kPolicies, resource, policy);
    ASSERT_TRUE(put);
    revision_ = put->revision;
  }
  // A request without a token.
  gateway::GateDecision Decide(const gateway::ServiceEntry& svc) {
    gateway::GateRequest r{svc,     "GET",         "/",  "h.run.localhost", headers_, nullptr,
                           nullptr, "127.0.0.1:1", "req"};
    return gate_.Decide(r);
  }

  store::MemoryStore store_;
  state::LiveState live_{store_};
  FakeClock clock_;
  identity::Verifier verifier_{identity::VerifierOptions{},
                               identity::VerifierDeps{.clock = &clock_, .directory = [this] {
                                                        return live_.Current()->directory;
                                                      }}};
  IamGate gate_{live_, verifier_, clock_};
  http::Headers headers_;
  gateway::ServiceEntry public_, timed_, private_;
  int64_t revision_ = 0;
};

TEST_F(IamGateTest, PublicAnswersFollowTimeAndPolicyChanges) {
  // Services in turn, several times (the kept answer is per service).
  for (int round = 0; round < 3; ++round) {
    EXPECT_TRUE(Decide(public_).allowed);
    EXPECT_EQ(Decide(public_).principal, "allUsers");
    EXPECT_TRUE(Decide(timed_).allowed);
    gateway::GateDecision d = Decide(private_);
    EXPECT_FALSE(d.allowed);
    EXPECT_EQ(d.status, 403);
  }
  // The condition's bound passes with no new snapshot: the timed grant ends at once, even for
  // the service asked about just before.
  EXPECT_TRUE(Decide(timed_).allowed);
  clock_.Set(*ParseRfc3339("2030-01-01T00:00:01Z"));
  for (int round = 0; round < 3; ++round) {
    EXPECT_FALSE(Decide(timed_).allowed);
    EXPECT_FALSE(Decide(timed_).allowed);
    EXPECT_TRUE(Decide(public_).allowed);
  }
  // A policy change is seen on the next request, here too for the service asked about last.
  EXPECT_TRUE(Decide(public_).allowed);
  Put(kPublic, R"({"bindings":[]})");
  ASSERT_TRUE(live_.WaitForRevision(revision_, std::chrono::seconds(5)));
  EXPECT_FALSE(Decide(public_).allowed);
  Put(kPrivate, R"({"bindings":[{"role":"roles/run.invoker","members":["allUsers"]}]})");
  ASSERT_TRUE(live_.WaitForRevision(revision_, std::chrono::seconds(5)));
  EXPECT_TRUE(Decide(private_).allowed);
  EXPECT_FALSE(Decide(public_).allowed);
}

}  // namespace
}  // namespace moat::server
