// The isolation suite (docs/isolation.md): concurrent honest and adversarial clients through
// pgtenant with a pool of 10, in transaction and in session mode; zero leaks and zero
// unexpected errors allowed.
//
//   PGTENANT_ISOLATION_CLIENTS   clients per run (default 100; the acceptance run uses 1000)
//   PGTENANT_ISOLATION_SECONDS   length of each run (default 10; the state run takes half)
//   PGTENANT_ISOLATION_TARGET    host:port of another pooler for ExternalTarget (else skipped),
//                                with PGTENANT_ISOLATION_USER / _PASSWORD / _DB (app/app_pw/app)
//                                and PGTENANT_ISOLATION_PATTERN=session|transaction: how honest
//                                clients name their tenant there (once, or in every transaction)
//                                and PGTENANT_ISOLATION_ADVERSARY_EVERY=N (every Nth client is
//                                adversarial; 0 = none; default 5)
#include <signal.h>
#include <sys/resource.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "integration/harness.h"
#include "isolation/workload.h"

namespace pgtenant::isolation {
namespace {

using pgtenant::testing::FreePort;
using pgtenant::testing::PgFixture;
using pgtenant::testing::ProxyConfig;
using pgtenant::testing::ProxyConfigOptions;
using pgtenant::testing::ProxyProcess;

constexpr int kPoolSize = 10;

int EnvInt(const char* name, int fallback) {
  const char* v = getenv(name);
  return v != nullptr && atoi(v) > 0 ? atoi(v) : fallback;
}

std::string EnvString(const char* name, const std::string& fallback) {
  const char* v = getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

// Each client is a socket here and one or two in pgtenant (which inherits the limit).
void RaiseFileLimit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

class IsolationTest : public pgtenant::testing::IntegrationTest {
 protected:
  void SetUp() override {
    RaiseFileLimit();
    clients_ = EnvInt("PGTENANT_ISOLATION_CLIENTS", 100);
    seconds_ = EnvInt("PGTENANT_ISOLATION_SECONDS", 10);
  }

  // pgtenant with both pools in `mode`, shared pool of 10, room for every client.
  void StartProxy(const std::string& mode) {
    if (pgtenant::testing::DirectMode()) GTEST_SKIP() << "the isolation suite needs pgtenant";
    ProxyConfigOptions options;
    options.shared_mode = mode;
    options.shared_size = kPoolSize;
    options.acme_size = 3;
    options.timeouts = {{"query_wait", "30s"}, {"server_connect", "5s"}, {"client_login", "60s"}};
    std::string error;
    for (int attempt = 0; attempt < 3 && !proxy_; ++attempt) {
      std::string yaml = ProxyConfig(FreePort(), PgFixture::Get(), options);
      Replace(&yaml, "listen:\n  host: 127.0.0.1\n",
              "listen:\n  host: 127.0.0.1\n  max_client_connections: " +
                  std::to_string(clients_ + 100) + "\n");
      Replace(
          &yaml,
          "database: acme\n    user: app_rls\n    password: \"app_rls_pw\"\n    mode: transaction",
          "database: acme\n    user: app_rls\n    password: \"app_rls_pw\"\n    mode: " + mode);
      if (HasFatalFailure()) return;
      proxy_ = ProxyProcess::Start(yaml, &error);
    }
    ASSERT_TRUE(proxy_) << error;
  }

  static void Replace(std::string* s, const std::string& from, const std::string& to) {
    size_t at = s->find(from);
    ASSERT_NE(at, std::string::npos) << "the standard config has no \"" << from << "\"";
    s->replace(at, from.size(), to);
  }

  WorkloadOptions Options() const {
    WorkloadOptions o;
    o.port = TargetPort();
    o.clients = clients_;
    o.duration = std::chrono::seconds(seconds_);
    return o;
  }

  WorkloadReport Run(const WorkloadOptions& o) {
    WorkloadReport r = RunWorkload(o, [this] {
      if (proxy_) proxy_->Signal(SIGKILL);  // blocked clients return once it is gone
    });
    std::cout << r.Summary();
    RecordProperty("summary", r.Summary());
    return r;
  }

  void ExpectIsolated(const WorkloadReport& r, bool adversaries = true) {
    EXPECT_FALSE(r.overran) << "clients were still blocked 60 s after the deadline";
    EXPECT_EQ(r.tenant_leaks, 0) << r.Summary();
    EXPECT_EQ(r.state_leaks, 0) << r.Summary();
    // Every error counts, not only leaks: an honest client must never pay for another client's
    // statements or for pgtenant's bookkeeping, and an adversary gets only what Postgres gives.
    EXPECT_EQ(r.honest_errors, 0) << r.Summary();
    EXPECT_EQ(r.unexpected_errors, 0) << r.Summary();
    EXPECT_EQ(r.self_mismatches, 0) << r.Summary();
    // The run did real work: every client checked something, adversaries acted.
    EXPECT_GE(r.units_checked, r.clients) << r.Summary();
    if (adversaries) {
      EXPECT_GT(r.adversarial_actions, 0) << r.Summary();
    }
    if (proxy_) {
      EXPECT_TRUE(TargetAlive()) << LogTail();
    }
  }

  std::string LogTail() const {
    std::string log = ProxyLog();
    return log.size() > 4000 ? log.substr(log.size() - 4000) : log;
  }

  int clients_ = 100;
  int seconds_ = 10;
};

TEST_F(IsolationTest, TransactionModePoolOfTen) {
  StartProxy("transaction");
  if (HasFatalFailure() || IsSkipped()) return;
  WorkloadReport r = Run(Options());
  ExpectIsolated(r);
  EXPECT_GT(r.cancels_effective, 0) << r.Summary();
}

TEST_F(IsolationTest, SessionModePoolOfTen) {
  StartProxy("session");
  if (HasFatalFailure() || IsSkipped()) return;
  WorkloadOptions o = Options();
  o.session_mode = true;
  ExpectIsolated(Run(o));
}

// Adversaries also leave session state (untracked SET, PREPARE, temp table, LISTEN, advisory
// lock, WITH HOLD cursor) and disconnect or DISCARD ALL; nobody else may see any of it.
TEST_F(IsolationTest, SessionStateStaysPrivateInTransactionMode) {
  StartProxy("transaction");
  if (HasFatalFailure() || IsSkipped()) return;
  WorkloadOptions o = Options();
  o.state_adversaries = true;
  o.duration = std::chrono::seconds(std::max(3, seconds_ / 2));
  ExpectIsolated(Run(o));
}

// Databases pgt_iso_d000..: each a copy of tenant acme's schema (tests/integration/sql/acme.sql)
// holding its own tenant's 3 rows. Made once per fixture, from a template database nobody
// else connects to (CREATE DATABASE ... TEMPLATE needs that).
void MakeTemplateTenantDatabases(int count) {
  const PgFixture& pg = PgFixture::Get();
  pgtenant::testing::PGconnPtr super(PQconnectdb(pg.ConnInfo("postgres", pg.superuser, pg.superpass).c_str()));
  ASSERT_EQ(PQstatus(super.get()), CONNECTION_OK) << PQerrorMessage(super.get());
  auto value = [&](const std::string& sql) { return pgtenant::testing::QueryValue(super.get(), sql.c_str()); };
  if (value("select count(*) from pg_database where datname = 'pgt_iso_template'") == "0") {
    ASSERT_EQ(value("create database pgt_iso_template"), "");
    std::ifstream in(std::string(PGTENANT_INTEGRATION_DIR) + "/sql/acme.sql");
    std::stringstream schema;
    schema << in.rdbuf();
    ASSERT_FALSE(schema.str().empty()) << "acme.sql not found";
    pgtenant::testing::PGconnPtr t(
        PQconnectdb(pg.ConnInfo("pgt_iso_template", pg.superuser, pg.superpass).c_str()));
    ASSERT_EQ(PQstatus(t.get()), CONNECTION_OK) << PQerrorMessage(t.get());
    pgtenant::testing::PGresultPtr r(PQexec(t.get(), schema.str().c_str()));
    ASSERT_EQ(PQresultStatus(r.get()), PGRES_COMMAND_OK) << PQresultErrorMessage(r.get());
  }
  for (int i = 0; i < count; ++i) {
    char tenant[8];
    snprintf(tenant, sizeof(tenant), "d%03d", i);
    const std::string db = std::string("pgt_iso_") + tenant;
    if (value("select count(*) from pg_database where datname = '" + db + "'") != "0") continue;
    ASSERT_EQ(value("create database " + db + " template pgt_iso_template"), "");
    pgtenant::testing::PGconnPtr c(PQconnectdb(pg.ConnInfo(db, pg.superuser, pg.superpass).c_str()));
    ASSERT_EQ(PQstatus(c.get()), CONNECTION_OK) << PQerrorMessage(c.get());
    ASSERT_EQ(pgtenant::testing::QueryValue(
                  c.get(), ("update items set tenant_id = '" + std::string(tenant) + "', body = '" + tenant +
                            " item ' || id")
                               .c_str()),
              "");
  }
}

// Fifty tenants with a database each, through pools pgtenant makes from a template, besides
// the shared tenants and acme, with a budget of 30 server connections for all pools (fewer
// than the pools could open): no leak, no honest error, the budget never blocks anyone past
// timeouts.query_wait.
TEST_F(IsolationTest, TemplatePoolsUnderABudget) {
  if (pgtenant::testing::DirectMode()) GTEST_SKIP() << "the isolation suite needs pgtenant";
  constexpr int kTemplateTenants = 50;
  MakeTemplateTenantDatabases(kTemplateTenants);
  if (HasFatalFailure()) return;
  const PgFixture& pg = PgFixture::Get();
  ProxyConfigOptions options;
  options.shared_size = kPoolSize;
  options.acme_size = 3;
  options.timeouts = {{"query_wait", "30s"}, {"server_connect", "5s"}, {"client_login", "60s"}, {"server_idle", "2s"}};
  options.extra_yaml = "limits:\n  max_server_connections: 30\npool_templates:\n  iso:\n    host: 127.0.0.1\n    port: " +
                       std::to_string(pg.port) +
                       "\n    database: \"pgt_iso_{tenant}\"\n    user: app_rls\n    password: \"app_rls_pw\"\n    size: 2\n";
  for (int i = 0; i < kTemplateTenants; ++i) {
    char line[48];
    snprintf(line, sizeof(line), "  d%03d: { template: iso }\n", i);
    options.tenants_extra += line;
  }
  std::string error;
  for (int attempt = 0; attempt < 3 && !proxy_; ++attempt) {
    std::string yaml = ProxyConfig(FreePort(), pg, options);
    Replace(&yaml, "listen:\n  host: 127.0.0.1\n",
            "listen:\n  host: 127.0.0.1\n  max_client_connections: " + std::to_string(clients_ + 100) + "\n");
    if (HasFatalFailure()) return;
    proxy_ = ProxyProcess::Start(yaml, &error);
  }
  ASSERT_TRUE(proxy_) << error;
  WorkloadOptions o = Options();
  o.template_tenants = kTemplateTenants;
  // The suite runs alone (RUN_SERIAL): every backend of role app_rls is this pgtenant's.
  std::atomic<bool> done{false};
  std::atomic<int> peak{0};
  std::thread sampler([&] {
    pgtenant::testing::PGconnPtr s(PQconnectdb(pg.ConnInfo("postgres", pg.superuser, pg.superpass).c_str()));
    for (int i = 0; i < 100000 && !done.load(); ++i) {  // bounded; ends with the run
      int n = atoi(pgtenant::testing::QueryValue(
                       s.get(), "select count(*) from pg_stat_activity where usename = 'app_rls'")
                       .c_str());
      if (n > peak.load()) peak = n;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  WorkloadReport r = Run(o);
  done = true;
  sampler.join();
  ExpectIsolated(r);
  EXPECT_LE(peak.load(), 30) << "more server connections than limits.max_server_connections";
  EXPECT_GT(peak.load(), 0);
  std::cout << "server connections at most " << peak.load() << " (budget 30)\n";
  EXPECT_NE(ProxyLog().find("made from its template"), std::string::npos) << "no template pool was used";
}

// The same probe against any pooler (or PostgreSQL itself) named by PGTENANT_ISOLATION_TARGET.
// Tenants are named with SET (other poolers know no startup source) and acme is left out.
TEST_F(IsolationTest, ExternalTarget) {
  std::string target = EnvString("PGTENANT_ISOLATION_TARGET", "");
  if (target.empty()) GTEST_SKIP() << "PGTENANT_ISOLATION_TARGET=host:port is not set";
  WorkloadOptions o = Options();
  size_t colon = target.rfind(':');
  o.host = target.substr(0, colon);
  o.port = atoi(target.c_str() + colon + 1);
  o.user = EnvString("PGTENANT_ISOLATION_USER", "app");
  o.password = EnvString("PGTENANT_ISOLATION_PASSWORD", "app_pw");
  o.dbname = EnvString("PGTENANT_ISOLATION_DB", "app");
  // 0: honest clients only.
  o.adversary_every = atoi(EnvString("PGTENANT_ISOLATION_ADVERSARY_EVERY", "5").c_str());
  o.startup_sources = false;
  o.strict_refusals = false;
  o.use_acme = false;
  o.set_in_every_transaction = EnvString("PGTENANT_ISOLATION_PATTERN", "session") == "transaction";
  ExpectIsolated(Run(o), o.adversary_every > 0);
}

}  // namespace
}  // namespace pgtenant::isolation
