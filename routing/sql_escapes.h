// Decoding of the escape forms inside SQL string literals and identifiers, as scan.l does
// it: E'...' backslash escapes (\n, \x41, \101, \u00e9, \U0001F600, surrogate pairs) and
// U&'...' / U&"..." Unicode escapes with a chosen escape character. Used by SqlLexer.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

namespace pgtenant::routing {

// Each returns false (leaving *out unspecified) when an escape is malformed, names an invalid
// code point or a lone surrogate, or would produce a NUL byte -- all of which Postgres rejects.
bool DecodeBackslashEscapes(std::string_view body, std::string* out);
bool DecodeUnicodeEscapes(std::string_view body, char escape, std::string* out);

bool IsHexDigit(char c);

}  // namespace pgtenant::routing
