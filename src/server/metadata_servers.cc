#include "server/metadata_servers.h"

#include <boost/json.hpp>

#include "common/json.h"
#include "common/log.h"
#include "crypto/hash.h"
#include "http/router.h"
#include "identity/metadata_server.h"

namespace moat::server {
namespace {

// A stable 12-digit "project number" for a project id (Moat has no numbering service).
std::string ProjectNumber(std::string_view project) {
  std::string digest = crypto::Sha256(project);
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(digest[i]);
  return std::to_string(100000000000ULL + v % 900000000000ULL);
}

// Adapts the identity module's metadata logic to the router.
http::Response Serve(const identity::MetadataHandler& handler, const http::Request& req) {
  std::map<std::string, std::string> query;
  for (const auto& [k, v] : req.query) query.emplace(k, v);
  std::vector<std::pair<std::string, std::string>> headers;
  for (const auto& f : req.headers) headers.emplace_back(f.name, f.value);
  identity::HttpReply reply = handler.Handle(req.method, req.path, query, headers);
  http::Response r;
  r.status = reply.status;
  r.body = std::move(reply.body);
  for (auto& [k, v] : reply.headers) r.headers.Set(k, std::move(v));
  return r;
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
  auto parts = state::ParseServiceName(service_name);
  identity::MetadataServerOptions mopts;
  mopts.project_id = project;
  mopts.numeric_project_id = ProjectNumber(project);
  mopts.region = parts ? parts->region : "";
  mopts.zone = mopts.region.empty() ? "" : mopts.region + "-1";
  state::LiveState* live = &live_;
  auto handler = std::make_shared<identity::MetadataHandler>(
      issuer_, [live] { return live->Current()->directory; },
      [service_account] { return service_account; }, std::move(mopts));
  auto router = std::make_shared<http::Router>();
  for (const char* method : {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}) {
    MOAT_CHECK_OK(router->Add(method, "/{path=**}", [handler](const http::Request& req) {
      return Serve(*handler, req);
    }));
    MOAT_CHECK_OK(router->Add(method, "/", [handler](const http::Request& req) {
      return Serve(*handler, req);
    }));
  }
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
