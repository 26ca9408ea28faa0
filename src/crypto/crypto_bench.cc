// RS256/ES256 sign and verify of a typical ID-token signing input, and VerifyJwt end to end.
#include <benchmark/benchmark.h>

#include <boost/json.hpp>

#include "common/clock.h"
#include "crypto/jwt.h"

namespace moat::crypto {
namespace {

struct Fixture {
  PrivateKey rsa = PrivateKey::GenerateRsa2048().value();
  PrivateKey ec = PrivateKey::GenerateEcP256().value();
  PublicKeyPtr rsa_pub = Share(rsa.Public());
  PublicKeyPtr ec_pub = Share(ec.Public());
  std::string input;  // "header.payload" of a Google-shaped ID token, ~600 bytes
  std::string rs_sig, es_sig, rs_token, es_token;
  FakeClock clock{TimePoint(Seconds(1'700'000'000))};
  JwtVerifyOptions options;

  Fixture() {
    boost::json::object claims{
        {"aud", "https://hello-abcdefghij-uc.a.run.app"},
        {"azp", "107145139691231222712"},
        {"email", "svc-account-with-a-long-name@my-project-123456.iam.gserviceaccount.com"},
        {"email_verified", true},
        {"exp", 1'700'003'600},
        {"iat", 1'700'000'000},
        {"iss", "https://accounts.google.com"},
        {"sub", "107145139691231222712"},
        {"google", boost::json::object{
                       {"compute_engine", boost::json::object{{"project_id", "my-project-123456"},
                                                              {"zone", "us-central1-a"},
                                                              {"instance_name", "hello-00001"}}}}}};
    rs_token =
        EncodeJwt(JwsAlg::kRs256, rsa, "5d887f26ce32577c4b5a8a1e1a52e19d301f8181", claims).value();
    es_token = EncodeJwt(JwsAlg::kEs256, ec, "ec-key", claims).value();
    input = rs_token.substr(0, rs_token.rfind('.'));
    rs_sig = Sign(JwsAlg::kRs256, rsa, input).value();
    es_sig = Sign(JwsAlg::kEs256, ec, input).value();
    options.issuers = {"https://accounts.google.com"};
    options.audiences = {"https://hello-abcdefghij-uc.a.run.app"};
    options.clock = &clock;
  }
  KeyLookup Lookup() const {
    return [this](const KeyQuery& q) {
      return std::vector<PublicKeyPtr>{q.alg == JwsAlg::kRs256 ? rsa_pub : ec_pub};
    };
  }
};

Fixture& F() {
  static Fixture* f = new Fixture();
  return *f;
}

void BM_Rs256Sign(benchmark::State& state) {
  Fixture& f = F();
  for (auto _ : state) benchmark::DoNotOptimize(Sign(JwsAlg::kRs256, f.rsa, f.input));
  state.counters["input_bytes"] = static_cast<double>(f.input.size());
}
BENCHMARK(BM_Rs256Sign);

void BM_Rs256Verify(benchmark::State& state) {
  Fixture& f = F();
  for (auto _ : state) {
    if (!Verify(JwsAlg::kRs256, *f.rsa_pub, f.input, f.rs_sig)) state.SkipWithError("failed");
  }
}
BENCHMARK(BM_Rs256Verify)->ThreadRange(1, 2)->UseRealTime();

void BM_Es256Sign(benchmark::State& state) {
  Fixture& f = F();
  for (auto _ : state) benchmark::DoNotOptimize(Sign(JwsAlg::kEs256, f.ec, f.input));
}
BENCHMARK(BM_Es256Sign);

void BM_Es256Verify(benchmark::State& state) {
  Fixture& f = F();
  for (auto _ : state) {
    if (!Verify(JwsAlg::kEs256, *f.ec_pub, f.input, f.es_sig)) state.SkipWithError("failed");
  }
}
BENCHMARK(BM_Es256Verify)->ThreadRange(1, 2)->UseRealTime();

void BM_VerifyJwtRs256(benchmark::State& state) {
  Fixture& f = F();
  KeyLookup lookup = f.Lookup();
  for (auto _ : state) {
    if (!VerifyJwt(f.rs_token, lookup, f.options)) state.SkipWithError("failed");
  }
  state.counters["token_bytes"] = static_cast<double>(f.rs_token.size());
}
BENCHMARK(BM_VerifyJwtRs256)->ThreadRange(1, 2)->UseRealTime();

void BM_VerifyJwtEs256(benchmark::State& state) {
  Fixture& f = F();
  KeyLookup lookup = f.Lookup();
  for (auto _ : state) {
    if (!VerifyJwt(f.es_token, lookup, f.options)) state.SkipWithError("failed");
  }
}
BENCHMARK(BM_VerifyJwtEs256);

void BM_DecodeUnverified(benchmark::State& state) {
  Fixture& f = F();
  for (auto _ : state) benchmark::DoNotOptimize(DecodeUnverified(f.rs_token));
}
BENCHMARK(BM_DecodeUnverified);

}  // namespace
}  // namespace moat::crypto
