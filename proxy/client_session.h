// ClientSession: one application connection and its state machine (an explicit state enum, one
// handler per state): Startup -> Auth -> (LoginWait) -> Idle <-> Waiting <-> Active -> Closing.
//
// Startup parses the untyped first packet (SSLRequest, GSSENCRequest, CancelRequest, Startup);
// Auth runs SCRAM-SHA-256, md5 or trust against auth.users; LoginWait waits for the pool's
// backend parameters. Idle clients hold no server. Their first message of a transaction sends
// them to Waiting (queued at their tenant's pool), then Active (linked to a ServerSession)
// until the transaction ends (transaction mode) or the client leaves (session mode).
//
// Lifetime: owned by the Pooler's client set; frees itself after its handle closes.
// Loop-affine.
#pragma once

#include <uv.h>

#include <cstdint>
#include <list>
#include <map>
#include <vector>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>

#include "conf/config.h"
#include "protocol/frame_decoder.h"
#include "protocol/messages.h"
#include "protocol/scram.h"
#include "proxy/pool.h"
#include "proxy/prepared_statements.h"
#include "proxy/session_settings.h"
#include "proxy/stream.h"
#include "proxy/usage.h"
#include "routing/setting_statement.h"
#include "routing/sql_statement.h"
#include "routing/statement_classifier.h"

namespace pgtenant::proxy {

class Pooler;
class ServerSession;

class ClientSession : public StreamHandler {
 public:
  enum class State : uint8_t { kStartup, kAuth, kLoginWait, kIdle, kWaiting, kActive, kCancelRequest, kClosing };

  ClientSession(Pooler* pooler, uint64_t id);
  ~ClientSession() override;

  // REQUIRES: the listener accepted into tcp(). Starts reading the startup packet.
  void Start();
  Stream& stream() { return stream_; }
  uint64_t id() const { return id_; }
  State state() const { return state_; }
  const std::string& user() const { return user_; }
  const std::string& database() const { return database_; }
  const std::optional<std::string>& tenant() const { return wanted_.tenant; }
  const std::string& pool_name() const { return pool_name_; }
  ServerSession* server() const { return server_; }
  uint64_t connected_ms() const { return connected_ms_; }
  uint64_t wait_started_ms() const { return wait_started_ms_; }
  // The usage counters of the (pool, tenant) this client counts under; null before it has a pool.
  TenantUsage* usage() const { return usage_; }
  std::string peer() { return stream_.PeerName(); }
  // Its ClientRegistry slot, also the process id of its cancel key.
  int32_t slot() const { return slot_; }
  void set_slot(int32_t slot) { slot_ = slot; }
  int32_t cancel_key() const { return cancel_key_; }
  bool pinned() const { return pinned_; }
  // True (with the time of the client's last message) when the client holds a server in an
  // open transaction and is not running anything: the idle_transaction timeout applies.
  bool IdleInTransactionSince(uint64_t* since) const;

  // Called by Pool.
  void OnServerAssigned(ServerSession* server);
  void OnServerUnavailable(const std::string& sqlstate, const std::string& message);
  // A CancelRequest for this client arrived while it waits for a server: its statement goes.
  void CancelWaiting();
  FairQueue<ClientSession*>::Handle& wait_position() { return wait_position_; }
  // The tenant whose lane of the pool's waiting queue this client waits in ("" for none).
  std::string WaitLane() const { return TransactionTenant().value_or(std::string()); }

  // Called by ServerSession.
  void ForwardFromServer(std::span<const uint8_t> bytes) { stream_.Write(bytes); }
  bool write_backlogged() const { return stream_.over_high_water(); }
  void OnTransactionDone();          // transaction mode: the server was released
  void OnServerLost(const std::string& sqlstate, const std::string& message);
  void OnParameterStatus(std::string_view name, std::string_view value);
  // The server ended a sync cycle of this client's with ReadyForQuery `status`.
  void OnReadyForQuery(char status) {
    if (tracked_ && tracked_->pending) SettleSettingChange(status);
    if (reset_pending_ || pending_tenant_) SettlePendingChanges(status);
  }
  // The server answered a ROLLBACK of this client's (COMMIT of a failed block included).
  void OnServerRolledBack() {
    if (reset_pending_ || pending_tenant_) pending_undone_ = true;
  }
  // Usage accounting: the server tells when a transaction ends and what went to the client.
  void AccountTransaction();
  void AddBytesOut(uint64_t n) { txn_.bytes_out += n; }
  void NoteError() {
    ++txn_.errors;
    // The block is aborted, or the implicit one rolled back.
    if (reset_pending_ || pending_tenant_) pending_undone_ = true;
  }
  bool admin() const { return admin_; }
  uint64_t request_ms() const { return last_activity_ms_; }
  const std::string* application_name() const { return wanted_.Find("application_name"); }
  // A Parse of pgtenant statement `id` succeeded on a server.
  void OnStatementParsed(uint64_t id);
  void OnStatementFailed(uint64_t id);
  // A Close or Parse pgtenant answered itself (AnswerForServer with an undo tag) was answered,
  // or was skipped by the backend after an earlier error of its batch: then the change it made
  // to the client's statement names is undone, as PostgreSQL would not have made it.
  void OnAnswerDelivered(uint64_t tag) { name_undos_.erase(tag); }
  void OnAnswerSkipped(uint64_t tag);
  uint64_t RememberName(const std::string& name);  // for OnAnswerSkipped; returns its tag
  // The server answered a DISCARD ALL of this client's.
  void OnServerDiscardedAll();
  void ResumeReading();
  // The prelude failed: the client's statements were skipped by the server.
  void OnPreludeFailed(const std::string& sqlstate, const std::string& message, int sync_points);

  // Sends a FATAL error and closes (shutdown, timeouts, kill).
  void Terminate(const char* sqlstate, const std::string& message);
  // Closes without a word (peer already gone).
  void Close();

  // StreamHandler
  size_t OnStreamData(std::span<const uint8_t> data) override;
  void OnStreamEnd(int status) override;
  void OnStreamWritable() override;
  void OnStreamClosed() override;

 private:
  size_t HandleStartup(std::span<const uint8_t> data);
  bool HandleStartupPacket(std::span<const uint8_t> payload);
  // SSLRequest: 'S' and a TLS handshake when the listener has a certificate, else 'N'.
  void AnswerSslRequest();
  size_t HandleAuth(std::span<const uint8_t> data);
  bool HandlePassword(std::span<const uint8_t> payload);
  void AuthSucceeded();
  void FinishLogin(const Pool& pool);
  // The next message of a logged-in client's input. kMalformed: the client has been failed
  // with 08P01 (a bad length, or larger than `max_size`).
  enum class NextFrame : uint8_t { kIncomplete, kReady, kMalformed };
  NextFrame DecodeNextFrame(std::span<const uint8_t> rest, uint32_t max_size, protocol::Frame* f);
  size_t HandleIdle(std::span<const uint8_t> data);
  size_t HandleActive(std::span<const uint8_t> data);
  size_t HandleAdmin(std::span<const uint8_t> data);
  void FinishAdminLogin();
  void AddStartupSetting(const std::string& name, const std::string& value);
  std::string LoginUserOf(const std::string& startup_user) const;
  void StartAuth();
  Pool* LoginPool();
  // Queues for a server for the batch that starts with `f`; false when refused (the error is
  // sent and the batch skipped).
  bool RequestServer(const protocol::Frame& f);
  // `f` only sets, resets or shows session settings (a driver's set-up before the application
  // names its tenant): it may run on a server without a tenant (tenantless_).
  bool IsSessionSetUp(const protocol::Frame& f) const;
  static bool UnnamedBind(const protocol::Frame& f);
  bool NamesTheTenant(const protocol::Frame& f) const;
  void Fail(const char* sqlstate, const std::string& message, const std::string& hint = {});
  Pool* ResolvePool(std::string* sqlstate, std::string* message);
  // Leaves the pool queue, gives back the server and the cancel key; enters Closing.
  void Teardown();
  // Writes the prelude that makes the linked server hold this client's tenant and settings.
  void SendPrelude(bool as_query);
  void FlushBatch(std::string* batch);
  // The linked server does not hold (or may not hold) this client's tenant and settings.
  bool NeedsPrelude() const;
  // True when the statement `f` runs (a Query, a Parse, or a Bind of a statement prepared
  // earlier) refuses to run inside a transaction block or pipeline: pgtenant's tenant
  // statement must then go ahead of it in a Query of its own rather than as a Bind/Execute
  // sharing its transaction.
  bool FirstStatementNeedsOwnTransaction(const protocol::Frame& f) const;
  // Parse and Close: remembers which of the client's statements are such statements.
  void NoteStatementText(const protocol::Frame& f);
  // A Close the client sends to the server (statements are not mapped): if it names one of
  // pgtenant's own statements, that statement is prepared again before its next use.
  void NoteCloseOfOwnStatement(const protocol::Frame& f);
  // Pins the client to its server when the statement leaves state only that server holds.
  // `server_clean`: the statement starts a sync cycle outside a transaction block.
  void NoteSessionState(const protocol::Frame& f, bool server_clean);
  void PinToServer();

  // ---- settings the server does not report (client_settings.cc): `SET search_path` and
  // `SET extra_float_digits` outside a transaction block are followed, not pinned.
  // True when `sql` is such a change that pgtenant takes over (it is then on its way).
  // `is_parse`/`named`: it came in a Parse, of a named statement.
  bool FollowSettingChange(std::string_view sql, bool server_clean, bool is_parse, bool named);
  // At the end of the change's sync cycle: keep it, drop it, or pin when that cannot be told.
  void SettleSettingChange(char status);
  // RESET ALL / DISCARD ALL: the followed settings go back to their startup values.
  void ResetFollowedSettings();
  // RESET ALL / DISCARD ALL (`discards`), over either protocol: the tenant and settings the
  // client gave at startup, and a server that pgtenant's record says was reset.
  void ReturnToStartupSession(bool discards);
  // A RESET ALL of the client's is on its way. `alone_outside_block`: the only statement of a
  // Query to a clean server, so it takes effect now; otherwise once its transaction commits.
  void ResetAllSent(bool alone_outside_block);
  // At the end of a sync cycle: a RESET ALL, or a session-level tenant change made in a deferred
  // block, counts when the transaction committed (status 'I', no error, no ROLLBACK since).
  void SettlePendingChanges(char status);
  bool set_source_allowed() const;

  // ---- deferred transaction blocks (client_deferred.cc)
  struct DeferredBlock {
    std::string begin_sql;              // the client's BEGIN / START TRANSACTION, as sent
    std::string replay;                 // SET LOCAL / SET TRANSACTION sent since, ";"-terminated
    std::optional<std::string> tenant;  // the transaction's tenant, when the block named one
    bool names_tenant = false;
    bool changes_session_tenant = false;  // ... with a session-level change (SET, set_config false)
    bool aborted = false;                 // an error answered in the block: only ROLLBACK/COMMIT now
    uint32_t queries = 0;  // statements answered in the block: metered once it reaches a server
    // Not a BEGIN pgtenant answered: one Query of the client's opens the block (or runs outside
    // one) and names the tenant before anything that needs a server. Nothing to replay.
    bool in_one_query = false;
    // The tenant was named by a SELECT the server runs itself (set_config among targets only
    // the server computes: kDeferredNamingSelect). It chose the pool; the prelude sets the
    // tenant the block had before it, and the server sets the named one when, and only if, it
    // evaluates the call, as on PostgreSQL.
    bool server_sets_tenant = false;
    std::optional<std::string> tenant_before;
  };
  // A Query of several statements that names the transaction's tenant (SET LOCAL after its
  // BEGIN, or a session-level SET first) before any statement that needs a server: that tenant
  // chooses the pool (an in_one_query block). Returns the refusal when the user may not act as it.
  bool TenantNamedInOneQuery(std::string_view sql, const std::vector<routing::ClassifiedStatement>& stmts,
                             Status* refusal);
  // A BEGIN may be answered here: no server is held and the client's pool is not in session mode.
  bool MayDeferBegin();
  // The tenant of the client's current transaction: the deferred block's, else the session's.
  const std::optional<std::string>& TransactionTenant() const;
  // The transaction status pgtenant reports while the client holds no server.
  char IdleTransactionStatus() const;
  void AbortDeferredBlock(const Status& error);
  // A simple Query while no server is held: a BEGIN that opens a deferred block, or a statement
  // inside one that needs no server. True when answered.
  bool AnswerQueryInDeferredBlock(std::string_view sql);
  // The prelude carried the client's BEGIN and SET LOCALs: the block is the server's now.
  void DeferredBlockSent();
  // BEGIN while no server is held: opens the deferred block (or warns, inside one). Appends
  // CommandComplete to `out`.
  void OpenDeferredBlock(std::string_view begin_sql, std::string* out);
  // COMMIT / ROLLBACK of a deferred block (or outside any): appends CommandComplete; an error
  // when a session-level tenant change made in the block cannot take effect.
  Status EndDeferredBlock(bool commit, std::string* out);
  // SET [LOCAL] / set_config of the tenant inside a deferred block: the transaction's tenant.
  Status NameTenantInDeferredBlock(const std::optional<std::string>& tenant, bool transaction_scoped);
  static bool IsTransactionScoped(routing::StatementKind kind);
  static Status AbortedBlockError();
  // A Parse while no server is held that needs none: kDeferredBeginStatement (BEGIN),
  // kDeferredEndStatement (COMMIT / ROLLBACK in a deferred block), or the StatementKind of a
  // SET LOCAL / set_config(..., true) of the tenant in one (`statement` gets its value and
  // parameter). 0: it needs a server.
  // `calls`: for kDeferredSetConfigsStatement.
  int DeferrableStatementKind(std::string_view sql, routing::ClassifiedStatement* statement,
                              std::vector<routing::SetConfigCall>* calls);
  // LocalStatement::kind of a BEGIN and of a COMMIT / ROLLBACK answered in a deferred block, and
  // of a SELECT of several set_config(..., true) calls in one (PostgREST's transaction settings):
  // the tenant's call names the transaction's tenant, the others are kept for the server.
  static constexpr int kDeferredBeginStatement = -3;
  static constexpr int kDeferredEndStatement = -4;
  static constexpr int kDeferredSetConfigsStatement = -5;
  // ... and of a SELECT with the tenant's set_config(..., true) among targets only the server
  // can compute (`SELECT now(), set_config('app.tenant_id', $1, true)`): its Bind names the
  // transaction's tenant, which chooses the pool, and then the server runs it.
  static constexpr int kDeferredNamingSelect = -6;
  // Names the deferred block's tenant for a statement the server runs and that sets it itself:
  // it chooses the pool, and the prelude sets the tenant the block had before.
  Status NameTenantTheServerSets(const std::optional<std::string>& tenant);
  // The tenant a Bind of a kDeferredNamingSelect names (the last call of the variable wins);
  // false when a call's name or the tenant's value is NULL or missing.
  bool BoundNamingTenant(const std::vector<routing::SetConfigCall>& calls,
                         const std::vector<std::optional<std::string>>& params, std::optional<std::string>* tenant);

  // A Bind of the client's unnamed statement that is such a SET runs it again: pin.
  void NoteBind(const protocol::Frame& f);


  // ---- tenancy (client_tenancy.cc): statements that change the tenant (docs/reference.md section 3)
  enum class Verdict { kForward, kAnswered, kReplaced };
  // Looks at one client message. `server_clean`: no transaction is open and nothing is in
  // flight, so pgtenant may answer in order without a server. kAnswered: the responses are
  // written; kReplaced: `replacement` goes to the server instead of the message.
  Verdict InspectForTenancy(const protocol::Frame& f, bool server_clean, std::string* replacement);
  Verdict InspectQuery(std::string_view sql, bool server_clean, std::string* replacement);
  Verdict InspectDeallocate(std::string_view sql, bool server_clean);
  Verdict InspectParse(const protocol::Frame& f, bool server_clean, std::string* replacement);
  Verdict InspectLocalReference(const protocol::Frame& f, bool server_clean, std::string* replacement);
  // Validates and applies a session-level tenant change (routing follows at the next
  // transaction). Returns the error to report, if any.
  Status ChangeTenant(const std::optional<std::string>& tenant);
  // SQL that makes the server raise the given error, so that a refusal inside a transaction
  // aborts it exactly as a Postgres error would.
  static std::string RefusalSql(const Status& error);
  void AnswerError(const Status& error, bool with_ready);
  bool user_may_act_as_any_tenant() const;
  // SET LOCAL / set_config(..., true): the user may act as `tenant` and its pool is the one
  // in use. Returns the refusal otherwise.
  Status CheckLocalTenant(const std::string& tenant);

  // ---- prepared statements (client_prepared.cc)
  bool MapsPreparedStatements() const;
  bool AnswerParseWhileIdle(const protocol::Frame& f);
  Verdict MapPreparedStatement(const protocol::Frame& f, std::string* own, std::string* replacement);
  void MakeRoomOnServer(std::string* own);
  void EnsureOnServer(const PreparedStatementPtr& stmt, std::string* own);
  void CloseIfUnsure(const PreparedStatement& stmt, std::string* own);

  // Tenant statements answered by pgtenant over the extended protocol, by statement name, and
  // their bound portals (a portal lives until the Sync that ends its batch).
  struct LocalStatement {
    std::string query;
    std::vector<int32_t> param_types;
    int kind = 0;  // routing::StatementKind
    std::string value;
    int param_index = 0;
    std::string column = "set_config";  // a set_config's result column (its alias, if any)
    // kDeferredSetConfigsStatement: the SELECT's set_config calls, in target order.
    std::vector<routing::SetConfigCall> calls;
  };
  // The tenant a Bind of `statement` names: its literal value or the bound parameter
  // (nullopt for a RESET, a NULL or a missing parameter).
  static std::optional<std::string> BoundTenant(const LocalStatement& statement, const protocol::BindMessage& bind);
  struct LocalPortal {
    const LocalStatement* statement = nullptr;
    std::optional<std::string> value;
    std::vector<std::optional<std::string>> params;  // kDeferredSetConfigsStatement's Bind values
  };
  struct LocalState {
    std::map<std::string, LocalStatement, std::less<>> statements;
    std::map<std::string, LocalPortal, std::less<>> portals;
  };
  // A Bind of a kDeferredNamingSelect while no server is held: names the deferred block's
  // tenant from the bound values (kForward: a server of its pool runs it) or answers the error.
  Verdict NameTenantForServerRun(const LocalStatement& statement, const protocol::BindMessage& bind);
  // kDeferredSetConfigsStatement executed while no server is held: answers the row and, in a
  // deferred block, names the tenant and keeps the other settings.
  void ExecuteDeferredSetConfigs(const LocalStatement& stmt, const std::vector<std::optional<std::string>>& params);
  // The text of a set_config argument: its constant, or the bound parameter (nullopt: NULL or
  // missing).
  static std::optional<std::string> SetConfigArgument(const routing::SqlArgument& arg,
                                                      const std::vector<std::optional<std::string>>& params);
  LocalState& local() {
    if (!local_) local_ = std::make_unique<LocalState>();
    return *local_;
  }

  Pooler* pooler_;
  uint64_t id_;
  Stream stream_;
  uint64_t connected_ms_;
  uint64_t wait_started_ms_ = 0;
  uint64_t last_activity_ms_ = 0;
  std::string user_;
  std::string database_;
  std::optional<std::string> startup_tenant_;
  std::string pool_name_;
  SessionSettings wanted_;  // tenant and settings this client's session must have
  ServerSession* server_ = nullptr;
  Pool* waiting_in_ = nullptr;
  FairQueue<ClientSession*>::Handle wait_position_;
  int32_t slot_ = 0;
  int32_t cancel_key_ = 0;
  State state_ = State::kStartup;
  // (The flags are kept together: every byte of padding here is paid 10,000 times.)
  bool skip_until_sync_ = false;
  bool admin_ = false;
  bool in_data_callback_ = false;    // Replay() must wait until OnStreamData returns
  bool first_needs_own_txn_ = false;   // the waiting statement refuses to run in a pipeline
  bool first_frame_inspected_ = false;  // the next frame HandleActive sees passed HandleIdle's checks
  // HandleIdle's inspection of the frame it asks a server for must run again on the server
  // (a Bind of a kDeferredNamingSelect: it named the tenant, the server runs it).
  bool inspect_again_on_server_ = false;
  bool prelude_pending_ = false;  // session mode: the tenant changed while a server is held
  bool pinned_ = false;           // holds its server until it disconnects (session state)
  bool reset_pending_ = false;    // a RESET ALL counts once its transaction commits
  // Holds a server without a tenant for set-up statements only (require_tenant, no tenant named
  // yet): anything else it sends there is refused with 28000.
  bool tenantless_ = false;
  bool pending_undone_ = false;   // ... (and pending_tenant_), which an error or a ROLLBACK prevents
  // How many times the client has named its tenant (SET, set_config, RESET ALL, DISCARD ALL).
  // A server connection this client used last, under an older count, may still hold a value
  // the client set in SQL pgtenant cannot see (a function calling set_config): its prelude
  // sets the tenant again instead of trusting pgtenant's record. (Wraps after 2^32 namings;
  // a wrong trust would need a connection unused by anyone else for exactly that many.)
  uint32_t tenant_namings_ = 0;
  // The statement being forwarded may set the tenant variable in a form pgtenant cannot read:
  // once it (after any prelude) is on its way, the server's variable counts as unknown.
  bool tenant_may_change_ = false;
  // The tenant went back to the startup one while a server is held (session mode): the next
  // statement must check that the server belongs to that tenant's pool.
  bool recheck_pool_ = false;
  bool holds_user_slot_ = false;    // counted against auth.users.NAME.max_client_connections
  bool holds_tenant_slot_ = false;  // counted against tenants.<wanted_.tenant>.max_client_connections
  TenantUsage* usage_ = nullptr;     // counters of this client's (pool, tenant)
  TransactionUsage txn_;             // the current transaction's, added to usage_ at its end
  uint64_t txn_started_us_ = 0;      // when the current transaction got its server
  uint64_t replacement_tag_ = 0;     // statement id of a rewritten Parse
  std::unique_ptr<ClientStatements> statements_;  // named prepared statements, on first use
  // What a client name held before a Close or Parse that pgtenant answered itself, until the
  // answer reaches the client (kept) or the backend skips it (restored): OnAnswerSkipped.
  struct NameUndo {
    std::string name;
    PreparedStatementPtr previous;  // null: the name did not exist
  };
  std::unordered_map<uint64_t, NameUndo> name_undos_;
  uint64_t next_name_undo_ = 0;
  std::unique_ptr<LocalState> local_;  // allocated on first use only
  // The client's prepared statements (by name, "" unnamed) that refuse to run in a pipeline
  // (a prepared DISCARD ALL): a Bind of one gets the tenant in a Query of its own.
  std::unique_ptr<std::set<std::string, std::less<>>> own_txn_statements_;
  std::unique_ptr<DeferredBlock> deferred_;  // a BEGIN pgtenant answered; no server yet
  // A session-level tenant change made in a deferred block that reached a server: the client's
  // tenant once that block commits.
  std::unique_ptr<std::optional<std::string>> pending_tenant_;
  struct FollowedSettings {
    SessionSettings startup;  // the client's settings before its first followed SET
    std::optional<routing::SettingChange> pending;  // on its way; not known to have committed
    uint64_t queries_before = 0;
    uint64_t errors_before = 0;
    bool pending_via_parse = false;
    bool unnamed_statement_sets = false;  // the client's unnamed statement is such a SET
  };
  std::unique_ptr<FollowedSettings> tracked_;  // allocated on first use only
  // What only the login needs; freed once the client is logged in.
  struct AuthState {
    std::unique_ptr<protocol::ScramServerExchange> scram;
    std::string md5_salt;
    bool scram_first_done = false;
    bool user_known = false;
    Status deferred_error;  // a startup problem reported after authentication
  };
  std::unique_ptr<AuthState> auth_;
  AuthState& auth() {
    if (!auth_) auth_ = std::make_unique<AuthState>();
    return *auth_;
  }
};

}  // namespace pgtenant::proxy
