// The prepared-statement map: interning a client's Parse by (pool, text, parameter types),
// which every Parse of a named statement goes through in transaction mode.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "proxy/prepared_statements.h"

namespace {

void BM_InternKnownStatement(benchmark::State& state) {
  pgtenant::proxy::StatementRegistry registry;
  std::vector<std::string> texts;
  for (int i = 0; i < 1000; ++i) texts.push_back("SELECT * FROM t" + std::to_string(i) + " WHERE id = $1");
  for (const auto& t : texts) registry.Intern("shared", t, {23});
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(registry.Intern("shared", texts[i], {23}));
    i = (i + 1) % texts.size();
  }
}
BENCHMARK(BM_InternKnownStatement);

}  // namespace
