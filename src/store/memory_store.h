// MemoryStore: an in-process Store with the exact semantics of SqliteStore (it passes the same
// conformance suite), for other modules' tests. Nothing is persisted.
//
// Read-write transactions are serialized by a mutex and work on a private copy of the
// documents, published atomically at commit; read transactions hold an immutable snapshot.
// Thread-safety: as Store.
#pragma once

#include <memory>

#include "common/clock.h"
#include "store/store.h"

namespace moat::store {

class MemoryStore : public Store {
 public:
  // `clock` (default: the system clock) stamps create/update/audit times; must outlive this.
  // `change_retention`: each commit compacts the change feed to the newest that many
  // revisions (at most kCompactRevisionsPerCommit per commit); <= 0 disables that.
  explicit MemoryStore(const Clock* clock = nullptr,
                       int64_t change_retention = kDefaultChangeRetention);
  ~MemoryStore() override;

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

  struct State;  // implementation detail (public for the transaction class in the .cc)

 private:
  std::unique_ptr<State> state_;
};

}  // namespace moat::store
