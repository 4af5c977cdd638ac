// Named prepared statements in transaction mode (proxy/client_prepared.cc, prepared_statements.h)
// through a real Pooler and the fake backend: client names are mapped onto pgtenant's server
// statements pgt_<tag>_<id>, shared by the pool's clients, prepared again wherever a client's
// transaction lands, never visible under the client's own name to another client, and never
// the cause of a 42P05 or 26000 for a client that did nothing wrong.
#include <gtest/gtest.h>

#include <algorithm>

#include "machine_test.h"

namespace pgtenant::testing {
namespace {

class PreparedMachineTest : public MachineTest {
 public:
  // The mapped statements (pgt_...) the backend connection holds.
  std::vector<std::string> Mapped(int conn = 0) const {
    std::vector<std::string> out;
    for (const std::string& n : fake_.PreparedStatements(conn)) {
      if (n.rfind("pgt_", 0) == 0) out.push_back(n);
    }
    return out;
  }
  static bool StartsWith(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }
};

TEST_F(PreparedMachineTest, ClientNamesAreMappedAndStayPrivate) {
  StartPooler();
  PGconnPtr a = Client("t1");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  size_t mark = Mark();
  ASSERT_TRUE(Prepare(a.get(), "s", "select 1").ok());
  std::vector<std::string> sent = SentSince(mark);
  ASSERT_FALSE(sent.empty());
  EXPECT_TRUE(StartsWith(sent[sent.size() - 2], "P:pgt_")) << sent[sent.size() - 2];
  EXPECT_EQ(sent.back(), "S");
  EXPECT_EQ(ExecPrepared(a.get(), "s").Value(), "1");
  // The server knows only pgtenant's name.
  std::vector<std::string> names = fake_.PreparedStatements(0);
  EXPECT_EQ(std::count(names.begin(), names.end(), "s"), 0);
  EXPECT_EQ(Mapped().size(), 1u);
  // B never prepared "s": it gets what PostgreSQL would give it.
  EXPECT_EQ(ExecPrepared(b.get(), "s").Value(), "ERROR:26000");
  EXPECT_EQ(Tenant(b.get()), "t2") << "after its own error";
  // B may take the name for itself: no 42P05 because of A.
  EXPECT_TRUE(Prepare(b.get(), "s", "select 2").ok());
  EXPECT_EQ(ExecPrepared(b.get(), "s").Value(), "2");
  EXPECT_EQ(ExecPrepared(a.get(), "s").Value(), "1");
  EXPECT_EQ(Mapped().size(), 2u);
}

// Once a statement parsed on a connection of the pool, another client's Parse of the same text
// is answered by pgtenant, without a server.
TEST_F(PreparedMachineTest, AParseOfAKnownStatementIsAnsweredWithoutAServer) {
  StartPooler();
  PGconnPtr a = Client("t1");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(Prepare(a.get(), "mine", "select $1::text", 1).ok());
  size_t mark = Mark();
  ASSERT_TRUE(Prepare(b.get(), "theirs", "select $1::text", 1).ok());
  EXPECT_EQ(SentSince(mark), std::vector<std::string>{}) << "answered by pgtenant";
  EXPECT_EQ(ExecPrepared(b.get(), "theirs", {std::string("b")}).Value(), "b");
  std::vector<std::string> sent = SentSince(mark);
  ASSERT_EQ(sent.size(), 6u);
  EXPECT_EQ(std::vector<std::string>(sent.begin(), sent.begin() + 2), BindTenant("t2"));
  EXPECT_TRUE(StartsWith(sent[2], "B::pgt_")) << sent[2];
  EXPECT_EQ(sent[2].substr(sent[2].size() - 2), ":b");
  EXPECT_EQ(ExecPrepared(a.get(), "mine", {std::string("a")}).Value(), "a");
  EXPECT_EQ(Mapped().size(), 1u) << "one server statement for both";
}

// The server's answer says the statements are gone (a DEALLOCATE ALL the client hid behind a
// comment): pgtenant prepares them again before the next Bind.
TEST_F(PreparedMachineTest, StatementsDroppedByTheServerArePreparedAgain) {
  StartPooler();
  PGconnPtr a = Client("t1");
  ASSERT_TRUE(a);
  ASSERT_TRUE(Prepare(a.get(), "s", "select 10").ok());
  ASSERT_EQ(Mapped().size(), 1u);
  const std::string server_name = Mapped()[0];
  EXPECT_EQ(Query(a.get(), "/* hidden */ DEALLOCATE ALL").Tag(), "DEALLOCATE ALL");
  EXPECT_EQ(Mapped().size(), 0u);
  size_t mark = Mark();
  EXPECT_EQ(ExecPrepared(a.get(), "s").Value(), "10");
  std::vector<std::string> sent = SentSince(mark);
  ASSERT_GE(sent.size(), 2u);
  EXPECT_EQ(std::count(sent.begin(), sent.end(), "P:" + server_name + ":select 10"), 1) << "prepared again";
  EXPECT_EQ(Mapped(), std::vector<std::string>{server_name});
}

// A DEALLOCATE of one name cannot say which statement went: pgtenant forgets them all and
// closes each name before preparing it again (a Close of nothing is no error; a Parse of a
// name the server still holds would be 42P05).
TEST_F(PreparedMachineTest, DeallocateOfOneNameMakesEveryParseCloseFirst) {
  StartPooler();
  PGconnPtr a = Client("t1");
  ASSERT_TRUE(a);
  ASSERT_TRUE(Prepare(a.get(), "s1", "select 1").ok());
  ASSERT_TRUE(Prepare(a.get(), "s2", "select 2").ok());
  std::vector<std::string> mapped = Mapped();
  ASSERT_EQ(mapped.size(), 2u);
  // A deallocates one of pgtenant's names it read from pg_prepared_statements.
  EXPECT_EQ(Query(a.get(), "DEALLOCATE \"" + mapped[0] + "\"").Tag(), "DEALLOCATE");
  for (const char* name : {"s1", "s2"}) {
    size_t mark = Mark();
    EXPECT_EQ(ExecPrepared(a.get(), name).Value(), std::string(name).substr(1));
    std::vector<std::string> sent = SentSince(mark);
    ASSERT_GE(sent.size(), 3u) << name;
    EXPECT_TRUE(StartsWith(sent[0], "C:S:pgt_")) << sent[0];
    EXPECT_TRUE(StartsWith(sent[1], "P:pgt_")) << sent[1];
    EXPECT_EQ(sent[0].substr(4), sent[1].substr(2, sent[0].size() - 4)) << "Close and Parse of one name";
  }
  EXPECT_EQ(Mapped().size(), 2u);
}

// A client's SQL DEALLOCATE of its protocol-level name only forgets the name.
TEST_F(PreparedMachineTest, SqlDeallocateOfAClientNameIsAnsweredByPgtenant) {
  StartPooler();
  PGconnPtr a = Client("t1");
  ASSERT_TRUE(a);
  ASSERT_TRUE(Prepare(a.get(), "s", "select 3").ok());
  size_t mark = Mark();
  EXPECT_EQ(Query(a.get(), "DEALLOCATE s").Tag(), "DEALLOCATE");
  EXPECT_EQ(SentSince(mark), std::vector<std::string>{});
  EXPECT_EQ(ExecPrepared(a.get(), "s").Value(), "ERROR:26000");
  EXPECT_EQ(Query(a.get(), "DEALLOCATE s").Value(), "ERROR:26000") << "gone, as on PostgreSQL";
  EXPECT_TRUE(Prepare(a.get(), "s", "select 4").ok());
  EXPECT_EQ(ExecPrepared(a.get(), "s").Value(), "4");
  EXPECT_EQ(Query(a.get(), "DEALLOCATE ALL").Tag(), "DEALLOCATE ALL");
  EXPECT_EQ(ExecPrepared(a.get(), "s").Value(), "ERROR:26000");
  EXPECT_EQ(Tenant(a.get()), "t1");
}

// A Parse that fails is forgotten: the next Parse of the same text goes to the server again
// (and fails again) instead of being answered from the cache.
TEST_F(PreparedMachineTest, AFailedParseIsNotCached) {
  StartPooler();
  PGconnPtr a = Client("t1");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(Prepare(a.get(), "bad", "select no_such_function()").Value(), "ERROR:42883");
  EXPECT_EQ(Mapped().size(), 0u);
  size_t mark = Mark();
  EXPECT_EQ(Prepare(b.get(), "bad", "select no_such_function()").Value(), "ERROR:42883");
  std::vector<std::string> sent = SentSince(mark);
  EXPECT_EQ(std::count_if(sent.begin(), sent.end(), [](const std::string& m) { return StartsWith(m, "P:pgt_"); }), 1);
  EXPECT_EQ(Tenant(a.get()), "t1");
  EXPECT_EQ(Tenant(b.get()), "t2");
  EXPECT_EQ(fake_.connections(), 1);
}

// BUG (pgtenant): a client's named Parse that fails on the server stays in the client's map of
// statement names (MapPreparedStatement records the name before the server answers, and
// nothing removes it when the Parse fails). A later Bind of that name makes pgtenant send the
// failing Parse again as its own message (EnsureOnServer): the client gets the Parse's error
// (42883) where PostgreSQL answers 26000 (the statement does not exist), and, since an error
// answers one of pgtenant's own messages, the server connection is closed.
TEST_F(PreparedMachineTest, ABindOfAStatementWhoseParseFailedIs26000) {
  StartPooler();
  PGconnPtr a = Client("t1");
  ASSERT_TRUE(a);
  EXPECT_EQ(Prepare(a.get(), "bad", "select no_such_function()").Value(), "ERROR:42883");
  EXPECT_EQ(ExecPrepared(a.get(), "bad").Value(), "ERROR:26000");
  EXPECT_EQ(Tenant(a.get()), "t1");
  EXPECT_EQ(fake_.connections(), 1) << "the server connection was closed";
}

// pools.NAME.max_prepared_statements bounds what one connection holds: the least recently used
// statement is closed, and prepared again when it is used again.
TEST_F(PreparedMachineTest, LeastRecentlyUsedStatementsAreEvicted) {
  HarnessOptions options;
  options.shared_extra = "    max_prepared_statements: 2\n";
  StartPooler(options);
  PGconnPtr a = Client("t1");
  ASSERT_TRUE(a);
  for (int round = 0; round < 2; ++round) {
    for (int k = 1; k <= 3; ++k) {
      std::string name = "s";
      name += std::to_string(k);
      std::string sql = "select ";
      sql += std::to_string(k);
      if (round == 0) {
        ASSERT_TRUE(Prepare(a.get(), name, sql).ok()) << name;
      }
      EXPECT_EQ(ExecPrepared(a.get(), name).Value(), std::to_string(k)) << name;
      EXPECT_LE(Mapped().size(), 2u) << "after " << name;
    }
  }
  std::vector<std::string> all = fake_.Received(0);
  EXPECT_GE(std::count_if(all.begin(), all.end(), [](const std::string& m) { return StartsWith(m, "C:S:pgt_"); }), 2)
      << "evictions are Closes";
}

// A client that prepares a name it already has: PostgreSQL answers 42P05; pgtenant silently
// replaces the statement (a documented limitation, docs/operations.md "Prepared statements").
// What matters here: the old server statement stays for whoever shares it, and nothing fails.
TEST_F(PreparedMachineTest, PreparingANameTwiceReplacesItAsDocumented) {
  StartPooler();
  PGconnPtr a = Client("t1");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(Prepare(a.get(), "twice", "select 5").ok());
  ASSERT_TRUE(Prepare(b.get(), "five", "select 5").ok());
  EXPECT_TRUE(Prepare(a.get(), "twice", "select 6").ok());
  EXPECT_EQ(ExecPrepared(a.get(), "twice").Value(), "6");
  EXPECT_EQ(ExecPrepared(b.get(), "five").Value(), "5");
  EXPECT_EQ(Mapped().size(), 2u);
}

// Describe of a mapped statement reaches the server under pgtenant's name.
TEST_F(PreparedMachineTest, DescribeOfAMappedStatement) {
  StartPooler();
  PGconnPtr a = Client("t1");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(Prepare(a.get(), "d", "select current_setting('app.tenant_id') as tenant").ok());
  ASSERT_EQ(Tenant(b.get()), "t2");
  size_t mark = Mark();
  PqResults d = DescribePrepared(a.get(), "d");
  ASSERT_TRUE(d.ok()) << d.Value();
  EXPECT_EQ(d.results.back().columns, std::vector<std::string>{"tenant"});
  std::vector<std::string> sent = SentSince(mark);
  ASSERT_FALSE(sent.empty());
  EXPECT_TRUE(StartsWith(sent[sent.size() - 2], "D:S:pgt_")) << sent[sent.size() - 2];
  EXPECT_EQ(ExecPrepared(a.get(), "d").Value(), "t1");
}

// SQL PREPARE pins the client; when it leaves, its connection is reset with DISCARD ALL before
// anyone else gets it, and the next client finds neither A's statement nor a stale record.
TEST_F(PreparedMachineTest, SqlPrepareIsDiscardedBeforeTheNextClient) {
  StartPooler();
  PGconnPtr a = Client("t1");
  ASSERT_TRUE(a);
  EXPECT_EQ(Query(a.get(), "PREPARE q AS select 7").Tag(), "PREPARE");
  EXPECT_EQ(Value(a.get(), "EXECUTE q"), "7");
  EXPECT_EQ(Tenant(a.get()), "t1");
  size_t mark = Mark();
  a.reset();
  ASSERT_TRUE(fake_.WaitFor([&] { return fake_.ReceivedCount(0) > mark; }));
  EXPECT_EQ(SentSince(mark), std::vector<std::string>{"Q:DISCARD ALL"});
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(b);
  mark = Mark();
  EXPECT_EQ(Tenant(b.get()), "t2");
  EXPECT_EQ(SentSince(mark), Seq({{CloseSetTenant(), ParseSetTenant()}, BindTenant("t2"),
                                  {std::string("Q:") + kTenantProbe}}));
  EXPECT_EQ(Value(b.get(), "EXECUTE q"), "ERROR:26000");
  EXPECT_EQ(Value(b.get(), "select count(*) from pg_prepared_statements"), "1") << "pgtenant's own only";
}

// Another client's hidden DEALLOCATE ALL drops A's statement from the shared connection: A's
// next Bind finds it prepared again, with no error.
TEST_F(PreparedMachineTest, AnotherClientsDeallocateAllCostsNothingButARePrepare) {
  StartPooler();
  PGconnPtr a = Client("t1");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(Prepare(a.get(), "mine", "select 30").ok());
  EXPECT_EQ(Query(b.get(), "/* c */ DEALLOCATE ALL").Tag(), "DEALLOCATE ALL");
  EXPECT_EQ(Mapped().size(), 0u);
  EXPECT_EQ(ExecPrepared(a.get(), "mine").Value(), "30");
  EXPECT_EQ(Tenant(a.get()), "t1");
  EXPECT_EQ(Tenant(b.get()), "t2");
  // And B's DISCARD ALL: the same, with the tenant statement too.
  EXPECT_EQ(Query(b.get(), "DISCARD ALL").Tag(), "DISCARD ALL");
  EXPECT_EQ(ExecPrepared(a.get(), "mine").Value(), "30");
  EXPECT_EQ(Tenant(a.get()), "t1");
}

}  // namespace
}  // namespace pgtenant::testing
