#include "store/memory_store.h"

#include <algorithm>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <utility>
#include <vector>

#include "store/internal.h"

namespace moat::store {

namespace {

// Ordered like SQLite's (collection name, key) primary key, bytewise.
using DocKey = std::pair<std::string, std::string>;
using DocMap = std::map<DocKey, Document>;

DocKey MakeKey(Collection c, std::string_view key) {
  return {std::string(CollectionName(c)), std::string(key)};
}

}  // namespace

struct MemoryStore::State {
  const Clock* clock;
  std::mutex writer_mu;  // held by the open read-write transaction
  internal::WriterOwner writer_owner;

  std::mutex mu;  // guards the fields below
  std::shared_ptr<const DocMap> docs = std::make_shared<DocMap>();
  int64_t revision = 0;
  std::deque<Change> changes;   // ordered by (revision, collection, key)
  int64_t compacted = 0;        // changes of revisions <= this were dropped
  int64_t change_retention = 0;  // automatic compaction on commit; <= 0: off
  std::vector<AuditRecord> audit;
  internal::CommitNotifier notifier;
  internal::ChangeHolds holds;

  // Drops changes of revisions up to `target`. Requires mu.
  void CompactTo(int64_t target) {
    while (!changes.empty() && changes.front().revision <= target) changes.pop_front();
    compacted = std::max(compacted, target);
  }
};

namespace {

Result<ListPage> ListFrom(const DocMap& docs, Collection c, const ListOptions& options) {
  std::string after;
  if (!options.page_token.empty()) {
    MOAT_TRY(after, internal::DecodeListToken(options.page_token, c, options.parent));
  }
  const size_t limit = static_cast<size_t>(internal::ClampPageSize(options.page_size));
  std::string name(CollectionName(c));
  ListPage page;
  auto it =
      options.page_token.empty() ? docs.lower_bound({name, ""}) : docs.upper_bound({name, after});
  for (; it != docs.end() && it->first.first == name; ++it) {
    if (options.parent && it->second.parent != *options.parent) continue;
    if (page.documents.size() == limit) {
      page.next_page_token =
          internal::EncodeListToken(c, options.parent, page.documents.back().key);
      break;
    }
    page.documents.push_back(it->second);
  }
  return page;
}

class MemoryTransaction : public Transaction {
 public:
  // Read-only.
  MemoryTransaction(MemoryStore::State* s, std::shared_ptr<const DocMap> snapshot, int64_t revision)
      : s_(s), read_only_(true), base_(std::move(snapshot)), base_revision_(revision) {}
  // Read-write: `lock` holds the writer mutex.
  MemoryTransaction(MemoryStore::State* s, std::unique_lock<std::mutex> lock,
                    std::shared_ptr<const DocMap> snapshot, int64_t revision)
      : s_(s),
        read_only_(false),
        lock_(std::move(lock)),
        base_(std::move(snapshot)),
        base_revision_(revision) {
    s_->writer_owner.Set();
  }
  ~MemoryTransaction() override { Rollback(); }

  bool read_only() const override { return read_only_; }

  Result<std::optional<Document>> Get(Collection c, std::string_view key) override {
    MOAT_CHECK_OK(Usable());
    MOAT_CHECK_OK(Check(internal::ValidateKey(key)));
    const DocMap& docs = View();
    auto it = docs.find(MakeKey(c, key));
    if (it == docs.end()) return std::optional<Document>();
    return std::optional<Document>(it->second);
  }

  Result<ListPage> List(Collection c, const ListOptions& options) override {
    MOAT_CHECK_OK(Usable());
    auto page = ListFrom(View(), c, options);
    if (!page) return Fail(page.error());
    return page;
  }

  Result<Document> Put(Collection c, std::string_view key, std::string_view data,
                       const PutOptions& options) override {
    MOAT_CHECK_OK(Writable());
    MOAT_CHECK_OK(Check(internal::ValidatePut(key, data, options)));
    DocMap& docs = Working();
    DocKey k = MakeKey(c, key);
    auto it = docs.find(k);
    std::optional<Document> cur;
    if (it != docs.end()) cur = it->second;
    MOAT_CHECK_OK(Check(internal::CheckPrecondition(c, key, cur, options.precondition, false)));
    Document doc;
    doc.collection = c;
    doc.key = std::string(key);
    doc.parent = options.parent;
    doc.data = std::string(data);
    doc.revision = base_revision_ + 1;
    doc.etag = internal::MakeEtag(doc.revision);
    TimePoint now = internal::FromMicros(internal::ToMicros(s_->clock->Now()));
    doc.create_time = cur ? cur->create_time : now;
    doc.update_time = now;
    docs[k] = doc;
    ops_[k] = Change::Op::kPut;
    return doc;
  }

  Result<bool> Delete(Collection c, std::string_view key, const Precondition& p) override {
    MOAT_CHECK_OK(Writable());
    MOAT_CHECK_OK(Check(internal::ValidateKey(key)));
    DocMap& docs = Working();
    DocKey k = MakeKey(c, key);
    auto it = docs.find(k);
    std::optional<Document> cur;
    if (it != docs.end()) cur = it->second;
    MOAT_CHECK_OK(Check(internal::CheckPrecondition(c, key, cur, p, true)));
    if (!cur) return false;
    docs.erase(it);
    ops_[k] = Change::Op::kDelete;
    return true;
  }

  Status AppendAudit(const AuditEntry& entry) override {
    MOAT_CHECK_OK(Writable());
    MOAT_CHECK_OK(Check(internal::ValidateAudit(entry)));
    AuditEntry e = entry;
    if (e.time == TimePoint{}) e.time = s_->clock->Now();
    e.time = internal::FromMicros(internal::ToMicros(e.time));
    audit_.push_back(std::move(e));
    return Ok();
  }

  Result<int64_t> Commit() override {
    if (failed_) {
      Rollback();
      return *failed_;
    }
    if (done_) return internal::TxFailedError();
    done_ = true;
    if (read_only_) {
      base_.reset();
      return base_revision_;
    }
    int64_t result = base_revision_;
    bool wrote = !ops_.empty();
    {
      std::lock_guard lock(s_->mu);
      if (wrote) {
        result = base_revision_ + 1;
        s_->docs = std::make_shared<const DocMap>(std::move(*working_));
        s_->revision = result;
        for (auto& [k, op] : ops_) {
          auto c = ParseCollection(k.first);
          s_->changes.push_back(Change{result, *c, k.second, op});
        }
        if (s_->change_retention > 0) {
          int64_t target = internal::CompactionTarget(result, s_->compacted, s_->change_retention,
                                                      s_->holds.Min());
          s_->CompactTo(std::min(target, s_->compacted + kCompactRevisionsPerCommit));
        }
      }
      for (auto& e : audit_) {
        s_->audit.push_back(AuditRecord{static_cast<int64_t>(s_->audit.size()) + 1, std::move(e)});
      }
    }
    Release();
    if (wrote) s_->notifier.Publish(result);
    return result;
  }

  void Rollback() override {
    done_ = true;
    base_.reset();
    working_.reset();
    Release();
  }

 private:
  Status Usable() {
    if (failed_) return internal::TxFailedError();
    if (done_) return internal::TxFailedError();
    return Ok();
  }
  Status Writable() {
    MOAT_CHECK_OK(Usable());
    if (read_only_) return Fail(internal::ReadOnlyError());
    return Ok();
  }
  Error Fail(Error e) {
    if (!failed_) failed_ = e;
    return e;
  }
  Status Check(Status st) {
    if (!st) return Fail(st.error());
    return Ok();
  }
  const DocMap& View() const { return working_ ? *working_ : *base_; }
  DocMap& Working() {
    if (!working_) working_ = std::make_unique<DocMap>(*base_);
    return *working_;
  }
  void Release() {
    if (lock_.owns_lock()) {
      s_->writer_owner.Clear();
      lock_.unlock();
    }
  }

  MemoryStore::State* s_;
  bool read_only_;
  std::unique_lock<std::mutex> lock_;
  std::shared_ptr<const DocMap> base_;
  std::unique_ptr<DocMap> working_;
  int64_t base_revision_ = 0;
  std::map<DocKey, Change::Op> ops_;
  std::vector<AuditEntry> audit_;
  std::optional<Error> failed_;
  bool done_ = false;
};

}  // namespace

MemoryStore::MemoryStore(const Clock* clock, int64_t change_retention)
    : state_(std::make_unique<State>()) {
  state_->clock = clock != nullptr ? clock : &SystemClock();
  state_->change_retention = change_retention;
}

MemoryStore::~MemoryStore() = default;

Result<std::unique_ptr<Transaction>> MemoryStore::Begin() {
  if (state_->writer_owner.HeldByMe()) {
    return FailedPrecondition("this thread already holds a read-write transaction");
  }
  std::unique_lock writer(state_->writer_mu);
  std::shared_ptr<const DocMap> snapshot;
  int64_t revision;
  {
    std::lock_guard lock(state_->mu);
    snapshot = state_->docs;
    revision = state_->revision;
  }
  return std::unique_ptr<Transaction>(
      new MemoryTransaction(state_.get(), std::move(writer), std::move(snapshot), revision));
}

Result<std::unique_ptr<Transaction>> MemoryStore::BeginRead() {
  std::lock_guard lock(state_->mu);
  return std::unique_ptr<Transaction>(
      new MemoryTransaction(state_.get(), state_->docs, state_->revision));
}

Result<int64_t> MemoryStore::CurrentRevision() {
  std::lock_guard lock(state_->mu);
  return state_->revision;
}

Result<ChangeBatch> MemoryStore::ChangesSince(int64_t since, int max_revisions) {
  std::lock_guard lock(state_->mu);
  if (since < state_->compacted) return internal::CompactedError(since, state_->compacted);
  ChangeBatch batch;
  batch.last_revision = since;
  if (max_revisions <= 0) return batch;
  auto it = std::upper_bound(state_->changes.begin(), state_->changes.end(), since,
                             [](int64_t r, const Change& c) { return r < c.revision; });
  int revisions = 0;
  for (; it != state_->changes.end(); ++it) {
    if (it->revision != batch.last_revision) {
      if (revisions == max_revisions) break;
      ++revisions;
      batch.last_revision = it->revision;
    }
    batch.changes.push_back(*it);
  }
  return batch;
}

Result<int64_t> MemoryStore::CompactChanges(int64_t retain_revisions) {
  if (state_->writer_owner.HeldByMe()) {
    return FailedPrecondition("this thread already holds a read-write transaction");
  }
  std::lock_guard writer(state_->writer_mu);
  std::lock_guard lock(state_->mu);
  state_->CompactTo(internal::CompactionTarget(state_->revision, state_->compacted,
                                               retain_revisions, state_->holds.Min()));
  return state_->compacted;
}

Result<int64_t> MemoryStore::CompactedRevision() {
  std::lock_guard lock(state_->mu);
  return state_->compacted;
}

ChangeHold MemoryStore::HoldChanges(int64_t after) { return state_->holds.Hold(after); }

bool MemoryStore::WaitForRevision(int64_t revision, std::chrono::milliseconds timeout) {
  return state_->notifier.WaitFor(revision, timeout);
}

Subscription MemoryStore::Subscribe(CommitCallback callback) {
  return state_->notifier.Subscribe(std::move(callback));
}

Result<AuditPage> MemoryStore::QueryAudit(const AuditQuery& query) {
  int64_t before = INT64_MAX;
  if (!query.page_token.empty()) {
    MOAT_TRY(before, internal::DecodeAuditToken(query.page_token));
  }
  const size_t limit = static_cast<size_t>(internal::ClampPageSize(query.page_size));
  std::lock_guard lock(state_->mu);
  AuditPage page;
  for (auto it = state_->audit.rbegin(); it != state_->audit.rend(); ++it) {
    if (it->id >= before || !internal::AuditMatches(query, it->entry)) continue;
    if (page.records.size() == limit) {
      page.next_page_token = internal::EncodeAuditToken(page.records.back().id);
      break;
    }
    page.records.push_back(*it);
  }
  return page;
}

}  // namespace moat::store
