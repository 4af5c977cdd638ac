// Reporting windows and the Stripe meter-event identifier of a (tenant, meter, window).
//
// Windows are aligned on the Unix epoch (an hour window starts on the hour, UTC), so every
// restart and every pgtenant instance agrees on where a window starts.
//
// The identifier is what makes delivery exactly-once: Stripe refuses a second meter event with
// an identifier it has seen ("uniqueness within a rolling period of at least 24 hours",
// docs.stripe.com/api/billing/meter-event/create), so a retry, or a resend after a crash,
// cannot count twice. It is a pure function of (instance, event_name, tenant, window start):
//
//   <instance>-<event_name>-<tenant>-<window_start>        when that fits Stripe's 100 characters
//                                                          and event_name and tenant hold only
//                                                          [A-Za-z0-9_.]
//   <instance>--<32 hex digits of SHA-256>-<window_start>  otherwise (the empty second field
//                                                          cannot occur in the first form)
//
// so distinct inputs give distinct identifiers (up to a 128-bit hash collision).
// `instance` names the pgtenant deployment that bills: two instances that bill the same tenants
// (two poolers in front of one fleet) MUST be given distinct instances, or Stripe would take
// their windows as one event and drop the second as a duplicate.
// Pure; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace pgtenant::billing {

// Stripe's limit on `identifier` (docs.stripe.com/api/billing/meter-event/create, "Max length: 100").
inline constexpr size_t kStripeIdentifierMaxLength = 100;
inline constexpr size_t kInstanceMaxLength = 20;

// The start of the window holding `unix_seconds`. REQUIRES: window_seconds > 0.
// Floors toward minus infinity, so times before 1970 (a broken clock) still land in a window.
int64_t WindowStart(int64_t unix_seconds, int64_t window_seconds);

// The first second after the window that starts at `start`.
inline int64_t WindowEnd(int64_t start, int64_t window_seconds) { return start + window_seconds; }

// An instance prefix is 1-20 characters of [a-z0-9_] (it appears in every identifier).
// Inline so that conf/validate.cc can check billing.instance with the header alone.
inline bool ValidInstance(std::string_view instance) {
  if (instance.empty() || instance.size() > kInstanceMaxLength) return false;
  for (char c : instance) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

// REQUIRES: ValidInstance(instance), !event_name.empty(), !tenant.empty().
std::string MeterEventIdentifier(std::string_view instance, std::string_view event_name,
                                 std::string_view tenant, int64_t window_start);

}  // namespace pgtenant::billing
