// Session-level changes of the settings pgtenant restores on every server connection but the server
// does not report (docs/reference.md section 4: search_path and extra_float_digits; the others come
// back in ParameterStatus). Recognising `SET search_path = app, public` lets pgtenant carry the
// value to the client's next server connection instead of pinning the client to this one. Pure;
// anything unusual is not recognised, and the caller then pins as before.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace pgtenant::routing {

// The tracked parameters of docs/reference.md section 4 that PostgreSQL 15 does not report in a
// ParameterStatus: pgtenant follows a SET of them by reading the statement (lower-case names).
inline constexpr std::array<std::string_view, 2> kUnreportedTrackedSettings = {"search_path", "extra_float_digits"};

// True for the settings above; `lower_name` is lower-cased.
bool IsUnreportedTrackedSetting(std::string_view lower_name);

struct SettingChange {
  std::string name;                  // lower-cased
  std::optional<std::string> value;  // nullopt: back to the default (RESET, SET ... TO DEFAULT)
};

// The change made by `sql` when it is exactly one statement of the form
//   SET [SESSION] name {TO | =} value [, ...]  |  SET [SESSION] name {TO | =} DEFAULT  |  RESET name
// for a tracked name. The value is the string the server itself makes of the arguments
// (guc.c, flatten_set_variable_args): elements joined with ", ", identifiers lower-cased unless
// quoted, numbers normalised, and for search_path each element double-quoted unless it is a
// plain lower-case identifier; pg_catalog.set_config(name, value, false) then gives another
// server the same setting. nullopt for anything else: SET LOCAL, other names, several
// statements, expressions, string literals whose reading depends on
// standard_conforming_strings.
std::optional<SettingChange> ParseSettingChange(std::string_view sql);

}  // namespace pgtenant::routing
