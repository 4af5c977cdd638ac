// ClientSession's following of settings the server does not report (search_path,
// extra_float_digits; docs/reference.md section 4): a session-level SET of one of them outside a
// transaction block becomes part of what the client's session must hold, restored on every
// server connection it is given, instead of pinning the client to the connection it ran on.
//
// The change is taken only once the server shows that it committed: its sync cycle ran that one
// statement and ended idle without an error. When that cannot be told (more statements in the
// cycle, a transaction block left open) the client is pinned, as before, so the server never
// holds a value pgtenant does not know about when another client gets it.
#include "protocol/messages.h"
#include "proxy/client_session.h"
#include "proxy/pooler.h"
#include "proxy/server_session.h"

namespace pgtenant::proxy {

bool ClientSession::FollowSettingChange(std::string_view sql, bool server_clean, bool is_parse, bool named) {
  // A Query or a Parse of the unnamed statement replaces the client's unnamed statement.
  if (tracked_ != nullptr && !named) tracked_->unnamed_statement_sets = false;
  std::optional<routing::SettingChange> change = routing::ParseSettingChange(sql);
  if (!change) return false;
  if (!server_clean || named) {
    // Inside a transaction block (the value commits or not with it) or a named statement (it
    // may run again on any connection later): pgtenant cannot follow it.
    PinToServer();
    return true;
  }
  if (tracked_ == nullptr) {
    tracked_ = std::make_unique<FollowedSettings>();
    tracked_->startup = wanted_;  // no followed SET yet: these are the startup values
  }
  tracked_->pending = std::move(change);
  tracked_->queries_before = txn_.queries;
  tracked_->errors_before = txn_.errors;
  tracked_->pending_via_parse = is_parse;
  return true;
}

void ClientSession::SettleSettingChange(char status) {
  routing::SettingChange change = std::move(*tracked_->pending);
  tracked_->pending.reset();
  // Binding the unnamed statement again would run the SET again, wherever: that pins.
  if (tracked_->pending_via_parse) tracked_->unnamed_statement_sets = true;
  const uint64_t statements = txn_.queries - tracked_->queries_before;
  const uint64_t errors = txn_.errors - tracked_->errors_before;
  if (status != 'I' || statements != 1) {
    // Another statement shared the cycle (it may have rolled the change back, or opened a
    // block the change now belongs to): what the server holds is unknown to pgtenant.
    PinToServer();
    return;
  }
  if (errors != 0) return;  // the SET failed, or its transaction rolled back: nothing changed
  if (change.value) {
    wanted_.Set(change.name, *change.value);
    if (server_ != nullptr) server_->backend().OnSettingChanged(change.name, change.value);
  } else {
    // RESET gives a direct connection its startup value; the server now holds its own default.
    if (const std::string* startup = tracked_->startup.Find(change.name)) {
      wanted_.Set(change.name, *startup);
    } else {
      wanted_.Erase(change.name);
    }
    if (server_ != nullptr) server_->backend().OnSettingChanged(change.name, std::nullopt);
  }
}

void ClientSession::ResetFollowedSettings() {
  if (tracked_ == nullptr) return;
  for (std::string_view name : routing::kUnreportedTrackedSettings) {
    if (const std::string* startup = tracked_->startup.Find(name)) {
      wanted_.Set(name, *startup);
    } else {
      wanted_.Erase(name);
    }
  }
}

void ClientSession::NoteBind(const protocol::Frame& f) {
  protocol::BindMessage bind;
  if (protocol::ParseBindMessage(f.payload, &bind) && bind.statement.empty()) PinToServer();
}

}  // namespace pgtenant::proxy
