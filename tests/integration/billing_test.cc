// Usage billing end to end (docs/billing.md): pgbench through pgtenant, billing on, reporting to
// the local Stripe-compatible server tests/stripe/fake_stripe.py, with short windows (2 s).
//  - Exactness under faults: the fake refuses connections for a while and answers 500/429 at
//    random, and pgtenant is killed with SIGKILL once and restarted on the same state_dir. For
//    every (tenant, meter), what Stripe received equals pgtenant's own count, and the
//    transactions equal pgbench's per-tenant counts (one pgbench client per tenant, so a tenant
//    may differ by the one transaction in flight at the kill); no identifier is taken twice.
//  - SHOW USAGE, /metrics and `pgtenant usage export` agree with each other.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "integration/harness.h"
#include "integration/ops_util.h"
#include "unit/billing/fake_stripe_process.h"

namespace pgtenant::testing {
namespace {

using billing::FakeStripe;
using std::chrono::milliseconds;

constexpr int kTenants = 50;
constexpr const char* kKeyVariable = "PGTENANT_TEST_STRIPE_KEY";

// Event names per meter; customers are "cus_<tenant>" by the default rule.
const std::map<std::string, std::string> kEvents = {{"server_ms", "pgt_server_ms"},
                                                    {"transactions", "pgt_transactions"},
                                                    {"queries", "pgt_queries"},
                                                    {"bytes_in", "pgt_bytes_in"},
                                                    {"bytes_out", "pgt_bytes_out"}};

std::string Tenant(int i) {
  std::string t = "t";
  if (i < 100) t += '0';
  if (i < 10) t += '0';
  t += std::to_string(i);
  return t;
}

class BillingTest : public IntegrationTest {
 protected:
  void SetUp() override {
    if (DirectMode()) GTEST_SKIP() << "needs pgtenant (PGTENANT_TEST_DIRECT=1)";
    state_dir_ = std::filesystem::temp_directory_path() / ("pgtenant-billing-" + std::to_string(getpid()));
    std::filesystem::remove_all(state_dir_);
    setenv(kKeyVariable, billing::kFakeKey, 1);
  }
  void TearDown() override {
    IntegrationTest::TearDown();
    std::error_code ec;
    std::filesystem::remove_all(state_dir_, ec);
  }

  std::string Config() {
    if (listen_port_ == 0) listen_port_ = FreePort();
    if (metrics_port_ == 0) metrics_port_ = FreePort();
    ProxyConfigOptions options;
    options.shared_size = 10;
    std::string billing = "billing:\n  state_dir: " + state_dir_.string() +
                          "\n  window: 2s\n  instance: itest\n  api_base: \"" + stripe_->url() +
                          "\"\n  api_key_env: " + kKeyVariable + "\n  max_requests_per_second: 500\n"
                          "  default_customer: \"cus_{tenant}\"\n  meters:\n";
    for (const auto& [meter, event] : kEvents) billing += "    " + meter + ": " + event + "\n";
    options.extra_yaml = billing;
    std::string yaml = ProxyConfig(listen_port_, PgFixture::Get(), options);
    const std::string off = "metrics:\n  port: 0\n";
    size_t at = yaml.find(off);
    EXPECT_NE(at, std::string::npos);
    yaml.replace(at, off.size(), "metrics:\n  host: 127.0.0.1\n  port: " + std::to_string(metrics_port_) + "\n");
    return yaml;
  }

  void StartProxy() {
    std::string error;
    proxy_ = ProxyProcess::Start(Config(), &error);
    ASSERT_TRUE(proxy_) << error;
  }

  // One pgbench per tenant, one client each, running `select 1` for `seconds`; returns each
  // tenant's "number of transactions actually processed". `during` runs meanwhile.
  template <typename F>
  std::map<std::string, long> RunPgbench(int seconds, F during) {
    std::string script = (state_dir_.parent_path() / ("pgt-billing-" + std::to_string(getpid()) + ".sql")).string();
    { std::ofstream(script) << "select 1;\n"; }
    std::vector<CommandResult> results(kTenants);
    std::vector<std::thread> threads;
    for (int i = 0; i < kTenants; ++i) {
      threads.emplace_back([&, i] {
        std::string conninfo = ClientConnInfo("options='-c app.tenant_id=" + Tenant(i) + "'");
        results[static_cast<size_t>(i)] =
            RunCommand({PgbenchPath(), "-n", "-c", "1", "-j", "1", "-T", std::to_string(seconds), "-f", script, conninfo},
                       milliseconds((seconds + 30) * 1000));
      });
    }
    during();
    for (auto& t : threads) t.join();
    unlink(script.c_str());
    std::map<std::string, long> processed;
    static const std::regex kProcessed(R"(number of transactions actually processed: ([0-9]+))");
    for (int i = 0; i < kTenants; ++i) {
      std::smatch m;
      const std::string& out = results[static_cast<size_t>(i)].output;
      if (std::regex_search(out, m, kProcessed)) {
        processed[Tenant(i)] = std::stol(m[1]);
      } else {
        // pgbench prints no summary when its only client never got going; it ran nothing then.
        processed[Tenant(i)] = 0;
        EXPECT_EQ(out.find("transaction type"), std::string::npos) << Tenant(i) << ": unreadable output:\n" << out;
      }
    }
    return processed;
  }

  static std::string PgbenchPath() {
    for (const char* p : {"/usr/lib/postgresql/15/bin/pgbench", "/usr/bin/pgbench"}) {
      if (access(p, X_OK) == 0) return p;
    }
    return "pgbench";
  }

  ops::Table ShowUsage() {
    PGconnPtr admin = Connect(ops::AdminConnInfo(proxy_->port()));
    EXPECT_TRUE(admin) << LastConnectError();
    if (!admin) return {};
    return ops::RunAdmin(admin.get(), "SHOW USAGE");
  }

  // Waits (bounded) until every window is closed and settled: nothing open, nothing pending.
  bool WaitSettled(double seconds) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < deadline) {
      ops::Table t = ShowUsage();
      bool settled = t.ok() && !t.rows.empty();
      for (const auto& r : t.rows) settled = settled && r.at("open") == "0" && r.at("pending") == "0";
      if (settled) return true;
      std::this_thread::sleep_for(milliseconds(250));
    }
    return false;
  }

  std::filesystem::path state_dir_;
  std::unique_ptr<FakeStripe> stripe_;
  int listen_port_ = 0;
  int metrics_port_ = 0;
};

TEST_F(BillingTest, StripeGetsExactlyWhatWasCountedThroughFaultsAndASigkill) {
  stripe_ = std::make_unique<FakeStripe>();
  ASSERT_GT(stripe_->port(), 0);
  // A fifth of the requests fail with 500 or 429 for the whole run.
  stripe_->Control("fail", R"({"mode": "500", "probability": 0.1})");
  StartProxy();
  if (HasFatalFailure()) return;

  // Round 1: pgbench for 6 s; Stripe refuses connections for 3 s in the middle; pgtenant is
  // killed at 4 s, with every tenant's client in the middle of its run.
  std::map<std::string, long> round1 = RunPgbench(6, [&] {
    std::this_thread::sleep_for(milliseconds(1500));
    stripe_->Control("fail", R"({"mode": "refuse", "seconds": 3})");
    std::this_thread::sleep_for(milliseconds(2500));
    proxy_->Signal(SIGKILL);
  });
  ASSERT_FALSE(proxy_->Running());
  proxy_.reset();
  // The fake's control API is down while it refuses too: wait for the end of the refusal.
  for (int i = 0; i < 100 && stripe_->Request("/_control/stats", nullptr).first != 200; ++i) {
    std::this_thread::sleep_for(milliseconds(100));
  }
  // Round 2 on the same ledger: the closed windows not yet acknowledged are sent, the open one
  // resumes. 429s now, at random.
  stripe_->Control("fail", R"({"mode": "429", "probability": 0.15})");
  StartProxy();
  if (HasFatalFailure()) return;
  std::map<std::string, long> round2 = RunPgbench(5, [] {});
  stripe_->Control("fail", R"({"mode": "none"})");
  ASSERT_TRUE(WaitSettled(90)) << "windows still open or pending after 90 s:\n" << proxy_->Log();

  // What Stripe received, per (tenant, meter); no identifier twice.
  std::map<std::pair<std::string, std::string>, uint64_t> received;
  std::set<std::string> identifiers;
  std::map<std::string, std::string> meter_of_event;
  for (const auto& [meter, event] : kEvents) meter_of_event[event] = meter;
  for (const FakeStripe::Event& e : stripe_->Events()) {
    EXPECT_TRUE(identifiers.insert(e.identifier).second) << "identifier taken twice: " << e.identifier;
    ASSERT_EQ(e.customer.rfind("cus_", 0), 0u) << e.customer;
    received[{e.customer.substr(4), meter_of_event.at(e.event_name)}] += e.value;
  }
  // pgtenant's own count: SHOW USAGE, every window closed and sent.
  ops::Table usage = ShowUsage();
  ASSERT_TRUE(usage.ok()) << usage.error;
  long pgbench_total = 0, counted_total = 0, in_flight = 0;
  for (int i = 0; i < kTenants; ++i) {
    const std::string tenant = Tenant(i);
    for (const auto& [meter, event] : kEvents) {
      auto rows = usage.Where("tenant", tenant);
      std::string sent, counted, failed;
      for (const auto& r : rows) {
        if (r.at("meter") == meter) {
          sent = r.at("sent");
          counted = r.at("counted");
          failed = r.at("failed");
        }
      }
      ASSERT_FALSE(counted.empty()) << tenant << " " << meter << " is not in SHOW USAGE";
      EXPECT_EQ(failed, "0") << tenant << " " << meter;
      EXPECT_EQ(sent, counted) << tenant << " " << meter << ": every closed window is acknowledged";
      EXPECT_EQ(std::to_string(received[{tenant, meter}]), sent) << tenant << " " << meter << ": Stripe's sum";
      if (meter == "transactions") {
        long ran = round1[tenant] + round2[tenant];
        long count = std::stol(counted);
        pgbench_total += ran;
        counted_total += count;
        // pgtenant counts a transaction when its server says it ended, pgbench when the answer
        // arrives: the kill can fall between the two for the one transaction each client had
        // in flight.
        EXPECT_LE(std::labs(count - ran), 1) << tenant << ": pgtenant " << count << ", pgbench " << ran;
        in_flight += std::labs(count - ran);
      }
    }
  }
  EXPECT_GT(pgbench_total, kTenants * 10) << "the load ran";
  RecordProperty("pgbench_transactions", std::to_string(pgbench_total));
  RecordProperty("counted_transactions", std::to_string(counted_total));
  RecordProperty("in_flight_at_kill", std::to_string(in_flight));
  std::printf("billing: pgbench %ld transactions, pgtenant counted %ld (%ld in flight at the kill), %zu events\n",
              pgbench_total, counted_total, in_flight, identifiers.size());
}

TEST_F(BillingTest, ShowUsageMetricsAndExportAgree) {
  stripe_ = std::make_unique<FakeStripe>();
  ASSERT_GT(stripe_->port(), 0);
  StartProxy();
  if (HasFatalFailure()) return;
  std::map<std::string, long> ran = RunPgbench(3, [] {});
  ASSERT_GT(ran["t000"], 0) << "pgbench ran nothing";
  if (!WaitSettled(30)) {
    ops::Table t = ShowUsage();
    std::string rows;
    for (const auto& r : t.rows) rows += r.at("tenant") + " " + r.at("meter") + " open " + r.at("open") + " pending " + r.at("pending") + "\n";
    FAIL() << "not settled after 30 s: " << t.error << "\n" << rows << proxy_->Log();
  }

  // SHOW USAGE: sent per (tenant, meter).
  ops::Table usage = ShowUsage();
  ASSERT_TRUE(usage.ok()) << usage.error;
  std::map<std::pair<std::string, std::string>, uint64_t> shown;
  for (const auto& r : usage.rows) shown[{r.at("tenant"), r.at("meter")}] = std::stoull(r.at("sent"));

  // The export: billed values of delivered windows, per (tenant, meter); and how many were sent.
  CommandResult exported = RunCommand({PGTENANT_BINARY, "usage", "export", "--state-dir", state_dir_.string(),
                                       "--format", "csv"},
                                      milliseconds(20000));
  ASSERT_EQ(exported.exit_code, 0) << exported.output;
  std::map<std::pair<std::string, std::string>, uint64_t> from_export;
  size_t sent_windows = 0;
  std::istringstream lines(exported.output);
  std::string line;
  std::getline(lines, line);
  ASSERT_EQ(line, "tenant,meter,window_start,window_end,value,billed_value,state");
  while (std::getline(lines, line)) {
    std::vector<std::string> f;
    std::stringstream fields(line);
    for (std::string x; std::getline(fields, x, ',');) f.push_back(x);
    ASSERT_EQ(f.size(), 7u) << line;
    ASSERT_EQ(f[6], "delivered") << line;
    uint64_t billed = std::stoull(f[5]);
    from_export[{f[0], f[1]}] += billed;
    if (billed > 0) ++sent_windows;
  }
  EXPECT_EQ(from_export, shown) << "SHOW USAGE and the export disagree";

  // /metrics: every window with something to bill was delivered once, none pending. The billing
  // series are refreshed with the gauges, once a second: poll (bounded).
  std::string error;
  std::optional<double> delivered, pending;
  for (int i = 0; i < 30; ++i) {
    delivered = ops::ScrapeValue(metrics_port_, "pgtenant_billing_events_total", {{"result", "delivered"}}, &error);
    pending = ops::ScrapeValue(metrics_port_, "pgtenant_billing_pending_windows", {}, &error);
    if (delivered && pending && *delivered == static_cast<double>(sent_windows) && *pending == 0) break;
    std::this_thread::sleep_for(milliseconds(200));
  }
  ASSERT_TRUE(delivered && pending) << error;
  EXPECT_EQ(*delivered, static_cast<double>(sent_windows));
  EXPECT_EQ(*pending, 0);
  EXPECT_EQ(static_cast<double>(stripe_->Events().size()), *delivered) << "and Stripe has exactly those";
}

}  // namespace
}  // namespace pgtenant::testing
