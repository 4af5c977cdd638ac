// Deferred BEGIN (docs/architecture.md, "Deferred BEGIN"): with tenancy.require_tenant on and
// no tenant at login, the way applications scope a tenant to one transaction on a pooled
// connection works as on PostgreSQL: BEGIN; SET LOCAL app.tenant_id = 'x' (or
// set_config('app.tenant_id', ..., true)); ...; COMMIT, over the simple and the extended
// protocol, for a tenant of the shared database and for one with a database of its own.
//
// PGTENANT_TEST_DIRECT=1 runs the same sequences against PostgreSQL itself (the dedicated
// database cannot be reached there, so those cases are skipped), which checks what the tests
// expect.
#include <string>
#include <vector>

#include "integration/harness.h"

namespace pgtenant::testing {
namespace {

// The tenant, the rows RLS lets through and the database: variable|rows|min|max|database.
constexpr const char* kObserve =
    "select concat_ws('|', coalesce(nullif(current_setting('app.tenant_id', true), ''), '<none>'), "
    "count(*), coalesce(min(tenant_id), '-'), coalesce(max(tenant_id), '-'), current_database()) from items";

std::string Seen(const std::string& tenant) {
  return tenant + "|3|" + tenant + "|" + tenant + "|" + (tenant == "acme" ? "acme" : "app");
}

class DeferredBlockTest : public IntegrationTest {
 protected:
  void SetUp() override {
    if (DirectMode()) return;  // PostgreSQL itself
    ProxyConfigOptions options;
    options.shared_size = 2;
    options.acme_size = 1;
    std::string error;
    for (int attempt = 0; attempt < 3 && !proxy_; ++attempt) {
      std::string yaml = ProxyConfig(FreePort(), PgFixture::Get(), options);
      const std::string from = "  require_tenant: false\n";
      size_t at = yaml.find(from);
      ASSERT_NE(at, std::string::npos);
      yaml.replace(at, from.size(), "  require_tenant: true\n");
      proxy_ = ProxyProcess::Start(yaml, &error);
    }
    ASSERT_TRUE(proxy_) << error;
  }

  // A client that names no tenant at login.
  PGconnPtr Client() {
    PGconnPtr c = Connect(ClientConnInfo());
    EXPECT_TRUE(c) << LastConnectError() << ProxyLog();
    return c;
  }

  // The tenants the test uses: a shared one and, through pgtenant, the dedicated one.
  static std::vector<std::string> Tenants() {
    if (DirectMode()) return {"t007"};
    return {"t007", "acme"};
  }

  static std::string Extended(PGconn* c, const char* sql, std::vector<std::string> values = {}) {
    std::vector<const char*> params;
    for (const auto& v : values) params.push_back(v.c_str());
    PGresultPtr r(PQexecParams(c, sql, static_cast<int>(params.size()), nullptr, params.data(), nullptr, nullptr, 0));
    ExecStatusType st = PQresultStatus(r.get());
    if (st == PGRES_FATAL_ERROR) return "ERROR:" + LastSqlState(r.get());
    if (st == PGRES_TUPLES_OK && PQntuples(r.get()) > 0) return PQgetvalue(r.get(), 0, 0);
    return "";
  }
};

TEST_F(DeferredBlockTest, SetLocalInABlockScopesTheTenantToTheTransaction) {
  PGconnPtr c = Client();
  ASSERT_TRUE(c);
  for (const std::string& t : Tenants()) {
    SCOPED_TRACE(t);
    EXPECT_EQ(QueryValue(c.get(), "BEGIN"), "");
    EXPECT_EQ(PQtransactionStatus(c.get()), PQTRANS_INTRANS);
    EXPECT_EQ(QueryValue(c.get(), ("SET LOCAL app.tenant_id = '" + t + "'").c_str()), "");
    EXPECT_EQ(QueryValue(c.get(), kObserve), Seen(t)) << ProxyLog();
    EXPECT_EQ(Extended(c.get(), kObserve), Seen(t));
    EXPECT_EQ(QueryValue(c.get(), "COMMIT"), "");
    EXPECT_EQ(PQtransactionStatus(c.get()), PQTRANS_IDLE);
  }
}

TEST_F(DeferredBlockTest, SetConfigLocalAsPrismaSendsIt) {
  // Prisma: BEGIN, then SELECT set_config(..., $1, TRUE) with the tenant bound, over the
  // extended protocol; then the query; then COMMIT.
  PGconnPtr c = Client();
  ASSERT_TRUE(c);
  for (const std::string& t : Tenants()) {
    SCOPED_TRACE(t);
    EXPECT_EQ(Extended(c.get(), "BEGIN"), "");
    EXPECT_EQ(PQtransactionStatus(c.get()), PQTRANS_INTRANS);
    EXPECT_EQ(Extended(c.get(), "SELECT set_config('app.tenant_id', $1, TRUE)", {t}), t);
    EXPECT_EQ(Extended(c.get(), kObserve), Seen(t)) << ProxyLog();
    EXPECT_EQ(Extended(c.get(), "COMMIT"), "");
    EXPECT_EQ(PQtransactionStatus(c.get()), PQTRANS_IDLE);
  }
  // With an alias and a cast (read by the real parser): the client gets its column name.
  for (const std::string& t : Tenants()) {
    SCOPED_TRACE(t);
    EXPECT_EQ(Extended(c.get(), "BEGIN"), "");
    const char* values[1] = {t.c_str()};
    PGresultPtr r(PQexecParams(c.get(), "SELECT set_config('app.tenant_id', CAST($1 AS text), true) AS tenant", 1,
                               nullptr, values, nullptr, nullptr, 0));
    ASSERT_EQ(PQresultStatus(r.get()), PGRES_TUPLES_OK) << ErrorMessage(r.get());
    EXPECT_STREQ(PQfname(r.get(), 0), "tenant");
    EXPECT_EQ(std::string(PQgetvalue(r.get(), 0, 0)), t);
    EXPECT_EQ(Extended(c.get(), kObserve), Seen(t)) << ProxyLog();
    EXPECT_EQ(Extended(c.get(), "COMMIT"), "");
  }
  // The same with a literal value in a simple Query.
  for (const std::string& t : Tenants()) {
    EXPECT_EQ(QueryValue(c.get(), "BEGIN"), "");
    EXPECT_EQ(QueryValue(c.get(), ("select set_config('app.tenant_id', '" + t + "', true)").c_str()), t);
    EXPECT_EQ(QueryValue(c.get(), kObserve), Seen(t));
    EXPECT_EQ(QueryValue(c.get(), "COMMIT"), "");
  }
}

TEST_F(DeferredBlockTest, TheTenantLastsOnlyAsLongAsTheTransaction) {
  PGconnPtr c = Client();
  ASSERT_TRUE(c);
  EXPECT_EQ(QueryValue(c.get(), "BEGIN"), "");
  EXPECT_EQ(QueryValue(c.get(), "SET LOCAL app.tenant_id = 't008'"), "");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t008"));
  EXPECT_EQ(QueryValue(c.get(), "COMMIT"), "");
  if (DirectMode()) {
    EXPECT_EQ(QueryValue(c.get(), kObserve), "<none>|0|-|-|app");
  } else {
    // No tenant outside the block: require_tenant refuses what needs a server.
    EXPECT_EQ(QueryValue(c.get(), kObserve), "ERROR:28000");
  }
  // Two transactions of two tenants in a row, each its own.
  for (const char* t : {"t001", "t002", "t001"}) {
    EXPECT_EQ(QueryValue(c.get(), "BEGIN"), "");
    EXPECT_EQ(QueryValue(c.get(), ("SET LOCAL app.tenant_id = '" + std::string(t) + "'").c_str()), "");
    EXPECT_EQ(QueryValue(c.get(), kObserve), Seen(t));
    EXPECT_EQ(QueryValue(c.get(), "ROLLBACK"), "");
  }
}

TEST_F(DeferredBlockTest, EmptyBlocksAndDriverSetUpNeedNoTenant) {
  PGconnPtr c = Client();
  ASSERT_TRUE(c);
  for (const char* end : {"COMMIT", "ROLLBACK", "END", "ABORT"}) {
    EXPECT_EQ(QueryValue(c.get(), "BEGIN"), "") << end;
    PGresultPtr r = Exec(c.get(), end);
    EXPECT_EQ(PQresultStatus(r.get()), PGRES_COMMAND_OK) << end << ": " << ErrorMessage(r.get());
    EXPECT_EQ(PQtransactionStatus(c.get()), PQTRANS_IDLE) << end;
  }
  EXPECT_EQ(Extended(c.get(), "BEGIN"), "");
  EXPECT_EQ(Extended(c.get(), "COMMIT"), "");
  EXPECT_EQ(PQtransactionStatus(c.get()), PQTRANS_IDLE);
  // START TRANSACTION with options; SET LOCAL of another setting is kept and sent with it.
  EXPECT_EQ(QueryValue(c.get(), "START TRANSACTION ISOLATION LEVEL REPEATABLE READ"), "");
  EXPECT_EQ(QueryValue(c.get(), "SET LOCAL statement_timeout = '7s'"), "");
  EXPECT_EQ(QueryValue(c.get(), "SET LOCAL app.tenant_id = 't009'"), "");
  EXPECT_EQ(QueryValue(c.get(), "show transaction_isolation"), "repeatable read") << ProxyLog();
  EXPECT_EQ(QueryValue(c.get(), "show statement_timeout"), "7s");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t009"));
  EXPECT_EQ(QueryValue(c.get(), "COMMIT"), "");
  EXPECT_EQ(QueryValue(c.get(), "BEGIN"), "");
  EXPECT_EQ(QueryValue(c.get(), "SET LOCAL app.tenant_id = 't009'"), "");
  EXPECT_EQ(QueryValue(c.get(), "show statement_timeout"), "0") << "SET LOCAL ended with its block";
  EXPECT_EQ(QueryValue(c.get(), "COMMIT"), "");
}

TEST_F(DeferredBlockTest, AnErrorInTheBlockAbortsItAsOnPostgres) {
  PGconnPtr c = Client();
  ASSERT_TRUE(c);
  EXPECT_EQ(QueryValue(c.get(), "BEGIN"), "");
  if (DirectMode()) {
    EXPECT_EQ(QueryValue(c.get(), "select 1/0"), "ERROR:22012");
  } else {
    // No tenant yet: the statement needs a server, and require_tenant refuses it.
    EXPECT_EQ(QueryValue(c.get(), kObserve), "ERROR:28000");
  }
  EXPECT_EQ(PQtransactionStatus(c.get()), PQTRANS_INERROR);
  EXPECT_EQ(QueryValue(c.get(), "SET LOCAL app.tenant_id = 't001'"), "ERROR:25P02");
  EXPECT_EQ(Extended(c.get(), "select 2"), "ERROR:25P02");
  PGresultPtr r = Exec(c.get(), "COMMIT");
  EXPECT_STREQ(PQcmdStatus(r.get()), "ROLLBACK");
  EXPECT_EQ(PQtransactionStatus(c.get()), PQTRANS_IDLE);
  // A tenant the user may not act as, or that does not match tenancy.id_pattern.
  EXPECT_EQ(QueryValue(c.get(), "BEGIN"), "");
  if (!DirectMode()) {
    EXPECT_EQ(QueryValue(c.get(), "SET LOCAL app.tenant_id = 'no such tenant!'"), "ERROR:22023");
    EXPECT_EQ(PQtransactionStatus(c.get()), PQTRANS_INERROR);
  }
  EXPECT_EQ(QueryValue(c.get(), "ROLLBACK"), "");
  EXPECT_EQ(PQtransactionStatus(c.get()), PQTRANS_IDLE);
}

// psycopg2 and SQLAlchemy with autocommit off: the driver's BEGIN comes first, then the
// application's session-level SET of the tenant. On PostgreSQL it lasts beyond the block once
// the block commits, and not if it rolls back.
TEST_F(DeferredBlockTest, SessionSetInsideTheDriversBlockCountsWhenItCommits) {
  PGconnPtr c = Client();
  ASSERT_TRUE(c);
  for (const std::string& t : Tenants()) {
    SCOPED_TRACE(t);
    EXPECT_EQ(QueryValue(c.get(), "BEGIN"), "");
    EXPECT_EQ(QueryValue(c.get(), ("SET app.tenant_id = '" + t + "'").c_str()), "");
    EXPECT_EQ(QueryValue(c.get(), kObserve), Seen(t)) << ProxyLog();
    EXPECT_EQ(QueryValue(c.get(), "COMMIT"), "");
    EXPECT_EQ(QueryValue(c.get(), kObserve), Seen(t)) << "the session's tenant now";
  }
  // Rolled back: the session keeps the tenant it had.
  const std::string kept = Tenants().back();
  EXPECT_EQ(QueryValue(c.get(), "BEGIN"), "");
  EXPECT_EQ(QueryValue(c.get(), "SET app.tenant_id = 't003'"), "");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t003"));
  EXPECT_EQ(QueryValue(c.get(), "ROLLBACK"), "");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen(kept));
  // Committed without ever needing a server.
  EXPECT_EQ(QueryValue(c.get(), "BEGIN"), "");
  EXPECT_EQ(QueryValue(c.get(), "SET app.tenant_id = 't004'"), "");
  EXPECT_EQ(QueryValue(c.get(), "COMMIT"), "");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t004"));
  // Outside a block, with an alias (psycopg 3 and asyncpg applications).
  EXPECT_EQ(Extended(c.get(), "select set_config('app.tenant_id', $1, false) as tenant", {"t006"}), "t006");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t006"));
  // Over the extended protocol, with the value bound.
  EXPECT_EQ(Extended(c.get(), "BEGIN"), "");
  EXPECT_EQ(Extended(c.get(), "select set_config('app.tenant_id', $1, false)", {"t005"}), "t005");
  EXPECT_EQ(Extended(c.get(), kObserve), Seen("t005")) << ProxyLog();
  EXPECT_EQ(Extended(c.get(), "COMMIT"), "");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t005"));
}

// psycopg2 sends a block and its statements as one Query when an application does; the tenant
// named before anything needs a server chooses the pool.
TEST_F(DeferredBlockTest, TenantNamedInsideOneQuery) {
  PGconnPtr c = Client();
  ASSERT_TRUE(c);
  for (const std::string& t : Tenants()) {
    SCOPED_TRACE(t);
    std::string block = "BEGIN; SET LOCAL app.tenant_id = '" + t + "'; " + kObserve;
    EXPECT_EQ(QueryValue(c.get(), block.c_str()), Seen(t)) << ProxyLog();
    EXPECT_EQ(PQtransactionStatus(c.get()), PQTRANS_INTRANS);
    EXPECT_EQ(QueryValue(c.get(), kObserve), Seen(t));
    EXPECT_EQ(QueryValue(c.get(), "COMMIT"), "");
    std::string session = "SET app.tenant_id = '" + t + "'; " + kObserve;
    EXPECT_EQ(QueryValue(c.get(), session.c_str()), Seen(t)) << ProxyLog();
    EXPECT_EQ(QueryValue(c.get(), kObserve), Seen(t)) << "the session's tenant now";
  }
  // A failing statement behind it rolls the change back with the implicit transaction.
  const std::string kept = Tenants().back();
  EXPECT_EQ(QueryValue(c.get(), "SET app.tenant_id = 't012'; select 1/0"), "ERROR:22012");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen(kept));
}

// A driver's set-up before the application names its tenant (PgJDBC sends SET
// extra_float_digits and application_name at connect, over the extended protocol; others SET TIME
// ZONE or SHOW): it reads no table, so require_tenant lets it run, on a server without a tenant,
// and the settings follow the client to its tenant's servers.
TEST_F(DeferredBlockTest, DriverSetUpBeforeTheTenantIsNamed) {
  PGconnPtr c = Client();
  ASSERT_TRUE(c);
  EXPECT_EQ(QueryValue(c.get(), "SET extra_float_digits = 3"), "") << ProxyLog();
  EXPECT_EQ(QueryValue(c.get(), "SET application_name = 'setup-test'"), "");
  EXPECT_EQ(QueryValue(c.get(), "SET TIME ZONE 'UTC'"), "");
  EXPECT_EQ(QueryValue(c.get(), "SHOW extra_float_digits"), "3");
  EXPECT_EQ(QueryValue(c.get(), "show timezone"), "UTC");
  EXPECT_EQ(Extended(c.get(), "SET extra_float_digits = 2"), "");
  EXPECT_EQ(Extended(c.get(), "SHOW extra_float_digits"), "2");
  EXPECT_STREQ(PQparameterStatus(c.get(), "application_name"), "setup-test");
  if (!DirectMode()) {
    // Anything that reads a table still needs a tenant.
    EXPECT_EQ(QueryValue(c.get(), "SET extra_float_digits = 3; select count(*) from items"), "ERROR:28000");
    EXPECT_EQ(QueryValue(c.get(), kObserve), "ERROR:28000");
    EXPECT_EQ(Extended(c.get(), kObserve), "ERROR:28000");
    EXPECT_EQ(QueryValue(c.get(), "SET ROLE app_rls"), "ERROR:28000") << "a role is not set-up";
  }
  // The settings follow the client to its tenant's server.
  EXPECT_EQ(QueryValue(c.get(), "SET app.tenant_id = 't007'"), "");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t007"));
  EXPECT_EQ(QueryValue(c.get(), "SHOW extra_float_digits"), "2");
  EXPECT_EQ(QueryValue(c.get(), "show timezone"), "UTC");
  EXPECT_EQ(QueryValue(c.get(), "show application_name"), "setup-test");
}

// PostgREST's transaction: BEGIN with options, then one SELECT of several set_config(..., true)
// targets with bound values (search path, JWT claims, the tenant), then the query. The tenant's
// call chooses the pool; the other settings reach the server with the block and end with it.
TEST_F(DeferredBlockTest, PostgrestTransactionSettings) {
  PGconnPtr c = Client();
  ASSERT_TRUE(c);
  const std::string claims = "{\"role\":\"web\"}";
  for (const std::string& t : Tenants()) {
    SCOPED_TRACE(t);
    EXPECT_EQ(Extended(c.get(), "BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY"), "");
    const char* values[3] = {"public", claims.c_str(), t.c_str()};
    PGresultPtr r(PQexecParams(c.get(),
                               "select set_config('search_path', $1, true), set_config('request.jwt.claims', $2, true), "
                               "set_config('app.tenant_id', $3, true)",
                               3, nullptr, values, nullptr, nullptr, 0));
    ASSERT_EQ(PQresultStatus(r.get()), PGRES_TUPLES_OK) << ErrorMessage(r.get()) << ProxyLog();
    ASSERT_EQ(PQnfields(r.get()), 3);
    EXPECT_EQ(std::string(PQgetvalue(r.get(), 0, 1)), claims);
    EXPECT_EQ(std::string(PQgetvalue(r.get(), 0, 2)), t);
    EXPECT_EQ(Extended(c.get(), kObserve), Seen(t)) << ProxyLog();
    EXPECT_EQ(QueryValue(c.get(), "show search_path"), "public");
    EXPECT_EQ(QueryValue(c.get(), "select current_setting('request.jwt.claims')"), claims);
    EXPECT_EQ(QueryValue(c.get(), "show transaction_read_only"), "on");
    EXPECT_EQ(Extended(c.get(), "COMMIT"), "");
  }
  // The settings ended with their block.
  EXPECT_EQ(QueryValue(c.get(), "BEGIN"), "");
  EXPECT_EQ(QueryValue(c.get(), "SET LOCAL app.tenant_id = 't002'"), "");
  EXPECT_EQ(QueryValue(c.get(), "select coalesce(current_setting('request.jwt.claims', true), '')"), "");
  EXPECT_EQ(QueryValue(c.get(), "show search_path"), "\"$user\", public");
  EXPECT_EQ(QueryValue(c.get(), "COMMIT"), "");
}

// psycopg 3 users write `SELECT now() AS at, set_config('app.tenant_id', %s, true) AS tenant,
// 1 AS one`: only the server computes now(). The bound tenant chooses the pool; the server runs
// the statement and sets the tenant itself, so a target ahead of the call reads the variable
// as PostgreSQL shows it.
TEST_F(DeferredBlockTest, SetConfigAmongTargetsOnlyTheServerComputes) {
  PGconnPtr c = Client();
  ASSERT_TRUE(c);
  for (const std::string& t : Tenants()) {
    SCOPED_TRACE(t);
    EXPECT_EQ(Extended(c.get(), "BEGIN"), "");
    const char* values[1] = {t.c_str()};
    PGresultPtr r(PQexecParams(c.get(), "SELECT now() IS NOT NULL AS at, set_config('app.tenant_id', $1, true) AS tenant, 1 AS one",
                               1, nullptr, values, nullptr, nullptr, 0));
    ASSERT_EQ(PQresultStatus(r.get()), PGRES_TUPLES_OK) << ErrorMessage(r.get()) << ProxyLog();
    ASSERT_EQ(PQnfields(r.get()), 3);
    EXPECT_STREQ(PQfname(r.get(), 1), "tenant");
    EXPECT_EQ(std::string(PQgetvalue(r.get(), 0, 0)), "t");
    EXPECT_EQ(std::string(PQgetvalue(r.get(), 0, 1)), t);
    EXPECT_EQ(std::string(PQgetvalue(r.get(), 0, 2)), "1");
    EXPECT_EQ(Extended(c.get(), kObserve), Seen(t)) << ProxyLog();
    EXPECT_EQ(Extended(c.get(), "COMMIT"), "");
    // The tenant lasted as long as the block.
    EXPECT_EQ(QueryValue(c.get(), kObserve), DirectMode() ? "<none>|0|-|-|app" : "ERROR:28000") << ProxyLog();
  }
  // A target ahead of the call reads the variable as it was; a set-returning target of no rows
  // still runs the call (PostgreSQL's ProjectSet evaluates every target).
  const char* values[1] = {"t007"};
  EXPECT_EQ(Extended(c.get(), "BEGIN"), "");
  PGresultPtr r(PQexecParams(c.get(),
                             "SELECT coalesce(nullif(current_setting('app.tenant_id', true), ''), '<none>'), "
                             "set_config('app.tenant_id', $1, true), generate_series(1, 0)",
                             1, nullptr, values, nullptr, nullptr, 0));
  ASSERT_EQ(PQresultStatus(r.get()), PGRES_TUPLES_OK) << ErrorMessage(r.get()) << ProxyLog();
  EXPECT_EQ(PQntuples(r.get()), 0);
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t007"));
  EXPECT_EQ(Extended(c.get(), "COMMIT"), "");
  EXPECT_EQ(Extended(c.get(), "BEGIN"), "");
  r.reset(PQexecParams(c.get(),
                       "SELECT coalesce(nullif(current_setting('app.tenant_id', true), ''), '<none>'), "
                       "set_config('app.tenant_id', $1, true)",
                       1, nullptr, values, nullptr, nullptr, 0));
  ASSERT_EQ(PQresultStatus(r.get()), PGRES_TUPLES_OK) << ErrorMessage(r.get()) << ProxyLog();
  EXPECT_EQ(std::string(PQgetvalue(r.get(), 0, 0)), "<none>") << "the variable before the call";
  EXPECT_EQ(std::string(PQgetvalue(r.get(), 0, 1)), "t007");
  EXPECT_EQ(Extended(c.get(), "COMMIT"), "");
  // The same in a simple Query, the value a literal (psycopg2 interpolates it).
  for (const std::string& t : Tenants()) {
    SCOPED_TRACE(t);
    EXPECT_EQ(QueryValue(c.get(), "BEGIN"), "");
    const std::string naming = "SELECT set_config('app.tenant_id', '" + t + "', true) AS tenant, now() IS NOT NULL AS at";
    EXPECT_EQ(QueryValue(c.get(), naming.c_str()), t) << ProxyLog();
    EXPECT_EQ(QueryValue(c.get(), kObserve), Seen(t));
    EXPECT_EQ(QueryValue(c.get(), "COMMIT"), "");
  }
  if (DirectMode()) return;
  // A user restricted to its tenants may name one of them this way, and only those.
  PGconnPtr restricted = Connect(ClientConnInfo("user=acme_service password=acme_pw"));
  ASSERT_TRUE(restricted) << LastConnectError() << ProxyLog();
  EXPECT_EQ(QueryValue(restricted.get(), "BEGIN"), "");
  EXPECT_EQ(QueryValue(restricted.get(), "SELECT set_config('app.tenant_id', 'acme', true), now() IS NOT NULL"), "acme")
      << ProxyLog();
  EXPECT_EQ(QueryValue(restricted.get(), kObserve), Seen("acme"));
  EXPECT_EQ(QueryValue(restricted.get(), "COMMIT"), "");
  EXPECT_EQ(QueryValue(restricted.get(), "BEGIN"), "");
  EXPECT_EQ(QueryValue(restricted.get(), "SELECT set_config('app.tenant_id', 't007', true), now() IS NOT NULL"),
            "ERROR:42501");
  EXPECT_EQ(QueryValue(restricted.get(), "select 1"), "ERROR:25P02") << "the block is aborted";
  EXPECT_EQ(QueryValue(restricted.get(), "ROLLBACK"), "");
}

}  // namespace
}  // namespace pgtenant::testing
