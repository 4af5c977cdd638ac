// UsageBilling: the proxy's side of usage billing (docs/billing.md). Every transaction of a
// tenant adds its server time, queries and bytes to the durable usage ledger
// (billing/usage_ledger.h) from the event loop; the janitor's tick closes the windows that ended
// and wakes the sender thread (billing/sender.h), which reports each closed (tenant, meter,
// window) to Stripe once. Made by Pooler when `billing.state_dir` is set.
//
// Reload: the meters' event names and the tenants' customers apply live (windows closed from then
// on follow them); state_dir, window, instance, api_base and api_key_env need a restart.
//
// Threads: everything on the event loop, except Stats() and Records(), which read state the
// ledger and the sender make safe to read from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "billing/sender.h"
#include "billing/usage_ledger.h"
#include "conf/config.h"
#include "protocol/status.h"
#include "proxy/admin_console.h"
#include "proxy/usage.h"

namespace pgtenant::proxy {

class UsageBilling {
 public:
  // Opens (or creates) <state_dir>/usage.ledger and starts the sender. Fails when the directory
  // cannot be used, the ledger is damaged or held by another process, or the API key variable is
  // unset: a pgtenant told to bill does not start without being able to.
  static Result<std::unique_ptr<UsageBilling>> Start(const conf::Config& config);
  // Stops the sender (windows not yet sent stay for the next start) and syncs the ledger.
  ~UsageBilling();
  UsageBilling(const UsageBilling&) = delete;
  UsageBilling& operator=(const UsageBilling&) = delete;

  // One finished transaction of `tenant` (never empty).
  void OnTransaction(const std::string& tenant, uint64_t server_us, const TransactionUsage& txn);
  // The janitor's tick: closes ended windows (and wakes the sender), compacts now and then.
  void Tick();
  // A reload: the new event names and customers. Adds to `restart_notes` what needs a restart.
  void Apply(const conf::Config& config, std::vector<std::string>* restart_notes);

  billing::SenderStats Stats() const { return sender_->Stats(); }
  std::vector<billing::RecordView> Records() const { return ledger_->Snapshot(); }
  // SHOW USAGE: per (tenant, meter), sorted, over the windows the ledger keeps.
  std::vector<AdminUsageRow> Summary() const;
  uint64_t rejected() const { return ledger_->rejected(); }
  // The event name a meter is billed under now ("" = not billed), and a tenant's customer.
  const std::string& EventName(billing::Meter m) const { return event_names_[static_cast<size_t>(m)]; }
  std::optional<std::string> CustomerOf(const std::string& tenant) const { return customers_->For(tenant); }

 private:
  UsageBilling() = default;

  conf::Billing settings_;  // as started, for telling what a reload cannot change
  std::unique_ptr<billing::UsageLedger> ledger_;
  std::unique_ptr<billing::Sender> sender_;
  std::array<std::string, billing::kMeterCount> event_names_;
  std::shared_ptr<const billing::CustomerMap> customers_;
  int64_t last_compact_ = 0;
  int64_t last_close_check_ = 0;
  uint64_t rejected_logged_ = 0;  // ledger rejections already logged
};

}  // namespace pgtenant::proxy
