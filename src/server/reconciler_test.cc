// The Reconciler's revision accounting, which the gateway's X-Moat-Min-Revision relies on: a
// revision counts as reconciled only once the route table includes every service deployed up
// to it. Upstream-URL services only, so no process is started.
#include "server/reconciler.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "identity/signing_keys.h"
#include "identity/token_issuer.h"
#include "store/memory_store.h"

namespace moat::server {
namespace {

using std::chrono::seconds;

state::ServiceSpec Upstream(const std::string& id) {
  state::ServiceSpec s;
  s.name = "projects/p/locations/r/services/" + id;
  s.project = "p";
  s.region = "r";
  s.service_id = id;
  s.host = id + "-x.r.run.localhost";
  s.upstream = "http://127.0.0.1:9";
  return s;
}

std::shared_ptr<const state::View> ViewOf(int64_t revision, std::vector<store::Collection> changed,
                                          const std::vector<std::string>& service_ids) {
  auto v = std::make_shared<state::View>();
  v->revision = revision;
  v->changed = std::move(changed);
  for (const auto& id : service_ids) v->services.push_back(Upstream(id));
  return v;
}

class ReconcilerTest : public ::testing::Test {
 protected:
  // Waits for `revision` through the non-blocking API the gateway uses; returns whether it was
  // reached and whether `host` was routed at the moment the waiter was released.
  std::pair<bool, bool> AwaitRevision(int64_t revision, const std::string& host) {
    auto result = std::make_shared<std::promise<std::pair<bool, bool>>>();
    auto future = result->get_future();
    reconciler_.NotifyReconciled(revision, [this, result, host](bool ok) {
      result->set_value({ok, routes_.Get()->Find(host) != nullptr});
    });
    if (future.wait_for(seconds(10)) != std::future_status::ready) return {false, false};
    return future.get();
  }

  store::MemoryStore store_;
  Clock& clock_ = SystemClock();
  identity::SigningKeyManager keys_{store_, std::string(32, 'k'), clock_};
  identity::TokenIssuer issuer_{keys_, clock_, identity::IssuerUrls::For("http://127.0.0.1:1")};
  state::LiveState live_{store_};
  MetadataServers metadata_{issuer_, live_, clock_};
  runtime::Supervisor supervisor_;
  gateway::RouteTableHolder routes_;
  Reconciler reconciler_{supervisor_, metadata_, routes_, "http://127.0.0.1:8080"};
};

TEST_F(ReconcilerTest, FirstViewIsReconciledWhateverItSaysChanged) {
  reconciler_.Apply(ViewOf(7, {store::Collection::kPolicies}, {"a"}));
  auto [reached, routed] = AwaitRevision(7, "a-x.r.run.localhost");
  EXPECT_TRUE(reached);
  EXPECT_TRUE(routed);
  EXPECT_TRUE(reconciler_.Reconciled(7));
  EXPECT_FALSE(reconciler_.Reconciled(8));
}

// A deploy immediately followed by a policy write (deploy, then add-iam-policy-binding): the
// policy write's revision must neither be lost (its waiters would time out) nor be reported
// before the deploy's route is published (its waiters would get a 404).
TEST_F(ReconcilerTest, PolicyRevisionRightAfterADeployWaitsForTheDeploysRoute) {
  std::vector<std::string> ids;
  for (int round = 0; round < 200; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    ids.push_back("s" + std::to_string(round));
    int64_t deploy = 10 + 2 * round;
    reconciler_.Apply(ViewOf(deploy, {store::Collection::kServices}, ids));
    reconciler_.Apply(ViewOf(deploy + 1, {store::Collection::kPolicies}, ids));
    auto [reached, routed] = AwaitRevision(deploy + 1, ids.back() + "-x.r.run.localhost");
    ASSERT_TRUE(reached);
    ASSERT_TRUE(routed);
  }
  EXPECT_EQ(routes_.Get()->size(), ids.size());
}

TEST_F(ReconcilerTest, AnOlderViewArrivingLateNeverRollsTheRoutesBack) {
  reconciler_.Apply(ViewOf(5, {}, {"a", "b"}));
  ASSERT_TRUE(AwaitRevision(5, "b-x.r.run.localhost").second);
  reconciler_.Apply(ViewOf(3, {store::Collection::kServices}, {"a"}));
  reconciler_.Apply(ViewOf(6, {store::Collection::kPolicies}, {"a", "b"}));
  auto [reached, routed] = AwaitRevision(6, "b-x.r.run.localhost");
  EXPECT_TRUE(reached);
  EXPECT_TRUE(routed);
}

TEST_F(ReconcilerTest, StopReleasesWaitersWithFalse) {
  reconciler_.Apply(ViewOf(1, {}, {"a"}));
  ASSERT_TRUE(AwaitRevision(1, "a-x.r.run.localhost").first);
  auto result = std::make_shared<std::promise<bool>>();
  auto future = result->get_future();
  reconciler_.NotifyReconciled(100, [result](bool ok) { result->set_value(ok); });
  EXPECT_EQ(future.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout);
  reconciler_.Stop();
  ASSERT_EQ(future.wait_for(seconds(10)), std::future_status::ready);
  EXPECT_FALSE(future.get());
  // After Stop a new waiter is answered at once.
  bool answered = false, value = true;
  reconciler_.NotifyReconciled(100, [&](bool ok) {
    answered = true;
    value = ok;
  });
  EXPECT_TRUE(answered);
  EXPECT_FALSE(value);
}

}  // namespace
}  // namespace moat::server
