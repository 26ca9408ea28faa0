// A small YAML reader for policy and config files (`set-iam-policy FILE`): block maps and
// lists, plain/single-quoted/double-quoted scalars, one-line flow collections ([a, b],
// {k: v}), block scalars (| and > with - / + chomping), comments and a leading `---`.
// Anchors, aliases, tags and multi-document streams are refused with a clear error.
//
// Input is the user's own file but may be anything: errors carry a line number, nesting is
// capped at 64 levels, duplicate keys are refused. Pure; thread-safe.
#pragma once

#include <boost/json/value.hpp>
#include <string_view>

#include "common/error.h"

namespace moat::cli {

// Parses YAML (or JSON, detected by a leading `{` or `[`) into a JSON value. Plain scalars
// become null (null, ~, empty), booleans (true/false in any case), integers, floats or
// strings; quoted scalars are always strings. `what` names the document in errors.
Result<boost::json::value> ParseYaml(std::string_view text, std::string_view what = "file");

}  // namespace moat::cli
