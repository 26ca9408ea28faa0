// The schema migrations compiled into the binary from src/store/migrations/NNNN_name.sql
// (generated at build time by embed_migrations.cmake). Versions are 1..N without gaps; each is
// applied once, in order, inside a transaction, and recorded in `schema_migrations`.
#pragma once

#include <vector>

namespace moat::store {

struct Migration {
  int version;
  const char* name;  // file name, e.g. "0001_init.sql"
  const char* sql;
};

// Sorted by version.
const std::vector<Migration>& Migrations();

}  // namespace moat::store
