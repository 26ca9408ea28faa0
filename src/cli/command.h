// The declarative command tree: groups ("run services"), commands with positional
// arguments, typed flags, help text and a default output format, plus the gcloud-style
// parser (`--flag=value` / `--flag value`, `--x` / `--no-x`, repeated or comma-separated
// lists, K=V dicts, `--` ends flags, global flags anywhere after `moat`).
//
// Parse errors are usage errors (exit 2) with one line naming the closest valid spelling.
// Thread-safety: a built tree is immutable and may be shared.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace moat::cli {

class Context;
using Handler = std::function<Status(Context&)>;

enum class FlagKind {
  kString,    // --name=VALUE
  kInt,       // --limit=50
  kBool,      // --name / --no-name (also --name=true|false)
  kList,      // --name=a,b --name=c → [a, b, c]
  kDict,      // --name=K=V,K2=V2 → [K=V, K2=V2]
  kRepeated,  // --name=a,b --name=c → ["a,b", "c"] (values may contain commas)
};

struct FlagSpec {
  std::string name;  // without dashes: "allow-unauthenticated"
  FlagKind kind = FlagKind::kString;
  std::string help;
  std::string metavar;  // "MEMBER"; defaults to the upper-cased name
  bool required = false;
};

struct ArgSpec {
  std::string name;  // "SERVICE"
  std::string help;
  bool required = true;
};

struct CommandSpec {
  std::string path;  // "run services add-iam-policy-binding"
  std::string summary;
  std::string description;
  std::vector<ArgSpec> args;
  std::vector<FlagSpec> flags;
  std::string default_format;  // "yaml", "table(name.basename():label=SERVICE)", "" = none
  bool list_output = false;    // the handler prints an array of records
  std::string examples;
  bool hidden = false;
  Handler handler;
};

struct GroupSpec {
  std::string path;  // "" is the root
  std::string summary;
  std::string description;
};

struct ParsedArgs {
  const CommandSpec* command = nullptr;
  std::string help_path;  // set when --help was given (or a group was named): what to show
  bool help = false;
  std::map<std::string, std::string> args;  // positional name → value
  std::map<std::string, std::vector<std::string>>
      flags;  // flag name → values (bools: "true"/"false")
};

class CommandTree {
 public:
  CommandTree();

  void AddGroup(GroupSpec group);
  void Add(CommandSpec command);

  static const std::vector<FlagSpec>& GlobalFlags();

  // Parses argv (without the program name). Every error is a usage error (exit 2): one
  // line naming the closest valid spelling and the `--help` to read.
  Result<ParsedArgs> Parse(const std::vector<std::string>& argv) const;

  // Help for a group or a command path ("" = root), gcloud's man-page layout.
  std::string Help(const std::string& path) const;
  // Every group and non-hidden command as Markdown (docs/cli.md).
  std::string Markdown() const;

  const CommandSpec* FindCommand(const std::string& path) const;
  const GroupSpec* FindGroup(const std::string& path) const;
  // Direct children (groups then commands) of a group path, sorted, hidden ones skipped.
  std::vector<std::string> Children(const std::string& path) const;
  std::vector<const CommandSpec*> Commands() const;

 private:
  std::string Synopsis(const CommandSpec& c) const;
  std::map<std::string, GroupSpec> groups_;
  std::map<std::string, CommandSpec> commands_;
};

// Levenshtein edit distance (for "did you mean").
size_t EditDistance(std::string_view a, std::string_view b);
// The candidate closest to `word`, if close enough to be a plausible typo.
std::optional<std::string> ClosestMatch(std::string_view word,
                                        const std::vector<std::string>& candidates);

}  // namespace moat::cli
