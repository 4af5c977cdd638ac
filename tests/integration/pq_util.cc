// libpq helpers of the integration tests (harness.h).
#include <poll.h>

#include <cerrno>
#include <chrono>

#include "integration/harness.h"

namespace pgtenant::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

thread_local std::string last_connect_error;

}  // namespace

PGconnPtr Connect(const std::string& conninfo, std::string* error) {
  PGconnPtr conn(PQconnectdb(conninfo.c_str()));
  if (conn && PQstatus(conn.get()) == CONNECTION_OK) return conn;
  last_connect_error = conn ? PQerrorMessage(conn.get()) : "out of memory";
  if (error != nullptr) *error = last_connect_error;
  return nullptr;
}

std::string LastConnectError() { return last_connect_error; }

PGresultPtr Exec(PGconn* conn, const char* sql) { return PGresultPtr(PQexec(conn, sql)); }

std::string QueryValue(PGconn* conn, const char* sql) {
  if (conn == nullptr) return "ERROR:no-connection";
  PGresultPtr res = Exec(conn, sql);
  switch (PQresultStatus(res.get())) {
    case PGRES_TUPLES_OK:
      if (PQntuples(res.get()) > 0 && PQnfields(res.get()) > 0) {
        return PQgetvalue(res.get(), 0, 0);
      }
      return "";
    case PGRES_COMMAND_OK:
      return "";
    default:
      return "ERROR:" + LastSqlState(res.get());
  }
}

std::string LastSqlState(const PGresult* res) {
  if (res == nullptr) return "";
  const char* s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  return s ? s : "";
}

std::string ErrorMessage(const PGresult* res) {
  if (res == nullptr) return "(no result)";
  const char* s = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
  return s ? s : PQresultErrorMessage(res);
}

PGresultPtr WaitForResult(PGconn* conn, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (PQisBusy(conn)) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return nullptr;
    pollfd pfd{PQsocket(conn), POLLIN, 0};
    if (poll(&pfd, 1, static_cast<int>(left.count())) < 0 && errno != EINTR) return nullptr;
    if (!PQconsumeInput(conn)) break;  // connection lost: PQgetResult reports it
  }
  return PGresultPtr(PQgetResult(conn));
}

}  // namespace pgtenant::testing
