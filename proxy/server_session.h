// ServerSession: one connection from pgtenant to a backend Postgres, and its state machine (an
// explicit state enum, one handler per state):
// Resolving -> Connecting -> Login -> Idle <-> Active -> (Resetting) -> Closing.
//
// While Active it is linked to exactly one ClientSession and forwards the backend's messages
// to it, watching ReadyForQuery to know when the transaction is over. Before the client's first
// message of a transaction it may send a prelude (tenant variable and session settings) whose
// responses it swallows, so the client sees exactly what Postgres would have answered.
//
// What the backend session holds is BackendState's (backend_state.h): every message from the
// server passes through it, so that belief changes only by what the server answered.
//
// Lifetime: owned by its Pool; frees itself after its handle closes (OnStreamClosed), after
// telling the pool. Loop-affine.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "protocol/frame_decoder.h"
#include "protocol/response_tracker.h"
#include "protocol/scram.h"
#include "proxy/backend_state.h"
#include "proxy/cancel.h"
#include "proxy/pool.h"
#include "proxy/session_settings.h"
#include "proxy/stream.h"

namespace pgtenant::proxy {

class ClientSession;

class ServerSession : public StreamHandler {
 public:
  enum class State { kResolving, kConnecting, kLogin, kIdle, kActive, kResetting, kClosing };

  ServerSession(Pool* pool, uint64_t id);
  ~ServerSession() override;

  // Starts resolving and connecting to the pool's backend.
  void Connect();
  // Closes the connection (sends Terminate when logged in). Idempotent.
  void Close(const char* why);

  State state() const { return state_; }
  bool closing() const { return state_ == State::kClosing; }
  // After Close sent a Terminate, the handle stays open until the backend closes its end, at
  // most this long (then Pool::Maintain closes it: CloseIfLingering).
  static constexpr uint64_t kBackendExitWaitMs = 2000;
  void CloseIfLingering(uint64_t now_ms);
  Pool* pool() const { return pool_; }
  uint64_t id() const { return id_; }
  uint64_t generation() const { return generation_; }
  ClientSession* client() const { return client_; }
  // What its pool counts this connection against: the tenant whose client holds it (per-tenant
  // caps; Pool::HandOver sets it, Pool::Release and OnServerGone clear it) and the backend
  // host:port of the server-connection budget (from Pool::OpenServer until it is gone).
  struct PoolMarks {
    std::string tenant;
    bool tenant_counted = false;
    std::string budget_host;
    bool evicted = false;  // closed to free a slot of the budget for another pool
  };
  PoolMarks& pool_marks() { return pool_marks_; }
  uint64_t created_ms() const { return created_ms_; }
  uint64_t last_used_ms() const { return last_used_ms_; }
  int32_t backend_pid() const { return backend_pid_; }
  Stream& stream() { return stream_; }
  // A cancel for this connection's backend is on its way; see cancel.h.
  std::shared_ptr<CancelGate> cancel_gate();
  // Every cancel sent for this backend was delivered: a parked connection may serve again.
  void OnCancelsDelivered();
  // The backend's address, for sending it a CancelRequest on a new connection.
  const sockaddr_storage& backend_addr() const { return backend_addr_; }
  int32_t backend_key() const { return backend_key_; }
  char txn_status() const { return txn_status_; }
  // Linked, inside a transaction block, and nothing running.
  bool idle_in_transaction() const {
    return state_ == State::kActive && tracker_.empty() && txn_status_ != 'I';
  }

  // REQUIRES: state Idle. Links the client.
  void Attach(ClientSession* client);
  // Writes (or corks) the prelude that makes the backend hold `want` for client `client_id`
  // with naming count `namings` (BackendState::WritePrelude), with its tracker slots.
  void SendPrelude(const SessionSettings& want, uint64_t client_id, uint32_t namings, bool tenant_as_query,
                   std::string_view block_start = {});
  // The linked client keeps this connection for another batch: must a prelude go first?
  bool NeedsPreludeFor(const SessionSettings& want, uint32_t namings) const {
    return backend_.NeedsPrelude(want, namings);
  }
  // Registers a message about to be written: the client's (its answer goes to the client) or
  // pgtenant's own (its answer is dropped). Write the bytes with ForwardRaw in the same order.
  void NoteSent(char type, uint64_t tag = 0) { tracker_.Sent(type, protocol::ResponseTracker::Origin::kClient, tag); }
  void NoteOwn(char type, uint64_t tag = 0) { tracker_.Sent(type, protocol::ResponseTracker::Origin::kPgtenant, tag); }
  void ForwardRaw(std::span<const uint8_t> bytes) {
    if (corked_) {
      cork_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    } else {
      stream_.Write(bytes);
    }
  }
  // Between Cork() and Uncork() writes are gathered, so the prelude and the client's first
  // batch reach the backend in one write. Unlinking uncorks.
  void Cork() { corked_ = true; }
  void Uncork() {
    corked_ = false;
    if (!cork_.empty()) {
      stream_.Write(cork_);
      cork_.clear();
    }
  }
  // pgtenant answers a client message itself (ParseComplete of a statement this connection
  // already has); the answer reaches the client in the place Postgres would have put it.
  // False when the backend will skip the message (an error earlier in the batch): no answer.
  // `undo_tag` (not 0) is handed to ClientSession::OnAnswerSkipped if an error makes the backend
  // skip it later.
  bool AnswerForServer(char response_type, uint64_t undo_tag = 0);
  bool clean() const {
    return state_ == State::kActive && tracker_.empty() && !tracker_.extended_open() && txn_status_ == 'I';
  }
  // What the backend session holds (tenant, settings, prepared statements).
  BackendState& backend() { return backend_; }
  const BackendState& backend() const { return backend_; }
  // Counts the client's batches on this connection, for the LRU of mapped statements.
  uint64_t batch_tick() const { return batch_tick_; }
  bool in_transaction_block() const { return txn_status_ != 'I'; }
  void NoteCopyDoneSent() { copy_in_ = false; }

  // The linked client left. The connection is cleaned (ROLLBACK/DISCARD ALL) and released, or
  // closed when it cannot be cleaned cheaply (a query still running, a COPY in progress).
  // `discard`: the client left session state behind (pinned): DISCARD ALL before reuse.
  void DetachAbandoned(bool discard = false);
  // Session mode: the client ended normally; reset the connection and release it.
  void DetachSessionEnd();

  // Back-pressure: the client stream asks us to stop or resume reading from the backend.
  void PauseReading() { stream_.StopReading(); }
  void ResumeReading() {
    if (state_ != State::kClosing) stream_.StartReading();
  }
  bool write_backlogged() const { return stream_.over_high_water(); }

  // StreamHandler
  size_t OnStreamData(std::span<const uint8_t> data) override;
  void OnStreamEnd(int status) override;
  void OnStreamWritable() override;
  void OnStreamClosed() override;

 private:
  static void ResolvedCb(uv_getaddrinfo_t* req, int status, addrinfo* res);
  static void ConnectCb(uv_connect_t* req, int status);
  void StartConnect(const sockaddr* addr);
  void SendStartup();
  size_t HandleLogin(std::span<const uint8_t> data);
  // The backend's one-byte answer to pgtenant's SSLRequest.
  size_t HandleSslAnswer(std::span<const uint8_t> data);
  bool HandleAuthRequest(std::span<const uint8_t> payload);
  size_t HandleActive(std::span<const uint8_t> data);
  size_t HandleResetting(std::span<const uint8_t> data);
  size_t HandleIdle(std::span<const uint8_t> data);
  // `client_sync_points`: the client's Syncs and Queries sent and not yet answered, counted
  // before the tracker dropped those the backend skips after the error; each gets its
  // ReadyForQuery from pgtenant.
  void PreludeFailed(const protocol::Frame& f, int client_sync_points);
  void OnTransactionDone();
  void StartReset(bool rollback, bool discard);
  void LoginFailed(const std::string& reason);
  void Unlink();

  Pool* pool_;
  uint64_t id_;
  State state_ = State::kResolving;
  bool awaiting_ssl_answer_ = false;   // Login: pgtenant's SSLRequest is unanswered
  Stream stream_;
  ClientSession* client_ = nullptr;
  uint64_t created_ms_;
  uint64_t last_used_ms_;
  uint64_t generation_ = 0;  // the pool's generation when this connection was opened
  int32_t backend_pid_ = 0;
  sockaddr_storage backend_addr_{};
  int32_t backend_key_ = 0;
  char txn_status_ = 'I';
  protocol::ResponseTracker tracker_;  // which answer belongs to whom
  bool copy_in_ = false;               // backend waits for CopyData from the client
  uint64_t batch_tick_ = 0;
  std::shared_ptr<CancelGate> cancel_gate_;
  bool parked_ = false;  // transaction over, waiting for cancels in flight before reuse
  uint64_t closing_since_ms_ = 0;  // Close sent a Terminate and waits for the backend's EOF
  bool backend_gone_ = false;      // the backend closed the connection or it failed
  bool corked_ = false;
  std::string cork_;
  int reset_pending_ = 0;        // ReadyForQuery answers to swallow while Resetting
  bool release_after_reset_ = true;
  ParamList login_params_;
  BackendState backend_;
  PoolMarks pool_marks_;
  std::unique_ptr<protocol::ScramClientExchange> scram_;
  std::unique_ptr<uv_getaddrinfo_t> resolve_req_;
  std::unique_ptr<uv_connect_t> connect_req_;
};

}  // namespace pgtenant::proxy
