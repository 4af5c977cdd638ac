#include "proxy/backend_state.h"

#include <algorithm>
#include <cstring>

#include "protocol/message_writer.h"
#include "protocol/messages.h"
#include "protocol/scram.h"
#include "routing/injection.h"

namespace pgtenant::proxy {
namespace {

// The CommandComplete tag of a payload, without its NUL.
std::string_view TagOf(std::span<const uint8_t> payload) {
  std::string_view tag(reinterpret_cast<const char*>(payload.data()), payload.size());
  size_t nul = tag.find('\0');
  return nul == std::string_view::npos ? tag : tag.substr(0, nul);
}

// pgtenant's statement that sets the tenant variable to $1. set_config rather than SET: a
// parameter can be bound to it, so the tenant is never spliced into SQL.
std::string SetTenantStatementSql(std::string_view variable) {
  return "SELECT pg_catalog.set_config(" + routing::QuoteLiteral(variable) + ", $1, false)";
}

void AppendBindTenant(std::string* out, std::string_view tenant) {
  protocol::MessageWriter w(out);
  w.Begin('B').PutCString("").PutCString(BackendState::OwnStatementName(BackendState::kSetTenant));
  w.PutInt16(0).PutInt16(1).PutInt32(static_cast<int32_t>(tenant.size())).PutBytes(tenant).PutInt16(0);
  w.Finish();
}

}  // namespace

const std::string& BackendState::OwnStatementName(OwnStatement which) {
  // Drawn once per process from OpenSSL's CSPRNG (protocol/scram.h).
  static const std::string kTag = protocol::RandomHex(8);
  static const std::string kSet = "pgtenant_" + kTag + "_set";
  static const std::string kReset = "pgtenant_" + kTag + "_reset";
  return which == kSetTenant ? kSet : kReset;
}

bool BackendState::NeedsPrelude(const SessionSettings& want, uint32_t namings) const {
  return last_client_namings_ != namings || settings_unknown_ || tenant_unknown_ || settings_.tenant != want.tenant ||
         !settings_.SameSettingsAs(want);
}

void BackendState::WritePrelude(const SessionSettings& want, uint64_t client_id, uint32_t namings,
                                bool tenant_as_query, std::string_view variable, std::string* out,
                                std::string* own_types, std::string_view block_start) {
  // The variable is trusted only on a connection nobody used yet, or that this very client
  // used last without naming a tenant since: a hidden change (a function calling set_config)
  // may stay with the client that made it, never reach another.
  const bool trust = !tenant_unknown_ && (last_client_id_ == 0 || (last_client_id_ == client_id &&
                                                                   last_client_namings_ == namings));
  last_client_id_ = client_id;
  last_client_namings_ = namings;
  Prelude p = BuildPrelude(settings_, want, trust, settings_unknown_);
  if (!p.settings.empty()) {
    // In a transaction of its own: a rollback of the client's transaction must not revert
    // them, or the revert would be reported to the client with another client's values.
    std::string sql;
    for (const auto& s : p.settings) sql += s + ";";
    protocol::AppendQuery(out, sql);
    own_types->push_back(protocol::fe::kQuery);
    if (settings_unknown_) {
      settings_.tenant.reset();  // RESET ALL reset the variable too (set again below)
      settings_unknown_ = false;
    }
    settings_.TakeSettingsOf(want);
  }
  if (!block_start.empty()) {
    protocol::AppendQuery(out, block_start);
    own_types->push_back(protocol::fe::kQuery);
  }
  if (!p.set_tenant) return;
  if (tenant_as_query) {
    // VACUUM and friends refuse to run in a pipeline: the tenant goes in its own Query.
    protocol::AppendQuery(out, TenantSql(want.tenant, variable));
    own_types->push_back(protocol::fe::kQuery);
    // Behind the client's deferred BEGIN the Query runs inside its block, and a rollback of
    // the block takes the tenant along (a DISCARD ALL refused in the block, then ROLLBACK).
    if (!block_start.empty()) NoteTenantSetInClientTransaction();
  } else {
    // Bind/Execute of pgtenant's statement, without Sync: it shares the implicit transaction of
    // the client's first statement, so if it fails the backend skips the client's statements.
    // Prepared once per connection, behind a Close of the same name: if a client dropped it in
    // a way the server's answers did not show, the Parse still succeeds (Close of a statement
    // that does not exist is no error), and the client pays nothing.
    const OwnStatement which = want.tenant ? kSetTenant : kResetTenant;
    if (!own_statement_ready(which)) {
      protocol::AppendClose(out, 'S', OwnStatementName(which));
      own_types->push_back(protocol::fe::kClose);
      if (want.tenant) {
        protocol::AppendParse(out, OwnStatementName(which), SetTenantStatementSql(variable), {25});
      } else {
        protocol::AppendParse(out, OwnStatementName(which), TenantSql(std::nullopt, variable), {});
      }
      own_types->push_back(protocol::fe::kParse);
      own_ready_ |= which;
    }
    if (want.tenant) {
      AppendBindTenant(out, *want.tenant);
    } else {
      protocol::AppendBindNoParameters(out, OwnStatementName(which));
    }
    protocol::AppendExecuteUnnamed(out);
    own_types->push_back(protocol::fe::kBind);
    own_types->push_back(protocol::fe::kExecute);
    NoteTenantSetInClientTransaction();
  }
  settings_.tenant = want.tenant;
  tenant_unknown_ = false;
}

BackendState::Event BackendState::OnServerMessage(char type, std::span<const uint8_t> payload, bool client_answer,
                                                  bool parses_in_flight) {
  Event event = Event::kNone;
  switch (type) {
    case protocol::be::kErrorResponse:
      txn_may_roll_back_ = true;
      break;
    case protocol::be::kCommandComplete: {
      std::string_view tag = TagOf(payload);
      if (tenant_in_txn_ && tag == "ROLLBACK") txn_may_roll_back_ = true;
      if (!client_answer) break;
      if (tag == "ROLLBACK") event = Event::kClientRolledBack;
      // What a client's statement did, read from what the server says it did: the SQL that
      // ran may not be known (a statement prepared earlier, run again by Bind/Execute alone).
      if (tag == "DISCARD ALL") {
        // Statements, settings and the variable are gone; DISCARD ALL runs only outside a
        // block, so no rollback can bring them back.
        ForgetStatements(parses_in_flight);
        ForgetSessionState();
        event = Event::kClientDiscardedAll;
      } else if (tag == "DEALLOCATE ALL") {
        ForgetStatements(parses_in_flight);  // not transactional: a rollback keeps them gone
      } else if (tag == "DEALLOCATE") {
        ForgetStatements(/*unsure=*/true);   // one statement, name unknown here
      } else if (tag == "RESET") {
        // RESET ALL or RESET of one setting; its block may still roll back. Either way the
        // next prelude resets and sets everything again.
        ForgetSessionState();
      }
      break;
    }
    case protocol::be::kReadyForQuery: {
      const char status = payload.empty() ? 'I' : static_cast<char>(payload[0]);
      // Only the client's own transaction end counts (the settings Query of a prelude ends with
      // a ReadyForQuery of its own, inside no client transaction).
      if (status == 'I' && tenant_in_txn_ && client_answer) {
        if (txn_may_roll_back_) {
          // pgtenant's SET went with the transaction: the variable holds what it held before
          // (possibly another tenant's). Never trust it; set it again for whoever comes next.
          settings_.tenant = tenant_before_;
          tenant_unknown_ = true;
        }
        tenant_in_txn_ = false;
        txn_may_roll_back_ = false;
      }
      break;
    }
    default:
      break;
  }
  return event;
}

void BackendState::NoteTenantSetInClientTransaction() {
  tenant_in_txn_ = true;
  txn_may_roll_back_ = false;
  tenant_before_ = settings_.tenant;
}

void BackendState::OnOwnDiscardAll() {
  settings_.Clear();
  tenant_unknown_ = false;
  settings_unknown_ = false;
  tenant_in_txn_ = false;
  txn_may_roll_back_ = false;
  own_ready_ = 0;
  statements_.clear();
  statements_unsure_ = false;  // nothing is in flight behind pgtenant's reset
}

void BackendState::OnClientCloseStatement(std::string_view name) {
  if (name == OwnStatementName(kSetTenant)) own_ready_ &= static_cast<uint8_t>(~kSetTenant);
  if (name == OwnStatementName(kResetTenant)) own_ready_ &= static_cast<uint8_t>(~kResetTenant);
}

void BackendState::OnSettingChanged(std::string_view name, const std::optional<std::string>& value) {
  if (value) {
    settings_.Set(name, *value);
  } else {
    settings_.Erase(name);
  }
}

bool BackendState::UseStatement(uint64_t id, uint64_t tick) {
  auto it = statements_.find(id);
  if (it == statements_.end()) return false;
  it->second = tick;
  return true;
}

void BackendState::AddStatement(uint64_t id, uint64_t tick) { statements_[id] = tick; }

std::optional<uint64_t> BackendState::EvictLeastRecentlyUsed(uint64_t tick) {
  auto victim = std::min_element(statements_.begin(), statements_.end(),
                                 [](const auto& a, const auto& b) { return a.second < b.second; });
  if (victim == statements_.end() || victim->second >= tick) return std::nullopt;
  uint64_t id = victim->first;
  statements_.erase(victim);
  return id;
}

void BackendState::ForgetStatements(bool unsure) {
  own_ready_ = 0;
  statements_.clear();
  statements_unsure_ = statements_unsure_ || unsure;
}

void BackendState::ForgetSessionState() {
  settings_unknown_ = true;
  tenant_unknown_ = true;
}

}  // namespace pgtenant::proxy
