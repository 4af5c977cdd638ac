// Tenancy through pgtenant against a real PostgreSQL (docs/reference.md section 3): every source that
// names a tenant, every rule, every error, in both pool modes.
//
// Each check of "which tenant is this session acting for" asks the server, not pgtenant: the
// variable's value, the rows RLS lets through (3 per tenant, only that tenant's) and the database
// the pool points at. So a wrong pool, a wrong or missing variable, or a leak all show up.
//
// libpq cannot send arbitrary startup parameters and hides the SQLSTATE of a refused login, so a
// small raw-protocol client (RawClient, SCRAM through protocol/scram.h) covers the `parameter`
// source and the exact SQLSTATE of login refusals.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "integration/harness.h"
#include "protocol/message_writer.h"
#include "protocol/messages.h"
#include "protocol/scram.h"

namespace pgtenant::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using Params = std::vector<std::pair<std::string, std::string>>;

// One line that says who the session acts for: variable|rows|min tenant|max tenant|database.
// A variable never set (NULL) and one reset to its default ('') are both "<none>".
constexpr const char* kObserve =
    "select concat_ws('|', coalesce(nullif(current_setting('app.tenant_id', true), ''), '<none>'), "
    "count(*), coalesce(min(tenant_id), '-'), coalesce(max(tenant_id), '-'), "
    "current_database()) from items";

// What kObserve shows for a session acting as `tenant` (acme lives in its own database).
std::string Seen(const std::string& tenant) {
  std::string db = tenant == "acme" ? "acme" : "app";
  return tenant + "|3|" + tenant + "|" + tenant + "|" + db;
}
const char* const kNoTenant = "<none>|0|-|-|app";
// Prepared statements a test's first client left (pgtenant may keep its own, named pgtenant_*).
constexpr const char* kAdversaryStatements =
    "select count(*) from pg_prepared_statements where name like 'adv%'";

// ---- a minimal raw-protocol client ----

class RawClient {
 public:
  struct Outcome {
    bool ok = false;
    std::string sqlstate;
    std::string message;
  };

  RawClient() = default;
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;
  ~RawClient() {
    if (fd_ >= 0) close(fd_);
  }

  // Sends a StartupMessage with `params` and answers SCRAM or cleartext with `password`.
  // ok when ReadyForQuery came; otherwise the ErrorResponse's fields (or a description).
  Outcome Login(int port, const Params& params, const std::string& password) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      return {false, "", "cannot connect"};
    }
    std::string out;
    protocol::AppendStartupMessage(&out, params);
    if (!Send(out)) return {false, "", "send failed"};
    protocol::ScramClientExchange scram(password);
    for (;;) {
      char type = 0;
      std::string payload;
      if (!Read(&type, &payload)) return {false, "", "closed or timed out during login"};
      if (type == 'E') return ErrorOf(payload);
      if (type == 'Z') return {true, "", ""};
      if (type != 'R' || payload.size() < 4) continue;  // ParameterStatus, BackendKeyData
      uint32_t raw_code;
      std::memcpy(&raw_code, payload.data(), sizeof raw_code);
      int32_t code = static_cast<int32_t>(ntohl(raw_code));
      std::string data = payload.substr(4);
      out.clear();
      if (code == protocol::kAuthCleartext) {
        protocol::AppendPasswordMessage(&out, password);
      } else if (code == protocol::kAuthSasl) {
        protocol::AppendSaslInitialResponse(&out, protocol::kScramMechanism,
                                            scram.ClientFirstMessage());
      } else if (code == protocol::kAuthSaslContinue) {
        auto final_message = scram.HandleServerFirst(data);
        if (!final_message.ok()) return {false, "", "bad server-first-message"};
        protocol::AppendSaslResponse(&out, final_message.value());
      } else if (code == protocol::kAuthSaslFinal) {
        if (!scram.HandleServerFinal(data).ok()) return {false, "", "bad server signature"};
      } else if (code != protocol::kAuthOk) {
        return {false, "", "unsupported authentication request " + std::to_string(code)};
      }
      if (!out.empty() && !Send(out)) return {false, "", "send failed"};
    }
  }

  // Sends raw frontend messages and reads up to the next ReadyForQuery: the type bytes of the
  // messages received, in order (e.g. "32DCZ"), with ":<sqlstate>" after an 'E'; "" when the
  // connection failed first.
  std::string Exchange(const std::string& bytes) {
    if (!Send(bytes)) return "";
    std::string types;
    for (;;) {
      char type = 0;
      std::string payload;
      if (!Read(&type, &payload)) return "";
      types += type;
      if (type == 'E') {
        // Two appends: GCC 12 at -O3 warns falsely (-Wrestrict) about ":" + std::string.
        types += ':';
        types += ErrorOf(payload).sqlstate;
      }
      if (type == 'Z') return types;
    }
  }

  // As QueryValue: the first value of the first row, "" without rows, "ERROR:<sqlstate>".
  std::string Query(const std::string& sql) {
    std::string out;
    protocol::AppendQuery(&out, sql);
    if (!Send(out)) return "ERROR:";
    std::string value, error;
    bool have_value = false;
    for (;;) {
      char type = 0;
      std::string payload;
      if (!Read(&type, &payload)) return "ERROR:";
      if (type == 'E') error = "ERROR:" + ErrorOf(payload).sqlstate;
      if (type == 'D' && !have_value && payload.size() >= 6) {
        uint32_t raw;
        std::memcpy(&raw, &payload[2], sizeof raw);
        int32_t len = static_cast<int32_t>(ntohl(raw));
        if (len >= 0) value = payload.substr(6, static_cast<size_t>(len));
        have_value = true;
      }
      if (type == 'Z') return error.empty() ? value : error;
    }
  }

 private:
  static Outcome ErrorOf(const std::string& payload) {
    protocol::ErrorFields f = protocol::ParseErrorFields(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(payload.data()), payload.size()));
    return {false, f.sqlstate, f.message};
  }

  bool Send(const std::string& bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  // One typed message, waiting at most 10 s in all.
  bool Read(char* type, std::string* payload) {
    auto deadline = Clock::now() + milliseconds(10000);
    for (;;) {
      if (in_.size() >= 5) {
        uint32_t be;
        std::memcpy(&be, &in_[1], sizeof be);  // unaligned in the buffer: no pointer cast
        uint32_t len = ntohl(be);
        if (len < 4) return false;
        if (in_.size() >= len + 1) {
          *type = in_[0];
          *payload = in_.substr(5, len - 4);
          in_.erase(0, len + 1);
          return true;
        }
      }
      auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return false;
      pollfd pfd{fd_, POLLIN, 0};
      if (poll(&pfd, 1, static_cast<int>(left)) <= 0) continue;
      char buf[8192];
      ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) return false;
      in_.append(buf, static_cast<size_t>(n));
    }
  }

  int fd_ = -1;
  std::string in_;
};

// ---- the fixture ----

// Replace `from` (which must occur) with `to` in the standard config.
struct Edit {
  std::string from;
  std::string to;
};

const Edit kNoDefaultPool{"  default_pool: shared\n", ""};
const Edit kRequireTenant{"  require_tenant: false\n", "  require_tenant: true\n"};

// Parameterised by the pool mode of both pools ("transaction" or "session").
class TenancyTest : public IntegrationTest, public ::testing::WithParamInterface<const char*> {
 protected:
  bool Session() const { return std::string(GetParam()) == "session"; }

  // Starts pgtenant with the standard config in this test's mode, with `edits` applied.
  void StartProxy(const std::vector<Edit>& edits = {}, int shared_size = 5, int acme_size = 2) {
    if (DirectMode()) GTEST_SKIP() << "tenancy needs pgtenant (PGTENANT_TEST_DIRECT=1)";
    ProxyConfigOptions options;
    options.shared_mode = GetParam();
    options.shared_size = shared_size;
    options.acme_size = acme_size;
    std::string error;
    for (int attempt = 0; attempt < 3 && !proxy_; ++attempt) {
      std::string yaml = ProxyConfig(FreePort(), PgFixture::Get(), options);
      std::vector<Edit> all = edits;
      // The acme pool always follows the test's mode too.
      all.push_back(
          {"database: acme\n    user: app_rls\n    password: \"app_rls_pw\"\n"
           "    mode: transaction\n",
           "database: acme\n    user: app_rls\n    password: \"app_rls_pw\"\n"
           "    mode: " +
               std::string(GetParam()) + "\n"});
      for (const Edit& e : all) {
        size_t at = yaml.find(e.from);
        ASSERT_NE(at, std::string::npos) << "the standard config has no \"" << e.from << "\"";
        yaml.replace(at, e.from.size(), e.to);
      }
      proxy_ = ProxyProcess::Start(yaml, &error);
    }
    ASSERT_TRUE(proxy_) << error;
  }

  std::string ConnInfoAs(const std::string& user, const std::string& password,
                         const std::string& extra = "", const std::string& db = "app") const {
    return "host=127.0.0.1 port=" + std::to_string(TargetPort()) + " dbname=" + db +
           " user=" + user + " password=" + password + " sslmode=disable connect_timeout=10 " +
           extra;
  }

  // A libpq client of user app with `extra` conninfo; fails the test when it cannot log in.
  PGconnPtr ConnectApp(const std::string& extra = "", const std::string& db = "app") {
    PGconnPtr c = Connect(ConnInfoAs("app", "app_pw", extra, db));
    EXPECT_TRUE(c) << extra << ": " << LastConnectError() << ProxyLog();
    return c;
  }

  // A raw login with the startup parameters `params`; user app's password unless given.
  RawClient::Outcome RawLogin(RawClient* client, const Params& params,
                              const std::string& password = "app_pw") {
    return client->Login(TargetPort(), params, password);
  }

  // A raw login as app with tenant t001 from the startup options; fails the test otherwise.
  void RawLoginAsT001(RawClient* client) {
    RawClient::Outcome login = RawLogin(client, {{"user", "app"}, {"options", "-c app.tenant_id=t001"}});
    ASSERT_TRUE(login.ok) << login.sqlstate << " " << login.message << ProxyLog();
  }

  // Expects the libpq login with `conninfo` to be refused with a message naming `named`.
  void ExpectLoginRefused(const std::string& conninfo, const std::string& named) {
    std::string error;
    PGconnPtr c = Connect(conninfo, &error);
    EXPECT_FALSE(c) << conninfo << " was accepted";
    EXPECT_NE(error.find(named), std::string::npos)
        << "the refusal should name " << named << ": " << error;
  }

  // Expects `sql` to fail with `sqlstate`, with a message naming `named`, leaving the session
  // in transaction status `after`.
  void ExpectRefused(PGconn* c, const std::string& sql, const std::string& sqlstate,
                     const std::string& named, PGTransactionStatusType after = PQTRANS_IDLE) {
    PGresultPtr r = Exec(c, sql.c_str());
    EXPECT_EQ(PQresultStatus(r.get()), PGRES_FATAL_ERROR) << sql;
    EXPECT_EQ(LastSqlState(r.get()), sqlstate) << sql << ": " << ErrorMessage(r.get());
    EXPECT_NE(ErrorMessage(r.get()).find(named), std::string::npos)
        << sql << ": the error should name " << named << ": " << ErrorMessage(r.get());
    EXPECT_EQ(PQtransactionStatus(c), after) << sql;
  }

  // set_config('app.tenant_id', $1, false) over the extended protocol, unnamed statement.
  PGresultPtr SetConfigBound(PGconn* c, const std::string& value, bool local = false) {
    const char* values[1] = {value.c_str()};
    const char* sql = local ? "select set_config('app.tenant_id', $1, true)"
                            : "select set_config('app.tenant_id', $1, false)";
    return PGresultPtr(PQexecParams(c, sql, 1, nullptr, values, nullptr, nullptr, 0));
  }
};

#define START_PROXY(...)                          \
  do {                                            \
    StartProxy(__VA_ARGS__);                      \
    if (HasFatalFailure() || IsSkipped()) return; \
  } while (0)

// ---- sources ----

TEST_P(TenancyTest, SourceParameterNamesTheTenant) {
  START_PROXY();
  RawClient raw;
  RawClient::Outcome login =
      RawLogin(&raw, {{"user", "app"}, {"database", "app"}, {"app.tenant_id", "t005"}});
  ASSERT_TRUE(login.ok) << login.sqlstate << " " << login.message << ProxyLog();
  EXPECT_EQ(raw.Query(kObserve), Seen("t005"));
  EXPECT_EQ(raw.Query(kObserve), Seen("t005"));  // and on the next transaction too
}

// JDBC sends the Close of a statement it dropped in front of its next statement. pgtenant
// answers that Close itself in transaction mode; the tenant SET behind it in the same batch must
// still become the client's tenant (it once ran on the server behind pgtenant's back instead,
// and the next batch put the old tenant back: found by the driver suite under ASan).
TEST_P(TenancyTest, TenantSetBehindAClosedStatementInTheSameBatch) {
  START_PROXY();
  RawClient raw;
  ASSERT_NO_FATAL_FAILURE(RawLoginAsT001(&raw));
  std::string prepare;
  protocol::AppendParse(&prepare, "s_other", "SELECT 1", {});
  protocol::AppendParse(&prepare, "s_set", "select set_config('app.tenant_id', $1, false)", {25});
  protocol::AppendSync(&prepare);
  ASSERT_EQ(raw.Exchange(prepare), "11Z");
  for (const char* tenant : {"t002", "t003", "t001"}) {
    SCOPED_TRACE(tenant);
    std::string batch;
    protocol::AppendClose(&batch, 'S', "s_other");
    protocol::MessageWriter w(&batch);
    w.Begin('B').PutCString("").PutCString("s_set").PutInt16(0).PutInt16(1);
    w.PutInt32(static_cast<int32_t>(strlen(tenant))).PutBytes(tenant).PutInt16(0);
    w.Finish();
    protocol::AppendExecuteUnnamed(&batch);
    protocol::AppendSync(&batch);
    EXPECT_EQ(raw.Exchange(batch), "32DCZ") << ProxyLog();
    EXPECT_EQ(raw.Query(kObserve), Seen(tenant));
    EXPECT_EQ(raw.Query(kObserve), Seen(tenant));
    // The statement is prepared again for the next round.
    std::string again;
    protocol::AppendParse(&again, "s_other", "SELECT 1", {});
    protocol::AppendSync(&again);
    ASSERT_EQ(raw.Exchange(again), "1Z");
  }
}

// A Describe (and a Close) of a tenant statement pgtenant keeps for the client, sent behind
// statements the server has not answered yet: the server never saw the client's name, so it
// must not be asked about it (it answered 26000 "prepared statement does not exist").
TEST_P(TenancyTest, DescribeOfAKeptTenantStatementBehindUnansweredWork) {
  START_PROXY();
  RawClient raw;
  ASSERT_NO_FATAL_FAILURE(RawLoginAsT001(&raw));
  std::string prepare;
  protocol::AppendParse(&prepare, "s_set", "select set_config('app.tenant_id', $1, false)", {25});
  protocol::AppendParse(&prepare, "s_reset", "RESET app.tenant_id", {});
  protocol::AppendSync(&prepare);
  ASSERT_EQ(raw.Exchange(prepare), "11Z");
  std::string batch;
  protocol::AppendParse(&batch, "", "SELECT 1", {});
  protocol::AppendBindUnnamed(&batch);
  protocol::AppendExecuteUnnamed(&batch);
  protocol::AppendDescribe(&batch, 'S', "s_set");    // ParameterDescription + RowDescription
  protocol::AppendDescribe(&batch, 'S', "s_reset");  // ParameterDescription + NoData
  protocol::AppendClose(&batch, 'S', "s_reset");
  protocol::AppendSync(&batch);
  EXPECT_EQ(raw.Exchange(batch), "12DCtTtn3Z") << ProxyLog();
  // The set statement is still the client's and still does its job; the closed one is gone.
  std::string use;
  protocol::MessageWriter w(&use);
  w.Begin('B').PutCString("").PutCString("s_set").PutInt16(0).PutInt16(1).PutInt32(4).PutBytes("t002").PutInt16(0);
  w.Finish();
  protocol::AppendExecuteUnnamed(&use);
  protocol::AppendSync(&use);
  EXPECT_EQ(raw.Exchange(use), "2DCZ");
  EXPECT_EQ(raw.Query(kObserve), Seen("t002"));
  std::string closed;
  protocol::AppendBindNoParameters(&closed, "s_reset");
  protocol::AppendSync(&closed);
  EXPECT_EQ(raw.Exchange(closed), "E:26000Z");  // closed on the server side too
}

// Write system calls the proxy made so far (/proc/PID/io), to count what a batch cost it.
long long ProxyWriteCalls(pid_t pid) {
  FILE* f = fopen(("/proc/" + std::to_string(pid) + "/io").c_str(), "r");
  if (f == nullptr) return -1;
  char line[128];
  long long n = -1;
  while (fgets(line, sizeof line, f) != nullptr) {
    if (strncmp(line, "syscw:", 6) == 0) n = atoll(line + 6);
  }
  fclose(f);
  return n;
}

// A pipeline of several statements before one Sync, sent while the client holds its server (in
// a transaction block): it reaches the server in one write, answers in order, and a tenant
// change inside it (SET LOCAL through set_config, behind the unanswered statements) still
// takes effect for the rest of the transaction only.
TEST_P(TenancyTest, PipelineInsideATransactionGoesOutInOneWrite) {
  START_PROXY();
  RawClient raw;
  ASSERT_NO_FATAL_FAILURE(RawLoginAsT001(&raw));
  std::string begin;
  protocol::AppendQuery(&begin, "BEGIN");
  ASSERT_EQ(raw.Exchange(begin), "CZ");
  std::string pipeline;
  for (int i = 0; i < 5; ++i) {
    protocol::AppendParse(&pipeline, "", "SELECT " + std::to_string(i), {});
    protocol::AppendBindUnnamed(&pipeline);
    protocol::AppendExecuteUnnamed(&pipeline);
  }
  protocol::AppendSync(&pipeline);
  long long before = ProxyWriteCalls(proxy_->pid());
  ASSERT_GE(before, 0);
  ASSERT_EQ(raw.Exchange(pipeline), "12DC12DC12DC12DC12DCZ");
  long long writes = ProxyWriteCalls(proxy_->pid()) - before;
  // One write to the server and the answers to the client (one write, two if the server's
  // answers arrived in two reads); one write per statement would be six or more.
  EXPECT_LE(writes, 3) << "writes for a five-statement pipeline";

  std::string with_tenant;
  protocol::AppendParse(&with_tenant, "", "SELECT 1", {});
  protocol::AppendBindUnnamed(&with_tenant);
  protocol::AppendExecuteUnnamed(&with_tenant);
  protocol::AppendParse(&with_tenant, "", "select set_config('app.tenant_id', 't002', true)", {});
  protocol::AppendBindUnnamed(&with_tenant);
  protocol::AppendExecuteUnnamed(&with_tenant);
  protocol::AppendParse(&with_tenant, "", "SELECT 2", {});
  protocol::AppendBindUnnamed(&with_tenant);
  protocol::AppendExecuteUnnamed(&with_tenant);
  protocol::AppendSync(&with_tenant);
  EXPECT_EQ(raw.Exchange(with_tenant), "12DC12DC12DCZ") << ProxyLog();
  EXPECT_EQ(raw.Query(kObserve), Seen("t002"));
  std::string commit;
  protocol::AppendQuery(&commit, "COMMIT");
  EXPECT_EQ(raw.Exchange(commit), "CZ");
  EXPECT_EQ(raw.Query(kObserve), Seen("t001"));
}

TEST_P(TenancyTest, SourceOptionsDashC) {
  START_PROXY();
  PGconnPtr c = ConnectApp("options='-c app.tenant_id=t001'");
  ASSERT_TRUE(c);
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t001"));
  EXPECT_EQ(QueryValue(c.get(), "select current_setting('app.tenant_id')"), "t001");
}

TEST_P(TenancyTest, SourceOptionsDoubleDash) {
  START_PROXY();
  PGconnPtr c = ConnectApp("options='--app.tenant_id=t001'");
  ASSERT_TRUE(c);
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t001"));
  EXPECT_EQ(QueryValue(c.get(), "select current_setting('app.tenant_id')"), "t001");
}

TEST_P(TenancyTest, SourceUserSuffix) {
  START_PROXY();
  PGconnPtr c = Connect(ConnInfoAs("app.t002", "app_pw"));
  ASSERT_TRUE(c) << LastConnectError() << ProxyLog();
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t002"));
  // The server sees the pool's role; the client logged in as `app`.
  EXPECT_EQ(QueryValue(c.get(), "select current_user"), "app_rls");
}

TEST_P(TenancyTest, SourceSetEqualsQuoted) {
  START_PROXY();
  PGconnPtr c = ConnectApp();
  ASSERT_TRUE(c);
  EXPECT_EQ(QueryValue(c.get(), kObserve), kNoTenant);
  PGresultPtr r = Exec(c.get(), "SET app.tenant_id = 't003'");
  ASSERT_EQ(PQresultStatus(r.get()), PGRES_COMMAND_OK) << ErrorMessage(r.get());
  EXPECT_STREQ(PQcmdStatus(r.get()), "SET");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t003"));
}

TEST_P(TenancyTest, SourceSetSessionTo) {
  START_PROXY();
  PGconnPtr c = ConnectApp("options='-c app.tenant_id=t001'");
  ASSERT_TRUE(c);
  PGresultPtr r = Exec(c.get(), "SET SESSION app.tenant_id TO t004");
  ASSERT_EQ(PQresultStatus(r.get()), PGRES_COMMAND_OK) << ErrorMessage(r.get());
  EXPECT_STREQ(PQcmdStatus(r.get()), "SET");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t004"));
}

// RESET returns to the connection-time value, as on Postgres: the startup tenant, or none.
TEST_P(TenancyTest, SourceResetReturnsToStartupValue) {
  START_PROXY();
  PGconnPtr c = ConnectApp("options='-c app.tenant_id=t001'");
  ASSERT_TRUE(c);
  EXPECT_EQ(QueryValue(c.get(), "SET app.tenant_id = 't003'"), "");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t003"));
  PGresultPtr r = Exec(c.get(), "RESET app.tenant_id");
  ASSERT_EQ(PQresultStatus(r.get()), PGRES_COMMAND_OK) << ErrorMessage(r.get());
  EXPECT_STREQ(PQcmdStatus(r.get()), "RESET");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t001"));

  PGconnPtr bare = ConnectApp();
  ASSERT_TRUE(bare);
  EXPECT_EQ(QueryValue(bare.get(), "SET app.tenant_id = 't003'"), "");
  EXPECT_EQ(QueryValue(bare.get(), kObserve), Seen("t003"));
  EXPECT_EQ(QueryValue(bare.get(), "RESET app.tenant_id"), "");
  EXPECT_EQ(QueryValue(bare.get(), kObserve), kNoTenant);
}

TEST_P(TenancyTest, SourceSetToDefault) {
  START_PROXY();
  PGconnPtr c = Connect(ConnInfoAs("app.t002", "app_pw"));
  ASSERT_TRUE(c) << LastConnectError();
  EXPECT_EQ(QueryValue(c.get(), "SET app.tenant_id = 't003'"), "");
  EXPECT_EQ(QueryValue(c.get(), "SET app.tenant_id TO DEFAULT"), "");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t002"));
  EXPECT_EQ(QueryValue(c.get(), "SET app.tenant_id = 't004'"), "");
  EXPECT_EQ(QueryValue(c.get(), "SET SESSION app.tenant_id = DEFAULT"), "");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t002"));
}

TEST_P(TenancyTest, SourceSetConfigSelect) {
  START_PROXY();
  PGconnPtr c = ConnectApp();
  ASSERT_TRUE(c);
  PGresultPtr r = Exec(c.get(), "select set_config('app.tenant_id', 't006', false)");
  ASSERT_EQ(PQresultStatus(r.get()), PGRES_TUPLES_OK) << ErrorMessage(r.get());
  ASSERT_EQ(PQntuples(r.get()), 1);
  EXPECT_STREQ(PQfname(r.get(), 0), "set_config");
  EXPECT_STREQ(PQgetvalue(r.get(), 0, 0), "t006");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t006"));
}

// A named prepared statement executed twice with different bound tenants (JDBC's way).
TEST_P(TenancyTest, SourceSetConfigPreparedWithBoundParameter) {
  START_PROXY();
  PGconnPtr c = ConnectApp("options='-c app.tenant_id=t001'");
  ASSERT_TRUE(c);
  PGresultPtr r(PQprepare(c.get(), "set_tenant", "select set_config('app.tenant_id', $1, false)", 1,
                          nullptr));
  ASSERT_EQ(PQresultStatus(r.get()), PGRES_COMMAND_OK) << ErrorMessage(r.get());
  for (const char* tenant : {"t007", "t008", "acme", "t007"}) {
    const char* values[1] = {tenant};
    r.reset(PQexecPrepared(c.get(), "set_tenant", 1, values, nullptr, nullptr, 0));
    ASSERT_EQ(PQresultStatus(r.get()), PGRES_TUPLES_OK) << tenant << ": " << ErrorMessage(r.get());
    EXPECT_STREQ(PQgetvalue(r.get(), 0, 0), tenant);
    EXPECT_EQ(QueryValue(c.get(), kObserve), Seen(tenant));
  }
}

TEST_P(TenancyTest, SourceSetConfigAndSetOverExtendedProtocol) {
  START_PROXY();
  PGconnPtr c = ConnectApp();
  ASSERT_TRUE(c);
  PGresultPtr r = SetConfigBound(c.get(), "t009");
  ASSERT_EQ(PQresultStatus(r.get()), PGRES_TUPLES_OK) << ErrorMessage(r.get());
  EXPECT_STREQ(PQgetvalue(r.get(), 0, 0), "t009");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t009"));

  r.reset(PQexecParams(c.get(), "SET app.tenant_id = 't010'", 0, nullptr, nullptr, nullptr, nullptr,
                       0));
  ASSERT_EQ(PQresultStatus(r.get()), PGRES_COMMAND_OK) << ErrorMessage(r.get());
  EXPECT_STREQ(PQcmdStatus(r.get()), "SET");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t010"));
}

// ---- rules ----

TEST_P(TenancyTest, AnyDatabaseNameServesTheTenantsPool) {
  START_PROXY();
  PGconnPtr c = ConnectApp("options='-c app.tenant_id=t001'", "whatever");
  ASSERT_TRUE(c);
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t001"));
  PGconnPtr a = ConnectApp("options='-c app.tenant_id=acme'", "app");
  ASSERT_TRUE(a);
  EXPECT_EQ(QueryValue(a.get(), kObserve), Seen("acme"));
  PGconnPtr b = ConnectApp("options='-c app.tenant_id=t002'", "acme");
  ASSERT_TRUE(b);
  EXPECT_EQ(QueryValue(b.get(), kObserve), Seen("t002"));
}

TEST_P(TenancyTest, IdPatternViolationRefusedAtLogin) {
  START_PROXY();
  for (const Params& params :
       {Params{{"user", "app"}, {"options", "-c app.tenant_id=T-001"}},
        Params{{"user", "app"}, {"app.tenant_id", "T-001"}}, Params{{"user", "app.T-001"}}}) {
    RawClient raw;
    RawClient::Outcome login = RawLogin(&raw, params);
    EXPECT_FALSE(login.ok) << params.back().second;
    EXPECT_EQ(login.sqlstate, "22023") << params.back().second << ": " << login.message;
    EXPECT_NE(login.message.find("T-001"), std::string::npos) << login.message;
  }
  ExpectLoginRefused(ConnInfoAs("app", "app_pw", "options='-c app.tenant_id=T-001'"), "T-001");
  EXPECT_TRUE(TargetAlive());
}

TEST_P(TenancyTest, IdPatternViolationRefusedAtSetAndConnectionStaysUsable) {
  START_PROXY();
  PGconnPtr c = ConnectApp("options='-c app.tenant_id=t001'");
  ASSERT_TRUE(c);
  ExpectRefused(c.get(), "SET app.tenant_id = 'T-001'", "22023", "T-001");
  ExpectRefused(c.get(), "select set_config('app.tenant_id', 'x''; drop table items; --', false)",
                "22023", "drop table");
  const std::string too_long(64, 'a');
  ExpectRefused(c.get(), "SET app.tenant_id = '" + too_long + "'", "22023", too_long);
  PGresultPtr r = SetConfigBound(c.get(), "t002'; select 1; --");
  EXPECT_EQ(LastSqlState(r.get()), "22023") << ErrorMessage(r.get());
  EXPECT_EQ(PQtransactionStatus(c.get()), PQTRANS_IDLE);
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t001"));
  EXPECT_EQ(QueryValue(c.get(), "select count(*) from items where true"), "3");
}

TEST_P(TenancyTest, UnlistedTenantWithoutDefaultPoolRefused) {
  START_PROXY({kNoDefaultPool});
  RawClient raw;
  RawClient::Outcome login =
      RawLogin(&raw, {{"user", "app"}, {"options", "-c app.tenant_id=t001"}});
  EXPECT_FALSE(login.ok);
  EXPECT_EQ(login.sqlstate, "28000") << login.message;
  EXPECT_NE(login.message.find("t001"), std::string::npos) << login.message;
  ExpectLoginRefused(ConnInfoAs("app.t001", "app_pw"), "t001");

  PGconnPtr c = ConnectApp("options='-c app.tenant_id=acme'");
  ASSERT_TRUE(c);
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("acme"));
  ExpectRefused(c.get(), "SET app.tenant_id = 't001'", "22023", "t001");
  PGresultPtr r = SetConfigBound(c.get(), "t001");
  EXPECT_EQ(LastSqlState(r.get()), "22023") << ErrorMessage(r.get());
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("acme"));
}

TEST_P(TenancyTest, UserNotAllowedToActAsTenantRefused) {
  START_PROXY();
  RawClient raw;
  RawClient::Outcome login =
      RawLogin(&raw, {{"user", "acme_service"}, {"options", "-c app.tenant_id=t001"}}, "acme_pw");
  EXPECT_FALSE(login.ok);
  EXPECT_EQ(login.sqlstate, "42501") << login.message;
  EXPECT_NE(login.message.find("t001"), std::string::npos) << login.message;
  ExpectLoginRefused(ConnInfoAs("acme_service.t001", "acme_pw"), "t001");

  PGconnPtr c = Connect(ConnInfoAs("acme_service", "acme_pw"));
  ASSERT_TRUE(c) << LastConnectError();
  ExpectRefused(c.get(), "SET app.tenant_id = 't001'", "42501", "t001");
  ExpectRefused(c.get(), "select set_config('app.tenant_id', 't001', false)", "42501", "t001");
  EXPECT_EQ(QueryValue(c.get(), kObserve), kNoTenant);
  EXPECT_EQ(QueryValue(c.get(), "SET app.tenant_id = 'acme'"), "");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("acme"));
}

TEST_P(TenancyTest, DisagreeingStartupSourcesRefused) {
  START_PROXY();
  for (const Params& params :
       {Params{{"user", "app.t001"}, {"options", "-c app.tenant_id=t002"}},
        Params{{"user", "app"}, {"app.tenant_id", "t003"}, {"options", "-c app.tenant_id=t004"}},
        Params{{"user", "app.t004"}, {"app.tenant_id", "t003"}}}) {
    RawClient raw;
    RawClient::Outcome login = RawLogin(&raw, params);
    EXPECT_FALSE(login.ok) << params[0].second << " / " << params[1].second;
    EXPECT_EQ(login.sqlstate, "28000") << params[1].second << ": " << login.message;
  }
  ExpectLoginRefused(ConnInfoAs("app.t001", "app_pw", "options='-c app.tenant_id=t002'"), "t002");
  // Sources that agree are one tenant.
  PGconnPtr c = Connect(ConnInfoAs("app.t001", "app_pw", "options='-c app.tenant_id=t001'"));
  ASSERT_TRUE(c) << LastConnectError();
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t001"));
}

TEST_P(TenancyTest, SetOutsideTransactionMovesToTheNewTenantsPool) {
  START_PROXY();
  PGconnPtr c = ConnectApp("options='-c app.tenant_id=t001'");
  ASSERT_TRUE(c);
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t001"));
  EXPECT_EQ(QueryValue(c.get(), "SET app.tenant_id = 'acme'"), "");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("acme"));
  EXPECT_EQ(QueryValue(c.get(), "select current_database()"), "acme");
  EXPECT_EQ(QueryValue(c.get(), "select set_config('app.tenant_id', 't002', false)"), "t002");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t002"));
  EXPECT_EQ(QueryValue(c.get(), "BEGIN"), "");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t002"));
  EXPECT_EQ(QueryValue(c.get(), "COMMIT"), "");
}

// A SET answered by pgtenant needs no server: it completes while the only server connection
// is held by another client's open transaction.
TEST_P(TenancyTest, SetOutsideTransactionIsAnsweredWithoutAServer) {
  if (Session()) GTEST_SKIP() << "in session mode the server is the client's own";
  START_PROXY({}, /*shared_size=*/1);
  PGconnPtr holder = ConnectApp("options='-c app.tenant_id=t001'");
  PGconnPtr c = ConnectApp("options='-c app.tenant_id=t002'");
  ASSERT_TRUE(holder && c);
  ASSERT_EQ(QueryValue(holder.get(), "BEGIN"), "");
  ASSERT_EQ(QueryValue(holder.get(), kObserve), Seen("t001"));
  auto start = Clock::now();
  EXPECT_EQ(QueryValue(c.get(), "SET app.tenant_id = 't003'"), "");
  EXPECT_EQ(QueryValue(c.get(), "select set_config('app.tenant_id', 't004', false)"), "t004");
  auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  EXPECT_LT(took.count(), 2000) << "the SET waited for a server";
  ASSERT_EQ(QueryValue(holder.get(), "COMMIT"), "");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t004"));
}

TEST_P(TenancyTest, SessionChangeInsideTransactionRefused) {
  START_PROXY();
  PGconnPtr c = ConnectApp("options='-c app.tenant_id=t001'");
  ASSERT_TRUE(c);
  const std::vector<std::string> changes = {
      "SET app.tenant_id = 't002'", "SET SESSION app.tenant_id TO t002",
      "select set_config('app.tenant_id', 't002', false)", "RESET app.tenant_id"};
  // RESET is a change only when the tenant differs from the startup one.
  EXPECT_EQ(QueryValue(c.get(), "SET app.tenant_id = 't005'"), "");
  for (const std::string& sql : changes) {
    ASSERT_EQ(QueryValue(c.get(), "BEGIN"), "");
    EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t005"));
    ExpectRefused(c.get(), sql, "25001", "tenant", PQTRANS_INERROR);
    EXPECT_EQ(QueryValue(c.get(), "select 1"), "ERROR:25P02") << sql;
    EXPECT_EQ(QueryValue(c.get(), "ROLLBACK"), "") << sql;
    EXPECT_EQ(PQtransactionStatus(c.get()), PQTRANS_IDLE);
    EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t005")) << "after " << sql;
  }
  // The same over the extended protocol with a bound value. (Before any statement of the block
  // ran, the change is the block's, as on Postgres: DeferredBlockTest.)
  ASSERT_EQ(QueryValue(c.get(), "BEGIN"), "");
  EXPECT_EQ(QueryValue(c.get(), "select 1"), "1");
  PGresultPtr r = SetConfigBound(c.get(), "t002");
  EXPECT_EQ(LastSqlState(r.get()), "25001") << ErrorMessage(r.get());
  EXPECT_EQ(QueryValue(c.get(), "select 1"), "ERROR:25P02");
  EXPECT_EQ(QueryValue(c.get(), "ROLLBACK"), "");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t005"));
}

TEST_P(TenancyTest, SetLocalForTenantOfSamePoolPassesThrough) {
  START_PROXY();
  PGconnPtr c = ConnectApp("options='-c app.tenant_id=t001'");
  ASSERT_TRUE(c);
  ASSERT_EQ(QueryValue(c.get(), "BEGIN"), "");
  EXPECT_EQ(QueryValue(c.get(), "SET LOCAL app.tenant_id = 't002'"), "");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t002"));
  EXPECT_EQ(QueryValue(c.get(), "select set_config('app.tenant_id', 't003', true)"), "t003");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t003"));
  EXPECT_EQ(QueryValue(c.get(), "COMMIT"), "");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t001"));

  // With a bound value, then ROLLBACK.
  ASSERT_EQ(QueryValue(c.get(), "BEGIN"), "");
  PGresultPtr r = SetConfigBound(c.get(), "t004", /*local=*/true);
  ASSERT_EQ(PQresultStatus(r.get()), PGRES_TUPLES_OK) << ErrorMessage(r.get());
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t004"));
  EXPECT_EQ(QueryValue(c.get(), "ROLLBACK"), "");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t001"));
}

// Once a statement of the block ran on a server, the block's pool is chosen. (Before that, the
// SET LOCAL chooses it: DeferredBlockTest.)
TEST_P(TenancyTest, SetLocalForTenantOfAnotherPoolRefused) {
  START_PROXY();
  PGconnPtr c = ConnectApp("options='-c app.tenant_id=t001'");
  ASSERT_TRUE(c);
  ASSERT_EQ(QueryValue(c.get(), "BEGIN"), "");
  EXPECT_EQ(QueryValue(c.get(), "select 1"), "1");
  ExpectRefused(c.get(), "SET LOCAL app.tenant_id = 'acme'", "25001", "acme", PQTRANS_INERROR);
  EXPECT_EQ(QueryValue(c.get(), "ROLLBACK"), "");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t001"));

  PGconnPtr a = ConnectApp("options='-c app.tenant_id=acme'");
  ASSERT_TRUE(a);
  ASSERT_EQ(QueryValue(a.get(), "BEGIN"), "");
  EXPECT_EQ(QueryValue(a.get(), "select 1"), "1");
  ExpectRefused(a.get(), "select set_config('app.tenant_id', 't001', true)", "25001", "t001",
                PQTRANS_INERROR);
  EXPECT_EQ(QueryValue(a.get(), "ROLLBACK"), "");
  EXPECT_EQ(QueryValue(a.get(), kObserve), Seen("acme"));
}

// Outside a block SET LOCAL only warns on Postgres and changes nothing.
TEST_P(TenancyTest, SetLocalOutsideTransactionChangesNothing) {
  START_PROXY();
  PGconnPtr c = ConnectApp("options='-c app.tenant_id=t001'");
  ASSERT_TRUE(c);
  PGresultPtr r = Exec(c.get(), "SET LOCAL app.tenant_id = 't002'");
  EXPECT_EQ(PQresultStatus(r.get()), PGRES_COMMAND_OK) << ErrorMessage(r.get());
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t001"));
}

TEST_P(TenancyTest, ResetAllAndDiscardAllReturnToStartupTenant) {
  START_PROXY();
  PGconnPtr c = Connect(ConnInfoAs("app.t002", "app_pw"));
  ASSERT_TRUE(c) << LastConnectError();
  EXPECT_EQ(QueryValue(c.get(), "SET app.tenant_id = 't003'"), "");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t003"));
  EXPECT_EQ(QueryValue(c.get(), "RESET ALL"), "");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t002"));
  EXPECT_EQ(QueryValue(c.get(), "SET app.tenant_id = 'acme'"), "");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("acme"));
  EXPECT_EQ(QueryValue(c.get(), "DISCARD ALL"), "");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t002"));
  // A SQL-level change the proxy cannot see is undone too.
  EXPECT_EQ(QueryValue(c.get(), "select switch_tenant('t009')"), "t009");
  EXPECT_EQ(QueryValue(c.get(), "DISCARD ALL"), "");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t002"));

  // The same over the extended protocol (PQexecParams: Parse, Bind, Execute, Sync).
  auto extended = [&](const char* sql) {
    PGresultPtr r(PQexecParams(c.get(), sql, 0, nullptr, nullptr, nullptr, nullptr, 0));
    return PQresultStatus(r.get()) == PGRES_COMMAND_OK ? std::string() : PQerrorMessage(c.get());
  };
  EXPECT_EQ(QueryValue(c.get(), "SET app.tenant_id = 't003'"), "");
  EXPECT_EQ(extended("RESET ALL"), "");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t002")) << "after RESET ALL over the extended protocol";
  EXPECT_EQ(QueryValue(c.get(), "SET app.tenant_id = 't004'"), "");
  EXPECT_EQ(extended("DISCARD ALL"), "");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t002")) << "after DISCARD ALL over the extended protocol";

  PGconnPtr bare = ConnectApp();
  ASSERT_TRUE(bare);
  EXPECT_EQ(QueryValue(bare.get(), "SET app.tenant_id = 't003'"), "");
  EXPECT_EQ(QueryValue(bare.get(), "RESET ALL"), "");
  EXPECT_EQ(QueryValue(bare.get(), kObserve), kNoTenant);
}

// A client's own change pgtenant cannot see (a function calling set_config) may stay with that
// client, but only until it names a tenant again: then no connection it used before the naming
// may trust pgtenant's record. Here the client names tenants twice on one connection, Y, and
// then comes back to X, where its hidden change is still in place. (pgtenant once forgot the
// naming after the first connection that set it, and the client saw t009 on X again: found by
// the isolation suite's pool of ten.) The pool is LIFO; `other` steers the client onto X.
TEST_P(TenancyTest, HiddenChangeDoesNotOutliveTheClientsNextNaming) {
  if (Session()) GTEST_SKIP() << "in session mode the client keeps one server connection";
  START_PROXY({}, /*shared_size=*/2);
  PGconnPtr c = ConnectApp("options='-c app.tenant_id=t001'");
  PGconnPtr other = ConnectApp("options='-c app.tenant_id=t002'");
  ASSERT_TRUE(c && other) << LastConnectError();
  ASSERT_EQ(QueryValue(c.get(), "BEGIN"), "");  // c on X
  ASSERT_EQ(QueryValue(other.get(), "BEGIN"), "");  // other on Y
  ASSERT_EQ(QueryValue(other.get(), kObserve), Seen("t002"));
  ASSERT_EQ(QueryValue(c.get(), "select switch_tenant('t009')"), "t009");
  ASSERT_EQ(QueryValue(c.get(), "COMMIT"), "");  // X idle, holding t009
  ASSERT_EQ(QueryValue(other.get(), "COMMIT"), "");  // Y idle after X: Y is taken first
  EXPECT_EQ(QueryValue(c.get(), "SET app.tenant_id = 't003'"), "");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t003"));  // on Y
  EXPECT_EQ(QueryValue(c.get(), "RESET ALL"), "");  // back to t001, on Y
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t001"));  // on Y
  ASSERT_EQ(QueryValue(other.get(), "BEGIN"), "");
  ASSERT_EQ(QueryValue(other.get(), kObserve), Seen("t002"));  // other holds Y
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t001")) << "on X, where t009 was set" << ProxyLog();
  ASSERT_EQ(QueryValue(other.get(), "COMMIT"), "");
}

// When pgtenant's own statements fail on the server (here the prelude's settings Query, since
// the client gave a startup setting the server refuses), the client gets an error and a
// ReadyForQuery for its statement, never silence, over either protocol, and everybody else goes
// on. (A simple Query behind pgtenant's extended-protocol messages is skipped by the backend
// after their error; it used to get no ReadyForQuery, and the client hung.) A client can no
// longer make pgtenant's tenant statement fail for others: ServerStateTest.
TEST_P(TenancyTest, FailureOfPgtenantsOwnStatementIsAnsweredAndTheClientGoesOn) {
  START_PROXY({}, /*shared_size=*/1);
  PGconnPtr c = ConnectApp("options='-c app.tenant_id=t001'");
  ASSERT_TRUE(c) << LastConnectError();
  ASSERT_EQ(QueryValue(c.get(), kObserve), Seen("t001"));
  if (Session()) c.reset();  // frees the only server connection
  PGconnPtr bad = ConnectApp("options='-c app.tenant_id=t002 -c statement_timeout=abc'");
  ASSERT_TRUE(bad) << LastConnectError();
  for (int round = 0; round < 2; ++round) {
    // Bounded waits: a missing ReadyForQuery would hang the client.
    ASSERT_EQ(PQsendQuery(bad.get(), kObserve), 1);
    PGresultPtr first = WaitForResult(bad.get(), std::chrono::milliseconds(5000));
    ASSERT_TRUE(first) << "no answer within 5 s" << ProxyLog();
    EXPECT_EQ(PQresultStatus(first.get()), PGRES_FATAL_ERROR);
    EXPECT_EQ(LastSqlState(first.get()), "22023") << ErrorMessage(first.get());
    PGresultPtr end = WaitForResult(bad.get(), std::chrono::milliseconds(5000));
    EXPECT_FALSE(end) << "more results than one";
    EXPECT_EQ(PQtransactionStatus(bad.get()), PQTRANS_IDLE) << "no ReadyForQuery" << ProxyLog();
    PGresultPtr extended(PQexecParams(bad.get(), kObserve, 0, nullptr, nullptr, nullptr, nullptr, 0));
    EXPECT_EQ(LastSqlState(extended.get()), "22023") << ErrorMessage(extended.get());
    EXPECT_EQ(PQtransactionStatus(bad.get()), PQTRANS_IDLE);
  }
  bad.reset();
  PGconnPtr other = ConnectApp("options='-c app.tenant_id=t003'");
  ASSERT_TRUE(other) << LastConnectError();
  EXPECT_EQ(QueryValue(other.get(), kObserve), Seen("t003")) << ProxyLog();
  if (c) {
    EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t001"));
  }
}

// DISCARD PLANS (and TEMP, SEQUENCES) over the extended protocol keep prepared statements: the
// tenant changes after it must work (pgtenant used to forget its statements and fail to
// prepare them again).
TEST_P(TenancyTest, DiscardPlansOverTheExtendedProtocolKeepsTenantChangesWorking) {
  START_PROXY({}, /*shared_size=*/1);
  PGconnPtr c = ConnectApp("options='-c app.tenant_id=t001'");
  ASSERT_TRUE(c) << LastConnectError();
  ASSERT_EQ(QueryValue(c.get(), kObserve), Seen("t001"));
  for (const char* sql : {"DISCARD PLANS", "DISCARD SEQUENCES", "DISCARD TEMP"}) {
    PGresultPtr r(PQexecParams(c.get(), sql, 0, nullptr, nullptr, nullptr, nullptr, 0));
    ASSERT_EQ(PQresultStatus(r.get()), PGRES_COMMAND_OK) << sql << ": " << PQerrorMessage(c.get());
    EXPECT_EQ(QueryValue(c.get(), "SET app.tenant_id = 't003'"), "");
    EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t003")) << "after " << sql << ProxyLog();
    EXPECT_EQ(QueryValue(c.get(), "SET app.tenant_id = 't001'"), "");
    EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t001")) << "after " << sql;
  }
}

TEST_P(TenancyTest, RequireTenantRefusesStatementsUntilTenantIsSet) {
  START_PROXY({kRequireTenant});
  PGconnPtr c = ConnectApp();
  ASSERT_TRUE(c);
  ExpectRefused(c.get(), "select 1", "28000", "tenant");
  ExpectRefused(c.get(), kObserve, "28000", "tenant");
  PGresultPtr r(PQexecParams(c.get(), "select 1", 0, nullptr, nullptr, nullptr, nullptr, 0));
  EXPECT_EQ(LastSqlState(r.get()), "28000") << ErrorMessage(r.get());
  EXPECT_EQ(QueryValue(c.get(), "SET app.tenant_id = 't001'"), "");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t001"));
  EXPECT_EQ(QueryValue(c.get(), "RESET app.tenant_id"), "");
  ExpectRefused(c.get(), "select 2", "28000", "tenant");
  // A session that named its tenant at startup is not affected.
  PGconnPtr named = ConnectApp("options='-c app.tenant_id=t002'");
  ASSERT_TRUE(named);
  EXPECT_EQ(QueryValue(named.get(), kObserve), Seen("t002"));
}

// Acceptance 3: acme is served by the acme pool (database acme) whichever way it is named.
// One session at a time: in session mode each holds one of the acme pool's 2 connections.
TEST_P(TenancyTest, DedicatedTenantServedOnlyByItsPool) {
  START_PROXY();
  struct Way {
    const char* how;
    std::string conninfo;
    const char* then;  // run before checking, "" for none
  };
  const std::vector<Way> ways = {
      {"options", ConnInfoAs("app", "app_pw", "options='-c app.tenant_id=acme'"), ""},
      {"options --", ConnInfoAs("app", "app_pw", "options='--app.tenant_id=acme'"), ""},
      {"user", ConnInfoAs("app.acme", "app_pw"), ""},
      {"acme_service", ConnInfoAs("acme_service.acme", "acme_pw"), ""},
      {"acme_service options",
       ConnInfoAs("acme_service", "acme_pw", "options='-c app.tenant_id=acme'"), ""},
      {"set", ConnInfoAs("app", "app_pw"), "SET app.tenant_id = 'acme'"},
      {"set from t001", ConnInfoAs("app", "app_pw", "options='-c app.tenant_id=t001'"),
       "select set_config('app.tenant_id', 'acme', false)"},
      {"bound set_config", ConnInfoAs("app", "app_pw"), "bound"},
  };
  for (const Way& way : ways) {
    PGconnPtr c = Connect(way.conninfo);
    ASSERT_TRUE(c) << way.how << ": " << LastConnectError();
    if (std::string(way.then) == "bound") {
      EXPECT_EQ(PQresultStatus(SetConfigBound(c.get(), "acme").get()), PGRES_TUPLES_OK) << way.how;
    } else if (*way.then != '\0') {
      PGresultPtr r = Exec(c.get(), way.then);
      EXPECT_NE(PQresultStatus(r.get()), PGRES_FATAL_ERROR)
          << way.how << ": " << ErrorMessage(r.get());
    }
    EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("acme")) << way.how;
    EXPECT_EQ(QueryValue(c.get(), "select current_database()"), "acme") << way.how;
  }
  RawClient raw;
  RawClient::Outcome login =
      RawLogin(&raw, {{"user", "app"}, {"database", "app"}, {"app.tenant_id", "acme"}});
  ASSERT_TRUE(login.ok) << login.sqlstate << " " << login.message;
  EXPECT_EQ(raw.Query(kObserve), Seen("acme"));
}

// A function that changes the variable without naming it never reaches another client: the
// next client to use that server connection still runs as its own tenant.
TEST_P(TenancyTest, HiddenVariableChangeNeverReachesAnotherClient) {
  START_PROXY({}, /*shared_size=*/1);
  PGconnPtr adversary = ConnectApp("options='-c app.tenant_id=t005'");
  PGconnPtr victim = ConnectApp("options='-c app.tenant_id=t001'");
  ASSERT_TRUE(adversary && victim);
  std::string pid = QueryValue(adversary.get(), "select pg_backend_pid()");
  EXPECT_EQ(QueryValue(adversary.get(), "select switch_tenant('t009')"), "t009");
  // Committed inside the adversary's own explicit transaction as well.
  EXPECT_EQ(QueryValue(adversary.get(), "BEGIN"), "");
  EXPECT_EQ(QueryValue(adversary.get(), "select switch_tenant('t008')"), "t008");
  EXPECT_EQ(QueryValue(adversary.get(), kObserve), Seen("t008"));  // what Postgres gives it
  EXPECT_EQ(QueryValue(adversary.get(), "COMMIT"), "");
  if (Session()) adversary.reset();  // frees the only server connection for the victim
  EXPECT_EQ(QueryValue(victim.get(), kObserve), Seen("t001"));
  EXPECT_EQ(QueryValue(victim.get(), "select pg_backend_pid()"), pid) << "not the same server";
}

// A client without a tenant gets the variable RESET (pgtenant_reset_tenant), not set: the hidden
// change of the client before it, and that client's own tenant, must be gone all the same, on
// the simple and the extended protocol, and again after the statement was dropped by DISCARD.
TEST_P(TenancyTest, HiddenVariableChangeNeverReachesAClientWithoutATenant) {
  START_PROXY({}, /*shared_size=*/1);
  PGconnPtr adversary = ConnectApp("options='-c app.tenant_id=t005'");
  PGconnPtr bare = ConnectApp();
  ASSERT_TRUE(adversary && bare);
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE(round);
    EXPECT_EQ(QueryValue(adversary.get(), "select switch_tenant('t009')"), "t009");
    if (Session()) adversary.reset();  // frees the only server connection
    EXPECT_EQ(QueryValue(bare.get(), kObserve), kNoTenant);
    const char* no_params[1] = {nullptr};
    PGresultPtr r(PQexecParams(bare.get(), kObserve, 0, nullptr, no_params, nullptr, nullptr, 0));
    ASSERT_EQ(PQresultStatus(r.get()), PGRES_TUPLES_OK) << ErrorMessage(r.get());
    EXPECT_EQ(PQgetvalue(r.get(), 0, 0), std::string(kNoTenant));
    if (Session()) return;
    // The client before it was the tenanted one, and its own tenant is gone too.
    EXPECT_EQ(QueryValue(adversary.get(), kObserve), Seen("t005"));
    EXPECT_EQ(QueryValue(bare.get(), kObserve), kNoTenant);
    if (round == 1) {
      EXPECT_EQ(QueryValue(bare.get(), "DISCARD ALL"), "");
    }
  }
}

// pgtenant puts the tenant in place in the same implicit transaction as the client's first
// statement. When that transaction is rolled back (its first statement fails, it is refused,
// cancelled, or an explicit block ends in ROLLBACK) the client's tenant must still be in place
// afterwards, not whatever the server had before (here: another client's tenant).
TEST_P(TenancyTest, TenantSurvivesRollbackOfClientsFirstTransaction) {
  START_PROXY({}, /*shared_size=*/1);
  auto cancel_sleep = [](PGconn* c) {
    Exec(c, "BEGIN");
    ASSERT_EQ(PQsendQuery(c, "select pg_sleep(5)"), 1);
    std::this_thread::sleep_for(milliseconds(300));
    PGcancel* cancel = PQgetCancel(c);
    char err[256];
    EXPECT_EQ(PQcancel(cancel, err, sizeof(err)), 1) << err;
    PQfreeCancel(cancel);
    PGresultPtr r = WaitForResult(c, milliseconds(4000));
    EXPECT_EQ(LastSqlState(r.get()), "57014");
    while (PGresultPtr more = WaitForResult(c, milliseconds(1000))) {
    }
  };
  const std::vector<std::pair<std::string, std::function<void(PGconn*)>>> firsts = {
      {"select 1/0", [](PGconn* c) { Exec(c, "select 1/0"); }},
      {"BEGIN, observe",
       [](PGconn* c) {
         Exec(c, "BEGIN");
         EXPECT_EQ(QueryValue(c, kObserve), Seen("t005")) << "inside the block";
       }},
      {"BEGIN, refused SET, COMMIT",
       [](PGconn* c) {
         Exec(c, "BEGIN");
         EXPECT_EQ(QueryValue(c, "select 1"), "1");
         EXPECT_EQ(QueryValue(c, "SET app.tenant_id = 't054'"), "ERROR:25001");
         PGresultPtr r = Exec(c, "COMMIT");  // of a failed block: rolls back
         EXPECT_STREQ(PQcmdStatus(r.get()), "ROLLBACK");
       }},
      {"BEGIN, refused SET, ROLLBACK",
       [](PGconn* c) {
         Exec(c, "BEGIN");
         EXPECT_EQ(QueryValue(c, "select 1"), "1");
         EXPECT_EQ(QueryValue(c, "SET app.tenant_id = 't054'"), "ERROR:25001");
       }},
      {"BEGIN, hidden change, 1/0",
       [](PGconn* c) {
         Exec(c, "BEGIN");
         EXPECT_EQ(QueryValue(c, "select switch_tenant('t067')"), "t067");
         EXPECT_EQ(QueryValue(c, "select 1/0"), "ERROR:22012");
       }},
      {"BEGIN, cancelled pg_sleep", cancel_sleep},
      {"BEGIN, cancelled pg_sleep, COMMIT",
       [&](PGconn* c) {
         cancel_sleep(c);
         EXPECT_EQ(QueryValue(c, "COMMIT"), "");
       }},
  };
  // With a startup setting besides the tenant (application_name, as psql and most drivers
  // send), the prelude has more than one statement.
  for (const std::string extra : {"", " application_name=tenancy_test"}) {
    for (const auto& [what, first] : firsts) {
      PGconnPtr before = ConnectApp("options='-c app.tenant_id=t007'");
      ASSERT_TRUE(before);
      std::string pid = QueryValue(before.get(), "select pg_backend_pid()");
      EXPECT_EQ(QueryValue(before.get(), kObserve), Seen("t007"));
      before.reset();
      PGconnPtr c = ConnectApp("options='-c app.tenant_id=t005'" + extra);
      ASSERT_TRUE(c);
      first(c.get());
      if (PQtransactionStatus(c.get()) != PQTRANS_IDLE) {
        EXPECT_EQ(QueryValue(c.get(), "ROLLBACK"), "");
      }
      EXPECT_EQ(QueryValue(c.get(), "select pg_backend_pid()"), pid) << "not the same server";
      EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t005"))
          << "after " << what << " rolled back" << extra;
    }
  }
}

// A client pinned by session state that moves to another pool's tenant leaves its server
// behind; the next client of that server must not see the state.
TEST_P(TenancyTest, PinnedStateDoesNotReachTheNextClientAfterAPoolChange) {
  START_PROXY({}, /*shared_size=*/5, /*acme_size=*/1);
  PGconnPtr first = ConnectApp("options='-c app.tenant_id=acme'");
  ASSERT_TRUE(first);
  std::string pid = QueryValue(first.get(), "select pg_backend_pid()");
  EXPECT_EQ(QueryValue(first.get(), "SET adv.marker = 'first'"), "");
  EXPECT_EQ(QueryValue(first.get(), "PREPARE adv_stmt AS select 1"), "");
  EXPECT_EQ(QueryValue(first.get(), "SET app.tenant_id = 't001'"), "");
  EXPECT_EQ(QueryValue(first.get(), kObserve), Seen("t001"));
  PGconnPtr next = ConnectApp("options='-c app.tenant_id=acme'");
  ASSERT_TRUE(next);
  EXPECT_EQ(QueryValue(next.get(), "select pg_backend_pid()"), pid) << "not the same server";
  EXPECT_EQ(QueryValue(next.get(), kObserve), Seen("acme"));
  EXPECT_EQ(QueryValue(next.get(), "select coalesce(current_setting('adv.marker', true), '')"), "");
  EXPECT_EQ(QueryValue(next.get(), kAdversaryStatements), "0");
}

// After a change the pooler cannot see, naming the tenant again takes effect as on Postgres,
// even when it is the tenant pgtenant believes the session already has.
TEST_P(TenancyTest, SetAfterHiddenChangeTakesEffect) {
  START_PROXY({}, /*shared_size=*/1);
  PGconnPtr c = ConnectApp("options='-c app.tenant_id=t001'");
  ASSERT_TRUE(c);
  EXPECT_EQ(QueryValue(c.get(), "select switch_tenant('t009')"), "t009");
  EXPECT_EQ(QueryValue(c.get(), "SET app.tenant_id = 't001'"), "");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t001"));
  EXPECT_EQ(QueryValue(c.get(), "select switch_tenant('t009')"), "t009");
  EXPECT_EQ(QueryValue(c.get(), "RESET app.tenant_id"), "");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t001"));
  EXPECT_EQ(QueryValue(c.get(), "select switch_tenant('t009')"), "t009");
  EXPECT_EQ(QueryValue(c.get(), "RESET ALL"), "");
  EXPECT_EQ(QueryValue(c.get(), kObserve), Seen("t001"));
}

// Session mode resets the server (DISCARD ALL) before another client gets it.
TEST_P(TenancyTest, SessionStateDoesNotReachTheNextClient) {
  START_PROXY({}, /*shared_size=*/1);
  PGconnPtr first = ConnectApp("options='-c app.tenant_id=t005'");
  ASSERT_TRUE(first);
  std::string pid = QueryValue(first.get(), "select pg_backend_pid()");
  EXPECT_EQ(QueryValue(first.get(), "SET adv.marker = 'first'"), "");
  EXPECT_EQ(QueryValue(first.get(), "PREPARE adv_stmt AS select 1"), "");
  EXPECT_EQ(QueryValue(first.get(), "CREATE TEMP TABLE adv_tmp (x int)"), "");
  EXPECT_EQ(QueryValue(first.get(), "select switch_tenant('t009')"), "t009");
  first.reset();
  PGconnPtr next = ConnectApp("options='-c app.tenant_id=t001'");
  ASSERT_TRUE(next);
  EXPECT_EQ(QueryValue(next.get(), "select pg_backend_pid()"), pid) << "not the same server";
  EXPECT_EQ(QueryValue(next.get(), kObserve), Seen("t001"));
  EXPECT_EQ(QueryValue(next.get(), "select coalesce(current_setting('adv.marker', true), '')"), "");
  EXPECT_EQ(QueryValue(next.get(), kAdversaryStatements), "0");
  EXPECT_EQ(QueryValue(next.get(), "select to_regclass('pg_temp.adv_tmp') is null"), "t");
}

INSTANTIATE_TEST_SUITE_P(Modes, TenancyTest, ::testing::Values("transaction", "session"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           return std::string(info.param);
                         });

}  // namespace
}  // namespace pgtenant::testing
