// Cloud Run Admin API v2: services and their long-running operations (GOOGLE.md §4.2,
// docs/api.md).
//
// The stored document (services collection, key = the service name, parent
// "projects/P/locations/L") is Google's v2 Service JSON as the caller wrote it, minus the
// output-only fields, plus the output fields Moat keeps (uid, generation, createTime,
// updateTime, creator, lastModifier, latestReadyRevision, latestCreatedRevision). Fields
// that depend on the store or the gateway (etag, uri, urls, reconciling, terminalCondition,
// observedGeneration) are added when a service is answered, so a gateway that moved to
// another port is reflected at once. Every mutation answers a done Operation, stored in the
// settings collection under "operations/NAME" (parent "operations/projects/P/locations/L") so
// …/operations/ID (get, delete, :wait) and …/operations (list) find it again. Operation ids are
// time-ordered UUIDs (version 7), so a location's operations list oldest first; each new
// operation prunes up to kPruneBatch of its location's oldest operations that are older than
// kOperationRetention (7 days): bounded work per write, and a busy location never accumulates.
#include <boost/json.hpp>

#include "api/handler_util.h"
#include "api/iam_common.h"
#include "api/routes.h"
#include "api/run_common.h"
#include "common/json.h"
#include "common/random.h"
#include "common/time.h"
#include "iam/member.h"
#include "identity/directory.h"
#include "state/service.h"

namespace moat::api {
namespace {

namespace bj = boost::json;
using store::Collection;

constexpr std::string_view kServiceType = "type.googleapis.com/google.cloud.run.v2.Service";
constexpr std::string_view kOperationPrefix = "operations/";
constexpr auto kOperationRetention = std::chrono::hours(24 * 7);
constexpr int kPruneBatch = 50;

// Fields of google.cloud.run.v2.Service (plus Moat's `hostnames`) a caller may write.
constexpr std::string_view kWritable[] = {"description",
                                          "labels",
                                          "annotations",
                                          "client",
                                          "clientVersion",
                                          "ingress",
                                          "launchStage",
                                          "binaryAuthorization",
                                          "template",
                                          "traffic",
                                          "scaling",
                                          "invokerIamDisabled",
                                          "defaultUriDisabled",
                                          "customAudiences",
                                          "hostnames",
                                          "iapEnabled",
                                          "multiRegionSettings",
                                          "buildConfig",
                                          "threatDetectionEnabled",
                                          "nodeSelector"};
// Output-only fields: accepted in a request (clients send back what they read) and ignored.
constexpr std::string_view kOutputOnly[] = {"name",
                                            "uid",
                                            "generation",
                                            "createTime",
                                            "updateTime",
                                            "deleteTime",
                                            "expireTime",
                                            "creator",
                                            "lastModifier",
                                            "observedGeneration",
                                            "terminalCondition",
                                            "conditions",
                                            "latestReadyRevision",
                                            "latestCreatedRevision",
                                            "trafficStatuses",
                                            "uri",
                                            "urls",
                                            "reconciling",
                                            "etag",
                                            "satisfiesPzs"};
constexpr std::string_view kTemplateFields[] = {"revision",
                                                "labels",
                                                "annotations",
                                                "scaling",
                                                "vpcAccess",
                                                "timeout",
                                                "serviceAccount",
                                                "containers",
                                                "volumes",
                                                "executionEnvironment",
                                                "encryptionKey",
                                                "maxInstanceRequestConcurrency",
                                                "serviceMesh",
                                                "sessionAffinity",
                                                "healthCheckDisabled",
                                                "nodeSelector",
                                                "gpuZonalRedundancyDisabled",
                                                "encryptionKeyRevocationAction",
                                                "encryptionKeyShutdownDuration",
                                                "upstream"};
constexpr std::string_view kIngress[] = {
    "INGRESS_TRAFFIC_UNSPECIFIED", "INGRESS_TRAFFIC_ALL", "INGRESS_TRAFFIC_INTERNAL_ONLY",
    "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER", "INGRESS_TRAFFIC_NONE"};
constexpr std::string_view kReservedAnnotationPrefixes[] = {
    "run.googleapis.com", "cloud.googleapis.com", "serving.knative.dev", "autoscaling.knative.dev"};

template <size_t N>
bool In(const std::string_view (&list)[N], std::string_view v) {
  for (auto x : list) {
    if (x == v) return true;
  }
  return false;
}

Status CheckSegment(std::string_view value, std::string_view what) {
  if (value.empty() || value.find('/') != std::string_view::npos ||
      value.find('\0') != std::string_view::npos) {
    return InvalidArgument(std::string(what) + " `" + std::string(value) + "` is not valid");
  }
  return Ok();
}

// Google: "must begin with letter, and cannot end with hyphen; must contain fewer than 50
// characters"; lowercase letters, digits and hyphens.
Status CheckServiceId(std::string_view id) {
  bool ok =
      !id.empty() && id.size() < 50 && id.front() >= 'a' && id.front() <= 'z' && id.back() != '-';
  for (char c : id) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) ok = false;
  }
  if (!ok) {
    return InvalidArgument("service id `" + std::string(id) +
                           "` is not valid: it must use only lowercase letters, digits and "
                           "hyphens, begin with a letter, not end with a hyphen, and contain "
                           "fewer than 50 characters");
  }
  return Ok();
}

std::string ParentOf(const http::Request& req) {
  return "projects/" + std::string(req.PathVar("project")) + "/locations/" +
         std::string(req.PathVar("location"));
}

Result<std::string> ServiceNameOf(const http::Request& req) {
  MOAT_CHECK_OK(CheckSegment(req.PathVar("project"), "project"));
  MOAT_CHECK_OK(CheckSegment(req.PathVar("location"), "location"));
  MOAT_CHECK_OK(CheckSegment(req.PathVar("service"), "service"));
  return ParentOf(req) + "/services/" + std::string(req.PathVar("service"));
}

Error ServiceNotFound(std::string_view name) {
  return NotFound("Resource '" + std::string(name) + "' was not found");
}

// The request body without output-only fields; unknown fields are INVALID_ARGUMENT.
Result<bj::object> WritableFields(const bj::object& body) {
  bj::object out;
  for (const auto& kv : body) {
    if (In(kWritable, kv.key())) {
      if (!kv.value().is_null()) out[kv.key()] = kv.value();
    } else if (!In(kOutputOnly, kv.key())) {
      return InvalidArgument("Invalid JSON payload received. Unknown name \"" +
                             std::string(kv.key()) + "\" at 'service': Cannot find field.");
    }
  }
  return out;
}

Status CheckStringMap(const bj::object& doc, std::string_view key) {
  MOAT_TRY(const bj::object* m, json::OptObject(doc, key));
  if (!m) return Ok();
  for (const auto& kv : *m) {
    if (!kv.value().is_string()) {
      return InvalidArgument("field `" + std::string(key) + "." + std::string(kv.key()) +
                             "` must be a string");
    }
  }
  return Ok();
}

// What ParseServiceDoc does not check: Google's limits on the writable fields.
Status ValidateService(const bj::object& doc) {
  MOAT_TRY(auto description, json::OptString(doc, "description"));
  if (description && description->size() > 512) {
    return InvalidArgument("field `description` is longer than 512 characters");
  }
  MOAT_CHECK_OK(CheckStringMap(doc, "labels"));
  MOAT_CHECK_OK(CheckStringMap(doc, "annotations"));
  MOAT_TRY(const bj::object* a, json::OptObject(doc, "annotations"));
  if (a) {
    for (const auto& kv : *a) {
      std::string_view key = kv.key();
      std::string_view prefix = key.substr(0, key.find('/'));
      if (key.find('/') != std::string_view::npos && In(kReservedAnnotationPrefixes, prefix)) {
        return InvalidArgument("annotation `" + std::string(key) + "` is not allowed: `" +
                               std::string(prefix) + "` annotations are reserved");
      }
    }
  }
  MOAT_TRY(auto ingress, json::OptString(doc, "ingress"));
  if (ingress && !In(kIngress, *ingress)) {
    return InvalidArgument("field `ingress` has invalid value `" + *ingress + "`");
  }
  MOAT_TRY(const bj::array* audiences, json::OptArray(doc, "customAudiences"));
  if (audiences && json::Serialize(*audiences).size() > 32768) {
    return InvalidArgument("field `customAudiences` is longer than 32768 characters as JSON");
  }
  MOAT_TRY(const bj::object* tmpl, json::OptObject(doc, "template"));
  if (!tmpl) return InvalidArgument("field `template` is required");
  for (const auto& kv : *tmpl) {
    if (!In(kTemplateFields, kv.key())) {
      return InvalidArgument("Invalid JSON payload received. Unknown name \"" +
                             std::string(kv.key()) +
                             "\" at 'service.template': Cannot find field.");
    }
  }
  MOAT_TRY(auto upstream, json::OptString(*tmpl, "upstream"));
  if (upstream && !upstream->empty()) {
    std::string_view u = *upstream;
    bool ok =
        (u.starts_with("http://") && u.size() > 7) || (u.starts_with("https://") && u.size() > 8);
    if (!ok) {
      return InvalidArgument("field `template.upstream` must be an http:// or https:// URL");
    }
  }
  MOAT_TRY(auto sa, json::OptString(*tmpl, "serviceAccount"));
  if (sa && !sa->empty() && !iam::IsPlausibleEmail(*sa)) {
    return InvalidArgument("field `template.serviceAccount` must be a service account email");
  }
  return Ok();
}

// The runtime service account: it must exist and be enabled, and the caller needs
// iam.serviceAccounts.actAs on it (GOOGLE.md §2; Owner and Editor have it, run.admin not).
Status CheckActAs(const Scope& s, std::string_view service_project, std::string_view email_in) {
  std::string email = iam::AsciiLower(email_in);
  constexpr std::string_view kSuffix = ".iam.gserviceaccount.com";
  std::string project(service_project);
  size_t at = email.find('@');
  if (at != std::string::npos && email.ends_with(kSuffix)) {
    project = email.substr(at + 1, email.size() - kSuffix.size() - at - 1);
  }
  const identity::ServiceAccountRecord* rec =
      s.view().directory ? s.view().directory->FindServiceAccount(email) : nullptr;
  if (rec && rec->delete_time) rec = nullptr;
  std::string resource = rec ? rec->Name() : "projects/" + project + "/serviceAccounts/" + email;
  MOAT_CHECK_OK(s.Require(resource, "iam.serviceAccounts.actAs"));
  if (!rec) return InvalidArgument("service account `" + email + "` does not exist");
  if (rec->disabled) return InvalidArgument("service account `" + email + "` is disabled");
  return Ok();
}

std::string RevisionName(std::string_view name, std::string_view service_id, int64_t gen) {
  char num[16];
  std::snprintf(num, sizeof num, "%05lld", static_cast<long long>(gen));
  std::string suffix;
  for (int i = 0; i < 3; ++i) suffix.push_back(static_cast<char>('a' + RandomU64() % 26));
  return std::string(name) + "/revisions/" + std::string(service_id) + "-" + num + "-" + suffix;
}

// Fills the output fields Moat stores.
void Stamp(bj::object& doc, const std::string& name, std::string_view service_id,
           const std::string& uid, int64_t generation, const std::string& create_time,
           const Scope& s) {
  std::string now = FormatRfc3339(s.now());
  doc["name"] = name;
  doc["uid"] = uid;
  doc["generation"] = std::to_string(generation);
  doc["createTime"] = create_time.empty() ? now : create_time;
  doc["updateTime"] = now;
  if (!doc.contains("creator")) doc["creator"] = s.caller().principal.email;
  doc["lastModifier"] = s.caller().principal.email;
  std::string revision = RevisionName(name, service_id, generation);
  doc["latestReadyRevision"] = revision;
  doc["latestCreatedRevision"] = revision;
}

// The Service as answered: the stored fields plus etag, uri, urls and the status fields.
Result<bj::object> ServiceJson(const Env& env, std::string_view data, std::string_view etag) {
  MOAT_TRY(bj::object doc, json::ParseObject(data, "service document"));
  MOAT_TRY(state::ServiceSpec spec, state::ParseServiceDoc(doc));
  std::vector<std::string> urls = state::UrlsFor(spec, env.config.gateway_base);
  bj::object out;
  for (std::string_view k : {"name", "description", "uid", "generation", "labels", "annotations",
                             "createTime", "updateTime", "creator", "lastModifier"}) {
    if (auto* v = doc.if_contains(k)) out[k] = *v;
  }
  for (const auto& kv : doc) {
    if (!out.contains(kv.key())) out[kv.key()] = kv.value();
  }
  out["observedGeneration"] = doc.contains("generation") ? doc["generation"] : bj::value("0");
  bj::object cond;
  cond["type"] = "Ready";
  cond["state"] = "CONDITION_SUCCEEDED";
  if (auto* t = doc.if_contains("updateTime")) cond["lastTransitionTime"] = *t;
  out["terminalCondition"] = std::move(cond);
  out["uri"] = urls.front();
  bj::array arr;
  for (auto& u : urls) arr.emplace_back(u);
  out["urls"] = std::move(arr);
  out["reconciling"] = false;
  out["etag"] = std::string(etag);
  return out;
}

bj::object Typed(const bj::object& service) {
  bj::object o;
  o["@type"] = std::string(kServiceType);
  for (const auto& kv : service) o[kv.key()] = kv.value();
  return o;
}

// A UUID whose first 48 bits are the Unix time in milliseconds (RFC 9562 version 7), so ids
// sort by creation time.
std::string TimeOrderedUuid(TimePoint now) {
  uint64_t ms = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count());
  std::string b = RandomBytes(16);
  for (int i = 0; i < 6; ++i) b[i] = static_cast<char>((ms >> (40 - 8 * i)) & 0xff);
  b[6] = static_cast<char>((b[6] & 0x0f) | 0x70);  // version 7
  b[8] = static_cast<char>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kHex[(static_cast<unsigned char>(b[i]) >> 4) & 15]);
    out.push_back(kHex[static_cast<unsigned char>(b[i]) & 15]);
  }
  return out;
}

// The settings-collection parent of a location's operations.
std::string OperationParent(std::string_view location_name) {
  return std::string(kOperationPrefix) + std::string(location_name);
}

// Deletes up to kPruneBatch of the location's operations (oldest ids first) created before
// now - kOperationRetention.
Status PruneOperations(store::Transaction& tx, std::string_view parent, TimePoint now) {
  store::ListOptions o;
  o.parent = OperationParent(parent);
  o.page_size = kPruneBatch;
  MOAT_TRY(store::ListPage page, tx.List(Collection::kSettings, o));
  for (const auto& doc : page.documents) {
    if (now - doc.create_time < kOperationRetention) continue;
    MOAT_CHECK_OK(tx.Delete(Collection::kSettings, doc.key));
  }
  return Ok();
}

// A done Operation for `service`; stored in `tx` (pruning old ones) when given.
Result<bj::object> Operation(store::Transaction* tx, std::string_view parent,
                             const bj::object& service, TimePoint now) {
  bj::object op;
  op["name"] = std::string(parent) + "/operations/" + TimeOrderedUuid(now);
  op["metadata"] = Typed(service);
  op["done"] = true;
  op["response"] = Typed(service);
  if (tx) {
    MOAT_CHECK_OK(PruneOperations(*tx, parent, now));
    std::string key = std::string(kOperationPrefix) + std::string(op["name"].as_string());
    store::PutOptions put;
    put.parent = OperationParent(parent);
    MOAT_CHECK_OK(tx->Put(Collection::kSettings, key, json::Serialize(op), put));
  }
  return op;
}

// "invoker_iam_disabled" → "invokerIamDisabled" (FieldMask paths may use either spelling).
std::string Camel(std::string_view path) {
  std::string out;
  bool upper = false;
  for (char c : path) {
    if (c == '_') {
      upper = true;
    } else {
      out.push_back(upper && c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c);
      upper = false;
    }
  }
  return out;
}

// Copies the field at dotted `path` from `from` into `to` (removing it when absent).
Status ApplyMaskPath(bj::object& to, const bj::object& from, std::string_view path) {
  size_t dot = path.find('.');
  std::string head(path.substr(0, dot));
  if (dot == std::string_view::npos) {
    if (auto* v = from.if_contains(head); v && !v->is_null()) {
      to[head] = *v;
    } else {
      to.erase(head);
    }
    return Ok();
  }
  const bj::value* sub = from.if_contains(head);
  if (sub && !sub->is_object()) {
    return InvalidArgument("field `" + head + "` must be an object");
  }
  bj::value& dest = to[head];
  if (!dest.is_object()) dest = bj::object();
  static const bj::object kEmpty;
  return ApplyMaskPath(dest.as_object(), sub ? sub->as_object() : kEmpty, path.substr(dot + 1));
}

std::string TemplateServiceAccount(const bj::object& doc) {
  const bj::value* t = doc.if_contains("template");
  if (!t || !t->is_object()) return {};
  const bj::value* sa = t->as_object().if_contains("serviceAccount");
  return sa && sa->is_string() ? std::string(sa->as_string()) : std::string();
}

bool InvokerIamDisabled(const bj::object& doc) {
  const bj::value* v = doc.if_contains("invokerIamDisabled");
  return v && v->is_bool() && v->as_bool();
}

// Checks shared by create and update of `doc` (the would-be stored document).
Status CheckWrite(const Scope& s, const std::string& name, const bj::object& doc,
                  const bj::object* before) {
  MOAT_CHECK_OK(ValidateService(doc));
  // GOOGLE.md §1.2: disabling the invoker check needs setIamPolicy too.
  if (InvokerIamDisabled(doc) && (!before || !InvokerIamDisabled(*before))) {
    MOAT_CHECK_OK(s.Require(name, "run.services.setIamPolicy"));
  }
  std::string sa = TemplateServiceAccount(doc);
  bool template_changed =
      !before || !before->contains("template") || before->at("template") != doc.at("template");
  if (!sa.empty() && template_changed) {
    MOAT_CHECK_OK(CheckActAs(s, ProjectOf(name), sa));
  }
  auto spec = state::ParseServiceDoc(doc);
  if (!spec) return spec.error();
  return Ok();
}

Result<http::Response> Create(Scope& s) {
  const http::Request& req = s.request();
  MOAT_CHECK_OK(CheckSegment(req.PathVar("project"), "project"));
  MOAT_CHECK_OK(CheckSegment(req.PathVar("location"), "location"));
  std::string parent = ParentOf(req);
  std::string id(req.QueryParam("serviceId"));
  if (id.empty()) return InvalidArgument("query parameter `serviceId` is required");
  MOAT_CHECK_OK(CheckServiceId(id));
  MOAT_TRY(bool validate_only, QueryBool(req, "validateOnly", false));
  std::string name = parent + "/services/" + id;
  MOAT_CHECK_OK(s.Require(name, "run.services.create"));
  MOAT_TRY(bj::object body, BodyObject(req));
  MOAT_TRY(bj::object doc, WritableFields(body));
  Stamp(doc, name, id, RandomUuid(), 1, "", s);
  MOAT_CHECK_OK(CheckWrite(s, name, doc, nullptr));

  MOAT_TRY(auto tx, validate_only ? s.env().store->BeginRead() : s.env().store->Begin());
  MOAT_TRY(auto existing, tx->Get(Collection::kServices, name));
  if (existing) return AlreadyExists("Resource '" + name + "' already exists.");
  if (validate_only) {
    MOAT_TRY(bj::object service, ServiceJson(s.env(), json::Serialize(doc), ""));
    MOAT_TRY(bj::object op, Operation(nullptr, parent, service, s.now()));
    return JsonResponse(op);
  }
  MOAT_CHECK_OK(EnsureProject(*tx, "projects/" + std::string(req.PathVar("project")), s.now()));
  store::PutOptions put;
  put.parent = parent;
  put.precondition = store::Precondition::MustNotExist();
  MOAT_TRY(store::Document written,
           tx->Put(Collection::kServices, name, json::Serialize(doc), put));
  MOAT_TRY(bj::object service, ServiceJson(s.env(), written.data, written.etag));
  MOAT_TRY(bj::object op, Operation(tx.get(), parent, service, s.now()));
  MOAT_CHECK_OK(tx->AppendAudit(s.Audit("google.cloud.run.v2.Services.CreateService", name)));
  MOAT_TRY(int64_t revision, tx->Commit());
  // Like `gcloud run deploy`, answer once the revision serves (route published, process up).
  if (s.env().wait_service_ready) MOAT_CHECK_OK(s.env().wait_service_ready(name, revision));
  return JsonResponse(op, revision);
}

Result<http::Response> Get(Scope& s) {
  MOAT_TRY(std::string name, ServiceNameOf(s.request()));
  MOAT_CHECK_OK(s.Require(name, "run.services.get"));
  MOAT_TRY(auto doc, s.env().store->Get(Collection::kServices, name));
  if (!doc) return ServiceNotFound(name);
  MOAT_TRY(bj::object service, ServiceJson(s.env(), doc->data, doc->etag));
  return JsonResponse(service);
}

Result<http::Response> List(Scope& s) {
  const http::Request& req = s.request();
  MOAT_CHECK_OK(CheckSegment(req.PathVar("project"), "project"));
  MOAT_CHECK_OK(CheckSegment(req.PathVar("location"), "location"));
  if (req.PathVar("location") == "-") {
    return InvalidArgument("the location of services.list cannot be the '-' wildcard");
  }
  std::string parent = ParentOf(req);
  MOAT_CHECK_OK(s.Require(parent, "run.services.list"));
  MOAT_TRY(int page_size,
           PageSizeParam(req.QueryParam("pageSize"), store::kDefaultPageSize, store::kMaxPageSize));
  store::ListOptions opts;
  opts.parent = parent;
  opts.page_size = page_size;
  opts.page_token = std::string(req.QueryParam("pageToken"));
  MOAT_TRY(store::ListPage page, s.env().store->List(Collection::kServices, opts));
  bj::object out;
  bj::array services;
  for (const auto& doc : page.documents) {
    auto service = ServiceJson(s.env(), doc.data, doc.etag);
    if (service) services.emplace_back(std::move(*service));  // unparseable docs are not served
  }
  if (!services.empty()) out["services"] = std::move(services);
  if (!page.next_page_token.empty()) out["nextPageToken"] = page.next_page_token;
  return JsonResponse(out);
}

Result<http::Response> Patch(Scope& s) {
  const http::Request& req = s.request();
  MOAT_TRY(std::string name, ServiceNameOf(req));
  std::string parent = ParentOf(req);
  MOAT_TRY(bool allow_missing, QueryBool(req, "allowMissing", false));
  MOAT_TRY(bool validate_only, QueryBool(req, "validateOnly", false));
  std::vector<std::string> mask;
  for (auto& p : SplitMask(req.QueryParam("updateMask"))) {
    std::string path = Camel(p);
    if (!In(kWritable, path.substr(0, path.find('.')))) {
      return InvalidArgument("update mask path `" + p + "` is not a field that can be updated");
    }
    mask.push_back(std::move(path));
  }
  MOAT_TRY(bj::object body, BodyObject(req));
  MOAT_TRY(auto body_name, json::OptString(body, "name"));
  if (body_name && !body_name->empty() && *body_name != name) {
    return InvalidArgument("field `name` (`" + *body_name + "`) does not match the request path");
  }
  MOAT_TRY(auto body_etag, json::OptString(body, "etag"));
  MOAT_TRY(bj::object input, WritableFields(body));

  MOAT_TRY(auto tx, validate_only ? s.env().store->BeginRead() : s.env().store->Begin());
  MOAT_TRY(auto existing, tx->Get(Collection::kServices, name));
  if (!existing && !allow_missing) {
    MOAT_CHECK_OK(s.Require(name, "run.services.update"));
    return ServiceNotFound(name);
  }
  MOAT_CHECK_OK(s.Require(name, existing ? "run.services.update" : "run.services.create"));
  if (existing && body_etag && !body_etag->empty() && *body_etag != existing->etag) {
    return Aborted("the etag of service `" + name +
                   "` does not match: it was changed since it was read; read it and retry");
  }
  bj::object before, doc;
  if (existing) {
    MOAT_TRY(before, json::ParseObject(existing->data, "service document"));
  }
  if (!existing || mask.empty()) {
    doc = input;
  } else {
    doc = before;
    for (const auto& path : mask) MOAT_CHECK_OK(ApplyMaskPath(doc, input, path));
  }
  std::string uid = RandomUuid(), create_time;
  int64_t generation = 1;
  if (existing) {
    MOAT_TRY(auto u, json::OptString(before, "uid"));
    MOAT_TRY(auto g, json::OptInt(before, "generation"));
    MOAT_TRY(auto c, json::OptString(before, "createTime"));
    MOAT_TRY(auto creator, json::OptString(before, "creator"));
    if (u) uid = *u;
    generation = g.value_or(0) + 1;
    create_time = c.value_or("");
    if (creator) doc["creator"] = *creator;
  }
  Stamp(doc, name, req.PathVar("service"), uid, generation, create_time, s);
  MOAT_CHECK_OK(CheckWrite(s, name, doc, existing ? &before : nullptr));
  if (validate_only) {
    MOAT_TRY(bj::object service, ServiceJson(s.env(), json::Serialize(doc), ""));
    MOAT_TRY(bj::object op, Operation(nullptr, parent, service, s.now()));
    return JsonResponse(op);
  }
  MOAT_CHECK_OK(EnsureProject(*tx, "projects/" + std::string(req.PathVar("project")), s.now()));
  store::PutOptions put;
  put.parent = parent;
  put.precondition = existing ? store::Precondition::EtagMatches(existing->etag)
                              : store::Precondition::MustNotExist();
  MOAT_TRY(store::Document written,
           tx->Put(Collection::kServices, name, json::Serialize(doc), put));
  MOAT_TRY(bj::object service, ServiceJson(s.env(), written.data, written.etag));
  MOAT_TRY(bj::object op, Operation(tx.get(), parent, service, s.now()));
  bj::object details;
  if (!mask.empty()) {
    bj::array paths;
    for (auto& m : mask) paths.emplace_back(m);
    details["updateMask"] = std::move(paths);
  }
  MOAT_CHECK_OK(tx->AppendAudit(s.Audit(existing ? "google.cloud.run.v2.Services.UpdateService"
                                                 : "google.cloud.run.v2.Services.CreateService",
                                        name, std::move(details))));
  MOAT_TRY(int64_t revision, tx->Commit());
  // Like `gcloud run deploy`, answer once the revision serves (route published, process up).
  if (s.env().wait_service_ready) MOAT_CHECK_OK(s.env().wait_service_ready(name, revision));
  return JsonResponse(op, revision);
}

Result<http::Response> Delete(Scope& s) {
  const http::Request& req = s.request();
  MOAT_TRY(std::string name, ServiceNameOf(req));
  MOAT_TRY(bool validate_only, QueryBool(req, "validateOnly", false));
  MOAT_CHECK_OK(s.Require(name, "run.services.delete"));
  std::string etag(req.QueryParam("etag"));
  MOAT_TRY(auto tx, validate_only ? s.env().store->BeginRead() : s.env().store->Begin());
  MOAT_TRY(auto existing, tx->Get(Collection::kServices, name));
  if (!existing) return ServiceNotFound(name);
  if (!etag.empty() && etag != existing->etag) {
    return Aborted("the etag of service `" + name +
                   "` does not match: it was changed since it was read; read it and retry");
  }
  MOAT_TRY(bj::object service, ServiceJson(s.env(), existing->data, existing->etag));
  service["deleteTime"] = FormatRfc3339(s.now());
  if (validate_only) {
    MOAT_TRY(bj::object op, Operation(nullptr, ParentOf(req), service, s.now()));
    return JsonResponse(op);
  }
  MOAT_CHECK_OK(
      tx->Delete(Collection::kServices, name, store::Precondition::EtagMatches(existing->etag)));
  // The service's IAM policy goes with it: a re-created service starts private.
  MOAT_CHECK_OK(tx->Delete(Collection::kPolicies, name));
  MOAT_TRY(bj::object op, Operation(tx.get(), ParentOf(req), service, s.now()));
  MOAT_CHECK_OK(tx->AppendAudit(s.Audit("google.cloud.run.v2.Services.DeleteService", name)));
  MOAT_TRY(int64_t revision, tx->Commit());
  return JsonResponse(op, revision);
}

// The operation a request names (checked), after authorizing `permission` on it.
Result<std::string> OperationName(Scope& s, std::string_view permission) {
  const http::Request& req = s.request();
  MOAT_CHECK_OK(CheckSegment(req.PathVar("project"), "project"));
  MOAT_CHECK_OK(CheckSegment(req.PathVar("location"), "location"));
  MOAT_CHECK_OK(CheckSegment(req.PathVar("operation"), "operation"));
  std::string name = ParentOf(req) + "/operations/" + std::string(req.PathVar("operation"));
  MOAT_CHECK_OK(s.Require(name, permission));
  return name;
}

Result<http::Response> ReadOperation(Scope& s, std::string_view permission) {
  MOAT_TRY(std::string name, OperationName(s, permission));
  MOAT_TRY(auto doc,
           s.env().store->Get(Collection::kSettings, std::string(kOperationPrefix) + name));
  if (!doc) return NotFound("Resource '" + name + "' was not found");
  MOAT_TRY(bj::value op, json::Parse(doc->data, "operation"));
  return JsonResponse(op);
}

Result<http::Response> GetOperation(Scope& s) { return ReadOperation(s, "run.operations.get"); }

// POST …/operations/ID:wait {"timeout"?}: Moat's operations are done when answered, so this
// returns the operation at once (the timeout is checked, then moot).
Result<http::Response> WaitOperation(Scope& s) {
  MOAT_TRY(std::string name, OperationName(s, "run.operations.get"));
  MOAT_TRY(bj::object body, BodyObject(s.request()));
  MOAT_CHECK_OK(RejectUnknownFields(body, {"timeout"}));
  MOAT_TRY(auto timeout, json::OptString(body, "timeout"));
  if (timeout && !ParseDuration(*timeout)) {
    return InvalidArgument("timeout `" + *timeout + "` must be a duration such as \"30s\"");
  }
  return ReadOperation(s, "run.operations.get");
}

// GET …/locations/L/operations?pageSize=&pageToken= → {"operations":[…],"nextPageToken"},
// oldest first. `filter` is not supported (INVALID_ARGUMENT when given).
Result<http::Response> ListOperations(Scope& s) {
  const http::Request& req = s.request();
  MOAT_CHECK_OK(CheckSegment(req.PathVar("project"), "project"));
  MOAT_CHECK_OK(CheckSegment(req.PathVar("location"), "location"));
  std::string parent = ParentOf(req);
  MOAT_CHECK_OK(s.Require(parent, "run.operations.list"));
  if (!req.QueryParam("filter").empty()) {
    return InvalidArgument("filter `" + std::string(req.QueryParam("filter")) +
                           "` is not supported: list operations without a filter");
  }
  MOAT_TRY(int page_size, PageSizeParam(req.QueryParam("pageSize"), 100, 1000));
  store::ListOptions o;
  o.parent = OperationParent(parent);
  o.page_size = page_size;
  o.page_token = std::string(req.QueryParam("pageToken"));
  MOAT_TRY(auto tx, s.env().store->BeginRead());
  auto page = tx->List(Collection::kSettings, o);
  if (!page) {
    if (page.error().code == Code::kInvalidArgument) {
      return InvalidArgument("pageToken `" + o.page_token + "` is not valid");
    }
    return page.error();
  }
  bj::array ops;
  for (const auto& doc : page->documents) {
    MOAT_TRY(bj::value op, json::Parse(doc.data, "operation"));
    ops.push_back(std::move(op));
  }
  bj::object out;
  if (!ops.empty()) out["operations"] = std::move(ops);
  if (!page->next_page_token.empty()) out["nextPageToken"] = page->next_page_token;
  return JsonResponse(out);
}

// DELETE …/operations/ID → {} (audited with the deletion, in one transaction).
Result<http::Response> DeleteOperation(Scope& s) {
  MOAT_TRY(std::string name, OperationName(s, "run.operations.delete"));
  MOAT_TRY(auto tx, s.env().store->Begin());
  MOAT_TRY(bool existed, tx->Delete(Collection::kSettings, std::string(kOperationPrefix) + name));
  if (!existed) return NotFound("Resource '" + name + "' was not found");
  MOAT_CHECK_OK(tx->AppendAudit(s.Audit("google.longrunning.Operations.DeleteOperation", name)));
  MOAT_TRY(int64_t revision, tx->Commit());
  return JsonResponse(bj::object(), revision);
}

}  // namespace

void RegisterRunServiceRoutes(http::Router& router, const Env& env) {
  auto add = [&](const char* method, const char* path, Result<http::Response> (*fn)(Scope&)) {
    AddRoute(
        router, method, path, [&env, fn](const http::Request& req) { return Handle(env, req, fn); },
        /*blocking=*/true);
  };
  const char* kServices = "/v2/projects/{project}/locations/{location}/services";
  const char* kService = "/v2/projects/{project}/locations/{location}/services/{service}";
  add("POST", kServices, Create);
  add("GET", kServices, List);
  add("GET", kService, Get);
  add("PATCH", kService, Patch);
  add("DELETE", kService, Delete);
  const char* kOperation = "/v2/projects/{project}/locations/{location}/operations/{operation}";
  add("GET", kOperation, GetOperation);
  add("DELETE", kOperation, DeleteOperation);
  add("POST", "/v2/projects/{project}/locations/{location}/operations/{operation}:wait",
      WaitOperation);
  add("GET", "/v2/projects/{project}/locations/{location}/operations", ListOperations);
}

}  // namespace moat::api
