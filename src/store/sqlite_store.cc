#include "store/sqlite_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/log.h"
#include "store/internal.h"
#include "store/migrations.h"

namespace moat::store {

namespace {

// PRAGMA application_id for Moat databases ("MOAT").
constexpr int kApplicationId = 0x4d4f4154;

// Maps a SQLite failure to a caller-facing error. The SQLite message (which may name files or
// SQL) goes to the log only.
Error SqlError(sqlite3* db, int rc, std::string_view op) {
  log::Error("sqlite operation failed",
             {{"op", std::string(op)},
              {"code", std::to_string(rc)},
              {"detail", db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc)}});
  switch (rc & 0xff) {
    case SQLITE_FULL:
      return Unavailable("the database is full (disk or configured size limit); nothing was saved");
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Unavailable("the database is busy; retry later");
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_NOMEM:
    case SQLITE_PROTOCOL:
      return Unavailable("the database could not be read or written (I/O error)");
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Internal("the database file is corrupt");
    default:
      return Internal("the database failed unexpectedly");
  }
}

// One connection and its prepared-statement cache. Used by one thread at a time.
class Conn {
 public:
  Conn() = default;
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  ~Conn() {
    for (auto& [sql, st] : stmts_) sqlite3_finalize(st);
    if (db_ != nullptr) sqlite3_close_v2(db_);
  }

  static Result<std::unique_ptr<Conn>> Open(const std::string& path,
                                            std::chrono::milliseconds busy_timeout, bool reader) {
    auto c = std::make_unique<Conn>();
    int rc = sqlite3_open_v2(path.c_str(), &c->db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                             nullptr);
    if (rc != SQLITE_OK) return SqlError(c->db_, rc, "open");
    sqlite3_extended_result_codes(c->db_, 1);
    sqlite3_busy_timeout(c->db_, static_cast<int>(busy_timeout.count()));
    MOAT_CHECK_OK(c->Exec("PRAGMA journal_mode=WAL"));
    MOAT_CHECK_OK(c->Exec("PRAGMA synchronous=FULL"));
    MOAT_CHECK_OK(c->Exec("PRAGMA foreign_keys=ON"));
    if (reader) MOAT_CHECK_OK(c->Exec("PRAGMA query_only=ON"));
    return c;
  }

  sqlite3* db() const { return db_; }

  Status Exec(const char* sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
    sqlite3_free(err);
    if (rc != SQLITE_OK) return SqlError(db_, rc, "exec");
    return Ok();
  }

  Result<sqlite3_stmt*> Prepare(const std::string& sql, bool cache = true) {
    if (cache) {
      auto it = stmts_.find(sql);
      if (it != stmts_.end()) return it->second;
    }
    sqlite3_stmt* st = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql.c_str(), static_cast<int>(sql.size()),
                                cache ? SQLITE_PREPARE_PERSISTENT : 0, &st, nullptr);
    if (rc != SQLITE_OK) return SqlError(db_, rc, "prepare");
    if (cache) stmts_.emplace(sql, st);
    return st;
  }

  bool InTransaction() const { return sqlite3_get_autocommit(db_) == 0; }

 private:
  sqlite3* db_ = nullptr;
  std::unordered_map<std::string, sqlite3_stmt*> stmts_;
};

// A bound statement; resets (cached) or finalizes (uncached) on destruction.
class Stmt {
 public:
  Stmt(Conn* conn, sqlite3_stmt* st, bool owned) : conn_(conn), st_(st), owned_(owned) {}
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt() {
    if (owned_) {
      sqlite3_finalize(st_);
    } else {
      sqlite3_reset(st_);
      sqlite3_clear_bindings(st_);
    }
  }
  Stmt& Bind(int i, std::string_view s) {
    sqlite3_bind_text(st_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& Bind(int i, int64_t v) {
    sqlite3_bind_int64(st_, i, v);
    return *this;
  }
  // true: a row is available; false: done.
  Result<bool> Step() {
    int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqlError(conn_->db(), rc, "step");
  }
  Status Run() {
    MOAT_TRY(bool row, Step());
    (void)row;
    return Ok();
  }
  std::string Text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st_, col));
    int n = sqlite3_column_bytes(st_, col);
    return p != nullptr ? std::string(p, static_cast<size_t>(n)) : std::string();
  }
  int64_t Int(int col) const { return sqlite3_column_int64(st_, col); }
  bool IsNull(int col) const { return sqlite3_column_type(st_, col) == SQLITE_NULL; }

 private:
  Conn* conn_;
  sqlite3_stmt* st_;
  bool owned_;
};

Result<std::unique_ptr<Stmt>> Prepare(Conn* c, const std::string& sql, bool cache = true) {
  MOAT_TRY(sqlite3_stmt * st, c->Prepare(sql, cache));
  return std::make_unique<Stmt>(c, st, !cache);
}

constexpr char kDocColumns[] =
    "collection, key, parent, data, etag, revision, create_time_us, update_time_us";

Document ReadDoc(const Stmt& s, Collection c) {
  Document d;
  d.collection = c;
  d.key = s.Text(1);
  d.parent = s.Text(2);
  d.data = s.Text(3);
  d.etag = s.Text(4);
  d.revision = s.Int(5);
  d.create_time = internal::FromMicros(s.Int(6));
  d.update_time = internal::FromMicros(s.Int(7));
  return d;
}

Result<int64_t> ReadRevision(Conn* c) {
  MOAT_TRY(auto s, Prepare(c, "SELECT COALESCE(MAX(revision), 0) FROM revisions"));
  MOAT_TRY(bool row, s->Step());
  return row ? s->Int(0) : 0;
}

// Revisions whose changes were compacted are deleted from `revisions` too; compaction always
// keeps the newest revision, so MAX(revision) stays the store's revision and the lowest kept
// one tells how far the feed was compacted.
Result<int64_t> ReadCompacted(Conn* c) {
  MOAT_TRY(auto s, Prepare(c, "SELECT MIN(revision) FROM revisions"));
  MOAT_TRY(bool row, s->Step());
  return row && !s->IsNull(0) ? s->Int(0) - 1 : 0;
}

// Drops the changes (and revision rows) of revisions in (compacted, target].
Status DeleteChangesThrough(Conn* c, int64_t target) {
  MOAT_TRY(auto ch, Prepare(c, "DELETE FROM changes WHERE revision <= ?1"));
  ch->Bind(1, target);
  MOAT_CHECK_OK(ch->Run());
  MOAT_TRY(auto rv, Prepare(c, "DELETE FROM revisions WHERE revision <= ?1"));
  rv->Bind(1, target);
  return rv->Run();
}

Result<SqliteStore::Durability> ReadDurability(Conn* c) {
  SqliteStore::Durability d;
  auto one = [&](const char* sql) -> Result<std::unique_ptr<Stmt>> {
    MOAT_TRY(auto s, Prepare(c, sql, false));
    MOAT_TRY(bool row, s->Step());
    if (!row) return Internal("the database returned no value for a setting");
    return s;
  };
  MOAT_TRY(auto jm, one("PRAGMA journal_mode"));
  d.journal_mode = jm->Text(0);
  MOAT_TRY(auto sy, one("PRAGMA synchronous"));
  d.synchronous = static_cast<int>(sy->Int(0));
  MOAT_TRY(auto fk, one("PRAGMA foreign_keys"));
  d.foreign_keys = fk->Int(0) != 0;
  MOAT_TRY(auto bt, one("PRAGMA busy_timeout"));
  d.busy_timeout_ms = static_cast<int>(bt->Int(0));
  MOAT_TRY(auto sv, one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"));
  d.schema_version = static_cast<int>(sv->Int(0));
  return d;
}

}  // namespace

struct SqliteStore::Impl {
  std::string dir;
  std::string path;
  Options options;
  const Clock* clock = nullptr;
  int lock_fd = -1;

  std::mutex writer_mu;  // held by the open read-write transaction
  internal::WriterOwner writer_owner;
  std::unique_ptr<Conn> writer;

  std::mutex readers_mu;
  std::vector<std::unique_ptr<Conn>> idle_readers;

  internal::CommitNotifier notifier;
  internal::ChangeHolds holds;

  ~Impl() {
    idle_readers.clear();
    writer.reset();
    if (lock_fd >= 0) close(lock_fd);
  }

  Result<std::unique_ptr<Conn>> AcquireReader() {
    {
      std::lock_guard lock(readers_mu);
      if (!idle_readers.empty()) {
        auto c = std::move(idle_readers.back());
        idle_readers.pop_back();
        return c;
      }
    }
    return Conn::Open(path, options.busy_timeout, /*reader=*/true);
  }

  void ReleaseReader(std::unique_ptr<Conn> c) {
    if (c->InTransaction()) {
      if (!c->Exec("ROLLBACK")) return;  // drop a connection in an unknown state
    }
    std::lock_guard lock(readers_mu);
    if (static_cast<int>(idle_readers.size()) < options.max_idle_readers) {
      idle_readers.push_back(std::move(c));
    }
  }
};

namespace {

class SqliteTransaction : public Transaction {
 public:
  // Read-only: owns a pooled reader connection in an open (deferred) transaction.
  SqliteTransaction(SqliteStore::Impl* s, std::unique_ptr<Conn> reader, int64_t revision)
      : s_(s),
        read_only_(true),
        reader_(std::move(reader)),
        conn_(reader_.get()),
        base_revision_(revision) {}
  // Read-write: holds the writer mutex and the writer connection inside BEGIN IMMEDIATE.
  SqliteTransaction(SqliteStore::Impl* s, std::unique_lock<std::mutex> lock, int64_t revision)
      : s_(s),
        read_only_(false),
        lock_(std::move(lock)),
        conn_(s->writer.get()),
        base_revision_(revision) {
    s_->writer_owner.Set();
  }
  ~SqliteTransaction() override { Rollback(); }

  bool read_only() const override { return read_only_; }

  Result<std::optional<Document>> Get(Collection c, std::string_view key) override {
    MOAT_CHECK_OK(Usable());
    MOAT_CHECK_OK(Check(internal::ValidateKey(key)));
    auto doc = Lookup(c, key);
    if (!doc) return Fail(doc.error());
    return doc;
  }

  Result<ListPage> List(Collection c, const ListOptions& options) override {
    MOAT_CHECK_OK(Usable());
    auto page = ListImpl(c, options);
    if (!page) return Fail(page.error());
    return page;
  }

  Result<Document> Put(Collection c, std::string_view key, std::string_view data,
                       const PutOptions& options) override {
    MOAT_CHECK_OK(Writable());
    auto doc = PutImpl(c, key, data, options);
    if (!doc) return Fail(doc.error());
    return doc;
  }

  Result<bool> Delete(Collection c, std::string_view key, const Precondition& p) override {
    MOAT_CHECK_OK(Writable());
    auto existed = DeleteImpl(c, key, p);
    if (!existed) return Fail(existed.error());
    return existed;
  }

  Status AppendAudit(const AuditEntry& entry) override {
    MOAT_CHECK_OK(Writable());
    auto st = AuditImpl(entry);
    if (!st) return Fail(st.error());
    return Ok();
  }

  Result<int64_t> Commit() override {
    if (failed_) {
      Error e = *failed_;
      Rollback();
      return e;
    }
    if (done_) return internal::TxFailedError();
    if (read_only_) {
      Rollback();
      return base_revision_;
    }
    if (wrote_) {
      auto st = Prepare(conn_, "UPDATE revisions SET commit_time_us = ?1 WHERE revision = ?2");
      if (!st) return Abandon(st.error());
      (*st)->Bind(1, internal::ToMicros(s_->clock->Now())).Bind(2, base_revision_ + 1);
      if (auto r = (*st)->Run(); !r) return Abandon(r.error());
      if (auto r = AutoCompact(); !r) return Abandon(r.error());
    }
    int rc = sqlite3_exec(conn_->db(), "COMMIT", nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return Abandon(SqlError(conn_->db(), rc, "commit"));
    done_ = true;
    int64_t revision = wrote_ ? base_revision_ + 1 : base_revision_;
    ReleaseWriter();
    if (wrote_) s_->notifier.Publish(revision);
    return revision;
  }

  void Rollback() override {
    if (done_) return;
    done_ = true;
    if (read_only_) {
      if (reader_) s_->ReleaseReader(std::move(reader_));
      return;
    }
    if (conn_->InTransaction()) {
      // Best effort: if even ROLLBACK fails, SQLite rolls back when the connection next
      // touches the database; the hot journal is recovered on open after a crash.
      (void)conn_->Exec("ROLLBACK");
    }
    ReleaseWriter();
  }

 private:
  Status Usable() {
    if (failed_ || done_) return internal::TxFailedError();
    return Ok();
  }
  Status Writable() {
    MOAT_CHECK_OK(Usable());
    if (read_only_) return Fail(internal::ReadOnlyError());
    return Ok();
  }
  Error Fail(Error e) {
    if (!failed_) failed_ = e;
    return e;
  }
  Status Check(Status st) {
    if (!st) return Fail(st.error());
    return Ok();
  }
  Error Abandon(Error e) {
    failed_ = e;
    Rollback();
    return e;
  }
  void ReleaseWriter() {
    if (lock_.owns_lock()) {
      s_->writer_owner.Clear();
      lock_.unlock();
    }
  }

  Result<std::optional<Document>> Lookup(Collection c, std::string_view key) {
    MOAT_TRY(auto s, Prepare(conn_, std::string("SELECT ") + kDocColumns +
                                        " FROM documents WHERE collection = ?1 AND key = ?2"));
    s->Bind(1, CollectionName(c)).Bind(2, key);
    MOAT_TRY(bool row, s->Step());
    if (!row) return std::optional<Document>();
    return std::optional<Document>(ReadDoc(*s, c));
  }

  Result<ListPage> ListImpl(Collection c, const ListOptions& options) {
    std::string after;
    if (!options.page_token.empty()) {
      MOAT_TRY(after, internal::DecodeListToken(options.page_token, c, options.parent));
    }
    const int limit = internal::ClampPageSize(options.page_size);
    std::string sql = std::string("SELECT ") + kDocColumns +
                      " FROM documents WHERE collection = ?1 AND key > ?2" +
                      (options.parent ? " AND parent = ?4" : "") + " ORDER BY key LIMIT ?3";
    MOAT_TRY(auto s, Prepare(conn_, sql));
    s->Bind(1, CollectionName(c)).Bind(2, after).Bind(3, static_cast<int64_t>(limit) + 1);
    if (options.parent) s->Bind(4, *options.parent);
    ListPage page;
    while (true) {
      MOAT_TRY(bool row, s->Step());
      if (!row) break;
      if (static_cast<int>(page.documents.size()) == limit) {
        page.next_page_token =
            internal::EncodeListToken(c, options.parent, page.documents.back().key);
        break;
      }
      page.documents.push_back(ReadDoc(*s, c));
    }
    return page;
  }

  // The first write of the transaction claims the next revision.
  Status ClaimRevision() {
    if (wrote_) return Ok();
    MOAT_TRY(auto s, Prepare(conn_,
                             "INSERT INTO revisions (revision, commit_time_us) "
                             "VALUES (?1, ?2)"));
    s->Bind(1, base_revision_ + 1).Bind(2, internal::ToMicros(s_->clock->Now()));
    MOAT_CHECK_OK(s->Run());
    wrote_ = true;
    return Ok();
  }

  // Bounded compaction inside the committing transaction.
  Status AutoCompact() {
    if (s_->options.change_retention <= 0) return Ok();
    MOAT_TRY(int64_t compacted, ReadCompacted(conn_));
    int64_t target = internal::CompactionTarget(base_revision_ + 1, compacted,
                                                s_->options.change_retention, s_->holds.Min());
    target = std::min(target, compacted + kCompactRevisionsPerCommit);
    if (target <= compacted) return Ok();
    return DeleteChangesThrough(conn_, target);
  }

  Status RecordChange(Collection c, std::string_view key, std::string_view op) {
    MOAT_CHECK_OK(ClaimRevision());
    MOAT_TRY(auto s, Prepare(conn_,
                             "INSERT INTO changes (revision, collection, key, op) "
                             "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (revision, collection, "
                             "key) DO UPDATE SET op = excluded.op"));
    s->Bind(1, base_revision_ + 1).Bind(2, CollectionName(c)).Bind(3, key).Bind(4, op);
    return s->Run();
  }

  Result<Document> PutImpl(Collection c, std::string_view key, std::string_view data,
                           const PutOptions& options) {
    MOAT_CHECK_OK(internal::ValidatePut(key, data, options));
    MOAT_TRY(auto cur, Lookup(c, key));
    MOAT_CHECK_OK(internal::CheckPrecondition(c, key, cur, options.precondition, false));
    Document doc;
    doc.collection = c;
    doc.key = std::string(key);
    doc.parent = options.parent;
    doc.data = std::string(data);
    doc.revision = base_revision_ + 1;
    doc.etag = internal::MakeEtag(doc.revision);
    int64_t now = internal::ToMicros(s_->clock->Now());
    int64_t created = cur ? internal::ToMicros(cur->create_time) : now;
    doc.create_time = internal::FromMicros(created);
    doc.update_time = internal::FromMicros(now);
    MOAT_CHECK_OK(RecordChange(c, key, "put"));
    MOAT_TRY(auto s, Prepare(conn_, std::string("INSERT OR REPLACE INTO documents (") +
                                        kDocColumns + ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"));
    s->Bind(1, CollectionName(c)).Bind(2, key).Bind(3, doc.parent).Bind(4, data);
    s->Bind(5, doc.etag).Bind(6, doc.revision).Bind(7, created).Bind(8, now);
    MOAT_CHECK_OK(s->Run());
    return doc;
  }

  Result<bool> DeleteImpl(Collection c, std::string_view key, const Precondition& p) {
    MOAT_CHECK_OK(internal::ValidateKey(key));
    MOAT_TRY(auto cur, Lookup(c, key));
    MOAT_CHECK_OK(internal::CheckPrecondition(c, key, cur, p, true));
    if (!cur) return false;
    MOAT_CHECK_OK(RecordChange(c, key, "delete"));
    MOAT_TRY(auto s, Prepare(conn_, "DELETE FROM documents WHERE collection = ?1 AND key = ?2"));
    s->Bind(1, CollectionName(c)).Bind(2, key);
    MOAT_CHECK_OK(s->Run());
    return true;
  }

  Status AuditImpl(const AuditEntry& e) {
    MOAT_CHECK_OK(internal::ValidateAudit(e));
    TimePoint t = e.time == TimePoint{} ? s_->clock->Now() : e.time;
    MOAT_TRY(auto s, Prepare(conn_,
                             "INSERT INTO audit_log (time_us, kind, principal, method, "
                             "resource, request_id, status, details) VALUES (?1, ?2, ?3, "
                             "?4, ?5, ?6, ?7, ?8)"));
    s->Bind(1, internal::ToMicros(t)).Bind(2, AuditKindName(e.kind)).Bind(3, e.principal);
    s->Bind(4, e.method).Bind(5, e.resource).Bind(6, e.request_id).Bind(7, e.status);
    s->Bind(8, e.details);
    return s->Run();
  }

  SqliteStore::Impl* s_;
  bool read_only_;
  std::unique_lock<std::mutex> lock_;
  std::unique_ptr<Conn> reader_;
  Conn* conn_;
  int64_t base_revision_;
  bool wrote_ = false;
  std::optional<Error> failed_;
  bool done_ = false;
};

// Creates `dir` (0700) if missing.
Status PrepareDir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::path p(dir);
  if (std::filesystem::exists(p, ec)) {
    if (!std::filesystem::is_directory(p, ec)) {
      return FailedPrecondition("the home `" + dir + "` exists and is not a directory");
    }
    return Ok();
  }
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path(), ec);
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Unavailable("cannot create the home directory `" + dir + "`: " + std::strerror(errno));
  }
  return Ok();
}

// Creates the database file with mode 0600, or tightens an existing one to 0600.
Status PrepareDbFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Unavailable("cannot open the database `" + path + "`: " + std::strerror(errno));
  }
  struct stat st {};
  if (fstat(fd, &st) == 0 && (st.st_mode & 077) != 0) {
    log::Warn("tightening database file permissions to 0600", {{"path", path}});
    fchmod(fd, 0600);
  }
  close(fd);
  return Ok();
}

Status Migrate(Conn* c, const std::string& path) {
  MOAT_CHECK_OK(c->Exec("BEGIN IMMEDIATE"));
  auto body = [&]() -> Status {
    MOAT_TRY(auto app, Prepare(c, "PRAGMA application_id", false));
    MOAT_TRY(bool row, app->Step());
    int64_t app_id = row ? app->Int(0) : 0;
    if (app_id != 0 && app_id != kApplicationId) {
      return FailedPrecondition("`" + path + "` is not a moat database");
    }
    MOAT_TRY(auto tables, Prepare(c,
                                  "SELECT COUNT(*) FROM sqlite_schema WHERE name NOT IN "
                                  "('schema_migrations')",
                                  false));
    MOAT_TRY(bool trow, tables->Step());
    if (app_id == 0 && trow && tables->Int(0) > 0) {
      return FailedPrecondition("`" + path + "` is not a moat database");
    }
    MOAT_CHECK_OK(c->Exec(("PRAGMA application_id=" + std::to_string(kApplicationId)).c_str()));
    MOAT_CHECK_OK(
        c->Exec("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                "name TEXT NOT NULL, applied_time_us INTEGER NOT NULL)"));
    MOAT_TRY(auto cur,
             Prepare(c, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", false));
    MOAT_TRY(bool crow, cur->Step());
    int64_t version = crow ? cur->Int(0) : 0;
    const auto& migrations = Migrations();
    int64_t latest = migrations.empty() ? 0 : migrations.back().version;
    if (version > latest) {
      return FailedPrecondition("the database `" + path + "` has schema version " +
                                std::to_string(version) + " but this moat binary knows up to " +
                                std::to_string(latest) + "; use a newer moat");
    }
    for (const Migration& m : migrations) {
      if (m.version <= version) continue;
      MOAT_CHECK_OK(c->Exec(m.sql));
      MOAT_TRY(auto ins, Prepare(c,
                                 "INSERT INTO schema_migrations (version, name, "
                                 "applied_time_us) VALUES (?1, ?2, ?3)",
                                 false));
      ins->Bind(1, static_cast<int64_t>(m.version)).Bind(2, m.name);
      ins->Bind(3, internal::ToMicros(SystemClock().Now()));
      MOAT_CHECK_OK(ins->Run());
      log::Info("applied store schema migration", {{"migration", m.name}});
    }
    return Ok();
  };
  Status st = body();
  if (!st) {
    if (c->InTransaction()) (void)c->Exec("ROLLBACK");
    return st;
  }
  return c->Exec("COMMIT");
}

}  // namespace

SqliteStore::SqliteStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqliteStore::~SqliteStore() = default;

int SqliteStore::LatestSchemaVersion() {
  const auto& m = Migrations();
  return m.empty() ? 0 : m.back().version;
}

Result<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& dir,
                                                       const Options& options) {
  if (dir.empty()) return InvalidArgument("the home directory must not be empty");
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  impl->path = (std::filesystem::path(dir) / "moat.db").string();
  impl->options = options;
  impl->clock = options.clock != nullptr ? options.clock : &SystemClock();
  if (impl->options.max_idle_readers < 0) impl->options.max_idle_readers = 0;

  MOAT_CHECK_OK(PrepareDir(dir));
  std::string lock_path = (std::filesystem::path(dir) / "moat.lock").string();
  impl->lock_fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (impl->lock_fd < 0) {
    return Unavailable("cannot open `" + lock_path + "`: " + std::strerror(errno));
  }
  if (flock(impl->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return Unavailable("the home directory `" + dir + "` is in use by another moat server");
    }
    return Unavailable("cannot lock `" + lock_path + "`: " + std::strerror(errno));
  }
  MOAT_CHECK_OK(PrepareDbFile(impl->path));

  MOAT_TRY(impl->writer, Conn::Open(impl->path, options.busy_timeout, /*reader=*/false));
  MOAT_TRY(auto durability, [&]() -> Result<std::string> {
    MOAT_TRY(auto s, Prepare(impl->writer.get(), "PRAGMA journal_mode", false));
    MOAT_TRY(bool row, s->Step());
    return row ? s->Text(0) : std::string();
  }());
  if (durability != "wal") {
    return Unavailable("the database `" + impl->path + "` cannot use write-ahead logging");
  }
  if (options.max_database_bytes > 0) {
    int64_t pages = options.max_database_bytes / 4096;
    if (pages < 1) pages = 1;
    MOAT_CHECK_OK(impl->writer->Exec(("PRAGMA max_page_count=" + std::to_string(pages)).c_str()));
  }
  MOAT_CHECK_OK(Migrate(impl->writer.get(), impl->path));
  MOAT_TRY(int64_t revision, ReadRevision(impl->writer.get()));
  impl->notifier.Publish(revision);
  return std::unique_ptr<SqliteStore>(new SqliteStore(std::move(impl)));
}

const std::string& SqliteStore::path() const { return impl_->path; }

Result<std::unique_ptr<Transaction>> SqliteStore::Begin() {
  if (impl_->writer_owner.HeldByMe()) {
    return FailedPrecondition("this thread already holds a read-write transaction");
  }
  std::unique_lock lock(impl_->writer_mu);
  Conn* w = impl_->writer.get();
  if (w->InTransaction()) (void)w->Exec("ROLLBACK");  // recover from a lost rollback
  MOAT_CHECK_OK(w->Exec("BEGIN IMMEDIATE"));
  auto revision = ReadRevision(w);
  if (!revision) {
    (void)w->Exec("ROLLBACK");
    return revision.error();
  }
  return std::unique_ptr<Transaction>(
      new SqliteTransaction(impl_.get(), std::move(lock), *revision));
}

Result<std::unique_ptr<Transaction>> SqliteStore::BeginRead() {
  MOAT_TRY(auto conn, impl_->AcquireReader());
  MOAT_CHECK_OK(conn->Exec("BEGIN"));
  // The first read fixes the snapshot (WAL), and tells the revision it shows.
  auto revision = ReadRevision(conn.get());
  if (!revision) {
    (void)conn->Exec("ROLLBACK");
    return revision.error();
  }
  return std::unique_ptr<Transaction>(
      new SqliteTransaction(impl_.get(), std::move(conn), *revision));
}

Result<int64_t> SqliteStore::CurrentRevision() {
  MOAT_TRY(auto tx, BeginRead());
  return tx->Commit();
}

Result<ChangeBatch> SqliteStore::ChangesSince(int64_t since, int max_revisions) {
  ChangeBatch batch;
  batch.last_revision = since;
  if (max_revisions <= 0) return batch;
  MOAT_TRY(auto conn, impl_->AcquireReader());
  struct Release {
    Impl* impl;
    std::unique_ptr<Conn>& c;
    ~Release() { impl->ReleaseReader(std::move(c)); }
  } release{impl_.get(), conn};
  MOAT_CHECK_OK(conn->Exec("BEGIN"));
  MOAT_TRY(int64_t compacted, ReadCompacted(conn.get()));
  if (since < compacted) return internal::CompactedError(since, compacted);
  {
    MOAT_TRY(auto s, Prepare(conn.get(),
                             "SELECT MAX(revision) FROM (SELECT revision FROM revisions WHERE "
                             "revision > ?1 ORDER BY revision LIMIT ?2)"));
    s->Bind(1, since).Bind(2, static_cast<int64_t>(max_revisions));
    MOAT_TRY(bool row, s->Step());
    if (!row || s->IsNull(0)) return batch;
    batch.last_revision = s->Int(0);
  }
  MOAT_TRY(auto s, Prepare(conn.get(),
                           "SELECT revision, collection, key, op FROM changes WHERE revision > ?1 "
                           "AND revision <= ?2 ORDER BY revision, collection, key"));
  s->Bind(1, since).Bind(2, batch.last_revision);
  while (true) {
    MOAT_TRY(bool row, s->Step());
    if (!row) break;
    auto c = ParseCollection(s->Text(1));
    if (!c) continue;  // a collection added by a newer binary
    batch.changes.push_back(
        Change{s->Int(0), *c, s->Text(2),
               s->Text(3) == "delete" ? Change::Op::kDelete : Change::Op::kPut});
  }
  return batch;
}

Result<int64_t> SqliteStore::CompactChanges(int64_t retain_revisions) {
  if (impl_->writer_owner.HeldByMe()) {
    return FailedPrecondition("this thread already holds a read-write transaction");
  }
  std::lock_guard lock(impl_->writer_mu);
  Conn* w = impl_->writer.get();
  if (w->InTransaction()) (void)w->Exec("ROLLBACK");
  MOAT_CHECK_OK(w->Exec("BEGIN IMMEDIATE"));
  auto body = [&]() -> Result<int64_t> {
    MOAT_TRY(int64_t current, ReadRevision(w));
    MOAT_TRY(int64_t compacted, ReadCompacted(w));
    int64_t target =
        internal::CompactionTarget(current, compacted, retain_revisions, impl_->holds.Min());
    if (target > compacted) MOAT_CHECK_OK(DeleteChangesThrough(w, target));
    MOAT_CHECK_OK(w->Exec("COMMIT"));
    return target;
  };
  auto result = body();
  if (!result && w->InTransaction()) (void)w->Exec("ROLLBACK");
  return result;
}

Result<int64_t> SqliteStore::CompactedRevision() {
  MOAT_TRY(auto conn, impl_->AcquireReader());
  auto compacted = ReadCompacted(conn.get());
  impl_->ReleaseReader(std::move(conn));
  return compacted;
}

ChangeHold SqliteStore::HoldChanges(int64_t after) { return impl_->holds.Hold(after); }

bool SqliteStore::WaitForRevision(int64_t revision, std::chrono::milliseconds timeout) {
  return impl_->notifier.WaitFor(revision, timeout);
}

Subscription SqliteStore::Subscribe(CommitCallback callback) {
  return impl_->notifier.Subscribe(std::move(callback));
}

Result<AuditPage> SqliteStore::QueryAudit(const AuditQuery& q) {
  int64_t before = INT64_MAX;
  if (!q.page_token.empty()) {
    MOAT_TRY(before, internal::DecodeAuditToken(q.page_token));
  }
  const int limit = internal::ClampPageSize(q.page_size);
  std::string sql =
      "SELECT id, time_us, kind, principal, method, resource, request_id, status, details "
      "FROM audit_log WHERE id < ?1";
  std::optional<std::string> upper;
  if (!q.resource.empty()) {
    if (q.resource_is_prefix) {
      sql += " AND resource >= ?2";
      upper = internal::PrefixUpperBound(q.resource);
      if (upper) sql += " AND resource < ?3";
    } else {
      sql += " AND resource = ?2";
    }
  }
  if (!q.principal.empty()) sql += " AND principal = ?4";
  if (q.kind) sql += " AND kind = ?5";
  if (q.start_time) sql += " AND time_us >= ?6";
  if (q.end_time) sql += " AND time_us < ?7";
  if (!q.request_id.empty()) sql += " AND request_id = ?8";
  sql += " ORDER BY id DESC LIMIT ?9";

  MOAT_TRY(auto conn, impl_->AcquireReader());
  struct Release {
    Impl* impl;
    std::unique_ptr<Conn>& c;
    ~Release() { impl->ReleaseReader(std::move(c)); }
  } release{impl_.get(), conn};
  MOAT_TRY(auto s, Prepare(conn.get(), sql));
  s->Bind(1, before);
  if (!q.resource.empty()) s->Bind(2, q.resource);
  if (upper) s->Bind(3, *upper);
  if (!q.principal.empty()) s->Bind(4, q.principal);
  if (q.kind) s->Bind(5, AuditKindName(*q.kind));
  if (q.start_time) s->Bind(6, internal::ToMicros(*q.start_time));
  if (q.end_time) s->Bind(7, internal::ToMicros(*q.end_time));
  if (!q.request_id.empty()) s->Bind(8, q.request_id);
  s->Bind(9, static_cast<int64_t>(limit) + 1);
  AuditPage page;
  while (true) {
    MOAT_TRY(bool row, s->Step());
    if (!row) break;
    if (static_cast<int>(page.records.size()) == limit) {
      page.next_page_token = internal::EncodeAuditToken(page.records.back().id);
      break;
    }
    AuditRecord r;
    r.id = s->Int(0);
    r.entry.time = internal::FromMicros(s->Int(1));
    r.entry.kind = s->Text(2) == "DATA_ACCESS" ? AuditKind::kDataAccess : AuditKind::kAdminActivity;
    r.entry.principal = s->Text(3);
    r.entry.method = s->Text(4);
    r.entry.resource = s->Text(5);
    r.entry.request_id = s->Text(6);
    r.entry.status = s->Text(7);
    r.entry.details = s->Text(8);
    page.records.push_back(std::move(r));
  }
  return page;
}

Result<SqliteStore::Durability> SqliteStore::WriterDurability() {
  std::lock_guard lock(impl_->writer_mu);
  return ReadDurability(impl_->writer.get());
}

Result<SqliteStore::Durability> SqliteStore::ReaderDurability() {
  MOAT_TRY(auto conn, impl_->AcquireReader());
  auto d = ReadDurability(conn.get());
  impl_->ReleaseReader(std::move(conn));
  return d;
}

}  // namespace moat::store
