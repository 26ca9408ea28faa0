// ServiceSpec: what the data plane and the runtime need to know about one Cloud Run-style
// service, parsed from the service document the API stores (Google's run v2 `Service` JSON
// plus Moat's extensions, see docs/api.md).
//
// URLs: every service answers at `http://SERVICE-HASH.REGION.run.localhost:PORT`, where HASH
// is derived from the full name (stable across updates, different for a re-created service
// in another project or region) and PORT is the gateway's. The Host header alone picks the
// service, so only the host label is stored; URLs are formed with the gateway's current base.
//
// Thread-safety: value types and pure functions.
#pragma once

#include <boost/json/fwd.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"

namespace moat::state {

struct ServiceSpec {
  std::string name;  // projects/P/locations/R/services/S
  std::string project;
  std::string region;
  std::string service_id;
  std::string uid;
  int64_t generation = 0;
  std::string host;                    // SERVICE-HASH.REGION.run.localhost (lowercase)
  std::vector<std::string> hostnames;  // extra hostnames (custom domains), lowercase
  std::vector<std::string> custom_audiences;
  bool invoker_iam_disabled = false;
  std::string ingress = "INGRESS_TRAFFIC_ALL";
  std::string service_account;  // runtime identity (email); may be empty
  std::chrono::milliseconds timeout{300'000};
  // Cloud Run's scaling.minInstanceCount (service-level or template-level, the larger): ≥ 1
  // keeps a command-run service running when scale-to-zero is on.
  int64_t min_instances = 0;
  // Exactly one of these is set.
  std::string upstream;  // "http://host:port" when the service runs elsewhere
  std::vector<std::string> command;  // argv (containers[0].command + args) when Moat runs it
  std::vector<std::pair<std::string, std::string>> env;
  std::string working_dir;

  bool runs_command() const { return !command.empty(); }
};

// "SERVICE-HASH.REGION.run.localhost" for a service name's parts.
std::string HostFor(std::string_view project, std::string_view region, std::string_view service);
// Every URL of the service on a gateway reachable at `gateway_base` ("http://127.0.0.1:8080"
// → "http://S-HASH.R.run.localhost:8080"), the default URL first, then extra hostnames.
std::vector<std::string> UrlsFor(const ServiceSpec& spec, std::string_view gateway_base);
// The audiences the gateway accepts for the service: each URL with and without a trailing
// slash, plus the custom audiences (GOOGLE.md §1.4).
std::vector<std::string> AudiencesFor(const ServiceSpec& spec, std::string_view gateway_base);

// Splits "projects/P/locations/R/services/S". nullopt when it is not of that shape.
struct ServiceName {
  std::string project, region, service;
};
std::optional<ServiceName> ParseServiceName(std::string_view name);

// Parses a stored service document. Errors (INVALID_ARGUMENT) name the field.
Result<ServiceSpec> ParseServiceDoc(const boost::json::object& doc);
Result<ServiceSpec> ParseServiceDoc(std::string_view json_text);

}  // namespace moat::state
