#include "server/metadata_servers.h"

#include <boost/json.hpp>

#include "common/json.h"
#include "common/log.h"
#include "crypto/hash.h"
#include "http/router.h"

namespace moat::server {
namespace {

constexpr std::string_view kPrefix = "/computeMetadata/v1/";

http::Response Flavored(int status, std::string body,
                        std::string_view content_type = "application/text") {
  http::Response r;
  r.status = status;
  r.body = std::move(body);
  r.headers.Set("Metadata-Flavor", "Google");
  r.headers.Set("Content-Type", std::string(content_type));
  r.headers.Set("Server", "Metadata Server for VM");
  return r;
}

http::Response NotFoundPage() { return Flavored(404, "Not Found\n", "text/html; charset=UTF-8"); }

// A stable 12-digit "project number" for a project id (Moat has no numbering service).
std::string ProjectNumber(std::string_view project) {
  std::string digest = crypto::Sha256(project);
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(digest[i]);
  return std::to_string(100000000000ULL + v % 900000000000ULL);
}

struct MetadataContext {
  std::string service_name;
  std::string project;
  std::string region;
  std::string service_account;
  const identity::TokenIssuer* issuer;
  state::LiveState* live;
  const Clock* clock;
};

// The account the metadata server may hand tokens for: it must exist, be enabled and not be
// deleted — a disabled account gets no new tokens (GOOGLE.md §6.1).
Result<identity::TokenSubject> Subject(const MetadataContext& ctx, std::string_view requested) {
  if (ctx.service_account.empty()) {
    return moat::NotFound("the service has no service account; deploy it with --service-account");
  }
  if (requested != "default" && !http::IEquals(requested, ctx.service_account)) {
    return moat::NotFound("service account `" + std::string(requested) + "` is not on this instance");
  }
  auto dir = ctx.live->Current()->directory;
  const auto* sa = dir->FindServiceAccount(ctx.service_account);
  if (!sa || sa->delete_time) {
    return moat::NotFound("service account `" + ctx.service_account + "` does not exist");
  }
  if (sa->disabled) {
    return PermissionDenied("service account `" + ctx.service_account + "` is disabled");
  }
  return identity::TokenSubject{sa->email, sa->unique_id, identity::PrincipalKind::kServiceAccount};
}

http::Response Serve(const MetadataContext& ctx, const http::Request& req) {
  // GCE answers only requests that carry the flavor header and did not come through a proxy.
  if (!http::IEquals(req.headers.Get("Metadata-Flavor"), "Google")) {
    return Flavored(403,
                    "Your client does not have permission to get URL <code>" + req.path +
                        "</code> from this server. Missing Metadata-Flavor:Google header.\n",
                    "text/html; charset=UTF-8");
  }
  if (req.headers.Has("X-Forwarded-For")) {
    return Flavored(403, "Forbidden: requests through a proxy are refused.\n");
  }
  std::string_view path = req.path;
  if (path == "/" || path == "/computeMetadata/" || path == "/computeMetadata/v1" ||
      path == "/computeMetadata/v1/") {
    return Flavored(200, "computeMetadata/\n");
  }
  if (path.substr(0, kPrefix.size()) != kPrefix) return NotFoundPage();
  path.remove_prefix(kPrefix.size());

  if (path == "project/project-id") return Flavored(200, ctx.project);
  if (path == "project/numeric-project-id") return Flavored(200, ProjectNumber(ctx.project));
  if (path == "instance" || path == "instance/") return Flavored(200, "service-accounts/\nregion\nzone\n");
  if (path == "instance/region") {
    return Flavored(200, "projects/" + ProjectNumber(ctx.project) + "/regions/" + ctx.region);
  }
  if (path == "instance/zone") {
    return Flavored(200, "projects/" + ProjectNumber(ctx.project) + "/zones/" + ctx.region + "-1");
  }
  constexpr std::string_view kSa = "instance/service-accounts/";
  if (path.substr(0, kSa.size()) != kSa) return NotFoundPage();
  path.remove_prefix(kSa.size());
  if (path.empty()) {
    if (ctx.service_account.empty()) return Flavored(200, "");
    return Flavored(200, "default/\n" + ctx.service_account + "/\n");
  }
  auto slash = path.find('/');
  std::string_view who = path.substr(0, slash);
  std::string_view what = slash == std::string_view::npos ? "" : path.substr(slash + 1);
  auto subject = Subject(ctx, who);
  if (!subject) {
    int status = subject.error().code == Code::kPermissionDenied ? 403 : 404;
    return Flavored(status, subject.error().message + "\n");
  }
  if (what == "email") return Flavored(200, subject->email);
  if (what == "aliases") return Flavored(200, "default\n");
  if (what == "scopes") return Flavored(200, "https://www.googleapis.com/auth/cloud-platform\n");
  if (what.empty()) {
    boost::json::object info;
    info["aliases"] = boost::json::array{"default"};
    info["email"] = subject->email;
    info["scopes"] = boost::json::array{"https://www.googleapis.com/auth/cloud-platform"};
    return Flavored(200, json::Serialize(info), "application/json");
  }
  if (what == "identity") {
    std::string_view audience = req.QueryParam("audience");
    if (audience.empty()) {
      return Flavored(400, "non-empty audience parameter required\n");
    }
    std::string_view format = req.QueryParam("format");
    if (!format.empty() && format != "standard" && format != "full") {
      return Flavored(400, "format must be `standard` or `full`\n");
    }
    identity::IdTokenOptions opts;
    if (format == "full") {
      boost::json::object compute;
      compute["project_id"] = ctx.project;
      compute["project_number"] = ProjectNumber(ctx.project);
      compute["service"] = ctx.service_name;
      compute["region"] = ctx.region;
      boost::json::object google;
      google["compute_engine"] = std::move(compute);
      opts.extra_claims["google"] = std::move(google);
    }
    auto token = ctx.issuer->MintIdToken(*subject, audience, opts);
    if (!token) return Flavored(503, token.error().message + "\n");
    return Flavored(200, token->token);
  }
  if (what == "token") {
    std::vector<std::string> scopes;
    std::string_view s = req.QueryParam("scopes");
    while (!s.empty()) {
      auto comma = s.find(',');
      if (comma != 0) scopes.emplace_back(s.substr(0, comma));
      if (comma == std::string_view::npos) break;
      s.remove_prefix(comma + 1);
    }
    if (scopes.empty()) scopes.emplace_back("https://www.googleapis.com/auth/cloud-platform");
    auto token = ctx.issuer->MintAccessToken(*subject, scopes);
    if (!token) return Flavored(503, token.error().message + "\n");
    boost::json::object body;
    body["access_token"] = token->token;
    body["expires_in"] = std::chrono::duration_cast<std::chrono::seconds>(
                             token->expire_time - ctx.clock->Now())
                             .count();
    body["token_type"] = "Bearer";
    return Flavored(200, json::Serialize(body), "application/json");
  }
  return NotFoundPage();
}

}  // namespace

Result<std::string> MetadataServers::Ensure(const std::string& service_name,
                                            const std::string& project,
                                            const std::string& service_account) {
  auto it = servers_.find(service_name);
  if (it != servers_.end()) {
    if (it->second.service_account == service_account) return it->second.address;
    it->second.server->Stop();
    servers_.erase(it);
  }
  auto ctx = std::make_shared<MetadataContext>();
  ctx->service_name = service_name;
  ctx->project = project;
  auto parts = state::ParseServiceName(service_name);
  ctx->region = parts ? parts->region : "";
  ctx->service_account = service_account;
  ctx->issuer = &issuer_;
  ctx->live = &live_;
  ctx->clock = &clock_;
  auto router = std::make_shared<http::Router>();
  MOAT_CHECK_OK(router->Add("GET", "/{path=**}",
                            [ctx](const http::Request& req) { return Serve(*ctx, req); }));
  MOAT_CHECK_OK(router->Add("GET", "/", [ctx](const http::Request& req) { return Serve(*ctx, req); }));
  http::RouterOptions ropts;
  ropts.name = "metadata";
  ropts.access_log = false;
  http::ServerOptions sopts;
  sopts.host = "127.0.0.1";
  sopts.port = 0;
  sopts.threads = 1;
  sopts.name = "metadata";
  auto server = std::make_unique<http::Server>(sopts, http::MakeRouterHandler(router, ropts));
  MOAT_CHECK_OK(server->Start());
  std::string address = "127.0.0.1:" + std::to_string(server->port());
  servers_[service_name] = Entry{service_account, address, std::move(server)};
  return address;
}

void MetadataServers::Remove(const std::string& service_name) {
  auto it = servers_.find(service_name);
  if (it == servers_.end()) return;
  it->second.server->Stop();
  servers_.erase(it);
}

void MetadataServers::StopAll() {
  for (auto& [name, entry] : servers_) entry.server->Stop();
  servers_.clear();
}

}  // namespace moat::server
