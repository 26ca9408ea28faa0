#include "cli/format.h"

#include <algorithm>
#include <boost/json/serialize.hpp>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <sstream>

namespace moat::cli {
namespace {

namespace js = boost::json;

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

// Splits on `sep` outside parentheses, brackets and quotes.
std::vector<std::string> SplitTop(std::string_view s, char sep) {
  std::vector<std::string> parts;
  int depth = 0;
  char quote = 0;
  std::string cur;
  for (char c : s) {
    if (quote) {
      if (c == quote) quote = 0;
      cur += c;
      continue;
    }
    if (c == '"' || c == '\'') quote = c;
    if (c == '(' || c == '[') ++depth;
    if (c == ')' || c == ']') --depth;
    if (c == sep && depth == 0) {
      parts.push_back(cur);
      cur.clear();
      continue;
    }
    cur += c;
  }
  parts.push_back(cur);
  return parts;
}

std::string Unquote(std::string s) {
  if (s.size() >= 2 && (s.front() == '"' || s.front() == '\'') && s.back() == s.front()) {
    return s.substr(1, s.size() - 2);
  }
  return s;
}

std::string UpperSnake(std::string_view key) {
  std::string out;
  for (size_t i = 0; i < key.size(); ++i) {
    char c = key[i];
    if (std::isupper(static_cast<unsigned char>(c)) && i > 0 &&
        std::islower(static_cast<unsigned char>(key[i - 1]))) {
      out += '_';
    }
    out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out;
}

bool ValidKey(std::string_view k) {
  if (k.empty()) return false;
  for (char c : k) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '@' ||
          c == '/')) {
      return false;
    }
  }
  return true;
}

Result<Column> ParseColumn(std::string_view text) {
  std::vector<std::string> attrs = SplitTop(text, ':');
  std::string key = Trim(attrs[0]);
  Column col;
  if (key.empty()) return InvalidArgument("empty field in --format projection");
  // Path steps, then transforms ("name.basename()").
  std::vector<std::string> steps = SplitTop(key, '.');
  for (std::string& step : steps) {
    step = Trim(step);
    size_t paren = step.find('(');
    if (paren != std::string::npos) {
      if (step.back() != ')') return InvalidArgument("bad transform `" + step + "` in --format");
      std::string name = step.substr(0, paren);
      if (name != "basename" && name != "segment") {
        return InvalidArgument("unknown transform `" + name +
                               "` in --format; known: basename(), segment(N)");
      }
      col.transforms.push_back(step);
      continue;
    }
    if (!col.transforms.empty()) {
      return InvalidArgument("field `" + step + "` follows a transform in --format");
    }
    // "bindings[0]" → "bindings", "[0]"
    size_t br = step.find('[');
    std::string name = step.substr(0, br);
    if (!name.empty()) {
      if (!ValidKey(name)) return InvalidArgument("bad field name `" + name + "` in --format");
      col.path.push_back(name);
    }
    while (br != std::string::npos) {
      size_t close = step.find(']', br);
      if (close == std::string::npos) return InvalidArgument("unclosed `[` in --format");
      std::string idx = step.substr(br + 1, close - br - 1);
      if (idx.empty() || !std::all_of(idx.begin(), idx.end(), ::isdigit)) {
        return InvalidArgument("bad index `[" + idx + "]` in --format");
      }
      col.path.push_back("[" + idx + "]");
      br = step.find('[', close);
    }
  }
  if (col.path.empty()) return InvalidArgument("field without a name in --format");
  for (size_t i = 1; i < attrs.size(); ++i) {
    std::string a = Trim(attrs[i]);
    if (a.rfind("label=", 0) == 0) {
      col.label = Unquote(a.substr(6));
      col.label_set = true;
    } else {
      return InvalidArgument("unknown attribute `" + a + "` in --format; known: label=");
    }
  }
  if (col.label.empty()) {
    std::string last;
    for (const std::string& s : col.path)
      if (s[0] != '[') last = s;
    col.label = UpperSnake(last);
  }
  return col;
}

js::value Step(const js::value& v, const std::string& step) {
  if (step[0] == '[') {
    size_t i = std::strtoul(step.c_str() + 1, nullptr, 10);
    if (const js::array* a = v.if_array(); a && i < a->size()) return (*a)[i];
    return nullptr;
  }
  if (const js::object* o = v.if_object()) {
    if (auto it = o->find(step); it != o->end()) return it->value();
    return nullptr;
  }
  if (const js::array* a = v.if_array()) {
    js::array out;
    for (const js::value& e : *a) {
      js::value r = Step(e, step);
      if (r.is_array()) {
        for (auto& x : r.as_array()) out.push_back(x);
      } else if (!r.is_null()) {
        out.push_back(r);
      }
    }
    return out;
  }
  return nullptr;
}

js::value ApplyTransform(const js::value& v, const std::string& t) {
  if (v.is_array()) {
    js::array out;
    for (const js::value& e : v.as_array()) out.push_back(ApplyTransform(e, t));
    return out;
  }
  if (!v.is_string()) return v;
  std::string s(v.as_string());
  if (t == "basename()") {
    size_t slash = s.rfind('/');
    return js::value(slash == std::string::npos ? s : s.substr(slash + 1));
  }
  // segment(N): the N-th '/'-separated part (negative counts from the end).
  int n = std::atoi(t.c_str() + 8);
  std::vector<std::string> parts = SplitTop(s, '/');
  if (n < 0) n += static_cast<int>(parts.size());
  if (n < 0 || n >= static_cast<int>(parts.size())) return js::value("");
  return js::value(parts[n]);
}

std::string CsvQuote(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::vector<Column> DefaultColumns(const js::array& records) {
  std::vector<Column> cols;
  if (records.empty() || !records[0].is_object()) return cols;
  std::vector<std::string> keys;
  for (const auto& kv : records[0].as_object()) {
    if (!kv.value().is_object() && !kv.value().is_array()) keys.emplace_back(kv.key());
  }
  std::sort(keys.begin(), keys.end());
  for (const std::string& k : keys) cols.push_back(Column{{k}, {}, UpperSnake(k), false});
  return cols;
}

void PrettyJson(const js::value& v, int indent, std::string& out) {
  std::string pad(indent, ' ');
  if (const js::object* o = v.if_object()) {
    if (o->empty()) {
      out += "{}";
      return;
    }
    std::vector<std::string> keys;
    for (const auto& kv : *o) keys.emplace_back(kv.key());
    std::sort(keys.begin(), keys.end());
    out += "{\n";
    for (size_t i = 0; i < keys.size(); ++i) {
      out += pad + "  " + js::serialize(js::string_view(keys[i])) + ": ";
      PrettyJson(o->at(keys[i]), indent + 2, out);
      out += i + 1 < keys.size() ? ",\n" : "\n";
    }
    out += pad + "}";
  } else if (const js::array* a = v.if_array()) {
    if (a->empty()) {
      out += "[]";
      return;
    }
    out += "[\n";
    for (size_t i = 0; i < a->size(); ++i) {
      out += pad + "  ";
      PrettyJson((*a)[i], indent + 2, out);
      out += i + 1 < a->size() ? ",\n" : "\n";
    }
    out += pad + "]";
  } else {
    out += js::serialize(v);
  }
}

bool IsScalarOrEmpty(const js::value& v) {
  if (const js::object* o = v.if_object()) return o->empty();
  if (const js::array* a = v.if_array()) return a->empty();
  return true;
}

std::string YamlInline(const js::value& v) {
  switch (v.kind()) {
    case js::kind::null:
      return "null";
    case js::kind::bool_:
      return v.get_bool() ? "true" : "false";
    case js::kind::string:
      return YamlScalar(v.get_string());
    case js::kind::object:
      return "{}";
    case js::kind::array:
      return "[]";
    default:
      return js::serialize(v);
  }
}

void YamlBlock(const js::value& v, int indent, std::string& out);

void YamlList(const js::array& a, int indent, std::string& out) {
  std::string pad(indent, ' ');
  for (const js::value& item : a) {
    if (IsScalarOrEmpty(item)) {
      out += pad + "- " + YamlInline(item) + "\n";
      continue;
    }
    // Render the item two columns deeper, then put "- " in place of its first indent.
    std::string sub;
    if (item.is_object()) {
      YamlBlock(item, indent + 2, sub);
    } else {
      YamlList(item.as_array(), indent + 2, sub);
    }
    out += pad + "- " + sub.substr(indent + 2);
  }
}

void YamlBlock(const js::value& v, int indent, std::string& out) {
  std::string pad(indent, ' ');
  const js::object& o = v.as_object();
  std::vector<std::string> keys;
  for (const auto& kv : o) keys.emplace_back(kv.key());
  std::sort(keys.begin(), keys.end());
  for (const std::string& k : keys) {
    const js::value& child = o.at(k);
    if (IsScalarOrEmpty(child)) {
      out += pad + YamlScalar(k) + ": " + YamlInline(child) + "\n";
    } else if (child.is_object()) {
      out += pad + YamlScalar(k) + ":\n";
      YamlBlock(child, indent + 2, out);
    } else {
      out += pad + YamlScalar(k) + ":\n";
      YamlList(child.as_array(), indent, out);
    }
  }
}

bool LooksNumeric(std::string_view s) {
  bool digit = false;
  for (char c : s) {
    if (std::isdigit(static_cast<unsigned char>(c))) {
      digit = true;
    } else if (!std::strchr("+-._:eExXoObB", c) &&
               !(std::isxdigit(static_cast<unsigned char>(c)) && s.size() > 2 &&
                 (s.substr(0, 2) == "0x" || s.substr(0, 2) == "0X"))) {
      return false;
    }
  }
  return digit;
}

bool LooksDate(std::string_view s) {
  // YAML 1.1 timestamps start with YYYY-M-D; PyYAML (and so gcloud) quotes them.
  if (s.size() < 8) return false;
  for (int i = 0; i < 4; ++i)
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
  return s[4] == '-' && std::isdigit(static_cast<unsigned char>(s[5]));
}

}  // namespace

std::string YamlScalar(std::string_view s) {
  bool needs_double = false;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) needs_double = true;
  }
  if (needs_double) return js::serialize(js::string_view(s.data(), s.size()));
  bool quote = s.empty();
  if (!quote) {
    std::string lower;
    for (char c : s) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    static const char* const kReserved[] = {"true", "false", "yes", "no",   "on",    "off", "null",
                                            "~",    "y",     "n",   ".inf", "-.inf", ".nan"};
    for (const char* r : kReserved) quote = quote || lower == r;
    quote = quote || std::strchr("-?:,[]{}#&*!|>'\"%@`", s[0]) != nullptr;
    quote = quote || s.front() == ' ' || s.back() == ' ' || s.back() == ':';
    quote =
        quote || s.find(": ") != std::string_view::npos || s.find(" #") != std::string_view::npos;
    quote = quote || LooksNumeric(s) || LooksDate(s);
  }
  if (!quote) return std::string(s);
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

std::string ToPrettyJson(const js::value& value) {
  std::string out;
  PrettyJson(value, 0, out);
  return out + "\n";
}

std::string ToYaml(const js::value& value) {
  std::string out;
  if (IsScalarOrEmpty(value)) return YamlInline(value) + "\n";
  if (value.is_object()) {
    YamlBlock(value, 0, out);
  } else {
    YamlList(value.as_array(), 0, out);
  }
  return out;
}

Result<Format> ParseFormat(std::string_view spec) {
  std::string s = Trim(spec);
  Format f;
  size_t open = s.find_first_of("[(");
  std::string name = s.substr(0, open);
  std::string rest = open == std::string::npos ? "" : s.substr(open);
  if (name == "json") {
    f.kind = Format::Kind::kJson;
  } else if (name == "yaml") {
    f.kind = Format::Kind::kYaml;
  } else if (name == "table") {
    f.kind = Format::Kind::kTable;
  } else if (name == "value") {
    f.kind = Format::Kind::kValue;
  } else if (name == "csv") {
    f.kind = Format::Kind::kCsv;
  } else if (name == "none") {
    f.kind = Format::Kind::kNone;
  } else {
    return InvalidArgument("unknown format `" + name +
                           "`; use json, yaml, table(…), value(…), csv(…) or none");
  }
  if (!rest.empty() && rest[0] == '[') {
    size_t close = rest.find(']');
    if (close == std::string::npos) return InvalidArgument("unclosed `[` in --format");
    for (const std::string& attr : SplitTop(rest.substr(1, close - 1), ',')) {
      std::string a = Trim(attr);
      if (a == "no-heading") {
        f.no_heading = true;
      } else if (!a.empty()) {
        return InvalidArgument("unknown format attribute `" + a + "`; known: no-heading");
      }
    }
    rest = Trim(rest.substr(close + 1));
  }
  if (!rest.empty()) {
    if (rest[0] != '(' || rest.back() != ')') {
      return InvalidArgument("bad projection `" + rest + "` in --format; expected (field,…)");
    }
    if (f.kind == Format::Kind::kJson || f.kind == Format::Kind::kYaml ||
        f.kind == Format::Kind::kNone) {
      return InvalidArgument("format `" + name + "` takes no projection");
    }
    for (const std::string& c : SplitTop(rest.substr(1, rest.size() - 2), ',')) {
      if (Trim(c).empty()) continue;
      MOAT_TRY(Column col, ParseColumn(c));
      f.columns.push_back(std::move(col));
    }
  }
  if (f.kind == Format::Kind::kValue && f.columns.empty() && name == s) {
    return InvalidArgument("format `value` needs fields, e.g. --format='value(name)'");
  }
  return f;
}

js::value Project(const js::value& record, const Column& column) {
  js::value v = record;
  for (const std::string& step : column.path) {
    v = Step(v, step);
    if (v.is_null()) return v;
  }
  for (const std::string& t : column.transforms) v = ApplyTransform(v, t);
  return v;
}

std::string CellText(const js::value& v, std::string_view list_sep) {
  switch (v.kind()) {
    case js::kind::null:
      return "";
    case js::kind::bool_:
      return v.get_bool() ? "True" : "False";
    case js::kind::string:
      return std::string(v.get_string());
    case js::kind::array: {
      std::string out;
      for (const js::value& e : v.get_array()) {
        if (!out.empty()) out += list_sep;
        out += CellText(e, list_sep);
      }
      return out;
    }
    case js::kind::object: {
      std::vector<std::string> keys;
      for (const auto& kv : v.get_object()) keys.emplace_back(kv.key());
      std::sort(keys.begin(), keys.end());
      std::string out;
      for (const std::string& k : keys) {
        if (!out.empty()) out += list_sep;
        out += k + "=" + CellText(v.get_object().at(k), list_sep);
      }
      return out;
    }
    default:
      return js::serialize(v);
  }
}

std::string Render(const Format& format, const js::value& value, bool is_list) {
  js::array records;
  if (is_list && value.is_array()) {
    records = value.as_array();
  } else {
    records.push_back(value);
  }
  switch (format.kind) {
    case Format::Kind::kNone:
      return "";
    case Format::Kind::kJson:
      return ToPrettyJson(is_list ? js::value(records) : value);
    case Format::Kind::kYaml: {
      std::string out;
      for (size_t i = 0; i < records.size(); ++i) {
        if (i > 0) out += "---\n";
        out += ToYaml(records[i]);
      }
      return out;
    }
    case Format::Kind::kValue:
    case Format::Kind::kCsv:
    case Format::Kind::kTable:
      break;
  }
  std::vector<Column> cols = format.columns.empty() ? DefaultColumns(records) : format.columns;
  std::vector<std::vector<std::string>> rows;
  const char* sep = format.kind == Format::Kind::kValue ? ";" : ",";
  for (const js::value& r : records) {
    std::vector<std::string> row;
    for (const Column& c : cols) row.push_back(CellText(Project(r, c), sep));
    rows.push_back(std::move(row));
  }
  std::ostringstream out;
  if (format.kind == Format::Kind::kValue) {
    for (const auto& row : rows) {
      for (size_t i = 0; i < row.size(); ++i) out << (i ? "\t" : "") << row[i];
      out << "\n";
    }
    return out.str();
  }
  if (format.kind == Format::Kind::kCsv) {
    if (!format.no_heading) {
      for (size_t i = 0; i < cols.size(); ++i) {
        std::string h;
        for (const std::string& p : cols[i].path) h += (h.empty() || p[0] == '[' ? "" : ".") + p;
        out << (i ? "," : "") << CsvQuote(cols[i].label_set ? cols[i].label : h);
      }
      out << "\n";
    }
    for (const auto& row : rows) {
      for (size_t i = 0; i < row.size(); ++i) out << (i ? "," : "") << CsvQuote(row[i]);
      out << "\n";
    }
    return out.str();
  }
  if (rows.empty() || cols.empty()) return "";
  std::vector<size_t> width(cols.size(), 0);
  if (!format.no_heading) {
    for (size_t i = 0; i < cols.size(); ++i) width[i] = cols[i].label.size();
  }
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  auto emit = [&](const std::vector<std::string>& cells) {
    std::string line;
    for (size_t i = 0; i < cells.size(); ++i) {
      line += cells[i];
      if (i + 1 < cells.size()) line += std::string(width[i] - cells[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << "\n";
  };
  if (!format.no_heading) {
    std::vector<std::string> head;
    for (const Column& c : cols) head.push_back(c.label);
    emit(head);
  }
  for (const auto& row : rows) emit(row);
  return out.str();
}

}  // namespace moat::cli
