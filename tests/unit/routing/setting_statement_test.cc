#include "routing/setting_statement.h"

#include <gtest/gtest.h>

namespace pgtenant::routing {
namespace {

std::string Read(std::string_view sql) {
  std::optional<SettingChange> c = ParseSettingChange(sql);
  if (!c) return "(not tracked)";
  return c->name + "=" + (c->value ? "[" + *c->value + "]" : "DEFAULT");
}

TEST(SettingChangeTest, ValuesComeOutAsTheServerFlattensThem) {
  // The expected strings are what SHOW gives on PostgreSQL 15 after each statement.
  EXPECT_EQ(Read("SET search_path = app, public"), "search_path=[app, public]");
  EXPECT_EQ(Read("set search_path to App,PUBLIC;"), "search_path=[app, public]");
  EXPECT_EQ(Read("SET SESSION search_path TO \"$user\", public"), "search_path=[\"$user\", public]");
  EXPECT_EQ(Read("SET search_path = 'My Schema', \"x\"\"y\""), "search_path=[\"My Schema\", \"x\"\"y\"]");
  EXPECT_EQ(Read("SET search_path = 'app'"), "search_path=[app]");
  EXPECT_EQ(Read("SET \"search_path\" = app"), "search_path=[app]");
  EXPECT_EQ(Read("SET extra_float_digits = 3"), "extra_float_digits=[3]");
  EXPECT_EQ(Read("SET extra_float_digits TO -1"), "extra_float_digits=[-1]");
  EXPECT_EQ(Read("SET extra_float_digits =-2"), "extra_float_digits=[-2]");
  EXPECT_EQ(Read("SET extra_float_digits = +02"), "extra_float_digits=[2]");
  EXPECT_EQ(Read("SET extra_float_digits = '3'"), "extra_float_digits=[3]");
  EXPECT_EQ(Read("SET extra_float_digits = 1.5"), "extra_float_digits=[1.5]");
  EXPECT_EQ(Read("  /* c */ SET search_path = a -- c\n"), "search_path=[a]");
  EXPECT_EQ(Read(std::string_view("SET search_path = a\0", 20)), "search_path=[a]");  // a Query's payload
}

TEST(SettingChangeTest, DefaultAndReset) {
  EXPECT_EQ(Read("SET search_path TO DEFAULT"), "search_path=DEFAULT");
  EXPECT_EQ(Read("SET SESSION extra_float_digits = default;"), "extra_float_digits=DEFAULT");
  EXPECT_EQ(Read("RESET search_path"), "search_path=DEFAULT");
  EXPECT_EQ(Read("reset EXTRA_FLOAT_DIGITS ;"), "extra_float_digits=DEFAULT");
}

TEST(SettingChangeTest, AnythingElseIsLeftToThePin) {
  for (const char* sql : {
           "SET LOCAL search_path = app",          // ends with the transaction
           "SET application_name = 'x'",           // reported by the server
           "SET statement_timeout = 5",            // not tracked at all
           "SET search_path = app; SELECT 1",      // several statements
           "SELECT 1; SET search_path = app",
           "SET search_path = app,",               // incomplete
           "SET search_path =",
           "SET search_path",
           "SET search_path = lower('APP')",       // an expression
           "SET search_path = E'a\\\\b'",          // E'' literal
           "SET search_path = 'a\\b'",             // reads differently without standard_conforming_strings
           "SET search_path = $1",
           "SET search_path FROM CURRENT",
           "RESET search_path, x",
           "RESET ALL",
           "SET search_path = 'unterminated",
           "SELECT set_config('search_path', 'x', false)",
           "setx search_path = a",
           "",
       }) {
    EXPECT_EQ(Read(sql), "(not tracked)") << sql;
  }
}

}  // namespace
}  // namespace pgtenant::routing
