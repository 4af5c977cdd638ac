// Pool: the server connections of one configured backend (docs/configuration.md, `pools`), the
// clients waiting for one, and the rule that hands a released server to the longest waiter
// (at the end of the loop iteration that released it, see Release). At most `size` server
// connections exist (connected or connecting).
//
// Loop-affine. The pool owns its ServerSessions (they free themselves after their handle
// closes and then call OnServerGone). It never owns clients: a waiting client is only linked.
#pragma once

#include <uv.h>

#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "conf/config.h"
#include "metrics/metrics.h"

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
  // returning, or queues the client (FIFO) and opens a connection if the pool may grow.
  void Acquire(ClientSession* client);
  // REQUIRES: client is queued here. Removes it from the queue (it left or timed out).
  void CancelWait(ClientSession* client);

  // REQUIRES: server is clean (ReadyForQuery idle, nothing outstanding) and unlinked.
  void Release(ServerSession* server);
  // Hands idle servers to waiters, longest waiter first, and opens connections for the rest
  // if the pool may grow.
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
  int active_count() const;
  int connecting_count() const;
  uint64_t max_wait_ms(uint64_t now_ms) const;
  const std::unordered_set<ServerSession*>& servers() const { return servers_; }
  const std::list<ClientSession*>& waiting() const { return waiting_; }


 private:
  void OpenServer();
  void HandOver(ServerSession* server, ClientSession* client);
  void FailWaiters(const std::string& sqlstate, const std::string& message);

  Pooler* pooler_;
  conf::Pool config_;
  std::unordered_set<ServerSession*> servers_;  // every live server connection
  std::vector<ServerSession*> idle_;            // LIFO: the warmest connection is reused first
  std::list<ClientSession*> waiting_;           // FIFO
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
