#include "identity/metadata_server.h"

#include <boost/json.hpp>

#include "common/json.h"
#include "identity/token_issuer.h"

namespace moat::identity {
namespace {

constexpr std::string_view kBase = "/computeMetadata/v1";

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

const std::string* Header(const std::vector<std::pair<std::string, std::string>>& headers,
                          std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (IEquals(k, name)) return &v;
  }
  return nullptr;
}

HttpReply Reply(int status, std::string body, std::string_view content_type = "application/text") {
  HttpReply r;
  r.status = status;
  r.headers = {{"Metadata-Flavor", "Google"}, {"Content-Type", std::string(content_type)}};
  r.body = std::move(body);
  return r;
}

HttpReply Json(const boost::json::value& v) {
  return Reply(200, json::Serialize(v), "application/json");
}

HttpReply NotFound(std::string_view path) {
  return Reply(404, "The requested URL " + std::string(path) + " was not found on this server.\n",
               "text/html; charset=UTF-8");
}

int HexVal(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Node sends the audience raw, others percent-encode it; decode only what looks encoded.
std::string MaybePercentDecode(const std::string& s) {
  if (s.find("://") != std::string::npos || s.find('%') == std::string::npos) return s;
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && HexVal(s[i + 1]) >= 0 && HexVal(s[i + 2]) >= 0) {
      out += static_cast<char>(HexVal(s[i + 1]) * 16 + HexVal(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::vector<std::string> SplitComma(std::string_view s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string_view::npos) j = s.size();
    if (j > i) out.emplace_back(s.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

}  // namespace

MetadataHandler::MetadataHandler(const TokenIssuer& issuer, DirectoryProvider directory,
                                 std::function<std::string()> service_account_email,
                                 MetadataServerOptions options)
    : issuer_(issuer),
      directory_(std::move(directory)),
      service_account_email_(std::move(service_account_email)),
      options_(std::move(options)) {
  if (options_.numeric_project_id.empty()) options_.numeric_project_id = "0";
}

HttpReply MetadataHandler::Handle(
    std::string_view method, std::string_view path, const std::map<std::string, std::string>& query,
    const std::vector<std::pair<std::string, std::string>>& headers) const {
  if (Header(headers, "X-Forwarded-For") != nullptr) {
    return Reply(403,
                 "Your client does not have permission to get URL " + std::string(path) +
                     " from this server. Requests with X-Forwarded-For are refused.\n",
                 "text/html; charset=UTF-8");
  }
  // The root answers pings without the header too (GCE does; Python's ping sends it anyway).
  const bool root = path.empty() || path == "/";
  const std::string* flavor = Header(headers, "Metadata-Flavor");
  if (!root && (flavor == nullptr || *flavor != "Google")) {
    return Reply(403,
                 "Your client does not have permission to get URL <code>" + std::string(path) +
                     "</code> from this server. Missing Metadata-Flavor:Google header.\n",
                 "text/html; charset=UTF-8");
  }
  if (method != "GET" && method != "HEAD") return Reply(405, "Method not allowed.\n");
  if (root) return Reply(200, "computeMetadata/\n");
  if (!path.starts_with(kBase)) return NotFound(path);
  std::string_view rest = path.substr(kBase.size());
  if (rest.empty() || rest == "/") return Reply(200, "instance/\nproject/\n");
  rest.remove_prefix(1);  // '/'
  if (rest == "instance" || rest == "instance/") {
    std::string listing = "service-accounts/\n";
    if (!options_.region.empty()) listing += "region\n";
    if (!options_.zone.empty()) listing += "zone\n";
    return Reply(200, listing);
  }
  if (rest == "project" || rest == "project/")
    return Reply(200, "numeric-project-id\nproject-id\n");
  if (rest == "project/project-id") return Reply(200, options_.project_id);
  if (rest == "project/numeric-project-id") return Reply(200, options_.numeric_project_id);
  if (rest == "instance/region" && !options_.region.empty()) {
    return Reply(200, "projects/" + options_.numeric_project_id + "/regions/" + options_.region);
  }
  if (rest == "instance/zone" && !options_.zone.empty()) {
    return Reply(200, "projects/" + options_.numeric_project_id + "/zones/" + options_.zone);
  }
  constexpr std::string_view kSas = "instance/service-accounts";
  if (rest.starts_with(kSas)) {
    std::string_view sub = rest.substr(kSas.size());
    const std::string email = service_account_email_ ? service_account_email_() : "";
    if (sub.empty() || sub == "/") {
      if (email.empty()) return Reply(200, "");
      return Reply(200, "default/\n" + email + "/\n");
    }
    if (sub[0] != '/') return NotFound(path);
    sub.remove_prefix(1);
    size_t slash = sub.find('/');
    std::string_view sa = sub.substr(0, slash);
    std::string_view tail = slash == std::string_view::npos ? "" : sub.substr(slash + 1);
    if (slash == std::string_view::npos && query.count("recursive") == 0) {
      // ".../default" without a slash: GCE redirects; answer like ".../default/".
      tail = "";
    }
    if (email.empty() || (sa != "default" && !IEquals(sa, email))) return NotFound(path);
    return ServiceAccountPath(sa, tail, query);
  }
  return NotFound(path);
}

HttpReply MetadataHandler::ServiceAccountPath(
    std::string_view sa, std::string_view rest,
    const std::map<std::string, std::string>& query) const {
  (void)sa;
  const std::string email = service_account_email_();
  std::string scopes_text;
  for (const auto& s : options_.default_scopes) scopes_text += s + "\n";
  if (rest.empty()) {
    auto rec = query.find("recursive");
    if (rec != query.end() && IEquals(rec->second, "true")) {
      boost::json::object o;
      o["aliases"] = boost::json::array{"default"};
      o["email"] = email;
      boost::json::array scopes;
      for (const auto& s : options_.default_scopes) scopes.emplace_back(s);
      o["scopes"] = std::move(scopes);
      return Json(o);
    }
    return Reply(200, "aliases\nemail\nidentity\nscopes\ntoken\n");
  }
  if (rest == "email") return Reply(200, email);
  if (rest == "aliases") return Reply(200, "default\n");
  if (rest == "scopes") return Reply(200, scopes_text);
  if (rest != "identity" && rest != "token") return NotFound(rest);

  auto dir = directory_ ? directory_() : nullptr;
  const ServiceAccountRecord* rec = dir ? dir->FindServiceAccount(email) : nullptr;
  if (rec == nullptr || rec->delete_time) {
    return Reply(404, "service account " + email + " not found\n");
  }
  if (rec->disabled) return Reply(403, "service account " + email + " is disabled\n");
  TokenSubject subject{rec->email, rec->unique_id, PrincipalKind::kServiceAccount};

  if (rest == "identity") {
    auto aud = query.find("audience");
    if (aud == query.end() || aud->second.empty()) {
      return Reply(400, "non-empty audience parameter required\n");
    }
    IdTokenOptions opts;
    opts.include_email = true;
    auto format = query.find("format");
    if (format != query.end() && format->second != "standard" && format->second != "full") {
      return Reply(400, "format must be one of: standard, full\n");
    }
    if (format != query.end() && format->second == "full") {
      boost::json::object ce;
      ce["project_id"] = options_.project_id;
      ce["project_number"] = options_.numeric_project_id;
      if (!options_.zone.empty()) ce["zone"] = options_.zone;
      boost::json::object google;
      google["compute_engine"] = std::move(ce);
      opts.extra_claims["google"] = std::move(google);
    }
    auto token = issuer_.MintIdToken(subject, MaybePercentDecode(aud->second), opts);
    if (!token) return Reply(503, "token service unavailable\n");
    return Reply(200, token->token);
  }
  std::vector<std::string> scopes = options_.default_scopes;
  if (auto sc = query.find("scopes"); sc != query.end() && !sc->second.empty()) {
    scopes = SplitComma(MaybePercentDecode(sc->second));
  }
  auto token = issuer_.MintAccessToken(subject, scopes);
  if (!token) return Reply(503, "token service unavailable\n");
  boost::json::object o;
  o["access_token"] = token->token;
  o["expires_in"] =
      std::chrono::duration_cast<Seconds>(token->expire_time - token->issue_time).count();
  o["token_type"] = "Bearer";
  return Json(o);
}

}  // namespace moat::identity
