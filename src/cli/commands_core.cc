// `moat auth …`, `moat config …`, `moat projects …` and the hidden `moat help-markdown`.
#include <algorithm>

#include "cli/context.h"
#include "common/json.h"
#include "common/time.h"

namespace moat::cli {
namespace {

namespace js = boost::json;

Status ActivateServiceAccount(Context& ctx) {
  std::string file = ctx.Flag("key-file").value_or("");
  MOAT_TRY(std::string text, ReadFile(file));
  MOAT_TRY(js::object key, json::ParseObject(text, "key file `" + file + "`"));
  MOAT_TRY(std::string email, ValidateKeyFile(key));
  if (std::string a = ctx.Arg("ACCOUNT"); !a.empty() && a != email) {
    return InvalidArgument("the key file is for `" + email + "`, not `" + a + "`");
  }
  ctx.config().PutAccount(email, js::object{{"type", "service_account"}, {"key", key}});
  MOAT_CHECK_OK(ctx.config().Set("account", email));
  MOAT_CHECK_OK(ctx.config().Save());
  // Tokens minted for the previous account (or an older key of this one) are not reused.
  MOAT_CHECK_OK(TokenCache::Remove(ctx.config().dir()));
  ctx.err() << "Activated service account credentials for: [" << email << "]\n";
  return Ok();
}

Status Login(Context& ctx) {
  std::string user = ctx.Arg("USER");
  if (user.find('@') == std::string::npos) {
    return ctx.UsageError("USER must be an email address, not `" + user + "`");
  }
  std::string password;
  if (auto file = ctx.Flag("password-file")) {
    MOAT_TRY(password, ReadFile(*file));
    while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) {
      password.pop_back();
    }
  } else {
    MOAT_TRY(password, ctx.ReadSecretLine("Password for " + user + ": "));
  }
  if (password.empty()) return InvalidArgument("the password is empty");
  MOAT_TRY(js::value resp,
           ctx.PostForm("/token",
                        {{"grant_type", "password"}, {"username", user}, {"password", password}}));
  std::optional<std::string> refresh;
  if (resp.is_object()) {
    if (auto r = json::OptString(resp.as_object(), "refresh_token"); r && *r) refresh = **r;
  }
  if (!refresh) return Unauthenticated("the token endpoint returned no refresh_token");
  ctx.config().PutAccount(user, js::object{{"type", "user"}, {"refresh_token", *refresh}});
  MOAT_CHECK_OK(ctx.config().Set("account", user));
  MOAT_CHECK_OK(ctx.config().Save());
  MOAT_CHECK_OK(TokenCache::Remove(ctx.config().dir()));
  ctx.err() << "You are now logged in as [" << user << "].\n";
  return Ok();
}

Status AuthList(Context& ctx) {
  js::array rows;
  std::string active = ctx.config().Get("account").value_or("");
  for (const auto& kv : ctx.config().accounts()) {
    std::string type = "unknown";
    if (kv.value().is_object()) {
      if (auto t = json::OptString(kv.value().as_object(), "type"); t && *t) type = **t;
    }
    rows.push_back(js::object{
        {"account", kv.key()}, {"active", kv.key() == active ? "*" : ""}, {"type", type}});
  }
  if (active.empty()) {
    if (auto cred = ctx.ActiveCredential(); cred && cred->source == "MOAT_HOME") {
      rows.push_back(js::object{{"account", cred->email},
                                {"active", "*"},
                                {"type", "service_account ($MOAT_HOME/admin-key.json)"}});
    }
  }
  if (rows.empty()) {
    ctx.err() << "No credentialed accounts.\n\nTo sign in, run:\n"
                 "  $ moat auth activate-service-account --key-file=FILE\n"
                 "  $ moat auth login USER\n";
    return Ok();
  }
  return ctx.Print(rows);
}

Status Revoke(Context& ctx) {
  std::vector<std::string> targets;
  if (ctx.Bool("all").value_or(false)) {
    for (const auto& kv : ctx.config().accounts()) targets.emplace_back(kv.key());
  } else if (std::string a = ctx.Arg("ACCOUNT"); !a.empty()) {
    targets.push_back(a);
  } else if (auto a = ctx.config().Get("account")) {
    targets.push_back(*a);
  } else {
    return ctx.UsageError("no account to revoke; pass ACCOUNT or `--all`");
  }
  for (const std::string& t : targets) {
    if (!ctx.config().RemoveAccount(t)) {
      return NotFound("no credentials for `" + t + "`; see `moat auth list`");
    }
    if (ctx.config().Get("account") == t) ctx.config().Unset("account");
    ctx.Cache().EraseAccount(t);
  }
  MOAT_CHECK_OK(ctx.config().Save());
  MOAT_CHECK_OK(ctx.Cache().Save(ctx.NowUnix()));
  ctx.err() << "Revoked credentials:\n";
  for (const std::string& t : targets) ctx.err() << " - " << t << "\n";
  return Ok();
}

Status PrintIdentityToken(Context& ctx) {
  std::string audience = ctx.Flag("audiences").value_or(ctx.Endpoint());
  MOAT_TRY(std::string token, ctx.IdToken(audience));
  ctx.out() << token << "\n";
  return Ok();
}

Status PrintAccessToken(Context& ctx) {
  MOAT_TRY(std::string token, ctx.AccessToken());
  ctx.out() << token << "\n";
  return Ok();
}

Result<std::string> Property(Context& ctx) {
  std::string name = ctx.Arg("PROPERTY");
  auto canonical = CanonicalProperty(name);
  if (!canonical) {
    std::string msg = "unknown property `" + name + "`";
    if (auto m = ClosestMatch(name, PropertyNames())) msg += "; did you mean `" + *m + "`?";
    return ctx.UsageError(msg +
                          " Known: account, api_endpoint, impersonate_service_account, "
                          "project, region");
  }
  return *canonical;
}

Status ConfigSet(Context& ctx) {
  MOAT_TRY(std::string name, Property(ctx));
  MOAT_CHECK_OK(ctx.config().Set(name, ctx.Arg("VALUE")));
  MOAT_CHECK_OK(ctx.config().Save());
  ctx.err() << "Updated property [" << name << "].\n";
  return Ok();
}

Status ConfigGet(Context& ctx) {
  MOAT_TRY(std::string name, Property(ctx));
  if (auto v = ctx.config().Get(name)) {
    ctx.out() << *v << "\n";
  } else if (name == "api_endpoint") {
    ctx.out() << ctx.Endpoint() << "\n";
  } else {
    ctx.err() << "(unset)\n";
  }
  return Ok();
}

Status ConfigUnset(Context& ctx) {
  MOAT_TRY(std::string name, Property(ctx));
  ctx.config().Unset(name);
  MOAT_CHECK_OK(ctx.config().Save());
  ctx.err() << "Unset property [" << name << "].\n";
  return Ok();
}

Status ConfigList(Context& ctx) {
  js::object props;
  for (const auto& [k, v] : ctx.config().properties()) props[k] = v;
  if (ctx.Flag("format")) return ctx.Print(props);
  for (const auto& [k, v] : ctx.config().properties()) ctx.out() << k << " = " << v << "\n";
  ctx.err() << "\nYour active configuration is in [" << ctx.config().dir() << "]; API endpoint "
            << ctx.Endpoint() << ".\n";
  return Ok();
}

IamTarget ProjectTarget(Context& ctx) {
  std::string p = ctx.Arg("PROJECT_ID");
  return IamTarget{"project", p, "/v1/projects/" + Escape(p), IamTarget::Get::kPostBody};
}

// `moat logging explain REQUEST_ID`: the gateway's recorded decision for one request — which
// token check failed, or which permission was missing and the bindings that came closest.
Status LoggingExplain(Context& ctx) {
  std::string id = ctx.Arg("REQUEST_ID");
  if (id.empty()) return ctx.UsageError("pass the REQUEST_ID (the X-Request-Id the caller got)");
  MOAT_TRY(js::value r, ctx.Call("GET", "/moat/v1/requests/" + Escape(id) + ":explain"));
  if (ctx.Flag("format")) return ctx.Print(r);
  const js::array* entries = nullptr;
  if (r.is_object()) {
    if (auto e = json::OptArray(r.as_object(), "entries"); e && *e) entries = *e;
  }
  if (entries == nullptr || entries->empty()) return ctx.Print(r);
  auto str = [](const js::object& o, std::string_view key) -> std::string {
    auto v = json::OptString(o, key);
    return v && *v ? **v : std::string();
  };
  std::ostream& out = ctx.out();
  for (const js::value& v : *entries) {
    if (!v.is_object()) continue;
    const js::object& e = v.as_object();
    js::object details;
    if (const js::value* d = e.if_contains("details"); d && d->is_object()) {
      details = d->as_object();
    }
    std::string decision = str(details, "decision");
    if (decision.empty()) decision = str(e, "status");
    std::string http_status;
    if (auto h = json::OptInt(details, "httpStatus"); h && *h) {
      http_status = " (HTTP " + std::to_string(**h) + ")";
    }
    std::string principal = str(e, "principal");
    std::string permission = str(details, "permission");
    out << "request:    " << str(e, "requestId") << "\n"
        << "time:       " << str(e, "time") << "\n"
        << "decision: " << decision << http_status << "\n"
        << "service:    " << str(e, "resource") << "\n"
        << "request:    " << str(details, "httpMethod") << " " << str(details, "host") << "\n"
        << "principal:  " << (principal.empty() ? "(none: no valid token)" : principal) << "\n"
        << "permission: " << permission << "\n";
    if (std::string reason = str(details, "reason"); !reason.empty()) {
      out << "reason:     " << reason << "\n";
    }
    // For a caller who was identified but refused, ask the IAM troubleshooter which bindings
    // came closest (needs getIamPolicy on the project; skipped quietly without it).
    bool identified =
        principal.rfind("user:", 0) == 0 || principal.rfind("serviceAccount:", 0) == 0;
    if (decision == "DENY" && identified && !permission.empty()) {
      js::object body{
          {"principal", principal}, {"resource", str(e, "resource")}, {"permission", permission}};
      auto t = ctx.Call("POST", "/moat/v1/iam:troubleshoot", js::value(body));
      if (t && t->is_object()) {
        const js::object* d = nullptr;
        if (auto x = json::OptObject(t->as_object(), "decision"); x && *x) d = *x;
        if (d != nullptr) {
          if (std::string why = str(*d, "explanation"); !why.empty()) {
            out << "now:        " << why << "\n";
          }
          if (auto c = json::OptArray(*d, "closest"); c && *c && !(*c)->empty()) {
            out << "closest bindings:\n";
            for (const js::value& b : **c) {
              if (!b.is_object()) continue;
              const js::object& bo = b.as_object();
              out << "  - " << str(bo, "role");
              if (std::string m = str(bo, "member"); !m.empty()) out << " for " << m;
              out << " on " << str(bo, "resource") << ": " << str(bo, "reason") << "\n";
            }
          }
        }
      } else if (!t) {
        out << "closest bindings: not shown (" << t.error().message << ")\n";
      }
    }
    out << "\n";
  }
  return Ok();
}

// `moat logging read`: audit log entries, newest first.
Status LoggingRead(Context& ctx) {
  std::string q = "?pageSize=" + ctx.Flag("limit").value_or("50");
  auto add = [&q](std::string_view key, const std::optional<std::string>& v) {
    if (v && !v->empty()) q += "&" + std::string(key) + "=" + Escape(*v);
  };
  add("resource", ctx.Flag("resource"));
  add("principal", ctx.Flag("principal"));
  if (auto k = ctx.Flag("kind")) {
    std::string kind = *k;
    std::transform(kind.begin(), kind.end(), kind.begin(), [](unsigned char c) {
      return c == '-' ? '_' : static_cast<char>(std::toupper(c));
    });
    if (kind != "ADMIN_ACTIVITY" && kind != "DATA_ACCESS") {
      return ctx.UsageError("flag `--kind` must be admin-activity or data-access, not `" + *k +
                            "`");
    }
    add("kind", kind);
  }
  if (auto f = ctx.Flag("freshness")) {
    auto d = ParseFlagDuration(*f);
    if (!d || d->count() <= 0) {
      return ctx.UsageError("flag `--freshness` must be a duration such as 30m, 1h or 7d, not `" +
                            *f + "`");
    }
    int64_t start = ctx.NowUnix() - std::chrono::duration_cast<std::chrono::seconds>(*d).count();
    add("startTime",
        FormatRfc3339(std::chrono::system_clock::time_point(std::chrono::seconds(start))));
  }
  MOAT_TRY(js::value r, ctx.Call("GET", "/moat/v1/auditLogs" + q));
  js::array entries;
  if (r.is_object()) {
    if (const auto* e = r.as_object().if_contains("entries"); e && e->is_array()) {
      entries = e->as_array();
    }
  }
  return ctx.Print(js::value(std::move(entries)));
}

}  // namespace

void AddCoreCommands(CommandTree& tree) {
  tree.AddGroup({"auth", "manage credentials the CLI acts with", ""});
  tree.AddGroup({"config", "view and edit CLI properties",
                 "Properties live in $MOAT_CONFIG/config (default ~/.config/moat/config). "
                 "$MOAT_API_ENDPOINT overrides api_endpoint."});
  tree.AddGroup({"projects", "manage project-level IAM policies", ""});
  tree.AddGroup({"logging", "read Moat's audit log and explain gateway decisions", ""});
  tree.Add({"logging explain",
            "explain why the gateway allowed or refused one request",
            "Looks up the gateway's decision for REQUEST_ID (the X-Request-Id header of the "
            "response the caller got) in the audit log: which token check failed, or which "
            "permission was missing and which bindings came closest. Denials are always "
            "recorded; allowed requests only when the server runs with --audit-allowed. Needs "
            "moat.auditLogs.list on the service's project. The default output names the "
            "decision, the principal, the check that failed and, for an identified caller who "
            "was refused, the bindings that came closest (from the IAM troubleshooter, shown "
            "when you hold resourcemanager.projects.getIamPolicy on the project); "
            "--format=json prints the API's answer unchanged.",
            {{"REQUEST_ID", "The X-Request-Id of the gateway's response."}},
            {},
            "yaml",
            false,
            "moat logging explain 3f2a9c0d1e4b5a67",
            false,
            LoggingExplain});
  tree.Add({"logging read",
            "list audit log entries, newest first",
            "Admin activity (every change, with who and what) and data access (gateway "
            "decisions). Needs moat.auditLogs.list on the project (or the root).",
            {},
            {{"resource", FlagKind::kString, "Only entries about this resource name.", "NAME"},
             {"principal", FlagKind::kString,
              "Only entries by this principal, e.g. "
              "serviceAccount:sa@p.iam.gserviceaccount.com.",
              "PRINCIPAL"},
             {"kind", FlagKind::kString, "admin-activity or data-access.", "KIND"},
             {"freshness", FlagKind::kString, "Only entries newer than this, e.g. 1h or 7d.",
              "DURATION"},
             {"limit", FlagKind::kInt, "At most this many entries; default 50.", "N"}},
            "table(time,kind,principal,method,resource,status)",
            true,
            "moat logging read --kind=data-access --freshness=1h",
            false,
            LoggingRead});

  tree.Add({"auth activate-service-account",
            "act as a service account using its key file",
            "Stores the key file in the CLI's credentials (mode 0600) and makes the account "
            "active. API calls are authenticated with short self-signed JWTs.",
            {{"ACCOUNT", "Optional: the key file's client_email, as a check.", false}},
            {{"key-file", FlagKind::kString, "Service-account JSON key file.", "FILE", true}},
            "",
            false,
            "moat auth activate-service-account --key-file=key.json",
            false,
            ActivateServiceAccount});
  tree.Add({"auth login",
            "sign in as a user of Moat's built-in directory",
            "Exchanges the password for a refresh token (the password itself is not stored). "
            "Without --password-file the password is read from standard input.",
            {{"USER", "The user's email."}},
            {{"password-file", FlagKind::kString, "File holding the password.", "FILE"}},
            "",
            false,
            "moat auth login alice@example.com --password-file=pw.txt",
            false,
            Login});
  tree.Add({"auth list",
            "list credentialed accounts",
            "",
            {},
            {},
            "table(active:label=ACTIVE, account:label=ACCOUNT, type:label=TYPE)",
            true,
            "",
            false,
            AuthList});
  tree.Add({"auth revoke",
            "forget stored credentials",
            "",
            {{"ACCOUNT", "Account to forget; default the active one.", false}},
            {{"all", FlagKind::kBool, "Forget every account."}},
            "",
            false,
            "",
            false,
            Revoke});
  tree.Add({"auth print-identity-token",
            "print an ID token for the active identity",
            "The token's audience is --audiences (default: the API endpoint). Use it as "
            "`Authorization: Bearer TOKEN` when calling a service.",
            {},
            {{"audiences", FlagKind::kString, "Audience of the token, e.g. the service URL.",
              "AUDIENCE"}},
            "",
            false,
            "curl -H \"Authorization: Bearer $(moat auth print-identity-token "
            "--audiences=$URL)\" $URL",
            false,
            PrintIdentityToken});
  tree.Add({"auth print-access-token",
            "print a token for calling Moat's API",
            "",
            {},
            {},
            "",
            false,
            "",
            false,
            PrintAccessToken});

  const std::vector<ArgSpec> prop{
      {"PROPERTY", "account, api_endpoint, impersonate_service_account, project or region."}};
  tree.Add({"config set",
            "set a property",
            "",
            {prop[0], {"VALUE", "The value."}},
            {},
            "",
            false,
            "moat config set project my-project\nmoat config set region local\n"
            "moat config set api_endpoint http://127.0.0.1:8081",
            false,
            ConfigSet});
  tree.Add({"config get", "print a property", "", prop, {}, "", false, "", false, ConfigGet});
  tree.Add({"config unset", "remove a property", "", prop, {}, "", false, "", false, ConfigUnset});
  tree.Add({"config list",
            "print every property that is set",
            "",
            {},
            {},
            "yaml",
            false,
            "",
            false,
            ConfigList});

  const std::vector<ArgSpec> project{{"PROJECT_ID", "The project."}};
  tree.Add({"projects get-iam-policy",
            "show a project's IAM policy",
            "Project-level bindings apply to every service and service account in the project.",
            project,
            {},
            "yaml",
            false,
            "",
            false,
            [](Context& c) { return GetIamPolicyCommand(c, ProjectTarget(c)); }});
  tree.Add(
      {"projects set-iam-policy",
       "replace a project's IAM policy from a file",
       "",
       {project[0], {"POLICY_FILE", "JSON or YAML policy file."}},
       {},
       "yaml",
       false,
       "",
       false,
       [](Context& c) { return SetIamPolicyCommand(c, ProjectTarget(c), c.Arg("POLICY_FILE")); }});
  tree.Add({"projects add-iam-policy-binding", "add an IAM policy binding to a project", "",
            project, BindingFlags(), "yaml", false,
            "moat projects add-iam-policy-binding my-project --member=group:devs@example.com "
            "--role=roles/run.invoker",
            false, [](Context& c) { return ModifyBindingCommand(c, ProjectTarget(c), true); }});
  tree.Add({"projects remove-iam-policy-binding", "remove an IAM policy binding from a project", "",
            project, BindingFlags(), "yaml", false, "", false,
            [](Context& c) { return ModifyBindingCommand(c, ProjectTarget(c), false); }});

  tree.Add({"help-markdown",
            "print every command's help as Markdown (docs/cli.md)",
            "",
            {},
            {},
            "",
            false,
            "",
            true,
            [](Context& c) -> Status {
              c.out() << Tree().Markdown();
              return Ok();
            }});
}

}  // namespace moat::cli
