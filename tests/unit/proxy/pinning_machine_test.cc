// Pinned clients and other corners of ClientSession through a real Pooler and the fake
// backend: session state that pins (LISTEN, SQL PREPARE, unfollowed SET), tenant changes of a
// pinned client, tenant statements inside multi-statement Queries, the tenantless set-up of
// require_tenant, and followed settings over the extended protocol.
#include <gtest/gtest.h>
#include <poll.h>

#include <algorithm>

#include "machine_test.h"

namespace pgtenant::testing {
namespace {

class PinningMachineTest : public MachineTest {
 public:
  static std::string ProbeQuery() { return std::string("Q:") + kTenantProbe; }
  static bool Waits(PGconn* c, int ms) {
    pollfd p{PQsocket(c), POLLIN, 0};
    return poll(&p, 1, ms) == 0;
  }
};

// A pinned client keeps its server across transactions: B waits until A leaves, and then gets
// a connection reset with DISCARD ALL.
TEST_F(PinningMachineTest, APinnedClientKeepsItsServer) {
  StartPooler();
  PGconnPtr a = Client("t1");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(Query(a.get(), "LISTEN channel").Tag(), "LISTEN");
  EXPECT_EQ(Tenant(a.get()), "t1");
  ASSERT_EQ(PQsendQuery(b.get(), kTenantProbe), 1);
  EXPECT_TRUE(Waits(b.get(), 150)) << "B waits: A is pinned";
  // A names another tenant of the same pool: the prelude sets it on A's own server.
  EXPECT_EQ(Query(a.get(), "SET app.tenant_id = 't3'").Tag(), "SET");
  size_t mark = Mark();
  EXPECT_EQ(Tenant(a.get()), "t3");
  EXPECT_EQ(SentSince(mark), Seq({BindTenant("t3"), {ProbeQuery()}}));
  mark = Mark();
  a.reset();
  EXPECT_EQ(CollectResults(b.get()).Value(), "t2");
  std::vector<std::string> sent = SentSince(mark);
  ASSERT_FALSE(sent.empty());
  EXPECT_EQ(sent.front(), "Q:DISCARD ALL");
  EXPECT_EQ(fake_.connections(), 1);
}

// A pinned client that names a tenant of another pool moves there: its statements run with
// that tenant in that tenant's database, and the server it leaves behind (with its session
// state) is reset with DISCARD ALL before anyone else gets it.
TEST_F(PinningMachineTest, APinnedClientNamingATenantOfAnotherPool) {
  StartPooler();
  PGconnPtr a = Client("t1");
  ASSERT_TRUE(a);
  EXPECT_EQ(Query(a.get(), "LISTEN channel").Tag(), "LISTEN");
  EXPECT_EQ(Tenant(a.get()), "t1");
  EXPECT_EQ(Query(a.get(), "SET app.tenant_id = 'acme'").Tag(), "SET");
  EXPECT_EQ(Tenant(a.get()), "acme");
  ASSERT_EQ(fake_.connections(), 2);
  EXPECT_EQ(fake_.Received(1).at(0), "startup user=app_rls database=acme");
  EXPECT_EQ(fake_.Setting(1, "app.tenant_id"), "acme");
  EXPECT_TRUE(fake_.WaitFor([&] {
    std::vector<std::string> r = fake_.Received(0);
    return std::find(r.begin(), r.end(), "Q:DISCARD ALL") != r.end();
  })) << "the shared pool's server was reset";
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(b);
  EXPECT_EQ(Tenant(b.get()), "t2");
}

// Tenant statements inside one multi-statement Query. One session-level SET first names the
// Query's (and then the session's) tenant. Other forms are passed through for a user allowed
// any tenant: the server runs them, and pgtenant sets the session's tenant again before its
// next transaction (docs/operations.md, "Naming the tenant").
TEST_F(PinningMachineTest, TenantStatementsInsideOneQuery) {
  StartPooler();
  PGconnPtr c = Client("t1");
  ASSERT_TRUE(c);
  PqResults r = Query(c.get(), std::string("SET app.tenant_id = 't3'; ") + kTenantProbe);
  EXPECT_EQ(r.Value(), "t3");
  EXPECT_EQ(Tenant(c.get()), "t3");
  r = Query(c.get(), std::string("SET app.tenant_id = 't4'; SET app.tenant_id = 't5'; ") + kTenantProbe);
  EXPECT_EQ(r.Value(), "t5") << "the server ran both";
  size_t mark = Mark();
  EXPECT_EQ(Tenant(c.get()), "t3");
  EXPECT_EQ(SentSince(mark), Seq({BindTenant("t3"), {ProbeQuery()}})) << "set again: the variable was unknown";
  r = Query(c.get(), std::string("select 1; SET app.tenant_id = 't5'; ") + kTenantProbe);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.results.back().rows.at(0).at(0), "t5");
  EXPECT_EQ(Tenant(c.get()), "t3");
  // A user restricted to a tenant list may not.
  std::string error;
  PGconnPtr restricted = harness_.Connect("user=acme_service options='-c app.tenant_id=acme'", &error);
  ASSERT_TRUE(restricted) << error;
  EXPECT_EQ(Value(restricted.get(), "select 1; SET app.tenant_id = 'acme'"), "ERROR:42501");
}

// require_tenant: a driver's set-up batch runs on a server without a tenant; anything else in
// the same batch is refused with 28000 in its turn, which rolls the batch's implicit
// transaction back (pgtenant's RESET of the variable with it).
TEST_F(PinningMachineTest, TenantlessSetUpAndWhatFollowsItInTheBatch) {
  HarnessOptions options;
  options.require_tenant = true;
  StartPooler(options);
  PGconnPtr c = Client("");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(c && b);
  ASSERT_EQ(Tenant(b.get()), "t2");  // the connection holds t2
  EXPECT_EQ(RunPipeline(c.get(), {{"SET extra_float_digits = 3"}, {"select 1"}}),
            (std::vector<std::string>{"SET", "ERROR:28000", "sync"}));
  EXPECT_EQ(fake_.Setting(0, "app.tenant_id"), "t2") << "the rollback took pgtenant's RESET along";
  // The next set-up statement must not run with B's tenant: the variable is reset again.
  EXPECT_EQ(Show(c.get(), "extra_float_digits"), "1") << "the SET was rolled back, as on PostgreSQL";
  EXPECT_EQ(fake_.Setting(0, "app.tenant_id").value_or(""), "");
  EXPECT_EQ(Query(c.get(), "SET app.tenant_id = 't6'").Tag(), "SET");
  EXPECT_EQ(Tenant(c.get()), "t6");
  // (c may be pinned: pgtenant could not tell what its SET left on the server.)
  c.reset();
  EXPECT_EQ(Tenant(b.get()), "t2");
  EXPECT_EQ(Show(b.get(), "extra_float_digits"), "1");
}

// SET search_path in the unnamed statement over the extended protocol is followed too.
TEST_F(PinningMachineTest, FollowedSetOverTheExtendedProtocol) {
  StartPooler();
  PGconnPtr a = Client("t1");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(QueryParams(a.get(), "SET search_path TO ext_schema").Tag(), "SET");
  EXPECT_EQ(Show(b.get(), "search_path"), "\"$user\", public") << "B was not kept waiting";
  EXPECT_EQ(QueryParams(a.get(), "select current_setting('search_path')").Value(), "ext_schema");
}

// A followed SET inside a block is not followed: the client is pinned, and its connection is
// discarded when it leaves.
TEST_F(PinningMachineTest, SetSearchPathInsideABlockPins) {
  StartPooler();
  PGconnPtr a = Client("t1");
  ASSERT_TRUE(a);
  EXPECT_EQ(Query(a.get(), "BEGIN").Tag(), "BEGIN");
  EXPECT_EQ(Query(a.get(), "SET search_path = in_block").Tag(), "SET");
  EXPECT_EQ(Query(a.get(), "COMMIT").Tag(), "COMMIT");
  EXPECT_EQ(Show(a.get(), "search_path"), "in_block");
  size_t mark = Mark();
  a.reset();
  ASSERT_TRUE(fake_.WaitFor([&] { return fake_.ReceivedCount(0) > mark; }));
  EXPECT_EQ(SentSince(mark), std::vector<std::string>{"Q:DISCARD ALL"});
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(b);
  EXPECT_EQ(Show(b.get(), "search_path"), "\"$user\", public");
}

// A pinned client's DISCARD ALL: the server says it ran; the client returns to its startup
// session on the same server, and nothing of it reaches the next client.
TEST_F(PinningMachineTest, DiscardAllOfAPinnedClient) {
  StartPooler();
  PGconnPtr a = ClientWithOptions("-c app.tenant_id=t1 -c search_path=a_path");
  ASSERT_TRUE(a);
  EXPECT_EQ(Query(a.get(), "PREPARE q AS select 1").Tag(), "PREPARE");
  EXPECT_EQ(Query(a.get(), "SET app.tenant_id = 't3'").Tag(), "SET");
  EXPECT_EQ(Tenant(a.get()), "t3");
  EXPECT_EQ(Query(a.get(), "DISCARD ALL").Tag(), "DISCARD ALL");
  EXPECT_EQ(Value(a.get(), "EXECUTE q"), "ERROR:26000");
  EXPECT_EQ(Tenant(a.get()), "t1");
  EXPECT_EQ(Show(a.get(), "search_path"), "a_path");
  a.reset();
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(b);
  EXPECT_EQ(Tenant(b.get()), "t2");
  EXPECT_EQ(Show(b.get(), "search_path"), "\"$user\", public");
}

}  // namespace
}  // namespace pgtenant::testing
