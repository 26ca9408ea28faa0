// Output formatting like gcloud's --format: json, yaml, table(...), value(...), csv(...), none.
//
// Projections name fields by dotted paths ("template.serviceAccount", "bindings[0].role"),
// optionally followed by transforms (".basename()", ".segment(N)") and attributes
// (":label=NAME"). A path step over a list maps over its elements. Keys are printed sorted
// (gcloud sorts keys in json and yaml). Pure functions; thread-safe.
#pragma once

#include <boost/json/value.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace moat::cli {

struct Column {
  std::vector<std::string> path;        // keys; "[N]" steps are stored as "[N]"
  std::vector<std::string> transforms;  // "basename()", "segment(3)"
  std::string label;                    // header; defaults to the last key in UPPER_SNAKE case
  bool label_set = false;  // given with :label= (csv headers default to the field path)
};

struct Format {
  enum class Kind { kJson, kYaml, kTable, kValue, kCsv, kNone };
  Kind kind = Kind::kYaml;
  std::vector<Column> columns;
  bool no_heading = false;  // "table[no-heading](…)"
};

// Parses a --format value. Errors name the bad part, e.g. "unknown format `xml`".
Result<Format> ParseFormat(std::string_view spec);

// Renders `value`. When `is_list` the value is an array of records (one row or document
// each); otherwise it is a single record. A table without columns uses the scalar keys of
// the records. The result ends with a newline unless empty.
std::string Render(const Format& format, const boost::json::value& value, bool is_list);

// Pretty JSON, 2-space indent, keys sorted, like `gcloud --format=json`.
std::string ToPrettyJson(const boost::json::value& value);
// Block YAML, keys sorted, strings quoted only where a YAML reader would misread them.
std::string ToYaml(const boost::json::value& value);
// Quotes `s` for YAML if needed ("" → '', "true" → 'true', "a: b" → 'a: b').
std::string YamlScalar(std::string_view s);

// The value at `column` in `record` after transforms; null when absent.
boost::json::value Project(const boost::json::value& record, const Column& column);
// gcloud's cell text: strings raw, bools True/False, null "", lists joined by `list_sep`,
// maps as k=v joined by `list_sep`.
std::string CellText(const boost::json::value& v, std::string_view list_sep);

}  // namespace moat::cli
