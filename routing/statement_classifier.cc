#include "routing/statement_classifier.h"

#include <array>

#include "routing/sql_names.h"
#include "routing/sql_statement.h"
#include "routing/statement_shapes.h"

namespace pgtenant::routing {
namespace {

struct Statement {
  std::vector<Token> tokens;
  bool lex_error = false;
  size_t begin = 0;
  size_t end = 0;
};

// Tracks what makes a semicolon *not* end a statement: parentheses (CREATE RULE ... (a; b))
// and SQL-standard function bodies, CREATE FUNCTION ... BEGIN ATOMIC a; b; END, which psql's
// lexer also counts.
class StatementSplitter {
 public:
  // Returns true when `t` ends the current statement.
  bool Ends(const Token& t) {
    if (t.kind == TokenKind::kPunct) {
      if (t.text == "(" || t.text == "[") ++paren_depth_;
      if ((t.text == ")" || t.text == "]") && paren_depth_ > 0) --paren_depth_;
      if (t.text == ";" && paren_depth_ == 0 && block_depth_ == 0) {
        Reset();
        return true;
      }
      return false;
    }
    if (t.kind != TokenKind::kIdent) return false;
    if (ident_count_ < first_idents_.size()) first_idents_[ident_count_] = t.text;
    ++ident_count_;
    if (ident_count_ > 1 && IsCreateRoutine()) {
      if (t.text == "begin" || t.text == "case") ++block_depth_;
      if (t.text == "end" && block_depth_ > 0) --block_depth_;
    }
    return false;
  }

 private:
  bool IsCreateRoutine() const {
    const auto& w = first_idents_;
    auto routine = [](const std::string& s) { return s == "function" || s == "procedure"; };
    return w[0] == "create" &&
           (routine(w[1]) || (w[1] == "or" && w[2] == "replace" && routine(w[3])));
  }
  void Reset() { *this = StatementSplitter(); }

  int paren_depth_ = 0;
  int block_depth_ = 0;
  size_t ident_count_ = 0;
  std::array<std::string, 4> first_idents_;
};

std::vector<Statement> Split(std::string_view sql, const ClassifyOptions& options) {
  std::vector<Statement> out;
  SqlLexer lexer(sql, LexOptions{options.standard_conforming_strings});
  StatementSplitter splitter;
  Statement current;
  auto flush = [&] {
    if (!current.tokens.empty() || current.lex_error) out.push_back(std::move(current));
    current = Statement();
  };
  Token t;
  while (lexer.Next(&t)) {
    if (t.kind == TokenKind::kError) {
      if (current.tokens.empty()) current.begin = t.begin;
      current.lex_error = true;
      current.end = sql.size();
      break;
    }
    if (splitter.Ends(t)) {
      flush();
      continue;
    }
    if (current.tokens.empty()) current.begin = t.begin;
    current.end = t.end;
    current.tokens.push_back(std::move(t));
  }
  flush();
  return out;
}

bool IsTenantShape(StatementKind k) {
  switch (k) {
    case StatementKind::kSetTenant:
    case StatementKind::kSetLocalTenant:
    case StatementKind::kResetTenant:
    case StatementKind::kSetConfigTenant:
    case StatementKind::kSetConfigLocalTenant:
    case StatementKind::kMentionsTenant:
      return true;
    default:
      return false;
  }
}

ClassifiedStatement Classify(const Statement& s, std::string_view variable) {
  ClassifiedStatement r;
  if (!s.tokens.empty()) r = ClassifyShape(s.tokens, variable);
  const bool ignorable = r.kind == StatementKind::kOther || r.kind == StatementKind::kBegin ||
                         r.kind == StatementKind::kCommitOrRollback;
  if (s.lex_error || ignorable) {
    // A lexically broken statement is rejected whole by the server, so only say whether it
    // tried to touch the tenant; an ordinary one may still name the variable elsewhere.
    const bool mentions = IsTenantShape(r.kind) || MentionsVariable(s.tokens, variable);
    if (s.lex_error || mentions) {
      r = ClassifiedStatement();
      r.kind = mentions ? StatementKind::kMentionsTenant : StatementKind::kOther;
    }
  }
  r.begin = s.begin;
  r.end = s.end;
  return r;
}

}  // namespace

const char* StatementKindName(StatementKind kind) {
  switch (kind) {
    case StatementKind::kOther:
      return "Other";
    case StatementKind::kSetTenant:
      return "SetTenant";
    case StatementKind::kSetLocalTenant:
      return "SetLocalTenant";
    case StatementKind::kResetTenant:
      return "ResetTenant";
    case StatementKind::kResetAll:
      return "ResetAll";
    case StatementKind::kDiscardAll:
      return "DiscardAll";
    case StatementKind::kSetConfigTenant:
      return "SetConfigTenant";
    case StatementKind::kSetConfigLocalTenant:
      return "SetConfigLocalTenant";
    case StatementKind::kMentionsTenant:
      return "MentionsTenant";
    case StatementKind::kBegin:
      return "Begin";
    case StatementKind::kCommitOrRollback:
      return "CommitOrRollback";
  }
  return "?";
}

namespace {

// A statement the shapes could only call kMentionsTenant, read by the real parser
// (routing/sql_statement.h): a SELECT whose one target is set_config of the variable, with an
// alias, a cast of its value ($1::text, CAST($1 AS text)) or a value and is_local spelled any
// way boolin reads. Those are exactly a kSetConfig*Tenant; anything else stays as it was.
void ReadSetConfigExactly(std::string_view sql, std::string_view variable, ClassifiedStatement* st) {
  std::string_view text = sql.substr(st->begin, st->end - st->begin);
  std::vector<StatementInfo> infos = AnalyzeSql(text, variable);
  if (infos.size() != 1) return;
  const StatementInfo& in = infos.front();
  if (in.kind != SqlStatementKind::kSetConfigCall || in.mentions_tenant_unknowably || in.creates_session_state ||
      in.set_config_calls.size() != 1 || in.target_count != 1) {
    return;
  }
  const SetConfigCall& call = in.set_config_calls.front();
  if (call.name.kind != SqlArgument::Kind::kConstant || !GucNameEquals(call.name.text, variable) ||
      !call.is_local || call.value.kind == SqlArgument::Kind::kNull) {
    return;
  }
  ClassifiedStatement exact;
  exact.kind = *call.is_local ? StatementKind::kSetConfigLocalTenant : StatementKind::kSetConfigTenant;
  if (call.value.kind == SqlArgument::Kind::kParam) {
    exact.value_is_param = true;
    exact.param_index = call.value.param;
  } else {
    exact.value = call.value.text;
  }
  exact.column = call.column;
  exact.begin = st->begin;
  exact.end = st->end;
  *st = std::move(exact);
}

}  // namespace

std::vector<ClassifiedStatement> ClassifyQuery(std::string_view sql, std::string_view variable,
                                               const ClassifyOptions& options) {
  // The server reads a Query's text up to its first NUL byte: what follows is not SQL to it,
  // and must not be a statement to pgtenant either (found by the fuzzer: NULs behind a ';').
  sql = sql.substr(0, sql.find('\0'));
  std::vector<ClassifiedStatement> out;
  for (const Statement& s : Split(sql, options)) out.push_back(Classify(s, variable));
  // The parser reads strings as with standard_conforming_strings on.
  if (options.standard_conforming_strings) {
    for (ClassifiedStatement& st : out) {
      if (st.kind == StatementKind::kMentionsTenant) ReadSetConfigExactly(sql, variable, &st);
    }
  }
  return out;
}

bool OnlySessionSettings(std::string_view sql, std::string_view variable) {
  std::vector<ClassifiedStatement> stmts = ClassifyQuery(sql, variable);
  if (stmts.empty()) return false;
  for (const ClassifiedStatement& st : stmts) {
    if (st.kind == StatementKind::kResetAll) continue;
    if (st.kind != StatementKind::kOther) return false;  // names the tenant, or ends a block
    SqlLexer lexer(sql.substr(st.begin, st.end - st.begin));
    Token first, second, third;
    if (!lexer.Next(&first) || first.kind != TokenKind::kIdent) return false;
    if (first.text == "show") continue;
    if (first.text != "set" && first.text != "reset") return false;
    if (!lexer.Next(&second)) return false;
    lexer.Next(&third);
    // SET [SESSION | LOCAL] name ...; RESET name. Role and session authorization change what
    // the session may read: not set-up.
    const Token& name = second.kind == TokenKind::kIdent && (second.text == "session" || second.text == "local")
                            ? third
                            : second;
    if (name.kind == TokenKind::kIdent && (name.text == "role" || name.text == "authorization")) return false;
  }
  return true;
}

bool MightTouchTenant(std::string_view sql, std::string_view variable) {
  const size_t dot = variable.rfind('.');
  const std::string_view last = dot == std::string_view::npos ? variable : variable.substr(dot + 1);
  if (last.empty()) return true;  // nothing to look for, so nothing can be ruled out
  // Every needle is one that a tenant-related classification cannot avoid containing: the
  // variable's last part (any spelling of the name ends with it), the set_config function,
  // RESET / DISCARD keywords, and U& (an escaped spelling of any of these). No allocation:
  // this runs for every query.
  const std::array<std::string_view, 5> needles = {last, "set_config", "reset", "discard", "u&"};
  return ContainsAnyIgnoreAsciiCase(sql, needles);
}

}  // namespace pgtenant::routing
