// FakePostgres: an in-process, scripted PostgreSQL 15 backend for the unit tests of the
// machines (ClientSession, ServerSession) and of BackendState through them. pgtenant's server
// connections connect to it on 127.0.0.1 like to a real server; it speaks protocol v3 (trust
// authentication), the simple and the extended query protocol, and interprets the small part of
// SQL pgtenant relies on, as PostgreSQL 15 does:
//
//   SET [SESSION | LOCAL] name {TO | =} value[, ...] | DEFAULT, RESET name | ALL, SHOW name,
//   SELECT of expressions (literals, $n, current_setting, set_config, coalesce, nullif,
//   pg_backend_pid, 1/0, casts), SELECT name | count(*) FROM pg_prepared_statements,
//   DISCARD ALL, DEALLOCATE [PREPARE] name | ALL, PREPARE name [(types)] AS ..., EXECUTE name
//   [(args)], BEGIN / START TRANSACTION / COMMIT / END / ROLLBACK / ABORT, VACUUM, LISTEN, DO
//   blocks that RAISE EXCEPTION USING ERRCODE (pgtenant's refusals).
//
// Faithful where pgtenant depends on it: transaction status (I/T/E) and the aborted state
// (25P02), implicit transactions of a multi-statement Query and of an extended-protocol
// pipeline (DISCARD ALL and VACUUM refuse both: 25001), transactional settings (a SET inside a
// rolled-back block is undone, SET LOCAL ends with its transaction), placeholders of custom
// variables (a variable once set reads '' after RESET), ParameterStatus of reported settings
// when they changed, just before ReadyForQuery (PostgreSQL 14+), named and unnamed prepared
// statements (42P05, 26000), portals (34000), CommandComplete tags, and output flushed only at
// ReadyForQuery and Flush.
//
// A test injects errors (on the Nth statement whose text contains a string), makes a
// connection drop, or refuses logins, and reads back every message each connection received.
// It runs on its own thread (poll(), bounded waits) and stops in its destructor.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace pgtenant::testing {

class FakePostgres {
 public:
  FakePostgres();
  ~FakePostgres();
  FakePostgres(const FakePostgres&) = delete;
  FakePostgres& operator=(const FakePostgres&) = delete;

  // The port it listens on (127.0.0.1), or 0 when it could not listen.
  int port() const { return port_; }
  void Stop();

  // ---- scripting
  struct Injection {
    std::string statement_contains;  // case-insensitive substring of one statement's text
    std::string sqlstate = "XX000";
    std::string message = "injected error";
    int skip = 0;    // matching statements that run normally first
    int times = 1;   // then this many fail (-1: all of them)
    // Instead of an error, the backend closes the connection (a crash, a terminated backend),
    // with a FATAL ErrorResponse first when `fatal` is set.
    bool close_connection = false;
    bool fatal = false;
    // Instead of an error, the statement runs until a CancelRequest for its backend arrives
    // (then 57014, as pg_sleep would end) or the connection closes; nothing else the
    // connection sent is read meanwhile.
    bool hang = false;
  };
  void Inject(const Injection& injection);
  void ClearInjections();
  // Every new login is refused with this FATAL error (empty sqlstate: logins succeed again).
  void FailLogins(const std::string& sqlstate, const std::string& message);
  // How new logins authenticate (trust by default): the password asked in clear, as md5 of
  // password and user, or by SCRAM-SHA-256 (protocol/scram.h's server side). A wrong password
  // is FATAL 28P01, as on PostgreSQL.
  enum class Auth { kTrust, kCleartext, kMd5, kScram };
  void RequirePassword(Auth method, const std::string& password);
  // Closes backend connection `conn` from the server side (as if the backend exited).
  void KillConnection(int conn);
  // Writes `bytes` to connection `conn` as they are (a malformed message, an unsolicited one).
  void SendRaw(int conn, const std::string& bytes);
  // Sends connection `conn` a FATAL ErrorResponse, then closes it (pg_terminate_backend).
  void TerminateConnection(int conn, const std::string& sqlstate = "57P01",
                           const std::string& message = "terminating connection due to administrator command");

  // ---- what happened
  // Connections accepted so far (logins refused included); numbered from 0 in that order.
  int connections() const;
  int open_connections() const;
  // Every message connection `conn` received, readable: "startup user=U database=D",
  // "Q:<sql>", "P:<name>:<sql>", "B:<portal>:<statement>:<p1>,<p2>" (NULL for null),
  // "D:S:<name>", "D:P:<name>", "E:<portal>", "C:S:<name>", "C:P:<name>", "S", "H", "X",
  // "cancel <pid>".
  std::vector<std::string> Received(int conn) const;
  // The messages from index `from` on.
  std::vector<std::string> ReceivedSince(int conn, size_t from) const;
  size_t ReceivedCount(int conn) const;
  // Every statement that ran to completion on connection `conn` (its CommandComplete tag sent),
  // with that tag: "<tag>|<statement text>".
  std::vector<std::string> Completed(int conn) const;
  // The backend session's state right now (as its last message left it).
  std::optional<std::string> Setting(int conn, const std::string& name) const;
  std::vector<std::string> PreparedStatements(int conn) const;
  char TransactionStatus(int conn) const;
  int32_t BackendPid(int conn) const;
  // Cancel requests received, as "pid key".
  std::vector<std::string> Cancels() const;
  // A statement of connection `conn` hangs (Injection::hang) right now.
  bool Hanging(int conn) const;

  // Waits (bounded) until `done` holds; checks it under the fake's lock every few ms.
  bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds timeout = std::chrono::seconds(5)) const;

  class Session;  // one backend connection (fake_postgres.cc)

 private:
  struct Conn;
  void Run();
  void Accept();
  void Serve(Conn& c);
  std::optional<Injection> TakeInjection(const std::string& statement);

  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Conn>> conns_;  // by connection number
  struct InjectionState {
    Injection rule;
    int seen = 0;
    int fired = 0;
  };
  std::vector<InjectionState> injections_;
  std::string fail_login_sqlstate_, fail_login_message_;
  Auth auth_ = Auth::kTrust;
  std::string password_;
  // One step of a login's authentication (Serve); false when the connection was closed.
  bool Authenticate(Conn& c, char type, std::span<const uint8_t> payload);
  std::vector<std::string> cancels_;
  int32_t next_pid_ = 4000;
};

}  // namespace pgtenant::testing
