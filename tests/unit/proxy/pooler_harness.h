// PoolerHarness: a real proxy::Pooler in-process, on its own thread running libuv's default
// loop (proxy::NowMs reads that loop's clock), with a config built from YAML text in the test,
// and libpq clients with bounded waits. Together with FakePostgres (fake_postgres.h) it runs
// ClientSession, ServerSession and BackendState end to end without PostgreSQL.
#pragma once

#include <libpq-fe.h>

#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace pgtenant::proxy {
class Pooler;
}

namespace pgtenant::testing {

// The config of the machine tests: users `app` (any tenant), `acme_service` (tenant acme
// only) and `admin` (the admin console, database `pgtenant`), trust authentication, tenancy.variable app.tenant_id, pool `shared` (the default
// pool) and pool `acme` (tenant acme), both on the fake backend.
struct HarnessOptions {
  int backend_port = 0;
  std::string shared_mode = "transaction";
  int shared_size = 1;
  std::string shared_extra;  // more keys of pools.shared, each line indented by 4
  bool require_tenant = false;
  std::string sources = "[parameter, options, user, set]";  // tenancy.sources
  std::string tenants_extra;  // more entries of tenants, each line indented by 2
  std::string extra_yaml;    // more top-level sections
};
std::string MachineConfig(int listen_port, const HarnessOptions& options);

struct PGconnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using PGconnPtr = std::unique_ptr<PGconn, PGconnDeleter>;

class PoolerHarness {
 public:
  PoolerHarness();
  ~PoolerHarness();

  // Starts the pooler with MachineConfig(port, options) on a free port. False with `error` set
  // when the config does not load or the pooler does not start.
  bool Start(const HarnessOptions& options, std::string* error);
  // Shuts the pooler down (as SIGTERM does) and waits, at most a few seconds, for its loop.
  // False when it did not stop in time (the loop is then stopped and the pooler leaked).
  bool Stop();
  int port() const { return port_; }

  // Runs `fn` on the loop thread and waits for it (bounded). False when it did not run.
  bool RunOnLoop(const std::function<void(proxy::Pooler&)>& fn);

  // A libpq connection to the pooler: "dbname=app user=app" plus `extra` conninfo. Null on
  // failure; `error` gets libpq's message.
  PGconnPtr Connect(const std::string& extra, std::string* error = nullptr);

  struct Loop;  // pooler_harness.cc

 private:
  int port_ = 0;
  std::unique_ptr<Loop> loop_;
};

// ---- libpq with bounded waits (every call gives up after `kClientTimeout`)
inline constexpr std::chrono::milliseconds kClientTimeout{5000};

// One result of a command.
struct PqResult {
  ExecStatusType status = PGRES_FATAL_ERROR;
  std::string sqlstate;  // of an error
  std::string message;
  std::string tag;       // PQcmdStatus
  std::vector<std::string> columns;
  std::vector<std::vector<std::optional<std::string>>> rows;
};

// Every result a command produced, in order (one per statement of a simple Query).
struct PqResults {
  std::vector<PqResult> results;
  bool timed_out = false;
  // "ERROR:<sqlstate>" of the first error, else the first value of the last result with rows
  // ("<null>" for NULL), else "" (a command without rows).
  std::string Value() const;
  // "ERROR:<sqlstate>" of the first error, else the last command tag.
  std::string Tag() const;
  bool ok() const;
};

// Waits for every result of what was sent (PQsend*) until libpq has none left.
PqResults CollectResults(PGconn* c);
PqResults Query(PGconn* c, const std::string& sql);
// The extended protocol: unnamed statement, text parameters.
PqResults QueryParams(PGconn* c, const std::string& sql, const std::vector<std::optional<std::string>>& params = {});
PqResults Prepare(PGconn* c, const std::string& name, const std::string& sql, int nparams = 0);
PqResults ExecPrepared(PGconn* c, const std::string& name, const std::vector<std::optional<std::string>>& params = {});
PqResults DescribePrepared(PGconn* c, const std::string& name);
PqResults ClosePrepared(PGconn* c, const std::string& name);
// Shortcut: Query(c, sql).Value().
std::string Value(PGconn* c, const std::string& sql);

// A pipeline: each step is a statement sent by PQsendQueryParams (or a prepared statement's
// Execute when `prepared`), then one Sync. The outcome of each step: its tag, or
// "ERROR:<sqlstate>", or "skipped" (PGRES_PIPELINE_ABORTED); then "sync".
struct PipelineStep {
  PipelineStep(std::string text) : sql(std::move(text)) {}  // NOLINT: implicit on purpose
  PipelineStep(std::string text, bool is_prepared, std::vector<std::optional<std::string>> values = {})
      : sql(std::move(text)), prepared(is_prepared), params(std::move(values)) {}
  std::string sql;  // or the statement name when prepared
  bool prepared = false;
  std::vector<std::optional<std::string>> params;
};
std::vector<std::string> RunPipeline(PGconn* c, const std::vector<PipelineStep>& steps);

// A client that speaks the protocol itself, for what libpq cannot send (a Close of a
// statement, a Flush, a hand-made sequence of extended-protocol messages).
class RawClient {
 public:
  // Connects to 127.0.0.1:`port` and logs in (trust) with these startup parameters.
  bool Connect(int port, const std::vector<std::pair<std::string, std::string>>& params, std::string* error);
  ~RawClient();
  void Send(const std::string& bytes);
  // Reads backend messages until `ready` ReadyForQuery messages arrived (bounded wait), each as
  // a readable string: "1" ParseComplete, "2" BindComplete, "3" CloseComplete, "n" NoData,
  // "t" ParameterDescription, "T:<col>,..." RowDescription, "D:<v>,..." DataRow,
  // "C:<tag>" CommandComplete, "E:<sqlstate>" ErrorResponse, "N" notice, "S:<name>=<value>"
  // ParameterStatus, "Z:<status>" ReadyForQuery, "I" EmptyQueryResponse, "s" PortalSuspended.
  // Stops early, with "TIMEOUT" or "EOF" last, when they do not come.
  std::vector<std::string> ReadUntilReady(int ready = 1);
  // Whatever arrives within `ms` (nothing, usually: a check that the proxy holds answers back).
  std::vector<std::string> ReadFor(int ms);

 private:
  bool ReadSome(int timeout_ms);
  bool NextMessage(std::string* readable, char* type);
  int fd_ = -1;
  std::string in_;
};

}  // namespace pgtenant::testing
