// SQLite-specific behaviour: durability settings, file modes, migrations, the home lock,
// disk-full handling, and a crash test (SIGKILL mid-writes loses no acknowledged commit).
#include "store/sqlite_store.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include "store/migrations.h"
#include "store/store_test_util.h"

namespace moat::store {
namespace {

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_util::MakeTempDir();
    home_ = dir_ + "/nested/home";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<SqliteStore> MustOpen(const SqliteStore::Options& o = {}) {
    auto s = SqliteStore::Open(home_, o);
    EXPECT_TRUE(s) << (s ? "" : s.error().ToString());
    return s ? std::move(*s) : nullptr;
  }

  // Runs SQL on the database file directly (the store must be closed).
  void RawExec(const std::string& path, const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    EXPECT_EQ(rc, SQLITE_OK) << (err ? err : "");
    sqlite3_free(err);
    sqlite3_close(db);
  }
  std::string RawQuery(const std::string& path, const std::string& sql) {
    sqlite3* db = nullptr;
    std::string out;
    if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) return "open failed";
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
      const unsigned char* t = sqlite3_column_text(st, 0);
      out = t ? reinterpret_cast<const char*>(t) : "";
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
  }

  std::string dir_;
  std::string home_;
};

TEST_F(SqliteStoreTest, UsesWalFullSyncAndForeignKeysOnEveryConnection) {
  auto store = MustOpen();
  ASSERT_TRUE(store);
  for (auto d : {store->WriterDurability(), store->ReaderDurability()}) {
    ASSERT_TRUE(d) << d.error().ToString();
    EXPECT_EQ(d->journal_mode, "wal");
    EXPECT_EQ(d->synchronous, 2);  // FULL
    EXPECT_TRUE(d->foreign_keys);
    EXPECT_EQ(d->busy_timeout_ms, 5000);
    EXPECT_EQ(d->schema_version, SqliteStore::LatestSchemaVersion());
  }
}

TEST_F(SqliteStoreTest, CreatesPrivateHomeAndDatabaseFile) {
  auto store = MustOpen();
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->Put(Collection::kSettings, "k", "{}"));
  struct stat st {};
  ASSERT_EQ(stat(home_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_EQ(store->path(), home_ + "/moat.db");
  for (std::string f : {"/moat.db", "/moat.db-wal", "/moat.lock"}) {
    ASSERT_EQ(stat((home_ + f).c_str(), &st), 0) << f;
    EXPECT_EQ(st.st_mode & 0077, 0u) << f;
  }
}

TEST_F(SqliteStoreTest, TightensPermissionsOfAnExistingDatabaseFile) {
  std::filesystem::create_directories(home_);
  { std::ofstream(home_ + "/moat.db"); }
  chmod((home_ + "/moat.db").c_str(), 0644);
  auto store = MustOpen();
  ASSERT_TRUE(store);
  struct stat st {};
  ASSERT_EQ(stat((home_ + "/moat.db").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(SqliteStoreTest, ReopeningKeepsDataAndAppliesMigrationsOnce) {
  {
    auto store = MustOpen();
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->Put(Collection::kProjects, "projects/p", R"({"n":1})"));
  }
  {
    auto store = MustOpen();
    ASSERT_TRUE(store);
    EXPECT_EQ(store->Get(Collection::kProjects, "projects/p").value()->data, R"({"n":1})");
    EXPECT_EQ(store->CurrentRevision().value(), 1);
    EXPECT_TRUE(store->WaitForRevision(1, std::chrono::milliseconds(0)));
    ASSERT_TRUE(store->Put(Collection::kProjects, "projects/q", "{}"));
    EXPECT_EQ(store->CurrentRevision().value(), 2);
  }
  EXPECT_EQ(RawQuery(home_ + "/moat.db", "SELECT COUNT(*) FROM schema_migrations"),
            std::to_string(SqliteStore::LatestSchemaVersion()));
  EXPECT_EQ(RawQuery(home_ + "/moat.db", "SELECT name FROM schema_migrations WHERE version = 1"),
            "0001_init.sql");
}

TEST_F(SqliteStoreTest, CompactionSurvivesReopenAndRevisionsContinue) {
  {
    auto store = MustOpen({.change_retention = 0});
    ASSERT_TRUE(store);
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(store->Put(Collection::kSettings, "k", "{}"));
    EXPECT_EQ(store->CompactChanges(3).value(), 17);
  }
  EXPECT_EQ(RawQuery(home_ + "/moat.db", "SELECT COUNT(*) FROM revisions"), "3");
  EXPECT_EQ(RawQuery(home_ + "/moat.db", "SELECT COUNT(*) FROM changes"), "3");
  auto store = MustOpen();
  ASSERT_TRUE(store);
  EXPECT_EQ(store->CurrentRevision().value(), 20);
  EXPECT_EQ(store->CompactedRevision().value(), 17);
  EXPECT_EQ(store->ChangesSince(16).error().code, Code::kOutOfRange);
  EXPECT_EQ(store->Put(Collection::kSettings, "k", "{}").value().revision, 21);
  EXPECT_EQ(store->ChangesSince(17).value().changes.size(), 4u);
}

// Rewrites a few documents `commits` times (so only the change feed could grow), then closes
// the store (SQLite checkpoints the WAL into moat.db on the last close) and returns moat.db's
// size in bytes.
int64_t ChurnAndMeasure(const std::string& home, int64_t retention, int commits, int* done) {
  auto store = SqliteStore::Open(home, {.change_retention = retention});
  if (!store) {
    ADD_FAILURE() << store.error().ToString();
    return -1;
  }
  // Long keys make every change-feed row big, so growth is visible quickly.
  const std::string prefix(400, 'p');
  for (int i = 0; i < commits; ++i, ++*done) {
    auto r = (*store)->Put(Collection::kSettings, prefix + std::to_string(*done % 8),
                           R"({"i":)" + std::to_string(*done) + "}");
    if (!r) {
      ADD_FAILURE() << r.error().ToString();
      return -1;
    }
  }
  store->reset();
  std::error_code ec;
  return static_cast<int64_t>(std::filesystem::file_size(home + "/moat.db", ec));
}

TEST_F(SqliteStoreTest, DatabaseStopsGrowingUnderChurnWithCompaction) {
  constexpr int64_t kRetention = 200;
  int done = 0;
  int64_t warm = ChurnAndMeasure(home_, kRetention, 1000, &done);
  int64_t after = ChurnAndMeasure(home_, kRetention, 2000, &done);
  // Without compaction the same churn keeps growing the file.
  int done_off = 0;
  std::string off_home = dir_ + "/off";
  int64_t warm_off = ChurnAndMeasure(off_home, 0, 1000, &done_off);
  int64_t after_off = ChurnAndMeasure(off_home, 0, 2000, &done_off);
  ASSERT_GT(warm, 0);
  ASSERT_GT(warm_off, 0);
  RecordProperty("compacted_bytes_after_1000", std::to_string(warm));
  RecordProperty("compacted_bytes_after_3000", std::to_string(after));
  RecordProperty("uncompacted_bytes_after_1000", std::to_string(warm_off));
  RecordProperty("uncompacted_bytes_after_3000", std::to_string(after_off));
  std::printf("moat.db bytes after 1000/3000 commits: compacted %lld/%lld, uncompacted %lld/%lld\n",
              static_cast<long long>(warm), static_cast<long long>(after),
              static_cast<long long>(warm_off), static_cast<long long>(after_off));
  // Freed pages are reused: at most a few pages of slack once the window is full.
  EXPECT_LE(after, warm + 4 * 4096);
  EXPECT_GT(after_off, warm_off + 500 * 1024);
}

TEST_F(SqliteStoreTest, RefusesADatabaseFromANewerMoat) {
  { ASSERT_TRUE(MustOpen()); }
  RawExec(home_ + "/moat.db",
          "INSERT INTO schema_migrations (version, name, applied_time_us) VALUES "
          "(9999, '9999_future.sql', 0)");
  auto s = SqliteStore::Open(home_);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Code::kFailedPrecondition);
  EXPECT_NE(s.error().message.find("schema version 9999"), std::string::npos) << s.error().message;
  EXPECT_NE(
      s.error().message.find("knows up to " + std::to_string(SqliteStore::LatestSchemaVersion())),
      std::string::npos);
}

TEST_F(SqliteStoreTest, RefusesASqliteFileThatIsNotAMoatDatabase) {
  std::filesystem::create_directories(home_);
  RawExec(home_ + "/moat.db", "CREATE TABLE something_else (x INTEGER)");
  auto s = SqliteStore::Open(home_);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Code::kFailedPrecondition);
  EXPECT_NE(s.error().message.find("is not a moat database"), std::string::npos);
}

TEST_F(SqliteStoreTest, RefusesAHomeThatIsAFile) {
  std::filesystem::create_directories(dir_ + "/nested");
  { std::ofstream(home_) << "x"; }
  auto s = SqliteStore::Open(home_);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Code::kFailedPrecondition);
}

TEST_F(SqliteStoreTest, SecondOpenOfTheSameHomeFails) {
  auto first = MustOpen();
  ASSERT_TRUE(first);
  auto second = SqliteStore::Open(home_);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, Code::kUnavailable);
  EXPECT_NE(second.error().message.find("in use by another moat server"), std::string::npos);
  first.reset();
  EXPECT_TRUE(MustOpen());
}

TEST_F(SqliteStoreTest, FullDatabaseFailsCleanlyAndRollsBack) {
  auto store = MustOpen({.max_database_bytes = 512 * 1024});
  ASSERT_TRUE(store);
  std::string blob = "\"" + std::string(32 * 1024, 'x') + "\"";
  int ok = 0;
  Error failure;
  for (int i = 0; i < 100; ++i) {
    auto tx = store->Begin().value();
    // Two writes per transaction: a failure in the second must undo the first.
    auto a = tx->Put(Collection::kSettings, "a" + std::to_string(i), blob);
    auto b = a ? tx->Put(Collection::kSettings, "b" + std::to_string(i), blob) : a;
    auto c = b ? tx->Commit() : Result<int64_t>(b.error());
    if (!c) {
      failure = c.error();
      break;
    }
    ++ok;
  }
  ASSERT_LT(ok, 100) << "the size cap was never reached";
  EXPECT_EQ(failure.code, Code::kUnavailable);
  EXPECT_NE(failure.message.find("database is full"), std::string::npos);
  // Reads still work; exactly the committed transactions are visible, both halves of each.
  auto all = store->List(Collection::kSettings, {.page_size = kMaxPageSize}).value();
  EXPECT_EQ(all.documents.size(), static_cast<size_t>(2 * ok));
  EXPECT_EQ(store->CurrentRevision().value(), ok);
  // Freeing space makes writes possible again.
  for (int i = 0; i < ok; ++i)
    ASSERT_TRUE(store->Delete(Collection::kSettings, "a" + std::to_string(i)));
  EXPECT_TRUE(store->Put(Collection::kSettings, "small", "{}"));
}

// Number of threads in this process (fork is only safe while it is 1).
int ThreadCount() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
  }
  return -1;
}

TEST_F(SqliteStoreTest, SigkillMidWritesLosesNoAcknowledgedCommit) {
  ASSERT_EQ(ThreadCount(), 1) << "fork needs a single-threaded test process";
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // Child: write forever, acknowledging each commit on the pipe after Commit returns.
    close(fds[0]);
    auto store = SqliteStore::Open(home_);
    if (!store) _exit(3);
    for (int i = 0;; ++i) {
      auto tx = (*store)->Begin();
      if (!tx) _exit(4);
      std::string k = "k" + std::to_string(i);
      if (!(*tx)->Put(Collection::kSettings, k, "{\"i\":" + std::to_string(i) + "}") ||
          !(*tx)->Put(Collection::kSettings, "counter", "{\"n\":" + std::to_string(i) + "}") ||
          !(*tx)->AppendAudit({.resource = k, .request_id = k}) || !(*tx)->Commit()) {
        _exit(5);
      }
      std::string ack = k + "\n";
      if (write(fds[1], ack.data(), ack.size()) != static_cast<ssize_t>(ack.size())) _exit(6);
    }
  }
  close(fds[1]);
  std::set<std::string> acked;
  std::string buf;
  auto drain = [&](size_t want) {
    char chunk[4096];
    while (acked.size() < want) {
      ssize_t n = read(fds[0], chunk, sizeof chunk);
      if (n <= 0) return;
      buf.append(chunk, static_cast<size_t>(n));
      size_t nl;
      while ((nl = buf.find('\n')) != std::string::npos) {
        acked.insert(buf.substr(0, nl));
        buf.erase(0, nl + 1);
      }
    }
  };
  drain(300);
  kill(pid, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  drain(SIZE_MAX);  // acks written before the kill count too
  close(fds[0]);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exited early with status " << WEXITSTATUS(status);
  ASSERT_GE(acked.size(), 300u);

  auto store = MustOpen();
  ASSERT_TRUE(store);
  int64_t max_acked = -1;
  for (const std::string& k : acked) {
    auto doc = store->Get(Collection::kSettings, k).value();
    ASSERT_TRUE(doc) << "acknowledged write " << k << " was lost";
    max_acked = std::max<int64_t>(max_acked, std::stoll(k.substr(1)));
  }
  auto counter = store->Get(Collection::kSettings, "counter").value();
  ASSERT_TRUE(counter);
  int64_t n = std::stoll(counter->data.substr(5));
  EXPECT_GE(n, max_acked);
  // Each commit was atomic: document k<n>, the counter and the audit entry together.
  EXPECT_TRUE(store->Get(Collection::kSettings, "k" + std::to_string(n)).value());
  EXPECT_FALSE(store->Get(Collection::kSettings, "k" + std::to_string(n + 1)).value());
  EXPECT_EQ(store->CurrentRevision().value(), n + 1);
  EXPECT_EQ(store->QueryAudit({.request_id = "k" + std::to_string(n)}).value().records.size(), 1u);
  store.reset();
  EXPECT_EQ(RawQuery(home_ + "/moat.db", "PRAGMA integrity_check"), "ok");
}

TEST(SqliteStoreMigrations, AreEmbeddedNumberedWithoutGaps) {
  const auto& m = Migrations();
  ASSERT_FALSE(m.empty());
  for (size_t i = 0; i < m.size(); ++i) {
    EXPECT_EQ(m[i].version, static_cast<int>(i) + 1);
    char prefix[8];
    std::snprintf(prefix, sizeof prefix, "%04d_", m[i].version);
    EXPECT_EQ(std::string(m[i].name).rfind(prefix, 0), 0u) << m[i].name;
    EXPECT_NE(std::string(m[i].sql).find("CREATE TABLE"), std::string::npos);
  }
  EXPECT_EQ(SqliteStore::LatestSchemaVersion(), m.back().version);
}

}  // namespace
}  // namespace moat::store
