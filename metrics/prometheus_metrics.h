// PrometheusMetrics: the Metrics interface bound to prometheus-cpp. One Registry holds a family per
// entry of metric_defs.h; an Exposer (civetweb) serves it as text at http://host:port/metrics.
// This header does not include prometheus-cpp, so the proxy and tests build without its headers.
//
// Threading: the Metrics methods follow metrics.h (event-loop thread only). The exposer's thread
// scrapes the registry concurrently; prometheus-cpp locks each family while it collects and
// counters and gauges are atomics. Scrape() may be called from any thread.
//
// Lifetime: the exposer stops (joins its threads) in the destructor, which can block for up to 2 s
// (civetweb's listener polls with a 2 s quantum): destroy it after clients are closed, or off the
// loop. Handles die with the object.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "metrics/metrics.h"
#include "protocol/status.h"

namespace pgtenant::metrics {

struct PrometheusOptions {
  TenantLabels tenant_labels = TenantLabels::kAll;
  int busiest_tenants = 20;  // K of TenantLabels::kBusiest (metrics.busiest_tenants)
  std::optional<std::string> default_pool;  // tenancy.default_pool, for TenantLabels::kDedicated
  std::string version;                      // pgtenant_build_info{version}
  // HTTP endpoint. serve_http == false builds the registry only (Scrape() still works). port 0
  // picks a free port (tests); the proxy maps metrics.port == 0 ("off") to NullMetrics instead.
  bool serve_http = true;
  std::string host = "127.0.0.1";  // an IPv4 or IPv6 address
  int port = 9930;
};

class PrometheusMetrics final : public Metrics {
 public:
  // Builds the registry and, if options.serve_http, starts the exposer. Fails with F0000 when the
  // address cannot be bound (the message names it).
  static Result<std::unique_ptr<PrometheusMetrics>> Create(const PrometheusOptions& options);
  ~PrometheusMetrics() override;

  PrometheusMetrics(const PrometheusMetrics&) = delete;
  PrometheusMetrics& operator=(const PrometheusMetrics&) = delete;

  // The port the exposer listens on (the real one when options.port was 0); 0 when not serving.
  int port() const;
  // The text exposition, exactly what GET /metrics returns.
  std::string Scrape() const;

  PoolHandle* Pool(const std::string& pool) override;
  TenantHandle* Tenant(const std::string& pool, const std::string& tenant) override;
  void OnTransaction(TenantHandle* tenant, double server_seconds) override;
  void OnQuery(TenantHandle* tenant) override;
  void OnBytes(TenantHandle* tenant, uint64_t in, uint64_t out) override;
  void OnError(TenantHandle* tenant) override;
  void OnTenantWait(TenantHandle* tenant, double seconds) override;
  void SetTenantWaiting(const std::vector<std::pair<TenantHandle*, int64_t>>& waiting) override;
  void RankBusiestTenants() override;
  void OnWait(PoolHandle* pool, double seconds) override;
  void OnTransactionDuration(PoolHandle* pool, double seconds) override;
  void SetClientCounts(PoolHandle* pool, const ClientCounts& counts) override;
  void SetServerCounts(PoolHandle* pool, const ServerCounts& counts) override;
  void SetPinnedClients(PoolHandle* pool, int64_t n) override;
  void SetMaxWait(PoolHandle* pool, double seconds) override;
  void OnClientConnected() override;
  void OnClientDisconnected() override;
  void OnReload(bool ok) override;
  void SetBilling(const BillingCounts& counts) override;
  void SetDefaultPool(const std::optional<std::string>& default_pool) override;
  void ForgetPool(const std::string& pool) override;

  // The tenant label a (pool, tenant) pair is counted under with the current policy.
  std::string TenantLabel(const std::string& pool, const std::string& tenant) const;

 private:
  struct State;  // registry, families, exposer, handle maps; defined in the .cc
  explicit PrometheusMetrics(std::unique_ptr<State> state);

  std::unique_ptr<State> state_;
};

}  // namespace pgtenant::metrics
