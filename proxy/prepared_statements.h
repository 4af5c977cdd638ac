// Protocol-level named prepared statements in transaction mode (docs/reference.md section 4).
//
// A client's statement names are its own; on the server every distinct (query text, parameter
// types) becomes one statement "pgt_<tag>_<id>" shared by all clients. A client's Parse is answered
// by pgtenant when the server connection already has that statement, and sent (renamed)
// otherwise; a Bind or Describe of a statement the connection lacks is preceded by a Parse of
// pgtenant's own. Each server connection keeps at most pools.NAME.max_prepared_statements and
// closes the least recently used beyond that.
//
// Loop-affine.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace pgtenant::proxy {

struct PreparedStatement {
  uint64_t id = 0;
  std::string server_name;  // ServerStatementName(id)
  std::string query;
  std::vector<int32_t> param_types;
  // A server of the pool has parsed it without error: a client's Parse of it can be answered
  // without a server (pgbench, for one, prepares synchronously and would otherwise stall).
  mutable bool parsed_ok = false;
};
using PreparedStatementPtr = std::shared_ptr<const PreparedStatement>;

// Interns statements by text and parameter types, so clients share server statements.
class StatementRegistry {
 public:
  // Statements are per pool: the same text may mean different things in another database.
  PreparedStatementPtr Intern(std::string_view pool, std::string_view query,
                              const std::vector<int32_t>& param_types);
  size_t size() const { return by_key_.size(); }

 private:
  // Bounds the registry: statements no client holds any more are forgotten beyond this.
  static constexpr size_t kSoftLimit = 100000;
  void Prune();

  std::unordered_map<std::string, PreparedStatementPtr> by_key_;
  uint64_t next_id_ = 1;
};

// The server-side name of statement `id`: "pgt_<tag>_<id>", where the tag is drawn at random
// once per process, so that a client's own SQL PREPARE cannot take the name first.
std::string ServerStatementName(uint64_t id);

// A client's own statement names.
using ClientStatements = std::unordered_map<std::string, PreparedStatementPtr>;

}  // namespace pgtenant::proxy
