#include "proxy/server_session.h"

#include <cstring>

#include "protocol/byte_reader.h"
#include "protocol/md5_auth.h"
#include "protocol/messages.h"
#include "proxy/client_session.h"
#include "proxy/log.h"
#include "proxy/pooler.h"

namespace pgtenant::proxy {

using protocol::DecodeStatus;
using protocol::Frame;
namespace be = protocol::be;

namespace {
// Backends may send large rows; Postgres caps a message at 1 GB.
constexpr uint32_t kMaxBackendMessage = 1u << 30;

std::string_view AsView(std::span<const uint8_t> s) {
  return std::string_view(reinterpret_cast<const char*>(s.data()), s.size());
}
}  // namespace

ServerSession::ServerSession(Pool* pool, uint64_t id)
    : pool_(pool),
      id_(id),
      stream_(pool->pooler()->loop(), this),
      created_ms_(NowMs()),
      last_used_ms_(created_ms_),
      generation_(pool->generation()) {}

ServerSession::~ServerSession() {
  if (cancel_gate_) cancel_gate_->server = nullptr;
}

std::shared_ptr<CancelGate> ServerSession::cancel_gate() {
  if (!cancel_gate_) {
    cancel_gate_ = std::make_shared<CancelGate>();
    cancel_gate_->server = this;
  }
  return cancel_gate_;
}

void ServerSession::OnCancelsDelivered() {
  if (!parked_ || state_ != State::kIdle) return;
  parked_ = false;
  pool_->Release(this);
}

void ServerSession::Connect() {
  const conf::Pool& cfg = pool_->config();
  sockaddr_in a4;
  sockaddr_in6 a6;
  if (uv_ip4_addr(cfg.host.c_str(), cfg.port, &a4) == 0) {
    StartConnect(reinterpret_cast<sockaddr*>(&a4));
    return;
  }
  if (uv_ip6_addr(cfg.host.c_str(), cfg.port, &a6) == 0) {
    StartConnect(reinterpret_cast<sockaddr*>(&a6));
    return;
  }
  resolve_req_ = std::make_unique<uv_getaddrinfo_t>();
  resolve_req_->data = this;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  std::string port = std::to_string(cfg.port);
  int rc = uv_getaddrinfo(pool_->pooler()->loop(), resolve_req_.get(), ResolvedCb, cfg.host.c_str(),
                          port.c_str(), &hints);
  if (rc != 0) LoginFailed(std::string("cannot resolve host: ") + uv_strerror(rc));
}

void ServerSession::ResolvedCb(uv_getaddrinfo_t* req, int status, addrinfo* res) {
  auto* self = static_cast<ServerSession*>(req->data);
  if (self->state_ == State::kClosing) {
    uv_freeaddrinfo(res);
    self->stream_.Close();  // the close was deferred until the lookup returned
    return;
  }
  if (status != 0 || res == nullptr) {
    uv_freeaddrinfo(res);
    self->LoginFailed(std::string("cannot resolve host: ") + uv_strerror(status));
    return;
  }
  self->StartConnect(res->ai_addr);
  uv_freeaddrinfo(res);
}

void ServerSession::StartConnect(const sockaddr* addr) {
  state_ = State::kConnecting;
  std::memcpy(&backend_addr_, addr, addr->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in));
  connect_req_ = std::make_unique<uv_connect_t>();
  connect_req_->data = this;
  int rc = uv_tcp_connect(connect_req_.get(), stream_.tcp(), addr, ConnectCb);
  if (rc != 0) LoginFailed(uv_strerror(rc));
}

void ServerSession::ConnectCb(uv_connect_t* req, int status) {
  auto* self = static_cast<ServerSession*>(req->data);
  if (status == UV_ECANCELED || self->state_ == State::kClosing) return;
  if (status != 0) {
    self->LoginFailed(uv_strerror(status));
    return;
  }
  uv_tcp_nodelay(self->stream_.tcp(), 1);
  self->state_ = State::kLogin;
  if (self->pool_->config().tls != conf::ServerTlsMode::kDisable) {
    std::string out;
    protocol::AppendSslRequest(&out);
    self->stream_.Write(out);
    self->awaiting_ssl_answer_ = true;
  } else {
    self->SendStartup();
  }
  self->stream_.StartReading();
}

size_t ServerSession::HandleSslAnswer(std::span<const uint8_t> data) {
  const conf::Pool& cfg = pool_->config();
  awaiting_ssl_answer_ = false;
  if (data[0] == 'S') {
    // Anything behind the 'S' arrived unencrypted and must not pass as the backend's (CVE-2021-23214).
    if (data.size() > 1) {
      LoginFailed("the backend sent unencrypted data after agreeing to TLS");
      return data.size();
    }
    std::shared_ptr<TlsContext> context = pool_->pooler()->BackendTls(pool_->name());
    if (!context) {
      LoginFailed("no TLS context for the pool (config reloaded meanwhile)");
      return data.size();
    }
    stream_.StartTls(std::make_unique<TlsSession>(std::move(context), TlsSession::Role::kClient, cfg.host));
    if (state_ == State::kClosing) return data.size();
    SendStartup();  // sent once the handshake completes
    return 1;
  }
  if (data[0] == 'N' && cfg.tls == conf::ServerTlsMode::kPrefer) {
    SendStartup();
    return 1;
  }
  if (data[0] == 'N') {
    LoginFailed("the backend does not accept TLS connections (pool tls mode requires TLS)");
  } else {
    LoginFailed("the backend answered the SSL request with an unexpected message");
  }
  return data.size();
}

void ServerSession::SendStartup() {
  const conf::Pool& cfg = pool_->config();
  std::string out;
  protocol::AppendStartupMessage(&out, {{"user", cfg.user}, {"database", cfg.database}});
  stream_.Write(out);
}

void ServerSession::LoginFailed(const std::string& reason) {
  LOG_WARNING("pool %s: server connection %llu failed: %s", pool_->name().c_str(),
              static_cast<unsigned long long>(id_), reason.c_str());
  pool_->OnServerConnectFailed(this, reason);
  Close("login failed");
}

size_t ServerSession::OnStreamData(std::span<const uint8_t> data) {
  switch (state_) {
    case State::kLogin: return awaiting_ssl_answer_ ? HandleSslAnswer(data) : HandleLogin(data);
    case State::kActive: return HandleActive(data);
    case State::kResetting: return HandleResetting(data);
    case State::kIdle: return HandleIdle(data);
    default: return data.size();
  }
}

size_t ServerSession::HandleLogin(std::span<const uint8_t> data) {
  size_t pos = 0;
  while (state_ == State::kLogin) {
    Frame f;
    DecodeStatus st = protocol::DecodeTyped(data.subspan(pos), kMaxBackendMessage, &f);
    if (st == DecodeStatus::kNeedMoreData) break;
    if (st == DecodeStatus::kMalformed) {
      LoginFailed("malformed message from the backend");
      return data.size();
    }
    pos += f.total_size;
    switch (f.type) {
      case be::kAuthentication:
        if (!HandleAuthRequest(f.payload)) return data.size();
        break;
      case be::kParameterStatus: {
        protocol::ByteReader r(f.payload);
        std::string_view name, value;
        if (r.GetCString(&name) && r.GetCString(&value)) {
          login_params_.emplace_back(std::string(name), std::string(value));
        }
        break;
      }
      case be::kBackendKeyData: {
        protocol::ByteReader r(f.payload);
        if (!r.GetInt32(&backend_pid_) || !r.GetInt32(&backend_key_)) {
          LoginFailed("malformed BackendKeyData");
          return data.size();
        }
        break;
      }
      case be::kErrorResponse: {
        protocol::ErrorFields e = protocol::ParseErrorFields(f.payload);
        LoginFailed(e.message + " (SQLSTATE " + e.sqlstate + ")");
        return data.size();
      }
      case be::kReadyForQuery:
        state_ = State::kIdle;
        scram_.reset();
        last_used_ms_ = NowMs();
        LOG_DEBUG("pool %s: server connection %llu ready (backend pid %d)", pool_->name().c_str(),
                  static_cast<unsigned long long>(id_), backend_pid_);
        pool_->OnServerLoggedIn(this, login_params_);
        login_params_.clear();
        login_params_.shrink_to_fit();
        return pos;  // anything after belongs to the Idle state
      default:
        break;  // NoticeResponse, NegotiateProtocolVersion: nothing to do
    }
  }
  return pos;
}

bool ServerSession::HandleAuthRequest(std::span<const uint8_t> payload) {
  const conf::Pool& cfg = pool_->config();
  protocol::ByteReader r(payload);
  int32_t code;
  if (!r.GetInt32(&code)) {
    LoginFailed("malformed authentication request");
    return false;
  }
  std::string out;
  switch (code) {
    case protocol::kAuthOk:
      return true;
    case protocol::kAuthCleartext:
      protocol::AppendPasswordMessage(&out, cfg.password);
      break;
    case protocol::kAuthMd5: {
      std::span<const uint8_t> salt;
      if (!r.GetBytes(4, &salt)) {
        LoginFailed("malformed md5 request");
        return false;
      }
      std::string hash = protocol::IsMd5Hash(cfg.password) ? cfg.password
                                                           : protocol::Md5PasswordHash(cfg.password, cfg.user);
      protocol::AppendPasswordMessage(&out, protocol::Md5SaltedResponse(hash, salt.first<4>()));
      break;
    }
    case protocol::kAuthSasl: {
      bool has_scram = false;
      std::string_view mech;
      while (r.GetCString(&mech) && !mech.empty()) has_scram |= mech == "SCRAM-SHA-256";
      if (!has_scram) {
        LoginFailed("backend offers no supported SASL mechanism");
        return false;
      }
      scram_ = std::make_unique<protocol::ScramClientExchange>(cfg.password);
      protocol::AppendSaslInitialResponse(&out, "SCRAM-SHA-256", scram_->ClientFirstMessage());
      break;
    }
    case protocol::kAuthSaslContinue: {
      if (!scram_) {
        LoginFailed("unexpected SASL continue");
        return false;
      }
      auto final_msg = scram_->HandleServerFirst(AsView(r.Rest()));
      if (!final_msg.ok()) {
        LoginFailed(final_msg.status().message());
        return false;
      }
      protocol::AppendSaslResponse(&out, *final_msg);
      break;
    }
    case protocol::kAuthSaslFinal: {
      Status s = scram_ ? scram_->HandleServerFinal(AsView(r.Rest()))
                        : Status::AuthFailed("unexpected SASL final message");
      if (!s.ok()) {
        LoginFailed(s.message());
        return false;
      }
      return true;
    }
    default:
      LoginFailed("unsupported authentication method " + std::to_string(code) + " requested by the backend");
      return false;
  }
  stream_.Write(out);
  return true;
}

void ServerSession::Attach(ClientSession* client) {
  state_ = State::kActive;
  client_ = client;
  copy_in_ = false;
  tracker_.Clear();
  ++batch_tick_;
}

void ServerSession::SendPrelude(const SessionSettings& want, uint64_t client_id, uint32_t namings,
                                bool tenant_as_query, std::string_view block_start) {
  std::string bytes, own_types;
  backend_.WritePrelude(want, client_id, namings, tenant_as_query, pool_->pooler()->config().tenancy.variable, &bytes,
                        &own_types, block_start);
  for (char type : own_types) NoteOwn(type);
  if (!bytes.empty()) ForwardRaw(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

bool ServerSession::AnswerForServer(char response_type, uint64_t undo_tag) {
  if (!tracker_.Synthetic(response_type, undo_tag)) return false;
  std::string due;
  std::vector<uint64_t> emitted;
  tracker_.TakeDue(&due, &emitted);
  for (uint64_t tag : emitted) {
    if (client_) client_->OnAnswerDelivered(tag);
  }
  if (!due.empty() && client_) client_->ForwardFromServer(std::span<const uint8_t>(
      reinterpret_cast<const uint8_t*>(due.data()), due.size()));
  return true;
}

void ServerSession::PreludeFailed(const Frame& f, int sync_points) {
  // The backend refused pgtenant's own statements (the tenant, a setting, a statement the
  // client prepared). The client's messages behind them were skipped or must not run without
  // them, so the connection cannot be trusted: close it and tell the client.
  protocol::ErrorFields e = protocol::ParseErrorFields(f.payload);
  LOG_WARNING("pool %s: preparing a server connection failed: %s", pool_->name().c_str(), e.message.c_str());
  ClientSession* c = client_;
  Unlink();
  Close("prelude failed");
  if (c != nullptr) {
    c->OnPreludeFailed(e.sqlstate.empty() ? "08006" : e.sqlstate,
                       "pgtenant could not prepare the server connection of pool \"" + pool_->name() +
                           "\": " + e.message,
                       sync_points);
  }
}

size_t ServerSession::HandleActive(std::span<const uint8_t> data) {
  size_t pos = 0;
  size_t run_start = 0;
  bool done = false;
  int transactions_ended = 0;
  std::string due;
  std::vector<uint64_t> failed;
  std::vector<uint64_t> skipped_answers, delivered_answers;
  auto flush = [&](size_t upto) {
    if (upto > run_start && client_) {
      client_->ForwardFromServer(data.subspan(run_start, upto - run_start));
      client_->AddBytesOut(upto - run_start);
    }
    run_start = upto;
  };
  while (!done) {
    Frame f;
    DecodeStatus st = protocol::DecodeTyped(data.subspan(pos), kMaxBackendMessage, &f);
    if (st == DecodeStatus::kNeedMoreData) break;
    if (st == DecodeStatus::kMalformed) {
      ClientSession* c = client_;
      Unlink();
      Close("malformed message from backend");
      if (c) c->OnServerLost("08P01", "the backend of pool \"" + pool_->name() + "\" sent a malformed message");
      return data.size();
    }
    due.clear();
    failed.clear();
    uint64_t parsed = 0;
    // Before OnBackend: after an error in pgtenant's own extended-protocol messages it drops the
    // client's Queries the backend will skip, and those must still be answered to the client.
    const int client_sync_points = tracker_.client_sync_points();
    skipped_answers.clear();
    delivered_answers.clear();
    auto action = tracker_.OnBackend(f.type, &due, &failed, &parsed, &skipped_answers, &delivered_answers);
    for (uint64_t tag : skipped_answers) {
      if (client_) client_->OnAnswerSkipped(tag);
    }
    for (uint64_t tag : delivered_answers) {
      if (client_) client_->OnAnswerDelivered(tag);
    }
    for (uint64_t id : failed) {
      backend_.ForgetStatement(id);
      if (client_) client_->OnStatementFailed(id);
    }
    if (parsed != 0 && client_) client_->OnStatementParsed(parsed);
    if (action == protocol::ResponseTracker::Action::kPgtenantError) {
      flush(pos);
      PreludeFailed(f, client_sync_points);
      return data.size();
    }
    if (action == protocol::ResponseTracker::Action::kSwallow) {
      flush(pos);
      pos += f.total_size;
      run_start = pos;
    } else {
      pos += f.total_size;
    }
    const bool to_client = action == protocol::ResponseTracker::Action::kForward;
    // What the answer means for the backend session, once the tracker knows whose it is.
    switch (backend_.OnServerMessage(f.type, f.payload, to_client, tracker_.parses_in_flight())) {
      case BackendState::Event::kClientDiscardedAll:
        if (client_) client_->OnServerDiscardedAll();
        break;
      case BackendState::Event::kClientRolledBack:
        if (client_) client_->OnServerRolledBack();
        break;
      case BackendState::Event::kNone:
        break;
    }
    switch (f.type) {
      case be::kErrorResponse:
        if (client_ && to_client) client_->NoteError();
        break;
      case be::kReadyForQuery:
        txn_status_ = f.payload.empty() ? 'I' : static_cast<char>(f.payload[0]);
        // Before `done` below: settling a followed SET may pin the client to this server.
        if (client_ && to_client) client_->OnReadyForQuery(txn_status_);
        if (txn_status_ == 'I' && client_ && to_client) ++transactions_ended;
        copy_in_ = false;
        if (tracker_.empty() && !tracker_.extended_open() && txn_status_ == 'I' && !pool_->session_mode() &&
            (client_ == nullptr || !client_->pinned())) {
          done = true;
        }
        break;
      case be::kCopyInResponse:
      case be::kCopyBothResponse:
        copy_in_ = true;
        break;
      case be::kParameterStatus: {
        protocol::ByteReader r(f.payload);
        std::string_view name, value;
        if (to_client && r.GetCString(&name) &&
            r.GetCString(&value) && client_) {
          client_->OnParameterStatus(name, value);
        }
        break;
      }
      default:
        break;
    }
    if (!due.empty()) {
      flush(pos);
      if (client_) client_->ForwardFromServer(std::span<const uint8_t>(
          reinterpret_cast<const uint8_t*>(due.data()), due.size()));
    }
  }
  flush(pos);
  for (int i = 0; i < transactions_ended && client_; ++i) client_->AccountTransaction();
  if (client_ && client_->write_backlogged()) stream_.StopReading();
  if (done) OnTransactionDone();
  return pos;
}

void ServerSession::OnTransactionDone() {
  ClientSession* c = client_;
  Unlink();
  state_ = State::kIdle;
  last_used_ms_ = NowMs();
  stream_.StartReading();
  if (c) c->OnTransactionDone();
  if (cancel_gate_ && cancel_gate_->inflight > 0) {
    parked_ = true;  // not for anyone else until the cancel cannot hit their query
    return;
  }
  pool_->Release(this);
}

void ServerSession::Unlink() {
  client_ = nullptr;
  Uncork();
}

size_t ServerSession::HandleIdle(std::span<const uint8_t> data) {
  // An idle backend only speaks up to say it is going away (FATAL) or to send notices.
  size_t pos = 0;
  while (true) {
    Frame f;
    DecodeStatus st = protocol::DecodeTyped(data.subspan(pos), kMaxBackendMessage, &f);
    if (st == DecodeStatus::kNeedMoreData) break;
    if (st == DecodeStatus::kMalformed || f.type == be::kErrorResponse) {
      Close("backend error while idle");
      return data.size();
    }
    pos += f.total_size;
  }
  return pos;
}

void ServerSession::DetachAbandoned(bool discard_state) {
  client_ = nullptr;
  if (state_ != State::kActive) return;
  bool clean_point = tracker_.empty() && !tracker_.extended_open() && !copy_in_;
  if (!clean_point) {
    // A query is still running or a COPY is half done: cheaper and safer to drop the
    // connection than to drain it.
    Close("client left in the middle of a query");
    return;
  }
  bool rollback = txn_status_ != 'I';
  bool discard = pool_->session_mode() || discard_state;
  if (!rollback && !discard) {
    OnTransactionDone();
    return;
  }
  StartReset(rollback, discard);
}

void ServerSession::DetachSessionEnd() { DetachAbandoned(/*discard=*/true); }

void ServerSession::StartReset(bool rollback, bool discard) {
  state_ = State::kResetting;
  std::string out;
  reset_pending_ = 0;
  if (rollback) {
    protocol::AppendQuery(&out, "ROLLBACK");
    ++reset_pending_;
  }
  if (discard) {
    protocol::AppendQuery(&out, "DISCARD ALL");
    ++reset_pending_;
    backend_.OnOwnDiscardAll();
  }
  stream_.Write(out);
  stream_.StartReading();
}

size_t ServerSession::HandleResetting(std::span<const uint8_t> data) {
  size_t pos = 0;
  while (state_ == State::kResetting) {
    Frame f;
    DecodeStatus st = protocol::DecodeTyped(data.subspan(pos), kMaxBackendMessage, &f);
    if (st == DecodeStatus::kNeedMoreData) break;
    if (st == DecodeStatus::kMalformed || (f.type == be::kErrorResponse &&
                                          protocol::ParseErrorFields(f.payload).severity != "ERROR")) {
      Close("reset failed");
      return data.size();
    }
    pos += f.total_size;
    if (f.type == be::kReadyForQuery && --reset_pending_ == 0) {
      txn_status_ = f.payload.empty() ? 'I' : static_cast<char>(f.payload[0]);
      if (txn_status_ != 'I') {
        Close("reset left a transaction open");
        return data.size();
      }
      state_ = State::kActive;  // so that OnTransactionDone's bookkeeping applies
      tracker_.Clear();
      OnTransactionDone();
      return pos;
    }
  }
  return pos;
}

void ServerSession::OnStreamEnd(int status) {
  if (state_ == State::kClosing) {
    stream_.Close();  // the backend exited after pgtenant's Terminate (Close)
    return;
  }
  backend_gone_ = true;  // no Terminate, and no EOF to wait for (Close)
  ClientSession* c = client_;
  bool was_login = state_ == State::kLogin || state_ == State::kConnecting;
  Unlink();
  if (was_login) {
    if (status == UV_EPROTO && stream_.tls() && !stream_.tls()->error().empty()) {
      LoginFailed("TLS handshake with the backend failed: " + stream_.tls()->error());
      return;
    }
    LoginFailed(status == UV_EOF ? "the backend closed the connection during login" : uv_strerror(status));
    return;
  }
  Close(status == UV_EOF ? "backend closed the connection" : uv_strerror(status));
  if (c) {
    c->OnServerLost("08006", "server connection of pool \"" + pool_->name() +
                                 "\" was lost: the backend closed it or crashed");
  }
}

void ServerSession::OnStreamWritable() {
  if (client_) client_->ResumeReading();
}

void ServerSession::Close(const char* why) {
  if (state_ == State::kClosing) return;
  LOG_DEBUG("pool %s: closing server connection %llu: %s", pool_->name().c_str(),
            static_cast<unsigned long long>(id_), why);
  bool resolving = state_ == State::kResolving && resolve_req_ != nullptr;
  const bool terminate = !backend_gone_ &&
                         (state_ == State::kIdle || state_ == State::kActive || state_ == State::kResetting);
  if (terminate) {
    std::string out;
    protocol::AppendTerminate(&out);
    stream_.Write(out);
  }
  state_ = State::kClosing;
  if (client_) {
    ClientSession* c = client_;
    Unlink();
    c->OnServerLost("08006", "server connection of pool \"" + pool_->name() + "\" was closed: " + why);
  }
  if (resolving) {
    uv_cancel(reinterpret_cast<uv_req_t*>(resolve_req_.get()));
    return;  // ResolvedCb closes the stream
  }
  if (terminate && !stream_.closing()) {
    // The backend ends its session when it reads the Terminate, and closes its end as its
    // process exits; until then pg_stat_activity shows it, so the connection still counts
    // against limits.max_server_connections. Closed at the backend's EOF (OnStreamEnd), or by
    // Pool::Maintain when it lingers (CloseIfLingering).
    closing_since_ms_ = NowMs();
    stream_.StartReading();
    return;
  }
  stream_.Close();
}

void ServerSession::CloseIfLingering(uint64_t now_ms) {
  if (state_ == State::kClosing && closing_since_ms_ != 0 && !stream_.closing() &&
      now_ms - closing_since_ms_ > kBackendExitWaitMs) {
    stream_.Close();
  }
}

void ServerSession::OnStreamClosed() {
  pool_->OnServerGone(this);
  delete this;
}

}  // namespace pgtenant::proxy
