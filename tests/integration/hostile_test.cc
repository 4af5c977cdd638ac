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
#include <cstring>
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
  packet.insert(packet.end(), body.begin(), body.end());
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

class HostileInputTest : public IntegrationTest {
 protected:
  void SetUp() override {
    ProxyConfigOptions options;
    // Input that stalls a login is cut off soon, so the bounded reads below see the end.
    options.timeouts["client_login"] = "3s";
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

  PGconnPtr bystander_;
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

}  // namespace
}  // namespace pgtenant::testing
