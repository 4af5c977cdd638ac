// FakePostgres (fake_postgres.h): a scripted PostgreSQL 15 backend on its own thread.
#include "fake_postgres.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <set>
#include <span>
#include <string_view>

#include "protocol/byte_reader.h"
#include "protocol/frame_decoder.h"
#include "protocol/md5_auth.h"
#include "protocol/message_writer.h"
#include "protocol/messages.h"
#include "protocol/scram.h"

namespace pgtenant::testing {
namespace {

using Row = std::vector<std::optional<std::string>>;
using Params = std::vector<std::optional<std::string>>;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool ContainsIgnoreCase(std::string_view text, std::string_view needle) {
  return Lower(text).find(Lower(needle)) != std::string::npos;
}

// An error PostgreSQL would raise; the interpreter throws it and the session reports it.
struct SqlError {
  std::string sqlstate;
  std::string message;
};

[[noreturn]] void Raise(const char* sqlstate, std::string message) { throw SqlError{sqlstate, std::move(message)}; }

// Concatenation by append (GCC 12 at -O3 warns falsely, -Wrestrict, on "literal" + temporary).
std::string Cat(std::string_view a, std::string_view b, std::string_view c = {}) {
  std::string out(a);
  out.append(b);
  out.append(c);
  return out;
}

std::string Quoted(std::string_view s) {
  std::string out = "\"";
  out.append(s);
  out += '"';
  return out;
}

// ---------------------------------------------------------------- lexing

struct Token {
  enum Kind { kIdent, kQuotedIdent, kString, kNumber, kParam, kOp, kEnd } kind = kEnd;
  std::string text;  // identifiers folded to lower case unless quoted; strings unescaped
  bool Is(std::string_view word) const { return kind == kIdent && text == word; }
  bool IsOp(std::string_view op) const { return kind == kOp && text == op; }
};

// Length of a dollar-quote opening tag at s[i] ("$tag$" or "$$"), 0 when there is none.
size_t DollarTagLength(std::string_view s, size_t i) {
  if (s[i] != '$') return 0;
  size_t j = i + 1;
  while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
  if (j < s.size() && s[j] == '$' && (j == i + 1 || !std::isdigit(static_cast<unsigned char>(s[i + 1])))) {
    return j - i + 1;
  }
  return 0;
}

// Where the comment, quoted string or dollar quote starting at s[i] ends (one past it), or i
// when none starts there. Unterminated: s.size().
size_t SkipQuoted(std::string_view s, size_t i) {
  const size_t n = s.size();
  if (s.compare(i, 2, "--") == 0) {
    size_t e = s.find('\n', i);
    return e == std::string_view::npos ? n : e + 1;
  }
  if (s.compare(i, 2, "/*") == 0) {
    int depth = 0;
    size_t j = i;
    while (j < n) {
      if (s.compare(j, 2, "/*") == 0) {
        ++depth;
        j += 2;
      } else if (s.compare(j, 2, "*/") == 0) {
        j += 2;
        if (--depth == 0) return j;
      } else {
        ++j;
      }
    }
    return n;
  }
  if (s[i] == '\'' || s[i] == '"') {
    const char q = s[i];
    const bool backslashes = q == '\'' && i > 0 && (s[i - 1] == 'E' || s[i - 1] == 'e');
    size_t j = i + 1;
    while (j < n) {
      if (backslashes && s[j] == '\\') {
        j += 2;
      } else if (s[j] == q) {
        if (j + 1 < n && s[j + 1] == q) {
          j += 2;
        } else {
          return j + 1;
        }
      } else {
        ++j;
      }
    }
    return n;
  }
  if (size_t tag = DollarTagLength(s, i); tag != 0) {
    size_t e = s.find(s.substr(i, tag), i + tag);
    return e == std::string_view::npos ? n : e + tag;
  }
  return i;
}

// A Query string cut into statements on ';' outside quotes and comments (text as written,
// trimmed; statements holding only comments are dropped, as PostgreSQL's parser drops them).
std::vector<std::string> SplitStatements(std::string_view sql);

std::vector<Token> Lex(std::string_view s) {
  std::vector<Token> out;
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const char c = s[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
      continue;
    }
    if (s.compare(i, 2, "--") == 0 || s.compare(i, 2, "/*") == 0) {
      i = SkipQuoted(s, i);
      continue;
    }
    Token t;
    if ((c == 'E' || c == 'e') && i + 1 < n && s[i + 1] == '\'') {
      size_t e = SkipQuoted(s, i + 1);
      if (e == n && s[n - 1] != '\'') Raise("42601", "unterminated quoted string");
      std::string_view body = s.substr(i + 2, e - i - 3);
      t.kind = Token::kString;
      for (size_t k = 0; k < body.size(); ++k) {
        if (body[k] == '\\' && k + 1 < body.size()) {
          char x = body[++k];
          if (x == 'n') {
            t.text += '\n';
          } else if (x == 't') {
            t.text += '\t';
          } else if (x >= '0' && x <= '7') {
            int v = x - '0';
            for (int d = 0; d < 2 && k + 1 < body.size() && body[k + 1] >= '0' && body[k + 1] <= '7'; ++d) {
              v = v * 8 + (body[++k] - '0');
            }
            t.text += static_cast<char>(v);
          } else {
            t.text += x;
          }
        } else if (body[k] == '\'' && k + 1 < body.size() && body[k + 1] == '\'') {
          t.text += '\'';
          ++k;
        } else {
          t.text += body[k];
        }
      }
      i = e;
    } else if (c == '\'' || c == '"') {
      size_t e = SkipQuoted(s, i);
      if (e == n && (n - i < 2 || s[n - 1] != c)) Raise("42601", "unterminated quoted string or identifier");
      std::string_view body = s.substr(i + 1, e - i - 2);
      t.kind = c == '\'' ? Token::kString : Token::kQuotedIdent;
      for (size_t k = 0; k < body.size(); ++k) {
        t.text += body[k];
        if (body[k] == c && k + 1 < body.size() && body[k + 1] == c) ++k;
      }
      i = e;
    } else if (size_t tag = DollarTagLength(s, i); tag != 0) {
      size_t e = SkipQuoted(s, i);
      t.kind = Token::kString;
      t.text = std::string(s.substr(i + tag, e - i - 2 * tag));
      i = e;
    } else if (c == '$' && i + 1 < n && std::isdigit(static_cast<unsigned char>(s[i + 1]))) {
      size_t j = i + 1;
      while (j < n && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
      t.kind = Token::kParam;
      t.text = std::string(s.substr(i + 1, j - i - 1));
      i = j;
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t j = i;
      while (j < n && (std::isdigit(static_cast<unsigned char>(s[j])) || s[j] == '.')) ++j;
      t.kind = Token::kNumber;
      t.text = std::string(s.substr(i, j - i));
      i = j;
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_' || static_cast<unsigned char>(c) >= 0x80) {
      size_t j = i;
      while (j < n && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_' || s[j] == '$' ||
                       static_cast<unsigned char>(s[j]) >= 0x80)) {
        ++j;
      }
      t.kind = Token::kIdent;
      t.text = Lower(s.substr(i, j - i));
      i = j;
    } else {
      t.kind = Token::kOp;
      if (s.compare(i, 2, "::") == 0 || s.compare(i, 2, "||") == 0) {
        t.text = std::string(s.substr(i, 2));
        i += 2;
      } else {
        t.text = std::string(1, c);
        ++i;
      }
    }
    out.push_back(std::move(t));
  }
  out.push_back(Token{});
  return out;
}

std::vector<std::string> SplitStatements(std::string_view sql) {
  std::vector<std::string> out;
  size_t start = 0;
  auto emit = [&](size_t end) {
    std::string_view piece = sql.substr(start, end - start);
    // Only whitespace and comments: no statement.
    bool empty = true;
    for (size_t k = 0; k < piece.size() && empty;) {
      if (std::isspace(static_cast<unsigned char>(piece[k]))) {
        ++k;
      } else if (piece.compare(k, 2, "--") == 0 || piece.compare(k, 2, "/*") == 0) {
        k = SkipQuoted(piece, k);
      } else {
        empty = false;
      }
    }
    if (!empty) {
      size_t b = piece.find_first_not_of(" \t\r\n");
      size_t e = piece.find_last_not_of(" \t\r\n");
      out.emplace_back(piece.substr(b, e - b + 1));
    }
  };
  for (size_t i = 0; i < sql.size();) {
    size_t skipped = SkipQuoted(sql, i);
    if (skipped != i) {
      i = skipped;
    } else if (sql[i] == ';') {
      emit(i);
      start = ++i;
    } else {
      ++i;
    }
  }
  emit(sql.size());
  return out;
}

// ---------------------------------------------------------------- settings

struct Builtin {
  const char* name;  // canonical spelling (ParameterStatus, SHOW's column)
  const char* value;
  bool reported;
  bool fixed;  // cannot be changed by SET
};

constexpr Builtin kBuiltins[] = {
    {"application_name", "", true, false},
    {"client_encoding", "UTF8", true, false},
    {"DateStyle", "ISO, MDY", true, false},
    {"IntervalStyle", "postgres", true, false},
    {"TimeZone", "UTC", true, false},
    {"standard_conforming_strings", "on", true, false},
    {"default_transaction_read_only", "off", true, false},
    {"integer_datetimes", "on", true, true},
    {"server_version", "15.0 (fake)", true, true},
    {"server_encoding", "UTF8", true, true},
    {"is_superuser", "off", true, true},
    {"in_hot_standby", "off", true, true},
    {"session_authorization", "", true, true},
    {"search_path", "\"$user\", public", false, false},
    {"extra_float_digits", "1", false, false},
    {"statement_timeout", "0", false, false},
    {"lock_timeout", "0", false, false},
    {"idle_in_transaction_session_timeout", "0", false, false},
    {"work_mem", "4MB", false, false},
    {"role", "none", false, false},
    {"transaction_isolation", "read committed", false, false},
};

const Builtin* FindBuiltin(std::string_view lower_name) {
  for (const Builtin& b : kBuiltins) {
    if (Lower(b.name) == lower_name) return &b;
  }
  return nullptr;
}

bool IsBareIdentifier(std::string_view s) {
  if (s.empty() || !((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_')) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

std::string QuoteIdentifierIfNeeded(std::string_view s) {
  if (IsBareIdentifier(s)) return std::string(s);
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

void AppendWarning(std::string* out, std::string_view sqlstate, std::string_view message) {
  protocol::MessageWriter w(out);
  w.Begin('N');
  w.PutByte('S').PutCString("WARNING");
  w.PutByte('V').PutCString("WARNING");
  w.PutByte('C').PutCString(sqlstate);
  w.PutByte('M').PutCString(message);
  w.PutByte(0);
  w.Finish();
}

std::string Readable(char type, std::span<const uint8_t> payload) {
  std::string_view raw(reinterpret_cast<const char*>(payload.data()), payload.size());
  auto cstr = [&](size_t* pos) {
    size_t nul = raw.find('\0', *pos);
    if (nul == std::string_view::npos) nul = raw.size();
    std::string s(raw.substr(*pos, nul - *pos));
    *pos = nul + 1;
    return s;
  };
  std::string out(1, type);
  switch (type) {
    case 'Q': {
      size_t pos = 0;
      out += ":";
      out += cstr(&pos);
      return out;
    }
    case 'P': {
      protocol::ParseMessage p;
      if (!protocol::ParseParseMessage(payload, &p)) return out + ":<malformed>";
      out += ":";
      out.append(p.statement);
      out += ":";
      out.append(p.query);
      return out;
    }
    case 'B': {
      protocol::BindMessage b;
      if (!protocol::ParseBindMessage(payload, &b)) return out + ":<malformed>";
      out += ":";
      out.append(b.portal);
      out += ":";
      out.append(b.statement);
      out += ":";
      for (size_t k = 0; k < b.params.size(); ++k) {
        if (k > 0) out += ",";
        if (b.params[k]) {
          out.append(*b.params[k]);
        } else {
          out += "NULL";
        }
      }
      return out;
    }
    case 'D':
    case 'C': {
      protocol::TargetMessage t;
      if (!protocol::ParseTargetMessage(payload, &t)) return out + ":<malformed>";
      out += ":";
      out += t.kind;
      out += ":";
      out.append(t.name);
      return out;
    }
    case 'E': {
      std::string_view portal;
      int32_t max_rows = 0;
      if (!protocol::ParseExecuteMessage(payload, &portal, &max_rows)) return out + ":<malformed>";
      out += ":";
      out.append(portal);
      return out;
    }
    default:
      return out;
  }
}

}  // namespace

// ---------------------------------------------------------------- one backend session

class FakePostgres::Session {
 public:
  using InjectionHook = std::function<std::optional<FakePostgres::Injection>(const std::string&)>;

  Session(int32_t pid, std::string user, InjectionHook hook, std::vector<std::string>* completed)
      : pid_(pid), user_(std::move(user)), hook_(std::move(hook)), completed_(completed) {}

  int32_t pid() const { return pid_; }
  bool hung() const { return hung_; }
  // A CancelRequest for this backend: a hanging statement ends with 57014.
  void CancelHung() {
    if (!hung_) return;
    hung_ = false;
    Fail(SqlError{"57014", "canceling statement due to user request"});
    if (hung_in_query_) {
      ReadyForQuery();
    } else {
      ignore_till_sync_ = true;
    }
  }
  char status() const { return block_ == Block::kExplicit ? 'T' : block_ == Block::kFailed ? 'E' : 'I'; }
  std::string& out() { return out_; }
  bool close_requested() const { return close_; }

  std::optional<std::string> CurrentSetting(const std::string& name) const {
    const std::string key = Lower(name);
    if (auto it = local_.find(key); it != local_.end()) return it->second;
    if (auto it = session_.find(key); it != session_.end()) return it->second;
    if (const Builtin* b = FindBuiltin(key)) return key == "session_authorization" ? user_ : std::string(b->value);
    if (placeholders_.count(key) != 0) return std::string();
    return std::nullopt;
  }
  std::vector<std::string> PreparedNames() const {
    std::vector<std::string> names;
    for (const auto& [name, stmt] : prepared_) names.push_back(name);
    return names;
  }

  void Login() {
    protocol::AppendAuthRequest(&out_, 0);
    for (const Builtin& b : kBuiltins) {
      if (!b.reported) continue;
      std::string value = *CurrentSetting(b.name);
      reported_[b.name] = value;
      protocol::AppendParameterStatus(&out_, b.name, value);
    }
    protocol::AppendBackendKeyData(&out_, pid_, pid_ * 7 + 1);
    protocol::AppendReadyForQuery(&out_, 'I');
  }

  // One frontend message; output accumulates in out() and is flushed by the caller when
  // flush_ says so (ReadyForQuery, Flush).
  void Handle(char type, std::span<const uint8_t> payload);
  bool TakeFlush() {
    bool f = flush_;
    flush_ = false;
    return f;
  }

 private:
  enum class Block { kNone, kImplicit, kExplicit, kFailed };
  struct Prepared {
    std::string sql;
    std::vector<int32_t> types;
  };
  struct Portal {
    std::string sql;
    Params params;
  };
  struct Outcome {
    std::vector<std::string> columns;
    std::vector<Row> rows;
    bool returns_rows = false;
    std::string tag;
    bool empty = false;
  };

  // ---- transactions
  void StartImplicit() {
    if (block_ != Block::kNone) return;
    block_ = Block::kImplicit;
    saved_session_ = session_;
  }
  void Commit() {
    local_.clear();
    portals_.clear();
    block_ = Block::kNone;
    pipelining_ = false;
  }
  void Rollback() {
    session_ = saved_session_;
    local_.clear();
    portals_.clear();
    block_ = Block::kNone;
    pipelining_ = false;
  }
  void ReadyForQuery() {
    for (const Builtin& b : kBuiltins) {
      if (!b.reported || b.fixed) continue;
      std::string value = *CurrentSetting(b.name);
      if (reported_[b.name] != value) {
        reported_[b.name] = value;
        protocol::AppendParameterStatus(&out_, b.name, value);
      }
    }
    protocol::AppendReadyForQuery(&out_, status());
    flush_ = true;
  }
  // PostgreSQL flushes its output after every error and notice (elog.c,
  // send_message_to_frontend): an error after pgtenant's own Execute reaches it at once, even
  // though the backend then skips everything (a Query too) until a Sync.
  void SendError(const SqlError& e) {
    protocol::AppendError(&out_, "ERROR", e.sqlstate, e.message);
    flush_ = true;
  }
  void Warn(std::string_view sqlstate, std::string_view message) {
    AppendWarning(&out_, sqlstate, message);
    flush_ = true;
  }
  // An error in the current statement: the block is aborted, the implicit transaction gone.
  void Fail(const SqlError& e) {
    SendError(e);
    if (block_ == Block::kExplicit || block_ == Block::kFailed) {
      block_ = Block::kFailed;
      local_.clear();
      pipelining_ = false;
    } else {
      Rollback();
    }
  }

  // ---- messages
  void SimpleQuery(const std::string& sql);
  void ParseMsg(std::span<const uint8_t> payload);
  void BindMsg(std::span<const uint8_t> payload);
  void DescribeMsg(std::span<const uint8_t> payload);
  void ExecuteMsg(std::span<const uint8_t> payload);
  void CloseMsg(std::span<const uint8_t> payload);
  void SendRowDescription(const std::vector<std::string>& columns) { protocol::AppendRowDescription(&out_, columns); }
  void SendResult(const Outcome& o, bool with_description) {
    if (o.empty) {
      protocol::AppendEmptyQueryResponse(&out_);
      return;
    }
    if (o.returns_rows && with_description) SendRowDescription(o.columns);
    for (const Row& r : o.rows) protocol::AppendDataRow(&out_, r);
    protocol::AppendCommandComplete(&out_, o.tag);
  }

  // ---- statements
  // Runs one statement. `in_block`: PreventInTransactionBlock would refuse (explicit or
  // implicit block, or a pipeline). `describe_only`: compute the columns, run nothing.
  Outcome Run(const std::string& sql, const Params& params, bool in_block, bool multi, bool describe_only,
              bool fold = false);
  // Checks before running a statement: the aborted block, an injected error.
  void Precheck(const std::string& sql);
  static bool IsTransactionExit(const std::string& sql) {
    std::vector<Token> t = Lex(sql);
    return t[0].Is("commit") || t[0].Is("end") || t[0].Is("rollback") || t[0].Is("abort");
  }
  static size_t ParamCount(const std::string& sql) {
    size_t n = 0;
    for (const Token& t : Lex(sql)) {
      if (t.kind == Token::kParam) n = std::max<size_t>(n, std::stoul(t.text));
    }
    return n;
  }

  Outcome RunSelect(const std::vector<Token>& t, const Params& params, bool describe_only, bool fold = false);
  Outcome RunSet(const std::vector<Token>& t, bool multi);
  Outcome RunReset(const std::vector<Token>& t);
  Outcome RunShow(const std::vector<Token>& t, bool describe_only);
  Outcome RunTransaction(const std::vector<Token>& t, bool multi);

  // Sets a setting, as SET / set_config do; nullopt: back to its default (RESET).
  void Assign(const std::string& lower_name, const std::optional<std::string>& value, bool is_local) {
    const Builtin* b = FindBuiltin(lower_name);
    if (b == nullptr && lower_name.find('.') == std::string::npos) {
      Raise("42704", Cat("unrecognized configuration parameter ", Quoted(lower_name)));
    }
    if (b != nullptr && b->fixed) Raise("55P02", Cat("parameter ", Quoted(lower_name), " cannot be changed"));
    if (b == nullptr) placeholders_.insert(lower_name);  // custom variables stay defined
    if (is_local) {
      if (block_ == Block::kNone) return;
      if (value) {
        local_[lower_name] = *value;
      } else {
        local_.erase(lower_name);
        if (auto it = session_.find(lower_name); it != session_.end()) local_[lower_name] = CurrentDefault(lower_name);
      }
      return;
    }
    local_.erase(lower_name);
    if (value) {
      session_[lower_name] = *value;
    } else {
      session_.erase(lower_name);
    }
  }
  std::string CurrentDefault(const std::string& lower_name) const {
    if (const Builtin* b = FindBuiltin(lower_name)) return b->value;
    return std::string();
  }

  int32_t pid_;
  std::string user_;
  InjectionHook hook_;
  std::vector<std::string>* completed_;
  std::string out_;
  bool flush_ = false;
  bool close_ = false;
  Block block_ = Block::kNone;
  bool hung_ = false;              // a statement hangs until a cancel (Injection::hang)
  bool hung_in_query_ = false;     // ... in a simple Query (else in an Execute)
  bool pipelining_ = false;        // an Execute completed in the current implicit transaction
  bool ignore_till_sync_ = false;  // an extended-protocol error: skip to Sync
  std::map<std::string, std::string> session_, saved_session_, local_;
  std::set<std::string> placeholders_;
  std::map<std::string, std::string> reported_;
  std::map<std::string, Prepared> prepared_;  // "" = the unnamed statement
  std::map<std::string, Portal> portals_;
};

// Expression evaluation for SELECT targets (and EXECUTE arguments).
class ExprParser {
 public:
  using Call = std::function<std::optional<std::string>(const std::string&, const std::vector<std::optional<std::string>>&)>;
  // `fold`: without evaluating, still fold constant expressions, as the planner does at Bind
  // (a division of two literals by zero fails there, before Execute).
  ExprParser(const std::vector<Token>& t, size_t pos, const Params& params, bool evaluate, Call call, bool fold = false)
      : t_(t), pos_(pos), params_(params), eval_(evaluate), fold_(fold), call_(std::move(call)) {}
  size_t pos() const { return pos_; }

  // One expression; `column` gets the name PostgreSQL gives its result column.
  std::optional<std::string> Expr(std::string* column) {
    const bool literal_left = t_[pos_].kind == Token::kNumber;
    std::optional<std::string> v = Unary(column);
    while (t_[pos_].IsOp("/") || t_[pos_].IsOp("||")) {
      const bool divide = t_[pos_].IsOp("/");
      ++pos_;
      const bool literal_right = t_[pos_].kind == Token::kNumber && !t_[pos_ + 1].IsOp("::");
      std::string ignored;
      std::optional<std::string> r = Unary(&ignored);
      *column = "?column?";
      if (!eval_) {
        if (fold_ && divide && literal_left && literal_right && std::stoll(*r) == 0) Raise("22012", "division by zero");
        continue;
      }
      if (!v || !r) {
        v.reset();
      } else if (divide) {
        long long a = std::stoll(*v), b = std::stoll(*r);
        if (b == 0) Raise("22012", "division by zero");
        v = std::to_string(a / b);
      } else {
        *v += *r;
      }
    }
    return v;
  }

 private:
  std::optional<std::string> Unary(std::string* column) {
    std::optional<std::string> v = Primary(column);
    while (t_[pos_].IsOp("::")) {
      ++pos_;
      std::string type = t_[pos_].text;
      ++pos_;
      if (column->empty() || *column == "?column?") *column = type == "int" || type == "integer" ? "int4" : type;
    }
    return v;
  }
  std::optional<std::string> Primary(std::string* column) {
    const Token& tok = t_[pos_];
    if (tok.IsOp("(")) {
      ++pos_;
      std::optional<std::string> v = Expr(column);
      Expect(")");
      return v;
    }
    if (tok.IsOp("-") && t_[pos_ + 1].kind == Token::kNumber) {
      pos_ += 2;
      *column = "?column?";
      return "-" + t_[pos_ - 1].text;
    }
    if (tok.kind == Token::kString || tok.kind == Token::kNumber) {
      ++pos_;
      *column = "?column?";
      return tok.text;
    }
    if (tok.kind == Token::kParam) {
      ++pos_;
      *column = "?column?";
      size_t n = std::stoul(tok.text);
      if (n == 0 || n > params_.size()) {
        if (!eval_) return std::nullopt;
        Raise("42P02", "there is no parameter $" + tok.text);
      }
      return params_[n - 1];
    }
    if (tok.Is("null")) {
      ++pos_;
      *column = "?column?";
      return std::nullopt;
    }
    if (tok.Is("true") || tok.Is("false")) {
      ++pos_;
      *column = "bool";
      return tok.Is("true") ? "t" : "f";
    }
    if (tok.kind == Token::kIdent || tok.kind == Token::kQuotedIdent) {
      std::string name = tok.text;
      ++pos_;
      while (t_[pos_].IsOp(".") && (t_[pos_ + 1].kind == Token::kIdent || t_[pos_ + 1].kind == Token::kQuotedIdent)) {
        name = t_[pos_ + 1].text;  // pg_catalog.set_config: the function's own name counts
        pos_ += 2;
      }
      if (!t_[pos_].IsOp("(")) Raise("42703", Cat("column ", Quoted(name), " does not exist"));
      ++pos_;
      std::vector<std::optional<std::string>> args;
      if (!t_[pos_].IsOp(")")) {
        while (true) {
          std::string ignored;
          args.push_back(Expr(&ignored));
          if (t_[pos_].IsOp(",")) {
            ++pos_;
            continue;
          }
          break;
        }
      }
      Expect(")");
      *column = name;
      // Functions are looked up when the statement is analysed (at Parse), not when it runs.
      static const std::set<std::string> kKnown = {"current_setting", "set_config", "coalesce", "nullif",
                                                    "pg_backend_pid"};
      if (kKnown.count(name) == 0) Raise("42883", "function " + name + "() does not exist");
      if (!eval_) return std::nullopt;
      return call_(name, args);
    }
    Raise("42601", "syntax error at or near \"" + tok.text + "\"");
  }
  void Expect(std::string_view op) {
    if (!t_[pos_].IsOp(op)) Raise("42601", "syntax error at or near \"" + t_[pos_].text + "\"");
    ++pos_;
  }

  const std::vector<Token>& t_;
  size_t pos_;
  const Params& params_;
  bool eval_;
  bool fold_;
  Call call_;
};

void FakePostgres::Session::Handle(char type, std::span<const uint8_t> payload) {
  std::string_view raw(reinterpret_cast<const char*>(payload.data()), payload.size());
  if (type == 'X') {
    close_ = true;
    return;
  }
  if (type == 'S') {
    ignore_till_sync_ = false;
    if (block_ == Block::kImplicit) Commit();
    pipelining_ = false;
    ReadyForQuery();
    return;
  }
  if (ignore_till_sync_) return;  // PostgreSQL skips every message (a Query too) until Sync
  switch (type) {
    case 'Q':
      SimpleQuery(std::string(raw.substr(0, raw.find('\0'))));
      return;
    case 'P':
      ParseMsg(payload);
      return;
    case 'B':
      BindMsg(payload);
      return;
    case 'D':
      DescribeMsg(payload);
      return;
    case 'E':
      ExecuteMsg(payload);
      return;
    case 'C':
      CloseMsg(payload);
      return;
    case 'H':
      flush_ = true;
      return;
    default:
      protocol::AppendError(&out_, "FATAL", "08P01", std::string("invalid frontend message type ") + type);
      flush_ = true;
      close_ = true;
      return;
  }
}

void FakePostgres::Session::Precheck(const std::string& sql) {
  if (block_ == Block::kFailed && !IsTransactionExit(sql)) {
    Raise("25P02", "current transaction is aborted, commands ignored until end of transaction block");
  }
  if (std::optional<Injection> inj = hook_(sql)) {
    if (inj->hang) {
      hung_ = true;
      flush_ = true;  // what came before it reaches the client, as a running query's would
      throw SqlError{"", ""};
    }
    if (inj->close_connection) {
      if (inj->fatal) protocol::AppendError(&out_, "FATAL", inj->sqlstate, inj->message);
      close_ = true;
      flush_ = true;
      throw SqlError{"", ""};  // nothing more is answered
    }
    Raise(inj->sqlstate.c_str(), inj->message);
  }
}

void FakePostgres::Session::SimpleQuery(const std::string& sql) {
  std::vector<std::string> stmts;
  try {
    stmts = SplitStatements(sql);
  } catch (const SqlError& e) {
    Fail(e);
    ReadyForQuery();
    return;
  }
  if (stmts.empty()) {
    protocol::AppendEmptyQueryResponse(&out_);
    ReadyForQuery();
    return;
  }
  const bool multi = stmts.size() > 1;
  for (const std::string& stmt : stmts) {
    StartImplicit();
    try {
      Precheck(stmt);
      const bool in_block = block_ != Block::kImplicit || multi || pipelining_;
      Outcome o = Run(stmt, {}, in_block, multi, false);
      SendResult(o, true);
      completed_->push_back(o.tag + "|" + stmt);
    } catch (const SqlError& e) {
      if (close_) return;
      if (hung_) {
        hung_in_query_ = true;
        return;  // the rest of the Query is dropped: a cancel aborts it anyway
      }
      Fail(e);
      break;
    }
    if (block_ == Block::kImplicit && !multi) Commit();
  }
  if (block_ == Block::kImplicit) Commit();
  ReadyForQuery();
}

void FakePostgres::Session::ParseMsg(std::span<const uint8_t> payload) {
  protocol::ParseMessage p;
  if (!protocol::ParseParseMessage(payload, &p)) return;
  try {
    StartImplicit();
    std::string query(p.query);
    std::vector<std::string> stmts = SplitStatements(query);
    if (stmts.size() > 1) Raise("42601", "cannot insert multiple commands into a prepared statement");
    if (block_ == Block::kFailed && !stmts.empty() && !IsTransactionExit(stmts[0])) {
      Raise("25P02", "current transaction is aborted, commands ignored until end of transaction block");
    }
    std::string name(p.statement);
    if (!name.empty() && prepared_.count(name) != 0) {
      Raise("42P05", Cat("prepared statement ", Quoted(name), " already exists"));
    }
    if (!stmts.empty()) {
      // Syntax is checked at Parse: what the interpreter does not know fails here.
      Run(stmts[0], Params(ParamCount(stmts[0])), false, false, true);
    }
    prepared_[name] = Prepared{stmts.empty() ? std::string() : stmts[0], p.param_types};
    protocol::AppendParseComplete(&out_);
  } catch (const SqlError& e) {
    Fail(e);
    ignore_till_sync_ = true;
  }
}

void FakePostgres::Session::BindMsg(std::span<const uint8_t> payload) {
  protocol::BindMessage b;
  if (!protocol::ParseBindMessage(payload, &b)) return;
  try {
    StartImplicit();
    std::string name(b.statement);
    auto it = prepared_.find(name);
    if (it == prepared_.end()) {
      if (name.empty()) Raise("26000", "unnamed prepared statement does not exist");
      Raise("26000", Cat("prepared statement ", Quoted(name), " does not exist"));
    }
    if (block_ == Block::kFailed && !IsTransactionExit(it->second.sql)) {
      Raise("25P02", "current transaction is aborted, commands ignored until end of transaction block");
    }
    const size_t needed = std::max(it->second.types.size(), ParamCount(it->second.sql));
    if (b.params.size() != needed) {
      std::string m = "bind message supplies ";
      m += std::to_string(b.params.size());
      m += " parameters, but prepared statement ";
      m += Quoted(name);
      m += " requires ";
      m += std::to_string(needed);
      Raise("08P01", m);
    }
    std::string portal(b.portal);
    if (!portal.empty() && portals_.count(portal) != 0) Raise("42P03", Cat("cursor ", Quoted(portal), " already exists"));
    Portal p{it->second.sql, {}};
    for (const auto& v : b.params) p.params.push_back(v ? std::optional<std::string>(std::string(*v)) : std::nullopt);
    // Bind plans the statement: constant expressions are folded, and their errors raised, here.
    if (!p.sql.empty() && Lex(p.sql)[0].Is("select")) Run(p.sql, p.params, false, false, true, /*fold=*/true);
    portals_[portal] = std::move(p);
    protocol::AppendBindComplete(&out_);
  } catch (const SqlError& e) {
    Fail(e);
    ignore_till_sync_ = true;
  }
}

void FakePostgres::Session::DescribeMsg(std::span<const uint8_t> payload) {
  protocol::TargetMessage t;
  if (!protocol::ParseTargetMessage(payload, &t)) return;
  try {
    std::string name(t.name);
    std::string sql;
    size_t nparams = 0;
    if (t.kind == 'S') {
      auto it = prepared_.find(name);
      if (it == prepared_.end()) {
        if (name.empty()) Raise("26000", "unnamed prepared statement does not exist");
        Raise("26000", Cat("prepared statement ", Quoted(name), " does not exist"));
      }
      sql = it->second.sql;
      nparams = std::max(it->second.types.size(), ParamCount(sql));
      std::vector<int32_t> types(nparams, 25);
      for (size_t k = 0; k < it->second.types.size(); ++k) {
        if (it->second.types[k] != 0) types[k] = it->second.types[k];
      }
      protocol::AppendParameterDescription(&out_, types);
    } else {
      auto it = portals_.find(name);
      if (it == portals_.end()) Raise("34000", Cat("portal ", Quoted(name), " does not exist"));
      sql = it->second.sql;
      nparams = it->second.params.size();
    }
    Outcome o = sql.empty() ? Outcome{} : Run(sql, Params(nparams), false, false, true);
    if (o.returns_rows) {
      SendRowDescription(o.columns);
    } else {
      protocol::AppendNoData(&out_);
    }
  } catch (const SqlError& e) {
    Fail(e);
    ignore_till_sync_ = true;
  }
}

void FakePostgres::Session::ExecuteMsg(std::span<const uint8_t> payload) {
  std::string_view portal_name;
  int32_t max_rows = 0;
  if (!protocol::ParseExecuteMessage(payload, &portal_name, &max_rows)) return;
  std::string sql;
  try {
    auto it = portals_.find(std::string(portal_name));
    if (it == portals_.end()) Raise("34000", Cat("portal ", Quoted(portal_name), " does not exist"));
    sql = it->second.sql;
    Params params = it->second.params;
    if (sql.empty()) {
      protocol::AppendEmptyQueryResponse(&out_);
      return;
    }
    StartImplicit();
    Precheck(sql);
    const bool in_block = block_ != Block::kImplicit || pipelining_;
    Outcome o = Run(sql, params, in_block, false, false);
    SendResult(o, false);
    completed_->push_back(o.tag + "|" + sql);
    // A completed Execute that did not end the transaction makes the rest of it a pipeline.
    if (block_ == Block::kImplicit) pipelining_ = true;
  } catch (const SqlError& e) {
    if (close_) return;
    if (hung_) {
      hung_in_query_ = false;
      return;
    }
    Fail(e);
    ignore_till_sync_ = true;
  }
}

void FakePostgres::Session::CloseMsg(std::span<const uint8_t> payload) {
  protocol::TargetMessage t;
  if (!protocol::ParseTargetMessage(payload, &t)) return;
  if (t.kind == 'S') {
    prepared_.erase(std::string(t.name));
  } else {
    portals_.erase(std::string(t.name));
  }
  protocol::AppendCloseComplete(&out_);
}

FakePostgres::Session::Outcome FakePostgres::Session::Run(const std::string& sql, const Params& params, bool in_block,
                                                          bool multi, bool describe_only, bool fold) {
  std::vector<Token> t = Lex(sql);
  const Token& first = t[0];
  Outcome o;
  if (first.Is("select")) return RunSelect(t, params, describe_only, fold);
  if (first.Is("show")) return RunShow(t, describe_only);
  if (first.Is("begin") || first.Is("start") || first.Is("commit") || first.Is("end") || first.Is("rollback") ||
      first.Is("abort")) {
    if (describe_only) return o;
    return RunTransaction(t, multi);
  }
  if (first.Is("set")) {
    if (describe_only) return o;
    return RunSet(t, multi);
  }
  if (first.Is("reset")) {
    if (describe_only) return o;
    return RunReset(t);
  }
  if (first.Is("discard")) {
    const Token& what = t[1];
    if (!(what.Is("all") || what.Is("plans") || what.Is("sequences") || what.Is("temp") || what.Is("temporary"))) {
      Raise("42601", "syntax error at or near \"" + what.text + "\"");
    }
    if (describe_only) return o;
    if (what.Is("all")) {
      if (in_block) {
        if (block_ == Block::kImplicit && pipelining_ && !multi) {
          Raise("25001", "DISCARD ALL cannot be executed within a pipeline");
        }
        Raise("25001", "DISCARD ALL cannot run inside a transaction block");
      }
      prepared_.clear();
      portals_.clear();
      session_.clear();
      local_.clear();
      o.tag = "DISCARD ALL";
    } else {
      o.tag = what.Is("temporary") ? "DISCARD TEMP" : Cat("DISCARD ", what.text);
      for (char& c : o.tag) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return o;
  }
  if (first.Is("deallocate")) {
    size_t k = 1;
    if (t[k].Is("prepare")) ++k;
    if (t[k].kind != Token::kIdent && t[k].kind != Token::kQuotedIdent) {
      Raise("42601", "syntax error at or near \"" + t[k].text + "\"");
    }
    if (describe_only) return o;
    if (t[k].kind == Token::kIdent && t[k].text == "all") {
      for (auto it = prepared_.begin(); it != prepared_.end();) {
        it = it->first.empty() ? std::next(it) : prepared_.erase(it);
      }
      o.tag = "DEALLOCATE ALL";
    } else {
      if (prepared_.erase(t[k].text) == 0) {
        Raise("26000", Cat("prepared statement ", Quoted(t[k].text), " does not exist"));
      }
      o.tag = "DEALLOCATE";
    }
    return o;
  }
  if (first.Is("prepare")) {
    // PREPARE name [(types)] AS statement
    if (t[1].kind != Token::kIdent && t[1].kind != Token::kQuotedIdent) Raise("42601", "syntax error at or near PREPARE");
    if (t[1].Is("transaction")) Raise("0A000", "fake_postgres: PREPARE TRANSACTION is not supported");
    std::string name = t[1].text;
    size_t as = Lower(sql).find(" as ");
    if (as == std::string::npos) Raise("42601", "syntax error at end of input");
    std::string body = sql.substr(as + 4);
    size_t b = body.find_first_not_of(" \t\r\n");
    body = b == std::string::npos ? std::string() : body.substr(b);
    Run(body, Params(ParamCount(body)), false, false, true);  // its syntax
    if (describe_only) return o;
    if (prepared_.count(name) != 0) Raise("42P05", Cat("prepared statement ", Quoted(name), " already exists"));
    size_t ntypes = 0;
    if (t[2].IsOp("(")) {
      for (size_t k = 3; !t[k].IsOp(")") && t[k].kind != Token::kEnd; ++k) ntypes += t[k].kind == Token::kIdent;
    }
    prepared_[name] = Prepared{body, std::vector<int32_t>(ntypes, 25)};
    o.tag = "PREPARE";
    return o;
  }
  if (first.Is("execute")) {
    if (t[1].kind != Token::kIdent && t[1].kind != Token::kQuotedIdent) Raise("42601", "syntax error at or near EXECUTE");
    auto it = prepared_.find(t[1].text);
    if (it == prepared_.end()) Raise("26000", Cat("prepared statement ", Quoted(t[1].text), " does not exist"));
    Params args;
    if (t[2].IsOp("(")) {
      size_t pos = 3;
      while (!t[pos].IsOp(")") && t[pos].kind != Token::kEnd) {
        ExprParser arg(t, pos, params, true, [](const std::string& f, const std::vector<std::optional<std::string>>&)
                                                 -> std::optional<std::string> {
          Raise("0A000", "fake_postgres: no function calls in EXECUTE arguments: " + f);
        });
        std::string ignored;
        args.push_back(arg.Expr(&ignored));
        pos = arg.pos();
        if (t[pos].IsOp(",")) ++pos;
      }
    }
    std::string body = it->second.sql;
    if (args.size() < ParamCount(body)) Raise("42601", "wrong number of parameters for prepared statement");
    return Run(body, args, in_block, multi, describe_only);
  }
  if (first.Is("do")) {
    if (describe_only) return o;
    const Token& body = t[1].kind == Token::kString ? t[1] : t[2];
    std::string lower = Lower(body.text);
    if (lower.find("raise exception") != std::string::npos) {
      std::string code = "P0001", message = "exception";
      size_t e = lower.find("errcode");
      if (e != std::string::npos) {
        size_t q = body.text.find('\'', e);
        if (q != std::string::npos) code = body.text.substr(q + 1, 5);
      }
      size_t m = lower.find("message");
      if (m != std::string::npos) {
        size_t q = body.text.find('\'', m);
        std::string msg;
        for (size_t k = q + 1; q != std::string::npos && k < body.text.size(); ++k) {
          if (body.text[k] == '\'') {
            if (k + 1 < body.text.size() && body.text[k + 1] == '\'') {
              msg += '\'';
              ++k;
              continue;
            }
            break;
          }
          msg += body.text[k];
        }
        message = msg;
      }
      throw SqlError{code, message};
    }
    o.tag = "DO";
    return o;
  }
  if (first.Is("vacuum")) {
    if (describe_only) return o;
    if (in_block) {
      if (block_ == Block::kImplicit && pipelining_ && !multi) Raise("25001", "VACUUM cannot be executed within a pipeline");
      Raise("25001", "VACUUM cannot run inside a transaction block");
    }
    o.tag = "VACUUM";
    return o;
  }
  if (first.Is("listen") || first.Is("unlisten")) {
    if (describe_only) return o;
    o.tag = first.Is("listen") ? "LISTEN" : "UNLISTEN";
    return o;
  }
  Raise("42601", "fake_postgres: syntax error at or near \"" + first.text + "\" (statement not interpreted)");
}

FakePostgres::Session::Outcome FakePostgres::Session::RunSelect(const std::vector<Token>& t, const Params& params,
                                                                bool describe_only, bool fold) {
  Outcome o;
  o.returns_rows = true;
  // SELECT name | count(*) FROM pg_prepared_statements [ORDER BY name]
  for (size_t k = 0; t[k].kind != Token::kEnd; ++k) {
    if (!t[k].Is("from")) continue;
    size_t from = k + 1;
    if (t[from].Is("pg_catalog") && t[from + 1].IsOp(".")) from += 2;
    if (!t[from].Is("pg_prepared_statements")) Raise("0A000", "fake_postgres: SELECT ... FROM " + t[from].text);
    const bool count = t[1].Is("count");
    o.columns = {count ? "count" : "name"};
    if (describe_only) return o;
    std::vector<std::string> names;
    for (const auto& [name, stmt] : prepared_) {
      if (!name.empty()) names.push_back(name);
    }
    if (count) {
      o.rows.push_back({std::to_string(names.size())});
    } else {
      for (const std::string& n : names) o.rows.push_back({n});
    }
    o.tag = Cat("SELECT ", std::to_string(o.rows.size()));
    return o;
  }
  auto call = [this](const std::string& f, const std::vector<std::optional<std::string>>& a) -> std::optional<std::string> {
    if (f == "current_setting") {
      if (a.empty() || a.size() > 2) Raise("42883", "function current_setting does not exist");
      if (!a[0]) return std::nullopt;
      const bool missing_ok = a.size() == 2 && a[1] && (*a[1] == "t" || *a[1] == "true");
      std::optional<std::string> v = CurrentSetting(Lower(*a[0]));
      if (!v && !missing_ok) Raise("42704", Cat("unrecognized configuration parameter ", Quoted(*a[0])));
      return v;
    }
    if (f == "set_config") {
      if (a.size() != 3) Raise("42883", "function set_config does not exist");
      if (!a[0]) Raise("22004", "SET requires parameter name");
      const bool is_local = a[2] && (*a[2] == "t" || *a[2] == "true");
      std::string name = Lower(*a[0]);
      Assign(name, a[1] ? a[1] : std::optional<std::string>(), is_local);
      return CurrentSetting(name);
    }
    if (f == "coalesce") {
      for (const auto& v : a) {
        if (v) return v;
      }
      return std::nullopt;
    }
    if (f == "nullif") {
      if (a.size() != 2) Raise("42883", "function nullif does not exist");
      if (a[0] && a[1] && *a[0] == *a[1]) return std::nullopt;
      return a[0];
    }
    if (f == "pg_backend_pid") return std::to_string(pid_);
    Raise("42883", "function " + f + " does not exist");
  };
  size_t pos = 1;
  Row row;
  while (t[pos].kind != Token::kEnd) {
    ExprParser p(t, pos, params, !describe_only, call, fold);
    std::string column;
    std::optional<std::string> v = p.Expr(&column);
    pos = p.pos();
    if (t[pos].Is("as")) ++pos;
    if (t[pos].kind == Token::kIdent || t[pos].kind == Token::kQuotedIdent) {
      column = t[pos].text;
      ++pos;
    }
    o.columns.push_back(column);
    row.push_back(v);
    if (t[pos].IsOp(",")) {
      ++pos;
    } else if (t[pos].kind != Token::kEnd) {
      Raise("42601", "syntax error at or near \"" + t[pos].text + "\"");
    }
  }
  if (o.columns.empty()) Raise("0A000", "fake_postgres: SELECT without targets");
  if (!describe_only) o.rows.push_back(std::move(row));
  o.tag = Cat("SELECT ", std::to_string(o.rows.size()));
  return o;
}

FakePostgres::Session::Outcome FakePostgres::Session::RunShow(const std::vector<Token>& t, bool describe_only) {
  Outcome o;
  o.returns_rows = true;
  std::string name;
  size_t k = 1;
  if (t[1].Is("time") && t[2].Is("zone")) {
    name = "timezone";
    k = 3;
  } else {
    for (; t[k].kind == Token::kIdent || t[k].kind == Token::kQuotedIdent; ++k) {
      name += t[k].text;
      if (!t[k + 1].IsOp(".")) {
        ++k;
        break;
      }
      name += ".";
      ++k;
    }
  }
  if (t[k].kind != Token::kEnd || name.empty()) Raise("42601", "syntax error in SHOW");
  const Builtin* b = FindBuiltin(Lower(name));
  o.columns = {b != nullptr ? Lower(b->name) : Lower(name)};
  if (describe_only) return o;
  std::optional<std::string> v = CurrentSetting(Lower(name));
  if (!v) Raise("42704", Cat("unrecognized configuration parameter ", Quoted(Lower(name))));
  o.rows.push_back({*v});
  o.tag = "SHOW";
  return o;
}

FakePostgres::Session::Outcome FakePostgres::Session::RunSet(const std::vector<Token>& t, bool multi) {
  Outcome o;
  o.tag = "SET";
  size_t k = 1;
  bool is_local = false;
  if (t[k].Is("session") && (t[k + 1].Is("characteristics") || t[k + 1].Is("authorization"))) return o;
  if (t[k].Is("transaction") || t[k].Is("role") || t[k].Is("constraints")) return o;
  if (t[k].Is("local") || t[k].Is("session")) {
    is_local = t[k].Is("local");
    ++k;
  }
  std::string name;
  if (t[k].Is("time") && t[k + 1].Is("zone")) {
    name = "timezone";
    k += 2;
  } else {
    while (t[k].kind == Token::kIdent || t[k].kind == Token::kQuotedIdent) {
      name += t[k].text;
      ++k;
      if (!t[k].IsOp(".")) break;
      name += ".";
      ++k;
    }
    if (name.empty()) Raise("42601", "syntax error at or near \"" + t[k].text + "\"");
    if (t[k].Is("to") || t[k].IsOp("=")) {
      ++k;
    } else {
      Raise("42601", "syntax error at or near \"" + t[k].text + "\"");
    }
  }
  const std::string lower = Lower(name);
  if (is_local && block_ != Block::kExplicit && !(block_ == Block::kImplicit && multi)) {
    Warn("25P01", "SET LOCAL can only be used in transaction blocks");
  }
  std::optional<std::string> value;
  if (t[k].Is("default") && t[k + 1].kind == Token::kEnd) {
    value.reset();
  } else {
    std::string flat;
    const bool list_quote = lower == "search_path";
    while (t[k].kind != Token::kEnd) {
      std::string element;
      if (t[k].IsOp("-") && t[k + 1].kind == Token::kNumber) {
        element = "-" + t[k + 1].text;
        k += 2;
      } else if (t[k].kind == Token::kString) {
        element = list_quote ? QuoteIdentifierIfNeeded(t[k].text) : t[k].text;
        ++k;
      } else if (t[k].kind == Token::kIdent || t[k].kind == Token::kQuotedIdent || t[k].kind == Token::kNumber) {
        element = list_quote ? QuoteIdentifierIfNeeded(t[k].text) : t[k].text;
        ++k;
      } else {
        Raise("42601", "syntax error at or near \"" + t[k].text + "\"");
      }
      if (!flat.empty()) flat += ", ";
      flat += element;
      if (t[k].IsOp(",")) {
        ++k;
      } else if (t[k].kind != Token::kEnd) {
        Raise("42601", "syntax error at or near \"" + t[k].text + "\"");
      }
    }
    if (flat.empty() && t[k].kind == Token::kEnd && t[k - 1].kind != Token::kString) {
      Raise("42601", "syntax error at end of input");
    }
    value = flat;
  }
  Assign(lower, value, is_local);
  return o;
}

FakePostgres::Session::Outcome FakePostgres::Session::RunReset(const std::vector<Token>& t) {
  Outcome o;
  o.tag = "RESET";
  if (t[1].Is("all") && t[2].kind == Token::kEnd) {
    session_.clear();
    local_.clear();
    return o;
  }
  std::string name;
  size_t k = 1;
  if (t[1].Is("time") && t[2].Is("zone")) {
    name = "timezone";
    k = 3;
  } else {
    while (t[k].kind == Token::kIdent || t[k].kind == Token::kQuotedIdent) {
      name += t[k].text;
      ++k;
      if (!t[k].IsOp(".")) break;
      name += ".";
      ++k;
    }
  }
  if (name.empty() || t[k].kind != Token::kEnd) Raise("42601", "syntax error in RESET");
  Assign(Lower(name), std::nullopt, false);
  return o;
}

FakePostgres::Session::Outcome FakePostgres::Session::RunTransaction(const std::vector<Token>& t, bool multi) {
  Outcome o;
  const Token& w = t[0];
  if (w.Is("begin") || w.Is("start")) {
    if (w.Is("start") && !t[1].Is("transaction")) Raise("42601", "syntax error at or near \"start\"");
    o.tag = w.Is("begin") ? "BEGIN" : "START TRANSACTION";
    if (block_ == Block::kExplicit || block_ == Block::kFailed) {
      Warn("25001", "there is already a transaction in progress");
    } else {
      block_ = Block::kExplicit;
    }
    return o;
  }
  const bool commit = w.Is("commit") || w.Is("end");
  if (t[1].Is("prepared") || t[1].Is("to")) Raise("0A000", "fake_postgres: savepoints and two-phase commit are not supported");
  switch (block_) {
    case Block::kExplicit:
      o.tag = commit ? "COMMIT" : "ROLLBACK";
      if (commit) {
        Commit();
      } else {
        Rollback();
      }
      break;
    case Block::kFailed:
      o.tag = "ROLLBACK";
      Rollback();
      break;
    case Block::kImplicit:
    case Block::kNone:
      o.tag = commit ? "COMMIT" : "ROLLBACK";
      if (!multi) Warn("25P01", "there is no transaction in progress");
      if (commit) {
        Commit();
      } else {
        Rollback();
      }
      break;
  }
  return o;
}

// ---------------------------------------------------------------- the server

struct FakePostgres::Conn {
  int fd = -1;
  bool started = false;  // startup packet received
  bool open = true;
  bool kill = false;
  std::string kill_message;  // sent (a FATAL ErrorResponse) before the kill closes it
  std::string in;
  std::vector<std::string> received;
  std::vector<std::string> completed;
  std::unique_ptr<Session> session;
  int32_t pid = 0;
  // Authentication in progress (FakePostgres::Auth other than trust).
  std::string user;
  bool authenticating = false;
  std::string md5_salt;
  std::unique_ptr<protocol::ScramServerExchange> scram;
};

FakePostgres::FakePostgres() {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(listen_fd_, 64) != 0) {
    close(listen_fd_);
    listen_fd_ = -1;
    return;
  }
  socklen_t len = sizeof(addr);
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { Run(); });
}

FakePostgres::~FakePostgres() { Stop(); }

void FakePostgres::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& c : conns_) {
    if (c->open) {
      close(c->fd);
      c->open = false;
    }
  }
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    listen_fd_ = -1;
  }
}

void FakePostgres::Inject(const Injection& injection) {
  std::lock_guard<std::mutex> lock(mu_);
  injections_.push_back(InjectionState{injection, 0, 0});
}

void FakePostgres::ClearInjections() {
  std::lock_guard<std::mutex> lock(mu_);
  injections_.clear();
}

void FakePostgres::FailLogins(const std::string& sqlstate, const std::string& message) {
  std::lock_guard<std::mutex> lock(mu_);
  fail_login_sqlstate_ = sqlstate;
  fail_login_message_ = message;
}

void FakePostgres::RequirePassword(Auth method, const std::string& password) {
  std::lock_guard<std::mutex> lock(mu_);
  auth_ = method;
  password_ = password;
}

void FakePostgres::KillConnection(int conn) {
  std::lock_guard<std::mutex> lock(mu_);
  if (conn >= 0 && conn < static_cast<int>(conns_.size())) conns_[conn]->kill = true;
}

void FakePostgres::SendRaw(int conn, const std::string& bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  if (conn < 0 || conn >= static_cast<int>(conns_.size()) || !conns_[conn]->open) return;
  send(conns_[conn]->fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
}

void FakePostgres::TerminateConnection(int conn, const std::string& sqlstate, const std::string& message) {
  std::lock_guard<std::mutex> lock(mu_);
  if (conn < 0 || conn >= static_cast<int>(conns_.size())) return;
  protocol::AppendError(&conns_[conn]->kill_message, "FATAL", sqlstate, message);
  conns_[conn]->kill = true;
}

int FakePostgres::connections() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(conns_.size());
}

int FakePostgres::open_connections() const {
  std::lock_guard<std::mutex> lock(mu_);
  int n = 0;
  for (const auto& c : conns_) n += c->open;
  return n;
}

std::vector<std::string> FakePostgres::Received(int conn) const { return ReceivedSince(conn, 0); }

std::vector<std::string> FakePostgres::ReceivedSince(int conn, size_t from) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (conn < 0 || conn >= static_cast<int>(conns_.size())) return {};
  const auto& r = conns_[conn]->received;
  if (from >= r.size()) return {};
  return std::vector<std::string>(r.begin() + static_cast<std::ptrdiff_t>(from), r.end());
}

size_t FakePostgres::ReceivedCount(int conn) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (conn < 0 || conn >= static_cast<int>(conns_.size())) return 0;
  return conns_[conn]->received.size();
}

std::vector<std::string> FakePostgres::Completed(int conn) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (conn < 0 || conn >= static_cast<int>(conns_.size())) return {};
  return conns_[conn]->completed;
}

std::optional<std::string> FakePostgres::Setting(int conn, const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (conn < 0 || conn >= static_cast<int>(conns_.size()) || !conns_[conn]->session) return std::nullopt;
  return conns_[conn]->session->CurrentSetting(name);
}

std::vector<std::string> FakePostgres::PreparedStatements(int conn) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (conn < 0 || conn >= static_cast<int>(conns_.size()) || !conns_[conn]->session) return {};
  return conns_[conn]->session->PreparedNames();
}

char FakePostgres::TransactionStatus(int conn) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (conn < 0 || conn >= static_cast<int>(conns_.size()) || !conns_[conn]->session) return '?';
  return conns_[conn]->session->status();
}

bool FakePostgres::Hanging(int conn) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (conn < 0 || conn >= static_cast<int>(conns_.size()) || !conns_[conn]->session) return false;
  return conns_[conn]->session->hung();
}

int32_t FakePostgres::BackendPid(int conn) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (conn < 0 || conn >= static_cast<int>(conns_.size())) return 0;
  return conns_[conn]->pid;
}

std::vector<std::string> FakePostgres::Cancels() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cancels_;
}

bool FakePostgres::WaitFor(const std::function<bool()>& done, std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return done();
}

std::optional<FakePostgres::Injection> FakePostgres::TakeInjection(const std::string& statement) {
  // REQUIRES: mu_ held (called from Serve).
  for (InjectionState& s : injections_) {
    if (!ContainsIgnoreCase(statement, s.rule.statement_contains)) continue;
    if (s.seen++ < s.rule.skip) continue;
    if (s.rule.times >= 0 && s.fired >= s.rule.times) continue;
    ++s.fired;
    return s.rule;
  }
  return std::nullopt;
}

void FakePostgres::Run() {
  while (!stop_) {
    std::vector<pollfd> fds;
    std::vector<Conn*> polled;
    {
      std::lock_guard<std::mutex> lock(mu_);
      fds.push_back(pollfd{listen_fd_, POLLIN, 0});
      for (auto& c : conns_) {
        if (!c->open) continue;
        if (c->kill) {
          if (!c->kill_message.empty()) send(c->fd, c->kill_message.data(), c->kill_message.size(), MSG_NOSIGNAL);
          close(c->fd);
          c->open = false;
          continue;
        }
        fds.push_back(pollfd{c->fd, POLLIN, 0});
        polled.push_back(c.get());
      }
    }
    if (poll(fds.data(), fds.size(), 20) <= 0) continue;
    if (fds[0].revents & POLLIN) Accept();
    for (size_t k = 1; k < fds.size(); ++k) {
      if (fds[k].revents == 0) continue;
      Conn* c = polled[k - 1];
      char buf[65536];
      ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
      std::lock_guard<std::mutex> lock(mu_);
      if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        close(c->fd);
        c->open = false;
        continue;
      }
      c->in.append(buf, static_cast<size_t>(n));
      Serve(*c);
    }
  }
}

void FakePostgres::Accept() {
  int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) return;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  std::lock_guard<std::mutex> lock(mu_);
  auto c = std::make_unique<Conn>();
  c->fd = fd;
  conns_.push_back(std::move(c));
}

namespace {
bool SendAll(int fd, const std::string& bytes) {
  size_t off = 0;
  int spins = 0;
  while (off < bytes.size()) {
    ssize_t n = send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if ((errno == EAGAIN || errno == EINTR) && ++spins < 1000) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        continue;
      }
      return false;
    }
    off += static_cast<size_t>(n);
  }
  return true;
}
}  // namespace

bool FakePostgres::Authenticate(Conn& c, char type, std::span<const uint8_t> payload) {
  // REQUIRES: mu_ held. type 0: trust, nothing to check.
  auto refuse = [&] {
    std::string out;
    protocol::AppendError(&out, "FATAL", "28P01", Cat("password authentication failed for user ", Quoted(c.user)));
    SendAll(c.fd, out);
    close(c.fd);
    c.open = false;
    return false;
  };
  if (type != 0) {
    if (type != 'p') return refuse();
    std::string_view data(reinterpret_cast<const char*>(payload.data()), payload.size());
    if (auth_ == Auth::kCleartext) {
      if (data.substr(0, data.find('\0')) != password_) return refuse();
    } else if (auth_ == Auth::kMd5) {
      std::string expected = protocol::Md5SaltedResponse(
          protocol::Md5PasswordHash(password_, c.user),
          std::span<const uint8_t, 4>(reinterpret_cast<const uint8_t*>(c.md5_salt.data()), 4));
      if (data.substr(0, data.find('\0')) != expected) return refuse();
    } else if (c.scram) {
      protocol::ByteReader r(payload);
      std::string out;
      if (!c.md5_salt.empty()) {  // (reused as "client-first seen")
        auto final_message = c.scram->HandleClientFinal(data);
        if (!final_message.ok()) return refuse();
        protocol::AppendAuthRequest(&out, protocol::kAuthSaslFinal, *final_message);
        SendAll(c.fd, out);
      } else {
        std::string_view mechanism;
        int32_t len = 0;
        std::span<const uint8_t> first;
        if (!r.GetCString(&mechanism) || mechanism != "SCRAM-SHA-256" || !r.GetInt32(&len) || len < 0 ||
            !r.GetBytes(static_cast<size_t>(len), &first)) {
          return refuse();
        }
        auto server_first = c.scram->HandleClientFirst(
            std::string_view(reinterpret_cast<const char*>(first.data()), first.size()));
        if (!server_first.ok()) return refuse();
        protocol::AppendAuthRequest(&out, protocol::kAuthSaslContinue, *server_first);
        SendAll(c.fd, out);
        c.md5_salt = "first";
        return true;
      }
    }
  }
  c.authenticating = false;
  c.pid = next_pid_++;
  c.session = std::make_unique<Session>(
      c.pid, c.user, [this](const std::string& stmt) { return TakeInjection(stmt); }, &c.completed);
  c.session->Login();
  SendAll(c.fd, c.session->out());
  c.session->out().clear();
  return true;
}

void FakePostgres::Serve(Conn& c) {
  // REQUIRES: mu_ held.
  auto finish = [&](const std::string& out) {
    if (!out.empty()) SendAll(c.fd, out);
    close(c.fd);
    c.open = false;
  };
  while (c.open) {
    if (c.session && (c.session->hung() || !c.session->out().empty())) {
      if (!c.session->out().empty() && (c.session->TakeFlush() || c.session->hung())) {
        SendAll(c.fd, c.session->out());
        c.session->out().clear();
      }
      if (c.session->hung()) return;  // nothing more is read until a cancel
    }
    std::span<const uint8_t> data(reinterpret_cast<const uint8_t*>(c.in.data()), c.in.size());
    protocol::Frame f;
    if (!c.started) {
      protocol::DecodeStatus st = protocol::DecodeUntyped(data, protocol::kMaxStartupPacket, &f);
      if (st == protocol::DecodeStatus::kNeedMoreData) return;
      if (st == protocol::DecodeStatus::kMalformed) return finish("");
      auto packet = protocol::ParseStartupPacket(f.payload);
      c.in.erase(0, f.total_size);
      if (!packet.ok()) return finish("");
      if (packet->code == protocol::kSslRequestCode || packet->code == protocol::kGssEncRequestCode) {
        c.received.push_back(packet->code == protocol::kSslRequestCode ? "sslrequest" : "gssencrequest");
        SendAll(c.fd, "N");
        continue;
      }
      if (packet->code == protocol::kCancelRequestCode) {
        std::string cancel = "cancel ";
        cancel += std::to_string(packet->cancel_pid);
        c.received.push_back(cancel);
        cancel.erase(0, 7);
        cancel += " ";
        cancel += std::to_string(packet->cancel_key);
        cancels_.push_back(cancel);
        finish("");
        for (auto& other : conns_) {
          if (other->open && other->session && other->pid == packet->cancel_pid &&
              other->pid * 7 + 1 == packet->cancel_key && other->session->hung()) {
            other->session->CancelHung();
            Serve(*other);  // sends the error and goes on with what the connection sent since
          }
        }
        return;
      }
      std::string line = "startup";
      std::string user;
      for (const auto& [k, v] : packet->params) {
        line += " " + k + "=" + v;
        if (k == "user") user = v;
      }
      c.received.push_back(line);
      c.started = true;
      if (!fail_login_sqlstate_.empty()) {
        std::string out;
        protocol::AppendError(&out, "FATAL", fail_login_sqlstate_, fail_login_message_);
        return finish(out);
      }
      c.user = user;
      if (auth_ != Auth::kTrust) {
        c.authenticating = true;
        std::string out;
        if (auth_ == Auth::kCleartext) {
          protocol::AppendAuthRequest(&out, protocol::kAuthCleartext);
        } else if (auth_ == Auth::kMd5) {
          c.md5_salt = "\x01\x7f\x80\xfe";
          protocol::AppendAuthRequest(&out, protocol::kAuthMd5, c.md5_salt);
        } else {
          protocol::AppendAuthSasl(&out, "SCRAM-SHA-256");
          c.scram = std::make_unique<protocol::ScramServerExchange>(
              protocol::MakeScramVerifier(password_, "fake-postgres-salt", 4096));
        }
        SendAll(c.fd, out);
        continue;
      }
      if (!Authenticate(c, 0, {})) return;
      continue;
    }
    if (c.authenticating) {
      protocol::DecodeStatus st = protocol::DecodeTyped(data, 8192, &f);
      if (st == protocol::DecodeStatus::kNeedMoreData) return;
      if (st == protocol::DecodeStatus::kMalformed) return finish("");
      c.received.push_back("password");
      std::string payload(reinterpret_cast<const char*>(f.payload.data()), f.payload.size());
      c.in.erase(0, f.total_size);
      if (!Authenticate(c, f.type, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(payload.data()),
                                                            payload.size()))) {
        return;
      }
      continue;
    }
    protocol::DecodeStatus st = protocol::DecodeTyped(data, 1u << 30, &f);
    if (st == protocol::DecodeStatus::kNeedMoreData) break;
    if (st == protocol::DecodeStatus::kMalformed) return finish("");
    c.received.push_back(Readable(f.type, f.payload));
    c.session->Handle(f.type, f.payload);
    c.in.erase(0, f.total_size);
    if (c.session->close_requested()) return finish(c.session->out());
    if (c.session->TakeFlush()) {
      SendAll(c.fd, c.session->out());
      c.session->out().clear();
    }
  }
}

}  // namespace pgtenant::testing
