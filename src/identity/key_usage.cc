#include "identity/key_usage.h"

#include <boost/json/object.hpp>
#include <vector>

#include "common/json.h"
#include "common/time.h"
#include "identity/lifecycle_internal.h"
#include "identity/records.h"
#include "store/store.h"

namespace moat::identity {

KeyUsageRecorder::KeyUsageRecorder(std::chrono::seconds min_interval)
    : min_interval_(min_interval) {}

KeyUsageRecorder::Shard& KeyUsageRecorder::ShardFor(std::string_view key_id) {
  return shards_[StringHash()(key_id) % kShards];
}

void KeyUsageRecorder::Record(std::string_view key_id, TimePoint when) {
  Shard& shard = ShardFor(key_id);
  std::lock_guard lock(shard.mu);
  auto it = shard.entries.find(key_id);
  if (it == shard.entries.end()) {
    shard.entries.emplace(std::string(key_id), Entry{when, {}});
  } else if (when > it->second.latest) {
    it->second.latest = when;
  }
}

Result<int> KeyUsageRecorder::Flush(store::Store& store) {
  std::lock_guard flush_lock(flush_mu_);
  // 1. What moved far enough since the last write.
  std::vector<std::pair<std::string, TimePoint>> pending;
  for (auto& shard : shards_) {
    std::lock_guard lock(shard.mu);
    for (const auto& [id, e] : shard.entries) {
      if (e.flushed == TimePoint{} || e.latest - e.flushed >= min_interval_) {
        pending.emplace_back(id, e.latest);
      }
    }
  }
  if (pending.empty()) return 0;

  // 2. One transaction: re-read each document, write only real progress.
  MOAT_TRY(auto tx, store.Begin());
  bool refreshed = false;
  std::vector<std::pair<std::string, TimePoint>> settled;  // id → time now stored
  std::vector<std::string> gone;
  int written = 0;
  for (const auto& [id, when] : pending) {
    auto known = doc_keys_.find(id);
    if (known == doc_keys_.end() && !refreshed) {
      refreshed = true;
      MOAT_TRY(auto docs, internal::ListAll(*tx, store::Collection::kSaKeys));
      doc_keys_.clear();
      for (const auto& doc : docs) {
        if (auto key = KeyFromDocument(doc.data)) doc_keys_[key->key_id] = doc.key;
      }
      known = doc_keys_.find(id);
    }
    if (known == doc_keys_.end()) {
      gone.push_back(id);
      continue;
    }
    MOAT_TRY(auto doc, tx->Get(store::Collection::kSaKeys, known->second));
    if (!doc) {
      doc_keys_.erase(known);
      gone.push_back(id);
      continue;
    }
    auto object = json::ParseObject(doc->data, "key");
    if (!object) continue;
    std::optional<TimePoint> stored;
    if (auto* v = object->if_contains("lastUsedTime"); v && v->is_string()) {
      stored = ParseRfc3339(std::string_view(v->as_string()));
    }
    if (stored && when - *stored < min_interval_) {
      settled.emplace_back(id, *stored);
      continue;
    }
    (*object)["lastUsedTime"] = FormatRfc3339(when);
    store::PutOptions o;
    o.parent = doc->parent;
    o.precondition = store::Precondition::EtagMatches(doc->etag);
    MOAT_CHECK_OK(tx->Put(store::Collection::kSaKeys, doc->key, json::Serialize(*object), o));
    settled.emplace_back(id, when);
    ++written;
  }
  MOAT_CHECK_OK(tx->Commit());

  // 3. Remember what is stored; forget deleted keys unless used again meanwhile.
  for (const auto& [id, at] : settled) {
    Shard& shard = ShardFor(id);
    std::lock_guard lock(shard.mu);
    auto it = shard.entries.find(id);
    if (it != shard.entries.end()) it->second.flushed = at;
  }
  for (const auto& id : gone) {
    Shard& shard = ShardFor(id);
    std::lock_guard lock(shard.mu);
    shard.entries.erase(id);
  }
  return written;
}

}  // namespace moat::identity
