// LiveState: the in-memory view of the store that every listener decides with.
//
// The store is the truth; LiveState follows its change feed and publishes immutable Views —
// the compiled IAM snapshot (policies at every level, groups, custom roles), the identity
// Directory (service accounts, keys, users, groups, trusted issuers) and the parsed services —
// swapped atomically, so request paths read the current View with one atomic load and never
// call the store. A commit wakes the follower thread; the View that includes revision N is
// published within one rebuild of N's commit (WaitForRevision gives read-your-writes).
//
// Rebuilds are whole (every policy, every identity record) but only of the parts a change
// touched; docs/benchmarks.md has the cost at 10,000 services.
//
// The store compacts its change feed; LiveState holds it (store::ChangeHold) at its cursor so
// compaction keeps the changes it has not applied yet. If the feed was compacted past the
// cursor anyway (a hold more than store::kMaxHeldRevisions behind stops nothing), it rebuilds
// everything from a full snapshot and follows on from that snapshot's revision (reloads()).
//
// Thread-safety: Current() and WaitForRevision() from any thread. Start/Stop from one
// controlling thread. Listeners run on the follower thread, one at a time.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/error.h"
#include "iam/evaluator.h"
#include "identity/directory.h"
#include "state/service.h"
#include "store/store.h"

namespace moat::state {

struct View {
  int64_t revision = 0;
  std::shared_ptr<const iam::Snapshot> iam;
  std::shared_ptr<const identity::Directory> directory;
  std::vector<ServiceSpec> services;
  std::unordered_map<std::string, size_t> service_by_host;  // lowercase host (no port)
  std::unordered_map<std::string, size_t> service_by_name;  // projects/P/locations/R/services/S
  // The collections written since the previous View (empty for the first one), so listeners
  // (signing-key reload, the runtime's reconcile) can skip what did not change.
  std::vector<store::Collection> changed;
  // Service documents that failed to parse (name → message); they are not served.
  std::vector<std::pair<std::string, std::string>> broken_services;

  const ServiceSpec* FindByHost(std::string_view host) const;
  const ServiceSpec* FindByName(std::string_view name) const;
};

// Reads every input of the IAM snapshot (root, project and resource policies, groups, custom
// roles) in one read transaction. Documents that do not parse are skipped with a warning log.
Result<iam::PolicyInputs> LoadPolicyInputs(store::Transaction& tx);
// Reads and parses every service document.
Result<std::vector<ServiceSpec>> LoadServices(store::Transaction& tx,
                                              std::vector<std::pair<std::string, std::string>>* broken);

class LiveState {
 public:
  using Listener = std::function<void(const std::shared_ptr<const View>&)>;

  explicit LiveState(store::Store& store);
  ~LiveState();
  LiveState(const LiveState&) = delete;
  LiveState& operator=(const LiveState&) = delete;

  // Loads the first View synchronously, then follows the store on a thread.
  Status Start();
  void Stop();

  std::shared_ptr<const View> Current() const {
    std::lock_guard lock(view_mu_);
    return view_;
  }
  // The current View as this thread last loaded it, reloaded only when generation() has
  // moved: no lock and no reference counting on a hot path. The thread keeps that View alive
  // until it next calls this after a publish.
  const std::shared_ptr<const View>& CurrentForThisThread() const;
  // Unique among the LiveStates of this process, for per-thread caches keyed by generation().
  uint64_t instance() const { return instance_; }
  // Incremented by every publish: hot paths keep a per-thread copy of the View and reload it
  // only when this moves (one relaxed-cost atomic load instead of a shared_ptr copy).
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  // True once a View with revision >= `revision` is published; false on timeout.
  bool WaitForRevision(int64_t revision, std::chrono::milliseconds timeout);
  // How many times the follower rebuilt everything from a full snapshot because the change
  // feed was compacted past its cursor (for metrics and tests; normally 0, see Follow).
  uint64_t reloads() const { return reloads_.load(std::memory_order_relaxed); }
  // Called on the follower thread after each publish (and once, at registration, with the
  // current View if there is one). Register before Start to see the first View.
  void AddListener(Listener listener);

 private:
  Result<std::shared_ptr<const View>> Build(const View* previous, bool policies, bool identities,
                                            bool services,
                                            std::vector<store::Collection> changed = {});
  void Follow();
  void Publish(std::shared_ptr<const View> view);

  store::Store& store_;
  // A plain mutex, not std::atomic<std::shared_ptr>: libstdc++ 12 implements that with a lock
  // bit ThreadSanitizer cannot see, so every TSan run reported a race here. Readers on hot
  // paths (the gateway's IamGate) cache the View per thread and re-read it only when
  // generation() changes.
  mutable std::mutex view_mu_;
  std::shared_ptr<const View> view_;  // guarded by view_mu_
  std::atomic<uint64_t> generation_{0};
  std::atomic<uint64_t> reloads_{0};
  // Unique per LiveState of the process (an address may be reused by the next one): what
  // per-thread caches of a View are keyed by, with the generation.
  const uint64_t instance_;
  store::Subscription subscription_;
  // Keeps the store from compacting the changes after cursor_ (advanced as they are applied),
  // so a slow follower catches up from the feed; only a follower further behind than
  // store::kMaxHeldRevisions falls back to a full reload. Released by Stop.
  store::ChangeHold hold_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool dirty_ = false;
  std::vector<Listener> listeners_;  // guarded by mu_ for registration
  int64_t cursor_ = 0;               // follower thread only
  // Follower thread only: what the changes read since the last publish touched. Kept until a
  // View is published, so a rebuild that fails retries them with the next commit.
  struct Pending {
    bool policies = false, identities = false, services = false;
    std::vector<store::Collection> changed;
  };
  Pending pending_;
};

}  // namespace moat::state
