// NullMetrics: records nothing. Used when metrics.port is 0 and in tests that do not look at
// metrics. Hands out nullptr handles, which every Metrics call accepts.
#pragma once

#include "metrics/metrics.h"

namespace pgtenant::metrics {

class NullMetrics final : public Metrics {
 public:
  PoolHandle* Pool(const std::string&) override { return nullptr; }
  TenantHandle* Tenant(const std::string&, const std::string&) override { return nullptr; }
  void OnTransaction(TenantHandle*, double) override {}
  void OnQuery(TenantHandle*) override {}
  void OnBytes(TenantHandle*, uint64_t, uint64_t) override {}
  void OnError(TenantHandle*) override {}
  void OnTenantWait(TenantHandle*, double) override {}
  void SetTenantWaiting(const std::vector<std::pair<TenantHandle*, int64_t>>&) override {}
  void RankBusiestTenants() override {}
  void OnWait(PoolHandle*, double) override {}
  void OnTransactionDuration(PoolHandle*, double) override {}
  void SetClientCounts(PoolHandle*, const ClientCounts&) override {}
  void SetServerCounts(PoolHandle*, const ServerCounts&) override {}
  void SetPinnedClients(PoolHandle*, int64_t) override {}
  void SetMaxWait(PoolHandle*, double) override {}
  void OnClientConnected() override {}
  void OnClientDisconnected() override {}
  void OnReload(bool) override {}
  void SetBilling(const BillingCounts&) override {}
  void SetDefaultPool(const std::optional<std::string>&) override {}
  void ForgetPool(const std::string&) override {}
};

}  // namespace pgtenant::metrics
