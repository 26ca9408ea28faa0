// The master key: the 32-byte AES-256-GCM key that seals Moat's private signing keys (and the
// system-managed service-account keys) at rest in the store.
//
// Source, in order: the environment variable MOAT_MASTER_KEY (base64 of exactly 32 bytes;
// for deployments that keep secrets in a secret manager), else the file `$MOAT_HOME/master.key`
// (base64 text), created on first use with mode 0600 (O_CREAT|O_EXCL, fsync'd). An existing
// file readable or writable by group or others is refused: the key would be as good as public.
//
// Thread-safety: call once at start-up (it creates files).
#pragma once

#include <string>
#include <string_view>

#include "common/error.h"

namespace moat::identity {

inline constexpr std::string_view kMasterKeyEnvVar = "MOAT_MASTER_KEY";
inline constexpr std::string_view kMasterKeyFileName = "master.key";

// Returns the 32 raw key bytes (secret: never log them).
// `env_value` is the value of $MOAT_MASTER_KEY (nullptr or empty = unset).
// Errors: kInvalidArgument when the variable or the file does not hold base64 of 32 bytes;
// kFailedPrecondition when the file has group/other permission bits ("… has mode 0644; run
// chmod 600 …") or is not a regular file; kUnavailable when the file cannot be read/created.
// Creates `home_dir` (mode 0700) if it does not exist.
Result<std::string> LoadOrCreateMasterKey(const std::string& home_dir, const char* env_value);

}  // namespace moat::identity
