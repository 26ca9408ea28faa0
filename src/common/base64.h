// Base64 (RFC 4648 §4) and base64url (§5) codecs.
//
// Decoders are strict: they accept only the canonical encoding (no whitespace, no
// characters outside the alphabet, unused trailing bits zero, padding exactly as required),
// because tokens and etags are untrusted input and two spellings of one value must not
// both verify. Thread-safe (pure functions).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace moat {

// Standard alphabet with '=' padding (Google's JSON form of proto `bytes`, e.g. etags).
std::string Base64Encode(std::string_view data);
std::optional<std::string> Base64Decode(std::string_view text);

// URL-safe alphabet without padding (JWS/JWT segments, JWK members).
std::string Base64UrlEncode(std::string_view data);
std::optional<std::string> Base64UrlDecode(std::string_view text);

}  // namespace moat
