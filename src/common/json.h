// Helpers over Boost.JSON for reading untrusted JSON objects with clear errors.
//
// Parse() refuses trailing garbage, duplicate object keys (two spellings of one claim or
// field must not both be read), and nesting deeper than 64. Getters return Result with a
// message naming the field, e.g. "field `version` must be an integer". Thread-safe.
#pragma once

#include <boost/json/value.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"

namespace moat::json {

// Parses text into a value. `what` names the document in errors ("policy", "request body").
Result<boost::json::value> Parse(std::string_view text, std::string_view what = "request body");
// Parses and requires an object.
Result<boost::json::object> ParseObject(std::string_view text,
                                        std::string_view what = "request body");

// Optional members: absent or null → nullopt; present with a wrong type → error.
Result<std::optional<std::string>> OptString(const boost::json::object& o, std::string_view key);
Result<std::optional<int64_t>> OptInt(const boost::json::object& o, std::string_view key);
Result<std::optional<bool>> OptBool(const boost::json::object& o, std::string_view key);
Result<const boost::json::array*> OptArray(const boost::json::object& o, std::string_view key);
Result<const boost::json::object*> OptObject(const boost::json::object& o, std::string_view key);

// Serializes compactly.
std::string Serialize(const boost::json::value& v);

}  // namespace moat::json
