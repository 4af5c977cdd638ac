// Exact recognition of the statements pgtenant must understand, with the real PostgreSQL 15
// parser (libpg_query, Debian libpg-query-dev): transaction control, SET / RESET / SHOW,
// SELECT [pg_catalog.]set_config(...) targets, DISCARD, DEALLOCATE, and the statements that
// leave session state pgtenant cannot replay on another server connection. What the parser
// accepts is exactly what the server accepts, so comments, dollar quotes, U& escapes, quoted
// names and the splitting of a multi-statement Query cannot disagree with the server.
//
// Two steps, as on the hot path:
//   NeedsAnalysis(sql)      a byte scan, no lexing, no allocation: false for ordinary
//                           SELECT / INSERT / UPDATE / DELETE / WITH statements;
//   AnalyzeSql(sql, var)    the parser (microseconds), only when NeedsAnalysis is true.
// NeedsAnalysis is a superset: when it is false, AnalyzeSql returns only plain kOther
// statements (no flag set) or a kParseError (the server rejects the text whole).
//
// What stays unknowable (docs/sql-recognition.md): a set_config inside a function body, a DO
// block or a string run by EXECUTE, calls of user functions, a set_config whose arguments are
// not constants or parameters. Those are reported with mentions_tenant_unknowably when the
// text shows them, never evaluated.
//
// The parser reads strings as the server does with standard_conforming_strings = on (the
// default since PostgreSQL 9.1); with it off, backslashes in '...' read differently and a
// caller must not trust the result for text that contains a backslash.
//
// Thread-safety: pure functions; libpg_query keeps a memory context per thread, freed when
// the thread exits (or by pg_query_exit() on that thread). Safe from any thread.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgtenant::routing {

enum class SqlStatementKind {
  kOther,       // anything else (see the flags)
  kParseError,  // the server rejects the whole text; only ever the single result
  // TransactionStmt.
  kBegin,                // BEGIN, START TRANSACTION (transaction_options)
  kCommit,               // COMMIT, END (chain)
  kRollback,             // ROLLBACK, ABORT (chain)
  kSavepoint,            // SAVEPOINT name
  kReleaseSavepoint,     // RELEASE [SAVEPOINT] name
  kRollbackToSavepoint,  // ROLLBACK TO [SAVEPOINT] name
  kPrepareTransaction,   // PREPARE TRANSACTION 'gid': the session leaves the block
  kCommitPrepared,       // COMMIT PREPARED 'gid' (another transaction)
  kRollbackPrepared,     // ROLLBACK PREPARED 'gid'
  // VariableSetStmt (SET / SET LOCAL / SET SESSION / RESET / RESET ALL / SET ... TO DEFAULT).
  kSet,                      // any name but the two below (set)
  kSetRole,                  // SET [LOCAL] ROLE, RESET ROLE (set)
  kSetSessionAuthorization,  // SET [LOCAL] SESSION AUTHORIZATION, RESET ... (set)
  kSetConfigCall,            // plain SELECT with set_config calls among its targets (set_config_calls)
  kShow,                     // SHOW name | ALL (name)
  kDiscardAll,               // DISCARD ALL
  kDiscardOther,             // DISCARD PLANS | SEQUENCES | TEMP (name)
  kDeallocateAll,            // DEALLOCATE [PREPARE] ALL
  kDeallocate,               // DEALLOCATE [PREPARE] name (name)
};

const char* SqlStatementKindName(SqlStatementKind kind);

enum class SetAction {
  kValue,     // SET name {TO | =} value [, ...]
  kDefault,   // SET name {TO | =} DEFAULT, SET TIME ZONE LOCAL | DEFAULT
  kCurrent,   // SET name FROM CURRENT
  kMulti,     // SET TRANSACTION ..., SET SESSION CHARACTERISTICS AS TRANSACTION ...
  kReset,     // RESET name
  kResetAll,  // RESET ALL
};

struct SetStatement {
  SetAction action = SetAction::kValue;
  // Lower-cased as GUC names compare: "app.tenant_id", "timezone" for SET TIME ZONE,
  // "search_path" for SET SCHEMA, "client_encoding" for SET NAMES, "role",
  // "session_authorization"; for kMulti "transaction", "session characteristics" or
  // "transaction snapshot"; empty for kResetAll.
  std::string name;
  bool is_local = false;  // SET LOCAL
  // kValue: the string the server hands to the setting (guc.c flatten_set_variable_args):
  // integers printed canonically, other numbers as written, list elements joined with ", "
  // and, for search_path and the other GUC_LIST_QUOTE settings, quoted unless plain
  // lower-case names. pg_catalog.set_config(name, value, is_local) on another server makes
  // the same setting. nullopt when it is not a constant (SET TIME ZONE INTERVAL '...') or the
  // server will refuse it (several values for a setting that takes one).
  std::optional<std::string> value;
};

// An argument of a set_config call as written: a constant, a Bind parameter or NULL. Casts to
// text / varchar (no length) / boolean are seen through.
struct SqlArgument {
  enum class Kind { kConstant, kParam, kNull };
  Kind kind = Kind::kConstant;
  std::string text;  // kConstant: the string's value ("true"/"false" for a TRUE/FALSE keyword)
  int param = 0;     // kParam: N of $N (1-based), read at Bind time
};

struct SetConfigCall {
  SqlArgument name;   // a constant name compares with GucNameEquals; kNull makes the server fail
  SqlArgument value;  // kNull: the setting goes back to its default, as RESET does
  SqlArgument is_local_arg;
  // The third argument when it is not a parameter: boolin's reading of the constant (true,
  // 't', 'on', 'yes', '1', any case, unique prefixes); NULL counts as false, as set_config
  // does. nullopt when it is $N (read it at Bind with ParsePgBoolText) .
  std::optional<bool> is_local;
  // The name of its result column: the target's alias (AS tenant), else "set_config".
  std::string column = "set_config";
};

struct StatementInfo {
  SqlStatementKind kind = SqlStatementKind::kOther;
  // The statement's bytes in the text as the server sees them (RawStmt stmt_location,
  // stmt_len): from just after the previous ';' (leading whitespace and comments included) to
  // just before its own ';'; the last one runs to the end of the text.
  size_t begin = 0;
  size_t end = 0;

  // kBegin (and kSet with kMulti): the options in canonical form, "ISOLATION LEVEL READ
  // COMMITTED, READ ONLY, DEFERRABLE"; empty when there are none.
  std::string transaction_options;
  bool chain = false;  // kCommit / kRollback ... AND CHAIN: a new block begins at once
  // kSavepoint / kReleaseSavepoint / kRollbackToSavepoint: the savepoint; k*Prepared and
  // kPrepareTransaction: the gid; kShow: the lower-cased name ("all" for SHOW ALL);
  // kDiscardOther: "plans", "sequences" or "temp"; kDeallocate: the statement name.
  std::string name;
  SetStatement set;                            // kSet, kSetRole, kSetSessionAuthorization
  std::vector<SetConfigCall> set_config_calls;  // kSetConfigCall, in target order
  size_t target_count = 0;                      // kSetConfigCall: targets of the SELECT, calls included
  // kSetConfigCall: a target other than a call, a constant or a parameter (now(), a scalar
  // subquery), which only the server can compute.
  bool computed_targets = false;

  // kSet* naming the tenant variable, or kSetConfigCall with a call whose name is the tenant
  // variable as a constant or a parameter (then it is known only at Bind).
  bool names_tenant = false;
  // The statement leaves state in the session that pgtenant cannot carry to another server
  // connection: SQL PREPARE, LISTEN, LOAD, DO, DECLARE ... WITH HOLD, temporary tables, views
  // and sequences (TEMP, or created in pg_temp), session advisory locks
  // (pg_[try_]advisory_lock[_shared] anywhere), and a set_config of another setting that
  // could not be evaluated and is not a constant is_local = true.
  bool creates_session_state = false;
  // The tenant variable may change in a way that cannot be evaluated from the text: a
  // set_config anywhere else than as a whole target of a plain SELECT (in a subquery, CTE,
  // WHERE, PREPARE, EXPLAIN ANALYZE, a view), with a name that is not a constant or with
  // arguments that are not constants or parameters; a string constant that contains
  // "set_config" (query_to_xml and the like run strings); a DO or function body that
  // contains "set_config", or SET / RESET and the variable's last name part.
  bool mentions_tenant_unknowably = false;

  // kParseError: the parser's message and the 1-based byte position (0 when none).
  std::string error;
  int error_position = 0;
};

// Parses `sql` (up to its first NUL byte, as the server reads a Query) and describes each
// top-level statement in order; empty statements are not reported and an empty text gives
// an empty vector. `tenant_variable` is the configured tenancy.variable.
std::vector<StatementInfo> AnalyzeSql(std::string_view sql, std::string_view tenant_variable);

// The cheap pre-check: false means AnalyzeSql returns only plain kOther statements (no flag)
// or a kParseError, so it need not run. It reads the first word after whitespace, comments
// and '(' and is false only when that word is SELECT, INSERT, UPDATE, DELETE, WITH, VALUES,
// TABLE or MERGE, nothing but whitespace follows the first ';', and the text contains
// (ignoring ASCII case) none of "set_config", "advisory", "u&" (a Unicode escape can spell
// any name), nor a backslash together with "e'" (an escape string can spell any string), nor,
// after SELECT / WITH / VALUES / TABLE / '(', both "into" and "temp" (SELECT INTO TEMP).
bool NeedsAnalysis(std::string_view sql);

// boolin's reading of a text value (a bound is_local, or a constant): true / false / yes / no
// / on / off / 1 / 0, unique prefixes, any case, surrounding whitespace ignored.
std::optional<bool> ParsePgBoolText(std::string_view text);

}  // namespace pgtenant::routing
