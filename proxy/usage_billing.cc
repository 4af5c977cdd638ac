#include "proxy/usage_billing.h"

#include <ctime>
#include <filesystem>
#include <map>
#include <utility>
#include <system_error>

#include "proxy/log.h"

namespace pgtenant::proxy {
namespace {

// Finished windows stay in the ledger this long after Stripe took them, for SHOW USAGE and
// `pgtenant usage export`; then their slots are reused (docs/billing.md).
constexpr int64_t kKeepFinishedSeconds = 48 * 3600;
constexpr int64_t kCompactEverySeconds = 60;

int64_t NowUnix() { return static_cast<int64_t>(std::time(nullptr)); }

std::array<std::string, billing::kMeterCount> EventNames(const conf::Billing& b) {
  std::array<std::string, billing::kMeterCount> names;
  for (const auto& [meter, event] : b.meters) {
    if (auto m = billing::MeterFromName(meter)) names[static_cast<size_t>(*m)] = event;
  }
  return names;
}

std::shared_ptr<const billing::CustomerMap> Customers(const conf::Config& config) {
  auto map = std::make_shared<billing::CustomerMap>();
  for (const auto& [id, tenant] : config.tenants) {
    if (!tenant.stripe_customer.empty()) map->by_tenant[id] = tenant.stripe_customer;
  }
  map->default_rule = config.billing.default_customer;
  return map;
}

}  // namespace

Result<std::unique_ptr<UsageBilling>> UsageBilling::Start(const conf::Config& config) {
  const conf::Billing& b = config.billing;
  std::unique_ptr<UsageBilling> self(new UsageBilling());
  self->settings_ = b;
  std::error_code ec;
  std::filesystem::create_directories(b.state_dir, ec);
  if (ec) return Status::Error("F0000", "billing: cannot create billing.state_dir " + b.state_dir + ": " + ec.message());
  billing::LedgerOptions lo;
  lo.path = (std::filesystem::path(b.state_dir) / "usage.ledger").string();
  lo.window_seconds = b.window / 1000;
  billing::OpenReport report;
  auto ledger = billing::UsageLedger::Open(lo, &report);
  if (!ledger.ok()) return Status::Error("F0000", "billing: " + ledger.status().message());
  self->ledger_ = std::move(ledger.value());
  for (const std::string& w : report.warnings) LOG_WARNING("billing: %s", w.c_str());
  LOG_INFO("billing: %s %s: %llu window(s) open, %llu to send%s", report.created ? "created" : "opened",
           lo.path.c_str(), static_cast<unsigned long long>(report.open),
           static_cast<unsigned long long>(report.pending), report.corrupt ? ", some damaged (see above)" : "");

  std::optional<std::string> key = billing::ApiKeyFromEnvironment(b.api_key_env.c_str());
  if (!key) {
    return Status::Error("F0000", "billing: the environment variable " + b.api_key_env +
                                      " (billing.api_key_env) holding the Stripe secret key is not set");
  }
  billing::SenderOptions so;
  so.instance = b.instance;
  so.event_names = self->event_names_ = EventNames(b);
  so.dead_letter_path = (std::filesystem::path(b.state_dir) / "dead_letter.jsonl").string();
  so.stripe.base_url = b.api_base;
  so.stripe.api_key = std::move(*key);
  so.max_requests_per_second = b.max_requests_per_second;
  so.log = [](const std::string& m) { LOG_WARNING("billing: %s", m.c_str()); };
  self->customers_ = Customers(config);
  self->sender_ = std::make_unique<billing::Sender>(self->ledger_.get(), std::move(so), self->customers_);
  Status s = self->sender_->Start();
  if (!s.ok()) return Status::Error("F0000", "billing: " + s.message());
  // Windows that ended while pgtenant was down are closed and sent now.
  self->Tick();
  return self;
}

UsageBilling::~UsageBilling() {
  if (sender_) sender_->Stop();
  if (ledger_) {
    Status s = ledger_->Sync();
    if (!s.ok()) LOG_WARNING("billing: %s", s.message().c_str());
  }
}

void UsageBilling::OnTransaction(const std::string& tenant, uint64_t server_us, const TransactionUsage& txn) {
  int64_t now = NowUnix();
  // Every meter is counted, billed or not: SHOW USAGE shows them all, and a meter given an
  // event name by a reload bills from the next closed window on.
  ledger_->Add(tenant, billing::Meter::kServerTime, server_us, now);
  ledger_->Add(tenant, billing::Meter::kTransactions, 1, now);
  if (txn.queries != 0) ledger_->Add(tenant, billing::Meter::kQueries, txn.queries, now);
  if (txn.bytes_in != 0) ledger_->Add(tenant, billing::Meter::kBytesIn, txn.bytes_in, now);
  if (txn.bytes_out != 0) ledger_->Add(tenant, billing::Meter::kBytesOut, txn.bytes_out, now);
}

void UsageBilling::Tick() {
  int64_t now = NowUnix();
  if (uint64_t rejected = ledger_->rejected(); rejected != rejected_logged_) {
    // A tenant id longer than the ledger holds, or a full disk: the usage is not metered, say so.
    LOG_WARNING("billing: %llu amount(s) could not be added to the ledger %s (a tenant id over %u bytes, "
                "or the disk is full)",
                static_cast<unsigned long long>(rejected - rejected_logged_), ledger_->path().c_str(),
                ledger_->tenant_capacity());
    rejected_logged_ = rejected;
  }
  // Windows end on whole seconds: one look a second (over every open record) is enough.
  if (now == last_close_check_) return;
  last_close_check_ = now;
  if (ledger_->CloseWindowsBefore(now) > 0) sender_->Wake();
  if (now - last_compact_ >= kCompactEverySeconds) {
    last_compact_ = now;
    ledger_->Compact(now, kKeepFinishedSeconds);
  }
}

std::vector<AdminUsageRow> UsageBilling::Summary() const {
  std::map<std::pair<std::string, billing::Meter>, AdminUsageRow> by_key;
  for (const billing::RecordView& v : ledger_->Snapshot()) {
    if (v.state == billing::RecordState::kCorrupt || v.state == billing::RecordState::kFree) continue;
    AdminUsageRow& row = by_key[{v.tenant, v.meter}];
    uint64_t billed = billing::BilledValue(v.meter, v.value);
    row.counted += billed;
    switch (v.state) {
      case billing::RecordState::kOpen: row.open += billed; break;
      case billing::RecordState::kClosed:
      case billing::RecordState::kSending: row.pending += billed; break;
      case billing::RecordState::kDelivered: row.sent += billed; break;
      case billing::RecordState::kFailed:
      case billing::RecordState::kExpired: row.failed += billed; break;
      case billing::RecordState::kUnbilled: row.unbilled += billed; break;
      default: break;
    }
  }
  std::vector<AdminUsageRow> rows;
  rows.reserve(by_key.size());
  for (auto& [key, row] : by_key) {
    row.tenant = key.first;
    row.meter = std::string(billing::MeterName(key.second));
    row.event_name = EventName(key.second);
    row.customer = CustomerOf(key.first).value_or("");
    rows.push_back(std::move(row));
  }
  return rows;
}

void UsageBilling::Apply(const conf::Config& config, std::vector<std::string>* restart_notes) {
  const conf::Billing& b = config.billing;
  event_names_ = EventNames(b);
  sender_->SetEventNames(event_names_);
  customers_ = Customers(config);
  sender_->SetCustomers(customers_);
  if (b.state_dir != settings_.state_dir || b.window != settings_.window || b.instance != settings_.instance ||
      b.api_base != settings_.api_base || b.api_key_env != settings_.api_key_env ||
      b.max_requests_per_second != settings_.max_requests_per_second) {
    restart_notes->push_back(
        "billing.state_dir/window/instance/api_base/api_key_env/max_requests_per_second changed; that needs a restart");
  }
}

}  // namespace pgtenant::proxy
