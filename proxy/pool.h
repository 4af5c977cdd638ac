// Pool: the server connections of one configured backend (docs/configuration.md, `pools`), the
// clients waiting for one, and the rule that hands a released server to the next waiter (at the
// end of the loop iteration that released it, see Release): round-robin across tenants, first
// come first served inside a tenant, skipping tenants at their cap of server connections
// (FairQueue; docs/architecture.md, "Fair waiting"). At most `size` server connections exist
// (connected or connecting).
//
// Loop-affine. The pool owns its ServerSessions (they free themselves after their handle
// closes and then call OnServerGone). It never owns clients: a waiting client is only linked.
#pragma once

#include <uv.h>

#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "conf/config.h"
#include "metrics/metrics.h"
#include "proxy/fair_queue.h"

namespace pgtenant::proxy {

class ClientSession;
class Pooler;
class ServerSession;

using ParamList = std::vector<std::pair<std::string, std::string>>;

class Pool {
 public:
  Pool(Pooler* pooler, const conf::Pool& config);
  ~Pool();

  const std::string& name() const { return config_.name; }
  const conf::Pool& config() const { return config_; }
  Pooler* pooler() const { return pooler_; }
  bool session_mode() const { return config_.mode == conf::PoolMode::kSession; }
  uint64_t generation() const { return generation_; }
  // This pool's metrics series, looked up once.
  metrics::PoolHandle* metrics_handle();

  // Applies a reloaded pool config; it takes effect for server connections opened from now.
  void UpdateConfig(const conf::Pool& config);
  // The pool was removed from the config: no new work; idle servers close, the rest drain.
  void Retire();
  bool retired() const { return retired_; }
  bool Drained() const { return servers_.empty() && waiting_.empty(); }

  // The client needs a server connection. Either calls client->OnServerAssigned() before
  // returning, or queues the client in its tenant's lane and opens a connection if the pool
  // may grow.
  void Acquire(ClientSession* client);
  // REQUIRES: client is queued here. Removes it from the queue (it left or timed out).
  void CancelWait(ClientSession* client);

  // REQUIRES: server is clean (ReadyForQuery idle, nothing outstanding) and unlinked.
  // `fresh`: the connection has just logged in (it serves its waiters before the budget may take it).
  void Release(ServerSession* server, bool fresh = false);
  // Hands idle servers to waiters, round-robin across the tenants that are under their cap, and
  // opens connections for the rest if the pool may grow.
  void ServeWaiters();
  // Callbacks from ServerSession.
  void OnServerLoggedIn(ServerSession* server, const ParamList& params);
  void OnServerConnectFailed(ServerSession* server, const std::string& reason);
  void OnServerGone(ServerSession* server);  // about to be freed

  // ParameterStatus values the backend sent at its first login; empty until one logged in.
  const ParamList& server_params() const { return server_params_; }
  bool has_server_params() const { return !server_params_.empty(); }

  // Periodic maintenance: query_wait expiry, idle and lifetime expiry of servers.
  void Maintain(uint64_t now_ms);
  // Closes every server connection that is not in use (shutdown, KILL, backend restart).
  void CloseIdleServers();

  // PAUSE/RESUME: while paused, acquiring clients wait and nothing is handed out.
  void Pause() { paused_ = true; }
  void Resume();
  bool paused() const { return paused_; }

  // Counters for SHOW POOLS and metrics.
  int waiting_count() const { return static_cast<int>(waiting_.size()); }
  int idle_count() const { return static_cast<int>(idle_.size()); }
  int server_count() const { return static_cast<int>(servers_.size()); }
  // Clients this pool serves or keeps waiting now: server connections not idle plus waiters.
  // Its share of the server-connection budget follows it (Pooler::HoldsMoreThanItsShare).
  int64_t demand() const {
    return static_cast<int64_t>(servers_.size() - idle_.size()) + static_cast<int64_t>(waiting_.size());
  }
  int active_count() const;
  int connecting_count() const;
  uint64_t max_wait_ms(uint64_t now_ms) const;
  const std::unordered_set<ServerSession*>& servers() const { return servers_; }
  // Per tenant: server connections its clients hold now, and its cap in this pool (0: none).
  // The backend as the server-connection budget counts it: "host:port".
  std::string BackendKey() const { return config_.host + ":" + std::to_string(config_.port); }
  // The idle connection used least recently (nullptr: none), and closing it to give its slot of
  // the server-connection budget to another pool.
  ServerSession* LeastRecentlyUsedIdle() const;
  void CloseIdleForBudget(ServerSession* server);
  int held_by(const std::string& tenant) const;
  size_t waiting_for(const std::string& tenant) const { return waiting_.WaitingFor(tenant); }
  int TenantCap(const std::string& tenant) const;


 private:
  // Opens a connection when the server-connection budget has room; false: it has none, and
  // the pool waits for a slot (Pooler::TakeServerSlot).
  bool OpenServer();
  void HandOver(ServerSession* server, ClientSession* client);
  void FailWaiters(const std::string& sqlstate, const std::string& message);
  bool UnderCap(const std::string& tenant) const;
  // Waiters that a server could be handed to now (all of them unless a tenant is at its cap).
  size_t ServableWaiting() const;
  bool CapsConfigured() const;
  void CountHold(ServerSession* server, const std::string& tenant);
  void UncountHold(ServerSession* server);

  Pooler* pooler_;
  conf::Pool config_;
  std::unordered_set<ServerSession*> servers_;  // every live server connection
  std::vector<ServerSession*> idle_;            // LIFO: the warmest connection is reused first
  FairQueue<ClientSession*> waiting_;           // lanes per tenant, served round-robin
  std::unordered_map<std::string, int> held_;   // tenant -> server connections its clients hold
  // Whether some tenant of the config has a max_server_connections (checked once per config).
  mutable const conf::Config* caps_checked_for_ = nullptr;
  mutable bool any_tenant_cap_ = false;
  ParamList server_params_;
  bool retired_ = false;
  bool paused_ = false;
  uint64_t last_connect_failure_ms_ = 0;
  metrics::PoolHandle* metrics_handle_ = nullptr;
  // Bumped when the backend's address or credentials change: older connections close when
  // released instead of serving again.
  uint64_t generation_ = 0;
};

}  // namespace pgtenant::proxy
