#include "routing/sql_lexer.h"

#include <cstring>

#include "routing/sql_escapes.h"
#include "routing/sql_names.h"

namespace pgtenant::routing {
namespace {

// Postgres truncates identifiers to NAMEDATALEN-1 bytes; names compare after truncation.
constexpr size_t kMaxIdentifierBytes = 63;

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsHighBit(char c) { return (static_cast<unsigned char>(c) & 0x80) != 0; }
bool IsIdentStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || IsHighBit(c);
}
bool IsIdentCont(char c) { return IsIdentStart(c) || IsDigit(c) || c == '$'; }
bool IsOpChar(char c) { return c != '\0' && std::strchr("~!@#^&|`?+-*/%<>=", c) != nullptr; }

// Clips a name to kMaxIdentifierBytes without splitting a UTF-8 sequence.
void TruncateIdentifier(std::string* s) {
  if (s->size() <= kMaxIdentifierBytes) return;
  size_t len = kMaxIdentifierBytes;
  while (len > 0 && (static_cast<unsigned char>((*s)[len]) & 0xC0) == 0x80) --len;
  s->resize(len);
}

}  // namespace

SqlLexer::SqlLexer(std::string_view sql, LexOptions options) : sql_(sql), options_(options) {}

bool SqlLexer::Fail(size_t start, std::string why, Token* out) {
  out->kind = TokenKind::kError;
  out->text = std::move(why);
  out->begin = start;
  out->end = sql_.size();
  out->raw = sql_.substr(start);
  pos_ = sql_.size();
  done_ = true;
  return true;
}

bool SqlLexer::SkipSpaceAndComments(std::string* error) {
  const size_t n = sql_.size();
  while (pos_ < n) {
    const char c = sql_[pos_];
    if (IsSpace(c)) {
      ++pos_;
    } else if (c == '-' && pos_ + 1 < n && sql_[pos_ + 1] == '-') {
      while (pos_ < n && sql_[pos_] != '\n' && sql_[pos_] != '\r') ++pos_;
    } else if (c == '/' && pos_ + 1 < n && sql_[pos_ + 1] == '*') {
      // Block comments nest in Postgres, unlike in the SQL standard or C.
      int depth = 1;
      pos_ += 2;
      while (depth > 0) {
        if (pos_ + 1 >= n) {
          pos_ = n;
          *error = "unterminated /* comment";
          return false;
        }
        if (sql_[pos_] == '/' && sql_[pos_ + 1] == '*') {
          ++depth;
          pos_ += 2;
        } else if (sql_[pos_] == '*' && sql_[pos_ + 1] == '/') {
          --depth;
          pos_ += 2;
        } else {
          ++pos_;
        }
      }
    } else {
      return true;
    }
  }
  return true;
}

bool SqlLexer::Next(Token* out) {
  if (done_) return false;
  const size_t comment_start = pos_;
  std::string error;
  if (!SkipSpaceAndComments(&error)) return Fail(comment_start, std::move(error), out);
  const size_t n = sql_.size();
  if (pos_ >= n) {
    done_ = true;
    return false;
  }
  const size_t start = pos_;
  const char c = sql_[pos_];
  const char next = pos_ + 1 < n ? sql_[pos_ + 1] : '\0';
  out->raw = {};
  bool ok;
  if ((c == 'e' || c == 'E') && next == '\'') {
    pos_ += 2;
    ok = LexQuotedString(start, true, out);
  } else if ((c == 'n' || c == 'N') && next == '\'') {
    pos_ += 2;
    ok = LexQuotedString(start, !options_.standard_conforming_strings, out);
  } else if ((c == 'b' || c == 'B' || c == 'x' || c == 'X') && next == '\'') {
    pos_ += 2;
    ok = LexBitString(start, out);
  } else if ((c == 'u' || c == 'U') && next == '&' && pos_ + 2 < n &&
             (sql_[pos_ + 2] == '\'' || sql_[pos_ + 2] == '"')) {
    ok = LexUnicodeLiteral(start, sql_[pos_ + 2], out);
  } else if (c == '\'') {
    ++pos_;
    ok = LexQuotedString(start, !options_.standard_conforming_strings, out);
  } else if (c == '"') {
    ok = LexQuotedIdent(start, out);
  } else if (c == '$') {
    ok = LexDollarOrParam(start, out);
  } else if (IsDigit(c) || (c == '.' && IsDigit(next))) {
    ok = LexNumber(start, out);
  } else if (IsIdentStart(c)) {
    ok = LexIdentifier(start, out);
  } else if (IsOpChar(c)) {
    ok = LexOperator(start, out);
  } else {
    // Punctuation, "::", ":=" and any stray byte, which the server's parser will reject.
    const bool pair = c == ':' && (next == ':' || next == '=');
    pos_ += pair ? 2 : 1;
    out->kind = TokenKind::kPunct;
    out->text = std::string(sql_.substr(start, pos_ - start));
    ok = true;
  }
  if (out->kind != TokenKind::kError) {
    out->begin = start;
    out->end = pos_;
    if (out->raw.empty()) out->raw = sql_.substr(start, pos_ - start);
  }
  return ok;
}

bool SqlLexer::ScanBody(char quote, bool backslash_escapes, std::string* body) {
  const size_t n = sql_.size();
  while (pos_ < n) {
    const char c = sql_[pos_];
    if (backslash_escapes && c == '\\') {
      if (pos_ + 1 >= n) break;
      body->push_back(c);
      body->push_back(sql_[pos_ + 1]);
      pos_ += 2;
    } else if (c == quote) {
      if (pos_ + 1 < n && sql_[pos_ + 1] == quote) {
        body->push_back(quote);
        pos_ += 2;
      } else {
        ++pos_;
        return true;
      }
    } else {
      body->push_back(c);
      ++pos_;
    }
  }
  pos_ = n;
  return false;
}

bool SqlLexer::ScanStringContinuation() {
  // 'foo'<newline>'bar' is one literal "foobar": the gap must hold a newline and may hold
  // spaces and -- comments, but not /* */ comments (scan.l xqcat / whitespace_with_newline).
  const size_t n = sql_.size();
  size_t p = pos_;
  bool newline = false;
  while (p < n) {
    const char c = sql_[p];
    if (c == '\n' || c == '\r') {
      newline = true;
      ++p;
    } else if (IsSpace(c)) {
      ++p;
    } else if (c == '-' && p + 1 < n && sql_[p + 1] == '-') {
      while (p < n && sql_[p] != '\n' && sql_[p] != '\r') ++p;
    } else {
      break;
    }
  }
  if (!newline || p >= n || sql_[p] != '\'') return false;
  pos_ = p + 1;
  return true;
}

bool SqlLexer::LexQuotedString(size_t start, bool backslash_escapes, Token* out) {
  std::string body;
  do {
    if (!ScanBody('\'', backslash_escapes, &body)) {
      return Fail(start, "unterminated quoted string", out);
    }
  } while (ScanStringContinuation());
  out->kind = TokenKind::kString;
  if (!backslash_escapes) {
    out->text = std::move(body);
  } else if (!DecodeBackslashEscapes(body, &out->text)) {
    return Fail(start, "invalid escape in string literal", out);
  }
  return true;
}

bool SqlLexer::LexBitString(size_t start, Token* out) {
  std::string body;
  do {
    if (!ScanBody('\'', false, &body)) return Fail(start, "unterminated bit string", out);
  } while (ScanStringContinuation());
  out->kind = TokenKind::kBitString;
  out->text = std::move(body);
  return true;
}

int SqlLexer::ParseUescape() {
  const size_t saved = pos_;
  std::string ignored;
  if (!SkipSpaceAndComments(&ignored) || pos_ + 7 > sql_.size() ||
      !EqualsIgnoreAsciiCase(sql_.substr(pos_, 7), "uescape") ||
      (pos_ + 7 < sql_.size() && IsIdentCont(sql_[pos_ + 7]))) {
    pos_ = saved;
    return '\\';
  }
  pos_ += 7;
  if (!SkipSpaceAndComments(&ignored) || pos_ + 3 > sql_.size() || sql_[pos_] != '\'' ||
      sql_[pos_ + 2] != '\'') {
    return -1;
  }
  const char e = sql_[pos_ + 1];
  if (IsHexDigit(e) || e == '+' || e == '\'' || e == '"' || IsSpace(e)) return -1;
  pos_ += 3;
  return static_cast<unsigned char>(e);
}

bool SqlLexer::LexUnicodeLiteral(size_t start, char quote, Token* out) {
  if (quote == '\'' && !options_.standard_conforming_strings) {
    return Fail(start, "unsafe use of string constant with Unicode escapes", out);
  }
  pos_ = start + 3;
  std::string body;
  do {
    if (!ScanBody(quote, false, &body)) return Fail(start, "unterminated Unicode literal", out);
  } while (quote == '\'' && ScanStringContinuation());
  const size_t literal_end = pos_;
  const int escape = ParseUescape();
  if (escape < 0) return Fail(start, "invalid UESCAPE clause", out);
  out->kind = quote == '\'' ? TokenKind::kString : TokenKind::kQuotedIdent;
  if (!DecodeUnicodeEscapes(body, static_cast<char>(escape), &out->text)) {
    return Fail(start, "invalid Unicode escape", out);
  }
  if (out->kind == TokenKind::kQuotedIdent) {
    if (out->text.empty()) return Fail(start, "zero-length delimited identifier", out);
    TruncateIdentifier(&out->text);
  }
  out->raw = sql_.substr(start, literal_end - start);
  return true;
}

bool SqlLexer::LexQuotedIdent(size_t start, Token* out) {
  pos_ = start + 1;
  std::string body;
  if (!ScanBody('"', false, &body)) return Fail(start, "unterminated quoted identifier", out);
  if (body.empty()) return Fail(start, "zero-length delimited identifier", out);
  TruncateIdentifier(&body);
  out->kind = TokenKind::kQuotedIdent;
  out->text = std::move(body);
  return true;
}

bool SqlLexer::LexDollarOrParam(size_t start, Token* out) {
  const size_t n = sql_.size();
  size_t p = start + 1;
  if (p < n && IsDigit(sql_[p])) {
    while (p < n && IsDigit(sql_[p])) ++p;
    if (p < n && IsIdentCont(sql_[p])) return Fail(start, "trailing junk after parameter", out);
    out->kind = TokenKind::kParam;
    out->text = std::string(sql_.substr(start + 1, p - start - 1));
    pos_ = p;
    return true;
  }
  // A dollar-quote tag is like an identifier but may not contain '$'.
  if (p < n && IsIdentStart(sql_[p])) {
    while (p < n && (IsIdentStart(sql_[p]) || IsDigit(sql_[p]))) ++p;
  }
  if (p >= n || sql_[p] != '$') {
    out->kind = TokenKind::kPunct;
    // assign(1, '$'), not = "$": GCC 12 at -O3 reports a false -Wrestrict on assigning a
    // one-character literal to a std::string.
    out->text.assign(1, '$');
    pos_ = start + 1;
    return true;
  }
  const std::string_view delimiter = sql_.substr(start, p + 1 - start);
  const size_t close = sql_.find(delimiter, p + 1);
  if (close == std::string_view::npos) return Fail(start, "unterminated dollar-quoted string", out);
  out->kind = TokenKind::kString;
  out->text = std::string(sql_.substr(p + 1, close - p - 1));
  pos_ = close + delimiter.size();
  return true;
}

bool SqlLexer::LexNumber(size_t start, Token* out) {
  const size_t n = sql_.size();
  size_t p = start;
  while (p < n && IsDigit(sql_[p])) ++p;
  // "1..5" is 1 followed by "..", as in scan.l's numericfail rule.
  if (p < n && sql_[p] == '.' && !(p + 1 < n && sql_[p + 1] == '.')) {
    ++p;
    while (p < n && IsDigit(sql_[p])) ++p;
  }
  if (p < n && (sql_[p] == 'e' || sql_[p] == 'E')) {
    size_t q = p + 1;
    if (q < n && (sql_[q] == '+' || sql_[q] == '-')) ++q;
    if (q >= n || !IsDigit(sql_[q])) return Fail(start, "trailing junk after numeric literal", out);
    p = q;
    while (p < n && IsDigit(sql_[p])) ++p;
  }
  if (p < n && IsIdentCont(sql_[p])) return Fail(start, "trailing junk after numeric literal", out);
  out->kind = TokenKind::kNumber;
  out->text = std::string(sql_.substr(start, p - start));
  pos_ = p;
  return true;
}

bool SqlLexer::LexIdentifier(size_t start, Token* out) {
  size_t p = start;
  while (p < sql_.size() && IsIdentCont(sql_[p])) ++p;
  out->kind = TokenKind::kIdent;
  out->text = AsciiLowerCopy(sql_.substr(start, p - start));
  TruncateIdentifier(&out->text);
  pos_ = p;
  return true;
}

bool SqlLexer::LexOperator(size_t start, Token* out) {
  const size_t n = sql_.size();
  size_t p = start;
  while (p < n && IsOpChar(sql_[p])) {
    // A comment start ends the operator ("=--x" is "=" then a comment).
    const bool comment =
        p > start && p + 1 < n &&
        ((sql_[p] == '-' && sql_[p + 1] == '-') || (sql_[p] == '/' && sql_[p + 1] == '*'));
    if (comment) break;
    ++p;
  }
  size_t len = p - start;
  // scan.l: a trailing + or - is split off unless the operator has a char that only
  // user-defined operators use, so "=-1" is "=" then "-1".
  const std::string_view op = sql_.substr(start, len);
  if (len > 1 && op.find_first_of("~!@#^&|`?%") == std::string_view::npos) {
    while (len > 1 && (sql_[start + len - 1] == '+' || sql_[start + len - 1] == '-')) --len;
  }
  out->kind = TokenKind::kOperator;
  out->text = std::string(sql_.substr(start, len));
  pos_ = start + len;
  return true;
}

}  // namespace pgtenant::routing
