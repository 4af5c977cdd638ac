// Session settings through the machines (proxy/client_settings.cc, the settings part of the
// prelude, ParameterStatus): what one client gave at startup or SET must never reach the next
// client of the server connection, and must still be there for the client itself, whatever its
// blocks did. Pool of ONE server connection, FakePostgres behind a real Pooler.
#include <gtest/gtest.h>

#include "machine_test.h"

namespace pgtenant::testing {
namespace {

constexpr const char* kDefaultSearchPath = "\"$user\", public";

class SettingsMachineTest : public MachineTest {
 public:
  static std::string Reported(PGconn* c, const char* name) {
    const char* v = PQparameterStatus(c, name);
    return v == nullptr ? "<unset>" : v;
  }
};

TEST_F(SettingsMachineTest, StartupParametersAreSetForTheirClientAndResetForTheNext) {
  StartPooler();
  PGconnPtr a = ClientWithOptions("-c app.tenant_id=t1 -c search_path=a_path,public");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  size_t mark = Mark();
  EXPECT_EQ(Show(a.get(), "search_path"), "a_path,public");
  std::vector<std::string> sent = SentSince(mark);
  ASSERT_FALSE(sent.empty());
  EXPECT_EQ(sent[0], "Q:SELECT pg_catalog.set_config('search_path', 'a_path,public', false);");
  mark = Mark();
  EXPECT_EQ(Show(b.get(), "search_path"), kDefaultSearchPath);
  EXPECT_EQ(SentSince(mark), Seq({{"Q:RESET \"search_path\";"}, BindTenant("t2"), {"Q:SHOW search_path"}}));
  EXPECT_EQ(Show(a.get(), "search_path"), "a_path,public");
  EXPECT_EQ(Tenant(a.get()), "t1");
}

TEST_F(SettingsMachineTest, ApplicationNameFollowsItsClientOnly) {
  StartPooler();
  PGconnPtr a = Client("t1", "application_name=app_a");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(Reported(a.get(), "application_name"), "app_a") << "pgtenant's login answer";
  EXPECT_EQ(Reported(b.get(), "application_name"), "");
  EXPECT_EQ(Show(a.get(), "application_name"), "app_a");
  EXPECT_EQ(Show(b.get(), "application_name"), "");
  EXPECT_EQ(Reported(b.get(), "application_name"), "") << "B never sees A's value reported";
  // A changes it with SQL: the server reports it, pgtenant follows it.
  EXPECT_EQ(Query(a.get(), "SET application_name = 'renamed'").Tag(), "SET");
  EXPECT_EQ(Reported(a.get(), "application_name"), "renamed");
  EXPECT_EQ(Show(b.get(), "application_name"), "");
  EXPECT_EQ(Reported(b.get(), "application_name"), "");
  EXPECT_EQ(Show(a.get(), "application_name"), "renamed");
  EXPECT_EQ(Tenant(a.get()), "t1");
}

// A SET inside a block that rolls back: PostgreSQL undoes it (and reports the old value).
TEST_F(SettingsMachineTest, SetInARolledBackBlock) {
  StartPooler();
  PGconnPtr a = Client("t1");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  ASSERT_EQ(Tenant(a.get()), "t1");
  EXPECT_EQ(Query(a.get(), "BEGIN").Tag(), "BEGIN");
  EXPECT_EQ(Query(a.get(), "SET application_name = 'in_block'").Tag(), "SET");
  EXPECT_EQ(Reported(a.get(), "application_name"), "in_block");
  EXPECT_EQ(Query(a.get(), "ROLLBACK").Tag(), "ROLLBACK");
  EXPECT_EQ(Reported(a.get(), "application_name"), "");
  EXPECT_EQ(Show(b.get(), "application_name"), "");
  EXPECT_EQ(Show(a.get(), "application_name"), "");
  EXPECT_EQ(Tenant(a.get()), "t1");
  EXPECT_EQ(Tenant(b.get()), "t2");
}

// SET search_path outside a block is followed, not pinned: it goes with A to its next
// connection and never stays for B.
TEST_F(SettingsMachineTest, FollowedSearchPath) {
  StartPooler();
  PGconnPtr a = Client("t1");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(Query(a.get(), "SET search_path = a_schema, public").Tag(), "SET");
  size_t mark = Mark();
  EXPECT_EQ(Show(b.get(), "search_path"), kDefaultSearchPath) << "B is not kept waiting: A is not pinned";
  EXPECT_EQ(SentSince(mark), Seq({{"Q:RESET \"search_path\";"}, BindTenant("t2"), {"Q:SHOW search_path"}}));
  mark = Mark();
  EXPECT_EQ(Show(a.get(), "search_path"), "a_schema, public");
  EXPECT_EQ(SentSince(mark), Seq({{"Q:SELECT pg_catalog.set_config('search_path', 'a_schema, public', false);"},
                                  BindTenant("t1"), {"Q:SHOW search_path"}}));
  // RESET brings it back to A's startup value (none).
  EXPECT_EQ(Query(a.get(), "RESET search_path").Tag(), "RESET");
  EXPECT_EQ(Show(a.get(), "search_path"), kDefaultSearchPath);
  EXPECT_EQ(Show(b.get(), "search_path"), kDefaultSearchPath);
}

// A SET that fails changes nothing for anyone.
TEST_F(SettingsMachineTest, FailedFollowedSetChangesNothing) {
  StartPooler();
  PGconnPtr a = Client("t1");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  fake_.Inject({.statement_contains = "SET search_path", .sqlstate = "22023", .message = "invalid value"});
  EXPECT_EQ(Value(a.get(), "SET search_path = broken"), "ERROR:22023");
  EXPECT_EQ(Show(a.get(), "search_path"), kDefaultSearchPath);
  EXPECT_EQ(Show(b.get(), "search_path"), kDefaultSearchPath);
}

// SET LOCAL of a setting ends with the block on the server; nothing to follow or pin.
TEST_F(SettingsMachineTest, SetLocalEndsWithItsBlock) {
  StartPooler();
  PGconnPtr a = Client("t1");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  ASSERT_EQ(Tenant(a.get()), "t1");
  EXPECT_EQ(Query(a.get(), "BEGIN").Tag(), "BEGIN");
  EXPECT_EQ(Query(a.get(), "SET LOCAL search_path = local_schema").Tag(), "SET");
  EXPECT_EQ(Show(a.get(), "search_path"), "local_schema");
  EXPECT_EQ(Query(a.get(), "COMMIT").Tag(), "COMMIT");
  EXPECT_EQ(Show(a.get(), "search_path"), kDefaultSearchPath);
  EXPECT_EQ(Show(b.get(), "search_path"), kDefaultSearchPath) << "B was not kept waiting";
}

// A session-level SET of a setting pgtenant does not restore pins the client; when it leaves,
// DISCARD ALL resets the connection before B gets it.
TEST_F(SettingsMachineTest, UnfollowedSetPinsAndIsDiscarded) {
  StartPooler();
  PGconnPtr a = Client("t1");
  ASSERT_TRUE(a);
  EXPECT_EQ(Query(a.get(), "SET statement_timeout = 1234").Tag(), "SET");
  EXPECT_EQ(Show(a.get(), "statement_timeout"), "1234");
  size_t mark = Mark();
  a.reset();
  ASSERT_TRUE(fake_.WaitFor([&] { return fake_.ReceivedCount(0) > mark; }));
  EXPECT_EQ(SentSince(mark), std::vector<std::string>{"Q:DISCARD ALL"});
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(b);
  EXPECT_EQ(Show(b.get(), "statement_timeout"), "0");
  EXPECT_EQ(Tenant(b.get()), "t2");
  EXPECT_EQ(fake_.connections(), 1);
}

// What a RESET ALL does to the client's own tenant and settings follows the server: it counts
// only when its transaction commits.
TEST_F(SettingsMachineTest, ResetAllCountsForTheClientOnlyWhenItCommits) {
  StartPooler();
  PGconnPtr a = ClientWithOptions("-c app.tenant_id=t1 -c search_path=a_path,public");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  struct Case {
    const char* what;
    std::vector<const char*> statements;
    const char* sees;
  };
  const std::vector<Case> cases = {
      {"BEGIN; RESET ALL; ROLLBACK", {"BEGIN", "RESET ALL", "ROLLBACK"}, "t3"},
      {"BEGIN; RESET ALL; 1/0; COMMIT", {"BEGIN", "RESET ALL", "select 1/0", "COMMIT"}, "t3"},
      {"RESET ALL; 1/0 in one Query", {"RESET ALL; select 1/0"}, "t3"},
      {"BEGIN; RESET ALL; COMMIT", {"BEGIN", "RESET ALL", "COMMIT"}, "t1"},
      {"RESET ALL alone", {"RESET ALL"}, "t1"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.what);
    ASSERT_EQ(Query(a.get(), "SET app.tenant_id = 't3'").Tag(), "SET");
    ASSERT_EQ(Tenant(a.get()), "t3");
    for (const char* sql : k.statements) Query(a.get(), sql);
    ASSERT_EQ(PQtransactionStatus(a.get()), PQTRANS_IDLE);
    EXPECT_EQ(Tenant(a.get()), k.sees);
    EXPECT_EQ(QueryParams(a.get(), kTenantProbe).Value(), k.sees);
    EXPECT_EQ(Show(a.get(), "search_path"), "a_path,public") << "startup settings survive RESET ALL";
    EXPECT_EQ(Tenant(b.get()), "t2");
    EXPECT_EQ(Show(b.get(), "search_path"), kDefaultSearchPath);
  }
}

// DISCARD ALL returns the client to its startup tenant and settings once the server ran it.
TEST_F(SettingsMachineTest, DiscardAllReturnsTheClientToItsStartupSession) {
  StartPooler();
  PGconnPtr a = ClientWithOptions("-c app.tenant_id=t1 -c search_path=a_path,public");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  ASSERT_EQ(Query(a.get(), "SET app.tenant_id = 't3'").Tag(), "SET");
  ASSERT_EQ(Tenant(a.get()), "t3");
  size_t mark = Mark();
  EXPECT_EQ(Query(a.get(), "DISCARD ALL").Tag(), "DISCARD ALL");
  std::vector<std::string> sent = SentSince(mark);
  ASSERT_FALSE(sent.empty());
  EXPECT_EQ(sent.back(), "Q:DISCARD ALL");
  // The session is unknown now (the server says DISCARD ALL ran): everything is set again.
  mark = Mark();
  EXPECT_EQ(Tenant(a.get()), "t1");
  EXPECT_EQ(SentSince(mark),
            Seq({{"Q:RESET ALL;SELECT pg_catalog.set_config('search_path', 'a_path,public', false);", CloseSetTenant(),
                  ParseSetTenant()},
                 BindTenant("t1"),
                 {std::string("Q:") + kTenantProbe}}));
  EXPECT_EQ(Show(a.get(), "search_path"), "a_path,public");
  mark = Mark();
  EXPECT_EQ(Tenant(b.get()), "t2");
  EXPECT_EQ(SentSince(mark), Seq({{"Q:RESET \"search_path\";"}, BindTenant("t2"), {std::string("Q:") + kTenantProbe}}));
}

}  // namespace
}  // namespace pgtenant::testing
