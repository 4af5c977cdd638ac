// Naming the tenant, through the machines (proxy/client_tenancy.cc, client_deferred.cc): by
// startup option, user name, SET, set_config (simple and extended protocol), RESET, and inside
// a block (SET LOCAL / set_config(..., true) after a deferred BEGIN). What pgtenant answers
// itself never reaches the backend; what it lets through runs with exactly the tenant the
// client named; a refusal aborts a block as a PostgreSQL error would.
#include <gtest/gtest.h>

#include <algorithm>

#include "machine_test.h"

namespace pgtenant::testing {
namespace {

class TenancyMachineTest : public MachineTest {
 public:
  static std::string ProbeQuery() { return std::string("Q:") + kTenantProbe; }
  static bool Contains(const std::vector<std::string>& v, const std::string& prefix) {
    return std::any_of(v.begin(), v.end(), [&](const std::string& m) { return m.rfind(prefix, 0) == 0; });
  }
};

TEST_F(TenancyMachineTest, SessionLevelChangesAreAnsweredWithoutAServer) {
  StartPooler();
  PGconnPtr c = Client("");
  ASSERT_TRUE(c);
  EXPECT_EQ(Tenant(c.get()), "<none>");
  struct Change {
    std::string sql;
    std::string tenant;
  };
  const std::vector<Change> changes = {
      {"SET app.tenant_id = 't5'", "t5"},
      {"SET SESSION app.tenant_id TO 't6'", "t6"},
      {"set app.tenant_id='t7'", "t7"},
      {"select set_config('app.tenant_id', 't8', false)", "t8"},
      {"RESET app.tenant_id", "<none>"},
      {"SET app.tenant_id = 't9'", "t9"},
      {"SET app.tenant_id TO DEFAULT", "<none>"},
  };
  for (const Change& k : changes) {
    SCOPED_TRACE(k.sql);
    size_t mark = Mark();
    PqResults r = Query(c.get(), k.sql);
    EXPECT_TRUE(r.ok()) << r.Value();
    EXPECT_EQ(SentSince(mark), std::vector<std::string>{}) << "answered by pgtenant";
    mark = Mark();
    EXPECT_EQ(Tenant(c.get()), k.tenant);
    std::vector<std::string> sent = SentSince(mark);
    ASSERT_GE(sent.size(), 3u);
    // (The first use of each of pgtenant's statements on the connection is preceded by its
    // Close and Parse.)
    EXPECT_EQ(std::vector<std::string>(sent.end() - 3, sent.end()),
              Seq({BindTenant(k.tenant == "<none>" ? "" : k.tenant), {ProbeQuery()}}))
        << "the prelude sets what the client named";
  }
  EXPECT_EQ(Value(c.get(), "select set_config('app.tenant_id', 't4', false)"), "t4") << "its row, as PostgreSQL";
}

TEST_F(TenancyMachineTest, SetConfigWithABoundValue) {
  StartPooler();
  PGconnPtr c = Client("t1");
  ASSERT_TRUE(c);
  size_t mark = Mark();
  EXPECT_EQ(QueryParams(c.get(), "select set_config('app.tenant_id', $1, false)", {std::string("t5")}).Value(), "t5");
  EXPECT_EQ(SentSince(mark), std::vector<std::string>{});
  EXPECT_EQ(Tenant(c.get()), "t5");
  // A named statement executed again and again with other values.
  ASSERT_TRUE(Prepare(c.get(), "name_it", "select set_config('app.tenant_id', $1, false)", 1).ok());
  for (const char* t : {"t6", "t7"}) {
    EXPECT_EQ(ExecPrepared(c.get(), "name_it", {std::string(t)}).Value(), t);
    EXPECT_EQ(Tenant(c.get()), t);
    EXPECT_EQ(QueryParams(c.get(), kTenantProbe).Value(), t);
  }
}

TEST_F(TenancyMachineTest, TenantFromTheUserName) {
  StartPooler();
  PGconnPtr c = Client("", "user=app.t8");
  ASSERT_TRUE(c);
  EXPECT_EQ(Tenant(c.get()), "t8");
  EXPECT_EQ(fake_.Received(0).at(0), "startup user=app_rls database=app") << "the pool's user, not the client's";
}

TEST_F(TenancyMachineTest, DedicatedTenantGoesToItsOwnPool) {
  StartPooler();
  PGconnPtr shared = Client("t1");
  PGconnPtr acme = Client("acme");
  ASSERT_TRUE(shared && acme);
  EXPECT_EQ(Tenant(shared.get()), "t1");
  EXPECT_EQ(Tenant(acme.get()), "acme");
  ASSERT_EQ(fake_.connections(), 2);
  EXPECT_EQ(fake_.Received(1).at(0), "startup user=app_rls database=acme");
  // Switching to acme with SET moves the next transaction to acme's pool.
  EXPECT_EQ(Query(shared.get(), "SET app.tenant_id = 'acme'").Tag(), "SET");
  size_t mark = Mark(1);
  EXPECT_EQ(Tenant(shared.get()), "acme");
  EXPECT_EQ(SentSince(mark, 1), Seq({BindTenant("acme"), {ProbeQuery()}}));
}

TEST_F(TenancyMachineTest, RefusedTenants) {
  StartPooler();
  PGconnPtr c = Client("t1");
  ASSERT_TRUE(c);
  size_t mark = Mark();
  EXPECT_EQ(Value(c.get(), "SET app.tenant_id = 'Not-A-Valid-Id'"), "ERROR:22023");
  EXPECT_EQ(SentSince(mark), std::vector<std::string>{});
  EXPECT_EQ(Tenant(c.get()), "t1");
  // A user restricted to acme may not act as t1.
  std::string error;
  PGconnPtr restricted = harness_.Connect("user=acme_service options='-c app.tenant_id=acme'", &error);
  ASSERT_TRUE(restricted) << error;
  EXPECT_EQ(Value(restricted.get(), "SET app.tenant_id = 't1'"), "ERROR:42501");
  EXPECT_EQ(Tenant(restricted.get()), "acme");
  EXPECT_EQ(Value(restricted.get(), "select current_setting('app.tenant_id')"), "acme") << "reading is no change";
  size_t before = Mark(1);
  EXPECT_EQ(Value(restricted.get(), "select set_config('app.tenant_id', 't' || '1', false)"), "ERROR:42501")
      << "a change pgtenant cannot read is refused for users restricted to a tenant list";
  EXPECT_EQ(SentSince(before, 1), std::vector<std::string>{});
  EXPECT_EQ(Tenant(restricted.get()), "acme");
}

// Deferred BEGIN: the block's SET LOCAL names the transaction's tenant before anything needs a
// server; the prelude carries the client's BEGIN and SET LOCAL.
TEST_F(TenancyMachineTest, SetLocalAtBlockStart) {
  StartPooler();
  PGconnPtr c = Client("t1");
  ASSERT_TRUE(c);
  ASSERT_EQ(Tenant(c.get()), "t1");
  size_t mark = Mark();
  EXPECT_EQ(Query(c.get(), "BEGIN").Tag(), "BEGIN");
  EXPECT_EQ(PQtransactionStatus(c.get()), PQTRANS_INTRANS);
  EXPECT_EQ(Query(c.get(), "SET LOCAL app.tenant_id = 't3'").Tag(), "SET");
  EXPECT_EQ(SentSince(mark), std::vector<std::string>{}) << "both answered by pgtenant";
  EXPECT_EQ(Tenant(c.get()), "t3");
  std::vector<std::string> sent = SentSince(mark);
  ASSERT_FALSE(sent.empty());
  // The client's BEGIN in a Query of its own (so that BEGIN's options come first), then the
  // tenant the block named, inside the block.
  EXPECT_EQ(sent, Seq({{"Q:BEGIN;"}, BindTenant("t3"), {ProbeQuery()}}));
  EXPECT_EQ(fake_.TransactionStatus(0), 'T');
  EXPECT_EQ(Query(c.get(), "COMMIT").Tag(), "COMMIT");
  EXPECT_EQ(Tenant(c.get()), "t1") << "SET LOCAL ended with the block";
  EXPECT_EQ(fake_.TransactionStatus(0), 'I');
}

TEST_F(TenancyMachineTest, SetConfigIsLocalAtBlockStartOverTheExtendedProtocol) {
  StartPooler();
  PGconnPtr c = Client("t1");
  ASSERT_TRUE(c);
  EXPECT_EQ(QueryParams(c.get(), "BEGIN").Tag(), "BEGIN");
  EXPECT_EQ(QueryParams(c.get(), "select set_config('app.tenant_id', $1, true)", {std::string("t4")}).Value(), "t4");
  EXPECT_EQ(QueryParams(c.get(), kTenantProbe).Value(), "t4");
  EXPECT_EQ(QueryParams(c.get(), "COMMIT").Tag(), "COMMIT");
  EXPECT_EQ(Tenant(c.get()), "t1");
}

// A deferred block for a dedicated tenant runs on that tenant's pool.
TEST_F(TenancyMachineTest, SetLocalToADedicatedTenant) {
  StartPooler();
  PGconnPtr c = Client("");
  ASSERT_TRUE(c);
  EXPECT_EQ(Query(c.get(), "BEGIN").Tag(), "BEGIN");
  EXPECT_EQ(Query(c.get(), "SET LOCAL app.tenant_id = 'acme'").Tag(), "SET");
  EXPECT_EQ(Tenant(c.get()), "acme");
  EXPECT_EQ(Query(c.get(), "COMMIT").Tag(), "COMMIT");
  // Connection 0 is the login pool's (shared), opened for the client's login answer.
  ASSERT_EQ(fake_.connections(), 2);
  EXPECT_EQ(fake_.Received(1),
            Seq({{"startup user=app_rls database=acme", "Q:BEGIN;", CloseSetTenant(), ParseSetTenant()},
                 BindTenant("acme"),
                 {ProbeQuery(), "Q:COMMIT"}}));
  EXPECT_EQ(Tenant(c.get()), "<none>");
}

// A block that never needs a server is answered entirely by pgtenant.
TEST_F(TenancyMachineTest, ABlockThatNeedsNoServer) {
  StartPooler();
  PGconnPtr c = Client("t1");
  ASSERT_TRUE(c);
  EXPECT_EQ(Query(c.get(), "BEGIN").Tag(), "BEGIN");
  EXPECT_EQ(Query(c.get(), "SET LOCAL app.tenant_id = 't2'").Tag(), "SET");
  EXPECT_EQ(Query(c.get(), "ROLLBACK").Tag(), "ROLLBACK");
  // Only the login's connection (for the server's parameters), and nothing on it.
  EXPECT_EQ(fake_.connections(), 1);
  EXPECT_EQ(fake_.Received(0), std::vector<std::string>{"startup user=app_rls database=app"}) << "no server was needed";
  EXPECT_EQ(Tenant(c.get()), "t1");
}

// A session-level SET inside a deferred block becomes the session's tenant when the block
// commits, not when it rolls back, as on PostgreSQL.
TEST_F(TenancyMachineTest, SessionSetInADeferredBlockCountsWhenItCommits) {
  StartPooler();
  PGconnPtr c = Client("t1");
  ASSERT_TRUE(c);
  for (const char* end : {"ROLLBACK", "COMMIT"}) {
    SCOPED_TRACE(end);
    EXPECT_EQ(Query(c.get(), "BEGIN").Tag(), "BEGIN");
    EXPECT_EQ(Query(c.get(), "SET app.tenant_id = 't6'").Tag(), "SET");
    EXPECT_EQ(Tenant(c.get()), "t6");
    EXPECT_EQ(Query(c.get(), end).Tag(), end);
    EXPECT_EQ(Tenant(c.get()), std::string(end) == "COMMIT" ? "t6" : "t1");
  }
}

// Once a statement of the block ran on a server, a change of the session's tenant is refused
// with 25001 by the server itself (pgtenant's DO block), which aborts the block.
TEST_F(TenancyMachineTest, TenantChangeInsideARunningBlockIsRefused) {
  StartPooler();
  PGconnPtr c = Client("t1");
  ASSERT_TRUE(c);
  EXPECT_EQ(Query(c.get(), "BEGIN").Tag(), "BEGIN");
  EXPECT_EQ(Tenant(c.get()), "t1");
  size_t mark = Mark();
  EXPECT_EQ(Value(c.get(), "SET app.tenant_id = 't2'"), "ERROR:25001");
  std::vector<std::string> sent = SentSince(mark);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].rfind("Q:DO $pgtenant$BEGIN RAISE EXCEPTION USING ERRCODE = '25001'", 0), 0u) << sent[0];
  EXPECT_EQ(PQtransactionStatus(c.get()), PQTRANS_INERROR);
  EXPECT_EQ(Value(c.get(), "select 1"), "ERROR:25P02");
  EXPECT_EQ(Query(c.get(), "COMMIT").Tag(), "ROLLBACK");
  EXPECT_EQ(Tenant(c.get()), "t1");
  // A change to the tenant the session already has is passed through.
  EXPECT_EQ(Query(c.get(), "BEGIN").Tag(), "BEGIN");
  EXPECT_EQ(Tenant(c.get()), "t1");
  EXPECT_EQ(Query(c.get(), "SET app.tenant_id = 't1'").Tag(), "SET");
  EXPECT_EQ(Query(c.get(), "COMMIT").Tag(), "COMMIT");
}

// SET LOCAL to another tenant of the same pool inside a running block is checked and passed
// through; to a tenant of another pool it is refused.
TEST_F(TenancyMachineTest, SetLocalInsideARunningBlock) {
  StartPooler();
  PGconnPtr c = Client("t1");
  ASSERT_TRUE(c);
  EXPECT_EQ(Query(c.get(), "BEGIN").Tag(), "BEGIN");
  EXPECT_EQ(Tenant(c.get()), "t1");
  EXPECT_EQ(Query(c.get(), "SET LOCAL app.tenant_id = 't2'").Tag(), "SET");
  EXPECT_EQ(Tenant(c.get()), "t2");
  EXPECT_EQ(Value(c.get(), "SET LOCAL app.tenant_id = 'acme'"), "ERROR:25001");
  EXPECT_EQ(Query(c.get(), "ROLLBACK").Tag(), "ROLLBACK");
  EXPECT_EQ(Tenant(c.get()), "t1");
}

// SQL the classifier cannot read (the variable's name built at run time) passes through for a
// user allowed any tenant; the connection's variable is then unknown, and the next client's
// prelude sets its tenant whatever the record says.
TEST_F(TenancyMachineTest, AHiddenChangeMakesTheVariableUnknown) {
  StartPooler();
  PGconnPtr a = Client("t1");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  ASSERT_EQ(Tenant(b.get()), "t2");
  ASSERT_EQ(Tenant(a.get()), "t1");
  EXPECT_EQ(Value(a.get(), "select set_config('app.' || 'tenant_id', 't2', false)"), "t2");
  size_t mark = Mark();
  EXPECT_EQ(Tenant(b.get()), "t2");
  EXPECT_EQ(SentSince(mark), Seq({BindTenant("t2"), {ProbeQuery()}}));
  mark = Mark();
  EXPECT_EQ(Tenant(a.get()), "t1") << "B used the connection since: A's tenant is set again";
  EXPECT_EQ(SentSince(mark), Seq({BindTenant("t1"), {ProbeQuery()}}));
}

// The same hidden change, read again by the same client with nobody in between: the record
// is not trusted (the variable is unknown), so its tenant is set again.
TEST_F(TenancyMachineTest, AHiddenChangeIsNotTrustedForTheSameClient) {
  StartPooler();
  PGconnPtr a = Client("t1");
  ASSERT_TRUE(a);
  ASSERT_EQ(Tenant(a.get()), "t1");
  size_t mark = Mark();
  EXPECT_EQ(Tenant(a.get()), "t1");
  EXPECT_EQ(SentSince(mark), std::vector<std::string>{ProbeQuery()}) << "trusted: nothing to set";
  EXPECT_EQ(Value(a.get(), "select set_config('app.' || 'tenant_id', 't2', false)"), "t2");
  mark = Mark();
  Tenant(a.get());
  std::vector<std::string> sent = SentSince(mark);
  EXPECT_TRUE(Contains(sent, "B::" + SetName())) << "the variable is unknown";
}

// require_tenant: a statement that needs a server while no tenant is named gets 28000; a
// driver's set-up SETs still run.
TEST_F(TenancyMachineTest, RequireTenant) {
  HarnessOptions options;
  options.require_tenant = true;
  StartPooler(options);
  PGconnPtr c = Client("");
  ASSERT_TRUE(c);
  EXPECT_EQ(Query(c.get(), "SET extra_float_digits = 3").Tag(), "SET");
  EXPECT_EQ(Value(c.get(), "select 1"), "ERROR:28000");
  EXPECT_EQ(Query(c.get(), "SET app.tenant_id = 't5'").Tag(), "SET");
  EXPECT_EQ(Tenant(c.get()), "t5");
  EXPECT_EQ(Show(c.get(), "extra_float_digits"), "3");
}

// A tenant given as a startup parameter of its own (tenancy source "parameter").
TEST_F(TenancyMachineTest, TenantAsAStartupParameter) {
  StartPooler();
  PGconnPtr c = ClientWithOptions("--app.tenant_id=t7");
  ASSERT_TRUE(c);
  EXPECT_EQ(Tenant(c.get()), "t7");
}

// Session mode: a client that names a tenant of another pool goes to that pool for its next
// statement; its tenant of the old pool does not follow it there.
TEST_F(TenancyMachineTest, SessionModeClientMovesToADedicatedTenantsPool) {
  HarnessOptions options;
  options.shared_mode = "session";
  StartPooler(options);
  PGconnPtr c = Client("t1");
  ASSERT_TRUE(c);
  EXPECT_EQ(Tenant(c.get()), "t1");
  EXPECT_EQ(Query(c.get(), "SET app.tenant_id = 'acme'").Tag(), "SET");
  EXPECT_EQ(Tenant(c.get()), "acme");
  for (int conn = 0; conn < fake_.connections(); ++conn) {
    if (fake_.Setting(conn, "app.tenant_id") == std::optional<std::string>("acme")) {
      EXPECT_EQ(fake_.Received(conn).at(0), "startup user=app_rls database=acme") << "acme only in its database";
    }
  }
  EXPECT_EQ(Query(c.get(), "RESET app.tenant_id").Tag(), "RESET");
  EXPECT_EQ(Tenant(c.get()), "t1");
  EXPECT_EQ(fake_.Received(0).at(0), "startup user=app_rls database=app");
}

// ---- the extended protocol

TEST_F(TenancyMachineTest, RefusalsOverTheExtendedProtocol) {
  StartPooler();
  std::string error;
  PGconnPtr restricted = harness_.Connect("user=acme_service options='-c app.tenant_id=acme'", &error);
  ASSERT_TRUE(restricted) << error;
  EXPECT_EQ(QueryParams(restricted.get(), "select set_config('app.tenant_id', 't' || $1, false)", {std::string("1")})
                .Value(),
            "ERROR:42501");
  EXPECT_EQ(QueryParams(restricted.get(), kTenantProbe).Value(), "acme") << "usable after the refusal";
  EXPECT_EQ(QueryParams(restricted.get(), "select set_config('app.tenant_id', $1, false)", {std::string("t1")}).Value(),
            "ERROR:42501");
  EXPECT_EQ(Tenant(restricted.get()), "acme");
}

TEST_F(TenancyMachineTest, SetIsRefusedWhenNotATenantSource) {
  HarnessOptions options;
  options.sources = "[options]";
  StartPooler(options);
  PGconnPtr c = Client("t1");
  ASSERT_TRUE(c);
  EXPECT_EQ(Value(c.get(), "SET app.tenant_id = 't2'"), "ERROR:42501");
  EXPECT_EQ(QueryParams(c.get(), "select set_config('app.tenant_id', $1, false)", {std::string("t2")}).Value(),
            "ERROR:42501");
  EXPECT_EQ(Tenant(c.get()), "t1");
}

// A deferred block entirely over the extended protocol, answered without a server.
TEST_F(TenancyMachineTest, ADeferredBlockOverTheExtendedProtocolNeedsNoServer) {
  StartPooler();
  PGconnPtr c = Client("t1");
  ASSERT_TRUE(c);
  for (const char* end : {"COMMIT", "ROLLBACK"}) {
    SCOPED_TRACE(end);
    EXPECT_EQ(QueryParams(c.get(), "BEGIN").Tag(), "BEGIN");
    EXPECT_EQ(QueryParams(c.get(), "select set_config('app.tenant_id', $1, true)", {std::string("t3")}).Value(), "t3");
    EXPECT_EQ(QueryParams(c.get(), end).Tag(), end);
    EXPECT_EQ(PQtransactionStatus(c.get()), PQTRANS_IDLE);
  }
  EXPECT_EQ(fake_.Received(0), std::vector<std::string>{"startup user=app_rls database=app"});
  EXPECT_EQ(Tenant(c.get()), "t1");
}

// A named set_config(..., true) inside a block running on a server: checked at each Bind
// (same pool: passed through; another pool's tenant: refused by the server, 25001).
TEST_F(TenancyMachineTest, ANamedLocalTenantStatementInARunningBlock) {
  StartPooler();
  PGconnPtr c = Client("t1");
  ASSERT_TRUE(c);
  EXPECT_EQ(Query(c.get(), "BEGIN").Tag(), "BEGIN");
  EXPECT_EQ(Tenant(c.get()), "t1");
  ASSERT_TRUE(Prepare(c.get(), "local_tenant", "select set_config('app.tenant_id', $1, true)", 1).ok());
  EXPECT_EQ(ExecPrepared(c.get(), "local_tenant", {std::string("t2")}).Value(), "t2");
  EXPECT_EQ(Tenant(c.get()), "t2");
  EXPECT_EQ(ExecPrepared(c.get(), "local_tenant", {std::string("acme")}).Value(), "ERROR:25001");
  EXPECT_EQ(PQtransactionStatus(c.get()), PQTRANS_INERROR);
  EXPECT_EQ(Query(c.get(), "ROLLBACK").Tag(), "ROLLBACK");
  EXPECT_EQ(Tenant(c.get()), "t1");
}

// A Bind of a statement pgtenant answers itself with the wrong number of parameters: 08P01,
// as PostgreSQL answers it.
TEST_F(TenancyMachineTest, ABindWithTheWrongParameterCountToAStatementPgtenantAnswers) {
  StartPooler();
  PGconnPtr c = Client("t1");
  ASSERT_TRUE(c);
  ASSERT_TRUE(Prepare(c.get(), "name_it", "select set_config('app.tenant_id', $1, false)", 1).ok());
  EXPECT_EQ(ExecPrepared(c.get(), "name_it", {}).Value(), "ERROR:08P01");
  EXPECT_EQ(ExecPrepared(c.get(), "name_it", {std::string("t4")}).Value(), "t4");
  EXPECT_EQ(Tenant(c.get()), "t4");
}

}  // namespace
}  // namespace pgtenant::testing
