// A tokenizer for PostgreSQL's SQL dialect, faithful to src/backend/parser/scan.l in the
// places that decide what a statement *means* to the proxy: comments (-- and nested /* */),
// quoted identifiers, '' / E'' / U&'' / $tag$ strings (with the newline-continuation rule and
// UESCAPE), $N parameters and operator splitting. It does not parse; StatementClassifier does.
//
// Comments and whitespace never become tokens. On malformed input (unterminated literal or
// comment, bad escape, trailing junk after a number) the lexer yields one kError token and
// then stops; it never reads outside the input and never throws.
//
// Thread-safety: a SqlLexer is a cursor over caller-owned text; one per thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace pgtenant::routing {

enum class TokenKind {
  kIdent,        // unquoted identifier or keyword; text is ASCII-lower-cased
  kQuotedIdent,  // "..." or U&"..."; text is the decoded name, case kept
  kString,       // '...', E'...', N'...', U&'...', $tag$...$tag$; text is the decoded value
  kBitString,    // B'...' or X'...'; text is the body as written
  kNumber,       // integer or decimal literal; text as written
  kParam,        // $N; text is the digits
  kOperator,     // operator per scan.l rules (trailing +/- split off); text as written
  kPunct,        // ( ) [ ] , ; . : :: := and any stray byte; text as written
  kError,        // malformed input; text says why
};

struct Token {
  TokenKind kind = TokenKind::kError;
  std::string text;
  size_t begin = 0;  // byte offsets of the token in the input
  size_t end = 0;
  // For kIdent/kString: the raw bytes of the token (for string literals, the whole literal).
  std::string_view raw;
};

struct LexOptions {
  // With standard_conforming_strings off, backslashes escape inside plain '...' too.
  bool standard_conforming_strings = true;
};

class SqlLexer {
 public:
  // REQUIRES: `sql` outlives the lexer and every Token::raw it hands out.
  explicit SqlLexer(std::string_view sql, LexOptions options = {});

  // Produces the next token. Returns false at the end of input and after a kError token.
  bool Next(Token* out);

  // Offset of the first byte not yet consumed.
  size_t position() const { return pos_; }

 private:
  bool SkipSpaceAndComments(std::string* error);
  // The Lex* helpers start with pos_ at `start` or just past a literal's opening quote.
  bool LexQuotedString(size_t start, bool backslash_escapes, Token* out);
  bool LexBitString(size_t start, Token* out);
  bool LexUnicodeLiteral(size_t start, char quote, Token* out);
  bool LexDollarOrParam(size_t start, Token* out);
  bool LexNumber(size_t start, Token* out);
  bool LexIdentifier(size_t start, Token* out);
  bool LexQuotedIdent(size_t start, Token* out);
  bool LexOperator(size_t start, Token* out);
  // Scans a quote-delimited body from pos_ (just after the opening quote) to the closing
  // quote, folding doubled quotes; leaves pos_ after the closing quote.
  bool ScanBody(char quote, bool backslash_escapes, std::string* body);
  bool ScanStringContinuation();
  // After a U& literal: the UESCAPE character if one follows, '\\' if none, -1 if malformed.
  int ParseUescape();
  bool Fail(size_t start, std::string why, Token* out);

  std::string_view sql_;
  LexOptions options_;
  size_t pos_ = 0;
  bool done_ = false;
};

}  // namespace pgtenant::routing
