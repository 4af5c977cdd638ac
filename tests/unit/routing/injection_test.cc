#include "routing/injection.h"

#include <gtest/gtest.h>

#include <string>

#include "routing/statement_classifier.h"

namespace pgtenant::routing {
namespace {

TEST(QuoteLiteral, Forms) {
  EXPECT_EQ(QuoteLiteral("acme"), "'acme'");
  EXPECT_EQ(QuoteLiteral(""), "''");
  EXPECT_EQ(QuoteLiteral("it's"), "'it''s'");
  EXPECT_EQ(QuoteLiteral("''"), "''''''");
  EXPECT_EQ(QuoteLiteral("a\\b"), "E'a\\\\b'");
  EXPECT_EQ(QuoteLiteral("\\'"), "E'\\\\'''");
  EXPECT_EQ(QuoteLiteral(std::string("a\0b", 3)), "E'a\\000b'");
  EXPECT_EQ(QuoteLiteral("a;b--c/*d"), "'a;b--c/*d'");
}

TEST(QuoteVariableName, QuotesOnlyWhatNeedsIt) {
  EXPECT_EQ(QuoteVariableName("app.tenant_id"), "app.tenant_id");
  EXPECT_EQ(QuoteVariableName("App.tenant_id"), "\"App\".tenant_id");
  EXPECT_EQ(QuoteVariableName("app.user"), "app.\"user\"");  // reserved keyword
  EXPECT_EQ(QuoteVariableName("app.left"), "app.\"left\"");  // type/function-name keyword
  EXPECT_EQ(QuoteVariableName("app.1st"), "app.\"1st\"");
  EXPECT_EQ(QuoteVariableName("my-app.x\"y"), "\"my-app\".\"x\"\"y\"");
  EXPECT_EQ(QuoteVariableName("app.t$1"), "app.t$1");
}

TEST(BuildSql, SetAndReset) {
  EXPECT_EQ(BuildSetTenantSql("app.tenant_id", "acme"), "SET app.tenant_id = 'acme'");
  EXPECT_EQ(BuildResetTenantSql("app.tenant_id"), "RESET app.tenant_id");
  EXPECT_EQ(BuildSetTenantSql("App.Tenant", "x'y"), "SET \"App\".\"Tenant\" = 'x''y'");
}

// What we send must read back, through a real lexer, as exactly the value we meant, under
// either standard_conforming_strings setting.
TEST(BuildSql, RoundTripsThroughTheClassifier) {
  const std::string values[] = {"acme",  "it's", "a\\b", "\\'; RESET ALL; --",
                                "$$x$$", "a\nb", "é",    "'",
                                "\\",    "/* x", "--",   ""};
  const std::string variables[] = {"app.tenant_id", "App.User", "a.b.c"};
  for (const std::string& variable : variables) {
    for (const std::string& value : values) {
      const std::string sql = BuildSetTenantSql(variable, value);
      for (bool scs : {true, false}) {
        const auto got = ClassifyQuery(sql, variable, {scs});
        ASSERT_EQ(got.size(), 1u) << sql;
        EXPECT_EQ(got[0].kind, StatementKind::kSetTenant) << sql;
        EXPECT_EQ(got[0].value, value) << sql << " scs=" << scs;
      }
      const auto reset = ClassifyQuery(BuildResetTenantSql(variable), variable);
      ASSERT_EQ(reset.size(), 1u);
      EXPECT_EQ(reset[0].kind, StatementKind::kResetTenant);
    }
  }
}

TEST(BuildSql, NulNeverShortensTheValue) {
  const std::string sql = BuildSetTenantSql("app.tenant_id", std::string("ac\0me", 5));
  EXPECT_EQ(sql.find('\0'), std::string::npos);
  // The server rejects \000; our lexer agrees, so the statement is never a clean SET.
  const auto got = ClassifyQuery(sql, "app.tenant_id");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].kind, StatementKind::kMentionsTenant);
}

}  // namespace
}  // namespace pgtenant::routing
