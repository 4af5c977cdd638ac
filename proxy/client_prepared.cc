// ClientSession's mapping of protocol-level named prepared statements onto the shared server
// statements of prepared_statements.h, in transaction mode.
#include <algorithm>

#include "protocol/message_writer.h"
#include "protocol/messages.h"
#include "proxy/client_session.h"
#include "proxy/pooler.h"
#include "proxy/server_session.h"

namespace pgtenant::proxy {

namespace fe = protocol::fe;

void ClientSession::OnStatementParsed(uint64_t id) {
  if (!statements_) return;
  for (auto& [name, stmt] : *statements_) {
    if (stmt->id == id) stmt->parsed_ok = true;
  }
}

uint64_t ClientSession::RememberName(const std::string& name) {
  // Records of answers lost with a server connection that went away are dropped on the way.
  if (name_undos_.size() > 1024) name_undos_.clear();
  PreparedStatementPtr previous;
  if (statements_) {
    auto it = statements_->find(name);
    if (it != statements_->end()) previous = it->second;
  }
  uint64_t tag = ++next_name_undo_;
  name_undos_[tag] = NameUndo{name, std::move(previous)};
  return tag;
}

void ClientSession::OnAnswerSkipped(uint64_t tag) {
  auto it = name_undos_.find(tag);
  if (it == name_undos_.end()) return;
  NameUndo undo = std::move(it->second);
  name_undos_.erase(it);
  if (!statements_) statements_ = std::make_unique<ClientStatements>();
  if (undo.previous) {
    (*statements_)[undo.name] = std::move(undo.previous);
  } else {
    statements_->erase(undo.name);
  }
}

void ClientSession::OnStatementFailed(uint64_t id) {
  // The server refused a Parse of this statement (e.g. 42883): as in PostgreSQL, the client's
  // name for it does not exist, so a later Bind gets 26000 from the server rather than a Parse
  // pgtenant would send again, fail again, and close the connection over. A statement some
  // server did parse keeps its names.
  if (!statements_) return;
  std::erase_if(*statements_, [id](const auto& entry) { return entry.second->id == id && !entry.second->parsed_ok; });
}

bool ClientSession::AnswerParseWhileIdle(const protocol::Frame& f) {
  // Outside a transaction a Parse of a statement some server of the pool has already parsed
  // needs no server: the statement is only named here and prepared where it is used.
  protocol::ParseMessage parse;
  if (!protocol::ParseParseMessage(f.payload, &parse) || parse.statement.empty()) return false;
  std::string sqlstate, message;
  Pool* pool = ResolvePool(&sqlstate, &message);
  if (pool == nullptr || pool->session_mode() || pool->config().max_prepared_statements == 0) return false;
  PreparedStatementPtr stmt = pooler_->statements().Intern(pool->name(), parse.query, parse.param_types);
  if (!stmt->parsed_ok) return false;
  if (!statements_) statements_ = std::make_unique<ClientStatements>();
  (*statements_)[std::string(parse.statement)] = stmt;
  std::string out;
  protocol::AppendParseComplete(&out);
  stream_.Write(out);
  return true;
}

bool ClientSession::MapsPreparedStatements() const {
  return server_ != nullptr && !server_->pool()->session_mode() &&
         server_->pool()->config().max_prepared_statements > 0;
}

void ClientSession::MakeRoomOnServer(std::string* own) {
  BackendState& backend = server_->backend();
  size_t limit = static_cast<size_t>(server_->pool()->config().max_prepared_statements);
  while (backend.statement_count() >= limit) {
    // Evict the least recently used statement not needed by this batch.
    std::optional<uint64_t> victim = backend.EvictLeastRecentlyUsed(server_->batch_tick());
    if (!victim) break;
    protocol::AppendClose(own, 'S', ServerStatementName(*victim));
    server_->NoteOwn('C');
  }
}

void ClientSession::CloseIfUnsure(const PreparedStatement& stmt, std::string* own) {
  // The server may still hold a statement pgtenant forgot (a client's DEALLOCATE of some name,
  // or Parses sent behind a DEALLOCATE ALL): a Close first makes the Parse succeed either way.
  if (!server_->backend().statements_unsure()) return;
  protocol::AppendClose(own, 'S', stmt.server_name);
  server_->NoteOwn('C');
}

void ClientSession::EnsureOnServer(const PreparedStatementPtr& stmt, std::string* own) {
  if (server_->backend().UseStatement(stmt->id, server_->batch_tick())) return;
  MakeRoomOnServer(own);
  CloseIfUnsure(*stmt, own);
  protocol::AppendParse(own, stmt->server_name, stmt->query, stmt->param_types);
  server_->NoteOwn('P', stmt->id);
  server_->backend().AddStatement(stmt->id, server_->batch_tick());
}

ClientSession::Verdict ClientSession::MapPreparedStatement(const protocol::Frame& f, std::string* own,
                                                           std::string* replacement) {
  switch (f.type) {
    case fe::kParse: {
      protocol::ParseMessage parse;
      if (!protocol::ParseParseMessage(f.payload, &parse) || parse.statement.empty()) return Verdict::kForward;
      PreparedStatementPtr stmt =
          pooler_->statements().Intern(server_->pool()->name(), parse.query, parse.param_types);
      if (!statements_) statements_ = std::make_unique<ClientStatements>();
      if (server_->backend().UseStatement(stmt->id, server_->batch_tick())) {
        // The connection has it already: answer ParseComplete in the server's stead. The name
        // is the client's from now on, unless the backend skips this Parse (OnAnswerSkipped).
        uint64_t undo = RememberName(std::string(parse.statement));
        (*statements_)[std::string(parse.statement)] = stmt;
        if (!server_->AnswerForServer('1', undo)) OnAnswerSkipped(undo);
        return Verdict::kAnswered;
      }
      (*statements_)[std::string(parse.statement)] = stmt;
      MakeRoomOnServer(own);
      CloseIfUnsure(*stmt, own);
      protocol::AppendParse(replacement, stmt->server_name, stmt->query, stmt->param_types);
      server_->backend().AddStatement(stmt->id, server_->batch_tick());
      replacement_tag_ = stmt->id;
      return Verdict::kReplaced;
    }
    case fe::kBind: {
      protocol::BindMessage bind;
      if (!statements_ || !protocol::ParseBindMessage(f.payload, &bind) || bind.statement.empty()) {
        return Verdict::kForward;
      }
      auto it = statements_->find(std::string(bind.statement));
      if (it == statements_->end()) return Verdict::kForward;  // the server reports 26000
      EnsureOnServer(it->second, own);
      protocol::AppendBindForStatement(replacement, f.payload, bind, it->second->server_name);
      return Verdict::kReplaced;
    }
    case fe::kDescribe:
    case fe::kClose: {
      protocol::TargetMessage target;
      if (!statements_ || !protocol::ParseTargetMessage(f.payload, &target) || target.kind != 'S' ||
          target.name.empty()) {
        return Verdict::kForward;
      }
      auto it = statements_->find(std::string(target.name));
      if (it == statements_->end()) {
        if (f.type == fe::kClose) {
          // Closing a statement that does not exist is not an error in Postgres.
          server_->AnswerForServer('3');
          return Verdict::kAnswered;
        }
        return Verdict::kForward;
      }
      if (f.type == fe::kClose) {
        // Only the client's name goes; the server statement stays for others to share. Unless
        // the backend skips this Close (OnAnswerSkipped): then the name stays too.
        uint64_t undo = RememberName(std::string(target.name));
        statements_->erase(it);
        if (!server_->AnswerForServer('3', undo)) OnAnswerSkipped(undo);
        return Verdict::kAnswered;
      }
      EnsureOnServer(it->second, own);
      protocol::MessageWriter(replacement).Begin('D').PutByte('S').PutCString(it->second->server_name).Finish();
      return Verdict::kReplaced;
    }
    default:
      return Verdict::kForward;
  }
}

}  // namespace pgtenant::proxy
