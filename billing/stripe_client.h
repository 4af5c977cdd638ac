// StripeClient: one meter event to Stripe Billing (POST /v1/billing/meter_events,
// docs.stripe.com/api/billing/meter-event/create) over libcurl, and what its answer means for
// the sender (billing/sender.h).
//
// The request is form-encoded: event_name, payload[stripe_customer_id], payload[value] (a whole
// number, as Stripe requires), identifier, timestamp; authenticated with
// "Authorization: Bearer <key>". The key is given by the caller, read from an environment
// variable only (ApiKeyFromEnvironment), and appears in no message, log or error.
// TLS is verified (peer and host name); plain http is accepted only to a loopback address, for
// tests against tests/stripe/fake_stripe.py.
//
// Thread-safety: a StripeClient is used by one thread at a time (the sender's); it keeps one
// libcurl easy handle so that the connection to Stripe is reused. The pure functions below may
// be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/status.h"

namespace pgtenant::billing {

// How far back and ahead Stripe takes a meter event's timestamp
// (docs.stripe.com/api/billing/meter-event/create: "within the past 35 calendar days or up to
// 5 minutes in the future").
inline constexpr int64_t kStripeMaxEventAgeSeconds = 35 * 86400;
inline constexpr int64_t kStripeMaxEventAheadSeconds = 5 * 60;
inline constexpr char kDefaultApiKeyVariable[] = "PGTENANT_STRIPE_API_KEY";

struct StripeClientOptions {
  std::string base_url = "https://api.stripe.com";
  std::string api_key;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds request_timeout{20000};
  std::string ca_file;  // empty: the system's CA store
  // When set and true, a request in flight is abandoned within about 100 ms (Sender::Stop()).
  const std::atomic<bool>* abort = nullptr;
};

// The key from environment variable `name`; nullopt when unset or empty.
std::optional<std::string> ApiKeyFromEnvironment(const char* name);
// https://..., or http:// to 127.0.0.1, [::1] or localhost; no path, query or user info.
Status ValidateBaseUrl(std::string_view url);

struct MeterEventRequest {
  std::string event_name;
  std::string customer_id;
  std::string identifier;
  uint64_t value = 0;
  int64_t timestamp = 0;  // Unix seconds
};

enum class SendOutcome {
  kDelivered,  // 2xx: Stripe took the event
  kDuplicate,  // Stripe already has this identifier: delivered earlier (a retry, a resend)
  kRetry,      // try again later: 429, 409, 5xx, no answer (refused, reset, timeout), 401/403
  kPermanent,  // any other 4xx: this event will never be taken
};
std::string_view SendOutcomeName(SendOutcome o);

struct SendResult {
  SendOutcome outcome = SendOutcome::kRetry;
  long http_status = 0;     // 0: no HTTP answer
  std::string error_type;   // Stripe's error.type, e.g. invalid_request_error
  std::string error_code;   // Stripe's error.code, often empty
  std::string message;      // Stripe's error.message, or libcurl's for a transport failure
  std::optional<std::chrono::seconds> retry_after;  // Retry-After, when Stripe sent one
};

// application/x-www-form-urlencoded escaping: unreserved bytes (RFC 3986) stay, the rest
// become %XX, so '[' and ']' of payload[...] keys are escaped too.
std::string PercentEncode(std::string_view s);
std::string FormBody(const MeterEventRequest& event);

// What an HTTP answer means. `should_retry` is Stripe's Stripe-Should-Retry header ("true",
// "false" or empty).
SendResult ClassifyResponse(long http_status, std::string_view body, std::string_view should_retry);

class StripeClient {
 public:
  // REQUIRES: ValidateBaseUrl(options.base_url).ok().
  explicit StripeClient(StripeClientOptions options);
  ~StripeClient();
  StripeClient(const StripeClient&) = delete;
  StripeClient& operator=(const StripeClient&) = delete;

  // One request, blocking for at most connect_timeout + request_timeout.
  SendResult Send(const MeterEventRequest& event);

 private:
  StripeClientOptions options_;
  void* curl_ = nullptr;  // CURL*, kept for connection reuse
};

}  // namespace pgtenant::billing
