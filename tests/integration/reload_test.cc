// Hot reload under load (docs/reference.md section 5): 200 clients run short transactions for
// tenants t000..t049 while the config is rewritten and reloaded 50 times, by SIGHUP, by the admin
// RELOAD command and once by config_watch alone. Valid configs move tenants between pools, add and
// remove a pool and a user and resize a pool; invalid ones (a YAML syntax error, an unknown key, a
// pool without database) must change nothing and be reported in the log, in
// pgtenant_config_reloads_total{result="failure"} and in RELOAD's error. No client transaction may
// fail, and a moved tenant's next transaction must run on its new pool.
//
// Which pool served a transaction is seen from outside pgtenant where possible: t007 moves
// between shared (database app) and acme (database acme), so current_database() tells; t008
// moves to a pool `dedicated` on database app too, so its probe's row in SHOW CLIENTS tells.
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
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

constexpr int kClients = 200;
constexpr int kTenants = 50;
constexpr int kMaxIterations = 300;            // per client
constexpr milliseconds kThinkTime{100};        // between a client's transactions
constexpr milliseconds kWorkerDeadline{45000}; // the load stops by then whatever happens
constexpr milliseconds kReloadTimeout{5000};   // a reload is seen in the metrics within this
constexpr milliseconds kStepTime{300};         // at least this between two reloads, so the load
                                               // runs through each config for a while

// What a valid config of this test says.
struct Layout {
  int shared_size = 5;
  bool dedicated_pool = false;        // pool `dedicated` on database app
  std::string t007_pool = "shared";   // shared | acme
  std::string t008_pool = "shared";   // shared | dedicated
  bool late_user = false;             // user late_user / late_pw exists
  bool watch = false;                 // config_watch
};

enum class Breakage { kNone, kSyntax, kUnknownKey, kNoDatabase };
enum class Via { kSighup, kReload, kWatch };

std::string PoolYaml(const std::string& name, const std::string& database, int size) {
  return "  " + name + ":\n    host: 127.0.0.1\n    port: " + std::to_string(PgFixture::Get().port) +
         "\n    database: " + database +
         "\n    user: app_rls\n    password: \"app_rls_pw\"\n    mode: transaction\n    size: " +
         std::to_string(size) + "\n";
}

std::string LayoutYaml(int listen_port, int metrics_port, const Layout& l) {
  std::string y = "listen:\n  host: 127.0.0.1\n  port: " + std::to_string(listen_port) + "\n";
  y += "metrics:\n  host: 127.0.0.1\n  port: " + std::to_string(metrics_port) +
       "\n  tenant_labels: all\n";
  y += "admin:\n  database: pgtenant\n  users: [admin]\n";
  y += "auth:\n  type: scram-sha-256\n  users:\n";
  y += "    app:\n      password: \"app_pw\"\n      tenants: [\"*\"]\n";
  y += "    admin:\n      password: \"admin_pw\"\n";
  if (l.late_user) y += "    late_user:\n      password: \"late_pw\"\n      tenants: [\"*\"]\n";
  y += "tenancy:\n  variable: app.tenant_id\n  sources: [parameter, options, user, set]\n";
  y += "  default_pool: shared\n  require_tenant: false\n";
  y += "pools:\n" + PoolYaml("shared", "app", l.shared_size) + PoolYaml("acme", "acme", 3);
  if (l.dedicated_pool) y += PoolYaml("dedicated", "app", 2);
  y += "tenants:\n  acme: { pool: acme }\n";
  if (l.t007_pool != "shared") y += "  t007: { pool: " + l.t007_pool + " }\n";
  if (l.t008_pool != "shared") y += "  t008: { pool: " + l.t008_pool + " }\n";
  y += std::string("config_watch: ") + (l.watch ? "true" : "false") + "\n";
  y += "timeouts:\n  query_wait: 20s\n  server_connect: 5s\n  shutdown: 5s\n";
  return y;
}

// Breaks a valid config; the text each break must be reported with.
std::string Break(std::string y, Breakage b, std::string* reported_as) {
  switch (b) {
    case Breakage::kNone:
      break;
    case Breakage::kSyntax:
      *reported_as = "YAML syntax error";
      y += "broken: [1, 2\n";
      break;
    case Breakage::kUnknownKey: {
      *reported_as = "sizze";
      size_t at = y.find("    mode: transaction\n");  // the first pool: shared
      y.insert(at, "    sizze: 4\n");
      break;
    }
    case Breakage::kNoDatabase: {
      *reported_as = "pools.acme.database";
      const std::string line = "    database: acme\n";
      y.erase(y.find(line), line.size());
      break;
    }
  }
  return y;
}

// Replaces the file in one step, so a reader never sees half of it.
bool WriteConfig(const std::string& path, const std::string& text) {
  std::string tmp = path + ".new";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) return false;
  }
  return rename(tmp.c_str(), path.c_str()) == 0;
}

size_t CountOf(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
  return n;
}

std::string TenantName(int n) {
  char buf[16];
  snprintf(buf, sizeof buf, "t%03d", n);
  return buf;
}

// The load: failures are collected, not asserted, since gtest assertions belong to the main
// thread.
struct Load {
  std::atomic<bool> stop{false};
  std::atomic<long> transactions{0};
  std::atomic<long> failures{0};
  std::atomic<long> t007_checked{0};  // t007 transactions whose pool was known and checked
  // Where t007's transactions must run: (generation << 2) | 0 app, 1 acme, 2 changing now.
  std::atomic<long> t007_state{0};
  std::mutex mu;
  std::vector<std::string> errors;

  void Fail(const std::string& what) {
    ++failures;
    std::lock_guard<std::mutex> lock(mu);
    if (errors.size() < 30) errors.push_back(what);
  }
};

class ReloadTest : public IntegrationTest {
 protected:
  void StartLayout(const Layout& layout) {
    if (DirectMode()) GTEST_SKIP() << "needs pgtenant (PGTENANT_TEST_DIRECT=1)";
    std::string error;
    for (int attempt = 0; attempt < 3 && !proxy_; ++attempt) {
      metrics_port_ = FreePort();
      listen_port_ = FreePort();
      proxy_ = ProxyProcess::Start(LayoutYaml(listen_port_, metrics_port_, layout), &error);
    }
    ASSERT_TRUE(proxy_) << error;
  }

  std::string ConnInfoFor(const std::string& tenant, const std::string& extra = "") const {
    return ClientConnInfo("options='-c app.tenant_id=" + tenant + "' " + extra);
  }

  std::string LateUserConnInfo() const {
    return "host=127.0.0.1 port=" + std::to_string(proxy_->port()) +
           " dbname=app user=late_user password=late_pw sslmode=disable connect_timeout=10 "
           "options='-c app.tenant_id=t001'";
  }

  // pgtenant_config_reloads_total by result; a series not yet created counts 0.
  bool Reloads(double* success, double* failure, std::string* error) {
    std::string body;
    if (!ops::HttpGet(metrics_port_, "/metrics", &body, error)) return false;
    auto samples = ops::ParseMetrics(body);
    *success = ops::FindSample(samples, "pgtenant_config_reloads_total", {{"result", "success"}})
                   .value_or(0);
    *failure = ops::FindSample(samples, "pgtenant_config_reloads_total", {{"result", "failure"}})
                   .value_or(0);
    return true;
  }

  // Waits until the counters reach (success, failure); false with what was seen otherwise.
  bool WaitReloads(double success, double failure, milliseconds timeout, std::string* seen) {
    auto deadline = Clock::now() + timeout;
    double s = -1, f = -1;
    std::string error;
    do {
      if (Reloads(&s, &f, &error) && s >= success && f >= failure) {
        *seen = "success " + std::to_string(s) + ", failure " + std::to_string(f);
        return s == success && f == failure;
      }
      std::this_thread::sleep_for(milliseconds(20));
    } while (Clock::now() < deadline);
    *seen = "success " + std::to_string(s) + ", failure " + std::to_string(f) + " " + error;
    return false;
  }

  // The pool that served the probe's last transaction, from SHOW CLIENTS.
  std::string PoolOfClient(PGconn* admin, const std::string& application_name) {
    Table t = RunAdmin(admin, "SHOW CLIENTS");
    auto rows = t.Where("application_name", application_name);
    return rows.size() == 1 ? rows[0]["pool"] : "<" + std::to_string(rows.size()) + " rows>";
  }

  // Server connections of a pool that are not closing, from SHOW POOLS; -1 when not listed.
  long long ServerCount(PGconn* admin, const std::string& pool) {
    Table t = RunAdmin(admin, "SHOW POOLS");
    auto rows = t.Where("database", pool);
    if (rows.size() != 1) return -1;
    return AsInt(rows[0], "sv_active") + AsInt(rows[0], "sv_idle") + AsInt(rows[0], "sv_used") +
           AsInt(rows[0], "sv_login");
  }

  int listen_port_ = 0;
  int metrics_port_ = 0;
};

#define START_LAYOUT(layout)                       \
  do {                                             \
    StartLayout(layout);                           \
    if (HasFatalFailure() || IsSkipped()) return;  \
  } while (0)

// One client of the load: its tenant's short transactions, a fresh login now and then.
void RunClient(int id, const std::string& conninfo_base, Load* load, Clock::time_point deadline) {
  const std::string tenant = TenantName(id % kTenants);
  const std::string conninfo =
      conninfo_base + " options='-c app.tenant_id=" + tenant + "' application_name=load";
  const char* kSql = "select current_setting('app.tenant_id') || '|' || current_database()";
  PGconnPtr c;
  for (int i = 0; i < kMaxIterations && !load->stop && Clock::now() < deadline; ++i) {
    std::string where = tenant + " client " + std::to_string(id) + " iteration " + std::to_string(i);
    if (!c || i % 25 == 24) {
      c = Connect(conninfo);
      if (!c) {
        load->Fail(where + ": login: " + LastConnectError());
        std::this_thread::sleep_for(kThinkTime);
        continue;
      }
    }
    long before = load->t007_state.load();
    std::string value;
    if (i % 3 == 0) {  // an explicit transaction block
      value = QueryValue(c.get(), "BEGIN");
      if (value.empty()) value = QueryValue(c.get(), kSql);
      if (value.rfind("ERROR", 0) != 0) {
        std::string commit = QueryValue(c.get(), "COMMIT");
        if (!commit.empty()) value = "COMMIT " + commit;
      }
    } else {
      value = QueryValue(c.get(), kSql);
    }
    long after = load->t007_state.load();
    std::string db = value.substr(value.find('|') + 1);
    if (value != tenant + "|app" && !(tenant == "t007" && value == tenant + "|acme")) {
      load->Fail(where + ": got " + value + " (" + PQerrorMessage(c.get()) + ")");
      if (PQstatus(c.get()) != CONNECTION_OK) c.reset();
    } else {
      ++load->transactions;
      // Only when t007's pool was settled for the whole transaction is its database known.
      if (tenant == "t007" && before == after && (before & 3) != 2) {
        ++load->t007_checked;
        std::string want = (before & 3) == 1 ? "acme" : "app";
        if (db != want) load->Fail(where + ": t007 ran on database " + db + ", its pool is on " + want);
      }
    }
    std::this_thread::sleep_for(kThinkTime + milliseconds(id % 7));
  }
}

// The load's threads; joined on destruction too, so an assertion that returns early from the
// test does not leave them running.
class LoadRunner {
 public:
  LoadRunner(int port, Load* load) : load_(load) {
    const std::string base = "host=127.0.0.1 port=" + std::to_string(port) +
                             " dbname=app user=app password=app_pw sslmode=disable connect_timeout=20";
    auto deadline = Clock::now() + kWorkerDeadline;
    for (int i = 0; i < kClients; ++i) threads_.emplace_back(RunClient, i, base, load, deadline);
  }
  ~LoadRunner() { Stop(); }
  void Stop() {
    load_->stop = true;
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  Load* load_;
  std::vector<std::thread> threads_;
};

// The sequence of reloads: step i's config and how it is triggered. Every step moves t007;
// every sixth config is broken (syntax, unknown key, pool without database in turn); every fourth
// reload is the RELOAD command; step 48 turns config_watch on and step 49 is seen by it alone.
struct Step {
  Layout layout;
  Breakage breakage = Breakage::kNone;
  Via via = Via::kSighup;
};
constexpr int kSteps = 50;

Step StepAt(int i, const Layout& applied) {
  Step s;
  s.layout.t007_pool = applied.t007_pool == "shared" ? "acme" : "shared";
  s.layout.shared_size = i < 16 ? 5 : i < 32 ? 3 : 8;
  s.layout.dedicated_pool = i >= 8 && i < 40;
  s.layout.t008_pool = i >= 10 && i < 36 ? "dedicated" : "shared";
  s.layout.late_user = i >= 20 && i < 30;
  s.layout.watch = i >= 48;
  if (i < 48 && i % 6 == 5) s.breakage = static_cast<Breakage>(1 + (i / 6) % 3);
  s.via = i == 49 ? Via::kWatch : i % 4 == 1 ? Via::kReload : Via::kSighup;
  return s;
}

// What the sequence has done so far and the sessions it checks with.
struct ReloadRun {
  Layout applied;
  double success = 0;  // pgtenant_config_reloads_total
  double failure = 0;
  int invalid = 0;
  int steps_since_resize = 0;
  long long max_shared_at_size_8 = 0;
  long generation = 0;
  PGconnPtr admin;
  PGconnPtr probe7;  // t007, whose database tells its pool
  PGconnPtr probe8;  // t008, whose SHOW CLIENTS row tells its pool
  PGconnPtr late;    // a session of late_user while it exists
  bool held = false;  // the pool was made to grow past its old size once
};

class ReloadUnderLoadTest : public ReloadTest {
 protected:
  // Writes the step's config, triggers the reload and waits until the metrics count it.
  void Reload(const Step& step, ReloadRun* run, Table* reload) {
    std::string reported_as;
    std::string text =
        Break(LayoutYaml(listen_port_, metrics_port_, step.layout), step.breakage, &reported_as);
    ASSERT_TRUE(WriteConfig(proxy_->config_path(), text));
    if (step.via == Via::kSighup) proxy_->Signal(SIGHUP);
    if (step.via == Via::kReload) *reload = RunAdmin(run->admin.get(), "RELOAD");
    bool valid = step.breakage == Breakage::kNone;
    (valid ? run->success : run->failure) += 1;
    std::string seen;
    ASSERT_TRUE(WaitReloads(run->success, run->failure, kReloadTimeout, &seen))
        << "pgtenant_config_reloads_total should be success " << run->success << ", failure "
        << run->failure << "; it is " << seen << "\n" << ProxyLog();
    if (step.via == Via::kReload) {
      EXPECT_EQ(reload->ok(), valid) << reload->error;
      if (valid) {
        EXPECT_EQ(reload->tag, "RELOAD");
      } else {
        EXPECT_FALSE(reload->sqlstate.empty());
        EXPECT_NE(reload->error.find(reported_as), std::string::npos)
            << "RELOAD's error does not name the problem (" << reported_as << "): " << reload->error;
      }
    }
    if (!valid) {
      ++run->invalid;
      std::string log = ProxyLog();
      EXPECT_EQ(CountOf(log, "the new config is invalid"), static_cast<size_t>(run->invalid)) << log;
      EXPECT_NE(log.find(reported_as), std::string::npos) << "the log does not name " << reported_as;
    }
  }

  // The moved tenants' next transactions run on their pools; invalid configs moved nothing.
  void CheckRouting(ReloadRun* run) {
    EXPECT_EQ(QueryValue(run->probe7.get(), "select current_database()"),
              run->applied.t007_pool == "acme" ? "acme" : "app");
    EXPECT_EQ(QueryValue(run->probe8.get(), "select 8"), "8");
    EXPECT_EQ(PoolOfClient(run->admin.get(), "probe_t008"), run->applied.t008_pool);
    Table pools = RunAdmin(run->admin.get(), "SHOW POOLS");
    EXPECT_EQ(pools.Where("database", "dedicated").size(), run->applied.dedicated_pool ? 1u : 0u);
  }

  // Pool shared never has more server connections than its size (a shrink takes a few steps:
  // connections beyond it close when released); after the growth to 8, five open transactions
  // plus the load make it open more than the old sizes allowed.
  void CheckSharedSize(ReloadRun* run, int step) {
    const int size = run->applied.shared_size;
    long long servers = ServerCount(run->admin.get(), "shared");
    if (run->steps_since_resize >= 3 || size > 5) {
      EXPECT_LE(servers, size) << "pool shared has size " << size;
    }
    if (size != 8) return;
    if (!run->held && step < 44) {
      run->held = true;
      std::vector<PGconnPtr> holders;
      for (int h = 0; h < 5; ++h) {
        holders.push_back(Connect(ConnInfoFor("t009")));
        ASSERT_TRUE(holders.back()) << LastConnectError();
        EXPECT_EQ(QueryValue(holders.back().get(), "BEGIN"), "");
        EXPECT_EQ(QueryValue(holders.back().get(), "select 9"), "9");
      }
      std::this_thread::sleep_for(milliseconds(300));
      servers = ServerCount(run->admin.get(), "shared");
      EXPECT_LE(servers, 8);
      for (auto& h : holders) EXPECT_EQ(QueryValue(h.get(), "COMMIT"), "");
    }
    run->max_shared_at_size_8 = std::max(run->max_shared_at_size_8, servers);
  }

  // An added user logs in; once removed, it cannot, while its open session goes on (a reload
  // drops no client).
  void CheckLateUser(ReloadRun* run, bool was_there) {
    if (run->applied.late_user == was_there) return;
    if (run->applied.late_user) {
      run->late = Connect(LateUserConnInfo());
      ASSERT_TRUE(run->late) << "the added user cannot log in: " << LastConnectError();
      EXPECT_EQ(QueryValue(run->late.get(), "select current_user"), "app_rls");
      return;
    }
    ops::Login refused = ops::LoginVerbose(LateUserConnInfo());
    EXPECT_FALSE(refused.conn) << "a removed user still logs in";
    EXPECT_EQ(refused.sqlstate, "28P01") << refused.message;
    ASSERT_TRUE(run->late);
    EXPECT_EQ(QueryValue(run->late.get(), "select 30"), "30");
  }
};

TEST_F(ReloadUnderLoadTest, FiftyReloadsMoveTenantsAndDropNoTransaction) {
  ReloadRun run;
  START_LAYOUT(run.applied);
  run.admin = Connect(ops::AdminConnInfo(proxy_->port()));
  run.probe7 = Connect(ConnInfoFor("t007", "application_name=probe_t007"));
  run.probe8 = Connect(ConnInfoFor("t008", "application_name=probe_t008"));
  ASSERT_TRUE(run.admin && run.probe7 && run.probe8) << LastConnectError() << ProxyLog();
  EXPECT_EQ(QueryValue(run.probe7.get(), "select current_database()"), "app");
  std::string error;
  ASSERT_TRUE(Reloads(&run.success, &run.failure, &error)) << error;
  EXPECT_EQ(run.failure, 0);

  Load load;
  LoadRunner runner(proxy_->port(), &load);
  std::this_thread::sleep_for(milliseconds(1000));  // let the load log in and get going
  for (int i = 0; i < kSteps && !HasFatalFailure(); ++i) {
    SCOPED_TRACE("reload step " + std::to_string(i));
    auto step_end = Clock::now() + kStepTime;
    Step step = StepAt(i, run.applied);
    load.t007_state = (++run.generation << 2) | 2;  // changing now: the load does not check t007
    Table reload;
    Reload(step, &run, &reload);
    if (HasFatalFailure()) break;
    Layout before = run.applied;
    if (step.breakage == Breakage::kNone) run.applied = step.layout;
    run.steps_since_resize = before.shared_size == run.applied.shared_size ? run.steps_since_resize + 1 : 1;
    load.t007_state = (++run.generation << 2) | (run.applied.t007_pool == "acme" ? 1 : 0);
    CheckRouting(&run);
    CheckSharedSize(&run, i);
    CheckLateUser(&run, before.late_user);
    std::this_thread::sleep_until(step_end);
  }
  EXPECT_GT(run.max_shared_at_size_8, 5) << "pool shared never grew past its old size after size: 8";

  runner.Stop();
  ASSERT_TRUE(proxy_->Running()) << ProxyLog();
  EXPECT_EQ(load.failures.load(), 0) << [&] {
    std::string all;
    for (const auto& e : load.errors) all += e + "\n";
    return all;
  }();
  EXPECT_GT(load.transactions.load(), kClients) << "the load hardly ran";
  EXPECT_GT(load.t007_checked.load(), 0) << "no t007 transaction of the load was checked";

  // The removed pool has drained; SHOW TENANTS saw t007 and t008 on their other pools.
  Table servers = RunAdmin(run.admin.get(), "SHOW SERVERS");
  EXPECT_TRUE(servers.Where("pool", "dedicated").empty()) << "the removed pool did not drain";
  Table tenants = RunAdmin(run.admin.get(), "SHOW TENANTS");
  EXPECT_EQ(tenants.Where("tenant", "t007").size(), 2u) << "t007 ran on shared and on acme";
  EXPECT_EQ(tenants.Where("tenant", "t008").size(), 2u) << "t008 ran on shared and on dedicated";
  for (const auto& row : tenants.Where("tenant", "t008")) EXPECT_GT(AsInt(row, "transactions"), 0);
  printf("load: %ld transactions, %ld t007 transactions checked, %d invalid configs\n",
         load.transactions.load(), load.t007_checked.load(), run.invalid);
}

// A removed pool drains: a transaction open on it finishes there, the client's next one runs on
// the tenant's new pool, the pool's server connections close, and neither the console nor the
// metrics go on showing them.
TEST_F(ReloadTest, RemovedPoolDrainsAndLeavesNoConnectionsBehind) {
  Layout layout;
  layout.dedicated_pool = true;
  layout.t008_pool = "dedicated";
  START_LAYOUT(layout);
  PGconnPtr admin = Connect(ops::AdminConnInfo(proxy_->port()));
  PGconnPtr idle = Connect(ConnInfoFor("t008", "application_name=idle_t008"));
  PGconnPtr busy = Connect(ConnInfoFor("t008", "application_name=busy_t008"));
  ASSERT_TRUE(admin && idle && busy) << LastConnectError();
  EXPECT_EQ(QueryValue(busy.get(), "BEGIN"), "");
  EXPECT_EQ(QueryValue(busy.get(), "select 2"), "2");
  EXPECT_EQ(QueryValue(idle.get(), "select 1"), "1");  // a second server: the first is busy
  EXPECT_EQ(PoolOfClient(admin.get(), "busy_t008"), "dedicated");
  EXPECT_EQ(RunAdmin(admin.get(), "SHOW SERVERS").Where("pool", "dedicated").size(), 2u);
  std::this_thread::sleep_for(milliseconds(1500));  // the gauges have seen them

  layout.dedicated_pool = false;
  layout.t008_pool = "shared";
  ASSERT_TRUE(WriteConfig(proxy_->config_path(), LayoutYaml(listen_port_, metrics_port_, layout)));
  Table reload = RunAdmin(admin.get(), "RELOAD");
  ASSERT_TRUE(reload.ok()) << reload.error;
  EXPECT_TRUE(RunAdmin(admin.get(), "SHOW POOLS").Where("database", "dedicated").empty());

  EXPECT_EQ(QueryValue(busy.get(), "select 3"), "3") << "the open transaction was cut";
  EXPECT_EQ(QueryValue(busy.get(), "COMMIT"), "");
  EXPECT_EQ(QueryValue(busy.get(), "select 4"), "4");
  EXPECT_EQ(PoolOfClient(admin.get(), "busy_t008"), "shared");
  EXPECT_EQ(QueryValue(idle.get(), "select 5"), "5");
  EXPECT_EQ(PoolOfClient(admin.get(), "idle_t008"), "shared");

  auto deadline = Clock::now() + milliseconds(3000);
  Table servers = RunAdmin(admin.get(), "SHOW SERVERS");
  while (!servers.Where("pool", "dedicated").empty() && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(50));
    servers = RunAdmin(admin.get(), "SHOW SERVERS");
  }
  EXPECT_TRUE(servers.Where("pool", "dedicated").empty()) << "the removed pool did not drain";
  // The connection gauges are refreshed every second; give them two.
  std::this_thread::sleep_for(milliseconds(2000));
  std::string body, error;
  ASSERT_TRUE(ops::HttpGet(metrics_port_, "/metrics", &body, &error)) << error;
  for (const ops::Sample& s : ops::ParseMetrics(body)) {
    if ((s.name == "pgtenant_server_connections" || s.name == "pgtenant_client_connections") &&
        s.labels.count("pool") && s.labels.at("pool") == "dedicated") {
      EXPECT_EQ(s.value, 0) << s.name << "{state=\"" << s.labels.at("state")
                            << "\"} of the removed, drained pool dedicated";
    }
  }
}

// config_watch follows the config: on, it reloads a changed file with no signal; switched off by
// a reload, file changes are left alone again.
TEST_F(ReloadTest, ConfigWatchReloadsOnChangeUntilSwitchedOff) {
  Layout layout;
  layout.watch = true;
  START_LAYOUT(layout);
  PGconnPtr probe = Connect(ConnInfoFor("t007"));
  ASSERT_TRUE(probe) << LastConnectError();
  EXPECT_EQ(QueryValue(probe.get(), "select current_database()"), "app");
  double success = 0, failure = 0;
  std::string error, seen;
  ASSERT_TRUE(Reloads(&success, &failure, &error)) << error;

  layout.t007_pool = "acme";
  ASSERT_TRUE(WriteConfig(proxy_->config_path(), LayoutYaml(listen_port_, metrics_port_, layout)));
  ASSERT_TRUE(WaitReloads(success + 1, failure, kReloadTimeout, &seen)) << seen << ProxyLog();
  EXPECT_EQ(QueryValue(probe.get(), "select current_database()"), "acme");

  // Watched, an invalid file is refused like any other reload.
  std::string reported_as;
  ASSERT_TRUE(WriteConfig(proxy_->config_path(),
                          Break(LayoutYaml(listen_port_, metrics_port_, layout), Breakage::kUnknownKey,
                                &reported_as)));
  ASSERT_TRUE(WaitReloads(success + 1, failure + 1, kReloadTimeout, &seen)) << seen << ProxyLog();
  EXPECT_EQ(QueryValue(probe.get(), "select current_database()"), "acme");

  layout.watch = false;
  layout.t007_pool = "shared";
  ASSERT_TRUE(WriteConfig(proxy_->config_path(), LayoutYaml(listen_port_, metrics_port_, layout)));
  ASSERT_TRUE(WaitReloads(success + 2, failure + 1, kReloadTimeout, &seen)) << seen << ProxyLog();
  EXPECT_EQ(QueryValue(probe.get(), "select current_database()"), "app");

  layout.t007_pool = "acme";
  ASSERT_TRUE(WriteConfig(proxy_->config_path(), LayoutYaml(listen_port_, metrics_port_, layout)));
  std::this_thread::sleep_for(milliseconds(2000));
  double s2 = 0, f2 = 0;
  ASSERT_TRUE(Reloads(&s2, &f2, &error)) << error;
  EXPECT_EQ(s2, success + 2) << "a file change reloaded after config_watch was switched off";
  EXPECT_EQ(QueryValue(probe.get(), "select current_database()"), "app");
}

// listen host/port need a restart: a reload that changes the port applies the rest, keeps
// listening where it did, and says so in the log and to the admin user (a NOTICE with RELOAD).
TEST_F(ReloadTest, ReloadThatChangesTheListenPortSaysItNeedsARestart) {
  Layout layout;
  START_LAYOUT(layout);
  PGconnPtr admin = Connect(ops::AdminConnInfo(proxy_->port()));
  ASSERT_TRUE(admin) << LastConnectError();
  std::vector<std::string> notices;
  PQsetNoticeReceiver(
      admin.get(),
      [](void* arg, const PGresult* r) {
        static_cast<std::vector<std::string>*>(arg)->push_back(PQresultErrorMessage(r));
      },
      &notices);
  int new_port = FreePort();
  layout.t007_pool = "acme";
  ASSERT_TRUE(WriteConfig(proxy_->config_path(), LayoutYaml(new_port, metrics_port_, layout)));
  Table reload = RunAdmin(admin.get(), "RELOAD");
  EXPECT_TRUE(reload.ok()) << reload.error;
  std::string log = ProxyLog();
  size_t at = log.find("listen");
  bool says_restart = false;
  for (; at != std::string::npos; at = log.find("listen", at + 1)) {
    size_t eol = log.find('\n', at);
    says_restart |= log.substr(at, eol - at).find("restart") != std::string::npos;
  }
  EXPECT_TRUE(says_restart) << "no log line says the listen change needs a restart:\n" << log;
  ASSERT_EQ(notices.size(), 1u) << "RELOAD's notices";
  EXPECT_NE(notices[0].find("listen.host/port changed; that needs a restart"), std::string::npos) << notices[0];
  PGconnPtr c = Connect(ConnInfoFor("t007"));
  ASSERT_TRUE(c) << "the old port stopped listening: " << LastConnectError();
  EXPECT_EQ(QueryValue(c.get(), "select current_database()"), "acme") << "the rest was not applied";
  EXPECT_FALSE(Connect("host=127.0.0.1 port=" + std::to_string(new_port) +
                       " dbname=app user=app password=app_pw sslmode=disable connect_timeout=2"));
}

}  // namespace
}  // namespace pgtenant::testing
