// The admin console's commands (docs/reference.md section 5), answered from the live objects.
#include <algorithm>
#include <ctime>
#include <tuple>

#include "protocol/messages.h"
#include "proxy/admin_console.h"
#include "proxy/client_session.h"
#include "proxy/log.h"
#include "proxy/pooler.h"
#include "proxy/server_session.h"

namespace pgtenant::proxy {
namespace {

// Loop time (ms since an arbitrary point) to Unix seconds.
int64_t UnixSeconds(uint64_t loop_ms) {
  int64_t now_unix = static_cast<int64_t>(std::time(nullptr));
  return now_unix - static_cast<int64_t>((NowMs() - loop_ms) / 1000);
}

void SplitPeer(const std::string& peer, std::string* addr, int* port) {
  size_t colon = peer.rfind(':');
  if (colon == std::string::npos) {
    *addr = peer;
    return;
  }
  *addr = peer.substr(0, colon);
  *port = std::atoi(peer.c_str() + colon + 1);
}

const char* ClientStateName(ClientSession::State s) {
  switch (s) {
    case ClientSession::State::kActive: return "active";
    case ClientSession::State::kWaiting: return "waiting";
    case ClientSession::State::kIdle: return "idle";
    default: return "login";
  }
}

const char* ServerStateName(ServerSession::State s) {
  switch (s) {
    case ServerSession::State::kActive: return "active";
    case ServerSession::State::kIdle: return "idle";
    case ServerSession::State::kResetting: return "used";
    // Closed by pgtenant, waiting for its backend to exit (it still counts in the budget).
    case ServerSession::State::kClosing: return "closing";
    default: return "login";
  }
}

}  // namespace

bool Pooler::AdminQuery(std::string_view sql, std::string* out) {
  AdminCommand cmd = ParseAdminCommand(sql);
  uint64_t now = NowMs();
  bool keep_open = true;
  auto find_pool = [&](const std::string& name) -> Pool* {
    Pool* p = FindPool(name);
    if (p == nullptr) protocol::AppendError(out, "ERROR", "42704", "no pool named \"" + name + "\"");
    return p;
  };
  switch (cmd.kind) {
    case AdminCommandKind::kEmpty:
      protocol::AppendEmptyQueryResponse(out);
      break;
    case AdminCommandKind::kUnknown:
      protocol::AppendError(out, "ERROR", "42601", cmd.error.empty() ? "unknown admin command" : cmd.error,
                            {}, "SHOW HELP lists the commands");
      break;
    case AdminCommandKind::kShowPools: {
      std::vector<AdminPoolRow> rows;
      std::unordered_map<std::string, AdminPoolRow*> by_name;
      rows.reserve(pools_.size());
      for (auto& [name, pool] : pools_) {
        AdminPoolRow r;
        r.database = name;
        r.user = pool->config().user;
        r.pool_mode = pool->config().mode;
        r.paused = pool->paused();
        r.cl_waiting = pool->waiting_count();
        r.max_wait_us = static_cast<int64_t>(pool->max_wait_ms(now)) * 1000;
        for (ServerSession* s : pool->servers()) {
          switch (s->state()) {
            case ServerSession::State::kActive: ++r.sv_active; break;
            case ServerSession::State::kIdle: ++r.sv_idle; break;
            case ServerSession::State::kResetting: ++r.sv_used; break;
            case ServerSession::State::kClosing: break;
            default: ++r.sv_login; break;
          }
        }
        rows.push_back(r);
      }
      for (auto& r : rows) by_name[r.database] = &r;
      for (ClientSession* c : clients_) {
        auto it = by_name.find(c->pool_name());
        if (it == by_name.end()) continue;
        if (c->state() == ClientSession::State::kActive) ++it->second->cl_active;
        if (c->state() == ClientSession::State::kIdle) ++it->second->cl_idle;
      }
      RenderPools(out, rows);
      break;
    }
    case AdminCommandKind::kShowClients: {
      std::vector<AdminClientRow> rows;
      for (ClientSession* c : clients_) {
        AdminClientRow r;
        r.user = c->user();
        r.database = c->database();
        r.tenant = c->tenant().value_or("");
        r.pool = c->pool_name();
        r.state = ClientStateName(c->state());
        SplitPeer(c->peer(), &r.addr, &r.port);
        r.connect_time = UnixSeconds(c->connected_ms());
        r.request_time = c->request_ms() ? UnixSeconds(c->request_ms()) : 0;
        if (c->state() == ClientSession::State::kWaiting) {
          r.wait_us = static_cast<int64_t>(now - c->wait_started_ms()) * 1000;
        }
        if (const std::string* app = c->application_name()) r.application_name = *app;
        r.pinned = c->pinned();
        if (const TlsSession* tls = c->stream().tls()) r.tls = tls->Describe();
        rows.push_back(std::move(r));
      }
      RenderClients(out, rows);
      break;
    }
    case AdminCommandKind::kShowServers: {
      std::vector<AdminServerRow> rows;
      for (auto& [name, pool] : pools_) {
        for (ServerSession* s : pool->servers()) {
          AdminServerRow r;
          r.user = pool->config().user;
          r.database = pool->config().database;
          r.pool = name;
          r.state = ServerStateName(s->state());
          r.addr = pool->config().host;
          r.port = pool->config().port;
          r.connect_time = UnixSeconds(s->created_ms());
          r.request_time = UnixSeconds(s->last_used_ms());
          r.remote_pid = s->backend_pid();
          r.tenant = s->backend().settings().tenant.value_or("");
          if (const TlsSession* tls = s->stream().tls()) r.tls = tls->Describe();
          rows.push_back(std::move(r));
        }
      }
      RenderServers(out, rows);
      break;
    }
    case AdminCommandKind::kShowTenants: {
      std::unordered_map<std::string, int64_t> clients;
      for (ClientSession* c : clients_) {
        if (c->tenant()) ++clients[c->pool_name() + '\0' + *c->tenant()];
      }
      std::vector<AdminTenantRow> rows;
      for (const auto& [key, u] : usage_) {
        AdminTenantRow r;
        r.tenant = u.tenant;
        r.pool = u.pool;
        auto it = clients.find(key);
        r.clients = it == clients.end() ? 0 : it->second;
        if (auto p = pools_.find(u.pool); p != pools_.end()) {
          r.cl_waiting = static_cast<int64_t>(p->second->waiting_for(u.tenant));
          r.sv_active = p->second->held_by(u.tenant);
          r.sv_limit = p->second->TenantCap(u.tenant);
        }
        r.transactions = u.transactions;
        r.queries = u.queries;
        r.server_seconds = static_cast<double>(u.server_us) / 1e6;
        r.bytes_in = u.bytes_in;
        r.bytes_out = u.bytes_out;
        r.errors = u.errors;
        rows.push_back(std::move(r));
      }
      std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
        return std::tie(a.tenant, a.pool) < std::tie(b.tenant, b.pool);
      });
      RenderTenants(out, rows);
      break;
    }
    case AdminCommandKind::kShowUsage: {
      if (!billing_) {
        protocol::AppendError(out, "ERROR", "55000", "billing is off: SHOW USAGE needs billing.state_dir (docs/billing.md)");
        break;
      }
      RenderUsage(out, billing_->Summary());
      break;
    }
    case AdminCommandKind::kShowStats: {
      std::vector<AdminStatsRow> rows;
      double seconds = static_cast<double>(std::time(nullptr)) - static_cast<double>(started_s_);
      for (auto& [name, pool] : pools_) {
        AdminStatsRow r;
        r.database = name;
        auto it = pool_usage_.find(name);
        if (it != pool_usage_.end()) {
          const PoolUsage& u = it->second;
          r.total.server_assignment_count = u.server_assignments;
          r.total.xact_count = u.transactions;
          r.total.query_count = u.queries;
          r.total.received = u.bytes_in;
          r.total.sent = u.bytes_out;
          r.total.xact_time_us = u.transaction_us;
          r.total.query_time_us = u.transaction_us;
          r.total.wait_time_us = u.wait_us;
        }
        r.avg = StatsAverages(AdminStats(), r.total, seconds);
        rows.push_back(r);
      }
      RenderStats(out, rows);
      break;
    }
    case AdminCommandKind::kShowConfig:
      RenderConfig(out, *config_);
      break;
    case AdminCommandKind::kShowVersion:
      RenderVersion(out, PGTENANT_VERSION);
      break;
    case AdminCommandKind::kShowHelp:
      RenderHelp(out);
      break;
    case AdminCommandKind::kReload: {
      std::vector<std::string> restart_notes;
      Status s = Reload(&restart_notes);
      if (s.ok()) {
        for (const std::string& note : restart_notes) protocol::AppendNotice(out, "01000", note);
        protocol::AppendCommandComplete(out, AdminCommandTag(cmd.kind));
      } else {
        protocol::AppendError(out, "ERROR", s.sqlstate(), s.message());
      }
      break;
    }
    case AdminCommandKind::kPause:
    case AdminCommandKind::kResume: {
      bool pause = cmd.kind == AdminCommandKind::kPause;
      if (!cmd.argument.empty()) {
        Pool* p = find_pool(cmd.argument);
        if (p == nullptr) break;
        pause ? p->Pause() : p->Resume();
      } else {
        for (auto& [name, pool] : pools_) pause ? pool->Pause() : pool->Resume();
      }
      LOG_INFO("admin: %s %s", pause ? "PAUSE" : "RESUME", cmd.argument.empty() ? "(all pools)" : cmd.argument.c_str());
      protocol::AppendCommandComplete(out, AdminCommandTag(cmd.kind));
      break;
    }
    case AdminCommandKind::kKill: {
      Pool* p = find_pool(cmd.argument);
      if (p == nullptr) break;
      std::vector<ClientSession*> victims;
      for (ClientSession* c : clients_) {
        if (c->pool_name() == cmd.argument && !c->admin()) victims.push_back(c);
      }
      for (ClientSession* c : victims) c->Terminate("57P01", "terminated by the admin console (KILL " + cmd.argument + ")");
      std::vector<ServerSession*> servers(p->servers().begin(), p->servers().end());
      for (ServerSession* s : servers) s->Close("KILL from the admin console");
      LOG_INFO("admin: KILL %s: %zu clients", cmd.argument.c_str(), victims.size());
      protocol::AppendCommandComplete(out, AdminCommandTag(cmd.kind));
      break;
    }
    case AdminCommandKind::kShutdown:
      protocol::AppendCommandComplete(out, AdminCommandTag(cmd.kind));
      LOG_INFO("admin: SHUTDOWN");
      keep_open = false;  // the caller starts the shutdown once this answer is written
      break;
  }
  protocol::AppendReadyForQuery(out, 'I');
  return keep_open;
}

}  // namespace pgtenant::proxy
