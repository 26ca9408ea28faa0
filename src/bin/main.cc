// moat: one binary, two faces — `moat serve` (the server) and `moat <group> <command>` (the
// gcloud-shaped CLI, which only talks to the API over HTTP).
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "cli/cli.h"
#include "cli/wiring.h"
#include "server/serve.h"

int main(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == "serve") {
    std::vector<std::string> args(argv + 2, argv + argc);
    for (const auto& a : args) {
      if (a == "--help" || a == "-h") {
        std::fputs(moat::server::kServeHelp, stdout);
        return 0;
      }
    }
    auto options = moat::server::ParseServeFlags(args);
    if (!options) {
      std::fprintf(stderr, "moat serve: %s\n", options.error().message.c_str());
      return 2;
    }
    return moat::server::RunServe(*options);
  }
  auto env = moat::cli::Env::FromProcess();
  auto transport = moat::cli::MakeHttpTransport();
  auto signer = moat::cli::MakeCryptoSigner();
  env.transport = transport.get();
  env.signer = signer.get();
  auto proxy = moat::cli::MakeHttpProxyRunner();
  env.proxy = proxy.get();
  return moat::cli::Main(argc, argv, env);
}
