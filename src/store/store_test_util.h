// Test helpers for store tests (not part of moat_store).
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

namespace moat::store::testing_util {

// A fresh private directory under $TMPDIR (or /tmp); the caller removes it.
inline std::string MakeTempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string templ =
      std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/moat-store-test-XXXXXX";
  char* made = mkdtemp(templ.data());
  if (made == nullptr) std::abort();
  return templ;
}

}  // namespace moat::store::testing_util
