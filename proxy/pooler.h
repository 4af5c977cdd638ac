// Pooler: the running proxy. Owns the loop's listener, signal and janitor handles, the current
// config snapshot, the pools and the client sessions (whose slots are also their cancel keys' pids).
//
// Config is a frozen snapshot (conf::ConfigPtr) swapped whole on reload; sessions read it
// through config() and never keep references across callbacks.
// Loop-affine: one event-loop thread does everything.
#pragma once

#include <uv.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "conf/config.h"
#include "protocol/scram.h"
#include "protocol/status.h"
#include "metrics/metrics.h"
#include "proxy/client_registry.h"
#include "proxy/pool.h"
#include "proxy/prepared_statements.h"
#include "proxy/server_budget.h"
#include "proxy/session_settings.h"
#include "proxy/tls.h"
#include "proxy/usage.h"
#include "proxy/usage_billing.h"
#include "routing/routing_table.h"
#include "routing/tenant_source.h"

namespace pgtenant::proxy {

class ClientSession;

// Milliseconds on the loop's clock (as of the current loop iteration).
uint64_t NowMs();

class Pooler {
 public:
  Pooler(uv_loop_t* loop, conf::ConfigPtr config);
  ~Pooler();

  // Binds the listener and installs signal handlers and the janitor. Then run the loop.
  Status Start();
  // Per-pool usage (SHOW STATS).
  const std::unordered_map<std::string, PoolUsage>& pool_usage() const { return pool_usage_; }
  const std::unordered_map<std::string, TenantUsage>& tenant_usage() const { return usage_; }
  uint64_t started_s() const { return started_s_; }

  uv_loop_t* loop() const { return loop_; }
  const conf::Config& config() const { return *config_; }
  const conf::ConfigPtr& config_ptr() const { return config_; }
  const routing::RoutingTable& routes() const { return *routes_; }

  // The listener's TLS context (null: TLS is off) and a pool's backend context (null: plain).
  // Both are loaded again on every reload, so renewed certificates apply to new connections.
  const std::shared_ptr<TlsContext>& client_tls() const { return tls_.clients; }
  std::shared_ptr<TlsContext> BackendTls(const std::string& pool) const {
    auto it = tls_.pools.find(pool);
    // A pool made from a template uses the template's context.
    if (it == tls_.pools.end() && pool.find('/') != std::string::npos) it = tls_.pools.find(pool.substr(0, pool.find('/')));
    return it == tls_.pools.end() ? nullptr : it->second;
  }

  // The pool of that name; a tenant's pool made from a template (conf/pool_template.h) is made
  // here on first use. nullptr when there is none.
  Pool* FindPool(const std::string& name);
  const std::map<std::string, std::unique_ptr<Pool>>& pools() const { return pools_; }
  const ClientRegistry& clients() const { return clients_; }
  // Shares identical startup settings between clients.
  SettingsInterner& settings_interner() { return settings_interner_; }

  // SCRAM verifier for an auth user (derived once per config load); null if unknown.
  const protocol::ScramVerifier* VerifierFor(const std::string& user) const;
  // A random verifier for unknown users, so that their exchange fails only at the end.
  const protocol::ScramVerifier& DummyVerifier() const { return dummy_verifier_; }

  // A client's BackendKeyData is its registry slot and this random key (never 0: 0 means the
  // client has no key, before login and after it leaves).
  static int32_t NewCancelKey();
  // Handles a CancelRequest that arrived on `requester`'s connection; closes it when done.
  void HandleCancelRequest(int32_t pid, int32_t key, ClientSession* requester);

  void OnClientClosed(ClientSession* client);
  // Per-user and per-tenant client limits (53300). Acquire returns false, with the error,
  // when the limit is reached; each successful Acquire is matched by one Release.
  Status AcquireUserSlot(const std::string& user);
  void ReleaseUserSlot(const std::string& user);
  Status AcquireTenantSlot(const std::string& tenant);
  void ReleaseTenantSlot(const std::string& tenant);
  void OnClientPinned(ClientSession* client) { ++pinned_clients_total_; (void)client; }
  uint64_t pinned_clients_total() const { return pinned_clients_total_; }
  StatementRegistry& statements() { return statements_; }
  void OnPoolDrained();

  // Reload from config_->source_path. An invalid config changes nothing; the error says why.
  // `restart_notes`, when given, receives a line for each changed setting that a reload cannot
  // apply (listen, metrics): RELOAD tells the admin user, besides the log.
  Status Reload(std::vector<std::string>* restart_notes = nullptr);

  // Usage accounting (usage.h). `current` is the caller's cached entry, returned as is when it
  // is already the (pool, tenant) asked for.
  TenantUsage* UsageFor(TenantUsage* current, const std::string& pool, const std::string& tenant);
  void AccountTransaction(TenantUsage* usage, Pool* pool, const TransactionUsage& txn, uint64_t server_us);
  void AccountWait(Pool* pool, TenantUsage* usage, uint64_t wait_us);
  metrics::Metrics& metrics() { return *metrics_; }
  // Usage billing (docs/billing.md); null when billing.state_dir is not set.
  const UsageBilling* billing() const { return billing_.get(); }

  // The admin console: runs one command and appends its complete answer (with ReadyForQuery).
  // Returns false for SHUTDOWN: the caller writes the answer, then calls BeginShutdown().
  bool AdminQuery(std::string_view sql, std::string* out);
  void BeginShutdown();
  bool shutting_down() const { return shutting_down_; }

  // Released servers reach the pool's waiters at the end of the current loop iteration, all
  // of them together (see Pool::Release for why). A pool about to be freed must Unschedule.
  void ScheduleHandOver(Pool* pool);
  void UnscheduleHandOver(Pool* pool);

  // The budget of server connections across pools (limits.max_server_connections and
  // max_server_connections_per_host; server_budget.h). A pool asks before it opens a connection
  // to `host`; false: there is no room, the pool waits for a slot, and the least recently used
  // idle connection of another pool is asked to close (when none is on its way out already).
  bool TakeServerSlot(Pool* pool, const std::string& host);
  // A connection counted by TakeServerSlot is gone (`evicted`: closed to free a slot): the
  // pools waiting for a slot try again, longest waiting first.
  void ReturnServerSlot(const std::string& host, bool evicted);
  // A pool other than `from` waits for a slot that closing a connection to `host` would free.
  bool ServerSlotWantedFrom(const Pool* from, const std::string& host) const;
  // `pool` holds more connections than its share of limits.max_server_connections (ShareOf)
  // while a pool short of its own share waits.
  bool HoldsMoreThanItsShare(const Pool* pool) const;
  // A pool with fewer connections than its share waits for a slot (as of the last janitor tick).
  // Only as many connections go for them as there are such pools (evictions in flight count).
  bool PoolShortOfItsShareWaits() const { return short_waiters_ > evictions_in_flight_; }
  // The connections of the budget a pool may hold when the budget is short (at least 1).
  int64_t ShareOf(const Pool* pool) const;
  // A pool closes a connection to free a slot of the budget (counted until it is gone).
  void NoteEviction() { ++evictions_in_flight_; }
  const ServerBudget& server_budget() const { return budget_; }

 private:
  static void OnConnection(uv_stream_t* server, int status);
  static void OnSignal(uv_signal_t* handle, int signum);
  static void OnJanitor(uv_timer_t* timer);
  static void OnLoopIterationEnd(uv_check_t* check);
  void Maintain();
  // Asks the least recently used idle connection of a pool other than `pool` (to `host`, when
  // that host is the one at its cap) to close. False when there is none.
  // Closes the least recently used idle connection of another pool (idle at least
  // `min_idle_ms`) to free a slot for `pool`; false when there is none.
  bool EvictIdleServerFor(const Pool* pool, const std::string& host, uint64_t min_idle_ms);
  void EvictForSlotWaiters();
  uint64_t MinIdleToEvictFor(const Pool* pool) const;
  void ServeSlotWaiters();
  void TrimMemoryAfterBurst();
  void ApplyConfig(conf::ConfigPtr config);
  void FinishShutdownIfIdle();
  void UpdateGauges();
  Status StartMetrics();
  // Binds every address of listen.host (proxy/listen_address.h); an error when none could be.
  Status Listen(const conf::Listen& l);
  void StartConfigWatch();
  static void OnConfigFileEvent(uv_fs_event_t* handle, const char* filename, int events, int status);
  static void OnConfigSettled(uv_timer_t* timer);

  uv_loop_t* loop_;
  conf::ConfigPtr config_;
  std::shared_ptr<const routing::RoutingTable> routes_;
  std::unordered_map<std::string, protocol::ScramVerifier> verifiers_;
  TlsContexts tls_;
  protocol::ScramVerifier dummy_verifier_;
  // Pools with released servers and waiters (ScheduleHandOver). Declared before the pools, so
  // that it outlives them: a Pool's destructor takes itself off this list.
  std::vector<Pool*> hand_over_pools_;
  uv_check_t hand_over_check_;    // runs after each poll while pools are scheduled
  bool hand_over_ready_ = false;  // hand_over_check_ is initialized and not closed
  std::map<std::string, std::unique_ptr<Pool>> pools_;
  std::map<std::string, std::unique_ptr<Pool>> retired_pools_;
  ClientRegistry clients_;
  SettingsInterner settings_interner_;
  uint64_t next_client_id_ = 1;
  // One listener per address of listen.host; closed ones are kept (and freed with the Pooler)
  // because libuv may still touch a handle until its close has run.
  std::vector<std::unique_ptr<uv_tcp_t>> listeners_;
  std::vector<std::unique_ptr<uv_tcp_t>> closed_listeners_;
  uv_signal_t sigterm_, sigint_, sighup_;
  uv_timer_t janitor_;
  bool shutting_down_ = false;
  bool stopped_ = false;
  uint64_t shutdown_started_ms_ = 0;
  int sigint_count_ = 0;
  uint64_t pinned_clients_total_ = 0;
  size_t clients_peak_since_trim_ = 0;
  std::unique_ptr<metrics::Metrics> metrics_;
  std::unique_ptr<UsageBilling> billing_;
  std::unordered_map<std::string, TenantUsage> usage_;  // key: pool '\0' tenant
  std::unordered_map<std::string, PoolUsage> pool_usage_;
  std::unordered_map<std::string, int> user_clients_;
  std::unordered_map<std::string, int> tenant_clients_;
  // Some pool, configured or made from a template (live or draining), or a template reports its
  // metrics under `label` (conf::MetricsPoolName), so its series must stay.
  bool ReportsUnder(const std::string& label) const;

  uint64_t last_gauges_ms_ = 0;
  uint64_t last_rank_ms_ = 0;  // metrics::Metrics::RankBusiestTenants
  // The metric pool names UpdateGauges set last time with something in them, and their handles.
  std::unordered_map<std::string, metrics::PoolHandle*> gauge_pools_;
  uint64_t started_s_ = 0;
  uv_fs_event_t config_watch_;
  uv_timer_t config_settle_;
  bool config_watching_ = false;
  std::string config_text_;  // the text of the config in force, to ignore no-op file events
  StatementRegistry statements_;
  ServerBudget budget_;
  int evictions_in_flight_ = 0;  // connections closing to free a slot of the budget
  int64_t demand_total_ = 0;     // the pools' demand() summed by the janitor (HoldsMoreThanItsShare)
  int short_waiters_ = 0;        // pools waiting for a slot with fewer connections than their share
};

}  // namespace pgtenant::proxy
