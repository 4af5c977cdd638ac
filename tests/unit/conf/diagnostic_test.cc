#include "conf/diagnostic.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pgtenant::conf {
namespace {

TEST(FormatDiagnostic, ErrorWithEverything) {
  Diagnostic d{"pools.shared.size", 12, "must be at least 1", "raise it", false};
  EXPECT_EQ(FormatDiagnostic(d, "pgtenant.yaml"),
            "pgtenant.yaml:12: error: pools.shared.size: must be at least 1 (hint: raise it)");
}

TEST(FormatDiagnostic, WarningWithoutHint) {
  Diagnostic d{"auth.users.app.password", 4, "plaintext password", "", true};
  EXPECT_EQ(FormatDiagnostic(d, "f.yaml"), "f.yaml:4: warning: auth.users.app.password: plaintext password");
}

TEST(FormatDiagnostic, NoLineNoPath) {
  Diagnostic d{"", 0, "cannot open the config file: No such file or directory", "", false};
  EXPECT_EQ(FormatDiagnostic(d, "f.yaml"),
            "f.yaml: error: cannot open the config file: No such file or directory");
}

TEST(CountErrors, IgnoresWarnings) {
  std::vector<Diagnostic> ds = {{"a", 1, "x", "", true}, {"b", 2, "y", "", false}, {"c", 3, "z", "", false}};
  EXPECT_EQ(CountErrors(ds), 2u);
  EXPECT_EQ(CountErrors({}), 0u);
}

TEST(ClosestMatch, FindsTyposOnly) {
  std::vector<std::string> keys = {"host", "port", "database", "user", "password", "password_env",
                                   "mode", "size", "tls", "ca_file"};
  EXPECT_EQ(ClosestMatch("szie", keys), "size");       // transposition
  EXPECT_EQ(ClosestMatch("pasword", keys), "password");
  EXPECT_EQ(ClosestMatch("Database", keys), "database");  // case
  EXPECT_EQ(ClosestMatch("password_envv", keys), "password_env");
  EXPECT_EQ(ClosestMatch("dbname", keys), "");
  EXPECT_EQ(ClosestMatch("max_connections", keys), "");
  EXPECT_EQ(ClosestMatch("", keys), "");
  EXPECT_EQ(ClosestMatch("szie", {}), "");
  EXPECT_EQ(ClosestMatch(std::string(1000, 's'), keys), "");
}

TEST(SourceLines, FallsBackToNearestRecordedParent) {
  SourceLines lines;
  lines.Record("", 1);
  lines.Record("pools", 3);
  lines.Record("pools.shared", 4);
  lines.Record("tenancy.sources[1]", 9);
  EXPECT_TRUE(lines.Has("pools.shared"));
  EXPECT_FALSE(lines.Has("pools.shared.user"));
  EXPECT_EQ(lines.LineOf("pools.shared"), 4);
  EXPECT_EQ(lines.LineOf("pools.shared.user"), 4);
  EXPECT_EQ(lines.LineOf("pools.other.user"), 3);
  EXPECT_EQ(lines.LineOf("tenancy.sources[1]"), 9);
  EXPECT_EQ(lines.LineOf("tenancy.sources[2]"), 1);
  EXPECT_EQ(lines.LineOf("listen"), 1);
  EXPECT_EQ(SourceLines().LineOf("listen.port"), 0);
}

}  // namespace
}  // namespace pgtenant::conf
