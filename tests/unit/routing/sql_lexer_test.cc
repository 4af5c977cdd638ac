#include "routing/sql_lexer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "routing/sql_escapes.h"

namespace pgtenant::routing {
namespace {

struct Tok {
  TokenKind kind;
  std::string text;
  bool operator==(const Tok& o) const { return kind == o.kind && text == o.text; }
};

std::ostream& operator<<(std::ostream& os, const Tok& t) {
  return os << "{" << static_cast<int>(t.kind) << ", \"" << t.text << "\"}";
}

std::vector<Tok> Lex(std::string_view sql, LexOptions options = {}) {
  std::vector<Tok> out;
  SqlLexer lexer(sql, options);
  Token t;
  while (lexer.Next(&t)) {
    EXPECT_LE(t.begin, t.end);
    EXPECT_LE(t.end, sql.size());
    out.push_back({t.kind, t.text});
  }
  return out;
}

using K = TokenKind;

struct LexCase {
  const char* name;
  std::string sql;
  std::vector<Tok> want;
  LexOptions options = {};
};

class LexerTable : public ::testing::TestWithParam<LexCase> {};

TEST_P(LexerTable, Tokens) {
  const LexCase& c = GetParam();
  EXPECT_EQ(Lex(c.sql, c.options), c.want) << c.sql;
}

const LexCase kLexCases[] = {
    {"empty", "", {}},
    {"only_space", " \t\r\n\f\v", {}},
    {"keywords_fold", "SeLeCt Foo", {{K::kIdent, "select"}, {K::kIdent, "foo"}}},
    {"ident_with_dollar", "a$b$ c", {{K::kIdent, "a$b$"}, {K::kIdent, "c"}}},
    {"line_comment", "a -- b ; c\nd", {{K::kIdent, "a"}, {K::kIdent, "d"}}},
    {"line_comment_cr", "a --x\rb", {{K::kIdent, "a"}, {K::kIdent, "b"}}},
    {"nested_block", "a /* x /* y */ z */ b", {{K::kIdent, "a"}, {K::kIdent, "b"}}},
    {"comment_glues_nothing", "a/**/b", {{K::kIdent, "a"}, {K::kIdent, "b"}}},
    {"string", "'it''s'", {{K::kString, "it's"}}},
    {"string_backslash_literal", "'a\\b'", {{K::kString, "a\\b"}}},
    {"string_backslash_scs_off", "'a\\'b'", {{K::kString, "a'b"}}, {false}},
    {"string_continuation", "'ab'\n  'cd'", {{K::kString, "abcd"}}},
    {"string_continuation_comment", "'ab' -- x\n'cd'", {{K::kString, "abcd"}}},
    {"no_continuation_same_line", "'ab' 'cd'", {{K::kString, "ab"}, {K::kString, "cd"}}},
    {"no_continuation_block_comment", "'ab' /*\n*/ 'cd'", {{K::kString, "ab"}, {K::kString, "cd"}}},
    {"estring", "E'a\\nb\\x41\\101\\u00e9\\''", {{K::kString, "a\nbAA\xc3\xa9'"}}},
    {"estring_lower", "e'\\\\'", {{K::kString, "\\"}}},
    {"estring_surrogates", "E'\\uD83D\\uDE00'", {{K::kString, "\xf0\x9f\x98\x80"}}},
    {"estring_x_without_hex", "E'\\xg'", {{K::kString, "xg"}}},
    {"nstring", "N'abc'", {{K::kString, "abc"}}},
    {"bitstring", "B'101' X'1F'", {{K::kBitString, "101"}, {K::kBitString, "1F"}}},
    {"ustring", "U&'\\0061b\\+000063'", {{K::kString, "abc"}}},
    {"ustring_uescape", "U&'!0061' UESCAPE '!'", {{K::kString, "a"}}},
    {"uident", "U&\"a\\0062\"", {{K::kQuotedIdent, "ab"}}},
    {"u_not_unicode", "u & 1", {{K::kIdent, "u"}, {K::kOperator, "&"}, {K::kNumber, "1"}}},
    {"quoted_ident", "\"Ab\"\"c\"", {{K::kQuotedIdent, "Ab\"c"}}},
    {"quoted_ident_dot", "\"app.tenant_id\"", {{K::kQuotedIdent, "app.tenant_id"}}},
    {"dollar", "$$a'b;c$$", {{K::kString, "a'b;c"}}},
    {"dollar_tag", "$x$ $$ $y$ $x$", {{K::kString, " $$ $y$ "}}},
    {"dollar_tag_case", "$A$ $a$ $A$", {{K::kString, " $a$ "}}},
    {"param", "$1 $23", {{K::kParam, "1"}, {K::kParam, "23"}}},
    {"lone_dollar", "$ a", {{K::kPunct, "$"}, {K::kIdent, "a"}}},
    {"numbers",
     "1 1.5 .5 1e10 2.5E-3",
     {{K::kNumber, "1"},
      {K::kNumber, "1.5"},
      {K::kNumber, ".5"},
      {K::kNumber, "1e10"},
      {K::kNumber, "2.5E-3"}}},
    {"range_dots", "1..2", {{K::kNumber, "1"}, {K::kPunct, "."}, {K::kNumber, ".2"}}},
    {"typecast", "'a'::text", {{K::kString, "a"}, {K::kPunct, "::"}, {K::kIdent, "text"}}},
    {"colon_equals", "a := 1", {{K::kIdent, "a"}, {K::kPunct, ":="}, {K::kNumber, "1"}}},
    {"op_minus_split", "=-1", {{K::kOperator, "="}, {K::kOperator, "-"}, {K::kNumber, "1"}}},
    {"op_custom_keeps_minus", "@-1", {{K::kOperator, "@-"}, {K::kNumber, "1"}}},
    {"op_stops_at_comment", "=--x\n1", {{K::kOperator, "="}, {K::kNumber, "1"}}},
    {"op_stops_at_block", "</*x*/1", {{K::kOperator, "<"}, {K::kNumber, "1"}}},
    {"punct",
     "(a,b);[c]",
     {{K::kPunct, "("},
      {K::kIdent, "a"},
      {K::kPunct, ","},
      {K::kIdent, "b"},
      {K::kPunct, ")"},
      {K::kPunct, ";"},
      {K::kPunct, "["},
      {K::kIdent, "c"},
      {K::kPunct, "]"}}},
    {"stray_backslash", "\\x", {{K::kPunct, "\\"}, {K::kIdent, "x"}}},
    {"long_ident_truncated", std::string(70, 'a'), {{K::kIdent, std::string(63, 'a')}}},
    {"utf8_ident_truncated_on_boundary",
     std::string(62, 'a') + "\xc3\xa9",
     {{K::kIdent, std::string(62, 'a')}}},
    // Malformed input: one error token, then nothing.
    {"unterminated_string",
     "a 'abc",
     {{K::kIdent, "a"}, {K::kError, "unterminated quoted string"}}},
    {"unterminated_estring_backslash", "E'abc\\", {{K::kError, "unterminated quoted string"}}},
    {"unterminated_comment",
     "a /* /* */",
     {{K::kIdent, "a"}, {K::kError, "unterminated /* comment"}}},
    {"unterminated_ident", "\"abc", {{K::kError, "unterminated quoted identifier"}}},
    {"zero_length_ident", "\"\"", {{K::kError, "zero-length delimited identifier"}}},
    {"unterminated_dollar", "$t$ abc $u$", {{K::kError, "unterminated dollar-quoted string"}}},
    {"number_junk", "12abc", {{K::kError, "trailing junk after numeric literal"}}},
    {"exponent_junk", "1e", {{K::kError, "trailing junk after numeric literal"}}},
    {"param_junk", "$1a", {{K::kError, "trailing junk after parameter"}}},
    {"estring_nul", "E'\\0'", {{K::kError, "invalid escape in string literal"}}},
    {"estring_bad_unicode", "E'\\u12'", {{K::kError, "invalid escape in string literal"}}},
    {"estring_lone_surrogate", "E'\\uDE00'", {{K::kError, "invalid escape in string literal"}}},
    {"ustring_bad", "U&'\\12'", {{K::kError, "invalid Unicode escape"}}},
    {"ustring_bad_uescape", "U&'a' UESCAPE '+'", {{K::kError, "invalid UESCAPE clause"}}},
    {"ustring_scs_off",
     "U&'a'",
     {{K::kError, "unsafe use of string constant with Unicode escapes"}},
     {false}},
};

INSTANTIATE_TEST_SUITE_P(Cases, LexerTable, ::testing::ValuesIn(kLexCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(SqlLexer, OffsetsAndRawCoverTheLiteral) {
  const std::string sql = "SET x = E'a\\'b' ;";
  SqlLexer lexer(sql);
  Token t;
  std::vector<Token> tokens;
  while (lexer.Next(&t)) tokens.push_back(t);
  ASSERT_EQ(tokens.size(), 5u);
  EXPECT_EQ(tokens[3].raw, "E'a\\'b'");
  EXPECT_EQ(sql.substr(tokens[3].begin, tokens[3].end - tokens[3].begin), "E'a\\'b'");
  EXPECT_EQ(tokens[4].text, ";");
}

TEST(SqlLexer, StopsAfterError) {
  SqlLexer lexer("'abc");
  Token t;
  ASSERT_TRUE(lexer.Next(&t));
  EXPECT_EQ(t.kind, TokenKind::kError);
  EXPECT_FALSE(lexer.Next(&t));
  EXPECT_FALSE(lexer.Next(&t));
}

TEST(SqlLexer, EveryPrefixOfTrickyInputIsSafe) {
  const std::string sql =
      "SET /* a /* b */ */ U&\"app\" . \"tenant_id\" = E'x\\'y' 'z'\n'w' $t$ $$ $t$ "
      "-- c\n 1.5e3 $12 <=> @- :: := ; B'1' N'n' U&'!0061' UESCAPE '!'";
  for (size_t len = 0; len <= sql.size(); ++len) {
    SqlLexer lexer(std::string_view(sql).substr(0, len));
    Token t;
    size_t count = 0;
    size_t last_end = 0;
    while (lexer.Next(&t)) {
      ASSERT_LE(t.end, len);
      ASSERT_GE(t.begin, last_end);
      last_end = t.end;
      ASSERT_LT(++count, 200u);
    }
  }
}

TEST(Decoders, BackslashEscapes) {
  std::string out;
  EXPECT_TRUE(DecodeBackslashEscapes("a\\tb\\q", &out));
  EXPECT_EQ(out, "a\tbq");
  EXPECT_TRUE(DecodeBackslashEscapes("\\777", &out));  // low byte kept, as scan.l does
  EXPECT_EQ(out, "\xff");
  EXPECT_FALSE(DecodeBackslashEscapes("\\000", &out));
  EXPECT_FALSE(DecodeBackslashEscapes("\\x00", &out));
  EXPECT_FALSE(DecodeBackslashEscapes("\\U00110000", &out));
  EXPECT_FALSE(DecodeBackslashEscapes("\\uD83Dx", &out));  // high surrogate without low
  EXPECT_FALSE(DecodeBackslashEscapes("\\", &out));
}

TEST(Decoders, UnicodeEscapes) {
  std::string out;
  EXPECT_TRUE(DecodeUnicodeEscapes("\\\\a\\00e9", '\\', &out));
  EXPECT_EQ(out, "\\a\xc3\xa9");
  EXPECT_TRUE(DecodeUnicodeEscapes("!!!+01F600", '!', &out));
  EXPECT_EQ(out, "!\xf0\x9f\x98\x80");
  EXPECT_FALSE(DecodeUnicodeEscapes("\\0000", '\\', &out));
  EXPECT_FALSE(DecodeUnicodeEscapes("\\d800", '\\', &out));
  EXPECT_FALSE(DecodeUnicodeEscapes("\\+11000", '\\', &out));
}

}  // namespace
}  // namespace pgtenant::routing
