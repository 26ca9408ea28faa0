// moat: one binary, two faces — `moat serve` (the server) and `moat <group> <verb>` (the CLI).
#include <cstdio>
#include <cstring>
#include <string_view>

namespace {
void Usage() {
  std::fputs(
      "usage: moat serve [--home DIR] [--gateway-addr HOST:PORT] [--api-addr HOST:PORT]\n"
      "       moat <group> <command> [flags]   (run, iam, projects, auth, config)\n",
      stderr);
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string_view(argv[1]) == "--help" || std::string_view(argv[1]) == "-h") {
    Usage();
    return argc < 2 ? 2 : 0;
  }
  std::fprintf(stderr, "moat: `%s` is not available yet in this build\n", argv[1]);
  return 2;
}
