#include "state/live_state.h"

#include <boost/json.hpp>

#include <algorithm>

#include "common/json.h"
#include "common/log.h"
#include "identity/directory_loader.h"
#include "identity/records.h"

namespace moat::state {
namespace {

// Pages through a whole collection inside `tx`.
template <class F>
Status ForEach(store::Transaction& tx, store::Collection c, F&& f) {
  store::ListOptions opts;
  opts.page_size = store::kMaxPageSize;
  while (true) {
    MOAT_TRY(store::ListPage page, tx.List(c, opts));
    for (auto& doc : page.documents) f(doc);
    if (page.next_page_token.empty()) return Ok();
    opts.page_token = std::move(page.next_page_token);
  }
}

Result<iam::Role> ParseCustomRole(const store::Document& doc) {
  MOAT_TRY(auto o, json::ParseObject(doc.data, "role document"));
  MOAT_TRY(auto deleted, json::OptBool(o, "deleted"));
  if (deleted.value_or(false)) return NotFound("role is deleted");
  iam::Role role;
  role.name = doc.key;
  role.custom = true;
  MOAT_TRY(auto title, json::OptString(o, "title"));
  MOAT_TRY(auto description, json::OptString(o, "description"));
  MOAT_TRY(auto stage, json::OptString(o, "stage"));
  role.title = title.value_or("");
  role.description = description.value_or("");
  if (stage && !stage->empty()) role.stage = *stage;
  MOAT_TRY(const boost::json::array* perms, json::OptArray(o, "includedPermissions"));
  if (perms) {
    for (const auto& p : *perms) {
      if (p.is_string()) role.included_permissions.emplace_back(p.as_string());
    }
  }
  return role;
}

}  // namespace

const ServiceSpec* View::FindByHost(std::string_view host) const {
  auto it = service_by_host.find(std::string(host));
  return it == service_by_host.end() ? nullptr : &services[it->second];
}

const ServiceSpec* View::FindByName(std::string_view name) const {
  auto it = service_by_name.find(std::string(name));
  return it == service_by_name.end() ? nullptr : &services[it->second];
}

Result<iam::PolicyInputs> LoadPolicyInputs(store::Transaction& tx) {
  iam::PolicyInputs in;
  MOAT_CHECK_OK(ForEach(tx, store::Collection::kPolicies, [&](const store::Document& doc) {
    auto policy = iam::ParsePolicy(doc.data);
    if (!policy) {
      log::Warn("skipping a stored policy that does not parse",
                {{"resource", doc.key}, {"error", policy.error().message}});
      return;
    }
    if (doc.key == "root") {
      in.root = std::move(*policy);
    } else if (doc.key.rfind("projects/", 0) == 0 &&
               doc.key.find('/', sizeof("projects/") - 1) == std::string::npos) {
      in.projects[doc.key.substr(sizeof("projects/") - 1)] = std::move(*policy);
    } else {
      in.resources[doc.key] = std::move(*policy);
    }
  }));
  MOAT_CHECK_OK(ForEach(tx, store::Collection::kGroups, [&](const store::Document& doc) {
    auto group = identity::GroupFromDocument(doc.data);
    if (!group) return;
    in.groups[group->email] = group->members;
  }));
  MOAT_CHECK_OK(ForEach(tx, store::Collection::kRoles, [&](const store::Document& doc) {
    auto role = ParseCustomRole(doc);
    if (role) in.custom_roles.push_back(std::move(*role));
  }));
  return in;
}

Result<std::vector<ServiceSpec>> LoadServices(
    store::Transaction& tx, std::vector<std::pair<std::string, std::string>>* broken) {
  std::vector<ServiceSpec> out;
  MOAT_CHECK_OK(ForEach(tx, store::Collection::kServices, [&](const store::Document& doc) {
    auto spec = ParseServiceDoc(doc.data);
    if (spec) {
      out.push_back(std::move(*spec));
    } else if (broken) {
      broken->emplace_back(doc.key, spec.error().message);
    }
  }));
  return out;
}

namespace {
std::atomic<uint64_t> next_instance{1};
}  // namespace

LiveState::LiveState(store::Store& store)
    : store_(store), instance_(next_instance.fetch_add(1, std::memory_order_relaxed)) {}

LiveState::~LiveState() { Stop(); }

Result<std::shared_ptr<const View>> LiveState::Build(const View* previous, bool policies,
                                                     bool identities, bool services,
                                                     std::vector<store::Collection> changed) {
  MOAT_TRY(auto tx, store_.BeginRead());
  auto view = std::make_shared<View>();
  view->changed = std::move(changed);
  if (policies || !previous) {
    MOAT_TRY(auto inputs, LoadPolicyInputs(*tx));
    view->iam = iam::Snapshot::Build(std::move(inputs));
  } else {
    view->iam = previous->iam;
  }
  if (identities || !previous) {
    // Its own read transaction, opened after ours: never older than the policies read above.
    MOAT_TRY(view->directory, identity::LoadDirectory(store_));
  } else {
    view->directory = previous->directory;
  }
  if (services || !previous) {
    MOAT_TRY(view->services, LoadServices(*tx, &view->broken_services));
    for (size_t i = 0; i < view->services.size(); ++i) {
      const auto& s = view->services[i];
      view->service_by_name[s.name] = i;
      view->service_by_host[s.host] = i;
      for (const auto& h : s.hostnames) view->service_by_host.emplace(h, i);
    }
  } else {
    view->services = previous->services;
    view->service_by_host = previous->service_by_host;
    view->service_by_name = previous->service_by_name;
    view->broken_services = previous->broken_services;
  }
  // A read transaction's Commit returns the revision its snapshot was read at.
  MOAT_TRY(view->revision, tx->Commit());
  return std::shared_ptr<const View>(std::move(view));
}

Status LiveState::Start() {
  // Hold first (at 0: nothing newer may go), then read the cursor and move the hold up to it,
  // so compaction cannot pass the cursor between the two calls.
  hold_ = store_.HoldChanges(0);
  MOAT_TRY(cursor_, store_.CurrentRevision());
  hold_.Advance(cursor_);
  MOAT_TRY(auto first, Build(nullptr, true, true, true));
  // The first view may already include later commits; the cursor only moves forward.
  Publish(first);
  subscription_ = store_.Subscribe([this](int64_t) {
    std::lock_guard lock(mu_);
    dirty_ = true;
    cv_.notify_all();
  });
  thread_ = std::thread([this] { Follow(); });
  return Ok();
}

void LiveState::Stop() {
  subscription_.Reset();
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  hold_.Reset();
}

const std::shared_ptr<const View>& LiveState::CurrentForThisThread() const {
  thread_local struct {
    uint64_t instance = 0;
    uint64_t generation = 0;
    std::shared_ptr<const View> view;
  } cache;
  // Publish stores the View before it moves the generation: a View loaded after reading
  // generation g is at least as new as g (if newer, the next call loads it again).
  uint64_t g = generation();
  if (cache.instance != instance_ || cache.generation != g || !cache.view) {
    cache.view = Current();
    cache.generation = g;
    cache.instance = instance_;
  }
  return cache.view;
}

void LiveState::Publish(std::shared_ptr<const View> view) {
  {
    std::lock_guard lock(view_mu_);
    view_ = view;
  }
  generation_.fetch_add(1, std::memory_order_acq_rel);
  std::vector<Listener> listeners;
  {
    std::lock_guard lock(mu_);
    listeners = listeners_;
    cv_.notify_all();
  }
  for (auto& l : listeners) l(view);
}

void LiveState::AddListener(Listener listener) {
  std::shared_ptr<const View> current;
  {
    std::lock_guard lock(mu_);
    listeners_.push_back(listener);
    current = Current();
  }
  if (current) listener(current);
}

bool LiveState::WaitForRevision(int64_t revision, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] {
    auto v = Current();
    return stop_ || (v && v->revision >= revision);
  }) && Current() && Current()->revision >= revision;
}

void LiveState::Follow() {
  using store::Collection;
  // After a failed read of the change feed, try again on this backoff (or at the next commit,
  // whichever comes first): without it, a transient store error would leave the gateway
  // enforcing a stale view until something else is committed.
  std::chrono::milliseconds retry{0};
  while (true) {
    {
      std::unique_lock lock(mu_);
      if (retry.count() > 0) {
        cv_.wait_for(lock, retry, [&] { return stop_ || dirty_; });
      } else {
        cv_.wait(lock, [&] { return stop_ || dirty_; });
      }
      if (stop_) return;
      dirty_ = false;
    }
    bool reload = false;
    bool read_failed = false;
    while (true) {
      auto batch = store_.ChangesSince(cursor_);
      if (!batch && batch.error().code == Code::kOutOfRange) {
        // The feed was compacted past our cursor (our hold was too far behind to stop it):
        // rebuild everything from a full snapshot.
        log::Warn("the live state fell behind the compacted change feed; reloading",
                  {{"error", batch.error().message}});
        reload = true;
        break;
      }
      if (!batch) {
        log::Error("cannot read the store's change feed; retrying",
                   {{"error", batch.error().message}});
        read_failed = true;
        break;
      }
      for (const auto& c : batch->changes) {
        auto& changed = pending_.changed;
        if (std::find(changed.begin(), changed.end(), c.collection) == changed.end()) {
          changed.push_back(c.collection);
        }
        switch (c.collection) {
          case Collection::kPolicies:
          case Collection::kRoles: pending_.policies = true; break;
          case Collection::kGroups: pending_.policies = pending_.identities = true; break;
          case Collection::kServiceAccounts:
          case Collection::kSaKeys:
          case Collection::kUsers:
          case Collection::kTrustedIssuers: pending_.identities = true; break;
          case Collection::kServices:
          case Collection::kProjects: pending_.services = true; break;
          default: break;
        }
      }
      if (batch->last_revision == cursor_) break;
      cursor_ = batch->last_revision;
    }
    auto back_off = [&retry] {
      using namespace std::chrono_literals;
      retry = retry.count() == 0 ? 100ms : std::min<std::chrono::milliseconds>(retry * 2, 5s);
    };
    if (read_failed) {
      back_off();
    } else {
      retry = std::chrono::milliseconds(0);
    }
    if (reload) {
      auto view = Build(nullptr, true, true, true,
                        std::vector<store::Collection>(std::begin(store::kAllCollections),
                                                       std::end(store::kAllCollections)));
      if (!view) {
        log::Error("cannot reload the live state; keeping the previous one",
                   {{"error", view.error().message}});
        back_off();  // and retry (a reload is needed whatever is committed next)
        continue;
      }
      cursor_ = (*view)->revision;  // the snapshot's revision; follow the feed from there
      pending_ = {};                // the snapshot includes everything read before it
      reloads_.fetch_add(1, std::memory_order_relaxed);
      hold_.Advance(cursor_);
      Publish(*view);
      continue;
    }
    auto previous = Current();
    if (previous && cursor_ <= previous->revision) {
      // Nothing newer than published (the View was read at or after cursor_).
      pending_ = {};
      hold_.Advance(cursor_);
      continue;
    }
    auto view = Build(previous.get(), pending_.policies, pending_.identities, pending_.services,
                      pending_.changed);
    if (!view) {
      log::Error("cannot rebuild the live state; keeping the previous one",
                 {{"error", view.error().message}});
      back_off();  // retry with pending_ still set (before the next commit if there is none)
      continue;
    }
    pending_ = {};
    // Every change up to cursor_ is in the View (it was read at or after cursor_).
    hold_.Advance(cursor_);
    Publish(*view);
  }
}

}  // namespace moat::state
