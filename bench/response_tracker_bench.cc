// The answer bookkeeping of one extended-protocol transaction (Bind, Execute, Sync and their
// answers), which runs for every transaction pgtenant forwards.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "protocol/response_tracker.h"

namespace {

void BM_TrackExtendedTransaction(benchmark::State& state) {
  pgtenant::protocol::ResponseTracker t;
  std::string due;
  std::vector<uint64_t> failed;
  for (auto _ : state) {
    t.Sent('B');
    t.Sent('E');
    t.Sent('S');
    for (char c : {'2', 'D', 'C', 'Z'}) benchmark::DoNotOptimize(t.OnBackend(c, &due, &failed));
  }
}
BENCHMARK(BM_TrackExtendedTransaction);

}  // namespace
