// Exact SQL recognition (routing/sql_statement.h): the pre-check every Query and Parse goes
// through, on ordinary RLS statements (issue 15's target: no lexing, under 150 ns), and the
// libpg_query parse on each set_config form, SET LOCAL and BEGIN (the slow path).
#include <benchmark/benchmark.h>

#include "routing/sql_statement.h"

namespace {

constexpr const char* kVariable = "app.tenant_id";

void BM_NeedsAnalysis(benchmark::State& state, const char* sql) {
  for (auto _ : state) benchmark::DoNotOptimize(pgtenant::routing::NeedsAnalysis(sql));
}
// Ordinary statements of an RLS schema: all false.
BENCHMARK_CAPTURE(BM_NeedsAnalysis, rls_select, "SELECT * FROM items WHERE tenant_id = $1");
BENCHMARK_CAPTURE(BM_NeedsAnalysis, rls_update_discarded_at,
                  "UPDATE items SET discarded_at = now() WHERE tenant_id = $1 AND id = $2");
BENCHMARK_CAPTURE(BM_NeedsAnalysis, insert_template, "insert into template (tenant_id, name) values ($1, $2)");
BENCHMARK_CAPTURE(BM_NeedsAnalysis, commented_join,
                  "/* app:orders.list */ SELECT o.id, o.total, c.name FROM orders o JOIN customers c ON "
                  "c.id = o.customer_id WHERE o.tenant_id = $1 AND c.tenant_id = $1 AND o.status = 'open' "
                  "ORDER BY o.created_at DESC LIMIT 50");
BENCHMARK_CAPTURE(BM_NeedsAnalysis, pgbench_select, "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;");
// Statements that must be analysed: true, found at the first word or by the needle scan.
BENCHMARK_CAPTURE(BM_NeedsAnalysis, set_local, "SET LOCAL app.tenant_id = 'acme'");
BENCHMARK_CAPTURE(BM_NeedsAnalysis, prisma_set_config, "SELECT set_config('app.tenant_id', $1, TRUE)");

void BM_AnalyzeSql(benchmark::State& state, const char* sql) {
  for (auto _ : state) benchmark::DoNotOptimize(pgtenant::routing::AnalyzeSql(sql, kVariable));
}
BENCHMARK_CAPTURE(BM_AnalyzeSql, prisma_set_config_local, "SELECT set_config('app.tenant_id', $1, TRUE)");
BENCHMARK_CAPTURE(BM_AnalyzeSql, set_config_alias, "SELECT set_config('app.tenant_id', $1, false) AS tenant");
BENCHMARK_CAPTURE(BM_AnalyzeSql, set_config_cast, "SELECT set_config('app.tenant_id', CAST($1 AS text), true)");
BENCHMARK_CAPTURE(BM_AnalyzeSql, set_config_bound_name, "select set_config($1, $2, true)");
BENCHMARK_CAPTURE(BM_AnalyzeSql, set_config_literal, "SELECT pg_catalog.set_config('app.tenant_id', 'acme', false)");
BENCHMARK_CAPTURE(BM_AnalyzeSql, postgrest_8_targets,
                  "select set_config('search_path', $1, true), set_config('role', $2, true), "
                  "set_config('request.jwt.claims', $3, true), set_config('request.method', $4, true), "
                  "set_config('request.path', $5, true), set_config('request.headers', $6, true), "
                  "set_config('request.cookies', $7, true), set_config('app.tenant_id', $8, true)");
BENCHMARK_CAPTURE(BM_AnalyzeSql, set_local, "SET LOCAL app.tenant_id = 'acme'");
BENCHMARK_CAPTURE(BM_AnalyzeSql, begin_isolation, "BEGIN ISOLATION LEVEL READ COMMITTED;");
BENCHMARK_CAPTURE(BM_AnalyzeSql, set_then_select,
                  "SET app.tenant_id = 'acme'; SELECT * FROM items WHERE tenant_id = current_setting('app.tenant_id')");
// What an ordinary statement would cost if the pre-check let it through.
BENCHMARK_CAPTURE(BM_AnalyzeSql, rls_select, "SELECT * FROM items WHERE tenant_id = $1");

}  // namespace
