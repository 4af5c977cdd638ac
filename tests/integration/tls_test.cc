// TLS on both sides of pgtenant, against certificate authorities made by the tests
// (make_test_certs.sh): clients with libpq and psql in sslmode require and verify-full, a
// client refused when the listener requires TLS, the listener's certificate picked up again on
// RELOAD, and pools reaching the fixture's ssl=on PostgreSQL with tls require / verify-full
// (checked on the server in pg_stat_ssl) or refusing a backend whose certificate does not verify.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "integration/harness.h"
#include "integration/ops_util.h"

namespace pgtenant::testing {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

class TlsTest : public IntegrationTest {
 protected:
  void SetUp() override {
    if (DirectMode()) GTEST_SKIP() << "needs pgtenant";
    char tmpl[] = "/tmp/pgtenant-tls.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_NO_FATAL_FAILURE(MakeTestCerts(dir_ + "/a"));
  }
  void TearDown() override {
    IntegrationTest::TearDown();
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // A client of the proxy with the given libpq TLS settings, as `tenant`.
  std::string Client(const std::string& tls, const std::string& tenant = "t001") const {
    return "host=127.0.0.1 port=" + std::to_string(TargetPort()) +
           " dbname=app user=app password=app_pw connect_timeout=10 options='-c app.tenant_id=" + tenant + "' " +
           tls;
  }

  std::string dir_;
};

TEST_F(TlsTest, RequireServesTlsClientsAndRefusesPlainOnes) {
  ProxyConfigOptions o;
  o.listen_extra = ListenTlsYaml("require", dir_ + "/a");
  PGT_START_TARGET(o, false);

  PGconnPtr c = Connect(Client("sslmode=require"));
  ASSERT_TRUE(c) << LastConnectError() << ProxyLog();
  EXPECT_EQ(PQsslInUse(c.get()), 1);
  EXPECT_EQ(QueryValue(c.get(), "SELECT current_setting('app.tenant_id')"), "t001");
  // A result far larger than one TLS record and than the socket buffers.
  EXPECT_EQ(QueryValue(c.get(), "SELECT sum(length(repeat('x', 1000) || g)) FROM generate_series(1, 5000) g"),
            "5018893");
  EXPECT_EQ(QueryValue(c.get(), "SELECT count(*) FROM (SELECT repeat('y', 2000) FROM generate_series(1, 3000)) s"),
            "3000");

  // The admin console over TLS reports the client's protocol and cipher.
  PGconnPtr admin = Connect(ops::AdminConnInfo(TargetPort()) + " sslmode=require");
  ASSERT_TRUE(admin) << LastConnectError();
  ops::Table clients = ops::RunAdmin(admin.get(), "SHOW CLIENTS");
  ASSERT_TRUE(clients.ok()) << clients.error;
  ASSERT_FALSE(clients.Where("user", "app").empty());
  EXPECT_NE(clients.Where("user", "app")[0]["tls"].find("TLS"), std::string::npos);

  std::string error;
  PGconnPtr plain = Connect(Client("sslmode=disable"), &error);
  EXPECT_FALSE(plain);
  EXPECT_NE(error.find("requires TLS"), std::string::npos) << error;
  // The TLS client was not disturbed.
  EXPECT_EQ(QueryValue(c.get(), "SELECT 1"), "1");
}

TEST_F(TlsTest, PsqlVerifyFullAgainstTheTestCa) {
  ProxyConfigOptions o;
  o.listen_extra = ListenTlsYaml("prefer", dir_ + "/a");
  PGT_START_TARGET(o, false);
  const PgFixture& pg = PgFixture::Get();
  std::string psql = pg.bin_dir + "/psql";
  auto run_psql = [&](const std::string& tls) {
    return RunCommand({psql, "-X", "-A", "-t", "-c", "SELECT current_setting('app.tenant_id')", "-d",
                       Client(tls)},
                      seconds(30));
  };
  // The certificate names localhost and 127.0.0.1: both verify.
  CommandResult by_ip = run_psql("sslmode=verify-full sslrootcert=" + dir_ + "/a/ca.crt");
  EXPECT_EQ(by_ip.exit_code, 0) << by_ip.output << ProxyLog();
  EXPECT_EQ(by_ip.output, "t001\n");
  CommandResult by_name = run_psql("sslmode=verify-full host=localhost hostaddr=127.0.0.1 sslrootcert=" + dir_ +
                                   "/a/ca.crt");
  EXPECT_EQ(by_name.exit_code, 0) << by_name.output;

  // Another CA does not vouch for pgtenant's certificate.
  ASSERT_NO_FATAL_FAILURE(MakeTestCerts(dir_ + "/other"));
  CommandResult wrong = run_psql("sslmode=verify-full sslrootcert=" + dir_ + "/other/ca.crt");
  EXPECT_NE(wrong.exit_code, 0);
  EXPECT_NE(wrong.output.find("certificate verify failed"), std::string::npos) << wrong.output;

  // prefer: plain clients are still served.
  PGconnPtr plain = Connect(Client("sslmode=disable"));
  ASSERT_TRUE(plain) << LastConnectError();
  EXPECT_EQ(PQsslInUse(plain.get()), 0);
  EXPECT_EQ(QueryValue(plain.get(), "SELECT 1"), "1");
}

TEST_F(TlsTest, DisableAnswersNoAndLibpqFallsBackOrFails) {
  PGT_START_TARGET(ProxyConfigOptions{}, false);
  PGconnPtr prefer = Connect(Client("sslmode=prefer"));
  ASSERT_TRUE(prefer) << LastConnectError();
  EXPECT_EQ(PQsslInUse(prefer.get()), 0);
  std::string error;
  PGconnPtr require = Connect(Client("sslmode=require"), &error);
  EXPECT_FALSE(require);
  EXPECT_NE(error.find("does not support SSL"), std::string::npos) << error;
}

TEST_F(TlsTest, ReloadPicksUpARenewedCertificate) {
  // The listener's files live at fixed paths; a renewal overwrites them.
  std::string live = dir_ + "/live";
  fs::create_directories(live);
  fs::copy_file(dir_ + "/a/server.crt", live + "/server.crt");
  fs::copy_file(dir_ + "/a/server.key", live + "/server.key");
  ProxyConfigOptions o;
  o.listen_extra = ListenTlsYaml("require", live);
  PGT_START_TARGET(o, false);
  std::string verify_a = "sslmode=verify-full sslrootcert=" + dir_ + "/a/ca.crt";
  std::string verify_b = "sslmode=verify-full sslrootcert=" + dir_ + "/b/ca.crt";
  PGconnPtr before = Connect(Client(verify_a));
  ASSERT_TRUE(before) << LastConnectError() << ProxyLog();

  ASSERT_NO_FATAL_FAILURE(MakeTestCerts(dir_ + "/b"));
  fs::copy_file(dir_ + "/b/server.crt", live + "/server.crt", fs::copy_options::overwrite_existing);
  fs::copy_file(dir_ + "/b/server.key", live + "/server.key", fs::copy_options::overwrite_existing);
  PGconnPtr admin = Connect(ops::AdminConnInfo(TargetPort()) + " sslmode=require");
  ASSERT_TRUE(admin) << LastConnectError();
  ops::Table reload = ops::RunAdmin(admin.get(), "RELOAD");
  ASSERT_TRUE(reload.ok()) << reload.error;

  PGconnPtr after = Connect(Client(verify_b));
  ASSERT_TRUE(after) << LastConnectError() << ProxyLog();
  EXPECT_EQ(QueryValue(after.get(), "SELECT 1"), "1");
  std::string error;
  EXPECT_FALSE(Connect(Client(verify_a), &error)) << "the old certificate is still served";
  // The connection made with the old certificate keeps working.
  EXPECT_EQ(QueryValue(before.get(), "SELECT 2"), "2");

  // A key that does not match the certificate is refused whole; the good files stay in force.
  fs::copy_file(dir_ + "/a/server.key", live + "/server.key", fs::copy_options::overwrite_existing);
  ops::Table bad = ops::RunAdmin(admin.get(), "RELOAD");
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.error.find("does not match"), std::string::npos) << bad.error;
  PGconnPtr still = Connect(Client(verify_b));
  EXPECT_TRUE(still) << LastConnectError();
}

// The backend side: the fixture's PostgreSQL runs with ssl = on and a certificate from PGT_PG_CA.
class BackendTlsTest : public TlsTest {
 protected:
  // Whether the server connection that runs this client's statement uses TLS, as Postgres sees it.
  std::string BackendSsl(PGconn* c) {
    return QueryValue(c, "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
  }
};

TEST_F(BackendTlsTest, RequireAndVerifyFullEncryptAndDisableDoesNot) {
  const PgFixture& pg = PgFixture::Get();
  ASSERT_FALSE(pg.ca_file.empty()) << "the fixture has no PGT_PG_CA";
  struct Case {
    std::string pool_extra;
    std::string want;
  };
  for (const Case& k : {Case{"    tls: require\n", "true"},
                        Case{"    tls: verify-full\n    ca_file: " + pg.ca_file + "\n", "true"},
                        Case{"    tls: prefer\n", "true"}, Case{"    tls: disable\n", "false"}}) {
    SCOPED_TRACE(k.pool_extra);
    ProxyConfigOptions o;
    o.shared_pool_extra = k.pool_extra;
    PGT_START_TARGET(o, false);
    PGconnPtr c = Connect(Client("sslmode=disable"));
    ASSERT_TRUE(c) << LastConnectError() << ProxyLog();
    EXPECT_EQ(BackendSsl(c.get()), k.want) << ProxyLog();
    EXPECT_EQ(QueryValue(c.get(), "SELECT count(*) FROM generate_series(1, 100000)"), "100000");
    PGconnPtr admin = Connect(ops::AdminConnInfo(TargetPort()));
    ASSERT_TRUE(admin) << LastConnectError();
    ops::Table servers = ops::RunAdmin(admin.get(), "SHOW SERVERS");
    ASSERT_TRUE(servers.ok()) << servers.error;
    ASSERT_FALSE(servers.Where("pool", "shared").empty());
    EXPECT_EQ(servers.Where("pool", "shared")[0]["tls"].empty(), k.want == "false");
    c.reset();
    admin.reset();
    IntegrationTest::TearDown();
  }
}

TEST_F(BackendTlsTest, VerifyFullRefusesABackendTheCaDoesNotVouchFor) {
  ProxyConfigOptions o;
  o.shared_pool_extra = "    tls: verify-full\n    ca_file: " + dir_ + "/a/ca.crt\n";
  PGT_START_TARGET(o, false);
  // The login itself needs a server connection of the pool (for its parameters), so it fails.
  std::string error;
  PGconnPtr c = Connect(Client("sslmode=disable"), &error);
  EXPECT_FALSE(c);
  EXPECT_NE(error.find("pool \"shared\""), std::string::npos) << error;
  EXPECT_NE(error.find("certificate verification failed"), std::string::npos) << error;
  // The proxy is up, and a tenant on another pool is served.
  PGconnPtr acme = Connect(Client("sslmode=disable", "acme"));
  ASSERT_TRUE(acme) << LastConnectError();
  EXPECT_EQ(QueryValue(acme.get(), "SELECT current_database()"), "acme");
}

}  // namespace
}  // namespace pgtenant::testing
