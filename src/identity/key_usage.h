// Last-used times of service-account keys (GOOGLE.md §12 "last-used insight").
//
// The token hot path calls Record() on every verified key use; it only updates an in-memory
// map (16 mutex-protected shards, no allocation for a key already seen), never the store. The
// server calls Flush() every few seconds: it writes `lastUsedTime` into the key documents in
// ONE store transaction, and only for keys whose use moved by at least `min_interval` past
// the stored value, so a busy key costs one store write per interval, not one per request.
//
// Thread-safety: Record() from any number of threads; Flush() calls are serialized
// internally.
#pragma once

#include <array>
#include <chrono>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/clock.h"
#include "common/error.h"

namespace moat::store {
class Store;
}

namespace moat::identity {

class KeyUsageRecorder {
 public:
  explicit KeyUsageRecorder(std::chrono::seconds min_interval = std::chrono::seconds(60));

  // Notes that key `key_id` was used at `when` (keeps the latest time).
  void Record(std::string_view key_id, TimePoint when);

  // Writes pending last-used times. Returns how many key documents were written. Keys that no
  // longer exist are forgotten. On error nothing is written and the times stay pending.
  Result<int> Flush(store::Store& store);

 private:
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  struct Entry {
    TimePoint latest{};
    TimePoint flushed{};  // the last time written (or read back) for this key
  };
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, Entry, StringHash, std::equal_to<>> entries;
  };
  static constexpr size_t kShards = 16;

  Shard& ShardFor(std::string_view key_id);

  std::chrono::seconds min_interval_;
  std::array<Shard, kShards> shards_;
  std::mutex flush_mu_;
  // key id → store document key (kSaKeys), refreshed when an unknown id shows up.
  std::unordered_map<std::string, std::string> doc_keys_;
};

}  // namespace moat::identity
