#include "gateway/forward_auth.h"

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "common/log.h"
#include "gateway/pages.h"
#include "http/handler.h"

namespace moat::gateway {

namespace asio = boost::asio;

namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The value of the first of `primary` / `fallback` that is present. False when the chosen name
// appears more than once (an ambiguous question is refused, never guessed).
bool OneOf(const http::Headers& h, std::string_view primary, std::string_view fallback,
           const std::string_view** out) {
  *out = nullptr;
  for (std::string_view name : {primary, fallback}) {
    size_t n = h.Count(name);
    if (n == 0) continue;
    if (n > 1) return false;
    *out = h.Find(name);
    return true;
  }
  return true;
}

bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool ValidMethod(std::string_view m) {
  if (m.empty() || m.size() > 32) return false;
  for (char c : m) {
    if (!IsTokenChar(c)) return false;
  }
  return true;
}

// Origin-form only: "/…" with visible ASCII (no spaces, controls or bytes ≥ 0x7f).
bool ValidUri(std::string_view u) {
  if (u.empty() || u.front() != '/') return false;
  for (char c : u) {
    auto b = static_cast<unsigned char>(c);
    if (b <= 0x20 || b >= 0x7f) return false;
  }
  return true;
}

// The original client's address: the last X-Forwarded-For entry (the one the fronting proxy
// appended), else X-Real-IP; "" when neither names one.
std::string_view OriginalClient(const http::Headers& h) {
  std::string_view last;
  for (const http::Field& f : h) {
    if (f.id != http::FieldId::kXForwardedFor) continue;
    std::string_view v = f.value;
    size_t comma = v.rfind(',');
    std::string_view item = Trim(comma == std::string_view::npos ? v : v.substr(comma + 1));
    if (!item.empty()) last = item;
  }
  if (last.empty()) last = Trim(h.Get("x-real-ip"));
  return HostOfRemote(last);
}

struct Outcome {
  const ServiceEntry* service = nullptr;
  std::string decision = "none";
  std::string principal;
  std::string reason;
  TokenHeader token_header = TokenHeader::kNone;
  std::string_view host;
  std::string_view method;
  std::string_view uri;
  std::string_view client;
};

}  // namespace

class ForwardAuth::Impl {
 public:
  Impl(ForwardAuthOptions o, std::shared_ptr<RouteTableHolder> routes, std::shared_ptr<Gate> gate)
      : options_(std::move(o)), routes_(std::move(routes)), gate_(std::move(gate)) {}

  void Attach(size_t n) { workers_ = std::vector<WorkerRoutes>(n); }
  asio::awaitable<bool> Handle(http::Exchange& ex);

  // INVARIANT: workers_[i] is touched only on worker i's thread.
  struct WorkerRoutes {
    uint64_t version = 0;
    std::shared_ptr<const RouteTable> table;
  };
  std::vector<WorkerRoutes> workers_;
  ForwardAuthOptions options_;
  std::shared_ptr<RouteTableHolder> routes_;
  std::shared_ptr<Gate> gate_;
  DenialHook hook_;

 private:
  asio::awaitable<bool> Answer(http::Exchange& ex, const Outcome& o, int status);
  void Log(const http::Exchange& ex, const Outcome& o);
};

namespace {

class ForwardAuthHandler : public http::Handler {
 public:
  explicit ForwardAuthHandler(std::shared_ptr<ForwardAuth::Impl> impl) : impl_(std::move(impl)) {}
  void Attach(size_t workers) override { impl_->Attach(workers); }
  asio::awaitable<bool> Handle(http::Exchange& ex) override { return impl_->Handle(ex); }

 private:
  std::shared_ptr<ForwardAuth::Impl> impl_;
};

}  // namespace

void ForwardAuth::Impl::Log(const http::Exchange& ex, const Outcome& o) {
  if (!options_.access_log) return;
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                                  ex.start)
                .count();
  log::Info("forward-auth", {{"request_id", ex.request_id},
                             {"service", o.service ? o.service->name : std::string()},
                             {"host", std::string(o.host)},
                             {"method", std::string(o.method)},
                             {"path", std::string(o.uri.substr(0, o.uri.find('?')))},
                             {"principal", o.principal},
                             {"decision", o.decision},
                             {"token_header", std::string(TokenHeaderName(o.token_header))},
                             {"status", std::to_string(ex.status)},
                             {"latency_us", std::to_string(us)},
                             {"reason", o.reason},
                             {"client", std::string(o.client)},
                             {"remote", ex.remote_addr}});
}

asio::awaitable<bool> ForwardAuth::Impl::Answer(http::Exchange& ex, const Outcome& o, int status) {
  http::Response r;
  r.status = status;
  if (status == 200) {
    if (!o.principal.empty()) r.headers.Add("X-Moat-Principal", o.principal);
  } else {
    r.headers.Add("Content-Type", "text/plain; charset=utf-8");
    if (status == 401) r.headers.Add("WWW-Authenticate", std::string(kWwwAuthenticate));
    r.body = std::to_string(status) + " " + std::string(http::ReasonPhrase(status)) + "\n";
  }
  r.headers.Add("Cache-Control", "no-store");
  // A body the question carried is not read: close rather than skip it.
  bool keep = ex.head.keep_alive && ex.body.done() && status != 400;
  bool ok = co_await ex.WriteResponse(r, keep);
  Log(ex, o);
  co_return ok&& keep;
}

asio::awaitable<bool> ForwardAuth::Impl::Handle(http::Exchange& ex) {
  const http::Headers& h = ex.head.headers;
  Outcome o;
  o.client = OriginalClient(h);

  const std::string_view* host = nullptr;
  const std::string_view* method = nullptr;
  const std::string_view* uri = nullptr;
  bool unique = OneOf(h, "x-forwarded-host", "x-original-host", &host) &&
                OneOf(h, "x-forwarded-method", "x-original-method", &method) &&
                OneOf(h, "x-forwarded-uri", "x-original-uri", &uri);
  if (!unique) {
    o.reason = "repeated forwarded header";
    co_return co_await Answer(ex, o, 400);
  }
  if (host == nullptr || Trim(*host).empty()) {
    o.reason = "no X-Forwarded-Host";
    co_return co_await Answer(ex, o, 400);
  }
  o.host = Trim(*host);
  o.method = method ? Trim(*method) : std::string_view(ex.head.method);
  o.uri = uri ? Trim(*uri) : std::string_view("/");
  if (o.host.find(',') != std::string_view::npos) {
    o.reason = "X-Forwarded-Host lists several hosts";
    co_return co_await Answer(ex, o, 400);
  }
  if (!ValidMethod(o.method)) {
    o.reason = "malformed forwarded method";
    o.method = {};
    co_return co_await Answer(ex, o, 400);
  }
  if (!ValidUri(o.uri)) {
    o.reason = "malformed forwarded URI";
    o.uri = {};
    co_return co_await Answer(ex, o, 400);
  }

  // The worker's cached snapshot, reloaded only when the holder's version moved.
  WorkerRoutes& wr = workers_[ex.worker];
  if (uint64_t v = routes_->version(); v != wr.version) {
    wr.table = routes_->Get();
    wr.version = v;
  }
  const std::shared_ptr<const ServiceEntry>* found = wr.table->Find(o.host);
  if (found == nullptr) {
    o.reason = "unknown host";
    co_return co_await Answer(ex, o, 404);
  }
  std::shared_ptr<const ServiceEntry> svc = *found;
  o.service = svc.get();
  if (svc->ingress != Ingress::kAll && (svc->ingress == Ingress::kNone || o.client.empty() ||
                                        !options_.internal_networks.Contains(o.client))) {
    o.decision = "deny";
    o.reason = o.client.empty() ? "ingress: original client unknown" : "ingress";
    co_return co_await Answer(ex, o, 404);
  }
  if (h.Count("authorization") > 1 || h.Count("x-serverless-authorization") > 1) {
    o.reason = "repeated credential header";
    co_return co_await Answer(ex, o, 400);
  }

  GateRequest greq{*svc,
                   o.method,
                   o.uri,
                   o.host,
                   h,
                   h.Find("authorization"),
                   h.Find("x-serverless-authorization"),
                   o.client.empty() ? std::string_view(ex.remote_addr) : o.client,
                   ex.request_id};
  GateDecision d;
  try {
    d = gate_->Decide(greq);
  } catch (const std::exception& e) {
    d = GateDecision::Deny(503, std::string("gate failed: ") + e.what());
  }
  o.principal = d.principal;
  o.token_header = d.token_header;
  if (d.allowed) {
    o.decision = "allow";
    co_return co_await Answer(ex, o, 200);
  }
  int status = (d.status == 401 || d.status == 403 || d.status == 503) ? d.status : 403;
  o.decision = "deny";
  o.reason = d.reason;
  if (hook_) {
    try {
      hook_(greq, d);
    } catch (const std::exception& e) {
      log::Error("denial hook failed", {{"request_id", ex.request_id}, {"error", e.what()}});
    }
  }
  co_return co_await Answer(ex, o, status);
}

ForwardAuth::ForwardAuth(ForwardAuthOptions options, std::shared_ptr<RouteTableHolder> routes,
                         std::shared_ptr<Gate> gate)
    : impl_(std::make_shared<Impl>(std::move(options), std::move(routes), std::move(gate))) {}
ForwardAuth::~ForwardAuth() = default;
void ForwardAuth::SetDenialHook(DenialHook hook) { impl_->hook_ = std::move(hook); }
std::shared_ptr<http::Handler> ForwardAuth::handler() {
  return std::make_shared<ForwardAuthHandler>(impl_);
}

}  // namespace moat::gateway
