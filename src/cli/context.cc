#include "cli/context.h"

#include <algorithm>
#include <chrono>
#include <iostream>
#include <thread>

#include "cli/format.h"
#include "common/json.h"
#include "common/time.h"

namespace moat::cli {
namespace {

namespace js = boost::json;

const char* const kNoAccount =
    "no active account; run `moat auth activate-service-account --key-file=FILE` or "
    "`moat auth login USER`";

Code CodeFromStatus(int status, std::string_view name) {
  for (int c = 0; c <= 16; ++c) {
    if (CodeName(static_cast<Code>(c)) == name) return static_cast<Code>(c);
  }
  switch (status) {
    case 400:
      return Code::kInvalidArgument;
    case 401:
      return Code::kUnauthenticated;
    case 403:
      return Code::kPermissionDenied;
    case 404:
      return Code::kNotFound;
    case 409:
      return Code::kAborted;
    case 429:
      return Code::kResourceExhausted;
    case 503:
      return Code::kUnavailable;
    default:
      return status >= 500 ? Code::kInternal : Code::kUnknown;
  }
}

// application/x-www-form-urlencoded escaping (unlike Escape, '@' is escaped too).
std::string FormEscape(std::string_view s) {
  std::string out;
  for (char c : Escape(s)) {
    if (c == '@') {
      out += "%40";
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormEncode(const std::vector<std::pair<std::string, std::string>>& form) {
  std::string out;
  for (const auto& [k, v] : form) {
    if (!out.empty()) out += '&';
    out += FormEscape(k) + "=" + FormEscape(v);
  }
  return out;
}

}  // namespace

std::string Escape(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '@') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

Error ApiError(const HttpResponse& response) {
  std::string status_name;
  std::string message;
  auto parsed = json::Parse(response.body, "error response");
  if (parsed && parsed->is_object()) {
    const js::object& o = parsed->as_object();
    if (auto it = o.find("error"); it != o.end()) {
      if (it->value().is_object()) {
        const js::object& e = it->value().as_object();
        if (auto m = e.find("message"); m != e.end() && m->value().is_string()) {
          message = m->value().as_string();
        }
        if (auto s = e.find("status"); s != e.end() && s->value().is_string()) {
          status_name = s->value().as_string();
        }
      } else if (it->value().is_string()) {  // OAuth2: {"error":"invalid_grant",…}
        status_name = it->value().as_string();
        if (auto d = o.find("error_description"); d != o.end() && d->value().is_string()) {
          message = d->value().as_string();
        }
      }
    }
  }
  if (message.empty()) {
    message = response.body.substr(0, 200);
    while (!message.empty() && (message.back() == '\n' || message.back() == '\r')) {
      message.pop_back();
    }
    if (message.find('\n') != std::string::npos || message.empty()) {
      message = "the API answered HTTP " + std::to_string(response.status);
    }
  }
  Code code = CodeFromStatus(response.status, status_name);
  std::string text =
      (status_name.empty() ? std::string(CodeName(code)) : status_name) + ": " + message;
  if (response.status == 401) {
    text += " (run `moat auth activate-service-account --key-file=FILE` or `moat auth login USER`)";
  } else if (code == Code::kAborted) {
    text += " (re-run the command to retry)";
  }
  return MakeError(code, text);
}

std::string_view HttpResponse::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k.size() == name.size() && std::equal(k.begin(), k.end(), name.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) ==
                 std::tolower(static_cast<unsigned char>(b));
        })) {
      return v;
    }
  }
  return {};
}

Context::Context(Env& env, Config& config, const CommandTree& tree, const ParsedArgs& parsed)
    : env_(env), config_(config), tree_(tree), parsed_(parsed) {}

std::string Context::Arg(const std::string& name) const {
  auto it = parsed_.args.find(name);
  return it == parsed_.args.end() ? "" : it->second;
}

std::optional<std::string> Context::Flag(const std::string& name) const {
  auto it = parsed_.flags.find(name);
  if (it == parsed_.flags.end() || it->second.empty()) return std::nullopt;
  return it->second.back();
}

std::optional<bool> Context::Bool(const std::string& name) const {
  auto v = Flag(name);
  if (!v) return std::nullopt;
  return *v == "true";
}

std::vector<std::string> Context::List(const std::string& name) const {
  auto it = parsed_.flags.find(name);
  return it == parsed_.flags.end() ? std::vector<std::string>{} : it->second;
}

Result<std::string> Context::Project() {
  if (auto p = Flag("project")) return *p;
  if (auto p = config_.Get("project")) return *p;
  if (auto cred = ActiveCredential()) {
    if (const js::object* key =
            cred->data.if_contains("key") ? cred->data.at("key").if_object() : nullptr) {
      if (auto it = key->find("project_id");
          it != key->end() && it->value().is_string() && !it->value().as_string().empty()) {
        return std::string(it->value().as_string());
      }
    }
  }
  return FailedPrecondition(
      "no project; pass `--project=PROJECT_ID` or run `moat config set project PROJECT_ID`");
}

Result<std::string> Context::Region() {
  if (auto r = Flag("region")) return *r;
  if (auto r = config_.Get("region")) return *r;
  return FailedPrecondition(
      "no region; pass `--region=REGION` or run `moat config set region REGION`");
}

std::string Context::Endpoint() const {
  std::string e;
  if (auto it = env_.vars.find("MOAT_API_ENDPOINT"); it != env_.vars.end() && !it->second.empty()) {
    e = it->second;
  } else if (auto c = config_.Get("api_endpoint")) {
    e = *c;
  } else {
    e = std::string(kDefaultApiEndpoint);
  }
  while (!e.empty() && e.back() == '/') e.pop_back();
  return e;
}

Error Context::UsageError(std::string message) {
  usage_error_ = true;
  return InvalidArgument(message + " (see `moat " + spec().path + " --help`)");
}

Status Context::Print(const js::value& value) {
  return PrintWith(value, spec().default_format, spec().list_output);
}

Status Context::PrintWith(const js::value& value, const std::string& default_format, bool is_list) {
  std::string spec_text = Flag("format").value_or(default_format.empty() ? "yaml" : default_format);
  auto format = ParseFormat(spec_text);
  if (!format) {
    usage_error_ = true;
    return format.error();
  }
  // `--format=table` without fields keeps the command's default columns.
  if (format->kind == Format::Kind::kTable && format->columns.empty() &&
      default_format.rfind("table(", 0) == 0) {
    format = ParseFormat(default_format);
  }
  out() << Render(*format, value, is_list);
  if (is_list && value.is_array() && value.as_array().empty() &&
      format->kind == Format::Kind::kTable) {
    err() << "Listed 0 items.\n";
  }
  return Ok();
}

Status Context::Confirm(const std::string& message) {
  if (Quiet()) return Ok();
  if (!env_.interactive || env_.in == nullptr) {
    return FailedPrecondition(message +
                              " Not confirmed: no terminal to ask; pass `--quiet` "
                              "to proceed without a prompt");
  }
  err() << message << "\n\nDo you want to continue (y/N)?  " << std::flush;
  std::string answer;
  std::getline(*env_.in, answer);
  if (answer == "y" || answer == "Y" || answer == "yes" || answer == "Yes") return Ok();
  return Aborted("cancelled; nothing was changed");
}

Result<std::string> Context::ReadSecretLine(const std::string& prompt) {
  if (env_.in == nullptr) return FailedPrecondition("no standard input to read from");
  if (env_.interactive) err() << prompt << std::flush;
  std::string line;
  if (!std::getline(*env_.in, line)) {
    return FailedPrecondition("no password on standard input; use `--password-file=FILE`");
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

Result<HttpResponse> Context::Send(const HttpRequest& request) {
  if (env_.transport == nullptr) return Internal("no HTTP transport is configured");
  bool debug = Flag("verbosity").value_or("") == "debug";
  std::string shown = request.url.substr(0, request.url.find('?'));
  if (debug) err() << "DEBUG: " << request.method << " " << shown << "\n";
  auto response = env_.transport->Send(request);
  if (!response) {
    std::string origin = request.url;
    if (size_t p = origin.find('/', origin.find("://") + 3); p != std::string::npos) {
      origin.resize(p);
    }
    return Unavailable("cannot reach `" + origin + "` (" + response.error().message +
                       "); is `moat serve` running? Set the API endpoint with `moat config set "
                       "api_endpoint URL` or $MOAT_API_ENDPOINT");
  }
  if (debug) err() << "DEBUG: " << response->status << " " << shown << "\n";
  return response;
}

Result<js::value> Context::PostForm(const std::string& path,
                                    const std::vector<std::pair<std::string, std::string>>& form) {
  HttpRequest req{
      "POST",
      Endpoint() + path,
      {{"Content-Type", "application/x-www-form-urlencoded"}, {"Accept", "application/json"}},
      FormEncode(form)};
  MOAT_TRY(HttpResponse resp, Send(req));
  if (resp.status >= 400) return ApiError(resp);
  return json::Parse(resp.body, "token response");
}

Result<js::value> Context::Call(const std::string& method, const std::string& path_and_query,
                                const std::optional<js::value>& body) {
  MOAT_TRY(std::string token, AccessToken());
  HttpRequest req{method,
                  Endpoint() + path_and_query,
                  {{"Authorization", "Bearer " + token}, {"Accept", "application/json"}},
                  ""};
  if (body) {
    req.headers.emplace_back("Content-Type", "application/json");
    req.body = json::Serialize(*body);
  }
  MOAT_TRY(HttpResponse resp, Send(req));
  if (resp.status == 401 && access_token_cached_) {
    // A cached token the server no longer accepts (its signing keys or state were reset):
    // forget it and try once more with a fresh one. A 401 means nothing was done.
    access_token_cached_ = false;
    access_token_.reset();
    if (access_token_key_) Cache().Erase(*access_token_key_);
    SaveCache();
    return Call(method, path_and_query, body);
  }
  if (resp.status >= 400) return ApiError(resp);
  if (resp.body.find_first_not_of(" \r\n\t") == std::string::npos) return js::object();
  return json::Parse(resp.body, "API response");
}

std::optional<std::string> Context::Impersonated() const {
  if (auto f = Flag("impersonate-service-account")) return *f;
  return config_.Get("impersonate_service_account");
}

Result<Credential> Context::ActiveCredential() {
  if (credential_) return *credential_;
  std::optional<std::string> account = Flag("account");
  if (!account) account = config_.Get("account");
  Credential cred;
  if (account) {
    const js::object* data = config_.Account(*account);
    if (data == nullptr) {
      return FailedPrecondition("no credentials for account `" + *account +
                                "`; run `moat auth activate-service-account --key-file=FILE` or "
                                "`moat auth login " +
                                *account + "`");
    }
    cred = Credential{*account, *data, "credentials"};
  } else if (auto home = env_.vars.find("MOAT_HOME");
             home != env_.vars.end() && !home->second.empty()) {
    std::string path = home->second + "/admin-key.json";
    auto text = ReadFile(path);
    if (!text) {
      if (text.error().code == Code::kNotFound) return FailedPrecondition(kNoAccount);
      return text.error();
    }
    MOAT_TRY(js::object key, json::ParseObject(*text, "admin key file"));
    MOAT_TRY(std::string email, ValidateKeyFile(key));
    js::object data;
    data["type"] = "service_account";
    data["key"] = key;
    cred = Credential{email, data, "MOAT_HOME"};
  } else {
    return FailedPrecondition(kNoAccount);
  }
  credential_ = cred;
  return cred;
}

int64_t Context::NowUnix() const { return (env_.clock ? *env_.clock : SystemClock()).NowUnix(); }

Result<std::string> Context::SignJwt(const Credential& cred, js::object claims) {
  if (env_.signer == nullptr) return Internal("no JWT signer is configured");
  const js::object& key = cred.data.at("key").as_object();
  return env_.signer->SignJwt(key.at("private_key").as_string(),
                              key.at("private_key_id").as_string(), claims);
}

Result<Context::Minted> Context::BaseAccessToken(const Credential& cred) {
  auto type = json::OptString(cred.data, "type");
  if (type && *type == "service_account") {
    // A self-signed JWT whose audience is the API's origin (what Google's Node client does).
    int64_t now = NowUnix();
    js::object claims{{"iss", cred.email},
                      {"sub", cred.email},
                      {"aud", Endpoint() + "/"},
                      {"iat", now},
                      {"exp", now + 3600}};
    MOAT_TRY(std::string jwt, SignJwt(cred, std::move(claims)));
    return Minted{std::move(jwt), now + 3600};
  }
  if (type && *type == "user") {
    MOAT_TRY(auto refresh, json::OptString(cred.data, "refresh_token"));
    if (!refresh)
      return FailedPrecondition("stored credentials for `" + cred.email +
                                "` are incomplete; run `moat auth login " + cred.email + "`");
    int64_t now = NowUnix();
    MOAT_TRY(js::value resp,
             PostForm("/token", {{"grant_type", "refresh_token"}, {"refresh_token", *refresh}}));
    if (resp.is_object()) {
      if (auto t = json::OptString(resp.as_object(), "access_token"); t && *t && !(*t)->empty()) {
        Minted m{**t, 0};
        if (auto in = json::OptInt(resp.as_object(), "expires_in"); in && *in && **in > 0) {
          m.expiry = now + **in;
        } else if (auto exp = JwtExpiry(m.token)) {
          m.expiry = *exp;
        }
        return m;
      }
    }
    return Unauthenticated("the token endpoint returned no access_token for `" + cred.email + "`");
  }
  return FailedPrecondition("stored credentials for `" + cred.email +
                            "` have an unknown type; run `moat auth revoke " + cred.email +
                            "` and sign in again");
}

TokenCache& Context::Cache() {
  if (!cache_) cache_ = TokenCache::Load(config_.dir());
  return *cache_;
}

TokenCache::Key Context::CacheKey(const Credential& cred, std::string kind,
                                  std::string audience) const {
  std::string key_id;
  if (const js::value* key = cred.data.if_contains("key"); key && key->is_object()) {
    if (auto id = json::OptString(key->as_object(), "private_key_id"); id && *id) key_id = **id;
  }
  return TokenCache::Key{cred.email, key_id,          Impersonated().value_or(""),
                         Endpoint(), std::move(kind), std::move(audience)};
}

void Context::SaveCache() {
  if (!cache_) return;
  if (auto st = cache_->Save(NowUnix()); !st && Flag("verbosity").value_or("") == "debug") {
    err() << "DEBUG: token cache not saved: " << st.error().message << "\n";
  }
}

void Context::Remember(const TokenCache::Key& key, const Minted& minted) {
  if (minted.expiry <= 0) return;
  Cache().Put(key, minted.token, minted.expiry, NowUnix());
  SaveCache();
}

Result<js::value> Context::PostAsBaseIdentity(const std::string& path, const js::value& body) {
  MOAT_TRY(Credential cred, ActiveCredential());
  MOAT_TRY(Minted base, BaseAccessToken(cred));
  HttpRequest req{"POST",
                  Endpoint() + path,
                  {{"Authorization", "Bearer " + base.token},
                   {"Accept", "application/json"},
                   {"Content-Type", "application/json"}},
                  json::Serialize(body)};
  MOAT_TRY(HttpResponse resp, Send(req));
  if (resp.status >= 400) return ApiError(resp);
  return json::Parse(resp.body, "API response");
}

Result<std::string> Context::AccessToken() {
  if (access_token_) return *access_token_;
  MOAT_TRY(Credential cred, ActiveCredential());
  TokenCache::Key key = CacheKey(cred, "access", "");
  if (auto cached = Cache().Get(key, NowUnix())) {
    access_token_ = *cached;
    access_token_cached_ = true;
    access_token_key_ = key;
    return *cached;
  }
  Minted minted;
  if (auto sa = Impersonated()) {
    js::object body{{"scope", js::array{"https://www.googleapis.com/auth/cloud-platform"}},
                    {"lifetime", "3600s"}};
    auto resp = PostAsBaseIdentity(
        "/v1/projects/-/serviceAccounts/" + Escape(*sa) + ":generateAccessToken", body);
    if (!resp) return resp.error();
    auto token = resp->is_object() ? json::OptString(resp->as_object(), "accessToken")
                                   : Result<std::optional<std::string>>(std::nullopt);
    if (!token || !*token) return Internal("generateAccessToken returned no accessToken");
    minted = Minted{**token, 0};
    auto expire = json::OptString(resp->as_object(), "expireTime");
    if (expire && *expire) {
      if (auto t = ParseRfc3339(**expire)) {
        minted.expiry =
            std::chrono::duration_cast<std::chrono::seconds>(t->time_since_epoch()).count();
      }
    }
    if (minted.expiry == 0) minted.expiry = JwtExpiry(minted.token).value_or(0);
  } else {
    MOAT_TRY(minted, BaseAccessToken(cred));
  }
  Remember(key, minted);
  access_token_ = minted.token;
  access_token_cached_ = false;
  access_token_key_ = key;
  return minted.token;
}

Result<std::string> Context::IdToken(const std::string& audience) {
  id_token_cached_ = false;
  MOAT_TRY(Credential cred, ActiveCredential());
  TokenCache::Key key = CacheKey(cred, "id", audience);
  if (auto cached = Cache().Get(key, NowUnix())) {
    id_token_cached_ = true;
    return *cached;
  }
  MOAT_TRY(Minted minted, MintIdToken(audience));
  minted.expiry = JwtExpiry(minted.token).value_or(0);
  Remember(key, minted);
  return minted.token;
}

void Context::ForgetIdToken(const std::string& audience) {
  auto cred = ActiveCredential();
  if (!cred) return;
  Cache().Erase(CacheKey(*cred, "id", audience));
  SaveCache();
}

Result<Context::Minted> Context::MintIdToken(const std::string& audience) {
  if (auto sa = Impersonated()) {
    // As gcloud does: the caller's own credentials ask for the account's ID token, so the
    // caller needs iam.serviceAccounts.getOpenIdToken on it (not the account on itself).
    MOAT_TRY(
        js::value resp,
        PostAsBaseIdentity("/v1/projects/-/serviceAccounts/" + Escape(*sa) + ":generateIdToken",
                           js::value(js::object{{"audience", audience}, {"includeEmail", true}})));
    if (resp.is_object()) {
      if (auto t = json::OptString(resp.as_object(), "token"); t && *t) return Minted{**t, 0};
    }
    return Internal("generateIdToken returned no token");
  }
  MOAT_TRY(Credential cred, ActiveCredential());
  js::value resp;
  auto type = json::OptString(cred.data, "type");
  if (type && *type == "service_account") {
    int64_t now = NowUnix();
    js::object claims{{"iss", cred.email},
                      {"aud", Endpoint() + "/token"},
                      {"iat", now},
                      {"exp", now + 3600},
                      {"target_audience", audience}};
    MOAT_TRY(std::string assertion, SignJwt(cred, std::move(claims)));
    MOAT_TRY(resp,
             PostForm("/token", {{"grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"},
                                 {"assertion", assertion}}));
  } else {
    MOAT_TRY(auto refresh, json::OptString(cred.data, "refresh_token"));
    if (!refresh) return FailedPrecondition("run `moat auth login " + cred.email + "` again");
    MOAT_TRY(resp, PostForm("/token", {{"grant_type", "refresh_token"},
                                       {"refresh_token", *refresh},
                                       {"target_audience", audience}}));
  }
  if (resp.is_object()) {
    if (auto t = json::OptString(resp.as_object(), "id_token"); t && *t) return Minted{**t, 0};
  }
  return Unauthenticated("the token endpoint returned no id_token");
}

Result<js::value> Context::WaitOperation(js::value op) {
  for (int attempt = 0;; ++attempt) {
    if (!op.is_object() ||
        (!op.as_object().contains("done") && !op.as_object().contains("metadata"))) {
      return op;  // not an Operation
    }
    const js::object& o = op.as_object();
    MOAT_TRY(auto done, json::OptBool(o, "done"));
    if (done.value_or(false)) {
      if (auto e = o.if_contains("error"); e && e->is_object()) {
        auto msg = json::OptString(e->as_object(), "message");
        return Internal("the operation failed: " +
                        (msg && *msg ? **msg : std::string("no message")));
      }
      if (auto r = o.if_contains("response")) return *r;
      return js::value(js::object());
    }
    MOAT_TRY(auto name, json::OptString(o, "name"));
    if (!name) return Internal("the API returned an unfinished operation without a name");
    if (attempt >= 600) return Unavailable("operation `" + *name + "` did not finish in time");
    if (env_.sleep) {
      env_.sleep(std::chrono::milliseconds(500));
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    MOAT_TRY(op, Call("GET", "/v2/" + *name));
  }
}

}  // namespace moat::cli
