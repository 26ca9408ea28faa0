// The store conformance suite: written once against the Store interface and run against every
// backend (INSTANTIATE_TEST_SUITE_P at the bottom). A new backend (PostgreSQL) adds one factory.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <thread>

#include "common/base64.h"
#include "common/clock.h"
#include "store/memory_store.h"
#include "store/sqlite_store.h"
#include "store/store.h"
#include "store/store_test_util.h"

namespace moat::store {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

struct Backend {
  std::string name;
  // `change_retention`: automatic change-feed compaction on commit (<= 0: off).
  std::function<std::unique_ptr<Store>(const std::string& dir, const Clock* clock,
                                       int64_t change_retention)>
      make;
};

void PrintTo(const Backend& b, std::ostream* os) { *os << b.name; }

class StoreConformance : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    dir_ = testing_util::MakeTempDir();
    store_ = GetParam().make(dir_ + "/home", &clock_, kDefaultChangeRetention);
    ASSERT_NE(store_, nullptr);
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  Document MustPut(Collection c, const std::string& key, const std::string& data,
                   const PutOptions& o = {}) {
    auto d = store_->Put(c, key, data, o);
    EXPECT_TRUE(d) << (d ? "" : d.error().ToString());
    return d ? *d : Document{};
  }
  int64_t Revision() { return store_->CurrentRevision().value(); }

  FakeClock clock_;
  std::string dir_;
  std::unique_ptr<Store> store_;
};

TEST_P(StoreConformance, PutThenGetRoundTripsEveryField) {
  PutOptions o;
  o.parent = "projects/p/locations/r";
  Document put = MustPut(Collection::kServices, "projects/p/locations/r/services/s",
                         R"({"uri":"http://x"})", o);
  auto got = store_->Get(Collection::kServices, "projects/p/locations/r/services/s").value();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->collection, Collection::kServices);
  EXPECT_EQ(got->key, "projects/p/locations/r/services/s");
  EXPECT_EQ(got->parent, "projects/p/locations/r");
  EXPECT_EQ(got->data, R"({"uri":"http://x"})");
  EXPECT_EQ(got->etag, put.etag);
  EXPECT_EQ(got->revision, 1);
  EXPECT_EQ(got->create_time, clock_.Now());
  EXPECT_EQ(got->update_time, clock_.Now());
  auto raw = Base64Decode(got->etag);
  ASSERT_TRUE(raw);
  EXPECT_EQ(raw->size(), 8u);
  // Same key in another collection is another document.
  EXPECT_FALSE(store_->Get(Collection::kPolicies, "projects/p/locations/r/services/s").value());
  EXPECT_FALSE(store_->Get(Collection::kServices, "projects/p/locations/r/services/t").value());
}

TEST_P(StoreConformance, OverwriteKeepsCreateTimeAndChangesEtagEveryTime) {
  Document first = MustPut(Collection::kProjects, "projects/p", "{}");
  TimePoint created = clock_.Now();
  std::set<std::string> etags{first.etag};
  for (int i = 0; i < 20; ++i) {
    clock_.Advance(seconds(1));
    Document d = MustPut(Collection::kProjects, "projects/p", "{}");  // identical data
    EXPECT_TRUE(etags.insert(d.etag).second) << "etag repeated: " << d.etag;
    EXPECT_EQ(d.revision, i + 2);
  }
  auto got = store_->Get(Collection::kProjects, "projects/p").value();
  EXPECT_EQ(got->create_time, created);
  EXPECT_EQ(got->update_time, clock_.Now());
}

TEST_P(StoreConformance, StaleEtagOnPolicyIsAbortedWithGooglesMessage) {
  Document v1 = MustPut(Collection::kPolicies, "projects/p", R"({"bindings":[]})");
  Document v2 = MustPut(Collection::kPolicies, "projects/p", R"({"bindings":[1]})",
                        {.parent = "", .precondition = Precondition::EtagMatches(v1.etag)});
  auto stale = store_->Put(Collection::kPolicies, "projects/p", R"({"bindings":[2]})",
                           {.parent = "", .precondition = Precondition::EtagMatches(v1.etag)});
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code, Code::kAborted);
  EXPECT_EQ(HttpStatus(stale.error().code), 409);
  EXPECT_EQ(stale.error().message,
            "There were concurrent policy changes. Please retry the whole read-modify-write with "
            "exponential backoff.");
  EXPECT_EQ(store_->Get(Collection::kPolicies, "projects/p").value()->etag, v2.etag);
  // Without an etag, Google overwrites blindly; so do we.
  Document blind = MustPut(Collection::kPolicies, "projects/p", R"({"bindings":[3]})");
  EXPECT_EQ(store_->Get(Collection::kPolicies, "projects/p").value()->data, R"({"bindings":[3]})");
  EXPECT_NE(blind.etag, v2.etag);
}

TEST_P(StoreConformance, StaleEtagOnOtherCollectionsHasGenericMessage) {
  MustPut(Collection::kServiceAccounts, "projects/p/serviceAccounts/a@p.iam.gserviceaccount.com",
          "{}");
  auto r = store_->Put(Collection::kServiceAccounts,
                       "projects/p/serviceAccounts/a@p.iam.gserviceaccount.com", "{}",
                       {.parent = "", .precondition = Precondition::EtagMatches("AAAAAAAAAAA=")});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kAborted);
  EXPECT_EQ(r.error().message,
            "the resource `projects/p/serviceAccounts/a@p.iam.gserviceaccount.com` was changed "
            "concurrently (etag mismatch); read it again and retry");
}

TEST_P(StoreConformance, ExistencePreconditions) {
  auto missing_etag = store_->Put(Collection::kRoles, "r", "{}",
                                  {.parent = "", .precondition = Precondition::EtagMatches("x")});
  EXPECT_EQ(missing_etag.error().code, Code::kNotFound);
  auto missing_update = store_->Put(Collection::kRoles, "r", "{}",
                                    {.parent = "", .precondition = Precondition::MustExist()});
  EXPECT_EQ(missing_update.error().code, Code::kNotFound);
  EXPECT_EQ(missing_update.error().message, "the resource `r` was not found");

  MustPut(Collection::kRoles, "r", "{}",
          {.parent = "", .precondition = Precondition::MustNotExist()});
  auto dup = store_->Put(Collection::kRoles, "r", "{}",
                         {.parent = "", .precondition = Precondition::MustNotExist()});
  EXPECT_EQ(dup.error().code, Code::kAlreadyExists);
  EXPECT_EQ(dup.error().message, "the resource `r` already exists");
  MustPut(Collection::kRoles, "r", "{}", {.parent = "", .precondition = Precondition::MustExist()});
}

TEST_P(StoreConformance, DeletePreconditions) {
  EXPECT_EQ(store_->Delete(Collection::kUsers, "u").value(), false);
  EXPECT_EQ(store_->Delete(Collection::kUsers, "u", Precondition::MustExist()).error().code,
            Code::kNotFound);
  EXPECT_EQ(store_->Delete(Collection::kUsers, "u", Precondition::EtagMatches("x")).error().code,
            Code::kNotFound);
  EXPECT_EQ(store_->Delete(Collection::kUsers, "u", Precondition::MustNotExist()).error().code,
            Code::kInvalidArgument);
  Document d = MustPut(Collection::kUsers, "u", "{}");
  EXPECT_EQ(store_->Delete(Collection::kUsers, "u", Precondition::EtagMatches("AAAAAAAAAAA="))
                .error()
                .code,
            Code::kAborted);
  EXPECT_EQ(store_->Delete(Collection::kUsers, "u", Precondition::EtagMatches(d.etag)).value(),
            true);
  EXPECT_FALSE(store_->Get(Collection::kUsers, "u").value());
}

TEST_P(StoreConformance, RejectsMalformedInput) {
  EXPECT_EQ(store_->Put(Collection::kSettings, "", "{}").error().code, Code::kInvalidArgument);
  EXPECT_EQ(store_->Put(Collection::kSettings, "k", "{not json").error().code,
            Code::kInvalidArgument);
  EXPECT_EQ(store_->Put(Collection::kSettings, "k", R"({"a":1,"a":2})").error().code,
            Code::kInvalidArgument);
  EXPECT_EQ(
      store_->Put(Collection::kSettings, std::string(kMaxKeyBytes + 1, 'k'), "{}").error().code,
      Code::kInvalidArgument);
  EXPECT_EQ(store_->Put(Collection::kSettings, std::string("a\0b", 3), "{}").error().code,
            Code::kInvalidArgument);
  std::string big = "\"" + std::string(kMaxDataBytes, 'x') + "\"";
  EXPECT_EQ(store_->Put(Collection::kSettings, "k", big).error().code, Code::kInvalidArgument);
  EXPECT_EQ(store_
                ->Put(Collection::kSettings, "k", "{}",
                      {.parent = "", .precondition = Precondition::EtagMatches("")})
                .error()
                .code,
            Code::kInvalidArgument);
  EXPECT_EQ(store_->Get(Collection::kSettings, "").error().code, Code::kInvalidArgument);
  EXPECT_EQ(Revision(), 0);
}

TEST_P(StoreConformance, ListsByParentInKeyOrderWithPaging) {
  // Inserted out of order, across two parents and another collection.
  for (int i : {5, 2, 7, 1, 4, 6, 3}) {
    MustPut(Collection::kServices, "projects/p/locations/a/services/s" + std::to_string(i), "{}",
            {.parent = "projects/p/locations/a", .precondition = {}});
  }
  for (int i = 1; i <= 3; ++i) {
    MustPut(Collection::kServices, "projects/p/locations/b/services/s" + std::to_string(i), "{}",
            {.parent = "projects/p/locations/b", .precondition = {}});
  }
  MustPut(Collection::kPolicies, "projects/p/locations/a/services/s1", "{}",
          {.parent = "projects/p/locations/a", .precondition = {}});

  ListOptions o;
  o.parent = "projects/p/locations/a";
  o.page_size = 3;
  std::vector<std::string> keys;
  int pages = 0;
  do {
    auto page = store_->List(Collection::kServices, o).value();
    ++pages;
    EXPECT_LE(page.documents.size(), 3u);
    for (auto& d : page.documents) {
      EXPECT_EQ(d.parent, "projects/p/locations/a");
      keys.push_back(d.key);
    }
    o.page_token = page.next_page_token;
  } while (!o.page_token.empty());
  EXPECT_EQ(pages, 3);
  std::vector<std::string> want;
  for (int i = 1; i <= 7; ++i)
    want.push_back("projects/p/locations/a/services/s" + std::to_string(i));
  EXPECT_EQ(keys, want);

  // Exactly one full page: no next page token.
  ListOptions b;
  b.parent = "projects/p/locations/b";
  b.page_size = 3;
  auto pb = store_->List(Collection::kServices, b).value();
  EXPECT_EQ(pb.documents.size(), 3u);
  EXPECT_EQ(pb.next_page_token, "");

  auto all = store_->List(Collection::kServices, {}).value();
  EXPECT_EQ(all.documents.size(), 10u);
  EXPECT_TRUE(std::is_sorted(all.documents.begin(), all.documents.end(),
                             [](const Document& x, const Document& y) { return x.key < y.key; }));
  auto none = store_->List(Collection::kServices, {.parent = "projects/q/locations/a"}).value();
  EXPECT_TRUE(none.documents.empty());
}

TEST_P(StoreConformance, RejectsForeignAndMalformedPageTokens) {
  for (int i = 0; i < 3; ++i) {
    MustPut(Collection::kSaKeys, "k" + std::to_string(i), "{}",
            {.parent = "sa1", .precondition = {}});
  }
  auto page = store_->List(Collection::kSaKeys, {.parent = "sa1", .page_token = "", .page_size = 1})
                  .value();
  ASSERT_FALSE(page.next_page_token.empty());
  auto other_parent = store_->List(
      Collection::kSaKeys, {.parent = "sa2", .page_token = page.next_page_token, .page_size = 1});
  EXPECT_EQ(other_parent.error().code, Code::kInvalidArgument);
  auto other_collection = store_->List(
      Collection::kUsers, {.parent = "sa1", .page_token = page.next_page_token, .page_size = 1});
  EXPECT_EQ(other_collection.error().code, Code::kInvalidArgument);
  for (const std::string& bad :
       std::vector<std::string>{"!!", "e30", "bm90IGpzb24", std::string(5000, 'A')}) {
    auto r =
        store_->List(Collection::kSaKeys, {.parent = "sa1", .page_token = bad, .page_size = 1});
    EXPECT_EQ(r.error().code, Code::kInvalidArgument) << bad;
  }
}

TEST_P(StoreConformance, RevisionIsMonotonicAndFeedListsChanges) {
  EXPECT_EQ(Revision(), 0);
  EXPECT_EQ(store_->ChangesSince(0).value().last_revision, 0);
  MustPut(Collection::kProjects, "projects/a", "{}");
  {
    auto tx = store_->Begin().value();
    ASSERT_TRUE(tx->Put(Collection::kProjects, "projects/b", "{}"));
    ASSERT_TRUE(tx->Put(Collection::kPolicies, "projects/b", "{}"));
    ASSERT_TRUE(tx->Put(Collection::kProjects, "projects/b", R"({"x":1})"));  // same key twice
    ASSERT_TRUE(tx->Delete(Collection::kProjects, "projects/a"));
    EXPECT_EQ(tx->Commit().value(), 2);
  }
  // Transactions that write no document do not create a revision.
  EXPECT_EQ(store_->Delete(Collection::kProjects, "missing").value(), false);
  ASSERT_TRUE(store_->AppendAudit({.method = "m"}));
  {
    auto tx = store_->Begin().value();
    EXPECT_EQ(tx->Commit().value(), 2);
  }
  EXPECT_EQ(Revision(), 2);
  MustPut(Collection::kUsers, "u", "{}");
  EXPECT_EQ(Revision(), 3);

  auto all = store_->ChangesSince(0).value();
  EXPECT_EQ(all.last_revision, 3);
  ASSERT_EQ(all.changes.size(), 5u);
  auto is = [](const Change& c, int64_t rev, Collection col, std::string key, Change::Op op) {
    return c.revision == rev && c.collection == col && c.key == key && c.op == op;
  };
  EXPECT_TRUE(is(all.changes[0], 1, Collection::kProjects, "projects/a", Change::Op::kPut));
  // Within a revision: ordered by collection name, then key.
  EXPECT_TRUE(is(all.changes[1], 2, Collection::kPolicies, "projects/b", Change::Op::kPut));
  EXPECT_TRUE(is(all.changes[2], 2, Collection::kProjects, "projects/a", Change::Op::kDelete));
  EXPECT_TRUE(is(all.changes[3], 2, Collection::kProjects, "projects/b", Change::Op::kPut));
  EXPECT_TRUE(is(all.changes[4], 3, Collection::kUsers, "u", Change::Op::kPut));

  // Batches never split a revision.
  auto b1 = store_->ChangesSince(0, 1).value();
  EXPECT_EQ(b1.last_revision, 1);
  EXPECT_EQ(b1.changes.size(), 1u);
  auto b2 = store_->ChangesSince(b1.last_revision, 1).value();
  EXPECT_EQ(b2.last_revision, 2);
  EXPECT_EQ(b2.changes.size(), 3u);
  auto b3 = store_->ChangesSince(b2.last_revision, 5).value();
  EXPECT_EQ(b3.last_revision, 3);
  EXPECT_EQ(b3.changes.size(), 1u);
  auto b4 = store_->ChangesSince(3).value();
  EXPECT_EQ(b4.last_revision, 3);
  EXPECT_TRUE(b4.changes.empty());

  // The document carries the revision that wrote it.
  EXPECT_EQ(store_->Get(Collection::kProjects, "projects/b").value()->revision, 2);
}

TEST_P(StoreConformance, WaitForRevisionWakesOnCommitFromAnotherThread) {
  EXPECT_TRUE(store_->WaitForRevision(0, milliseconds(0)));
  EXPECT_FALSE(store_->WaitForRevision(1, milliseconds(1)));
  std::thread writer([&] { MustPut(Collection::kSettings, "k", "{}"); });
  EXPECT_TRUE(store_->WaitForRevision(1, seconds(30)));
  writer.join();
  EXPECT_EQ(Revision(), 1);
}

TEST_P(StoreConformance, SubscribersSeeEachCommitAndCanReadIt) {
  std::vector<int64_t> seen;
  std::vector<std::string> read_back;
  Subscription sub = store_->Subscribe([&](int64_t rev) {
    seen.push_back(rev);
    auto d = store_->Get(Collection::kSettings, "k");  // a read inside the callback is allowed
    read_back.push_back(d && *d ? (*d)->data : "?");
  });
  MustPut(Collection::kSettings, "k", R"({"v":1})");
  MustPut(Collection::kSettings, "k", R"({"v":2})");
  ASSERT_TRUE(store_->AppendAudit({.method = "m"}));  // no revision, no call
  EXPECT_EQ(seen, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(read_back, (std::vector<std::string>{R"({"v":1})", R"({"v":2})"}));
  sub.Reset();
  MustPut(Collection::kSettings, "k", R"({"v":3})");
  EXPECT_EQ(seen.size(), 2u);
}

TEST_P(StoreConformance, FailedOperationRollsBackTheWholeTransaction) {
  Document p = MustPut(Collection::kPolicies, "root", "{}");
  MustPut(Collection::kPolicies, "root", "{}");  // p.etag is now stale
  int64_t before = Revision();
  auto tx = store_->Begin().value();
  ASSERT_TRUE(tx->Put(Collection::kProjects, "projects/new", "{}"));
  ASSERT_TRUE(tx->AppendAudit({.resource = "projects/new", .request_id = "rolled-back"}));
  auto stale = tx->Put(Collection::kPolicies, "root", "{}",
                       {.parent = "", .precondition = Precondition::EtagMatches(p.etag)});
  EXPECT_EQ(stale.error().code, Code::kAborted);
  EXPECT_EQ(tx->Put(Collection::kProjects, "projects/other", "{}").error().code,
            Code::kFailedPrecondition);
  auto commit = tx->Commit();
  ASSERT_FALSE(commit);
  EXPECT_EQ(commit.error().code, Code::kAborted);
  tx.reset();
  EXPECT_FALSE(store_->Get(Collection::kProjects, "projects/new").value());
  EXPECT_FALSE(store_->Get(Collection::kProjects, "projects/other").value());
  EXPECT_EQ(Revision(), before);
  EXPECT_TRUE(store_->QueryAudit({.request_id = "rolled-back"}).value().records.empty());
  // The writer is free again.
  MustPut(Collection::kProjects, "projects/after", "{}");
}

TEST_P(StoreConformance, TransactionSeesOwnWritesAndRollbackDiscardsThem) {
  {
    auto tx = store_->Begin().value();
    ASSERT_TRUE(tx->Put(Collection::kGroups, "g", R"({"m":1})"));
    EXPECT_EQ(tx->Get(Collection::kGroups, "g").value()->data, R"({"m":1})");
    EXPECT_EQ(tx->List(Collection::kGroups, {}).value().documents.size(), 1u);
    ASSERT_TRUE(tx->Delete(Collection::kGroups, "g"));
    EXPECT_FALSE(tx->Get(Collection::kGroups, "g").value());
    ASSERT_TRUE(tx->Put(Collection::kGroups, "g", R"({"m":2})"));
    tx->Rollback();
    EXPECT_EQ(tx->Commit().error().code, Code::kFailedPrecondition);
  }
  EXPECT_FALSE(store_->Get(Collection::kGroups, "g").value());
  {
    auto tx = store_->Begin().value();
    ASSERT_TRUE(tx->Put(Collection::kGroups, "g", R"({"m":3})"));
    // Destroyed without Commit: rolled back.
  }
  EXPECT_FALSE(store_->Get(Collection::kGroups, "g").value());
  EXPECT_EQ(Revision(), 0);
}

TEST_P(StoreConformance, ReadTransactionIsASnapshotAndRefusesWrites) {
  MustPut(Collection::kTrustedIssuers, "i", R"({"v":1})");
  auto rtx = store_->BeginRead().value();
  EXPECT_TRUE(rtx->read_only());
  EXPECT_EQ(rtx->Get(Collection::kTrustedIssuers, "i").value()->data, R"({"v":1})");
  MustPut(Collection::kTrustedIssuers, "i", R"({"v":2})");
  MustPut(Collection::kTrustedIssuers, "j", "{}");
  EXPECT_EQ(rtx->Get(Collection::kTrustedIssuers, "i").value()->data, R"({"v":1})");
  EXPECT_EQ(rtx->List(Collection::kTrustedIssuers, {}).value().documents.size(), 1u);
  EXPECT_EQ(rtx->Put(Collection::kTrustedIssuers, "i", "{}").error().code,
            Code::kFailedPrecondition);
  EXPECT_EQ(rtx->Commit().error().code, Code::kFailedPrecondition);  // failed by the write
  auto fresh = store_->BeginRead().value();
  EXPECT_EQ(fresh->Get(Collection::kTrustedIssuers, "i").value()->data, R"({"v":2})");
  EXPECT_EQ(fresh->Commit().value(), 3);
}

TEST_P(StoreConformance, ReadsProceedWhileAWriteTransactionIsOpen) {
  MustPut(Collection::kSigningKeys, "k1", R"({"blob":"x"})");
  auto tx = store_->Begin().value();
  ASSERT_TRUE(tx->Put(Collection::kSigningKeys, "k2", "{}"));
  std::optional<Document> seen_k1, seen_k2;
  std::thread reader([&] {
    seen_k1 = store_->Get(Collection::kSigningKeys, "k1").value();
    seen_k2 = store_->Get(Collection::kSigningKeys, "k2").value();
  });
  reader.join();  // would hang if readers waited for the writer
  EXPECT_TRUE(seen_k1);
  EXPECT_FALSE(seen_k2);  // uncommitted writes are invisible
  ASSERT_TRUE(tx->Commit());
}

TEST_P(StoreConformance, SecondWriteTransactionOnOneThreadIsRefusedNotDeadlocked) {
  auto tx = store_->Begin().value();
  auto second = store_->Begin();
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, Code::kFailedPrecondition);
  EXPECT_EQ(store_->Put(Collection::kSettings, "k", "{}").error().code, Code::kFailedPrecondition);
  tx.reset();
  MustPut(Collection::kSettings, "k", "{}");
}

TEST_P(StoreConformance, AuditLogFiltersAndPagesNewestFirst) {
  TimePoint t0 = clock_.Now();
  struct Row {
    AuditKind kind;
    const char* principal;
    const char* resource;
    const char* request_id;
  };
  const Row rows[] = {
      {AuditKind::kAdminActivity, "user:a@x", "projects/p", "r1"},
      {AuditKind::kDataAccess, "user:b@x", "projects/p/locations/l/services/s", "r2"},
      {AuditKind::kAdminActivity, "user:a@x", "projects/p/locations/l/services/s", "r3"},
      {AuditKind::kDataAccess, "user:a@x", "projects/p2", "r4"},
      {AuditKind::kAdminActivity, "user:b@x", "projects/p/serviceAccounts/x", "r5"},
  };
  for (const Row& r : rows) {
    clock_.Advance(seconds(10));
    ASSERT_TRUE(store_->AppendAudit({.kind = r.kind,
                                     .principal = r.principal,
                                     .method = "google.iam.v1.IAMPolicy.SetIamPolicy",
                                     .resource = r.resource,
                                     .request_id = r.request_id,
                                     .status = "OK",
                                     .details = R"({"n":1})"}));
  }
  auto ids = [](const AuditPage& p) {
    std::vector<std::string> v;
    for (auto& r : p.records) v.push_back(r.entry.request_id);
    return v;
  };
  using V = std::vector<std::string>;
  auto all = store_->QueryAudit({}).value();
  EXPECT_EQ(ids(all), (V{"r5", "r4", "r3", "r2", "r1"}));
  EXPECT_EQ(all.records[0].entry.time, t0 + seconds(50));
  EXPECT_EQ(all.records[0].entry.kind, AuditKind::kAdminActivity);
  EXPECT_EQ(all.records[0].entry.details, R"({"n":1})");
  EXPECT_EQ(all.records[0].entry.method, "google.iam.v1.IAMPolicy.SetIamPolicy");
  EXPECT_GT(all.records[0].id, all.records[1].id);

  EXPECT_EQ(ids(store_->QueryAudit({.resource = "projects/p"}).value()), (V{"r1"}));
  EXPECT_EQ(
      ids(store_->QueryAudit({.resource = "projects/p/", .resource_is_prefix = true}).value()),
      (V{"r5", "r3", "r2"}));
  EXPECT_EQ(ids(store_->QueryAudit({.resource = "projects/p", .resource_is_prefix = true}).value()),
            (V{"r5", "r4", "r3", "r2", "r1"}));
  EXPECT_EQ(ids(store_->QueryAudit({.principal = "user:a@x"}).value()), (V{"r4", "r3", "r1"}));
  EXPECT_EQ(ids(store_->QueryAudit({.kind = AuditKind::kDataAccess}).value()), (V{"r4", "r2"}));
  EXPECT_EQ(ids(store_->QueryAudit({.start_time = t0 + seconds(20), .end_time = t0 + seconds(40)})
                    .value()),
            (V{"r3", "r2"}));
  EXPECT_EQ(ids(store_->QueryAudit({.request_id = "r4"}).value()), (V{"r4"}));
  EXPECT_EQ(
      ids(store_->QueryAudit({.principal = "user:a@x", .kind = AuditKind::kAdminActivity}).value()),
      (V{"r3", "r1"}));

  V paged;
  AuditQuery q{.principal = "user:a@x", .page_size = 2};
  int pages = 0;
  do {
    auto p = store_->QueryAudit(q).value();
    ++pages;
    for (auto& id : ids(p)) paged.push_back(id);
    q.page_token = p.next_page_token;
  } while (!q.page_token.empty());
  EXPECT_EQ(paged, (V{"r4", "r3", "r1"}));
  EXPECT_EQ(pages, 2);

  EXPECT_EQ(store_->QueryAudit({.page_token = "garbage!"}).error().code, Code::kInvalidArgument);
  EXPECT_EQ(store_->AppendAudit({.details = "[1]"}).error().code, Code::kInvalidArgument);
  EXPECT_EQ(store_->AppendAudit({.details = "{"}).error().code, Code::kInvalidArgument);
  EXPECT_EQ(store_->QueryAudit({}).value().records.size(), 5u);
}

// Read-modify-write with etag retry from many threads, the way gcloud-style clients update a
// policy: every member must end up in the policy exactly once (no lost update).
TEST_P(StoreConformance, ConcurrentReadModifyWriteLosesNoUpdate) {
  const std::string key = "projects/p/locations/r/services/s";
  MustPut(Collection::kPolicies, key,
          R"({"bindings":[{"role":"roles/run.invoker","members":[]}]})");
  constexpr int kThreads = 16;
  constexpr int kPerThread = 4;
  std::atomic<int> aborted{0};
  std::atomic<int> unexpected{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string member = "user:u" + std::to_string(t) + "-" + std::to_string(i) + "@x.com";
        for (int attempt = 0;; ++attempt) {
          if (attempt > 10000) {
            ++unexpected;
            return;
          }
          auto doc = store_->Get(Collection::kPolicies, key);
          if (!doc || !*doc) {
            ++unexpected;
            return;
          }
          boost::json::value policy = boost::json::parse((*doc)->data);
          policy.at("bindings").at(0).at("members").as_array().emplace_back(member);
          auto put =
              store_->Put(Collection::kPolicies, key, boost::json::serialize(policy),
                          {.parent = "", .precondition = Precondition::EtagMatches((*doc)->etag)});
          if (put) break;
          if (put.error().code != Code::kAborted ||
              put.error().message != kConcurrentPolicyChangeMessage) {
            ++unexpected;
            return;
          }
          ++aborted;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(unexpected.load(), 0);
  auto doc = store_->Get(Collection::kPolicies, key).value();
  ASSERT_TRUE(doc);
  boost::json::value policy = boost::json::parse(doc->data);
  const auto& members = policy.at("bindings").at(0).at("members").as_array();
  std::multiset<std::string> got;
  for (const auto& m : members) got.insert(std::string(m.as_string()));
  EXPECT_EQ(got.size(), static_cast<size_t>(kThreads * kPerThread));
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      EXPECT_EQ(got.count("user:u" + std::to_string(t) + "-" + std::to_string(i) + "@x.com"), 1u);
    }
  }
  EXPECT_EQ(Revision(), 1 + kThreads * kPerThread);
  RecordProperty("aborted_retries", aborted.load());
}

// ---- change-feed compaction ----

// Commits `n` revisions, each rewriting one of a few keys.
void Churn(Store& store, int n, int keys = 3) {
  for (int i = 0; i < n; ++i) {
    ASSERT_TRUE(store.Put(Collection::kSettings, "k" + std::to_string(i % keys),
                          R"({"i":)" + std::to_string(i) + "}"));
  }
}

TEST_P(StoreConformance, CompactionKeepsTheRetainedWindowAndRefusesOlderCursors) {
  Churn(*store_, 30);
  ASSERT_EQ(Revision(), 30);
  EXPECT_EQ(store_->CompactedRevision().value(), 0);
  EXPECT_EQ(store_->CompactChanges(5).value(), 25);
  EXPECT_EQ(store_->CompactedRevision().value(), 25);

  // The retained window is intact: revisions 26..30, one change each.
  auto kept = store_->ChangesSince(25).value();
  EXPECT_EQ(kept.last_revision, 30);
  ASSERT_EQ(kept.changes.size(), 5u);
  for (size_t i = 0; i < kept.changes.size(); ++i) {
    EXPECT_EQ(kept.changes[i].revision, 26 + static_cast<int64_t>(i));
    EXPECT_EQ(kept.changes[i].key, "k" + std::to_string((25 + i) % 3));
  }
  // Cursors before the compacted point get a clear, distinct error.
  for (int64_t since : {0, 1, 24}) {
    auto r = store_->ChangesSince(since);
    ASSERT_FALSE(r) << since;
    EXPECT_EQ(r.error().code, Code::kOutOfRange);
    EXPECT_NE(r.error().message.find("compacted up to revision 25"), std::string::npos)
        << r.error().message;
    EXPECT_NE(r.error().message.find("reload"), std::string::npos);
  }
  // Documents are untouched, and compaction is idempotent and never moves back.
  EXPECT_EQ(store_->Get(Collection::kSettings, "k2").value()->data, R"({"i":29})");
  EXPECT_EQ(store_->CompactChanges(5).value(), 25);
  EXPECT_EQ(store_->CompactChanges(100).value(), 25);
  // At least the newest revision is always kept, even with retention 0.
  EXPECT_EQ(store_->CompactChanges(0).value(), 29);
  EXPECT_EQ(store_->ChangesSince(29).value().changes.size(), 1u);
  EXPECT_EQ(Revision(), 30);
}

TEST_P(StoreConformance, RevisionsAreNeverReusedAfterCompaction) {
  Churn(*store_, 10);
  EXPECT_EQ(store_->CompactChanges(1).value(), 9);
  Document d = MustPut(Collection::kUsers, "u", "{}");
  EXPECT_EQ(d.revision, 11);
  EXPECT_EQ(Revision(), 11);
  EXPECT_EQ(store_->CompactChanges(1).value(), 10);
  auto batch = store_->ChangesSince(10).value();
  ASSERT_EQ(batch.changes.size(), 1u);
  EXPECT_EQ(batch.changes[0].revision, 11);
  EXPECT_EQ(batch.changes[0].key, "u");
  // Audit-only and empty transactions still create no revision.
  ASSERT_TRUE(store_->AppendAudit({.method = "m"}));
  EXPECT_EQ(Revision(), 11);
  EXPECT_EQ(MustPut(Collection::kUsers, "v", "{}").revision, 12);
}

TEST_P(StoreConformance, CompactionNeverTouchesTheAuditLog) {
  for (int i = 0; i < 20; ++i) {
    auto tx = store_->Begin().value();
    ASSERT_TRUE(tx->Put(Collection::kSettings, "k", "{}"));
    ASSERT_TRUE(tx->AppendAudit({.method = "m" + std::to_string(i)}));
    ASSERT_TRUE(tx->Commit());
  }
  EXPECT_EQ(store_->CompactChanges(1).value(), 19);
  auto page = store_->QueryAudit({.page_size = 100}).value();
  ASSERT_EQ(page.records.size(), 20u);
  EXPECT_EQ(page.records.front().entry.method, "m19");
  EXPECT_EQ(page.records.back().entry.method, "m0");
}

TEST_P(StoreConformance, HoldsKeepWhatAFollowerHasNotConsumed) {
  Churn(*store_, 10);
  ChangeHold hold = store_->HoldChanges(4);
  ChangeHold later = store_->HoldChanges(8);
  Churn(*store_, 10);
  // The lowest hold wins over the retention.
  EXPECT_EQ(store_->CompactChanges(2).value(), 4);
  EXPECT_EQ(store_->ChangesSince(4).value().last_revision, 20);
  hold.Advance(12);
  hold.Advance(6);  // never moves back
  EXPECT_EQ(store_->CompactChanges(2).value(), 8);
  hold.Reset();
  later.Advance(15);
  EXPECT_EQ(store_->CompactChanges(2).value(), 15);
  later = ChangeHold();  // move-assigning releases the old hold
  EXPECT_EQ(store_->CompactChanges(2).value(), 18);
  // A hold taken behind the compacted point does not resurrect anything.
  ChangeHold stale = store_->HoldChanges(3);
  EXPECT_EQ(store_->CompactChanges(2).value(), 18);
  EXPECT_EQ(store_->ChangesSince(3).error().code, Code::kOutOfRange);
}

TEST_P(StoreConformance, HoldMayOutliveTheStore) {
  ChangeHold hold = store_->HoldChanges(0);
  store_.reset();
  hold.Advance(3);
  hold.Reset();
}

TEST_P(StoreConformance, CommitsCompactAutomaticallyWithBoundedWork) {
  store_.reset();
  store_ = GetParam().make(dir_ + "/auto", &clock_, 10);
  ASSERT_NE(store_, nullptr);
  Churn(*store_, 200);
  EXPECT_EQ(store_->CompactedRevision().value(), 190);
  auto tail = store_->ChangesSince(190).value();
  EXPECT_EQ(tail.last_revision, 200);
  EXPECT_EQ(tail.changes.size(), 10u);
  EXPECT_EQ(store_->ChangesSince(189).error().code, Code::kOutOfRange);

  // A hold stops automatic compaction too; once released, each commit drops at most
  // kCompactRevisionsPerCommit revisions until the window is back to 10.
  {
    ChangeHold hold = store_->HoldChanges(195);
    Churn(*store_, 200);
    EXPECT_EQ(store_->CompactedRevision().value(), 195);
    EXPECT_EQ(store_->ChangesSince(195, 500).value().changes.size(), 205u);
  }
  Churn(*store_, 1);
  EXPECT_EQ(store_->CompactedRevision().value(), 195 + kCompactRevisionsPerCommit);
  Churn(*store_, 5);
  EXPECT_EQ(store_->CompactedRevision().value(), 406 - 10);
}

TEST_P(StoreConformance, FollowerThatFellBehindReloadsAndCatchesUp) {
  // The protocol a snapshot follower uses: follow from a cursor; on kOutOfRange, read a full
  // snapshot and continue from the revision it was read at.
  Churn(*store_, 5);
  int64_t cursor = 2;
  Churn(*store_, 20);
  ASSERT_EQ(store_->CompactChanges(3).value(), 22);
  auto r = store_->ChangesSince(cursor);
  ASSERT_FALSE(r);
  ASSERT_EQ(r.error().code, Code::kOutOfRange);
  auto tx = store_->BeginRead().value();
  auto page = tx->List(Collection::kSettings, {}).value();
  EXPECT_EQ(page.documents.size(), 3u);
  cursor = tx->Commit().value();
  EXPECT_EQ(cursor, 25);
  MustPut(Collection::kUsers, "u", "{}");
  auto next = store_->ChangesSince(cursor).value();
  ASSERT_EQ(next.changes.size(), 1u);
  EXPECT_EQ(next.changes[0].key, "u");
}

INSTANTIATE_TEST_SUITE_P(
    Backends, StoreConformance,
    ::testing::Values(Backend{"Sqlite",
                              [](const std::string& dir, const Clock* clock,
                                 int64_t retention) -> std::unique_ptr<Store> {
                                auto s = SqliteStore::Open(
                                    dir, {.clock = clock, .change_retention = retention});
                                if (!s) ADD_FAILURE() << s.error().ToString();
                                return s ? std::move(*s) : nullptr;
                              }},
                      Backend{"Memory",
                              [](const std::string&, const Clock* clock,
                                 int64_t retention) -> std::unique_ptr<Store> {
                                return std::make_unique<MemoryStore>(clock, retention);
                              }}),
    [](const ::testing::TestParamInfo<Backend>& info) { return info.param.name; });

}  // namespace
}  // namespace moat::store
