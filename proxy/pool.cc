#include "proxy/pool.h"

#include <algorithm>

#include "conf/pool_template.h"
#include "proxy/client_session.h"
#include "proxy/log.h"
#include "proxy/pooler.h"
#include "proxy/server_session.h"

namespace pgtenant::proxy {
namespace {

// After a failed connect, waiting clients fail at once; new requests within this window fail
// fast too instead of each opening another doomed connection.
constexpr uint64_t kConnectRetryBackoffMs = 200;
// How long after a failed connect the janitor waits before opening min_size connections again.
constexpr uint64_t kMinSizeRetryMs = 1000;

uint64_t g_next_server_id = 1;

}  // namespace

Pool::Pool(Pooler* pooler, const conf::Pool& config) : pooler_(pooler), config_(config) {}

Pool::~Pool() {
  pooler_->UnscheduleHandOver(this);
  // Servers are freed through their close callbacks; by now the loop has closed them all.
  for (ServerSession* s : servers_) delete s;
}

metrics::PoolHandle* Pool::metrics_handle() {
  if (metrics_handle_ == nullptr) {
    metrics_handle_ = pooler_->metrics().Pool(std::string(conf::MetricsPoolName(config_.name)));
  }
  return metrics_handle_;
}

void Pool::UpdateConfig(const conf::Pool& config) {
  bool backend_changed = config.host != config_.host || config.port != config_.port ||
                         config.database != config_.database || config.user != config_.user ||
                         config.password != config_.password || config.tls != config_.tls ||
                         config.ca_file != config_.ca_file;
  config_ = config;
  if (backend_changed) {
    // Idle connections to the old backend go now; busy ones close when released.
    ++generation_;
    server_params_.clear();
    CloseIdleServers();
  }
  ServeWaiters();
}

void Pool::Retire() {
  retired_ = true;
  CloseIdleServers();
}

int Pool::active_count() const {
  int n = 0;
  for (ServerSession* s : servers_) n += s->client() != nullptr;
  return n;
}

int Pool::connecting_count() const {
  int n = 0;
  for (ServerSession* s : servers_) {
    auto st = s->state();
    n += st == ServerSession::State::kResolving || st == ServerSession::State::kConnecting ||
         st == ServerSession::State::kLogin;
  }
  return n;
}

uint64_t Pool::max_wait_ms(uint64_t now_ms) const {
  const auto* oldest = waiting_.Oldest();
  return oldest == nullptr ? 0 : now_ms - oldest->since;
}

int Pool::held_by(const std::string& tenant) const {
  auto it = held_.find(tenant);
  return it == held_.end() ? 0 : it->second;
}

int Pool::TenantCap(const std::string& tenant) const {
  if (!tenant.empty()) {
    const auto& tenants = pooler_->config().tenants;
    auto it = tenants.find(tenant);
    if (it != tenants.end() && it->second.max_server_connections > 0) return it->second.max_server_connections;
  }
  return config_.max_connections_per_tenant;
}

bool Pool::CapsConfigured() const {
  const conf::Config* cfg = &pooler_->config();
  if (cfg != caps_checked_for_) {
    caps_checked_for_ = cfg;
    any_tenant_cap_ = std::any_of(cfg->tenants.begin(), cfg->tenants.end(),
                                  [](const auto& t) { return t.second.max_server_connections > 0; });
  }
  return config_.max_connections_per_tenant > 0 || any_tenant_cap_;
}

bool Pool::UnderCap(const std::string& tenant) const {
  if (!CapsConfigured()) return true;
  const int cap = TenantCap(tenant);
  return cap == 0 || held_by(tenant) < cap;
}

size_t Pool::ServableWaiting() const {
  if (!CapsConfigured()) return waiting_.size();
  return waiting_.CountIn([this](const std::string& tenant) { return UnderCap(tenant); });
}

void Pool::CountHold(ServerSession* server, const std::string& tenant) {
  ServerSession::PoolMarks& hold = server->pool_marks();
  if (hold.tenant_counted) return;  // session mode: held since an earlier hand-over
  hold.tenant = tenant;
  hold.tenant_counted = true;
  ++held_[tenant];
}

void Pool::UncountHold(ServerSession* server) {
  ServerSession::PoolMarks& hold = server->pool_marks();
  if (!hold.tenant_counted) return;
  hold.tenant_counted = false;
  auto it = held_.find(hold.tenant);
  if (it != held_.end() && --it->second <= 0) held_.erase(it);
}

void Pool::Acquire(ClientSession* client) {
  const std::string lane = client->WaitLane();
  // Idle servers while others wait are promised to them (Release): queue behind.
  if (!paused_ && waiting_.empty() && UnderCap(lane)) {
    while (!idle_.empty()) {
      ServerSession* s = idle_.back();
      idle_.pop_back();
      if (s->state() != ServerSession::State::kIdle) continue;
      HandOver(s, client);
      return;
    }
  }
  client->wait_position() = waiting_.Push(lane, client, client->wait_started_ms());
  if (!paused_ && !idle_.empty()) {
    // Idle servers and waiters at once: the waiters were at their tenants' caps. This client
    // may be under its own, or its lane's turn may come first: served with the releases, at
    // the end of this loop iteration, not inside this client's call.
    pooler_->ScheduleHandOver(this);
    return;
  }
  if (!paused_) {
    int connecting = connecting_count();
    // Open one connection per waiter beyond those already on their way, up to the size.
    if (static_cast<int>(servers_.size()) < config_.size &&
        connecting < static_cast<int>(ServableWaiting())) {
      if (NowMs() - last_connect_failure_ms_ < kConnectRetryBackoffMs && last_connect_failure_ms_ != 0 &&
          connecting == 0) {
        // The backend just refused us; do not hammer it, but let the janitor retry soon.
        return;
      }
      (void)OpenServer();  // without room in the budget, the pool waits for a slot
    }
  }
}

void Pool::CancelWait(ClientSession* client) { waiting_.Erase(&client->wait_position()); }

bool Pool::OpenServer() {
  std::string host = BackendKey();
  if (!pooler_->TakeServerSlot(this, host)) return false;
  auto* s = new ServerSession(this, g_next_server_id++);
  s->pool_marks().budget_host = std::move(host);
  servers_.insert(s);
  s->Connect();
  return true;
}

ServerSession* Pool::LeastRecentlyUsedIdle() const {
  ServerSession* lru = nullptr;
  for (ServerSession* s : idle_) {
    if (s->state() != ServerSession::State::kIdle) continue;
    if (lru == nullptr || s->last_used_ms() < lru->last_used_ms()) lru = s;
  }
  return lru;
}

void Pool::CloseIdleForBudget(ServerSession* server) {
  auto it = std::find(idle_.begin(), idle_.end(), server);
  if (it != idle_.end()) idle_.erase(it);
  server->pool_marks().evicted = true;
  pooler_->NoteEviction();
  server->Close("its slot of limits.max_server_connections goes to another pool");
}

void Pool::HandOver(ServerSession* server, ClientSession* client) {
  pooler_->AccountWait(this, client->usage(), (NowMs() - client->wait_started_ms()) * 1000);
  CountHold(server, client->WaitLane());
  client->OnServerAssigned(server);
}

void Pool::Release(ServerSession* server, bool fresh) {
  UncountHold(server);
  uint64_t now = NowMs();
  const auto& t = pooler_->config().timeouts;
  if (retired_ || pooler_->shutting_down() || server->generation() != generation_ || (t.server_lifetime > 0 && now - server->created_ms() > static_cast<uint64_t>(t.server_lifetime)) ||
      static_cast<int>(servers_.size()) > config_.size) {
    server->Close("lifetime or pool shrink");
    ServeWaiters();
    return;
  }
  if (!fresh && now - server->created_ms() >= kBudgetQuantumMs && server_count() > config_.min_size &&
      pooler_->PoolShortOfItsShareWaits() && pooler_->ServerSlotWantedFrom(this, server->pool_marks().budget_host) &&
      (waiting_.empty() || pooler_->HoldsMoreThanItsShare(this))) {
    // Another pool waits for a slot of the budget, and nobody here needs this connection, or
    // this pool holds more than its share: give it up, so that busy pools cannot starve the
    // others of the budget (docs/architecture.md, "The server-connection budget"). Not before
    // it has served its quantum, though (a fresh one serves its waiters first): closing it
    // unused spent a login for nothing (bench/scale.sh saw 81% of the connections closed for the
    // budget serve nobody). Kept idle, it is still the budget's to take (Pooler::Maintain).
    CloseIdleForBudget(server);
    return;
  }
  idle_.push_back(server);
  // Waiters get released servers at the end of the loop iteration, all together, rather than
  // each one inside the callback that released it: the waiters' statements then reach their
  // backends in one burst and the answers come back in bursts, so pgbench-like clients and
  // the backends each wake once for several transactions. Handing over inline spread the
  // work evenly and cost pgbench 4-8 µs more CPU per transaction (docs/benchmarks.md).
  if (!paused_ && !waiting_.empty()) pooler_->ScheduleHandOver(this);
}

void Pool::ServeWaiters() {
  if (paused_) return;
  auto under_cap = [this](const std::string& tenant) { return UnderCap(tenant); };
  while (!waiting_.empty() && !idle_.empty()) {
    ServerSession* s = idle_.back();
    if (s->state() != ServerSession::State::kIdle) {
      idle_.pop_back();
      continue;
    }
    std::optional<ClientSession*> c = waiting_.PopNext(under_cap);
    if (!c) break;  // every waiting tenant is at its cap: the server stays idle
    idle_.pop_back();
    (*c)->wait_position() = {};
    HandOver(s, *c);
  }
  int connecting = connecting_count();
  const int servable = static_cast<int>(ServableWaiting());
  while (!retired_ && static_cast<int>(servers_.size()) < config_.size && connecting < servable) {
    if (!OpenServer()) break;  // the budget is spent: the pool waits for a slot
    ++connecting;
  }
}

void Pool::Resume() {
  paused_ = false;
  ServeWaiters();
}

void Pool::OnServerLoggedIn(ServerSession* server, const ParamList& params) {
  last_connect_failure_ms_ = 0;
  server_params_ = params;
  Release(server, /*fresh=*/true);
}

void Pool::OnServerConnectFailed(ServerSession* server, const std::string& reason) {
  last_connect_failure_ms_ = NowMs();
  // A failed login means the backend is down or refuses us: every waiter would wait in vain.
  // Only fail them when no other connection is about to succeed.
  int others_connecting = connecting_count() - 1;
  if (others_connecting <= 0 && idle_.empty()) {
    FailWaiters("08006", "pool \"" + name() + "\": cannot connect to the backend " + config_.host +
                             ":" + std::to_string(config_.port) + ": " + reason);
  }
}

void Pool::FailWaiters(const std::string& sqlstate, const std::string& message) {
  std::list<ClientSession*> failed = waiting_.TakeAll();
  for (ClientSession* c : failed) {
    c->wait_position() = {};
    c->OnServerUnavailable(sqlstate, message);
  }
}

void Pool::OnServerGone(ServerSession* server) {
  UncountHold(server);
  servers_.erase(server);
  auto it = std::find(idle_.begin(), idle_.end(), server);
  if (it != idle_.end()) idle_.erase(it);
  // Its slot of the budget may go to a pool that waits for one (which may be this one).
  pooler_->ReturnServerSlot(server->pool_marks().budget_host, server->pool_marks().evicted);
  // A server closing frees a slot for someone waiting.
  if (!pooler_->shutting_down()) ServeWaiters();
  if (retired_ && Drained()) pooler_->OnPoolDrained();
}

void Pool::CloseIdleServers() {
  std::vector<ServerSession*> idle;
  idle.swap(idle_);
  for (ServerSession* s : idle) s->Close("closing idle connections");
}

void Pool::Maintain(uint64_t now_ms) {
  const auto& t = pooler_->config().timeouts;
  if (t.query_wait > 0) {
    while (!waiting_.empty() && now_ms - waiting_.Oldest()->since > static_cast<uint64_t>(t.query_wait)) {
      ClientSession* c = waiting_.PopOldest();
      c->wait_position() = {};
      c->OnServerUnavailable("57014", "canceling statement: no server connection of pool \"" + name() +
                                          "\" became free within timeouts.query_wait (" +
                                          std::to_string(t.query_wait) + "ms)");
    }
  }
  std::vector<ServerSession*> expired;
  size_t kept = servers_.size();
  for (ServerSession* s : idle_) {
    bool idle_expired = t.server_idle > 0 && now_ms - s->last_used_ms() > static_cast<uint64_t>(t.server_idle);
    bool life_expired = t.server_lifetime > 0 && now_ms - s->created_ms() > static_cast<uint64_t>(t.server_lifetime);
    // min_size connections stay however long they idle; their lifetime still ends them.
    if (idle_expired && !life_expired && kept <= static_cast<size_t>(config_.min_size)) continue;
    if (idle_expired || life_expired) {
      expired.push_back(s);
      --kept;
    }
  }
  for (ServerSession* s : expired) {
    idle_.erase(std::find(idle_.begin(), idle_.end(), s));
    s->Close("idle or lifetime timeout");
  }
  for (ServerSession* s : servers_) s->CloseIfLingering(now_ms);
  for (ServerSession* s : servers_) {
    if ((s->state() == ServerSession::State::kConnecting || s->state() == ServerSession::State::kResolving ||
         s->state() == ServerSession::State::kLogin) &&
        t.server_connect > 0 && now_ms - s->created_ms() > static_cast<uint64_t>(t.server_connect)) {
      expired.push_back(s);
    }
  }
  for (ServerSession* s : expired) {
    if (s->state() != ServerSession::State::kClosing) {
      OnServerConnectFailed(s, "timeout after server_connect");
      s->Close("server_connect timeout");
    }
  }
  // Waiters left behind by an earlier connect failure get a fresh attempt.
  ServeWaiters();
  // Up to min_size: connections opened ahead of need (not within a second of a failed connect).
  const bool backing_off = last_connect_failure_ms_ != 0 && now_ms - last_connect_failure_ms_ < kMinSizeRetryMs;
  while (!retired_ && !paused_ && !backing_off && !pooler_->shutting_down() &&
         static_cast<int>(servers_.size()) < std::min(config_.min_size, config_.size)) {
    if (!OpenServer()) break;  // the budget is spent
  }
}

}  // namespace pgtenant::proxy
