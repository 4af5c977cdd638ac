// ClientSession's deferred transaction blocks (docs/architecture.md, "Deferred BEGIN").
//
// The way applications scope a tenant to one transaction on a pooled connection (Supabase's,
// Prisma's and PostgREST's pattern) is `BEGIN; SET LOCAL app.tenant_id = 'x'; ...; COMMIT`.
// pgtenant cannot choose a server connection at the BEGIN: the pool depends on the tenant, which
// comes after it. So a BEGIN outside a block, with no server held, is answered by pgtenant with
// exactly what PostgreSQL would send, and the block is "deferred": SET LOCAL of the tenant,
// set_config(..., true) of it and a session-level change of it choose the tenant (and pool) of
// the transaction, other SET LOCALs are kept, and COMMIT / ROLLBACK of a block that never needed
// a server are answered too. The first statement that needs a server gets one of the
// transaction's pool; ahead of it go the prelude's settings, the client's own BEGIN and its kept
// SET LOCALs, then the transaction's tenant (BackendState::WritePrelude), so that on the server
// everything runs as sent and the tenant is set inside the block.
#include <cctype>

#include "protocol/messages.h"
#include "proxy/client_session.h"
#include "proxy/log.h"
#include "proxy/pooler.h"
#include "proxy/server_session.h"
#include "routing/injection.h"
#include "routing/sql_names.h"
#include "routing/statement_classifier.h"
#include "routing/tenant_source.h"
#include "routing/transaction_rules.h"

namespace pgtenant::proxy {

using routing::StatementKind;

namespace {

// A Query whose first word is BEGIN or START (any case): the only ones that can open a deferred
// block. A byte test, so that ordinary statements (SELECT, SET, ...) pay no lexing. A BEGIN behind
// a comment is not deferred: it goes to a server, as before deferral existed.
bool MayBeBegin(std::string_view sql) {
  size_t i = sql.find_first_not_of(" \t\r\n");
  if (i == std::string_view::npos || sql.size() - i < 5) return false;
  auto is_word = [&](std::string_view word) {
    for (size_t k = 0; k < word.size(); ++k) {
      if (static_cast<char>(sql[i + k] | 0x20) != word[k]) return false;
    }
    if (i + word.size() == sql.size()) return true;
    const char next = sql[i + word.size()];
    return !(std::isalnum(static_cast<unsigned char>(next)) || next == '_' || next == '$');
  };
  return is_word("begin") || is_word("start");
}

std::string_view StatementText(std::string_view sql, const routing::ClassifiedStatement& st) {
  return sql.substr(st.begin, st.end - st.begin);
}

// A SELECT with the tenant's set_config(..., true) among targets only the server computes
// (`SELECT now(), set_config('app.tenant_id', $1, true) AS tenant, 1`): every call is local to
// the block and names its setting with a constant or a parameter.
bool ReadNamingSelect(std::string_view sql, std::string_view variable, std::vector<routing::SetConfigCall>* calls) {
  std::vector<routing::StatementInfo> infos = routing::AnalyzeSql(sql, variable);
  if (infos.size() != 1) return false;
  const routing::StatementInfo& in = infos.front();
  if (in.kind != routing::SqlStatementKind::kSetConfigCall || !in.names_tenant || in.mentions_tenant_unknowably ||
      in.creates_session_state || !in.computed_targets) {
    return false;
  }
  for (const routing::SetConfigCall& c : in.set_config_calls) {
    if (c.is_local != std::optional<bool>(true) || c.name.kind == routing::SqlArgument::Kind::kNull) return false;
  }
  *calls = in.set_config_calls;
  return true;
}

}  // namespace

bool ClientSession::MayDeferBegin() {
  // Session mode gives a client its server for the whole session: nothing to defer there.
  std::string sqlstate, message;
  Pool* pool = ResolvePool(&sqlstate, &message);
  return pool == nullptr || !pool->session_mode();
}

const std::optional<std::string>& ClientSession::TransactionTenant() const {
  return deferred_ && deferred_->names_tenant ? deferred_->tenant : wanted_.tenant;
}

char ClientSession::IdleTransactionStatus() const {
  if (!deferred_) return 'I';
  return deferred_->aborted ? 'E' : 'T';
}

void ClientSession::AbortDeferredBlock(const Status& error) {
  // As a Postgres error inside a block: the block is aborted until ROLLBACK (or COMMIT).
  deferred_->aborted = true;
  std::string out;
  protocol::AppendError(&out, "ERROR", error.sqlstate(), error.message());
  protocol::AppendReadyForQuery(&out, 'E');
  stream_.Write(out);
}

bool ClientSession::AnswerQueryInDeferredBlock(std::string_view sql) {
  const conf::Config& cfg = pooler_->config();
  const std::string& var = cfg.tenancy.variable;
  if (!deferred_) {
    if (!MayBeBegin(sql)) return false;
    std::vector<routing::ClassifiedStatement> stmts = routing::ClassifyQuery(sql, var);
    if (stmts.size() != 1 || stmts.front().kind != StatementKind::kBegin || !MayDeferBegin()) return false;
    std::string out;
    OpenDeferredBlock(StatementText(sql, stmts.front()), &out);
    protocol::AppendReadyForQuery(&out, 'T');
    stream_.Write(out);
    return true;
  }
  DeferredBlock& block = *deferred_;
  const std::string first = routing::FirstKeyword(sql);
  // Only transaction control, SET / RESET and the tenant's set_config are answered here; the
  // first statement of an ordinary block (pgbench's UPDATE) goes to a server without lexing.
  if (!block.aborted && first != "commit" && first != "end" && first != "rollback" && first != "abort" &&
      first != "begin" && first != "start" && first != "set" && first != "reset" &&
      !routing::MightTouchTenant(sql, var)) {
    return false;
  }
  std::vector<routing::ClassifiedStatement> stmts = routing::ClassifyQuery(sql, var);
  std::string out;
  const bool ends_block = stmts.size() == 1 && stmts.front().kind == StatementKind::kCommitOrRollback &&
                          first != "prepare";
  if (block.aborted) {
    if (ends_block) {
      // COMMIT of a failed block rolls back too; a rollback cannot fail.
      (void)EndDeferredBlock(/*commit=*/false, &out);
      protocol::AppendReadyForQuery(&out, 'I');
      stream_.Write(out);
      return true;
    }
    AbortDeferredBlock(AbortedBlockError());
    return true;
  }
  if (stmts.size() != 1) return false;  // several statements: on the server, behind the BEGIN
  const routing::ClassifiedStatement& st = stmts.front();
  switch (st.kind) {
    case StatementKind::kCommitOrRollback: {
      if (!ends_block) return false;  // PREPARE TRANSACTION
      Status s = EndDeferredBlock(first == "commit" || first == "end", &out);
      if (!s.ok()) {
        AbortDeferredBlock(s);
        return true;
      }
      protocol::AppendReadyForQuery(&out, 'I');
      stream_.Write(out);
      return true;
    }
    case StatementKind::kBegin:
      OpenDeferredBlock(StatementText(sql, st), &out);
      protocol::AppendReadyForQuery(&out, 'T');
      stream_.Write(out);
      return true;
    case StatementKind::kSetLocalTenant:
    case StatementKind::kSetConfigLocalTenant:
    case StatementKind::kSetTenant:
    case StatementKind::kSetConfigTenant:
    case StatementKind::kResetTenant: {
      std::optional<std::string> target;
      if (st.kind == StatementKind::kResetTenant) {
        target = startup_tenant_;
      } else if (st.is_default) {
        target = wanted_.tenant;  // SET LOCAL ... TO DEFAULT: the session's tenant
      } else {
        target = st.value;
      }
      Status s = NameTenantInDeferredBlock(target, IsTransactionScoped(st.kind));
      if (!s.ok()) {
        AbortDeferredBlock(s);
        return true;
      }
      if (st.kind == StatementKind::kSetConfigLocalTenant || st.kind == StatementKind::kSetConfigTenant) {
        protocol::AppendTextRowDescription(&out, st.column);
        protocol::AppendTextDataRow(&out, st.value);
        protocol::AppendCommandComplete(&out, "SELECT 1");
      } else {
        protocol::AppendCommandComplete(&out, first == "reset" ? "RESET" : "SET");
      }
      protocol::AppendReadyForQuery(&out, 'T');
      stream_.Write(out);
      return true;
    }
    case StatementKind::kOther: {
      // SET LOCAL and SET TRANSACTION last as long as the block: kept, and sent right after the
      // BEGIN. (A session-level SET of another setting goes to the server, where it is followed
      // or pins the client as outside a block.)
      std::vector<std::string> words = routing::FirstWords(sql, 2);
      if (words.size() != 2 || words[0] != "set" || (words[1] != "local" && words[1] != "transaction")) return false;
      block.replay += std::string(StatementText(sql, st));
      block.replay += ';';
      protocol::AppendCommandComplete(&out, "SET");
      protocol::AppendReadyForQuery(&out, 'T');
      stream_.Write(out);
      return true;
    }
    case StatementKind::kMentionsTenant: {
      // The tenant's set_config among targets only the server computes (`SELECT now(),
      // set_config('app.tenant_id', 'x', true)`): it names the block's tenant, and the server
      // runs it, as a Bind of a kDeferredNamingSelect.
      std::vector<routing::SetConfigCall> calls;
      std::optional<std::string> tenant;
      if (!ReadNamingSelect(StatementText(sql, st), var, &calls) || !BoundNamingTenant(calls, {}, &tenant)) {
        return false;
      }
      Status s = NameTenantTheServerSets(tenant);
      if (!s.ok()) {
        AbortDeferredBlock(s);
        return true;
      }
      return false;
    }
    default:
      return false;
  }
}

Status ClientSession::NameTenantTheServerSets(const std::optional<std::string>& tenant) {
  std::optional<std::string> before = TransactionTenant();
  Status s = NameTenantInDeferredBlock(tenant, /*transaction_scoped=*/true);
  if (!s.ok()) return s;
  deferred_->server_sets_tenant = true;
  deferred_->tenant_before = std::move(before);
  return Status::Ok();
}

Status ClientSession::AbortedBlockError() {
  return Status::Error("25P02", "current transaction is aborted, commands ignored until end of transaction block");
}

namespace {

// A SELECT whose targets are all set_config(name, value, true) calls with constant or bound
// names and values (PostgREST's transaction settings), read by the real parser.
bool ReadLocalSetConfigs(std::string_view sql, std::string_view variable, std::vector<routing::SetConfigCall>* calls) {
  std::vector<routing::StatementInfo> infos = routing::AnalyzeSql(sql, variable);
  if (infos.size() != 1) return false;
  const routing::StatementInfo& in = infos.front();
  if (in.kind != routing::SqlStatementKind::kSetConfigCall || in.mentions_tenant_unknowably ||
      in.creates_session_state || in.target_count != in.set_config_calls.size()) {
    return false;
  }
  using Kind = routing::SqlArgument::Kind;
  for (const routing::SetConfigCall& c : in.set_config_calls) {
    if (c.is_local != std::optional<bool>(true) || c.name.kind == Kind::kNull || c.value.kind == Kind::kNull) {
      return false;
    }
  }
  *calls = in.set_config_calls;
  return true;
}

}  // namespace

bool ClientSession::BoundNamingTenant(const std::vector<routing::SetConfigCall>& calls,
                                      const std::vector<std::optional<std::string>>& params,
                                      std::optional<std::string>* tenant) {
  const std::string& var = pooler_->config().tenancy.variable;
  bool named = false;
  for (const routing::SetConfigCall& call : calls) {
    std::optional<std::string> name = SetConfigArgument(call.name, params);
    if (!name) return false;
    if (!routing::GucNameEquals(*name, var)) continue;
    std::optional<std::string> value = SetConfigArgument(call.value, params);
    if (!value) return false;
    *tenant = value;
    named = true;
  }
  return named;
}

std::optional<std::string> ClientSession::SetConfigArgument(const routing::SqlArgument& arg,
                                                            const std::vector<std::optional<std::string>>& params) {
  if (arg.kind == routing::SqlArgument::Kind::kConstant) return arg.text;
  if (arg.kind != routing::SqlArgument::Kind::kParam || arg.param < 1 ||
      arg.param > static_cast<int>(params.size())) {
    return std::nullopt;
  }
  return params[arg.param - 1];
}

void ClientSession::ExecuteDeferredSetConfigs(const LocalStatement& stmt,
                                              const std::vector<std::optional<std::string>>& params) {
  const std::string& var = pooler_->config().tenancy.variable;
  std::vector<std::optional<std::string>> row;
  std::string kept;
  std::optional<std::string> tenant;
  bool names_tenant = false;
  for (const routing::SetConfigCall& call : stmt.calls) {
    std::optional<std::string> name = SetConfigArgument(call.name, params);
    std::optional<std::string> value = SetConfigArgument(call.value, params);
    if (!name || !value) {
      AnswerError(Status::Error("22004", "pgtenant does not take a NULL set_config argument before the block has a "
                                         "server; name the tenant first"),
                  false);
      return;
    }
    if (routing::GucNameEquals(*name, var)) {
      tenant = value;
      names_tenant = true;
    } else {
      kept += "SELECT pg_catalog.set_config(" + routing::QuoteLiteral(*name) + ", " + routing::QuoteLiteral(*value) +
              ", true);";
    }
    row.push_back(value);
  }
  if (deferred_) {
    Status s = deferred_->aborted ? AbortedBlockError()
                                  : names_tenant ? NameTenantInDeferredBlock(tenant, /*transaction_scoped=*/true)
                                                 : Status::Ok();
    if (!s.ok()) {
      deferred_->aborted = true;
      AnswerError(s, false);
      return;
    }
    deferred_->replay += kept;  // sent right after the block's BEGIN, with their values
    ++deferred_->queries;
  }
  // Outside a block, set_config(..., true) lasts no longer than its statement.
  std::string out;
  protocol::AppendDataRow(&out, row);
  protocol::AppendCommandComplete(&out, "SELECT 1");
  stream_.Write(out);
}

int ClientSession::DeferrableStatementKind(std::string_view sql, routing::ClassifiedStatement* statement,
                                           std::vector<routing::SetConfigCall>* calls) {
  if (!deferred_ && !MayBeBegin(sql)) return 0;
  const conf::Config& cfg = pooler_->config();
  std::vector<routing::ClassifiedStatement> stmts = routing::ClassifyQuery(sql, cfg.tenancy.variable);
  if (stmts.size() != 1) return 0;
  const routing::ClassifiedStatement& st = stmts.front();
  if (st.kind == StatementKind::kBegin) return deferred_ || MayDeferBegin() ? kDeferredBeginStatement : 0;
  if (!deferred_) return 0;
  if (st.kind == StatementKind::kCommitOrRollback && routing::FirstKeyword(sql) != "prepare") {
    return kDeferredEndStatement;
  }
  if (IsTransactionScoped(st.kind) && !st.is_default) {
    *statement = st;
    return static_cast<int>(st.kind);
  }
  // (A set_config of other settings only is kOther to the shapes; NeedsAnalysis keeps ordinary
  // statements away from the parser.)
  if ((st.kind == StatementKind::kMentionsTenant || (st.kind == StatementKind::kOther && routing::NeedsAnalysis(sql))) &&
      ReadLocalSetConfigs(sql, cfg.tenancy.variable, calls)) {
    return kDeferredSetConfigsStatement;
  }
  if (st.kind == StatementKind::kMentionsTenant && ReadNamingSelect(sql, cfg.tenancy.variable, calls)) {
    return kDeferredNamingSelect;
  }
  return 0;
}

bool ClientSession::IsTransactionScoped(routing::StatementKind kind) {
  return kind == StatementKind::kSetLocalTenant || kind == StatementKind::kSetConfigLocalTenant;
}

void ClientSession::OpenDeferredBlock(std::string_view begin_sql, std::string* out) {
  if (deferred_) {
    // PostgreSQL warns and stays in the block.
    protocol::AppendNotice(out, "25001", "there is already a transaction in progress");
  } else {
    deferred_ = std::make_unique<DeferredBlock>();
    deferred_->begin_sql = std::string(begin_sql);
  }
  protocol::AppendCommandComplete(out, "BEGIN");
}

Status ClientSession::EndDeferredBlock(bool commit, std::string* out) {
  if (!deferred_) {
    // COMMIT or ROLLBACK outside a block: PostgreSQL warns and does nothing.
    protocol::AppendNotice(out, "25P01", "there is no transaction in progress");
    protocol::AppendCommandComplete(out, commit ? "COMMIT" : "ROLLBACK");
    return Status::Ok();
  }
  if (deferred_->aborted) commit = false;  // COMMIT of a failed block rolls back
  if (commit && deferred_->changes_session_tenant) {
    // Checked when it was made; only the tenant's client limit can refuse it now.
    Status s = ChangeTenant(deferred_->tenant);
    if (!s.ok()) return s;
  }
  protocol::AppendCommandComplete(out, commit ? "COMMIT" : "ROLLBACK");
  deferred_.reset();
  return Status::Ok();
}

Status ClientSession::NameTenantInDeferredBlock(const std::optional<std::string>& tenant, bool transaction_scoped) {
  const conf::Config& cfg = pooler_->config();
  if (!set_source_allowed()) {
    return Status::InsufficientPrivilege("changing " + cfg.tenancy.variable +
                                         " with SQL is not allowed: tenancy.sources does not include set");
  }
  if (tenant) {
    Status s = routing::CheckTenantAllowed(cfg, pooler_->routes().validator(), user_, *tenant,
                                           routing::TenantCheckPhase::kSet);
    if (!s.ok()) return s;
  }
  deferred_->tenant = tenant;
  deferred_->names_tenant = true;
  // A session-level change made in a block is the session's once the block commits.
  if (!transaction_scoped) deferred_->changes_session_tenant = true;
  return Status::Ok();
}

bool ClientSession::TenantNamedInOneQuery(std::string_view sql, const std::vector<routing::ClassifiedStatement>& stmts,
                                          Status* refusal) {
  size_t i = 0;
  const bool block = stmts.front().kind == StatementKind::kBegin;
  if (block) ++i;
  const routing::ClassifiedStatement* naming = nullptr;
  for (; i < stmts.size() && naming == nullptr; ++i) {
    const routing::ClassifiedStatement& st = stmts[i];
    const bool names = st.kind == StatementKind::kSetLocalTenant || st.kind == StatementKind::kSetConfigLocalTenant ||
                       st.kind == StatementKind::kSetTenant || st.kind == StatementKind::kSetConfigTenant;
    if (names && !st.is_default && !st.value_is_param) {
      // Outside a block a SET LOCAL lasts no longer than its statement.
      if (!block && IsTransactionScoped(st.kind)) return false;
      naming = &st;
      break;
    }
    std::vector<std::string> words = routing::FirstWords(StatementText(sql, st), 2);
    const bool kept = block && st.kind == StatementKind::kOther && words.size() == 2 && words[0] == "set" &&
                      (words[1] == "local" || words[1] == "transaction");
    if (!kept) return false;  // something before the tenant needs a server
  }
  if (naming == nullptr) return false;
  // What follows must not name the tenant again (the server alone would know which one holds).
  for (size_t j = static_cast<size_t>(naming - stmts.data()) + 1; j < stmts.size(); ++j) {
    if (stmts[j].kind != StatementKind::kOther && stmts[j].kind != StatementKind::kCommitOrRollback) return false;
  }
  deferred_ = std::make_unique<DeferredBlock>();
  deferred_->in_one_query = true;
  *refusal = NameTenantInDeferredBlock(naming->value, IsTransactionScoped(naming->kind));
  return true;
}

void ClientSession::DeferredBlockSent() {
  // The prelude sent the client's own BEGIN and the SET LOCALs it sent since, as it sent them,
  // ahead of the tenant (their answers are pgtenant's: the client had them already).
  txn_.queries += deferred_->queries;
  if (deferred_->changes_session_tenant) {
    // Counts once the block commits on the server (SettlePendingChanges).
    pending_tenant_ = std::make_unique<std::optional<std::string>>(deferred_->tenant);
    pending_undone_ = false;
  }
  deferred_.reset();
}

}  // namespace pgtenant::proxy
