#include "proxy/client_session.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <utility>

#include "protocol/byte_reader.h"
#include "protocol/md5_auth.h"
#include "protocol/message_writer.h"
#include "protocol/messages.h"
#include "proxy/log.h"
#include "proxy/pooler.h"
#include "proxy/server_session.h"
#include "routing/injection.h"
#include "routing/tenant_source.h"
#include "routing/session_state.h"
#include "routing/transaction_rules.h"

namespace pgtenant::proxy {

using protocol::DecodeStatus;
using protocol::Frame;
namespace fe = protocol::fe;

namespace {

// A password or SASL message never needs more than this.
constexpr uint32_t kMaxAuthMessage = 8192;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view AsView(std::span<const uint8_t> s) {
  return std::string_view(reinterpret_cast<const char*>(s.data()), s.size());
}

// Parameters the server reports with ParameterStatus that a client may also set.
bool IsReportedSetting(std::string_view lower_name) {
  return lower_name == "client_encoding" || lower_name == "datestyle" || lower_name == "intervalstyle" ||
         lower_name == "timezone" || lower_name == "standard_conforming_strings" ||
         lower_name == "application_name";
}

}  // namespace

// Bytes a client waiting for a server may send ahead before pgtenant stops reading it.
constexpr size_t kMaxReadAheadWhileWaiting = 64 * 1024;

ClientSession::ClientSession(Pooler* pooler, uint64_t id)
    : pooler_(pooler), id_(id), stream_(pooler->loop(), this), connected_ms_(NowMs()) {}

ClientSession::~ClientSession() = default;

void ClientSession::Start() {
  uv_tcp_nodelay(stream_.tcp(), 1);
  stream_.StartReading();
}

size_t ClientSession::OnStreamData(std::span<const uint8_t> data) {
  in_data_callback_ = true;
  size_t used = 0;
  // A handler may move the session to another state half-way through the bytes (login done,
  // transaction over); the rest is then offered to the new state's handler.
  while (used < data.size()) {
    State before = state_;
    std::span<const uint8_t> rest = data.subspan(used);
    switch (state_) {
      case State::kStartup: used += HandleStartup(rest); break;
      case State::kAuth: used += HandleAuth(rest); break;
      case State::kIdle: used += HandleIdle(rest); break;
      case State::kActive: used += HandleActive(rest); break;
      case State::kLoginWait:
      case State::kWaiting: break;  // kept until a server is assigned
      case State::kCancelRequest:
      case State::kClosing: used = data.size(); break;
    }
    if (state_ == before || state_ == State::kWaiting || state_ == State::kLoginWait) break;
  }
  in_data_callback_ = false;
  if (state_ == State::kWaiting && data.size() - used > kMaxReadAheadWhileWaiting) stream_.StopReading();
  return used;
}

// ---------------------------------------------------------------- startup and authentication

size_t ClientSession::HandleStartup(std::span<const uint8_t> data) {
  size_t pos = 0;
  while (state_ == State::kStartup) {
    Frame f;
    DecodeStatus st = protocol::DecodeUntyped(data.subspan(pos), protocol::kMaxStartupPacket, &f);
    if (st == DecodeStatus::kNeedMoreData) break;
    if (st == DecodeStatus::kMalformed) {
      Fail("08P01", "invalid startup packet: bad length");
      return data.size();
    }
    pos += f.total_size;
    if (protocol::IsSslRequest(f.payload)) {
      // A client that asked for TLS waits for the answer before sending anything more; bytes
      // behind the request would pass unencrypted as if they came through TLS (CVE-2021-23222).
      if (pos != data.size()) {
        Fail("08P01", "received unencrypted data after the SSL request");
        return data.size();
      }
      AnswerSslRequest();
      return pos;
    }
    if (!HandleStartupPacket(f.payload)) return data.size();
  }
  return pos;
}

void ClientSession::AnswerSslRequest() {
  std::shared_ptr<TlsContext> context = pooler_->client_tls();
  uint8_t answer = context && !stream_.tls() ? 'S' : 'N';
  stream_.Write(std::span<const uint8_t>(&answer, 1));
  if (answer == 'S') stream_.StartTls(std::make_unique<TlsSession>(std::move(context), TlsSession::Role::kServer));
}

bool ClientSession::HandleStartupPacket(std::span<const uint8_t> payload) {
  auto packet = protocol::ParseStartupPacket(payload);
  if (!packet.ok()) {
    Fail(packet.status().sqlstate().c_str(), "invalid startup packet: " + packet.status().message());
    return false;
  }
  if (packet->code == protocol::kGssEncRequestCode) {
    static const uint8_t kNo = 'N';
    stream_.Write(std::span<const uint8_t>(&kNo, 1));
    return true;
  }
  if (packet->code == protocol::kCancelRequestCode) {
    // The connection stays open (not read any more) until the cancel was delivered.
    stream_.StopReading();
    state_ = State::kCancelRequest;
    pooler_->HandleCancelRequest(packet->cancel_pid, packet->cancel_key, this);
    return false;
  }
  const conf::Config& cfg = pooler_->config();
  if (cfg.listen.tls.mode == conf::ClientTlsMode::kRequire && !stream_.tls()) {
    Fail("28000", "pgtenant requires TLS (listen.tls.mode: require)",
         "Connect with sslmode=require or stronger.");
    return false;
  }
  std::map<std::string, std::string> params;
  for (auto& [name, value] : packet->params) params[name] = value;
  database_ = params.count("database") ? params["database"] : params["user"];
  if (params.count("replication")) {
    Fail("08P01", "pgtenant does not support replication connections");
    return false;
  }
  // Who logs in is settled first; whether that user may act as the tenant is checked only
  // after authentication, so that unauthenticated peers learn nothing about tenants.
  auto identity = routing::IdentifyStartup(params, cfg);
  if (!identity.ok()) {
    auth().deferred_error = identity.status();
    user_ = LoginUserOf(params["user"]);
  } else {
    user_ = identity->login_user;
    wanted_.tenant = identity->tenant;
    startup_tenant_ = wanted_.tenant;
  }
  admin_ = database_ == cfg.admin.database;
  // Every other startup setting is applied on each server connection this client gets.
  for (auto& [name, value] : params) {
    if (name == "user" || name == "database" || name == "options" ||
        routing::IsTenantVariable(name, cfg.tenancy)) {
      continue;
    }
    AddStartupSetting(name, value);
  }
  if (identity.ok()) {
    for (auto& [name, value] : identity->other_options.settings) AddStartupSetting(name, value);
    if (!identity->other_options.unparsed.empty() && auth().deferred_error.ok()) {
      // pgtenant cannot apply postgres command-line switches per transaction; refusing is
      // better than silently dropping them.
      auth().deferred_error = Status::Error("0A000", "unsupported switch in the options startup parameter: " +
                                                   identity->other_options.unparsed.front() +
                                                   " (only -c name=value and --name=value are supported)");
    }
  }
  StartAuth();
  return state_ != State::kClosing;
}

std::string ClientSession::LoginUserOf(const std::string& startup_user) const {
  // When the startup could not be resolved (conflicting sources, say) the user name may still
  // carry a tenant suffix; authenticate the user in front of it so the error is the tenant's.
  const conf::Config& cfg = pooler_->config();
  if (cfg.auth.users.count(startup_user) || cfg.tenancy.user_separator.empty()) return startup_user;
  size_t cut = startup_user.rfind(cfg.tenancy.user_separator);
  if (cut == std::string::npos || cut == 0) return startup_user;
  std::string prefix = startup_user.substr(0, cut);
  return cfg.auth.users.count(prefix) ? prefix : startup_user;
}

void ClientSession::AddStartupSetting(const std::string& name, const std::string& value) {
  if (!IsValidSettingName(name)) {
    if (auth().deferred_error.ok()) auth().deferred_error = Status::ProtocolViolation("invalid startup parameter name \"" + name + "\"");
    return;
  }
  wanted_.Set(Lower(name), value);
}

void ClientSession::StartAuth() {
  const conf::Config& cfg = pooler_->config();
  auto it = cfg.auth.users.find(user_);
  auth().user_known = it != cfg.auth.users.end();
  state_ = State::kAuth;
  std::string out;
  if (cfg.auth.type == conf::AuthType::kTrust) {
    AuthSucceeded();
    return;
  }
  bool stored_scram = auth().user_known && protocol::IsScramVerifier(it->second.password);
  if (cfg.auth.type == conf::AuthType::kMd5 && !stored_scram) {
    auth().md5_salt = protocol::RandomBytes(4);
    protocol::AppendAuthRequest(&out, protocol::kAuthMd5, auth().md5_salt);
  } else {
    const protocol::ScramVerifier* v = pooler_->VerifierFor(user_);
    // An unknown user runs the whole exchange against a throw-away verifier and fails at the
    // end, as Postgres does, so that probing does not reveal which users exist.
    auth().scram = std::make_unique<protocol::ScramServerExchange>(v ? *v : pooler_->DummyVerifier());
    protocol::AppendAuthSasl(&out, "SCRAM-SHA-256");
  }
  stream_.Write(out);
}

size_t ClientSession::HandleAuth(std::span<const uint8_t> data) {
  size_t pos = 0;
  while (state_ == State::kAuth) {
    Frame f;
    DecodeStatus st = protocol::DecodeTyped(data.subspan(pos), kMaxAuthMessage, &f);
    if (st == DecodeStatus::kNeedMoreData) break;
    if (st == DecodeStatus::kMalformed || f.type != fe::kPassword) {
      Fail("08P01", "expected a password message during authentication");
      return data.size();
    }
    pos += f.total_size;
    if (!HandlePassword(f.payload)) return data.size();
  }
  return pos;
}

bool ClientSession::HandlePassword(std::span<const uint8_t> payload) {
  const std::string auth_failed = "password authentication failed for user \"" + user_ + "\"";
  if (auth().scram == nullptr) {  // md5
    protocol::ByteReader r(payload);
    std::string_view response;
    const conf::Config& cfg = pooler_->config();
    auto it = cfg.auth.users.find(user_);
    if (!r.GetCString(&response) || it == cfg.auth.users.end()) {
      Fail("28P01", auth_failed);
      return false;
    }
    const std::string& stored = it->second.password;
    std::string hash = protocol::IsMd5Hash(stored) ? stored : protocol::Md5PasswordHash(stored, user_);
    auto salt = std::span<const uint8_t, 4>(reinterpret_cast<const uint8_t*>(auth().md5_salt.data()), 4);
    if (!protocol::Md5Verify(hash, salt, response)) {
      Fail("28P01", auth_failed);
      return false;
    }
    AuthSucceeded();
    return state_ != State::kClosing;
  }
  std::string out;
  if (!auth().scram_first_done) {
    protocol::ByteReader r(payload);
    std::string_view mechanism;
    int32_t len;
    if (!r.GetCString(&mechanism) || !r.GetInt32(&len) || mechanism != "SCRAM-SHA-256" || len < 0 ||
        static_cast<size_t>(len) != r.remaining()) {
      Fail("08P01", "malformed SASL initial response (expected SCRAM-SHA-256)");
      return false;
    }
    auto server_first = auth().scram->HandleClientFirst(AsView(r.Rest()));
    if (!server_first.ok()) {
      Fail("08P01", "SCRAM: " + server_first.status().message());
      return false;
    }
    auth().scram_first_done = true;
    protocol::AppendAuthRequest(&out, protocol::kAuthSaslContinue, *server_first);
    stream_.Write(out);
    return true;
  }
  auto server_final = auth().scram->HandleClientFinal(AsView(payload));
  if (!server_final.ok() || !auth().user_known) {
    Fail("28P01", auth_failed);
    return false;
  }
  protocol::AppendAuthRequest(&out, protocol::kAuthSaslFinal, *server_final);
  stream_.Write(out);
  AuthSucceeded();
  return state_ != State::kClosing;
}

void ClientSession::AuthSucceeded() {
  Status deferred = auth_ ? auth_->deferred_error : Status::Ok();
  auth_.reset();  // nothing of the login is needed any more
  const conf::Config& cfg = pooler_->config();
  if (cfg.auth.type == conf::AuthType::kTrust && cfg.auth.users.find(user_) == cfg.auth.users.end() &&
      !cfg.auth.users.empty()) {
    Fail("28000", "user \"" + user_ + "\" is not listed under auth.users");
    return;
  }
  if (deferred.ok() && wanted_.tenant) {
    deferred = routing::CheckTenantAllowed(cfg, pooler_->routes().validator(), user_, *wanted_.tenant,
                                                  routing::TenantCheckPhase::kLogin);
  }
  if (!deferred.ok()) {
    Fail(deferred.sqlstate().c_str(), deferred.message());
    return;
  }
  if (admin_) {
    if (std::find(cfg.admin.users.begin(), cfg.admin.users.end(), user_) == cfg.admin.users.end()) {
      Fail("42501", "user \"" + user_ + "\" may not use the admin console (not in admin.users)");
      return;
    }
    FinishAdminLogin();
    return;
  }
  if (pooler_->shutting_down()) {
    Fail("57P01", "pgtenant is shutting down");
    return;
  }
  Status slot = pooler_->AcquireUserSlot(user_);
  if (!slot.ok()) {
    Fail(slot.sqlstate().c_str(), slot.message());
    return;
  }
  holds_user_slot_ = true;
  if (wanted_.tenant) {
    slot = pooler_->AcquireTenantSlot(*wanted_.tenant);
    if (!slot.ok()) {
      Fail(slot.sqlstate().c_str(), slot.message());
      return;
    }
    holds_tenant_slot_ = true;
  }
  std::string out;
  protocol::AppendAuthRequest(&out, protocol::kAuthOk);
  stream_.Write(out);
  pooler_->settings_interner().Intern(&wanted_);
  cancel_key_ = Pooler::NewCancelKey();
  Pool* pool = LoginPool();
  if (pool == nullptr) {
    Fail("28000", "no pool to serve this session: it names no tenant and tenancy.default_pool is not set",
         "name a tenant (e.g. options='-c " + cfg.tenancy.variable + "=ID') or set tenancy.default_pool");
    return;
  }
  if (pool->has_server_params()) {
    FinishLogin(*pool);
    return;
  }
  // The first client of a pool waits for a backend login to learn the server's parameters.
  state_ = State::kLoginWait;
  wait_started_ms_ = NowMs();
  waiting_in_ = pool;
  stream_.StopReading();
  pool->Acquire(this);
}

Pool* ClientSession::LoginPool() {
  std::string sqlstate, message;
  Pool* pool = ResolvePool(&sqlstate, &message);
  if (pool != nullptr) return pool;
  const conf::Config& cfg = pooler_->config();
  if (cfg.tenancy.default_pool) return pooler_->FindPool(*cfg.tenancy.default_pool);
  // A session that will name its tenant later with SET still needs server parameters now.
  return pooler_->pools().empty() ? nullptr : pooler_->pools().begin()->second.get();
}

void ClientSession::FinishLogin(const Pool& pool) {
  std::string out;
  for (const auto& [name, value] : pool.server_params()) {
    std::string lower = Lower(name);
    const std::string* mine = wanted_.Find(lower);
    if (mine != nullptr) {
      protocol::AppendParameterStatus(&out, name, *mine);
    } else if (lower == "application_name") {
      protocol::AppendParameterStatus(&out, name, "");  // pgtenant's own name is not the client's
    } else {
      protocol::AppendParameterStatus(&out, name, value);
    }
  }
  protocol::AppendBackendKeyData(&out, slot_, cancel_key_);
  protocol::AppendReadyForQuery(&out, 'I');
  stream_.Write(out);
  state_ = State::kIdle;
  LOG_DEBUG("client %llu logged in: user %s tenant %s", static_cast<unsigned long long>(id_), user_.c_str(),
            wanted_.tenant ? wanted_.tenant->c_str() : "(none)");
  stream_.StartReading();
  if (!in_data_callback_) stream_.Replay();
}

// ---------------------------------------------------------------- between transactions

Pool* ClientSession::ResolvePool(std::string* sqlstate, std::string* message) {
  const conf::Config& cfg = pooler_->config();
  // The transaction's tenant: a deferred block's SET LOCAL chooses the pool of its transaction.
  const std::optional<std::string>& tenant = TransactionTenant();
  if (!tenant) {
    if (cfg.tenancy.require_tenant) {
      *sqlstate = "28000";
      *message = "no tenant: this session has not named its tenant and tenancy.require_tenant is on; set " +
                 cfg.tenancy.variable + " at login, with SET, or with SET LOCAL in the transaction";
      return nullptr;
    }
    if (!cfg.tenancy.default_pool) {
      *sqlstate = "28000";
      *message = "no tenant and no tenancy.default_pool: pgtenant cannot choose a pool";
      return nullptr;
    }
    Pool* p = pooler_->FindPool(*cfg.tenancy.default_pool);
    if (p) {
      pool_name_ = p->name();
      usage_ = pooler_->UsageFor(usage_, p->name(), "");
    }
    return p;
  }
  const std::string* name = pooler_->routes().PoolFor(*tenant);
  Pool* p = name ? pooler_->FindPool(*name) : nullptr;
  if (p == nullptr) {
    *sqlstate = "22023";
    *message = "tenant \"" + *tenant + "\" is not configured and there is no tenancy.default_pool";
    return nullptr;
  }
  pool_name_ = p->name();
  usage_ = pooler_->UsageFor(usage_, p->name(), *tenant);
  return p;
}

ClientSession::NextFrame ClientSession::DecodeNextFrame(std::span<const uint8_t> rest, uint32_t max_size,
                                                       protocol::Frame* f) {
  DecodeStatus st = protocol::DecodeTyped(rest, max_size, f);
  if (st == DecodeStatus::kNeedMoreData) return NextFrame::kIncomplete;
  if (st == DecodeStatus::kMalformed) {
    Fail("08P01", "invalid message: bad length or larger than limits.max_message_size");
    return NextFrame::kMalformed;
  }
  return NextFrame::kReady;
}

size_t ClientSession::HandleIdle(std::span<const uint8_t> data) {
  if (admin_) return HandleAdmin(data);
  size_t pos = 0;
  while (state_ == State::kIdle) {
    Frame f;
    NextFrame next = DecodeNextFrame(data.subspan(pos), pooler_->config().max_message_size, &f);
    if (next == NextFrame::kIncomplete) break;
    if (next == NextFrame::kMalformed) return data.size();
    if (f.type == fe::kTerminate) {
      Close();
      return data.size();
    }
    if (skip_until_sync_) {
      // After an error pgtenant answered itself, the rest of the batch is skipped, as Postgres
      // skips an extended-protocol batch after an error.
      pos += f.total_size;
      if (f.type == fe::kSync || f.type == fe::kQuery) {
        skip_until_sync_ = false;
        std::string out;
        protocol::AppendReadyForQuery(&out, IdleTransactionStatus());
        stream_.Write(out);
      }
      continue;
    }
    if (f.type == fe::kSync || f.type == fe::kFlush) {
      // Nothing to synchronise outside a transaction: answer without a server.
      pos += f.total_size;
      if (f.type == fe::kSync) {
        if (local_) local_->portals.clear();
        std::string out;
        protocol::AppendReadyForQuery(&out, IdleTransactionStatus());
        stream_.Write(out);
      }
      continue;
    }
    if (f.type == fe::kQuery) {
      std::string_view sql = AsView(f.payload);
      if (!sql.empty() && sql.back() == '\0') sql.remove_suffix(1);
      if (AnswerQueryInDeferredBlock(sql)) {
        // Metered with the block once it reaches a server; a block that never does did no
        // server work and is not metered.
        if (deferred_) ++deferred_->queries;
        pos += f.total_size;
        continue;
      }
    }
    if (f.type == fe::kParse || f.type == fe::kClose) NoteStatementText(f);
    std::string unused;
    const Verdict verdict = InspectForTenancy(f, /*server_clean=*/true, &unused);
    // Only for the frame that asks for a server next (a Bind of a kDeferredNamingSelect).
    const bool inspect_again = std::exchange(inspect_again_on_server_, false);
    if (verdict == Verdict::kAnswered) {
      pos += f.total_size;
      continue;
    }
    if (deferred_ && deferred_->aborted) {
      // Inside a deferred block an error aborted: only its end (answered above) runs.
      AnswerError(AbortedBlockError(), /*with_ready=*/false);
      pos += f.total_size;
      continue;
    }
    if (f.type == fe::kParse && AnswerParseWhileIdle(f)) {
      pos += f.total_size;
      continue;
    }
    first_frame_inspected_ = !inspect_again;  // HandleActive need not look at it again, unless asked
    first_needs_own_txn_ = FirstStatementNeedsOwnTransaction(f);
    if (!RequestServer(f)) {
      // Refused: the error is sent; skip this message (through its Sync) and go on.
      continue;
    }
    if (state_ == State::kActive) {
      size_t used = HandleActive(data.subspan(pos));
      if (server_ != nullptr) server_->Uncork();
      return pos + used;
    }
    // Still Idle: the pool failed the request at once (backend down); the error is sent and
    // this message is skipped like a refused one.
    if (state_ == State::kIdle) continue;
    return pos;  // waiting: the rest is kept until a server is assigned
  }
  return pos;
}

bool ClientSession::IsSessionSetUp(const protocol::Frame& f) const {
  const std::string& var = pooler_->config().tenancy.variable;
  if (f.type == fe::kQuery) {
    std::string_view sql = AsView(f.payload);
    if (!sql.empty() && sql.back() == '\0') sql.remove_suffix(1);
    return routing::OnlySessionSettings(sql, var);
  }
  if (f.type == fe::kParse) {
    protocol::ParseMessage parse;
    return protocol::ParseParseMessage(f.payload, &parse) && routing::OnlySessionSettings(parse.query, var);
  }
  if (f.type == fe::kBind) {
    // A statement of the client's prepared earlier: judged by its text.
    protocol::BindMessage bind;
    if (!statements_ || !protocol::ParseBindMessage(f.payload, &bind)) return false;
    auto it = statements_->find(std::string(bind.statement));
    return it != statements_->end() && routing::OnlySessionSettings(it->second->query, var);
  }
  return false;
}

bool ClientSession::RequestServer(const protocol::Frame& f) {
  if (pooler_->shutting_down()) {
    Terminate("57P01", "pgtenant is shutting down");
    return false;
  }
  std::string sqlstate, message;
  Pool* pool = ResolvePool(&sqlstate, &message);
  if (pool == nullptr && !TransactionTenant() && !deferred_ && pooler_->config().tenancy.require_tenant &&
      IsSessionSetUp(f)) {
    // require_tenant refuses what needs a tenant's server; a driver's SET extra_float_digits or
    // SHOW before the application names its tenant does not (docs/tenancy.md). It runs on a
    // server of the pool a session without a tenant logs in to, with the variable RESET.
    pool = LoginPool();
    if (pool != nullptr) {
      tenantless_ = true;
      pool_name_ = pool->name();
      usage_ = pooler_->UsageFor(usage_, pool->name(), "");
    }
  }
  if (pool == nullptr) {
    std::string out;
    protocol::AppendError(&out, "ERROR", sqlstate, message);
    stream_.Write(out);
    skip_until_sync_ = true;
    if (deferred_ && deferred_->in_one_query) {
      deferred_.reset();  // the Query never ran: no block
    } else if (deferred_) {
      deferred_->aborted = true;  // as an error inside the block
    }
    return false;
  }
  state_ = State::kWaiting;
  wait_started_ms_ = NowMs();
  waiting_in_ = pool;
  pool->Acquire(this);
  // The client is not stopped while it waits: with more clients than servers nearly every
  // transaction waits, and stopping and restarting the read costs two epoll_ctl calls each
  // time. What it sends meanwhile is kept, up to kMaxReadAheadWhileWaiting (OnStreamData).
  return true;
}

void ClientSession::OnServerAssigned(ServerSession* server) {
  Pool* pool = waiting_in_;
  waiting_in_ = nullptr;
  if (state_ == State::kLoginWait) {
    // Only the parameters were needed; the connection goes straight back.
    pool->Release(server);
    FinishLogin(*pool);
    return;
  }
  server_ = server;
  state_ = State::kActive;
  txn_started_us_ = uv_hrtime() / 1000;
  server->Attach(this);
  server->Cork();
  SendPrelude(first_needs_own_txn_);
  stream_.StartReading();
  if (!in_data_callback_) {
    stream_.Replay();
    if (server_ != nullptr) server_->Uncork();
  }
  // Otherwise HandleIdle forwards the batch and uncorks.
}

void ClientSession::SendPrelude(bool tenant_as_query) {
  prelude_pending_ = false;
  LOG_DEBUG("client %llu on server %llu: want %s, last client %llu", static_cast<unsigned long long>(id_),
            static_cast<unsigned long long>(server_->id()), wanted_.tenant ? wanted_.tenant->c_str() : "-",
            static_cast<unsigned long long>(server_->backend().last_client_id()));
  if (!deferred_) {
    server_->SendPrelude(wanted_, id_, tenant_namings_, tenant_as_query);
    return;
  }
  if (deferred_->in_one_query) {
    // The client's Query carries its own BEGIN, if any.
    SessionSettings want = wanted_;
    want.tenant = TransactionTenant();
    server_->SendPrelude(want, id_, tenant_namings_, tenant_as_query);
    DeferredBlockSent();
    return;
  }
  // A deferred block reaches its server: the prelude with the transaction's tenant, then the
  // client's BEGIN and SET LOCALs.
  SessionSettings want = wanted_;
  want.tenant = deferred_->server_sets_tenant ? deferred_->tenant_before : TransactionTenant();
  server_->SendPrelude(want, id_, tenant_namings_, tenant_as_query, deferred_->begin_sql + ";" + deferred_->replay);
  DeferredBlockSent();
}

void ClientSession::CancelWaiting() {
  if (state_ != State::kWaiting || waiting_in_ == nullptr) return;
  waiting_in_->CancelWait(this);
  OnServerUnavailable("57014", "canceling statement due to user request");
}

void ClientSession::OnServerUnavailable(const std::string& sqlstate, const std::string& message) {
  waiting_in_ = nullptr;
  first_frame_inspected_ = false;
  if (state_ == State::kLoginWait) {
    Fail(sqlstate.c_str(), message);
    return;
  }
  if (state_ != State::kWaiting) return;
  state_ = State::kIdle;
  if (deferred_ && deferred_->in_one_query) {
    deferred_.reset();  // the Query never ran: no block
  } else if (deferred_) {
    deferred_->aborted = true;
  }
  std::string out;
  protocol::AppendError(&out, "ERROR", sqlstate, message);
  stream_.Write(out);
  skip_until_sync_ = true;
  stream_.StartReading();
  if (!in_data_callback_) stream_.Replay();
}

// ---------------------------------------------------------------- in a transaction

size_t ClientSession::HandleActive(std::span<const uint8_t> data) {
  // Unchanged messages go to the server straight from the read buffer, as one run. Once a
  // message must be rewritten or pgtenant adds its own, the rest of the batch is copied into
  // `batch`, so the server still gets one write per batch.
  size_t pos = 0;
  size_t run_start = 0;
  std::string batch;
  bool copying = false;
  const uint32_t max_size = pooler_->config().max_message_size;
  const bool map_statements = MapsPreparedStatements();
  auto start_copying = [&]() {
    if (copying) return;
    batch.assign(reinterpret_cast<const char*>(data.data()) + run_start, pos - run_start);
    copying = true;
  };
  bool first = true;
  const bool inspected_first = first_frame_inspected_;
  first_frame_inspected_ = false;
  while (server_ != nullptr) {
    Frame f;
    NextFrame next = DecodeNextFrame(data.subspan(pos), max_size, &f);
    if (next == NextFrame::kIncomplete) break;
    if (next == NextFrame::kMalformed) return data.size();
    const char type = f.type;
    const bool skip_inspection = first && inspected_first;
    first = false;
    if (type == fe::kTerminate) break;
    // (HandleIdle noted the frame it asked a server for.)
    if (!skip_inspection && (type == fe::kParse || type == fe::kClose)) NoteStatementText(f);
    if (tenantless_ && !skip_inspection && (type == fe::kQuery || type == fe::kParse || type == fe::kBind) &&
        !IsSessionSetUp(f) && !(type == fe::kBind && UnnamedBind(f)) && !NamesTheTenant(f)) {
      // On a server without a tenant only set-up statements run: anything else gets the 28000
      // a session without a tenant gets, raised by the server in its turn.
      std::string sqlstate, message;
      ResolvePool(&sqlstate, &message);
      std::string refusal = RefusalSql(Status::Error(sqlstate.empty() ? "28000" : sqlstate, message));
      start_copying();
      if (type == fe::kQuery) {
        protocol::AppendQuery(&batch, refusal);
        server_->NoteSent(fe::kQuery);
      } else if (type == fe::kParse) {
        protocol::ParseMessage parse;
        protocol::ParseParseMessage(f.payload, &parse);
        protocol::AppendParse(&batch, parse.statement, refusal, {});
        server_->NoteSent(fe::kParse);
      } else {
        protocol::BindMessage bind;
        protocol::ParseBindMessage(f.payload, &bind);
        protocol::AppendParse(&batch, "", refusal, {});
        server_->NoteOwn(fe::kParse);
        protocol::MessageWriter w(&batch);
        w.Begin('B').PutCString(bind.portal).PutCString("").PutInt16(0).PutInt16(0).PutInt16(0);
        w.Finish();
        server_->NoteSent(fe::kBind);
      }
      pos += f.total_size;
      run_start = pos;
      continue;
    }
    Verdict v = Verdict::kForward;
    std::string own, replacement;
    replacement_tag_ = 0;
    const bool was_clean = server_->clean();
    if (type == fe::kSync) {
      // Bookkeeping only (nothing is written, nothing can be refused), so the Sync stays in the
      // run it ends: a Parse/Bind/Describe/Execute/Sync batch goes to the server in one write,
      // not two (that second write cost ~6 syscalls per pgbench -M extended TPC-B transaction).
      if (local_) local_->portals.clear();  // portals end with their batch
    } else if (type == fe::kQuery || type == fe::kParse ||
        (local_ != nullptr && (type == fe::kBind || type == fe::kDescribe || type == fe::kExecute ||
                               type == fe::kClose))) {
      if (was_clean) {
        // The inspection may answer the client itself or give the server back, so what came
        // before goes out now. Only on a clean server: behind unanswered work (a pipeline of
        // several statements before one Sync) it does neither, since its answers take their
        // turn through the response tracker and pool changes wait for a clean server, so the
        // run goes on and the pipeline reaches the server in one write.
        if (copying) {
          FlushBatch(&batch);
        } else if (pos > run_start) {
          server_->ForwardRaw(data.subspan(run_start, pos - run_start));
          run_start = pos;
        }
      }
      if (skip_inspection) {
        // HandleIdle looked at this very frame before asking for the server: kForward.
      } else {
        v = InspectForTenancy(f, was_clean, &replacement);
      }
      if (server_ == nullptr || state_ != State::kActive) {  // the tenant moved to another pool
        return pos + f.total_size;
      }
      // The first frame after HandleIdle got the server starts a cycle outside any transaction
      // block, though the prelude may be ahead of it on the server.
      if (v == Verdict::kForward) NoteSessionState(f, was_clean || skip_inspection);
      if (v == Verdict::kForward && recheck_pool_ && server_->clean()) {
        recheck_pool_ = false;
        std::string sqlstate, message;
        if (ResolvePool(&sqlstate, &message) != server_->pool()) {
          // Give the server back (reset) and let this statement choose its pool again.
          ServerSession* s = server_;
          server_ = nullptr;
          state_ = State::kIdle;
          pinned_ = false;
          s->DetachSessionEnd();
          return pos;
        }
      }
    }
    if (v != Verdict::kAnswered && was_clean && server_ != nullptr && NeedsPrelude()) {
      // A new batch on a server this client keeps (session mode, pinned, or the same
      // connection again): the tenant changed, or a rolled-back transaction took pgtenant's
      // SET with it. Set it before anything of the batch goes out.
      if (copying) {
        FlushBatch(&batch);
      } else if (pos > run_start) {
        server_->ForwardRaw(data.subspan(run_start, pos - run_start));
        run_start = pos;
      }
      SendPrelude(FirstStatementNeedsOwnTransaction(f));
    }
    // SQL that may have set the tenant variable in a form pgtenant cannot read: whatever the
    // server ends up holding, it is set again before the connection's next batch. (What a
    // statement did to prepared statements and settings is read from the server's answer:
    // BackendState::OnServerMessage.)
    if (tenant_may_change_) {
      tenant_may_change_ = false;
      server_->backend().MarkTenantUnknown();
    }
    if (type == fe::kClose && !map_statements) NoteCloseOfOwnStatement(f);
    if (v == Verdict::kForward && map_statements &&
        (type == fe::kParse || type == fe::kBind || type == fe::kDescribe || type == fe::kClose)) {
      v = MapPreparedStatement(f, &own, &replacement);
    }
    if (type == fe::kQuery || type == fe::kExecute) ++txn_.queries;
    if (type == fe::kBind && tracked_ != nullptr && tracked_->unnamed_statement_sets) NoteBind(f);
    if (v == Verdict::kForward) {
      server_->NoteSent(type);
      if (type == fe::kCopyDone || type == fe::kCopyFail) server_->NoteCopyDoneSent();
      if (copying) batch.append(reinterpret_cast<const char*>(f.payload.data()) - 5, f.total_size);
      pos += f.total_size;
      continue;
    }
    start_copying();
    pos += f.total_size;
    run_start = pos;
    batch.append(own);
    if (v == Verdict::kReplaced) {
      server_->NoteSent(type, replacement_tag_);
      batch.append(replacement);
    }
  }
  if (copying) {
    FlushBatch(&batch);
  } else if (pos > run_start && server_ != nullptr) {
    server_->ForwardRaw(data.subspan(run_start, pos - run_start));
  }
  if (pos < data.size() && data[pos] == fe::kTerminate && state_ == State::kActive) {
    Close();
    return data.size();
  }
  last_activity_ms_ = NowMs();
  txn_.bytes_in += pos;
  if (server_ && server_->write_backlogged()) stream_.StopReading();
  return pos;
}

bool ClientSession::NamesTheTenant(const protocol::Frame& f) const {
  // Tenancy statements are InspectForTenancy's: naming a tenant ends the tenantless state.
  std::string_view sql;
  protocol::ParseMessage parse;
  if (f.type == fe::kQuery) {
    sql = AsView(f.payload);
  } else if (f.type == fe::kParse && protocol::ParseParseMessage(f.payload, &parse)) {
    sql = parse.query;
  } else {
    // A Bind of a tenant statement pgtenant keeps.
    protocol::BindMessage bind;
    return local_ != nullptr && f.type == fe::kBind && protocol::ParseBindMessage(f.payload, &bind) &&
           local_->statements.count(bind.statement) != 0;
  }
  return routing::MightTouchTenant(sql, pooler_->config().tenancy.variable);
}

bool ClientSession::UnnamedBind(const protocol::Frame& f) {
  // The unnamed statement's Parse came in the same tenantless batch and was judged then.
  protocol::BindMessage bind;
  return protocol::ParseBindMessage(f.payload, &bind) && bind.statement.empty();
}

bool ClientSession::FirstStatementNeedsOwnTransaction(const protocol::Frame& f) const {
  if (f.type == fe::kQuery) return routing::MayNeedOwnTransaction(AsView(f.payload));
  if (f.type == fe::kParse) {
    protocol::ParseMessage parse;
    return protocol::ParseParseMessage(f.payload, &parse) && routing::MayNeedOwnTransaction(parse.query);
  }
  if (f.type == fe::kBind && own_txn_statements_) {
    protocol::BindMessage bind;
    return protocol::ParseBindMessage(f.payload, &bind) && own_txn_statements_->count(bind.statement) != 0;
  }
  return false;
}

void ClientSession::NoteStatementText(const protocol::Frame& f) {
  if (f.type == fe::kParse) {
    protocol::ParseMessage parse;
    if (!protocol::ParseParseMessage(f.payload, &parse)) return;
    if (routing::MayNeedOwnTransaction(parse.query)) {
      if (!own_txn_statements_) own_txn_statements_ = std::make_unique<std::set<std::string, std::less<>>>();
      own_txn_statements_->emplace(parse.statement);
    } else if (own_txn_statements_) {
      auto it = own_txn_statements_->find(parse.statement);
      if (it != own_txn_statements_->end()) own_txn_statements_->erase(it);
    }
  } else if (f.type == fe::kClose && own_txn_statements_) {
    protocol::TargetMessage target;
    if (protocol::ParseTargetMessage(f.payload, &target) && target.kind == 'S') {
      auto it = own_txn_statements_->find(target.name);
      if (it != own_txn_statements_->end()) own_txn_statements_->erase(it);
    }
  }
}

bool ClientSession::NeedsPrelude() const {
  return prelude_pending_ || server_->NeedsPreludeFor(wanted_, tenant_namings_);
}

void ClientSession::NoteCloseOfOwnStatement(const protocol::Frame& f) {
  protocol::TargetMessage target;
  if (protocol::ParseTargetMessage(f.payload, &target) && target.kind == 'S') {
    server_->backend().OnClientCloseStatement(target.name);
  }
}

void ClientSession::FlushBatch(std::string* batch) {
  if (!batch->empty() && server_ != nullptr) {
    server_->ForwardRaw(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(batch->data()), batch->size()));
  }
  batch->clear();
}

void ClientSession::NoteSessionState(const protocol::Frame& f, bool server_clean) {
  if (pinned_ || server_ == nullptr || server_->pool()->session_mode()) return;
  std::string_view sql;
  bool named = false;
  if (f.type == fe::kQuery) {
    sql = AsView(f.payload);
  } else if (f.type == fe::kParse) {
    protocol::ParseMessage parse;
    if (!protocol::ParseParseMessage(f.payload, &parse)) return;
    sql = parse.query;
    named = !parse.statement.empty();
  } else {
    return;
  }
  if (FollowSettingChange(sql, server_clean, f.type == fe::kParse, named)) return;
  if (routing::CreatesSessionState(sql, pooler_->config().tenancy.variable,
                                   [](std::string_view name) { return IsReportedSetting(name); })) {
    PinToServer();
  }
}

void ClientSession::PinToServer() {
  if (pinned_) return;
  // This client's session now lives on this server connection only: keep it.
  pinned_ = true;
  pooler_->OnClientPinned(this);
  LOG_DEBUG("client %llu pinned to its server connection", static_cast<unsigned long long>(id_));
}

void ClientSession::AccountTransaction() {
  uint64_t now_us = uv_hrtime() / 1000;
  uint64_t server_us = now_us - txn_started_us_;
  txn_started_us_ = now_us;
  pooler_->AccountTransaction(usage_, server_ ? server_->pool() : nullptr, txn_, server_us);
  txn_ = TransactionUsage();
}

void ClientSession::OnTransactionDone() {
  server_ = nullptr;
  state_ = State::kIdle;
  tenantless_ = false;
  if (pooler_->shutting_down()) {
    Terminate("57P01", "pgtenant is shutting down");
    return;
  }
  stream_.StartReading();
  if (!in_data_callback_) stream_.Replay();
}

void ClientSession::OnParameterStatus(std::string_view name, std::string_view value) {
  // The client changed a reported setting with SET: it now wants it on every server.
  std::string lower = Lower(name);
  if (!IsReportedSetting(lower)) return;
  wanted_.Set(lower, value);
  if (server_) server_->backend().OnSettingChanged(lower, std::string(value));
}

void ClientSession::OnServerDiscardedAll() {
  // The server says a DISCARD ALL of this client's ran (perhaps one pgtenant did not see: a
  // statement prepared earlier, run again by Bind/Execute): as on Postgres, the session is
  // back to what the client gave at startup.
  ReturnToStartupSession(/*discards=*/true);
}

void ClientSession::OnServerLost(const std::string& sqlstate, const std::string& message) {
  server_ = nullptr;
  if (state_ == State::kClosing) return;
  // The transaction is gone with its backend; like Postgres after a backend crash, end the
  // session so the application cannot mistake a lost transaction for a live one.
  Terminate(sqlstate.c_str(), message);
}

void ClientSession::OnPreludeFailed(const std::string& sqlstate, const std::string& message,
                                    int sync_points) {
  server_ = nullptr;
  state_ = State::kIdle;
  deferred_.reset();  // its BEGIN did not run either
  pending_tenant_.reset();
  if (tracked_) tracked_->pending.reset();  // the client's statements did not run
  std::string out;
  protocol::AppendError(&out, "ERROR", sqlstate, message);
  for (int i = 0; i < sync_points; ++i) protocol::AppendReadyForQuery(&out, 'I');
  stream_.Write(out);
  skip_until_sync_ = sync_points == 0;
  stream_.StartReading();
  if (!in_data_callback_) stream_.Replay();
}

void ClientSession::ResumeReading() {
  if (state_ == State::kActive) stream_.StartReading();
}

bool ClientSession::IdleInTransactionSince(uint64_t* since) const {
  if (state_ != State::kActive || server_ == nullptr || !server_->idle_in_transaction()) return false;
  *since = last_activity_ms_;
  return true;
}

// ---------------------------------------------------------------- the end

void ClientSession::Fail(const char* sqlstate, const std::string& message, const std::string& hint) {
  if (state_ == State::kClosing) return;
  LOG_INFO("client %llu (%s user %s): %s: %s", static_cast<unsigned long long>(id_), peer().c_str(),
           user_.c_str(), sqlstate, message.c_str());
  std::string out;
  protocol::AppendError(&out, "FATAL", sqlstate, message, {}, hint);
  stream_.Write(out);
  Teardown();
  stream_.CloseAfterWrite();
}

void ClientSession::Terminate(const char* sqlstate, const std::string& message) { Fail(sqlstate, message); }

void ClientSession::Close() {
  if (state_ == State::kClosing) return;
  Teardown();
  stream_.Close();
}

void ClientSession::Teardown() {
  State was = state_;
  state_ = State::kClosing;
  if (waiting_in_ != nullptr && (was == State::kWaiting || was == State::kLoginWait)) {
    waiting_in_->CancelWait(this);
  }
  waiting_in_ = nullptr;
  if (server_ != nullptr) {
    ServerSession* s = server_;
    server_ = nullptr;
    s->DetachAbandoned(pinned_);
  }
  cancel_key_ = 0;  // no cancelling a client that is going
  if (holds_user_slot_) pooler_->ReleaseUserSlot(user_);
  holds_user_slot_ = false;
  if (holds_tenant_slot_) pooler_->ReleaseTenantSlot(*wanted_.tenant);
  holds_tenant_slot_ = false;
}

void ClientSession::OnStreamEnd(int) { Close(); }

void ClientSession::OnStreamWritable() {
  if (server_) server_->ResumeReading();
}

void ClientSession::OnStreamClosed() {
  pooler_->OnClientClosed(this);
  delete this;
}

}  // namespace pgtenant::proxy
