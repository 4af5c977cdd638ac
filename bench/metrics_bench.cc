// The per-transaction cost of metrics on the event-loop thread: what a session pays for
// OnTransaction + OnQuery + OnBytes through the Metrics interface (a virtual call each, then
// atomic adds on cached series), against NullMetrics as the floor.
#include <benchmark/benchmark.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "metrics/null_metrics.h"
#include "metrics/prometheus_metrics.h"

namespace pgtenant::metrics {
namespace {

std::unique_ptr<PrometheusMetrics> MakeMetrics(TenantLabels policy) {
  PrometheusOptions o;
  o.serve_http = false;
  o.tenant_labels = policy;
  o.default_pool = "shared";
  return std::move(PrometheusMetrics::Create(o)).value();
}

// Not "t" + std::to_string(i): GCC 12 reports a false -Wrestrict on that at -O2.
std::string TenantName(int64_t i) {
  std::string name = "t";
  name += std::to_string(i);
  return name;
}

void HotPath(benchmark::State& state, Metrics& metrics) {
  // Hide the dynamic type, as the proxy does, so that the calls stay virtual.
  Metrics* m = &metrics;
  benchmark::DoNotOptimize(m);
  TenantHandle* t = m->Tenant("shared", "acme");
  for (auto _ : state) {
    m->OnTransaction(t, 0.001);
    m->OnQuery(t);
    m->OnBytes(t, 120, 4096);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_HotPath_Prometheus(benchmark::State& state) {
  auto m = MakeMetrics(TenantLabels::kAll);
  HotPath(state, *m);
}
BENCHMARK(BM_HotPath_Prometheus);

void BM_HotPath_Null(benchmark::State& state) {
  NullMetrics m;
  HotPath(state, m);
}
BENCHMARK(BM_HotPath_Null);

// The same calls while another thread scrapes continuously: the loop thread's cost under the
// worst scrape pressure (families lock during Collect; counters are lock-free).
void BM_HotPath_PrometheusWhileScraping(benchmark::State& state) {
  auto m = MakeMetrics(TenantLabels::kAll);
  for (int i = 0; i < 100; ++i) m->Tenant("shared", TenantName(i));
  std::atomic<bool> stop{false};
  std::thread scraper([&] {
    while (!stop.load(std::memory_order_relaxed)) benchmark::DoNotOptimize(m->Scrape());
  });
  HotPath(state, *m);
  stop = true;
  scraper.join();
}
BENCHMARK(BM_HotPath_PrometheusWhileScraping)->UseRealTime();

// The pool-side calls a transaction makes: one wait and one duration observation.
void BM_PoolHistograms(benchmark::State& state) {
  auto m = MakeMetrics(TenantLabels::kAll);
  PoolHandle* p = m->Pool("shared");
  for (auto _ : state) {
    m->OnWait(p, 0.0002);
    m->OnTransactionDuration(p, 0.003);
  }
}
BENCHMARK(BM_PoolHistograms);

// Resolving a handle (done once per session and tenant change, not per transaction).
void BM_TenantLookup(benchmark::State& state) {
  auto m = MakeMetrics(TenantLabels::kAll);
  std::string pool = "shared", tenant = "acme";
  m->Tenant(pool, tenant);
  for (auto _ : state) benchmark::DoNotOptimize(m->Tenant(pool, tenant));
}
BENCHMARK(BM_TenantLookup);

// A scrape with N tenants under TenantLabels::kAll: what the exposer thread pays.
void BM_Scrape(benchmark::State& state) {
  auto m = MakeMetrics(TenantLabels::kAll);
  for (int64_t i = 0; i < state.range(0); ++i) m->OnQuery(m->Tenant("shared", TenantName(i)));
  for (auto _ : state) benchmark::DoNotOptimize(m->Scrape());
  state.SetLabel(std::to_string(state.range(0)) + " tenants");
}
BENCHMARK(BM_Scrape)->Arg(10)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace pgtenant::metrics

BENCHMARK_MAIN();
