// SCRAM-SHA-256: the server side of a login (what a connection storm costs pgtenant per
// client; the PBKDF2 of a stored verifier is not in it) and, for scale, deriving a verifier
// from a plain-text password (done once per user at config load).
#include <benchmark/benchmark.h>

#include "protocol/scram.h"

namespace {

void BM_ScramServerLogin(benchmark::State& state) {
  auto verifier = pgtenant::protocol::MakeScramVerifier("secret", "0123456789abcdef", 4096);
  for (auto _ : state) {
    state.PauseTiming();
    pgtenant::protocol::ScramClientExchange client("secret");
    std::string first = client.ClientFirstMessage();
    state.ResumeTiming();
    pgtenant::protocol::ScramServerExchange server(verifier);
    auto server_first = server.HandleClientFirst(first);
    state.PauseTiming();
    auto client_final = client.HandleServerFirst(*server_first);  // the client's PBKDF2
    state.ResumeTiming();
    auto server_final = server.HandleClientFinal(*client_final);
    benchmark::DoNotOptimize(server_final.ok());
  }
}
BENCHMARK(BM_ScramServerLogin);

void BM_DeriveVerifier(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(pgtenant::protocol::MakeScramVerifier("secret", "0123456789abcdef", 4096));
  }
}
BENCHMARK(BM_DeriveVerifier);

}  // namespace
