#include "routing/statement_classifier.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "routing/statement_shapes.h"

namespace pgtenant::routing {
namespace {

constexpr std::string_view kVar = "app.tenant_id";
using SK = StatementKind;

struct Want {
  SK kind;
  std::string value = {};
  int param = 0;
};

struct ClassifyCase {
  const char* name;
  std::string sql;
  std::vector<Want> want;
  bool standard_conforming_strings = true;
};

std::string Describe(const std::vector<ClassifiedStatement>& got) {
  std::string out;
  for (const auto& s : got) {
    out += std::string(StatementKindName(s.kind)) + "(" + s.value +
           (s.value_is_param ? " $" + std::to_string(s.param_index) : "") + ") ";
  }
  return out;
}

const ClassifyCase kCases[] = {
    // SET forms.
    {"set_eq_string", "SET app.tenant_id = 'acme'", {{SK::kSetTenant, "acme"}}},
    {"set_to_ident_folds", "set APP.TENANT_ID to ACME", {{SK::kSetTenant, "acme"}}},
    {"set_session", "SET SESSION app.tenant_id TO 'acme'", {{SK::kSetTenant, "acme"}}},
    {"set_local", "SET LOCAL app.tenant_id = 'acme'", {{SK::kSetLocalTenant, "acme"}}},
    {"set_mixed_case", "SeT LoCaL App.Tenant_ID tO 'X'", {{SK::kSetLocalTenant, "X"}}},
    {"set_no_spaces", "SET app.tenant_id='acme'", {{SK::kSetTenant, "acme"}}},
    {"set_to_default", "SET app.tenant_id TO DEFAULT", {{SK::kResetTenant}}},
    {"set_eq_default", "SET app.tenant_id = default", {{SK::kResetTenant}}},
    {"set_local_default", "SET LOCAL app.tenant_id TO DEFAULT", {{SK::kSetLocalTenant}}},
    {"set_quoted_parts", "SET \"app\".\"tenant_id\" = 'acme'", {{SK::kSetTenant, "acme"}}},
    {"set_quoted_whole", "SET \"app.tenant_id\" = 'acme'", {{SK::kSetTenant, "acme"}}},
    {"set_quoted_mixed_case", "SET \"App\".\"Tenant_Id\" = 'acme'", {{SK::kSetTenant, "acme"}}},
    {"set_half_quoted", "SET app.\"tenant_id\" = 'acme'", {{SK::kSetTenant, "acme"}}},
    {"set_spaced_dot", "SET app . tenant_id = 'acme'", {{SK::kSetTenant, "acme"}}},
    {"set_comments_everywhere",
     "/*a*/SET/*b*/app/*c*/./*d*/tenant_id -- e\n=/*f*/'acme'--g",
     {{SK::kSetTenant, "acme"}}},
    {"set_unicode_ident", "SET U&\"app\".U&\"tenant\\005fid\" = 'a'", {{SK::kSetTenant, "a"}}},
    {"set_unicode_uescape",
     "SET app.U&\"tenant!005fid\" UESCAPE '!' = 'a'",
     {{SK::kSetTenant, "a"}}},
    {"set_quoted_ident_value", "SET app.tenant_id = \"Acme\"", {{SK::kSetTenant, "Acme"}}},
    {"set_number", "SET app.tenant_id = 42", {{SK::kSetTenant, "42"}}},
    {"set_number_leading_zeros", "SET app.tenant_id = 007", {{SK::kSetTenant, "7"}}},
    {"set_negative", "SET app.tenant_id=-5", {{SK::kSetTenant, "-5"}}},
    {"set_decimal", "SET app.tenant_id = 1.50", {{SK::kSetTenant, "1.50"}}},
    {"set_big_integer", "SET app.tenant_id = 99999999999", {{SK::kSetTenant, "99999999999"}}},
    {"set_on", "SET app.tenant_id = on", {{SK::kSetTenant, "on"}}},
    {"set_estring", "SET app.tenant_id = E'ac\\x6de'", {{SK::kSetTenant, "acme"}}},
    {"set_dollar", "SET app.tenant_id = $$acme$$", {{SK::kSetTenant, "acme"}}},
    {"set_dollar_tag", "SET app.tenant_id = $t$ac;me$t$", {{SK::kSetTenant, "ac;me"}}},
    {"set_doubled_quote", "SET app.tenant_id = 'it''s'", {{SK::kSetTenant, "it's"}}},
    {"set_semicolon_in_string", "SET app.tenant_id = 'a;b'", {{SK::kSetTenant, "a;b"}}},
    {"set_continued_string", "SET app.tenant_id = 'ac'\n'me'", {{SK::kSetTenant, "acme"}}},
    {"set_unicode_string", "SET app.tenant_id = U&'\\0061cme'", {{SK::kSetTenant, "acme"}}},
    {"set_scs_off", "SET app.tenant_id = 'a\\'b'", {{SK::kSetTenant, "a'b"}}, false},
    {"set_scs_on_backslash_is_literal", "SET app.tenant_id = 'a\\'", {{SK::kSetTenant, "a\\"}}},
    // SET shapes that target the variable but that we do not model.
    {"set_two_strings_same_line", "SET app.tenant_id = 'ac' 'me'", {{SK::kMentionsTenant}}},
    {"set_list", "SET app.tenant_id = 'a', 'b'", {{SK::kMentionsTenant}}},
    {"set_reserved_word", "SET app.tenant_id = select", {{SK::kMentionsTenant}}},
    {"set_from_current", "SET app.tenant_id FROM CURRENT", {{SK::kMentionsTenant}}},
    {"set_no_value", "SET app.tenant_id", {{SK::kMentionsTenant}}},
    {"set_param", "SET app.tenant_id = $1", {{SK::kMentionsTenant}}},
    {"set_bitstring", "SET app.tenant_id = B'1'", {{SK::kMentionsTenant}}},
    {"set_longer_chain", "SET x.app.tenant_id = 'a'", {{SK::kMentionsTenant}}},
    // SETs of something else.
    {"set_other_var", "SET app.other = 'x'", {{SK::kOther}}},
    {"set_similar_name", "SET app.tenant_idx = 'a'", {{SK::kOther}}},
    {"set_search_path", "SET search_path = public", {{SK::kOther}}},
    {"set_time_zone", "SET TIME ZONE 'UTC'", {{SK::kOther}}},
    {"set_session_authorization", "SET SESSION AUTHORIZATION bob", {{SK::kOther}}},
    {"set_transaction", "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", {{SK::kOther}}},
    {"set_var_named_local", "SET local = 1", {{SK::kOther}}},
    // RESET / DISCARD.
    {"reset_var", "RESET app.tenant_id", {{SK::kResetTenant}}},
    {"reset_quoted", "reset \"APP\".tenant_id", {{SK::kResetTenant}}},
    {"reset_all", "RESET ALL", {{SK::kResetAll}}},
    {"reset_all_lower_semicolon", "reset all;", {{SK::kResetAll}}},
    {"reset_other", "RESET search_path", {{SK::kOther}}},
    {"reset_var_junk", "RESET app.tenant_id x", {{SK::kMentionsTenant}}},
    {"discard_all", "DISCARD ALL", {{SK::kDiscardAll}}},
    {"discard_plans", "DISCARD PLANS", {{SK::kOther}}},
    {"discard_temp", "discard temp", {{SK::kOther}}},
    // set_config.
    {"set_config",
     "SELECT set_config('app.tenant_id', 'acme', false)",
     {{SK::kSetConfigTenant, "acme"}}},
    {"set_config_spaces_casts",
     "select SET_CONFIG( 'app.tenant_id'::text , 'acme'::text , 'f' )",
     {{SK::kSetConfigTenant, "acme"}}},
    {"set_config_local",
     "SELECT pg_catalog.set_config('app.tenant_id', 'acme', true)",
     {{SK::kSetConfigLocalTenant, "acme"}}},
    {"set_config_local_on",
     "SELECT set_config('APP.TENANT_ID', 'acme', 'on')",
     {{SK::kSetConfigLocalTenant, "acme"}}},
    {"set_config_bool_cast",
     "SELECT set_config('app.tenant_id', 'acme', 'off'::boolean)",
     {{SK::kSetConfigTenant, "acme"}}},
    {"set_config_varying",
     "SELECT set_config('app.tenant_id', 'a'::character varying, false)",
     {{SK::kSetConfigTenant, "a"}}},
    {"set_config_param",
     "SELECT set_config('app.tenant_id', $1, false)",
     {{SK::kSetConfigTenant, "", 1}}},
    {"set_config_param_cast",
     "SELECT set_config('app.tenant_id', $2::text, FALSE);",
     {{SK::kSetConfigTenant, "", 2}}},
    {"set_config_estring_name",
     "SELECT set_config(E'app.tenant\\x5fid', 'a', false)",
     {{SK::kSetConfigTenant, "a"}}},
    {"set_config_bare_on",
     "SELECT set_config('app.tenant_id', 'acme', on)",
     {{SK::kMentionsTenant}}},
    {"set_config_from",
     "SELECT set_config('app.tenant_id', 'acme', false) FROM t",
     {{SK::kMentionsTenant}}},
    // Read exactly by the real parser (routing/sql_statement.h) where the shapes cannot.
    {"set_config_alias",
     "SELECT set_config('app.tenant_id', 'acme', false) AS x",
     {{SK::kSetConfigTenant, "acme"}}},
    {"set_config_cast_value",
     "select set_config('app.tenant_id', CAST('acme' AS text), TRUE) as tenant",
     {{SK::kSetConfigLocalTenant, "acme"}}},
    {"set_config_second_item",
     "SELECT 1, set_config('app.tenant_id','a',false)",
     {{SK::kMentionsTenant}}},
    {"set_config_param_name", "SELECT set_config($1, $2, false)", {{SK::kMentionsTenant}}},
    {"set_config_null", "SELECT set_config('app.tenant_id', NULL, false)", {{SK::kMentionsTenant}}},
    {"set_config_expr",
     "SELECT set_config('app.tenant_id', upper('a'), false)",
     {{SK::kMentionsTenant}}},
    {"set_config_typmod",
     "SELECT set_config('app.tenant_id', 'abc'::varchar(2), false)",
     {{SK::kMentionsTenant}}},
    {"set_config_param_zero",
     "SELECT set_config('app.tenant_id', $0, false)",
     {{SK::kMentionsTenant}}},
    {"set_config_in_from",
     "SELECT * FROM set_config('app.tenant_id', 'a', false)",
     {{SK::kMentionsTenant}}},
    {"set_config_concat_name",
     "SELECT set_config('app.' || 'tenant_id', 'a', false)",
     {{SK::kMentionsTenant}}},
    {"set_config_other_var", "SELECT set_config('search_path', 'public', false)", {{SK::kOther}}},
    {"set_config_unclosed",
     "SELECT set_config('app.tenant_id', 'acme', false",
     {{SK::kMentionsTenant}}},
    {"prepare_set_config",
     "PREPARE p AS SELECT set_config('app.tenant_id', $1, false)",
     {{SK::kMentionsTenant}}},
    {"explain_set_config",
     "EXPLAIN SELECT set_config('app.tenant_id','a',false)",
     {{SK::kMentionsTenant}}},
    // Other statements naming the variable.
    {"show", "SHOW app.tenant_id", {{SK::kMentionsTenant}}},
    {"alter_role", "ALTER ROLE bob SET app.tenant_id = 'x'", {{SK::kMentionsTenant}}},
    {"column_named_like_it", "SELECT app.tenant_id FROM app", {{SK::kMentionsTenant}}},
    {"do_block",
     "DO $$BEGIN PERFORM set_config('app.tenant_id','x',false); END$$",
     {{SK::kMentionsTenant}}},
    {"dollar_quoted_set_is_not_a_set",
     "SELECT $$set app.tenant_id = 'x'$$",
     {{SK::kMentionsTenant}}},
    {"string_holding_set", "SELECT 'SET app.tenant_id = 1; RESET ALL'", {{SK::kMentionsTenant}}},
    // Ordinary statements.
    {"current_setting", "SELECT current_setting('app.tenant_id')", {{SK::kOther}}},
    {"column_tenant_id", "SELECT tenant_id FROM t WHERE tenant_id = 'a'", {{SK::kOther}}},
    {"plain_select", "SELECT * FROM orders WHERE id = 1", {{SK::kOther}}},
    {"string_tenant_word", "SELECT 'tenant_id'", {{SK::kOther}}},
    {"comment_holding_set", "-- SET app.tenant_id = 'x'\nSELECT 1", {{SK::kOther}}},
    {"trailing_comment_holding_set", "SELECT 1 -- ; SET app.tenant_id = 'x'", {{SK::kOther}}},
    {"block_comment_holding_set", "/* SET app.tenant_id = 'x'; */ SELECT 1", {{SK::kOther}}},
    // Transaction control.
    {"begin", "BEGIN", {{SK::kBegin}}},
    {"begin_modes", "begin transaction isolation level serializable", {{SK::kBegin}}},
    {"start_transaction", "START TRANSACTION READ ONLY", {{SK::kBegin}}},
    {"commit", "COMMIT", {{SK::kCommitOrRollback}}},
    {"commit_and_chain", "COMMIT AND CHAIN", {{SK::kCommitOrRollback}}},
    {"end", "END", {{SK::kCommitOrRollback}}},
    {"rollback", "ROLLBACK WORK", {{SK::kCommitOrRollback}}},
    {"abort", "ABORT", {{SK::kCommitOrRollback}}},
    {"rollback_to_savepoint", "ROLLBACK TO SAVEPOINT s", {{SK::kOther}}},
    {"rollback_to", "ROLLBACK TRANSACTION TO s", {{SK::kOther}}},
    {"commit_prepared", "COMMIT PREPARED 'x'", {{SK::kOther}}},
    {"prepare_transaction", "PREPARE TRANSACTION 'x'", {{SK::kCommitOrRollback}}},
    {"prepare_statement", "PREPARE q AS SELECT 1", {{SK::kOther}}},
    // Several statements.
    {"multi",
     "SELECT 1; SET app.tenant_id = 'a'; SELECT 2",
     {{SK::kOther}, {SK::kSetTenant, "a"}, {SK::kOther}}},
    {"string_with_semicolon_first",
     "SELECT ';' ; SET app.tenant_id='b'",
     {{SK::kOther}, {SK::kSetTenant, "b"}}},
    {"empty_statements_skipped", ";;  ; SET app.tenant_id='a';;", {{SK::kSetTenant, "a"}}},
    {"transaction_block",
     "BEGIN; SET LOCAL app.tenant_id = 'acme'; SELECT 1; COMMIT",
     {{SK::kBegin}, {SK::kSetLocalTenant, "acme"}, {SK::kOther}, {SK::kCommitOrRollback}}},
    {"reset_then_discard", "RESET ALL; DISCARD ALL", {{SK::kResetAll}, {SK::kDiscardAll}}},
    {"begin_atomic_body",
     "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END; "
     "SET app.tenant_id = 'a'",
     {{SK::kOther}, {SK::kSetTenant, "a"}}},
    {"create_rule_parens",
     "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES "
     "(2)); "
     "RESET ALL",
     {{SK::kOther}, {SK::kResetAll}}},
    {"unbalanced_paren_hides_nothing",
     "SELECT (1; SET app.tenant_id='evil'",
     {{SK::kMentionsTenant}}},
    // Empty and truncated input.
    {"empty", "", {}},
    {"only_comment", "   -- only a comment", {}},
    {"only_block_comment", "/* c */", {}},
    {"unterminated_comment_only", "/* outer /* inner */ SET app.tenant_id = 'a'", {{SK::kOther}}},
    {"nested_comment_closed",
     "/* outer /* inner */ still */ SET app.tenant_id = 'a'",
     {{SK::kSetTenant, "a"}}},
    {"truncated_value", "SET app.tenant_id = 'unterminated", {{SK::kMentionsTenant}}},
    {"truncated_dollar", "SET app.tenant_id = $$unterminated", {{SK::kMentionsTenant}}},
    {"truncated_escape", "SET app.tenant_id = E'\\", {{SK::kMentionsTenant}}},
    {"truncated_ident", "SET \"app.tenant_id = 'x'", {{SK::kOther}}},
    {"truncated_reset_all", "RESET ALL /* unterminated", {{SK::kOther}}},
    {"truncated_second", "SELECT 1; SET app.tenant_id = 'a", {{SK::kOther}, {SK::kMentionsTenant}}},
    {"scs_on_string_then_junk", "SET app.tenant_id = 'a\\'b'", {{SK::kMentionsTenant}}},
    {"junk_number", "SET app.tenant_id = 12abc", {{SK::kMentionsTenant}}},
};

class ClassifierTable : public ::testing::TestWithParam<ClassifyCase> {};

TEST_P(ClassifierTable, Classifies) {
  const ClassifyCase& c = GetParam();
  const auto got = ClassifyQuery(c.sql, kVar, {c.standard_conforming_strings});
  ASSERT_EQ(got.size(), c.want.size()) << c.sql << " -> " << Describe(got);
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].kind, c.want[i].kind) << c.sql << " -> " << Describe(got);
    EXPECT_EQ(got[i].value, c.want[i].value) << c.sql;
    EXPECT_EQ(got[i].param_index, c.want[i].param) << c.sql;
    EXPECT_EQ(got[i].value_is_param, c.want[i].param != 0) << c.sql;
    EXPECT_LE(got[i].begin, got[i].end);
    EXPECT_LE(got[i].end, c.sql.size());
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, ClassifierTable, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

bool IsTenantRelated(SK k) {
  return k != SK::kOther && k != SK::kBegin && k != SK::kCommitOrRollback;
}

// The fast path may only say "no" when the full classifier finds nothing tenant-related.
void ExpectFastPathInvariant(std::string_view sql, bool scs = true) {
  for (const auto& s : ClassifyQuery(sql, kVar, {scs})) {
    if (IsTenantRelated(s.kind)) {
      ASSERT_TRUE(MightTouchTenant(sql, kVar))
          << "fast path missed " << StatementKindName(s.kind) << " in: " << sql;
    }
  }
}

TEST(MightTouchTenant, HoldsForEveryTableInputAndEveryPrefix) {
  for (const ClassifyCase& c : kCases) {
    for (size_t len = 0; len <= c.sql.size(); ++len) {
      ExpectFastPathInvariant(std::string_view(c.sql).substr(0, len),
                              c.standard_conforming_strings);
    }
  }
}

TEST(MightTouchTenant, HoldsForRandomTokenSoup) {
  const std::vector<std::string> pieces = {"SET",
                                           "set",
                                           "LOCAL",
                                           "SESSION",
                                           "RESET",
                                           "ALL",
                                           "DISCARD",
                                           "SELECT",
                                           "set_config",
                                           "(",
                                           ")",
                                           ",",
                                           ";",
                                           "app",
                                           "APP",
                                           ".",
                                           "tenant_id",
                                           "\"tenant_id\"",
                                           "\"app.tenant_id\"",
                                           "U&\"tenant\\005fid\"",
                                           "'",
                                           "''",
                                           "'acme'",
                                           "E'\\x61'",
                                           "$$",
                                           "$t$",
                                           "$1",
                                           "::text",
                                           "false",
                                           "'t'",
                                           "=",
                                           "TO",
                                           "DEFAULT",
                                           "--",
                                           "\n",
                                           "/*",
                                           "*/",
                                           " ",
                                           "\\",
                                           "BEGIN",
                                           "COMMIT",
                                           "pg_catalog",
                                           "U&'\\0061'",
                                           "UESCAPE",
                                           "'!'",
                                           "42",
                                           "-"};
  std::mt19937 rng(12345);
  for (int round = 0; round < 20000; ++round) {
    std::string sql;
    const int n = 1 + static_cast<int>(rng() % 14);
    for (int i = 0; i < n; ++i) {
      sql += pieces[rng() % pieces.size()];
      if (rng() % 3 == 0) sql += ' ';
    }
    ExpectFastPathInvariant(sql, rng() % 4 != 0);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

TEST(ClassifyQuery, RandomBytesAreSafe) {
  // Bytes biased towards the lexer's special characters; checks bounds and the invariant.
  const std::string alphabet = "'\"$;-/*\\\n eEuU&()!.,:=atsx019";
  std::mt19937 rng(777);
  for (int round = 0; round < 20000; ++round) {
    std::string sql(rng() % 64, '\0');
    for (char& c : sql)
      c = rng() % 5 == 0 ? static_cast<char>(rng()) : alphabet[rng() % alphabet.size()];
    for (const auto& s : ClassifyQuery(sql, kVar, {rng() % 2 == 0})) {
      ASSERT_LE(s.begin, s.end);
      ASSERT_LE(s.end, sql.size());
    }
    ExpectFastPathInvariant(sql);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

TEST(MightTouchTenant, SkipsOrdinaryQueries) {
  EXPECT_FALSE(MightTouchTenant("SELECT * FROM orders WHERE id = $1", kVar));
  EXPECT_FALSE(MightTouchTenant("INSERT INTO t VALUES (1, 'x')", kVar));
  EXPECT_FALSE(MightTouchTenant("BEGIN", kVar));
  EXPECT_FALSE(MightTouchTenant("COMMIT", kVar));
  EXPECT_FALSE(MightTouchTenant("SET search_path = public", kVar));
  EXPECT_FALSE(MightTouchTenant("", kVar));
}

TEST(MightTouchTenant, FlagsEachNeedleInAnyCase) {
  EXPECT_TRUE(MightTouchTenant("set app.TENANT_ID = 'a'", kVar));
  EXPECT_TRUE(MightTouchTenant("select SET_CONFIG($1, $2, false)", kVar));
  EXPECT_TRUE(MightTouchTenant("Reset All", kVar));
  EXPECT_TRUE(MightTouchTenant("DISCARD ALL", kVar));
  EXPECT_TRUE(MightTouchTenant("SET app.U&\"x\" = 1", kVar));
  EXPECT_TRUE(MightTouchTenant("SET x = 1", "app."));  // no last part: cannot rule anything out
  EXPECT_FALSE(MightTouchTenant("SET x = 1", "app.weird"));
  EXPECT_TRUE(MightTouchTenant("SET x = 1; SET app.WEIRD = 2", "app.weird"));
}

TEST(ClassifyQuery, OtherVariableName) {
  const auto got = ClassifyQuery("SET myapp.org = 'x'; SET app.tenant_id = 'y'", "MyApp.Org");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].kind, SK::kSetTenant);
  EXPECT_EQ(got[0].value, "x");
  EXPECT_EQ(got[1].kind, SK::kOther);
}

TEST(ClassifyQuery, OffsetsPointAtEachStatement) {
  const std::string sql = "  SELECT 1 ;SET app.tenant_id = 'a';  RESET ALL  ";
  const auto got = ClassifyQuery(sql, kVar);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(sql.substr(got[0].begin, got[0].end - got[0].begin), "SELECT 1");
  EXPECT_EQ(sql.substr(got[1].begin, got[1].end - got[1].begin), "SET app.tenant_id = 'a'");
  EXPECT_EQ(sql.substr(got[2].begin, got[2].end - got[2].begin), "RESET ALL");
}

TEST(ClassifyQuery, LargeInputIsLinear) {
  std::string sql;
  for (int i = 0; i < 20000; ++i) sql += "app.app.app.";
  sql += "tenant_id";
  const auto got = ClassifyQuery(sql, kVar);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].kind, SK::kMentionsTenant);
}

TEST(StatementShapes, ParsePgBool) {
  const std::pair<const char*, std::optional<bool>> cases[] = {
      {"t", true},        {"TRUE", true},      {"tr", true},         {"yes", true},
      {"y", true},        {"on", true},        {"1", true},          {" true ", true},
      {"f", false},       {"False", false},    {"no", false},        {"of", false},
      {"off", false},     {"0", false},        {"o", std::nullopt},  {"truex", std::nullopt},
      {"", std::nullopt}, {"2", std::nullopt}, {"onn", std::nullopt}};
  for (const auto& [text, want] : cases) EXPECT_EQ(ParsePgBool(text), want) << text;
}

TEST(StatementShapes, NormalizeSetNumber) {
  EXPECT_EQ(NormalizeSetNumber("007", false), "7");
  EXPECT_EQ(NormalizeSetNumber("0", true), "0");
  EXPECT_EQ(NormalizeSetNumber("2147483647", true), "-2147483647");
  EXPECT_EQ(NormalizeSetNumber("2147483648", false), "2147483648");
  EXPECT_EQ(NormalizeSetNumber("00000000000000000001", false), "1");
  EXPECT_EQ(NormalizeSetNumber("1.50", true), "-1.50");
}

// A driver's set-up that may run before the application names its tenant (ClientSession
// tenantless_): settings only, never the tenant, a role, or anything that reads a table.
TEST(ClassifyQuery, OnlySessionSettings) {
  for (const char* sql : {"SET extra_float_digits = 3", "SET application_name = 'PostgreSQL JDBC Driver'",
                          "SET TIME ZONE 'UTC'", "set session statement_timeout to 0", "SHOW transaction_isolation",
                          "RESET ALL", "RESET work_mem", "SET extra_float_digits = 3; SHOW timezone",
                          "/* c */ SET datestyle = ISO", "SET LOCAL work_mem = '1MB'"}) {
    EXPECT_TRUE(OnlySessionSettings(sql, "app.tenant_id")) << sql;
  }
  for (const char* sql : {"", ";", "SELECT 1", "SET app.tenant_id = 'acme'", "SET LOCAL app.tenant_id = 'x'",
                          "RESET app.tenant_id", "SET ROLE app_rls", "SET SESSION AUTHORIZATION app",
                          "RESET ROLE", "RESET SESSION AUTHORIZATION", "SET LOCAL ROLE x",
                          "SET work_mem = 1; SELECT * FROM items", "select set_config('work_mem', '1MB', false)",
                          "BEGIN", "COMMIT", "DISCARD ALL"}) {
    EXPECT_FALSE(OnlySessionSettings(sql, "app.tenant_id")) << sql;
  }
}

// The forms frameworks send that only the real parser reads: an alias (psycopg 3 and asyncpg
// applications), a cast of the bound value, is_local as any boolean spelling.
TEST(ClassifyQuery, SetConfigFormsReadByTheParser) {
  struct Form {
    const char* sql;
    StatementKind kind;
    int param;
    const char* column;
  };
  const Form forms[] = {
      {"SELECT set_config('app.tenant_id', $1, false) AS tenant", StatementKind::kSetConfigTenant, 1, "tenant"},
      {"select set_config('app.tenant_id', CAST($1 AS text), true)", StatementKind::kSetConfigLocalTenant, 1,
       "set_config"},
      {"SELECT pg_catalog.set_config('APP.TENANT_ID', $2::text, 'on') tenant_id", StatementKind::kSetConfigLocalTenant,
       2, "tenant_id"},
  };
  for (const Form& f : forms) {
    std::vector<ClassifiedStatement> r = ClassifyQuery(f.sql, "app.tenant_id");
    ASSERT_EQ(r.size(), 1u) << f.sql;
    EXPECT_EQ(r[0].kind, f.kind) << f.sql;
    EXPECT_TRUE(r[0].value_is_param) << f.sql;
    EXPECT_EQ(r[0].param_index, f.param) << f.sql;
    EXPECT_EQ(r[0].column, f.column) << f.sql;
  }
  // Still not a tenant change the pooler can take over: other targets, a bound name, a bound
  // is_local, a subquery.
  for (const char* sql : {"SELECT now(), set_config('app.tenant_id', $1, true) AS tenant, 1",
                          "SELECT set_config($1, $2, true)", "SELECT set_config('app.tenant_id', $1, $2)",
                          "SELECT (SELECT set_config('app.tenant_id', $1, true))"}) {
    std::vector<ClassifiedStatement> r = ClassifyQuery(sql, "app.tenant_id");
    ASSERT_EQ(r.size(), 1u) << sql;
    EXPECT_EQ(r[0].kind, StatementKind::kMentionsTenant) << sql;
  }
  // With standard_conforming_strings off the parser's reading of strings cannot be trusted.
  ClassifyOptions off;
  off.standard_conforming_strings = false;
  EXPECT_EQ(ClassifyQuery("SELECT set_config('app.tenant_id', 'x', false) AS t", "app.tenant_id", off)[0].kind,
            StatementKind::kMentionsTenant);
}

// The server reads a Query up to its first NUL: nothing behind it is a statement (the fuzzer
// found NULs behind a ';' counted as a second statement; tests/fuzz/corpus keeps the input).
TEST(ClassifyQuery, TextEndsAtTheFirstNul) {
  std::string sql = "SET SESSION extra_float_digits TO 3;";
  sql.append(8, '\0');
  sql += "SET app.tenant_id = 'acme'";
  std::vector<ClassifiedStatement> r = ClassifyQuery(sql, "app.tenant_id");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].kind, StatementKind::kOther);
  std::string nul_first(1, '\0');
  nul_first += "SET app.tenant_id = 'x'";
  EXPECT_EQ(ClassifyQuery(nul_first, "app.tenant_id").size(), 0u);
}

}  // namespace
}  // namespace pgtenant::routing
