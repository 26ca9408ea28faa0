#include "cli/command.h"

#include <algorithm>
#include <charconv>
#include <sstream>

namespace moat::cli {
namespace {

std::string Join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (const std::string& p : parts) {
    if (!out.empty()) out += sep;
    out += p;
  }
  return out;
}

std::string Parent(const std::string& path) {
  size_t sp = path.rfind(' ');
  return sp == std::string::npos ? "" : path.substr(0, sp);
}

std::string Leaf(const std::string& path) {
  size_t sp = path.rfind(' ');
  return sp == std::string::npos ? path : path.substr(sp + 1);
}

std::string Moat(const std::string& path) { return path.empty() ? "moat" : "moat " + path; }

std::string Metavar(const FlagSpec& f) {
  if (!f.metavar.empty()) return f.metavar;
  std::string m;
  for (char c : f.name) m += c == '-' ? '_' : static_cast<char>(std::toupper(c));
  return m;
}

std::string FlagUsage(const FlagSpec& f) {
  switch (f.kind) {
    case FlagKind::kBool:
      return "--[no-]" + f.name;
    case FlagKind::kList:
      return "--" + f.name + "=[" + Metavar(f) + ",…]";
    case FlagKind::kDict:
      return "--" + f.name + "=[KEY=VALUE,…]";
    case FlagKind::kRepeated:
      return "--" + f.name + "=" + Metavar(f) + " …";
    default:
      return "--" + f.name + "=" + Metavar(f);
  }
}

// Indents every line of `text` by `n` spaces.
std::string Indent(const std::string& text, int n) {
  std::string pad(n, ' ');
  std::string out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out += (line.empty() ? "" : pad) + line + "\n";
  return out;
}

// Indents and word-wraps prose to the 100-column limit (words longer than a line stay whole).
std::string Wrap(const std::string& text, int n) {
  const size_t width = 100 - n;
  std::string out;
  std::istringstream in(text);
  std::string para;
  while (std::getline(in, para)) {
    std::string line;
    std::istringstream words(para);
    std::string w;
    while (words >> w) {
      if (!line.empty() && line.size() + 1 + w.size() > width) {
        out += std::string(n, ' ') + line + "\n";
        line.clear();
      }
      line += (line.empty() ? "" : " ") + w;
    }
    out += line.empty() ? "\n" : std::string(n, ' ') + line + "\n";
  }
  return out;
}

void FlagSection(std::ostringstream& out, const char* title, const std::vector<FlagSpec>& flags) {
  if (flags.empty()) return;
  out << "\n" << title << "\n";
  for (const FlagSpec& f : flags) {
    out << "    " << FlagUsage(f) << "\n" << Wrap(f.help, 8);
  }
}

Error Usage(std::string msg, const std::string& path) {
  return InvalidArgument(msg + " (see `" + Moat(path) + " --help`)");
}

}  // namespace

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::optional<std::string> ClosestMatch(std::string_view word,
                                        const std::vector<std::string>& candidates) {
  std::optional<std::string> best;
  size_t best_d = std::max<size_t>(2, word.size() / 3) + 1;
  for (const std::string& c : candidates) {
    size_t d = EditDistance(word, c);
    // A prefix ("add-iam" for "add-iam-policy-binding") is a good suggestion too.
    if (c.size() > word.size() && word.size() >= 3 && c.compare(0, word.size(), word) == 0) {
      d = std::min<size_t>(d, 1);
    }
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

CommandTree::CommandTree() {
  groups_[""] = GroupSpec{"", "manage Moat: services, IAM policies, identities and tokens",
                          "Moat puts Cloud Run's invocation IAM in front of any HTTP service. "
                          "This CLI talks to a `moat serve` API endpoint."};
}

void CommandTree::AddGroup(GroupSpec group) { groups_[group.path] = std::move(group); }

void CommandTree::Add(CommandSpec command) {
  std::string path = command.path;
  commands_[path] = std::move(command);
}

const std::vector<FlagSpec>& CommandTree::GlobalFlags() {
  static const auto* flags = new std::vector<FlagSpec>{
      {"account", FlagKind::kString,
       "Account to act as for this command (an activated service account or logged-in user); "
       "overrides `moat config set account`."},
      {"format", FlagKind::kString,
       "Output format: json, yaml, table(FIELD,…), value(FIELD,…), csv(FIELD,…) or none. "
       "Fields are dotted paths, with .basename()/.segment(N) transforms and :label=NAME."},
      {"impersonate-service-account", FlagKind::kString,
       "Act as this service account, using short-lived tokens the active account mints for "
       "it (needs roles/iam.serviceAccountTokenCreator on it).",
       "SERVICE_ACCOUNT_EMAIL"},
      {"project", FlagKind::kString, "Project to use; overrides `moat config set project`.",
       "PROJECT_ID"},
      {"quiet", FlagKind::kBool,
       "Disable prompts: destructive actions proceed without confirmation (also -q)."},
      {"region", FlagKind::kString, "Region to use; overrides `moat config set region`."},
      {"verbosity", FlagKind::kString,
       "debug prints each API request line (never tokens) to stderr; default warning.", "LEVEL"},
  };
  return *flags;
}

const CommandSpec* CommandTree::FindCommand(const std::string& path) const {
  auto it = commands_.find(path);
  return it == commands_.end() ? nullptr : &it->second;
}

const GroupSpec* CommandTree::FindGroup(const std::string& path) const {
  auto it = groups_.find(path);
  return it == groups_.end() ? nullptr : &it->second;
}

std::vector<std::string> CommandTree::Children(const std::string& path) const {
  std::vector<std::string> out;
  for (const auto& [p, g] : groups_) {
    if (!p.empty() && Parent(p) == path) out.push_back(Leaf(p));
  }
  for (const auto& [p, c] : commands_) {
    if (Parent(p) == path && !c.hidden) out.push_back(Leaf(p));
  }
  return out;
}

std::vector<const CommandSpec*> CommandTree::Commands() const {
  std::vector<const CommandSpec*> out;
  for (const auto& [p, c] : commands_) out.push_back(&c);
  return out;
}

Result<ParsedArgs> CommandTree::Parse(const std::vector<std::string>& argv) const {
  ParsedArgs parsed;
  std::string path;
  const CommandSpec* cmd = nullptr;
  std::vector<std::string> positional;
  bool flags_done = false;

  auto find_flag = [&](const std::string& name) -> const FlagSpec* {
    if (cmd) {
      for (const FlagSpec& f : cmd->flags)
        if (f.name == name) return &f;
    }
    for (const FlagSpec& f : GlobalFlags())
      if (f.name == name) return &f;
    return nullptr;
  };
  auto flag_names = [&] {
    std::vector<std::string> names;
    auto add = [&](const FlagSpec& f) {
      names.push_back("--" + f.name);
      if (f.kind == FlagKind::kBool) names.push_back("--no-" + f.name);
    };
    if (cmd)
      for (const FlagSpec& f : cmd->flags) add(f);
    for (const FlagSpec& f : GlobalFlags()) add(f);
    names.push_back("--help");
    return names;
  };

  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& tok = argv[i];
    if (!flags_done && tok == "--") {
      flags_done = true;
      continue;
    }
    if (!flags_done && (tok == "--help" || tok == "-h")) {
      parsed.help = true;
      continue;
    }
    if (!flags_done && tok == "-q") {
      parsed.flags["quiet"] = {"true"};
      continue;
    }
    if (!flags_done && tok.size() > 1 && tok[0] == '-') {
      std::string body = tok.rfind("--", 0) == 0 ? tok.substr(2) : tok.substr(1);
      size_t eq = body.find('=');
      std::string name = body.substr(0, eq);
      std::optional<std::string> value;
      if (eq != std::string::npos) value = body.substr(eq + 1);
      const FlagSpec* spec = tok.rfind("--", 0) == 0 ? find_flag(name) : nullptr;
      bool negated = false;
      if (!spec && name.rfind("no-", 0) == 0) {
        const FlagSpec* base = find_flag(name.substr(3));
        if (base && base->kind == FlagKind::kBool) {
          spec = base;
          negated = true;
        }
      }
      if (!spec) {
        std::string where = Moat(cmd ? cmd->path : path);
        std::string msg = "unknown flag `" + tok.substr(0, tok.find('=')) + "` for `" + where + "`";
        if (auto m = ClosestMatch("--" + name, flag_names())) msg += "; did you mean `" + *m + "`?";
        return Usage(msg, cmd ? cmd->path : path);
      }
      std::string where = cmd ? cmd->path : path;
      if (spec->kind == FlagKind::kBool) {
        bool b = !negated;
        if (value) {
          if (negated || (*value != "true" && *value != "false")) {
            return Usage("flag `--" + name + "` takes no value", where);
          }
          b = *value == "true";
        }
        parsed.flags[spec->name] = {b ? "true" : "false"};
        continue;
      }
      if (!value) {
        if (i + 1 >= argv.size()) return Usage("flag `--" + name + "` needs a value", where);
        value = argv[++i];
      }
      if (spec->kind == FlagKind::kInt) {
        int64_t n = 0;
        auto [p, ec] = std::from_chars(value->data(), value->data() + value->size(), n);
        if (ec != std::errc() || p != value->data() + value->size()) {
          return Usage("flag `--" + name + "` must be an integer, not `" + *value + "`", where);
        }
      }
      auto& slot = parsed.flags[spec->name];
      if (spec->kind == FlagKind::kList || spec->kind == FlagKind::kDict) {
        size_t start = 0;
        while (start <= value->size()) {
          size_t comma = value->find(',', start);
          std::string item =
              value->substr(start, comma == std::string::npos ? comma : comma - start);
          if (!item.empty()) {
            if (spec->kind == FlagKind::kDict && item.find('=') == std::string::npos) {
              return Usage("flag `--" + name + "` takes KEY=VALUE pairs, not `" + item + "`",
                           where);
            }
            slot.push_back(item);
          }
          if (comma == std::string::npos) break;
          start = comma + 1;
        }
      } else if (spec->kind == FlagKind::kRepeated) {
        slot.push_back(*value);
      } else {
        slot = {*value};
      }
      continue;
    }
    if (cmd || flags_done) {
      positional.push_back(tok);
      continue;
    }
    std::string next = path.empty() ? tok : path + " " + tok;
    if (groups_.count(next)) {
      path = next;
    } else if (const CommandSpec* c = FindCommand(next)) {
      cmd = c;
      path = next;
    } else {
      if (parsed.help) break;  // `moat bogus --help` shows the nearest group's help
      std::string msg = "unknown command `" + tok + "` for `" + Moat(path) + "`";
      if (auto m = ClosestMatch(tok, Children(path))) msg += "; did you mean `" + *m + "`?";
      return Usage(msg, path);
    }
  }
  if (parsed.help || !cmd) {
    if (!cmd && !parsed.help) {
      std::vector<std::string> kids = Children(path);
      return Usage("`" + Moat(path) + "` needs a command" +
                       (kids.empty() ? "" : " such as `" + kids.front() + "`"),
                   path);
    }
    parsed.help = true;
    parsed.help_path = path;
    parsed.command = cmd;
    return parsed;
  }
  parsed.command = cmd;
  size_t next_pos = 0;
  for (const ArgSpec& a : cmd->args) {
    if (next_pos < positional.size()) {
      parsed.args[a.name] = positional[next_pos++];
    } else if (a.required) {
      return Usage("argument " + a.name + " is required", cmd->path);
    }
  }
  if (next_pos < positional.size()) {
    return Usage("unexpected argument `" + positional[next_pos] + "` for `" + Moat(cmd->path) + "`",
                 cmd->path);
  }
  for (const FlagSpec& f : cmd->flags) {
    if (f.required && !parsed.flags.count(f.name)) {
      return Usage("flag `--" + f.name + "` is required", cmd->path);
    }
  }
  return parsed;
}

std::string CommandTree::Synopsis(const CommandSpec& c) const {
  std::vector<std::string> parts{Moat(c.path)};
  for (const ArgSpec& a : c.args) parts.push_back(a.required ? a.name : "[" + a.name + "]");
  for (const FlagSpec& f : c.flags) {
    if (f.required) parts.push_back(FlagUsage(f));
  }
  for (const FlagSpec& f : c.flags) {
    if (!f.required) parts.push_back("[" + FlagUsage(f) + "]");
  }
  parts.push_back("[GLOBAL-FLAG …]");
  return Join(parts, " ");
}

std::string CommandTree::Help(const std::string& path) const {
  std::ostringstream out;
  if (const CommandSpec* c = FindCommand(path)) {
    out << "NAME\n    " << Moat(path) << " - " << c->summary << "\n\n";
    out << "SYNOPSIS\n    " << Synopsis(*c) << "\n";
    if (!c->description.empty()) out << "\nDESCRIPTION\n" << Wrap(c->description, 4);
    if (!c->args.empty()) {
      out << "\nPOSITIONAL ARGUMENTS\n";
      for (const ArgSpec& a : c->args) out << "    " << a.name << "\n" << Wrap(a.help, 8);
    }
    std::vector<FlagSpec> required, optional;
    for (const FlagSpec& f : c->flags) (f.required ? required : optional).push_back(f);
    FlagSection(out, "REQUIRED FLAGS", required);
    FlagSection(out, "FLAGS", optional);
    FlagSection(out, "GLOBAL FLAGS", GlobalFlags());
    out << "    --help\n        Show this help.\n";
    if (!c->examples.empty()) out << "\nEXAMPLES\n" << Indent(c->examples, 4);
    return out.str();
  }
  const GroupSpec* g = FindGroup(path);
  if (!g) return "";
  out << "NAME\n    " << Moat(path) << " - " << g->summary << "\n\n";
  out << "SYNOPSIS\n    " << Moat(path) << " " << (path.empty() ? "GROUP | " : "")
      << "COMMAND [GLOBAL-FLAG …]\n";
  if (!g->description.empty()) out << "\nDESCRIPTION\n" << Wrap(g->description, 4);
  std::vector<std::pair<std::string, std::string>> groups, commands;
  for (const std::string& kid : Children(path)) {
    std::string full = path.empty() ? kid : path + " " + kid;
    if (const GroupSpec* sub = FindGroup(full)) {
      groups.emplace_back(kid, sub->summary);
    } else {
      commands.emplace_back(kid, FindCommand(full)->summary);
    }
  }
  auto section = [&](const char* title, const auto& items) {
    if (items.empty()) return;
    size_t w = 0;
    for (const auto& [n, s] : items) w = std::max(w, n.size());
    out << "\n" << title << "\n";
    for (const auto& [n, s] : items)
      out << "    " << n << std::string(w - n.size() + 4, ' ') << s << "\n";
  };
  section("GROUPS", groups);
  section("COMMANDS", commands);
  FlagSection(out, "GLOBAL FLAGS", GlobalFlags());
  out << "    --help\n        Show this help.\n";
  return out.str();
}

std::string CommandTree::Markdown() const {
  std::ostringstream out;
  out << "# moat command reference\n\n"
         "<!-- Generated by `moat help-markdown`; do not edit by hand. -->\n";
  std::vector<std::string> paths;
  for (const auto& [p, g] : groups_) paths.push_back(p);
  for (const auto& [p, c] : commands_)
    if (!c.hidden) paths.push_back(p);
  std::sort(paths.begin(), paths.end());
  for (const std::string& p : paths) {
    out << "\n## `" << Moat(p) << "`\n\n```text\n" << Help(p) << "```\n";
  }
  return out.str();
}

}  // namespace moat::cli
