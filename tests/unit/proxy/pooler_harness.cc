// PoolerHarness (pooler_harness.h).
#include "pooler_harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <deque>
#include <sstream>

#include "conf/loader.h"
#include "protocol/frame_decoder.h"
#include "protocol/messages.h"
#include "proxy/log.h"
#include "proxy/pooler.h"

namespace pgtenant::testing {
namespace {

// A port nobody listens on right now (bound to port 0, then closed).
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    socklen_t len = sizeof(addr);
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

}  // namespace

std::string MachineConfig(int listen_port, const HarnessOptions& o) {
  std::ostringstream y;
  const std::string backend = std::to_string(o.backend_port);
  y << "listen:\n  host: 127.0.0.1\n  port: " << listen_port << "\n"
    << "metrics:\n  port: 0\n"
    << "admin:\n  database: pgtenant\n  users: [admin]\n"
    << "auth:\n  type: trust\n  users:\n"
    << "    app:\n      tenants: [\"*\"]\n"
    << "    acme_service:\n      tenants: [acme]\n"
    << "    admin: {}\n"
    << "tenancy:\n  variable: app.tenant_id\n  sources: " << o.sources << "\n"
    << "  default_pool: shared\n  require_tenant: " << (o.require_tenant ? "true" : "false") << "\n"
    << "pools:\n"
    << "  shared:\n    host: 127.0.0.1\n    port: " << backend << "\n    database: app\n"
    << "    user: app_rls\n    password: \"app_rls_pw\"\n    mode: " << o.shared_mode << "\n"
    << "    size: " << o.shared_size << "\n"
    << o.shared_extra
    << "  acme:\n    host: 127.0.0.1\n    port: " << backend << "\n    database: acme\n"
    << "    user: app_rls\n    password: \"app_rls_pw\"\n    mode: transaction\n    size: 1\n"
    << "tenants:\n  acme: { pool: acme }\n"
    << o.tenants_extra
    << o.extra_yaml;
  return y.str();
}

// The loop thread and its command queue.
struct PoolerHarness::Loop {
  std::thread thread;
  uv_async_t async{};
  std::mutex mu;
  std::deque<std::function<void()>> commands;
  std::unique_ptr<proxy::Pooler> pooler;
  std::promise<void> finished;
  std::future<void> finished_future = finished.get_future();
  std::atomic<bool> force_stop{false};
  bool async_open = false;

  static void OnAsync(uv_async_t* handle) {
    auto* self = static_cast<Loop*>(handle->data);
    if (self->force_stop) {
      uv_stop(handle->loop);
      return;
    }
    std::deque<std::function<void()>> todo;
    {
      std::lock_guard<std::mutex> lock(self->mu);
      todo.swap(self->commands);
    }
    for (auto& fn : todo) fn();
  }
  void Post(std::function<void()> fn) {
    {
      std::lock_guard<std::mutex> lock(mu);
      commands.push_back(std::move(fn));
    }
    uv_async_send(&async);
  }
};

PoolerHarness::PoolerHarness() = default;
PoolerHarness::~PoolerHarness() { Stop(); }

bool PoolerHarness::Start(const HarnessOptions& options, std::string* error) {
  proxy::SetLogLevel(getenv("PGTENANT_TEST_VERBOSE") ? proxy::LogLevel::kDebug : proxy::LogLevel::kError);
  for (int attempt = 0; attempt < 5; ++attempt) {
    const int port = FreePort();
    conf::LoadResult r = conf::LoadConfigString(MachineConfig(port, options), "<machine test>");
    if (!r.ok()) {
      *error = "config: ";
      for (const auto& d : r.diagnostics) *error += d.path + ": " + d.message + "; ";
      return false;
    }
    auto loop = std::make_unique<Loop>();
    std::promise<std::string> started;
    std::future<std::string> started_future = started.get_future();
    Loop* l = loop.get();
    loop->thread = std::thread([l, config = r.config, &started] {
      uv_loop_t* uv = uv_default_loop();
      l->pooler = std::make_unique<proxy::Pooler>(uv, config);
      Status s = l->pooler->Start();
      if (!s.ok()) {
        l->pooler.reset();
        uv_run(uv, UV_RUN_NOWAIT);
        started.set_value(s.message());
        l->finished.set_value();
        return;
      }
      uv_async_init(uv, &l->async, Loop::OnAsync);
      l->async.data = l;
      l->async_open = true;
      started.set_value("");
      uv_run(uv, UV_RUN_DEFAULT);
      if (l->force_stop) {
        (void)l->pooler.release();  // handles may still point into it: leaked on purpose
      } else {
        l->pooler.reset();
        uv_run(uv, UV_RUN_NOWAIT);
      }
      l->finished.set_value();
    });
    std::string failure = started_future.get();
    if (failure.empty()) {
      port_ = port;
      loop_ = std::move(loop);
      return true;
    }
    loop->thread.join();
    *error = failure;
  }
  return false;
}

bool PoolerHarness::Stop() {
  if (!loop_) return true;
  Loop* l = loop_.get();
  l->Post([l] {
    l->pooler->BeginShutdown();
    uv_close(reinterpret_cast<uv_handle_t*>(&l->async), nullptr);
  });
  bool ok = l->finished_future.wait_for(std::chrono::seconds(6)) == std::future_status::ready;
  if (!ok) {
    // The async handle is closed; stop the loop from outside through a fresh check of the flag.
    l->force_stop = true;
    uv_stop(uv_default_loop());  // racy but last-resort: the loop thread is stuck anyway
    if (l->finished_future.wait_for(std::chrono::seconds(3)) != std::future_status::ready) {
      l->thread.detach();
      (void)loop_.release();  // leaked: the thread may still use it
      return false;
    }
  }
  l->thread.join();
  loop_.reset();
  return ok;
}

bool PoolerHarness::RunOnLoop(const std::function<void(proxy::Pooler&)>& fn) {
  if (!loop_) return false;
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> f = done->get_future();
  Loop* l = loop_.get();
  l->Post([l, fn, done] {
    fn(*l->pooler);
    done->set_value();
  });
  return f.wait_for(std::chrono::seconds(5)) == std::future_status::ready;
}

PGconnPtr PoolerHarness::Connect(const std::string& extra, std::string* error) {
  std::string conninfo = "host=127.0.0.1 port=";
  conninfo += std::to_string(port_);
  conninfo += " dbname=app user=app sslmode=disable connect_timeout=5 ";
  conninfo += extra;
  PGconnPtr c(PQconnectdb(conninfo.c_str()));
  if (PQstatus(c.get()) != CONNECTION_OK) {
    if (error) *error = PQerrorMessage(c.get());
    return nullptr;
  }
  PQsetNoticeProcessor(c.get(), [](void*, const char*) {}, nullptr);  // warnings are expected
  return c;
}

// ---------------------------------------------------------------- libpq helpers

namespace {

// Waits until libpq has a whole result (or the connection is dead). False on timeout.
bool WaitReadable(PGconn* c, std::chrono::steady_clock::time_point deadline) {
  while (PQisBusy(c)) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{PQsocket(c), POLLIN, 0};
    if (p.fd < 0) return true;
    int rc = poll(&p, 1, static_cast<int>(left.count()));
    if (rc < 0 && errno != EINTR) return true;
    if (PQconsumeInput(c) == 0) return true;  // connection gone: PQgetResult reports it
  }
  return true;
}

PqResult Convert(PGresult* r) {
  PqResult out;
  out.status = PQresultStatus(r);
  if (const char* s = PQresultErrorField(r, PG_DIAG_SQLSTATE)) out.sqlstate = s;
  if (const char* m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)) out.message = m;
  if (out.status == PGRES_FATAL_ERROR && out.sqlstate.empty()) out.sqlstate = "client";
  if (out.message.empty() && out.status == PGRES_FATAL_ERROR) out.message = PQresultErrorMessage(r);
  out.tag = PQcmdStatus(r);
  for (int col = 0; col < PQnfields(r); ++col) out.columns.push_back(PQfname(r, col));
  for (int row = 0; row < PQntuples(r); ++row) {
    std::vector<std::optional<std::string>> values;
    for (int col = 0; col < PQnfields(r); ++col) {
      if (PQgetisnull(r, row, col)) {
        values.push_back(std::nullopt);
      } else {
        values.push_back(std::string(PQgetvalue(r, row, col)));
      }
    }
    out.rows.push_back(std::move(values));
  }
  return out;
}

}  // namespace

std::string PqResults::Value() const {
  for (const PqResult& r : results) {
    if (r.status == PGRES_FATAL_ERROR) return "ERROR:" + r.sqlstate;
  }
  if (timed_out) return "TIMEOUT";
  for (auto it = results.rbegin(); it != results.rend(); ++it) {
    if (it->status == PGRES_TUPLES_OK && !it->rows.empty()) {
      return it->rows[0].empty() ? "" : it->rows[0][0].value_or("<null>");
    }
  }
  return "";
}

std::string PqResults::Tag() const {
  for (const PqResult& r : results) {
    if (r.status == PGRES_FATAL_ERROR) return "ERROR:" + r.sqlstate;
  }
  if (timed_out) return "TIMEOUT";
  return results.empty() ? "" : results.back().tag;
}

bool PqResults::ok() const {
  if (timed_out || results.empty()) return false;
  for (const PqResult& r : results) {
    if (r.status == PGRES_FATAL_ERROR) return false;
  }
  return true;
}

PqResults CollectResults(PGconn* c) {
  PqResults out;
  const auto deadline = std::chrono::steady_clock::now() + kClientTimeout;
  for (int guard = 0; guard < 10000; ++guard) {
    if (!WaitReadable(c, deadline)) {
      out.timed_out = true;
      return out;
    }
    PGresult* r = PQgetResult(c);
    if (r == nullptr) break;
    out.results.push_back(Convert(r));
    PQclear(r);
  }
  return out;
}

namespace {
PqResults SendFailed(PGconn* c) {
  PqResults out;
  PqResult r;
  r.sqlstate = "send";
  r.message = PQerrorMessage(c);
  out.results.push_back(r);
  return out;
}

std::vector<const char*> Pointers(const std::vector<std::optional<std::string>>& params) {
  std::vector<const char*> values;
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  return values;
}
}  // namespace

PqResults Query(PGconn* c, const std::string& sql) {
  if (PQsendQuery(c, sql.c_str()) != 1) return SendFailed(c);
  return CollectResults(c);
}

PqResults QueryParams(PGconn* c, const std::string& sql, const std::vector<std::optional<std::string>>& params) {
  std::vector<const char*> values = Pointers(params);
  if (PQsendQueryParams(c, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr, nullptr,
                        0) != 1) {
    return SendFailed(c);
  }
  return CollectResults(c);
}

PqResults Prepare(PGconn* c, const std::string& name, const std::string& sql, int nparams) {
  if (PQsendPrepare(c, name.c_str(), sql.c_str(), nparams, nullptr) != 1) return SendFailed(c);
  return CollectResults(c);
}

PqResults ExecPrepared(PGconn* c, const std::string& name, const std::vector<std::optional<std::string>>& params) {
  std::vector<const char*> values = Pointers(params);
  if (PQsendQueryPrepared(c, name.c_str(), static_cast<int>(values.size()), values.data(), nullptr, nullptr, 0) != 1) {
    return SendFailed(c);
  }
  return CollectResults(c);
}

PqResults DescribePrepared(PGconn* c, const std::string& name) {
  if (PQsendDescribePrepared(c, name.c_str()) != 1) return SendFailed(c);
  return CollectResults(c);
}

PqResults ClosePrepared(PGconn* c, const std::string& name) {
#ifdef LIBPQ_HAS_CLOSE_PREPARED
  if (PQsendClosePrepared(c, name.c_str()) != 1) return SendFailed(c);
  return CollectResults(c);
#else
  (void)name;
  PqResults out;
  PqResult r;
  r.sqlstate = "unsupported";
  r.message = "libpq before 17 has no PQsendClosePrepared";
  out.results.push_back(r);
  return out;
#endif
}

std::string Value(PGconn* c, const std::string& sql) { return Query(c, sql).Value(); }

std::vector<std::string> RunPipeline(PGconn* c, const std::vector<PipelineStep>& steps) {
  std::vector<std::string> outcomes;
  if (PQenterPipelineMode(c) != 1) return {"cannot enter pipeline mode"};
  for (const PipelineStep& s : steps) {
    std::vector<const char*> values = Pointers(s.params);
    int ok = s.prepared ? PQsendQueryPrepared(c, s.sql.c_str(), static_cast<int>(values.size()), values.data(), nullptr,
                                              nullptr, 0)
                        : PQsendQueryParams(c, s.sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(),
                                            nullptr, nullptr, 0);
    if (ok != 1) return {std::string("send failed: ") + PQerrorMessage(c)};
  }
  if (PQpipelineSync(c) != 1) return {"sync failed"};
  const auto deadline = std::chrono::steady_clock::now() + kClientTimeout;
  size_t pending = steps.size();
  for (int guard = 0; guard < 1000; ++guard) {
    if (!WaitReadable(c, deadline)) {
      outcomes.push_back("TIMEOUT");
      break;
    }
    PGresult* r = PQgetResult(c);
    if (r == nullptr) {
      if (PQstatus(c) != CONNECTION_OK) {
        outcomes.push_back("connection lost");
        break;
      }
      continue;  // the end of one query's results
    }
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_PIPELINE_SYNC) {
      PQclear(r);
      outcomes.push_back("sync");
      break;
    }
    if (st == PGRES_FATAL_ERROR) {
      const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
      outcomes.push_back(std::string("ERROR:") + (state ? state : "client"));
    } else if (st == PGRES_PIPELINE_ABORTED) {
      outcomes.push_back("skipped");
    } else {
      outcomes.push_back(PQcmdStatus(r));
    }
    if (pending > 0) --pending;
    PQclear(r);
  }
  if (PQexitPipelineMode(c) != 1) outcomes.push_back(std::string("exit pipeline: ") + PQerrorMessage(c));
  return outcomes;
}

// ---------------------------------------------------------------- RawClient

RawClient::~RawClient() {
  if (fd_ >= 0) close(fd_);
}

bool RawClient::Connect(int port, const std::vector<std::pair<std::string, std::string>>& params, std::string* error) {
  fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    *error = "connect failed";
    return false;
  }
  std::string startup;
  protocol::AppendStartupMessage(&startup, params);
  Send(startup);
  std::vector<std::string> login = ReadUntilReady();
  if (login.empty() || login.back().rfind("Z:", 0) != 0) {
    *error = "login failed:";
    for (const std::string& m : login) *error += " " + m;
    return false;
  }
  return true;
}

void RawClient::Send(const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

bool RawClient::ReadSome(int timeout_ms) {
  pollfd p{fd_, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) <= 0) return false;
  char buf[65536];
  ssize_t n = recv(fd_, buf, sizeof(buf), 0);
  if (n <= 0) return false;
  in_.append(buf, static_cast<size_t>(n));
  return true;
}

bool RawClient::NextMessage(std::string* readable, char* type) {
  std::span<const uint8_t> data(reinterpret_cast<const uint8_t*>(in_.data()), in_.size());
  protocol::Frame f;
  if (protocol::DecodeTyped(data, 1u << 30, &f) != protocol::DecodeStatus::kFrame) return false;
  std::string_view payload(reinterpret_cast<const char*>(f.payload.data()), f.payload.size());
  *type = f.type;
  auto cstrings = [&](size_t from) {
    std::vector<std::string> out;
    while (from < payload.size() && payload[from] != '\0') {
      size_t nul = payload.find('\0', from);
      out.emplace_back(payload.substr(from, nul - from));
      from = nul + 1;
    }
    return out;
  };
  switch (f.type) {
    case 'C':
      *readable = "C:";
      readable->append(payload.substr(0, payload.find('\0')));
      break;
    case 'E': {
      protocol::ErrorFields e = protocol::ParseErrorFields(f.payload);
      *readable = "E:" + e.sqlstate;
      break;
    }
    case 'Z':
      *readable = "Z:";
      readable->append(payload.substr(0, 1));
      break;
    case 'S': {
      std::vector<std::string> kv = cstrings(0);
      *readable = "S:";
      if (kv.size() == 2) {
        readable->append(kv[0]).append("=").append(kv[1]);
      } else {
        readable->append("?");
      }
      break;
    }
    case 'T': {
      *readable = "T:";
      size_t pos = 2;
      int16_t n = static_cast<int16_t>((static_cast<uint8_t>(payload[0]) << 8) | static_cast<uint8_t>(payload[1]));
      for (int k = 0; k < n && pos < payload.size(); ++k) {
        size_t nul = payload.find('\0', pos);
        if (k > 0) *readable += ",";
        *readable += std::string(payload.substr(pos, nul - pos));
        pos = nul + 1 + 18;
      }
      break;
    }
    case 'D': {
      *readable = "D:";
      size_t pos = 2;
      int16_t n = static_cast<int16_t>((static_cast<uint8_t>(payload[0]) << 8) | static_cast<uint8_t>(payload[1]));
      for (int k = 0; k < n && pos + 4 <= payload.size(); ++k) {
        int32_t len = static_cast<int32_t>((static_cast<uint32_t>(static_cast<uint8_t>(payload[pos])) << 24) |
                                           (static_cast<uint32_t>(static_cast<uint8_t>(payload[pos + 1])) << 16) |
                                           (static_cast<uint32_t>(static_cast<uint8_t>(payload[pos + 2])) << 8) |
                                           static_cast<uint32_t>(static_cast<uint8_t>(payload[pos + 3])));
        pos += 4;
        if (k > 0) *readable += ",";
        if (len < 0) {
          *readable += "NULL";
        } else {
          *readable += std::string(payload.substr(pos, static_cast<size_t>(len)));
          pos += static_cast<size_t>(len);
        }
      }
      break;
    }
    default:
      *readable = std::string(1, f.type);
      break;
  }
  in_.erase(0, f.total_size);
  return true;
}

std::vector<std::string> RawClient::ReadUntilReady(int ready) {
  std::vector<std::string> out;
  const auto deadline = std::chrono::steady_clock::now() + kClientTimeout;
  int seen = 0;
  for (int guard = 0; guard < 100000 && seen < ready; ++guard) {
    std::string m;
    char type = 0;
    if (NextMessage(&m, &type)) {
      if (type == 'R' || type == 'K') continue;  // login bookkeeping
      out.push_back(m);
      if (type == 'Z') ++seen;
      continue;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      out.push_back("TIMEOUT");
      break;
    }
    if (!ReadSome(static_cast<int>(left.count()))) {
      out.push_back(std::chrono::steady_clock::now() < deadline ? "EOF" : "TIMEOUT");
      break;
    }
  }
  return out;
}

std::vector<std::string> RawClient::ReadFor(int ms) {
  std::vector<std::string> out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  for (int guard = 0; guard < 100000; ++guard) {
    std::string m;
    char type = 0;
    if (NextMessage(&m, &type)) {
      out.push_back(m);
      continue;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || !ReadSome(static_cast<int>(left.count()))) break;
  }
  return out;
}

}  // namespace pgtenant::testing
