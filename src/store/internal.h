// Semantics shared by every backend, kept in one place so SQLite, memory and (later)
// PostgreSQL answer identically: input validation, precondition checks and their messages,
// etags, page tokens, and the in-process commit notifier. Not a public header.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "store/store.h"

namespace moat::store::internal {

Status ValidateKey(std::string_view key);
Status ValidatePut(std::string_view key, std::string_view data, const PutOptions& options);
Status ValidateAudit(const AuditEntry& entry);
int ClampPageSize(int page_size);

// Checks `p` against the current document (nullopt if absent) for a Put (is_delete false) or
// a Delete. Messages per store.h (Google's for a stale policy etag).
Status CheckPrecondition(Collection c, std::string_view key, const std::optional<Document>& cur,
                         const Precondition& p, bool is_delete);

// Base64 of 8 bytes: the big-endian low 48 bits of `revision` and 2 random bytes. Distinct for
// every write of one document because a document's revisions strictly increase.
std::string MakeEtag(int64_t revision);

// Opaque page tokens. A token is bound to the collection and parent filter it was issued for.
std::string EncodeListToken(Collection c, const std::optional<std::string>& parent,
                            std::string_view last_key);
Result<std::string> DecodeListToken(std::string_view token, Collection c,
                                    const std::optional<std::string>& parent);
std::string EncodeAuditToken(int64_t last_id);
Result<int64_t> DecodeAuditToken(std::string_view token);

// For a bytewise prefix match `s >= prefix AND s < upper`: the smallest string greater than
// every string with that prefix, or nullopt if there is none (prefix empty or all 0xff).
std::optional<std::string> PrefixUpperBound(std::string_view prefix);

bool AuditMatches(const AuditQuery& q, const AuditEntry& e);

int64_t ToMicros(TimePoint t);
TimePoint FromMicros(int64_t us);

Error TxFailedError();
Error ReadOnlyError();

// Revision watermark + subscribers for WaitForRevision/Subscribe.
class CommitNotifier {
 public:
  explicit CommitNotifier(int64_t committed = 0);
  void Publish(int64_t revision);  // raises the watermark, wakes waiters, calls subscribers
  bool WaitFor(int64_t revision, std::chrono::milliseconds timeout);
  Subscription Subscribe(CommitCallback cb);

 private:
  struct Subscribers {
    std::mutex mu;  // held while callbacks run, so Reset waits for a running call
    std::map<uint64_t, CommitCallback> callbacks;
    uint64_t next_id = 1;
  };
  std::mutex mu_;
  std::condition_variable cv_;
  int64_t committed_;
  std::shared_ptr<Subscribers> subs_ = std::make_shared<Subscribers>();
};

// The positions of live ChangeHolds. Holds may outlive the registry.
class ChangeHolds {
 public:
  ChangeHold Hold(int64_t after);
  // The lowest held position, or nullopt when nothing is held.
  std::optional<int64_t> Min() const;

 private:
  struct Shared {
    mutable std::mutex mu;
    std::map<uint64_t, int64_t> positions;  // hold id -> position
    uint64_t next_id = 1;
  };
  std::shared_ptr<Shared> shared_ = std::make_shared<Shared>();
};

// The revision compaction may drop changes up to (inclusive): all but the newest
// max(retain, 1) revisions, but not past the lowest hold unless that hold is more than
// kMaxHeldRevisions behind `current`. Never below `compacted` (the current compacted revision).
int64_t CompactionTarget(int64_t current, int64_t compacted, int64_t retain,
                         std::optional<int64_t> min_hold);

// kOutOfRange: the feed after `since` was compacted up to `compacted`.
Error CompactedError(int64_t since, int64_t compacted);

// Detects a thread opening a second read-write transaction on the same store (a deadlock).
class WriterOwner {
 public:
  bool HeldByMe() const;
  void Set();
  void Clear();

 private:
  std::atomic<std::thread::id> owner_{};
};

}  // namespace moat::store::internal
