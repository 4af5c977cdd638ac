#include "routing/sql_statement.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <cstdio>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace pgtenant::routing {
namespace {

constexpr std::string_view kVar = "app.tenant_id";
using K = SqlStatementKind;
using A = SqlArgument::Kind;

std::vector<StatementInfo> Analyze(std::string_view sql) { return AnalyzeSql(sql, kVar); }

// The one statement of `sql`; fails the test when there are more or none.
StatementInfo One(std::string_view sql) {
  std::vector<StatementInfo> all = Analyze(sql);
  EXPECT_EQ(all.size(), 1u) << sql;
  return all.empty() ? StatementInfo{} : all[0];
}

bool Plain(const StatementInfo& s) {
  return s.kind == K::kOther && !s.creates_session_state && !s.mentions_tenant_unknowably && !s.names_tenant;
}

// ----------------------------------------------------------------------------------------------
// The SQL frameworks send.

TEST(SqlStatement, PrismaSetConfigLocalBoundValue) {
  const StatementInfo s = One("SELECT set_config('app.tenant_id', $1, TRUE)");
  ASSERT_EQ(s.kind, K::kSetConfigCall);
  EXPECT_TRUE(s.names_tenant);
  ASSERT_EQ(s.set_config_calls.size(), 1u);
  const SetConfigCall& c = s.set_config_calls[0];
  EXPECT_EQ(c.name.kind, A::kConstant);
  EXPECT_EQ(c.name.text, "app.tenant_id");
  EXPECT_EQ(c.value.kind, A::kParam);
  EXPECT_EQ(c.value.param, 1);
  EXPECT_EQ(c.is_local, true);
  EXPECT_FALSE(s.mentions_tenant_unknowably);
  EXPECT_FALSE(s.creates_session_state);
}

TEST(SqlStatement, PostgrestManyTargets) {
  const std::string sql =
      "select set_config('search_path', $1, true), set_config('role', $2, true), "
      "set_config('request.jwt.claims', $3, true), set_config('request.method', $4, true), "
      "set_config('request.path', $5, true), set_config('request.headers', $6, true), "
      "set_config('request.cookies', $7, true), set_config('app.tenant_id', $8, true)";
  const StatementInfo s = One(sql);
  ASSERT_EQ(s.kind, K::kSetConfigCall);
  ASSERT_EQ(s.set_config_calls.size(), 8u);
  const char* names[] = {"search_path",     "role",           "request.jwt.claims", "request.method",
                         "request.path",    "request.headers", "request.cookies",   "app.tenant_id"};
  for (size_t i = 0; i < 8; ++i) {
    EXPECT_EQ(s.set_config_calls[i].name.text, names[i]);
    EXPECT_EQ(s.set_config_calls[i].value.param, static_cast<int>(i + 1));
    EXPECT_EQ(s.set_config_calls[i].is_local, true);
  }
  EXPECT_TRUE(s.names_tenant);
  EXPECT_FALSE(s.creates_session_state);
  EXPECT_FALSE(s.mentions_tenant_unknowably);
}

TEST(SqlStatement, PostgrestTwoTargetsJwtThenTenant) {
  const StatementInfo s =
      One("select set_config('request.jwt.claims', $1, true), set_config('app.tenant_id', $2, true)");
  ASSERT_EQ(s.kind, K::kSetConfigCall);
  ASSERT_EQ(s.set_config_calls.size(), 2u);
  EXPECT_EQ(s.set_config_calls[1].name.text, "app.tenant_id");
  EXPECT_EQ(s.set_config_calls[1].value.param, 2);
}

TEST(SqlStatement, SupabaseSetLocalRole) {
  const StatementInfo s = One("set local role \"authenticated\"");
  EXPECT_EQ(s.kind, K::kSetRole);
  EXPECT_TRUE(s.set.is_local);
  EXPECT_EQ(s.set.action, SetAction::kValue);
  EXPECT_EQ(s.set.value, "authenticated");
  EXPECT_FALSE(s.names_tenant);
}

TEST(SqlStatement, PgJdbcStartupSets) {
  StatementInfo s = One("SET extra_float_digits = 3");
  EXPECT_EQ(s.kind, K::kSet);
  EXPECT_EQ(s.set.name, "extra_float_digits");
  EXPECT_EQ(s.set.value, "3");
  EXPECT_FALSE(s.set.is_local);
  s = One("SET application_name = 'PostgreSQL JDBC Driver'");
  EXPECT_EQ(s.kind, K::kSet);
  EXPECT_EQ(s.set.name, "application_name");
  EXPECT_EQ(s.set.value, "PostgreSQL JDBC Driver");
}

TEST(SqlStatement, DriverBegins) {
  StatementInfo s = One("BEGIN");  // psycopg2
  EXPECT_EQ(s.kind, K::kBegin);
  EXPECT_EQ(s.transaction_options, "");
  s = One("BEGIN ISOLATION LEVEL READ COMMITTED;");  // asyncpg
  EXPECT_EQ(s.kind, K::kBegin);
  EXPECT_EQ(s.transaction_options, "ISOLATION LEVEL READ COMMITTED");
  s = One("start transaction isolation level serializable, read only, deferrable");
  EXPECT_EQ(s.kind, K::kBegin);
  EXPECT_EQ(s.transaction_options, "ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE");
  s = One("BEGIN READ WRITE, NOT DEFERRABLE");
  EXPECT_EQ(s.transaction_options, "READ WRITE, NOT DEFERRABLE");
}

TEST(SqlStatement, SetConfigAliasCastsAndCase) {
  StatementInfo s = One("SELECT set_config('app.tenant_id', $1, false) AS tenant");
  ASSERT_EQ(s.kind, K::kSetConfigCall);
  EXPECT_EQ(s.set_config_calls[0].is_local, false);
  EXPECT_EQ(s.set_config_calls[0].value.param, 1);

  s = One("SELECT set_config('app.tenant_id', CAST($1 AS text), true)");
  ASSERT_EQ(s.kind, K::kSetConfigCall);
  EXPECT_EQ(s.set_config_calls[0].value.kind, A::kParam);

  s = One("select PG_CATALOG.SET_CONFIG('APP.TENANT_ID'::text, $2::varchar, 'on'::boolean)::text t");
  ASSERT_EQ(s.kind, K::kSetConfigCall);
  EXPECT_TRUE(s.names_tenant);
  EXPECT_EQ(s.set_config_calls[0].name.text, "APP.TENANT_ID");
  EXPECT_EQ(s.set_config_calls[0].value.param, 2);
  EXPECT_EQ(s.set_config_calls[0].is_local, true);

  s = One("SELECT set_config('app.tenant_id', $1::character varying, 1::bool), 1, 'x', $2");
  ASSERT_EQ(s.kind, K::kSetConfigCall);
  EXPECT_EQ(s.set_config_calls[0].is_local, true);

  s = One("SELECT set_config('app.tenant_id', 'acme', false)");
  ASSERT_EQ(s.kind, K::kSetConfigCall);
  EXPECT_EQ(s.set_config_calls[0].value.kind, A::kConstant);
  EXPECT_EQ(s.set_config_calls[0].value.text, "acme");
}

TEST(SqlStatement, SetConfigBoundName) {
  const StatementInfo s = One("select set_config($1, $2, true)");
  ASSERT_EQ(s.kind, K::kSetConfigCall);
  EXPECT_TRUE(s.names_tenant);  // known at Bind
  EXPECT_EQ(s.set_config_calls[0].name.kind, A::kParam);
  EXPECT_EQ(s.set_config_calls[0].name.param, 1);
  EXPECT_EQ(s.set_config_calls[0].value.param, 2);
}

TEST(SqlStatement, SetConfigBoundIsLocal) {
  const StatementInfo s = One("SELECT set_config('app.tenant_id', $1, $2)");
  ASSERT_EQ(s.kind, K::kSetConfigCall);
  EXPECT_EQ(s.set_config_calls[0].is_local_arg.kind, A::kParam);
  EXPECT_EQ(s.set_config_calls[0].is_local_arg.param, 2);
  EXPECT_FALSE(s.set_config_calls[0].is_local.has_value());
}

TEST(SqlStatement, SetConfigIsLocalSpellings) {
  const std::pair<const char*, bool> cases[] = {
      {"TRUE", true},       {"false", false},     {"'t'", true},   {"'on'", true},    {"' yes '", true},
      {"'1'", true},        {"'0'", false},       {"'of'", false}, {"'OFF'", false},  {"'n'", false},
      {"NULL", false},      {"0::boolean", false}, {"'tr'::bool", true},
  };
  for (const auto& [arg, want] : cases) {
    const std::string sql = std::string("SELECT set_config('app.tenant_id', 'a', ") + arg + ")";
    const StatementInfo s = One(sql);
    ASSERT_EQ(s.kind, K::kSetConfigCall) << sql;
    EXPECT_EQ(s.set_config_calls[0].is_local, want) << sql;
  }
  // boolin rejects these, so the server does too: never evaluated.
  for (const char* arg : {"'o'", "'maybe'", "1", "'2'"}) {
    const std::string sql = std::string("SELECT set_config('app.tenant_id', 'a', ") + arg + ")";
    const StatementInfo s = One(sql);
    EXPECT_EQ(s.kind, K::kOther) << sql;
    EXPECT_TRUE(s.mentions_tenant_unknowably) << sql;
  }
}

TEST(SqlStatement, SetConfigNullValueResets) {
  const StatementInfo s = One("SELECT set_config('app.tenant_id', NULL, false)");
  ASSERT_EQ(s.kind, K::kSetConfigCall);
  EXPECT_EQ(s.set_config_calls[0].value.kind, A::kNull);
}

TEST(SqlStatement, SetConfigOfOtherSettingsOnly) {
  const StatementInfo s = One("SELECT set_config('search_path', 'app, public', false)");
  ASSERT_EQ(s.kind, K::kSetConfigCall);
  EXPECT_FALSE(s.names_tenant);
  EXPECT_EQ(s.set_config_calls[0].value.text, "app, public");
}

TEST(SqlStatement, SetConfigShapesThatCannotBeEvaluated) {
  const char* cases[] = {
      "SELECT * FROM (SELECT set_config('app.tenant_id', 'x', false)) s",
      "WITH s AS (SELECT set_config('app.tenant_id', 'x', true)) SELECT * FROM s",
      "SELECT 1 WHERE set_config('app.tenant_id', 'x', false) IS NOT NULL",
      "SELECT set_config('app.tenant_id', 'x', false) FROM items",
      "SELECT set_config('app.tenant_id', 'x', false) LIMIT 0",
      "SELECT set_config('app.tenant_id', 'x', false) WHERE false",
      "SELECT set_config('app.tenant_id', lower($1), false)",
      "SELECT set_config('app.tenant_id', $1::varchar(3), false)",
      "SELECT myschema.set_config('app.tenant_id', $1, true)",
      "SELECT \"SET_CONFIG\"('app.tenant_id', $1, true)",
      "SELECT set_config(setting_name => 'app.tenant_id', new_value => 'x', is_local => false)",
      "SELECT set_config('app.tenant_id', 'x', false) UNION ALL SELECT 'y'",
      "SELECT length(set_config('app.tenant_id', 'x', false))",
      "SELECT set_config(lower('APP.TENANT_ID'), 'x', false)",
      "UPDATE t SET a = set_config('app.tenant_id', 'x', false)",
      "EXPLAIN ANALYZE SELECT set_config('app.tenant_id', 'x', false)",
      "CREATE VIEW v AS SELECT set_config('app.tenant_id', 'x', false)",
      "SELECT * FROM t WHERE a IN (SELECT set_config($1, $2, false))",
      "SELECT set_config('app.tenant_id', 'x', false) INTO t",
  };
  for (const char* sql : cases) {
    const StatementInfo s = One(sql);
    EXPECT_NE(s.kind, K::kSetConfigCall) << sql;
    EXPECT_TRUE(s.mentions_tenant_unknowably) << sql;
  }
}

// psycopg 3 users write `SELECT now() AS at, set_config('app.tenant_id', %s, true) AS tenant`:
// the call is a whole target of a plain SELECT, evaluated with the arguments it shows, though
// only the server computes the other targets (and a set-returning one may run it any number of
// times, even none: computed_targets tells the caller so).
TEST(SqlStatement, SetConfigAmongComputedTargets) {
  for (const char* sql : {"SELECT now() AS at, set_config('app.tenant_id', $1, true) AS tenant, 1 AS one",
                          "SELECT set_config('app.tenant_id', $1, true), now()",
                          "SELECT set_config('app.tenant_id', $1, true), generate_series(1, 0)",
                          "SELECT (SELECT 1), set_config('app.tenant_id', $1, true)"}) {
    const StatementInfo s = One(sql);
    ASSERT_EQ(s.kind, K::kSetConfigCall) << sql;
    EXPECT_TRUE(s.computed_targets) << sql;
    EXPECT_TRUE(s.names_tenant) << sql;
    EXPECT_FALSE(s.mentions_tenant_unknowably) << sql;
    ASSERT_EQ(s.set_config_calls.size(), 1u) << sql;
    EXPECT_EQ(s.set_config_calls[0].value.param, 1) << sql;
  }
  EXPECT_FALSE(One("SELECT set_config('app.tenant_id', $1, true), 1").computed_targets);
  // A set_config inside another target is not a call pgtenant can read.
  for (const char* sql : {"SELECT lower(set_config('app.tenant_id', 'x', true)), set_config('app.tenant_id', $1, true)",
                          "SELECT (SELECT set_config('app.tenant_id', 'x', true)), set_config('app.tenant_id', $1, true)",
                          "SELECT now(), \"SET_CONFIG\"('app.tenant_id', $1, true)"}) {
    EXPECT_TRUE(One(sql).mentions_tenant_unknowably) << sql;
  }
}

TEST(SqlStatement, NestedSetConfigOfOtherSettingsPinsUnlessLocal) {
  StatementInfo s = One("SELECT set_config('search_path', 'x', false) FROM t");
  EXPECT_FALSE(s.mentions_tenant_unknowably);
  EXPECT_TRUE(s.creates_session_state);
  s = One("SELECT set_config('search_path', 'x', true) FROM t");
  EXPECT_FALSE(s.mentions_tenant_unknowably);
  EXPECT_FALSE(s.creates_session_state);
}

TEST(SqlStatement, StringsThatRunSql) {
  StatementInfo s = One("SELECT query_to_xml('select set_config(''app.tenant_id'', ''b'', false)', true, true, '')");
  EXPECT_EQ(s.kind, K::kOther);
  EXPECT_TRUE(s.mentions_tenant_unknowably);
  s = One("SELECT E'\\x73et_config'");
  EXPECT_TRUE(s.mentions_tenant_unknowably);
  s = One("SELECT U&'\\0073et_config'");
  EXPECT_TRUE(s.mentions_tenant_unknowably);
  s = One("SELECT 'set_'\n'config'");
  EXPECT_TRUE(s.mentions_tenant_unknowably);
}

// ----------------------------------------------------------------------------------------------
// Multi-statement Queries, comments, strings.

TEST(SqlStatement, SplitsExactly) {
  const std::string sql = "SET app.tenant_id = 'x'; SELECT * FROM items WHERE a = ';'";
  const std::vector<StatementInfo> all = Analyze(sql);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].kind, K::kSet);
  EXPECT_TRUE(all[0].names_tenant);
  EXPECT_EQ(all[0].set.value, "x");
  EXPECT_EQ(sql.substr(all[0].begin, all[0].end - all[0].begin), "SET app.tenant_id = 'x'");
  EXPECT_EQ(all[1].kind, K::kOther);
  EXPECT_EQ(sql.substr(all[1].begin, all[1].end - all[1].begin), " SELECT * FROM items WHERE a = ';'");
}

TEST(SqlStatement, SplitsTransactionBlockInOneQuery) {
  const std::string sql =
      "BEGIN; SET LOCAL app.tenant_id = 'acme'; SELECT * FROM items; COMMIT;";
  const std::vector<StatementInfo> all = Analyze(sql);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0].kind, K::kBegin);
  EXPECT_EQ(all[1].kind, K::kSet);
  EXPECT_TRUE(all[1].set.is_local);
  EXPECT_EQ(all[1].set.value, "acme");
  EXPECT_EQ(all[2].kind, K::kOther);
  EXPECT_EQ(all[3].kind, K::kCommit);
  for (const StatementInfo& s : all) {
    ASSERT_LE(s.begin, s.end);
    ASSERT_LE(s.end, sql.size());
    // Each piece on its own is the same statement.
    const std::vector<StatementInfo> alone = Analyze(sql.substr(s.begin, s.end - s.begin));
    ASSERT_EQ(alone.size(), 1u);
    EXPECT_EQ(alone[0].kind, s.kind);
  }
}

TEST(SqlStatement, SemicolonsInsideRulesAndAtomicBodies) {
  std::vector<StatementInfo> all =
      Analyze("CREATE RULE r AS ON INSERT TO t DO ALSO (SELECT 1; SELECT 2); SELECT 3");
  ASSERT_EQ(all.size(), 2u);
  all = Analyze(
      "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END; DISCARD ALL");
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[1].kind, K::kDiscardAll);
}

TEST(SqlStatement, CommentsEverywhere) {
  StatementInfo s = One("/*a*/SET/*b*/app/*c*/./*d*/tenant_id -- e\n=/*f*/'acme'--g");
  EXPECT_EQ(s.kind, K::kSet);
  EXPECT_TRUE(s.names_tenant);
  EXPECT_EQ(s.set.value, "acme");
  s = One("/* c */ DEALLOCATE ALL");
  EXPECT_EQ(s.kind, K::kDeallocateAll);
  s = One("/* outer /* nested */ still comment; SET app.tenant_id = 'x' */ SELECT 1");
  EXPECT_TRUE(Plain(s));
  s = One("-- SET app.tenant_id = 'x';\nSELECT 1");
  EXPECT_TRUE(Plain(s));
}

TEST(SqlStatement, StringBodiesAndDollarQuotesHideNothing) {
  StatementInfo s = One("SELECT 'SET app.tenant_id = ''x''; DISCARD ALL'");
  EXPECT_TRUE(Plain(s));
  s = One("SELECT $$; SET app.tenant_id = 'x'; $$");
  EXPECT_TRUE(Plain(s));
  s = One("SELECT $tag$ $$; RESET ALL; $$ $tag$ AS body");
  EXPECT_TRUE(Plain(s));
  s = One("INSERT INTO notes(body) VALUES ('BEGIN; COMMIT; set app.tenant_id to x')");
  EXPECT_TRUE(Plain(s));
}

TEST(SqlStatement, NulEndsTheText) {
  const std::string sql("SET app.tenant_id = 'x'\0SELECT 1; SET app.tenant_id = 'y'", 56);
  const StatementInfo s = One(sql);
  EXPECT_EQ(s.kind, K::kSet);
  EXPECT_EQ(s.set.value, "x");
  EXPECT_FALSE(NeedsAnalysis(std::string_view("SELECT 1\0; SET x = 1", 20)));
}

TEST(SqlStatement, EmptyTexts) {
  EXPECT_TRUE(Analyze("").empty());
  EXPECT_TRUE(Analyze(" ;; ").empty());
  EXPECT_TRUE(Analyze("-- nothing").empty());
  EXPECT_TRUE(Analyze("/* nothing */").empty());
}

TEST(SqlStatement, ParseErrorsAreOneResult) {
  StatementInfo s = One("SELEC 1");
  EXPECT_EQ(s.kind, K::kParseError);
  EXPECT_FALSE(s.error.empty());
  EXPECT_GT(s.error_position, 0);
  // The server rejects the whole text, the valid SET included.
  s = One("SET app.tenant_id = 'x'; SELEC 1");
  EXPECT_EQ(s.kind, K::kParseError);
  // A reserved word is no variable name part.
  EXPECT_EQ(One("SET app.user = 'x'").kind, K::kParseError);
  EXPECT_EQ(One("SELECT 'unterminated").kind, K::kParseError);
  EXPECT_EQ(One("/* unterminated").kind, K::kParseError);
}

// ----------------------------------------------------------------------------------------------
// SET / RESET / SHOW / DISCARD / DEALLOCATE / transaction statements.

TEST(SqlStatement, SetForms) {
  StatementInfo s = One("SET \"App\".\"Tenant_Id\" = 'acme'");
  EXPECT_EQ(s.set.name, "app.tenant_id");
  EXPECT_TRUE(s.names_tenant);
  s = One("SET U&\"app\".U&\"tenant\\005fid\" = 'a'");
  EXPECT_TRUE(s.names_tenant);
  s = One("SET SESSION app.tenant_id TO acme");
  EXPECT_FALSE(s.set.is_local);
  EXPECT_EQ(s.set.value, "acme");
  s = One("SET LOCAL app.tenant_id TO DEFAULT");
  EXPECT_EQ(s.set.action, SetAction::kDefault);
  EXPECT_TRUE(s.set.is_local);
  EXPECT_TRUE(s.names_tenant);
  s = One("RESET app.tenant_id");
  EXPECT_EQ(s.set.action, SetAction::kReset);
  EXPECT_TRUE(s.names_tenant);
  s = One("RESET ALL");
  EXPECT_EQ(s.kind, K::kSet);
  EXPECT_EQ(s.set.action, SetAction::kResetAll);
  EXPECT_EQ(s.set.name, "");
  s = One("SET app.tenant_id FROM CURRENT");
  EXPECT_EQ(s.set.action, SetAction::kCurrent);
  s = One("SET app.tenant_id = 'a', 'b'");  // the server: "SET app.tenant_id takes only one argument"
  EXPECT_EQ(s.set.action, SetAction::kValue);
  EXPECT_FALSE(s.set.value.has_value());
}

TEST(SqlStatement, SetValuesAsTheServerStoresThem) {
  const std::pair<const char*, const char*> cases[] = {
      {"SET search_path = app, public", "app, public"},
      {"SET search_path TO \"App\", 'my schema', public", "\"App\", \"my schema\", public"},
      {"SET search_path = \"user\", x", "\"user\", x"},
      {"SET SCHEMA 'app'", "app"},
      {"SET extra_float_digits = -007", "-7"},
      {"SET extra_float_digits = +2", "2"},
      {"SET statement_timeout = 99999999999", "99999999999"},
      {"SET x.y = 1.50", "1.50"},
      {"SET x.y = -1.5e3", "-1.5e3"},
      {"SET x.y = on", "on"},
      {"SET x.y = true", "true"},
      {"SET x.y = MixedCase", "mixedcase"},
      {"SET datestyle = iso, mdy", "iso, mdy"},
      {"SET TIME ZONE 'UTC'", "UTC"},
      {"SET TIME ZONE -7", "-7"},
      {"SET NAMES 'UTF8'", "UTF8"},
      {"SET application_name = E'a\\tb'", "a\tb"},
      {"SET application_name = $$dollar$$", "dollar"},
  };
  for (const auto& [sql, want] : cases) {
    const StatementInfo s = One(sql);
    ASSERT_EQ(s.kind, K::kSet) << sql;
    EXPECT_EQ(s.set.value, std::optional<std::string>(want)) << sql;
  }
  EXPECT_EQ(One("SET TIME ZONE 'UTC'").set.name, "timezone");
  EXPECT_EQ(One("SET SCHEMA 'app'").set.name, "search_path");
  EXPECT_EQ(One("SET NAMES 'UTF8'").set.name, "client_encoding");
  EXPECT_EQ(One("SET TIME ZONE LOCAL").set.action, SetAction::kDefault);
  // An interval is converted by the server: not a constant here.
  const StatementInfo interval = One("SET TIME ZONE INTERVAL '+00:00' HOUR TO MINUTE");
  EXPECT_EQ(interval.set.action, SetAction::kValue);
  EXPECT_FALSE(interval.set.value.has_value());
}

TEST(SqlStatement, SetTransactionAndCharacteristics) {
  StatementInfo s = One("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ");
  EXPECT_EQ(s.kind, K::kSet);
  EXPECT_EQ(s.set.action, SetAction::kMulti);
  EXPECT_EQ(s.set.name, "transaction");
  EXPECT_EQ(s.transaction_options, "ISOLATION LEVEL REPEATABLE READ");
  s = One("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY");
  EXPECT_EQ(s.set.action, SetAction::kMulti);
  EXPECT_EQ(s.set.name, "session characteristics");
  EXPECT_EQ(s.transaction_options, "READ ONLY");
}

TEST(SqlStatement, RoleAndSessionAuthorization) {
  StatementInfo s = One("SET ROLE admin");
  EXPECT_EQ(s.kind, K::kSetRole);
  EXPECT_EQ(s.set.value, "admin");
  s = One("RESET ROLE");
  EXPECT_EQ(s.kind, K::kSetRole);
  EXPECT_EQ(s.set.action, SetAction::kReset);
  s = One("SET SESSION AUTHORIZATION 'bob'");
  EXPECT_EQ(s.kind, K::kSetSessionAuthorization);
  EXPECT_EQ(s.set.value, "bob");
  s = One("SET SESSION AUTHORIZATION DEFAULT");
  EXPECT_EQ(s.kind, K::kSetSessionAuthorization);
  EXPECT_EQ(s.set.action, SetAction::kDefault);
  s = One("RESET SESSION AUTHORIZATION");
  EXPECT_EQ(s.kind, K::kSetSessionAuthorization);
  EXPECT_EQ(s.set.action, SetAction::kReset);
}

TEST(SqlStatement, ShowDiscardDeallocate) {
  StatementInfo s = One("SHOW TIME ZONE");
  EXPECT_EQ(s.kind, K::kShow);
  EXPECT_EQ(s.name, "timezone");
  EXPECT_EQ(One("show ALL").name, "all");
  EXPECT_EQ(One("SHOW \"App.Tenant_Id\"").name, "app.tenant_id");
  EXPECT_EQ(One("DISCARD ALL").kind, K::kDiscardAll);
  s = One("discard temporary");
  EXPECT_EQ(s.kind, K::kDiscardOther);
  EXPECT_EQ(s.name, "temp");
  EXPECT_EQ(One("DISCARD PLANS").name, "plans");
  EXPECT_EQ(One("DISCARD SEQUENCES").name, "sequences");
  EXPECT_EQ(One("DEALLOCATE ALL").kind, K::kDeallocateAll);
  EXPECT_EQ(One("deallocate prepare all").kind, K::kDeallocateAll);
  s = One("deallocate prepare foo");
  EXPECT_EQ(s.kind, K::kDeallocate);
  EXPECT_EQ(s.name, "foo");
  EXPECT_EQ(One("DEALLOCATE \"S_1\"").name, "S_1");
}

TEST(SqlStatement, TransactionStatements) {
  EXPECT_EQ(One("START TRANSACTION").kind, K::kBegin);
  EXPECT_EQ(One("COMMIT").kind, K::kCommit);
  EXPECT_EQ(One("end transaction").kind, K::kCommit);
  EXPECT_EQ(One("ROLLBACK").kind, K::kRollback);
  EXPECT_EQ(One("abort").kind, K::kRollback);
  StatementInfo s = One("COMMIT AND CHAIN");
  EXPECT_EQ(s.kind, K::kCommit);
  EXPECT_TRUE(s.chain);
  EXPECT_FALSE(One("COMMIT AND NO CHAIN").chain);
  s = One("SAVEPOINT s1");
  EXPECT_EQ(s.kind, K::kSavepoint);
  EXPECT_EQ(s.name, "s1");
  EXPECT_EQ(One("RELEASE s1").kind, K::kReleaseSavepoint);
  EXPECT_EQ(One("RELEASE SAVEPOINT s1").name, "s1");
  s = One("ROLLBACK TO SAVEPOINT s1");
  EXPECT_EQ(s.kind, K::kRollbackToSavepoint);
  EXPECT_EQ(s.name, "s1");
  s = One("PREPARE TRANSACTION 'g1'");
  EXPECT_EQ(s.kind, K::kPrepareTransaction);
  EXPECT_EQ(s.name, "g1");
  EXPECT_FALSE(s.creates_session_state);
  EXPECT_EQ(One("COMMIT PREPARED 'g1'").kind, K::kCommitPrepared);
  EXPECT_EQ(One("ROLLBACK PREPARED 'g1'").kind, K::kRollbackPrepared);
}

// ----------------------------------------------------------------------------------------------
// Session state pgtenant cannot replay, and what stays unknowable.

TEST(SqlStatement, SessionState) {
  const char* creates[] = {
      "PREPARE p AS SELECT 1",
      "LISTEN channel",
      "LOAD 'auto_explain'",
      "DO $$ BEGIN RAISE NOTICE 'hi'; END $$",
      "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
      "CREATE TEMP TABLE t (a int)",
      "create temporary table t as select 1",
      "CREATE LOCAL TEMP VIEW v AS SELECT 1",
      "CREATE TEMP SEQUENCE s",
      "CREATE TABLE pg_temp.t (a int)",
      "CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'select 1'",
      "SELECT 1 AS a INTO TEMP t",
      "SELECT 1 AS a INTO pg_temp.t",
      "WITH x AS (SELECT 1 AS a) SELECT * INTO TEMPORARY t FROM x",
      "EXPLAIN ANALYZE CREATE TEMP TABLE t AS SELECT 1",
      "SELECT pg_advisory_lock(1)",
      "select pg_catalog.pg_try_advisory_lock_shared(1, 2)",
      "SELECT * FROM jobs WHERE pg_try_advisory_lock(id) LIMIT 1",
  };
  for (const char* sql : creates) {
    const StatementInfo s = One(sql);
    EXPECT_TRUE(s.creates_session_state) << sql;
    EXPECT_FALSE(s.mentions_tenant_unknowably) << sql;
  }
  const char* not_state[] = {
      "DECLARE c CURSOR FOR SELECT 1",
      "CREATE TABLE t (a int)",
      "SELECT 1 AS a INTO t",
      "SELECT pg_advisory_xact_lock(1)",
      "SELECT pg_advisory_unlock(1)",
      "INSERT INTO pg_temp.t VALUES (1)",
      "SELECT * FROM template WHERE temperature > 3",
  };
  for (const char* sql : not_state) {
    const StatementInfo s = One(sql);
    EXPECT_FALSE(s.creates_session_state) << sql;
  }
}

TEST(SqlStatement, BodiesThatMayChangeTheTenant) {
  const char* unknowable[] = {
      "DO $$ BEGIN PERFORM set_config('app.tenant_id', 'x', false); END $$",
      "DO $$BEGIN EXECUTE 'SET app.tenant_id = ' || quote_literal('x'); END$$",
      "DO 'begin reset app.tenant_id; end'",
      "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN PERFORM set_config('app.tenant_id', 'x', false); END $$",
      "CREATE OR REPLACE PROCEDURE p() LANGUAGE plpgsql AS 'begin set app.tenant_id = ''x''; end'",
      "CREATE FUNCTION f() RETURNS text LANGUAGE sql BEGIN ATOMIC SELECT set_config('app.tenant_id', 'x', false); END",
      "PREPARE p(text) AS SELECT set_config('app.tenant_id', $1, false)",
  };
  for (const char* sql : unknowable) {
    const StatementInfo s = One(sql);
    EXPECT_TRUE(s.mentions_tenant_unknowably) << sql;
  }
  const char* fine[] = {
      "DO $$ BEGIN RAISE NOTICE '%', current_setting('app.tenant_id'); END $$",
      "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $$ SELECT current_setting('app.tenant_id') $$",
      "CREATE FUNCTION f() RETURNS void LANGUAGE sql SET app.tenant_id = 'x' AS 'select 1'",
      "SELECT current_setting('app.tenant_id')",
      "SELECT * FROM items WHERE tenant_id = current_setting('app.tenant_id')",
  };
  for (const char* sql : fine) {
    const StatementInfo s = One(sql);
    EXPECT_FALSE(s.mentions_tenant_unknowably) << sql;
  }
}

TEST(SqlStatement, BoolText) {
  EXPECT_EQ(ParsePgBoolText("true"), true);
  EXPECT_EQ(ParsePgBoolText(" T "), true);
  EXPECT_EQ(ParsePgBoolText("on"), true);
  EXPECT_EQ(ParsePgBoolText("of"), false);
  EXPECT_EQ(ParsePgBoolText("o"), std::nullopt);
  EXPECT_EQ(ParsePgBoolText("yes"), true);
  EXPECT_EQ(ParsePgBoolText("NO"), false);
  EXPECT_EQ(ParsePgBoolText("1"), true);
  EXPECT_EQ(ParsePgBoolText("0"), false);
  EXPECT_EQ(ParsePgBoolText("10"), std::nullopt);
  EXPECT_EQ(ParsePgBoolText("truex"), std::nullopt);
  EXPECT_EQ(ParsePgBoolText(""), std::nullopt);
}

// ----------------------------------------------------------------------------------------------
// The pre-check.

TEST(NeedsAnalysis, OrdinaryRlsStatementsCostNothing) {
  const char* ordinary[] = {
      "SELECT * FROM items WHERE tenant_id = $1",
      "UPDATE t SET discarded_at = now() WHERE id = $1",
      "insert into template (a, b) values ($1, $2)",
      "/* comment */ select 1",
      "-- comment\nselect 1",
      "/* a /* nested */ b */ SELECT 1",
      "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;",
      "UPDATE pgbench_accounts SET abalance = abalance + -4211 WHERE aid = 48213;",
      "with x as (select 1) select * from x",
      "DELETE FROM sessions WHERE tenant_id = $1 AND reset_at < now()",
      "SELECT * FROM t WHERE note = 'set app.tenant_id'",
      "(select 1)",
      "  \n\tSELECT 1 ;  ",
      "SELECT current_setting('app.tenant_id')",
      "SELECT * FROM template WHERE temperature > 3",
      "INSERT INTO items (tenant_id, name) VALUES (current_setting('app.tenant_id'), 'begin')",
      "VALUES (1), (2)",
      "TABLE items",
      "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
      "SELECT 1 ;; ",
      "SELECT 'a\\b' FROM t",
      "SELECT * FROM items WHERE name = 'O''Brien' AND tenant_id = $1",
      "insert into t select * from s",
  };
  for (const char* sql : ordinary) EXPECT_FALSE(NeedsAnalysis(sql)) << sql;
}

TEST(NeedsAnalysis, EverythingThatMattersIsLookedAt) {
  const char* needs[] = {
      "SET app.tenant_id = 'x'",
      "  set local app.tenant_id = 'x'",
      "/* c */ DEALLOCATE ALL",
      "-- c\nBEGIN",
      "BEGIN",
      "commit",
      "RESET ALL",
      "DISCARD ALL",
      "SHOW search_path",
      "SELECT set_config('app.tenant_id', $1, TRUE)",
      "select SET_CONFIG('app.tenant_id', $1, TRUE)",
      "SELECT 1; SET app.tenant_id = 'x'",
      "SELECT 1;SELECT 2",
      "SELECT pg_advisory_lock(1)",
      "SELECT 1 INTO TEMP t",
      "SELECT U&\"\\0073et_config\"('app.tenant_id', 'x', false)",
      "SELECT query_to_xml(E'select \\x73et_config(1)', true, true, '')",
      "SELECT 'set_'\n'config'",
      "SELECT 'set_' -- c\n'config'",
      "(/* c */ (DO $$ $$))",
      "EXPLAIN ANALYZE SELECT 1",
      "CREATE TEMP TABLE t (a int)",
      "PREPARE p AS SELECT 1",
      "selectx 1",
      "SELECT pg_try_advisory_lock(1)",
      "select 1 into temporary t",
      "select 1 AS a into pg_temp.t",
      "SELECT '\\', E'x'",
      "SELECT 1 ; ; x",
      "\xc2\xa0SELECT 1",
  };
  for (const char* sql : needs) EXPECT_TRUE(NeedsAnalysis(sql)) << sql;
}

// The property the proxy relies on: NeedsAnalysis false => AnalyzeSql has nothing to say.
// Returns whether AnalyzeSql ran (NeedsAnalysis was false) and the server would accept the text.
bool ExpectSuperset(const std::string& sql) {
  if (NeedsAnalysis(sql)) return false;
  const std::vector<StatementInfo> all = Analyze(sql);
  if (all.size() == 1 && all[0].kind == K::kParseError) return false;
  for (const StatementInfo& s : all) {
    EXPECT_TRUE(Plain(s)) << "NeedsAnalysis is false but AnalyzeSql found " << SqlStatementKindName(s.kind)
                          << " (state " << s.creates_session_state << ", unknowable "
                          << s.mentions_tenant_unknowably << ") in: " << sql;
  }
  return true;
}

// C string literals of a source file, decoded (enough for the test files of this folder).
std::vector<std::string> StringLiterals(const std::string& source) {
  std::vector<std::string> out;
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\'' && i + 2 < source.size()) {  // skip a char literal such as '"'
      const size_t close = source.find('\'', i + (source[i + 1] == '\\' ? 3 : 2));
      if (close != std::string::npos && close - i <= 4) {
        i = close;
        continue;
      }
    }
    if (source[i] != '"') continue;
    std::string lit;
    size_t k = i + 1;
    for (; k < source.size() && source[k] != '"' && source[k] != '\n'; ++k) {
      if (source[k] != '\\' || k + 1 >= source.size()) {
        lit += source[k];
        continue;
      }
      const char e = source[++k];
      switch (e) {
        case 'n': lit += '\n'; break;
        case 't': lit += '\t'; break;
        case 'r': lit += '\r'; break;
        case '0': lit += '\0'; break;
        case 'x': {
          int v = 0;
          while (k + 1 < source.size() && std::isxdigit(static_cast<unsigned char>(source[k + 1]))) {
            v = v * 16 + std::stoi(std::string(1, source[++k]), nullptr, 16);
          }
          lit += static_cast<char>(v);
          break;
        }
        default: lit += e;
      }
    }
    out.push_back(lit);
    i = k;
  }
  return out;
}

TEST(NeedsAnalysis, SupersetOnTheRoutingTestCorpus) {
  const std::filesystem::path dir = std::filesystem::path(PGTENANT_TESTDATA).parent_path();
  std::vector<std::string> corpus;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (!name.ends_with("_test.cc")) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    for (std::string& lit : StringLiterals(ss.str())) corpus.push_back(std::move(lit));
  }
  ASSERT_GT(corpus.size(), 500u);
  size_t checked = 0, parsed = 0;
  for (const std::string& sql : corpus) {
    std::string upper = sql, lower = sql;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const std::string& v : {sql, upper, lower, "/* x */ " + sql, "-- x\n" + sql, "(" + sql + ")",
                                 "SELECT 1 FROM t WHERE a = " + sql, sql + ";", "select " + sql}) {
      parsed += ExpectSuperset(v);
      ++checked;
    }
  }
  EXPECT_GT(checked, 4500u);
  EXPECT_GT(parsed, 300u);  // the property was exercised, not only the pre-check
  std::printf("[          ] %zu texts, %zu valid SQL that the pre-check let through\n", checked, parsed);
}

TEST(NeedsAnalysis, SupersetOnRandomFragments) {
  const std::vector<std::string> pieces = {
      "SELECT ", "select ", "INSERT INTO t VALUES (", "UPDATE t SET a = ", "DELETE FROM t WHERE ", "WITH x AS (",
      "set_config(", "SET_CONFIG", "'app.tenant_id'", "$1", ", ", "true", ")", "(", ";", " ", "\n", "/*", "*/",
      "--", "'", "''", "\"", "$$", "E'", "\\x73", "U&", "'set_'", "'config'", "into ", "temp ", "pg_temp.",
      "pg_advisory_lock(1)", "FROM t", "WHERE tenant_id = $1", "BEGIN", "SET ", "app.tenant_id", " = 'x'",
      "DISCARD ALL", "current_setting('app.tenant_id')", "::text", "CAST(", " AS text)", "LIMIT 1",
  };
  const std::vector<std::string> starts = {"SELECT ", "select 1 ", "INSERT INTO t ", "UPDATE t SET a = 1 ",
                                           "DELETE FROM t ", "WITH x AS (SELECT 1) SELECT ", "(SELECT ", "VALUES ("};
  std::mt19937 rng(20240615);
  int parsed = 0;
  for (int n = 0; n < 20000; ++n) {
    std::string sql = starts[rng() % starts.size()];
    const int len = static_cast<int>(rng() % 8);
    for (int k = 0; k < len; ++k) sql += pieces[rng() % pieces.size()];
    parsed += ExpectSuperset(sql);
  }
  EXPECT_GT(parsed, 500);
  std::printf("[          ] %d valid random texts that the pre-check let through\n", parsed);
}

}  // namespace
}  // namespace pgtenant::routing
