// Which statements Postgres refuses to run inside a transaction block or pipeline (VACUUM,
// CREATE DATABASE, CREATE INDEX CONCURRENTLY, ...). pgtenant must not pipeline its own
// statements in the same implicit transaction as these. Pure.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace pgtenant::routing {

// True when the simple-protocol query text may be a statement that must run outside any
// transaction block. Errs on the side of true: a false positive only costs atomicity of the
// pgtenant prelude, a false negative would make the client's statement fail.
bool MayNeedOwnTransaction(std::string_view sql);

// The first keyword of the statement, lower-cased, after whitespace and comments ("" if none).
std::string FirstKeyword(std::string_view sql);
// The first `n` words (letters and '_'), lower-cased, skipping whitespace, comments and '('.
std::vector<std::string> FirstWords(std::string_view sql, int n);

}  // namespace pgtenant::routing
