// AES-256-GCM sealing for secrets at rest (signing keys in the store).
//
// Sealed format: nonce (12 random bytes) ‖ ciphertext ‖ tag (16 bytes). Random 96-bit nonces
// keep the collision risk negligible below ~2^32 messages per key, far above the number of
// keys Moat ever seals under one master key. `aad` binds the ciphertext to its context (e.g.
// the key's resource name) so a sealed blob cannot be moved to another row.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "common/error.h"

namespace moat::crypto {

constexpr size_t kAeadKeyBytes = 32;
constexpr size_t kAeadNonceBytes = 12;
constexpr size_t kAeadTagBytes = 16;

// Errors: kInvalidArgument if key is not 32 bytes; kInternal if OpenSSL fails.
Result<std::string> AeadSeal(std::string_view key, std::string_view plaintext,
                             std::string_view aad);

// Errors: kInvalidArgument for a bad key size; kDataLoss "sealed data is corrupt or was
// sealed under another key or context" when the input is too short or does not authenticate
// (no plaintext is ever returned unauthenticated).
Result<std::string> AeadOpen(std::string_view key, std::string_view sealed, std::string_view aad);

}  // namespace moat::crypto
