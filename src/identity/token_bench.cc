// Benchmarks: Verify (cache hit / miss) and MintIdToken.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdlib>

#include "common/random.h"
#include "identity/directory.h"
#include "identity/signing_keys.h"
#include "identity/token_issuer.h"
#include "identity/verifier.h"
#include "store/memory_store.h"

namespace moat::identity {
namespace {

constexpr char kOrigin[] = "http://127.0.0.1:8081";
constexpr char kService[] = "http://hello-abc.us-central1.run.localhost:8080";

struct World {
  FakeClock clock;
  store::MemoryStore store{&clock};
  SigningKeyManager keys{store, RandomBytes(32), clock};
  TokenIssuer issuer{keys, clock, IssuerUrls::For(kOrigin)};
  std::shared_ptr<const Directory> dir;
  std::unique_ptr<Verifier> verifier;
  TokenSubject alice{"alice@proj.iam.gserviceaccount.com", "100000000000000000001",
                     PrincipalKind::kServiceAccount};

  World() {
    if (!keys.Rotate()) std::abort();
    Directory::Inputs in;
    ServiceAccountRecord sa;
    sa.project_id = "proj";
    sa.account_id = "alice";
    sa.email = alice.email;
    sa.unique_id = alice.unique_id;
    in.service_accounts.push_back(sa);
    dir = Directory::Build(in);
    VerifierOptions o;
    o.issuer = kOrigin;
    o.api_origin = kOrigin;
    VerifierDeps d;
    d.clock = &clock;
    d.directory = [this] { return dir; };
    d.signing_keys = &keys;
    verifier = std::make_unique<Verifier>(o, d);
  }
  std::string Token() { return issuer.MintIdToken(alice, kService)->token; }
  VerifyRequest Gateway() const {
    VerifyRequest r;
    r.audiences = {kService, std::string(kService) + "/"};
    return r;
  }
};

World& TheWorld() {
  static World* w = new World();
  return *w;
}

void BM_VerifyCached(benchmark::State& state) {
  World& w = TheWorld();
  std::string token = w.Token();
  VerifyRequest req = w.Gateway();
  if (!w.verifier->Verify(token, req)) std::abort();
  for (auto _ : state) {
    auto r = w.verifier->Verify(token, req);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["token_bytes"] = static_cast<double>(token.size());
}
BENCHMARK(BM_VerifyCached)->Threads(1)->Threads(2);

void BM_VerifyUncached(benchmark::State& state) {
  World& w = TheWorld();
  std::string token = w.Token();
  VerifyRequest req = w.Gateway();
  for (auto _ : state) {
    state.PauseTiming();
    w.verifier->ClearCache();
    state.ResumeTiming();
    auto r = w.verifier->Verify(token, req);
    if (!r) std::abort();
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_VerifyUncached);

void BM_MintIdToken(benchmark::State& state) {
  World& w = TheWorld();
  for (auto _ : state) {
    auto t = w.issuer.MintIdToken(w.alice, kService);
    benchmark::DoNotOptimize(t);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MintIdToken);

}  // namespace
}  // namespace moat::identity
