// Metrics: the narrow interface the proxy reports through. Core code calls these methods and never
// includes prometheus-cpp; metrics/prometheus_metrics.* binds them to Prometheus families and
// metrics/null_metrics.h records nothing. The names, labels and help of every exported metric are
// in metrics/metric_defs.h.
//
// Hot path: resolve labels once with Pool()/Tenant() and keep the returned handle (per pool, per
// client session). The On*() calls on a handle are then a few atomic adds, with no lookup and no
// allocation.
//
// Threading: every method is called from the event-loop thread only. Implementations must be safe
// against a concurrent scrape on another thread (the HTTP exposer's), never against two callers.
//
// Handle lifetime: a handle stays valid for the lifetime of the Metrics object, also after
// ForgetPool(); it then records into nothing, so re-fetch handles when a session's pool changes.
// Implementations may return nullptr handles (NullMetrics does); every On*/Set* call accepts
// nullptr and ignores it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace pgtenant::metrics {

// Per-tenant label policy (config key metrics.tenant_labels). Tenants are unbounded, so this decides
// how many series the tenant metrics make. Each (pool, tenant label) pair makes 25 series:
// transactions, queries, server_seconds, errors, bytes{in,out}, the waiting-clients gauge and the
// wait histogram (18 series with buckets, _sum and _count). Each pool adds 7 state gauges, 2 more
// gauges and 2 histograms (18 and 19 series): 46 per pool.
enum class TenantLabels {
  // The `busiest_tenants` (K) tenants with the most server time lately, over every pool, get their
  // own label; every other tenant is counted under tenant="_other" of its pool. RankBusiestTenants()
  // re-ranks; a tenant that leaves the top K goes back to "_other" (its own series leave the
  // scrape), and one that enters starts its own series from zero. At most 25 x (K + pools + 1).
  kBusiest,
  // One tenant label per tenant: 25 series per tenant (per pool it has used).
  kAll,
  // Only tenants served by a pool other than the default pool (tenancy.default_pool) get their
  // label; every tenant on the default pool is counted under tenant="_other". With no default
  // pool every tenant is listed, so this is kAll. 25 series per dedicated tenant + 25 per pool.
  kDedicated,
  // tenant="_all" everywhere: 25 series per pool, none per tenant.
  kNone,
};

// Tenant label values that cannot clash with a tenant id (ids never start with '_' under the
// default id_pattern; a custom pattern that allows it would merge with these, never crash).
inline constexpr const char* kOtherTenant = "_other";
inline constexpr const char* kAllTenants = "_all";

// Opaque handles. Implementations derive from them; callers only pass them back.
struct PoolHandle {};
struct TenantHandle {};

struct ClientCounts {
  int64_t active = 0;   // linked to a server connection
  int64_t waiting = 0;  // queued for one
  int64_t idle = 0;     // logged in, no server connection, not waiting
};

// The billing sender's totals (billing/sender.h's SenderStats), for the billing series: counts
// since start, as the sender keeps them.
struct BillingCounts {
  uint64_t delivered = 0;   // including duplicates
  uint64_t duplicates = 0;
  uint64_t retried = 0;
  uint64_t failed = 0;
  uint64_t expired = 0;
  uint64_t unbilled = 0;
  uint64_t pending = 0;
  int64_t oldest_pending_age_seconds = 0;
  int64_t last_success_unix = 0;
};

struct ServerCounts {
  int64_t active = 0;  // linked to a client
  int64_t idle = 0;    // ready to be handed out
  int64_t used = 0;    // released, being reset (DISCARD ALL / tenant change) before reuse
  int64_t login = 0;   // connecting, TLS or authenticating
};

class Metrics {
 public:
  virtual ~Metrics() = default;

  // The handle of a pool's series, created on first use. Cheap to call again (a map lookup), but
  // meant to be cached by the caller.
  virtual PoolHandle* Pool(const std::string& pool) = 0;
  // The handle for a tenant's traffic on a pool. Under kDedicated/kNone several tenants share one
  // handle; under kBusiest each (pool, tenant) has its own, whose series change with the ranking.
  // Cached: the same (pool, tenant) returns the same handle until SetDefaultPool().
  virtual TenantHandle* Tenant(const std::string& pool, const std::string& tenant) = 0;

  // Per-tenant traffic. server_seconds: how long the transaction held its server connection.
  virtual void OnTransaction(TenantHandle* tenant, double server_seconds) = 0;
  virtual void OnQuery(TenantHandle* tenant) = 0;
  virtual void OnBytes(TenantHandle* tenant, uint64_t in, uint64_t out) = 0;
  virtual void OnError(TenantHandle* tenant) = 0;

  // How long one of the tenant's transactions waited for a server connection (0 when one was
  // free); recorded with OnWait of its pool.
  virtual void OnTenantWait(TenantHandle* tenant, double seconds) = 0;
  // Clients waiting for a server connection right now, per handle; handles not listed have none.
  // Called with the pool gauges (once a second).
  virtual void SetTenantWaiting(const std::vector<std::pair<TenantHandle*, int64_t>>& waiting) = 0;
  // kBusiest: ranks the tenants by their recent server time and moves labels to the K busiest.
  // Called every kRankIntervalSeconds; a no-op under the other policies.
  static constexpr int kRankIntervalSeconds = 10;
  virtual void RankBusiestTenants() = 0;

  // Per-pool histograms.
  virtual void OnWait(PoolHandle* pool, double seconds) = 0;
  virtual void OnTransactionDuration(PoolHandle* pool, double seconds) = 0;

  // Per-pool gauges, set from the pool's own counts (e.g. by the janitor tick or on change).
  virtual void SetClientCounts(PoolHandle* pool, const ClientCounts& counts) = 0;
  virtual void SetServerCounts(PoolHandle* pool, const ServerCounts& counts) = 0;
  virtual void SetPinnedClients(PoolHandle* pool, int64_t n) = 0;
  virtual void SetMaxWait(PoolHandle* pool, double seconds) = 0;

  // Process-wide: a client connection was accepted / closed (any kind, any state).
  virtual void OnClientConnected() = 0;
  virtual void OnClientDisconnected() = 0;
  // A reload attempt finished; ok == true also stamps the last-success timestamp with now.
  virtual void OnReload(bool ok) = 0;
  // Billing is on: the sender's totals (the billing series exist from the first call).
  virtual void SetBilling(const BillingCounts& counts) = 0;

  // A reload changed tenancy.default_pool; later Tenant() calls follow the new value (kDedicated).
  virtual void SetDefaultPool(const std::optional<std::string>& default_pool) = 0;
  // The pool was removed and has drained: its series (pool and tenant ones) leave the scrape.
  // Handles of that pool stay valid and record into nothing. A pool of the same name added later
  // starts from zero.
  virtual void ForgetPool(const std::string& pool) = 0;
};

}  // namespace pgtenant::metrics
