// The admin console through a real Pooler and the fake backend (proxy/client_admin.cc and the
// Pooler's commands): what SHOW reports about the machines, PAUSE/RESUME, KILL, and what the
// console refuses.
#include <gtest/gtest.h>
#include <poll.h>

#include <algorithm>

#include "machine_test.h"

namespace pgtenant::testing {
namespace {

class AdminMachineTest : public MachineTest {
 public:
  PGconnPtr Admin() {
    std::string error;
    PGconnPtr c = harness_.Connect("dbname=pgtenant user=admin", &error);
    EXPECT_TRUE(c) << error;
    return c;
  }
  // The value of `column` in the rows of `sql` where `key_column` equals `key`.
  static std::vector<std::string> Column(PGconn* admin, const std::string& sql, const std::string& column,
                                         const std::string& key_column = "", const std::string& key = "") {
    PqResults r = Query(admin, sql);
    std::vector<std::string> out;
    if (!r.ok() || r.results.empty()) return {"ERROR:" + (r.results.empty() ? std::string("none") : r.results[0].sqlstate)};
    const PqResult& res = r.results.back();
    auto col = std::find(res.columns.begin(), res.columns.end(), column);
    auto keycol = std::find(res.columns.begin(), res.columns.end(), key_column);
    if (col == res.columns.end()) return {"no column " + column};
    for (const auto& row : res.rows) {
      if (!key_column.empty()) {
        if (keycol == res.columns.end()) return {"no column " + key_column};
        if (row[static_cast<size_t>(keycol - res.columns.begin())].value_or("") != key) continue;
      }
      out.push_back(row[static_cast<size_t>(col - res.columns.begin())].value_or("<null>"));
    }
    return out;
  }
};

TEST_F(AdminMachineTest, ShowReportsTheMachines) {
  StartPooler();
  PGconnPtr a = Client("t1");
  PGconnPtr admin = Admin();
  ASSERT_TRUE(a && admin);
  ASSERT_EQ(Tenant(a.get()), "t1");
  EXPECT_EQ(Column(admin.get(), "SHOW POOLS", "pool_mode", "database", "shared"),
            std::vector<std::string>{"transaction"});
  EXPECT_EQ(Column(admin.get(), "SHOW POOLS", "sv_idle", "database", "shared"), std::vector<std::string>{"1"});
  EXPECT_EQ(Column(admin.get(), "SHOW SERVERS", "remote_pid"),
            std::vector<std::string>{std::to_string(fake_.BackendPid(0))});
  EXPECT_EQ(Column(admin.get(), "SHOW CLIENTS", "tenant", "user", "app"), std::vector<std::string>{"t1"});
  EXPECT_EQ(Value(a.get(), "LISTEN x"), "");
  EXPECT_EQ(Column(admin.get(), "SHOW CLIENTS", "pinned", "user", "app"), std::vector<std::string>{"1"});
  EXPECT_EQ(Value(a.get(), "select 1/0"), "ERROR:22012");
  std::vector<std::string> errors = Column(admin.get(), "SHOW TENANTS", "errors", "tenant", "t1");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0], "1");
}

TEST_F(AdminMachineTest, PauseHoldsClientsUntilResume) {
  StartPooler();
  PGconnPtr a = Client("t1");
  PGconnPtr admin = Admin();
  ASSERT_TRUE(a && admin);
  ASSERT_EQ(Tenant(a.get()), "t1");
  EXPECT_TRUE(Query(admin.get(), "PAUSE shared").ok());
  const size_t mark = Mark();
  ASSERT_EQ(PQsendQuery(a.get(), kTenantProbe), 1);
  pollfd p{PQsocket(a.get()), POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 150), 0) << "A waits while the pool is paused";
  EXPECT_EQ(SentSince(mark), std::vector<std::string>{});
  EXPECT_EQ(Column(admin.get(), "SHOW POOLS", "paused", "database", "shared"), std::vector<std::string>{"1"});
  EXPECT_TRUE(Query(admin.get(), "RESUME shared").ok());
  EXPECT_EQ(CollectResults(a.get()).Value(), "t1");
}

TEST_F(AdminMachineTest, KillDisconnectsThePoolsClientsAndServers) {
  StartPooler();
  PGconnPtr a = Client("t1");
  PGconnPtr admin = Admin();
  ASSERT_TRUE(a && admin);
  ASSERT_EQ(Tenant(a.get()), "t1");
  EXPECT_TRUE(Query(admin.get(), "KILL shared").ok());
  ASSERT_TRUE(fake_.WaitFor([&] { return fake_.open_connections() == 0; }));
  EXPECT_FALSE(Query(a.get(), "select 1").ok());
  EXPECT_EQ(PQstatus(a.get()), CONNECTION_BAD);
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(b);
  EXPECT_EQ(Tenant(b.get()), "t2");
}

TEST_F(AdminMachineTest, TheConsoleSpeaksTheSimpleProtocolToAdminsOnly) {
  StartPooler();
  PGconnPtr admin = Admin();
  ASSERT_TRUE(admin);
  EXPECT_EQ(QueryParams(admin.get(), "SHOW POOLS").Value(), "ERROR:0A000");
  EXPECT_TRUE(Query(admin.get(), "SHOW VERSION").ok()) << "usable after the refusal";
  std::string error;
  PGconnPtr not_admin = harness_.Connect("dbname=pgtenant user=app", &error);
  EXPECT_FALSE(not_admin) << "a user not in admin.users";
  EXPECT_EQ(fake_.connections(), 0) << "the console needs no server";
}

}  // namespace
}  // namespace pgtenant::testing
