// First-start bootstrap: on an empty home, Moat creates its administrator — the service
// account `moat-admin@moat-system.iam.gserviceaccount.com` holding roles/owner on the root
// policy — and writes that account's key file to HOME/admin-key.json (0600). The CLI on the
// same machine and Google's client libraries use that file. Nothing else is open.
//
// Idempotent and crash-safe: a start that finds the root policy already set does nothing
// (deleting admin-key.json later never re-opens the installation); a start that crashed
// half-way finishes the job.
#pragma once

#include <string>

#include "common/clock.h"
#include "common/error.h"
#include "identity/service_accounts.h"
#include "store/store.h"

namespace moat::server {

inline constexpr char kAdminProject[] = "moat-system";
inline constexpr char kAdminAccountId[] = "moat-admin";
inline constexpr char kAdminKeyFile[] = "admin-key.json";

// Returns the admin key file's path (whether or not it was created now).
Result<std::string> Bootstrap(store::Store& store, identity::ServiceAccounts& accounts,
                              const std::string& home, const Clock& clock);

}  // namespace moat::server
