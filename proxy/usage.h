// Usage counters pgtenant keeps itself, exactly, for SHOW TENANTS / SHOW STATS (and billing):
// one TenantUsage per (pool, tenant) seen, one PoolUsage per pool. The Prometheus series are
// fed from the same events through metrics::Metrics, with its label policy.
// Loop-affine.
#pragma once

#include <cstdint>
#include <string>

#include "metrics/metrics.h"

namespace pgtenant::proxy {

struct TenantUsage {
  std::string pool;
  std::string tenant;  // empty: sessions without a tenant
  uint64_t transactions = 0;
  uint64_t queries = 0;
  uint64_t server_us = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint64_t errors = 0;
  metrics::TenantHandle* handle = nullptr;
};

struct PoolUsage {
  uint64_t server_assignments = 0;
  uint64_t transactions = 0;
  uint64_t queries = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint64_t transaction_us = 0;
  uint64_t wait_us = 0;
};

// What one client did during one transaction, reported when it ends.
struct TransactionUsage {
  uint64_t queries = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint64_t errors = 0;
};

}  // namespace pgtenant::proxy
