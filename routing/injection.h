// The SQL pgtenant itself sends to a server connection to put the client's tenant in place
// (docs/reference.md section 3: "it reaches a server only through proper quoting"). Output is safe
// whatever the input bytes are: literals are quoted so that the server reads back exactly the
// input, under either setting of standard_conforming_strings, or fails to parse.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

namespace pgtenant::routing {

// A SQL string literal whose value is `value`. Without backslashes: 'it''s'. With backslashes
// (PQescapeLiteral's rule): E'a\\b', which means the same whether the session has
// standard_conforming_strings on or off. A NUL byte becomes E'...\000...', which the server
// rejects ("invalid byte sequence"), so a NUL can never silently shorten a tenant id.
std::string QuoteLiteral(std::string_view value);

// A dotted variable name as SQL: each part bare when it is a plain lower-case identifier and no
// keyword, else double-quoted ("App".tenant_id). REQUIRES: no empty part (config-validated).
std::string QuoteVariableName(std::string_view variable);

// SET app.tenant_id = 'acme'
std::string BuildSetTenantSql(std::string_view variable, std::string_view tenant);

// RESET app.tenant_id
std::string BuildResetTenantSql(std::string_view variable);

}  // namespace pgtenant::routing
