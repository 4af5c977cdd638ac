#include "billing/sender.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <unordered_map>

#include "billing/json.h"
#include "billing/window.h"

namespace pgtenant::billing {

using Clock = std::chrono::steady_clock;

Sender::Sender(UsageLedger* ledger, SenderOptions options, std::shared_ptr<const CustomerMap> customers)
    : ledger_(ledger), options_(std::move(options)), customers_(std::move(customers)) {
  if (!customers_) customers_ = std::make_shared<const CustomerMap>();
  event_names_ = options_.event_names;
}

Sender::~Sender() { Stop(); }

Status Sender::Start() {
  if (!ValidInstance(options_.instance)) {
    return Status::InvalidParameter("billing instance must be 1-20 characters of [a-z0-9_]");
  }
  Status url = ValidateBaseUrl(options_.stripe.base_url);
  if (!url.ok()) return url;
  if (options_.stripe.api_key.empty()) {
    return Status::InvalidParameter("no Stripe API key (it is read from an environment variable only)");
  }
  if (options_.max_requests_per_second <= 0) {
    return Status::InvalidParameter("billing max_requests_per_second must be positive");
  }
  dead_letter_fd_ = open(options_.dead_letter_path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (dead_letter_fd_ < 0) {
    std::string m = "cannot open the billing dead-letter file ";
    m.append(options_.dead_letter_path).append(": ").append(std::strerror(errno));
    return Status::Error("58030", std::move(m));
  }
  options_.stripe.abort = &stop_;
  client_ = std::make_unique<StripeClient>(options_.stripe);
  thread_ = std::thread([this] { Run(); });
  return Status::Ok();
}

void Sender::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (dead_letter_fd_ >= 0) {
    close(dead_letter_fd_);
    dead_letter_fd_ = -1;
  }
}

std::optional<std::string> CustomerMap::For(const std::string& tenant) const {
  auto it = by_tenant.find(tenant);
  if (it != by_tenant.end()) return it->second;
  if (default_rule.empty()) return std::nullopt;
  std::string customer;
  size_t at = default_rule.find("{tenant}");
  if (at == std::string::npos) return default_rule;  // one customer pays for every tenant
  customer.append(default_rule, 0, at);
  customer += tenant;
  customer.append(default_rule, at + 8);
  return customer;
}

void Sender::SetCustomers(std::shared_ptr<const CustomerMap> customers) {
  std::lock_guard<std::mutex> lock(mu_);
  customers_ = customers ? std::move(customers) : std::make_shared<const CustomerMap>();
}

void Sender::SetEventNames(const std::array<std::string, kMeterCount>& event_names) {
  std::lock_guard<std::mutex> lock(mu_);
  event_names_ = event_names;
}

void Sender::Wake() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    wake_ = true;
  }
  cv_.notify_all();
}

SenderStats Sender::Stats() const {
  SenderStats s;
  s.requests = counters_.requests.load();
  s.delivered = counters_.delivered.load();
  s.duplicates = counters_.duplicates.load();
  s.retried = counters_.retried.load();
  s.failed = counters_.failed.load();
  s.expired = counters_.expired.load();
  s.unbilled = counters_.unbilled.load();
  s.zero = counters_.zero.load();
  s.pending = counters_.pending.load();
  s.sync_failures = counters_.sync_failures.load();
  s.last_success_unix = counters_.last_success.load();
  int64_t oldest = counters_.oldest_pending_end.load();
  if (s.pending > 0 && oldest > 0) s.oldest_pending_age_seconds = std::max<int64_t>(0, Now() - oldest);
  return s;
}

int64_t Sender::Now() const {
  if (options_.now) return options_.now();
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch()).count();
}

void Sender::Log(const std::string& m) const {
  if (options_.log) options_.log(m);
}

bool Sender::WaitUntil(Clock::time_point t) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_until(lock, t, [this] { return stop_.load() || wake_; });
  wake_ = false;
  return !stop_.load();
}

bool Sender::TakeToken() {
  // A bucket of one token refilled at max_requests_per_second: requests are spread evenly, so
  // no one-second window of Stripe's ever sees more than the rate.
  const double rate = options_.max_requests_per_second;
  for (int i = 0; i < 1000 && !stop_.load(); ++i) {  // bounded; each round waits or returns
    auto now = Clock::now();
    if (tokens_at_ == Clock::time_point{}) tokens_at_ = now;
    tokens_ = std::min(1.0, tokens_ + std::chrono::duration<double>(now - tokens_at_).count() * rate);
    tokens_at_ = now;
    if (tokens_ >= 1.0) {
      tokens_ -= 1.0;
      return true;
    }
    auto wait = std::chrono::duration<double>((1.0 - tokens_) / rate);
    if (!WaitUntil(now + std::chrono::duration_cast<Clock::duration>(wait))) return false;
  }
  return false;
}

void Sender::Run() {
  std::vector<Pending> pending;
  uint64_t seen_generation = ~uint64_t{0};
  Clock::time_point last_sync{};
  while (!stop_.load()) {
    auto now = Clock::now();
    uint64_t generation = ledger_->close_generation();
    bool rescan = generation != seen_generation;
    // Synced before any newly closed window is sent: it is on disk as closed (with its final
    // value) before Stripe can have it.
    if (rescan || now - last_sync >= options_.sync_interval) {
      Status s = ledger_->Sync();
      if (!s.ok()) {
        counters_.sync_failures.fetch_add(1);
        Log("billing: " + s.message());
      }
      last_sync = now;
    }
    if (rescan) {
      seen_generation = generation;
      Rescan(&pending);
    }
    counters_.pending.store(pending.size());
    counters_.oldest_pending_end.store(pending.empty() ? 0 : pending.front().window_end);

    // Oldest window first among those due; `pending` is sorted by window end.
    auto next = std::find_if(pending.begin(), pending.end(),
                             [now](const Pending& p) { return p.next_attempt <= now; });
    Clock::time_point wake_at = now + options_.poll_interval;
    for (const Pending& p : pending) wake_at = std::min(wake_at, p.next_attempt);
    if (now < pause_until_) {
      WaitUntil(std::min(pause_until_, now + options_.poll_interval));
      continue;
    }
    if (next == pending.end()) {
      WaitUntil(wake_at);
      continue;
    }
    if (Process(&*next) == Done::kYes) pending.erase(next);
  }
}

void Sender::Rescan(std::vector<Pending>* pending) {
  std::unordered_map<uint64_t, Clock::time_point> known;
  for (const Pending& p : *pending) known.emplace(p.slot, p.next_attempt);
  pending->clear();
  ledger_->ForEachSendable([&](const RecordView& v) {
    auto it = known.find(v.slot);
    pending->push_back({v.slot, WindowEnd(v.window_start, v.window_seconds),
                        it == known.end() ? Clock::time_point{} : it->second});
  });
  std::stable_sort(pending->begin(), pending->end(),
                   [](const Pending& a, const Pending& b) { return a.window_end < b.window_end; });
}

Sender::Done Sender::Process(Pending* item) {
  RecordView v = ledger_->Read(item->slot);
  int64_t now = Now();
  std::string event_name;
  std::shared_ptr<const CustomerMap> customers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    customers = customers_;
    event_name = event_names_[static_cast<size_t>(v.meter)];
  }
  std::optional<std::string> customer = customers->For(v.tenant);
  if (event_name.empty() || !customer) {
    ledger_->SetState(v.slot, RecordState::kUnbilled, now, v.attempts);
    counters_.unbilled.fetch_add(1);
    return Done::kYes;
  }
  MeterEventRequest request{event_name, *customer,
                            MeterEventIdentifier(options_.instance, event_name, v.tenant, v.window_start),
                            BilledValue(v.meter, v.value), v.window_start};
  if (now - v.window_start > options_.max_event_age_seconds) {
    return Finish(v, RecordState::kExpired, "expired", &request, nullptr);
  }
  if (request.value == 0) {
    ledger_->SetState(v.slot, RecordState::kDelivered, now, v.attempts);
    counters_.zero.fetch_add(1);
    return Done::kYes;
  }
  if (!TakeToken()) return Done::kNo;
  // Marked before the request: after a crash here the window is sent again with the same
  // identifier, and Stripe's duplicate answer settles it.
  ledger_->SetState(v.slot, RecordState::kSending, now, v.attempts + 1);
  v.attempts += 1;
  SendResult result = client_->Send(request);
  counters_.requests.fetch_add(1);
  switch (result.outcome) {
    case SendOutcome::kDelivered:
    case SendOutcome::kDuplicate:
      ledger_->SetState(v.slot, RecordState::kDelivered, Now(), v.attempts);
      counters_.delivered.fetch_add(1);
      if (result.outcome == SendOutcome::kDuplicate) counters_.duplicates.fetch_add(1);
      counters_.last_success.store(Now());
      consecutive_failures_ = 0;
      return Done::kYes;
    case SendOutcome::kPermanent:
      return Finish(v, RecordState::kFailed, "rejected", &request, &result);
    case SendOutcome::kRetry:
      break;
  }
  ledger_->SetState(v.slot, RecordState::kClosed, Now(), v.attempts);
  Retry(item, v, result);
  return Done::kNo;
}

void Sender::Retry(Pending* item, const RecordView& v, const SendResult& result) {
  counters_.retried.fetch_add(1);
  ++consecutive_failures_;
  double base = std::min(static_cast<double>(options_.backoff_max.count()),
                         static_cast<double>(options_.backoff_initial.count()) *
                             std::pow(2.0, std::min(consecutive_failures_ - 1, 30)));
  std::uniform_real_distribution<double> jitter(base / 2, base);
  auto delay = std::chrono::milliseconds(static_cast<int64_t>(jitter(rng_)));
  if (result.retry_after && *result.retry_after > delay) {
    delay = std::chrono::duration_cast<std::chrono::milliseconds>(*result.retry_after);
  }
  pause_until_ = Clock::now() + delay;
  item->next_attempt = pause_until_;
  // One line when a failure streak starts and one every 10 attempts after, not one per attempt.
  if (consecutive_failures_ == 1 || consecutive_failures_ % 10 == 0) {
    std::string m = "billing: sending to Stripe failed (";
    if (result.http_status != 0) m.append("HTTP ").append(std::to_string(result.http_status)).append(": ");
    m.append(result.message).append("); tenant ").append(v.tenant).append(", meter ");
    m.append(MeterName(v.meter)).append("; retrying in ").append(std::to_string(delay.count()));
    m.append(" ms (failures in a row: ").append(std::to_string(consecutive_failures_)).append(")");
    Log(m);
  }
}

Sender::Done Sender::Finish(const RecordView& v, RecordState state, const std::string& reason,
                            const MeterEventRequest* request, const SendResult* result) {
  int64_t now = Now();
  std::string line = "{\"time\":";
  line.append(std::to_string(now)).append(",\"reason\":");
  AppendJsonString(&line, reason);
  auto field = [&line](const char* name, const std::string& value) {
    line.append(",\"").append(name).append("\":");
    AppendJsonString(&line, value);
  };
  auto number = [&line](const char* name, int64_t value) {
    line.append(",\"").append(name).append("\":").append(std::to_string(value));
  };
  field("tenant", v.tenant);
  field("meter", std::string(MeterName(v.meter)));
  field("event_name", request->event_name);
  field("customer", request->customer_id);
  field("identifier", request->identifier);
  number("window_start", v.window_start);
  number("window_seconds", v.window_seconds);
  line.append(",\"value\":").append(std::to_string(request->value));
  number("attempts", v.attempts);
  if (result != nullptr) {
    number("http_status", result->http_status);
    field("stripe_type", result->error_type);
    field("stripe_code", result->error_code);
    field("stripe_message", result->message);
  }
  line.append("}\n");
  if (!WriteDeadLetter(line)) {
    // Not recorded anywhere yet: keep the window pending rather than lose it.
    Log("billing: cannot write the dead-letter file " + options_.dead_letter_path + ": " +
        std::strerror(errno) + "; the window stays pending");
    ledger_->SetState(v.slot, RecordState::kClosed, now, v.attempts);
    pause_until_ = Clock::now() + options_.backoff_max;
    return Done::kNo;
  }
  ledger_->SetState(v.slot, state, now, v.attempts);
  std::string m = "billing: window of tenant ";
  m.append(v.tenant).append(", meter ").append(MeterName(v.meter)).append(", starting ");
  m.append(std::to_string(v.window_start));
  if (state == RecordState::kExpired) {
    counters_.expired.fetch_add(1);
    m.append(" is older than Stripe accepts; written to ");
  } else {
    counters_.failed.fetch_add(1);
    m.append(" refused by Stripe (HTTP ").append(std::to_string(result->http_status)).append(": ");
    m.append(result->message).append("); written to ");
  }
  m.append(options_.dead_letter_path);
  Log(m);
  return Done::kYes;
}

bool Sender::WriteDeadLetter(const std::string& line) {
  size_t off = 0;
  while (off < line.size()) {
    ssize_t n = write(dead_letter_fd_, line.data() + off, line.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return fdatasync(dead_letter_fd_) == 0;
}

}  // namespace pgtenant::billing
