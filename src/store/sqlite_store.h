// SqliteStore: the default Store, one SQLite database under the server's home directory
// (DIR/moat.db; see ResolveHome in store.h).
//
// Durability: journal_mode=WAL, synchronous=FULL, so a commit is on disk (fsync'd WAL) before
// Commit() returns; an acknowledged write survives kill -9 and power loss. foreign_keys=ON.
//
// Layout and safety:
//   - DIR is created with mode 0700 if missing; moat.db is created with mode 0600 (existing
//     files with group/other permissions are tightened to 0600, since the database holds
//     encrypted key material and audit logs). SQLite gives -wal/-shm the database's mode.
//   - An exclusive advisory lock on DIR/moat.lock makes a second process (or a second Open of
//     the same DIR) fail with kUnavailable instead of sharing the database behind the in-process
//     change notifications.
//   - Schema migrations (store/migrations.h) are applied in order at Open inside one
//     transaction; a database whose schema is newer than this binary knows is refused with
//     kFailedPrecondition, as is a SQLite file that is not a Moat database.
//
// Threading: one writer connection, serialized by a mutex held for the lifetime of a
// read-write transaction (BEGIN IMMEDIATE); a pool of reader connections, one per open read
// transaction, so reads proceed during a write (WAL snapshot isolation).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "common/clock.h"
#include "store/store.h"

namespace moat::store {

struct SqliteStoreOptions {
  // Stamps create/update/audit times. Default: the system clock. Must outlive the store.
  const Clock* clock = nullptr;
  // How long a statement waits on a lock held by another connection. Default 5 s.
  std::chrono::milliseconds busy_timeout{5000};
  // Caps the database size (rounded down to whole pages); writes beyond it fail with
  // kUnavailable and are rolled back. 0 (default) = no cap.
  int64_t max_database_bytes = 0;
  // Reader connections kept open when idle. Default 4.
  int max_idle_readers = 4;
  // Each commit compacts the change feed to the newest that many revisions (at most
  // kCompactRevisionsPerCommit per commit, in the commit's transaction); <= 0 disables that.
  // Freed pages are reused by later writes, so the file stops growing under churn.
  int64_t change_retention = kDefaultChangeRetention;
};

class SqliteStore : public Store {
 public:
  using Options = SqliteStoreOptions;

  // Opens (creating if needed) DIR/moat.db and migrates it to the latest schema.
  // Errors: kUnavailable (cannot create/open/lock, I/O), kFailedPrecondition (newer schema, not
  // a Moat database), kInternal (corrupt file).
  static Result<std::unique_ptr<SqliteStore>> Open(const std::string& dir,
                                                   const Options& options = {});
  // The newest schema version this binary knows (the number of the last migration file).
  static int LatestSchemaVersion();

  ~SqliteStore() override;

  Result<std::unique_ptr<Transaction>> Begin() override;
  Result<std::unique_ptr<Transaction>> BeginRead() override;
  Result<int64_t> CurrentRevision() override;
  Result<ChangeBatch> ChangesSince(int64_t since, int max_revisions = 1000) override;
  Result<int64_t> CompactChanges(int64_t retain_revisions = kDefaultChangeRetention) override;
  Result<int64_t> CompactedRevision() override;
  [[nodiscard]] ChangeHold HoldChanges(int64_t after) override;
  bool WaitForRevision(int64_t revision, std::chrono::milliseconds timeout) override;
  [[nodiscard]] Subscription Subscribe(CommitCallback callback) override;
  Result<AuditPage> QueryAudit(const AuditQuery& query) override;

  // The database file's path (DIR/moat.db).
  const std::string& path() const;

  // The settings as SQLite reports them on the writer connection and on a reader connection
  // (for tests and `moat serve` diagnostics).
  struct Durability {
    std::string journal_mode;  // "wal"
    int synchronous = -1;      // 2 = FULL
    bool foreign_keys = false;
    int busy_timeout_ms = -1;
    int schema_version = 0;  // highest applied migration
  };
  Result<Durability> WriterDurability();
  Result<Durability> ReaderDurability();

  struct Impl;  // implementation detail

 private:
  explicit SqliteStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace moat::store
