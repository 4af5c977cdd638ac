#include "routing/session_state.h"

#include <gtest/gtest.h>

#include <string>

namespace pgtenant::routing {
namespace {

bool Tracked(std::string_view name) { return name == "search_path" || name == "application_name"; }

bool Creates(std::string_view sql) { return CreatesSessionState(sql, "app.tenant_id", Tracked); }

TEST(SessionStateTest, StatementsThatLeaveStateOnTheServerPin) {
  for (const char* sql : {"PREPARE p AS SELECT 1", "LISTEN jobs", "LOAD 'auto_explain'",
                          "DO $$BEGIN PERFORM 1; END$$", "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
                          "CREATE TEMP TABLE t (x int)", "create temporary table t (x int)",
                          "SELECT 1 INTO TEMP t", "SET work_mem = '64MB'", "SET SESSION statement_timeout = 5",
                          "SET ROLE app", "SET SESSION AUTHORIZATION app", "SELECT pg_advisory_lock(1)",
                          "select pg_try_advisory_lock_shared(1)", "BEGIN; SET work_mem = 1; COMMIT",
                          "/* note */ SET work_mem = 1", "/* a /* nested */ b */set work_mem = 1",
                          "-- note\nSET work_mem = 1", "  (  LISTEN x", "SELECT 1;LISTEN x"}) {
    EXPECT_TRUE(MayCreateSessionState(sql)) << sql;
    EXPECT_TRUE(Creates(sql)) << sql;
  }
}

// SET TIME ZONE is the grammar's spelling of SET timezone: followed when timezone is, a pin
// otherwise, like any other SET.
TEST(SessionStateTest, SetTimeZoneIsASetOfTimezone) {
  auto timezone_tracked = [](std::string_view name) { return name == "timezone"; };
  EXPECT_FALSE(CreatesSessionState("SET TIME ZONE 'UTC'", "app.tenant_id", timezone_tracked));
  EXPECT_FALSE(CreatesSessionState("set session time zone local", "app.tenant_id", timezone_tracked));
  EXPECT_TRUE(Creates("SET TIME ZONE 'UTC'"));
  EXPECT_TRUE(CreatesSessionState("SET time_thing = 1", "app.tenant_id", timezone_tracked));
}

TEST(SessionStateTest, OrdinaryStatementsDoNotPin) {
  for (const char* sql : {"SELECT 1", "SET LOCAL work_mem = 1", "SET search_path = app",
                          "SELECT pg_advisory_xact_lock(1)", "PREPARE TRANSACTION 'x'",
                          "DECLARE c CURSOR FOR SELECT 1", "CREATE TABLE t (x int)"}) {
    EXPECT_FALSE(Creates(sql)) << sql;
  }
}

// The text scan must leave ordinary DML alone, so that it never reaches the lexer: an UPDATE's
// SET, words that contain "do", "load" or "set" are not statement beginnings.
TEST(SessionStateTest, ThePreCheckLetsOrdinaryDmlThroughWithoutLexing) {
  for (const char* sql : {"UPDATE pgbench_accounts SET abalance = abalance + -1234 WHERE aid = 5678;",
                          "UPDATE t SET x = 1; UPDATE u SET y = 2", "SELECT random(), payload, dataset FROM docs",
                          "INSERT INTO t (done, reset_at) VALUES (true, now()) ON CONFLICT (id) DO NOTHING",
                          "select settings from offset_table"}) {
    EXPECT_FALSE(MayCreateSessionState(sql)) << sql;
    EXPECT_FALSE(StatementsCreateSessionState(sql, "app.tenant_id", Tracked)) << sql;
  }
}

TEST(SessionStateTest, ThePreCheckNeverRulesOutWhatTheLexerFinds) {
  // A ';' or "*/" inside a literal only makes the scan look at more places.
  for (const char* sql : {"SELECT ';'; SET work_mem = 1", "SELECT '*/' ; LISTEN x", "SELECT 1 /* ; */ ; PREPARE p AS SELECT 1",
                          "select 1;\tdo $$ begin end $$", "SELECT E'\\';'; SET work_mem = 2"}) {
    EXPECT_TRUE(MayCreateSessionState(sql)) << sql;
    EXPECT_EQ(Creates(sql), StatementsCreateSessionState(sql, "app.tenant_id", Tracked)) << sql;
  }
}

}  // namespace
}  // namespace pgtenant::routing
