#include "cli/yaml.h"

#include <cctype>
#include <charconv>
#include <cstring>
#include <string>
#include <vector>

#include "common/json.h"

namespace moat::cli {
namespace {

namespace js = boost::json;
constexpr int kMaxDepth = 64;

struct Line {
  int number = 0;    // 1-based
  int indent = 0;    // leading spaces
  std::string text;  // content after the indent, comment stripped, right-trimmed
  std::string raw;   // the whole original line (for block scalars)
  bool blank = true;
};

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

std::string RTrim(std::string s) {
  while (!s.empty() && IsSpace(s.back())) s.pop_back();
  return s;
}

// Removes a trailing comment: '#' at the start or after whitespace, outside quotes.
std::string StripComment(const std::string& s) {
  char quote = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (quote) {
      if (c == '\\' && quote == '"') {
        ++i;
      } else if (c == quote) {
        if (quote == '\'' && i + 1 < s.size() && s[i + 1] == '\'') {
          ++i;
        } else {
          quote = 0;
        }
      }
      continue;
    }
    bool token_start = i == 0 || std::strchr(" \t[{,:", s[i - 1]) != nullptr;
    if ((c == '"' || c == '\'') && token_start) {
      quote = c;
    } else if (c == '#' && (i == 0 || IsSpace(s[i - 1]))) {
      return s.substr(0, i);
    }
  }
  return s;
}

js::value TypePlain(const std::string& s) {
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  const char* b = s.data();
  const char* e = s.data() + s.size();
  const char* start = (*b == '+') ? b + 1 : b;
  int64_t i = 0;
  auto [p, ec] = std::from_chars(start, e, i);
  if (ec == std::errc() && p == e && start != e) return i;
  bool numeric = std::isdigit(static_cast<unsigned char>(*start)) ||
                 ((*start == '-' || *start == '.') && s.size() > 1);
  if (numeric) {
    double d = 0;
    auto [p2, ec2] = std::from_chars(start, e, d);
    if (ec2 == std::errc() && p2 == e) return d;
  }
  return js::value(s);
}

class Parser {
 public:
  Parser(std::string_view text, std::string_view what) : what_(what) {
    int number = 0;
    size_t pos = 0;
    while (pos <= text.size()) {
      size_t nl = text.find('\n', pos);
      std::string raw(text.substr(pos, nl == std::string_view::npos ? nl : nl - pos));
      if (!raw.empty() && raw.back() == '\r') raw.pop_back();
      Line line;
      line.number = ++number;
      line.raw = raw;
      size_t ind = 0;
      while (ind < raw.size() && raw[ind] == ' ') ++ind;
      line.indent = static_cast<int>(ind);
      line.text = RTrim(StripComment(raw.substr(ind)));
      line.blank = line.text.empty();
      if (!line.blank && line.text[0] == '\t') tab_line_ = tab_line_ ? tab_line_ : number;
      lines_.push_back(std::move(line));
      if (nl == std::string_view::npos) break;
      pos = nl + 1;
    }
  }

  Result<js::value> ParseDocument() {
    if (tab_line_) return Err(tab_line_, "tabs are not allowed for indentation");
    SkipBlank();
    if (pos_ < lines_.size() && lines_[pos_].indent == 0 &&
        (lines_[pos_].text == "---" || lines_[pos_].text.rfind("--- ", 0) == 0)) {
      std::string rest = lines_[pos_].text.substr(3);
      if (rest.find_first_not_of(' ') != std::string::npos) {
        lines_[pos_].text = rest.substr(rest.find_first_not_of(' '));
        lines_[pos_].indent = 0;
      } else {
        ++pos_;
      }
    }
    SkipBlank();
    js::value v = nullptr;
    if (pos_ < lines_.size()) {
      MOAT_TRY(v, ParseNode(lines_[pos_].indent, 0));
    }
    SkipBlank();
    if (pos_ < lines_.size() && lines_[pos_].text == "...") {
      ++pos_;
      SkipBlank();
    }
    if (pos_ < lines_.size()) {
      if (lines_[pos_].text == "---" || lines_[pos_].text.rfind("--- ", 0) == 0) {
        return Err(lines_[pos_].number, "only one YAML document is supported");
      }
      return Err(lines_[pos_].number, "unexpected indentation or content");
    }
    return v;
  }

 private:
  Error Err(int line, std::string_view msg) const {
    return InvalidArgument(std::string(what_) + " line " + std::to_string(line) + ": " +
                           std::string(msg));
  }

  void SkipBlank() {
    while (pos_ < lines_.size() && lines_[pos_].blank) ++pos_;
  }

  static bool IsListItem(const std::string& t) { return t == "-" || t.rfind("- ", 0) == 0; }

  // Finds the ':' that ends a mapping key on `t`, or npos.
  static size_t KeyColon(const std::string& t) {
    if (t.empty() || t[0] == '[' || t[0] == '{') return std::string::npos;
    size_t i = 0;
    if (t[0] == '"' || t[0] == '\'') {
      char q = t[0];
      for (i = 1; i < t.size(); ++i) {
        if (q == '"' && t[i] == '\\') {
          ++i;
        } else if (t[i] == q) {
          if (q == '\'' && i + 1 < t.size() && t[i + 1] == '\'') {
            ++i;
            continue;
          }
          break;
        }
      }
      if (i >= t.size()) return std::string::npos;
      ++i;
      while (i < t.size() && t[i] == ' ') ++i;
      if (i < t.size() && t[i] == ':' && (i + 1 == t.size() || t[i + 1] == ' ')) return i;
      return std::string::npos;
    }
    for (i = 0; i < t.size(); ++i) {
      if (t[i] == ':' && (i + 1 == t.size() || t[i + 1] == ' ')) return i;
    }
    return std::string::npos;
  }

  Result<js::value> ParseNode(int indent, int depth) {
    if (depth > kMaxDepth) return Err(lines_[pos_].number, "nesting is too deep");
    const Line& line = lines_[pos_];
    if (line.text[0] == '&' || line.text[0] == '*' || line.text[0] == '!') {
      return Err(line.number, "anchors, aliases and tags are not supported");
    }
    if (IsListItem(line.text)) return ParseList(indent, depth);
    if (KeyColon(line.text) != std::string::npos) return ParseMap(indent, depth);
    int number = line.number;
    std::string text = line.text;
    ++pos_;
    return ParseInline(text, number, depth);
  }

  // The value after "key:" or "- " on the same line.
  Result<js::value> ParseInline(const std::string& text, int number, int depth) {
    if (text[0] == '&' || text[0] == '*' || text[0] == '!') {
      return Err(number, "anchors, aliases and tags are not supported");
    }
    if (text[0] == '[' || text[0] == '{' || text[0] == '"' || text[0] == '\'') {
      size_t i = 0;
      MOAT_TRY(js::value v, ParseFlow(text, i, number, depth, text[0] == '[' || text[0] == '{'));
      while (i < text.size() && text[i] == ' ') ++i;
      if (i != text.size()) return Err(number, "unexpected text after a value");
      return v;
    }
    return TypePlain(text);
  }

  // Parses a flow value at text[i]. `in_flow`: plain scalars end at , ] }.
  Result<js::value> ParseFlow(const std::string& t, size_t& i, int number, int depth,
                              bool in_flow) {
    if (depth > kMaxDepth) return Err(number, "nesting is too deep");
    auto skip = [&] {
      while (i < t.size() && t[i] == ' ') ++i;
    };
    skip();
    if (i >= t.size()) return Err(number, "missing value");
    char c = t[i];
    if (c == '"') {
      size_t start = i++;
      while (i < t.size() && t[i] != '"') i += t[i] == '\\' ? 2 : 1;
      if (i >= t.size()) return Err(number, "unterminated double-quoted string");
      ++i;
      auto parsed = json::Parse(t.substr(start, i - start), "string");
      if (!parsed || !parsed->is_string()) return Err(number, "bad escape in double-quoted string");
      return *parsed;
    }
    if (c == '\'') {
      std::string out;
      ++i;
      for (;; ++i) {
        if (i >= t.size()) return Err(number, "unterminated single-quoted string");
        if (t[i] == '\'') {
          if (i + 1 < t.size() && t[i + 1] == '\'') {
            out += '\'';
            ++i;
            continue;
          }
          ++i;
          break;
        }
        out += t[i];
      }
      return js::value(out);
    }
    if (c == '[') {
      js::array a;
      ++i;
      skip();
      if (i < t.size() && t[i] == ']') {
        ++i;
        return a;
      }
      for (;;) {
        MOAT_TRY(js::value v, ParseFlow(t, i, number, depth + 1, true));
        a.push_back(std::move(v));
        skip();
        if (i < t.size() && t[i] == ',') {
          ++i;
          continue;
        }
        if (i < t.size() && t[i] == ']') {
          ++i;
          return a;
        }
        return Err(number, "expected `,` or `]` in a flow list");
      }
    }
    if (c == '{') {
      js::object o;
      ++i;
      skip();
      if (i < t.size() && t[i] == '}') {
        ++i;
        return o;
      }
      for (;;) {
        MOAT_TRY(js::value k, ParseFlow(t, i, number, depth + 1, true));
        skip();
        if (i >= t.size() || t[i] != ':') return Err(number, "expected `:` in a flow map");
        ++i;
        MOAT_TRY(js::value v, ParseFlow(t, i, number, depth + 1, true));
        std::string key = k.is_string() ? std::string(k.as_string()) : json::Serialize(k);
        if (o.contains(key)) return Err(number, "duplicate key `" + key + "`");
        o[key] = std::move(v);
        skip();
        if (i < t.size() && t[i] == ',') {
          ++i;
          continue;
        }
        if (i < t.size() && t[i] == '}') {
          ++i;
          return o;
        }
        return Err(number, "expected `,` or `}` in a flow map");
      }
    }
    size_t start = i;
    while (i < t.size() && !(in_flow && (t[i] == ',' || t[i] == ']' || t[i] == '}')) &&
           !(in_flow && t[i] == ':' && (i + 1 == t.size() || t[i + 1] == ' '))) {
      ++i;
    }
    std::string plain = RTrim(t.substr(start, i - start));
    return TypePlain(plain);
  }

  Result<js::value> ParseMap(int indent, int depth) {
    js::object o;
    while (true) {
      SkipBlank();
      if (pos_ >= lines_.size()) break;
      Line& line = lines_[pos_];
      if (line.indent < indent) break;
      if (line.indent > indent) return Err(line.number, "unexpected indentation");
      if (IsListItem(line.text)) return Err(line.number, "a list item where a key was expected");
      size_t colon = KeyColon(line.text);
      if (colon == std::string::npos) return Err(line.number, "expected `key: value`");
      std::string key_text = RTrim(line.text.substr(0, colon));
      std::string key;
      if (key_text[0] == '"' || key_text[0] == '\'') {
        size_t i = 0;
        MOAT_TRY(js::value k, ParseFlow(key_text, i, line.number, depth, false));
        key = std::string(k.as_string());
      } else {
        key = key_text;
      }
      if (key == "<<") return Err(line.number, "merge keys are not supported");
      if (o.contains(key)) return Err(line.number, "duplicate key `" + key + "`");
      std::string rest = line.text.substr(colon + 1);
      rest.erase(0, rest.find_first_not_of(' ') == std::string::npos ? rest.size()
                                                                     : rest.find_first_not_of(' '));
      int number = line.number;
      ++pos_;
      js::value v;
      if (!rest.empty() && (rest[0] == '|' || rest[0] == '>')) {
        MOAT_TRY(v, ParseBlockScalar(rest, indent, number));
      } else if (!rest.empty()) {
        MOAT_TRY(v, ParseInline(rest, number, depth + 1));
      } else {
        SkipBlank();
        if (pos_ < lines_.size() && lines_[pos_].indent > indent) {
          MOAT_TRY(v, ParseNode(lines_[pos_].indent, depth + 1));
        } else if (pos_ < lines_.size() && lines_[pos_].indent == indent &&
                   IsListItem(lines_[pos_].text)) {
          MOAT_TRY(v, ParseList(indent, depth + 1));
        } else {
          v = nullptr;
        }
      }
      o[key] = std::move(v);
    }
    return o;
  }

  Result<js::value> ParseList(int indent, int depth) {
    js::array a;
    while (true) {
      SkipBlank();
      if (pos_ >= lines_.size()) break;
      Line& line = lines_[pos_];
      if (line.indent < indent || !IsListItem(line.text)) {
        if (line.indent > indent) return Err(line.number, "unexpected indentation");
        break;
      }
      if (line.indent > indent) return Err(line.number, "unexpected indentation");
      if (line.text == "-") {
        ++pos_;
        SkipBlank();
        if (pos_ < lines_.size() && lines_[pos_].indent > indent) {
          MOAT_TRY(js::value v, ParseNode(lines_[pos_].indent, depth + 1));
          a.push_back(std::move(v));
        } else {
          a.push_back(nullptr);
        }
        continue;
      }
      // "- rest": re-read the rest as a line indented to where it starts.
      size_t off = 1;
      while (off < line.text.size() && line.text[off] == ' ') ++off;
      std::string rest = line.text.substr(off);
      if (rest[0] == '|' || rest[0] == '>') {
        int number = line.number;
        ++pos_;
        MOAT_TRY(js::value v, ParseBlockScalar(rest, indent, number));
        a.push_back(std::move(v));
        continue;
      }
      line.indent += static_cast<int>(off);
      line.text = rest;
      MOAT_TRY(js::value v, ParseNode(line.indent, depth + 1));
      a.push_back(std::move(v));
    }
    return a;
  }

  Result<js::value> ParseBlockScalar(const std::string& header, int parent_indent, int number) {
    bool folded = header[0] == '>';
    char chomp = 0;
    for (size_t i = 1; i < header.size(); ++i) {
      if (header[i] == '-' || header[i] == '+') {
        chomp = header[i];
      } else if (!std::isdigit(static_cast<unsigned char>(header[i]))) {
        return Err(number, "bad block scalar header `" + header + "`");
      }
    }
    std::vector<std::string> body;
    int block_indent = -1;
    while (pos_ < lines_.size()) {
      const Line& l = lines_[pos_];
      bool blank = l.raw.find_first_not_of(' ') == std::string::npos;
      if (!blank) {
        if (l.indent <= parent_indent) break;
        if (block_indent < 0) block_indent = l.indent;
        if (l.indent < block_indent) break;
        body.push_back(l.raw.substr(block_indent));
      } else {
        body.push_back("");
      }
      ++pos_;
    }
    // Trailing blank lines belong to chomping, and the lines after may be the next key's.
    int trailing = 0;
    while (!body.empty() && body.back().empty()) {
      body.pop_back();
      ++trailing;
    }
    // Give back blank lines we consumed past the block (harmless: they are blank).
    std::string out;
    for (size_t i = 0; i < body.size(); ++i) {
      if (i > 0) {
        bool join_space = folded && !body[i].empty() && !body[i - 1].empty() && body[i][0] != ' ' &&
                          body[i - 1][0] != ' ';
        out += join_space ? " " : "\n";
      }
      out += body[i];
    }
    if (!body.empty()) {
      if (chomp == '+') {
        out += std::string(trailing + 1, '\n');
      } else if (chomp == 0) {
        out += "\n";
      }
    }
    return js::value(out);
  }

  std::string_view what_;
  std::vector<Line> lines_;
  size_t pos_ = 0;
  int tab_line_ = 0;
};

}  // namespace

Result<js::value> ParseYaml(std::string_view text, std::string_view what) {
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && (text[first] == '{' || text[first] == '[')) {
    auto v = json::Parse(text, what);
    if (v) return v;
    // Could still be a one-line YAML flow collection; fall through and let YAML decide.
  }
  Parser parser(text, what);
  return parser.ParseDocument();
}

}  // namespace moat::cli
