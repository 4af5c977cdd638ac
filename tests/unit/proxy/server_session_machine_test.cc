// ServerSession through a real Pooler and the fake backend: logins the backend refuses,
// connections the backend drops (idle, in a transaction, mid-statement), errors in pgtenant's
// own prelude, the first transaction's rollback taking the prelude's tenant along, clients
// that leave with work on the connection (Resetting), waiting for the one server, session mode.
#include <gtest/gtest.h>
#include <poll.h>

#include <algorithm>
#include <thread>

#include "machine_test.h"
#include "protocol/messages.h"

namespace pgtenant::testing {
namespace {

class ServerSessionMachineTest : public MachineTest {
 public:
  static std::string ProbeQuery() { return std::string("Q:") + kTenantProbe; }
  // Connects, retrying for a while (pgtenant holds back new connection attempts for 200 ms
  // after a failed login).
  PGconnPtr ConnectWithin(const std::string& tenant, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string error;
    while (std::chrono::steady_clock::now() < deadline) {
      PGconnPtr c = harness_.Connect("options='-c app.tenant_id=" + tenant + "'", &error);
      if (c) return c;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << "could not connect: " << error;
    return nullptr;
  }
  // True when `c` has no result within `ms` (it waits for a server).
  static bool StillWaiting(PGconn* c, int ms) {
    pollfd p{PQsocket(c), POLLIN, 0};
    return poll(&p, 1, ms) == 0;
  }
};

TEST_F(ServerSessionMachineTest, ALoginTheBackendRefusesFailsTheWaitingClient) {
  StartPooler();
  fake_.FailLogins("28P01", "password authentication failed for user \"app_rls\"");
  std::string error;
  PGconnPtr c = harness_.Connect("options='-c app.tenant_id=t1'", &error);
  EXPECT_FALSE(c);
  EXPECT_NE(error.find("shared"), std::string::npos) << "the message names the pool: " << error;
  EXPECT_EQ(fake_.connections(), 1);
  fake_.FailLogins("", "");
  PGconnPtr again = ConnectWithin("t1", std::chrono::seconds(3));
  ASSERT_TRUE(again);
  EXPECT_EQ(Tenant(again.get()), "t1");
}

// The pool knows the server's parameters already: a refused login fails the client's query,
// and the client stays connected.
TEST_F(ServerSessionMachineTest, ALaterRefusedLoginFailsTheQueryNotTheSession) {
  StartPooler();
  PGconnPtr a = Client("t1");
  ASSERT_TRUE(a);
  ASSERT_EQ(Tenant(a.get()), "t1");
  fake_.KillConnection(0);
  ASSERT_TRUE(fake_.WaitFor([&] { return fake_.open_connections() == 0; }));
  fake_.FailLogins("53300", "sorry, too many clients already");
  ASSERT_TRUE(fake_.WaitFor([&] { return ServerCount("shared") == 0; }));
  EXPECT_EQ(Tenant(a.get()), "ERROR:08006") << "the query needs a new login, which the backend refuses";
  EXPECT_EQ(PQstatus(a.get()), CONNECTION_OK);
  fake_.FailLogins("", "");
  std::string after;
  for (int i = 0; i < 60 && after != "t1"; ++i) {
    after = Tenant(a.get());
    if (after != "t1") std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(after, "t1");
}

TEST_F(ServerSessionMachineTest, AnIdleConnectionTheBackendClosesIsReplaced) {
  StartPooler();
  PGconnPtr a = Client("t1");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  ASSERT_EQ(Tenant(a.get()), "t1");
  fake_.TerminateConnection(0);
  ASSERT_TRUE(fake_.WaitFor([&] { return fake_.open_connections() == 0; }));
  // Once pgtenant noticed (the idle connection is gone from the pool), B gets a new one.
  ASSERT_TRUE(fake_.WaitFor([&] { return ServerCount("shared") == 0; }));
  EXPECT_EQ(Tenant(b.get()), "t2");
  ASSERT_EQ(fake_.connections(), 2);
  EXPECT_EQ(fake_.Received(1),
            Seq({{"startup user=app_rls database=app", CloseSetTenant(), ParseSetTenant()}, BindTenant("t2"),
                 {ProbeQuery()}}));
  EXPECT_EQ(Tenant(a.get()), "t1");
}

TEST_F(ServerSessionMachineTest, TheBackendClosingMidTransactionEndsThatClientOnly) {
  StartPooler();
  PGconnPtr a = Client("t1");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(Query(a.get(), "BEGIN").Tag(), "BEGIN");
  EXPECT_EQ(Tenant(a.get()), "t1");
  fake_.KillConnection(0);
  ASSERT_TRUE(fake_.WaitFor([&] { return fake_.open_connections() == 0; }));
  PqResults r = Query(a.get(), "select 1");
  EXPECT_FALSE(r.ok());
  ASSERT_FALSE(r.results.empty());
  EXPECT_EQ(r.results.front().sqlstate, "08006") << r.results.front().message;
  EXPECT_EQ(PQstatus(a.get()), CONNECTION_BAD) << "a lost transaction ends the session, as a backend crash does";
  EXPECT_EQ(Tenant(b.get()), "t2");
  EXPECT_EQ(fake_.connections(), 2);
}

TEST_F(ServerSessionMachineTest, TheBackendCrashingDuringAStatement) {
  StartPooler();
  PGconnPtr a = Client("t1");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  fake_.Inject({.statement_contains = "select 99", .close_connection = true});
  EXPECT_FALSE(Query(a.get(), "select 99").ok());
  EXPECT_EQ(PQstatus(a.get()), CONNECTION_BAD);
  EXPECT_EQ(Tenant(b.get()), "t2");
}

// pgtenant's own tenant statement fails (it should not): the client's statements did not run,
// it gets the error with its ReadyForQuery, and the connection is closed rather than reused.
TEST_F(ServerSessionMachineTest, AnErrorInThePreludesTenantStatement) {
  StartPooler();
  PGconnPtr a = Client("t1");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  ASSERT_EQ(Tenant(a.get()), "t1");
  fake_.Inject({.statement_contains = "set_config('app.tenant_id', $1", .sqlstate = "XX001",
                .message = "injected failure of the prelude"});
  EXPECT_EQ(Value(b.get(), "select 42"), "ERROR:XX001");
  EXPECT_EQ(PQstatus(b.get()), CONNECTION_OK) << "the client stays";
  std::vector<std::string> done = fake_.Completed(0);
  EXPECT_TRUE(std::none_of(done.begin(), done.end(), [](const std::string& s) { return s.find("select 42") != std::string::npos; }))
      << "B's statement never ran without its tenant";
  ASSERT_TRUE(fake_.WaitFor([&] { return fake_.open_connections() == 0; })) << "the connection was closed";
  EXPECT_EQ(fake_.Received(0).back(), "X");
  EXPECT_EQ(Tenant(b.get()), "t2");
  EXPECT_EQ(QueryParams(b.get(), kTenantProbe).Value(), "t2");
  EXPECT_EQ(Tenant(a.get()), "t1");
  EXPECT_EQ(fake_.connections(), 2);
}

// The same over the extended protocol, with a pipeline of two Syncs: one ReadyForQuery each.
TEST_F(ServerSessionMachineTest, AnErrorInThePreludeBeforeAPipeline) {
  StartPooler();
  PGconnPtr a = Client("t1");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  ASSERT_EQ(Tenant(a.get()), "t1");
  fake_.Inject({.statement_contains = "set_config('app.tenant_id', $1", .sqlstate = "XX001",
                .message = "injected failure of the prelude"});
  std::vector<std::string> outcomes = RunPipeline(b.get(), {{"select 1"}, {"select 2"}});
  ASSERT_FALSE(outcomes.empty());
  EXPECT_EQ(outcomes.front(), "ERROR:XX001");
  EXPECT_EQ(outcomes.back(), "sync");
  EXPECT_EQ(PQstatus(b.get()), CONNECTION_OK);
  EXPECT_EQ(Tenant(b.get()), "t2");
}

// The settings Query of a prelude fails: the same, for the client that needed it.
TEST_F(ServerSessionMachineTest, AnErrorInThePreludesSettingsQuery) {
  StartPooler();
  PGconnPtr a = ClientWithOptions("-c app.tenant_id=t1 -c search_path=a_path");
  ASSERT_TRUE(a);
  fake_.Inject({.statement_contains = "set_config('search_path'", .sqlstate = "XX002", .message = "injected"});
  EXPECT_EQ(Tenant(a.get()), "ERROR:XX002");
  EXPECT_EQ(PQstatus(a.get()), CONNECTION_OK);
  EXPECT_EQ(Tenant(a.get()), "t1");
  EXPECT_EQ(Show(a.get(), "search_path"), "a_path");
}

// The client's first transaction fails or rolls back: the prelude's tenant went with it, and
// pgtenant sets it again, for the same client too.
TEST_F(ServerSessionMachineTest, TheFirstTransactionTakesThePreludesTenantAlong) {
  StartPooler();
  PGconnPtr a = Client("t1");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  ASSERT_EQ(Tenant(a.get()), "t1");
  size_t mark = Mark();
  EXPECT_EQ(Value(b.get(), "select 1/0"), "ERROR:22012");
  EXPECT_EQ(SentSince(mark), Seq({BindTenant("t2"), {"Q:select 1/0"}}));
  EXPECT_EQ(fake_.Setting(0, "app.tenant_id"), "t1") << "the backend rolled the tenant back";
  mark = Mark();
  EXPECT_EQ(Tenant(b.get()), "t2");
  EXPECT_EQ(SentSince(mark), Seq({BindTenant("t2"), {ProbeQuery()}}));
  // An explicit block that rolls back, behind a deferred BEGIN.
  ASSERT_EQ(Tenant(a.get()), "t1");
  EXPECT_EQ(Query(b.get(), "BEGIN").Tag(), "BEGIN");
  EXPECT_EQ(Value(b.get(), "select 5"), "5");
  EXPECT_EQ(Query(b.get(), "ROLLBACK").Tag(), "ROLLBACK");
  EXPECT_EQ(fake_.Setting(0, "app.tenant_id"), "t1");
  mark = Mark();
  EXPECT_EQ(Tenant(b.get()), "t2");
  EXPECT_EQ(SentSince(mark), Seq({BindTenant("t2"), {ProbeQuery()}}));
}

TEST_F(ServerSessionMachineTest, PipelinesWithAnErrorInTheMiddle) {
  StartPooler();
  PGconnPtr a = Client("t1");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  ASSERT_EQ(Tenant(a.get()), "t1");
  EXPECT_EQ(RunPipeline(a.get(), {{"select 1"}, {"select 1/0"}, {"select 2"}}),
            (std::vector<std::string>{"SELECT 1", "ERROR:22012", "skipped", "sync"}));
  EXPECT_EQ(Tenant(a.get()), "t1");
  // B's first batch is a pipeline that fails: the prelude's tenant shared its transaction.
  EXPECT_EQ(RunPipeline(b.get(), {{"select 1/0"}, {"select 2"}}),
            (std::vector<std::string>{"ERROR:22012", "skipped", "sync"}));
  size_t mark = Mark();
  EXPECT_EQ(Tenant(b.get()), "t2");
  EXPECT_EQ(SentSince(mark), Seq({BindTenant("t2"), {ProbeQuery()}}));
  EXPECT_EQ(Tenant(a.get()), "t1");
}

TEST_F(ServerSessionMachineTest, AClientLeavingInsideABlockIsRolledBack) {
  StartPooler();
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(b);
  for (const char* last : {"select 1", "select 1/0"}) {
    SCOPED_TRACE(last);
    PGconnPtr a = Client("t1");
    ASSERT_TRUE(a);
    EXPECT_EQ(Query(a.get(), "BEGIN").Tag(), "BEGIN");
    EXPECT_EQ(Query(a.get(), "SET application_name = 'left_behind'").Tag(), "SET");
    Query(a.get(), last);
    size_t mark = Mark();
    a.reset();
    ASSERT_TRUE(fake_.WaitFor([&] { return fake_.TransactionStatus(0) == 'I'; }));
    EXPECT_EQ(SentSince(mark), std::vector<std::string>{"Q:ROLLBACK"});
    EXPECT_EQ(Tenant(b.get()), "t2");
    EXPECT_EQ(Show(b.get(), "application_name"), "");
  }
  EXPECT_EQ(fake_.connections(), 1) << "rolled back and reused";
}

TEST_F(ServerSessionMachineTest, AClientWaitsForTheOneServerAndGetsItAtCommit) {
  StartPooler();
  PGconnPtr a = Client("t1");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(Query(a.get(), "BEGIN").Tag(), "BEGIN");
  EXPECT_EQ(Tenant(a.get()), "t1");
  ASSERT_EQ(PQsendQuery(b.get(), kTenantProbe), 1);
  EXPECT_TRUE(StillWaiting(b.get(), 150)) << "B waits while A holds the one server";
  EXPECT_EQ(Query(a.get(), "COMMIT").Tag(), "COMMIT");
  EXPECT_EQ(CollectResults(b.get()).Value(), "t2");
  EXPECT_EQ(fake_.connections(), 1);
}

TEST_F(ServerSessionMachineTest, AWaitThatLastsTooLongFailsWith57014) {
  HarnessOptions options;
  options.extra_yaml = "timeouts:\n  query_wait: 300ms\n";
  StartPooler(options);
  PGconnPtr a = Client("t1");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(Query(a.get(), "BEGIN").Tag(), "BEGIN");
  EXPECT_EQ(Tenant(a.get()), "t1");
  EXPECT_EQ(Tenant(b.get()), "ERROR:57014");
  EXPECT_EQ(PQstatus(b.get()), CONNECTION_OK);
  EXPECT_EQ(Query(a.get(), "COMMIT").Tag(), "COMMIT");
  EXPECT_EQ(Tenant(b.get()), "t2");
}

TEST_F(ServerSessionMachineTest, IdleInTransactionTooLongIsTerminatedAndTheServerReused) {
  HarnessOptions options;
  options.extra_yaml = "timeouts:\n  idle_transaction: 200ms\n";
  StartPooler(options);
  PGconnPtr a = Client("t1");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(Query(a.get(), "BEGIN").Tag(), "BEGIN");
  EXPECT_EQ(Tenant(a.get()), "t1");
  const size_t mark = Mark();
  ASSERT_TRUE(fake_.WaitFor([&] { return fake_.ReceivedCount(0) > mark; }, std::chrono::seconds(3)));
  EXPECT_EQ(SentSince(mark), std::vector<std::string>{"Q:ROLLBACK"});
  PqResults r = Query(a.get(), "select 1");
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(PQstatus(a.get()), CONNECTION_BAD);
  EXPECT_EQ(Tenant(b.get()), "t2");
  EXPECT_EQ(fake_.connections(), 1);
}

// Session mode: a client keeps its server until it leaves; then DISCARD ALL, and the next
// client's prelude starts from a known-empty session.
TEST_F(ServerSessionMachineTest, SessionModeResetsTheConnectionBetweenClients) {
  HarnessOptions options;
  options.shared_mode = "session";
  StartPooler(options);
  PGconnPtr a = ClientWithOptions("-c app.tenant_id=t1 -c search_path=a_path");
  ASSERT_TRUE(a);
  EXPECT_EQ(Tenant(a.get()), "t1");
  EXPECT_EQ(Query(a.get(), "SET statement_timeout = 999").Tag(), "SET");
  EXPECT_EQ(Query(a.get(), "SET app.tenant_id = 't3'").Tag(), "SET");
  size_t mark = Mark();
  EXPECT_EQ(Tenant(a.get()), "t3");
  EXPECT_EQ(SentSince(mark), Seq({BindTenant("t3"), {ProbeQuery()}})) << "a session-mode prelude mid-session";
  EXPECT_EQ(Show(a.get(), "statement_timeout"), "999");
  mark = Mark();
  a.reset();
  ASSERT_TRUE(fake_.WaitFor([&] { return fake_.ReceivedCount(0) > mark; }));
  EXPECT_EQ(SentSince(mark), std::vector<std::string>{"Q:DISCARD ALL"});
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(b);
  mark = Mark();
  EXPECT_EQ(Tenant(b.get()), "t2");
  EXPECT_EQ(SentSince(mark), Seq({{CloseSetTenant(), ParseSetTenant()}, BindTenant("t2"), {ProbeQuery()}}));
  EXPECT_EQ(Show(b.get(), "statement_timeout"), "0");
  EXPECT_EQ(Show(b.get(), "search_path"), "\"$user\", public");
  EXPECT_EQ(fake_.connections(), 1);
}

// Session mode and the sequences: the client keeps its server, so what it did stays
// its own; the next client gets the connection after DISCARD ALL.
TEST_F(ServerSessionMachineTest, SessionModeSequences) {
  HarnessOptions options;
  options.shared_mode = "session";
  StartPooler(options);
  const std::vector<std::vector<std::string>> sequences = {
      {"BEGIN", "DISCARD ALL", "ROLLBACK"},
      {"SELECT 1; DISCARD ALL"},
      {"BEGIN", "select 1/0", "DEALLOCATE ALL", "ROLLBACK"},
      {"/* c */ DEALLOCATE ALL"},
      {"BEGIN", "RESET ALL", "ROLLBACK"},
      {"DISCARD ALL"},
  };
  for (const auto& seq : sequences) {
    SCOPED_TRACE(seq.front());
    PGconnPtr a = ClientWithOptions("-c app.tenant_id=t1 -c search_path=a_path");
    ASSERT_TRUE(a);
    ASSERT_EQ(Tenant(a.get()), "t1");
    for (const std::string& sql : seq) Query(a.get(), sql);
    ASSERT_EQ(PQtransactionStatus(a.get()), PQTRANS_IDLE);
    EXPECT_EQ(Tenant(a.get()), "t1");
    EXPECT_EQ(QueryParams(a.get(), kTenantProbe).Value(), "t1");
    EXPECT_EQ(Show(a.get(), "search_path"), "a_path");
    a.reset();
    PGconnPtr b = Client("t2");
    ASSERT_TRUE(b);
    EXPECT_EQ(Tenant(b.get()), "t2");
    EXPECT_EQ(QueryParams(b.get(), kTenantProbe).Value(), "t2");
    EXPECT_EQ(Show(b.get(), "search_path"), "\"$user\", public");
  }
  EXPECT_EQ(fake_.connections(), 1);
}

// pgtenant authenticates to the backend with the pool's password, as PostgreSQL asks.
class BackendAuthTest : public ServerSessionMachineTest,
                        public ::testing::WithParamInterface<FakePostgres::Auth> {};

TEST_P(BackendAuthTest, TheRightPasswordLogsIn) {
  fake_.RequirePassword(GetParam(), "app_rls_pw");
  StartPooler();
  PGconnPtr a = Client("t1");
  ASSERT_TRUE(a);
  EXPECT_EQ(Tenant(a.get()), "t1");
  std::vector<std::string> received = fake_.Received(0);
  ASSERT_GE(received.size(), 2u);
  EXPECT_EQ(received[1], "password") << "the backend asked, pgtenant answered";
}

TEST_P(BackendAuthTest, AWrongPasswordFailsTheLogin) {
  fake_.RequirePassword(GetParam(), "another_password");
  StartPooler();
  std::string error;
  PGconnPtr a = harness_.Connect("options='-c app.tenant_id=t1'", &error);
  EXPECT_FALSE(a);
  EXPECT_NE(error.find("shared"), std::string::npos) << error;
  EXPECT_EQ(fake_.open_connections(), 0);
}

INSTANTIATE_TEST_SUITE_P(Methods, BackendAuthTest,
                         ::testing::Values(FakePostgres::Auth::kCleartext, FakePostgres::Auth::kMd5,
                                           FakePostgres::Auth::kScram),
                         [](const ::testing::TestParamInfo<FakePostgres::Auth>& info) {
                           switch (info.param) {
                             case FakePostgres::Auth::kCleartext: return std::string("cleartext");
                             case FakePostgres::Auth::kMd5: return std::string("md5");
                             case FakePostgres::Auth::kScram: return std::string("scram");
                             default: return std::string("trust");
                           }
                         });

// tls: prefer to a backend that does not speak TLS goes on in the clear; require refuses.
TEST_F(ServerSessionMachineTest, BackendTlsPreferFallsBackRequireRefuses) {
  HarnessOptions options;
  options.shared_extra = "    tls: prefer\n";
  StartPooler(options);
  PGconnPtr a = Client("t1");
  ASSERT_TRUE(a);
  EXPECT_EQ(Tenant(a.get()), "t1");
  EXPECT_EQ(fake_.Received(0).at(0), "sslrequest");
  a.reset();
  EXPECT_TRUE(harness_.Stop());
  HarnessOptions require;
  require.shared_extra = "    tls: require\n";
  StartPooler(require);
  std::string error;
  PGconnPtr b = harness_.Connect("options='-c app.tenant_id=t2'", &error);
  EXPECT_FALSE(b);
  EXPECT_NE(error.find("TLS"), std::string::npos) << error;
}

// A backend that sends something malformed while a client holds it: that client's session
// ends (its transaction is gone), nobody else's.
TEST_F(ServerSessionMachineTest, AMalformedBackendMessageEndsTheSession) {
  StartPooler();
  PGconnPtr a = Client("t1");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(Query(a.get(), "BEGIN").Tag(), "BEGIN");
  EXPECT_EQ(Tenant(a.get()), "t1");
  fake_.SendRaw(0, std::string("Z\0\0\0\1", 5));  // a length below 4
  PqResults r = Query(a.get(), "select 1");
  EXPECT_FALSE(r.ok());
  ASSERT_FALSE(r.results.empty());
  EXPECT_EQ(r.results.front().sqlstate, "08P01") << r.results.front().message;
  EXPECT_EQ(PQstatus(a.get()), CONNECTION_BAD);
  EXPECT_EQ(Tenant(b.get()), "t2");
}

// A backend terminated while idle in the pool (its FATAL arrives with nobody attached) is
// closed; the next client gets a new connection, no error.
TEST_F(ServerSessionMachineTest, AFatalErrorFromAnIdleBackend) {
  StartPooler();
  PGconnPtr a = Client("t1");
  ASSERT_TRUE(a);
  ASSERT_EQ(Tenant(a.get()), "t1");
  std::string fatal;
  protocol::AppendError(&fatal, "FATAL", "57P01", "terminating connection due to administrator command");
  fake_.SendRaw(0, fatal);
  ASSERT_TRUE(fake_.WaitFor([&] {
    std::vector<std::string> r = fake_.Received(0);
    return !r.empty() && r.back() == "X";
  })) << "pgtenant closed it (Terminate)";
  EXPECT_EQ(Tenant(a.get()), "t1");
  EXPECT_EQ(fake_.connections(), 2);
}

}  // namespace
}  // namespace pgtenant::testing
