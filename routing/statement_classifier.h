// Finds, in the text of a simple Query (or a Parse), the statements that change or reset the
// tenant variable, begin or end a transaction block, or reset the session, so the proxy can
// answer tenant changes itself (docs/reference.md section 3, source `set`) and keep every other
// statement on the server. It tokenizes with SqlLexer (never regex over raw text), so comments,
// string bodies and dollar quotes cannot fake or hide a SET.
//
// Names follow Postgres: unquoted identifiers fold to lower case and GUC names compare
// case-insensitively even when quoted, so SET "App"."Tenant_Id" is a tenant change, exactly as
// the server would treat it.
//
// Conservative by design: a statement that names the variable (or calls set_config on a name
// that is not a literal other variable) but is not one of the exact shapes below is
// kMentionsTenant, never kOther; a statement with a lexical error is kMentionsTenant if the
// part before the error mentions the variable, otherwise kOther (the server rejects it).
//
// Thread-safety: pure functions; safe from any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "routing/sql_lexer.h"

namespace pgtenant::routing {

enum class StatementKind {
  kOther,
  kSetTenant,             // SET [SESSION] var {= | TO} value
  kSetLocalTenant,        // SET LOCAL var {= | TO} value | DEFAULT
  kResetTenant,           // RESET var; SET [SESSION] var {= | TO} DEFAULT
  kResetAll,              // RESET ALL
  kDiscardAll,            // DISCARD ALL
  kSetConfigTenant,       // SELECT [pg_catalog.]set_config('var', value, false)
  kSetConfigLocalTenant,  // SELECT [pg_catalog.]set_config('var', value, true)
  kMentionsTenant,        // names the variable in any other shape; the caller decides
  kBegin,                 // BEGIN, START TRANSACTION
  kCommitOrRollback,  // COMMIT, END, ROLLBACK, ABORT, PREPARE TRANSACTION (not ... TO SAVEPOINT)
};

const char* StatementKindName(StatementKind kind);

struct ClassifiedStatement {
  StatementKind kind = StatementKind::kOther;
  // The tenant value, unquoted and unescaped, for kSet*Tenant and kSetConfig*Tenant; empty for
  // DEFAULT and for a parameter value.
  std::string value;
  int param_index = 0;          // N for a $N value, 0 otherwise
  bool value_is_param = false;  // the value is $N (set_config only; SET cannot take $N)
  bool is_default = false;      // SET LOCAL var TO DEFAULT (and kResetTenant)
  // kSetConfig*Tenant: the name of the result column (an alias, else "set_config").
  std::string column = "set_config";
  // The statement's bytes in the input, without the terminating semicolon.
  size_t begin = 0;
  size_t end = 0;
};

struct ClassifyOptions {
  // The session's standard_conforming_strings; off makes backslashes escape in '...'.
  bool standard_conforming_strings = true;
};

// Splits `sql` into statements at top-level semicolons and classifies each; empty statements
// are skipped. The text ends at its first NUL byte, as the server reads a Query. `variable` is
// the configured tenancy.variable (e.g. "app.tenant_id").
std::vector<ClassifiedStatement> ClassifyQuery(std::string_view sql, std::string_view variable,
                                               const ClassifyOptions& options = {});

// Cheap pre-check for the hot path: false means ClassifyQuery would find nothing but kOther,
// kBegin and kCommitOrRollback, so the lexer can be skipped. It is true whenever the text
// contains, ignoring ASCII case, the last dotted part of `variable`, "set_config", "reset",
// "discard" or "u&" (a Unicode escape can spell any name).
bool MightTouchTenant(std::string_view sql, std::string_view variable);

// True when every statement of `sql` only sets, resets or shows a session setting other than
// `variable`, role and session authorization (a driver's set-up: SET extra_float_digits = 3,
// SET application_name, SET TIME ZONE, SHOW ..., RESET ALL): statements that read no table, so
// pgtenant may run them for a session that has not named its tenant yet. False for an empty text.
bool OnlySessionSettings(std::string_view sql, std::string_view variable);

}  // namespace pgtenant::routing
