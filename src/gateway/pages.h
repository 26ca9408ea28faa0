// Cloud Run-shaped error pages and header rewriting helpers for the gateway. Pure functions.
//
// Handles untrusted input: yes (paths and header values from clients); outputs are escaped.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace moat::gateway {

inline constexpr std::string_view kHtmlContentType = "text/html; charset=UTF-8";
inline constexpr std::string_view kWwwAuthenticate =
    "Bearer error=\"invalid_token\" error_description=\"The access token could not be verified\"";
inline constexpr std::string_view kSignatureRemoved = "SIGNATURE_REMOVED_BY_GOOGLE";

// &, <, >, ", ' escaped.
std::string HtmlEscape(std::string_view s);

// GOOGLE.md §1.5: the 403/401 bodies (path HTML-escaped inside <code>).
std::string ForbiddenPage(std::string_view path);
std::string UnauthorizedPage(std::string_view path);
// The same frame for other gateway-generated errors (404 unknown host, 413, 400, 502, 503,
// 504).
std::string ErrorPage(int status);

// "Bearer h.p.s" → "Bearer h.p.SIGNATURE_REMOVED_BY_GOOGLE". nullopt when the value is not a
// bearer JWT with three segments (the caller must then drop the header: never forward a
// replayable credential).
std::optional<std::string> StripJwtSignature(std::string_view header_value);
// The same, appended to *out as a header field line "name: Bearer h.p.SIGNATURE_REMOVED…\r\n"
// without a temporary; false (nothing appended) when the value is not a bearer JWT.
bool AppendStrippedJwtField(std::string* out, std::string_view name,
                            std::string_view header_value);

}  // namespace moat::gateway
