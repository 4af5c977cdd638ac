// Issue "Believe the server", without PostgreSQL: every sequence of the issue runs as client A
// of tenant t1 on a pool of ONE server connection (FakePostgres behind a real Pooler), then
// client B of tenant t2 takes the same connection and must read its own tenant and settings
// with no error. Each test also checks what pgtenant sent the backend for B: the prelude that
// follows A's sequence (BackendState's belief, docs/architecture.md "What a server connection
// holds"), and then that A, on its next turn, still sees what PostgreSQL would show it.
#include <gtest/gtest.h>

#include <functional>

#include "machine_test.h"

namespace pgtenant::testing {
namespace {

constexpr const char* kDefaultSearchPath = "\"$user\", public";

class BelieveTheServerTest : public MachineTest {
 protected:
  // B's probe, as the backend receives it.
  static std::string ProbeQuery() { return std::string("Q:") + kTenantProbe; }

  // Runs `sequence` as client A (tenant t1, `a_options` besides), then B (tenant t2) on the
  // same server connection: B must see t2 and the default search_path with no error, and
  // pgtenant must have sent `b_prelude` ahead of B's first probe. Then A again (`a_sees`,
  // `a_search_path`), and B once more.
  void RunSequence(const std::function<void(PGconn*)>& sequence, const std::vector<std::string>& b_prelude,
                   const std::string& a_options = "", const std::string& a_sees = "t1",
                   const std::string& a_search_path = kDefaultSearchPath) {
    StartPooler();
    PGconnPtr a = ClientWithOptions("-c app.tenant_id=t1" + a_options);
    PGconnPtr b = Client("t2");
    ASSERT_TRUE(a && b);
    ASSERT_EQ(Tenant(a.get()), "t1");  // pgtenant's own statement is on the connection now
    sequence(a.get());
    if (HasFatalFailure()) return;
    ASSERT_EQ(PQtransactionStatus(a.get()), PQTRANS_IDLE) << "the sequence must end its block";
    const size_t mark = Mark();
    EXPECT_EQ(Tenant(b.get()), "t2");
    EXPECT_EQ(SentSince(mark), Seq({b_prelude, {ProbeQuery()}})) << "B's prelude";
    EXPECT_EQ(Show(b.get(), "search_path"), kDefaultSearchPath);
    EXPECT_EQ(QueryParams(b.get(), kTenantProbe).Value(), "t2") << "B, extended protocol";
    EXPECT_EQ(Tenant(a.get()), a_sees) << "A after its sequence";
    EXPECT_EQ(Show(a.get(), "search_path"), a_search_path) << "A after its sequence";
    EXPECT_EQ(Tenant(b.get()), "t2") << "B, turn and turn about";
    EXPECT_EQ(Show(b.get(), "search_path"), kDefaultSearchPath);
    EXPECT_EQ(fake_.connections(), 1) << "every turn ran on the one server connection";
  }
};

// The prelude of a connection that holds pgtenant's statement: the tenant's Bind/Execute.
std::vector<std::string> Plain(const std::string& tenant) { return MachineTest::BindTenant(tenant); }

TEST_F(BelieveTheServerTest, DiscardAllRefusedInsideABlock) {
  RunSequence(
      [](PGconn* a) {
        EXPECT_EQ(Query(a, "BEGIN").Tag(), "BEGIN");
        EXPECT_EQ(Value(a, "DISCARD ALL"), "ERROR:25001");
        EXPECT_EQ(Query(a, "ROLLBACK").Tag(), "ROLLBACK");
      },
      Plain("t2"));
}

// The connection holds another tenant when A's block starts: pgtenant sets A's tenant inside the
// block (behind the deferred BEGIN, as a Query: DISCARD ALL refuses a pipeline), and the
// ROLLBACK takes it along. The record must not keep believing it.
TEST_F(BelieveTheServerTest, TenantSetInsideABlockThatRollsBack) {
  StartPooler();
  PGconnPtr a = Client("t1");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  ASSERT_EQ(Tenant(a.get()), "t1");
  for (const char* refused : {"DISCARD ALL", "VACUUM"}) {
    SCOPED_TRACE(refused);
    ASSERT_EQ(Tenant(b.get()), "t2");  // the connection holds t2
    EXPECT_EQ(Query(a.get(), "BEGIN").Tag(), "BEGIN");
    size_t mark = Mark();
    EXPECT_EQ(Value(a.get(), refused), "ERROR:25001");
    EXPECT_EQ(SentSince(mark),
              (std::vector<std::string>{"Q:BEGIN;", "Q:SET app.tenant_id = 't1'", std::string("Q:") + refused}));
    EXPECT_EQ(Query(a.get(), "ROLLBACK").Tag(), "ROLLBACK");
    mark = Mark();
    EXPECT_EQ(Tenant(a.get()), "t1");
    EXPECT_EQ(SentSince(mark), Seq({Plain("t1"), {ProbeQuery()}})) << "set again after the rollback";
    EXPECT_EQ(QueryParams(a.get(), kTenantProbe).Value(), "t1");
    EXPECT_EQ(Tenant(b.get()), "t2");
  }
}

TEST_F(BelieveTheServerTest, DiscardAllBehindAnotherStatementOfTheSameQuery) {
  RunSequence([](PGconn* a) { EXPECT_EQ(Value(a, "SELECT 1; DISCARD ALL"), "ERROR:25001"); }, Plain("t2"));
}

TEST_F(BelieveTheServerTest, DiscardAllAsTheSecondExecuteOfAPipeline) {
  RunSequence(
      [](PGconn* a) {
        EXPECT_EQ(RunPipeline(a, {{"select 1"}, {"DISCARD ALL"}}),
                  (std::vector<std::string>{"SELECT 1", "ERROR:25001", "sync"}));
      },
      Plain("t2"));
}

TEST_F(BelieveTheServerTest, DeallocateAllInAnAbortedBlock) {
  RunSequence(
      [](PGconn* a) {
        EXPECT_EQ(Query(a, "BEGIN").Tag(), "BEGIN");
        EXPECT_EQ(Value(a, "select 1/0"), "ERROR:22012");
        EXPECT_EQ(Value(a, "DEALLOCATE ALL"), "ERROR:25P02");
        EXPECT_EQ(Query(a, "ROLLBACK").Tag(), "ROLLBACK");
      },
      Plain("t2"));
}

TEST_F(BelieveTheServerTest, DeallocateAllBehindAComment) {
  RunSequence([](PGconn* a) { EXPECT_EQ(Query(a, "/* c */ DEALLOCATE ALL").Tag(), "DEALLOCATE ALL"); },
              Seq({{CloseSetTenant(), ParseSetTenant()}, Plain("t2")}));
}

TEST_F(BelieveTheServerTest, PreparedDiscardAllExecutedByBindAlone) {
  RunSequence(
      [this](PGconn* a) {
        ASSERT_TRUE(Prepare(a, "a_discard", "DISCARD ALL").ok());
        // Another client in between: A's tenant must be set again before its Bind.
        PGconnPtr other = Client("t3");
        ASSERT_TRUE(other);
        EXPECT_EQ(Tenant(other.get()), "t3");
        const size_t mark = Mark();
        EXPECT_EQ(ExecPrepared(a, "a_discard").Tag(), "DISCARD ALL");
        // The tenant goes in a Query of its own: behind pgtenant's Execute, in the same
        // pipeline, the DISCARD ALL would fail with 25001.
        std::vector<std::string> sent = SentSince(mark);
        ASSERT_EQ(sent.size(), 5u);
        EXPECT_EQ(sent[0], "Q:SET app.tenant_id = 't1'");
        EXPECT_EQ(sent[1].substr(0, 7), "B::pgt_");
        EXPECT_EQ(fake_.PreparedStatements(0), std::vector<std::string>{}) << "the DISCARD ALL ran";
      },
      Seq({{"Q:RESET ALL;", CloseSetTenant(), ParseSetTenant()}, Plain("t2")}));
}

TEST_F(BelieveTheServerTest, DeallocateOfPgtenantsOwnStatement) {
  RunSequence(
      [](PGconn* a) {
        EXPECT_EQ(Query(a, "DEALLOCATE \"" + SetName() + "\"").Tag(), "DEALLOCATE");
      },
      Seq({{CloseSetTenant(), ParseSetTenant()}, Plain("t2")}));
}

// The name pgtenant once used cannot be guessed any more: A gets what PostgreSQL gives it.
TEST_F(BelieveTheServerTest, DeallocateOfTheOldGuessableName) {
  RunSequence([](PGconn* a) { EXPECT_EQ(Value(a, "DEALLOCATE pgtenant_set_tenant"), "ERROR:26000"); },
              Plain("t2"));
}

TEST_F(BelieveTheServerTest, RolledBackResetAll) {
  RunSequence(
      [](PGconn* a) {
        ASSERT_EQ(Show(a, "search_path"), "a_path,public");
        EXPECT_EQ(Query(a, "BEGIN").Tag(), "BEGIN");
        EXPECT_EQ(Query(a, "RESET ALL").Tag(), "RESET");
        EXPECT_EQ(Query(a, "ROLLBACK").Tag(), "ROLLBACK");
      },
      Seq({{"Q:RESET ALL;"}, Plain("t2")}), " -c search_path=a_path,public", "t1", "a_path,public");
}

// ---- more sequences in the same spirit

// Prepared statements are not transactional: a DEALLOCATE ALL stays done when its block rolls
// back, and the server's tag said it ran.
TEST_F(BelieveTheServerTest, DeallocateAllInABlockThatRollsBack) {
  RunSequence(
      [](PGconn* a) {
        EXPECT_EQ(Query(a, "BEGIN").Tag(), "BEGIN");
        EXPECT_EQ(Value(a, "select 1"), "1");  // the block is on the server now
        EXPECT_EQ(Query(a, "DEALLOCATE ALL").Tag(), "DEALLOCATE ALL");
        EXPECT_EQ(Query(a, "ROLLBACK").Tag(), "ROLLBACK");
      },
      Seq({{CloseSetTenant(), ParseSetTenant()}, Plain("t2")}));
}

// The same DEALLOCATE ALL in a block that has not reached a server yet (a deferred BEGIN):
// pgtenant answers it (the client's protocol-level names go), and the server's statements stay.
TEST_F(BelieveTheServerTest, DeallocateAllInADeferredBlock) {
  RunSequence(
      [this](PGconn* a) {
        const size_t mark = Mark();
        EXPECT_EQ(Query(a, "BEGIN").Tag(), "BEGIN");
        EXPECT_EQ(Query(a, "DEALLOCATE ALL").Tag(), "DEALLOCATE ALL");
        EXPECT_EQ(Query(a, "ROLLBACK").Tag(), "ROLLBACK");
        EXPECT_EQ(SentSince(mark), std::vector<std::string>{});
      },
      Plain("t2"));
}

TEST_F(BelieveTheServerTest, DiscardAllAlone) {
  RunSequence([](PGconn* a) { EXPECT_EQ(Query(a, "DISCARD ALL").Tag(), "DISCARD ALL"); },
              Seq({{"Q:RESET ALL;", CloseSetTenant(), ParseSetTenant()}, Plain("t2")}));
}

// A committed RESET ALL: the sender gets its startup settings back; the next client's prelude
// cannot know what the session holds and starts with RESET ALL.
TEST_F(BelieveTheServerTest, ResetAllInACommittedBlock) {
  RunSequence(
      [](PGconn* a) {
        EXPECT_EQ(Query(a, "BEGIN").Tag(), "BEGIN");
        EXPECT_EQ(Query(a, "RESET ALL").Tag(), "RESET");
        EXPECT_EQ(Query(a, "COMMIT").Tag(), "COMMIT");
      },
      Seq({{"Q:RESET ALL;"}, Plain("t2")}), " -c search_path=a_path,public", "t1", "a_path,public");
}

// RESET of one setting: its block may still roll back, so the settings are unknown.
TEST_F(BelieveTheServerTest, ResetOfOneSetting) {
  RunSequence([](PGconn* a) { EXPECT_EQ(Query(a, "RESET search_path").Tag(), "RESET"); },
              Seq({{"Q:RESET ALL;"}, Plain("t2")}), " -c search_path=a_path,public", "t1", "a_path,public");
}

// A RESET ALL prepared once and run again by Bind/Execute alone: only its tag shows it ran.
TEST_F(BelieveTheServerTest, PreparedResetAllExecutedByBindAlone) {
  RunSequence(
      [this](PGconn* a) {
        ASSERT_TRUE(Prepare(a, "a_reset", "RESET ALL").ok());
        PGconnPtr other = Client("t3");
        ASSERT_TRUE(other);
        EXPECT_EQ(Tenant(other.get()), "t3");
        EXPECT_EQ(ExecPrepared(a, "a_reset").Tag(), "RESET");
      },
      Seq({{"Q:RESET ALL;"}, Plain("t2")}), " -c search_path=a_path,public", "t1", "a_path,public");
}

// A SET of a reported setting in a block that rolls back: the server reports the old value
// again, and nothing of it stays for B.
TEST_F(BelieveTheServerTest, SetInARolledBackBlock) {
  RunSequence(
      [](PGconn* a) {
        EXPECT_EQ(Query(a, "BEGIN").Tag(), "BEGIN");
        EXPECT_EQ(Query(a, "SET application_name = 'a_in_block'").Tag(), "SET");
        EXPECT_EQ(Query(a, "ROLLBACK").Tag(), "ROLLBACK");
        EXPECT_STREQ(PQparameterStatus(a, "application_name"), "");
      },
      // The reports made A's (and the server's) application_name an explicit '': B, who
      // gave none, gets it RESET.
      Seq({{"Q:RESET \"application_name\";"}, Plain("t2")}));
}

// A's tenant named by SET LOCAL in a block that commits: it ended with the block.
TEST_F(BelieveTheServerTest, SetLocalTenantInACommittedBlock) {
  RunSequence(
      [](PGconn* a) {
        EXPECT_EQ(Query(a, "BEGIN").Tag(), "BEGIN");
        EXPECT_EQ(Query(a, "SET LOCAL app.tenant_id = 't3'").Tag(), "SET");
        EXPECT_EQ(Tenant(a), "t3");
        EXPECT_EQ(Query(a, "COMMIT").Tag(), "COMMIT");
      },
      Plain("t2"));
}

// A's tenant changed by SET in a deferred block that rolls back: not A's tenant after all.
TEST_F(BelieveTheServerTest, SessionTenantSetInARolledBackBlock) {
  RunSequence(
      [](PGconn* a) {
        EXPECT_EQ(Query(a, "BEGIN").Tag(), "BEGIN");
        EXPECT_EQ(Query(a, "SET app.tenant_id = 't3'").Tag(), "SET");
        EXPECT_EQ(Tenant(a), "t3");
        EXPECT_EQ(Query(a, "ROLLBACK").Tag(), "ROLLBACK");
      },
      Plain("t2"));
}

// A Query that fails after pgtenant set A's tenant in its implicit transaction.
TEST_F(BelieveTheServerTest, AnErrorAfterASetInOneQuery) {
  RunSequence(
      [](PGconn* a) {
        EXPECT_EQ(Value(a, "SET application_name = 'gone'; select 1/0"), "ERROR:22012");
        EXPECT_STREQ(PQparameterStatus(a, "application_name"), "");
      },
      Plain("t2"));
}

}  // namespace
}  // namespace pgtenant::testing
