// Lets the caller of an identity lifecycle operation (ServiceAccounts, Users, Groups,
// TrustedIssuers) add its own writes — the API's admin-activity audit entry — to the
// operation's store transaction, so the change and its audit entry commit together or not at
// all (a crash between two commits can never leave an unaudited change).
//
// Thread-safety: a hook object belongs to one call.
#pragma once

#include <cstdint>
#include <functional>

#include "common/error.h"

namespace moat::store {
class Transaction;
}

namespace moat::identity {

// `Record` is what the operation changed (the account, key, user, group or issuer, as it is
// being committed; for a delete, as it was).
template <class Record>
struct CommitHook {
  // Runs inside the operation's read-write transaction after its writes, right before Commit.
  // An error aborts the operation: nothing it wrote is applied and the error is returned.
  // With a hook, an idempotent no-op (e.g. enabling an enabled account) still commits, so the
  // request is audited.
  std::function<Status(store::Transaction& tx, const Record& record)> before_commit;
  // Out: the store revision after the commit (Transaction::Commit's value); 0 if the operation
  // failed before committing.
  int64_t revision = 0;
};

namespace internal {
// Runs `hook` (when given) in `tx`, then commits and records the revision in the hook.
// `Tx` is store::Transaction (a template so this header needs no store include).
template <class Tx, class Record>
Result<int64_t> CommitWithHook(Tx& tx, CommitHook<Record>* hook, const Record& record) {
  if (hook && hook->before_commit) MOAT_CHECK_OK(hook->before_commit(tx, record));
  MOAT_TRY(int64_t revision, tx.Commit());
  if (hook) hook->revision = revision;
  return revision;
}
}  // namespace internal

}  // namespace moat::identity
