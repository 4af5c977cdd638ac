#include "proxy/prepared_statements.h"

#include "protocol/scram.h"

namespace pgtenant::proxy {

std::string ServerStatementName(uint64_t id) {
  static const std::string kPrefix = "pgt_" + protocol::RandomHex(4) + "_";
  return kPrefix + std::to_string(id);
}

PreparedStatementPtr StatementRegistry::Intern(std::string_view pool, std::string_view query,
                                               const std::vector<int32_t>& param_types) {
  std::string key(pool);
  key.push_back('\0');
  key.append(query);
  key.push_back('\0');
  for (int32_t t : param_types) key.append(reinterpret_cast<const char*>(&t), sizeof t);
  auto it = by_key_.find(key);
  if (it != by_key_.end()) return it->second;
  if (by_key_.size() >= kSoftLimit) Prune();
  auto stmt = std::make_shared<PreparedStatement>();
  stmt->id = next_id_++;
  stmt->server_name = ServerStatementName(stmt->id);
  stmt->query = std::string(query);
  stmt->param_types = param_types;
  by_key_.emplace(std::move(key), stmt);
  return stmt;
}

void StatementRegistry::Prune() {
  // Ids are never reused, so a forgotten statement that comes back simply gets a new id.
  for (auto it = by_key_.begin(); it != by_key_.end();) {
    if (it->second.use_count() == 1) {
      it = by_key_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace pgtenant::proxy
