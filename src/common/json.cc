#include "common/json.h"

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <set>
#include <vector>

namespace moat::json {
namespace {

// A validating SAX handler that only detects duplicate keys; the tree is built afterwards by
// boost::json::parse, so the two passes agree on everything else.
struct DupKeyHandler {
  static constexpr std::size_t max_object_size = std::size_t(-1);
  static constexpr std::size_t max_array_size = std::size_t(-1);
  static constexpr std::size_t max_key_size = std::size_t(-1);
  static constexpr std::size_t max_string_size = std::size_t(-1);

  std::vector<std::set<std::string>> keys;
  std::string key_buf;
  std::string dup;

  bool on_document_begin(boost::system::error_code&) { return true; }
  bool on_document_end(boost::system::error_code&) { return true; }
  bool on_object_begin(boost::system::error_code&) {
    keys.emplace_back();
    return true;
  }
  bool on_object_end(std::size_t, boost::system::error_code&) {
    keys.pop_back();
    return true;
  }
  bool on_array_begin(boost::system::error_code&) { return true; }
  bool on_array_end(std::size_t, boost::system::error_code&) { return true; }
  bool on_key_part(boost::json::string_view s, std::size_t, boost::system::error_code&) {
    key_buf.append(s.data(), s.size());
    return true;
  }
  bool on_key(boost::json::string_view s, std::size_t, boost::system::error_code& ec) {
    key_buf.append(s.data(), s.size());
    if (!keys.back().insert(key_buf).second) {
      dup = key_buf;
      ec = boost::json::error::syntax;
      return false;
    }
    key_buf.clear();
    return true;
  }
  bool on_string_part(boost::json::string_view, std::size_t, boost::system::error_code&) { return true; }
  bool on_string(boost::json::string_view, std::size_t, boost::system::error_code&) { return true; }
  bool on_number_part(boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_int64(int64_t, boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_uint64(uint64_t, boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_double(double, boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_bool(bool, boost::system::error_code&) { return true; }
  bool on_null(boost::system::error_code&) { return true; }
  bool on_comment_part(boost::json::string_view, boost::system::error_code&) { return true; }
  bool on_comment(boost::json::string_view, boost::system::error_code&) { return true; }
};

const char* TypeName(const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::null: return "null";
    case boost::json::kind::bool_: return "a boolean";
    case boost::json::kind::int64:
    case boost::json::kind::uint64:
    case boost::json::kind::double_: return "a number";
    case boost::json::kind::string: return "a string";
    case boost::json::kind::array: return "an array";
    case boost::json::kind::object: return "an object";
  }
  return "unknown";
}

Error WrongType(std::string_view key, const char* want, const boost::json::value& got) {
  return InvalidArgument("field `" + std::string(key) + "` must be " + want + ", not " +
                         TypeName(got));
}

}  // namespace

Result<boost::json::value> Parse(std::string_view text, std::string_view what) {
  boost::json::parse_options opts;
  opts.max_depth = 64;
  {
    boost::json::basic_parser<DupKeyHandler> p(opts);
    boost::system::error_code ec;
    std::size_t n = p.write_some(false, text.data(), text.size(), ec);
    if (!ec && n != text.size()) ec = boost::json::error::extra_data;
    if (ec) {
      if (!p.handler().dup.empty()) {
        return InvalidArgument(std::string(what) + " has the key `" + p.handler().dup +
                               "` more than once");
      }
      return InvalidArgument(std::string(what) + " is not valid JSON: " + ec.message());
    }
  }
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(text, ec, {}, opts);
  if (ec) return InvalidArgument(std::string(what) + " is not valid JSON: " + ec.message());
  return v;
}

Result<boost::json::object> ParseObject(std::string_view text, std::string_view what) {
  MOAT_TRY(boost::json::value v, Parse(text, what));
  if (!v.is_object()) return InvalidArgument(std::string(what) + " must be a JSON object");
  return std::move(v.as_object());
}

Result<std::optional<std::string>> OptString(const boost::json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) return std::optional<std::string>();
  if (!it->value().is_string()) return WrongType(key, "a string", it->value());
  return std::optional<std::string>(std::string(it->value().as_string()));
}

Result<std::optional<int64_t>> OptInt(const boost::json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) return std::optional<int64_t>();
  const auto& v = it->value();
  if (v.is_int64()) return std::optional<int64_t>(v.as_int64());
  if (v.is_uint64() && v.as_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
    return std::optional<int64_t>(static_cast<int64_t>(v.as_uint64()));
  }
  // proto3 JSON allows int64 as a decimal string ("generation": "3").
  if (v.is_string()) {
    const auto& s = v.as_string();
    if (!s.empty() && s.size() <= 19) {
      int64_t r = 0;
      size_t i = s[0] == '-' ? 1 : 0;
      bool ok = i < s.size();
      for (; i < s.size(); ++i) {
        if (s[i] < '0' || s[i] > '9') ok = false;
        else r = r * 10 + (s[i] - '0');
      }
      if (ok) return std::optional<int64_t>(s[0] == '-' ? -r : r);
    }
  }
  if (v.is_double()) {
    double d = v.as_double();
    if (d == static_cast<double>(static_cast<int64_t>(d))) {
      return std::optional<int64_t>(static_cast<int64_t>(d));
    }
  }
  return WrongType(key, "an integer", v);
}

Result<std::optional<bool>> OptBool(const boost::json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) return std::optional<bool>();
  if (!it->value().is_bool()) return WrongType(key, "a boolean", it->value());
  return std::optional<bool>(it->value().as_bool());
}

Result<const boost::json::array*> OptArray(const boost::json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) return static_cast<const boost::json::array*>(nullptr);
  if (!it->value().is_array()) return WrongType(key, "an array", it->value());
  return &it->value().as_array();
}

Result<const boost::json::object*> OptObject(const boost::json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) {
    return static_cast<const boost::json::object*>(nullptr);
  }
  if (!it->value().is_object()) return WrongType(key, "an object", it->value());
  return &it->value().as_object();
}

std::string Serialize(const boost::json::value& v) { return boost::json::serialize(v); }

}  // namespace moat::json
