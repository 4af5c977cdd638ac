// FakePostgres on its own, driven by libpq directly (no pgtenant): what the machine tests rely
// on must behave as PostgreSQL 15 does. PGTENANT_FAKE_CHECK_PORT=<port> runs the same tests
// against a real PostgreSQL 15 on 127.0.0.1 (user app_rls, database app, trust), which checks
// the expectations; the checks of what the fake recorded are skipped then.
#include "fake_postgres.h"

#include <gtest/gtest.h>

#include "pooler_harness.h"
#include "protocol/messages.h"

namespace pgtenant::testing {
namespace {

class FakePostgresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(fake_.port(), 0);
    const char* real = getenv("PGTENANT_FAKE_CHECK_PORT");
    direct_ = real != nullptr;
    std::string conninfo = "host=127.0.0.1 port=";
    conninfo += direct_ ? std::string(real) : std::to_string(fake_.port());
    conninfo += " dbname=app user=app_rls sslmode=disable connect_timeout=5";
    c_.reset(PQconnectdb(conninfo.c_str()));
    ASSERT_EQ(PQstatus(c_.get()), CONNECTION_OK) << PQerrorMessage(c_.get());
  }
  PGconn* c() { return c_.get(); }
  bool direct_ = false;  // against a real PostgreSQL

  FakePostgres fake_;
  PGconnPtr c_;
};

TEST_F(FakePostgresTest, LoginReportsParametersAndKey) {
  EXPECT_STREQ(PQparameterStatus(c(), "server_encoding"), "UTF8");
  EXPECT_STREQ(PQparameterStatus(c(), "application_name"), "");
  if (direct_) return;
  EXPECT_EQ(PQbackendPID(c()), fake_.BackendPid(0));
  EXPECT_EQ(fake_.Received(0).at(0), "startup user=app_rls database=app");
}

TEST_F(FakePostgresTest, SettingsAreTransactional) {
  EXPECT_EQ(Value(c(), "SET search_path = a, 'B c'"), "");
  EXPECT_EQ(Value(c(), "SHOW search_path"), "a, \"B c\"");
  EXPECT_EQ(Value(c(), "BEGIN"), "");
  EXPECT_EQ(Value(c(), "SET search_path TO x"), "");
  EXPECT_EQ(Value(c(), "SET LOCAL extra_float_digits = 3"), "");
  EXPECT_EQ(Value(c(), "SHOW extra_float_digits"), "3");
  EXPECT_EQ(Value(c(), "ROLLBACK"), "");
  EXPECT_EQ(Value(c(), "SHOW search_path"), "a, \"B c\"");
  EXPECT_EQ(Value(c(), "SHOW extra_float_digits"), "1");
  EXPECT_EQ(Value(c(), "BEGIN; SET LOCAL extra_float_digits = 2; COMMIT"), "");
  EXPECT_EQ(Value(c(), "SHOW extra_float_digits"), "1") << "SET LOCAL ends with its block";
  EXPECT_EQ(Value(c(), "BEGIN; RESET ALL; ROLLBACK"), "");
  EXPECT_EQ(Value(c(), "SHOW search_path"), "a, \"B c\"") << "a rolled-back RESET ALL changed nothing";
  EXPECT_EQ(Value(c(), "RESET ALL"), "");
  EXPECT_EQ(Value(c(), "SHOW search_path"), "\"$user\", public");
}

TEST_F(FakePostgresTest, CustomVariablesAndSetConfig) {
  EXPECT_EQ(Value(c(), "select current_setting('app.tenant_id')"), "ERROR:42704");
  EXPECT_EQ(Value(c(), "select current_setting('app.tenant_id', true)"), "<null>");
  EXPECT_EQ(Value(c(), "select set_config('app.tenant_id', 't1', false)"), "t1");
  EXPECT_EQ(Value(c(), "select current_setting('app.tenant_id')"), "t1");
  EXPECT_EQ(Value(c(), "RESET app.tenant_id"), "");
  EXPECT_EQ(Value(c(), "select current_setting('app.tenant_id', true)"), "") << "the placeholder stays";
  EXPECT_EQ(Value(c(), "SET \"app\".\"tenant_id\" = 'q''s'"), "");
  EXPECT_EQ(Value(c(), "SHOW app.tenant_id"), "q's");
  EXPECT_EQ(Value(c(), "select pg_catalog.set_config('app.tenant_id', 'loc', true)"), "loc");
  EXPECT_EQ(Value(c(), "SHOW app.tenant_id"), "q's") << "is_local outside a block lasts one statement";
  EXPECT_EQ(Value(c(), "SET nosuch_setting = 1"), "ERROR:42704");
  EXPECT_EQ(Value(c(), "SET server_version = '1'"), "ERROR:55P02");
}

TEST_F(FakePostgresTest, TransactionStatusAndAbortedBlocks) {
  EXPECT_EQ(PQtransactionStatus(c()), PQTRANS_IDLE);
  EXPECT_EQ(Query(c(), "BEGIN").Tag(), "BEGIN");
  EXPECT_EQ(PQtransactionStatus(c()), PQTRANS_INTRANS);
  EXPECT_EQ(Value(c(), "select 1/0"), "ERROR:22012");
  EXPECT_EQ(PQtransactionStatus(c()), PQTRANS_INERROR);
  EXPECT_EQ(Value(c(), "DEALLOCATE ALL"), "ERROR:25P02");
  EXPECT_EQ(Query(c(), "COMMIT").Tag(), "ROLLBACK") << "COMMIT of a failed block";
  EXPECT_EQ(PQtransactionStatus(c()), PQTRANS_IDLE);
  EXPECT_EQ(Query(c(), "START TRANSACTION").Tag(), "START TRANSACTION");
  EXPECT_EQ(Value(c(), "DISCARD ALL"), "ERROR:25001");
  EXPECT_EQ(Query(c(), "ABORT").Tag(), "ROLLBACK");
  EXPECT_EQ(Value(c(), "SELECT 1; DISCARD ALL"), "ERROR:25001") << "an implicit block refuses it too";
  EXPECT_EQ(Query(c(), "DISCARD ALL").Tag(), "DISCARD ALL");
  EXPECT_EQ(Query(c(), "/* c */ DEALLOCATE ALL").Tag(), "DEALLOCATE ALL");
  EXPECT_EQ(Query(c(), "VACUUM").Tag(), "VACUUM");
}

TEST_F(FakePostgresTest, ErrorInAMultiStatementQueryUndoesItsEarlierStatements) {
  PqResults r = Query(c(), "SET application_name = 'x'; select 1/0; SET application_name = 'y'");
  EXPECT_EQ(r.Value(), "ERROR:22012");
  EXPECT_EQ(Value(c(), "SHOW application_name"), "");
  EXPECT_STREQ(PQparameterStatus(c(), "application_name"), "");
  EXPECT_EQ(Value(c(), "SET application_name = 'z'"), "");
  EXPECT_STREQ(PQparameterStatus(c(), "application_name"), "z") << "reported before ReadyForQuery";
}

TEST_F(FakePostgresTest, PreparedStatementsOverBothProtocols) {
  EXPECT_TRUE(Prepare(c(), "s1", "select $1::text", 1).ok());
  EXPECT_EQ(Prepare(c(), "s1", "select 2").Value(), "ERROR:42P05");
  EXPECT_EQ(ExecPrepared(c(), "s1", {std::string("v")}).Value(), "v");
  EXPECT_EQ(ExecPrepared(c(), "nosuch").Value(), "ERROR:26000");
  EXPECT_EQ(Query(c(), "PREPARE s2 AS select 2").Tag(), "PREPARE");
  EXPECT_EQ(Query(c(), "PREPARE s1 AS select 2").Value(), "ERROR:42P05");
  EXPECT_EQ(Value(c(), "EXECUTE s2"), "2");
  EXPECT_EQ(Value(c(), "select count(*) from pg_prepared_statements"), "2");
  EXPECT_EQ(Query(c(), "DEALLOCATE s1").Tag(), "DEALLOCATE");
  EXPECT_EQ(Query(c(), "DEALLOCATE s1").Value(), "ERROR:26000");
  PqResults d = DescribePrepared(c(), "s2");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d.results.back().columns, std::vector<std::string>{"?column?"});
  // A DISCARD ALL prepared once and run again by Bind/Execute alone.
  EXPECT_TRUE(Prepare(c(), "d", "DISCARD ALL").ok());
  EXPECT_EQ(ExecPrepared(c(), "d").Tag(), "DISCARD ALL");
  EXPECT_EQ(Value(c(), "select count(*) from pg_prepared_statements"), "0");
  EXPECT_EQ(QueryParams(c(), "select 1; select 2").Value(), "ERROR:42601");
  // A failed Parse leaves no statement (PreparedMachineTest.DISABLED_ABindOfAStatementWhoseParseFailedIs26000).
  EXPECT_EQ(Prepare(c(), "bad", "select no_such_function()").Value(), "ERROR:42883");
  EXPECT_EQ(ExecPrepared(c(), "bad").Value(), "ERROR:26000");
}

TEST_F(FakePostgresTest, PipelinesRefuseDiscardAllAfterTheirFirstExecute) {
  EXPECT_EQ(RunPipeline(c(), {{"select 1"}, {"DISCARD ALL"}, {"select 2"}}),
            (std::vector<std::string>{"SELECT 1", "ERROR:25001", "skipped", "sync"}));
  EXPECT_EQ(RunPipeline(c(), {{"DISCARD ALL"}}), (std::vector<std::string>{"DISCARD ALL", "sync"}));
  EXPECT_EQ(PQtransactionStatus(c()), PQTRANS_IDLE);
}

TEST_F(FakePostgresTest, InjectedErrorsAndRecordedMessages) {
  if (direct_) GTEST_SKIP() << "the fake's own scripting";
  fake_.Inject({.statement_contains = "select 42", .sqlstate = "57014", .message = "canceled", .skip = 1});
  EXPECT_EQ(Value(c(), "select 42"), "42");
  EXPECT_EQ(Value(c(), "select 42"), "ERROR:57014");
  EXPECT_EQ(Value(c(), "select 42"), "42") << "times = 1";
  size_t mark = fake_.ReceivedCount(0);
  EXPECT_EQ(QueryParams(c(), "select $1::text", {std::nullopt}).Value(), "<null>");
  EXPECT_EQ(fake_.ReceivedSince(0, mark),
            (std::vector<std::string>{"P::select $1::text", "B:::NULL", "D:P:", "E:", "S"}));
  std::vector<std::string> done = fake_.Completed(0);
  ASSERT_FALSE(done.empty());
  EXPECT_EQ(done.back(), "SELECT 1|select $1::text");
}

TEST_F(FakePostgresTest, AnInjectedCrashClosesTheConnection) {
  if (direct_) GTEST_SKIP() << "the fake's own scripting";
  fake_.Inject({.statement_contains = "select 7", .sqlstate = "57P01", .message = "terminating",
                .close_connection = true, .fatal = true});
  PqResults r = Query(c(), "select 7");
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(fake_.WaitFor([&] { return fake_.open_connections() == 0; }));
}

// After an error in an extended-protocol message PostgreSQL skips every message, a Query too,
// until Sync; the error itself is flushed at once. (pgtenant's prelude failure handling relies
// on both: its own Execute fails and the client's Query behind it gets no answer.)
TEST_F(FakePostgresTest, AfterAnExtendedProtocolErrorEverythingUntilSyncIsSkipped) {
  RawClient raw;
  std::string error;
  const char* real = getenv("PGTENANT_FAKE_CHECK_PORT");
  ASSERT_TRUE(raw.Connect(real ? atoi(real) : fake_.port(), {{"user", "app_rls"}, {"database", "app"}}, &error))
      << error;
  std::string batch;
  // (current_setting is not folded by the planner: it fails at Execute.)
  protocol::AppendParse(&batch, "", "select current_setting('no.such_setting')", {});
  protocol::AppendBindUnnamed(&batch);
  protocol::AppendExecuteUnnamed(&batch);
  protocol::AppendQuery(&batch, "select 1");
  raw.Send(batch);
  EXPECT_EQ(raw.ReadFor(300), (std::vector<std::string>{"1", "2", "E:42704"}));
  std::string sync;
  protocol::AppendSync(&sync);
  raw.Send(sync);
  EXPECT_EQ(raw.ReadUntilReady(), std::vector<std::string>{"Z:I"}) << "the Query got no answer";
}

// A division of two constants by zero fails when the statement is planned, at Bind.
TEST_F(FakePostgresTest, ConstantFoldingErrorsComeAtBind) {
  RawClient raw;
  std::string error;
  const char* real = getenv("PGTENANT_FAKE_CHECK_PORT");
  ASSERT_TRUE(raw.Connect(real ? atoi(real) : fake_.port(), {{"user", "app_rls"}, {"database", "app"}}, &error))
      << error;
  std::string batch;
  protocol::AppendParse(&batch, "", "select 1/0", {});
  protocol::AppendBindUnnamed(&batch);
  protocol::AppendExecuteUnnamed(&batch);
  protocol::AppendSync(&batch);
  raw.Send(batch);
  EXPECT_EQ(raw.ReadUntilReady(), (std::vector<std::string>{"1", "E:22012", "Z:I"}));
  EXPECT_EQ(Value(c(), "select 1/0"), "ERROR:22012");
}

// A Close and a Parse skipped after an error change nothing: the closed statement is still
// there, the parsed one is not (the expectation of
// ExtendedProtocolMachineTest.DISABLED_SkippedCloseAndParseLeaveTheClientsNamesAlone).
TEST_F(FakePostgresTest, SkippedCloseAndParseChangeNothing) {
  RawClient raw;
  std::string error;
  const char* real = getenv("PGTENANT_FAKE_CHECK_PORT");
  ASSERT_TRUE(raw.Connect(real ? atoi(real) : fake_.port(), {{"user", "app_rls"}, {"database", "app"}}, &error))
      << error;
  std::string batch;
  protocol::AppendParse(&batch, "known", "select 13", {});
  protocol::AppendSync(&batch);
  raw.Send(batch);
  EXPECT_EQ(raw.ReadUntilReady(), (std::vector<std::string>{"1", "Z:I"}));
  batch.clear();
  protocol::AppendParse(&batch, "", "select 1/0", {});
  protocol::AppendBindUnnamed(&batch);
  protocol::AppendExecuteUnnamed(&batch);
  protocol::AppendParse(&batch, "again", "select 13", {});
  protocol::AppendClose(&batch, 'S', "known");
  protocol::AppendSync(&batch);
  raw.Send(batch);
  EXPECT_EQ(raw.ReadUntilReady(), (std::vector<std::string>{"1", "E:22012", "Z:I"}));
  batch.clear();
  protocol::AppendBindNoParameters(&batch, "known");
  protocol::AppendExecuteUnnamed(&batch);
  protocol::AppendSync(&batch);
  protocol::AppendBindNoParameters(&batch, "again");
  protocol::AppendExecuteUnnamed(&batch);
  protocol::AppendSync(&batch);
  raw.Send(batch);
  EXPECT_EQ(raw.ReadUntilReady(2), (std::vector<std::string>{"2", "D:13", "C:SELECT 1", "Z:I", "E:26000", "Z:I"}));
}

}  // namespace
}  // namespace pgtenant::testing
