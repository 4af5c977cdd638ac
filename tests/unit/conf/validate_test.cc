// Table-driven diagnostics: each case is a config with one problem; the test asserts the key path,
// the line and a piece of the message of the error it produces, and that nothing else is an error.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "conf/loader.h"
#include "conf/validate.h"

namespace pgtenant::conf {
namespace {

// Four lines; a case's own lines start at line 5, and lines that start with four spaces continue
// pool "p".
constexpr const char* kBase =
    "pools:\n"
    "  p:\n"
    "    database: d\n"
    "    user: u\n";

struct Case {
  const char* name;
  std::string yaml;
  std::string path;
  int line;
  std::string message;  // a substring of the formatted diagnostic
  size_t errors = 1;    // how many errors the config has in all
};

std::string B(const std::string& extra) { return kBase + extra; }

std::vector<Case> Cases() {
  return {
      {"UnknownTopLevelKey", B("pool: {}\n"), "pool", 5, "did you mean 'pools'?"},
      {"UnknownPoolKey", B("    szie: 3\n"), "pools.p.szie", 5, "did you mean 'size'?"},
      {"UnknownKeyNoSuggestion", B("listen:\n  frobnicate: 1\n"), "listen.frobnicate", 6, "unknown key"},
      {"UnknownTenantKey", B("tenants:\n  acme: {pool: p, limit: 3}\n"), "tenants.acme.limit", 6, "unknown key"},
      {"UnknownUserKey", B("auth:\n  users:\n    app: {pasword: x}\n"), "auth.users.app.pasword", 7,
       "did you mean 'password'?", 2},
      {"DuplicateKey", B("    size: 3\n    size: 4\n"), "pools.p.size", 6, "duplicate key"},
      {"StringForNumber", B("    size: big\n"), "pools.p.size", 5, "expected an integer, got \"big\""},
      {"QuotedNumber", B("    port: \"5432\"\n"), "pools.p.port", 5, "quoted"},
      {"FloatForNumber", B("    size: 2.5\n"), "pools.p.size", 5, "expected an integer"},
      {"ListForMap", B("listen: [a, b]\n"), "listen", 5, "expected a map of keys, got a list"},
      {"MapForString", B("    host: {a: 1}\n"), "pools.p.host", 5, "expected a string, got a map"},
      {"NullForString", B("    host:\n"), "pools.p.host", 5, "expected a string, got nothing"},
      {"ScalarForNamedMap", B("tenants: acme\n"), "tenants", 5, "expected a map of names"},
      {"ScalarForTenantEntry", B("tenants:\n  acme: p\n"), "tenants.acme", 6, "expected a map of keys"},
      {"ScalarForList", B("admin:\n  users: admin\n"), "admin.users", 6, "expected a list"},
      {"ListenPortZero", B("listen: {port: 0}\n"), "listen.port", 5, "between 1 and 65535, got 0"},
      {"ListenPortTooBig", B("listen:\n  port: 70000\n"), "listen.port", 6, "between 1 and 65535"},
      {"HugePortSaturates", B("listen:\n  port: 99999999999999999999999\n"), "listen.port", 6, "between 1 and 65535"},
      {"MetricsPortNegative", B("metrics: {port: -1}\n"), "metrics.port", 5, "between 0 and 65535"},
      {"BillingWithoutStateDir", B("billing: {window: 1h}\n"), "billing.state_dir", 5, "is required"},
      {"BillingUnknownMeter", B("billing:\n  state_dir: /tmp/b\n  meters: {server_time: x}\n"),
       "billing.meters.server_time", 7, "did you mean 'server_ms'?"},
      {"BillingWindowTooShort", B("billing: {state_dir: /tmp/b, window: 500ms}\n"), "billing.window", 5,
       "from 1s to 24h"},
      {"BillingPlainHttp", B("billing: {state_dir: /tmp/b, api_base: \"http://stripe.example\"}\n"),
       "billing.api_base", 5, "https://"},
      {"BusiestTenantsZero", B("metrics: {busiest_tenants: 0}\n"), "metrics.busiest_tenants", 5, "between 1 and 1000"},
      {"PoolPortZero", B("    port: 0\n"), "pools.p.port", 5, "between 1 and 65535"},
      {"ListenHostNotAName", B("listen: {host: 'db server'}\n"), "listen.host", 5,
       "\"db server\" is not an IP address, \"*\" or a host name"},
      {"ListenHostWithPort", B("listen: {host: '127.0.0.1:6432'}\n"), "listen.host", 5,
       "is not an IP address"},
      {"ListenMaxClientsZero", B("listen: {max_client_connections: 0}\n"), "listen.max_client_connections", 5, "at least 1"},
      {"PoolSizeZero", B("    size: 0\n"), "pools.p.size", 5, "must be at least 1, got 0"},
      {"TenantMaxClientsNegative", B("tenants:\n  acme: {pool: p, max_client_connections: -1}\n"),
       "tenants.acme.max_client_connections", 6, "at least 0"},
      {"TenantMaxServersNegative", B("tenants:\n  acme: {pool: p, max_server_connections: -2}\n"),
       "tenants.acme.max_server_connections", 6, "at least 0"},
      {"ServerBudgetNegative", B("limits: {max_server_connections: -1}\n"), "limits.max_server_connections", 5,
       "at least 0"},
      {"PerHostBudgetNegative", B("limits: {max_server_connections_per_host: -3}\n"),
       "limits.max_server_connections_per_host", 5, "at least 0"},
      {"MinSizeAboveSize", B("    size: 3\n    min_size: 4\n"), "pools.p.min_size", 6, "between 0 and 3"},
      {"PoolPerTenantCapNegative", B("    max_connections_per_tenant: -1\n"), "pools.p.max_connections_per_tenant", 5,
       "at least 0"},
      {"ListenTlsMode", B("listen:\n  tls: {mode: on}\n"), "listen.tls.mode", 6, "disable | prefer | require"},
      {"PoolModeTypo", B("    mode: sesion\n"), "pools.p.mode", 5, "did you mean 'session'?"},
      {"PoolTlsMode", B("    tls: verify\n"), "pools.p.tls", 5, "verify-full"},
      {"AuthType", B("auth: {type: md4}\n"), "auth.type", 5, "scram-sha-256 | md5 | trust"},
      {"ListenTlsNeedsCert", B("listen:\n  tls:\n    mode: require\n"), "listen.tls.cert_file", 6, "is required", 2},
      {"ListenTlsCertMissingFile", B("listen:\n  tls:\n    mode: prefer\n    cert_file: /nonexistent/x.crt\n"
                                     "    key_file: /nonexistent/x.key\n"),
       "listen.tls.cert_file", 8, "cannot read /nonexistent/x.crt", 2},
      {"ListenTlsDirectory", B("listen:\n  tls: {mode: prefer, cert_file: /, key_file: /}\n"),
       "listen.tls.key_file", 6, "is a directory", 2},
      {"VerifyFullNeedsCa", B("    tls: verify-full\n"), "pools.p.ca_file", 2, "is required"},
      {"CaFileMissing", B("    ca_file: /nonexistent/ca.crt\n"), "pools.p.ca_file", 5, "cannot read"},
      {"PoolNeedsDatabase", "pools:\n  p:\n    user: u\n", "pools.p.database", 2, "is required"},
      {"PoolEmptyDatabase", "pools:\n  p:\n    user: u\n    database: ''\n", "pools.p.database", 4, "must not be empty"},
      {"PoolNeedsUser", "pools:\n  p: {database: d}\n", "pools.p.user", 2, "is required"},
      {"PoolPasswordAndEnv", B("    password: x\n    password_env: PGTENANT_TEST_SET\n"),
       "pools.p.password_env", 6, "either password or password_env"},
      {"PoolEnvUnset", B("    password_env: PGTENANT_TEST_UNSET\n"), "pools.p.password_env", 5,
       "environment variable PGTENANT_TEST_UNSET is not set"},
      {"PoolEnvEmptyName", B("    password_env: ''\n"), "pools.p.password_env", 5, "must name an environment variable"},
      {"PoolEnvEmptyValue", B("    password_env: PGTENANT_TEST_EMPTY\n"), "pools.p.password_env", 5, "is empty"},
      {"NoPools", "listen: {port: 6432}\n", "pools", 1, "at least one pool"},
      {"EmptyPools", "pools: {}\n", "pools", 1, "at least one pool"},
      {"VariableOneIdentifier", B("tenancy: {variable: tenant_id}\n"), "tenancy.variable", 5, "not a custom setting name"},
      {"VariableDigitStart", B("tenancy: {variable: app.1x}\n"), "tenancy.variable", 5, "not a custom setting name"},
      {"VariableEmptyPart", B("tenancy: {variable: app..x}\n"), "tenancy.variable", 5, "not a custom setting name"},
      {"VariableQuoteChar", B("tenancy: {variable: \"app.x';drop\"}\n"), "tenancy.variable", 5, "not a custom setting name"},
      {"IdPatternDoesNotCompile", B("tenancy:\n  id_pattern: \"([a-z\"\n"), "tenancy.id_pattern", 6, "regular expression"},
      {"SourceUnknown", B("tenancy:\n  sources: [parameter, cookie]\n"), "tenancy.sources[1]", 6, "unknown value \"cookie\""},
      {"SourceDuplicate", B("tenancy:\n  sources:\n    - user\n    - user\n"), "tenancy.sources[1]", 8, "duplicate source"},
      {"SourcesEmpty", B("tenancy:\n  sources: []\n"), "tenancy.sources", 6, "at least one source"},
      {"SeparatorEmpty", B("tenancy: {user_separator: \"\"}\n"), "tenancy.user_separator", 5, "must not be empty"},
      {"DefaultPoolUnknown", B("tenancy:\n  default_pool: q\n"), "tenancy.default_pool", 6, "no pool named \"q\""},
      {"RequireTenantNotBool", B("tenancy:\n  require_tenant: maybe\n"), "tenancy.require_tenant", 6, "true or false"},
      {"ConfigWatchQuoted", B("config_watch: \"true\"\n"), "config_watch", 5, "true or false"},
      {"TenantIdPattern", B("tenants:\n  ACME: {pool: p}\n"), "tenants.ACME", 6, "does not match tenancy.id_pattern"},
      {"TenantPoolUnknown", B("tenants:\n  acme: {pool: pp}\n"), "tenants.acme.pool", 6, "did you mean 'p'?"},
      {"TemplateUnknown",
       B("tenants:\n  acme: {template: dedicatd}\npool_templates:\n  dedicated: {database: \"t_{tenant}\", user: u}\n"),
       "tenants.acme.template", 6, "did you mean 'dedicated'?"},
      {"TemplateAndPool", B("tenants:\n  acme: {pool: p, template: x}\npool_templates:\n  x: {database: d, user: u}\n"),
       "tenants.acme", 6, "either pool or template"},
      {"DatabaseWithoutTemplate", B("tenants:\n  acme: {pool: p, database: other}\n"), "tenants.acme.database", 6,
       "needs tenants.acme.template"},
      {"PoolNameWithSlash", B("  a/b: {database: d, user: u}\n"), "pools.a/b", 5, "cannot contain '/'"},
      {"TemplateNeedsUser", B("pool_templates:\n  x: {database: d}\n"), "pool_templates.x.user", 6, "is required"},
      {"TenantWithoutPool", B("tenants:\n  acme: {max_client_connections: 3}\n"), "tenants.acme.pool", 6,
       "no tenancy.default_pool"},
      {"UserWithoutPassword", B("auth:\n  users:\n    app: {tenants: ['*']}\n"), "auth.users.app", 7,
       "needs a password or password_env"},
      {"UserEmptyPassword", B("auth:\n  users:\n    app: {password: ''}\n"), "auth.users.app.password", 7,
       "must not be empty"},
      {"UserTenantBadId", B("auth:\n  users:\n    app:\n      password_env: PGTENANT_TEST_SET\n"
                            "      tenants: [acme, Bad!]\n"), "auth.users.app.tenants[1]", 9,
       "neither \"*\" nor a tenant id", 1},
      {"UserBothSecrets", B("auth:\n  users:\n    app:\n      password: md56a422f785c9e20873908ce25d1736ae2\n"
                            "      password_env: PGTENANT_TEST_SET\n"), "auth.users.app.password_env", 9,
       "not both", 2},
      {"UserEnvUnset", B("auth:\n  users:\n    app: {password_env: PGTENANT_TEST_UNSET}\n"),
       "auth.users.app.password_env", 7, "PGTENANT_TEST_UNSET is not set"},
      {"AdminUserUnknown", B("admin:\n  users: [admin]\n"), "admin.users[0]", 6, "no user named \"admin\""},
      {"AdminDatabaseEmpty", B("admin: {database: ''}\n"), "admin.database", 5, "must not be empty"},
      {"Md5HashWithScram", B("auth:\n  users:\n    app:\n      password: md56a422f785c9e20873908ce25d1736ae2\n"),
       "auth.users.app.password", 8, "md5 hash cannot be checked with auth.type scram-sha-256"},
      {"MalformedScramVerifier", B("auth:\n  users:\n    app: {password: \"SCRAM-SHA-256$4096:...\"}\n"),
       "auth.users.app.password", 7, "malformed SCRAM verifier"},
      {"BadDuration", B("timeouts:\n  query_wait: 30 seconds\n"), "timeouts.query_wait", 6, "not a valid duration"},
      {"NegativeDuration", B("timeouts: {shutdown: -5s}\n"), "timeouts.shutdown", 5, "not a valid duration"},
      {"FractionalDuration", B("timeouts: {client_login: 1.5s}\n"), "timeouts.client_login", 5, "not a valid duration"},
      {"DurationAsList", B("timeouts: {server_idle: [1]}\n"), "timeouts.server_idle", 5, "expected a duration"},
      {"MessageSizeTooSmall", B("limits: {max_message_size: 512}\n"), "limits.max_message_size", 5,
       "between 1024 and 1073741824, got 512"},
      {"MessageSizeTooBig", B("limits: {max_message_size: 2GB}\n"), "limits.max_message_size", 5, "between 1024"},
      {"MessageSizeHuge", B("limits: {max_message_size: 99999999999GB}\n"), "limits.max_message_size", 5, "not a valid size"},
      {"MessageSizeGarbage", B("limits:\n  max_message_size: lots\n"), "limits.max_message_size", 6, "not a valid size"},
      {"PoolsAsList", "pools: [a, b]\n", "pools", 1, "expected a map of names, got a list"},
      {"RootIsList", "- a\n- b\n", "", 1, "must be a map of sections"},
      {"RootIsScalar", "hello\n", "", 1, "must be a map of sections"},
      {"TwoDocuments", B("---\npools: {}\n"), "", 6, "2 YAML documents"},
      {"ComplexKey", B("? [a, b]\n: 1\n"), "", 5, "plain name"},
  };
}

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class DiagnosticCase : public ::testing::TestWithParam<Case> {
 protected:
  static void SetUpTestSuite() {
    setenv("PGTENANT_TEST_SET", "s3cret-value", 1);
    setenv("PGTENANT_TEST_EMPTY", "", 1);
    unsetenv("PGTENANT_TEST_UNSET");
  }
};

TEST_P(DiagnosticCase, ReportsPathLineAndMessage) {
  const Case& c = GetParam();
  LoadResult result = LoadConfigString(c.yaml, "case.yaml");
  EXPECT_FALSE(result.ok());
  std::string all;
  for (const Diagnostic& d : result.diagnostics) all += FormatDiagnostic(d, "case.yaml") + "\n";
  bool found = false;
  for (const Diagnostic& d : result.diagnostics) {
    if (d.path == c.path && !d.warning) {
      found = true;
      EXPECT_EQ(d.line, c.line) << all;
      EXPECT_NE(FormatDiagnostic(d, "case.yaml").find(c.message), std::string::npos) << all;
    }
  }
  EXPECT_TRUE(found) << "no error at \"" << c.path << "\" in:\n" << all;
  EXPECT_EQ(CountErrors(result.diagnostics), c.errors) << all;
  // Secrets from the environment never reach a diagnostic.
  EXPECT_EQ(all.find("s3cret-value"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Table, DiagnosticCase, ::testing::ValuesIn(Cases()),
                         [](const auto& info) { return std::string(info.param.name); });

// Configs that look close to the cases above but are valid.
class ValidCase : public ::testing::TestWithParam<std::pair<const char*, std::string>> {};

TEST_P(ValidCase, LoadsWithoutErrors) {
  setenv("PGTENANT_TEST_SET", "s3cret-value", 1);
  LoadResult result = LoadConfigString(GetParam().second, "valid.yaml");
  std::string all;
  for (const Diagnostic& d : result.diagnostics) all += FormatDiagnostic(d, "valid.yaml") + "\n";
  EXPECT_TRUE(result.ok()) << all;
  EXPECT_EQ(CountErrors(result.diagnostics), 0u) << all;
}

INSTANTIATE_TEST_SUITE_P(
    Table, ValidCase,
    ::testing::Values(
        std::make_pair("MetricsOff", B("metrics: {port: 0}\n")),
        std::make_pair("EmptySections", B("listen:\nmetrics:\ntimeouts:\n")),
        std::make_pair("TrustWithoutPasswords", B("auth:\n  type: trust\n  users:\n    app: {tenants: ['*']}\n")),
        std::make_pair("Md5HashWithMd5Auth",
                       B("auth:\n  type: md5\n  users:\n    app: {password: md56a422f785c9e20873908ce25d1736ae2}\n")),
        std::make_pair("PoolWithoutPassword", std::string(kBase)),
        std::make_pair("PoolPasswordEnv", B("    password_env: PGTENANT_TEST_SET\n")),
        std::make_pair("ThreePartVariable", B("tenancy: {variable: my_app.tenant.id}\n")),
        std::make_pair("TenantFallsBackToDefaultPool",
                       B("tenancy: {default_pool: p}\ntenants:\n  acme: {max_client_connections: 0}\n")),
        std::make_pair("DurationsAllUnits",
                       B("timeouts: {client_login: 500ms, query_wait: 15s, idle_transaction: 10m, "
                         "server_connect: 1h, server_idle: 2d, server_lifetime: 3600, shutdown: 0}\n")),
        std::make_pair("MessageSizeBounds", B("limits: {max_message_size: 1GB}\n")),
        std::make_pair("YesIsTrue", B("config_watch: yes\n")),
        std::make_pair("ListenHostName", B("listen: {host: localhost}\n")),
        std::make_pair("ListenHostEveryAddress", B("listen: {host: '*'}\n")),
        std::make_pair("ListenHostIpv6", B("listen: {host: '::'}\n"))),
    [](const auto& info) { return std::string(info.param.first); });

TEST(ClassifyPassword, Kinds) {
  EXPECT_EQ(ClassifyPassword(""), PasswordKind::kEmpty);
  EXPECT_EQ(ClassifyPassword("md56a422f785c9e20873908ce25d1736ae2"), PasswordKind::kMd5Hash);
  EXPECT_EQ(ClassifyPassword("md56A422F785C9E20873908CE25D1736AE2"), PasswordKind::kPlaintext);
  EXPECT_EQ(ClassifyPassword("md56a422f785c9e20873908ce25d1736ae"), PasswordKind::kPlaintext);
  EXPECT_EQ(ClassifyPassword("md5password"), PasswordKind::kPlaintext);
  EXPECT_EQ(ClassifyPassword("SCRAM-SHA-256$junk"), PasswordKind::kScramVerifier);
  EXPECT_EQ(ClassifyPassword("scram-sha-256$junk"), PasswordKind::kPlaintext);
  EXPECT_EQ(ClassifyPassword("hunter2"), PasswordKind::kPlaintext);
}

TEST(ScramVerifier, WellFormedAndNot) {
  const std::string good =
      "SCRAM-SHA-256$4096:cGd0ZW5hbnQtc2FsdC0xNg==$3PmTFWF++DcSlGjuj3E4rfZ0wBD9o3SdsgIkBB8TY+E=:"
      "7UL6a6Gk7GThJCwGA7K2qDEWLFbqweg3oEbT97Kem9E=";
  EXPECT_TRUE(IsWellFormedScramVerifier(good));
  EXPECT_FALSE(IsWellFormedScramVerifier("SCRAM-SHA-256$4096:..."));
  EXPECT_FALSE(IsWellFormedScramVerifier("SCRAM-SHA-256$"));
  EXPECT_FALSE(IsWellFormedScramVerifier(good.substr(0, good.size() - 4)));  // truncated ServerKey
  std::string zero_iterations = good;
  zero_iterations.replace(14, 4, 1, '0');  // (1, '0'): GCC 12 -O3 false -Wrestrict on "0"
  EXPECT_FALSE(IsWellFormedScramVerifier(zero_iterations));
  std::string bad_char = good;
  bad_char[30] = '!';
  EXPECT_FALSE(IsWellFormedScramVerifier(bad_char));
}

// listen.host as PgBouncer's listen_addr: what --check-config accepts, pgtenant binds at start.
TEST(ListenHost, Shapes) {
  for (const char* ok : {"*", "127.0.0.1", "0.0.0.0", "::", "::1", "fe80::1", "localhost",
                         "db-1.example.com", "db.example.com.", "pgtenant_proxy"}) {
    EXPECT_TRUE(IsListenHost(ok)) << ok;
  }
  for (const char* bad : {"", "db server", "127.0.0.1:6432", "[::1]", "-db", "db-", "a..b", ".",
                          "*.example.com", "0.0.0.0/0", "http://localhost"}) {
    EXPECT_FALSE(IsListenHost(bad)) << bad;
  }
  EXPECT_TRUE(IsListenHost(std::string(63, 'a') + ".com"));
  EXPECT_FALSE(IsListenHost(std::string(64, 'a') + ".com"));
}

TEST(CustomGucName, Shapes) {
  EXPECT_TRUE(IsCustomGucName("app.tenant_id"));
  EXPECT_TRUE(IsCustomGucName("_a.b_2.c"));
  EXPECT_FALSE(IsCustomGucName(""));
  EXPECT_FALSE(IsCustomGucName("tenant_id"));
  EXPECT_FALSE(IsCustomGucName("app."));
  EXPECT_FALSE(IsCustomGucName(".app"));
  EXPECT_FALSE(IsCustomGucName("app.tenant-id"));
  EXPECT_FALSE(IsCustomGucName("app.tenant id"));
}

}  // namespace
}  // namespace pgtenant::conf
