// Malformed and hostile input on raw sockets: whatever one client sends, pgtenant answers it
// with 08P01 or closes that connection, and every other client goes on being served.
// All of these also run against PostgreSQL itself with PGTENANT_TEST_DIRECT=1 (which mostly
// closes without a word, and answers a bad protocol version with 0A000).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "integration/harness.h"

namespace pgtenant::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using Bytes = std::vector<uint8_t>;

void PutInt32(Bytes* b, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) b->push_back(static_cast<uint8_t>(v >> shift));
}

// A valid StartupMessage for protocol 3.0 (user app, dbname app).
Bytes StartupPacket() {
  Bytes body;
  PutInt32(&body, 196608);  // 3.0
  for (const char* s : {"user", "app", "database", "app", ""}) {
    body.insert(body.end(), s, s + strlen(s) + 1);
  }
  Bytes packet;
  PutInt32(&packet, static_cast<uint32_t>(body.size() + 4));
  // back_inserter, not insert(end, ...): GCC 12 at -O3 reports a false -Wstringop-overread on
  // the range insert into this 4-byte vector.
  std::copy(body.begin(), body.end(), std::back_inserter(packet));
  return packet;
}

int ConnectTcp(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd >= 0 && connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Writes what the peer takes; a peer that closes early is a valid outcome, not an error here.
void SendBytes(int fd, const Bytes& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

// What the server did with the bad input.
struct Reply {
  bool closed = false;     // EOF or reset, with nothing else before it (or after an error)
  bool timed_out = false;  // neither answered nor closed
  char first_type = 0;     // type byte of the first message, 0 when none
  std::string sqlstate;    // the C field when the first message is an ErrorResponse
};

// Reads until the server closes, or at most `timeout`, and parses the first message.
Reply ReadReply(int fd, milliseconds timeout) {
  Reply reply;
  std::string in;
  auto deadline = Clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      reply.timed_out = true;
      break;
    }
    pollfd pfd{fd, POLLIN, 0};
    if (poll(&pfd, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) {
      reply.closed = true;
      break;
    }
    in.append(buf, static_cast<size_t>(n));
  }
  if (in.empty()) return reply;
  reply.first_type = in[0];
  // ErrorResponse: 'E', int32 length, then (code byte, C string)* and a 0.
  if (in[0] == 'E' && in.size() >= 5) {
    for (size_t i = 5; i < in.size() && in[i] != '\0';) {
      char code = in[i];
      size_t end = in.find('\0', i + 1);
      if (end == std::string::npos) break;
      if (code == 'C') reply.sqlstate = in.substr(i + 1, end - i - 1);
      i = end + 1;
    }
  }
  return reply;
}

Bytes SslRequest() {
  Bytes packet;
  PutInt32(&packet, 8);
  PutInt32(&packet, 80877103);
  return packet;
}

// Reads exactly `n` bytes within `timeout`; fewer when the peer closes or time runs out.
std::string ReadSome(int fd, size_t n, milliseconds timeout) {
  std::string in;
  auto deadline = Clock::now() + timeout;
  while (in.size() < n) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) break;
    pollfd pfd{fd, POLLIN, 0};
    if (poll(&pfd, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[4096];
    ssize_t got = recv(fd, buf, std::min(sizeof(buf), n - in.size()), 0);
    if (got <= 0) break;
    in.append(buf, static_cast<size_t>(got));
  }
  return in;
}

// The proxy's resident memory in KiB (VmRSS), or -1.
long RssKiB(pid_t pid) {
  FILE* f = fopen(("/proc/" + std::to_string(pid) + "/status").c_str(), "r");
  if (f == nullptr) return -1;
  char line[256];
  long kib = -1;
  while (fgets(line, sizeof line, f) != nullptr) {
    if (strncmp(line, "VmRSS:", 6) == 0) kib = atol(line + 6);
  }
  fclose(f);
  return kib;
}

class HostileInputTest : public IntegrationTest {
 protected:
  void SetUp() override {
    ProxyConfigOptions options;
    // Input that stalls a login is cut off soon, so the bounded reads below see the end.
    options.timeouts["client_login"] = "3s";
    if (!DirectMode()) {
      // TLS is offered (prefer), so half-finished TLS handshakes are part of the hostile input.
      char tmpl[] = "/tmp/pgtenant-hostile.XXXXXX";
      ASSERT_NE(mkdtemp(tmpl), nullptr);
      cert_dir_ = tmpl;
      ASSERT_NO_FATAL_FAILURE(MakeTestCerts(cert_dir_));
      options.listen_extra = ListenTlsYaml("prefer", cert_dir_);
    }
    PGT_START_TARGET(options, /*direct_ok=*/true);
    bystander_ = Connect(ClientConnInfo("options='-c app.tenant_id=t001'"));
    ASSERT_TRUE(bystander_) << LastConnectError() << ProxyLog();
    ASSERT_EQ(QueryValue(bystander_.get(), "select count(*) from items"), "3");
  }

  // Sends `bytes` on a fresh socket and checks the answer: an ErrorResponse with one of
  // `allowed_states` (08P01 by default) or a close, within 6 s.
  void ExpectRejected(const Bytes& bytes, std::vector<std::string> allowed_states = {"08P01"}) {
    int fd = ConnectTcp(TargetPort());
    ASSERT_GE(fd, 0);
    SendBytes(fd, bytes);
    Reply reply = ReadReply(fd, milliseconds(6000));
    close(fd);
    ExpectRejection(reply, allowed_states);
  }

  void ExpectRejection(const Reply& reply, const std::vector<std::string>& allowed_states) {
    EXPECT_FALSE(reply.timed_out) << "neither an error nor a close within 6 s";
    if (reply.first_type != 0) {
      EXPECT_EQ(reply.first_type, 'E') << "answered with a message other than ErrorResponse";
      EXPECT_NE(std::find(allowed_states.begin(), allowed_states.end(), reply.sqlstate),
                allowed_states.end())
          << "SQLSTATE " << reply.sqlstate;
    }
  }

  // The client connected before the bad input is still served, and so is a new one.
  void ExpectOthersUnharmed() {
    EXPECT_TRUE(TargetAlive()) << ProxyLog();
    EXPECT_EQ(QueryValue(bystander_.get(), "select count(*) from items"), "3") << ProxyLog();
    PGconnPtr fresh = Connect(ClientConnInfo());
    ASSERT_TRUE(fresh) << LastConnectError() << ProxyLog();
    EXPECT_EQ(QueryValue(fresh.get(), "select 1"), "1");
  }

  void TearDown() override {
    IntegrationTest::TearDown();
    if (!cert_dir_.empty()) std::filesystem::remove_all(cert_dir_);
  }

  PGconnPtr bystander_;
  std::string cert_dir_;
};

TEST_F(HostileInputTest, RandomGarbage) {
  std::mt19937 rng(20240601);
  Bytes garbage(8192);
  for (auto& b : garbage) b = static_cast<uint8_t>(rng());
  garbage[0] |= 0x80;  // the length word is negative: invalid however it is read
  ExpectRejected(garbage);
  ExpectOthersUnharmed();
}

TEST_F(HostileInputTest, TruncatedStartupThenClose) {
  Bytes startup = StartupPacket();
  startup.resize(startup.size() / 2);
  int fd = ConnectTcp(TargetPort());
  ASSERT_GE(fd, 0);
  SendBytes(fd, startup);
  std::this_thread::sleep_for(milliseconds(200));
  close(fd);
  std::this_thread::sleep_for(milliseconds(200));
  ExpectOthersUnharmed();
}

TEST_F(HostileInputTest, TruncatedStartupHalfClosed) {
  Bytes startup = StartupPacket();
  startup.resize(startup.size() - 3);
  int fd = ConnectTcp(TargetPort());
  ASSERT_GE(fd, 0);
  SendBytes(fd, startup);
  shutdown(fd, SHUT_WR);  // the rest of the packet can never come
  Reply reply = ReadReply(fd, milliseconds(6000));
  close(fd);
  ExpectRejection(reply, {"08P01"});
  ExpectOthersUnharmed();
}

TEST_F(HostileInputTest, StartupLengthTwoToThe31) {
  Bytes packet;
  PutInt32(&packet, 0x80000000u);
  PutInt32(&packet, 196608);
  ExpectRejected(packet);
  ExpectOthersUnharmed();
}

TEST_F(HostileInputTest, StartupLengthHugePositive) {
  Bytes packet;
  PutInt32(&packet, 0x7fffffffu);
  PutInt32(&packet, 196608);
  ExpectRejected(packet);
  ExpectOthersUnharmed();
}

TEST_F(HostileInputTest, StartupLengthBelowHeader) {
  for (uint32_t len : {0u, 3u, 4u}) {
    SCOPED_TRACE(len);
    Bytes packet;
    PutInt32(&packet, len);
    PutInt32(&packet, 196608);
    ExpectRejected(packet);
  }
  ExpectOthersUnharmed();
}

// Postgres itself answers an unknown protocol version with 0A000 feature_not_supported.
TEST_F(HostileInputTest, UnknownProtocolVersion) {
  Bytes packet = StartupPacket();
  packet[4] = 0x12;
  packet[5] = 0x34;
  ExpectRejected(packet, {"08P01", "0A000"});
  ExpectOthersUnharmed();
}

// After a valid login, a typed message claiming 2^31 bytes, written under libpq's feet.
TEST_F(HostileInputTest, OversizedTypedMessageAfterLogin) {
  PGconnPtr c = Connect(ClientConnInfo());
  ASSERT_TRUE(c) << LastConnectError() << ProxyLog();
  ASSERT_EQ(QueryValue(c.get(), "select 1"), "1");
  Bytes msg = {'Q'};
  PutInt32(&msg, 0x80000000u);
  msg.insert(msg.end(), {'s', 'e', 'l', 'e', 'c', 't', ' ', '1', 0});
  SendBytes(PQsocket(c.get()), msg);
  ExpectRejection(ReadReply(PQsocket(c.get()), milliseconds(6000)), {"08P01"});
  ExpectOthersUnharmed();
}

// A typed message whose length is smaller than the length word itself.
TEST_F(HostileInputTest, TypedMessageLengthBelowFour) {
  PGconnPtr c = Connect(ClientConnInfo());
  ASSERT_TRUE(c) << LastConnectError() << ProxyLog();
  Bytes msg = {'Q'};
  PutInt32(&msg, 2);
  SendBytes(PQsocket(c.get()), msg);
  ExpectRejection(ReadReply(PQsocket(c.get()), milliseconds(6000)), {"08P01"});
  ExpectOthersUnharmed();
}

TEST_F(HostileInputTest, DataBehindTheSslRequestIsRefused) {
  if (DirectMode()) GTEST_SKIP() << "Postgres answers 'N' first when its ssl is off";
  // A man in the middle could append plaintext to the request and have it read as if it came
  // through TLS (CVE-2021-23222); the request must stand alone.
  Bytes bytes = SslRequest();
  Bytes startup = StartupPacket();
  bytes.insert(bytes.end(), startup.begin(), startup.end());
  ExpectRejected(bytes);
  ExpectOthersUnharmed();
}

TEST_F(HostileInputTest, GarbageInsteadOfATlsHandshake) {
  if (DirectMode()) GTEST_SKIP() << "needs pgtenant with TLS";
  int fd = ConnectTcp(TargetPort());
  ASSERT_GE(fd, 0);
  SendBytes(fd, SslRequest());
  ASSERT_EQ(ReadSome(fd, 1, milliseconds(5000)), "S");
  std::mt19937 rng(7);
  Bytes garbage(4096);
  for (auto& b : garbage) b = static_cast<uint8_t>(rng());
  SendBytes(fd, garbage);
  Reply reply = ReadReply(fd, milliseconds(6000));
  close(fd);
  EXPECT_TRUE(reply.closed) << "the connection stayed open after a broken handshake";
  ExpectOthersUnharmed();
}

TEST_F(HostileInputTest, AbruptClosesMidHandshake) {
  if (DirectMode()) GTEST_SKIP() << "needs pgtenant with TLS";
  for (int round = 0; round < 20; ++round) {
    // During SCRAM: the startup was sent and the server asked for SASL.
    int fd = ConnectTcp(TargetPort());
    ASSERT_GE(fd, 0);
    SendBytes(fd, StartupPacket());
    std::string auth = ReadSome(fd, 1, milliseconds(5000));
    EXPECT_EQ(auth, "R");
    close(fd);
    // During the TLS handshake: the request was accepted and only part of a hello came.
    fd = ConnectTcp(TargetPort());
    ASSERT_GE(fd, 0);
    SendBytes(fd, SslRequest());
    EXPECT_EQ(ReadSome(fd, 1, milliseconds(5000)), "S");
    SendBytes(fd, Bytes{0x16, 0x03, 0x01, 0x02, 0x00, 0x01});
    close(fd);
  }
  ExpectOthersUnharmed();
}

// 1,000 connections that never finish logging in (silent, a partial startup packet, stalled in
// SCRAM, stalled in the TLS handshake) while a logged-in client keeps querying and new clients
// log in. Every one is cut off by client_login, and the proxy's memory comes back down.
TEST_F(HostileInputTest, ThousandHalfOpenConnections) {
  if (DirectMode()) GTEST_SKIP() << "needs pgtenant (client_login, RSS)";
  constexpr int kHalfOpen = 1000;
  constexpr auto kAnswerBound = milliseconds(1000);
  PGconnPtr admin = Connect("host=127.0.0.1 port=" + std::to_string(TargetPort()) +
                            " dbname=pgtenant user=admin password=admin_pw sslmode=disable");
  ASSERT_TRUE(admin) << LastConnectError();
  auto client_count = [&] {
    PGresultPtr r = Exec(admin.get(), "SHOW CLIENTS");
    return PQresultStatus(r.get()) == PGRES_TUPLES_OK ? PQntuples(r.get()) : -1;
  };
  const int clients_before = client_count();

  Bytes partial = StartupPacket();
  partial.resize(6);
  auto open_round = [&](std::vector<int>* fds) {
    for (int i = 0; i < kHalfOpen; ++i) {
      int fd = ConnectTcp(TargetPort());
      ASSERT_GE(fd, 0) << "connection " << i << ": " << strerror(errno);
      switch (i % 4) {
        case 0: break;  // silent
        case 1: SendBytes(fd, partial); break;
        case 2: SendBytes(fd, StartupPacket()); break;  // then never answers SCRAM
        case 3: SendBytes(fd, SslRequest()); break;     // then never sends a hello
      }
      fds->push_back(fd);
      if (i % 100 == 99) {
        // The logged-in client is answered promptly all the while.
        auto start = Clock::now();
        EXPECT_EQ(QueryValue(bystander_.get(), "select count(*) from items"), "3");
        EXPECT_LT(Clock::now() - start, kAnswerBound) << "after " << i + 1 << " half-open connections";
      }
    }
  };
  // Waits until pgtenant has closed every one of them (client_login is 3 s).
  auto expect_all_closed = [&](std::vector<int>* fds) {
    auto deadline = Clock::now() + milliseconds(15000);
    int closed = 0;
    for (int fd : *fds) {
      for (;;) {
        auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
        pollfd pfd{fd, POLLIN, 0};
        if (left.count() <= 0 || poll(&pfd, 1, static_cast<int>(left.count())) <= 0) break;
        char buf[4096];
        if (recv(fd, buf, sizeof buf, 0) <= 0) {
          ++closed;
          break;
        }
      }
      close(fd);
    }
    fds->clear();
    EXPECT_EQ(closed, kHalfOpen) << "connections left open past client_login";
  };

  // The RSS once the janitor (every 100 ms) has given freed pages back.
  auto settled_rss = [&] {
    std::this_thread::sleep_for(milliseconds(500));
    return RssKiB(proxy_->pid());
  };
  // The first round warms the allocator up; the baseline is taken after it.
  std::vector<int> fds;
  ASSERT_NO_FATAL_FAILURE(open_round(&fds));
  expect_all_closed(&fds);
  const long baseline_kib = settled_rss();
  ASSERT_GT(baseline_kib, 0);

  ASSERT_NO_FATAL_FAILURE(open_round(&fds));
  const long loaded_kib = RssKiB(proxy_->pid());
  // A new client logs in (SCRAM) and is served while all of them are open.
  auto start = Clock::now();
  PGconnPtr fresh = Connect(ClientConnInfo("options='-c app.tenant_id=t002'"));
  ASSERT_TRUE(fresh) << LastConnectError() << ProxyLog();
  EXPECT_EQ(QueryValue(fresh.get(), "select 1"), "1");
  EXPECT_LT(Clock::now() - start, kAnswerBound) << "login with 1,000 half-open connections";
  fresh.reset();
  EXPECT_GE(client_count(), clients_before + kHalfOpen);
  expect_all_closed(&fds);

  // Gone from the client list, and from memory.
  for (int i = 0; i < 50 && client_count() != clients_before; ++i) std::this_thread::sleep_for(milliseconds(100));
  EXPECT_EQ(client_count(), clients_before);
  const long after_kib = settled_rss();
  std::printf("[ RSS      ] baseline %ld KiB, with 1,000 half-open %ld KiB, after %ld KiB\n", baseline_kib,
              loaded_kib, after_kib);
#if defined(__SANITIZE_ADDRESS__)
  // ASan quarantines freed memory and ignores malloc_trim: RSS says nothing under it.
  std::printf("[ RSS      ] not checked under AddressSanitizer\n");
#else
  EXPECT_LE(after_kib, baseline_kib + 512) << "memory did not return to its baseline";
#endif
  ExpectOthersUnharmed();
}

}  // namespace
}  // namespace pgtenant::testing
