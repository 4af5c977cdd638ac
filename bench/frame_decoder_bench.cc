// Frame decoding throughput: how fast pgtenant walks a batch of messages to find their
// boundaries (what it does to every byte it forwards).
#include <benchmark/benchmark.h>

#include <string>

#include "protocol/frame_decoder.h"
#include "protocol/messages.h"

namespace {

std::string ServerBatch(int rows) {
  // A typical select answer: RowDescription, DataRows, CommandComplete, ReadyForQuery.
  std::string out;
  pgtenant::protocol::AppendTextRowDescription(&out, "abalance");
  for (int i = 0; i < rows; ++i) pgtenant::protocol::AppendTextDataRow(&out, "12345");
  pgtenant::protocol::AppendCommandComplete(&out, "SELECT 1");
  pgtenant::protocol::AppendReadyForQuery(&out, 'I');
  return out;
}

void BM_DecodeBatch(benchmark::State& state) {
  std::string batch = ServerBatch(static_cast<int>(state.range(0)));
  std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(batch.data()), batch.size());
  size_t frames = 0;
  for (auto _ : state) {
    size_t pos = 0;
    pgtenant::protocol::Frame f;
    while (pgtenant::protocol::DecodeTyped(bytes.subspan(pos), 1 << 30, &f) ==
           pgtenant::protocol::DecodeStatus::kFrame) {
      pos += f.total_size;
      ++frames;
    }
    benchmark::DoNotOptimize(pos);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(batch.size()));
  state.counters["frames/s"] = benchmark::Counter(static_cast<double>(frames), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_DecodeBatch)->Arg(1)->Arg(100)->Arg(10000);

}  // namespace
