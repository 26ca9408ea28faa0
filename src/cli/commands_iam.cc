// IAM policy commands shared by every resource kind, and `moat iam …`: service accounts,
// keys, custom roles, the built-in directory (users, groups) and troubleshoot.
#include <algorithm>
#include <boost/json/value_from.hpp>
#include <regex>

#include "cli/context.h"
#include "cli/yaml.h"
#include "common/base64.h"
#include "common/json.h"

namespace moat::cli {
namespace {

namespace js = boost::json;

std::string Capitalized(std::string s) {
  if (!s.empty()) s[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
  return s;
}

// gcloud's --condition: "expression=EXPR,title=TITLE[,description=DESC]" or "None".
Result<std::optional<js::object>> ParseCondition(Context& ctx) {
  if (auto file = ctx.Flag("condition-from-file")) {
    MOAT_TRY(std::string text, ReadFile(*file));
    MOAT_TRY(js::value v, ParseYaml(text, "condition file"));
    if (!v.is_object()) return ctx.UsageError("the condition file must hold a map");
    return std::optional<js::object>(v.as_object());
  }
  auto spec = ctx.Flag("condition");
  if (!spec || *spec == "None" || *spec == "none") return std::optional<js::object>();
  static const char* const kKeys[] = {"expression", "title", "description", "location"};
  // Find each "key=" at the start or right after a comma; values run to the next such key.
  std::vector<std::pair<size_t, std::string>> starts;
  for (const char* key : kKeys) {
    std::string needle = std::string(key) + "=";
    for (size_t p = spec->find(needle); p != std::string::npos; p = spec->find(needle, p + 1)) {
      if (p == 0 || (*spec)[p - 1] == ',') starts.emplace_back(p, key);
    }
  }
  std::sort(starts.begin(), starts.end());
  if (starts.empty() || starts[0].first != 0) {
    return ctx.UsageError(
        "`--condition` takes `expression=EXPR,title=TITLE[,description=DESC]` "
        "or `None`");
  }
  js::object cond;
  for (size_t i = 0; i < starts.size(); ++i) {
    size_t vb = starts[i].first + starts[i].second.size() + 1;
    size_t ve = i + 1 < starts.size() ? starts[i + 1].first - 1 : spec->size();
    if (cond.contains(starts[i].second)) {
      return ctx.UsageError("`--condition` names `" + starts[i].second + "` twice");
    }
    cond[starts[i].second] = spec->substr(vb, ve - vb);
  }
  if (!cond.contains("expression") || !cond.contains("title")) {
    return ctx.UsageError("`--condition` needs both `expression=` and `title=`");
  }
  return std::optional<js::object>(std::move(cond));
}

void PrintUpdated(Context& ctx, const IamTarget& t) {
  ctx.err() << "Updated IAM policy for " << t.kind << " [" << t.name << "].\n";
}

// --- service accounts -------------------------------------------------------------------

Result<std::string> SaPath(Context& ctx, const std::string& email_or_id) {
  std::string project;
  static const std::string kSuffix = ".iam.gserviceaccount.com";
  size_t at = email_or_id.find('@');
  if (at != std::string::npos && email_or_id.size() > kSuffix.size() &&
      email_or_id.compare(email_or_id.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0) {
    project = email_or_id.substr(at + 1, email_or_id.size() - kSuffix.size() - at - 1);
  } else {
    MOAT_TRY(project, ctx.Project());
  }
  if (email_or_id.empty()) return ctx.UsageError("a service account email is required");
  return "/v1/projects/" + Escape(project) + "/serviceAccounts/" + Escape(email_or_id);
}

Result<IamTarget> SaTarget(Context& ctx) {
  std::string email = ctx.Arg("SERVICE_ACCOUNT");
  MOAT_TRY(std::string path, SaPath(ctx, email));
  return IamTarget{"service account", email, path, IamTarget::Get::kPostQuery};
}

Result<js::array> ListAll(Context& ctx, const std::string& path, const char* field) {
  js::array all;
  std::string token;
  for (int page = 0; page < 1000; ++page) {
    std::string sep = path.find('?') == std::string::npos ? "?" : "&";
    MOAT_TRY(js::value resp,
             ctx.Call("GET", path + sep + "pageSize=100" +
                                 (token.empty() ? "" : "&pageToken=" + Escape(token))));
    if (!resp.is_object()) break;
    if (auto* a = resp.as_object().if_contains(field); a && a->is_array()) {
      for (auto& v : a->as_array()) all.push_back(v);
    }
    MOAT_TRY(auto next, json::OptString(resp.as_object(), "nextPageToken"));
    if (!next || next->empty()) break;
    token = *next;
  }
  return all;
}

Status SaCreate(Context& ctx) {
  std::string id = ctx.Arg("NAME");
  static const std::regex kId("[a-z]([-a-z0-9]*[a-z0-9])?");
  if (id.size() < 6 || id.size() > 30 || !std::regex_match(id, kId)) {
    return ctx.UsageError("service account name `" + id +
                          "` must be 6-30 lowercase letters, digits and hyphens, starting with "
                          "a letter");
  }
  MOAT_TRY(std::string project, ctx.Project());
  js::object sa;
  if (auto d = ctx.Flag("display-name")) sa["displayName"] = *d;
  if (auto d = ctx.Flag("description")) sa["description"] = *d;
  MOAT_TRY(js::value created,
           ctx.Call("POST", "/v1/projects/" + Escape(project) + "/serviceAccounts",
                    js::value(js::object{{"accountId", id}, {"serviceAccount", sa}})));
  ctx.err() << "Created service account [" << id << "].\n";
  if (ctx.Flag("format")) return ctx.Print(created);
  return Ok();
}

Status SaUpdate(Context& ctx) {
  MOAT_TRY(IamTarget t, SaTarget(ctx));
  js::object sa;
  std::vector<std::string> mask;
  if (auto d = ctx.Flag("display-name")) sa["displayName"] = *d, mask.push_back("displayName");
  if (auto d = ctx.Flag("description")) sa["description"] = *d, mask.push_back("description");
  if (mask.empty()) return ctx.UsageError("pass `--display-name` and/or `--description`");
  std::string joined = mask[0] + (mask.size() > 1 ? "," + mask[1] : "");
  MOAT_TRY(js::value updated,
           ctx.Call("PATCH", t.path,
                    js::value(js::object{{"serviceAccount", sa}, {"updateMask", joined}})));
  ctx.err() << "Updated service account [" << t.name << "].\n";
  return ctx.Print(updated);
}

Status SaSimple(Context& ctx, const char* verb, const char* past) {
  MOAT_TRY(IamTarget t, SaTarget(ctx));
  MOAT_TRY(js::value r, ctx.Call("POST", t.path + ":" + verb, js::value(js::object())));
  ctx.err() << past << " service account [" << t.name << "].\n";
  return Ok();
}

Status SaDelete(Context& ctx) {
  MOAT_TRY(IamTarget t, SaTarget(ctx));
  MOAT_CHECK_OK(ctx.Confirm("You are about to delete service account [" + t.name + "]."));
  MOAT_TRY(js::value r, ctx.Call("DELETE", t.path));
  ctx.err() << "Deleted service account [" << t.name << "].\n";
  return Ok();
}

Status SaUndelete(Context& ctx) {
  MOAT_TRY(std::string project, ctx.Project());
  std::string id = ctx.Arg("ACCOUNT_ID");
  MOAT_TRY(js::value r, ctx.Call("POST",
                                 "/v1/projects/" + Escape(project) + "/serviceAccounts/" +
                                     Escape(id) + ":undelete",
                                 js::value(js::object())));
  js::value restored = r;
  if (r.is_object()) {
    if (auto* a = r.as_object().if_contains("restoredAccount")) restored = *a;
  }
  ctx.err() << "Restored service account [" << id << "].\n";
  return ctx.Print(restored);
}

// --- keys --------------------------------------------------------------------------------

Result<std::string> KeyAccountPath(Context& ctx) {
  return SaPath(ctx, ctx.Flag("iam-account").value_or(""));
}

Status KeyCreate(Context& ctx) {
  MOAT_TRY(std::string sa, KeyAccountPath(ctx));
  std::string type = ctx.Flag("key-file-type").value_or("json");
  if (type != "json") return ctx.UsageError("only `--key-file-type=json` is supported");
  MOAT_TRY(js::value key,
           ctx.Call("POST", sa + "/keys",
                    js::value(js::object{{"privateKeyType", "TYPE_GOOGLE_CREDENTIALS_FILE"},
                                         {"keyAlgorithm", "KEY_ALG_RSA_2048"}})));
  auto data = key.is_object() ? json::OptString(key.as_object(), "privateKeyData")
                              : Result<std::optional<std::string>>(std::nullopt);
  if (!data || !*data) return Internal("the API returned a key without privateKeyData");
  std::optional<std::string> file = Base64Decode(**data);
  if (!file) return Internal("the API returned privateKeyData that is not base64");
  std::string out = ctx.Arg("KEY_FILE");
  if (out == "-") {
    ctx.out() << *file;
  } else {
    MOAT_CHECK_OK(WritePrivateFile(out, *file));
  }
  std::string name = key.as_object().contains("name") && key.at("name").is_string()
                         ? std::string(key.at("name").as_string())
                         : "";
  ctx.err() << "created key [" << name.substr(name.rfind('/') + 1) << "] of type [json] as [" << out
            << "] for [" << ctx.Flag("iam-account").value_or("") << "]\n";
  return Ok();
}

Status KeyList(Context& ctx) {
  MOAT_TRY(std::string sa, KeyAccountPath(ctx));
  std::string managed = ctx.Flag("managed-by").value_or("any");
  std::string q;
  if (managed == "user") {
    q = "?keyTypes=USER_MANAGED";
  } else if (managed == "system") {
    q = "?keyTypes=SYSTEM_MANAGED";
  } else if (managed != "any") {
    return ctx.UsageError("`--managed-by` must be user, system or any");
  }
  MOAT_TRY(js::value r, ctx.Call("GET", sa + "/keys" + q));
  js::array keys;
  if (r.is_object()) {
    if (auto* k = r.as_object().if_contains("keys"); k && k->is_array()) keys = k->as_array();
  }
  return ctx.Print(keys);
}

Status KeyOp(Context& ctx, const char* verb) {
  MOAT_TRY(std::string sa, KeyAccountPath(ctx));
  std::string id = ctx.Arg("KEY_ID");
  std::string path = sa + "/keys/" + Escape(id);
  if (std::string(verb) == "delete") {
    MOAT_CHECK_OK(ctx.Confirm("You are about to delete key [" + id + "] for service account [" +
                              ctx.Flag("iam-account").value_or("") + "]."));
    MOAT_TRY(js::value r, ctx.Call("DELETE", path));
    ctx.err() << "deleted key [" << id << "]\n";
    return Ok();
  }
  MOAT_TRY(js::value r, ctx.Call("POST", path + ":" + verb, js::value(js::object())));
  ctx.err() << Capitalized(verb) << "d key [" << id << "]\n";
  return Ok();
}

// --- roles -------------------------------------------------------------------------------

Result<std::string> RolePath(Context& ctx, const std::string& role) {
  if (role.rfind("roles/", 0) == 0) return "/v1/" + role;
  if (role.rfind("projects/", 0) == 0) return "/v1/" + role;
  MOAT_TRY(std::string project, ctx.Project());
  return "/v1/projects/" + Escape(project) + "/roles/" + Escape(role);
}

Status RoleList(Context& ctx) {
  std::string path = "/v1/roles";
  if (auto p = ctx.Flag("project")) path = "/v1/projects/" + Escape(*p) + "/roles";
  MOAT_TRY(js::array roles, ListAll(ctx, path, "roles"));
  return ctx.Print(roles);
}

Status RoleDescribe(Context& ctx) {
  MOAT_TRY(std::string path, RolePath(ctx, ctx.Arg("ROLE_ID")));
  MOAT_TRY(js::value r, ctx.Call("GET", path));
  return ctx.Print(r);
}

js::value StringArray(const std::vector<std::string>& v) { return js::value_from(v); }

Status RoleCreate(Context& ctx) {
  std::string id = ctx.Arg("ROLE_ID");
  MOAT_TRY(std::string project, ctx.Project());
  js::object role;
  if (auto t = ctx.Flag("title")) role["title"] = *t;
  if (auto d = ctx.Flag("description")) role["description"] = *d;
  if (auto s = ctx.Flag("stage")) role["stage"] = *s;
  role["includedPermissions"] = StringArray(ctx.List("permissions"));
  MOAT_TRY(js::value r, ctx.Call("POST", "/v1/projects/" + Escape(project) + "/roles",
                                 js::value(js::object{{"roleId", id}, {"role", role}})));
  ctx.err() << "Created role [" << id << "].\n";
  return ctx.Print(r);
}

Status RoleUpdate(Context& ctx) {
  MOAT_TRY(std::string path, RolePath(ctx, ctx.Arg("ROLE_ID")));
  MOAT_TRY(js::value current, ctx.Call("GET", path));
  if (!current.is_object()) return Internal("the API returned a role that is not an object");
  js::object role;
  std::vector<std::string> mask;
  for (const char* f : {"title", "description", "stage"}) {
    if (auto v = ctx.Flag(f)) role[f] = *v, mask.push_back(f);
  }
  bool perms_changed = false;
  std::vector<std::string> perms;
  if (auto* p = current.as_object().if_contains("includedPermissions"); p && p->is_array()) {
    for (auto& x : p->as_array())
      if (x.is_string()) perms.emplace_back(x.as_string());
  }
  if (ctx.Flag("permissions")) perms = ctx.List("permissions"), perms_changed = true;
  for (const std::string& a : ctx.List("add-permissions")) {
    if (std::find(perms.begin(), perms.end(), a) == perms.end()) perms.push_back(a);
    perms_changed = true;
  }
  for (const std::string& r : ctx.List("remove-permissions")) {
    std::erase(perms, r);
    perms_changed = true;
  }
  if (perms_changed) {
    role["includedPermissions"] = StringArray(perms);
    mask.push_back("includedPermissions");
  }
  if (mask.empty()) return ctx.UsageError("nothing to update; pass a flag such as `--title`");
  if (auto* e = current.as_object().if_contains("etag")) role["etag"] = *e;
  std::string joined;
  for (const std::string& m : mask) joined += (joined.empty() ? "" : ",") + m;
  MOAT_TRY(js::value r, ctx.Call("PATCH", path + "?updateMask=" + Escape(joined), js::value(role)));
  ctx.err() << "Updated role [" << ctx.Arg("ROLE_ID") << "].\n";
  return ctx.Print(r);
}

Status RoleDelete(Context& ctx, bool undelete) {
  MOAT_TRY(std::string path, RolePath(ctx, ctx.Arg("ROLE_ID")));
  js::value r;
  if (undelete) {
    MOAT_TRY(r, ctx.Call("POST", path + ":undelete", js::value(js::object())));
  } else {
    MOAT_CHECK_OK(ctx.Confirm("You are about to delete role [" + ctx.Arg("ROLE_ID") + "]."));
    MOAT_TRY(r, ctx.Call("DELETE", path));
  }
  ctx.err() << (undelete ? "Restored" : "Deleted") << " role [" << ctx.Arg("ROLE_ID") << "].\n";
  return ctx.Print(r);
}

// --- directory: users and groups ----------------------------------------------------------

Result<std::optional<std::string>> PasswordFromFile(Context& ctx) {
  auto file = ctx.Flag("password-file");
  if (!file) return std::optional<std::string>();
  MOAT_TRY(std::string pw, ReadFile(*file));
  while (!pw.empty() && (pw.back() == '\n' || pw.back() == '\r')) pw.pop_back();
  if (pw.empty()) return ctx.UsageError("the password file `" + *file + "` is empty");
  return std::optional<std::string>(pw);
}

Status DirCreate(Context& ctx, const std::string& collection, const char* noun) {
  std::string email = ctx.Arg("EMAIL");
  js::object body{{"email", email}};
  if (auto d = ctx.Flag("display-name")) body["displayName"] = *d;
  if (auto d = ctx.Flag("description")) body["description"] = *d;
  if (collection == "users") {
    MOAT_TRY(auto pw, PasswordFromFile(ctx));
    if (pw) body["password"] = *pw;
  }
  MOAT_TRY(js::value r, ctx.Call("POST", "/moat/v1/" + collection, js::value(body)));
  ctx.err() << "Created " << noun << " [" << email << "].\n";
  return ctx.Print(r);
}

Status DirUpdate(Context& ctx, const std::string& collection, const char* noun) {
  std::string email = ctx.Arg("EMAIL");
  js::object body;
  std::vector<std::string> mask;
  if (auto d = ctx.Flag("display-name")) body["displayName"] = *d, mask.push_back("displayName");
  if (auto d = ctx.Flag("description")) body["description"] = *d, mask.push_back("description");
  if (collection == "users") {
    MOAT_TRY(auto pw, PasswordFromFile(ctx));
    if (pw) body["password"] = *pw, mask.push_back("password");
    if (auto d = ctx.Bool("disabled")) body["disabled"] = *d, mask.push_back("disabled");
  }
  if (mask.empty())
    return ctx.UsageError("nothing to update; pass a flag such as `--display-name`");
  std::string joined;
  for (const std::string& m : mask) joined += (joined.empty() ? "" : ",") + m;
  MOAT_TRY(js::value r, ctx.Call("PATCH",
                                 "/moat/v1/" + collection + "/" + Escape(email) +
                                     "?updateMask=" + Escape(joined),
                                 js::value(body)));
  ctx.err() << "Updated " << noun << " [" << email << "].\n";
  return ctx.Print(r);
}

Status DirDelete(Context& ctx, const std::string& collection, const char* noun) {
  std::string email = ctx.Arg("EMAIL");
  MOAT_CHECK_OK(ctx.Confirm(std::string("You are about to delete ") + noun + " [" + email + "]."));
  MOAT_TRY(js::value r, ctx.Call("DELETE", "/moat/v1/" + collection + "/" + Escape(email)));
  ctx.err() << "Deleted " << noun << " [" << email << "].\n";
  return Ok();
}

Status GroupMember(Context& ctx, bool add) {
  std::string email = ctx.Arg("GROUP");
  std::string member = ctx.Flag("member").value_or("");
  MOAT_TRY(
      js::value r,
      ctx.Call("POST", "/moat/v1/groups/" + Escape(email) + (add ? ":addMember" : ":removeMember"),
               js::value(js::object{{"member", member}})));
  ctx.err() << (add ? "Added [" : "Removed [") << member << (add ? "] to" : "] from") << " group ["
            << email << "].\n";
  return ctx.Print(r);
}

void AddDirectory(CommandTree& tree, const std::string& collection, const char* noun,
                  const char* list_format) {
  std::string g = "iam " + collection;
  std::vector<ArgSpec> email{{"EMAIL", std::string("Email address of the ") + noun + "."}};
  std::vector<FlagSpec> fields{{"display-name", FlagKind::kString, "Display name."},
                               {"description", FlagKind::kString, "Description."}};
  if (collection == "users") {
    fields.push_back({"password-file", FlagKind::kString,
                      "File holding the password for `moat auth login` (first line). Users "
                      "without a password sign in through a trusted OIDC issuer.",
                      "FILE"});
  }
  std::vector<FlagSpec> update_fields = fields;
  if (collection == "users") {
    update_fields.push_back(
        {"disabled", FlagKind::kBool,
         "--disabled blocks sign-in and token use; --no-disabled restores it."});
  }
  tree.Add({g + " create", std::string("create a ") + noun, "", email, fields, "yaml", false, "",
            false, [collection, noun](Context& c) { return DirCreate(c, collection, noun); }});
  tree.Add({g + " list",
            std::string("list ") + collection,
            "",
            {},
            {},
            list_format,
            true,
            "",
            false,
            [collection](Context& c) -> Status {
              MOAT_TRY(js::array all, ListAll(c, "/moat/v1/" + collection, collection.c_str()));
              return c.Print(all);
            }});
  tree.Add({g + " describe",
            std::string("show a ") + noun,
            "",
            email,
            {},
            "yaml",
            false,
            "",
            false,
            [collection](Context& c) -> Status {
              MOAT_TRY(js::value r,
                       c.Call("GET", "/moat/v1/" + collection + "/" + Escape(c.Arg("EMAIL"))));
              return c.Print(r);
            }});
  tree.Add({g + " update", std::string("change a ") + noun, "", email, update_fields, "yaml", false,
            "", false, [collection, noun](Context& c) { return DirUpdate(c, collection, noun); }});
  tree.Add({g + " delete",
            std::string("delete a ") + noun,
            "Asks for confirmation unless --quiet is given.",
            email,
            {},
            "",
            false,
            "",
            false,
            [collection, noun](Context& c) { return DirDelete(c, collection, noun); }});
}

}  // namespace

std::vector<FlagSpec> BindingFlags() {
  return {
      {"member", FlagKind::kString,
       "Principal: user:EMAIL, serviceAccount:EMAIL, group:EMAIL, domain:DOMAIN, allUsers or "
       "allAuthenticatedUsers.",
       "PRINCIPAL", true},
      {"role", FlagKind::kString, "Role, e.g. roles/run.invoker or projects/P/roles/ROLE.", "ROLE",
       true},
      {"condition", FlagKind::kString,
       "Condition of the binding: `expression=EXPR,title=TITLE[,description=DESC]`, or `None`.",
       "KEY=VALUE,…"},
      {"condition-from-file", FlagKind::kString,
       "JSON or YAML file with the condition (expression, title, description).", "FILE"},
  };
}

Result<js::value> FetchIamPolicy(Context& ctx, const IamTarget& t) {
  switch (t.get) {
    case IamTarget::Get::kGetQuery:
      return ctx.Call("GET", t.path + ":getIamPolicy?options.requestedPolicyVersion=3");
    case IamTarget::Get::kPostQuery:
      return ctx.Call("POST", t.path + ":getIamPolicy?options.requestedPolicyVersion=3",
                      js::value(js::object()));
    case IamTarget::Get::kPostBody:
      break;
  }
  return ctx.Call("POST", t.path + ":getIamPolicy",
                  js::value(js::object{{"options", js::object{{"requestedPolicyVersion", 3}}}}));
}

Status GetIamPolicyCommand(Context& ctx, const IamTarget& t) {
  MOAT_TRY(js::value policy, FetchIamPolicy(ctx, t));
  return ctx.Print(policy);
}

Status SetIamPolicyCommand(Context& ctx, const IamTarget& t, const std::string& file) {
  MOAT_TRY(std::string text, ReadFile(file));
  MOAT_TRY(js::value v, ParseYaml(text, "policy file `" + file + "`"));
  if (!v.is_object()) return InvalidArgument("policy file `" + file + "` must hold a map");
  js::object policy = v.as_object();
  bool conditional = false;
  if (auto* b = policy.if_contains("bindings")) {
    if (!b->is_array()) return InvalidArgument("`bindings` in `" + file + "` must be a list");
    for (const js::value& binding : b->as_array()) {
      if (!binding.is_object()) {
        return InvalidArgument("each binding in `" + file + "` must be a map");
      }
      conditional = conditional || binding.as_object().contains("condition");
    }
  }
  if (conditional && !policy.contains("version")) policy["version"] = 3;
  if (!policy.contains("etag")) {
    ctx.err() << "WARNING: the policy file has no etag: it will overwrite the current policy "
                 "even if it changed since you read it.\n";
  }
  std::string mask = "bindings,etag";
  if (policy.contains("auditConfigs")) mask += ",auditConfigs";
  MOAT_TRY(js::value result,
           ctx.Call("POST", t.path + ":setIamPolicy",
                    js::value(js::object{{"policy", policy}, {"updateMask", mask}})));
  PrintUpdated(ctx, t);
  return ctx.Print(result);
}

Status ModifyBindingCommand(Context& ctx, const IamTarget& t, bool add) {
  std::string member = ctx.Flag("member").value_or("");
  std::string role = ctx.Flag("role").value_or("");
  if (member != "allUsers" && member != "allAuthenticatedUsers" &&
      member.find(':') == std::string::npos) {
    return ctx.UsageError("member `" + member +
                          "` needs a type prefix such as `user:`, `serviceAccount:` or "
                          "`group:` (or is `allUsers` / `allAuthenticatedUsers`)");
  }
  if (role.rfind("roles/", 0) != 0 && role.rfind("projects/", 0) != 0 &&
      role.rfind("organizations/", 0) != 0) {
    return ctx.UsageError("role `" + role +
                          "` must look like `roles/run.invoker` or "
                          "`projects/PROJECT/roles/ROLE`");
  }
  MOAT_TRY(std::optional<js::object> condition, ParseCondition(ctx));
  js::object body{{"member", member}, {"role", role}};
  if (condition) body["condition"] = *condition;
  MOAT_TRY(js::value resp,
           ctx.Call("POST", t.path + (add ? ":addIamPolicyBinding" : ":removeIamPolicyBinding"),
                    js::value(body)));
  js::value policy = resp;
  if (resp.is_object()) {
    if (auto* p = resp.as_object().if_contains("policy")) policy = *p;
  }
  PrintUpdated(ctx, t);
  return ctx.Print(policy);
}

void AddIamCommands(CommandTree& tree) {
  tree.AddGroup({"iam", "manage service accounts, keys, roles, users and groups", ""});
  tree.AddGroup({"iam service-accounts", "create and manage service accounts", ""});
  tree.AddGroup({"iam service-accounts keys", "create and manage service-account keys", ""});
  tree.AddGroup({"iam roles", "inspect predefined roles and manage custom roles", ""});
  tree.AddGroup({"iam users", "manage users of Moat's built-in directory", ""});
  tree.AddGroup({"iam groups", "manage groups of Moat's built-in directory", ""});

  const std::vector<ArgSpec> sa{{"SERVICE_ACCOUNT", "Email of the service account."}};
  const std::vector<FlagSpec> sa_fields{{"display-name", FlagKind::kString, "Display name."},
                                        {"description", FlagKind::kString, "Description."}};
  const std::string p = "iam service-accounts ";
  tree.Add({p + "create",
            "create a service account",
            "The email is NAME@PROJECT.iam.gserviceaccount.com.",
            {{"NAME", "Account id: 6-30 lowercase letters, digits and hyphens."}},
            sa_fields,
            "yaml",
            false,
            "moat iam service-accounts create caller --display-name='Caller'",
            false,
            SaCreate});
  tree.Add({p + "list",
            "list service accounts of a project",
            "",
            {},
            {},
            "table(displayName:label='DISPLAY NAME', email:label=EMAIL, disabled:label=DISABLED)",
            true,
            "",
            false,
            [](Context& c) -> Status {
              MOAT_TRY(std::string project, c.Project());
              MOAT_TRY(
                  js::array all,
                  ListAll(c, "/v1/projects/" + Escape(project) + "/serviceAccounts", "accounts"));
              return c.Print(all);
            }});
  tree.Add({p + "describe",
            "show a service account",
            "",
            sa,
            {},
            "yaml",
            false,
            "",
            false,
            [](Context& c) -> Status {
              MOAT_TRY(IamTarget t, SaTarget(c));
              MOAT_TRY(js::value r, c.Call("GET", t.path));
              return c.Print(r);
            }});
  tree.Add({p + "update", "change a service account's display name or description", "", sa,
            sa_fields, "yaml", false, "", false, SaUpdate});
  tree.Add({p + "disable",
            "disable a service account",
            "Its tokens stop working and no new ones are issued until it is enabled.",
            sa,
            {},
            "",
            false,
            "",
            false,
            [](Context& c) { return SaSimple(c, "disable", "Disabled"); }});
  tree.Add({p + "enable",
            "enable a disabled service account",
            "",
            sa,
            {},
            "",
            false,
            "",
            false,
            [](Context& c) { return SaSimple(c, "enable", "Enabled"); }});
  tree.Add({p + "delete",
            "delete a service account",
            "Deleted accounts can be restored with `undelete` for 30 days.",
            sa,
            {},
            "",
            false,
            "",
            false,
            SaDelete});
  tree.Add({p + "undelete",
            "restore a deleted service account",
            "",
            {{"ACCOUNT_ID", "The deleted account's unique numeric id."}},
            {},
            "yaml",
            false,
            "",
            false,
            SaUndelete});
  tree.Add({p + "get-iam-policy",
            "show who may use or manage a service account",
            "",
            sa,
            {},
            "yaml",
            false,
            "",
            false,
            [](Context& c) -> Status {
              MOAT_TRY(IamTarget t, SaTarget(c));
              return GetIamPolicyCommand(c, t);
            }});
  tree.Add({p + "set-iam-policy",
            "replace a service account's IAM policy from a file",
            "",
            {sa[0], {"POLICY_FILE", "JSON or YAML policy file."}},
            {},
            "yaml",
            false,
            "",
            false,
            [](Context& c) -> Status {
              MOAT_TRY(IamTarget t, SaTarget(c));
              return SetIamPolicyCommand(c, t, c.Arg("POLICY_FILE"));
            }});
  tree.Add({p + "add-iam-policy-binding", "add an IAM policy binding to a service account", "", sa,
            BindingFlags(), "yaml", false,
            "moat iam service-accounts add-iam-policy-binding runner@p.iam.gserviceaccount.com \\\n"
            "    --member=user:dev@example.com --role=roles/iam.serviceAccountTokenCreator",
            false, [](Context& c) -> Status {
              MOAT_TRY(IamTarget t, SaTarget(c));
              return ModifyBindingCommand(c, t, true);
            }});
  tree.Add({p + "remove-iam-policy-binding", "remove an IAM policy binding from a service account",
            "", sa, BindingFlags(), "yaml", false, "", false, [](Context& c) -> Status {
              MOAT_TRY(IamTarget t, SaTarget(c));
              return ModifyBindingCommand(c, t, false);
            }});

  const std::string k = p + "keys ";
  const FlagSpec iam_account{"iam-account", FlagKind::kString,
                             "Email of the service account the key belongs to.",
                             "SERVICE_ACCOUNT_EMAIL", true};
  tree.Add({k + "create",
            "create a key and write its key file",
            "Writes the new JSON key file to KEY_FILE with mode 0600 (`-` writes to standard "
            "output). The private key is not stored by Moat: keep the file safe, and prefer "
            "impersonation or the metadata server to long-lived keys.",
            {{"KEY_FILE", "Where to write the key file."}},
            {iam_account, {"key-file-type", FlagKind::kString, "Only `json`.", "TYPE"}},
            "",
            false,
            "moat iam service-accounts keys create key.json "
            "--iam-account=caller@p.iam.gserviceaccount.com",
            false,
            KeyCreate});
  tree.Add({k + "list",
            "list a service account's keys",
            "",
            {},
            {iam_account,
             {"managed-by", FlagKind::kString, "user, system or any (default).", "MANAGED_BY"}},
            "table(name.basename():label=KEY_ID, validAfterTime:label=CREATED_AT, "
            "validBeforeTime:label=EXPIRES_AT, disabled:label=DISABLED)",
            true,
            "",
            false,
            KeyList});
  const std::vector<ArgSpec> key_id{{"KEY_ID", "The key's id (the key file's private_key_id)."}};
  tree.Add({k + "disable",
            "disable a key",
            "",
            key_id,
            {iam_account},
            "",
            false,
            "",
            false,
            [](Context& c) { return KeyOp(c, "disable"); }});
  tree.Add({k + "enable",
            "enable a disabled key",
            "",
            key_id,
            {iam_account},
            "",
            false,
            "",
            false,
            [](Context& c) { return KeyOp(c, "enable"); }});
  tree.Add({k + "delete",
            "delete a key",
            "Tokens already minted with the key stay valid until they expire.",
            key_id,
            {iam_account},
            "",
            false,
            "",
            false,
            [](Context& c) { return KeyOp(c, "delete"); }});

  const std::vector<ArgSpec> role_id{
      {"ROLE_ID", "roles/NAME (predefined), a custom role id, or projects/P/roles/ID."}};
  const std::vector<FlagSpec> role_fields{
      {"title", FlagKind::kString, "Title of the role."},
      {"description", FlagKind::kString, "Description of the role."},
      {"stage", FlagKind::kString, "ALPHA, BETA, GA, DEPRECATED, DISABLED or EAP."},
      {"permissions", FlagKind::kList, "Permissions the role grants.", "PERMISSION"}};
  std::vector<FlagSpec> role_update = role_fields;
  role_update.push_back({"add-permissions", FlagKind::kList, "Permissions to add.", "PERMISSION"});
  role_update.push_back(
      {"remove-permissions", FlagKind::kList, "Permissions to remove.", "PERMISSION"});
  tree.Add({"iam roles list",
            "list predefined roles, or a project's custom roles with --project",
            "",
            {},
            {},
            "table(name:label=NAME, title:label=TITLE, stage:label=STAGE)",
            true,
            "",
            false,
            RoleList});
  tree.Add({"iam roles describe",
            "show a role and its permissions",
            "",
            role_id,
            {},
            "yaml",
            false,
            "moat iam roles describe roles/run.invoker",
            false,
            RoleDescribe});
  tree.Add({"iam roles create", "create a custom role in a project", "", role_id, role_fields,
            "yaml", false,
            "moat iam roles create invoker_lite --project=p --title='Invoker lite' "
            "--permissions=run.routes.invoke",
            false, RoleCreate});
  tree.Add({"iam roles update", "change a custom role", "", role_id, role_update, "yaml", false, "",
            false, RoleUpdate});
  tree.Add({"iam roles delete",
            "delete a custom role (restorable with undelete)",
            "",
            role_id,
            {},
            "yaml",
            false,
            "",
            false,
            [](Context& c) { return RoleDelete(c, false); }});
  tree.Add({"iam roles undelete",
            "restore a deleted custom role",
            "",
            role_id,
            {},
            "yaml",
            false,
            "",
            false,
            [](Context& c) { return RoleDelete(c, true); }});

  AddDirectory(tree, "users", "user",
               "table(email:label=EMAIL, displayName:label='DISPLAY NAME', "
               "disabled:label=DISABLED)");
  AddDirectory(tree, "groups", "group",
               "table(email:label=EMAIL, displayName:label='DISPLAY NAME')");
  const FlagSpec member{"member", FlagKind::kString,
                        "user:EMAIL, serviceAccount:EMAIL or group:EMAIL (groups may nest).",
                        "MEMBER", true};
  tree.Add({"iam groups add-member",
            "add a member to a group",
            "",
            {{"GROUP", "Email of the group."}},
            {member},
            "yaml",
            false,
            "moat iam groups add-member devs@example.com --member=user:alice@example.com",
            false,
            [](Context& c) { return GroupMember(c, true); }});
  tree.Add({"iam groups remove-member",
            "remove a member from a group",
            "",
            {{"GROUP", "Email of the group."}},
            {member},
            "yaml",
            false,
            "",
            false,
            [](Context& c) { return GroupMember(c, false); }});

  tree.Add({"iam troubleshoot",
            "explain whether a principal holds a permission on a resource",
            "Shows which policies and bindings grant or do not grant PERMISSION to PRINCIPAL, "
            "including group memberships and conditions.",
            {{"RESOURCE",
              "Full resource name, e.g. "
              "//run.googleapis.com/projects/P/locations/L/services/S; or use --service.",
              false}},
            {{"principal", FlagKind::kString, "e.g. user:alice@example.com.", "PRINCIPAL", true},
             {"permission", FlagKind::kString, "Default run.routes.invoke.", "PERMISSION"},
             {"service", FlagKind::kString,
              "Shorthand for the run service SERVICE in --project/--region.", "SERVICE"}},
            "yaml",
            false,
            "moat iam troubleshoot --service=hello --principal=user:bob@example.com",
            false,
            [](Context& c) -> Status {
              std::string resource = c.Arg("RESOURCE");
              if (auto s = c.Flag("service")) {
                if (!resource.empty())
                  return c.UsageError("pass RESOURCE or `--service`, not both");
                MOAT_TRY(std::string project, c.Project());
                MOAT_TRY(std::string region, c.Region());
                resource = "//run.googleapis.com/projects/" + project + "/locations/" + region +
                           "/services/" + *s;
              }
              if (resource.empty()) return c.UsageError("pass RESOURCE or `--service=SERVICE`");
              js::object body{{"principal", c.Flag("principal").value_or("")},
                              {"resource", resource},
                              {"permission", c.Flag("permission").value_or("run.routes.invoke")}};
              MOAT_TRY(js::value r, c.Call("POST", "/moat/v1/iam:troubleshoot", js::value(body)));
              return c.Print(r);
            }});
}

}  // namespace moat::cli
