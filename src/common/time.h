// RFC 3339 timestamps as Google's JSON uses them ("2020-10-01T00:00:00.000Z",
// "2024-05-01T12:00:00.123456789Z", offsets like "+01:00") and Duration strings ("300s",
// "1.5s"). Pure functions, thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"

namespace moat {

// Formats in UTC with 'Z'. Fractional seconds are printed only when non-zero, with 3, 6 or 9
// digits as needed, as protobuf's JSON mapping does.
std::string FormatRfc3339(TimePoint t);
// Parses RFC 3339 (upper- or lower-case T/Z, optional fraction up to 9 digits, Z or ±hh:mm).
std::optional<TimePoint> ParseRfc3339(std::string_view text);

// "3600s", "0.5s" → duration (protobuf Duration JSON form).
std::optional<std::chrono::nanoseconds> ParseDuration(std::string_view text);
std::string FormatDuration(std::chrono::nanoseconds d);
// gcloud's flag form: a whole number with s, m, h or d ("90s", "15m", "7d"); nullopt otherwise.
std::optional<std::chrono::seconds> ParseFlagDuration(std::string_view text);

}  // namespace moat
