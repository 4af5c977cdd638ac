// Statements that run long (FakePostgres hangs them until a cancel): cancel forwarding to the
// backend running the client's query (proxy/cancel.cc through the Pooler), cancels that must
// not reach anyone, and a client that leaves while its query runs (ServerSession closes the
// connection rather than drain it).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "machine_test.h"
#include "protocol/messages.h"

namespace pgtenant::testing {
namespace {

class CancelMachineTest : public MachineTest {
 public:
  // Sends CancelRequest(pid, key) to the pooler on a connection of its own.
  void SendCancel(int32_t pid, int32_t key) {
    std::string bytes;
    protocol::AppendCancelRequest(&bytes, pid, key);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(harness_.port()));
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ASSERT_EQ(send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL), static_cast<ssize_t>(bytes.size()));
    pollfd p{fd, POLLIN, 0};
    poll(&p, 1, 2000);  // pgtenant closes the connection when done
    close(fd);
  }
  static bool Cancel(PGconn* c) {
    PGcancel* cancel = PQgetCancel(c);
    char error[256];
    bool ok = PQcancel(cancel, error, sizeof(error)) == 1;
    PQfreeCancel(cancel);
    return ok;
  }
};

TEST_F(CancelMachineTest, ACancelReachesTheBackendRunningTheQuery) {
  StartPooler();
  PGconnPtr a = Client("t1");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  fake_.Inject({.statement_contains = "select 'long'", .hang = true});
  ASSERT_EQ(PQsendQuery(a.get(), "select 'long'"), 1);
  ASSERT_TRUE(fake_.WaitFor([&] { return fake_.Hanging(0); }));
  EXPECT_NE(PQbackendPID(a.get()), fake_.BackendPid(0)) << "the client knows pgtenant's key, not the backend's";
  ASSERT_TRUE(Cancel(a.get()));
  PqResults r = CollectResults(a.get());
  EXPECT_EQ(r.Value(), "ERROR:57014");
  ASSERT_EQ(fake_.Cancels().size(), 1u);
  std::string expected = std::to_string(fake_.BackendPid(0));
  expected += " ";
  expected += std::to_string(fake_.BackendPid(0) * 7 + 1);
  EXPECT_EQ(fake_.Cancels()[0], expected) << "the backend's own pid and key";
  EXPECT_EQ(Tenant(a.get()), "t1");
  EXPECT_EQ(Tenant(b.get()), "t2");
}

TEST_F(CancelMachineTest, CancelsThatMustNotReachAnyone) {
  StartPooler();
  PGconnPtr a = Client("t1");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  // A holds no server: nothing to cancel.
  ASSERT_TRUE(Cancel(a.get()));
  // B's query runs; a cancel with B's pid and a wrong key is ignored.
  fake_.Inject({.statement_contains = "select 'long'", .hang = true});
  ASSERT_EQ(PQsendQuery(b.get(), "select 'long'"), 1);
  ASSERT_TRUE(fake_.WaitFor([&] { return fake_.Hanging(0); }));
  SendCancel(PQbackendPID(b.get()), 12345);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(fake_.Cancels().empty());
  EXPECT_TRUE(fake_.Hanging(0)) << "B's query still runs";
  // A's own key does not cancel B's query either.
  ASSERT_TRUE(Cancel(a.get()));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(fake_.Cancels().empty());
  ASSERT_TRUE(Cancel(b.get()));
  EXPECT_EQ(CollectResults(b.get()).Value(), "ERROR:57014");
  EXPECT_EQ(Tenant(b.get()), "t2");
}

TEST_F(CancelMachineTest, ACancelInsideABlockAbortsIt) {
  StartPooler();
  PGconnPtr a = Client("t1");
  ASSERT_TRUE(a);
  EXPECT_EQ(Query(a.get(), "BEGIN").Tag(), "BEGIN");
  fake_.Inject({.statement_contains = "select 'long'", .hang = true});
  ASSERT_EQ(PQsendQueryParams(a.get(), "select 'long'", 0, nullptr, nullptr, nullptr, nullptr, 0), 1);
  ASSERT_TRUE(fake_.WaitFor([&] { return fake_.Hanging(0); }));
  ASSERT_TRUE(Cancel(a.get()));
  EXPECT_EQ(CollectResults(a.get()).Value(), "ERROR:57014");
  EXPECT_EQ(PQtransactionStatus(a.get()), PQTRANS_INERROR);
  EXPECT_EQ(Value(a.get(), "select 1"), "ERROR:25P02");
  EXPECT_EQ(Query(a.get(), "ROLLBACK").Tag(), "ROLLBACK");
  EXPECT_EQ(Tenant(a.get()), "t1");
}

// The client leaves while its query runs: the connection is closed, not drained, and the next
// client gets a new one without an error.
TEST_F(CancelMachineTest, AClientLeavingMidQueryClosesItsServer) {
  StartPooler();
  PGconnPtr a = Client("t1");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  fake_.Inject({.statement_contains = "select 'long'", .hang = true});
  ASSERT_EQ(PQsendQuery(a.get(), "select 'long'"), 1);
  ASSERT_TRUE(fake_.WaitFor([&] { return fake_.Hanging(0); }));
  a.reset();
  ASSERT_TRUE(fake_.WaitFor([&] { return fake_.open_connections() == 0; }));
  EXPECT_EQ(Tenant(b.get()), "t2");
  EXPECT_EQ(fake_.connections(), 2);
}

// B waits for the one server while A's query runs; a cancel of A's query lets B through.
TEST_F(CancelMachineTest, AWaitingClientIsServedOnceTheLongQueryEnds) {
  StartPooler();
  PGconnPtr a = Client("t1");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  fake_.Inject({.statement_contains = "select 'long'", .hang = true});
  ASSERT_EQ(PQsendQuery(a.get(), "select 'long'"), 1);
  ASSERT_TRUE(fake_.WaitFor([&] { return fake_.Hanging(0); }));
  ASSERT_EQ(PQsendQuery(b.get(), kTenantProbe), 1);
  pollfd p{PQsocket(b.get()), POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 150), 0) << "B waits";
  // B has no server: its cancel cancels nothing of A's.
  ASSERT_TRUE(Cancel(b.get()));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_TRUE(fake_.Hanging(0));
  ASSERT_TRUE(Cancel(a.get()));
  EXPECT_EQ(CollectResults(a.get()).Value(), "ERROR:57014");
  PqResults r = CollectResults(b.get());
  // B's cancel while it waited for a server cancels its statement (CancelWaiting), as
  // PostgreSQL cancels a query that waits for a lock.
  EXPECT_EQ(r.Value(), "ERROR:57014");
  EXPECT_EQ(Tenant(b.get()), "t2");
}

}  // namespace
}  // namespace pgtenant::testing
