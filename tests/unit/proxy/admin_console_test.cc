#include "proxy/admin_console.h"

#include <gtest/gtest.h>

#include <map>
#include <span>
#include <string>
#include <vector>

#include "protocol/byte_reader.h"
#include "protocol/frame_decoder.h"

namespace pgtenant::proxy {
namespace {

using Cell = std::optional<std::string>;

// A decoded simple-query response: what psql would show.
struct ResultSet {
  std::vector<std::string> columns;
  std::vector<int32_t> column_oids;
  std::vector<std::vector<Cell>> rows;
  std::string tag;
  std::string sequence;  // message types in order, e.g. "TDDC"
  bool malformed = false;

  // The value of `column` in row `row`; fails the test if the column is missing.
  Cell At(size_t row, const std::string& column) const {
    for (size_t i = 0; i < columns.size(); ++i) {
      if (columns[i] == column) return rows.at(row).at(i);
    }
    ADD_FAILURE() << "no column " << column;
    return std::nullopt;
  }
};

ResultSet Decode(const std::string& bytes) {
  ResultSet rs;
  std::span<const uint8_t> in(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  while (!in.empty()) {
    protocol::Frame f;
    if (protocol::DecodeTyped(in, 1 << 20, &f) != protocol::DecodeStatus::kFrame) {
      rs.malformed = true;
      return rs;
    }
    rs.sequence += f.type;
    protocol::ByteReader r(f.payload);
    int16_t n = 0;
    if (f.type == 'T') {
      EXPECT_TRUE(r.GetInt16(&n));
      for (int i = 0; i < n; ++i) {
        std::string_view name;
        int32_t table = 0, oid = 0, typmod = 0;
        int16_t attr = 0, size = 0, format = -1;
        EXPECT_TRUE(r.GetCString(&name) && r.GetInt32(&table) && r.GetInt16(&attr) && r.GetInt32(&oid) &&
                    r.GetInt16(&size) && r.GetInt32(&typmod) && r.GetInt16(&format));
        EXPECT_EQ(format, 0) << "text format";
        rs.columns.emplace_back(name);
        rs.column_oids.push_back(oid);
      }
    } else if (f.type == 'D') {
      EXPECT_TRUE(r.GetInt16(&n));
      EXPECT_EQ(static_cast<size_t>(n), rs.columns.size()) << "DataRow width";
      std::vector<Cell> row;
      for (int i = 0; i < n; ++i) {
        int32_t len = 0;
        EXPECT_TRUE(r.GetInt32(&len));
        if (len < 0) {
          row.emplace_back();
          continue;
        }
        std::span<const uint8_t> v;
        EXPECT_TRUE(r.GetBytes(static_cast<size_t>(len), &v));
        row.emplace_back(std::string(reinterpret_cast<const char*>(v.data()), v.size()));
      }
      rs.rows.push_back(std::move(row));
    } else if (f.type == 'C') {
      std::string_view tag;
      EXPECT_TRUE(r.GetCString(&tag));
      rs.tag = tag;
    }
    EXPECT_TRUE(r.empty()) << "trailing bytes in '" << f.type << "'";
    in = in.subspan(f.total_size);
  }
  return rs;
}

// ---- Parser --------------------------------------------------------------------------------

struct ParseCase {
  const char* sql;
  AdminCommandKind kind;
  const char* argument;
};

class ParseAdminCommandTest : public ::testing::TestWithParam<ParseCase> {};

TEST_P(ParseAdminCommandTest, Parses) {
  const ParseCase& c = GetParam();
  AdminCommand cmd = ParseAdminCommand(c.sql);
  EXPECT_EQ(cmd.kind, c.kind) << c.sql << " -> " << cmd.error;
  EXPECT_EQ(cmd.argument, c.argument) << c.sql;
  EXPECT_EQ(cmd.error.empty(), c.kind != AdminCommandKind::kUnknown) << c.sql << ": " << cmd.error;
}

using K = AdminCommandKind;
INSTANTIATE_TEST_SUITE_P(
    Commands, ParseAdminCommandTest,
    ::testing::Values(
        ParseCase{"SHOW POOLS", K::kShowPools, ""}, ParseCase{"show pools;", K::kShowPools, ""},
        ParseCase{"  Show\tPools ; ;\n", K::kShowPools, ""},
        ParseCase{"SHOW CLIENTS", K::kShowClients, ""}, ParseCase{"SHOW servers", K::kShowServers, ""},
        ParseCase{"SHOW TENANTS", K::kShowTenants, ""}, ParseCase{"show stats", K::kShowStats, ""},
        ParseCase{"SHOW CONFIG", K::kShowConfig, ""}, ParseCase{"SHOW VERSION", K::kShowVersion, ""},
        ParseCase{"SHOW HELP", K::kShowHelp, ""}, ParseCase{"reload", K::kReload, ""},
        ParseCase{"RELOAD;", K::kReload, ""}, ParseCase{"PAUSE", K::kPause, ""},
        ParseCase{"PAUSE shared", K::kPause, "shared"}, ParseCase{"pause Shared;", K::kPause, "Shared"},
        ParseCase{"RESUME", K::kResume, ""}, ParseCase{"resume acme", K::kResume, "acme"},
        ParseCase{"KILL acme", K::kKill, "acme"},
        ParseCase{"KILL \"my pool\"", K::kKill, "my pool"},
        ParseCase{"KILL \"a\"\"b\";", K::kKill, "a\"b"},
        ParseCase{"SHUTDOWN", K::kShutdown, ""},
        ParseCase{"", K::kEmpty, ""}, ParseCase{"  ; ;  ", K::kEmpty, ""},
        // Refused: unknown, incomplete, extra words, several statements, bad quoting.
        ParseCase{"SHOW", K::kUnknown, ""}, ParseCase{"SHOW POOLZ", K::kUnknown, ""},
        ParseCase{"SHOW \"POOLS\"", K::kUnknown, ""}, ParseCase{"SHOW POOLS extra", K::kUnknown, ""},
        ParseCase{"SELECT 1", K::kUnknown, ""}, ParseCase{"KILL", K::kUnknown, ""},
        ParseCase{"KILL;", K::kUnknown, ""}, ParseCase{"KILL a b", K::kUnknown, ""},
        ParseCase{"PAUSE \"\"", K::kUnknown, ""}, ParseCase{"RELOAD now", K::kUnknown, ""},
        ParseCase{"SHUTDOWN please", K::kUnknown, ""},
        ParseCase{"SHOW POOLS; SHOW STATS", K::kUnknown, ""},
        ParseCase{"RELOAD;SHUTDOWN", K::kUnknown, ""}, ParseCase{"KILL \"acme", K::kUnknown, ""},
        ParseCase{"\"SHOW\" POOLS", K::kUnknown, ""}, ParseCase{"SHOWPOOLS", K::kUnknown, ""}));

TEST(ParseAdminCommand, ErrorsNameTheProblemAndEchoSafely) {
  AdminCommand c = ParseAdminCommand("FROB x");
  EXPECT_NE(c.error.find("\"FROB\""), std::string::npos) << c.error;
  EXPECT_NE(c.error.find("SHOW HELP"), std::string::npos) << c.error;
  EXPECT_NE(ParseAdminCommand("kill").error.find("KILL needs a pool name"), std::string::npos);

  // An oversized or binary command is echoed short and printable.
  std::string huge(100000, 'x');
  huge[3] = '\x01';
  c = ParseAdminCommand(huge);
  EXPECT_EQ(c.kind, K::kUnknown);
  EXPECT_LT(c.error.size(), 200u);
  EXPECT_EQ(c.error.find('\x01'), std::string::npos);
  EXPECT_NE(c.error.find("xxx?xx"), std::string::npos) << c.error;
}

TEST(ParseAdminCommand, HandlesNulAndHighBytes) {
  EXPECT_EQ(ParseAdminCommand(std::string_view("SHOW\0POOLS", 10)).kind, K::kUnknown);
  EXPECT_EQ(ParseAdminCommand("SHOW \xff\xfe").kind, K::kUnknown);
  EXPECT_EQ(ParseAdminCommand("\"").kind, K::kUnknown);
}

TEST(AdminCommandTag, MatchesPgBouncer) {
  EXPECT_EQ(AdminCommandTag(K::kShowPools), "SHOW");
  EXPECT_EQ(AdminCommandTag(K::kShowHelp), "SHOW");
  EXPECT_EQ(AdminCommandTag(K::kReload), "RELOAD");
  EXPECT_EQ(AdminCommandTag(K::kPause), "PAUSE");
  EXPECT_EQ(AdminCommandTag(K::kResume), "RESUME");
  EXPECT_EQ(AdminCommandTag(K::kKill), "KILL");
  EXPECT_EQ(AdminCommandTag(K::kShutdown), "SHUTDOWN");
  EXPECT_EQ(AdminCommandTag(K::kUnknown), "");
}

// ---- Renderers -----------------------------------------------------------------------------

TEST(RenderPools, ColumnsAndValues) {
  AdminPoolRow a{.database = "shared", .user = "app_rls", .cl_active = 3, .cl_waiting = 2, .cl_idle = 7,
                 .sv_active = 3, .sv_idle = 1, .sv_used = 4, .sv_login = 5, .max_wait_us = 2500001,
                 .pool_mode = conf::PoolMode::kTransaction, .paused = false};
  AdminPoolRow b{.database = "acme", .user = "acme_rls", .pool_mode = conf::PoolMode::kSession, .paused = true};
  std::string out;
  RenderPools(&out, {a, b});
  ResultSet rs = Decode(out);
  ASSERT_FALSE(rs.malformed);
  EXPECT_EQ(rs.sequence, "TDDC");
  EXPECT_EQ(rs.tag, "SHOW");
  EXPECT_EQ(rs.columns, (std::vector<std::string>{"database", "user", "cl_active", "cl_waiting", "cl_idle",
                                                  "sv_active", "sv_idle", "sv_used", "sv_login", "maxwait",
                                                  "maxwait_us", "pool_mode", "paused"}));
  for (int32_t oid : rs.column_oids) EXPECT_EQ(oid, 25);
  EXPECT_EQ(rs.rows[0], (std::vector<Cell>{"shared", "app_rls", "3", "2", "7", "3", "1", "4", "5", "2",
                                           "500001", "transaction", "0"}));
  EXPECT_EQ(rs.At(1, "database"), "acme");
  EXPECT_EQ(rs.At(1, "maxwait"), "0");
  EXPECT_EQ(rs.At(1, "pool_mode"), "session");
  EXPECT_EQ(rs.At(1, "paused"), "1");
}

TEST(RenderPools, NoRowsIsStillAResult) {
  std::string out;
  RenderPools(&out, {});
  ResultSet rs = Decode(out);
  EXPECT_EQ(rs.sequence, "TC");
  EXPECT_EQ(rs.columns.size(), 13u);
  EXPECT_TRUE(rs.rows.empty());
}

TEST(RenderClients, ColumnsValuesAndNulls) {
  AdminClientRow c{.user = "app", .database = "app", .tenant = "acme", .pool = "acme", .state = "waiting",
                   .addr = "10.0.0.5", .port = 51234, .connect_time = 1700000000,
                   .request_time = 1700000061, .wait_us = 1200000, .tls = "TLSv1.3",
                   .application_name = "psql", .pinned = true};
  AdminClientRow none;
  none.user = "app";
  none.database = "app";
  none.state = "login";
  none.addr = "::1";
  none.port = 1;
  std::string out;
  RenderClients(&out, {c, none});
  ResultSet rs = Decode(out);
  ASSERT_FALSE(rs.malformed);
  EXPECT_EQ(rs.columns, (std::vector<std::string>{"type", "user", "database", "tenant", "pool", "state",
                                                  "addr", "port", "connect_time", "request_time", "wait",
                                                  "wait_us", "tls", "application_name", "pinned"}));
  EXPECT_EQ(rs.rows[0], (std::vector<Cell>{"C", "app", "app", "acme", "acme", "waiting", "10.0.0.5", "51234",
                                           "2023-11-14 22:13:20 UTC", "2023-11-14 22:14:21 UTC", "1",
                                           "200000", "TLSv1.3", "psql", "1"}));
  EXPECT_EQ(rs.At(1, "tenant"), std::nullopt);
  EXPECT_EQ(rs.At(1, "pool"), std::nullopt);
  EXPECT_EQ(rs.At(1, "connect_time"), std::nullopt);
  EXPECT_EQ(rs.At(1, "tls"), "");
  EXPECT_EQ(rs.At(1, "pinned"), "0");
}

TEST(RenderServers, ColumnsAndValues) {
  AdminServerRow s{.user = "app_rls", .database = "app", .pool = "shared", .state = "active",
                   .addr = "127.0.0.1", .port = 5432, .connect_time = 1700000000, .request_time = 0,
                   .remote_pid = 4242, .tenant = "globex", .tls = ""};
  AdminServerRow login;
  login.user = "u";
  login.database = "d";
  login.pool = "p";
  login.state = "login";
  login.addr = "h";
  login.port = 5;
  std::string out;
  RenderServers(&out, {s, login});
  ResultSet rs = Decode(out);
  EXPECT_EQ(rs.columns, (std::vector<std::string>{"type", "user", "database", "pool", "state", "addr", "port",
                                                  "connect_time", "request_time", "remote_pid", "tenant",
                                                  "tls"}));
  EXPECT_EQ(rs.rows[0], (std::vector<Cell>{"S", "app_rls", "app", "shared", "active", "127.0.0.1", "5432",
                                           "2023-11-14 22:13:20 UTC", std::nullopt, "4242", "globex", ""}));
  EXPECT_EQ(rs.At(1, "remote_pid"), std::nullopt);
  EXPECT_EQ(rs.At(1, "tenant"), std::nullopt);
}

TEST(RenderTenants, ColumnsAndValues) {
  AdminTenantRow t{.tenant = "acme", .pool = "acme", .clients = 4, .cl_waiting = 2, .sv_active = 3, .sv_limit = 5,
                   .transactions = 10, .queries = 25, .server_seconds = 1.23456, .bytes_in = 1000,
                   .bytes_out = 20000, .errors = 1};
  std::string out;
  RenderTenants(&out, {t});
  ResultSet rs = Decode(out);
  EXPECT_EQ(rs.columns, (std::vector<std::string>{"tenant", "pool", "clients", "cl_waiting", "sv_active", "sv_limit",
                                                  "transactions", "queries", "server_seconds", "bytes_in",
                                                  "bytes_out", "errors"}));
  EXPECT_EQ(rs.rows[0], (std::vector<Cell>{"acme", "acme", "4", "2", "3", "5", "10", "25", "1.235", "1000", "20000",
                                          "1"}));
}

TEST(RenderStats, PgBouncerColumns) {
  AdminStatsRow row{.database = "shared",
                    .total = {.server_assignment_count = 1, .xact_count = 2, .query_count = 3, .received = 4,
                              .sent = 5, .xact_time_us = 6, .query_time_us = 7, .wait_time_us = 8},
                    .avg = {.server_assignment_count = 11, .xact_count = 12, .query_count = 13,
                            .received = 14, .sent = 15, .xact_time_us = 16, .query_time_us = 17,
                            .wait_time_us = 18}};
  std::string out;
  RenderStats(&out, {row});
  ResultSet rs = Decode(out);
  EXPECT_EQ(rs.columns,
            (std::vector<std::string>{"database", "total_server_assignment_count", "total_xact_count",
                                      "total_query_count", "total_received", "total_sent", "total_xact_time",
                                      "total_query_time", "total_wait_time", "avg_server_assignment_count",
                                      "avg_xact_count", "avg_query_count", "avg_recv", "avg_sent",
                                      "avg_xact_time", "avg_query_time", "avg_wait_time"}));
  EXPECT_EQ(rs.rows[0], (std::vector<Cell>{"shared", "1", "2", "3", "4", "5", "6", "7", "8", "11", "12", "13",
                                           "14", "15", "16", "17", "18"}));
}

TEST(StatsAverages, RatesAndPerEventTimes) {
  AdminStats before{.server_assignment_count = 10, .xact_count = 100, .query_count = 300, .received = 1000,
                    .sent = 5000, .xact_time_us = 50000, .query_time_us = 60000, .wait_time_us = 1000};
  AdminStats after{.server_assignment_count = 40, .xact_count = 250, .query_count = 600, .received = 4000,
                   .sent = 20000, .xact_time_us = 200000, .query_time_us = 90000, .wait_time_us = 7000};
  AdminStats avg = StatsAverages(before, after, 15);
  EXPECT_EQ(avg.server_assignment_count, 2u);  // 30 / 15 s
  EXPECT_EQ(avg.xact_count, 10u);              // 150 / 15 s
  EXPECT_EQ(avg.query_count, 20u);
  EXPECT_EQ(avg.received, 200u);
  EXPECT_EQ(avg.sent, 1000u);
  EXPECT_EQ(avg.xact_time_us, 1000u);   // 150000 us / 150 xacts
  EXPECT_EQ(avg.query_time_us, 100u);   // 30000 us / 300 queries
  EXPECT_EQ(avg.wait_time_us, 200u);    // 6000 us / 30 assignments

  AdminStats zero = StatsAverages(after, before, 15);  // counters went backwards
  EXPECT_EQ(zero.xact_count, 0u);
  EXPECT_EQ(zero.xact_time_us, 0u);
  EXPECT_EQ(StatsAverages(before, after, 0).xact_count, 0u);
  AdminStats idle = StatsAverages(after, after, 15);  // no transactions: no division by zero
  EXPECT_EQ(idle.xact_time_us, 0u);
}

TEST(RenderVersionAndHelp, OneResultEach) {
  std::string out;
  RenderVersion(&out, "0.1.0");
  ResultSet rs = Decode(out);
  EXPECT_EQ(rs.columns, std::vector<std::string>{"version"});
  ASSERT_EQ(rs.rows.size(), 1u);
  EXPECT_EQ(rs.rows[0][0], "pgtenant 0.1.0");

  out.clear();
  RenderHelp(&out);
  rs = Decode(out);
  EXPECT_EQ(rs.columns, (std::vector<std::string>{"command", "description"}));
  std::string all;
  for (const auto& r : rs.rows) all += *r[0] + "|";
  for (const char* cmd : {"SHOW POOLS", "SHOW CLIENTS", "SHOW SERVERS", "SHOW TENANTS", "SHOW STATS",
                          "SHOW CONFIG", "SHOW VERSION", "RELOAD", "PAUSE", "RESUME", "KILL", "SHUTDOWN"}) {
    EXPECT_NE(all.find(cmd), std::string::npos) << cmd;
    // Every command the help lists must parse.
  }
  for (const auto& r : rs.rows) {
    std::string usage = *r[0];
    for (const char* placeholder : {" [pool]", " pool"}) {
      size_t at = usage.find(placeholder);
      if (at != std::string::npos) usage = usage.substr(0, at) + " acme";
    }
    EXPECT_NE(ParseAdminCommand(usage).kind, K::kUnknown) << usage;
  }
}

TEST(AppendResultSet, NullsAndEmptyStringsDiffer) {
  std::string out;
  AppendResultSet(&out, {"a", "b"}, {{std::nullopt, ""}}, "SHOW");
  ResultSet rs = Decode(out);
  ASSERT_EQ(rs.rows.size(), 1u);
  EXPECT_EQ(rs.rows[0][0], std::nullopt);
  EXPECT_EQ(rs.rows[0][1], "");
}

// ---- SHOW CONFIG ---------------------------------------------------------------------------

conf::Config SampleConfig() {
  conf::Config c;
  c.source_path = "/etc/pgtenant.yaml";
  c.listen.port = 7000;
  c.admin.users = {"admin", "ops"};
  auto user = [&](const std::string& name, const std::string& password) -> conf::User& {
    conf::User& u = c.auth.users[name];
    u.name = name;
    u.password = password;
    return u;
  };
  user("app", "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy").tenants = {"*"};
  user("plain", "hunter2-secret").password_is_plaintext = true;
  user("md5u", "md5" + std::string(32, 'a'));
  c.tenancy.default_pool = "shared";
  conf::Pool shared;
  shared.name = "shared";
  shared.database = "app";
  shared.user = "app_rls";
  shared.password = "pool-plain-secret";
  c.pools["shared"] = shared;
  conf::Pool acme;
  acme.name = "acme";
  acme.database = "acme";
  acme.user = "acme_rls";
  acme.password = "env-resolved-secret";
  acme.password_env = "ACME_DB_PASSWORD";
  acme.mode = conf::PoolMode::kSession;
  acme.size = 5;
  c.pools["acme"] = acme;
  c.tenants["acme"] = {.id = "acme", .pool = "acme"};
  c.tenants["globex"] = {.id = "globex", .pool = "shared", .max_client_connections = 50};
  c.timeouts.query_wait = 10000;
  return c;
}

std::map<std::string, std::vector<Cell>> ConfigByKey(const conf::Config& c, std::string* bytes) {
  RenderConfig(bytes, c);
  ResultSet rs = Decode(*bytes);
  EXPECT_EQ(rs.columns, (std::vector<std::string>{"key", "value", "default", "changeable"}));
  EXPECT_EQ(rs.tag, "SHOW");
  std::map<std::string, std::vector<Cell>> by_key;
  for (const auto& row : rs.rows) {
    EXPECT_TRUE(by_key.emplace(*row[0], row).second) << "duplicate key " << *row[0];
  }
  return by_key;
}

TEST(RenderConfig, KeysValuesAndDefaults) {
  std::string bytes;
  auto rows = ConfigByKey(SampleConfig(), &bytes);
  auto value = [&](const std::string& key) { return rows.at(key).at(1); };
  EXPECT_EQ(value("config_file"), "/etc/pgtenant.yaml");
  EXPECT_EQ(rows.at("listen.port"), (std::vector<Cell>{"listen.port", "7000", "6432", "no"}));
  EXPECT_EQ(rows.at("listen.host").at(3), "no");
  EXPECT_EQ(rows.at("pools.acme.size"), (std::vector<Cell>{"pools.acme.size", "5", "20", "yes"}));
  EXPECT_EQ(value("pools.acme.mode"), "session");
  EXPECT_EQ(value("pools.shared.mode"), "transaction");
  EXPECT_EQ(value("pools.shared.tls"), "disable");
  EXPECT_EQ(value("pools.shared.database"), "app");
  EXPECT_EQ(value("pools.shared.ca_file"), std::nullopt);
  EXPECT_EQ(value("admin.users"), "admin,ops");
  EXPECT_EQ(value("auth.type"), "scram-sha-256");
  EXPECT_EQ(value("auth.users.app.tenants"), "*");
  EXPECT_EQ(value("tenancy.default_pool"), "shared");
  EXPECT_EQ(value("tenancy.sources"), "parameter,options,user,set");
  EXPECT_EQ(value("tenancy.require_tenant"), "true");
  EXPECT_EQ(value("tenants.globex.max_client_connections"), "50");
  EXPECT_EQ(value("tenants.acme.pool"), "acme");
  EXPECT_EQ(rows.at("timeouts.query_wait"), (std::vector<Cell>{"timeouts.query_wait", "10s", "30s", "yes"}));
  EXPECT_EQ(value("timeouts.idle_transaction"), "0");
  EXPECT_EQ(value("limits.max_message_size"), "67108864");
}

TEST(RenderConfig, SecretsNeverAppear) {
  conf::Config c = SampleConfig();
  std::string bytes;
  auto rows = ConfigByKey(c, &bytes);
  for (const char* secret : {"hunter2", "pool-plain-secret", "env-resolved-secret", "c3RvcmVk", "aaaaaaaa"}) {
    EXPECT_EQ(bytes.find(secret), std::string::npos) << secret << " leaked";
  }
  auto value = [&](const std::string& key) { return rows.at(key).at(1); };
  EXPECT_EQ(value("auth.users.app.password"), "******** (scram-sha-256 verifier)");
  EXPECT_EQ(value("auth.users.plain.password"), "******** (plain text)");
  EXPECT_EQ(value("auth.users.md5u.password"), "******** (md5 hash)");
  EXPECT_EQ(value("pools.shared.password"), "******** (plain text)");
  EXPECT_EQ(value("pools.acme.password"), "******** (plain text, from password_env)");
  EXPECT_EQ(value("pools.acme.password_env"), "ACME_DB_PASSWORD");
  EXPECT_EQ(value("pools.shared.password_env"), std::nullopt);
  EXPECT_EQ(value("auth.users.app.password_env"), std::nullopt);
}

TEST(RenderConfig, DefaultConfigRendersWithoutPoolsOrUsers) {
  std::string bytes;
  auto rows = ConfigByKey(conf::Config{}, &bytes);
  EXPECT_EQ(rows.at("tenancy.default_pool").at(1), std::nullopt);
  EXPECT_EQ(rows.at("config_file").at(1), std::nullopt);
  for (const auto& [key, row] : rows) {
    EXPECT_NE(key.rfind("pools.", 0), 0u) << key;
    // Every value that has a default equals it in a default config.
    if (row[2]) {
      EXPECT_EQ(row[1], row[2]) << key;
    }
  }
}

}  // namespace
}  // namespace pgtenant::proxy
