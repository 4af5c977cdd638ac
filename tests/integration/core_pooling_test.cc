// Core pooling through pgtenant against a real PostgreSQL: COPY both ways, multi-statement
// queries, errors inside transactions, cancel, concurrency, transaction-mode multiplexing.
// The tests marked kDirectOk also run against PostgreSQL itself with PGTENANT_TEST_DIRECT=1.
#include <openssl/evp.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "integration/harness.h"
#include "integration/ops_util.h"

namespace pgtenant::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr bool kDirectOk = true;
constexpr bool kProxyOnly = false;
constexpr int kCopyRows = 10000;

std::string Md5Hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_md5(), nullptr);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xf];
  }
  return out;
}

std::string TenantOption(int n) {
  char buf[64];
  snprintf(buf, sizeof(buf), "options='-c app.tenant_id=t%03d'", n % 100);
  return buf;
}

// A tag no other run shares, so rows of this test are found and removed exactly.
std::string UniqueTag(const char* prefix) {
  return std::string(prefix) + std::to_string(getpid()) + "x" +
         std::to_string(Clock::now().time_since_epoch().count());
}

class CorePoolingTest : public IntegrationTest {};

TEST_F(CorePoolingTest, CopyFromStdinTenThousandRows) {
  PGT_START_TARGET(ProxyConfigOptions{}, kDirectOk);
  PGconnPtr c = Connect(ClientConnInfo());
  ASSERT_TRUE(c) << LastConnectError() << ProxyLog();
  const std::string tag = UniqueTag("copyin");
  std::string payload;
  for (int i = 1; i <= kCopyRows; ++i) {
    payload += std::to_string(i) + "\t" + tag + "-" + std::to_string(i) + "\n";
  }

  PGresultPtr r = Exec(c.get(), "COPY copytest (a, b) FROM STDIN");
  ASSERT_EQ(PQresultStatus(r.get()), PGRES_COPY_IN) << ErrorMessage(r.get());
  // Odd-sized chunks so that rows straddle CopyData messages.
  for (size_t off = 0; off < payload.size(); off += 7001) {
    size_t n = std::min<size_t>(7001, payload.size() - off);
    ASSERT_EQ(PQputCopyData(c.get(), payload.data() + off, static_cast<int>(n)), 1);
  }
  ASSERT_EQ(PQputCopyEnd(c.get(), nullptr), 1);
  r = PGresultPtr(PQgetResult(c.get()));
  ASSERT_EQ(PQresultStatus(r.get()), PGRES_COMMAND_OK) << ErrorMessage(r.get());
  EXPECT_STREQ(PQcmdTuples(r.get()), "10000");
  EXPECT_EQ(PQgetResult(c.get()), nullptr);

  const std::string where = " FROM copytest WHERE b LIKE '" + tag + "-%'";
  EXPECT_EQ(QueryValue(c.get(), ("SELECT count(*) || ':' || sum(a)" + where).c_str()),
            "10000:50005000");
  EXPECT_EQ(QueryValue(c.get(), ("SELECT md5(string_agg(a || E'\\t' || b || E'\\n', '' "
                                 "ORDER BY a))" + where).c_str()),
            Md5Hex(payload));
  EXPECT_EQ(QueryValue(c.get(), ("DELETE" + where).c_str()), "");
}

TEST_F(CorePoolingTest, CopyToStdoutTenThousandRows) {
  PGT_START_TARGET(ProxyConfigOptions{}, kDirectOk);
  PGconnPtr c = Connect(ClientConnInfo());
  ASSERT_TRUE(c) << LastConnectError() << ProxyLog();
  const char* kRows =
      "SELECT g, 'row ' || g || ' ' || md5(g::text) AS b FROM generate_series(1, 10000) g";

  PGresultPtr r = Exec(c.get(), (std::string("COPY (") + kRows + ") TO STDOUT").c_str());
  ASSERT_EQ(PQresultStatus(r.get()), PGRES_COPY_OUT) << ErrorMessage(r.get());
  std::string received;
  int rows = 0;
  char* buf = nullptr;
  int n = 0;
  while ((n = PQgetCopyData(c.get(), &buf, 0)) > 0) {
    received.append(buf, n);
    ++rows;
    PQfreemem(buf);
  }
  ASSERT_EQ(n, -1) << PQerrorMessage(c.get());
  r = PGresultPtr(PQgetResult(c.get()));
  ASSERT_EQ(PQresultStatus(r.get()), PGRES_COMMAND_OK) << ErrorMessage(r.get());
  EXPECT_EQ(rows, kCopyRows);
  EXPECT_EQ(PQgetResult(c.get()), nullptr);

  // The server computes the checksum of what it should have sent.
  std::string expected = QueryValue(
      c.get(), (std::string("SELECT md5(string_agg(g || E'\\t' || b || E'\\n', '' ORDER BY g)) "
                            "FROM (") + kRows + ") s").c_str());
  EXPECT_EQ(Md5Hex(received), expected);
}

TEST_F(CorePoolingTest, MultiStatementSimpleQueryReturnsEveryResult) {
  PGT_START_TARGET(ProxyConfigOptions{}, kDirectOk);
  PGconnPtr c = Connect(ClientConnInfo());
  ASSERT_TRUE(c) << LastConnectError() << ProxyLog();
  ASSERT_EQ(PQsendQuery(c.get(), "select 1; select 2; select 3"), 1);
  std::vector<std::string> values;
  while (PGresultPtr r = WaitForResult(c.get(), milliseconds(10000))) {
    ASSERT_EQ(PQresultStatus(r.get()), PGRES_TUPLES_OK) << ErrorMessage(r.get());
    values.push_back(PQgetvalue(r.get(), 0, 0));
  }
  EXPECT_EQ(values, (std::vector<std::string>{"1", "2", "3"}));
  EXPECT_EQ(QueryValue(c.get(), "select 4"), "4");
}

TEST_F(CorePoolingTest, ErrorInTransactionThenRollbackLeavesConnectionUsable) {
  PGT_START_TARGET(ProxyConfigOptions{}, kDirectOk);
  PGconnPtr c = Connect(ClientConnInfo());
  ASSERT_TRUE(c) << LastConnectError() << ProxyLog();
  EXPECT_EQ(QueryValue(c.get(), "BEGIN"), "");
  EXPECT_EQ(QueryValue(c.get(), "select 1/0"), "ERROR:22012");
  EXPECT_EQ(PQtransactionStatus(c.get()), PQTRANS_INERROR);
  EXPECT_EQ(QueryValue(c.get(), "select 1"), "ERROR:25P02");
  EXPECT_EQ(QueryValue(c.get(), "ROLLBACK"), "");
  EXPECT_EQ(PQtransactionStatus(c.get()), PQTRANS_IDLE);
  EXPECT_EQ(QueryValue(c.get(), "select 42"), "42");
  // An error outside a transaction block must not leave one open either.
  EXPECT_EQ(QueryValue(c.get(), "select 1/0"), "ERROR:22012");
  EXPECT_EQ(PQtransactionStatus(c.get()), PQTRANS_IDLE);
  EXPECT_EQ(QueryValue(c.get(), "select 43"), "43");
}

TEST_F(CorePoolingTest, CancelStopsOnlyTheCancelledQuery) {
  PGT_START_TARGET(ProxyConfigOptions{}, kDirectOk);
  PGconnPtr victim = Connect(ClientConnInfo());
  ASSERT_TRUE(victim) << LastConnectError() << ProxyLog();
  PGconnPtr bystander = Connect(ClientConnInfo());
  ASSERT_TRUE(bystander) << LastConnectError() << ProxyLog();

  ASSERT_EQ(PQsendQuery(victim.get(), "select pg_sleep(10)"), 1);
  ExecStatusType bystander_status = PGRES_FATAL_ERROR;
  std::string bystander_error;
  milliseconds bystander_elapsed{0};
  std::thread other([&] {
    auto start = Clock::now();
    PGresultPtr r = Exec(bystander.get(), "select pg_sleep(2)");
    bystander_elapsed = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
    bystander_status = PQresultStatus(r.get());
    bystander_error = ErrorMessage(r.get());
  });

  std::this_thread::sleep_for(milliseconds(300));
  PGcancel* cancel = PQgetCancel(victim.get());
  ASSERT_NE(cancel, nullptr);
  char errbuf[256] = {0};
  int sent = PQcancel(cancel, errbuf, sizeof(errbuf));
  PQfreeCancel(cancel);
  auto cancelled_at = Clock::now();
  EXPECT_EQ(sent, 1) << errbuf;

  PGresultPtr r = WaitForResult(victim.get(), milliseconds(2000));
  auto victim_wait = std::chrono::duration_cast<milliseconds>(Clock::now() - cancelled_at);
  other.join();
  ASSERT_TRUE(r) << "the cancelled query did not end within 2 s";
  EXPECT_EQ(LastSqlState(r.get()), "57014") << ErrorMessage(r.get());
  EXPECT_LT(victim_wait.count(), 2000);
  EXPECT_EQ(bystander_status, PGRES_TUPLES_OK) << bystander_error;
  EXPECT_GE(bystander_elapsed.count(), 1900) << "the other client's sleep was cut short";
  // Both connections stay usable.
  EXPECT_EQ(PQgetResult(victim.get()), nullptr);
  EXPECT_EQ(QueryValue(victim.get(), "select 5"), "5");
  EXPECT_EQ(QueryValue(bystander.get(), "select 6"), "6");
}

// 50 clients, 20 transactions each, through 5 server connections; each client acts as its own
// tenant and must only ever see that tenant's 3 rows.
TEST_F(CorePoolingTest, FiftyConcurrentClientsThroughPoolOfFive) {
  PGT_START_TARGET(ProxyConfigOptions{}, kDirectOk);
  constexpr int kClients = 50;
  constexpr int kTransactions = 20;
  std::atomic<int> committed{0};
  std::mutex mu;
  std::vector<std::string> errors;
  auto fail = [&](const std::string& what) {
    std::lock_guard<std::mutex> lock(mu);
    errors.push_back(what);
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      PGconnPtr c = Connect(ClientConnInfo(TenantOption(i)));
      if (!c) return fail("connect: " + LastConnectError());
      char tenant[8];
      snprintf(tenant, sizeof(tenant), "t%03d", i % 100);
      for (int t = 0; t < kTransactions; ++t) {
        std::string begin = QueryValue(c.get(), "BEGIN");
        std::string count = QueryValue(c.get(), "select count(*) from items");
        std::string seen = QueryValue(c.get(), "select string_agg(distinct tenant_id, ',') from items");
        std::string commit = QueryValue(c.get(), "COMMIT");
        if (!begin.empty() || count != "3" || seen != tenant || !commit.empty()) {
          return fail(std::string(tenant) + ": begin=" + begin + " count=" + count +
                      " seen=" + seen + " commit=" + commit);
        }
        ++committed;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_TRUE(errors.empty()) << errors.size() << " clients failed, first: " << errors[0]
                              << "\n" << ProxyLog();
  EXPECT_EQ(committed.load(), kClients * kTransactions);
  EXPECT_TRUE(TargetAlive());
}

// Ten clients connected at once, pool size 2: every query runs on one of at most 2 backends.
TEST_F(CorePoolingTest, TransactionModeMultiplexesClientsOntoPool) {
  ProxyConfigOptions options;
  options.shared_size = 2;
  PGT_START_TARGET(options, kProxyOnly);
  constexpr int kClients = 10;
  std::vector<PGconnPtr> conns;
  for (int i = 0; i < kClients; ++i) {
    conns.push_back(Connect(ClientConnInfo(TenantOption(i))));
    ASSERT_TRUE(conns.back()) << LastConnectError() << ProxyLog();
  }
  std::mutex mu;
  std::set<std::string> pids;
  std::vector<std::string> errors;
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      for (int q = 0; q < 5; ++q) {
        std::string pid = QueryValue(conns[i].get(), "select pg_backend_pid()");
        std::lock_guard<std::mutex> lock(mu);
        if (pid.empty() || pid.rfind("ERROR:", 0) == 0) {
          errors.push_back(pid);
        } else {
          pids.insert(pid);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_TRUE(errors.empty()) << errors.size() << " queries failed, first " << errors[0];
  EXPECT_GE(pids.size(), 1u);
  EXPECT_LE(pids.size(), 2u) << "more backends than the pool size: not pooled";
  for (auto& c : conns) EXPECT_EQ(PQstatus(c.get()), CONNECTION_OK);
}

// Pool of one, held in a transaction while five clients queue one after another: when it is
// released (handed over at the end of that loop iteration) they run in the order they came.
// Each one's txid_current() is taken when its statement runs, so the ids show the order.
TEST_F(CorePoolingTest, WaitersGetTheServerInArrivalOrder) {
  ProxyConfigOptions options;
  options.shared_size = 1;
  PGT_START_TARGET(options, kProxyOnly);
  PGconnPtr holder = Connect(ClientConnInfo(TenantOption(1)));
  ASSERT_TRUE(holder) << LastConnectError() << ProxyLog();
  ASSERT_EQ(QueryValue(holder.get(), "BEGIN"), "");
  ASSERT_NE(QueryValue(holder.get(), "select txid_current()"), "");
  PGconnPtr admin = Connect(ops::AdminConnInfo(TargetPort()));
  ASSERT_TRUE(admin) << LastConnectError() << ProxyLog();
  constexpr int kWaiters = 5;
  std::vector<PGconnPtr> waiters;
  for (int i = 0; i < kWaiters; ++i) {
    waiters.push_back(Connect(ClientConnInfo(TenantOption(2 + i))));
    ASSERT_TRUE(waiters.back()) << LastConnectError() << ProxyLog();
    ASSERT_EQ(PQsendQuery(waiters.back().get(), "select txid_current()"), 1);
    // The next one sends only once this one is queued (bounded: 200 polls of 10 ms).
    long long queued = -1;
    for (int poll = 0; poll < 200 && queued != i + 1; ++poll) {
      ops::Table pools = ops::RunAdmin(admin.get(), "SHOW POOLS");
      ASSERT_TRUE(pools.ok()) << pools.error;
      queued = ops::AsInt(pools.Where("database", "shared").at(0), "cl_waiting");
      if (queued != i + 1) std::this_thread::sleep_for(milliseconds(10));
    }
    ASSERT_EQ(queued, i + 1) << ProxyLog();
  }
  ASSERT_EQ(QueryValue(holder.get(), "COMMIT"), "");
  long long previous = 0;
  for (int i = 0; i < kWaiters; ++i) {
    PGresultPtr r(PQgetResult(waiters[i].get()));
    ASSERT_EQ(PQresultStatus(r.get()), PGRES_TUPLES_OK) << PQerrorMessage(waiters[i].get());
    long long txid = atoll(PQgetvalue(r.get(), 0, 0));
    EXPECT_GT(txid, previous) << "waiter " << i << " ran before an earlier one";
    previous = txid;
    while (PGresultPtr rest{PQgetResult(waiters[i].get())}) {
    }
  }
}

// A server connection whose backend is gone (terminated here) frees its place in the pool at
// once: pgtenant waits for a backend's exit only after a Terminate of its own
// (ServerSession::Close). Pool of one, so the next client needs that place.
TEST_F(CorePoolingTest, TerminatedBackendFreesItsPlaceAtOnce) {
  ProxyConfigOptions options;
  options.shared_size = 1;
  PGT_START_TARGET(options, kProxyOnly);
  PGconnPtr first = Connect(ClientConnInfo(TenantOption(1)));
  ASSERT_TRUE(first) << LastConnectError();
  const std::string pid = QueryValue(first.get(), "select pg_backend_pid()");
  ASSERT_FALSE(pid.empty());
  const PgFixture& pg = PgFixture::Get();
  PGconnPtr super = Connect(pg.ConnInfo("postgres", pg.superuser, pg.superpass));
  ASSERT_TRUE(super) << LastConnectError();
  ASSERT_EQ(QueryValue(super.get(), ("select pg_terminate_backend(" + pid + ")").c_str()), "t");
  // Until pgtenant has read the backend's EOF the idle connection still looks usable; give it
  // a moment, then the next statement must not wait for the dead one to linger out.
  std::this_thread::sleep_for(milliseconds(200));
  PGconnPtr second = Connect(ClientConnInfo(TenantOption(2)));
  ASSERT_TRUE(second) << LastConnectError();
  const auto start = Clock::now();
  EXPECT_EQ(QueryValue(second.get(), "select 1"), "1") << ProxyLog();
  EXPECT_LT(Clock::now() - start, milliseconds(1000)) << "waited for the dead connection's place";
}

// pools.X.min_size: that many connections open before any client needs one, and stay open
// through timeouts.server_idle (1 s here), while the connections beyond it close when idle.
TEST_F(CorePoolingTest, MinSizeConnectionsOpenAheadAndStayWhenIdle) {
  ProxyConfigOptions options;
  options.shared_size = 4;
  options.shared_pool_extra = "    min_size: 2\n";
  options.timeouts["server_idle"] = "1s";
  PGT_START_TARGET(options, kProxyOnly);
  PGconnPtr admin = Connect(ops::AdminConnInfo(TargetPort()));
  ASSERT_TRUE(admin) << LastConnectError() << ProxyLog();
  auto idle = [&] {
    ops::Table pools = ops::RunAdmin(admin.get(), "SHOW POOLS");
    EXPECT_TRUE(pools.ok()) << pools.error;
    return pools.ok() ? ops::AsInt(pools.Where("database", "shared").at(0), "sv_idle") : -1;
  };
  long long n = -1;
  for (int poll = 0; poll < 100 && n != 2; ++poll) {  // bounded: 5 s
    n = idle();
    if (n != 2) std::this_thread::sleep_for(milliseconds(50));
  }
  EXPECT_EQ(n, 2) << "min_size connections were not opened ahead" << ProxyLog();
  // Four clients in transactions at once make the pool open two more.
  std::vector<PGconnPtr> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(Connect(ClientConnInfo(TenantOption(1 + i))));
    ASSERT_TRUE(clients.back()) << LastConnectError();
    ASSERT_EQ(QueryValue(clients.back().get(), "BEGIN"), "");
    ASSERT_EQ(QueryValue(clients.back().get(), "select 1"), "1");
  }
  for (auto& c : clients) ASSERT_EQ(QueryValue(c.get(), "COMMIT"), "");
  EXPECT_EQ(idle(), 4);
  // After server_idle, the two beyond min_size close; min_size stay.
  n = -1;
  for (int poll = 0; poll < 100 && n != 2; ++poll) {
    n = idle();
    if (n != 2) std::this_thread::sleep_for(milliseconds(50));
  }
  EXPECT_EQ(n, 2) << ProxyLog();
  std::this_thread::sleep_for(milliseconds(1500));
  EXPECT_EQ(idle(), 2) << "min_size connections closed as idle";
}

// The schemas of search_path that exist, and extra_float_digits: two tracked settings that the
// server does not report, one of them a list.
constexpr const char* kSettingsProbe =
    "select current_schemas(false)::text || ' ' || current_setting('extra_float_digits')";

// Settings a client gives at startup follow it to the server connection it is given, read as
// the server reads a startup setting: a list stays a list (search_path "pg_catalog,public" is
// two schemas, not one schema of that name). Pool of one, so the connection another client
// used in between gets them again; that client keeps the defaults.
TEST_F(CorePoolingTest, StartupSettingsFollowTheClientAsTheServerReadsThem) {
  ProxyConfigOptions options;
  options.shared_size = 1;
  PGT_START_TARGET(options, kDirectOk);
  PGconnPtr plain = Connect(ClientConnInfo(TenantOption(1)));
  ASSERT_TRUE(plain) << LastConnectError() << ProxyLog();
  const std::string kDefaults = QueryValue(plain.get(), kSettingsProbe);
  ASSERT_EQ(kDefaults, "{public} 1");
  PGconnPtr with = Connect(ClientConnInfo("options='-c app.tenant_id=t002 -c search_path=pg_catalog,public -c extra_float_digits=2'"));
  ASSERT_TRUE(with) << LastConnectError() << ProxyLog();
  for (int round = 0; round < 2; ++round) {
    EXPECT_EQ(QueryValue(with.get(), kSettingsProbe), "{pg_catalog,public} 2") << "round " << round << ProxyLog();
    EXPECT_EQ(QueryValue(plain.get(), kSettingsProbe), kDefaults) << "round " << round;
  }
}

// A session-level SET of search_path or extra_float_digits (not reported by the server) made
// outside a transaction block follows the client to its next server connection, as
// docs/reference.md section 4 promises of every tracked parameter; another client of the same
// connection keeps the defaults. RESET returns the startup value, a refused value changes nothing,
// and the extended protocol (PgJDBC's SET extra_float_digits = 3) is followed too. Pool of one with
// a short query_wait: a client pinned by its SET would make the other client's query fail. Also run
// against PostgreSQL directly (PGTENANT_TEST_DIRECT=1): the same values come back.
TEST_F(CorePoolingTest, SetOfUnreportedTrackedSettingsFollowsTheClient) {
  ProxyConfigOptions options;
  options.shared_size = 1;
  options.timeouts["query_wait"] = "3s";
  PGT_START_TARGET(options, kDirectOk);
  PGconnPtr other = Connect(ClientConnInfo(TenantOption(1)));
  ASSERT_TRUE(other) << LastConnectError() << ProxyLog();
  const std::string defaults = QueryValue(other.get(), kSettingsProbe);
  ASSERT_EQ(defaults, "{public} 1");
  PGconnPtr c = Connect(ClientConnInfo("options='-c app.tenant_id=t002 -c extra_float_digits=0'"));
  ASSERT_TRUE(c) << LastConnectError() << ProxyLog();
  auto expect = [&](const std::string& mine, const char* after) {
    EXPECT_EQ(QueryValue(other.get(), kSettingsProbe), defaults) << "the other client, after " << after << ProxyLog();
    EXPECT_EQ(QueryValue(c.get(), kSettingsProbe), mine) << "after " << after << ProxyLog();
    EXPECT_EQ(QueryValue(other.get(), kSettingsProbe), defaults) << "the other client, after " << after;
  };
  expect("{public} 0", "login");
  ASSERT_EQ(QueryValue(c.get(), "SET search_path = pg_catalog, public"), "");
  ASSERT_EQ(QueryValue(c.get(), "set SESSION extra_float_digits TO 2;"), "");
  expect("{pg_catalog,public} 2", "SET");
  EXPECT_EQ(QueryValue(c.get(), "SET extra_float_digits = 99"), "ERROR:22023");
  expect("{pg_catalog,public} 2", "a refused SET");
  ASSERT_EQ(QueryValue(c.get(), "RESET extra_float_digits"), "");
  expect("{pg_catalog,public} 0", "RESET (back to the startup value)");
  {
    PGresultPtr r(PQexecParams(c.get(), "SET search_path TO pg_catalog", 0, nullptr, nullptr, nullptr, nullptr, 0));
    ASSERT_EQ(PQresultStatus(r.get()), PGRES_COMMAND_OK) << PQerrorMessage(c.get());
  }
  expect("{pg_catalog} 0", "SET over the extended protocol");
  ASSERT_EQ(QueryValue(c.get(), "SET search_path TO DEFAULT"), "");
  expect("{public} 0", "SET ... TO DEFAULT");
}

// What pgtenant cannot follow still pins the client (and so never reaches another client): a
// SET inside a transaction block, and the unnamed statement holding a followed SET bound again
// in a later transaction.
TEST_F(CorePoolingTest, UnfollowableSetOfTrackedSettingPins) {
  PGT_START_TARGET(ProxyConfigOptions{}, kProxyOnly);
  PGconnPtr admin = Connect(ops::AdminConnInfo(TargetPort()));
  ASSERT_TRUE(admin) << LastConnectError() << ProxyLog();
  auto pinned = [&](const char* app) {
    ops::Table clients = ops::RunAdmin(admin.get(), "SHOW CLIENTS");
    EXPECT_TRUE(clients.ok()) << clients.error;
    auto rows = clients.Where("application_name", app);
    return rows.size() == 1 ? rows[0].at("pinned") : std::string("(no such client)");
  };
  PGconnPtr in_block = Connect(ClientConnInfo(TenantOption(1) + " application_name=in_block"));
  ASSERT_TRUE(in_block) << LastConnectError() << ProxyLog();
  ASSERT_EQ(QueryValue(in_block.get(), "BEGIN"), "");
  ASSERT_EQ(QueryValue(in_block.get(), "SET search_path = pg_catalog"), "");
  ASSERT_EQ(QueryValue(in_block.get(), "COMMIT"), "");
  EXPECT_EQ(pinned("in_block"), "1");

  PGconnPtr rebind = Connect(ClientConnInfo(TenantOption(2) + " application_name=rebind"));
  ASSERT_TRUE(rebind) << LastConnectError() << ProxyLog();
  {
    PGresultPtr r(PQexecParams(rebind.get(), "SET search_path TO pg_catalog", 0, nullptr, nullptr, nullptr, nullptr, 0));
    ASSERT_EQ(PQresultStatus(r.get()), PGRES_COMMAND_OK) << PQerrorMessage(rebind.get());
  }
  EXPECT_EQ(pinned("rebind"), "0");
  {
    PGresultPtr r(PQexecPrepared(rebind.get(), "", 0, nullptr, nullptr, nullptr, 0));  // Bind of ""
    EXPECT_EQ(PQresultStatus(r.get()), PGRES_COMMAND_OK) << PQerrorMessage(rebind.get());
  }
  EXPECT_EQ(pinned("rebind"), "1");
}

// Tests that stop the backend restart it afterwards whatever happened, so the rest of the run
// keeps its PostgreSQL.
class BackendFailureTest : public IntegrationTest {
 protected:
  void TearDown() override {
    PgFixture::Get().EnsureRunning();
    IntegrationTest::TearDown();
  }
};

// Errors a client may see while its backend goes away: connection failures (08xxx), the
// server's own shutdown or crash notices (57P01/57P02) or its "starting up" refusal (57P03), and
// a lost connection, for which libpq has no SQLSTATE.
bool IsConnectionClassError(const std::string& sqlstate, PGconn* conn) {
  if (sqlstate.empty()) return PQstatus(conn) == CONNECTION_BAD;
  return sqlstate.rfind("08", 0) == 0 || sqlstate == "57P01" || sqlstate == "57P02" ||
         sqlstate == "57P03";
}

TEST_F(BackendFailureTest, StoppedBackendGives08006NamingPoolThenRecovers) {
  PGT_START_TARGET(ProxyConfigOptions{}, kProxyOnly);
  const PgFixture& pg = PgFixture::Get();
  PGconnPtr c = Connect(ClientConnInfo());
  ASSERT_TRUE(c) << LastConnectError() << ProxyLog();
  ASSERT_EQ(QueryValue(c.get(), "select 1"), "1");

  pg.StopImmediate();
  PGresultPtr r = Exec(c.get(), "select 1");
  EXPECT_EQ(LastSqlState(r.get()), "08006") << ErrorMessage(r.get());
  EXPECT_NE(std::string(PQresultErrorMessage(r.get())).find("shared"), std::string::npos)
      << "the error should name the pool: " << PQresultErrorMessage(r.get());

  // A client arriving while the backend is down is refused the same way, at login or at its
  // first query, depending on when pgtenant needs a server.
  std::string error;
  PGconnPtr late = Connect(ClientConnInfo(), &error);
  if (late) {
    r = Exec(late.get(), "select 1");
    EXPECT_EQ(LastSqlState(r.get()), "08006") << ErrorMessage(r.get());
    error = PQresultErrorMessage(r.get());
  }
  EXPECT_NE(error.find("shared"), std::string::npos) << error;
  EXPECT_TRUE(TargetAlive()) << ProxyLog();

  pg.Start();
  auto deadline = Clock::now() + milliseconds(20000);
  std::string value;
  while (Clock::now() < deadline) {
    PGconnPtr fresh = Connect(ClientConnInfo());
    value = fresh ? QueryValue(fresh.get(), "select 7") : "connect: " + LastConnectError();
    if (value == "7") break;
    std::this_thread::sleep_for(milliseconds(200));
  }
  EXPECT_EQ(value, "7") << "no recovery within 20 s\n" << ProxyLog();
  EXPECT_TRUE(TargetAlive());
}

// A client running short transactions in a loop while the backend dies and comes back sees only
// connection-class errors, and works again after the restart.
TEST_F(BackendFailureTest, ClientLoopSurvivesBackendRestart) {
  PGT_START_TARGET(ProxyConfigOptions{}, kDirectOk);
  const PgFixture& pg = PgFixture::Get();
  std::atomic<bool> stop{false}, restarted{false};
  std::atomic<int> ok_before{0}, ok_after{0}, connection_errors{0};
  std::mutex mu;
  std::vector<std::string> bad_errors;
  std::thread client([&] {
    PGconnPtr c;
    auto deadline = Clock::now() + milliseconds(60000);
    while (!stop && Clock::now() < deadline) {
      if (!c && !(c = Connect(ClientConnInfo(TenantOption(7))))) {
        ++connection_errors;  // refused at login: the backend is down
        std::this_thread::sleep_for(milliseconds(50));
        continue;
      }
      PGresultPtr r = Exec(c.get(), "BEGIN; select count(*) from items; COMMIT");
      if (PQresultStatus(r.get()) == PGRES_COMMAND_OK) {
        ++(restarted ? ok_after : ok_before);
      } else if (IsConnectionClassError(LastSqlState(r.get()), c.get())) {
        ++connection_errors;
        if (PQstatus(c.get()) == CONNECTION_BAD) c.reset();
      } else {
        std::lock_guard<std::mutex> lock(mu);
        bad_errors.push_back(LastSqlState(r.get()) + " " + ErrorMessage(r.get()));
        if (PQstatus(c.get()) == CONNECTION_BAD) c.reset();
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
  });
  auto wait_for = [](const std::atomic<int>& counter, int n, milliseconds limit) {
    auto deadline = Clock::now() + limit;
    while (counter < n && Clock::now() < deadline) std::this_thread::sleep_for(milliseconds(20));
    return counter >= n;
  };
  bool ran = wait_for(ok_before, 5, milliseconds(10000));
  pg.StopImmediate();
  // Bounded above server_connect (3 s): a proxy may retry connecting that long first.
  bool saw_outage = wait_for(connection_errors, 1, milliseconds(8000));
  pg.Start();
  restarted = true;
  bool recovered = wait_for(ok_after, 5, milliseconds(20000));
  stop = true;
  client.join();
  EXPECT_TRUE(ran) << "no transaction succeeded before the outage\n" << ProxyLog();
  EXPECT_TRUE(saw_outage) << "no error while the backend was down";
  EXPECT_TRUE(recovered) << "not 5 transactions within 20 s of the restart\n" << ProxyLog();
  EXPECT_TRUE(bad_errors.empty()) << bad_errors.size() << " non-connection errors, first: "
                                  << bad_errors[0];
  EXPECT_TRUE(TargetAlive()) << ProxyLog();
}

}  // namespace
}  // namespace pgtenant::testing
