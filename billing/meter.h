// The meters pgtenant bills (issue 17): what the ledger counts per (tenant, meter, window) and
// how a window's count becomes the whole number Stripe is sent. Pure; any thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace pgtenant::billing {

// The stored meter id: a byte in every ledger record (billing/usage_ledger.h), so the values are
// part of the file format and never renumbered.
enum class Meter : uint8_t {
  kServerTime = 0,  // counted in microseconds (proxy/usage.h's server_us), billed in milliseconds
  kTransactions = 1,
  kQueries = 2,
  kBytesIn = 3,
  kBytesOut = 4,
};
inline constexpr size_t kMeterCount = 5;

inline constexpr std::array<std::string_view, kMeterCount> kMeterNames = {
    "server_ms", "transactions", "queries", "bytes_in", "bytes_out"};

inline std::string_view MeterName(Meter m) { return kMeterNames[static_cast<size_t>(m)]; }

inline std::optional<Meter> MeterFromName(std::string_view name) {
  for (size_t i = 0; i < kMeterCount; ++i) {
    if (kMeterNames[i] == name) return static_cast<Meter>(i);
  }
  return std::nullopt;
}

// The value sent to Stripe for a window whose ledger count is `counted`. Server time is kept in
// microseconds and rounded (half up) to milliseconds once per window, so per-transaction
// rounding never loses time. Stripe takes whole numbers only
// (docs.stripe.com/billing/subscriptions/usage-based/recording-usage-api, "Usage values").
inline uint64_t BilledValue(Meter m, uint64_t counted) {
  if (m == Meter::kServerTime) return counted / 1000 + (counted % 1000 >= 500 ? 1 : 0);
  return counted;
}

}  // namespace pgtenant::billing
