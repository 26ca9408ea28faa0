// `moat run …`: deploy, services list/describe/delete/update/call/proxy/logs and the service
// IAM policy commands, against the Cloud Run Admin API v2 paths of docs/api.md.
#include <strings.h>

#include <algorithm>
#include <boost/json/value_from.hpp>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "cli/context.h"
#include "common/json.h"

namespace moat::cli {
namespace {

namespace js = boost::json;

const char* const kServiceArg = "SERVICE";

Result<std::string> ServicePath(Context& ctx, const std::string& service) {
  MOAT_TRY(std::string project, ctx.Project());
  MOAT_TRY(std::string region, ctx.Region());
  return "/v2/projects/" + Escape(project) + "/locations/" + Escape(region) + "/services/" +
         Escape(service);
}

Result<std::string> ServiceId(Context& ctx) {
  std::string s = ctx.Arg(kServiceArg);
  // Google: letters, digits, hyphens; starts with a letter; no trailing hyphen; < 50 chars.
  bool ok = !s.empty() && s.size() < 50 && std::islower(static_cast<unsigned char>(s[0])) &&
            s.back() != '-';
  for (char c : s)
    ok = ok && (std::islower(static_cast<unsigned char>(c)) ||
                std::isdigit(static_cast<unsigned char>(c)) || c == '-');
  if (!ok) {
    return ctx.UsageError("service name `" + s +
                          "` must be lowercase letters, digits and hyphens, start with a letter, "
                          "not end with a hyphen, and be under 50 characters");
  }
  return s;
}

Result<IamTarget> ServiceTarget(Context& ctx) {
  MOAT_TRY(std::string id, ServiceId(ctx));
  MOAT_TRY(std::string path, ServicePath(ctx, id));
  return IamTarget{"service", id, path, IamTarget::Get::kGetQuery};
}

// Splits a command line like a POSIX shell would (quotes and backslashes; no expansion).
Result<std::vector<std::string>> ShellSplit(const std::string& s) {
  std::vector<std::string> words;
  std::string cur;
  bool in_word = false;
  char quote = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (quote == '\'') {
      if (c == '\'')
        quote = 0;
      else
        cur += c;
    } else if (quote == '"') {
      if (c == '"') {
        quote = 0;
      } else if (c == '\\' && i + 1 < s.size() && std::strchr("\"\\$`", s[i + 1])) {
        cur += s[++i];
      } else {
        cur += c;
      }
    } else if (c == '\'' || c == '"') {
      quote = c;
      in_word = true;
    } else if (c == '\\' && i + 1 < s.size()) {
      cur += s[++i];
      in_word = true;
    } else if (c == ' ' || c == '\t' || c == '\n') {
      if (in_word) words.push_back(cur);
      cur.clear();
      in_word = false;
    } else {
      cur += c;
      in_word = true;
    }
  }
  if (quote) return InvalidArgument("unterminated quote in `--command`");
  if (in_word) words.push_back(cur);
  if (words.empty()) return InvalidArgument("`--command` is empty");
  return words;
}

// The `web:` command of DIR/Procfile (or its only entry).
Result<std::string> ProcfileCommand(const std::string& dir) {
  auto text = ReadFile(dir + "/Procfile");
  if (!text) {
    return FailedPrecondition("`--source " + dir +
                              "` needs a Procfile there with a `web: COMMAND` line");
  }
  std::istringstream in(*text);
  std::string line, only;
  int entries = 0;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    size_t colon = line.find(':');
    if (line.empty() || line[0] == '#' || colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    std::string cmd = line.substr(colon + 1);
    cmd.erase(0, cmd.find_first_not_of(" \t"));
    ++entries;
    only = cmd;
    if (name == "web") return cmd;
  }
  if (entries == 1 && !only.empty()) return only;
  return FailedPrecondition("the Procfile in `" + dir + "` has no `web:` entry");
}

Result<std::string> Absolute(const std::string& dir) {
  char buf[PATH_MAX];
  if (::realpath(dir.c_str(), buf) == nullptr) {
    return FailedPrecondition("directory `" + dir + "` does not exist");
  }
  return std::string(buf);
}

std::vector<FlagSpec> ServiceFlags(bool deploy) {
  std::vector<FlagSpec> f;
  if (deploy) {
    f.push_back({"source", FlagKind::kString,
                 "Run the `web:` command of DIR/Procfile (with `sh -c`, working directory DIR) "
                 "and supervise it.",
                 "DIR"});
  }
  f.insert(
      f.end(),
      {
          {"upstream", FlagKind::kString,
           "Gate an HTTP service that runs elsewhere, e.g. http://127.0.0.1:9000.", "URL"},
          {"command", FlagKind::kString,
           "Run and supervise this command (split like a shell would; it must listen on $PORT).",
           "COMMAND"},
          {"args", FlagKind::kList, "Arguments appended to --command.", "ARG"},
          {"service-account", FlagKind::kString,
           "The service's runtime identity: its metadata server hands out this account's tokens.",
           "SERVICE_ACCOUNT_EMAIL"},
          {"allow-unauthenticated", FlagKind::kBool,
           "Add (or with --no-allow-unauthenticated remove) the `allUsers` binding for "
           "roles/run.invoker, making the service public."},
          {"invoker-iam-check", FlagKind::kBool,
           "--no-invoker-iam-check disables the invoker IAM check (anyone reaching the gateway may "
           "invoke); --invoker-iam-check turns it back on."},
          {"add-custom-audiences", FlagKind::kList,
           "Extra audiences accepted in ID tokens for this service.", "AUDIENCE"},
          {"remove-custom-audiences", FlagKind::kList, "Custom audiences to remove.", "AUDIENCE"},
          {"clear-custom-audiences", FlagKind::kBool, "Remove every custom audience."},
          {"set-env-vars", FlagKind::kDict, "Replace the environment with these variables."},
          {"update-env-vars", FlagKind::kDict, "Add or change these environment variables."},
          {"remove-env-vars", FlagKind::kList, "Remove these environment variables.", "KEY"},
          {"clear-env-vars", FlagKind::kBool, "Remove every environment variable."},
          {"ingress", FlagKind::kString,
           "Who may reach the service: all, internal or internal-and-cloud-load-balancing.",
           "INGRESS"},
          {"timeout", FlagKind::kString, "Request timeout, e.g. 300s or 300.", "TIMEOUT"},
          {"description", FlagKind::kString, "A description of the service."},
      });
  return f;
}

js::array& EnsureArray(js::object& o, const char* key) {
  if (!o[key].is_array()) o[key] = js::array();
  return o[key].as_array();
}
js::object& EnsureObject(js::object& o, const char* key) {
  if (!o[key].is_object()) o[key] = js::object();
  return o[key].as_object();
}

// Applies the deploy/update flags to `svc` (an existing Service or {}).
Status ApplyServiceFlags(Context& ctx, js::object& svc, bool creating) {
  int sources = ctx.Flag("upstream").has_value() + ctx.Flag("command").has_value() +
                ctx.Flag("source").has_value();
  if (sources > 1) {
    return ctx.UsageError("pass only one of `--upstream`, `--command` and `--source`");
  }
  if (creating && sources == 0) {
    return ctx.UsageError(
        "a new service needs `--upstream=URL`, `--command=COMMAND` or "
        "`--source=DIR`");
  }
  if (!ctx.List("args").empty() && !ctx.Flag("command")) {
    return ctx.UsageError("`--args` needs `--command`");
  }
  for (const char* key :
       {"uid", "generation", "createTime", "updateTime", "deleteTime", "expireTime", "creator",
        "lastModifier", "observedGeneration", "terminalCondition", "conditions",
        "latestReadyRevision", "latestCreatedRevision", "trafficStatuses", "reconciling", "uri",
        "urls"}) {
    svc.erase(key);
  }
  js::object& tmpl = EnsureObject(svc, "template");
  js::array& containers = EnsureArray(tmpl, "containers");
  if (containers.empty() || !containers[0].is_object()) containers.emplace_back(js::object());
  js::object& c0 = containers[0].as_object();

  if (auto up = ctx.Flag("upstream")) {
    if (up->rfind("http://", 0) != 0 && up->rfind("https://", 0) != 0) {
      return ctx.UsageError("`--upstream` must be an http:// or https:// URL, not `" + *up + "`");
    }
    tmpl["upstream"] = *up;
    c0.erase("command");
    c0.erase("args");
    c0.erase("workingDir");
  }
  if (auto cmd = ctx.Flag("command")) {
    MOAT_TRY(std::vector<std::string> words, ShellSplit(*cmd));
    c0["command"] = js::value_from(words);
    js::array args;
    for (const std::string& a : ctx.List("args")) args.emplace_back(a);
    c0["args"] = std::move(args);
    tmpl.erase("upstream");
  }
  if (auto src = ctx.Flag("source")) {
    MOAT_TRY(std::string dir, Absolute(*src));
    MOAT_TRY(std::string web, ProcfileCommand(dir));
    c0["command"] = js::array{"/bin/sh", "-c", web};
    c0["args"] = js::array();
    c0["workingDir"] = dir;
    tmpl.erase("upstream");
  }
  // Environment: [{name, value}] in order.
  std::vector<std::pair<std::string, std::string>> env;
  if (auto* e = c0.if_contains("env"); e && e->is_array()) {
    for (const js::value& v : e->as_array()) {
      if (!v.is_object()) continue;
      auto n = json::OptString(v.as_object(), "name");
      auto val = json::OptString(v.as_object(), "value");
      if (n && *n) env.emplace_back(**n, val && *val ? **val : "");
    }
  }
  bool env_changed = false;
  auto put = [&](const std::string& kv) {
    size_t eq = kv.find('=');
    std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
    for (auto& p : env) {
      if (p.first == k) {
        p.second = v;
        return;
      }
    }
    env.emplace_back(k, v);
  };
  if (ctx.Bool("clear-env-vars").value_or(false) || !ctx.List("set-env-vars").empty()) {
    env.clear();
    env_changed = true;
  }
  for (const std::string& kv : ctx.List("set-env-vars")) put(kv);
  for (const std::string& kv : ctx.List("update-env-vars")) put(kv), env_changed = true;
  for (const std::string& k : ctx.List("remove-env-vars")) {
    std::erase_if(env, [&](const auto& p) { return p.first == k; });
    env_changed = true;
  }
  if (env_changed) {
    js::array out;
    for (const auto& [k, v] : env) out.push_back(js::object{{"name", k}, {"value", v}});
    c0["env"] = std::move(out);
  }
  if (auto sa = ctx.Flag("service-account")) tmpl["serviceAccount"] = *sa;
  if (auto t = ctx.Flag("timeout")) {
    std::string v = *t;
    if (!v.empty() && std::isdigit(static_cast<unsigned char>(v.back()))) v += "s";
    if (v.size() < 2 || v.back() != 's' || v.find_first_not_of("0123456789.") != v.size() - 1) {
      return ctx.UsageError("`--timeout` must be seconds like `300` or `300s`, not `" + *t + "`");
    }
    tmpl["timeout"] = v;
  }
  if (auto check = ctx.Bool("invoker-iam-check")) svc["invokerIamDisabled"] = !*check;
  if (auto ing = ctx.Flag("ingress")) {
    static const std::pair<const char*, const char*> kIngress[] = {
        {"all", "INGRESS_TRAFFIC_ALL"},
        {"internal", "INGRESS_TRAFFIC_INTERNAL_ONLY"},
        {"internal-and-cloud-load-balancing", "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"}};
    bool found = false;
    for (const auto& [flag, value] : kIngress) {
      if (*ing == flag) {
        svc["ingress"] = value;
        found = true;
      }
    }
    if (!found) {
      return ctx.UsageError(
          "`--ingress` must be all, internal or "
          "internal-and-cloud-load-balancing, not `" +
          *ing + "`");
    }
  }
  if (auto d = ctx.Flag("description")) svc["description"] = *d;
  // Custom audiences.
  std::vector<std::string> auds;
  if (auto* a = svc.if_contains("customAudiences"); a && a->is_array()) {
    for (const js::value& v : a->as_array())
      if (v.is_string()) auds.emplace_back(v.as_string());
  }
  if (ctx.Bool("clear-custom-audiences").value_or(false)) auds.clear();
  for (const std::string& r : ctx.List("remove-custom-audiences")) std::erase(auds, r);
  for (const std::string& a : ctx.List("add-custom-audiences")) {
    if (std::find(auds.begin(), auds.end(), a) == auds.end()) auds.push_back(a);
  }
  if (svc.contains("customAudiences") || !auds.empty())
    svc["customAudiences"] = js::value_from(auds);
  return Ok();
}

bool PolicyHas(const js::value& policy, const std::string& role, const std::string& member) {
  const js::object* o = policy.if_object();
  const js::value* b = o ? o->if_contains("bindings") : nullptr;
  if (!b || !b->is_array()) return false;
  for (const js::value& binding : b->as_array()) {
    const js::object* bo = binding.if_object();
    if (!bo || bo->contains("condition")) continue;
    const js::value* r = bo->if_contains("role");
    const js::value* m = bo->if_contains("members");
    if (!r || !r->is_string() || r->as_string() != role || !m || !m->is_array()) continue;
    for (const js::value& x : m->as_array())
      if (x.is_string() && x.as_string() == member) return true;
  }
  return false;
}

// deploy (allow_missing) and update share everything but creation.
Status DeployOrUpdate(Context& ctx, bool deploy) {
  MOAT_TRY(IamTarget target, ServiceTarget(ctx));
  MOAT_TRY(std::string project, ctx.Project());
  MOAT_TRY(std::string region, ctx.Region());
  js::object svc;
  bool exists = true;
  auto current = ctx.Call("GET", target.path);
  if (current) {
    if (current->is_object()) svc = current->as_object();
  } else if (current.error().code == Code::kNotFound) {
    if (!deploy) return current.error();
    exists = false;
  } else {
    return current.error();
  }
  MOAT_CHECK_OK(ApplyServiceFlags(ctx, svc, !exists));
  svc["name"] = "projects/" + project + "/locations/" + region + "/services/" + target.name;
  ctx.err() << (deploy ? "Deploying" : "Updating") << " service [" << target.name
            << "] in project [" << project << "] region [" << region << "]\n";
  std::string query = deploy ? "?allowMissing=true" : "";
  MOAT_TRY(js::value op, ctx.Call("PATCH", target.path + query, js::value(svc)));
  MOAT_TRY(js::value result, ctx.WaitOperation(std::move(op)));
  if (auto allow = ctx.Bool("allow-unauthenticated")) {
    js::object binding{{"member", "allUsers"}, {"role", "roles/run.invoker"}};
    if (*allow) {
      MOAT_TRY(js::value ignored,
               ctx.Call("POST", target.path + ":addIamPolicyBinding", js::value(binding)));
    } else {
      MOAT_TRY(js::value policy, FetchIamPolicy(ctx, target));
      if (PolicyHas(policy, "roles/run.invoker", "allUsers")) {
        MOAT_TRY(js::value ignored,
                 ctx.Call("POST", target.path + ":removeIamPolicyBinding", js::value(binding)));
      }
    }
  }
  ctx.err() << "Service [" << target.name << "] has been " << (deploy ? "deployed" : "updated")
            << ".\n";
  if (ctx.Flag("format")) return ctx.PrintWith(result, "yaml", false);
  std::string uri;
  if (result.is_object()) {
    if (auto u = json::OptString(result.as_object(), "uri"); u && *u) uri = **u;
  }
  ctx.out() << "Service URL: " << (uri.empty() ? "(not yet assigned)" : uri) << "\n";
  return Ok();
}

Status List(Context& ctx) {
  MOAT_TRY(std::string project, ctx.Project());
  MOAT_TRY(std::string region, ctx.Region());
  js::array all;
  std::string token;
  for (int page = 0; page < 1000; ++page) {
    std::string q = "/v2/projects/" + Escape(project) + "/locations/" + Escape(region) +
                    "/services?pageSize=100" + (token.empty() ? "" : "&pageToken=" + Escape(token));
    MOAT_TRY(js::value resp, ctx.Call("GET", q));
    if (!resp.is_object()) break;
    if (auto* s = resp.as_object().if_contains("services"); s && s->is_array()) {
      for (auto& v : s->as_array()) all.push_back(v);
    }
    MOAT_TRY(auto next, json::OptString(resp.as_object(), "nextPageToken"));
    if (!next || next->empty()) break;
    token = *next;
  }
  return ctx.Print(all);
}

Status Describe(Context& ctx) {
  MOAT_TRY(IamTarget t, ServiceTarget(ctx));
  MOAT_TRY(js::value svc, ctx.Call("GET", t.path));
  return ctx.Print(svc);
}

Status Delete(Context& ctx) {
  MOAT_TRY(IamTarget t, ServiceTarget(ctx));
  MOAT_CHECK_OK(ctx.Confirm("Service [" + t.name + "] will be deleted."));
  MOAT_TRY(js::value op, ctx.Call("DELETE", t.path));
  MOAT_TRY(js::value done, ctx.WaitOperation(std::move(op)));
  ctx.err() << "Deleted service [" << t.name << "].\n";
  return Ok();
}

Status Call(Context& ctx) {
  MOAT_TRY(IamTarget t, ServiceTarget(ctx));
  // An invoker may lack run.services.get; Moat's `:uri` answers anyone who may invoke.
  auto got = ctx.Call("GET", t.path);
  if (!got && got.error().code == Code::kPermissionDenied) got = ctx.Call("GET", t.path + ":uri");
  MOAT_TRY(js::value svc, std::move(got));
  std::string uri;
  if (svc.is_object()) {
    if (auto u = json::OptString(svc.as_object(), "uri"); u && *u) uri = **u;
  }
  if (uri.empty()) return FailedPrecondition("service `" + t.name + "` has no URL yet");
  while (!uri.empty() && uri.back() == '/') uri.pop_back();
  MOAT_TRY(std::string token, ctx.IdToken(uri));
  std::optional<std::string> data = ctx.Flag("data");
  std::string method = ctx.Flag("method").value_or(data ? "POST" : "GET");
  for (char& c : method) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::string path = ctx.Flag("path").value_or("/");
  if (path.empty() || path[0] != '/') return ctx.UsageError("`--path` must start with `/`");
  HttpRequest req{method, uri + path, {{"Authorization", "Bearer " + token}}, data.value_or("")};
  bool has_type = false;
  for (const std::string& h : ctx.List("header")) {
    size_t colon = h.find(':');
    if (colon == std::string::npos || colon == 0) {
      return ctx.UsageError("`--header` takes `Name: value`, not `" + h + "`");
    }
    std::string name = h.substr(0, colon), value = h.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    if (name.size() == 12 && strncasecmp(name.c_str(), "content-type", 12) == 0) has_type = true;
    req.headers.emplace_back(name, value);
  }
  if (data && !has_type) {
    bool json_like = !data->empty() && (data->front() == '{' || data->front() == '[');
    req.headers.emplace_back("Content-Type", json_like ? "application/json" : "text/plain");
  }
  MOAT_TRY(HttpResponse resp, ctx.Send(req));
  if (resp.status == 401 && ctx.last_id_token_cached()) {
    // The service refused a token from the cache (e.g. the server's keys were reset): mint a
    // fresh one and send once more. A 401 means the request never reached the service.
    ctx.ForgetIdToken(uri);
    MOAT_TRY(token, ctx.IdToken(uri));
    req.headers[0].second = "Bearer " + token;
    MOAT_TRY(resp, ctx.Send(req));
  }
  ctx.out() << resp.body;
  if (!resp.body.empty() && resp.body.back() != '\n') ctx.out() << "\n";
  if (resp.status >= 400) {
    return MakeError(resp.status == 401   ? Code::kUnauthenticated
                     : resp.status == 403 ? Code::kPermissionDenied
                                          : Code::kUnknown,
                     "the service answered HTTP " + std::to_string(resp.status));
  }
  return Ok();
}

Status Proxy(Context& ctx) {
  MOAT_TRY(IamTarget t, ServiceTarget(ctx));
  if (ctx.env().proxy == nullptr) return Internal("this build has no local proxy");
  // An invoker may lack run.services.get; Moat's `:uri` answers anyone who may invoke.
  auto got = ctx.Call("GET", t.path);
  if (!got && got.error().code == Code::kPermissionDenied) got = ctx.Call("GET", t.path + ":uri");
  MOAT_TRY(js::value svc, std::move(got));
  std::string uri;
  if (svc.is_object()) {
    if (auto u = json::OptString(svc.as_object(), "uri"); u && *u) uri = **u;
  }
  if (uri.empty()) return FailedPrecondition("service `" + t.name + "` has no URL yet");
  while (!uri.empty() && uri.back() == '/') uri.pop_back();
  std::string port = ctx.Flag("port").value_or("8080");
  // Loopback only: anyone who can reach the proxy acts with the caller's identity.
  std::string addr = "127.0.0.1:" + port;
  ctx.err() << "Proxying to Moat service [" << t.name << "] at " << uri << "\nhttp://" << addr
            << " proxies to " << uri << " (Ctrl-C to stop)\n";
  ProxyOptions options{addr, uri, [&ctx, uri]() { return ctx.IdToken(uri); },
                       [&ctx](const std::string& line) { ctx.err() << line << std::endl; }};
  return ctx.env().proxy->Run(options);
}

Status Logs(Context& ctx) {
  MOAT_TRY(IamTarget t, ServiceTarget(ctx));
  std::string limit = ctx.Flag("limit").value_or("100");
  MOAT_TRY(js::value resp, ctx.Call("GET", "/moat/v1" + t.path.substr(3) + ":logs?limit=" + limit));
  js::array entries;
  if (resp.is_object()) {
    if (auto* e = resp.as_object().if_contains("entries"); e && e->is_array()) {
      entries = e->as_array();
    }
  }
  return ctx.Print(entries);
}

const char* const kServiceHelp = "ID of the service, e.g. `hello`.";

}  // namespace

void AddRunCommands(CommandTree& tree) {
  tree.AddGroup({"run", "manage services gated by Cloud Run invocation IAM",
                 "Deploy services (an upstream URL or a command Moat supervises), control who "
                 "may invoke them, and call them with the right ID token."});
  tree.AddGroup({"run services", "list, describe, update, delete and call services", ""});
  tree.AddGroup({"run services logs", "read a service's logs", ""});

  const std::vector<ArgSpec> service_arg{{kServiceArg, kServiceHelp}};
  tree.Add({"run deploy", "create or update a service and print its URL",
            "Creates the service if it does not exist (PATCH with allowMissing=true), otherwise "
            "updates it, keeping settings not named by flags. The service is private unless "
            "--allow-unauthenticated is given.",
            service_arg, ServiceFlags(true), "", false,
            "moat run deploy hello --upstream=http://127.0.0.1:9000 --region=local\n"
            "moat run deploy api --command='python3 -m http.server $PORT' --set-env-vars=A=1\n"
            "moat run deploy web --source=. --allow-unauthenticated",
            false, [](Context& c) { return DeployOrUpdate(c, true); }});
  tree.Add({"run services list",
            "list services in a region",
            "",
            {},
            {},
            "table(name.basename():label=SERVICE, name.segment(3):label=REGION, uri:label=URL, "
            "lastModifier:label=LAST_DEPLOYED_BY, updateTime:label=LAST_DEPLOYED_AT)",
            true,
            "moat run services list --region=local --format='value(uri)'",
            false,
            List});
  tree.Add({"run services describe",
            "show a service",
            "",
            service_arg,
            {},
            "yaml",
            false,
            "moat run services describe hello --format='value(uri)'",
            false,
            Describe});
  tree.Add({"run services delete",
            "delete a service",
            "Asks for confirmation unless --quiet is given.",
            service_arg,
            {},
            "",
            false,
            "",
            false,
            Delete});
  tree.Add({"run services update", "change settings of an existing service", "", service_arg,
            ServiceFlags(false), "", false,
            "moat run services update hello --update-env-vars=LOG=debug", false,
            [](Context& c) { return DeployOrUpdate(c, false); }});
  tree.Add({"run services get-iam-policy",
            "show a service's IAM policy",
            "",
            service_arg,
            {},
            "yaml",
            false,
            "",
            false,
            [](Context& c) -> Status {
              MOAT_TRY(IamTarget t, ServiceTarget(c));
              return GetIamPolicyCommand(c, t);
            }});
  tree.Add({"run services set-iam-policy",
            "replace a service's IAM policy from a file",
            "FILE is JSON or YAML, as printed by get-iam-policy. Keep its `etag`: if the policy "
            "changed since, the call fails with ABORTED instead of overwriting the change.",
            {{kServiceArg, kServiceHelp}, {"POLICY_FILE", "JSON or YAML policy file."}},
            {},
            "yaml",
            false,
            "moat run services get-iam-policy hello > policy.yaml\n"
            "# edit policy.yaml\n"
            "moat run services set-iam-policy hello policy.yaml",
            false,
            [](Context& c) -> Status {
              MOAT_TRY(IamTarget t, ServiceTarget(c));
              return SetIamPolicyCommand(c, t, c.Arg("POLICY_FILE"));
            }});
  tree.Add({"run services add-iam-policy-binding", "add an IAM policy binding to a service",
            "Adds MEMBER to ROLE atomically on the server (no read-modify-write race).",
            service_arg, BindingFlags(), "yaml", false,
            "moat run services add-iam-policy-binding hello \\\n"
            "    --member=serviceAccount:caller@p.iam.gserviceaccount.com \\\n"
            "    --role=roles/run.invoker",
            false, [](Context& c) -> Status {
              MOAT_TRY(IamTarget t, ServiceTarget(c));
              return ModifyBindingCommand(c, t, true);
            }});
  tree.Add({"run services remove-iam-policy-binding", "remove an IAM policy binding from a service",
            "", service_arg, BindingFlags(), "yaml", false,
            "moat run services remove-iam-policy-binding hello --member=allUsers "
            "--role=roles/run.invoker",
            false, [](Context& c) -> Status {
              MOAT_TRY(IamTarget t, ServiceTarget(c));
              return ModifyBindingCommand(c, t, false);
            }});
  tree.Add({"run services call",
            "invoke a service as the active identity",
            "Mints an ID token whose audience is the service URL (for a service account: the "
            "token endpoint with a signed assertion, or generateIdToken when impersonating), "
            "sends the request, prints the response body, and exits 1 showing the status when "
            "the service answers 4xx or 5xx.",
            service_arg,
            {{"data", FlagKind::kString, "Request body (the method defaults to POST).", "DATA"},
             {"method", FlagKind::kString, "HTTP method; default GET, or POST with --data."},
             {"header", FlagKind::kRepeated, "Extra request header; repeatable.", "'NAME: VALUE'"},
             {"path", FlagKind::kString, "Path and query to request; default /.", "PATH"}},
            "",
            false,
            "moat run services call hello --data='{\"name\":\"moat\"}'",
            false,
            Call});
  tree.Add({"run services proxy",
            "serve a service locally, adding your ID token to each request",
            "Listens on 127.0.0.1:PORT (loopback only: whoever reaches the proxy acts as you) "
            "and forwards every request (method, path, query, headers, body up to 32 MiB) to "
            "the service URL with `Authorization: Bearer ID_TOKEN`, replacing any "
            "Authorization the local client sent. The ID token's audience is the service URL; "
            "it is minted for the active identity (or --impersonate-service-account) and "
            "renewed five minutes before it expires. Runs until Ctrl-C or SIGTERM, then exits "
            "0. Like `gcloud run services proxy`.",
            service_arg,
            {{"port", FlagKind::kInt, "Local port; default 8080.", "PORT"}},
            "",
            false,
            "moat run services proxy hello --port=3000 &\ncurl http://127.0.0.1:3000/",
            false,
            Proxy});
  tree.Add({"run services logs read",
            "read a service's recent log lines",
            "",
            service_arg,
            {{"limit", FlagKind::kInt, "Maximum number of lines; default 100."}},
            "value(timestamp,severity,textPayload)",
            true,
            "",
            false,
            Logs});
}

}  // namespace moat::cli
