// Tenant statement recognition on the hot path: the cheap pre-check every query goes through,
// and the full lexer for the statements that need it.
#include <benchmark/benchmark.h>

#include "routing/session_state.h"
#include "routing/statement_classifier.h"

namespace {

constexpr const char* kVariable = "app.tenant_id";
constexpr const char* kPgbenchSelect = "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;";
constexpr const char* kPgbenchUpdate = "UPDATE pgbench_accounts SET abalance = abalance + -4211 WHERE aid = 48213;";
constexpr const char* kTenantSet = "SET app.tenant_id = 'acme'";

void BM_MightTouchTenant_OrdinaryQuery(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(pgtenant::routing::MightTouchTenant(kPgbenchSelect, kVariable));
}
BENCHMARK(BM_MightTouchTenant_OrdinaryQuery);

void BM_CreatesSessionState_OrdinaryQuery(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(pgtenant::routing::CreatesSessionState(kPgbenchSelect, kVariable, nullptr));
  }
}
BENCHMARK(BM_CreatesSessionState_OrdinaryQuery);

// Three of TPC-B's seven statements: the SET of an UPDATE must not send them through the lexer.
void BM_CreatesSessionState_Update(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(pgtenant::routing::CreatesSessionState(kPgbenchUpdate, kVariable, nullptr));
  }
}
BENCHMARK(BM_CreatesSessionState_Update);

void BM_ClassifyQuery_TenantSet(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(pgtenant::routing::ClassifyQuery(kTenantSet, kVariable));
}
BENCHMARK(BM_ClassifyQuery_TenantSet);

}  // namespace
