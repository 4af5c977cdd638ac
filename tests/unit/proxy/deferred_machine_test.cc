// Deferred BEGIN (proxy/client_deferred.cc) through a real Pooler and the fake backend: the
// transaction-scoped tenant patterns of Supabase, Prisma and PostgREST, in separate Queries,
// in one Query, and over the extended protocol; what the prelude carries for the block; errors
// answered inside a block that has no server yet.
#include <gtest/gtest.h>

#include "machine_test.h"

namespace pgtenant::testing {
namespace {

class DeferredMachineTest : public MachineTest {
 public:
  static std::string ProbeQuery() { return std::string("Q:") + kTenantProbe; }
};

// Other SET LOCALs of the block are kept and replayed with its BEGIN, options included.
TEST_F(DeferredMachineTest, TheBlocksBeginAndSetLocalsComeFirst) {
  StartPooler();
  PGconnPtr c = Client("");
  ASSERT_TRUE(c);
  const size_t mark = Mark();
  EXPECT_EQ(Query(c.get(), "BEGIN ISOLATION LEVEL SERIALIZABLE").Tag(), "BEGIN");
  EXPECT_EQ(Query(c.get(), "SET LOCAL statement_timeout = 5").Tag(), "SET");
  EXPECT_EQ(Query(c.get(), "SET LOCAL app.tenant_id = 't3'").Tag(), "SET");
  EXPECT_EQ(SentSince(mark), std::vector<std::string>{});
  EXPECT_EQ(Show(c.get(), "statement_timeout"), "5");
  std::vector<std::string> sent = SentSince(mark);
  ASSERT_FALSE(sent.empty());
  EXPECT_EQ(sent.front(), "Q:BEGIN ISOLATION LEVEL SERIALIZABLE;SET LOCAL statement_timeout = 5;");
  EXPECT_EQ(Tenant(c.get()), "t3");
  EXPECT_EQ(Query(c.get(), "COMMIT").Tag(), "COMMIT");
  EXPECT_EQ(Show(c.get(), "statement_timeout"), "0");
  EXPECT_EQ(Tenant(c.get()), "<none>");
}

// PostgREST: the transaction's settings in one SELECT of set_config(..., true) calls.
TEST_F(DeferredMachineTest, PostgrestTransactionSettings) {
  StartPooler();
  PGconnPtr c = Client("");
  ASSERT_TRUE(c);
  EXPECT_EQ(QueryParams(c.get(), "BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY").Tag(), "BEGIN");
  PqResults r = QueryParams(c.get(),
                            "select set_config('search_path', $1, true), set_config('app.tenant_id', $2, true), "
                            "set_config('request.method', $3, true)",
                            {std::string("public"), std::string("t4"), std::string("GET")});
  ASSERT_TRUE(r.ok()) << r.Value();
  ASSERT_EQ(r.results.back().rows.size(), 1u);
  EXPECT_EQ(r.results.back().rows[0],
            (std::vector<std::optional<std::string>>{std::string("public"), std::string("t4"), std::string("GET")}));
  EXPECT_EQ(QueryParams(c.get(), kTenantProbe).Value(), "t4");
  EXPECT_EQ(QueryParams(c.get(), "select current_setting('request.method', true)").Value(), "GET");
  EXPECT_EQ(QueryParams(c.get(), "select current_setting('search_path')").Value(), "public");
  EXPECT_EQ(QueryParams(c.get(), "COMMIT").Tag(), "COMMIT");
  EXPECT_EQ(Value(c.get(), "select coalesce(nullif(current_setting('request.method', true), ''), '-')"), "-");
  EXPECT_EQ(Show(c.get(), "search_path"), "\"$user\", public");
}

// A SELECT with the tenant's set_config among targets only the server computes: it names the
// pool, and the server's own run of the call sets the tenant.
TEST_F(DeferredMachineTest, ANamingSelectTheServerRuns) {
  StartPooler();
  PGconnPtr c = Client("t1");
  ASSERT_TRUE(c);
  EXPECT_EQ(Query(c.get(), "BEGIN").Tag(), "BEGIN");
  PqResults r = QueryParams(c.get(), "select pg_backend_pid(), set_config('app.tenant_id', $1, true) as tenant",
                            {std::string("t5")});
  ASSERT_TRUE(r.ok()) << r.Value();
  EXPECT_EQ(r.results.back().columns, (std::vector<std::string>{"pg_backend_pid", "tenant"}));
  EXPECT_EQ(r.results.back().rows.at(0).at(1), "t5");
  EXPECT_EQ(Tenant(c.get()), "t5");
  EXPECT_EQ(Query(c.get(), "COMMIT").Tag(), "COMMIT");
  EXPECT_EQ(Tenant(c.get()), "t1");
}

TEST_F(DeferredMachineTest, TheWholeBlockInOneQuery) {
  StartPooler();
  PGconnPtr c = Client("t1");
  ASSERT_TRUE(c);
  const std::string block = std::string("BEGIN; SET LOCAL app.tenant_id = 't6'; ") + kTenantProbe + "; COMMIT";
  PqResults r = Query(c.get(), block);
  ASSERT_TRUE(r.ok()) << r.Value();
  ASSERT_EQ(r.results.size(), 4u);
  EXPECT_EQ(r.results[2].rows.at(0).at(0), "t6");
  EXPECT_EQ(Tenant(c.get()), "t1");
  // A session-level SET first in a Query names the tenant of the Query and of the session.
  r = Query(c.get(), std::string("SET app.tenant_id = 't7'; ") + kTenantProbe);
  ASSERT_TRUE(r.ok()) << r.Value();
  EXPECT_EQ(r.Value(), "t7");
  EXPECT_EQ(Tenant(c.get()), "t7");
}

// An error pgtenant answers in a block without a server aborts it as PostgreSQL would.
TEST_F(DeferredMachineTest, AnErrorAnsweredInADeferredBlockAbortsIt) {
  StartPooler();
  PGconnPtr c = Client("t1");
  ASSERT_TRUE(c);
  EXPECT_EQ(Query(c.get(), "BEGIN").Tag(), "BEGIN");
  EXPECT_EQ(Value(c.get(), "SET LOCAL app.tenant_id = 'Not Valid'"), "ERROR:22023");
  EXPECT_EQ(PQtransactionStatus(c.get()), PQTRANS_INERROR);
  EXPECT_EQ(Value(c.get(), "select 1"), "ERROR:25P02");
  EXPECT_EQ(Value(c.get(), "SET LOCAL app.tenant_id = 't2'"), "ERROR:25P02");
  EXPECT_EQ(Query(c.get(), "COMMIT").Tag(), "ROLLBACK");
  EXPECT_EQ(PQtransactionStatus(c.get()), PQTRANS_IDLE);
  EXPECT_EQ(Tenant(c.get()), "t1");
  // Only the last probe (behind pgtenant's tenant statement) ran on a server.
  EXPECT_EQ(fake_.Completed(0), (std::vector<std::string>{
                                    "SELECT 1|SELECT pg_catalog.set_config('app.tenant_id', $1, false)",
                                    std::string("SELECT 1|") + kTenantProbe}));
}

// require_tenant: the first statement that needs a server with no tenant named is 28000, and
// the block is aborted.
TEST_F(DeferredMachineTest, RequireTenantInsideADeferredBlock) {
  HarnessOptions options;
  options.require_tenant = true;
  StartPooler(options);
  PGconnPtr c = Client("");
  ASSERT_TRUE(c);
  EXPECT_EQ(Query(c.get(), "BEGIN").Tag(), "BEGIN");
  EXPECT_EQ(Value(c.get(), "select 1"), "ERROR:28000");
  EXPECT_EQ(Value(c.get(), "select 2"), "ERROR:25P02");
  EXPECT_EQ(Query(c.get(), "ROLLBACK").Tag(), "ROLLBACK");
  EXPECT_EQ(Query(c.get(), "BEGIN").Tag(), "BEGIN");
  EXPECT_EQ(Query(c.get(), "SET LOCAL app.tenant_id = 't8'").Tag(), "SET");
  EXPECT_EQ(Tenant(c.get()), "t8");
  EXPECT_EQ(Query(c.get(), "COMMIT").Tag(), "COMMIT");
  EXPECT_EQ(Value(c.get(), "select 3"), "ERROR:28000") << "SET LOCAL named the block's tenant only";
}

// A BEGIN while a block is deferred warns as PostgreSQL does; a COMMIT outside any block too.
TEST_F(DeferredMachineTest, BeginInsideABlockAndCommitOutsideOne) {
  StartPooler();
  PGconnPtr c = Client("t1");
  ASSERT_TRUE(c);
  EXPECT_EQ(Query(c.get(), "BEGIN").Tag(), "BEGIN");
  EXPECT_EQ(Query(c.get(), "BEGIN").Tag(), "BEGIN");
  EXPECT_EQ(PQtransactionStatus(c.get()), PQTRANS_INTRANS);
  EXPECT_EQ(Query(c.get(), "COMMIT").Tag(), "COMMIT");
  EXPECT_EQ(PQtransactionStatus(c.get()), PQTRANS_IDLE);
  EXPECT_EQ(Query(c.get(), "COMMIT").Tag(), "COMMIT");
  EXPECT_EQ(Query(c.get(), "ROLLBACK").Tag(), "ROLLBACK");
  EXPECT_EQ(PQtransactionStatus(c.get()), PQTRANS_IDLE);
  EXPECT_EQ(Tenant(c.get()), "t1");
}

// Session mode: BEGIN is not deferred (the client holds its server).
TEST_F(DeferredMachineTest, SessionModeDoesNotDeferBegin) {
  HarnessOptions options;
  options.shared_mode = "session";
  StartPooler(options);
  PGconnPtr c = Client("t1");
  ASSERT_TRUE(c);
  EXPECT_EQ(Tenant(c.get()), "t1");
  const size_t mark = Mark();
  EXPECT_EQ(Query(c.get(), "BEGIN").Tag(), "BEGIN");
  EXPECT_EQ(SentSince(mark), std::vector<std::string>{"Q:BEGIN"});
  EXPECT_EQ(fake_.TransactionStatus(0), 'T');
  EXPECT_EQ(Query(c.get(), "SET LOCAL app.tenant_id = 't2'").Tag(), "SET");
  EXPECT_EQ(Tenant(c.get()), "t2");
  EXPECT_EQ(Query(c.get(), "ROLLBACK").Tag(), "ROLLBACK");
  EXPECT_EQ(Tenant(c.get()), "t1");
}

}  // namespace
}  // namespace pgtenant::testing
