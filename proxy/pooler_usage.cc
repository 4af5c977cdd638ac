// Pooler's usage accounting and metrics: exact counters for the admin console, and the same
// events fed to the Prometheus binding.
#include <memory>

#include "metrics/null_metrics.h"
#include "metrics/prometheus_metrics.h"
#include "proxy/client_session.h"
#include "proxy/log.h"
#include "proxy/pooler.h"
#include "proxy/server_session.h"

namespace pgtenant::proxy {
namespace {
constexpr uint64_t kGaugeIntervalMs = 1000;

metrics::TenantLabels ToMetrics(conf::TenantLabels t) {
  switch (t) {
    case conf::TenantLabels::kAll: return metrics::TenantLabels::kAll;
    case conf::TenantLabels::kDedicated: return metrics::TenantLabels::kDedicated;
    case conf::TenantLabels::kNone: return metrics::TenantLabels::kNone;
  }
  return metrics::TenantLabels::kNone;
}
}  // namespace

Status Pooler::StartMetrics() {
  const conf::Metrics& m = config_->metrics;
  if (m.port == 0) {
    metrics_ = std::make_unique<metrics::NullMetrics>();
    return Status::Ok();
  }
  metrics::PrometheusOptions options;
  options.tenant_labels = ToMetrics(m.tenant_labels);
  options.default_pool = config_->tenancy.default_pool;
  options.version = PGTENANT_VERSION;
  options.host = m.host;
  options.port = m.port;
  auto created = metrics::PrometheusMetrics::Create(options);
  if (!created.ok()) return created.status();
  metrics_ = std::move(created.value());
  LOG_INFO("metrics on http://%s:%d/metrics", m.host.c_str(), m.port);
  return Status::Ok();
}

TenantUsage* Pooler::UsageFor(TenantUsage* current, const std::string& pool, const std::string& tenant) {
  if (current != nullptr && current->pool == pool && current->tenant == tenant) return current;
  std::string key = pool;
  key.push_back('\0');
  key += tenant;
  auto [it, inserted] = usage_.try_emplace(std::move(key));
  if (inserted) {
    it->second.pool = pool;
    it->second.tenant = tenant;
    it->second.handle = metrics_->Tenant(pool, tenant);
  }
  return &it->second;
}

void Pooler::AccountTransaction(TenantUsage* usage, Pool* pool, const TransactionUsage& txn, uint64_t server_us) {
  if (usage != nullptr) {
    ++usage->transactions;
    usage->queries += txn.queries;
    usage->server_us += server_us;
    usage->bytes_in += txn.bytes_in;
    usage->bytes_out += txn.bytes_out;
    usage->errors += txn.errors;
    metrics_->OnTransaction(usage->handle, static_cast<double>(server_us) / 1e6);
    for (uint64_t i = 0; i < txn.queries; ++i) metrics_->OnQuery(usage->handle);
    metrics_->OnBytes(usage->handle, txn.bytes_in, txn.bytes_out);
    for (uint64_t i = 0; i < txn.errors; ++i) metrics_->OnError(usage->handle);
  }
  if (pool != nullptr) {
    PoolUsage& p = pool_usage_[pool->name()];
    ++p.transactions;
    p.queries += txn.queries;
    p.bytes_in += txn.bytes_in;
    p.bytes_out += txn.bytes_out;
    p.transaction_us += server_us;
    metrics_->OnTransactionDuration(pool->metrics_handle(), static_cast<double>(server_us) / 1e6);
  }
}

void Pooler::AccountWait(Pool* pool, uint64_t wait_us) {
  PoolUsage& p = pool_usage_[pool->name()];
  ++p.server_assignments;
  p.wait_us += wait_us;
  metrics_->OnWait(pool->metrics_handle(), static_cast<double>(wait_us) / 1e6);
}

void Pooler::UpdateGauges() {
  uint64_t now = NowMs();
  if (now - last_gauges_ms_ < kGaugeIntervalMs) return;
  last_gauges_ms_ = now;
  struct Counts {
    metrics::ClientCounts clients;
    int64_t pinned = 0;
  };
  std::unordered_map<std::string, Counts> by_pool;
  for (ClientSession* c : clients_) {
    if (c->pool_name().empty()) continue;
    Counts& k = by_pool[c->pool_name()];
    switch (c->state()) {
      case ClientSession::State::kActive: ++k.clients.active; break;
      case ClientSession::State::kWaiting: ++k.clients.waiting; break;
      case ClientSession::State::kIdle: ++k.clients.idle; break;
      default: break;
    }
    k.pinned += c->pinned();
  }
  for (auto& [name, pool] : pools_) {
    metrics::PoolHandle* h = metrics_->Pool(name);
    Counts& k = by_pool[name];
    metrics_->SetClientCounts(h, k.clients);
    metrics_->SetPinnedClients(h, k.pinned);
    metrics::ServerCounts sc;
    for (ServerSession* s : pool->servers()) {
      switch (s->state()) {
        case ServerSession::State::kActive: ++sc.active; break;
        case ServerSession::State::kIdle: ++sc.idle; break;
        case ServerSession::State::kResetting: ++sc.used; break;
        case ServerSession::State::kClosing: break;
        default: ++sc.login; break;
      }
    }
    metrics_->SetServerCounts(h, sc);
    metrics_->SetMaxWait(h, static_cast<double>(pool->max_wait_ms(now)) / 1000.0);
  }
}

}  // namespace pgtenant::proxy
