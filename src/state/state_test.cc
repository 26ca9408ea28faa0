#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <condition_variable>
#include <mutex>

#include "state/live_state.h"
#include "state/service.h"
#include "store/memory_store.h"

namespace moat::state {
namespace {

constexpr char kService[] = R"({
  "name": "projects/p/locations/us-central1/services/api",
  "uid": "u-1", "generation": "3",
  "invokerIamDisabled": false,
  "customAudiences": ["https://api.example.com"],
  "template": {"upstream": "http://127.0.0.1:9000", "timeout": "30s",
               "serviceAccount": "Runner@p.iam.gserviceaccount.com"}
})";

TEST(StateService, ParsesUpstreamServiceDocument) {
  auto spec = ParseServiceDoc(kService);
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_EQ(spec->project, "p");
  EXPECT_EQ(spec->region, "us-central1");
  EXPECT_EQ(spec->service_id, "api");
  EXPECT_EQ(spec->generation, 3);
  EXPECT_EQ(spec->upstream, "http://127.0.0.1:9000");
  EXPECT_EQ(spec->timeout, std::chrono::seconds(30));
  EXPECT_EQ(spec->service_account, "runner@p.iam.gserviceaccount.com");
  EXPECT_FALSE(spec->runs_command());
  EXPECT_EQ(spec->host, HostFor("p", "us-central1", "api"));
  EXPECT_EQ(spec->host.rfind("api-", 0), 0u);
  EXPECT_NE(spec->host.find(".us-central1.run.localhost"), std::string::npos);
}

TEST(StateService, ParsesCommandServiceDocument) {
  auto spec = ParseServiceDoc(R"({"name":"projects/p/locations/r/services/s","template":{
      "containers":[{"command":["python3"],"args":["app.py"],"workingDir":"/tmp",
                     "env":[{"name":"A","value":"1"}]}]}})");
  ASSERT_TRUE(spec) << spec.error().message;
  EXPECT_TRUE(spec->runs_command());
  EXPECT_EQ(spec->command, (std::vector<std::string>{"python3", "app.py"}));
  EXPECT_EQ(spec->env.size(), 1u);
  EXPECT_EQ(spec->working_dir, "/tmp");
}

TEST(StateService, RefusesAmbiguousOrEmptyTemplates) {
  EXPECT_FALSE(ParseServiceDoc(R"({"name":"projects/p/locations/r/services/s","template":{}})"));
  EXPECT_FALSE(ParseServiceDoc(R"({"name":"projects/p/locations/r/services/s","template":{
      "upstream":"http://x","containers":[{"command":["y"]}]}})"));
  EXPECT_FALSE(ParseServiceDoc(R"({"name":"bad","template":{"upstream":"http://x"}})"));
  EXPECT_FALSE(ParseServiceDoc(R"({"name":"projects/p/locations/r/services/s",
      "template":{"upstream":"http://x","timeout":"soon"}})"));
}

TEST(StateService, UrlsAndAudiencesFollowTheGatewayPort) {
  auto spec = *ParseServiceDoc(kService);
  auto urls = UrlsFor(spec, "http://127.0.0.1:8080");
  ASSERT_EQ(urls.size(), 1u);
  EXPECT_EQ(urls[0], "http://" + spec.host + ":8080");
  auto auds = AudiencesFor(spec, "http://127.0.0.1:8080");
  EXPECT_NE(std::find(auds.begin(), auds.end(), urls[0]), auds.end());
  EXPECT_NE(std::find(auds.begin(), auds.end(), urls[0] + "/"), auds.end());
  EXPECT_NE(std::find(auds.begin(), auds.end(), "https://api.example.com"), auds.end());
}

// A Store that forwards to a MemoryStore, with two test controls over LiveState's follower:
//   - Pause(): every ChangesSince call from then on blocks until Resume() (Pause waits for
//     calls already running to return), so the follower's cursor cannot move while the test
//     commits and compacts;
//   - set_honor_holds(false): HoldChanges returns an inert hold, as if the follower's hold were
//     more than kMaxHeldRevisions behind (the store's limit), so compaction passes its cursor.
class GatedStore : public store::Store {
 public:
  explicit GatedStore(store::Store& inner) : inner_(inner) {}

  void set_honor_holds(bool honor) { honor_holds_ = honor; }
  // The next `n` ChangesSince calls fail as a busy or broken database would.
  void FailNextReads(int n) {
    std::lock_guard lock(mu_);
    fail_reads_ = n;
  }
  void Pause() {
    std::unique_lock lock(mu_);
    paused_ = true;
    cv_.wait(lock, [&] { return in_flight_ == 0; });
  }
  void Resume() {
    std::lock_guard lock(mu_);
    paused_ = false;
    cv_.notify_all();
  }
  // Waits (up to `timeout`) until a ChangesSince call is blocked by Pause.
  bool WaitForBlockedReader(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return blocked_ > 0; });
  }

  Result<std::unique_ptr<store::Transaction>> Begin() override { return inner_.Begin(); }
  Result<std::unique_ptr<store::Transaction>> BeginRead() override { return inner_.BeginRead(); }
  Result<int64_t> CurrentRevision() override { return inner_.CurrentRevision(); }
  Result<store::ChangeBatch> ChangesSince(int64_t since, int max_revisions) override {
    {
      std::unique_lock lock(mu_);
      ++blocked_;
      cv_.notify_all();
      cv_.wait(lock, [&] { return !paused_; });
      --blocked_;
      if (fail_reads_ > 0) {
        --fail_reads_;
        return Unavailable("the database is busy (injected by the test)");
      }
      ++in_flight_;
    }
    auto batch = inner_.ChangesSince(since, max_revisions);
    std::lock_guard lock(mu_);
    --in_flight_;
    cv_.notify_all();
    return batch;
  }
  Result<int64_t> CompactChanges(int64_t retain) override { return inner_.CompactChanges(retain); }
  Result<int64_t> CompactedRevision() override { return inner_.CompactedRevision(); }
  store::ChangeHold HoldChanges(int64_t after) override {
    if (!honor_holds_) return store::ChangeHold();
    return inner_.HoldChanges(after);
  }
  bool WaitForRevision(int64_t revision, std::chrono::milliseconds timeout) override {
    return inner_.WaitForRevision(revision, timeout);
  }
  store::Subscription Subscribe(store::CommitCallback callback) override {
    return inner_.Subscribe(std::move(callback));
  }
  Result<store::AuditPage> QueryAudit(const store::AuditQuery& query) override {
    return inner_.QueryAudit(query);
  }

 private:
  store::Store& inner_;
  bool honor_holds_ = true;  // set before LiveState::Start
  int fail_reads_ = 0;       // guarded by mu_
  std::mutex mu_;
  std::condition_variable cv_;
  bool paused_ = false;
  int blocked_ = 0;    // calls waiting in Pause
  int in_flight_ = 0;  // calls past the gate
};

constexpr char kApi[] = "projects/p/locations/us-central1/services/api";
constexpr char kOther[] = "projects/p/locations/us-central1/services/other";
constexpr char kOtherService[] = R"({
  "name": "projects/p/locations/us-central1/services/other",
  "template": {"upstream": "http://127.0.0.1:9001"}
})";

bool AliceMayInvoke(const View& view) {
  auto alice = view.iam->Resolve(iam::Principal::User("alice@example.com"));
  return view.iam->Check(alice, kApi, "run.routes.invoke", SystemClock().Now()).allowed;
}

// Starts `live` over a store holding the `api` and `other` services, waits until it has
// caught up, then pauses its follower and, while it is paused, grants alice the invoker role
// on `api`, deletes `other` and commits `filler` unrelated revisions. Returns the newest
// revision, or 0 on a failure (reported through gtest).
int64_t CommitWhilePaused(store::Store& inner, GatedStore& gated, LiveState& live, int filler) {
  EXPECT_TRUE(inner.Put(store::Collection::kServices, kApi, kService));
  auto other = inner.Put(store::Collection::kServices, kOther, kOtherService);
  EXPECT_TRUE(other);
  if (!other || !live.Start()) return 0;
  EXPECT_TRUE(live.WaitForRevision(other->revision, std::chrono::seconds(5)));
  EXPECT_EQ(live.Current()->services.size(), 2u);
  EXPECT_FALSE(AliceMayInvoke(*live.Current()));

  gated.Pause();
  EXPECT_TRUE(inner.Put(store::Collection::kPolicies, kApi,
                        R"({"bindings":[{"role":"roles/run.invoker",
                            "members":["user:alice@example.com"]}]})"));
  EXPECT_TRUE(inner.Delete(store::Collection::kServices, kOther));
  int64_t last = 0;
  for (int i = 0; i < filler; ++i) {
    auto put =
        inner.Put(store::Collection::kSettings, "filler", "{\"n\":" + std::to_string(i) + "}");
    EXPECT_TRUE(put);
    if (put) last = put->revision;
  }
  // The commits woke the follower; it is now stuck before reading the feed.
  EXPECT_TRUE(gated.WaitForBlockedReader(std::chrono::seconds(5)));
  EXPECT_EQ(live.Current()->revision, other->revision);  // still the old view
  return last;
}

// The state LiveState must reach after CommitWhilePaused, however it got there.
void ExpectCaughtUp(LiveState& live, int64_t newest) {
  ASSERT_TRUE(live.WaitForRevision(newest, std::chrono::seconds(5)))
      << "still serving revision " << live.Current()->revision << " < " << newest;
  auto view = live.Current();
  EXPECT_GE(view->revision, newest);
  EXPECT_TRUE(AliceMayInvoke(*view));            // the policy written before compaction
  EXPECT_NE(view->FindByName(kApi), nullptr);    // kept
  EXPECT_EQ(view->FindByName(kOther), nullptr);  // deleted before compaction: gone
  EXPECT_EQ(view->services.size(), 1u);
}

TEST(StateLive, FollowsCommitsAndGivesReadYourWrites) {
  store::MemoryStore store;
  LiveState live(store);
  ASSERT_TRUE(live.Start());
  EXPECT_EQ(live.Current()->services.size(), 0u);

  auto put = store.Put(store::Collection::kServices,
                       "projects/p/locations/us-central1/services/api", kService);
  ASSERT_TRUE(put);
  ASSERT_TRUE(live.WaitForRevision(put->revision, std::chrono::seconds(5)));
  auto view = live.Current();
  ASSERT_EQ(view->services.size(), 1u);
  EXPECT_NE(view->FindByHost(view->services[0].host), nullptr);

  // A policy granting an invoker is enforced once its revision is reached.
  auto policy = store.Put(store::Collection::kPolicies,
                          "projects/p/locations/us-central1/services/api",
                          R"({"bindings":[{"role":"roles/run.invoker",
                              "members":["user:alice@example.com"]}]})");
  ASSERT_TRUE(policy);
  ASSERT_TRUE(live.WaitForRevision(policy->revision, std::chrono::seconds(5)));
  view = live.Current();
  auto alice = view->iam->Resolve(iam::Principal::User("alice@example.com"));
  EXPECT_TRUE(view->iam
                  ->Check(alice, "projects/p/locations/us-central1/services/api",
                          "run.routes.invoke", SystemClock().Now())
                  .allowed);
  // Unrelated collections still advance the published revision.
  auto setting = store.Put(store::Collection::kSettings, "x", "{}");
  ASSERT_TRUE(setting);
  EXPECT_TRUE(live.WaitForRevision(setting->revision, std::chrono::seconds(5)));
  live.Stop();
}

TEST(StateLive, BrokenServiceDocumentsAreReportedNotServed) {
  store::MemoryStore store;
  ASSERT_TRUE(store.Put(store::Collection::kServices, "projects/p/locations/r/services/bad",
                        R"({"name":"projects/p/locations/r/services/bad","template":{}})"));
  LiveState live(store);
  ASSERT_TRUE(live.Start());
  EXPECT_EQ(live.Current()->services.size(), 0u);
  EXPECT_EQ(live.Current()->broken_services.size(), 1u);
}

TEST(StateLive, ReloadsWhenTheFeedWasCompactedPastItsCursor) {
  store::MemoryStore inner(nullptr, /*change_retention=*/0);  // compaction only when asked
  GatedStore gated(inner);
  gated.set_honor_holds(false);  // as if the hold were past kMaxHeldRevisions
  LiveState live(gated);
  int64_t newest = CommitWhilePaused(inner, gated, live, 5);
  ASSERT_GT(newest, 0);
  const int64_t cursor = live.Current()->revision;
  auto compacted = inner.CompactChanges(1);
  ASSERT_TRUE(compacted);
  ASSERT_GT(*compacted, cursor);  // the changes the follower still needs are gone
  EXPECT_EQ(live.reloads(), 0u);

  gated.Resume();
  ExpectCaughtUp(live, newest);
  EXPECT_EQ(live.reloads(), 1u);
  EXPECT_EQ(live.Current()->changed.size(), std::size(store::kAllCollections));

  // After the reload it follows the feed again from the snapshot's revision.
  auto put = inner.Put(store::Collection::kServices, kOther, kOtherService);
  ASSERT_TRUE(put);
  ASSERT_TRUE(live.WaitForRevision(put->revision, std::chrono::seconds(5)));
  EXPECT_NE(live.Current()->FindByName(kOther), nullptr);
  EXPECT_EQ(live.reloads(), 1u);
  live.Stop();
}

TEST(StateLive, RetriesAFailedFeedReadWithoutWaitingForAnotherCommit) {
  // A transient store error must not leave the gateway on a stale view until someone happens
  // to commit again.
  store::MemoryStore inner(nullptr, /*change_retention=*/0);
  GatedStore gated(inner);
  LiveState live(gated);
  ASSERT_TRUE(live.Start());
  gated.FailNextReads(3);
  auto put = inner.Put(store::Collection::kServices, kOther, kOtherService);
  ASSERT_TRUE(put);
  // Nothing else is committed: only the follower's own retries (100, 200, 400 ms) get it there.
  ASSERT_TRUE(live.WaitForRevision(put->revision, std::chrono::seconds(5)));
  EXPECT_NE(live.Current()->FindByName(kOther), nullptr);
  EXPECT_EQ(live.reloads(), 0u);
  live.Stop();
}

TEST(StateLive, HoldKeepsTheChangesItNeedsFromExplicitCompaction) {
  store::MemoryStore inner(nullptr, /*change_retention=*/0);
  GatedStore gated(inner);
  LiveState live(gated);
  int64_t newest = CommitWhilePaused(inner, gated, live, 5);
  ASSERT_GT(newest, 0);
  const int64_t cursor = live.Current()->revision;
  auto compacted = inner.CompactChanges(1);
  ASSERT_TRUE(compacted);
  EXPECT_LE(*compacted, cursor);  // the hold stopped compaction at the cursor

  gated.Resume();
  ExpectCaughtUp(live, newest);
  EXPECT_EQ(live.reloads(), 0u);  // caught up from the feed, no full reload
  // Once caught up, the hold moved with the cursor: compaction may now drop the rest.
  auto again = inner.CompactChanges(1);
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, newest - 1);
  live.Stop();
}

TEST(StateLive, HoldSurvivesAutomaticCompactionWithTinyRetention) {
  // Every commit compacts to the newest 2 revisions (the follower's hold permitting).
  store::MemoryStore inner(nullptr, /*change_retention=*/2);
  GatedStore gated(inner);
  LiveState live(gated);
  int64_t newest = CommitWhilePaused(inner, gated, live, 20);
  ASSERT_GT(newest, 0);
  auto compacted = inner.CompactedRevision();
  ASSERT_TRUE(compacted);
  EXPECT_LE(*compacted, live.Current()->revision);

  gated.Resume();
  ExpectCaughtUp(live, newest);
  EXPECT_EQ(live.reloads(), 0u);
  live.Stop();
  // Stop released the hold: compaction passes the position where it stood.
  int64_t last = newest;
  for (int i = 0; i < 3; ++i) {
    auto put = inner.Put(store::Collection::kSettings, "after", "{}");
    ASSERT_TRUE(put);
    last = put->revision;
  }
  compacted = inner.CompactChanges(1);
  ASSERT_TRUE(compacted);
  EXPECT_EQ(*compacted, last - 1);
}

}  // namespace
}  // namespace moat::state

namespace moat::state {
namespace {

// The per-thread View follows publishes, and never hands one LiveState's View to another —
// not even to one built at the same address after the first is gone.
TEST(StateLive, ThePerThreadViewFollowsPublishesAndItsOwnLiveState) {
  for (int i = 0; i < 3; ++i) {
    store::MemoryStore store;
    const std::string name = "projects/p/locations/us-central1/services/s" + std::to_string(i);
    std::string doc = kService;
    auto put = store.Put(store::Collection::kServices, name, doc);
    ASSERT_TRUE(put);
    auto live = std::make_unique<LiveState>(store);
    ASSERT_TRUE(live->Start());
    ASSERT_TRUE(live->WaitForRevision(put->revision, std::chrono::seconds(5)));
    const auto& view = live->CurrentForThisThread();
    EXPECT_EQ(view.get(), live->Current().get());
    auto setting = store.Put(store::Collection::kSettings, "x", "{}");
    ASSERT_TRUE(setting);
    ASSERT_TRUE(live->WaitForRevision(setting->revision, std::chrono::seconds(5)));
    EXPECT_EQ(live->CurrentForThisThread().get(), live->Current().get());
    EXPECT_GE(live->CurrentForThisThread()->revision, setting->revision);
    live->Stop();
  }
}

}  // namespace
}  // namespace moat::state
