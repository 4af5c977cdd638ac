// Statements that leave state in the server session which cannot follow a client to another
// server connection (docs/reference.md section 4): SQL PREPARE, temporary tables, LISTEN, session
// advisory locks, DECLARE ... WITH HOLD, LOAD, SET ROLE / SESSION AUTHORIZATION and
// session-level SET of parameters pgtenant does not track. A client that runs one is pinned to
// its server connection until it disconnects. Pure; errs towards pinning.
#pragma once

#include <string_view>

namespace pgtenant::routing {

// Looks at every statement of `sql` (statements about `tenant_variable` are skipped: pgtenant
// handles those). `tracked_set` decides whether a session-level `SET name ...` is restored by
// pgtenant itself (then no pin is needed); it receives the lower-cased parameter name.
// DO blocks pin (they may do anything); functions that create state are not seen.
bool CreatesSessionState(std::string_view sql, std::string_view tenant_variable,
                         bool (*tracked_set)(std::string_view name));

// The two halves of CreatesSessionState, public so that tests and the fuzzer can check that
// the first is a safe pre-check of the second (false => the second is false too).
// MayCreateSessionState: a scan of the text, no lexing, no allocation; runs for every query.
bool MayCreateSessionState(std::string_view sql);
// StatementsCreateSessionState: lexes the text and looks at every statement.
bool StatementsCreateSessionState(std::string_view sql, std::string_view tenant_variable,
                                  bool (*tracked_set)(std::string_view name));

}  // namespace pgtenant::routing
