// The extended protocol message by message (a RawClient, not libpq), through a real Pooler and
// the fake backend: Close of statements (the client's name only), Flush, Describe of statements
// pgtenant answered itself, a DISCARD ALL in the unnamed statement, a tenant change pipelined
// behind unanswered work, and a session-mode client that closes pgtenant's own statement.
#include <gtest/gtest.h>

#include <algorithm>

#include "machine_test.h"
#include "protocol/message_writer.h"
#include "protocol/messages.h"

namespace pgtenant::testing {
namespace {

std::string Parse(const std::string& name, const std::string& sql) {
  std::string out;
  protocol::AppendParse(&out, name, sql, {});
  return out;
}
std::string Bind(const std::string& statement, const std::vector<std::string>& params = {}) {
  std::string out;
  protocol::MessageWriter w(&out);
  w.Begin('B').PutCString("").PutCString(statement).PutInt16(0).PutInt16(static_cast<int16_t>(params.size()));
  for (const std::string& p : params) w.PutInt32(static_cast<int32_t>(p.size())).PutBytes(p);
  w.PutInt16(0);
  w.Finish();
  return out;
}
std::string Execute() {
  std::string out;
  protocol::AppendExecuteUnnamed(&out);
  return out;
}
std::string Describe(char kind, const std::string& name) {
  std::string out;
  protocol::AppendDescribe(&out, kind, name);
  return out;
}
std::string Close(char kind, const std::string& name) {
  std::string out;
  protocol::AppendClose(&out, kind, name);
  return out;
}
std::string Sync() {
  std::string out;
  protocol::AppendSync(&out);
  return out;
}
std::string Flush() { return std::string("H\0\0\0\4", 5); }
std::string SimpleQuery(const std::string& sql) {
  std::string out;
  protocol::AppendQuery(&out, sql);
  return out;
}

class ExtendedProtocolMachineTest : public MachineTest {
 public:
  std::unique_ptr<RawClient> Raw(const std::string& tenant) {
    auto c = std::make_unique<RawClient>();
    std::string error;
    std::vector<std::pair<std::string, std::string>> params = {{"user", "app"}, {"database", "app"}};
    if (!tenant.empty()) params.emplace_back("options", "-c app.tenant_id=" + tenant);
    EXPECT_TRUE(c->Connect(harness_.port(), params, &error)) << error;
    return c;
  }
  // The probe over the extended protocol, unnamed.
  static std::string Probe() { return Parse("", kTenantProbe) + Bind("") + Execute() + Sync(); }
  static std::vector<std::string> ProbeAnswer(const std::string& tenant) {
    return {"1", "2", "D:" + tenant, "C:SELECT 1", "Z:I"};
  }
};

TEST_F(ExtendedProtocolMachineTest, CloseForgetsOnlyTheClientsName) {
  StartPooler();
  auto a = Raw("t1");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  a->Send(Parse("s", "select 11") + Sync());
  EXPECT_EQ(a->ReadUntilReady(), (std::vector<std::string>{"1", "Z:I"}));
  size_t mark = Mark();
  a->Send(Close('S', "s") + Sync());
  EXPECT_EQ(a->ReadUntilReady(), (std::vector<std::string>{"3", "Z:I"}));
  // The Close is answered by pgtenant; only the batch's Sync reached a server.
  EXPECT_EQ(SentSince(mark), std::vector<std::string>{"S"});
  EXPECT_EQ(fake_.PreparedStatements(0).size(), 2u) << "pgtenant's own and the mapped one stay";
  a->Send(Close('S', "never_prepared") + Sync());
  EXPECT_EQ(a->ReadUntilReady(), (std::vector<std::string>{"3", "Z:I"})) << "no error, as on PostgreSQL";
  a->Send(Bind("s") + Execute() + Sync());
  EXPECT_EQ(a->ReadUntilReady(), (std::vector<std::string>{"E:26000", "Z:I"}));
  // The server statement stays for others: B's Parse of the same text needs no server.
  mark = Mark();
  ASSERT_TRUE(Prepare(b.get(), "b_s", "select 11").ok());
  EXPECT_EQ(SentSince(mark), std::vector<std::string>{});
  EXPECT_EQ(ExecPrepared(b.get(), "b_s").Value(), "11");
  a->Send(Probe());
  EXPECT_EQ(a->ReadUntilReady(), ProbeAnswer("t1"));
}

TEST_F(ExtendedProtocolMachineTest, FlushDeliversAnswersBeforeTheSync) {
  StartPooler();
  auto a = Raw("t1");
  ASSERT_TRUE(a);
  a->Send(Parse("f", "select 12") + Flush());
  EXPECT_EQ(a->ReadFor(300), std::vector<std::string>{"1"});
  a->Send(Bind("f") + Execute() + Flush());
  EXPECT_EQ(a->ReadFor(300), (std::vector<std::string>{"2", "D:12", "C:SELECT 1"}));
  a->Send(Sync());
  EXPECT_EQ(a->ReadUntilReady(), std::vector<std::string>{"Z:I"});
  // Idle, a Flush and a Sync are answered without a server.
  size_t mark = Mark();
  a->Send(Flush() + Sync());
  EXPECT_EQ(a->ReadUntilReady(), std::vector<std::string>{"Z:I"});
  EXPECT_EQ(SentSince(mark), std::vector<std::string>{});
}

TEST_F(ExtendedProtocolMachineTest, DescribeOfAStatementPgtenantParsedForAnotherClient) {
  StartPooler();
  auto a = Raw("t1");
  auto b = Raw("t2");
  ASSERT_TRUE(a && b);
  a->Send(Parse("a_s", "select $1::text as echoed") + Sync());
  EXPECT_EQ(a->ReadUntilReady(), (std::vector<std::string>{"1", "Z:I"}));
  b->Send(Parse("b_s", "select $1::text as echoed") + Describe('S', "b_s") + Sync());
  EXPECT_EQ(b->ReadUntilReady(), (std::vector<std::string>{"1", "t", "T:echoed", "Z:I"}));
  b->Send(Bind("b_s", {"x"}) + Execute() + Sync());
  EXPECT_EQ(b->ReadUntilReady(), (std::vector<std::string>{"2", "D:x", "C:SELECT 1", "Z:I"}));
  b->Send(Probe());
  EXPECT_EQ(b->ReadUntilReady(), ProbeAnswer("t2"));
}

// DISCARD ALL in the unnamed statement, on a connection another client used last: the tenant
// goes in a Query of its own, so that the DISCARD ALL is the first Execute of its pipeline.
TEST_F(ExtendedProtocolMachineTest, UnnamedDiscardAllGetsTheTenantInAQueryOfItsOwn) {
  StartPooler();
  auto a = Raw("t1");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  a->Send(Probe());
  EXPECT_EQ(a->ReadUntilReady(), ProbeAnswer("t1"));
  ASSERT_EQ(Tenant(b.get()), "t2");
  size_t mark = Mark();
  a->Send(Parse("", "DISCARD ALL") + Bind("") + Execute() + Sync());
  EXPECT_EQ(a->ReadUntilReady(), (std::vector<std::string>{"1", "2", "C:DISCARD ALL", "Z:I"}));
  EXPECT_EQ(SentSince(mark),
            (std::vector<std::string>{"Q:SET app.tenant_id = 't1'", "P::DISCARD ALL", "B:::", "E:", "S"}));
  // The server said DISCARD ALL: everything is set again, for A itself too.
  mark = Mark();
  a->Send(Probe());
  EXPECT_EQ(a->ReadUntilReady(), ProbeAnswer("t1")) << "back to its startup tenant";
  EXPECT_EQ(SentSince(mark), Seq({{"Q:RESET ALL;", CloseSetTenant(), ParseSetTenant()}, BindTenant("t1"),
                                  {std::string("P::") + kTenantProbe, "B:::", "E:", "S"}}));
  mark = Mark();
  EXPECT_EQ(Tenant(b.get()), "t2");
  EXPECT_EQ(SentSince(mark), Seq({BindTenant("t2"), {std::string("Q:") + kTenantProbe}}));
}

// A set_config of the tenant pipelined behind statements not yet answered, outside a block:
// it runs on the server, under pgtenant's own name, and becomes the client's tenant.
TEST_F(ExtendedProtocolMachineTest, TenantChangePipelinedBehindUnansweredWork) {
  StartPooler();
  auto a = Raw("t1");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  a->Send(Parse("", "select 1") + Bind("") + Execute() +
          Parse("", "select set_config('app.tenant_id', $1, false)") + Bind("", {"t3"}) + Execute() +
          Parse("", kTenantProbe) + Bind("") + Execute() + Sync());
  EXPECT_EQ(a->ReadUntilReady(), (std::vector<std::string>{"1", "2", "D:1", "C:SELECT 1", "1", "2", "D:t3", "C:SELECT 1",
                                                           "1", "2", "D:t3", "C:SELECT 1", "Z:I"}));
  a->Send(Probe());
  EXPECT_EQ(a->ReadUntilReady(), ProbeAnswer("t3"));
  EXPECT_EQ(Tenant(b.get()), "t2");
  a->Send(Probe());
  EXPECT_EQ(a->ReadUntilReady(), ProbeAnswer("t3"));
}

// An error in the middle of a batch skips the rest up to the Sync; the answers pgtenant gives
// itself in that batch (a ParseComplete of a statement the connection has, a CloseComplete)
// are skipped with it, as PostgreSQL would skip them.
TEST_F(ExtendedProtocolMachineTest, AnErrorSkipsTheRestOfTheBatch) {
  StartPooler();
  auto a = Raw("t1");
  ASSERT_TRUE(a);
  a->Send(Parse("known", "select 13") + Sync());
  EXPECT_EQ(a->ReadUntilReady(), (std::vector<std::string>{"1", "Z:I"}));
  a->Send(Parse("", "select 1/0") + Bind("") + Execute() + Parse("again", "select 13") + Close('S', "unknown") +
          Sync());
  // (1/0 fails when the statement is planned, at its Bind, as on PostgreSQL.)
  EXPECT_EQ(a->ReadUntilReady(), (std::vector<std::string>{"1", "E:22012", "Z:I"}));
  a->Send(Bind("known") + Execute() + Sync());
  EXPECT_EQ(a->ReadUntilReady(), (std::vector<std::string>{"2", "D:13", "C:SELECT 1", "Z:I"}));
  a->Send(Probe());
  EXPECT_EQ(a->ReadUntilReady(), ProbeAnswer("t1"));
}

// A client's Close or Parse of a named statement that pgtenant answers itself
// (client_prepared.cc, MapPreparedStatement) changes the client's statement names only if the
// backend would have run it: skipped after an earlier error of the same batch, it changes
// nothing, as on PostgreSQL (ClientSession::OnAnswerSkipped). The closed statement "known"
// still exists after the failed batch, and "again" does not.
TEST_F(ExtendedProtocolMachineTest, SkippedCloseAndParseLeaveTheClientsNamesAlone) {
  StartPooler();
  auto a = Raw("t1");
  ASSERT_TRUE(a);
  a->Send(Parse("known", "select 13") + Sync());
  EXPECT_EQ(a->ReadUntilReady(), (std::vector<std::string>{"1", "Z:I"}));
  a->Send(Parse("", "select 1/0") + Bind("") + Execute() + Parse("again", "select 13") + Close('S', "known") +
          Sync());
  // (1/0 fails when the statement is planned, at its Bind, as on PostgreSQL.)
  EXPECT_EQ(a->ReadUntilReady(), (std::vector<std::string>{"1", "E:22012", "Z:I"}));
  a->Send(Bind("known") + Execute() + Sync());
  EXPECT_EQ(a->ReadUntilReady(), (std::vector<std::string>{"2", "D:13", "C:SELECT 1", "Z:I"}))
      << "its Close was skipped by the backend";
  a->Send(Bind("again") + Execute() + Sync());
  EXPECT_EQ(a->ReadUntilReady(), (std::vector<std::string>{"E:26000", "Z:I"})) << "its Parse was skipped";
}

// Session mode passes statement names through: a client that closes pgtenant's own statement
// (its name read from pg_prepared_statements) costs itself a re-prepare, not an error.
TEST_F(ExtendedProtocolMachineTest, SessionModeClientClosesPgtenantsStatement) {
  HarnessOptions options;
  options.shared_mode = "session";
  StartPooler(options);
  auto a = Raw("t1");
  ASSERT_TRUE(a);
  a->Send(Probe());
  EXPECT_EQ(a->ReadUntilReady(), ProbeAnswer("t1"));
  a->Send(Close('S', SetName()) + Sync());
  EXPECT_EQ(a->ReadUntilReady(), (std::vector<std::string>{"3", "Z:I"}));
  a->Send(SimpleQuery("SET app.tenant_id = 't3'"));
  EXPECT_EQ(a->ReadUntilReady(), (std::vector<std::string>{"C:SET", "Z:I"}));
  size_t mark = Mark();
  a->Send(Probe());
  EXPECT_EQ(a->ReadUntilReady(), ProbeAnswer("t3"));
  std::vector<std::string> sent = SentSince(mark);
  ASSERT_GE(sent.size(), 4u);
  EXPECT_EQ(std::vector<std::string>(sent.begin(), sent.begin() + 4),
            Seq({{CloseSetTenant(), ParseSetTenant()}, BindTenant("t3")}));
}

// A Query while a batch of the extended protocol is open is answered in order.
TEST_F(ExtendedProtocolMachineTest, MixedProtocolsInOneWrite) {
  StartPooler();
  auto a = Raw("t1");
  ASSERT_TRUE(a);
  a->Send(Parse("", "select 14") + Bind("") + Execute() + Sync() + SimpleQuery("select 15; select 16"));
  EXPECT_EQ(a->ReadUntilReady(2), (std::vector<std::string>{"1", "2", "D:14", "C:SELECT 1", "Z:I", "T:?column?",
                                                            "D:15", "C:SELECT 1", "T:?column?", "D:16", "C:SELECT 1",
                                                            "Z:I"}));
}

// A Parse sent behind a DEALLOCATE ALL in the same batch: when the tag arrives, pgtenant cannot
// tell whether that statement went too, so the connection is "unsure" and every later Parse
// of a mapped statement goes behind a Close of its name (no 42P05 either way).
TEST_F(ExtendedProtocolMachineTest, AParseInFlightBehindADeallocateAll) {
  StartPooler();
  auto a = Raw("t1");
  ASSERT_TRUE(a);
  a->Send(Parse("s1", "select 21") + Sync());
  EXPECT_EQ(a->ReadUntilReady(), (std::vector<std::string>{"1", "Z:I"}));
  a->Send(Parse("", "/* c */ DEALLOCATE ALL") + Bind("") + Execute() + Parse("s2", "select 22") + Sync());
  EXPECT_EQ(a->ReadUntilReady(), (std::vector<std::string>{"1", "2", "C:DEALLOCATE ALL", "1", "Z:I"}));
  size_t mark = Mark();
  a->Send(Bind("s2") + Execute() + Sync());
  EXPECT_EQ(a->ReadUntilReady(), (std::vector<std::string>{"2", "D:22", "C:SELECT 1", "Z:I"}));
  std::vector<std::string> sent = SentSince(mark);
  ASSERT_GE(sent.size(), 2u);
  EXPECT_EQ(sent[0].rfind("C:S:pgt_", 0), 0u) << sent[0];
  EXPECT_EQ(sent[1].rfind("P:pgt_", 0), 0u) << sent[1];
  a->Send(Bind("s1") + Execute() + Sync());
  EXPECT_EQ(a->ReadUntilReady(), (std::vector<std::string>{"2", "D:21", "C:SELECT 1", "Z:I"}));
  a->Send(Probe());
  EXPECT_EQ(a->ReadUntilReady(), ProbeAnswer("t1"));
}

// Inside a block that runs on a server, a tenant change over the extended protocol is refused
// by the server itself (pgtenant's statement in place of the client's), which aborts the block.
TEST_F(ExtendedProtocolMachineTest, ATenantChangeInsideARunningBlockOverTheExtendedProtocol) {
  StartPooler();
  auto a = Raw("t1");
  ASSERT_TRUE(a);
  a->Send(SimpleQuery("BEGIN"));
  EXPECT_EQ(a->ReadUntilReady(), (std::vector<std::string>{"C:BEGIN", "Z:T"}));
  a->Send(Parse("", kTenantProbe) + Bind("") + Execute() + Sync());
  EXPECT_EQ(a->ReadUntilReady(), (std::vector<std::string>{"1", "2", "D:t1", "C:SELECT 1", "Z:T"}));
  a->Send(Parse("", "select set_config('app.tenant_id', $1, false)") + Bind("", {"t2"}) + Execute() + Sync());
  std::vector<std::string> answer = a->ReadUntilReady();
  ASSERT_FALSE(answer.empty());
  EXPECT_EQ(answer.back(), "Z:E");
  EXPECT_NE(std::find(answer.begin(), answer.end(), "E:25001"), answer.end());
  a->Send(SimpleQuery("ROLLBACK"));
  EXPECT_EQ(a->ReadUntilReady(), (std::vector<std::string>{"C:ROLLBACK", "Z:I"}));
  a->Send(Probe());
  EXPECT_EQ(a->ReadUntilReady(), ProbeAnswer("t1"));
}

}  // namespace
}  // namespace pgtenant::testing
