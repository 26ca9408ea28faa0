#include "store/internal.h"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <algorithm>
#include <charconv>

#include "common/base64.h"
#include "common/json.h"
#include "common/random.h"

namespace moat::store::internal {

namespace {

// Keys and parents come from validated resource names, but a NUL or an oversized key would
// behave differently across backends, so they are refused everywhere.
Status ValidateName(std::string_view what, std::string_view s, bool allow_empty) {
  if (s.empty() && !allow_empty) return InvalidArgument(std::string(what) + " must not be empty");
  if (s.size() > kMaxKeyBytes) {
    return InvalidArgument(std::string(what) + " is longer than " + std::to_string(kMaxKeyBytes) +
                           " bytes");
  }
  if (s.find('\0') != std::string_view::npos) {
    return InvalidArgument(std::string(what) + " must not contain a NUL byte");
  }
  return Ok();
}

std::string Quote(std::string_view key) { return "`" + std::string(key) + "`"; }

}  // namespace

Status ValidateKey(std::string_view key) { return ValidateName("document key", key, false); }

Status ValidatePut(std::string_view key, std::string_view data, const PutOptions& options) {
  MOAT_CHECK_OK(ValidateKey(key));
  MOAT_CHECK_OK(ValidateName("document parent", options.parent, true));
  if (data.size() > kMaxDataBytes) {
    return InvalidArgument("document " + Quote(key) + " is larger than " +
                           std::to_string(kMaxDataBytes) + " bytes");
  }
  auto parsed = json::Parse(data, "document");
  if (!parsed) {
    return InvalidArgument("document " + Quote(key) +
                           " is not valid JSON: " + parsed.error().message);
  }
  if (options.precondition.kind == Precondition::Kind::kEtagMatches &&
      options.precondition.etag.empty()) {
    return InvalidArgument("an etag precondition needs a non-empty etag");
  }
  return Ok();
}

Status ValidateAudit(const AuditEntry& e) {
  for (std::string_view f :
       {std::string_view(e.principal), std::string_view(e.method), std::string_view(e.resource),
        std::string_view(e.request_id), std::string_view(e.status)}) {
    if (f.size() > 4 * kMaxKeyBytes || f.find('\0') != std::string_view::npos) {
      return InvalidArgument("audit entry field is too long or contains a NUL byte");
    }
  }
  if (e.details.size() > kMaxDataBytes) return InvalidArgument("audit details are too large");
  auto parsed = json::ParseObject(e.details, "audit details");
  if (!parsed) return parsed.error();
  return Ok();
}

int ClampPageSize(int page_size) {
  if (page_size <= 0) return kDefaultPageSize;
  return page_size > kMaxPageSize ? kMaxPageSize : page_size;
}

Status CheckPrecondition(Collection c, std::string_view key, const std::optional<Document>& cur,
                         const Precondition& p, bool is_delete) {
  switch (p.kind) {
    case Precondition::Kind::kNone:
      return Ok();
    case Precondition::Kind::kMustNotExist:
      if (is_delete) return InvalidArgument("a delete cannot require the document to be absent");
      if (cur) return AlreadyExists("the resource " + Quote(key) + " already exists");
      return Ok();
    case Precondition::Kind::kMustExist:
      if (!cur) return NotFound("the resource " + Quote(key) + " was not found");
      return Ok();
    case Precondition::Kind::kEtagMatches:
      if (!cur) return NotFound("the resource " + Quote(key) + " was not found");
      if (cur->etag != p.etag) {
        if (c == Collection::kPolicies) return Aborted(std::string(kConcurrentPolicyChangeMessage));
        return Aborted("the resource " + Quote(key) +
                       " was changed concurrently (etag mismatch); read it again and retry");
      }
      return Ok();
  }
  return Ok();
}

std::string MakeEtag(int64_t revision) {
  std::string raw(8, '\0');
  auto r = static_cast<uint64_t>(revision);
  for (int i = 0; i < 6; ++i) raw[i] = static_cast<char>((r >> (8 * (5 - i))) & 0xff);
  std::string rnd = RandomBytes(2);
  raw[6] = rnd[0];
  raw[7] = rnd[1];
  return Base64Encode(raw);
}

std::string EncodeListToken(Collection c, const std::optional<std::string>& parent,
                            std::string_view last_key) {
  boost::json::object o;
  o["c"] = CollectionName(c);
  if (parent) o["p"] = *parent;
  o["k"] = last_key;
  return Base64UrlEncode(json::Serialize(o));
}

Result<std::string> DecodeListToken(std::string_view token, Collection c,
                                    const std::optional<std::string>& parent) {
  Error bad = InvalidArgument("the page token is invalid");
  auto raw = Base64UrlDecode(token);
  if (!raw) return bad;
  auto o = json::ParseObject(*raw, "page token");
  if (!o) return bad;
  auto col = json::OptString(*o, "c");
  auto par = json::OptString(*o, "p");
  auto key = json::OptString(*o, "k");
  if (!col || !par || !key || !*col || !*key) return bad;
  if (**col != CollectionName(c) || *par != parent) {
    return InvalidArgument("the page token was issued for a different listing");
  }
  return std::move(**key);
}

std::string EncodeAuditToken(int64_t last_id) {
  return Base64UrlEncode("audit:" + std::to_string(last_id));
}

Result<int64_t> DecodeAuditToken(std::string_view token) {
  Error bad = InvalidArgument("the page token is invalid");
  auto raw = Base64UrlDecode(token);
  if (!raw || raw->rfind("audit:", 0) != 0) return bad;
  std::string_view digits = std::string_view(*raw).substr(6);
  int64_t id = 0;
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), id);
  if (ec != std::errc() || ptr != digits.data() + digits.size() || id <= 0) return bad;
  return id;
}

std::optional<std::string> PrefixUpperBound(std::string_view prefix) {
  std::string s(prefix);
  while (!s.empty() && static_cast<unsigned char>(s.back()) == 0xff) s.pop_back();
  if (s.empty()) return std::nullopt;
  s.back() = static_cast<char>(static_cast<unsigned char>(s.back()) + 1);
  return s;
}

bool AuditMatches(const AuditQuery& q, const AuditEntry& e) {
  if (!q.resource.empty()) {
    if (q.resource_is_prefix ? e.resource.rfind(q.resource, 0) != 0 : e.resource != q.resource) {
      return false;
    }
  }
  if (!q.principal.empty() && e.principal != q.principal) return false;
  if (q.kind && e.kind != *q.kind) return false;
  if (!q.request_id.empty() && e.request_id != q.request_id) return false;
  // Compared at the stored (microsecond) precision so every backend agrees.
  if (q.start_time && ToMicros(e.time) < ToMicros(*q.start_time)) return false;
  if (q.end_time && ToMicros(e.time) >= ToMicros(*q.end_time)) return false;
  return true;
}

int64_t ToMicros(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

TimePoint FromMicros(int64_t us) {
  return TimePoint(std::chrono::duration_cast<TimePoint::duration>(std::chrono::microseconds(us)));
}

Error TxFailedError() {
  return FailedPrecondition("the transaction has already failed or finished; start a new one");
}

Error ReadOnlyError() { return FailedPrecondition("the transaction is read-only"); }

CommitNotifier::CommitNotifier(int64_t committed) : committed_(committed) {}

void CommitNotifier::Publish(int64_t revision) {
  {
    std::lock_guard lock(mu_);
    if (revision > committed_) committed_ = revision;
  }
  cv_.notify_all();
  std::lock_guard lock(subs_->mu);
  for (auto& [id, cb] : subs_->callbacks) cb(revision);
}

bool CommitNotifier::WaitFor(int64_t revision, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return committed_ >= revision; });
}

Subscription CommitNotifier::Subscribe(CommitCallback cb) {
  uint64_t id;
  {
    std::lock_guard lock(subs_->mu);
    id = subs_->next_id++;
    subs_->callbacks.emplace(id, std::move(cb));
  }
  std::weak_ptr<Subscribers> weak = subs_;
  return Subscription([weak, id] {
    if (auto subs = weak.lock()) {
      std::lock_guard lock(subs->mu);
      subs->callbacks.erase(id);
    }
  });
}

ChangeHold ChangeHolds::Hold(int64_t after) {
  uint64_t id;
  {
    std::lock_guard lock(shared_->mu);
    id = shared_->next_id++;
    shared_->positions[id] = after;
  }
  std::weak_ptr<Shared> weak = shared_;
  return ChangeHold(
      [weak, id](int64_t revision) {
        if (auto s = weak.lock()) {
          std::lock_guard lock(s->mu);
          auto it = s->positions.find(id);
          if (it != s->positions.end() && revision > it->second) it->second = revision;
        }
      },
      [weak, id] {
        if (auto s = weak.lock()) {
          std::lock_guard lock(s->mu);
          s->positions.erase(id);
        }
      });
}

std::optional<int64_t> ChangeHolds::Min() const {
  std::lock_guard lock(shared_->mu);
  std::optional<int64_t> out;
  for (const auto& [id, pos] : shared_->positions) {
    if (!out || pos < *out) out = pos;
  }
  return out;
}

int64_t CompactionTarget(int64_t current, int64_t compacted, int64_t retain,
                         std::optional<int64_t> min_hold) {
  int64_t target = current - std::max<int64_t>(retain, 1);
  if (min_hold) target = std::min(target, std::max(*min_hold, current - kMaxHeldRevisions));
  return std::max(target, compacted);
}

Error CompactedError(int64_t since, int64_t compacted) {
  return MakeError(Code::kOutOfRange, "changes after revision " + std::to_string(since) +
                                          " were compacted up to revision " +
                                          std::to_string(compacted) +
                                          "; reload a full snapshot");
}

bool WriterOwner::HeldByMe() const { return owner_.load() == std::this_thread::get_id(); }
void WriterOwner::Set() { owner_.store(std::this_thread::get_id()); }
void WriterOwner::Clear() { owner_.store(std::thread::id()); }

}  // namespace moat::store::internal
