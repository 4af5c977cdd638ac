#include "routing/setting_statement.h"

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "routing/sql_lexer.h"

namespace pgtenant::routing {
namespace {

// True when `sql` may start with `word` (ASCII-case-insensitive; a cheap pre-check).
bool StartsWithWordNoCase(std::string_view sql, std::string_view word) {
  size_t i = 0;
  while (i < sql.size() && (sql[i] == ' ' || sql[i] == '\t' || sql[i] == '\n' || sql[i] == '\r')) ++i;
  // A leading comment: let the lexer decide.
  if (sql.size() - i >= 2 && (sql.substr(i, 2) == "/*" || sql.substr(i, 2) == "--")) return true;
  if (sql.size() - i < word.size()) return false;
  for (size_t k = 0; k < word.size(); ++k) {
    if ((sql[i + k] | 0x20) != word[k]) return false;
  }
  return true;
}

bool IsPlainLowerIdentifier(const std::string& s) {
  if (s.empty() || !((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_')) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

// As the server's quote_identifier does for a list element of search_path (keywords aside: a
// schema named like a reserved word comes out unquoted, which names the same schema).
std::string QuoteListElement(const std::string& s) {
  if (IsPlainLowerIdentifier(s)) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

// A number as the server prints it after parsing: integers that fit in 32 bits in canonical
// form (the grammar makes them Integer nodes), anything else as written (Float nodes keep
// their text). A leading '-' is kept; '+' is dropped.
bool NumberText(const std::string& written, bool negative, std::string* out) {
  bool integer = !written.empty();
  for (char c : written) integer = integer && c >= '0' && c <= '9';
  if (integer && written.size() <= 10) {
    long long v = std::strtoll(written.c_str(), nullptr, 10);
    if (negative) v = -v;
    if (v >= -2147483648LL && v <= 2147483647LL) {
      *out = std::to_string(v);
      return true;
    }
  }
  for (char c : written) {
    if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-')) return false;
  }
  *out = (negative ? "-" : "") + written;
  return true;
}

}  // namespace

bool IsUnreportedTrackedSetting(std::string_view lower_name) {
  return std::find(kUnreportedTrackedSettings.begin(), kUnreportedTrackedSettings.end(), lower_name) !=
         kUnreportedTrackedSettings.end();
}

std::optional<SettingChange> ParseSettingChange(std::string_view sql) {
  // Every Query and Parse passes here: only a statement that starts with SET or RESET is lexed.
  if (!StartsWithWordNoCase(sql, "reset") && !StartsWithWordNoCase(sql, "set")) return std::nullopt;
  while (!sql.empty() && sql.back() == '\0') sql.remove_suffix(1);  // a Query's text as sent ends with one
  SqlLexer lexer(sql);
  std::vector<Token> tokens;
  Token t;
  while (lexer.Next(&t)) {
    if (t.kind == TokenKind::kError) return std::nullopt;
    tokens.push_back(t);
    if (tokens.size() > 64) return std::nullopt;  // no tracked value is that long
  }
  while (!tokens.empty() && tokens.back().kind == TokenKind::kPunct && tokens.back().text == ";") tokens.pop_back();
  if (tokens.empty() || tokens[0].kind != TokenKind::kIdent || (tokens[0].text != "set" && tokens[0].text != "reset")) {
    return std::nullopt;
  }
  const bool is_reset = tokens[0].text == "reset";
  size_t i = 1;  // past SET / RESET
  if (!is_reset && i < tokens.size() && tokens[i].kind == TokenKind::kIdent && tokens[i].text == "session") ++i;
  if (i >= tokens.size() || (tokens[i].kind != TokenKind::kIdent && tokens[i].kind != TokenKind::kQuotedIdent)) {
    return std::nullopt;
  }
  SettingChange change;
  for (char c : tokens[i].text) change.name += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  if (!IsUnreportedTrackedSetting(change.name)) return std::nullopt;
  ++i;
  if (is_reset) return i == tokens.size() ? std::optional<SettingChange>(change) : std::nullopt;
  if (i >= tokens.size()) return std::nullopt;
  if (!((tokens[i].kind == TokenKind::kIdent && tokens[i].text == "to") ||
        (tokens[i].kind == TokenKind::kOperator && tokens[i].text == "="))) {
    return std::nullopt;
  }
  ++i;
  if (i + 1 == tokens.size() && tokens[i].kind == TokenKind::kIdent && tokens[i].text == "default") {
    return change;  // value stays nullopt
  }
  const bool quote_elements = change.name == "search_path";
  std::string value;
  bool expect_element = true;
  for (; i < tokens.size(); ++i) {
    const Token& tok = tokens[i];
    if (!expect_element) {
      if (tok.kind != TokenKind::kPunct || tok.text != ",") return std::nullopt;
      value += ", ";
      expect_element = true;
      continue;
    }
    std::string element;
    if (tok.kind == TokenKind::kNumber ||
        (tok.kind == TokenKind::kOperator && (tok.text == "-" || tok.text == "+"))) {
      bool negative = tok.kind == TokenKind::kOperator && tok.text == "-";
      if (tok.kind == TokenKind::kOperator) {
        if (++i >= tokens.size() || tokens[i].kind != TokenKind::kNumber) return std::nullopt;
      }
      if (!NumberText(tokens[i].text, negative, &element)) return std::nullopt;
    } else if (tok.kind == TokenKind::kIdent || tok.kind == TokenKind::kQuotedIdent) {
      element = quote_elements ? QuoteListElement(tok.text) : tok.text;
    } else if (tok.kind == TokenKind::kString) {
      // Plain '...' only: a backslash reads differently with standard_conforming_strings off,
      // and E'', U&'' and $$ literals are rare enough here to leave to the pin.
      if (tok.raw.empty() || tok.raw.front() != '\'' || tok.raw.find('\\') != std::string_view::npos) {
        return std::nullopt;
      }
      element = quote_elements ? QuoteListElement(tok.text) : tok.text;
    } else {
      return std::nullopt;
    }
    value += element;
    expect_element = false;
  }
  if (expect_element) return std::nullopt;  // nothing after TO, or a trailing comma
  change.value = std::move(value);
  return change;
}

}  // namespace pgtenant::routing
