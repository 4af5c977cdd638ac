#include "routing/statement_shapes.h"

#include <algorithm>
#include <cstdint>
#include <span>

#include "routing/sql_names.h"

namespace pgtenant::routing {
namespace {

using Span = std::span<const Token>;

bool IsKw(const Token& t, std::string_view kw) {
  return t.kind == TokenKind::kIdent && t.text == kw;
}
bool IsPunct(const Token& t, std::string_view p) {
  return t.kind == TokenKind::kPunct && t.text == p;
}
bool IsOp(const Token& t, std::string_view op) {
  return t.kind == TokenKind::kOperator && t.text == op;
}
bool IsName(const Token& t) {
  return t.kind == TokenKind::kIdent || t.kind == TokenKind::kQuotedIdent;
}
// A function name as the parser resolves it: unquoted folds to lower case, quoted is exact.
bool IsFunctionName(const Token& t, std::string_view lower_name) {
  return IsName(t) && t.text == lower_name;
}

// gram.y var_name: ColId ('.' ColId)*. Bare reserved and type/function-name keywords are not
// ColIds, so `SET app.user = 'x'` is a syntax error on the server and not a tenant change here.
bool ParseVarName(Span t, size_t* i, std::string* name) {
  name->clear();
  for (;;) {
    if (*i >= t.size() || !IsName(t[*i])) return false;
    const Token& part = t[*i];
    if (part.kind == TokenKind::kIdent &&
        (IsReservedKeyword(part.text) || IsTypeFuncNameKeyword(part.text))) {
      return false;
    }
    name->append(part.text);
    ++*i;
    if (*i + 1 < t.size() && IsPunct(t[*i], ".")) {
      name->push_back('.');
      ++*i;
      continue;
    }
    return true;
  }
}

// gram.y var_value for a single value: a string, a non-reserved word (plus ON/TRUE/FALSE), a
// quoted identifier, or a signed number.
bool ParseSetValue(Span rest, std::string* value) {
  if (rest.size() == 2 && (IsOp(rest[0], "-") || IsOp(rest[0], "+")) &&
      rest[1].kind == TokenKind::kNumber) {
    *value = NormalizeSetNumber(rest[1].text, rest[0].text == "-");
    return true;
  }
  if (rest.size() != 1) return false;
  const Token& v = rest[0];
  switch (v.kind) {
    case TokenKind::kString:
    case TokenKind::kQuotedIdent:
      *value = v.text;
      return true;
    case TokenKind::kIdent:
      if (IsReservedKeyword(v.text) && v.text != "on" && v.text != "true" && v.text != "false") {
        return false;
      }
      *value = v.text;
      return true;
    case TokenKind::kNumber:
      *value = NormalizeSetNumber(v.text, false);
      return true;
    default:
      return false;
  }
}

ClassifiedStatement ClassifySet(Span t, std::string_view variable) {
  ClassifiedStatement r;
  size_t i = 1;
  bool local = false;
  if (i + 1 < t.size() && (IsKw(t[i], "local") || IsKw(t[i], "session")) && IsName(t[i + 1]) &&
      !IsKw(t[i + 1], "to")) {
    local = t[i].text == "local";
    ++i;
  }
  std::string name;
  if (!ParseVarName(t, &i, &name) || !GucNameEquals(name, variable)) return r;
  // From here the statement targets the variable; any shape we do not model is "mentions".
  r.kind = StatementKind::kMentionsTenant;
  if (i >= t.size() || !(IsOp(t[i], "=") || IsKw(t[i], "to"))) return r;
  const Span rest = t.subspan(i + 1);
  if (rest.size() == 1 && IsKw(rest[0], "default")) {
    r.kind = local ? StatementKind::kSetLocalTenant : StatementKind::kResetTenant;
    r.is_default = true;
    return r;
  }
  if (!ParseSetValue(rest, &r.value)) {
    r.value.clear();
    return r;
  }
  r.kind = local ? StatementKind::kSetLocalTenant : StatementKind::kSetTenant;
  return r;
}

ClassifiedStatement ClassifyReset(Span t, std::string_view variable) {
  ClassifiedStatement r;
  if (t.size() == 2 && IsKw(t[1], "all")) {
    r.kind = StatementKind::kResetAll;
    return r;
  }
  size_t i = 1;
  std::string name;
  if (ParseVarName(t, &i, &name) && GucNameEquals(name, variable)) {
    r.kind = i == t.size() ? StatementKind::kResetTenant : StatementKind::kMentionsTenant;
    r.is_default = i == t.size();
  }
  return r;
}

StatementKind ClassifyTransactionControl(Span t) {
  const std::string& first = t[0].text;
  const bool has_second = t.size() > 1;
  if (first == "begin") return StatementKind::kBegin;
  if (first == "start" && has_second && IsKw(t[1], "transaction")) return StatementKind::kBegin;
  if (first == "prepare" && has_second && IsKw(t[1], "transaction")) {
    return StatementKind::kCommitOrRollback;  // the session leaves the transaction block
  }
  if (first != "commit" && first != "end" && first != "rollback" && first != "abort") {
    return StatementKind::kOther;
  }
  // COMMIT/ROLLBACK PREPARED act on another transaction; ROLLBACK TO SAVEPOINT stays inside.
  if (has_second && IsKw(t[1], "prepared")) return StatementKind::kOther;
  const bool to_savepoint =
      std::any_of(t.begin() + 1, t.end(), [](const Token& x) { return IsKw(x, "to"); });
  return to_savepoint ? StatementKind::kOther : StatementKind::kCommitOrRollback;
}

// Consumes zero or more "::type" casts from t[i..] to the end; true if all are to `kind`.
enum class CastKind { kText, kBool };
bool OnlyCastsTo(Span t, size_t i, CastKind kind) {
  while (i < t.size()) {
    if (!IsPunct(t[i], "::") || ++i >= t.size()) return false;
    if (IsKw(t[i], "pg_catalog") && i + 2 < t.size() && IsPunct(t[i + 1], ".")) i += 2;
    if (kind == CastKind::kBool && (IsKw(t[i], "bool") || IsKw(t[i], "boolean"))) {
      ++i;
    } else if (kind == CastKind::kText && (IsKw(t[i], "text") || IsKw(t[i], "varchar"))) {
      ++i;
    } else if (kind == CastKind::kText && IsKw(t[i], "character") && i + 1 < t.size() &&
               IsKw(t[i + 1], "varying")) {
      i += 2;
    } else {
      return false;
    }
  }
  return true;
}

std::optional<std::string> TextLiteralArg(Span arg) {
  if (arg.empty() || arg[0].kind != TokenKind::kString || !OnlyCastsTo(arg, 1, CastKind::kText)) {
    return std::nullopt;
  }
  return arg[0].text;
}

bool ValueArg(Span arg, ClassifiedStatement* r) {
  if (arg.empty() || !OnlyCastsTo(arg, 1, CastKind::kText)) return false;
  if (arg[0].kind == TokenKind::kString) {
    r->value = arg[0].text;
    return true;
  }
  // $0 does not exist and the protocol caps a Bind at 65535 parameters.
  const std::string& digits = arg[0].text;
  if (arg[0].kind != TokenKind::kParam || digits.size() > 5) return false;
  int n = 0;
  for (char c : digits) n = n * 10 + (c - '0');
  if (n < 1 || n > 65535) return false;
  r->value_is_param = true;
  r->param_index = n;
  return true;
}

std::optional<bool> BoolArg(Span arg) {
  if (arg.empty() || !OnlyCastsTo(arg, 1, CastKind::kBool)) return std::nullopt;
  if (IsKw(arg[0], "true")) return true;
  if (IsKw(arg[0], "false")) return false;
  if (arg[0].kind == TokenKind::kString) return ParsePgBool(arg[0].text);
  return std::nullopt;
}

// Splits the tokens between a call's parentheses at top-level commas.
std::vector<Span> SplitArgs(Span inner) {
  std::vector<Span> args;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i < inner.size(); ++i) {
    if (IsPunct(inner[i], "(") || IsPunct(inner[i], "[")) ++depth;
    if (IsPunct(inner[i], ")") || IsPunct(inner[i], "]")) --depth;
    if (depth < 0) return {};
    if (depth == 0 && IsPunct(inner[i], ",")) {
      args.push_back(inner.subspan(start, i - start));
      start = i + 1;
    }
  }
  if (depth != 0) return {};
  args.push_back(inner.subspan(start));
  return args;
}

// SELECT [pg_catalog.]set_config(name, value, is_local) as the whole statement.
ClassifiedStatement ClassifySetConfig(Span t, std::string_view variable) {
  ClassifiedStatement r;
  size_t i = 1;
  if (i + 2 < t.size() && IsFunctionName(t[i], "pg_catalog") && IsPunct(t[i + 1], ".")) i += 2;
  if (i + 2 >= t.size() || !IsFunctionName(t[i], "set_config") || !IsPunct(t[i + 1], "(") ||
      !IsPunct(t.back(), ")")) {
    return r;
  }
  const std::vector<Span> args = SplitArgs(t.subspan(i + 2, t.size() - i - 3));
  if (args.size() != 3) return r;
  const std::optional<std::string> name = TextLiteralArg(args[0]);
  if (!name || !GucNameEquals(*name, variable)) return r;
  r.kind = StatementKind::kMentionsTenant;
  const std::optional<bool> local = BoolArg(args[2]);
  if (!ValueArg(args[1], &r) || !local) {
    ClassifiedStatement mentions;
    mentions.kind = StatementKind::kMentionsTenant;
    return mentions;
  }
  r.kind = *local ? StatementKind::kSetConfigLocalTenant : StatementKind::kSetConfigTenant;
  return r;
}

// At a set_config call: does its first argument possibly name `variable`?
bool SetConfigCallMayTarget(Span t, size_t open_paren, std::string_view variable) {
  int depth = 0;
  for (size_t i = open_paren + 1; i < t.size(); ++i) {
    if (IsPunct(t[i], "(") || IsPunct(t[i], "[")) ++depth;
    const bool close = IsPunct(t[i], ")") || IsPunct(t[i], "]");
    if (depth == 0 && (close || IsPunct(t[i], ","))) {
      const std::optional<std::string> name =
          TextLiteralArg(t.subspan(open_paren + 1, i - open_paren - 1));
      return !name || GucNameEquals(*name, variable);
    }
    if (close) --depth;
  }
  return true;  // unterminated call: assume the worst
}

}  // namespace

std::optional<bool> ParsePgBool(std::string_view text) {
  auto space = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
  while (!text.empty() && space(text.front())) text.remove_prefix(1);
  while (!text.empty() && space(text.back())) text.remove_suffix(1);
  if (text.empty()) return std::nullopt;
  // boolin accepts any prefix of the full words, but "o" alone is ambiguous (on/off).
  auto prefix_of = [&](std::string_view word, size_t min_len) {
    return text.size() >= min_len && text.size() <= word.size() &&
           EqualsIgnoreAsciiCase(text, word.substr(0, text.size()));
  };
  if (prefix_of("true", 1) || prefix_of("yes", 1) || prefix_of("on", 2) || text == "1") return true;
  if (prefix_of("false", 1) || prefix_of("no", 1) || prefix_of("off", 2) || text == "0") {
    return false;
  }
  return std::nullopt;
}

namespace {

// Built by appending: GCC 12 at -O3 reports a false -Wrestrict on `"-" + std::string(...)`.
std::string WithSign(bool minus, std::string_view digits) {
  std::string out;
  out.reserve(digits.size() + 1);
  if (minus) out += '-';
  out += digits;
  return out;
}

}  // namespace

std::string NormalizeSetNumber(std::string_view literal, bool negative) {
  const bool integer = !literal.empty() && std::all_of(literal.begin(), literal.end(),
                                                       [](char c) { return c >= '0' && c <= '9'; });
  if (integer) {
    const size_t nz = literal.find_first_not_of('0');
    const std::string_view digits = nz == std::string_view::npos ? "0" : literal.substr(nz);
    // Fits in int4: Postgres prints it with %d, so leading zeros go and -0 is 0.
    if (digits.size() < 10 || (digits.size() == 10 && digits <= "2147483647")) {
      return WithSign(negative && digits != "0", digits);
    }
  }
  return WithSign(negative, literal);
}

ClassifiedStatement ClassifyShape(const std::vector<Token>& tokens, std::string_view variable) {
  const Span t(tokens);
  if (IsKw(t[0], "set")) return ClassifySet(t, variable);
  if (IsKw(t[0], "reset")) return ClassifyReset(t, variable);
  if (IsKw(t[0], "select")) return ClassifySetConfig(t, variable);
  ClassifiedStatement r;
  if (IsKw(t[0], "discard")) {
    if (t.size() == 2 && IsKw(t[1], "all")) r.kind = StatementKind::kDiscardAll;
    return r;
  }
  if (t[0].kind == TokenKind::kIdent) r.kind = ClassifyTransactionControl(t);
  return r;
}

bool MentionsVariable(const std::vector<Token>& tokens, std::string_view variable) {
  const std::string lower_variable = AsciiLowerCopy(variable);
  // A quoted part may hold dots, so a chain never needs more parts than the variable has.
  const size_t max_parts = std::count(variable.begin(), variable.end(), '.') + 1;
  const Span t(tokens);
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i].kind == TokenKind::kString) {
      // A DO body or function body that sets the variable: a literal that contains
      // set_config, or the variable together with "set" (SET or RESET). A literal that is
      // just the name, as in current_setting('app.tenant_id'), only reads it.
      const std::string_view raw = t[i].raw;
      if (FindIgnoreAsciiCase(raw, "set_config") != std::string_view::npos ||
          (FindIgnoreAsciiCase(raw, lower_variable) != std::string_view::npos &&
           FindIgnoreAsciiCase(raw, "set") != std::string_view::npos)) {
        return true;
      }
      continue;
    }
    if (!IsName(t[i])) continue;
    if (EqualsIgnoreAsciiCase(t[i].text, "set_config") && i + 1 < t.size() &&
        IsPunct(t[i + 1], "(") && SetConfigCallMayTarget(t, i + 1, variable)) {
      return true;
    }
    std::string joined;
    for (size_t j = i, parts = 0; parts < max_parts && j < t.size() && IsName(t[j]); ++parts) {
      if (parts > 0) joined.push_back('.');
      joined += t[j].text;
      if (joined.size() > variable.size()) break;
      if (GucNameEquals(joined, variable)) return true;
      if (j + 1 >= t.size() || !IsPunct(t[j + 1], ".")) break;
      j += 2;
    }
  }
  return false;
}

}  // namespace pgtenant::routing
