#include "routing/session_state.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <string>

#include "routing/sql_names.h"
#include "routing/statement_classifier.h"
#include "routing/transaction_rules.h"

namespace pgtenant::routing {
namespace {

bool ContainsNoCase(std::string_view hay, std::string_view needle) {
  return ContainsAnyIgnoreAsciiCase(hay, {needle});
}

// Session-level advisory locks; the _xact_ variants end with the transaction and are fine.
bool TakesSessionAdvisoryLock(std::string_view sql) {
  if (!ContainsNoCase(sql, "advisory_lock")) return false;
  std::string lower = AsciiLowerCopy(sql);
  for (std::string_view f : {"pg_advisory_lock", "pg_try_advisory_lock"}) {
    for (size_t from = lower.find(f); from != std::string::npos; from = lower.find(f, from + 1)) {
      std::string_view rest = std::string_view(lower).substr(from + f.size());
      // pg_advisory_lock( or pg_advisory_lock_shared( — not _xact_, not unlock.
      if (rest.substr(0, 1) == "(" || rest.substr(0, 7) == "_shared") return true;
    }
  }
  return false;
}

bool StatementCreatesState(std::string_view sql, bool (*tracked_set)(std::string_view name)) {
  std::vector<std::string> w = FirstWords(sql, 5);
  if (w.empty()) return false;
  const std::string& first = w[0];
  auto has_word = [&](std::string_view word) { return std::find(w.begin(), w.end(), word) != w.end(); };
  if (first == "prepare") return !has_word("transaction");
  if (first == "listen" || first == "load" || first == "do") return true;  // a DO block may do anything
  if (first == "declare") return ContainsNoCase(sql, "hold");
  if (first == "create") return has_word("temp") || has_word("temporary");
  if (first == "select" && (ContainsNoCase(sql, "temp") || ContainsNoCase(sql, "temporary"))) {
    return ContainsNoCase(sql, "into");  // SELECT ... INTO TEMP
  }
  if (first == "set") {
    // SET LOCAL ends with the transaction; SET [SESSION] name ... stays.
    if (w.size() < 2) return false;
    if (w[1] == "local" || w[1] == "transaction" || w[1] == "constraints") return false;
    const size_t at = w[1] == "session" ? 2 : 1;
    std::string name = w.size() > at ? w[at] : "";
    // SET TIME ZONE is the grammar's spelling of SET timezone (reported, so followed).
    if (name == "time" && w.size() > at + 1 && w[at + 1] == "zone") name = "timezone";
    if (name == "role" || name == "authorization") return true;
    return !(tracked_set && tracked_set(name));
  }
  return TakesSessionAdvisoryLock(sql);
}

bool IsWordChar(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }

// True when a statement of `sql` may begin with one of `words` as FirstWords reads it. Without
// lexing, statements are taken to begin at the start of the text, after every ';' and after
// every "*/" (a superset of the real beginnings: a ';' inside a literal counts too), and the
// word is read after whitespace and '(' as FirstWords does. Line comments are not followed:
// a text with "--" may begin with anything.
bool AnyStatementMayBeginWith(std::string_view sql, std::initializer_list<std::string_view> words) {
  if (sql.find("--") != std::string_view::npos) return true;
  size_t at = 0;
  while (at <= sql.size()) {
    size_t begin = at;
    while (begin < sql.size() && (std::isspace(static_cast<unsigned char>(sql[begin])) || sql[begin] == '(')) ++begin;
    size_t end = begin;
    while (end < sql.size() && IsWordChar(sql[end])) ++end;
    const std::string_view word = sql.substr(begin, end - begin);
    for (std::string_view w : words) {
      if (EqualsIgnoreAsciiCase(word, w)) return true;
    }
    // The next possible beginning.
    size_t next = end;
    while (next < sql.size() && sql[next] != ';' && !(sql[next] == '*' && next + 1 < sql.size() && sql[next + 1] == '/')) {
      ++next;
    }
    if (next >= sql.size()) return false;
    at = next + (sql[next] == ';' ? 1 : 2);
  }
  return false;
}

}  // namespace

bool MayCreateSessionState(std::string_view sql) {
  // Every shape StatementCreatesState recognises begins a statement with one of these words,
  // or names a temporary object, a WITH HOLD cursor or an advisory lock. UPDATE ... SET, in
  // nearly every workload, is thereby not sent through the lexer.
  return ContainsAnyIgnoreAsciiCase(sql, {"temp", "hold", "advisory_lock"}) ||
         AnyStatementMayBeginWith(sql, {"prepare", "listen", "load", "do", "set"});
}

bool CreatesSessionState(std::string_view sql, std::string_view tenant_variable,
                         bool (*tracked_set)(std::string_view name)) {
  return MayCreateSessionState(sql) && StatementsCreateSessionState(sql, tenant_variable, tracked_set);
}

bool StatementsCreateSessionState(std::string_view sql, std::string_view tenant_variable,
                                  bool (*tracked_set)(std::string_view name)) {
  // Every statement of a multi-statement query counts (BEGIN; CREATE TEMP TABLE ...).
  for (const ClassifiedStatement& st : ClassifyQuery(sql, tenant_variable)) {
    if (st.kind != StatementKind::kOther && st.kind != StatementKind::kBegin &&
        st.kind != StatementKind::kCommitOrRollback) {
      continue;  // changes of the tenant variable are pgtenant's own business
    }
    if (StatementCreatesState(sql.substr(st.begin, st.end - st.begin), tracked_set)) return true;
  }
  return false;
}

}  // namespace pgtenant::routing
