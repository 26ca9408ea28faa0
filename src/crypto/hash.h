// Hashing helpers: SHA-256, HMAC-SHA256, hex, and constant-time comparison.
//
// Pure functions over byte strings (std::string used as a byte container). Thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace moat::crypto {

// The 32-byte SHA-256 digest of `data`.
std::string Sha256(std::string_view data);
// The 32-byte HMAC-SHA256 of `data` under `key` (any length).
std::string HmacSha256(std::string_view key, std::string_view data);

// Lowercase hex of arbitrary bytes.
std::string HexEncode(std::string_view bytes);

// True iff a == b, in time that depends only on the lengths (use for MACs, tokens, secrets).
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace moat::crypto
