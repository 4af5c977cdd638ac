// ClientSession's handling of statements that change the tenant (docs/reference.md section 3, source
// `set`). Outside a transaction pgtenant answers them itself with exactly what Postgres would
// send, so a tenant switch costs no server round trip and the next transaction is routed to
// the new tenant's pool. Inside a transaction a session-level switch is refused by making the
// server raise the error, so the transaction aborts as it would on Postgres.
#include <algorithm>
#include <cctype>

#include "protocol/message_writer.h"
#include "protocol/messages.h"
#include "proxy/client_session.h"
#include "proxy/log.h"
#include "proxy/pooler.h"
#include "proxy/server_session.h"
#include "routing/sql_names.h"
#include "routing/statement_classifier.h"
#include "routing/tenant_source.h"
#include "routing/transaction_rules.h"

namespace pgtenant::proxy {

using routing::StatementKind;
namespace fe = protocol::fe;

namespace {

std::string_view AsView(std::span<const uint8_t> s) {
  return std::string_view(reinterpret_cast<const char*>(s.data()), s.size());
}

// Query payloads end with the NUL of the C string.
std::string_view QueryText(std::span<const uint8_t> payload) {
  std::string_view sql = AsView(payload);
  if (!sql.empty() && sql.back() == '\0') sql.remove_suffix(1);
  return sql;
}

bool IsSessionChange(StatementKind k) {
  return k == StatementKind::kSetTenant || k == StatementKind::kResetTenant ||
         k == StatementKind::kSetConfigTenant;
}

bool IsLocalChange(StatementKind k) {
  return k == StatementKind::kSetLocalTenant || k == StatementKind::kSetConfigLocalTenant;
}

// LocalStatement::kind of statements the server holds (see InspectParse): one that raises a
// refusal, and a SET LOCAL / set_config(..., true) whose bound value is checked at each Bind.
constexpr int kRefusedStatement = -1;
constexpr int kCheckedLocalStatement = -2;
// The server-side name under which a tenant statement pgtenant cannot answer itself runs.
constexpr const char* kServerRunStatement = "pgtenant_client_set";

bool SetSourceAllowed(const conf::Config& cfg) {
  return std::find(cfg.tenancy.sources.begin(), cfg.tenancy.sources.end(), conf::TenantSource::kSet) !=
         cfg.tenancy.sources.end();
}

}  // namespace

bool ClientSession::user_may_act_as_any_tenant() const {
  const conf::Config& cfg = pooler_->config();
  auto it = cfg.auth.users.find(user_);
  return cfg.auth.type == conf::AuthType::kTrust && it == cfg.auth.users.end()
             ? true
             : it != cfg.auth.users.end() && it->second.any_tenant;
}

std::string ClientSession::RefusalSql(const Status& error) {
  std::string message;
  for (char c : error.message()) {
    if (c == '\'') message += "''";
    else if (c != '$' && c != '\0') message += c;  // '$' could close the dollar quote
  }
  return "DO $pgtenant$BEGIN RAISE EXCEPTION USING ERRCODE = '" + error.sqlstate() + "', MESSAGE = '" +
         message + "'; END$pgtenant$";
}

void ClientSession::AnswerError(const Status& error, bool with_ready) {
  std::string out;
  protocol::AppendError(&out, "ERROR", error.sqlstate(), error.message());
  if (deferred_) deferred_->aborted = true;  // as an error inside a block
  if (with_ready) {
    protocol::AppendReadyForQuery(&out, IdleTransactionStatus());
  } else {
    skip_until_sync_ = true;  // extended protocol: skip to the Sync, as Postgres does
  }
  stream_.Write(out);
}

Status ClientSession::ChangeTenant(const std::optional<std::string>& tenant) {
  const conf::Config& cfg = pooler_->config();
  if (tenant) {
    Status s = routing::CheckTenantAllowed(cfg, pooler_->routes().validator(), user_, *tenant,
                                           routing::TenantCheckPhase::kSet);
    if (!s.ok()) return s;
  }
  if (tenant != wanted_.tenant) {
    // The client now counts against the new tenant's connection limit.
    if (tenant) {
      Status slot = pooler_->AcquireTenantSlot(*tenant);
      if (!slot.ok()) return slot;
    }
    if (holds_tenant_slot_) pooler_->ReleaseTenantSlot(*wanted_.tenant);
    holds_tenant_slot_ = tenant.has_value();
  }
  if (tenant != wanted_.tenant) {
    LOG_DEBUG("client %llu: tenant %s -> %s", static_cast<unsigned long long>(id_),
              wanted_.tenant ? wanted_.tenant->c_str() : "(none)", tenant ? tenant->c_str() : "(none)");
  }
  wanted_.tenant = tenant;
  ++tenant_namings_;
  tenantless_ = false;  // the prelude sets the tenant before the next batch
  // In transaction mode the server goes back to the pool when the transaction ends; only
  // session mode and a pinned client keep it across the change.
  if (server_ != nullptr && (server_->pool()->session_mode() || pinned_)) {
    // Session mode holds a server between transactions. Another pool's tenant (or a session
    // that must now be refused for having none) must not run on it: give it back (reset) and
    // go through the pool choice again at the next statement.
    std::string sqlstate, message;
    Pool* pool = ResolvePool(&sqlstate, &message);
    if (pool != server_->pool()) {
      ServerSession* s = server_;
      server_ = nullptr;
      state_ = State::kIdle;
      pinned_ = false;  // its session state goes with the reset of the old connection
      s->DetachSessionEnd();
    } else {
      prelude_pending_ = true;
    }
  }
  return Status::Ok();
}

Status ClientSession::CheckLocalTenant(const std::string& tenant) {
  // A transaction-local tenant must be one this user may act as, and served by the pool the
  // transaction runs on (another pool's tenant has no rows here, or worse, other rules).
  const conf::Config& cfg = pooler_->config();
  if (tenant.empty()) return Status::Ok();
  Status s = routing::CheckTenantAllowed(cfg, pooler_->routes().validator(), user_, tenant,
                                         routing::TenantCheckPhase::kSet);
  if (!s.ok()) return s;
  std::string sqlstate, message;
  Pool* current = server_ != nullptr ? server_->pool() : ResolvePool(&sqlstate, &message);
  const std::string* pool = pooler_->routes().PoolFor(tenant);
  if (current != nullptr && (pool == nullptr || *pool != current->name())) {
    return Status::ActiveTransaction("tenant \"" + tenant + "\" is served by pool \"" +
                                     (pool ? *pool : std::string("?")) + "\", not by this transaction's pool \"" +
                                     current->name() + "\"; change tenants between transactions");
  }
  return Status::Ok();
}

ClientSession::Verdict ClientSession::InspectForTenancy(const protocol::Frame& f, bool server_clean,
                                                        std::string* replacement) {
  switch (f.type) {
    case fe::kQuery:
      return InspectQuery(QueryText(f.payload), server_clean, replacement);
    case fe::kParse:
      return InspectParse(f, server_clean, replacement);
    case fe::kBind:
    case fe::kDescribe:
    case fe::kExecute:
    case fe::kClose:
      if (!local_) return Verdict::kForward;
      return InspectLocalReference(f, server_clean, replacement);
    default:  // Sync: HandleActive ends the batch's portals
      return Verdict::kForward;
  }
}

ClientSession::Verdict ClientSession::InspectDeallocate(std::string_view sql, bool server_clean) {
  // Protocol-level statement names are the client's own (prepared_statements.h): DEALLOCATE of
  // one is answered here. SQL-level PREPAREd ones (a pinned client) live on the server.
  std::vector<std::string> w = routing::FirstWords(sql, 4);
  bool all = std::find(w.begin(), w.end(), "all") != w.end();
  std::string name;
  if (!all) {
    size_t at = sql.find_first_of(" \t\r\n");
    std::string_view rest = at == std::string_view::npos ? std::string_view() : sql.substr(at);
    while (!rest.empty() && (std::isspace(static_cast<unsigned char>(rest.front())) != 0)) rest.remove_prefix(1);
    if (w.size() > 1 && w[1] == "prepare") rest = rest.substr(std::min(rest.size(), size_t{7}));
    while (!rest.empty() && (std::isspace(static_cast<unsigned char>(rest.front())) != 0)) rest.remove_prefix(1);
    while (!rest.empty() && (rest.back() == ';' || std::isspace(static_cast<unsigned char>(rest.back())) != 0)) {
      rest.remove_suffix(1);
    }
    if (rest.size() >= 2 && rest.front() == '"' && rest.back() == '"') {
      name = std::string(rest.substr(1, rest.size() - 2));
    } else {
      for (char c : rest) name += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  if (all) {
    if (statements_) statements_->clear();
    // Pinned (SQL-level statements live on its server) or behind unanswered work: the server
    // runs it, and its answer tells pgtenant what it dropped (BackendState).
    if (pinned_ || !server_clean) return Verdict::kForward;
  } else {
    if (!statements_ || statements_->erase(name) == 0) return Verdict::kForward;
    if (!server_clean) return Verdict::kForward;  // the server answers 26000: documented
  }
  std::string out;
  protocol::AppendCommandComplete(&out, all ? "DEALLOCATE ALL" : "DEALLOCATE");
  protocol::AppendReadyForQuery(&out, IdleTransactionStatus());
  stream_.Write(out);
  return Verdict::kAnswered;
}

ClientSession::Verdict ClientSession::InspectQuery(std::string_view sql, bool server_clean,
                                                   std::string* replacement) {
  const conf::Config& cfg = pooler_->config();
  {
    size_t i = 0;
    while (i < sql.size() && std::isspace(static_cast<unsigned char>(sql[i])) != 0) ++i;
    if (sql.size() - i >= 10 && (sql[i] | 0x20) == 'd' && (sql[i + 1] | 0x20) == 'e' &&
        routing::FirstKeyword(sql) == "deallocate") {
      return InspectDeallocate(sql.substr(i), server_clean);
    }
  }
  const std::string& var = cfg.tenancy.variable;
  if (!routing::MightTouchTenant(sql, var)) return Verdict::kForward;
  std::vector<routing::ClassifiedStatement> stmts = routing::ClassifyQuery(sql, var);
  bool resets = false, mentions = false;
  for (const auto& st : stmts) {
    resets |= st.kind == StatementKind::kResetAll || st.kind == StatementKind::kDiscardAll;
    mentions |= st.kind != StatementKind::kOther && st.kind != StatementKind::kBegin &&
                st.kind != StatementKind::kCommitOrRollback && st.kind != StatementKind::kResetAll &&
                st.kind != StatementKind::kDiscardAll;
  }
  if (!resets && !mentions) return Verdict::kForward;
  auto refuse = [&](const Status& error) {
    if (server_clean) {
      AnswerError(error, /*with_ready=*/true);
      return Verdict::kAnswered;
    }
    protocol::AppendQuery(replacement, RefusalSql(error));
    return Verdict::kReplaced;
  };
  if (mentions && server_ == nullptr && !deferred_ && stmts.size() > 1) {
    Status refusal;
    if (TenantNamedInOneQuery(sql, stmts, &refusal)) {
      if (!refusal.ok()) {
        deferred_.reset();
        return refuse(refusal);
      }
      tenant_may_change_ = true;  // the Query's own SET reaches the server too
      return Verdict::kForward;
    }
  }
  if (mentions && !SetSourceAllowed(cfg)) {
    return refuse(Status::InsufficientPrivilege("changing " + var + " with SQL is not allowed: tenancy.sources does not include set"));
  }
  if (stmts.size() == 1) {
    const routing::ClassifiedStatement& st = stmts.front();
    if (IsSessionChange(st.kind)) {
      std::optional<std::string> target = st.kind == StatementKind::kResetTenant ? startup_tenant_
                                                                                 : std::optional<std::string>(st.value);
      if (!server_clean) {
        if (target == wanted_.tenant) return Verdict::kForward;  // no change: harmless on the server
        return refuse(Status::ActiveTransaction(
            "cannot change " + var + " inside a transaction block; COMMIT or ROLLBACK first, or use SET LOCAL for a tenant of the same pool"));
      }
      Status s = ChangeTenant(target);
      if (!s.ok()) return refuse(s);
      std::string out;
      if (st.kind == StatementKind::kSetConfigTenant) {
        protocol::AppendTextRowDescription(&out, st.column);
        protocol::AppendTextDataRow(&out, st.value);
        protocol::AppendCommandComplete(&out, "SELECT 1");
      } else {
        protocol::AppendCommandComplete(&out, routing::FirstKeyword(sql) == "reset" ? "RESET" : "SET");
      }
      protocol::AppendReadyForQuery(&out, IdleTransactionStatus());
      stream_.Write(out);
      return Verdict::kAnswered;
    }
    if (IsLocalChange(st.kind)) {
      if (st.value_is_param || st.is_default) return Verdict::kForward;
      Status s = CheckLocalTenant(st.value);
      if (!s.ok()) return refuse(s);
      return Verdict::kForward;
    }
  }
  if (mentions && deferred_ && deferred_->server_sets_tenant && server_ == nullptr) {
    // The deferred block's tenant was named by this very Query (AnswerQueryInDeferredBlock),
    // checked there; the server runs it and sets the variable itself.
    tenant_may_change_ = true;
    return Verdict::kForward;
  }
  if (mentions && !user_may_act_as_any_tenant()) {
    return refuse(Status::InsufficientPrivilege(
        "user \"" + user_ + "\" may only act as its configured tenants; statements that change " + var +
        " in another form are refused (use SET " + var + " = '...' on its own)"));
  }
  if (resets) {
    // DISCARD ALL: the server's answer says whether it ran (OnServerDiscardedAll); inside a
    // block it fails and changes nothing. RESET ALL: see ResetAllSent.
    if (std::any_of(stmts.begin(), stmts.end(),
                    [](const routing::ClassifiedStatement& st) { return st.kind == StatementKind::kResetAll; })) {
      // (No server held and no deferred block: nothing can roll it back.)
      ResetAllSent(server_clean && stmts.size() == 1 && !deferred_);
    }
  } else if (mentions) {
    tenant_may_change_ = true;
  }
  return Verdict::kForward;
}

bool ClientSession::set_source_allowed() const { return SetSourceAllowed(pooler_->config()); }

void ClientSession::ResetAllSent(bool alone_outside_block) {
  if (alone_outside_block) {
    // Alone on a server outside a block: RESET ALL cannot fail there, and the client's next
    // statement may already be on its way behind it.
    ReturnToStartupSession(/*discards=*/false);
    return;
  }
  // In a block or behind other statements it counts only if its transaction commits: a
  // ROLLBACK (or an error, which rolls back an implicit block) leaves the session as it was,
  // as on Postgres. OnReadyForQuery settles it.
  reset_pending_ = true;
  pending_undone_ = false;
}

void ClientSession::SettlePendingChanges(char status) {
  if (status != 'I') return;  // the block is still open
  const bool committed = !pending_undone_;
  const bool reset = reset_pending_;
  std::unique_ptr<std::optional<std::string>> tenant = std::move(pending_tenant_);
  reset_pending_ = false;
  pending_undone_ = false;
  if (!committed) return;
  if (reset) ReturnToStartupSession(/*discards=*/false);
  // Checked when the block named it; only the tenant's client limit may refuse it now, and then
  // the session keeps its tenant (there is no statement left to fail).
  if (tenant && !ChangeTenant(*tenant).ok()) {
    LOG_INFO("client %llu: tenant change committed in a block refused by its client limit",
             static_cast<unsigned long long>(id_));
  }
}

void ClientSession::ReturnToStartupSession(bool discards) {
  // RESET ALL and DISCARD ALL return the tenant and the followed settings to the ones given at
  // startup. (What they did to the server session is read from the server's answer: RESET or
  // DISCARD ALL make BackendState reset and set everything again before the next use.)
  if (wanted_.tenant != startup_tenant_) {
    if (holds_tenant_slot_) pooler_->ReleaseTenantSlot(*wanted_.tenant);
    // Back to the startup tenant. Its limit may have been reached meanwhile; the client was
    // admitted at login, so it stays, just not counted (and so never released twice).
    holds_tenant_slot_ = startup_tenant_ && pooler_->AcquireTenantSlot(*startup_tenant_).ok();
  }
  wanted_.tenant = startup_tenant_;
  ++tenant_namings_;
  ResetFollowedSettings();
  if (discards && statements_) statements_->clear();  // DISCARD ALL deallocates them too
  recheck_pool_ = true;
}

ClientSession::Verdict ClientSession::InspectParse(const protocol::Frame& f, bool server_clean,
                                                   std::string* replacement) {
  protocol::ParseMessage parse;
  if (!protocol::ParseParseMessage(f.payload, &parse)) return Verdict::kForward;  // the server says 08P01
  if (local_) local_->statements.erase(std::string(parse.statement));
  {
    // DEALLOCATE ALL over the extended protocol: the client's own statement names go (what it
    // drops on the server is read from the server's answer, BackendState).
    size_t i = parse.query.find_first_not_of(" \t\r\n");
    if (i != std::string_view::npos && (parse.query[i] | 0x20) == 'd') {
      std::vector<std::string> w = routing::FirstWords(parse.query, 3);
      if (!w.empty() && w[0] == "deallocate" && std::find(w.begin(), w.end(), "all") != w.end() && statements_) {
        statements_->clear();
      }
    }
  }
  if (server_ == nullptr) {
    // No server held: a BEGIN opens a deferred block, and inside one its COMMIT / ROLLBACK and
    // the tenant's SET LOCAL / set_config(..., true) need no server (client_deferred.cc).
    routing::ClassifiedStatement deferrable;
    std::vector<routing::SetConfigCall> calls;
    if (int kind = DeferrableStatementKind(parse.query, &deferrable, &calls); kind != 0) {
      LocalStatement ls;
      ls.calls = std::move(calls);
      ls.query = std::string(parse.query);
      ls.param_types = parse.param_types;
      ls.kind = kind;
      ls.value = deferrable.value;
      ls.column = deferrable.column;
      ls.param_index = deferrable.value_is_param ? deferrable.param_index : 0;
      local().statements[std::string(parse.statement)] = std::move(ls);
      std::string out;
      protocol::AppendParseComplete(&out);
      stream_.Write(out);
      return Verdict::kAnswered;
    }
  }
  const conf::Config& cfg = pooler_->config();
  const std::string& var = cfg.tenancy.variable;
  if (!routing::MightTouchTenant(parse.query, var)) return Verdict::kForward;
  std::vector<routing::ClassifiedStatement> stmts = routing::ClassifyQuery(parse.query, var);
  if (stmts.size() != 1) return Verdict::kForward;  // the server refuses several commands in a Parse
  const routing::ClassifiedStatement& st = stmts.front();
  if (st.kind == StatementKind::kResetAll) {
    // As in a Query; drivers send the Parse with its Bind, Execute and Sync, and the reset
    // counts once that cycle committed.
    ResetAllSent(/*alone_outside_block=*/false);
    return Verdict::kForward;
  }
  if (st.kind == StatementKind::kDiscardAll) return Verdict::kForward;  // OnServerDiscardedAll
  if (IsLocalChange(st.kind) && !st.is_default) {
    std::string name(parse.statement);
    if (st.value_is_param) {
      // The value comes with each Bind: checked there.
      LocalStatement ls;
      ls.kind = kCheckedLocalStatement;
      ls.param_index = st.param_index;
      local().statements[name] = std::move(ls);
      return Verdict::kForward;
    }
    Status s = CheckLocalTenant(st.value);
    if (s.ok()) return Verdict::kForward;
    local().statements[name].kind = kRefusedStatement;
    protocol::AppendParse(replacement, name, RefusalSql(s), {});
    return Verdict::kReplaced;
  }
  if (!IsSessionChange(st.kind)) {
    if (st.kind == StatementKind::kMentionsTenant && !user_may_act_as_any_tenant()) {
      Status error = Status::InsufficientPrivilege("user \"" + user_ + "\" may only act as its configured tenants");
      if (server_clean) {
        AnswerError(error, false);
        return Verdict::kAnswered;
      }
      protocol::AppendParse(replacement, RefusalSql(error));
      return Verdict::kReplaced;
    }
    return Verdict::kForward;
  }
  if (!SetSourceAllowed(cfg)) {
    Status error = Status::InsufficientPrivilege("changing " + var + " with SQL is not allowed: tenancy.sources does not include set");
    if (server_clean) {
      AnswerError(error, false);
      return Verdict::kAnswered;
    }
    protocol::AppendParse(replacement, RefusalSql(error));
    return Verdict::kReplaced;
  }
  // Remembered and answered here; applied when a portal of it is executed.
  LocalStatement ls;
  ls.query = std::string(parse.query);
  ls.param_types = parse.param_types;
  ls.kind = static_cast<int>(st.kind);
  ls.value = st.value;
  ls.column = st.column;
  ls.param_index = st.value_is_param ? st.param_index : 0;
  std::string name(parse.statement);
  local().statements[name] = std::move(ls);
  if (server_clean) {
    std::string out;
    protocol::AppendParseComplete(&out);
    stream_.Write(out);
    return Verdict::kAnswered;
  }
  // Behind work the server has not answered yet: the ParseComplete goes out in its turn. The
  // statement stays pgtenant's either way; its Binds decide (InspectLocalReference).
  server_->AnswerForServer('1');
  return Verdict::kAnswered;
}

std::optional<std::string> ClientSession::BoundTenant(const LocalStatement& statement,
                                                      const protocol::BindMessage& bind) {
  if (static_cast<StatementKind>(statement.kind) == StatementKind::kResetTenant) return std::nullopt;
  const int n = statement.param_index;
  if (n == 0) return statement.value;
  if (n > static_cast<int>(bind.params.size()) || !bind.params[n - 1]) return std::nullopt;
  return std::string(*bind.params[n - 1]);
}

ClientSession::Verdict ClientSession::NameTenantForServerRun(const LocalStatement& statement,
                                                             const protocol::BindMessage& bind) {
  // The block's tenant chooses the server; HandleActive looks at this Bind again there and
  // has the server run the statement (the path of a statement made while no server was held).
  if (!deferred_) {
    inspect_again_on_server_ = true;
    return Verdict::kForward;  // the block ended: the statement runs alone
  }
  if (deferred_->aborted) {
    AnswerError(AbortedBlockError(), false);
    return Verdict::kAnswered;
  }
  std::vector<std::optional<std::string>> params;
  for (const auto& p : bind.params) params.push_back(p ? std::optional<std::string>(std::string(*p)) : std::nullopt);
  std::optional<std::string> tenant;
  if (!BoundNamingTenant(statement.calls, params, &tenant)) {
    AnswerError(Status::Error("22004", "pgtenant does not take a NULL set_config argument before the block has a "
                                       "server; name the tenant first"),
                false);
    return Verdict::kAnswered;
  }
  Status s = NameTenantTheServerSets(tenant);
  if (!s.ok()) {
    AnswerError(s, false);
    return Verdict::kAnswered;
  }
  inspect_again_on_server_ = true;
  return Verdict::kForward;
}

ClientSession::Verdict ClientSession::InspectLocalReference(const protocol::Frame& f, bool server_clean,
                                                            std::string* replacement) {
  LocalState& loc = *local_;
  std::string out;
  if (f.type == fe::kBind) {
    protocol::BindMessage bind;
    if (!protocol::ParseBindMessage(f.payload, &bind)) return Verdict::kForward;
    auto it = loc.statements.find(bind.statement);
    if (it == loc.statements.end()) {
      loc.portals.erase(std::string(bind.portal));
      return Verdict::kForward;
    }
    if (it->second.kind == kCheckedLocalStatement) {
      int n = it->second.param_index;
      std::string value = n > 0 && n <= static_cast<int>(bind.params.size()) && bind.params[n - 1]
                              ? std::string(*bind.params[n - 1])
                              : std::string();
      Status s = CheckLocalTenant(value);
      if (s.ok() || server_ == nullptr) return Verdict::kForward;
      // Bind the client's portal to a statement that raises the refusal instead.
      protocol::AppendParse(replacement, "", RefusalSql(s), {});
      server_->NoteOwn(fe::kParse);
      protocol::MessageWriter w(replacement);
      w.Begin('B').PutCString(bind.portal).PutCString("").PutInt16(0).PutInt16(0).PutInt16(0);
      w.Finish();
      return Verdict::kReplaced;
    }
    if (it->second.kind == kRefusedStatement) {
      // The server's statement raises the refusal and takes no parameters.
      protocol::MessageWriter w(replacement);
      w.Begin('B').PutCString(bind.portal).PutCString(bind.statement).PutInt16(0).PutInt16(0).PutInt16(0);
      w.Finish();
      return Verdict::kReplaced;
    }
    const int kind = it->second.kind;
    if (kind == kDeferredNamingSelect && server_ == nullptr) return NameTenantForServerRun(it->second, bind);
    const bool deferrable = kind == kDeferredBeginStatement || kind == kDeferredEndStatement ||
                            kind == kDeferredSetConfigsStatement || kind == kDeferredNamingSelect ||
                            IsTransactionScoped(static_cast<StatementKind>(kind));
    if (!server_clean || (deferrable && server_ != nullptr)) {
      // Behind work of the client's that the server has not answered yet (or, for a statement
      // made while no server was held, on a server now): pgtenant cannot answer in its turn,
      // so the server runs the statement, under a name of pgtenant's (the client's name stays
      // pgtenant's, so that later Binds of it are still seen; closed first so that it can be
      // prepared again). Outside a transaction block, to a tenant of the pool in use, a
      // session-level change is the client's from now on, as on Postgres; inside a block, or
      // towards another pool, it is refused as the simple protocol refuses it. A SET LOCAL /
      // set_config(..., true) is checked as in a Query.
      std::optional<std::string> target = static_cast<StatementKind>(kind) == StatementKind::kResetTenant
                                              ? startup_tenant_
                                              : BoundTenant(it->second, bind);
      Status refusal;
      if (kind == kDeferredBeginStatement || kind == kDeferredEndStatement) {
        // BEGIN / COMMIT / ROLLBACK: the server's own answer is the right one.
      } else if (kind == kDeferredSetConfigsStatement || kind == kDeferredNamingSelect) {
        // The tenant's call is checked as a SET LOCAL; the server runs them all.
        const std::string& var = pooler_->config().tenancy.variable;
        std::vector<std::optional<std::string>> params;
        for (const auto& p : bind.params) params.push_back(p ? std::optional<std::string>(std::string(*p)) : std::nullopt);
        for (const routing::SetConfigCall& call : it->second.calls) {
          std::optional<std::string> name = SetConfigArgument(call.name, params);
          if (!name || !routing::GucNameEquals(*name, var)) continue;
          std::optional<std::string> value = SetConfigArgument(call.value, params);
          if (value) refusal = CheckLocalTenant(*value);
        }
      } else if (IsTransactionScoped(static_cast<StatementKind>(kind))) {
        if (target) refusal = CheckLocalTenant(*target);
      } else if (target != wanted_.tenant) {
        const conf::Config& cfg = pooler_->config();
        const std::string* pool = target ? pooler_->routes().PoolFor(*target)
                                         : (cfg.tenancy.default_pool ? &*cfg.tenancy.default_pool : nullptr);
        if (server_->txn_status() != 'I' || pool == nullptr || *pool != server_->pool()->name()) {
          refusal = Status::ActiveTransaction("cannot change " + cfg.tenancy.variable +
                                              " inside a transaction block (or to a tenant of another pool "
                                              "behind unfinished statements); COMMIT or ROLLBACK first");
        } else {
          refusal = ChangeTenant(target);
        }
      }
      protocol::AppendClose(replacement, 'S', kServerRunStatement);
      server_->NoteOwn(fe::kClose);
      if (refusal.ok()) {
        protocol::AppendParse(replacement, kServerRunStatement, it->second.query, it->second.param_types);
        server_->NoteOwn(fe::kParse);
        protocol::AppendBindForStatement(replacement, f.payload, bind, kServerRunStatement);
      } else {
        protocol::AppendParse(replacement, kServerRunStatement, RefusalSql(refusal), {});
        server_->NoteOwn(fe::kParse);
        protocol::MessageWriter w(replacement);
        w.Begin('B').PutCString(bind.portal).PutCString(kServerRunStatement).PutInt16(0).PutInt16(0).PutInt16(0);
        w.Finish();
      }
      // Whatever the server ends up holding (its batch may still fail), it is set again
      // before this connection's next batch.
      server_->backend().MarkTenantUnknown();
      return Verdict::kReplaced;
    }
    LocalPortal portal;
    portal.statement = &it->second;
    const int n = it->second.param_index;
    if (n > static_cast<int>(bind.params.size())) {
      AnswerError(Status::ProtocolViolation("bind message supplies " + std::to_string(bind.params.size()) +
                                            " parameters, but prepared statement requires " + std::to_string(n)),
                  false);
      return Verdict::kAnswered;
    }
    portal.value = BoundTenant(it->second, bind);
    if (kind == kDeferredSetConfigsStatement) {
      for (const auto& p : bind.params) {
        portal.params.push_back(p ? std::optional<std::string>(std::string(*p)) : std::nullopt);
      }
    }
    loc.portals[std::string(bind.portal)] = portal;
    protocol::AppendBindComplete(&out);
    stream_.Write(out);
    return Verdict::kAnswered;
  }
  if (f.type == fe::kExecute) {
    std::string_view name;
    int32_t max_rows;
    if (!protocol::ParseExecuteMessage(f.payload, &name, &max_rows)) return Verdict::kForward;
    auto it = loc.portals.find(name);
    if (it == loc.portals.end()) return Verdict::kForward;
    if (!server_clean) {
      // Out of order with the server's answers; the portal does not exist there.
      return Verdict::kForward;
    }
    const LocalStatement& stmt = *it->second.statement;
    if (stmt.kind == kDeferredSetConfigsStatement) {
      ExecuteDeferredSetConfigs(stmt, it->second.params);
      return Verdict::kAnswered;
    }
    if (stmt.kind == kDeferredBeginStatement || stmt.kind == kDeferredEndStatement) {
      if (stmt.kind == kDeferredBeginStatement) {
        OpenDeferredBlock(stmt.query, &out);
      } else {
        std::string first = routing::FirstKeyword(stmt.query);
        Status s = EndDeferredBlock(first == "commit" || first == "end", &out);
        if (!s.ok()) {
          if (deferred_) deferred_->aborted = true;
          AnswerError(s, false);
          return Verdict::kAnswered;
        }
      }
      if (deferred_) ++deferred_->queries;  // metered as in a Query (HandleIdle)
      stream_.Write(out);
      return Verdict::kAnswered;
    }
    auto kind = static_cast<StatementKind>(stmt.kind);
    if (IsTransactionScoped(kind)) {
      if (deferred_) {
        Status s = deferred_->aborted ? AbortedBlockError() : NameTenantInDeferredBlock(it->second.value, true);
        if (!s.ok()) {
          deferred_->aborted = true;
          AnswerError(s, false);
          return Verdict::kAnswered;
        }
      }
      if (deferred_) ++deferred_->queries;
      // Outside a block a SET LOCAL / set_config(..., true) lasts no longer than its statement.
      if (kind == StatementKind::kSetConfigLocalTenant) {
        protocol::AppendTextDataRow(&out, it->second.value.value_or(""));
        protocol::AppendCommandComplete(&out, "SELECT 1");
      } else {
        protocol::AppendCommandComplete(&out, "SET");
      }
      stream_.Write(out);
      return Verdict::kAnswered;
    }
    std::optional<std::string> target = kind == StatementKind::kResetTenant ? startup_tenant_ : it->second.value;
    // In a deferred block a session-level change is the block's until it commits.
    Status s = deferred_ ? (deferred_->aborted ? AbortedBlockError() : NameTenantInDeferredBlock(target, false))
                         : ChangeTenant(target);
    if (deferred_ && s.ok()) ++deferred_->queries;
    if (deferred_ && !s.ok()) deferred_->aborted = true;
    if (!s.ok()) {
      AnswerError(s, false);
      return Verdict::kAnswered;
    }
    if (kind == StatementKind::kSetConfigTenant) {
      protocol::AppendTextDataRow(&out, it->second.value.value_or(""));
      protocol::AppendCommandComplete(&out, "SELECT 1");
    } else {
      protocol::AppendCommandComplete(
          &out, routing::FirstKeyword(it->second.statement->query) == "reset" ? "RESET" : "SET");
    }
    stream_.Write(out);
    return Verdict::kAnswered;
  }
  protocol::TargetMessage target;
  if (!protocol::ParseTargetMessage(f.payload, &target)) return Verdict::kForward;
  const LocalStatement* stmt = nullptr;
  if (target.kind == 'S') {
    auto it = loc.statements.find(target.name);
    if (it != loc.statements.end()) stmt = &it->second;
  } else {
    auto it = loc.portals.find(target.name);
    if (it != loc.portals.end()) stmt = it->second.statement;
  }
  if (stmt == nullptr || stmt->kind == kRefusedStatement || stmt->kind == kCheckedLocalStatement) {
    return Verdict::kForward;
  }
  if (stmt->kind == kDeferredNamingSelect && f.type == fe::kDescribe && server_ == nullptr) {
    // Only the server knows its result columns; asked for on the server the client gets.
    inspect_again_on_server_ = true;
    return Verdict::kForward;
  }
  if (!server_clean || (stmt->kind == kDeferredNamingSelect && f.type == fe::kDescribe)) {
    // Behind work of the client's that the server has not answered yet: pgtenant cannot answer
    // in its turn, so the server does, for the statement pgtenant keeps. A Close is forwarded
    // (closing what the server does not have is no error) and the statement forgotten here.
    if (f.type == fe::kClose) {
      if (target.kind == 'S') {
        loc.statements.erase(std::string(target.name));
      } else {
        loc.portals.erase(std::string(target.name));
      }
      return Verdict::kForward;
    }
    if (target.kind != 'S') return Verdict::kForward;
    // A Describe of it is answered by the server from the same text prepared under pgtenant's
    // name (it would otherwise answer 26000: the client's name never reached it).
    protocol::AppendClose(replacement, 'S', kServerRunStatement);
    server_->NoteOwn(fe::kClose);
    protocol::AppendParse(replacement, kServerRunStatement, stmt->query, stmt->param_types);
    server_->NoteOwn(fe::kParse);
    protocol::AppendDescribe(replacement, 'S', kServerRunStatement);
    return Verdict::kReplaced;
  }
  if (f.type == fe::kClose) {
    if (target.kind == 'S') {
      loc.statements.erase(std::string(target.name));
    } else {
      loc.portals.erase(std::string(target.name));
    }
    protocol::AppendCloseComplete(&out);
    stream_.Write(out);
    return Verdict::kAnswered;
  }
  bool is_select = static_cast<StatementKind>(stmt->kind) == StatementKind::kSetConfigTenant ||
                   static_cast<StatementKind>(stmt->kind) == StatementKind::kSetConfigLocalTenant;
  int params = stmt->param_index;
  for (const routing::SetConfigCall& call : stmt->calls) {
    params = std::max({params, call.name.param, call.value.param});
  }
  if (target.kind == 'S') {
    std::vector<int32_t> types = stmt->param_types;
    if (static_cast<int>(types.size()) < params) types.resize(params, 0);
    for (int32_t& t : types) {
      if (t == 0) t = 25;  // an unspecified parameter of set_config is text
    }
    protocol::AppendParameterDescription(&out, types);
  }
  if (stmt->kind == kDeferredSetConfigsStatement) {
    std::vector<std::string> columns;
    for (const routing::SetConfigCall& call : stmt->calls) columns.push_back(call.column);
    protocol::AppendRowDescription(&out, columns);
  } else if (is_select) {
    protocol::AppendTextRowDescription(&out, stmt->column);
  } else {
    protocol::AppendNoData(&out);
  }
  stream_.Write(out);
  return Verdict::kAnswered;
}

}  // namespace pgtenant::proxy
