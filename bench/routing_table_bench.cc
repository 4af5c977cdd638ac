// Routing lookup with 100,000 listed tenants (a hash lookup without copying the id).
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "routing/routing_table.h"

namespace {

void BM_PoolForAt100kTenants(benchmark::State& state) {
  pgtenant::conf::Config config;
  config.pools["shared"].name = "shared";
  config.pools["dedicated"].name = "dedicated";
  config.tenancy.default_pool = "shared";
  std::vector<std::string> ids;
  for (int i = 0; i < 100000; ++i) {
    std::string id = "tenant_" + std::to_string(i);
    config.tenants[id] = pgtenant::conf::Tenant{id, i % 10 == 0 ? "dedicated" : "shared", 0};
    ids.push_back(id);
  }
  auto table = pgtenant::routing::RoutingTable::Build(config);
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(table->PoolFor(ids[i]));
    i = (i + 7919) % ids.size();
  }
}
BENCHMARK(BM_PoolForAt100kTenants);

}  // namespace
