// The Store: Moat's persistent state as typed collections of JSON documents, with
// transactions, optimistic concurrency by etag, a monotonic revision with a change feed, and an
// append-only audit log.
//
// Callers (api/, identity/, bin/) program against the abstract `Store` and `Transaction`; the
// backends are SqliteStore ("store/sqlite_store.h", the default, one server per home) and
// MemoryStore ("store/memory_store.h", a fake for tests). A PostgreSQL backend can follow
// without changing callers: every method returns Result<…> so infrastructure failures are
// values, and nothing here exposes SQL.
//
// Documents are opaque to the store: `data` is JSON text that other modules parse (the store
// does not link iam/ or identity/). The store only checks that it is well-formed JSON.
//
// Concurrency model:
//   - Read-write transactions (Begin) are serializable: at most one is open at a time per store
//     (SQLite: BEGIN IMMEDIATE on the writer connection). Begin blocks while another thread
//     holds one, so never keep a read-write transaction open across network I/O.
//   - Read transactions (BeginRead) see one consistent snapshot and do not block writers or
//     other readers.
//   - Optimistic concurrency across requests: read a document (its etag), modify, then Put
//     with Precondition::EtagMatches(etag). A stale etag fails with kAborted; for the policies
//     collection the message is exactly Google's (kConcurrentPolicyChangeMessage), which the
//     API maps to HTTP 409 ABORTED.
//   - Every committed read-write transaction that wrote at least one document gets the next
//     revision (1, 2, 3, …). The change feed (ChangesSince) lists, per revision, the keys
//     written or deleted; snapshot builders follow it with WaitForRevision/Subscribe.
//   - The change feed is compacted (CompactChanges, and automatically on commit): only the
//     newest revisions' changes are kept (kDefaultChangeRetention), plus whatever a live
//     ChangeHold still needs. A follower whose cursor fell behind the compacted revision gets
//     kOutOfRange from ChangesSince and must reload a full snapshot (a read transaction; its
//     Commit() gives the revision to follow from). Revision numbers are never reused, and
//     documents and the audit log are never compacted.
//
// Errors (on every method): kUnavailable when the database cannot be read or written (disk
// full, I/O error, locked by another process); kInternal when it is corrupt; kInvalidArgument
// for malformed input (empty key, data that is not JSON, bad page token). Each documented
// method adds its own codes.
//
// Thread-safety: a Store is safe for concurrent use from any number of threads. A Transaction
// is used by one thread at a time and must not outlive its Store.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/error.h"

namespace moat::store {

// The typed collections. The name (CollectionName) is what is stored, so a new enumerator needs
// no schema migration; never rename or renumber existing ones.
enum class Collection {
  kProjects,         // key: "projects/P"
  kServices,         // key: "projects/P/locations/R/services/S", parent "projects/P/locations/R"
  kPolicies,         // key: the resource's full name ("projects/P", "projects/P/locations/R/
                     // services/S", "projects/P/serviceAccounts/E"), or "root"
  kRoles,            // custom roles
  kServiceAccounts,  // key: "projects/P/serviceAccounts/EMAIL", parent "projects/P"
  kSaKeys,           // public parts and metadata only; parent: the service account's name
  kUsers,
  kGroups,
  kTrustedIssuers,
  kSigningKeys,  // encrypted private key blobs
  kSettings,     // miscellaneous key/values
};
inline constexpr Collection kAllCollections[] = {
    Collection::kProjects,    Collection::kServices,        Collection::kPolicies,
    Collection::kRoles,       Collection::kServiceAccounts, Collection::kSaKeys,
    Collection::kUsers,       Collection::kGroups,          Collection::kTrustedIssuers,
    Collection::kSigningKeys, Collection::kSettings};

// "projects", "services", "policies", "roles", "service_accounts", "sa_keys", "users",
// "groups", "trusted_issuers", "signing_keys", "settings".
std::string_view CollectionName(Collection c);
std::optional<Collection> ParseCollection(std::string_view name);

// Google's message for a stale etag on setIamPolicy (GOOGLE.md §3.3), returned verbatim with
// kAborted for the policies collection.
inline constexpr std::string_view kConcurrentPolicyChangeMessage =
    "There were concurrent policy changes. Please retry the whole read-modify-write with "
    "exponential backoff.";

// Limits enforced by every backend (kInvalidArgument beyond them).
inline constexpr size_t kMaxKeyBytes = 1024;          // keys and parents; non-empty key, no NUL
inline constexpr size_t kMaxDataBytes = 1024 * 1024;  // a document's JSON text
inline constexpr int kDefaultPageSize = 50;           // page_size <= 0
inline constexpr int kMaxPageSize = 1000;             // larger page sizes are clamped

struct Document {
  Collection collection = Collection::kSettings;
  std::string key;
  std::string parent;  // "" when the document has none
  std::string data;    // JSON text, as written
  // Base64 of 8 bytes; different on every write of the document (it encodes the writing
  // revision). Compare as an opaque string.
  std::string etag;
  int64_t revision = 0;  // the revision of the transaction that last wrote it
  TimePoint create_time;
  TimePoint update_time;
};

// A condition a write checks atomically against the document's current state.
struct Precondition {
  enum class Kind {
    kNone,          // write unconditionally (a Put creates or blindly overwrites)
    kMustNotExist,  // create only; fails with kAlreadyExists
    kMustExist,     // update only; fails with kNotFound
    kEtagMatches,   // fails with kNotFound if absent, kAborted if the etag differs
  };
  Kind kind = Kind::kNone;
  std::string etag;  // for kEtagMatches

  static Precondition None() { return {}; }
  static Precondition MustNotExist() { return {Kind::kMustNotExist, {}}; }
  static Precondition MustExist() { return {Kind::kMustExist, {}}; }
  static Precondition EtagMatches(std::string etag) {
    return {Kind::kEtagMatches, std::move(etag)};
  }
};

struct PutOptions {
  // Secondary index for List(parent=…). A Put replaces the whole document, parent included.
  std::string parent;
  Precondition precondition;
};

struct ListOptions {
  // When set, only documents whose parent equals it; when unset, the whole collection.
  std::optional<std::string> parent;
  // From a previous page's next_page_token, for the same collection and parent; "" = first.
  std::string page_token;
  int page_size = 0;  // <= 0: kDefaultPageSize; clamped to kMaxPageSize
};

struct ListPage {
  std::vector<Document> documents;  // ordered by key (bytewise)
  std::string next_page_token;      // "" on the last page
};

// One entry of the change feed.
struct Change {
  enum class Op { kPut, kDelete };
  int64_t revision = 0;
  Collection collection = Collection::kSettings;
  std::string key;
  Op op = Op::kPut;  // the last operation on the key in that revision
};

// Change-feed retention: the newest revisions whose changes compaction keeps.
inline constexpr int64_t kDefaultChangeRetention = 10'000;
// Automatic compaction drops at most this many revisions per commit (bounded work per commit;
// more than the one revision a commit adds, so a backlog drains).
inline constexpr int64_t kCompactRevisionsPerCommit = 64;
// A ChangeHold more than this many revisions behind the newest no longer stops compaction (a
// stuck follower must not let the database grow without bound); its owner gets kOutOfRange.
inline constexpr int64_t kMaxHeldRevisions = 1'000'000;

struct ChangeBatch {
  // Every change of the revisions in (since, last_revision], ordered by (revision,
  // collection name, key). A revision is never split across batches.
  std::vector<Change> changes;
  // The highest revision covered; equals `since` when nothing newer is committed. Pass it as
  // `since` on the next call.
  int64_t last_revision = 0;
};

enum class AuditKind { kAdminActivity, kDataAccess };
std::string_view AuditKindName(AuditKind k);  // "ADMIN_ACTIVITY", "DATA_ACCESS"

struct AuditEntry {
  TimePoint time{};  // the epoch (default) = "now" by the store's clock
  AuditKind kind = AuditKind::kAdminActivity;
  std::string principal;  // e.g. "user:alice@example.com"; "" for anonymous
  std::string method;     // e.g. "google.iam.v1.IAMPolicy.SetIamPolicy"
  std::string resource;   // full resource name
  std::string request_id;
  std::string status;          // "OK", a canonical code name, or a decision ("ALLOW"/"DENY")
  std::string details = "{}";  // a JSON object as text
};

struct AuditRecord {
  int64_t id = 0;  // increasing in append order
  AuditEntry entry;
};

struct AuditQuery {
  // Empty strings / unset = no filter on that field.
  std::string resource;
  bool resource_is_prefix = false;  // match resource as a bytewise prefix ("projects/p/")
  std::string principal;
  std::optional<AuditKind> kind;
  std::optional<TimePoint> start_time;  // inclusive
  std::optional<TimePoint> end_time;    // exclusive
  std::string request_id;
  std::string page_token;
  int page_size = 0;  // <= 0: kDefaultPageSize; clamped to kMaxPageSize
};

struct AuditPage {
  std::vector<AuditRecord> records;  // newest first (by id)
  std::string next_page_token;       // "" on the last page
};

// A unit of work. Reads see the transaction's own writes. The first failing operation fails
// the whole transaction: every later call returns kFailedPrecondition and Commit() returns the
// first error, applying nothing. Destroying an uncommitted transaction rolls it back.
class Transaction {
 public:
  virtual ~Transaction() = default;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  virtual bool read_only() const = 0;

  // The document, or nullopt if absent.
  virtual Result<std::optional<Document>> Get(Collection c, std::string_view key) = 0;
  virtual Result<ListPage> List(Collection c, const ListOptions& options) = 0;

  // Creates or replaces a document and returns it as it will be once committed (new etag,
  // revision, times). Errors: precondition failures (see Precondition), kInvalidArgument,
  // kFailedPrecondition on a read-only transaction.
  virtual Result<Document> Put(Collection c, std::string_view key, std::string_view data,
                               const PutOptions& options = {}) = 0;
  // Deletes a document. Returns whether it existed. With kMustExist or kEtagMatches a missing
  // document is kNotFound; kMustNotExist is kInvalidArgument here.
  virtual Result<bool> Delete(Collection c, std::string_view key,
                              const Precondition& precondition = {}) = 0;

  // Appends to the audit log atomically with the transaction's other writes. Does not by
  // itself create a revision.
  virtual Status AppendAudit(const AuditEntry& entry) = 0;

  // Makes the writes durable (an acknowledged commit survives kill -9 and, for SQLite, power
  // loss) and returns the store's revision after it: the new revision if a document was
  // written, else the revision the transaction read at. On error nothing is applied.
  // Subscribers are called on this thread after the commit, before Commit returns.
  virtual Result<int64_t> Commit() = 0;
  // Discards the writes. Idempotent.
  virtual void Rollback() = 0;

 protected:
  Transaction() = default;
};

using CommitCallback = std::function<void(int64_t revision)>;

// Keeps a Subscribe callback registered; destroying (or Reset) unregisters it, waiting for a
// running call to finish. May outlive the Store. Must not be destroyed from inside its own
// callback.
class Subscription {
 public:
  Subscription() = default;
  explicit Subscription(std::function<void()> cancel) : cancel_(std::move(cancel)) {}
  Subscription(Subscription&& o) noexcept : cancel_(std::move(o.cancel_)) { o.cancel_ = {}; }
  Subscription& operator=(Subscription&& o) noexcept {
    if (this != &o) {
      Reset();
      cancel_ = std::move(o.cancel_);
      o.cancel_ = {};
    }
    return *this;
  }
  ~Subscription() { Reset(); }
  void Reset() {
    if (cancel_) std::exchange(cancel_, {})();
  }

 private:
  std::function<void()> cancel_;
};

// Pins the change feed for a follower: while it lives, compaction keeps every revision newer
// than its position (within kMaxHeldRevisions of the newest). Take it at the follower's cursor
// (Store::HoldChanges) and Advance it as changes are consumed. Destroying or Reset releases it.
// May outlive the Store. Thread-safe.
class ChangeHold {
 public:
  ChangeHold() = default;
  ChangeHold(std::function<void(int64_t)> advance, std::function<void()> release)
      : advance_(std::move(advance)), release_(std::move(release)) {}
  ChangeHold(ChangeHold&& o) noexcept
      : advance_(std::exchange(o.advance_, {})), release_(std::exchange(o.release_, {})) {}
  ChangeHold& operator=(ChangeHold&& o) noexcept {
    if (this != &o) {
      Reset();
      advance_ = std::exchange(o.advance_, {});
      release_ = std::exchange(o.release_, {});
    }
    return *this;
  }
  ~ChangeHold() { Reset(); }
  // The follower has consumed every change up to `revision`; never moves backwards.
  void Advance(int64_t revision) {
    if (advance_) advance_(revision);
  }
  void Reset() {
    advance_ = {};
    if (release_) std::exchange(release_, {})();
  }

 private:
  std::function<void(int64_t)> advance_;
  std::function<void()> release_;
};

class Store {
 public:
  virtual ~Store() = default;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // A serializable read-write transaction; blocks while another thread holds one.
  // kFailedPrecondition if the calling thread already holds one (that would deadlock).
  virtual Result<std::unique_ptr<Transaction>> Begin() = 0;
  // A read-only snapshot; never blocks on writers. Keep it short (it pins the snapshot).
  virtual Result<std::unique_ptr<Transaction>> BeginRead() = 0;

  // The latest committed revision (0 for an empty store).
  virtual Result<int64_t> CurrentRevision() = 0;
  // Changes of up to `max_revisions` whole revisions newer than `since` (see ChangeBatch).
  // kOutOfRange when `since` is below CompactedRevision() (the changes after it are gone):
  // reload a full snapshot and follow from its revision.
  virtual Result<ChangeBatch> ChangesSince(int64_t since, int max_revisions = 1000) = 0;
  // Drops the change feed of every revision except the newest `retain_revisions` (at least 1)
  // and those a ChangeHold still needs. Returns the compacted revision (see below). Blocks like
  // Begin(); kFailedPrecondition if the calling thread holds a read-write transaction.
  virtual Result<int64_t> CompactChanges(int64_t retain_revisions = kDefaultChangeRetention) = 0;
  // The highest revision whose changes were dropped; 0 when nothing was compacted.
  // ChangesSince(since) works for every since >= this.
  virtual Result<int64_t> CompactedRevision() = 0;
  // Keeps the changes of revisions after `after` from compaction until released or advanced.
  [[nodiscard]] virtual ChangeHold HoldChanges(int64_t after) = 0;
  // Waits until a revision >= `revision` has been committed through this Store object.
  // Returns true if it has, false on timeout.
  virtual bool WaitForRevision(int64_t revision, std::chrono::milliseconds timeout) = 0;
  // Registers `callback`, called after each committed write transaction with its revision.
  // It runs on the committing thread before that thread's Commit() returns, so it must be
  // quick and must not open a read-write transaction (hand work to another thread). Calls are
  // serialized, but revisions from different committing threads may arrive out of order: treat
  // the argument as a wake-up and read ChangesSince from your own cursor.
  [[nodiscard]] virtual Subscription Subscribe(CommitCallback callback) = 0;

  // Audit log, newest first. No API updates or deletes entries.
  virtual Result<AuditPage> QueryAudit(const AuditQuery& query) = 0;

  // One-shot conveniences: each runs in its own transaction.
  Result<std::optional<Document>> Get(Collection c, std::string_view key);
  Result<ListPage> List(Collection c, const ListOptions& options);
  Result<Document> Put(Collection c, std::string_view key, std::string_view data,
                       const PutOptions& options = {});
  Result<bool> Delete(Collection c, std::string_view key, const Precondition& precondition = {});
  Status AppendAudit(const AuditEntry& entry);

 protected:
  Store() = default;
};

// The server's home directory: `flag_value` (moat serve --home DIR) if non-empty, else
// $MOAT_HOME if set and non-empty, else "./.moat".
std::string ResolveHome(std::string_view flag_value,
                        const char* env_moat_home = std::getenv("MOAT_HOME"));

}  // namespace moat::store
