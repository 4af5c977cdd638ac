// ServerSession: one connection from pgtenant to a backend Postgres, and its state machine
// (style.md #5): Resolving -> Connecting -> Login -> Idle <-> Active -> (Resetting) -> Closing.
//
// While Active it is linked to exactly one ClientSession and forwards the backend's messages
// to it, watching ReadyForQuery to know when the transaction is over. Before the client's first
// message of a transaction it may send a prelude (tenant variable and session settings) whose
// responses it swallows, so the client sees exactly what Postgres would have answered.
//
// Lifetime: owned by its Pool; frees itself after its handle closes (OnStreamClosed), after
// telling the pool. Loop-affine.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "protocol/frame_decoder.h"
#include "protocol/scram.h"
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
  Pool* pool() const { return pool_; }
  uint64_t id() const { return id_; }
  ClientSession* client() const { return client_; }
  uint64_t created_ms() const { return created_ms_; }
  uint64_t last_used_ms() const { return last_used_ms_; }
  int32_t backend_pid() const { return backend_pid_; }
  // The backend's address, for sending it a CancelRequest on a new connection.
  const sockaddr_storage& backend_addr() const { return backend_addr_; }
  int32_t backend_key() const { return backend_key_; }
  char txn_status() const { return txn_status_; }
  // Linked, inside a transaction block, and nothing running.
  bool idle_in_transaction() const {
    return state_ == State::kActive && outstanding_ == 0 && txn_status_ != 'I';
  }

  // REQUIRES: state Idle. Links the client.
  void Attach(ClientSession* client);
  // Sends statements of pgtenant's own ahead of the client's and swallows their responses.
  // `commands` counts the CommandCompletes to swallow (extended prelude), or, when `as_query`,
  // one ReadyForQuery ends the prelude.
  void SendPrelude(const std::string& prelude, int commands, bool as_query);
  // The next `n` ParseCompletes before the next ReadyForQuery answer Parse messages pgtenant
  // slipped in (a statement the client prepared while pgtenant answered for the server).
  void SwallowParseCompletes(int n) { swallow_parse_completes_ += n; }
  bool clean() const {
    return state_ == State::kActive && outstanding_ == 0 && !extended_open_ && txn_status_ == 'I';
  }
  bool in_transaction_block() const { return txn_status_ != 'I'; }
  void set_last_client_id(uint64_t id) { last_client_id_ = id; }
  // The client writes its messages through here; the counters track sync points.
  void ForwardFromClient(std::span<const uint8_t> bytes) { stream_.Write(bytes); }
  void NoteSyncPointSent() { ++outstanding_; }
  void NoteExtendedSent() { extended_open_ = true; }
  void NoteSyncSent() {
    ++outstanding_;
    extended_open_ = false;
  }
  void NoteCopyDoneSent() { copy_in_ = false; }

  // The linked client left. The connection is cleaned (ROLLBACK/DISCARD ALL) and released, or
  // closed when it cannot be cleaned cheaply (a query still running, a COPY in progress).
  void DetachAbandoned();
  // Session mode: the client ended normally; reset the connection and release it.
  void DetachSessionEnd();

  // Back-pressure: the client stream asks us to stop or resume reading from the backend.
  void PauseReading() { stream_.StopReading(); }
  void ResumeReading() {
    if (state_ != State::kClosing) stream_.StartReading();
  }
  bool write_backlogged() const { return stream_.over_high_water(); }

  // What the connection holds (used to decide the next client's prelude).
  SessionSettings& settings() { return settings_; }
  uint64_t last_client_id() const { return last_client_id_; }

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
  bool HandleAuthRequest(std::span<const uint8_t> payload);
  size_t HandleActive(std::span<const uint8_t> data);
  size_t HandleResetting(std::span<const uint8_t> data);
  size_t HandleIdle(std::span<const uint8_t> data);
  bool SwallowPrelude(const protocol::Frame& f);
  void PreludeFailed(const protocol::Frame& f);
  void OnTransactionDone();
  void StartReset(bool rollback, bool discard);
  void LoginFailed(const std::string& reason);
  void Unlink();

  Pool* pool_;
  uint64_t id_;
  State state_ = State::kResolving;
  Stream stream_;
  ClientSession* client_ = nullptr;
  uint64_t last_client_id_ = 0;
  uint64_t created_ms_;
  uint64_t last_used_ms_;
  int32_t backend_pid_ = 0;
  sockaddr_storage backend_addr_{};
  int32_t backend_key_ = 0;
  char txn_status_ = 'I';
  int outstanding_ = 0;          // sync points (Query, Sync, FunctionCall) not yet answered
  bool extended_open_ = false;   // extended-protocol messages sent after the last Sync
  bool copy_in_ = false;         // backend waits for CopyData from the client
  int swallow_parse_completes_ = 0;
  int prelude_commands_ = 0;     // prelude CommandCompletes still to swallow
  bool prelude_query_ = false;   // prelude sent as a Query: swallow up to its ReadyForQuery
  int reset_pending_ = 0;        // ReadyForQuery answers to swallow while Resetting
  bool release_after_reset_ = true;
  ParamList login_params_;
  SessionSettings settings_;
  std::unique_ptr<protocol::ScramClientExchange> scram_;
  std::unique_ptr<uv_getaddrinfo_t> resolve_req_;
  std::unique_ptr<uv_connect_t> connect_req_;
};

}  // namespace pgtenant::proxy
