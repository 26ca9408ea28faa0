#include "cli/cli.h"

#include <unistd.h>

#include <exception>
#include <iostream>

#include "cli/context.h"

extern char** environ;

namespace moat::cli {
namespace {

std::string Dotted(const std::string& path) {
  std::string out = "moat.";
  for (char c : path) out += c == ' ' ? '.' : c;
  return out;
}

}  // namespace

const CommandTree& Tree() {
  static const CommandTree* tree = [] {
    auto* t = new CommandTree();
    AddRunCommands(*t);
    AddIamCommands(*t);
    AddCoreCommands(*t);
    return t;
  }();
  return *tree;
}

Env Env::FromProcess() {
  Env env;
  for (char** e = environ; e && *e; ++e) {
    std::string kv(*e);
    size_t eq = kv.find('=');
    if (eq != std::string::npos) env.vars[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  env.out = &std::cout;
  env.err = &std::cerr;
  env.in = &std::cin;
  env.interactive = ::isatty(0) == 1;
  return env;
}

int Run(const std::vector<std::string>& args, Env& env) {
  if (env.out == nullptr) env.out = &std::cout;
  if (env.err == nullptr) env.err = &std::cerr;
  const CommandTree& tree = Tree();
  if (args.empty()) {
    *env.err << tree.Help("");
    return 2;
  }
  auto parsed = tree.Parse(args);
  if (!parsed) {
    *env.err << "ERROR: " << parsed.error().message << "\n";
    return 2;
  }
  if (parsed->help) {
    *env.out << tree.Help(parsed->help_path);
    return 0;
  }
  const CommandSpec& cmd = *parsed->command;
  try {
    auto dir = ConfigDir(env.vars);
    if (!dir) {
      *env.err << "ERROR: (" << Dotted(cmd.path) << ") " << dir.error().message << "\n";
      return 1;
    }
    auto config = Config::Load(*dir);
    if (!config) {
      *env.err << "ERROR: (" << Dotted(cmd.path) << ") " << config.error().message << "\n";
      return 1;
    }
    Context ctx(env, *config, tree, *parsed);
    Status status = cmd.handler(ctx);
    env.out->flush();
    if (!status) {
      *env.err << "ERROR: (" << Dotted(cmd.path) << ") " << status.error().message << "\n";
      return ctx.usage_error() ? 2 : 1;
    }
    return 0;
  } catch (const std::exception& e) {
    *env.err << "ERROR: (" << Dotted(cmd.path)
             << ") unexpected response or internal error: " << e.what() << "\n";
    return 1;
  }
}

int Main(int argc, char** argv, Env& env) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  return Run(args, env);
}

}  // namespace moat::cli
