// `pgtenant --check-config` and `--config` on broken and valid files (docs/reference.md section 1):
// every problem is printed with its key path, and the exit code says whether the file is valid.
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <string>

#include "integration/harness.h"

namespace pgtenant::testing {
namespace {

using std::chrono::milliseconds;

// Three independent problems; everything else is valid, so each must be reported on its own.
constexpr const char* kBrokenConfig = R"(listen:
  host: 127.0.0.1
  port: 70000
metrics:
  port: 0
auth:
  type: scram-sha-256
  users:
    app:
      password: "app_pw"
      tenants: ["*"]
tenancy:
  variable: app.tenant_id
  default_pool: shared
  require_tenant: false
pools:
  shared:
    host: 127.0.0.1
    port: 5432
    user: app_rls
    password: "app_rls_pw"
    size: 5
timeouts:
  query_wiat: 5s
)";

const char* const kBrokenPaths[] = {"listen.port", "pools.shared.database",
                                    "timeouts.query_wiat"};

class CheckConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (DirectMode()) GTEST_SKIP() << "needs pgtenant (PGTENANT_TEST_DIRECT=1)";
    char tmpl[] = "/tmp/pgtenant-cfg.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    for (const auto& f : files_) unlink(f.c_str());
    if (!dir_.empty()) rmdir(dir_.c_str());
  }

  std::string WriteConfig(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    files_.push_back(path);
    return path;
  }

  static CommandResult RunPgtenant(const std::string& flag, const std::string& path) {
    return RunCommand({PGTENANT_BINARY, flag, path}, milliseconds(10000));
  }

  std::string dir_;
  std::vector<std::string> files_;
};

TEST_F(CheckConfigTest, BrokenConfigReportsEveryProblemWithItsPath) {
  std::string path = WriteConfig("broken.yaml", kBrokenConfig);
  CommandResult r = RunPgtenant("--check-config", path);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  for (const char* key : kBrokenPaths) {
    EXPECT_NE(r.output.find(key), std::string::npos) << "no mention of " << key << ":\n" << r.output;
  }
}

TEST_F(CheckConfigTest, RunningOnBrokenConfigExitsWithTheSameProblems) {
  std::string path = WriteConfig("broken.yaml", kBrokenConfig);
  CommandResult r = RunPgtenant("--config", path);
  ASSERT_FALSE(r.timed_out) << "pgtenant kept running on an invalid config:\n" << r.output;
  EXPECT_GT(r.exit_code, 0) << r.output;
  for (const char* key : kBrokenPaths) {
    EXPECT_NE(r.output.find(key), std::string::npos) << "no mention of " << key << ":\n" << r.output;
  }
}

TEST_F(CheckConfigTest, ValidConfigPasses) {
  std::string path = WriteConfig("valid.yaml", DefaultProxyConfig(FreePort(), PgFixture::Get()));
  CommandResult r = RunPgtenant("--check-config", path);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

// listen.host may be a host name, as PgBouncer's listen_addr may: what --check-config accepts,
// pgtenant starts on (every address the name resolves to; "localhost" includes 127.0.0.1).
TEST_F(CheckConfigTest, HostNameInListenHostPassesTheCheckAndServes) {
  int port = FreePort();
  std::string yaml = DefaultProxyConfig(port, PgFixture::Get());
  const std::string literal = "listen:\n  host: 127.0.0.1\n";
  ASSERT_EQ(yaml.rfind(literal, 0), 0u) << yaml;
  yaml.replace(0, literal.size(), "listen:\n  host: localhost\n");

  CommandResult check = RunPgtenant("--check-config", WriteConfig("hostname.yaml", yaml));
  EXPECT_FALSE(check.timed_out);
  ASSERT_EQ(check.exit_code, 0) << check.output;

  std::string error;
  std::unique_ptr<ProxyProcess> proxy = ProxyProcess::Start(yaml, &error);
  ASSERT_TRUE(proxy) << error;
  PGconnPtr conn = Connect("host=127.0.0.1 port=" + std::to_string(port) +
                           " dbname=app user=app password=app_pw sslmode=disable connect_timeout=10"
                           " options='-c app.tenant_id=t001'");
  ASSERT_TRUE(conn) << LastConnectError() << "\n" << proxy->Log();
  EXPECT_EQ(QueryValue(conn.get(), "select current_setting('app.tenant_id')"), "t001");
}

// A listen.host that is neither an address, "*" nor a name is refused by the check, and by the
// start with the same words.
TEST_F(CheckConfigTest, ListenHostThatIsNoNameIsRefusedByCheckAndStart) {
  std::string yaml = DefaultProxyConfig(FreePort(), PgFixture::Get());
  const std::string literal = "listen:\n  host: 127.0.0.1\n";
  ASSERT_EQ(yaml.rfind(literal, 0), 0u) << yaml;
  yaml.replace(0, literal.size(), "listen:\n  host: \"127.0.0.1:6432\"\n");
  std::string path = WriteConfig("badhost.yaml", yaml);
  for (const char* flag : {"--check-config", "--config"}) {
    CommandResult r = RunPgtenant(flag, path);
    ASSERT_FALSE(r.timed_out) << flag << ":\n" << r.output;
    EXPECT_EQ(r.exit_code, 1) << flag << ":\n" << r.output;
    EXPECT_NE(r.output.find("listen.host: \"127.0.0.1:6432\" is not an IP address"),
              std::string::npos)
        << flag << ":\n" << r.output;
  }
}

TEST_F(CheckConfigTest, MissingFileIsAnErrorNamingIt) {
  std::string path = dir_ + "/does-not-exist.yaml";
  CommandResult r = RunPgtenant("--check-config", path);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("does-not-exist.yaml"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace pgtenant::testing
