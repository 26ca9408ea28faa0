#include "api/run_common.h"

#include <boost/json.hpp>
#include <charconv>

#include "common/json.h"
#include "common/time.h"
#include "store/store.h"

namespace moat::api {

Status RejectUnknownFields(const boost::json::object& o,
                           std::initializer_list<std::string_view> known, std::string_view path) {
  for (const auto& kv : o) {
    bool ok = false;
    for (std::string_view k : known) {
      if (kv.key() == k) {
        ok = true;
        break;
      }
    }
    if (!ok) {
      std::string msg =
          "Invalid JSON payload received. Unknown name \"" + std::string(kv.key()) + "\"";
      if (!path.empty()) msg += " at '" + std::string(path) + "'";
      return InvalidArgument(msg + ": Cannot find field.");
    }
  }
  return Ok();
}

std::vector<std::string> SplitMask(std::string_view mask) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= mask.size()) {
    size_t comma = mask.find(',', start);
    std::string_view part = mask.substr(
        start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    while (!part.empty() && (part.front() == ' ' || part.front() == '\t')) part.remove_prefix(1);
    while (!part.empty() && (part.back() == ' ' || part.back() == '\t')) part.remove_suffix(1);
    if (!part.empty()) out.emplace_back(part);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

std::string ProjectOf(std::string_view resource) {
  constexpr std::string_view kPrefix = "projects/";
  if (!resource.starts_with(kPrefix) || resource.size() == kPrefix.size()) return {};
  size_t end = resource.find('/', kPrefix.size());
  return std::string(resource.substr(0, end));
}

Result<size_t> ParseOffsetToken(std::string_view token, size_t size) {
  if (token.empty()) return size_t{0};
  size_t offset = 0;
  auto [p, ec] = std::from_chars(token.data(), token.data() + token.size(), offset);
  if (ec != std::errc() || p != token.data() + token.size() || offset > size) {
    return InvalidArgument("page token `" + std::string(token) + "` is not valid");
  }
  return offset;
}

Result<int> PageSizeParam(std::string_view text, int default_size, int max_size) {
  if (text.empty()) return default_size;
  int v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || v < 0) {
    return InvalidArgument("query parameter `pageSize` must be a non-negative integer");
  }
  if (v == 0) return default_size;
  return v > max_size ? max_size : v;
}

Status EnsureProject(store::Transaction& tx, std::string_view project_name, TimePoint now) {
  MOAT_TRY(auto project, tx.Get(store::Collection::kProjects, project_name));
  if (project) return Ok();
  boost::json::object p;
  p["projectId"] = std::string(project_name.substr(sizeof("projects/") - 1));
  p["createTime"] = FormatRfc3339(now);
  MOAT_CHECK_OK(tx.Put(store::Collection::kProjects, project_name, json::Serialize(p)));
  return Ok();
}

}  // namespace moat::api
