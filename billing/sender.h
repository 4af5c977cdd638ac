// Sender: the worker thread that reports closed ledger windows to Stripe (issue 17) — each
// (tenant, meter, window) once, as one meter event with a deterministic identifier
// (billing/window.h), so that a retry or a resend after a crash never counts twice.
//
// Per record: a meter without an event name, or a tenant without a Stripe customer, is
// "unbilled" (counted, kept in the ledger, never sent); a window older than Stripe accepts
// (max_event_age) is "expired" and a window Stripe refuses for good (a 4xx, see
// billing/stripe_client.h) is "failed": both are written to the dead-letter file (JSON lines)
// before the ledger records them, so nothing is dropped silently. Everything else is retried
// until Stripe acknowledges it or it expires.
//
// Pacing: one request at a time (so trivially at most one in flight per customer and meter,
// Stripe's rule), at most max_requests_per_second, oldest window first. A retryable failure
// (429, 5xx, no connection) pauses all sending for an exponential backoff with jitter
// (backoff_initial doubling up to backoff_max, each delay drawn from [d/2, d]), since what
// failed one request would fail the next; Retry-After, when sent, is a floor.
//
// Durability: before sending a window closed since the last look, the sender calls
// UsageLedger::Sync(), so a window is on disk as closed before Stripe may have it; it also syncs
// every sync_interval, which bounds what a machine crash can lose (docs/billing.md).
//
// Threads: Start(), Stop() and the destructor on the owning thread; SetCustomers(), Wake() and
// Stats() from any thread. The worker thread is the ledger's SENDER (billing/usage_ledger.h).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "billing/meter.h"
#include "billing/stripe_client.h"
#include "billing/usage_ledger.h"

namespace pgtenant::billing {

// Who pays for a tenant: its own Stripe customer id (cus_...), or for a tenant not listed the
// default rule with "{tenant}" replaced by its id (config billing.default_customer); neither:
// the tenant's windows are unbilled. Immutable once shared; replaced whole on reload.
struct CustomerMap {
  std::unordered_map<std::string, std::string> by_tenant;
  std::string default_rule;  // "" = tenants not listed have no customer

  std::optional<std::string> For(const std::string& tenant) const;
};

struct SenderOptions {
  std::string instance;  // the identifier prefix (billing/window.h); distinct per deployment
  std::array<std::string, kMeterCount> event_names;  // Stripe event_name per meter; "" = not billed
  std::string dead_letter_path;  // e.g. <billing.state_dir>/dead_letter.jsonl
  StripeClientOptions stripe;    // its `abort` is set by the sender
  double max_requests_per_second = 100;  // Stripe allows 1000/s in live mode, 25/s in test mode
  std::chrono::milliseconds backoff_initial{1000};
  std::chrono::milliseconds backoff_max{5 * 60 * 1000};
  std::chrono::milliseconds poll_interval{1000};  // how often to look for closed windows unasked
  std::chrono::milliseconds sync_interval{5000};  // the machine-crash bound (docs/billing.md)
  // An hour under Stripe's 35 days, so that a window is not refused on its way.
  int64_t max_event_age_seconds = kStripeMaxEventAgeSeconds - 3600;
  std::function<int64_t()> now;                     // Unix seconds; default: the system clock
  std::function<void(const std::string&)> log;      // warnings, never the key; default: none
};

struct SenderStats {
  uint64_t requests = 0;     // HTTP requests made
  uint64_t delivered = 0;    // windows Stripe acknowledged (including duplicates)
  uint64_t duplicates = 0;   // ...of which Stripe already had the identifier
  uint64_t retried = 0;      // attempts that will be retried
  uint64_t failed = 0;       // windows refused for good (dead-lettered)
  uint64_t expired = 0;      // windows too old for Stripe (dead-lettered)
  uint64_t unbilled = 0;     // windows of tenants without a customer or meters without an event
  uint64_t zero = 0;         // windows whose billed value rounds to 0: nothing to send
  uint64_t pending = 0;      // closed windows not yet finished
  int64_t oldest_pending_age_seconds = 0;  // since the oldest pending window ended; 0: none
  int64_t last_success_unix = 0;           // 0: never
  uint64_t sync_failures = 0;
};

class Sender {
 public:
  // `ledger` must outlive the sender.
  Sender(UsageLedger* ledger, SenderOptions options, std::shared_ptr<const CustomerMap> customers);
  ~Sender();  // Stop()
  Sender(const Sender&) = delete;
  Sender& operator=(const Sender&) = delete;

  // Checks the options (instance, base URL, key present) and opens the dead-letter file, then
  // starts the thread.
  Status Start();
  // Asks the thread to finish, abandons the request in flight, joins. Bounded: about 100 ms plus
  // one dead-letter write. Windows not yet sent stay in the ledger for the next start.
  void Stop();

  void SetCustomers(std::shared_ptr<const CustomerMap> customers);
  // A reload may bill a meter under another event name, or stop billing it (""): windows closed
  // from then on follow the new names.
  void SetEventNames(const std::array<std::string, kMeterCount>& event_names);
  void Wake();  // look for closed windows now (after UsageLedger::CloseWindowsBefore)
  SenderStats Stats() const;

 private:
  struct Pending {
    uint64_t slot;
    int64_t window_end;
    std::chrono::steady_clock::time_point next_attempt;
  };
  enum class Done { kYes, kNo };

  void Run();
  void Rescan(std::vector<Pending>* pending);
  Done Process(Pending* item);
  Done Finish(const RecordView& v, RecordState state, const std::string& reason,
              const MeterEventRequest* request, const SendResult* result);
  void Retry(Pending* item, const RecordView& v, const SendResult& result);
  bool WriteDeadLetter(const std::string& line);
  bool WaitUntil(std::chrono::steady_clock::time_point t);  // false when stopping
  bool TakeToken();                                          // false when stopping
  int64_t Now() const;
  void Log(const std::string& m) const;

  UsageLedger* ledger_;
  SenderOptions options_;
  std::unique_ptr<StripeClient> client_;
  int dead_letter_fd_ = -1;

  mutable std::mutex mu_;  // guards customers_, event_names_, wake_ and the condition variable's waits
  std::condition_variable cv_;
  std::shared_ptr<const CustomerMap> customers_;
  std::array<std::string, kMeterCount> event_names_;  // options_.event_names, then SetEventNames
  bool wake_ = false;
  std::atomic<bool> stop_{false};
  std::thread thread_;

  // Worker-thread only.
  std::mt19937_64 rng_{std::random_device{}()};
  double tokens_ = 1;
  std::chrono::steady_clock::time_point tokens_at_{};
  int consecutive_failures_ = 0;
  std::chrono::steady_clock::time_point pause_until_{};

  struct Counters {
    std::atomic<uint64_t> requests{0}, delivered{0}, duplicates{0}, retried{0}, failed{0},
        expired{0}, unbilled{0}, zero{0}, pending{0}, sync_failures{0};
    std::atomic<int64_t> oldest_pending_end{0}, last_success{0};
  } counters_;
};

}  // namespace pgtenant::billing
