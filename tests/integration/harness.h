// The integration-test harness: the real PostgreSQL started by pg_fixture.sh, the real pgtenant
// binary run as a child process, and libpq helpers.
//
// The PostgreSQL fixture is started once per ctest run (the pg_fixture_start test) and described
// by the file named in $PGTENANT_FIXTURE_ENV. Each test that needs a proxy starts its own pgtenant
// on a free port and stops it at the end, so tests do not share proxy state.
//
// PGTENANT_TEST_DIRECT=1 points the tests that make sense without a proxy (COPY, multi-statement,
// errors in transactions, cancel, backend restart, malformed startup packets) at PostgreSQL
// itself as user app_rls, and skips the rest. That checks the tests' own logic against the
// reference behaviour.
//
// Thread-safety: PgFixture::Get() and the free functions may be called from any thread; a
// ProxyProcess and a PGconn belong to one thread at a time.
#pragma once

#include <libpq-fe.h>
#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace pgtenant::testing {

// The running PostgreSQL, as written to pg.env by pg_fixture.sh.
struct PgFixture {
  int port = 0;
  std::string data_dir;
  std::string bin_dir;
  std::string log_file;
  std::string run_as;  // OS user that owns the cluster; pg_ctl runs as it
  std::string superuser;
  std::string superpass;
  std::string ca_file;  // the CA that signed the server's TLS certificate (ssl = on)

  // Parses $PGTENANT_FIXTURE_ENV once. Exits the process with a message when it is unset or
  // unreadable, since no integration test can run without it.
  static const PgFixture& Get();

  // A libpq conninfo string for 127.0.0.1:port with sslmode=disable.
  std::string ConnInfo(const std::string& db, const std::string& user,
                       const std::string& password) const;

  // pg_ctl stop -m immediate: every backend dies at once, as in a crash. Fails the current test
  // when pg_ctl fails.
  void StopImmediate() const;
  // pg_ctl start -w; blocks until the server accepts connections.
  void Start() const;
  // True when pg_ctl status says the postmaster runs.
  bool IsRunning() const;
  // Starts the server when it is down; for teardown after a test that stopped it.
  void EnsureRunning() const;
};

// A TCP port on 127.0.0.1 that was free a moment ago.
int FreePort();

// PGTENANT_TEST_DIRECT=1 is set.
bool DirectMode();

// The result of running a short command to completion.
struct CommandResult {
  int exit_code = -1;      // the exit status, or -1 when killed by a signal or timed out
  bool timed_out = false;  // it was killed after the timeout
  std::string output;      // stdout and stderr interleaved
};

// Runs argv[0] (a path) with argv, optionally as another OS user (when we are root), and waits
// at most `timeout`, killing it after that.
CommandResult RunCommand(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                         const std::string& run_as = "");

// A throwaway certificate authority and a server certificate it signed, valid for localhost and
// 127.0.0.1: DIR/ca.crt, DIR/server.crt, DIR/server.key (make_test_certs.sh). Fails the test
// when openssl fails.
void MakeTestCerts(const std::string& dir);
// The `listen.tls` block of a config that serves DIR's certificate in `mode`.
std::string ListenTlsYaml(const std::string& mode, const std::string& dir);

// Knobs of the standard test config; the defaults are those of DefaultProxyConfig.
struct ProxyConfigOptions {
  int shared_size = 5;
  int acme_size = 2;
  std::string shared_mode = "transaction";
  // Written into the `timeouts` block as given.
  std::map<std::string, std::string> timeouts = {{"query_wait", "10s"},
                                                 {"server_connect", "3s"}};
  // Appended to the `listen` block, e.g. "  tls:\n    mode: require\n ...".
  std::string listen_extra;
  // Appended to pool `shared`'s block, e.g. "    tls: require\n".
  std::string shared_pool_extra;
  // Appended to the `tenants` block (after acme), e.g. "  t001: { template: dedicated }\n".
  std::string tenants_extra;
  // Appended at the end; must only add top-level keys the standard config does not have.
  std::string extra_yaml;
};

// The standard test config (docs/reference.md section 2): users app/app_pw (any tenant),
// admin/admin_pw, acme_service/acme_pw (tenant acme); pool `shared` (database app) and `acme`
// (database acme), both as role app_rls; tenant acme on pool acme, every other tenant on shared; no
// metrics.
std::string ProxyConfig(int listen_port, const PgFixture& pg, const ProxyConfigOptions& options);
std::string DefaultProxyConfig(int listen_port, const PgFixture& pg,
                               const std::string& extra_yaml = "");

// The listen port written in a config's `listen:` block, or 0 when none is found.
int ListenPortOf(const std::string& yaml_config);

// A pgtenant child process. The destructor stops it (as Stop()) and deletes its temp dir.
class ProxyProcess {
 public:
  // Writes `yaml_config` to a temp dir, runs `PGTENANT_BINARY --config FILE` with stdout and
  // stderr in a log file, and waits (at most 10 s) until its listen port accepts a TCP
  // connection. Returns null and sets *error (with the log) when it exits or does not listen.
  static std::unique_ptr<ProxyProcess> Start(const std::string& yaml_config, std::string* error);

  ProxyProcess(const ProxyProcess&) = delete;
  ProxyProcess& operator=(const ProxyProcess&) = delete;
  ~ProxyProcess();

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  const std::string& config_path() const { return config_path_; }
  // Not yet exited (reaps it when it has).
  bool Running();
  // The exit status once it has exited: the exit code, or 128+signal.
  int exit_status() const { return exit_status_; }
  // SIGTERM, wait up to 10 s, then SIGKILL. Returns true when it exited within the grace time.
  bool Stop();
  void Signal(int sig);
  // Everything it wrote to stdout and stderr so far.
  std::string Log() const;

 private:
  ProxyProcess() = default;
  bool WaitExit(std::chrono::milliseconds timeout);

  pid_t pid_ = -1;
  int port_ = 0;
  bool exited_ = false;
  int exit_status_ = -1;
  std::string dir_;
  std::string config_path_;
  std::string log_path_;
};

// ---- libpq helpers ----

struct PGconnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using PGconnPtr = std::unique_ptr<PGconn, PGconnDeleter>;

struct PGresultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PGresultPtr = std::unique_ptr<PGresult, PGresultDeleter>;

// Connects; on failure returns null and sets *error (and LastConnectError() of this thread) to
// libpq's message, so tests can write ASSERT_TRUE(c) << LastConnectError().
PGconnPtr Connect(const std::string& conninfo, std::string* error = nullptr);
std::string LastConnectError();

// PQexec wrapped in a PGresultPtr (never null: a lost connection gives a result too).
PGresultPtr Exec(PGconn* conn, const char* sql);

// The first column of the first row; "" for a command without rows; "ERROR:<sqlstate>" (or
// "ERROR:" when libpq gives none, e.g. a lost connection) on failure.
std::string QueryValue(PGconn* conn, const char* sql);

// The SQLSTATE of an error result, or "" when there is none.
std::string LastSqlState(const PGresult* res);
// The primary message of an error result, or libpq's text when there is no field.
std::string ErrorMessage(const PGresult* res);

// After PQsendQuery: waits for the next result without blocking past `timeout`. Returns null on
// timeout or when there are no more results.
PGresultPtr WaitForResult(PGconn* conn, std::chrono::milliseconds timeout);

// Base for tests that talk to either pgtenant or, in direct mode, PostgreSQL.
class IntegrationTest : public ::testing::Test {
 protected:
  void TearDown() override;

  // Starts pgtenant with `options`. In direct mode: does nothing when `direct_ok`, else skips the
  // test. Use through PGT_START_TARGET so a failure or skip returns from the test.
  void StartTarget(const ProxyConfigOptions& options, bool direct_ok);

  // Conninfo of a client of the target: user app / app_pw via pgtenant, or app_rls directly;
  // dbname app unless `extra` names another. `extra` is appended (e.g. "options='-c x=y'").
  std::string ClientConnInfo(const std::string& extra = "") const;
  // The port clients connect to.
  int TargetPort() const;
  // The proxy is still running (always true in direct mode).
  bool TargetAlive();
  // The proxy's log, for failure messages ("" in direct mode).
  std::string ProxyLog() const;

  std::unique_ptr<ProxyProcess> proxy_;
};

}  // namespace pgtenant::testing

// Starts the test target; returns from the test on failure or skip.
#define PGT_START_TARGET(options, direct_ok)           \
  do {                                                 \
    StartTarget((options), (direct_ok));               \
    if (HasFatalFailure() || IsSkipped()) return;      \
  } while (0)
