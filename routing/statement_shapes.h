// The exact statement shapes StatementClassifier recognises, over the tokens of one statement
// (no semicolon). Split from statement_classifier.cc so each file owns one job: that file
// splits and combines, this one knows the grammar of SET, RESET, DISCARD, transaction control
// and SELECT set_config(...), following gram.y (generic_set, var_value, NumericOnly) and
// boolin's rules for set_config's third argument.
//
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "routing/sql_lexer.h"
#include "routing/statement_classifier.h"

namespace pgtenant::routing {

// The classification of one complete, lexically valid statement by its shape alone; kOther
// when it is none of the known shapes (the caller then checks MentionsVariable).
// REQUIRES: !tokens.empty().
ClassifiedStatement ClassifyShape(const std::vector<Token>& tokens, std::string_view variable);

// True when the tokens name `variable` as a dotted name (any part split, any quoting or case),
// call set_config with a first argument that is not a literal naming another setting, or
// carry a string literal (e.g. a DO body) whose text contains "set_config", or the variable
// and "set". Literals are judged by their raw text so that MightTouchTenant stays a superset.
bool MentionsVariable(const std::vector<Token>& tokens, std::string_view variable);

// Postgres boolin: true/false/yes/no/on/off/1/0, unique prefixes, any case, trimmed.
std::optional<bool> ParsePgBool(std::string_view text);

// The value SET stores for a numeric literal: int4 literals print normalised ("007" -> "7"),
// others keep their spelling; `negative` for a leading '-'.
std::string NormalizeSetNumber(std::string_view literal, bool negative);

}  // namespace pgtenant::routing
