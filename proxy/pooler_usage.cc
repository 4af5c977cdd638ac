// Pooler's usage accounting and metrics: exact counters for the admin console, and the same
// events fed to the Prometheus binding.
#include <algorithm>
#include <memory>
#include <string_view>
#include <unordered_map>

#include "conf/pool_template.h"
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
    case conf::TenantLabels::kBusiest: return metrics::TenantLabels::kBusiest;
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
  options.busiest_tenants = m.busiest_tenants;
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
    it->second.handle = metrics_->Tenant(std::string(conf::MetricsPoolName(pool)), tenant);
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
    if (billing_ && !usage->tenant.empty()) billing_->OnTransaction(usage->tenant, server_us, txn);
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

void Pooler::AccountWait(Pool* pool, TenantUsage* usage, uint64_t wait_us) {
  PoolUsage& p = pool_usage_[pool->name()];
  ++p.server_assignments;
  p.wait_us += wait_us;
  double seconds = static_cast<double>(wait_us) / 1e6;
  metrics_->OnWait(pool->metrics_handle(), seconds);
  if (usage != nullptr) metrics_->OnTenantWait(usage->handle, seconds);
}

void Pooler::UpdateGauges() {
  uint64_t now = NowMs();
  if (now - last_gauges_ms_ < kGaugeIntervalMs) return;
  last_gauges_ms_ = now;
  // Pools made from one template report under one name (conf::MetricsPoolName): their counts add up.
  struct Counts {
    metrics::ClientCounts clients;
    int64_t pinned = 0;
    metrics::ServerCounts servers;
    uint64_t max_wait_ms = 0;
  };
  std::unordered_map<std::string_view, Counts> by_pool;
  std::unordered_map<metrics::TenantHandle*, int64_t> waiting_by_tenant;
  for (ClientSession* c : clients_) {
    if (c->pool_name().empty()) continue;
    Counts& k = by_pool[conf::MetricsPoolName(c->pool_name())];
    switch (c->state()) {
      case ClientSession::State::kActive: ++k.clients.active; break;
      case ClientSession::State::kWaiting:
        ++k.clients.waiting;
        if (c->usage() != nullptr) ++waiting_by_tenant[c->usage()->handle];
        break;
      case ClientSession::State::kIdle: ++k.clients.idle; break;
      default: break;
    }
    k.pinned += c->pinned();
  }
  std::unordered_map<std::string, metrics::PoolHandle*> reported;
  for (auto& [name, pool] : pools_) {
    std::string_view label = conf::MetricsPoolName(name);
    reported.try_emplace(std::string(label), pool->metrics_handle());
    Counts& k = by_pool[label];
    metrics::ServerCounts& sc = k.servers;
    for (ServerSession* s : pool->servers()) {
      switch (s->state()) {
        case ServerSession::State::kActive: ++sc.active; break;
        case ServerSession::State::kIdle: ++sc.idle; break;
        case ServerSession::State::kResetting: ++sc.used; break;
        case ServerSession::State::kClosing: break;
        default: ++sc.login; break;
      }
    }
    k.max_wait_ms = std::max(k.max_wait_ms, pool->max_wait_ms(now));
  }
  // A name reported last time and gone now (every pool of a template dropped while idle, or a
  // removed pool whose handle now records into nothing) goes to zero rather than keep its values.
  for (const auto& [label, h] : gauge_pools_) reported.try_emplace(label, h);
  for (const auto& [label, h] : reported) {
    auto it = by_pool.find(label);
    const Counts& k = it == by_pool.end() ? Counts{} : it->second;
    metrics_->SetClientCounts(h, k.clients);
    metrics_->SetPinnedClients(h, k.pinned);
    metrics_->SetServerCounts(h, k.servers);
    metrics_->SetMaxWait(h, static_cast<double>(k.max_wait_ms) / 1000.0);
  }
  std::erase_if(reported, [&](const auto& entry) { return by_pool.count(entry.first) == 0; });
  gauge_pools_ = std::move(reported);
  metrics_->SetTenantWaiting({waiting_by_tenant.begin(), waiting_by_tenant.end()});
  if (billing_) {
    billing::SenderStats s = billing_->Stats();
    metrics_->SetBilling({s.delivered, s.duplicates, s.retried, s.failed, s.expired, s.unbilled, s.pending,
                          s.oldest_pending_age_seconds, s.last_success_unix});
  }
  if (now - last_rank_ms_ >= metrics::Metrics::kRankIntervalSeconds * 1000ULL) {
    last_rank_ms_ = now;
    metrics_->RankBusiestTenants();
  }
}

}  // namespace pgtenant::proxy
