// Helpers of the operations tests (operations_test.cc, reload_test.cc): the Prometheus endpoint
// read over a raw socket, the admin console's result sets, and a login that keeps the SQLSTATE.
//
// Header-only so the integration binary's *.cc glob needs nothing new. Each function is safe
// from any thread; a PGconn stays with one thread at a time (harness.h).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "integration/harness.h"

namespace pgtenant::testing::ops {

// GET http://127.0.0.1:port/path as HTTP/1.0 (so the answer is never chunked). True and the body
// when the status is 200; false and *error otherwise.
inline bool HttpGet(int port, const std::string& path, std::string* body, std::string* error) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    *error = "socket failed";
    return false;
  }
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    *error = "cannot connect to 127.0.0.1:" + std::to_string(port);
    return false;
  }
  std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  bool sent = send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
              static_cast<ssize_t>(request.size());
  std::string response;
  char buf[16384];
  ssize_t n = 0;
  while (sent && (n = recv(fd, buf, sizeof(buf), 0)) > 0) response.append(buf, n);
  close(fd);
  size_t head_end = response.find("\r\n\r\n");
  if (!sent || n < 0 || head_end == std::string::npos) {
    *error = "no complete HTTP response: " + response.substr(0, 200);
    return false;
  }
  std::string status_line = response.substr(0, response.find("\r\n"));
  if (status_line.find(" 200") == std::string::npos) {
    *error = "HTTP status: " + status_line;
    return false;
  }
  *body = response.substr(head_end + 4);
  return true;
}

// One line of the text exposition format: name{labels} value.
struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;

  std::string Label(const std::string& key) const {
    auto it = labels.find(key);
    return it == labels.end() ? "" : it->second;
  }
};

// Parses the sample lines (comments and blank lines skipped). A line it cannot read is returned
// with an empty name, so a test can tell "malformed" from "absent".
inline std::vector<Sample> ParseMetrics(const std::string& text) {
  std::vector<Sample> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.empty() || line[0] == '#') continue;
    Sample s;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    std::string name = line.substr(0, i);
    bool ok = true;
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (ok && i < line.size() && line[i] != '}') {
        size_t eq = line.find('=', i);
        if (eq == std::string::npos || eq + 1 >= line.size() || line[eq + 1] != '"') {
          ok = false;
          break;
        }
        std::string key = line.substr(i, eq - i);
        std::string value;
        size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\' && j + 1 < line.size()) ++j;
          value += line[j];
        }
        if (j >= line.size()) ok = false;
        s.labels[key] = value;
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (i >= line.size()) ok = false;
      ++i;  // '}'
    }
    while (i < line.size() && line[i] == ' ') ++i;
    char* end = nullptr;
    std::string number = line.substr(i);
    s.value = strtod(number.c_str(), &end);
    if (!ok || number.empty() || end == number.c_str()) name.clear();
    s.name = name;
    out.push_back(std::move(s));
  }
  return out;
}

// The value of the series with exactly these labels; nullopt when it is not in the scrape.
inline std::optional<double> FindSample(const std::vector<Sample>& samples,
                                        const std::string& name,
                                        const std::map<std::string, std::string>& labels) {
  for (const Sample& s : samples) {
    if (s.name == name && s.labels == labels) return s.value;
  }
  return std::nullopt;
}

// Scrapes and returns one series' value; nullopt (and *error) when the scrape fails or the series
// is absent.
inline std::optional<double> ScrapeValue(int metrics_port, const std::string& name,
                                         const std::map<std::string, std::string>& labels,
                                         std::string* error) {
  std::string body;
  if (!HttpGet(metrics_port, "/metrics", &body, error)) return std::nullopt;
  std::optional<double> v = FindSample(ParseMetrics(body), name, labels);
  if (!v) *error = name + " with those labels is not in the scrape";
  return v;
}

// ---- the admin console ----

inline std::string AdminConnInfo(int port, const std::string& user = "admin",
                                 const std::string& password = "admin_pw") {
  return "host=127.0.0.1 port=" + std::to_string(port) + " dbname=pgtenant user=" + user +
         " password=" + password + " sslmode=disable connect_timeout=10";
}

// A result set of the admin console; NULL cells read as "" and are listed in nulls.
struct Table {
  ExecStatusType status = PGRES_FATAL_ERROR;
  std::string sqlstate;
  std::string error;
  std::string tag;  // CommandComplete
  std::vector<std::string> columns;
  std::vector<std::map<std::string, std::string>> rows;

  bool ok() const { return status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK; }
  bool HasColumn(const std::string& c) const {
    for (const auto& name : columns) {
      if (name == c) return true;
    }
    return false;
  }
  // Rows whose column `key` equals `value`.
  std::vector<std::map<std::string, std::string>> Where(const std::string& key,
                                                         const std::string& value) const {
    std::vector<std::map<std::string, std::string>> out;
    for (const auto& r : rows) {
      auto it = r.find(key);
      if (it != r.end() && it->second == value) out.push_back(r);
    }
    return out;
  }
};

inline Table RunAdmin(PGconn* admin, const std::string& sql) {
  Table t;
  PGresultPtr res = Exec(admin, sql.c_str());
  t.status = PQresultStatus(res.get());
  if (!t.ok()) {
    t.sqlstate = LastSqlState(res.get());
    t.error = ErrorMessage(res.get());
    return t;
  }
  t.tag = PQcmdStatus(res.get());
  for (int c = 0; c < PQnfields(res.get()); ++c) t.columns.push_back(PQfname(res.get(), c));
  for (int r = 0; r < PQntuples(res.get()); ++r) {
    std::map<std::string, std::string> row;
    for (int c = 0; c < PQnfields(res.get()); ++c) row[t.columns[c]] = PQgetvalue(res.get(), r, c);
    t.rows.push_back(std::move(row));
  }
  return t;
}

inline long long AsInt(const std::map<std::string, std::string>& row, const std::string& column) {
  auto it = row.find(column);
  return it == row.end() ? -1 : atoll(it->second.c_str());
}

// ---- logins that keep the SQLSTATE ----

struct Login {
  PGconnPtr conn;         // set when the login succeeded
  std::string sqlstate;   // of a refused login, from libpq's verbose message
  std::string message;
};

// Like Connect(), but with libpq's verbose error format set before the first byte is read, so a
// refused login's message carries its SQLSTATE ("FATAL:  42501: ...").
inline Login LoginVerbose(const std::string& conninfo,
                          std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) {
  Login out;
  PGconnPtr conn(PQconnectStart(conninfo.c_str()));
  if (!conn || PQstatus(conn.get()) == CONNECTION_BAD) {
    out.message = conn ? PQerrorMessage(conn.get()) : "out of memory";
    return out;
  }
  PQsetErrorVerbosity(conn.get(), PQERRORS_VERBOSE);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  PostgresPollingStatusType st = PGRES_POLLING_WRITING;
  while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      out.message = "login timed out";
      return out;
    }
    pollfd pfd{PQsocket(conn.get()),
               static_cast<short>(st == PGRES_POLLING_READING ? POLLIN : POLLOUT), 0};
    poll(&pfd, 1, static_cast<int>(left.count()));
    st = PQconnectPoll(conn.get());
  }
  if (st == PGRES_POLLING_OK) {
    out.conn = std::move(conn);
    return out;
  }
  out.message = PQerrorMessage(conn.get());
  for (const char* severity : {"FATAL:  ", "ERROR:  "}) {
    size_t at = out.message.find(severity);
    if (at != std::string::npos && out.message.size() >= at + 14 && out.message[at + 13] == ':') {
      out.sqlstate = out.message.substr(at + 8, 5);
      break;
    }
  }
  return out;
}

}  // namespace pgtenant::testing::ops
