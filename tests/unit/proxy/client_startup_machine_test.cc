// ClientSession before it is Idle (Startup, Auth, LoginWait) and its limits, through a real
// Pooler and the fake backend: SSLRequest refused in favour of plain text, replication refused,
// per-tenant client limits, oversized messages, and the login answer built from the pool's
// backend parameters.
#include <gtest/gtest.h>

#include <thread>

#include "machine_test.h"

namespace pgtenant::testing {
namespace {

class ClientStartupMachineTest : public MachineTest {
 public:
  // What a login with these startup parameters gets: "" when it succeeds, else the messages
  // (e.g. "login failed: E:22023 EOF").
  std::string LoginError(const std::vector<std::pair<std::string, std::string>>& params) {
    RawClient raw;
    std::string error;
    return raw.Connect(harness_.port(), params, &error) ? std::string() : error;
  }
};

// The login answer: the backend's ParameterStatus values (learnt once per pool), overridden
// by the client's own startup settings, and a BackendKeyData of pgtenant's.
TEST_F(ClientStartupMachineTest, TheLoginAnswerComesFromThePoolsBackend) {
  StartPooler();
  PGconnPtr a = Client("t1", "application_name=mine");
  ASSERT_TRUE(a);
  EXPECT_STREQ(PQparameterStatus(a.get(), "server_version"), "15.0 (fake)");
  EXPECT_STREQ(PQparameterStatus(a.get(), "application_name"), "mine");
  EXPECT_NE(PQbackendPID(a.get()), fake_.BackendPid(0));
  // The pool knows them now: the next login needs no new backend connection.
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(b);
  EXPECT_STREQ(PQparameterStatus(b.get(), "server_version"), "15.0 (fake)");
  EXPECT_EQ(fake_.connections(), 1);
}

TEST_F(ClientStartupMachineTest, SslRequestIsRefusedWhenTheListenerHasNoTls) {
  StartPooler();
  PGconnPtr prefer = Client("t1", "sslmode=prefer");
  ASSERT_TRUE(prefer) << "libpq goes on in plain text after 'N'";
  EXPECT_EQ(PQsslInUse(prefer.get()), 0);
  EXPECT_EQ(Tenant(prefer.get()), "t1");
  std::string error;
  PGconnPtr require = harness_.Connect("sslmode=require options='-c app.tenant_id=t1'", &error);
  EXPECT_FALSE(require);
}

TEST_F(ClientStartupMachineTest, ReplicationConnectionsAreRefused) {
  StartPooler();
  std::string error;
  PGconnPtr c = harness_.Connect("replication=database options='-c app.tenant_id=t1'", &error);
  EXPECT_FALSE(c);
  EXPECT_FALSE(error.empty());
  EXPECT_EQ(fake_.connections(), 0) << "refused before any pool is involved";
}

TEST_F(ClientStartupMachineTest, UnknownTenantsAndBadIdsAtLogin) {
  StartPooler();
  std::string error;
  EXPECT_EQ(LoginError({{"user", "app"}, {"database", "app"}, {"options", "-c app.tenant_id=Bad-Id"}}),
            "login failed: E:22023 EOF");
  EXPECT_EQ(LoginError({{"user", "acme_service"}, {"database", "app"}, {"options", "-c app.tenant_id=t1"}}),
            "login failed: E:42501 EOF")
      << "a user restricted to acme";
  EXPECT_EQ(LoginError({{"user", "nobody"}, {"database", "app"}, {"options", "-c app.tenant_id=t1"}}),
            "login failed: E:28000 EOF")
      << "an unknown user";
  PGconnPtr ok = harness_.Connect("user=acme_service options='-c app.tenant_id=acme'", &error);
  ASSERT_TRUE(ok) << error;
  EXPECT_EQ(Tenant(ok.get()), "acme");
}

TEST_F(ClientStartupMachineTest, PerTenantClientLimit) {
  HarnessOptions options;
  options.tenants_extra = "  t9: { pool: shared, max_client_connections: 1 }\n";
  StartPooler(options);
  PGconnPtr first = Client("t9");
  ASSERT_TRUE(first);
  EXPECT_EQ(Tenant(first.get()), "t9");
  std::string error;
  EXPECT_EQ(LoginError({{"user", "app"}, {"database", "app"}, {"options", "-c app.tenant_id=t9"}}),
            "login failed: E:53300 EOF");
  // Another tenant is not limited by t9's count.
  PGconnPtr other = Client("t1");
  ASSERT_TRUE(other);
  EXPECT_EQ(Tenant(other.get()), "t1");
  first.reset();
  PGconnPtr again;
  for (int i = 0; i < 50 && !again; ++i) {
    again = harness_.Connect("options='-c app.tenant_id=t9'", &error);
    if (!again) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(again) << "the slot is free once the first client left: " << error;
  EXPECT_EQ(Tenant(again.get()), "t9");
}

TEST_F(ClientStartupMachineTest, AnOversizedMessageIsAProtocolViolation) {
  HarnessOptions options;
  options.extra_yaml = "limits:\n  max_message_size: 1kB\n";
  StartPooler(options);
  PGconnPtr a = Client("t1");
  PGconnPtr b = Client("t2");
  ASSERT_TRUE(a && b);
  std::string big = "select '";
  big.append(4096, 'x');
  big += "'";
  PqResults r = Query(a.get(), big);
  ASSERT_FALSE(r.results.empty());
  EXPECT_EQ(r.results.front().sqlstate, "08P01");
  EXPECT_EQ(PQstatus(a.get()), CONNECTION_BAD);
  EXPECT_EQ(Tenant(b.get()), "t2");
}

}  // namespace
}  // namespace pgtenant::testing
