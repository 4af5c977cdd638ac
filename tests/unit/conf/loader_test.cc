// LoadConfigFile / LoadConfigString end to end: the complete example (testdata/full.yaml),
// defaults, derived fields, several errors at once, YAML syntax errors, unreadable files and
// hostile input.
#include "conf/loader.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include "conf/duration.h"
#include "conf/pool_template.h"

namespace pgtenant::conf {
namespace {

namespace fs = std::filesystem;

const std::string kTestdata = PGTENANT_TESTDATA;

std::string Dump(const LoadResult& result) {
  std::string all;
  for (const Diagnostic& d : result.diagnostics) all += FormatDiagnostic(d, "cfg") + "\n";
  return all;
}

// A scratch directory removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "pgtenant_conf_XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  fs::path Write(const std::string& name, const std::string& content) const {
    fs::path file = path_ / name;
    std::ofstream(file) << content;
    return file;
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

class FullConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("ACME_DB_PASSWORD", "acme-pw-from-env", 1);
    fs::copy_file(kTestdata + "/full.yaml", dir_.path() / "pgtenant.yaml");
    dir_.Write("server.crt", "cert");
    dir_.Write("server.key", "key");
    result_ = LoadConfigFile((dir_.path() / "pgtenant.yaml").string());
  }
  void TearDown() override { unsetenv("ACME_DB_PASSWORD"); }

  TempDir dir_;
  LoadResult result_;
};

TEST_F(FullConfig, LoadsWithTheValuesWritten) {
  ASSERT_TRUE(result_.ok()) << Dump(result_);
  const Config& c = *result_.config;
  EXPECT_EQ(c.source_path, (dir_.path() / "pgtenant.yaml").string());
  EXPECT_EQ(c.listen.host, "127.0.0.1");
  EXPECT_EQ(c.listen.port, 6432);
  EXPECT_EQ(c.listen.max_client_connections, 10000);
  EXPECT_EQ(c.listen.tls.mode, ClientTlsMode::kPrefer);
  // Relative file names are taken from the config file's directory.
  EXPECT_EQ(c.listen.tls.cert_file, (dir_.path() / "server.crt").string());
  EXPECT_EQ(c.listen.tls.key_file, (dir_.path() / "server.key").string());
  EXPECT_EQ(c.metrics.port, 9930);
  EXPECT_EQ(c.admin.database, "pgtenant");
  EXPECT_EQ(c.admin.users, std::vector<std::string>{"admin"});
  EXPECT_EQ(c.auth.type, AuthType::kScramSha256);
  EXPECT_EQ(c.tenancy.variable, "app.tenant_id");
  EXPECT_EQ(c.tenancy.sources.size(), 4u);
  EXPECT_EQ(c.tenancy.default_pool, std::optional<std::string>("shared"));
  EXPECT_TRUE(c.tenancy.require_tenant);
  EXPECT_FALSE(c.config_watch);
  EXPECT_EQ(c.timeouts.client_login, 15000);
  EXPECT_EQ(c.timeouts.idle_transaction, 0);
  EXPECT_EQ(c.timeouts.server_lifetime, 3600000);
}

TEST_F(FullConfig, PoolsTenantsAndUsers) {
  ASSERT_TRUE(result_.ok()) << Dump(result_);
  const Config& c = *result_.config;
  ASSERT_EQ(c.pools.size(), 2u);
  const Pool& shared = c.pools.at("shared");
  EXPECT_EQ(shared.name, "shared");
  EXPECT_EQ(shared.database, "app");
  EXPECT_EQ(shared.user, "app_rls");
  EXPECT_EQ(shared.password, "...");
  EXPECT_EQ(shared.size, 20);
  EXPECT_EQ(shared.tls, ServerTlsMode::kDisable);
  const Pool& acme = c.pools.at("acme");
  EXPECT_EQ(acme.password, "acme-pw-from-env");
  EXPECT_EQ(acme.password_env, "ACME_DB_PASSWORD");
  EXPECT_EQ(acme.size, 5);
  EXPECT_EQ(acme.mode, PoolMode::kTransaction);  // default
  EXPECT_EQ(c.tenants.at("acme").pool, "acme");
  EXPECT_EQ(c.tenants.at("acme").id, "acme");
  EXPECT_EQ(c.tenants.at("globex").max_client_connections, 50);
  const User& app = c.auth.users.at("app");
  EXPECT_EQ(app.name, "app");
  EXPECT_TRUE(app.any_tenant);
  EXPECT_FALSE(app.password_is_plaintext);
  const User& acme_service = c.auth.users.at("acme_service");
  EXPECT_FALSE(acme_service.any_tenant);
  EXPECT_EQ(acme_service.tenants, std::vector<std::string>{"acme"});
  EXPECT_TRUE(acme_service.password_is_plaintext);
}

TEST_F(FullConfig, PlaintextPasswordsAreWarningsOnly) {
  ASSERT_TRUE(result_.ok());
  std::set<std::string> warned;
  for (const Diagnostic& d : result_.diagnostics) {
    EXPECT_TRUE(d.warning) << FormatDiagnostic(d, "full.yaml");
    EXPECT_EQ(d.message, "plaintext password");
    warned.insert(d.path);
  }
  EXPECT_EQ(warned, (std::set<std::string>{"auth.users.acme_service.password",
                                           "auth.users.admin.password"}));
}

TEST(Loader, MissingEnvVariableIsNamedAndFullConfigFails) {
  unsetenv("ACME_DB_PASSWORD");
  LoadResult result = LoadConfigFile(kTestdata + "/full.yaml");
  EXPECT_FALSE(result.ok());
  std::string all = Dump(result);
  EXPECT_NE(all.find("cfg:54: error: pools.acme.password_env: environment variable "
                     "ACME_DB_PASSWORD is not set"), std::string::npos) << all;
  // Relative to testdata/, server.crt does not exist.
  EXPECT_NE(all.find("listen.tls.cert_file: cannot read"), std::string::npos) << all;
}

TEST(Loader, MinimalConfigGetsDefaults) {
  LoadResult result = LoadConfigFile(kTestdata + "/minimal.yaml");
  ASSERT_TRUE(result.ok()) << Dump(result);
  EXPECT_TRUE(result.diagnostics.empty()) << Dump(result);
  const Config& c = *result.config;
  const Config defaults;
  EXPECT_EQ(c.listen.port, 6432);
  EXPECT_EQ(c.listen.host, "127.0.0.1");
  EXPECT_EQ(c.listen.tls.mode, ClientTlsMode::kDisable);
  EXPECT_EQ(c.metrics.port, 9930);
  EXPECT_EQ(c.metrics.tenant_labels, TenantLabels::kBusiest);
  EXPECT_EQ(c.metrics.busiest_tenants, 20);
  EXPECT_EQ(c.admin.database, "pgtenant");
  EXPECT_EQ(c.auth.type, AuthType::kScramSha256);
  EXPECT_EQ(c.tenancy.id_pattern, defaults.tenancy.id_pattern);
  EXPECT_EQ(c.tenancy.sources, defaults.tenancy.sources);
  EXPECT_FALSE(c.tenancy.default_pool.has_value());
  EXPECT_EQ(c.timeouts.query_wait, 30000);
  EXPECT_EQ(c.max_message_size, 64u * 1024 * 1024);
  const Pool& pool = c.pools.at("main");
  EXPECT_EQ(pool.host, "127.0.0.1");
  EXPECT_EQ(pool.port, 5432);
  EXPECT_EQ(pool.size, 20);
  EXPECT_TRUE(pool.password.empty());
}

TEST(Loader, SeveralErrorsAreAllReported) {
  LoadResult result = LoadConfigFile(kTestdata + "/several_errors.yaml");
  EXPECT_FALSE(result.ok());
  std::set<std::pair<std::string, int>> got;
  for (const Diagnostic& d : result.diagnostics) got.insert({d.path, d.line});
  std::set<std::pair<std::string, int>> want = {
      {"listen.port", 2},           {"listen.max_client_conections", 3},
      {"auth.type", 5},             {"tenancy.variable", 7},
      {"tenancy.sources[1]", 8},    {"pools.shared.user", 10},
      {"pools.shared.size", 12},    {"pools.shared.mode", 13},
      {"tenants.ACME", 15},         {"tenants.ACME.pool", 15},
      {"timeouts.query_wait", 17},
  };
  EXPECT_EQ(got, want) << Dump(result);
  EXPECT_EQ(CountErrors(result.diagnostics), want.size());
  // Decoder and validator findings are merged into file order.
  for (size_t i = 1; i < result.diagnostics.size(); ++i) {
    EXPECT_LE(result.diagnostics[i - 1].line, result.diagnostics[i].line) << Dump(result);
  }
}

TEST(Loader, YamlSyntaxErrorHasALine) {
  LoadResult result = LoadConfigFile(kTestdata + "/syntax_error.yaml");
  EXPECT_FALSE(result.ok());
  ASSERT_EQ(result.diagnostics.size(), 1u) << Dump(result);
  const Diagnostic& d = result.diagnostics[0];
  EXPECT_EQ(d.path, "");
  EXPECT_GE(d.line, 4);
  EXPECT_LE(d.line, 5);
  EXPECT_EQ(d.message.rfind("YAML syntax error: ", 0), 0u) << d.message;
}

TEST(Loader, MissingFile) {
  LoadResult result = LoadConfigFile(kTestdata + "/does_not_exist.yaml");
  EXPECT_FALSE(result.ok());
  ASSERT_EQ(result.diagnostics.size(), 1u);
  EXPECT_EQ(result.diagnostics[0].path, "");
  EXPECT_EQ(result.diagnostics[0].line, 0);
  EXPECT_NE(result.diagnostics[0].message.find("No such file"), std::string::npos);
}

TEST(Loader, DirectoryIsNotAConfig) {
  LoadResult result = LoadConfigFile(kTestdata);
  EXPECT_FALSE(result.ok());
  ASSERT_EQ(result.diagnostics.size(), 1u);
  EXPECT_NE(result.diagnostics[0].message.find("not a regular file"), std::string::npos);
}

TEST(Loader, OversizedFileIsRefusedUnread) {
  TempDir dir;
  fs::path big = dir.Write("big.yaml", "");
  fs::resize_file(big, 17 * 1024 * 1024);
  LoadResult result = LoadConfigFile(big.string());
  ASSERT_EQ(result.diagnostics.size(), 1u);
  EXPECT_NE(result.diagnostics[0].message.find("too large"), std::string::npos);
}

TEST(Loader, WarningsAloneKeepTheConfig) {
  LoadResult result = LoadConfigFile(kTestdata + "/plaintext_warning.yaml");
  ASSERT_TRUE(result.ok()) << Dump(result);
  ASSERT_EQ(result.diagnostics.size(), 1u);
  const Diagnostic& d = result.diagnostics[0];
  EXPECT_TRUE(d.warning);
  EXPECT_EQ(d.path, "auth.users.app.password");
  EXPECT_EQ(d.line, 4);
  EXPECT_EQ(d.message, "plaintext password");
  EXPECT_NE(d.hint.find("password_env"), std::string::npos);
  EXPECT_EQ(FormatDiagnostic(d, "x.yaml").find("hunter2"), std::string::npos);
  EXPECT_TRUE(result.config->auth.users.at("app").password_is_plaintext);
  EXPECT_EQ(result.config->auth.users.at("app").password, "hunter2");
}

TEST(Loader, PasswordFromEnvIsResolvedAndNotWarned) {
  setenv("PGTENANT_TEST_APP_PW", "plain-from-env", 1);
  LoadResult result = LoadConfigString(
      "auth:\n  users:\n    app: {password_env: PGTENANT_TEST_APP_PW, tenants: [acme]}\n"
      "tenancy: {default_pool: p}\n"
      "pools:\n  p: {database: d, user: u}\n", "<test>");
  unsetenv("PGTENANT_TEST_APP_PW");
  ASSERT_TRUE(result.ok()) << Dump(result);
  EXPECT_TRUE(result.diagnostics.empty()) << Dump(result);
  const User& app = result.config->auth.users.at("app");
  EXPECT_EQ(app.password, "plain-from-env");
  EXPECT_TRUE(app.password_is_plaintext);
  EXPECT_FALSE(app.any_tenant);
}

TEST(Loader, TenantWithoutPoolGetsDefaultPool) {
  LoadResult result = LoadConfigString(
      "tenancy: {default_pool: p}\ntenants:\n  acme: {max_client_connections: 3}\n"
      "pools:\n  p: {database: d, user: u}\n  q: {database: d, user: u}\n", "<test>");
  ASSERT_TRUE(result.ok()) << Dump(result);
  EXPECT_EQ(result.config->tenants.at("acme").pool, "p");
}

TEST(Loader, PerTenantServerConnectionCaps) {
  LoadResult result = LoadConfigString(
      "tenancy: {default_pool: p}\ntenants:\n  acme: {max_server_connections: 4}\n  bob: {}\n"
      "pools:\n  p: {database: d, user: u, max_connections_per_tenant: 2}\n  q: {database: d, user: u}\n",
      "<test>");
  ASSERT_TRUE(result.ok()) << Dump(result);
  EXPECT_EQ(result.config->tenants.at("acme").max_server_connections, 4);
  EXPECT_EQ(result.config->tenants.at("bob").max_server_connections, 0);
  EXPECT_EQ(result.config->pools.at("p").max_connections_per_tenant, 2);
  EXPECT_EQ(result.config->pools.at("q").max_connections_per_tenant, 0) << "no cap unless configured";
}

TEST(Loader, PoolTemplatesMakeATenantsPool) {
  LoadResult result = LoadConfigString(
      "tenancy: {default_pool: p}\n"
      "pools:\n  p: {database: d, user: u}\n"
      "pool_templates:\n  dedicated: {host: \"db-{tenant}.internal\", database: \"tenant_{tenant}\", "
      "user: \"owner_{tenant}\", size: 4}\n"
      "tenants:\n  acme: {template: dedicated}\n  globex: {template: dedicated, database: gx, host: big.internal}\n"
      "  initech: {}\n",
      "<test>");
  ASSERT_TRUE(result.ok()) << Dump(result);
  const Config& c = *result.config;
  EXPECT_EQ(c.tenants.at("acme").pool, "dedicated/acme") << "routed to the pool its template makes";
  EXPECT_EQ(c.tenants.at("initech").pool, "p");
  std::optional<Pool> acme = PoolConfigFor(c, "dedicated/acme");
  ASSERT_TRUE(acme);
  EXPECT_EQ(acme->name, "dedicated/acme");
  EXPECT_EQ(acme->host, "db-acme.internal");
  EXPECT_EQ(acme->database, "tenant_acme");
  EXPECT_EQ(acme->user, "owner_acme");
  EXPECT_EQ(acme->size, 4);
  std::optional<Pool> globex = PoolConfigFor(c, "dedicated/globex");
  ASSERT_TRUE(globex);
  EXPECT_EQ(globex->database, "gx");
  EXPECT_EQ(globex->host, "big.internal");
  EXPECT_EQ(PoolConfigFor(c, "p")->database, "d") << "a configured pool";
  EXPECT_FALSE(PoolConfigFor(c, "dedicated/initech")) << "initech does not name the template";
  EXPECT_FALSE(PoolConfigFor(c, "dedicated/nobody"));
  EXPECT_FALSE(PoolConfigFor(c, "other/acme"));
}

TEST(Loader, ServerConnectionBudget) {
  LoadResult result = LoadConfigString(
      "limits: {max_server_connections: 300, max_server_connections_per_host: 200}\n"
      "pools:\n  p: {database: d, user: u}\n", "<test>");
  ASSERT_TRUE(result.ok()) << Dump(result);
  EXPECT_EQ(result.config->max_server_connections, 300);
  EXPECT_EQ(result.config->max_server_connections_per_host, 200);
}

TEST(Loader, BillingSection) {
  LoadResult result = LoadConfigString(
      "billing:\n  state_dir: /var/lib/pgtenant/billing\n  window: 15m\n  instance: eu1\n"
      "  default_customer: \"cus_{tenant}\"\n"
      "  meters: {server_ms: db_server_ms, transactions: db_txn}\n"
      "tenancy: {default_pool: p}\n"
      "tenants:\n  acme: {stripe_customer: cus_Acme123}\n"
      "pools:\n  p: {database: d, user: u}\n", "<test>");
  ASSERT_TRUE(result.ok()) << Dump(result);
  const Billing& b = result.config->billing;
  EXPECT_TRUE(b.enabled());
  EXPECT_EQ(b.state_dir, "/var/lib/pgtenant/billing");
  EXPECT_EQ(b.window, 15 * 60 * 1000);
  EXPECT_EQ(b.instance, "eu1");
  EXPECT_EQ(b.api_base, "https://api.stripe.com");
  EXPECT_EQ(b.api_key_env, "STRIPE_API_KEY");
  EXPECT_EQ(b.default_customer, "cus_{tenant}");
  EXPECT_EQ(b.meters, (std::map<std::string, std::string>{{"server_ms", "db_server_ms"}, {"transactions", "db_txn"}}));
  EXPECT_EQ(result.config->tenants.at("acme").stripe_customer, "cus_Acme123");
}

TEST(Loader, BillingIsOffByDefault) {
  LoadResult result = LoadConfigString("pools:\n  p: {database: d, user: u}\n", "<test>");
  ASSERT_TRUE(result.ok()) << Dump(result);
  EXPECT_FALSE(result.config->billing.enabled());
}

TEST(Loader, LimitsAcceptsSuffixes) {
  LoadResult result = LoadConfigString(
      "limits: {max_message_size: 16MB}\npools:\n  p: {database: d, user: u}\n", "<test>");
  ASSERT_TRUE(result.ok()) << Dump(result);
  EXPECT_EQ(result.config->max_message_size, 16u * 1024 * 1024);
}

TEST(Loader, EmptyInputNeedsAPool) {
  for (const char* text : {"", "\n", "# only a comment\n", "---\n", "~\n"}) {
    LoadResult result = LoadConfigString(text, "<test>");
    EXPECT_FALSE(result.ok());
    ASSERT_EQ(result.diagnostics.size(), 1u) << Dump(result);
    EXPECT_EQ(result.diagnostics[0].path, "pools");
  }
}

TEST(Loader, HostileInputGivesDiagnosticsNotCrashes) {
  std::string deep(100000, '[');
  std::string nul_bytes("pools:\0\0\xff\xfe", 10);
  std::string anchors = "a: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: &c [*b, *b, *b]\npools: [*c, *c]\n";
  std::string long_key = std::string(100000, 'k') + ": 1\npools:\n  p: {database: d, user: u}\n";
  for (const std::string& text : {deep, nul_bytes, anchors, long_key, std::string("\t- x\n"),
                                  std::string("pools: {p: {database: d, user: u}\n")}) {
    LoadResult result = LoadConfigString(text, "<test>");
    EXPECT_FALSE(result.ok());
    EXPECT_GE(CountErrors(result.diagnostics), 1u);
    for (const Diagnostic& d : result.diagnostics) {
      EXPECT_LT(d.message.size(), 400u);
      for (char c : d.message) EXPECT_GE(static_cast<unsigned char>(c), 0x20) << d.message;
    }
  }
}

TEST(Loader, SourceNameWithoutDirectoryKeepsRelativePaths) {
  LoadResult result = LoadConfigString(
      "pools:\n  p: {database: d, user: u, ca_file: no_such_ca.pem}\n", "pgtenant.yaml");
  EXPECT_FALSE(result.ok());
  ASSERT_EQ(result.diagnostics.size(), 1u);
  EXPECT_EQ(result.diagnostics[0].message.rfind("cannot read no_such_ca.pem:", 0), 0u)
      << result.diagnostics[0].message;
}

}  // namespace
}  // namespace pgtenant::conf
