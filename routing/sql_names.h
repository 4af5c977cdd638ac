// How SQL and GUC names compare and when they need quoting. Postgres folds unquoted
// identifiers to lower case (ASCII only) and looks GUC names up case-insensitively even when
// they were written quoted, so `SET "App"."Tenant_Id"` and `set_config('APP.TENANT_ID', ...)`
// both reach app.tenant_id. Everything that decides "is this the tenant variable?" goes
// through GucNameEquals so the classifier, the startup parser and the injector agree.
//
// Thread-safety: pure functions over immutable tables; safe from any thread.
#pragma once

#include <string>
#include <initializer_list>
#include <span>
#include <string_view>

namespace pgtenant::routing {

inline char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

// ASCII case-insensitive equality; bytes >= 0x80 compare exactly (as Postgres does).
bool EqualsIgnoreAsciiCase(std::string_view a, std::string_view b);

// True when `text` contains any of `needles`, ignoring ASCII case; an empty needle is
// contained in anything. One pass over the text whatever the number of needles, skipping with
// one table lookup every character that starts no needle: it runs for every query.
bool ContainsAnyIgnoreAsciiCase(std::string_view text, std::span<const std::string_view> needles);
inline bool ContainsAnyIgnoreAsciiCase(std::string_view text, std::initializer_list<std::string_view> needles) {
  return ContainsAnyIgnoreAsciiCase(text, std::span<const std::string_view>(needles.begin(), needles.size()));
}

// True when both name the same configuration parameter (case-insensitive, as guc.c does).
inline bool GucNameEquals(std::string_view a, std::string_view b) {
  return EqualsIgnoreAsciiCase(a, b);
}

// Position of the first ASCII case-insensitive occurrence of `needle` (given in lower case)
// in `hay`, or npos. REQUIRES: needle is lower case.
size_t FindIgnoreAsciiCase(std::string_view hay, std::string_view lower_needle);

std::string AsciiLowerCopy(std::string_view s);

// Postgres RESERVED_KEYWORD (kwlist.h): may not be used as a bare name or bare SET value.
// REQUIRES: word is lower case.
bool IsReservedKeyword(std::string_view word);

// Postgres TYPE_FUNC_NAME_KEYWORD: allowed as a function or type name but not as a ColId, so
// not as a bare part of a variable name. REQUIRES: word is lower case.
bool IsTypeFuncNameKeyword(std::string_view word);

// True when `part` can be written bare as one part of a dotted variable name: it matches
// [a-z_][a-z0-9_$]* and is neither a reserved nor a type/function-name keyword.
bool IsBareIdentifier(std::string_view part);

// `part` as it must be written in SQL: bare when IsBareIdentifier, otherwise double-quoted with
// embedded double quotes doubled.
std::string QuoteIdentifierIfNeeded(std::string_view part);

}  // namespace pgtenant::routing
