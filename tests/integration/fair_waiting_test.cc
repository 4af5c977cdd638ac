// Fair waiting (docs/architecture.md, "Fair waiting"): the clients waiting for a server of a
// pool are served round-robin across tenants, first come first served inside a tenant, and a
// tenant may be capped to a number of the pool's server connections (pools.X.
// max_connections_per_tenant, tenants.X.max_server_connections). Each test holds the pool's
// servers in open transactions, queues clients one by one (each sends once the one before is
// queued, read from SHOW POOLS), then releases, and reads the order in which the waiters ran
// from their txid_current().
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "integration/harness.h"
#include "integration/ops_util.h"

namespace pgtenant::testing {
namespace {

using std::chrono::milliseconds;

class FairWaitingTest : public IntegrationTest {
 protected:
  // Starts pgtenant with pool `shared` of `size`, `shared_extra` added to that pool's block and
  // `tenants_extra` to the `tenants` block.
  void Start(int size, const std::string& shared_extra = "", const std::string& tenants_extra = "") {
    ProxyConfigOptions options;
    options.shared_size = size;
    options.shared_pool_extra = shared_extra;
    options.tenants_extra = tenants_extra;
    StartTarget(options, /*direct_ok=*/false);
    if (HasFatalFailure() || IsSkipped()) return;
    admin_ = Connect(ops::AdminConnInfo(TargetPort()));
    ASSERT_TRUE(admin_) << LastConnectError() << ProxyLog();
  }

  PGconnPtr Client(const std::string& tenant) {
    PGconnPtr c = Connect(ClientConnInfo("options='-c app.tenant_id=" + tenant + "'"));
    EXPECT_TRUE(c) << LastConnectError() << ProxyLog();
    return c;
  }

  // A client of `tenant` in an open transaction that holds a server.
  PGconnPtr Holder(const std::string& tenant) {
    PGconnPtr c = Client(tenant);
    if (!c) return c;
    EXPECT_EQ(QueryValue(c.get(), "BEGIN"), "");
    EXPECT_NE(QueryValue(c.get(), "select txid_current()"), "");
    return c;
  }

  long long Waiting() {
    ops::Table pools = ops::RunAdmin(admin_.get(), "SHOW POOLS");
    EXPECT_TRUE(pools.ok()) << pools.error;
    if (!pools.ok()) return -1;
    return ops::AsInt(pools.Where("database", "shared").at(0), "cl_waiting");
  }

  // Sends txid_current() from a new client of `tenant` and returns once pgtenant has queued it
  // (`waiting_before` + 1 clients waiting; bounded: 200 polls of 10 ms).
  PGconnPtr Queue(const std::string& tenant, long long waiting_before) {
    PGconnPtr c = Client(tenant);
    if (!c) return c;
    EXPECT_EQ(PQsendQuery(c.get(), "select txid_current()"), 1);
    long long queued = -1;
    for (int poll = 0; poll < 200 && queued != waiting_before + 1; ++poll) {
      queued = Waiting();
      if (queued != waiting_before + 1) std::this_thread::sleep_for(milliseconds(10));
    }
    EXPECT_EQ(queued, waiting_before + 1) << tenant << " was not queued" << ProxyLog();
    return c;
  }

  // The txid a queued client's statement ran in (-1 on an error or after 10 s).
  long long TxidOf(PGconn* c) {
    PGresultPtr r = WaitForResult(c, milliseconds(10000));
    if (!r || PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
      ADD_FAILURE() << "no result: " << PQerrorMessage(c) << ProxyLog();
      return -1;
    }
    long long txid = atoll(PQgetvalue(r.get(), 0, 0));
    while (PGresultPtr rest = WaitForResult(c, milliseconds(1000))) {
    }
    return txid;
  }

  PGconnPtr admin_;
};

// One tenant with four clients queued before a second tenant's one: round-robin serves the
// second tenant right after the first tenant's oldest waiter, where first come first served
// would make it wait for all four.
TEST_F(FairWaitingTest, TenantsTakeTurnsInsteadOfFirstComeFirstServed) {
  Start(1);
  PGconnPtr holder = Holder("t001");
  ASSERT_TRUE(holder);
  std::vector<PGconnPtr> noisy;
  for (int i = 0; i < 4; ++i) {
    noisy.push_back(Queue("t002", i));
    ASSERT_TRUE(noisy.back());
  }
  PGconnPtr quiet = Queue("t003", 4);
  ASSERT_TRUE(quiet);
  ASSERT_EQ(QueryValue(holder.get(), "COMMIT"), "");
  std::vector<long long> noisy_txids;
  for (auto& c : noisy) noisy_txids.push_back(TxidOf(c.get()));
  const long long quiet_txid = TxidOf(quiet.get());
  for (size_t i = 1; i < noisy_txids.size(); ++i) {
    EXPECT_LT(noisy_txids[i - 1], noisy_txids[i]) << "a tenant's own clients keep their order";
  }
  EXPECT_GT(quiet_txid, noisy_txids[0]) << "t002's oldest waiter came first";
  EXPECT_LT(quiet_txid, noisy_txids[1]) << "t003 must not wait behind all of t002's clients" << ProxyLog();
}

// pools.shared.max_connections_per_tenant: 1 on a pool of two: a tenant's second client waits
// while another tenant is served by the second connection, and gets the tenant's connection
// once its first client releases it.
TEST_F(FairWaitingTest, PerTenantCapKeepsConnectionsForOtherTenants) {
  Start(2, "    max_connections_per_tenant: 1\n");
  PGconnPtr holder = Holder("t002");
  ASSERT_TRUE(holder);
  PGconnPtr second = Queue("t002", 0);
  ASSERT_TRUE(second);
  // Another tenant gets the pool's other connection at once, past t002's waiter.
  PGconnPtr other = Client("t003");
  ASSERT_TRUE(other);
  EXPECT_EQ(QueryValue(other.get(), "select 'served'"), "served") << ProxyLog();
  EXPECT_EQ(Waiting(), 1) << "t002's second client is still waiting, at its cap";
  ops::Table tenants = ops::RunAdmin(admin_.get(), "SHOW TENANTS");
  ASSERT_TRUE(tenants.ok()) << tenants.error;
  auto row = tenants.Where("tenant", "t002");
  ASSERT_EQ(row.size(), 1u);
  EXPECT_EQ(ops::AsInt(row.at(0), "cl_waiting"), 1);
  EXPECT_EQ(ops::AsInt(row.at(0), "sv_active"), 1);
  EXPECT_EQ(ops::AsInt(row.at(0), "sv_limit"), 1);
  ASSERT_EQ(QueryValue(holder.get(), "COMMIT"), "");
  EXPECT_GT(TxidOf(second.get()), 0);
  EXPECT_EQ(Waiting(), 0);
}

// tenants.X.max_server_connections overrides the pool's per-tenant cap for that tenant.
TEST_F(FairWaitingTest, TenantsOwnCapOverridesThePools) {
  Start(3, "    max_connections_per_tenant: 1\n", "  t004: { max_server_connections: 2 }\n");
  PGconnPtr first = Holder("t004");
  PGconnPtr second = Holder("t004");  // under its own cap of 2: served at once
  ASSERT_TRUE(first && second);
  EXPECT_EQ(Waiting(), 0);
  PGconnPtr third = Queue("t004", 0);  // the third waits, though the pool has a free slot
  ASSERT_TRUE(third);
  ASSERT_EQ(QueryValue(first.get(), "COMMIT"), "");
  EXPECT_GT(TxidOf(third.get()), 0);
  ASSERT_EQ(QueryValue(second.get(), "COMMIT"), "");
}

}  // namespace
}  // namespace pgtenant::testing
