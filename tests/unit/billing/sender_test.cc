// Sender (billing/sender.h) against tests/stripe/fake_stripe.py: every closed window reaches
// Stripe exactly once through refused connections, 500s and 429s; refusals go to the
// dead-letter file; windows too old expire; tenants without a customer are never sent.
#include "billing/sender.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include "billing/window.h"
#include "fake_stripe_process.h"
#include "temp_dir.h"

namespace pgtenant::billing {
namespace {

const std::array<std::string, kMeterCount> kEvents = {"pgt_server_ms", "pgt_transactions", "pgt_queries",
                                                      "pgt_bytes_in", "pgt_bytes_out"};

// "t" + std::to_string(n), built with append: GCC 12 at -O3 reports a false -Wrestrict on
// literal + to_string.
std::string Name(const char* prefix, int64_t n) {
  std::string s = prefix;
  return s.append(std::to_string(n));
}

class SenderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LedgerOptions o;
    o.path = dir_.File("usage.ledger");
    o.window_seconds = 60;
    o.segment0_records = 32;
    auto l = UsageLedger::Open(o, nullptr);
    ASSERT_TRUE(l.ok()) << l.status().ToString();
    ledger_ = std::move(l).value();
    // Windows an hour ago: inside what Stripe accepts, and already over.
    base_ = WindowStart(UnixNow() - 3600, 60);
  }

  SenderOptions Options() {
    SenderOptions o;
    o.instance = "unit";
    o.event_names = kEvents;
    o.dead_letter_path = dir_.File("dead_letter.jsonl");
    o.stripe.base_url = fake_.url();
    o.stripe.api_key = kFakeKey;
    o.stripe.connect_timeout = std::chrono::milliseconds(1000);
    o.stripe.request_timeout = std::chrono::milliseconds(3000);
    o.max_requests_per_second = 1000;
    o.backoff_initial = std::chrono::milliseconds(20);
    o.backoff_max = std::chrono::milliseconds(200);
    o.poll_interval = std::chrono::milliseconds(50);
    o.log = [this](const std::string& m) {
      std::lock_guard<std::mutex> lock(log_mu_);
      log_.push_back(m);
    };
    return o;
  }

  std::shared_ptr<const CustomerMap> Customers(std::initializer_list<std::pair<const std::string, std::string>> c) {
    return std::make_shared<const CustomerMap>(CustomerMap{{c}, ""});
  }

  size_t CountState(RecordState s) {
    size_t n = 0;
    for (const RecordView& v : ledger_->Snapshot()) n += v.state == s;
    return n;
  }

  std::string DeadLetters() {
    std::ifstream in(dir_.File("dead_letter.jsonl"));
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  TempDir dir_;
  FakeStripe fake_;
  std::unique_ptr<UsageLedger> ledger_;
  int64_t base_ = 0;
  std::mutex log_mu_;
  std::vector<std::string> log_;
};

TEST(CustomerMapTest, ListedTenantThenTheDefaultRule) {
  CustomerMap none{{{"acme", "cus_Acme"}}, ""};
  EXPECT_EQ(none.For("acme"), std::optional<std::string>("cus_Acme"));
  EXPECT_EQ(none.For("globex"), std::nullopt) << "no rule: not billed";
  CustomerMap rule{{{"acme", "cus_Acme"}}, "cus_{tenant}_x"};
  EXPECT_EQ(rule.For("acme"), std::optional<std::string>("cus_Acme")) << "a listed tenant wins";
  EXPECT_EQ(rule.For("globex"), std::optional<std::string>("cus_globex_x"));
  CustomerMap one{{}, "cus_Reseller"};
  EXPECT_EQ(one.For("globex"), std::optional<std::string>("cus_Reseller")) << "one customer pays for all";
}

TEST_F(SenderTest, EveryWindowExactlyOnceThroughRefusals500sAnd429s) {
  const std::vector<std::string> tenants = {"acme", "globex", "initech", "umbrella", "hooli"};
  const std::vector<Meter> meters = {Meter::kQueries, Meter::kBytesOut, Meter::kServerTime};
  CustomerMap customers;
  for (const std::string& t : tenants) customers.by_tenant[t] = "cus_" + t;
  // 5 tenants x 3 meters x 4 windows, amounts that differ per (tenant, meter, window).
  for (int w = 0; w < 4; ++w) {
    for (size_t t = 0; t < tenants.size(); ++t) {
      for (Meter m : meters) {
        for (int i = 0; i < 10; ++i) {
          ASSERT_TRUE(ledger_->Add(tenants[t], m, 1000 * (t + 1) + static_cast<uint64_t>(m) * 7 + w, base_ + 60 * w + i));
        }
      }
    }
  }
  fake_.Control("fail", R"({"mode": "500", "count": 3})");
  ledger_->CloseWindowsBefore(base_ + 120);  // the first two windows
  Sender sender(ledger_.get(), Options(), std::make_shared<const CustomerMap>(customers));
  ASSERT_TRUE(sender.Start().ok());
  ASSERT_TRUE(WaitFor([&] { return sender.Stats().delivered >= 10; }, 10));

  fake_.Control("fail", R"({"mode": "refuse", "seconds": 0.5})");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ledger_->CloseWindowsBefore(base_ + 180);  // the third window, while refused
  sender.Wake();
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  fake_.Control("fail", R"({"mode": "429", "count": 4})");
  ledger_->CloseWindowsBefore(base_ + 240);  // the fourth
  sender.Wake();  // the 429s end by themselves, after four answers

  const size_t windows = 4 * tenants.size() * meters.size();
  ASSERT_TRUE(WaitFor([&] { return sender.Stats().delivered == windows; }, 20))
      << "delivered " << sender.Stats().delivered << " of " << windows;
  sender.Stop();

  SenderStats stats = sender.Stats();
  EXPECT_EQ(stats.pending, 0u);
  EXPECT_EQ(stats.failed, 0u);
  EXPECT_GT(stats.last_success_unix, 0);
  EXPECT_EQ(CountState(RecordState::kDelivered), windows);

  // On the fake: one event per window, no identifier twice, and the same sums as the ledger.
  auto events = fake_.Events();
  EXPECT_EQ(events.size(), windows);
  std::set<std::string> ids;
  std::map<std::pair<std::string, std::string>, uint64_t> stripe_sums, ledger_sums;
  for (const auto& e : events) {
    EXPECT_TRUE(ids.insert(e.identifier).second) << e.identifier;
    stripe_sums[{e.customer, e.event_name}] += e.value;
  }
  for (const RecordView& v : ledger_->Snapshot()) {
    ledger_sums[{"cus_" + v.tenant, kEvents[static_cast<size_t>(v.meter)]}] += BilledValue(v.meter, v.value);
    EXPECT_TRUE(ids.count(MeterEventIdentifier("unit", kEvents[static_cast<size_t>(v.meter)], v.tenant, v.window_start)));
  }
  EXPECT_EQ(stripe_sums, ledger_sums);
  EXPECT_EQ(fake_.Stats().find("concurrent"), std::string::npos) << "one request at a time";
  std::lock_guard<std::mutex> lock(log_mu_);
  std::string all;
  for (const auto& m : log_) all.append(m).append("\n");
  EXPECT_NE(all.find("HTTP 500"), std::string::npos) << all;
  // Every injected answer was met (a streak of failures is logged once, so the fake says so).
  std::string fake_stats = fake_.Stats();
  EXPECT_NE(fake_stats.find(R"("500": 3)"), std::string::npos) << fake_stats;
  EXPECT_NE(fake_stats.find(R"("429": 4)"), std::string::npos) << fake_stats;
  // 3 + 4 answered failures; anything beyond was the refused period (no HTTP answer at all).
  EXPECT_GE(stats.retried, 8u) << all;
}

TEST_F(SenderTest, AResendAfterACrashIsADuplicateNotASecondCount) {
  ASSERT_TRUE(ledger_->Add("acme", Meter::kQueries, 9, base_));
  ledger_->CloseWindowsBefore(base_ + 60);
  // The previous process sent the window and died before recording the answer.
  uint64_t slot = 0;
  ledger_->ForEachSendable([&](const RecordView& v) { slot = v.slot; });
  ledger_->SetState(slot, RecordState::kSending, base_ + 61, 1);
  StripeClientOptions co;
  co.base_url = fake_.url();
  co.api_key = kFakeKey;
  StripeClient client(co);
  ASSERT_EQ(client.Send({"pgt_queries", "cus_acme", MeterEventIdentifier("unit", "pgt_queries", "acme", base_), 9, base_})
                .outcome,
            SendOutcome::kDelivered);

  Sender sender(ledger_.get(), Options(), Customers({{"acme", "cus_acme"}}));
  ASSERT_TRUE(sender.Start().ok());
  ASSERT_TRUE(WaitFor([&] { return sender.Stats().delivered == 1; }, 10));
  EXPECT_EQ(sender.Stats().duplicates, 1u);
  EXPECT_EQ(fake_.Events().size(), 1u);
  EXPECT_EQ(ledger_->Read(slot).state, RecordState::kDelivered);
  EXPECT_EQ(ledger_->Read(slot).attempts, 2u);
}

TEST_F(SenderTest, APermanentRefusalIsDeadLetteredWithStripesMessage) {
  fake_.Control("customers", R"({"customers": ["cus_good"]})");
  ASSERT_TRUE(ledger_->Add("good", Meter::kQueries, 3, base_));
  ASSERT_TRUE(ledger_->Add("bad", Meter::kBytesIn, 4, base_));
  ledger_->CloseWindowsBefore(base_ + 60);
  Sender sender(ledger_.get(), Options(), Customers({{"good", "cus_good"}, {"bad", "cus_gone"}}));
  ASSERT_TRUE(sender.Start().ok());
  ASSERT_TRUE(WaitFor([&] { auto s = sender.Stats(); return s.delivered == 1 && s.failed == 1; }, 10));
  sender.Stop();
  EXPECT_EQ(sender.Stats().retried, 0u) << "a permanent error is not retried";
  EXPECT_EQ(CountState(RecordState::kFailed), 1u);
  std::string dead = DeadLetters();
  EXPECT_NE(dead.find(R"("reason":"rejected")"), std::string::npos) << dead;
  EXPECT_NE(dead.find(R"("tenant":"bad")"), std::string::npos) << dead;
  EXPECT_NE(dead.find(R"("meter":"bytes_in")"), std::string::npos) << dead;
  EXPECT_NE(dead.find(R"("value":4)"), std::string::npos) << dead;
  EXPECT_NE(dead.find("No such customer: 'cus_gone'"), std::string::npos) << dead;
  EXPECT_EQ(std::count(dead.begin(), dead.end(), '\n'), 1);
  std::lock_guard<std::mutex> lock(log_mu_);
  bool logged = false;
  for (const auto& m : log_) logged |= m.find("tenant bad") != std::string::npos && m.find("No such customer") != std::string::npos;
  EXPECT_TRUE(logged);
}

TEST_F(SenderTest, AWindowTooOldForStripeExpiresIntoTheDeadLetterFile) {
  int64_t old = WindowStart(UnixNow() - 36 * 86400, 60);
  ASSERT_TRUE(ledger_->Add("acme", Meter::kQueries, 5, old));
  ledger_->CloseWindowsBefore(UnixNow());
  Sender sender(ledger_.get(), Options(), Customers({{"acme", "cus_acme"}}));
  ASSERT_TRUE(sender.Start().ok());
  ASSERT_TRUE(WaitFor([&] { return sender.Stats().expired == 1; }, 10));
  sender.Stop();
  EXPECT_EQ(sender.Stats().requests, 0u) << "not sent to be refused";
  EXPECT_EQ(CountState(RecordState::kExpired), 1u);
  std::string dead = DeadLetters();
  EXPECT_NE(dead.find(R"("reason":"expired")"), std::string::npos) << dead;
  EXPECT_NE(dead.find(Name(R"("window_start":)", old)), std::string::npos) << dead;
}

TEST_F(SenderTest, TenantsWithoutACustomerAreCountedAndNeverSent) {
  ASSERT_TRUE(ledger_->Add("free_tier", Meter::kQueries, 5, base_));
  ASSERT_TRUE(ledger_->Add("acme", Meter::kTransactions, 6, base_));
  ASSERT_TRUE(ledger_->Add("acme", Meter::kServerTime, 400, base_));  // 0.4 ms: bills as 0
  ledger_->CloseWindowsBefore(base_ + 60);
  SenderOptions o = Options();
  o.event_names[static_cast<size_t>(Meter::kTransactions)] = "";  // a meter that is not billed
  Sender sender(ledger_.get(), o, Customers({{"acme", "cus_acme"}}));
  ASSERT_TRUE(sender.Start().ok());
  ASSERT_TRUE(WaitFor([&] { auto s = sender.Stats(); return s.unbilled == 2 && s.zero == 1; }, 10));
  sender.Stop();
  EXPECT_EQ(sender.Stats().requests, 0u);
  EXPECT_TRUE(fake_.Events().empty());
  EXPECT_EQ(CountState(RecordState::kUnbilled), 2u);
  uint64_t kept = 0;
  for (const RecordView& v : ledger_->Snapshot()) kept += v.state == RecordState::kUnbilled ? v.value : 0;
  EXPECT_EQ(kept, 11u) << "the usage is kept in the ledger";
}

TEST_F(SenderTest, StopIsBoundedWithARequestInFlight) {
  ASSERT_TRUE(ledger_->Add("acme", Meter::kQueries, 5, base_));
  ledger_->CloseWindowsBefore(base_ + 60);
  fake_.Control("delay", R"({"ms": 10000})");
  auto sender = std::make_unique<Sender>(ledger_.get(), Options(), Customers({{"acme", "cus_acme"}}));
  ASSERT_TRUE(sender->Start().ok());
  ASSERT_TRUE(WaitFor([&] { return CountState(RecordState::kSending) == 1; }, 5));
  auto started = std::chrono::steady_clock::now();
  sender->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(1000));
  EXPECT_EQ(CountState(RecordState::kClosed), 1u) << "left for the next start";
}

TEST_F(SenderTest, RequestsArePacedToTheConfiguredRate) {
  for (int t = 0; t < 11; ++t) ASSERT_TRUE(ledger_->Add(Name("t", t), Meter::kQueries, 1, base_));
  ledger_->CloseWindowsBefore(base_ + 60);
  CustomerMap customers;
  for (int t = 0; t < 11; ++t) customers.by_tenant[Name("t", t)] = Name("cus_", t);
  SenderOptions o = Options();
  o.max_requests_per_second = 20;
  auto started = std::chrono::steady_clock::now();
  Sender sender(ledger_.get(), o, std::make_shared<const CustomerMap>(customers));
  ASSERT_TRUE(sender.Start().ok());
  ASSERT_TRUE(WaitFor([&] { return sender.Stats().delivered == 11; }, 10));
  EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(450))
      << "11 requests at 20/s take at least half a second";
}

TEST_F(SenderTest, StartRefusesBadOptions) {
  SenderOptions o = Options();
  o.instance = "Bad-Instance";
  EXPECT_FALSE(Sender(ledger_.get(), o, nullptr).Start().ok());
  o = Options();
  o.stripe.api_key.clear();
  EXPECT_FALSE(Sender(ledger_.get(), o, nullptr).Start().ok());
  o = Options();
  o.stripe.base_url = "http://stripe.example.com";
  EXPECT_FALSE(Sender(ledger_.get(), o, nullptr).Start().ok());
}

}  // namespace
}  // namespace pgtenant::billing
