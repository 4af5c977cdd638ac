// Every metric pgtenant exports, listed once: name, type, labels and help. The Prometheus binding
// builds its families from this table and the tests check the scrape against it, so a metric
// cannot be exported without being listed here (Envoy's ALL_POSTGRES_PROXY_STATS).
//
// Label values used by the binding:
//   state (client_connections): active (has a server), waiting (queued for one), idle (logged in,
//                               no server)
//   state (server_connections): active (linked to a client), idle (ready for reuse), used (released,
//                               being reset before reuse), login (connecting or logging in)
//   direction (tenant_bytes):   in (client -> pgtenant), out (pgtenant -> client)
//   result (config_reloads):    success, failure
//   result (billing_events):    delivered (Stripe took it), duplicate (Stripe had its identifier:
//                               delivered earlier), retried (an attempt to be retried), failed
//                               (refused for good), expired (too old for Stripe), unbilled (no
//                               customer or no event name)
//   pool:                       the pool's name; a pool made from a template reports under the
//                               template's name (its tenant label tells the tenants apart)
//   tenant:                     the tenant id, or "_other" / "_all" (see TenantLabels in metrics.h),
//                               or "_none" for a session that has no tenant (require_tenant: false)
//
// Pure data; no prometheus-cpp include.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

namespace pgtenant::metrics {

enum class MetricType { kCounter, kGauge, kHistogram };

enum class MetricId {
  kUp,
  kBuildInfo,
  kClients,
  kClientConnectionsAccepted,
  kClientConnections,
  kServerConnections,
  kPoolMaxWait,
  kPinnedClients,
  kWaitSeconds,
  kTransactionDuration,
  kTransactions,
  kQueries,
  kTenantServerSeconds,
  kTenantBytes,
  kTenantErrors,
  kTenantWaiting,
  kTenantWaitSeconds,
  kConfigReloads,
  kConfigLastReloadSuccess,
  kBillingEvents,
  kBillingPendingWindows,
  kBillingOldestPendingAge,
  kBillingLastSuccess,
  kCount,  // not a metric: the number of entries
};

struct MetricDef {
  MetricId id;
  std::string_view name;
  MetricType type;
  std::array<std::string_view, 3> labels;  // unused trailing entries are empty
  std::string_view help;

  size_t label_count() const {
    size_t n = 0;
    while (n < labels.size() && !labels[n].empty()) ++n;
    return n;
  }
};

inline constexpr MetricDef kMetricDefs[] = {
    {MetricId::kUp, "pgtenant_up", MetricType::kGauge, {},
     "1 while the pgtenant process is running."},
    {MetricId::kBuildInfo, "pgtenant_build_info", MetricType::kGauge, {"version"},
     "Always 1; the version label names the running build."},
    {MetricId::kClients, "pgtenant_clients", MetricType::kGauge, {},
     "Open client connections of every kind, including ones still logging in and admin sessions."},
    {MetricId::kClientConnectionsAccepted, "pgtenant_client_connections_accepted_total",
     MetricType::kCounter, {}, "Client connections accepted since start."},
    {MetricId::kClientConnections, "pgtenant_client_connections", MetricType::kGauge,
     {"pool", "state"}, "Logged-in client connections by pool and state (active, waiting, idle)."},
    {MetricId::kServerConnections, "pgtenant_server_connections", MetricType::kGauge,
     {"pool", "state"}, "Server connections by pool and state (active, idle, used, login)."},
    {MetricId::kPoolMaxWait, "pgtenant_pool_max_wait_seconds", MetricType::kGauge, {"pool"},
     "How long the oldest client waiting for a server connection of the pool has waited."},
    {MetricId::kPinnedClients, "pgtenant_pinned_clients", MetricType::kGauge, {"pool"},
     "Clients pinned to their server connection by session state (PREPARE, temp tables, ...)."},
    {MetricId::kWaitSeconds, "pgtenant_wait_seconds", MetricType::kHistogram, {"pool"},
     "Time a transaction waited for a server connection."},
    {MetricId::kTransactionDuration, "pgtenant_transaction_duration_seconds", MetricType::kHistogram,
     {"pool"}, "Time a server connection was held for one transaction."},
    {MetricId::kTransactions, "pgtenant_transactions_total", MetricType::kCounter,
     {"pool", "tenant"}, "Transactions completed, by pool and tenant."},
    {MetricId::kQueries, "pgtenant_queries_total", MetricType::kCounter, {"pool", "tenant"},
     "Queries (simple Query messages and extended-protocol Execute) sent, by pool and tenant."},
    {MetricId::kTenantServerSeconds, "pgtenant_tenant_server_seconds_total", MetricType::kCounter,
     {"pool", "tenant"}, "Server connection time used by the tenant's transactions."},
    {MetricId::kTenantBytes, "pgtenant_tenant_bytes_total", MetricType::kCounter,
     {"pool", "tenant", "direction"}, "Protocol bytes between clients and pgtenant, by tenant."},
    {MetricId::kTenantErrors, "pgtenant_tenant_errors_total", MetricType::kCounter,
     {"pool", "tenant"}, "ErrorResponses sent to the tenant's clients (from servers or pgtenant)."},
    {MetricId::kTenantWaiting, "pgtenant_tenant_waiting_clients", MetricType::kGauge,
     {"pool", "tenant"}, "The tenant's clients waiting for a server connection of the pool now."},
    {MetricId::kTenantWaitSeconds, "pgtenant_tenant_wait_seconds", MetricType::kHistogram,
     {"pool", "tenant"}, "Time the tenant's transactions waited for a server connection."},
    {MetricId::kConfigReloads, "pgtenant_config_reloads_total", MetricType::kCounter, {"result"},
     "Configuration reloads by result (success, failure)."},
    {MetricId::kConfigLastReloadSuccess, "pgtenant_config_last_reload_success_timestamp_seconds",
     MetricType::kGauge, {},
     "Unix time of the last successful configuration load (the start-up load counts)."},
    {MetricId::kBillingEvents, "pgtenant_billing_events_total", MetricType::kCounter, {"result"},
     "Usage windows reported to Stripe, by result (delivered, duplicate, retried, failed, expired, unbilled)."},
    {MetricId::kBillingPendingWindows, "pgtenant_billing_pending_windows", MetricType::kGauge, {},
     "Closed usage windows not yet acknowledged by Stripe."},
    {MetricId::kBillingOldestPendingAge, "pgtenant_billing_oldest_pending_age_seconds", MetricType::kGauge, {},
     "Seconds since the oldest pending usage window ended (0: none pending)."},
    {MetricId::kBillingLastSuccess, "pgtenant_billing_last_success_timestamp_seconds", MetricType::kGauge, {},
     "Unix time Stripe last acknowledged a usage window (0: never)."},
};

static_assert(std::size(kMetricDefs) == static_cast<size_t>(MetricId::kCount),
              "every MetricId has exactly one entry");

constexpr const MetricDef& Def(MetricId id) { return kMetricDefs[static_cast<size_t>(id)]; }

// The table is indexed by MetricId; keep the two in the same order.
consteval bool DefsInIdOrder() {
  for (size_t i = 0; i < std::size(kMetricDefs); ++i) {
    if (static_cast<size_t>(kMetricDefs[i].id) != i) return false;
  }
  return true;
}
static_assert(DefsInIdOrder(), "kMetricDefs must list metrics in MetricId order");

// Histogram buckets, in seconds. Waits are usually zero, so the low end is fine-grained; the top
// covers the default query_wait of 30 s.
inline constexpr double kWaitBuckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                          0.1,    0.25,  0.5,    1,     2.5,  5,     10, 30};
inline constexpr double kTransactionBuckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                 0.1,    0.25,  0.5,    1,     2.5,  5,     10,
                                                 30,     60};

}  // namespace pgtenant::metrics
