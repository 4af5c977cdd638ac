#include "routing/sql_statement.h"

#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <unordered_set>

#include "routing/sql_names.h"

namespace pgtenant::routing {
namespace {

// ---------------------------------------------------------------------------------------------
// Parsing: libpg_query's protobuf output, unpacked with the protobuf-c runtime that
// libpg_query.a carries. Both results are freed by these owners.

struct ProtobufResultDeleter {
  void operator()(PgQueryProtobufParseResult* r) const {
    pg_query_free_protobuf_parse_result(*r);
    delete r;
  }
};
struct ParseTreeDeleter {
  void operator()(PgQuery__ParseResult* p) const { pg_query__parse_result__free_unpacked(p, nullptr); }
};

// ---------------------------------------------------------------------------------------------
// Small readers over the tree.

std::string_view Str(const char* s) { return s ? std::string_view(s) : std::string_view(); }

bool Is(const ProtobufCMessage* m, const ProtobufCMessageDescriptor& d) { return m && m->descriptor == &d; }

// The String value of a Node, or nullptr.
const char* NodeString(const PgQuery__Node* n) {
  return n && n->node_case == PG_QUERY__NODE__NODE_STRING && n->string ? n->string->sval : nullptr;
}

bool StartsWithNoCase(std::string_view s, std::string_view lower_prefix) {
  return s.size() >= lower_prefix.size() && EqualsIgnoreAsciiCase(s.substr(0, lower_prefix.size()), lower_prefix);
}

bool IsTempSchema(std::string_view schema) { return StartsWithNoCase(schema, "pg_temp"); }

// The last part of a qualified name list (funcname, TypeName.names) and whether the parts
// before it are exactly `pg_catalog` or nothing.
std::string_view LastName(PgQuery__Node* const* names, size_t n, bool* catalog_or_unqualified) {
  if (n == 0) return {};
  *catalog_or_unqualified = n == 1 || (n == 2 && Str(NodeString(names[0])) == "pg_catalog");
  return Str(NodeString(names[n - 1]));
}

// The cast target, when `tc` casts to a type that keeps a text value intact (text, varchar
// without a length) or to boolean.
enum class CastTarget { kText, kBool, kOther };
CastTarget CastTargetOf(const PgQuery__TypeCast* tc) {
  const PgQuery__TypeName* t = tc->type_name;
  if (!t || t->setof || t->pct_type || t->n_typmods != 0 || t->n_array_bounds != 0) return CastTarget::kOther;
  bool plain = false;
  const std::string_view last = LastName(t->names, t->n_names, &plain);
  if (!plain) return CastTarget::kOther;
  if (last == "text" || last == "varchar") return CastTarget::kText;
  if (last == "bool") return CastTarget::kBool;
  return CastTarget::kOther;
}

// A set_config argument: a string constant, $N or NULL under casts to text / varchar.
std::optional<SqlArgument> TextArgument(const PgQuery__Node* n) {
  while (n && n->node_case == PG_QUERY__NODE__NODE_TYPE_CAST) {
    if (CastTargetOf(n->type_cast) != CastTarget::kText) return std::nullopt;
    n = n->type_cast->arg;
  }
  if (!n) return std::nullopt;
  SqlArgument a;
  if (n->node_case == PG_QUERY__NODE__NODE_PARAM_REF) {
    if (n->param_ref->number < 1) return std::nullopt;
    a.kind = SqlArgument::Kind::kParam;
    a.param = n->param_ref->number;
    return a;
  }
  if (n->node_case != PG_QUERY__NODE__NODE_A_CONST) return std::nullopt;
  const PgQuery__AConst* c = n->a_const;
  if (c->isnull) {
    a.kind = SqlArgument::Kind::kNull;
    return a;
  }
  if (c->val_case != PG_QUERY__A__CONST__VAL_SVAL || !c->sval) return std::nullopt;  // a number: no such set_config
  a.text = Str(c->sval->sval);
  return a;
}

// set_config's third argument: TRUE / FALSE, a string boolin accepts, NULL (false), $N, or
// an integer under an explicit cast to boolean.
std::optional<SqlArgument> BoolArgument(const PgQuery__Node* n, std::optional<bool>* value) {
  bool cast_to_bool = false;
  while (n && n->node_case == PG_QUERY__NODE__NODE_TYPE_CAST) {
    if (CastTargetOf(n->type_cast) != CastTarget::kBool) return std::nullopt;
    cast_to_bool = true;
    n = n->type_cast->arg;
  }
  if (!n) return std::nullopt;
  SqlArgument a;
  if (n->node_case == PG_QUERY__NODE__NODE_PARAM_REF) {
    if (n->param_ref->number < 1) return std::nullopt;
    a.kind = SqlArgument::Kind::kParam;
    a.param = n->param_ref->number;
    *value = std::nullopt;
    return a;
  }
  if (n->node_case != PG_QUERY__NODE__NODE_A_CONST) return std::nullopt;
  const PgQuery__AConst* c = n->a_const;
  if (c->isnull) {
    a.kind = SqlArgument::Kind::kNull;
    *value = false;  // set_config: a NULL is_local is false
    return a;
  }
  switch (c->val_case) {
    case PG_QUERY__A__CONST__VAL_BOOLVAL:
      a.text = c->boolval && c->boolval->boolval ? "true" : "false";
      *value = c->boolval && c->boolval->boolval;
      return a;
    case PG_QUERY__A__CONST__VAL_SVAL:
      a.text = Str(c->sval ? c->sval->sval : nullptr);
      *value = ParsePgBoolText(a.text);
      if (!value->has_value()) return std::nullopt;  // the server rejects it
      return a;
    case PG_QUERY__A__CONST__VAL_IVAL:
      if (!cast_to_bool) return std::nullopt;  // int -> boolean is not implicit
      *value = c->ival && c->ival->ival != 0;
      a.text = *value ? "true" : "false";
      return a;
    default:
      return std::nullopt;
  }
}

bool IsSetConfigName(std::string_view lower_last) { return EqualsIgnoreAsciiCase(lower_last, "set_config"); }

// The exact call pg_catalog.set_config(name, value, is_local), evaluated; nullopt for any
// other shape (named arguments, VARIADIC, other schema, arguments that are expressions).
std::optional<SetConfigCall> EvaluateSetConfig(const PgQuery__FuncCall* f) {
  bool plain = false;
  if (LastName(f->funcname, f->n_funcname, &plain) != "set_config" || !plain) return std::nullopt;
  if (f->n_args != 3 || f->n_agg_order != 0 || f->agg_filter || f->over || f->agg_within_group || f->agg_star ||
      f->agg_distinct || f->func_variadic) {
    return std::nullopt;
  }
  SetConfigCall call;
  std::optional<SqlArgument> name = TextArgument(f->args[0]);
  std::optional<SqlArgument> value = TextArgument(f->args[1]);
  std::optional<SqlArgument> local = BoolArgument(f->args[2], &call.is_local);
  if (!name || !value || !local) return std::nullopt;
  call.name = std::move(*name);
  call.value = std::move(*value);
  call.is_local_arg = std::move(*local);
  return call;
}

const PgQuery__Node* StripCasts(const PgQuery__Node* n) {
  while (n && n->node_case == PG_QUERY__NODE__NODE_TYPE_CAST && n->type_cast) n = n->type_cast->arg;
  return n;
}

// A target that does nothing but yield a value: a constant or a parameter, maybe cast.
bool IsInertTarget(const PgQuery__Node* n) {
  n = StripCasts(n);
  return n && (n->node_case == PG_QUERY__NODE__NODE_A_CONST || n->node_case == PG_QUERY__NODE__NODE_PARAM_REF);
}

// ---------------------------------------------------------------------------------------------
// SET values (guc.c flatten_set_variable_args).

// Settings whose value is a list (GUC_LIST_INPUT) in PostgreSQL 15, and those of them whose
// elements are identifiers the server quotes (GUC_LIST_QUOTE).
constexpr std::array<std::string_view, 10> kListSettings = {
    "datestyle",         "search_path",       "temp_tablespaces",          "local_preload_libraries",
    "session_preload_libraries", "shared_preload_libraries", "log_destination", "unix_socket_directories",
    "synchronous_standby_names", "wal_consistency_checking"};
constexpr std::array<std::string_view, 5> kListQuoteSettings = {
    "search_path", "temp_tablespaces", "local_preload_libraries", "session_preload_libraries",
    "shared_preload_libraries"};

template <size_t N>
bool In(const std::array<std::string_view, N>& table, std::string_view s) {
  return std::find(table.begin(), table.end(), s) != table.end();
}

// ruleutils.c quote_identifier, with the keyword tables of routing/sql_names.h (reserved and
// type/function-name keywords; column-name keywords are not listed there and stay bare, which
// names the same schema when the list is read back).
std::string QuoteIdentifier(std::string_view s) {
  bool safe = !s.empty() && ((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_');
  for (char c : s) safe = safe && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_');
  if (safe && !IsReservedKeyword(s) && !IsTypeFuncNameKeyword(s)) return std::string(s);
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::optional<std::string> FlattenSetValue(const PgQuery__VariableSetStmt* v, std::string_view lower_name) {
  if (v->n_args == 0) return std::nullopt;
  if (v->n_args > 1 && !In(kListSettings, lower_name)) return std::nullopt;  // "SET x takes only one argument"
  const bool quote = In(kListQuoteSettings, lower_name);
  std::string out;
  for (size_t i = 0; i < v->n_args; ++i) {
    const PgQuery__Node* n = v->args[i];
    if (!n || n->node_case != PG_QUERY__NODE__NODE_A_CONST || n->a_const->isnull) return std::nullopt;
    const PgQuery__AConst* c = n->a_const;
    if (i > 0) out += ", ";
    switch (c->val_case) {
      case PG_QUERY__A__CONST__VAL_IVAL:
        out += std::to_string(c->ival ? c->ival->ival : 0);
        break;
      case PG_QUERY__A__CONST__VAL_FVAL:
        out += Str(c->fval ? c->fval->fval : nullptr);
        break;
      case PG_QUERY__A__CONST__VAL_SVAL: {
        const std::string_view s = Str(c->sval ? c->sval->sval : nullptr);
        out += quote ? QuoteIdentifier(s) : std::string(s);
        break;
      }
      default:
        return std::nullopt;
    }
  }
  return out;
}

std::string UpperAscii(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

// transaction_mode_list (gram.y) back to text: ISOLATION LEVEL ..., READ ONLY | READ WRITE,
// [NOT] DEFERRABLE.
std::string TransactionOptions(PgQuery__Node* const* options, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    if (!options[i] || options[i]->node_case != PG_QUERY__NODE__NODE_DEF_ELEM) continue;
    const PgQuery__DefElem* d = options[i]->def_elem;
    const std::string_view name = Str(d->defname);
    const PgQuery__Node* arg = d->arg;
    const PgQuery__AConst* c = arg && arg->node_case == PG_QUERY__NODE__NODE_A_CONST ? arg->a_const : nullptr;
    const bool on = c && c->val_case == PG_QUERY__A__CONST__VAL_IVAL && c->ival && c->ival->ival != 0;
    std::string piece;
    if (name == "transaction_isolation" && c && c->val_case == PG_QUERY__A__CONST__VAL_SVAL && c->sval) {
      piece = "ISOLATION LEVEL " + UpperAscii(Str(c->sval->sval));
    } else if (name == "transaction_read_only") {
      piece = on ? "READ ONLY" : "READ WRITE";
    } else if (name == "transaction_deferrable") {
      piece = on ? "DEFERRABLE" : "NOT DEFERRABLE";
    } else {
      continue;
    }
    if (!out.empty()) out += ", ";
    out += piece;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The walk over a whole statement, for what can be seen but not evaluated.

constexpr int32_t kCursorOptHold = 0x0020;  // parsenodes.h CURSOR_OPT_HOLD

bool IsWordByte(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '$' ||
         static_cast<unsigned char>(c) >= 0x80;
}

// `word` (lower case) as a whole word of `text`, ignoring ASCII case.
bool ContainsWord(std::string_view text, std::string_view word) {
  for (size_t from = 0; from < text.size();) {
    const size_t at = FindIgnoreAsciiCase(text.substr(from), word);
    if (at == std::string_view::npos) return false;
    const size_t pos = from + at;
    const bool left = pos == 0 || !IsWordByte(text[pos - 1]);
    const bool right = pos + word.size() >= text.size() || !IsWordByte(text[pos + word.size()]);
    if (left && right) return true;
    from = pos + 1;
  }
  return false;
}

class Walker {
 public:
  Walker(std::string_view variable, StatementInfo* info, const std::unordered_set<const void*>& evaluated,
         bool creates_objects)
      : variable_(variable), info_(info), evaluated_(evaluated), creates_objects_(creates_objects) {
    const size_t dot = variable.rfind('.');
    last_part_ = AsciiLowerCopy(dot == std::string_view::npos ? variable : variable.substr(dot + 1));
  }

  void Walk(const ProtobufCMessage* m) {
    if (!m || evaluated_.count(m)) return;
    if (!Visit(m)) return;
    WalkFields(m);
  }

  // A DO or function body: code the server runs later or at once, unseen.
  void Body(std::string_view body) {
    if (FindIgnoreAsciiCase(body, "set_config") != std::string_view::npos ||
        ((ContainsWord(body, "set") || ContainsWord(body, "reset")) &&
         (last_part_.empty() || FindIgnoreAsciiCase(body, last_part_) != std::string_view::npos))) {
      info_->mentions_tenant_unknowably = true;
    }
  }

 private:
  void WalkFields(const ProtobufCMessage* m) {
    const ProtobufCMessageDescriptor* d = m->descriptor;
    const char* base = reinterpret_cast<const char*>(m);
    for (unsigned i = 0; i < d->n_fields; ++i) {
      const ProtobufCFieldDescriptor& f = d->fields[i];
      if (f.type != PROTOBUF_C_TYPE_MESSAGE) continue;
      if (f.label == PROTOBUF_C_LABEL_REPEATED) {
        size_t count = 0;
        std::memcpy(&count, base + f.quantifier_offset, sizeof count);
        ProtobufCMessage* const* items = nullptr;
        std::memcpy(&items, base + f.offset, sizeof items);
        for (size_t k = 0; k < count && items; ++k) Walk(items[k]);
        continue;
      }
      if (f.flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t which = 0;
        std::memcpy(&which, base + f.quantifier_offset, sizeof which);
        if (which != f.id) continue;
      }
      const ProtobufCMessage* child = nullptr;
      std::memcpy(&child, base + f.offset, sizeof child);
      Walk(child);
    }
  }

  // Returns whether to walk the message's fields.
  bool Visit(const ProtobufCMessage* m) {
    if (Is(m, pg_query__func_call__descriptor)) {
      VisitCall(reinterpret_cast<const PgQuery__FuncCall*>(m));
      return false;  // VisitCall walks what it must (not the function name)
    }
    if (Is(m, pg_query__string__descriptor)) {
      const std::string_view s = Str(reinterpret_cast<const PgQuery__String*>(m)->sval);
      if (FindIgnoreAsciiCase(s, "set_config") != std::string_view::npos) info_->mentions_tenant_unknowably = true;
      if (creates_objects_ && IsTempSchema(s)) info_->creates_session_state = true;
      return false;
    }
    if (Is(m, pg_query__range_var__descriptor)) {
      const auto* rv = reinterpret_cast<const PgQuery__RangeVar*>(m);
      if (Str(rv->relpersistence) == "t" || (creates_objects_ && IsTempSchema(Str(rv->schemaname)))) {
        info_->creates_session_state = true;
      }
      return true;
    }
    if (Is(m, pg_query__into_clause__descriptor)) {
      const auto* into = reinterpret_cast<const PgQuery__IntoClause*>(m);
      if (into->rel && (Str(into->rel->relpersistence) == "t" || IsTempSchema(Str(into->rel->schemaname)))) {
        info_->creates_session_state = true;
      }
      return true;
    }
    return true;
  }

  void VisitCall(const PgQuery__FuncCall* f) {
    bool plain = false;
    const std::string_view last = LastName(f->funcname, f->n_funcname, &plain);
    if (IsSetConfigName(last)) {
      // Seen where it cannot be evaluated (or of a shape that cannot be).
      std::optional<SqlArgument> name = f->n_args >= 1 ? TextArgument(f->args[0]) : std::nullopt;
      if (!name || name->kind != SqlArgument::Kind::kConstant || GucNameEquals(name->text, variable_)) {
        info_->mentions_tenant_unknowably = true;
      }
      std::optional<bool> local;
      const bool local_true = f->n_args == 3 && BoolArgument(f->args[2], &local) && local == true;
      if (!local_true && !(name && name->kind == SqlArgument::Kind::kConstant && GucNameEquals(name->text, variable_))) {
        info_->creates_session_state = true;  // another setting changed for the session, unseen
      }
    } else if (EqualsIgnoreAsciiCase(last, "pg_advisory_lock") ||
               EqualsIgnoreAsciiCase(last, "pg_advisory_lock_shared") ||
               EqualsIgnoreAsciiCase(last, "pg_try_advisory_lock") ||
               EqualsIgnoreAsciiCase(last, "pg_try_advisory_lock_shared")) {
      info_->creates_session_state = true;
    }
    for (size_t i = 0; i < f->n_args; ++i) Walk(&f->args[i]->base);
    for (size_t i = 0; i < f->n_agg_order; ++i) Walk(&f->agg_order[i]->base);
    if (f->agg_filter) Walk(&f->agg_filter->base);
    if (f->over) Walk(&f->over->base);
  }

  std::string_view variable_;
  std::string last_part_;
  StatementInfo* info_;
  const std::unordered_set<const void*>& evaluated_;
  bool creates_objects_;
};

// ---------------------------------------------------------------------------------------------
// One statement.

bool CreatesObjects(const PgQuery__Node* n) {
  const char* name = n && n->node_case != PG_QUERY__NODE__NODE__NOT_SET
                         ? reinterpret_cast<const ProtobufCMessage*>(n->alias)->descriptor->short_name
                         : nullptr;
  const std::string_view s = Str(name);
  return s.starts_with("Create") || s == "DefineStmt" || s == "ViewStmt" || s == "CompositeTypeStmt";
}

void DescribeTransaction(const PgQuery__TransactionStmt* t, StatementInfo* info) {
  using K = SqlStatementKind;
  info->chain = t->chain;
  switch (t->kind) {
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_BEGIN:
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_START:
      info->kind = K::kBegin;
      info->transaction_options = TransactionOptions(t->options, t->n_options);
      return;
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_COMMIT:
      info->kind = K::kCommit;
      return;
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK:
      info->kind = K::kRollback;
      return;
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_SAVEPOINT:
      info->kind = K::kSavepoint;
      info->name = Str(t->savepoint_name);
      return;
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_RELEASE:
      info->kind = K::kReleaseSavepoint;
      info->name = Str(t->savepoint_name);
      return;
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK_TO:
      info->kind = K::kRollbackToSavepoint;
      info->name = Str(t->savepoint_name);
      return;
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_PREPARE:
      info->kind = K::kPrepareTransaction;
      info->name = Str(t->gid);
      return;
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_COMMIT_PREPARED:
      info->kind = K::kCommitPrepared;
      info->name = Str(t->gid);
      return;
    case PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK_PREPARED:
      info->kind = K::kRollbackPrepared;
      info->name = Str(t->gid);
      return;
    default:
      return;  // kOther
  }
}

void DescribeSet(const PgQuery__VariableSetStmt* v, std::string_view variable, StatementInfo* info) {
  using K = SqlStatementKind;
  SetStatement& set = info->set;
  set.name = AsciiLowerCopy(Str(v->name));
  set.is_local = v->is_local;
  switch (v->kind) {
    case PG_QUERY__VARIABLE_SET_KIND__VAR_SET_VALUE:
      set.action = SetAction::kValue;
      set.value = FlattenSetValue(v, set.name);
      break;
    case PG_QUERY__VARIABLE_SET_KIND__VAR_SET_DEFAULT:
      set.action = SetAction::kDefault;
      break;
    case PG_QUERY__VARIABLE_SET_KIND__VAR_SET_CURRENT:
      set.action = SetAction::kCurrent;
      break;
    case PG_QUERY__VARIABLE_SET_KIND__VAR_SET_MULTI:
      set.action = SetAction::kMulti;
      info->transaction_options = TransactionOptions(v->args, v->n_args);
      break;
    case PG_QUERY__VARIABLE_SET_KIND__VAR_RESET:
      set.action = SetAction::kReset;
      break;
    case PG_QUERY__VARIABLE_SET_KIND__VAR_RESET_ALL:
      set.action = SetAction::kResetAll;
      set.name.clear();
      break;
    default:
      return;  // kOther
  }
  if (set.name == "role") {
    info->kind = K::kSetRole;
  } else if (set.name == "session_authorization") {
    info->kind = K::kSetSessionAuthorization;
  } else {
    info->kind = K::kSet;
  }
  info->names_tenant = set.action != SetAction::kMulti && !set.name.empty() && GucNameEquals(set.name, variable);
}

// SELECT set_config(...) [, set_config(...) | constant | expression ...] with no FROM, WHERE
// or anything else: every call is evaluated, in order, with the arguments it shows. Returns
// the evaluated calls' nodes (empty when the statement is not of that shape). Other targets
// (now(), a scalar subquery) are walked like the rest of the statement.
std::unordered_set<const void*> DescribeSetConfigSelect(const PgQuery__SelectStmt* s, std::string_view variable,
                                                        StatementInfo* info) {
  std::unordered_set<const void*> evaluated;
  const bool plain = s->op == PG_QUERY__SET_OPERATION__SETOP_NONE && !s->into_clause && s->n_from_clause == 0 &&
                     !s->where_clause && s->n_group_clause == 0 && !s->having_clause && s->n_window_clause == 0 &&
                     s->n_values_lists == 0 && s->n_sort_clause == 0 && !s->limit_offset && !s->limit_count &&
                     s->n_locking_clause == 0 && !s->with_clause && s->n_distinct_clause == 0;
  if (!plain || s->n_target_list == 0) return evaluated;
  std::vector<SetConfigCall> calls;
  bool computed = false;
  for (size_t i = 0; i < s->n_target_list; ++i) {
    const PgQuery__Node* t = s->target_list[i];
    if (!t || t->node_case != PG_QUERY__NODE__NODE_RES_TARGET || !t->res_target->val) return {};
    const PgQuery__ResTarget* rt = t->res_target;
    if (rt->n_indirection != 0) return {};
    const PgQuery__Node* val = StripCasts(rt->val);
    bool plain_name = false;
    if (val && val->node_case == PG_QUERY__NODE__NODE_FUNC_CALL &&
        !IsSetConfigName(LastName(val->func_call->funcname, val->func_call->n_funcname, &plain_name))) {
      computed = true;  // now(), lower(...): the walk flags a set_config among its arguments
      continue;
    }
    if (val && val->node_case == PG_QUERY__NODE__NODE_FUNC_CALL) {
      std::optional<SetConfigCall> call = EvaluateSetConfig(val->func_call);
      if (!call) return {};
      if (rt->name != nullptr && rt->name[0] != '\0') call->column = rt->name;
      calls.push_back(std::move(*call));
      evaluated.insert(val->func_call);
      continue;
    }
    if (!IsInertTarget(rt->val)) computed = true;
  }
  if (calls.empty()) return {};
  info->computed_targets = computed;
  info->kind = SqlStatementKind::kSetConfigCall;
  info->target_count = s->n_target_list;
  for (const SetConfigCall& c : calls) {
    if (c.name.kind == SqlArgument::Kind::kParam ||
        (c.name.kind == SqlArgument::Kind::kConstant && GucNameEquals(c.name.text, variable))) {
      info->names_tenant = true;
    }
  }
  info->set_config_calls = std::move(calls);
  return evaluated;
}

// The string bodies of DO and CREATE FUNCTION / PROCEDURE (DefElem "as").
void WalkBodies(PgQuery__Node* const* elems, size_t n, Walker* walker) {
  for (size_t i = 0; i < n; ++i) {
    if (!elems[i] || elems[i]->node_case != PG_QUERY__NODE__NODE_DEF_ELEM) continue;
    const PgQuery__DefElem* d = elems[i]->def_elem;
    if (Str(d->defname) != "as" || !d->arg) continue;
    if (const char* body = NodeString(d->arg)) walker->Body(body);
    if (d->arg->node_case == PG_QUERY__NODE__NODE_LIST && d->arg->list) {
      for (size_t k = 0; k < d->arg->list->n_items; ++k) {
        if (const char* part = NodeString(d->arg->list->items[k])) walker->Body(part);
      }
    }
  }
}

void Describe(const PgQuery__Node* n, std::string_view variable, StatementInfo* info) {
  using K = SqlStatementKind;
  std::unordered_set<const void*> evaluated;
  if (!n) return;
  switch (n->node_case) {
    case PG_QUERY__NODE__NODE_TRANSACTION_STMT:
      DescribeTransaction(n->transaction_stmt, info);
      return;
    case PG_QUERY__NODE__NODE_VARIABLE_SET_STMT:
      DescribeSet(n->variable_set_stmt, variable, info);
      return;  // its arguments are constants
    case PG_QUERY__NODE__NODE_VARIABLE_SHOW_STMT:
      info->kind = K::kShow;
      info->name = AsciiLowerCopy(Str(n->variable_show_stmt->name));
      return;
    case PG_QUERY__NODE__NODE_DISCARD_STMT:
      switch (n->discard_stmt->target) {
        case PG_QUERY__DISCARD_MODE__DISCARD_ALL:
          info->kind = K::kDiscardAll;
          break;
        case PG_QUERY__DISCARD_MODE__DISCARD_PLANS:
          info->kind = K::kDiscardOther;
          info->name = "plans";
          break;
        case PG_QUERY__DISCARD_MODE__DISCARD_SEQUENCES:
          info->kind = K::kDiscardOther;
          info->name = "sequences";
          break;
        case PG_QUERY__DISCARD_MODE__DISCARD_TEMP:
          info->kind = K::kDiscardOther;
          info->name = "temp";
          break;
        default:
          break;
      }
      return;
    case PG_QUERY__NODE__NODE_DEALLOCATE_STMT:
      info->name = Str(n->deallocate_stmt->name);
      info->kind = info->name.empty() ? K::kDeallocateAll : K::kDeallocate;
      return;
    case PG_QUERY__NODE__NODE_SELECT_STMT:
      evaluated = DescribeSetConfigSelect(n->select_stmt, variable, info);
      break;
    case PG_QUERY__NODE__NODE_PREPARE_STMT:
    case PG_QUERY__NODE__NODE_LISTEN_STMT:
    case PG_QUERY__NODE__NODE_LOAD_STMT:
    case PG_QUERY__NODE__NODE_DO_STMT:
      info->creates_session_state = true;
      break;
    case PG_QUERY__NODE__NODE_DECLARE_CURSOR_STMT:
      if (n->declare_cursor_stmt->options & kCursorOptHold) info->creates_session_state = true;
      break;
    default:
      break;
  }
  Walker walker(variable, info, evaluated, CreatesObjects(n));
  if (n->node_case == PG_QUERY__NODE__NODE_DO_STMT) {
    WalkBodies(n->do_stmt->args, n->do_stmt->n_args, &walker);
  } else if (n->node_case == PG_QUERY__NODE__NODE_CREATE_FUNCTION_STMT) {
    WalkBodies(n->create_function_stmt->options, n->create_function_stmt->n_options, &walker);
  }
  walker.Walk(&n->base);
}

// ---------------------------------------------------------------------------------------------
// The pre-check.

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }

// Skips whitespace, comments (-- to the end of the line, /* */ nested as scan.l nests them)
// and '('. Returns false on an unterminated comment.
bool SkipToFirstWord(std::string_view s, size_t* i) {
  for (;;) {
    while (*i < s.size() && (IsSpace(s[*i]) || s[*i] == '(')) ++*i;
    if (*i + 1 >= s.size()) return true;
    if (s[*i] == '-' && s[*i + 1] == '-') {
      while (*i < s.size() && s[*i] != '\n' && s[*i] != '\r') ++*i;
      continue;
    }
    if (s[*i] == '/' && s[*i + 1] == '*') {
      int depth = 1;
      *i += 2;
      while (depth > 0) {
        if (*i + 1 >= s.size()) return false;
        if (s[*i] == '/' && s[*i + 1] == '*') {
          ++depth;
          *i += 2;
        } else if (s[*i] == '*' && s[*i + 1] == '/') {
          --depth;
          *i += 2;
        } else {
          ++*i;
        }
      }
      continue;
    }
    return true;
  }
}

// True when the quote at `q` may be followed by another after a newline, comments between
// allowed: scan.l joins such string constants into one ('set_' <newline> 'config').
bool QuoteMayContinue(std::string_view s, size_t q) {
  bool newline = false;
  for (size_t k = q + 1; k < s.size();) {
    const char c = s[k];
    if (c == '\n' || c == '\r') {
      newline = true;
      ++k;
    } else if (IsSpace(c)) {
      ++k;
    } else if (c == '-' && k + 1 < s.size() && s[k + 1] == '-') {
      newline = true;  // a comment ends with one
      while (k < s.size() && s[k] != '\n' && s[k] != '\r') ++k;
    } else {
      return newline && c == '\'';
    }
  }
  return false;
}

// The bytes the pre-check stops at; every other byte costs one table lookup.
enum : uint8_t { kUnderscore = 1, kAmpersand = 2, kBackslash = 4, kQuote = 8, kSemicolon = 16, kLetterI = 32 };
constexpr std::array<uint8_t, 256> MakeStopTable() {
  std::array<uint8_t, 256> t{};
  t['_'] = kUnderscore;
  t['&'] = kAmpersand;
  t['\\'] = kBackslash;
  t['\''] = kQuote;
  t[';'] = kSemicolon;
  t['i'] = kLetterI;
  t['I'] = kLetterI;
  return t;
}
constexpr std::array<uint8_t, 256> kStop = MakeStopTable();

// `lower` (lower case) at s[at...], ignoring ASCII case.
bool At(std::string_view s, size_t at, std::string_view lower) {
  if (at > s.size() || s.size() - at < lower.size()) return false;
  for (size_t k = 0; k < lower.size(); ++k) {
    if ((s[at + k] | 0x20) != lower[k]) return false;
  }
  return true;
}

enum class FirstWord { kSelectLike, kDml, kOther };

FirstWord ClassifyFirstWord(std::string_view s, size_t i) {
  size_t end = i;
  while (end < s.size() && IsWordByte(s[end])) ++end;
  const std::string_view w = s.substr(i, end - i);
  if (w.size() < 4 || w.size() > 6) return FirstWord::kOther;
  if (EqualsIgnoreAsciiCase(w, "select") || EqualsIgnoreAsciiCase(w, "with") || EqualsIgnoreAsciiCase(w, "values") ||
      EqualsIgnoreAsciiCase(w, "table")) {
    return FirstWord::kSelectLike;
  }
  if (EqualsIgnoreAsciiCase(w, "insert") || EqualsIgnoreAsciiCase(w, "update") || EqualsIgnoreAsciiCase(w, "delete") ||
      EqualsIgnoreAsciiCase(w, "merge")) {
    return FirstWord::kDml;
  }
  return FirstWord::kOther;
}

}  // namespace

const char* SqlStatementKindName(SqlStatementKind kind) {
  using K = SqlStatementKind;
  switch (kind) {
    case K::kOther: return "Other";
    case K::kParseError: return "ParseError";
    case K::kBegin: return "Begin";
    case K::kCommit: return "Commit";
    case K::kRollback: return "Rollback";
    case K::kSavepoint: return "Savepoint";
    case K::kReleaseSavepoint: return "ReleaseSavepoint";
    case K::kRollbackToSavepoint: return "RollbackToSavepoint";
    case K::kPrepareTransaction: return "PrepareTransaction";
    case K::kCommitPrepared: return "CommitPrepared";
    case K::kRollbackPrepared: return "RollbackPrepared";
    case K::kSet: return "Set";
    case K::kSetRole: return "SetRole";
    case K::kSetSessionAuthorization: return "SetSessionAuthorization";
    case K::kSetConfigCall: return "SetConfigCall";
    case K::kShow: return "Show";
    case K::kDiscardAll: return "DiscardAll";
    case K::kDiscardOther: return "DiscardOther";
    case K::kDeallocateAll: return "DeallocateAll";
    case K::kDeallocate: return "Deallocate";
  }
  return "?";
}

std::optional<bool> ParsePgBoolText(std::string_view text) {
  auto space = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
  while (!text.empty() && space(text.front())) text.remove_prefix(1);
  while (!text.empty() && space(text.back())) text.remove_suffix(1);
  if (text.empty()) return std::nullopt;
  // bool.c parse_bool_with_len: any prefix of the words, but "o" alone is ambiguous (on/off).
  auto prefix_of = [&](std::string_view word, size_t min_len) {
    return text.size() >= min_len && text.size() <= word.size() &&
           EqualsIgnoreAsciiCase(text, word.substr(0, text.size()));
  };
  if (prefix_of("true", 1) || prefix_of("yes", 1) || prefix_of("on", 2) || text == "1") return true;
  if (prefix_of("false", 1) || prefix_of("no", 1) || prefix_of("off", 2) || text == "0") return false;
  return std::nullopt;
}

std::vector<StatementInfo> AnalyzeSql(std::string_view sql, std::string_view tenant_variable) {
  // The server reads a Query's text up to its NUL.
  const size_t nul = sql.find('\0');
  if (nul != std::string_view::npos) sql = sql.substr(0, nul);
  const std::string text(sql);

  std::unique_ptr<PgQueryProtobufParseResult, ProtobufResultDeleter> result(
      new PgQueryProtobufParseResult(pg_query_parse_protobuf(text.c_str())));
  std::vector<StatementInfo> out;
  if (result->error) {
    StatementInfo e;
    e.kind = SqlStatementKind::kParseError;
    e.begin = 0;
    e.end = sql.size();
    e.error = Str(result->error->message);
    e.error_position = result->error->cursorpos;
    out.push_back(std::move(e));
    return out;
  }
  std::unique_ptr<PgQuery__ParseResult, ParseTreeDeleter> tree(pg_query__parse_result__unpack(
      nullptr, result->parse_tree.len, reinterpret_cast<const uint8_t*>(result->parse_tree.data)));
  if (!tree) {
    StatementInfo e;
    e.kind = SqlStatementKind::kParseError;
    e.end = sql.size();
    e.error = "pgtenant could not read libpg_query's parse tree";
    out.push_back(std::move(e));
    return out;
  }
  out.reserve(tree->n_stmts);
  for (size_t i = 0; i < tree->n_stmts; ++i) {
    const PgQuery__RawStmt* raw = tree->stmts[i];
    if (!raw) continue;
    StatementInfo info;
    const size_t begin = std::min<size_t>(static_cast<size_t>(std::max(raw->stmt_location, 0)), sql.size());
    size_t end = raw->stmt_len > 0 ? begin + static_cast<size_t>(raw->stmt_len) : sql.size();
    info.begin = begin;
    info.end = std::min(end, sql.size());
    Describe(raw->stmt, tenant_variable, &info);
    out.push_back(std::move(info));
  }
  return out;
}

bool NeedsAnalysis(std::string_view sql) {
  const void* nul = std::memchr(sql.data(), '\0', sql.size());
  if (nul) sql = sql.substr(0, static_cast<const char*>(nul) - sql.data());
  size_t i = 0;
  if (!SkipToFirstWord(sql, &i)) return false;  // an unterminated comment: the server rejects it
  if (i >= sql.size()) return false;            // nothing but comments: no statement
  const FirstWord first = ClassifyFirstWord(sql, i);
  if (first == FirstWord::kOther) return true;
  // One pass over the rest, stopping only at the bytes that can start what matters:
  //   ';' followed by anything but whitespace: a second statement, which may be anything;
  //   "set_config" and "pg_[try_]advisory_lock..." both contain '_' ("set" before it,
  //   "config" or "advisory" after); "u&" a Unicode escape, which can spell any name;
  //   a backslash with "e'": an escape string, which can spell any string;
  //   a quote, newline, quote: string continuation ('set_' <newline> 'config');
  //   SELECT ... INTO TEMP / pg_temp: "into", then "temp" anywhere.
  const uint8_t mask = first == FirstWord::kSelectLike ? 0xff : static_cast<uint8_t>(~kLetterI);
  bool backslash = false;
  bool e_quote = false;
  bool into = false;
  for (size_t k = i; k < sql.size(); ++k) {
    const uint8_t stop = kStop[static_cast<unsigned char>(sql[k])] & mask;
    if (stop == 0) continue;
    switch (stop) {
      case kUnderscore:
        if ((k >= 3 && At(sql, k - 3, "set") && At(sql, k + 1, "config")) || At(sql, k + 1, "advisory")) return true;
        break;
      case kAmpersand:
        if (k > 0 && (sql[k - 1] | 0x20) == 'u') return true;
        break;
      case kBackslash:
        backslash = true;
        break;
      case kQuote:
        if (k > 0 && (sql[k - 1] | 0x20) == 'e') e_quote = true;
        if (QuoteMayContinue(sql, k)) return true;
        break;
      case kSemicolon:
        for (size_t r = k + 1; r < sql.size(); ++r) {
          if (!IsSpace(sql[r]) && sql[r] != ';') return true;
        }
        k = sql.size();
        break;
      case kLetterI:
        if (At(sql, k + 1, "nto")) into = true;
        break;
      default:
        break;
    }
  }
  if (backslash && e_quote) return true;
  return into && FindIgnoreAsciiCase(sql, "temp") != std::string_view::npos;
}

}  // namespace pgtenant::routing
