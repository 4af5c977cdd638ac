// Pools made per tenant from a template (conf/pool_template.h, docs/configuration.md
// `pool_templates`): tenants t301 and t302 name template `dedicated`, whose database is
// "pgt_tpl_{tenant}"; t303 overrides the database. Each tenant's pool is made on its first use
// and dropped once its last server connection closed (timeouts.server_idle: 1s here), and a
// reload updates or retires it.
#include <chrono>
#include <fstream>
#include <optional>
#include <string>
#include <thread>

#include "integration/harness.h"
#include "integration/ops_util.h"

namespace pgtenant::testing {
namespace {

using std::chrono::milliseconds;

class PoolTemplateTest : public IntegrationTest {
 protected:
  void SetUp() override {
    const PgFixture& pg = PgFixture::Get();
    PGconnPtr super = Connect(pg.ConnInfo("postgres", pg.superuser, pg.superpass));
    ASSERT_TRUE(super) << LastConnectError();
    for (const char* db : {"pgt_tpl_t301", "pgt_tpl_t302", "pgt_tpl_other"}) {
      if (QueryValue(super.get(), ("select count(*) from pg_database where datname = '" + std::string(db) + "'").c_str()) ==
          "0") {
        ASSERT_EQ(QueryValue(super.get(), ("create database " + std::string(db)).c_str()), "");
      }
    }
    std::string error;
    for (int attempt = 0; attempt < 3 && !proxy_; ++attempt) {
      metrics_port_ = FreePort();
      yaml_ = Config(FreePort(), "size: 2");
      const std::string off = "metrics:\n  port: 0\n";
      ASSERT_NE(yaml_.find(off), std::string::npos);
      yaml_.replace(yaml_.find(off), off.size(),
                    "metrics:\n  host: 127.0.0.1\n  port: " + std::to_string(metrics_port_) +
                        "\n  tenant_labels: all\n");
      proxy_ = ProxyProcess::Start(yaml_, &error);
    }
    ASSERT_TRUE(proxy_) << error;
    admin_ = Connect(ops::AdminConnInfo(TargetPort()));
    ASSERT_TRUE(admin_) << LastConnectError() << ProxyLog();
  }

  // The standard config plus the template (with `size_line`) and its tenants.
  static std::string Config(int port, const std::string& size_line, bool t302_on_template = true) {
    const PgFixture& pg = PgFixture::Get();
    ProxyConfigOptions options;
    options.timeouts["server_idle"] = "1s";
    options.extra_yaml = "pool_templates:\n  dedicated:\n    host: 127.0.0.1\n    port: " + std::to_string(pg.port) +
                         "\n    database: \"pgt_tpl_{tenant}\"\n    user: app_rls\n    password: \"app_rls_pw\"\n    " +
                         size_line + "\n";
    options.tenants_extra = "  t301: { template: dedicated }\n  t303: { template: dedicated, database: pgt_tpl_other }\n";
    if (t302_on_template) options.tenants_extra += "  t302: { template: dedicated }\n";
    return ProxyConfig(port, pg, options);
  }

  PGconnPtr Client(const std::string& tenant) {
    PGconnPtr c = Connect(ClientConnInfo("options='-c app.tenant_id=" + tenant + "'"));
    EXPECT_TRUE(c) << LastConnectError() << ProxyLog();
    return c;
  }

  // SHOW POOLS rows of `pool` (0 or 1).
  size_t Listed(const std::string& pool) {
    ops::Table pools = ops::RunAdmin(admin_.get(), "SHOW POOLS");
    EXPECT_TRUE(pools.ok()) << pools.error;
    return pools.Where("database", pool).size();
  }

  // Waits (bounded: 100 polls of 50 ms) until `pool` is listed `want` times.
  bool WaitListed(const std::string& pool, size_t want) {
    for (int i = 0; i < 100; ++i) {
      if (Listed(pool) == want) return true;
      std::this_thread::sleep_for(milliseconds(50));
    }
    return false;
  }

  void Reload(const std::string& yaml) {
    std::ofstream(proxy_->config_path()) << yaml;
    ops::Table r = ops::RunAdmin(admin_.get(), "RELOAD");
    ASSERT_TRUE(r.ok()) << r.error << ProxyLog();
  }

  // pgtenant_transactions_total of tenant t301 (-1: not in the scrape). Pools made from a
  // template report under the template's name.
  double Transactions() {
    std::string error;
    std::optional<double> v = ops::ScrapeValue(metrics_port_, "pgtenant_transactions_total",
                                               {{"pool", "dedicated"}, {"tenant", "t301"}}, &error);
    return v ? *v : -1;
  }

  // pgtenant_server_connections{state="active"} of a pool name (-1: not in the scrape).
  double ActiveServers(const std::string& pool) {
    std::string error;
    std::optional<double> v = ops::ScrapeValue(metrics_port_, "pgtenant_server_connections",
                                               {{"pool", pool}, {"state", "active"}}, &error);
    return v ? *v : -1;
  }

  std::string yaml_;
  int metrics_port_ = 0;
  PGconnPtr admin_;
};

TEST_F(PoolTemplateTest, EachTenantGetsItsOwnPoolOnFirstUseAndLosesItWhenIdle) {
  EXPECT_EQ(Listed("dedicated/t301"), 0u) << "nothing is made before a tenant needs it";
  PGconnPtr a = Client("t301");
  PGconnPtr b = Client("t302");
  PGconnPtr other = Client("t303");
  ASSERT_TRUE(a && b && other);
  EXPECT_EQ(QueryValue(a.get(), "select current_database()"), "pgt_tpl_t301") << ProxyLog();
  EXPECT_EQ(QueryValue(b.get(), "select current_database()"), "pgt_tpl_t302");
  EXPECT_EQ(QueryValue(other.get(), "select current_database()"), "pgt_tpl_other") << "the tenant's own database";
  EXPECT_EQ(QueryValue(a.get(), "select current_setting('app.tenant_id')"), "t301");
  EXPECT_EQ(Listed("dedicated/t301"), 1u);
  EXPECT_EQ(Listed("dedicated/t302"), 1u);
  // A shared tenant is untouched.
  PGconnPtr shared = Client("t001");
  ASSERT_TRUE(shared);
  EXPECT_EQ(QueryValue(shared.get(), "select current_database()"), "app");
  // Idle: the server connection closes after server_idle, and the pool goes.
  EXPECT_TRUE(WaitListed("dedicated/t301", 0)) << ProxyLog();
  const double before = Transactions();
  EXPECT_GE(before, 1) << "the tenant's transactions are in /metrics";
  // The client stays connected; its next statement makes the pool again, and its metrics go on
  // counting on the same series.
  EXPECT_EQ(QueryValue(a.get(), "select current_database()"), "pgt_tpl_t301") << ProxyLog();
  EXPECT_EQ(Listed("dedicated/t301"), 1u);
  EXPECT_EQ(Transactions(), before + 1) << "the pool made again counts into nothing";
  EXPECT_EQ(ActiveServers("dedicated/t301"), -1) << "no pool series per tenant";
  // The template's pool gauges add up its tenants' pools (refreshed once a second): two
  // tenants in a transaction each hold a server connection of a pool of their own.
  EXPECT_EQ(QueryValue(a.get(), "BEGIN"), "");
  EXPECT_EQ(QueryValue(b.get(), "BEGIN"), "");
  EXPECT_EQ(QueryValue(a.get(), "select 1"), "1");
  EXPECT_EQ(QueryValue(b.get(), "select 1"), "1");
  bool summed = false;
  for (int i = 0; i < 40 && !summed; ++i) {
    summed = ActiveServers("dedicated") == 2;
    if (!summed) std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_TRUE(summed) << "active server connections under pool=\"dedicated\": " << ActiveServers("dedicated");
  EXPECT_EQ(QueryValue(a.get(), "COMMIT"), "");
  EXPECT_EQ(QueryValue(b.get(), "COMMIT"), "");
}

TEST_F(PoolTemplateTest, ReloadUpdatesATemplatesPoolsAndRetiresATenantThatLeavesIt) {
  PGconnPtr b = Client("t302");
  ASSERT_TRUE(b);
  EXPECT_EQ(QueryValue(b.get(), "select current_database()"), "pgt_tpl_t302");
  // t302 leaves the template: its next transaction runs on the default pool.
  Reload(Config(TargetPort(), "size: 3", /*t302_on_template=*/false));
  EXPECT_EQ(QueryValue(b.get(), "select current_database()"), "app") << ProxyLog();
  EXPECT_TRUE(WaitListed("dedicated/t302", 0)) << "retired and drained" << ProxyLog();
  PGconnPtr a = Client("t301");
  ASSERT_TRUE(a);
  EXPECT_EQ(QueryValue(a.get(), "select current_database()"), "pgt_tpl_t301");
}

}  // namespace
}  // namespace pgtenant::testing
