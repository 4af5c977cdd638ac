// Operating pgtenant (docs/reference.md section 5): exact usage counters in the metrics scrape,
// SHOW TENANTS and SHOW STATS; every admin console command; PAUSE/RESUME, KILL and SHUTDOWN seen
// from the clients they act on.
//
// What pgtenant counts (proxy/server_session.cc, proxy/client_session.cc): a transaction is each
// ReadyForQuery 'I' from the server that is forwarded to the client (pgtenant's own SETs are
// not); a query is each simple Query message and each extended-protocol Execute the client
// sends. libpq's PQexec on an open connection sends exactly one Query, PQexecParams one
// Parse/Bind/Describe/Execute/Sync batch, and a login sends none, so the workload below has
// exact expected counts.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "integration/harness.h"
#include "integration/ops_util.h"

namespace pgtenant::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using ops::AsInt;
using ops::RunAdmin;
using ops::Table;

// Every password of the standard config: none may appear in SHOW CONFIG.
const char* const kPasswords[] = {"app_pw", "admin_pw", "acme_pw", "app_rls_pw"};

// The standard config with the metrics endpoint switched on.
// `metrics_extra`: more lines of the metrics block, each "  key: value\n".
std::string WithMetrics(std::string yaml, int metrics_port, const std::string& tenant_labels,
                        const std::string& metrics_extra = "") {
  const std::string off = "metrics:\n  port: 0\n";
  size_t at = yaml.find(off);
  if (at == std::string::npos) return "";
  yaml.replace(at, off.size(),
               "metrics:\n  host: 127.0.0.1\n  port: " + std::to_string(metrics_port) +
                   "\n  tenant_labels: " + tenant_labels + "\n" + metrics_extra);
  return yaml;
}

// The directory of PATH holding `tool`, or "".
std::string FindTool(const std::string& tool) {
  const char* path = getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate = dirs.substr(start, end - start) + "/" + tool;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

class OperationsTest : public IntegrationTest {
 protected:
  // Starts pgtenant with the standard config, metrics on a free port and `tenant_labels`.
  void StartWithMetrics(const ProxyConfigOptions& options, const std::string& tenant_labels,
                        const std::string& metrics_extra = "") {
    if (DirectMode()) GTEST_SKIP() << "needs pgtenant (PGTENANT_TEST_DIRECT=1)";
    std::string error;
    for (int attempt = 0; attempt < 3 && !proxy_; ++attempt) {
      metrics_port_ = FreePort();
      std::string yaml =
          WithMetrics(ProxyConfig(FreePort(), PgFixture::Get(), options), metrics_port_,
                      tenant_labels, metrics_extra);
      ASSERT_FALSE(yaml.empty()) << "the standard config has no `metrics: port: 0` block";
      proxy_ = ProxyProcess::Start(yaml, &error);
    }
    ASSERT_TRUE(proxy_) << error;
  }

  PGconnPtr ConnectTenant(const std::string& tenant, const std::string& extra = "") {
    return Connect(ClientConnInfo("options='-c app.tenant_id=" + tenant + "' " + extra));
  }

  PGconnPtr ConnectAdmin() { return Connect(ops::AdminConnInfo(proxy_->port())); }

  int metrics_port_ = 0;
};

#define START_WITH_METRICS(options, labels)         \
  do {                                              \
    StartWithMetrics((options), (labels));          \
    if (HasFatalFailure() || IsSkipped()) return;   \
  } while (0)

// ---- the workload with known counts ----

struct Expected {
  long long transactions = 0;
  long long queries = 0;
  long long errors = 0;
};
using PoolTenant = std::pair<std::string, std::string>;

// One statement through PQexecParams: one Execute, one transaction.
void ExecParamsOnce(PGconn* c, int value) {
  std::string text = std::to_string(value);
  const char* params[] = {text.c_str()};
  PGresultPtr r(PQexecParams(c, "select $1::int", 1, nullptr, params, nullptr, nullptr, 0));
  ASSERT_EQ(PQresultStatus(r.get()), PGRES_TUPLES_OK) << ErrorMessage(r.get());
  EXPECT_EQ(std::string(PQgetvalue(r.get(), 0, 0)), text);
}

// Two Executes and one Sync in a libpq pipeline: two queries, one transaction.
void PipelineOfTwo(PGconn* c) {
  ASSERT_EQ(PQenterPipelineMode(c), 1);
  const char* one[] = {"1"};
  const char* two[] = {"2"};
  ASSERT_EQ(PQsendQueryParams(c, "select $1::int", 1, nullptr, one, nullptr, nullptr, 0), 1);
  ASSERT_EQ(PQsendQueryParams(c, "select $1::int", 1, nullptr, two, nullptr, nullptr, 0), 1);
  ASSERT_EQ(PQpipelineSync(c), 1);
  for (const char* want : {"1", "2"}) {
    PGresultPtr r(PQgetResult(c));
    ASSERT_EQ(PQresultStatus(r.get()), PGRES_TUPLES_OK) << ErrorMessage(r.get());
    EXPECT_STREQ(PQgetvalue(r.get(), 0, 0), want);
    EXPECT_EQ(PQgetResult(c), nullptr);  // the end of this query's results
  }
  PGresultPtr sync(PQgetResult(c));
  ASSERT_EQ(PQresultStatus(sync.get()), PGRES_PIPELINE_SYNC);
  ASSERT_EQ(PQexitPipelineMode(c), 1) << PQerrorMessage(c);
}

void ExpectOk(PGconn* c, const char* sql) {
  PGresultPtr r = Exec(c, sql);
  ExecStatusType st = PQresultStatus(r.get());
  EXPECT_TRUE(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) << sql << ": " << ErrorMessage(r.get());
}

TEST_F(OperationsTest, MetricsShowTenantsAndShowStatsCountExactly) {
  START_WITH_METRICS(ProxyConfigOptions{}, "all");
  std::map<PoolTenant, Expected> want;

  // t001: 7 single-statement transactions over 3 connections.
  {
    std::vector<PGconnPtr> cs;
    for (int i = 0; i < 3; ++i) {
      cs.push_back(ConnectTenant("t001"));
      ASSERT_TRUE(cs.back()) << LastConnectError() << ProxyLog();
    }
    const int per_connection[] = {3, 2, 2};
    for (int i = 0; i < 3; ++i) {
      for (int k = 0; k < per_connection[i]; ++k) EXPECT_EQ(QueryValue(cs[i].get(), "select 1"), "1");
    }
    want[{"shared", "t001"}] = {7, 7, 0};
  }
  // t002: 3 explicit transactions (BEGIN, 2 queries, COMMIT: 4 Query messages) over 2 connections.
  {
    PGconnPtr a = ConnectTenant("t002");
    PGconnPtr b = ConnectTenant("t002");
    ASSERT_TRUE(a && b) << LastConnectError();
    for (int i = 0; i < 3; ++i) {
      PGconn* c = i % 2 ? b.get() : a.get();
      ExpectOk(c, "BEGIN");
      EXPECT_EQ(QueryValue(c, "select 21"), "21");
      EXPECT_EQ(QueryValue(c, "select 22"), "22");
      ExpectOk(c, "COMMIT");
      EXPECT_EQ(PQtransactionStatus(c), PQTRANS_IDLE);
    }
    want[{"shared", "t002"}] = {3, 12, 0};
  }
  // t003: the extended protocol: 4 PQexecParams, then a pipeline of 2 Executes and 1 Sync.
  {
    PGconnPtr c = ConnectTenant("t003");
    ASSERT_TRUE(c) << LastConnectError();
    for (int i = 0; i < 4; ++i) ExecParamsOnce(c.get(), 30 + i);
    PipelineOfTwo(c.get());
    if (HasFatalFailure()) return;
    want[{"shared", "t003"}] = {5, 6, 0};
  }
  // t004: errors: one failing statement, and a transaction with an error rolled back.
  {
    PGconnPtr c = ConnectTenant("t004");
    ASSERT_TRUE(c) << LastConnectError();
    EXPECT_EQ(QueryValue(c.get(), "select 1/0"), "ERROR:22012");
    ExpectOk(c.get(), "BEGIN");
    EXPECT_EQ(QueryValue(c.get(), "select 1/0"), "ERROR:22012");
    ExpectOk(c.get(), "ROLLBACK");
    want[{"shared", "t004"}] = {2, 4, 2};
  }
  // acme: its own pool.
  {
    PGconnPtr c = ConnectTenant("acme");
    ASSERT_TRUE(c) << LastConnectError();
    EXPECT_EQ(QueryValue(c.get(), "select current_database()"), "acme");
    EXPECT_EQ(QueryValue(c.get(), "select 2"), "2");
    want[{"acme", "acme"}] = {2, 2, 0};
  }
  std::map<std::string, Expected> per_pool;
  long long all_transactions = 0;
  for (const auto& [key, e] : want) {
    per_pool[key.first].transactions += e.transactions;
    per_pool[key.first].queries += e.queries;
    all_transactions += e.transactions;
  }

  // The admin console runs on the event loop after the accounting of every answer above, so
  // reading it first also orders the scrape after the counting.
  PGconnPtr admin = ConnectAdmin();
  ASSERT_TRUE(admin) << LastConnectError();
  Table tenants = RunAdmin(admin.get(), "SHOW TENANTS");
  ASSERT_TRUE(tenants.ok()) << tenants.error;
  for (const auto& [key, e] : want) {
    auto rows = tenants.Where("tenant", key.second);
    ASSERT_EQ(rows.size(), 1u) << "SHOW TENANTS rows of " << key.second;
    EXPECT_EQ(rows[0]["pool"], key.first);
    EXPECT_EQ(AsInt(rows[0], "transactions"), e.transactions) << key.second;
    EXPECT_EQ(AsInt(rows[0], "queries"), e.queries) << key.second;
    EXPECT_EQ(AsInt(rows[0], "errors"), e.errors) << key.second;
  }
  EXPECT_EQ(tenants.rows.size(), want.size()) << "SHOW TENANTS lists traffic nobody sent";

  Table stats = RunAdmin(admin.get(), "SHOW STATS");
  ASSERT_TRUE(stats.ok()) << stats.error;
  for (const auto& [pool, e] : per_pool) {
    auto rows = stats.Where("database", pool);
    ASSERT_EQ(rows.size(), 1u) << "SHOW STATS row of pool " << pool;
    EXPECT_EQ(AsInt(rows[0], "total_xact_count"), e.transactions) << pool;
    EXPECT_EQ(AsInt(rows[0], "total_query_count"), e.queries) << pool;
  }

  std::string body, error;
  ASSERT_TRUE(ops::HttpGet(metrics_port_, "/metrics", &body, &error)) << error;
  std::vector<ops::Sample> samples = ops::ParseMetrics(body);
  for (const ops::Sample& s : samples) {
    EXPECT_FALSE(s.name.empty()) << "a scrape line does not parse; the scrape:\n" << body;
  }
  for (const auto& [key, e] : want) {
    std::map<std::string, std::string> labels = {{"pool", key.first}, {"tenant", key.second}};
    EXPECT_EQ(ops::FindSample(samples, "pgtenant_transactions_total", labels),
              std::optional<double>(e.transactions)) << key.second;
    EXPECT_EQ(ops::FindSample(samples, "pgtenant_queries_total", labels),
              std::optional<double>(e.queries)) << key.second;
    EXPECT_EQ(ops::FindSample(samples, "pgtenant_tenant_errors_total", labels),
              std::optional<double>(e.errors)) << key.second;
  }
  double sum = 0;
  for (const ops::Sample& s : samples) {
    if (s.name == "pgtenant_transactions_total") sum += s.value;
  }
  EXPECT_EQ(sum, all_transactions) << "transactions counted that the workload did not run";
  // Process-wide client counts: the 8 workload connections and the admin one were accepted
  // (the harness may have made more); the admin connection is still open.
  std::optional<double> accepted = ops::FindSample(samples, "pgtenant_client_connections_accepted_total", {});
  std::optional<double> open_now = ops::FindSample(samples, "pgtenant_clients", {});
  ASSERT_TRUE(accepted && open_now) << body;
  EXPECT_GE(*accepted, 9);
  EXPECT_GE(*open_now, 1);
  EXPECT_LE(*open_now, *accepted);
  for (const auto& [pool, e] : per_pool) {
    EXPECT_EQ(ops::FindSample(samples, "pgtenant_transaction_duration_seconds_count", {{"pool", pool}}),
              std::optional<double>(e.transactions)) << pool;
    // Every server hand-over is one wait observation and one SHOW STATS assignment.
    auto rows = stats.Where("database", pool);
    ASSERT_EQ(rows.size(), 1u);
    std::optional<double> waits = ops::FindSample(samples, "pgtenant_wait_seconds_count", {{"pool", pool}});
    ASSERT_TRUE(waits) << pool;
    EXPECT_EQ(*waits, AsInt(rows[0], "total_server_assignment_count")) << pool;
    EXPECT_GE(*waits, e.transactions) << pool;
  }
  // The per-tenant wait histograms split the pools' observations by tenant, and nobody waits now.
  for (const auto& [pool, e] : per_pool) {
    double tenant_waits = 0;
    for (const ops::Sample& s : samples) {
      if (s.name == "pgtenant_tenant_wait_seconds_count" && s.Label("pool") == pool) tenant_waits += s.value;
      if (s.name == "pgtenant_tenant_waiting_clients") {
        EXPECT_EQ(s.value, 0) << s.Label("tenant");
      }
    }
    EXPECT_EQ(ops::FindSample(samples, "pgtenant_wait_seconds_count", {{"pool", pool}}),
              std::optional<double>(tenant_waits)) << pool;
  }
  for (const auto& [key, e] : want) {
    std::optional<double> n = ops::FindSample(samples, "pgtenant_tenant_wait_seconds_count",
                                              {{"pool", key.first}, {"tenant", key.second}});
    ASSERT_TRUE(n) << key.second;
    EXPECT_GE(*n, e.transactions) << key.second << ": one observation per server hand-over";
  }
  EXPECT_EQ(ops::FindSample(samples, "pgtenant_config_reloads_total", {{"result", "success"}}),
            std::optional<double>(1)) << "the start-up load counts as one good load";
  EXPECT_EQ(ops::FindSample(samples, "pgtenant_config_reloads_total", {{"result", "failure"}}),
            std::optional<double>(0));
  for (const char* family : {"pgtenant_client_connections", "pgtenant_server_connections"}) {
    bool found = false;
    for (const ops::Sample& s : samples) {
      found |= s.name == family && s.labels.count("pool") && s.labels.count("state");
    }
    EXPECT_TRUE(found) << family << "{pool,state} is not in the scrape";
  }

  std::string promtool = FindTool("promtool");
  if (promtool.empty()) {
    GTEST_SKIP() << "promtool not found (Debian package prometheus); the format lint was not run";
  }
  std::string file = "/tmp/pgtenant-scrape-" + std::to_string(getpid()) + ".txt";
  std::ofstream(file) << body;
  CommandResult lint =
      RunCommand({"/bin/sh", "-c", promtool + " check metrics < " + file}, milliseconds(30000));
  unlink(file.c_str());
  EXPECT_EQ(lint.exit_code, 0) << "promtool check metrics:\n" << lint.output;
}

// A thousand tenants have used pgtenant: 980 of the shared pool and 20 with pools of their own
// made from a template. The scrape under the default policy (`dedicated`) has exactly the
// series docs/operations.md ("How many series") counts, and promtool accepts it.
// The default label policy (busiest) at 1,000 tenants: 980 on the shared pool, 20 with pools
// made from one template. Three tenants are made busier than the others; the scrape is taken
// once the ranking gave them their labels.
TEST_F(OperationsTest, MetricsAtAThousandTenantsStayWithinTheDocumentedSeriesCount) {
  constexpr int kShared = 980;
  constexpr int kDedicated = 20;
  constexpr int kBusiest = 5;
  ProxyConfigOptions options;
  options.shared_size = 5;
  options.extra_yaml = "pool_templates:\n  ded:\n    host: 127.0.0.1\n    port: " +
                       std::to_string(PgFixture::Get().port) +
                       "\n    database: app\n    user: app_rls\n    password: \"app_rls_pw\"\n    size: 1\n";
  // Tenant ids built by appends: GCC 12 at -O3 warns falsely (-Wrestrict) about "d" + std::string.
  auto id = [](char prefix, int n) {
    std::string s(1, prefix);
    s += std::to_string(n);
    return s;
  };
  for (int i = 0; i < kDedicated; ++i) {
    options.tenants_extra += "  ";
    options.tenants_extra += id('d', 100 + i);
    options.tenants_extra += ": { template: ded }\n";
  }
  StartWithMetrics(options, "busiest", "  busiest_tenants: " + std::to_string(kBusiest) + "\n");
  if (HasFatalFailure() || IsSkipped()) return;
  std::vector<std::string> tenants;
  for (int i = 0; i < kShared; ++i) tenants.push_back(id('s', 1000 + i));
  for (int i = 0; i < kDedicated; ++i) tenants.push_back(id('d', 100 + i));
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < 4; ++w) {
    threads.emplace_back([&, w] {
      for (size_t i = static_cast<size_t>(w); i < tenants.size(); i += 4) {
        PGconnPtr c = Connect(ClientConnInfo("options='-c app.tenant_id=" + tenants[i] + "'"));
        if (!c || QueryValue(c.get(), "select current_setting('app.tenant_id')") != tenants[i]) ++errors;
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(errors.load(), 0) << ProxyLog();
  // The busy ones: a shared tenant, another, and one on a template pool.
  const std::vector<std::pair<std::string, std::string>> busy = {
      {"shared", "s1000"}, {"shared", "s1001"}, {"ded", "d100"}};
  for (const auto& [pool, tenant] : busy) {
    PGconnPtr c = Connect(ClientConnInfo("options='-c app.tenant_id=" + tenant + "'"));
    ASSERT_TRUE(c) << LastConnectError();
    for (int i = 0; i < 30; ++i) ASSERT_EQ(QueryValue(c.get(), "select count(*) from pg_sleep(0.005)"), "1");
  }
  // Rankings run every 10 s: wait for one that saw the busy tenants (bounded).
  std::string body, error;
  std::vector<ops::Sample> samples;
  auto labelled = [&](const std::string& pool, const std::string& tenant) {
    for (const ops::Sample& s : samples) {
      if (s.name == "pgtenant_transactions_total" && s.Label("pool") == pool && s.Label("tenant") == tenant) return true;
    }
    return false;
  };
  auto all_busy_labelled = [&] {
    return std::all_of(busy.begin(), busy.end(), [&](const auto& b) { return labelled(b.first, b.second); });
  };
  for (int i = 0; i < 50 && !all_busy_labelled(); ++i) {
    if (i > 0) std::this_thread::sleep_for(milliseconds(500));
    ASSERT_TRUE(ops::HttpGet(metrics_port_, "/metrics", &body, &error)) << error;
    samples = ops::ParseMetrics(body);
  }
  ASSERT_TRUE(all_busy_labelled()) << "the three busiest tenants have no labels after 25 s:\n" << body;
  // Fixed 14 (7 of pgtenant's, 7 of the HTTP exposer's); 46 per pool name: shared, acme and
  // "ded" (the 20 pools made from the template report under its name); 25 per tenant label:
  // the 5 busiest and "_other" on shared and on ded.
  const size_t documented = 14 + 46 * 3 + 25 * (kBusiest + 2);
  std::map<std::string, int> per_family;
  std::set<std::string> tenant_labels;
  for (const ops::Sample& s : samples) {
    ++per_family[s.name];
    if (s.name == "pgtenant_transactions_total") tenant_labels.insert(s.Label("pool") + "/" + s.Label("tenant"));
  }
  std::string families;
  for (const auto& [name, n] : per_family) families += name + " " + std::to_string(n) + "\n";
  for (const std::string& l : tenant_labels) families += "label " + l + "\n";
  EXPECT_EQ(samples.size(), documented) << "series in the scrape of 1,000 tenants, by name:\n" << families;
  EXPECT_EQ(tenant_labels.size(), static_cast<size_t>(kBusiest + 2)) << families;
  std::string promtool = FindTool("promtool");
  if (promtool.empty()) GTEST_SKIP() << "promtool not found (Debian package prometheus)";
  std::string file = "/tmp/pgtenant-scrape-1000-" + std::to_string(getpid()) + ".txt";
  std::ofstream(file) << body;
  CommandResult lint = RunCommand({"/bin/sh", "-c", promtool + " check metrics < " + file}, milliseconds(30000));
  unlink(file.c_str());
  EXPECT_EQ(lint.exit_code, 0) << "promtool check metrics:\n" << lint.output;
}

// pgtenant_tenant_waiting_clients names who waits: one server, held by t001 in a transaction;
// three clients of t002 and one of t003 queue behind it.
TEST_F(OperationsTest, TenantWaitingClientsGaugeNamesTheWaitingTenants) {
  ProxyConfigOptions options;
  options.shared_size = 1;
  START_WITH_METRICS(options, "all");
  PGconnPtr holder = ConnectTenant("t001");
  ASSERT_TRUE(holder) << LastConnectError();
  ExpectOk(holder.get(), "BEGIN");
  EXPECT_EQ(QueryValue(holder.get(), "select 1"), "1");
  std::vector<PGconnPtr> waiters;
  for (const char* tenant : {"t002", "t002", "t002", "t003"}) {
    waiters.push_back(ConnectTenant(tenant));
    ASSERT_TRUE(waiters.back()) << LastConnectError();
    ASSERT_EQ(PQsendQuery(waiters.back().get(), "select 1"), 1);
  }
  auto waiting = [&](const std::string& tenant) {
    std::string error;
    std::optional<double> v = ops::ScrapeValue(metrics_port_, "pgtenant_tenant_waiting_clients",
                                               {{"pool", "shared"}, {"tenant", tenant}}, &error);
    return v ? *v : -1;
  };
  // Gauges are refreshed once a second: poll, bounded.
  bool seen = false;
  for (int i = 0; i < 50 && !seen; ++i) {
    seen = waiting("t002") == 3 && waiting("t003") == 1;
    if (!seen) std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_TRUE(seen) << "t002 " << waiting("t002") << ", t003 " << waiting("t003");
  ExpectOk(holder.get(), "COMMIT");
  for (auto& c : waiters) {
    PGresultPtr r = WaitForResult(c.get(), milliseconds(10000));
    ASSERT_TRUE(r && PQresultStatus(r.get()) == PGRES_TUPLES_OK) << PQerrorMessage(c.get());
    while (PGresultPtr rest = WaitForResult(c.get(), milliseconds(1000))) {
    }
  }
  bool cleared = false;
  for (int i = 0; i < 50 && !cleared; ++i) {
    cleared = waiting("t002") == 0 && waiting("t003") == 0;
    if (!cleared) std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_TRUE(cleared) << "t002 " << waiting("t002") << ", t003 " << waiting("t003");
}

// Under tenant_labels dedicated and none the same exact counts are aggregated: tenants of the
// default pool under "_other" (dedicated), every tenant under "_all" (none).
TEST_F(OperationsTest, TenantLabelPoliciesAggregateExactly) {
  for (const std::string policy : {"dedicated", "none"}) {
    SCOPED_TRACE("tenant_labels: " + policy);
    proxy_.reset();
    START_WITH_METRICS(ProxyConfigOptions{}, policy);
    {
      PGconnPtr a = ConnectTenant("t001");
      PGconnPtr b = ConnectTenant("t002");
      PGconnPtr acme = ConnectTenant("acme");
      ASSERT_TRUE(a && b && acme) << LastConnectError();
      for (int i = 0; i < 3; ++i) EXPECT_EQ(QueryValue(a.get(), "select 1"), "1");
      ExpectOk(b.get(), "BEGIN");
      EXPECT_EQ(QueryValue(b.get(), "select 2"), "2");
      ExpectOk(b.get(), "COMMIT");
      EXPECT_EQ(QueryValue(acme.get(), "select 3"), "3");
    }
    PGconnPtr admin = ConnectAdmin();
    ASSERT_TRUE(admin) << LastConnectError();
    ASSERT_TRUE(RunAdmin(admin.get(), "SHOW TENANTS").ok());  // orders the scrape after the counting
    std::string body, error;
    ASSERT_TRUE(ops::HttpGet(metrics_port_, "/metrics", &body, &error)) << error;
    std::vector<ops::Sample> samples = ops::ParseMetrics(body);
    std::string shared_label = policy == "dedicated" ? "_other" : "_all";
    std::string acme_label = policy == "dedicated" ? "acme" : "_all";
    auto value = [&](const char* name, const std::string& pool, const std::string& tenant) {
      return ops::FindSample(samples, name, {{"pool", pool}, {"tenant", tenant}});
    };
    EXPECT_EQ(value("pgtenant_transactions_total", "shared", shared_label), std::optional<double>(4));
    EXPECT_EQ(value("pgtenant_queries_total", "shared", shared_label), std::optional<double>(6));
    EXPECT_EQ(value("pgtenant_transactions_total", "acme", acme_label), std::optional<double>(1));
    EXPECT_EQ(value("pgtenant_queries_total", "acme", acme_label), std::optional<double>(1));
    for (const ops::Sample& s : samples) {
      if (s.name == "pgtenant_transactions_total") {
        EXPECT_TRUE(s.labels.at("tenant") == shared_label || s.labels.at("tenant") == acme_label)
            << "a tenant label the policy does not allow: " << s.labels.at("tenant");
      }
    }
  }
}

// ---- the admin console ----

TEST_F(OperationsTest, AdminConsoleAnswersEveryCommand) {
  START_WITH_METRICS(ProxyConfigOptions{}, "dedicated");
  PGconnPtr client = ConnectTenant("t001", "application_name=ops_probe");
  ASSERT_TRUE(client) << LastConnectError() << ProxyLog();
  EXPECT_EQ(QueryValue(client.get(), "select 1"), "1");
  PGconnPtr admin = ConnectAdmin();
  ASSERT_TRUE(admin) << LastConnectError() << ProxyLog();

  Table pools = RunAdmin(admin.get(), "SHOW POOLS");
  ASSERT_TRUE(pools.ok()) << pools.error;
  for (const char* column : {"database", "user", "cl_active", "cl_waiting", "sv_active", "sv_idle",
                             "sv_used", "sv_login", "maxwait", "maxwait_us", "pool_mode"}) {
    EXPECT_TRUE(pools.HasColumn(column)) << "SHOW POOLS has no column " << column;
  }
  ASSERT_EQ(pools.Where("database", "shared").size(), 1u);
  ASSERT_EQ(pools.Where("database", "acme").size(), 1u);
  auto shared = pools.Where("database", "shared")[0];
  EXPECT_EQ(AsInt(shared, "sv_idle") + AsInt(shared, "sv_used"), 1) << "one server was used once";
  EXPECT_EQ(AsInt(shared, "cl_waiting"), 0);
  EXPECT_EQ(shared["pool_mode"], "transaction");

  Table clients = RunAdmin(admin.get(), "SHOW CLIENTS");
  ASSERT_TRUE(clients.ok()) << clients.error;
  auto probe = clients.Where("application_name", "ops_probe");
  ASSERT_EQ(probe.size(), 1u);
  EXPECT_EQ(probe[0]["tenant"], "t001");
  EXPECT_EQ(probe[0]["pool"], "shared");
  EXPECT_EQ(probe[0]["user"], "app");

  Table servers = RunAdmin(admin.get(), "SHOW SERVERS");
  ASSERT_TRUE(servers.ok()) << servers.error;
  auto shared_servers = servers.Where("pool", "shared");
  ASSERT_EQ(shared_servers.size(), 1u);
  EXPECT_EQ(shared_servers[0]["database"], "app");
  EXPECT_GT(AsInt(shared_servers[0], "remote_pid"), 0);

  Table tenants = RunAdmin(admin.get(), "SHOW TENANTS");
  ASSERT_TRUE(tenants.ok()) << tenants.error;
  ASSERT_EQ(tenants.Where("tenant", "t001").size(), 1u);
  EXPECT_EQ(AsInt(tenants.Where("tenant", "t001")[0], "transactions"), 1);
  EXPECT_EQ(AsInt(tenants.Where("tenant", "t001")[0], "clients"), 1);

  Table stats = RunAdmin(admin.get(), "SHOW STATS");
  ASSERT_TRUE(stats.ok()) << stats.error;
  for (const char* column : {"database", "total_xact_count", "total_query_count",
                             "total_received", "total_sent", "total_wait_time", "avg_xact_count"}) {
    EXPECT_TRUE(stats.HasColumn(column)) << "SHOW STATS has no column " << column;
  }
  EXPECT_EQ(stats.Where("database", "shared").size(), 1u);

  Table config = RunAdmin(admin.get(), "SHOW CONFIG");
  ASSERT_TRUE(config.ok()) << config.error;
  ASSERT_TRUE(config.HasColumn("key") && config.HasColumn("value"));
  auto size_row = config.Where("key", "pools.shared.size");
  ASSERT_EQ(size_row.size(), 1u);
  EXPECT_EQ(size_row[0]["value"], "5");
  EXPECT_EQ(config.Where("key", "pools.shared.password").size(), 1u);
  for (const auto& row : config.rows) {
    for (const auto& [column, value] : row) {
      for (const char* secret : kPasswords) {
        EXPECT_EQ(value.find(secret), std::string::npos)
            << "SHOW CONFIG shows a password: " << row.at("key") << " = " << value;
      }
    }
  }

  Table version = RunAdmin(admin.get(), "SHOW VERSION");
  ASSERT_TRUE(version.ok()) << version.error;
  ASSERT_EQ(version.rows.size(), 1u);
  EXPECT_EQ(version.rows[0].begin()->second.rfind("pgtenant ", 0), 0u);

  Table reload = RunAdmin(admin.get(), "RELOAD");
  EXPECT_TRUE(reload.ok()) << reload.error;
  EXPECT_EQ(reload.tag, "RELOAD");

  auto paused = [&](const char* pool) {
    Table t = RunAdmin(admin.get(), "SHOW POOLS");
    auto rows = t.Where("database", pool);
    return rows.size() == 1 ? AsInt(rows[0], "paused") : -1;
  };
  Table pause_all = RunAdmin(admin.get(), "PAUSE");
  EXPECT_TRUE(pause_all.ok()) << pause_all.error;
  EXPECT_EQ(pause_all.tag, "PAUSE");
  EXPECT_EQ(paused("shared"), 1);
  EXPECT_EQ(paused("acme"), 1);
  Table resume_all = RunAdmin(admin.get(), "RESUME");
  EXPECT_TRUE(resume_all.ok()) << resume_all.error;
  EXPECT_EQ(resume_all.tag, "RESUME");
  EXPECT_EQ(paused("shared"), 0);
  EXPECT_EQ(paused("acme"), 0);
  EXPECT_TRUE(RunAdmin(admin.get(), "pause acme;").ok());
  EXPECT_EQ(paused("shared"), 0);
  EXPECT_EQ(paused("acme"), 1);
  EXPECT_TRUE(RunAdmin(admin.get(), "RESUME acme").ok());
  EXPECT_EQ(paused("acme"), 0);

  Table no_pool = RunAdmin(admin.get(), "PAUSE nosuchpool");
  EXPECT_EQ(no_pool.sqlstate, "42704") << no_pool.error;
  Table kill_no_arg = RunAdmin(admin.get(), "KILL");
  EXPECT_EQ(kill_no_arg.sqlstate, "42601") << kill_no_arg.error;
  Table unknown = RunAdmin(admin.get(), "SELECT 1");
  EXPECT_EQ(unknown.sqlstate, "42601") << unknown.error;

  Table kill = RunAdmin(admin.get(), "KILL acme");
  EXPECT_TRUE(kill.ok()) << kill.error;
  EXPECT_EQ(kill.tag, "KILL");
  // The console and the other pool's client are untouched by KILL acme.
  EXPECT_EQ(QueryValue(client.get(), "select 7"), "7");
  EXPECT_TRUE(RunAdmin(admin.get(), "SHOW VERSION").ok());
  EXPECT_TRUE(proxy_->Running());
}

TEST_F(OperationsTest, NonAdminUserIsRefusedFromTheConsole) {
  START_WITH_METRICS(ProxyConfigOptions{}, "none");
  ops::Login app = ops::LoginVerbose(ops::AdminConnInfo(proxy_->port(), "app", "app_pw"));
  EXPECT_FALSE(app.conn) << "user app got into the admin console";
  EXPECT_EQ(app.sqlstate, "42501") << app.message;
  ops::Login acme = ops::LoginVerbose(ops::AdminConnInfo(proxy_->port(), "acme_service", "acme_pw"));
  EXPECT_FALSE(acme.conn);
  EXPECT_EQ(acme.sqlstate, "42501") << acme.message;
  ops::Login wrong = ops::LoginVerbose(ops::AdminConnInfo(proxy_->port(), "admin", "not_the_pw"));
  EXPECT_FALSE(wrong.conn);
  EXPECT_EQ(wrong.sqlstate, "28P01") << wrong.message;
  ops::Login ok = ops::LoginVerbose(ops::AdminConnInfo(proxy_->port()));
  ASSERT_TRUE(ok.conn) << ok.message;
  EXPECT_TRUE(RunAdmin(ok.conn.get(), "SHOW POOLS").ok());
}

TEST_F(OperationsTest, PauseMakesANewClientsQueryWaitAndResumeLetsItFinish) {
  START_WITH_METRICS(ProxyConfigOptions{}, "dedicated");
  PGconnPtr warm = ConnectTenant("t001");
  ASSERT_TRUE(warm) << LastConnectError();
  EXPECT_EQ(QueryValue(warm.get(), "select 1"), "1");
  PGconnPtr other_pool = ConnectTenant("acme");
  ASSERT_TRUE(other_pool) << LastConnectError();
  PGconnPtr admin = ConnectAdmin();
  ASSERT_TRUE(admin) << LastConnectError();

  Table pause = RunAdmin(admin.get(), "PAUSE shared");
  ASSERT_TRUE(pause.ok()) << pause.error;
  PGconnPtr fresh = ConnectTenant("t002");
  ASSERT_TRUE(fresh) << "a login during PAUSE failed: " << LastConnectError();
  ASSERT_EQ(PQsendQuery(fresh.get(), "select 'finished'"), 1);
  PGresultPtr early = WaitForResult(fresh.get(), milliseconds(1500));
  EXPECT_FALSE(early) << "a query ran on a paused pool: " << ErrorMessage(early.get());

  // While it waits: PAUSE shared leaves acme alone, and the console shows the waiter.
  EXPECT_EQ(QueryValue(other_pool.get(), "select current_database()"), "acme");
  Table pools = RunAdmin(admin.get(), "SHOW POOLS");
  ASSERT_EQ(pools.Where("database", "shared").size(), 1u);
  auto shared = pools.Where("database", "shared")[0];
  EXPECT_EQ(AsInt(shared, "cl_waiting"), 1);
  EXPECT_GE(AsInt(shared, "maxwait"), 1) << "it has waited 1.5 s";
  EXPECT_EQ(AsInt(shared, "paused"), 1);

  auto resumed_at = Clock::now();
  Table resume = RunAdmin(admin.get(), "RESUME shared");
  ASSERT_TRUE(resume.ok()) << resume.error;
  PGresultPtr r = WaitForResult(fresh.get(), milliseconds(5000));
  ASSERT_TRUE(r) << "the waiting query did not finish after RESUME";
  EXPECT_EQ(PQresultStatus(r.get()), PGRES_TUPLES_OK) << ErrorMessage(r.get());
  EXPECT_STREQ(PQgetvalue(r.get(), 0, 0), "finished");
  EXPECT_LT(Clock::now() - resumed_at, milliseconds(2000));
  EXPECT_EQ(WaitForResult(fresh.get(), milliseconds(1000)), nullptr);
  EXPECT_EQ(QueryValue(fresh.get(), "select 2"), "2");
}

TEST_F(OperationsTest, KillTerminatesTheClientsOfThatPoolOnly) {
  START_WITH_METRICS(ProxyConfigOptions{}, "dedicated");
  PGconnPtr idle_victim = ConnectTenant("t001");
  PGconnPtr txn_victim = ConnectTenant("t002");
  PGconnPtr bystander = ConnectTenant("acme");
  ASSERT_TRUE(idle_victim && txn_victim && bystander) << LastConnectError();
  EXPECT_EQ(QueryValue(idle_victim.get(), "select 1"), "1");
  ExpectOk(txn_victim.get(), "BEGIN");
  EXPECT_EQ(QueryValue(txn_victim.get(), "select 2"), "2");
  EXPECT_EQ(QueryValue(bystander.get(), "select 3"), "3");
  PGconnPtr admin = ConnectAdmin();
  ASSERT_TRUE(admin) << LastConnectError();

  Table kill = RunAdmin(admin.get(), "KILL shared");
  ASSERT_TRUE(kill.ok()) << kill.error;
  EXPECT_EQ(kill.tag, "KILL");
  for (PGconn* victim : {idle_victim.get(), txn_victim.get()}) {
    std::string v = QueryValue(victim, "select 4");
    EXPECT_EQ(v.rfind("ERROR:", 0), 0u) << "a killed client's query answered " << v;
    EXPECT_EQ(PQstatus(victim), CONNECTION_BAD) << "the killed client's connection is still open";
  }
  EXPECT_EQ(QueryValue(bystander.get(), "select current_database()"), "acme");
  Table servers = RunAdmin(admin.get(), "SHOW SERVERS");
  ASSERT_TRUE(servers.ok()) << servers.error;
  // KILL closes the pool's server connections too; give the closes a moment.
  auto deadline = Clock::now() + milliseconds(3000);
  while (!servers.Where("pool", "shared").empty() && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(50));
    servers = RunAdmin(admin.get(), "SHOW SERVERS");
  }
  EXPECT_TRUE(servers.Where("pool", "shared").empty()) << "KILL shared left server connections";
  EXPECT_TRUE(proxy_->Running());
}

TEST_F(OperationsTest, ShutdownAnswersAndTheProxyExitsWithinTheShutdownTimeout) {
  ProxyConfigOptions options;
  options.timeouts["shutdown"] = "3s";
  START_WITH_METRICS(options, "dedicated");
  PGconnPtr idle = ConnectTenant("t001");
  PGconnPtr in_txn = ConnectTenant("t002");
  ASSERT_TRUE(idle && in_txn) << LastConnectError();
  EXPECT_EQ(QueryValue(idle.get(), "select 1"), "1");
  ExpectOk(in_txn.get(), "BEGIN");
  EXPECT_EQ(QueryValue(in_txn.get(), "select 2"), "2");
  PGconnPtr admin = ConnectAdmin();
  ASSERT_TRUE(admin) << LastConnectError();

  auto started = Clock::now();
  Table shutdown = RunAdmin(admin.get(), "SHUTDOWN");
  EXPECT_TRUE(shutdown.ok()) << shutdown.error;
  EXPECT_EQ(shutdown.tag, "SHUTDOWN");
  // The open transaction may finish within timeouts.shutdown (3 s); then the process exits.
  while (proxy_->Running() && Clock::now() - started < milliseconds(3000 + 2500)) {
    std::this_thread::sleep_for(milliseconds(50));
  }
  auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - started);
  ASSERT_FALSE(proxy_->Running()) << "pgtenant still runs " << took.count()
                                  << " ms after SHUTDOWN with timeouts.shutdown 3s; its log:\n"
                                  << ProxyLog();
  EXPECT_EQ(proxy_->exit_status(), 0) << ProxyLog();
  EXPECT_EQ(QueryValue(idle.get(), "select 3").rfind("ERROR:", 0), 0u);
  EXPECT_EQ(QueryValue(in_txn.get(), "select 4").rfind("ERROR:", 0), 0u);
  EXPECT_FALSE(Connect(ClientConnInfo("connect_timeout=2")));
}

}  // namespace
}  // namespace pgtenant::testing
