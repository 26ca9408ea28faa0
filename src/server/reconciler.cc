#include "server/reconciler.h"

#include <algorithm>
#include <cstdio>
#include <set>

#include "common/log.h"
#include "http/client.h"

namespace moat::server {

Reconciler::Reconciler(runtime::Supervisor& supervisor, MetadataServers& metadata,
                       gateway::RouteTableHolder& routes, std::string gateway_base)
    : supervisor_(supervisor),
      metadata_(metadata),
      routes_(routes),
      gateway_base_(std::move(gateway_base)),
      thread_([this] { Run(); }) {}

Reconciler::~Reconciler() { Stop(); }

void Reconciler::Stop() {
  std::multimap<int64_t, std::function<void(bool)>> waiters;
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    waiters.swap(waiters_);
    cv_.notify_all();
  }
  for (auto& [rev, done] : waiters) done(false);
  if (thread_.joinable()) thread_.join();
}

void Reconciler::AdvanceLocked(int64_t revision, std::vector<std::function<void(bool)>>* ready) {
  done_revision_ = std::max(done_revision_, revision);
  done_atomic_.store(done_revision_, std::memory_order_release);
  auto end = waiters_.upper_bound(done_revision_);
  for (auto it = waiters_.begin(); it != end; ++it) ready->push_back(std::move(it->second));
  waiters_.erase(waiters_.begin(), end);
}

void Reconciler::NotifyReconciled(int64_t revision, std::function<void(bool)> done) {
  {
    std::lock_guard lock(mu_);
    if (!stop_ && done_revision_ < revision && waiters_.size() < kMaxWaiters) {
      waiters_.emplace(revision, std::move(done));
      return;
    }
  }
  done(Reconciled(revision));
}

void Reconciler::Apply(std::shared_ptr<const state::View> view) {
  std::vector<std::function<void(bool)>> ready;
  {
    std::lock_guard lock(mu_);
    // Views may reach us out of order (a listener registered while the live state already
    // follows the store gets the then-current View from another thread): never go back.
    if (view->revision < applied_revision_) return;
    applied_revision_ = view->revision;
    // The first View (whatever it says changed) and every View touching services or projects
    // rebuild the routes; the others only move the reconciled revision.
    bool relevant = !seen_view_ || view->changed.empty();
    for (auto c : view->changed) {
      if (c == store::Collection::kServices || c == store::Collection::kProjects) relevant = true;
    }
    seen_view_ = true;
    if (relevant) {
      pending_ = std::move(view);
    } else if (!pending_ && !busy_) {
      // Nothing for us and nothing in flight: reconciled as it stands.
      AdvanceLocked(view->revision, &ready);
    } else {
      // An earlier View is still being (or about to be) reconciled: this revision counts only
      // once that work is published, never before (a waiter released here would see a route
      // table without the service that earlier View deployed).
      deferred_revision_ = std::max(deferred_revision_, view->revision);
    }
    cv_.notify_all();
  }
  for (auto& done : ready) done(true);
}

bool Reconciler::WaitReconciled(int64_t revision, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return stop_ || done_revision_ >= revision; }) &&
         done_revision_ >= revision;
}

void Reconciler::Run() {
  while (true) {
    std::shared_ptr<const state::View> view;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_ || pending_; });
      if (stop_) return;
      view = std::move(pending_);
      pending_.reset();
      busy_ = true;
    }
    Reconcile(*view);
    std::vector<std::function<void(bool)>> ready;
    {
      std::lock_guard lock(mu_);
      busy_ = false;
      int64_t reached = view->revision;
      // Revisions that changed nothing of ours and arrived meanwhile are covered too, unless a
      // newer relevant View waits (then they count once it is done).
      if (!pending_) reached = std::max(reached, deferred_revision_);
      AdvanceLocked(reached, &ready);
      cv_.notify_all();
    }
    for (auto& done : ready) done(true);
  }
}

void Reconciler::Reconcile(const state::View& view) {
  // 1. Command services: start new generations, remove what is gone.
  for (const auto& spec : view.services) {
    if (!spec.runs_command()) continue;
    auto it = running_.find(spec.name);
    if (it != running_.end() && it->second == spec.generation) continue;
    if (it != running_.end()) {
      (void)supervisor_.Remove(spec.name);
      running_.erase(it);
    }
    auto md = metadata_.Ensure(spec.name, spec.project, spec.service_account);
    if (!md) {
      log::Error("cannot start the service's metadata server",
                 {{"service", spec.name}, {"error", md.error().message}});
      continue;
    }
    runtime::ProcessSpec p;
    p.service = spec.name;
    p.argv = spec.command;
    p.working_dir = spec.working_dir;
    for (const auto& [k, v] : spec.env) p.env[k] = v;
    p.k_service = spec.service_id;
    char rev[32];
    std::snprintf(rev, sizeof rev, "-%05lld", static_cast<long long>(spec.generation));
    p.k_revision = spec.service_id + rev;
    p.k_configuration = spec.service_id;
    p.metadata_host = *md;
    auto st = supervisor_.Start(std::move(p));
    if (!st) {
      log::Error("cannot start the service",
                 {{"service", spec.name}, {"error", st.error().message}});
      continue;
    }
    running_[spec.name] = spec.generation;
  }
  for (auto it = running_.begin(); it != running_.end();) {
    const auto* spec = view.FindByName(it->first);
    if (spec && spec->runs_command()) {
      ++it;
      continue;
    }
    (void)supervisor_.Remove(it->first);
    metadata_.Remove(it->first);
    it = running_.erase(it);
  }

  // 2. The route table.
  auto table = std::make_shared<gateway::RouteTable>();
  std::set<std::string> keep_warm, command_services;
  for (const auto& spec : view.services) {
    auto entry = std::make_shared<gateway::ServiceEntry>();
    entry->name = spec.name;
    entry->request_timeout = spec.timeout;
    entry->audiences = state::AudiencesFor(spec, gateway_base_);
    entry->invoker_iam_disabled = spec.invoker_iam_disabled;
    entry->ingress = gateway::ParseIngress(spec.ingress);
    if (spec.runs_command()) {
      auto status = supervisor_.GetStatus(spec.name);
      if (!status) continue;
      entry->upstream_host = "127.0.0.1";
      entry->upstream_port = status->port;
      if (activators_) {
        entry->activator = activators_->For(spec.name);
        if (spec.min_instances > 0) keep_warm.insert(spec.name);
        command_services.insert(spec.name);
      }
    } else {
      auto url = http::ParseHttpUrl(spec.upstream);
      if (!url) {
        log::Error("service has an unusable upstream URL", {{"service", spec.name}});
        continue;
      }
      entry->upstream_host = url->host;
      entry->upstream_port = url->port;
    }
    std::shared_ptr<const gateway::ServiceEntry> shared = entry;
    (void)table->Add(spec.host, shared);
    for (const auto& h : spec.hostnames) {
      if (auto st = table->Add(h, shared); !st) {
        log::Warn("hostname is already used by another service",
                  {{"service", spec.name}, {"hostname", h}});
      }
    }
  }
  if (activators_) {
    activators_->SetKeepWarm(std::move(keep_warm));
    activators_->Retain(command_services);
  }
  routes_.Set(std::move(table));
}

}  // namespace moat::server
