// Builds the identity Directory snapshot from the store.
//
// Thread-safety: may be called from any thread; it only opens a read transaction.
#pragma once

#include <memory>

#include "common/error.h"
#include "identity/directory.h"

namespace moat::store {
class Store;
}

namespace moat::identity {

// Reads every service account (live and deleted), key, user, group and trusted issuer in ONE
// read transaction (so the snapshot is consistent) and builds the Directory, whose revision()
// is the store revision that transaction read at. A corrupt document is skipped with a
// warning (fail closed: a missing key or account verifies nothing, a missing group grants
// nothing) so one bad record cannot freeze the snapshot. Errors: store failures only.
Result<std::shared_ptr<const Directory>> LoadDirectory(store::Store& store);

}  // namespace moat::identity
