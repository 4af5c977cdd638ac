#include "proxy/pool.h"

#include <algorithm>

#include "proxy/client_session.h"
#include "proxy/log.h"
#include "proxy/pooler.h"
#include "proxy/server_session.h"

namespace pgtenant::proxy {
namespace {

// After a failed connect, waiting clients fail at once; new requests within this window fail
// fast too instead of each opening another doomed connection.
constexpr uint64_t kConnectRetryBackoffMs = 200;

uint64_t g_next_server_id = 1;

}  // namespace

Pool::Pool(Pooler* pooler, const conf::Pool& config) : pooler_(pooler), config_(config) {}

Pool::~Pool() {
  pooler_->UnscheduleHandOver(this);
  // Servers are freed through their close callbacks; by now the loop has closed them all.
  for (ServerSession* s : servers_) delete s;
}

metrics::PoolHandle* Pool::metrics_handle() {
  if (metrics_handle_ == nullptr) metrics_handle_ = pooler_->metrics().Pool(config_.name);
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
  if (waiting_.empty()) return 0;
  return now_ms - waiting_.front()->wait_started_ms();
}

void Pool::Acquire(ClientSession* client) {
  // Idle servers while others wait are promised to them (Release): queue behind.
  if (!paused_ && waiting_.empty()) {
    while (!idle_.empty()) {
      ServerSession* s = idle_.back();
      idle_.pop_back();
      if (s->state() != ServerSession::State::kIdle) continue;
      HandOver(s, client);
      return;
    }
  }
  waiting_.push_back(client);
  client->wait_position() = std::prev(waiting_.end());
  if (!paused_) {
    int connecting = connecting_count();
    // Open one connection per waiter beyond those already on their way, up to the size.
    if (static_cast<int>(servers_.size()) < config_.size &&
        connecting < static_cast<int>(waiting_.size())) {
      if (NowMs() - last_connect_failure_ms_ < kConnectRetryBackoffMs && last_connect_failure_ms_ != 0 &&
          connecting == 0) {
        // The backend just refused us; do not hammer it, but let the janitor retry soon.
        return;
      }
      OpenServer();
    }
  }
}

void Pool::CancelWait(ClientSession* client) {
  waiting_.erase(client->wait_position());
  client->wait_position() = waiting_.end();
}

void Pool::OpenServer() {
  auto* s = new ServerSession(this, g_next_server_id++);
  servers_.insert(s);
  s->Connect();
}

void Pool::HandOver(ServerSession* server, ClientSession* client) {
  pooler_->AccountWait(this, (NowMs() - client->wait_started_ms()) * 1000);
  client->OnServerAssigned(server);
}

void Pool::Release(ServerSession* server) {
  uint64_t now = NowMs();
  const auto& t = pooler_->config().timeouts;
  if (retired_ || pooler_->shutting_down() || server->generation() != generation_ || (t.server_lifetime > 0 && now - server->created_ms() > static_cast<uint64_t>(t.server_lifetime)) ||
      static_cast<int>(servers_.size()) > config_.size) {
    server->Close("lifetime or pool shrink");
    ServeWaiters();
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
  while (!waiting_.empty() && !idle_.empty()) {
    ServerSession* s = idle_.back();
    idle_.pop_back();
    if (s->state() != ServerSession::State::kIdle) continue;
    ClientSession* c = waiting_.front();
    waiting_.pop_front();
    c->wait_position() = waiting_.end();
    HandOver(s, c);
  }
  int connecting = connecting_count();
  while (!retired_ && static_cast<int>(servers_.size()) < config_.size &&
         connecting < static_cast<int>(waiting_.size())) {
    OpenServer();
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
  Release(server);
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
  std::list<ClientSession*> failed;
  failed.swap(waiting_);
  for (ClientSession* c : failed) {
    c->wait_position() = waiting_.end();
    c->OnServerUnavailable(sqlstate, message);
  }
}

void Pool::OnServerGone(ServerSession* server) {
  servers_.erase(server);
  auto it = std::find(idle_.begin(), idle_.end(), server);
  if (it != idle_.end()) idle_.erase(it);
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
    while (!waiting_.empty() && now_ms - waiting_.front()->wait_started_ms() > static_cast<uint64_t>(t.query_wait)) {
      ClientSession* c = waiting_.front();
      waiting_.pop_front();
      c->wait_position() = waiting_.end();
      c->OnServerUnavailable("57014", "canceling statement: no server connection of pool \"" + name() +
                                          "\" became free within timeouts.query_wait (" +
                                          std::to_string(t.query_wait) + "ms)");
    }
  }
  std::vector<ServerSession*> expired;
  for (ServerSession* s : idle_) {
    bool idle_expired = t.server_idle > 0 && now_ms - s->last_used_ms() > static_cast<uint64_t>(t.server_idle);
    bool life_expired = t.server_lifetime > 0 && now_ms - s->created_ms() > static_cast<uint64_t>(t.server_lifetime);
    if (idle_expired || life_expired) expired.push_back(s);
  }
  for (ServerSession* s : expired) {
    idle_.erase(std::find(idle_.begin(), idle_.end(), s));
    s->Close("idle or lifetime timeout");
  }
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
}

}  // namespace pgtenant::proxy
