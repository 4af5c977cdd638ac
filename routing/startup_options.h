// Parses the `options` startup parameter the way the server does (postinit.c pg_split_opts,
// then postgres.c process_postgres_switches with getopt and guc.c ParseLongOption), so that a
// setting the client hides in options — "-c app.tenant_id=acme", "-capp.tenant_id=acme",
// "--app.tenant_id=acme", or inside a switch cluster like "-ec app.tenant_id=acme" — is seen
// by pgtenant exactly as Postgres would see it.
//
//   * tokens split on unescaped whitespace; a backslash makes the next byte literal;
//   * -c takes its argument attached or as the next token; -- takes it attached;
//   * in a setting name every '-' becomes '_' (ParseLongOption);
//   * other switches (and the argument of those that take one) are returned unparsed.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/status.h"

namespace pgtenant::routing {

struct StartupOptions {
  // name=value settings from -c and --, in the order given. Names keep their case; compare
  // them with GucNameEquals.
  std::vector<std::pair<std::string, std::string>> settings;
  // Every other switch, one per element ("-B", then "100" when the switch takes an argument),
  // unescaped, in order; the caller passes them on or refuses them.
  std::vector<std::string> unparsed;
};

// pg_split_opts: the unescaped tokens of `options`.
std::vector<std::string> SplitOptionsString(std::string_view options);

// Errors (SQLSTATE 42601, as the server reports them): "-c" without an argument, a -c/--
// argument without '=', or an empty token (only a trailing backslash makes one).
Result<StartupOptions> ParseStartupOptions(std::string_view options);

// The token written so that SplitOptionsString returns it unchanged (escapes whitespace and
// backslashes).
std::string EscapeOptionToken(std::string_view token);

// An options string that parses back to `options` (settings first, as "-c name=value").
std::string FormatStartupOptions(const StartupOptions& options);

}  // namespace pgtenant::routing
