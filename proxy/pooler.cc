#include "proxy/pooler.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <sys/resource.h>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <sstream>

#include <cstdlib>
#include <cstring>
#include <unistd.h>
#include <vector>

#include "conf/loader.h"
#include "conf/pool_template.h"
#include "protocol/md5_auth.h"
#include "proxy/cancel.h"
#include "proxy/client_session.h"
#include "proxy/listen_address.h"
#include "proxy/log.h"
#include "proxy/server_session.h"

namespace pgtenant::proxy {
namespace {
constexpr uint64_t kJanitorIntervalMs = 100;
constexpr int kListenBacklog = 4096;
constexpr int kScramIterations = 4096;
}  // namespace

// The loop's cached clock (updated once per loop iteration): millisecond timeouts and ages do not
// need a clock_gettime per message, which cost ~1% of the CPU under load. pgtenant runs one
// loop, the default one.
uint64_t NowMs() { return uv_now(uv_default_loop()); }

namespace {
std::string ReadFileText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}
}  // namespace

void Pooler::StartConfigWatch() {
  if (!config_->config_watch || config_watching_) return;
  // Watch the directory, not the file: editors and Kubernetes ConfigMaps replace the file (a
  // rename, or a swap of the ..data symlink), which a watch on the old inode would miss.
  std::string path = config_->source_path;
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  uv_fs_event_init(loop_, &config_watch_);
  config_watch_.data = this;
  uv_timer_init(loop_, &config_settle_);
  config_settle_.data = this;
  int rc = uv_fs_event_start(&config_watch_, OnConfigFileEvent, dir.c_str(), 0);
  if (rc != 0) {
    LOG_WARNING("config_watch: cannot watch %s: %s", dir.c_str(), uv_strerror(rc));
  } else {
    LOG_INFO("config_watch: watching %s", dir.c_str());
  }
  config_watching_ = true;
}

void Pooler::OnConfigFileEvent(uv_fs_event_t* handle, const char*, int, int) {
  auto* self = static_cast<Pooler*>(handle->data);
  // Writers touch a file several times in a row; reload once they have settled.
  uv_timer_start(&self->config_settle_, OnConfigSettled, 300, 0);
}

void Pooler::OnConfigSettled(uv_timer_t* timer) {
  auto* self = static_cast<Pooler*>(timer->data);
  if (self->shutting_down_ || !self->config_->config_watch) return;
  std::string text = ReadFileText(self->config_->source_path);
  if (text.empty() || text == self->config_text_) return;  // unchanged, or mid-replacement
  LOG_INFO("config_watch: %s changed; reloading", self->config_->source_path.c_str());
  Status s = self->Reload();
  (void)s;
}

Pooler::Pooler(uv_loop_t* loop, conf::ConfigPtr config) : loop_(loop) {
  dummy_verifier_ = protocol::MakeScramVerifier(protocol::RandomBytes(16), protocol::RandomBytes(16),
                                                kScramIterations);
  ApplyConfig(std::move(config));
}

Pooler::~Pooler() = default;

void Pooler::ApplyConfig(conf::ConfigPtr config) {
  // SCRAM verifiers: a stored verifier is parsed; a plain-text password is derived once here,
  // never per login (PBKDF2 would stall the loop during a connection storm).
  std::unordered_map<std::string, protocol::ScramVerifier> verifiers;
  for (const auto& [name, user] : config->auth.users) {
    if (protocol::IsScramVerifier(user.password)) {
      auto v = protocol::ParseScramVerifier(user.password);
      if (v.ok()) verifiers.emplace(name, *v);
      continue;
    }
    if (user.password.empty() || protocol::IsMd5Hash(user.password)) continue;
    bool same = config_ && config_->auth.users.count(name) &&
                config_->auth.users.at(name).password == user.password && verifiers_.count(name);
    verifiers.emplace(name, same ? verifiers_.at(name)
                                 : protocol::MakeScramVerifier(user.password, protocol::RandomBytes(16),
                                                               kScramIterations));
  }
  verifiers_ = std::move(verifiers);
  routes_ = routing::RoutingTable::Build(*config);
  budget_.Configure(config->max_server_connections, config->max_server_connections_per_host);
  for (const auto& [name, pool_cfg] : config->pools) {
    auto it = pools_.find(name);
    if (it != pools_.end()) {
      it->second->UpdateConfig(pool_cfg);
    } else {
      auto rit = retired_pools_.find(name);
      if (rit != retired_pools_.end()) {
        LOG_INFO("pool %s: removed and added back; the old one keeps draining", name.c_str());
      }
      pools_.emplace(name, std::make_unique<Pool>(this, pool_cfg));
    }
  }
  for (auto it = pools_.begin(); it != pools_.end();) {
    if (config->pools.count(it->first)) {
      ++it;
      continue;
    }
    if (it->first.find('/') != std::string::npos) {
      // A tenant's pool from a template: updated like a configured pool while the tenant
      // still names that template; retired (and drained) when it does not.
      if (std::optional<conf::Pool> cfg = conf::PoolConfigFor(*config, it->first)) {
        it->second->UpdateConfig(*cfg);
        ++it;
        continue;
      }
    }
    LOG_INFO("pool %s: removed from the config; draining", it->first.c_str());
    it->second->Retire();
    std::string key = it->first + "#" + std::to_string(NowMs());
    retired_pools_.emplace(key, std::move(it->second));
    it = pools_.erase(it);
  }
  config_ = std::move(config);
  ServeSlotWaiters();  // a larger budget lets waiting pools open connections now
}

bool Pooler::TakeServerSlot(Pool* pool, const std::string& host) {
  if (budget_.TryTake(host)) return true;
  budget_.Wait(pool->name());
  // One connection on its way out per waiting pool is enough: each frees a slot.
  if (evictions_in_flight_ < static_cast<int>(budget_.waiting_pools())) (void)EvictIdleServerFor(pool, host, MinIdleToEvictFor(pool));
  return false;
}

bool Pooler::EvictIdleServerFor(const Pool* pool, const std::string& host, uint64_t min_idle_ms) {
  const uint64_t now = NowMs();
  const bool same_host_only = budget_.HostIsFull(host);
  Pool* owner = nullptr;
  ServerSession* lru = nullptr;
  for (auto& [name, p] : pools_) {
    if (p.get() == pool || (same_host_only && p->BackendKey() != host)) continue;
    if (p->server_count() <= p->config().min_size) continue;  // it would open it again
    if (p->waiting_count() > 0) continue;  // idle only until its waiters get it, this turn
    ServerSession* s = p->LeastRecentlyUsedIdle();
    if (s != nullptr && now - s->last_used_ms() >= min_idle_ms &&
        (lru == nullptr || s->last_used_ms() < lru->last_used_ms())) {
      lru = s;
      owner = p.get();
    }
  }
  if (lru == nullptr) return false;
  LOG_DEBUG("pool %s: closing idle server connection %llu for pool %s (limits.max_server_connections)",
            owner->name().c_str(), static_cast<unsigned long long>(lru->id()), pool->name().c_str());
  owner->CloseIdleForBudget(lru);
  return true;
}

void Pooler::EvictForSlotWaiters() {
  // Connections kept for their quantum (Pool::Release) go idle while pools wait for a slot:
  // take the least recently used idle ones now, one per waiting pool without one on its way,
  // a bounded number of looks per tick (each is over every pool).
  constexpr int kMaxPerTick = 32;
  if (budget_.waiting_pools() <= static_cast<size_t>(evictions_in_flight_)) return;
  std::vector<std::string> waiting(budget_.waiters().begin(), budget_.waiters().end());
  int done = 0;
  for (const std::string& name : waiting) {
    if (done == kMaxPerTick || budget_.waiting_pools() <= static_cast<size_t>(evictions_in_flight_)) break;
    auto it = pools_.find(name);
    if (it == pools_.end()) continue;
    ++done;
    (void)EvictIdleServerFor(it->second.get(), it->second->BackendKey(), MinIdleToEvictFor(it->second.get()));
  }
}

uint64_t Pooler::MinIdleToEvictFor(const Pool* pool) const {
  // A pool short of its share takes any idle connection; one that has its share only those idle
  // for a quantum, so that connections between two transactions of their clients stay.
  return pool->server_count() < ShareOf(pool) ? 0 : kBudgetQuantumMs;
}

void Pooler::ReturnServerSlot(const std::string& host, bool evicted) {
  budget_.Return(host);
  if (evicted && evictions_in_flight_ > 0) --evictions_in_flight_;
  ServeSlotWaiters();
}

bool Pooler::ServerSlotWantedFrom(const Pool* from, const std::string& host) const {
  if (budget_.waiting_pools() <= static_cast<size_t>(evictions_in_flight_)) return false;
  // Closing a connection to `host` helps a waiting pool whose backend is that host, or one
  // that waits for the total rather than for its host's cap.
  for (const std::string& name : budget_.waiters()) {
    auto it = pools_.find(name);
    if (it == pools_.end() || it->second.get() == from) continue;
    const std::string key = it->second->BackendKey();
    if (key == host || !budget_.HostIsFull(key)) return true;
  }
  return false;
}

int64_t Pooler::ShareOf(const Pool* pool) const {
  // A pool's share of the budget follows its demand (clients served or waiting), at least one
  // connection: the shared pool of a thousand tenants with half the clients gets half the
  // budget, not a thousandth of it. The total is summed by the janitor, so this costs nothing
  // per release.
  const int64_t demand = pool->demand();
  const int64_t total = std::max<int64_t>(demand_total_, demand);
  if (total == 0) return 1;
  return std::max<int64_t>(1, budget_.max_total() * demand / total);
}

bool Pooler::HoldsMoreThanItsShare(const Pool* pool) const {
  if (budget_.max_total() == 0) return false;
  // Only while a waiting pool is short of its own share: taking connections from pools over
  // their share when nobody is short only moved them around, a backend login each time
  // (bench/scale.sh).
  if (short_waiters_ == 0) return false;
  return pool->server_count() > ShareOf(pool);
}

void Pooler::ServeSlotWaiters() {
  // Waiting pools try in turn, longest waiting first, while the total has room (each once at
  // most; one that still finds no room, e.g. its host is full, queues again behind the others:
  // Pool::OpenServer, TakeServerSlot). Stopping when the slots are gone matters at a thousand
  // pools: waking every waiting pool for each freed slot cost waiting pools x pools per slot and
  // took the event loop (bench/scale.sh, docs/benchmarks.md).
  // A pool short of its share (ShareOf) goes first: the slot was most likely freed for it.
  auto is_short = [this](const std::string& name) {
    auto it = pools_.find(name);
    return it != pools_.end() && it->second->server_count() < ShareOf(it->second.get());
  };
  for (size_t n = budget_.waiting_pools(); n > 0; --n) {
    if (budget_.max_total() > 0 && budget_.free_slots() == 0) break;
    std::optional<std::string> name = budget_.NextWaiterWhere(is_short);
    if (!name) name = budget_.NextWaiter();
    if (!name) break;
    auto it = pools_.find(*name);
    if (it != pools_.end()) it->second->ServeWaiters();
  }
}

Status Pooler::Start() {
  started_s_ = static_cast<uint64_t>(std::time(nullptr));
  auto tls = LoadTlsContexts(*config_);
  if (!tls.ok()) return tls.status();
  tls_ = std::move(*tls);
  Status ms = StartMetrics();
  if (!ms.ok()) return ms;
  if (config_->billing.enabled()) {
    auto billing = UsageBilling::Start(*config_);
    if (!billing.ok()) return billing.status();
    billing_ = std::move(billing.value());
  }
  metrics_->OnReload(true);  // the startup load counts as the first good one
  config_text_ = ReadFileText(config_->source_path);
  const conf::Listen& l = config_->listen;
  Status ls = Listen(l);
  if (!ls.ok()) return ls;
  for (auto* sig : {&sigterm_, &sigint_, &sighup_}) {
    uv_signal_init(loop_, sig);
    sig->data = this;
  }
  uv_signal_start(&sigterm_, OnSignal, SIGTERM);
  uv_signal_start(&sigint_, OnSignal, SIGINT);
  uv_signal_start(&sighup_, OnSignal, SIGHUP);
  uv_timer_init(loop_, &janitor_);
  janitor_.data = this;
  uv_check_init(loop_, &hand_over_check_);
  hand_over_check_.data = this;
  hand_over_ready_ = true;
  uv_timer_start(&janitor_, OnJanitor, kJanitorIntervalMs, kJanitorIntervalMs);
  StartConfigWatch();
  LOG_INFO("pgtenant listening on %s:%d with %zu pool(s)", l.host.c_str(), l.port, pools_.size());
  return Status::Ok();
}

Status Pooler::Listen(const conf::Listen& l) {
  auto addresses = ResolveListenHost(l.host, l.port);
  if (!addresses.ok()) return addresses.status();
  // With several addresses ("*", a name with IPv4 and IPv6 ones) an IPv6 socket must not also
  // take the IPv4 wildcard; a single "::" keeps Linux's dual-stack socket, as before.
  unsigned flags = addresses->size() > 1 ? UV_TCP_IPV6ONLY : 0;
  std::string failures, bound;
  for (const ListenAddress& a : *addresses) {
    auto handle = std::make_unique<uv_tcp_t>();
    uv_tcp_init(loop_, handle.get());
    handle->data = this;
    int rc = uv_tcp_bind(handle.get(), reinterpret_cast<const sockaddr*>(&a.addr),
                         a.addr.ss_family == AF_INET6 ? flags : 0);
    if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(handle.get()), kListenBacklog, OnConnection);
    if (rc != 0) {
      failures += (failures.empty() ? "" : "; ") + a.text + ": " + uv_strerror(rc);
      uv_close(reinterpret_cast<uv_handle_t*>(handle.get()), nullptr);
      closed_listeners_.push_back(std::move(handle));  // freed with the Pooler, after the close ran
      continue;
    }
    listeners_.push_back(std::move(handle));
    bound += (bound.empty() ? "" : ", ") + a.text;
  }
  if (listeners_.empty()) {
    return Status::Error("F0000", "cannot listen on listen.host \"" + l.host + "\" port " +
                                      std::to_string(l.port) + ": " + failures);
  }
  // As PgBouncer does with listen_addr: one address that cannot be bound (no IPv6 on this host,
  // say) is a warning while another one serves.
  if (!failures.empty()) {
    LOG_WARNING("listen.host \"%s\": not listening on %s", l.host.c_str(), failures.c_str());
  }
  if (addresses->size() > 1 || bound.rfind(l.host + ":", 0) != 0) {
    LOG_INFO("listen.host \"%s\": listening on %s", l.host.c_str(), bound.c_str());
  }
  return Status::Ok();
}

void Pooler::ScheduleHandOver(Pool* pool) {
  if (!hand_over_ready_) {  // not started, or stopped: nothing will run after this iteration
    pool->ServeWaiters();
    return;
  }
  if (std::find(hand_over_pools_.begin(), hand_over_pools_.end(), pool) != hand_over_pools_.end()) return;
  if (hand_over_pools_.empty()) uv_check_start(&hand_over_check_, OnLoopIterationEnd);
  hand_over_pools_.push_back(pool);
}

void Pooler::UnscheduleHandOver(Pool* pool) {
  hand_over_pools_.erase(std::remove(hand_over_pools_.begin(), hand_over_pools_.end(), pool), hand_over_pools_.end());
}

void Pooler::OnLoopIterationEnd(uv_check_t* check) {
  auto* self = static_cast<Pooler*>(check->data);
  std::vector<Pool*> pools;
  pools.swap(self->hand_over_pools_);
  uv_check_stop(check);
  // A hand-over may release another server (a client that leaves at once): that schedules its
  // pool again, for the next iteration.
  for (Pool* pool : pools) pool->ServeWaiters();
}

Pool* Pooler::FindPool(const std::string& name) {
  auto it = pools_.find(name);
  if (it != pools_.end()) return it->second.get();
  // A tenant's pool made from a template, on its first use (conf/pool_template.h).
  if (name.find('/') == std::string::npos) return nullptr;
  std::optional<conf::Pool> cfg = conf::PoolConfigFor(*config_, name);
  if (!cfg) return nullptr;
  LOG_INFO("pool %s: made from its template for the tenant's first use", name.c_str());
  return pools_.emplace(name, std::make_unique<Pool>(this, *cfg)).first->second.get();
}

const protocol::ScramVerifier* Pooler::VerifierFor(const std::string& user) const {
  auto it = verifiers_.find(user);
  return it == verifiers_.end() ? nullptr : &it->second;
}

void Pooler::OnConnection(uv_stream_t* server, int status) {
  auto* self = static_cast<Pooler*>(server->data);
  if (status < 0) return;
  auto* client = new ClientSession(self, self->next_client_id_++);
  if (uv_accept(server, client->stream().uv_stream()) != 0) {
    client->Close();
    return;
  }
  client->set_slot(self->clients_.Add(client));
  self->metrics_->OnClientConnected();
  if (self->shutting_down_) {
    client->Terminate("57P01", "pgtenant is shutting down");
    return;
  }
  if (static_cast<int>(self->clients_.size()) > self->config_->listen.max_client_connections) {
    client->Terminate("53300", "sorry, too many clients already (listen.max_client_connections = " +
                                   std::to_string(self->config_->listen.max_client_connections) + ")");
    return;
  }
  client->Start();
}

int32_t Pooler::NewCancelKey() {
  int32_t key = 0;
  while (key == 0) {
    std::string random = protocol::RandomBytes(4);
    std::memcpy(&key, random.data(), 4);
  }
  return key;
}

void Pooler::HandleCancelRequest(int32_t pid, int32_t key, ClientSession* requester) {
  ClientSession* target = clients_.At(pid);
  if (target != nullptr && (target->cancel_key() == 0 || target->cancel_key() != key)) target = nullptr;
  if (target == nullptr) LOG_DEBUG("cancel request for an unknown key ignored");
  if (target != nullptr && target->state() == ClientSession::State::kWaiting) {
    // Its statement has not reached a server yet: drop it from the queue.
    target->CancelWaiting();
  }
  ServerSession* server = target ? target->server() : nullptr;
  // Only the server running this client's transaction is cancelled; an idle client has no
  // query to cancel, as with Postgres.
  if (server == nullptr || server->backend_pid() == 0) {
    requester->Close();
    return;
  }
  uint64_t requester_id = requester->id();
  int32_t requester_slot = requester->slot();
  SendCancelToBackend(loop_, server->backend_addr(), server->backend_pid(), server->backend_key(),
                      server->cancel_gate(), [this, requester_id, requester_slot]() {
                        // The requester may be gone already, and its slot reused.
                        ClientSession* c = clients_.At(requester_slot);
                        if (c != nullptr && c->id() == requester_id) c->Close();
                      });
}

Status Pooler::AcquireUserSlot(const std::string& user) {
  auto it = config_->auth.users.find(user);
  int limit = it == config_->auth.users.end() ? 0 : it->second.max_client_connections;
  int& n = user_clients_[user];
  if (limit > 0 && n >= limit) {
    return Status::Error("53300", "too many connections for user \"" + user + "\" (auth.users." + user +
                                      ".max_client_connections = " + std::to_string(limit) + ")");
  }
  ++n;
  return Status::Ok();
}

void Pooler::ReleaseUserSlot(const std::string& user) {
  auto it = user_clients_.find(user);
  if (it != user_clients_.end() && --it->second <= 0) user_clients_.erase(it);
}

Status Pooler::AcquireTenantSlot(const std::string& tenant) {
  const conf::Tenant* t = routes_->Find(tenant);
  int limit = t == nullptr ? 0 : t->max_client_connections;
  int& n = tenant_clients_[tenant];
  if (limit > 0 && n >= limit) {
    return Status::Error("53300", "too many connections for tenant \"" + tenant + "\" (tenants." + tenant +
                                      ".max_client_connections = " + std::to_string(limit) + ")");
  }
  ++n;
  return Status::Ok();
}

void Pooler::ReleaseTenantSlot(const std::string& tenant) {
  auto it = tenant_clients_.find(tenant);
  if (it != tenant_clients_.end() && --it->second <= 0) tenant_clients_.erase(it);
}

void Pooler::OnClientClosed(ClientSession* client) {
  if (clients_.Remove(client, client->slot())) metrics_->OnClientDisconnected();
  if (shutting_down_) FinishShutdownIfIdle();
}

void Pooler::OnPoolDrained() {
  for (auto it = retired_pools_.begin(); it != retired_pools_.end(); ++it) {
    if (it->second->Drained()) {
      LOG_INFO("pool %s drained", it->second->name().c_str());
    }
  }
  // Freed later by the janitor: this call comes from inside one of the pool's servers.
}

void Pooler::OnSignal(uv_signal_t* handle, int signum) {
  auto* self = static_cast<Pooler*>(handle->data);
  if (signum == SIGHUP) {
    Status s = self->Reload();
    (void)s;
    return;
  }
  if (signum == SIGINT && ++self->sigint_count_ >= 2) {
    LOG_WARNING("second SIGINT: exiting at once");
    _exit(1);
  }
  LOG_INFO("%s: shutting down gracefully", signum == SIGINT ? "SIGINT" : "SIGTERM");
  self->BeginShutdown();
}

Status Pooler::Reload(std::vector<std::string>* restart_notes) {
  conf::LoadResult r = conf::LoadConfigFile(config_->source_path);
  for (const auto& d : r.diagnostics) {
    LOG_WARNING("reload: %s", conf::FormatDiagnostic(d, config_->source_path).c_str());
  }
  if (!r.ok()) {
    LOG_ERROR("reload: the new config is invalid; nothing changed");
    metrics_->OnReload(false);
    std::string first;
    for (const auto& d : r.diagnostics) {
      if (!d.warning) {
        first = conf::FormatDiagnostic(d, config_->source_path);
        break;
      }
    }
    return Status::Error("F0000", "invalid config, nothing changed: " + first);
  }
  // Certificates and keys are read again even when their paths did not change (renewals).
  auto tls = LoadTlsContexts(*r.config);
  if (!tls.ok()) {
    LOG_ERROR("reload: %s; nothing changed", tls.status().message().c_str());
    metrics_->OnReload(false);
    return Status::Error("F0000", "invalid config, nothing changed: " + tls.status().message());
  }
  auto needs_restart = [&](const std::string& note) {
    LOG_WARNING("reload: %s", note.c_str());
    if (restart_notes != nullptr) restart_notes->push_back(note);
  };
  if (r.config->listen.host != config_->listen.host || r.config->listen.port != config_->listen.port) {
    needs_restart("listen.host/port changed; that needs a restart and is ignored until then");
  }
  if (r.config->metrics.port != config_->metrics.port || r.config->metrics.host != config_->metrics.host ||
      r.config->metrics.tenant_labels != config_->metrics.tenant_labels ||
      r.config->metrics.busiest_tenants != config_->metrics.busiest_tenants) {
    needs_restart("metrics.host/port/tenant_labels/busiest_tenants changed; that needs a restart");
  }
  if (r.config->billing.enabled() != config_->billing.enabled()) {
    needs_restart(billing_ ? "billing: turning billing off needs a restart; usage is still metered"
                           : "billing: turning billing on needs a restart");
  } else if (billing_) {
    std::vector<std::string> notes;
    billing_->Apply(*r.config, &notes);
    for (const std::string& note : notes) needs_restart(note);
  }
  std::optional<std::string> old_default = config_->tenancy.default_pool;
  ApplyConfig(r.config);
  tls_ = std::move(*tls);
  if (old_default != config_->tenancy.default_pool) metrics_->SetDefaultPool(config_->tenancy.default_pool);
  config_text_ = ReadFileText(config_->source_path);
  metrics_->OnReload(true);
  StartConfigWatch();  // config_watch may have just been turned on
  LOG_INFO("reload: config applied");
  return Status::Ok();
}

void Pooler::OnJanitor(uv_timer_t* timer) { static_cast<Pooler*>(timer->data)->Maintain(); }

void Pooler::TrimMemoryAfterBurst() {
  // glibc keeps freed heap pages for reuse, so after a burst of connections has gone (a login
  // storm, a flood of half-open connections) the RSS would stay at its peak. Give them back
  // once many clients have left; malloc_trim costs about a millisecond per few MB of heap.
  constexpr size_t kClientsGoneBeforeTrim = 256;
  size_t now_clients = clients_.size();
  clients_peak_since_trim_ = std::max(clients_peak_since_trim_, now_clients);
  if (clients_peak_since_trim_ < now_clients + kClientsGoneBeforeTrim) return;
#ifdef __GLIBC__
  malloc_trim(0);
#endif
  clients_peak_since_trim_ = now_clients;
}

void Pooler::Maintain() {
  uint64_t now = NowMs();
  UpdateGauges();
  demand_total_ = 0;
  for (auto& [name, pool] : pools_) demand_total_ += pool->demand();
  short_waiters_ = 0;
  for (const std::string& name : budget_.waiters()) {
    auto it = pools_.find(name);
    if (it != pools_.end() && it->second->server_count() < ShareOf(it->second.get())) ++short_waiters_;
  }
  EvictForSlotWaiters();
  if (billing_) billing_->Tick();
  const conf::Timeouts& t = config_->timeouts;
  for (auto& [name, pool] : pools_) pool->Maintain(now);
  // A tenant's pool made from a template goes once it has no server connection left (they
  // close after timeouts.server_idle) and nobody waits: a thousand tenants cost nothing while
  // they sleep. It is made again on the tenant's next use. Its metric series stay, as a
  // configured pool's do: the tenant's usage entry keeps its series handle, and the counters
  // go on when the pool comes back.
  for (auto it = pools_.begin(); it != pools_.end();) {
    if (it->first.find('/') != std::string::npos && it->second->Drained() && !it->second->paused()) {
      LOG_DEBUG("pool %s: idle, dropped until its tenant's next use", it->first.c_str());
      it = pools_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = retired_pools_.begin(); it != retired_pools_.end();) {
    it->second->Maintain(now);
    if (it->second->Drained()) {
      std::string label(conf::MetricsPoolName(it->second->name()));
      it = retired_pools_.erase(it);
      // Its series go too, unless a pool of the same name (or, for a template's pool, the
      // template) is still there.
      if (!ReportsUnder(label)) metrics_->ForgetPool(label);
    } else {
      ++it;
    }
  }
  std::vector<std::pair<ClientSession*, int>> expired;  // 1 = login, 2 = idle in transaction
  for (ClientSession* c : clients_) {
    auto st = c->state();
    bool logging_in = st == ClientSession::State::kStartup || st == ClientSession::State::kAuth ||
                      st == ClientSession::State::kLoginWait;
    if (logging_in && t.client_login > 0 && now - c->connected_ms() > static_cast<uint64_t>(t.client_login)) {
      expired.emplace_back(c, 1);
    }
    uint64_t since;
    if (t.idle_transaction > 0 && c->IdleInTransactionSince(&since) &&
        now - since > static_cast<uint64_t>(t.idle_transaction)) {
      expired.emplace_back(c, 2);
    }
  }
  for (auto& [c, why] : expired) {
    if (why == 1) {
      c->Terminate("08006", "canceling authentication due to timeout (timeouts.client_login)");
    } else {
      c->Terminate("25P03", "terminating connection due to idle-in-transaction timeout (timeouts.idle_transaction)");
    }
  }
  TrimMemoryAfterBurst();
  if (shutting_down_ && t.shutdown > 0 && now - shutdown_started_ms_ > static_cast<uint64_t>(t.shutdown)) {
    std::vector<ClientSession*> all = clients_.Snapshot();
    for (ClientSession* c : all) c->Terminate("57P01", "terminating connection: pgtenant shutdown timeout");
    FinishShutdownIfIdle();
  }
}

bool Pooler::ReportsUnder(const std::string& label) const {
  if (pools_.count(label) != 0 || config_->pool_templates.count(label) != 0) return true;
  auto same = [&](const auto& entry) { return conf::MetricsPoolName(entry.second->name()) == label; };
  return std::any_of(pools_.begin(), pools_.end(), same) ||
         std::any_of(retired_pools_.begin(), retired_pools_.end(), same);
}

void Pooler::BeginShutdown() {
  if (shutting_down_) return;
  shutting_down_ = true;
  shutdown_started_ms_ = NowMs();
  for (auto& listener : listeners_) uv_close(reinterpret_cast<uv_handle_t*>(listener.get()), nullptr);
  closed_listeners_.insert(closed_listeners_.end(), std::make_move_iterator(listeners_.begin()),
                           std::make_move_iterator(listeners_.end()));
  listeners_.clear();
  // Clients outside a transaction go now; the others when their transaction ends.
  std::vector<ClientSession*> all = clients_.Snapshot();
  for (ClientSession* c : all) {
    if (c->state() != ClientSession::State::kActive) c->Terminate("57P01", "pgtenant is shutting down");
  }
  FinishShutdownIfIdle();
}

void Pooler::FinishShutdownIfIdle() {
  if (!clients_.empty() || stopped_) return;
  stopped_ = true;
  for (auto& [name, pool] : pools_) pool->CloseIdleServers();
  for (auto& [name, pool] : retired_pools_) pool->CloseIdleServers();
  uv_timer_stop(&janitor_);
  uv_close(reinterpret_cast<uv_handle_t*>(&janitor_), nullptr);
  hand_over_pools_.clear();
  hand_over_ready_ = false;
  uv_close(reinterpret_cast<uv_handle_t*>(&hand_over_check_), nullptr);
  for (auto* sig : {&sigterm_, &sigint_, &sighup_}) uv_close(reinterpret_cast<uv_handle_t*>(sig), nullptr);
  if (config_watching_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&config_watch_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&config_settle_), nullptr);
    config_watching_ = false;
  }
  LOG_INFO("all clients gone; closing server connections");
}

}  // namespace pgtenant::proxy
