// Store latency: one-shot Put (a durable commit) and Get, on SQLite and in memory; Get from
// several threads while another thread keeps committing (readers must not queue behind it).
#include <benchmark/benchmark.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "store/memory_store.h"
#include "store/sqlite_store.h"
#include "store/store_test_util.h"

namespace moat::store {
namespace {

struct SqliteFixture {
  std::string dir = testing_util::MakeTempDir();
  std::unique_ptr<SqliteStore> store = std::move(*SqliteStore::Open(dir + "/home"));
  ~SqliteFixture() {
    store.reset();
    std::filesystem::remove_all(dir);
  }
};

constexpr char kPolicy[] =
    R"({"version":1,"bindings":[{"role":"roles/run.invoker","members":["user:a@example.com"]}]})";

void BM_SqlitePut(benchmark::State& state) {
  SqliteFixture f;
  int i = 0;
  for (auto _ : state) {
    auto r =
        f.store->Put(Collection::kPolicies, "projects/p/s" + std::to_string(i++ % 100), kPolicy);
    if (!r) state.SkipWithError("put failed");
  }
}
BENCHMARK(BM_SqlitePut)->Unit(benchmark::kMicrosecond);

void BM_SqliteGet(benchmark::State& state) {
  SqliteFixture f;
  for (int i = 0; i < 100; ++i) {
    (void)f.store->Put(Collection::kPolicies, "projects/p/s" + std::to_string(i), kPolicy);
  }
  int i = 0;
  for (auto _ : state) {
    auto r = f.store->Get(Collection::kPolicies, "projects/p/s" + std::to_string(i++ % 100));
    if (!r || !*r) state.SkipWithError("get failed");
  }
}
BENCHMARK(BM_SqliteGet)->Unit(benchmark::kMicrosecond);

// Reads on 4 threads while a writer thread commits in a loop.
void BM_SqliteGetDuringWrites(benchmark::State& state) {
  static SqliteFixture* f = nullptr;
  static std::atomic<bool> stop{false};
  static std::thread writer;
  if (state.thread_index() == 0) {
    f = new SqliteFixture;
    (void)f->store->Put(Collection::kPolicies, "projects/p/hot", kPolicy);
    stop = false;
    writer = std::thread([] {
      int i = 0;
      while (!stop)
        (void)f->store->Put(Collection::kSettings, "w" + std::to_string(i++ % 10), "{}");
    });
  }
  for (auto _ : state) {
    auto r = f->store->Get(Collection::kPolicies, "projects/p/hot");
    if (!r || !*r) state.SkipWithError("get failed");
  }
  if (state.thread_index() == 0) {
    stop = true;
    writer.join();
    delete f;
  }
}
BENCHMARK(BM_SqliteGetDuringWrites)->Threads(4)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_MemoryPut(benchmark::State& state) {
  MemoryStore store;
  int i = 0;
  for (auto _ : state) {
    (void)store.Put(Collection::kPolicies, "projects/p/s" + std::to_string(i++ % 100), kPolicy);
  }
}
BENCHMARK(BM_MemoryPut)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace moat::store
