// Random identifiers from the kernel's CSPRNG (getrandom(2)). Thread-safe.
#pragma once

#include <cstdint>
#include <string>

namespace moat {

// n cryptographically random bytes. Aborts the process if the kernel cannot supply them
// (there is no safe fallback for key material).
std::string RandomBytes(size_t n);
// 2n lowercase hex digits of randomness.
std::string RandomHex(size_t n_bytes);
// RFC 4122 version-4 UUID, lowercase ("uid" of Google resources).
std::string RandomUuid();
// A 21-digit decimal id not starting with 0, like Google's service-account uniqueId.
std::string RandomNumericId();
uint64_t RandomU64();

}  // namespace moat
