// BackendState: what one server connection's backend session holds, as far as pgtenant knows
// it, and the only place where that knowledge changes. Pure: no I/O, no libuv; ServerSession
// feeds it what the server answered and asks it for the prelude of each client.
//
// The rule (docs/architecture.md, "What a server connection holds"): pgtenant's belief changes
// by what the SERVER ANSWERED, never by what a client merely sent. A client's DISCARD ALL that
// fails inside a block changed nothing, so nothing is forgotten; a DEALLOCATE ALL hidden behind
// a comment, or a DISCARD ALL run again by Bind/Execute alone, is seen by its CommandComplete
// tag. Where an answer cannot tell what the session now holds (a RESET whose block may still
// roll back, a DEALLOCATE of an unknown name), the belief becomes "unknown" and the next
// prelude makes sure: RESET ALL and every wanted setting again, a Close before each Parse.
// Unknown costs pgtenant a few statements of its own; it never costs a client an error.
//
// What is tracked:
//   - the tenant variable (value, or unknown), and which client set it under which naming
//     count (a client's hidden change is trusted for that client only; ClientSession);
//   - the settings the session holds (SessionSettings), or that they are unknown;
//   - pgtenant's own two tenant statements (prepared once per connection);
//   - the client statements mapped onto this connection (pgt_<tag>_<id>, prepared_statements.h),
//     with their last use for LRU eviction, and whether statements the server may still hold
//     were forgotten (then each Parse is preceded by a Close of the same name).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

#include "proxy/session_settings.h"

namespace pgtenant::proxy {

class BackendState {
 public:
  // pgtenant's own statements: one sets the tenant variable to $1, the other RESETs it.
  enum OwnStatement : uint8_t { kSetTenant = 1, kResetTenant = 2 };
  // Their server-side names carry a random part drawn once per process, so a client can
  // neither guess them nor take them first (pgtenant_<16 hex digits>_set / _reset).
  static const std::string& OwnStatementName(OwnStatement which);

  // What the server's answer to one message means for the session (OnServerMessage).
  enum class Event : uint8_t { kNone, kClientDiscardedAll, kClientRolledBack };

  // ---- what the connection holds
  const SessionSettings& settings() const { return settings_; }
  bool settings_unknown() const { return settings_unknown_; }
  bool own_statement_ready(OwnStatement which) const { return (own_ready_ & which) != 0; }
  uint64_t last_client_id() const { return last_client_id_; }
  uint32_t last_client_namings() const { return last_client_namings_; }

  // ---- preludes
  // True when the connection may not hold `want` for the client that used it last under
  // `namings` (the same client keeping its server in session mode or pinned).
  bool NeedsPrelude(const SessionSettings& want, uint32_t namings) const;
  // Appends to `out` what makes the session hold `want` for client `client_id` (whose naming
  // count is `namings`), and to `own_types` the type byte of each message in it, in order, for
  // the ResponseTracker. `tenant_as_query`: the tenant goes in a Query of its own (the client's
  // first statement refuses to share a pipeline); otherwise as Bind/Execute of pgtenant's
  // statement, in the client's first implicit transaction. `variable`: tenancy.variable.
  // `block_start`: SQL that opens the client's transaction block (a deferred BEGIN and its
  // SET LOCALs), sent after the settings and before the tenant, so that the block's BEGIN
  // options (ISOLATION LEVEL) come before any query in it.
  void WritePrelude(const SessionSettings& want, uint64_t client_id, uint32_t namings, bool tenant_as_query,
                    std::string_view variable, std::string* out, std::string* own_types,
                    std::string_view block_start = {});

  // ---- what the server answered (ServerSession::HandleActive, for every message)
  // `client_answer`: it answers a message of the client's (not one of pgtenant's own).
  // `parses_in_flight`: Parse messages sent after the one being answered are still unanswered.
  Event OnServerMessage(char type, std::span<const uint8_t> payload, bool client_answer, bool parses_in_flight);
  // pgtenant's own DISCARD ALL (the reset before reuse) is on its way; the connection is not
  // used again until it succeeded, or closed.
  void OnOwnDiscardAll();

  // ---- what clients do that the server's answers cannot show
  // SQL that may set the tenant variable in a way pgtenant cannot read ran (or may run).
  void MarkTenantUnknown() { tenant_unknown_ = true; }
  // A client's Close of statement `name` goes to the server (a session-mode client that found
  // pgtenant's name in pg_prepared_statements).
  void OnClientCloseStatement(std::string_view name);
  // A setting the server reported (ParameterStatus) or pgtenant followed (a SET it settled);
  // nullopt: back to the server's default.
  void OnSettingChanged(std::string_view name, const std::optional<std::string>& value);

  // ---- client statements mapped onto this connection (prepared_statements.h)
  // True, and marks it used in batch `tick`, when statement `id` is on the connection.
  bool UseStatement(uint64_t id, uint64_t tick);
  // Statement `id` was sent for parsing in batch `tick`.
  void AddStatement(uint64_t id, uint64_t tick);
  // Its Parse failed or was skipped by the server.
  void ForgetStatement(uint64_t id) { statements_.erase(id); }
  size_t statement_count() const { return statements_.size(); }
  // The least recently used statement not used in batch `tick`, taken off the list, for a
  // Close; nullopt when every statement is in use by this batch.
  std::optional<uint64_t> EvictLeastRecentlyUsed(uint64_t tick);
  // The server may hold statements pgtenant no longer lists: every Parse of a mapped
  // statement must be preceded by a Close of its name.
  bool statements_unsure() const { return statements_unsure_; }

 private:
  // Prepared statements were dropped on the server (DISCARD ALL, DEALLOCATE ALL, DEALLOCATE).
  // `unsure`: some may still be there (a DEALLOCATE of one name, or Parses sent behind it).
  void ForgetStatements(bool unsure);
  void ForgetSessionState();
  // pgtenant's tenant statement runs inside the client's transaction (its first statement's
  // implicit one, or its deferred block): the variable is trusted only once that commits.
  void NoteTenantSetInClientTransaction();

  SessionSettings settings_;     // .tenant: the variable's value; nullopt = its default
  bool tenant_unknown_ = false;  // the variable may hold anything
  bool settings_unknown_ = false;
  uint8_t own_ready_ = 0;  // OwnStatement bits
  bool statements_unsure_ = false;
  // pgtenant set the tenant inside the client's first transaction: when that transaction rolls
  // back, the variable holds what it held before.
  bool tenant_in_txn_ = false;
  bool txn_may_roll_back_ = false;
  std::optional<std::string> tenant_before_;
  uint64_t last_client_id_ = 0;
  uint32_t last_client_namings_ = 0;
  std::unordered_map<uint64_t, uint64_t> statements_;  // statement id -> batch tick of last use
};

}  // namespace pgtenant::proxy
