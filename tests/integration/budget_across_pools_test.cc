// The server-connection budget (docs/architecture.md, "The server-connection budget"):
// limits.max_server_connections bounds the server connections of every pool together. Two
// pools, b1 and b2 (tenants t201 and t202), connect to a database of their own, pgt_budget, so
// that pg_stat_activity shows exactly this pgtenant's connections, whatever other tests run.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "integration/harness.h"
#include "integration/ops_util.h"

namespace pgtenant::testing {
namespace {

using std::chrono::milliseconds;

constexpr const char* kDatabase = "pgt_budget";
constexpr int kBudget = 3;

class BudgetAcrossPoolsTest : public IntegrationTest {
 protected:
  void SetUp() override {
    const PgFixture& pg = PgFixture::Get();
    super_ = Connect(pg.ConnInfo("postgres", pg.superuser, pg.superpass));
    ASSERT_TRUE(super_) << LastConnectError();
    if (QueryValue(super_.get(), "select count(*) from pg_database where datname = 'pgt_budget'") == "0") {
      ASSERT_EQ(QueryValue(super_.get(), "create database pgt_budget"), "");
    }
    ProxyConfigOptions options;
    options.extra_yaml = "limits:\n  max_server_connections: " + std::to_string(kBudget) + "\n";
    options.tenants_extra = "  t201: { pool: b1 }\n  t202: { pool: b2 }\n";
    std::string error;
    for (int attempt = 0; attempt < 3 && !proxy_; ++attempt) {
      std::string yaml = ProxyConfig(FreePort(), pg, options);
      std::string pools;
      for (const char* name : {"b1", "b2"}) {
        pools += std::string("  ") + name + ":\n    host: 127.0.0.1\n    port: " + std::to_string(pg.port) +
                 "\n    database: " + kDatabase + "\n    user: app_rls\n    password: \"app_rls_pw\"\n    size: 3\n";
      }
      yaml.insert(yaml.find("pools:\n") + 7, pools);
      proxy_ = ProxyProcess::Start(yaml, &error);
    }
    ASSERT_TRUE(proxy_) << error;
  }

  PGconnPtr Client(const std::string& tenant) {
    PGconnPtr c = Connect(ClientConnInfo("options='-c app.tenant_id=" + tenant + "'"));
    EXPECT_TRUE(c) << LastConnectError() << ProxyLog();
    return c;
  }

  // This pgtenant's server connections, as PostgreSQL sees them.
  int Backends() {
    return std::atoi(QueryValue(super_.get(),
                                "select count(*) from pg_stat_activity where datname = 'pgt_budget'")
                         .c_str());
  }

  PGconnPtr super_;
};

// b1 holds the whole budget in idle connections; a client of b2 is served at once: pgtenant
// closes b1's least recently used idle connection instead of letting the client wait for
// timeouts.query_wait.
TEST_F(BudgetAcrossPoolsTest, AnotherPoolsIdleConnectionMakesRoom) {
  std::vector<PGconnPtr> holders;
  for (int i = 0; i < kBudget; ++i) {
    holders.push_back(Client("t201"));
    ASSERT_TRUE(holders.back());
    ASSERT_EQ(QueryValue(holders.back().get(), "BEGIN"), "");
    ASSERT_EQ(QueryValue(holders.back().get(), "select 1"), "1");
  }
  for (auto& h : holders) ASSERT_EQ(QueryValue(h.get(), "COMMIT"), "");
  EXPECT_EQ(Backends(), kBudget);
  PGconnPtr other = Client("t202");
  ASSERT_TRUE(other);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(QueryValue(other.get(), "select current_database()"), kDatabase) << ProxyLog();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3)) << "waited for a timeout";
  EXPECT_LE(Backends(), kBudget);
  // b1 still works, within the budget.
  EXPECT_EQ(QueryValue(holders[0].get(), "select 1"), "1");
  EXPECT_LE(Backends(), kBudget);
}

// Clients of both pools at once, more than the budget: PostgreSQL never sees more than the
// budget, no client gets an error, and neither pool starves the other.
TEST_F(BudgetAcrossPoolsTest, NeverExceededUnderLoadAndNoPoolStarves) {
  constexpr int kClientsPerPool = 5;
  constexpr int kRounds = 15;
  std::atomic<bool> done{false};
  std::atomic<int> peak{0};
  std::thread sampler([&] {
    const PgFixture& pg = PgFixture::Get();
    PGconnPtr s = Connect(pg.ConnInfo("postgres", pg.superuser, pg.superpass));
    for (int i = 0; i < 2000 && !done.load(); ++i) {  // bounded: at most ~20 s
      int n = std::atoi(
          QueryValue(s.get(), "select count(*) from pg_stat_activity where datname = 'pgt_budget'").c_str());
      int p = peak.load();
      while (n > p && !peak.compare_exchange_weak(p, n)) {
      }
      std::this_thread::sleep_for(milliseconds(10));
    }
  });
  std::atomic<int> errors{0};
  std::atomic<int> served_b1{0}, served_b2{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 2 * kClientsPerPool; ++i) {
    clients.emplace_back([&, i] {
      const bool first = i % 2 == 0;
      PGconnPtr c = Connect(ClientConnInfo(std::string("options='-c app.tenant_id=") + (first ? "t201" : "t202") + "'"));
      if (!c) {
        ++errors;
        return;
      }
      for (int r = 0; r < kRounds; ++r) {
        if (QueryValue(c.get(), "BEGIN") != "" || QueryValue(c.get(), "select pg_sleep(0.01)") != "" ||
            QueryValue(c.get(), "COMMIT") != "") {
          ++errors;
          return;
        }
        ++(first ? served_b1 : served_b2);
      }
    });
  }
  for (auto& t : clients) t.join();
  done = true;
  sampler.join();
  EXPECT_EQ(errors.load(), 0) << ProxyLog();
  EXPECT_EQ(served_b1.load(), kClientsPerPool * kRounds);
  EXPECT_EQ(served_b2.load(), kClientsPerPool * kRounds);
  EXPECT_GT(peak.load(), 0) << "the sampler saw nothing";
  EXPECT_LE(peak.load(), kBudget) << "PostgreSQL saw more connections than limits.max_server_connections";
}

}  // namespace
}  // namespace pgtenant::testing
