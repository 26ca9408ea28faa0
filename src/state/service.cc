#include "state/service.h"

#include <algorithm>

#include <boost/json.hpp>

#include "common/json.h"
#include "common/time.h"
#include "crypto/hash.h"

namespace moat::state {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// "http://127.0.0.1:8080" → ":8080"; "http://gw.example.com" → "".
std::string PortSuffix(std::string_view base) {
  auto scheme = base.find("://");
  std::string_view rest = scheme == std::string_view::npos ? base : base.substr(scheme + 3);
  rest = rest.substr(0, rest.find('/'));
  auto colon = rest.rfind(':');
  if (colon == std::string_view::npos || rest.find(']') != std::string_view::npos) return "";
  return std::string(rest.substr(colon));
}

Result<std::vector<std::string>> StringArray(const boost::json::object& o, std::string_view key) {
  std::vector<std::string> out;
  MOAT_TRY(const boost::json::array* arr, json::OptArray(o, key));
  if (!arr) return out;
  for (const auto& v : *arr) {
    if (!v.is_string()) {
      return InvalidArgument("field `" + std::string(key) + "` must be a list of strings");
    }
    out.emplace_back(v.as_string());
  }
  return out;
}

}  // namespace

std::string HostFor(std::string_view project, std::string_view region, std::string_view service) {
  std::string full = std::string(project) + "/" + std::string(region) + "/" + std::string(service);
  std::string hex = crypto::HexEncode(crypto::Sha256(full)).substr(0, 10);
  return Lower(service) + "-" + hex + "." + Lower(region) + ".run.localhost";
}

std::vector<std::string> UrlsFor(const ServiceSpec& spec, std::string_view gateway_base) {
  std::string port = PortSuffix(gateway_base);
  std::vector<std::string> urls;
  urls.push_back("http://" + spec.host + port);
  for (const auto& h : spec.hostnames) urls.push_back("http://" + h + port);
  return urls;
}

std::vector<std::string> AudiencesFor(const ServiceSpec& spec, std::string_view gateway_base) {
  std::vector<std::string> out;
  for (auto& url : UrlsFor(spec, gateway_base)) {
    out.push_back(url + "/");
    out.push_back(std::move(url));
  }
  for (const auto& a : spec.custom_audiences) out.push_back(a);
  return out;
}

std::optional<ServiceName> ParseServiceName(std::string_view name) {
  // projects/P/locations/R/services/S
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t slash = name.find('/', start);
    parts.push_back(name.substr(start, slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  if (parts.size() != 6 || parts[0] != "projects" || parts[2] != "locations" ||
      parts[4] != "services") {
    return std::nullopt;
  }
  for (size_t i = 1; i < 6; i += 2) {
    if (parts[i].empty()) return std::nullopt;
  }
  return ServiceName{std::string(parts[1]), std::string(parts[3]), std::string(parts[5])};
}

Result<ServiceSpec> ParseServiceDoc(const boost::json::object& doc) {
  ServiceSpec s;
  MOAT_TRY(auto name, json::OptString(doc, "name"));
  if (!name) return InvalidArgument("service document has no `name`");
  auto parsed = ParseServiceName(*name);
  if (!parsed) return InvalidArgument("service name `" + *name + "` is not a service name");
  s.name = *name;
  s.project = parsed->project;
  s.region = parsed->region;
  s.service_id = parsed->service;
  s.host = HostFor(s.project, s.region, s.service_id);
  MOAT_TRY(auto uid, json::OptString(doc, "uid"));
  s.uid = uid.value_or("");
  MOAT_TRY(auto generation, json::OptInt(doc, "generation"));
  s.generation = generation.value_or(0);
  MOAT_TRY(auto disabled, json::OptBool(doc, "invokerIamDisabled"));
  s.invoker_iam_disabled = disabled.value_or(false);
  MOAT_TRY(auto ingress, json::OptString(doc, "ingress"));
  if (ingress && !ingress->empty()) s.ingress = *ingress;
  MOAT_TRY(s.custom_audiences, StringArray(doc, "customAudiences"));
  MOAT_TRY(auto hostnames, StringArray(doc, "hostnames"));
  for (auto& h : hostnames) s.hostnames.push_back(Lower(h));

  MOAT_TRY(const boost::json::object* tmpl, json::OptObject(doc, "template"));
  if (!tmpl) return InvalidArgument("service `" + s.name + "` has no `template`");
  MOAT_TRY(auto sa, json::OptString(*tmpl, "serviceAccount"));
  s.service_account = Lower(sa.value_or(""));
  MOAT_TRY(auto timeout, json::OptString(*tmpl, "timeout"));
  if (timeout) {
    auto d = ParseDuration(*timeout);
    if (!d || *d <= std::chrono::nanoseconds(0)) {
      return InvalidArgument("field `template.timeout` must be a duration like `300s`");
    }
    s.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
  }
  for (const boost::json::object* holder : {&doc, tmpl}) {
    MOAT_TRY(const boost::json::object* scaling, json::OptObject(*holder, "scaling"));
    if (!scaling) continue;
    MOAT_TRY(auto min, json::OptInt(*scaling, "minInstanceCount"));
    if (min && *min < 0) {
      return InvalidArgument("field `scaling.minInstanceCount` must not be negative");
    }
    if (min) s.min_instances = std::max(s.min_instances, *min);
  }
  MOAT_TRY(auto upstream, json::OptString(*tmpl, "upstream"));
  s.upstream = upstream.value_or("");
  MOAT_TRY(const boost::json::array* containers, json::OptArray(*tmpl, "containers"));
  if (containers && !containers->empty()) {
    if (!(*containers)[0].is_object()) {
      return InvalidArgument("field `template.containers[0]` must be an object");
    }
    const auto& c = (*containers)[0].as_object();
    MOAT_TRY(auto command, StringArray(c, "command"));
    MOAT_TRY(auto args, StringArray(c, "args"));
    s.command = std::move(command);
    for (auto& a : args) s.command.push_back(std::move(a));
    MOAT_TRY(auto wd, json::OptString(c, "workingDir"));
    s.working_dir = wd.value_or("");
    MOAT_TRY(const boost::json::array* env, json::OptArray(c, "env"));
    if (env) {
      for (const auto& e : *env) {
        if (!e.is_object()) return InvalidArgument("field `env` must hold objects");
        MOAT_TRY(auto n, json::OptString(e.as_object(), "name"));
        MOAT_TRY(auto v, json::OptString(e.as_object(), "value"));
        if (!n || n->empty()) return InvalidArgument("every `env` entry needs a `name`");
        s.env.emplace_back(*n, v.value_or(""));
      }
    }
  }
  if (s.upstream.empty() == s.command.empty()) {
    return InvalidArgument("service `" + s.name +
                           "` needs exactly one of `template.upstream` (a URL Moat fronts) or "
                           "`template.containers[0].command` (a command Moat runs)");
  }
  return s;
}

Result<ServiceSpec> ParseServiceDoc(std::string_view json_text) {
  MOAT_TRY(auto obj, json::ParseObject(json_text, "service document"));
  return ParseServiceDoc(obj);
}

}  // namespace moat::state
