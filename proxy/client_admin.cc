// ClientSession on the admin console's virtual database (admin.database): a PgBouncer-style
// console that speaks the simple query protocol only.
#include "protocol/messages.h"
#include "proxy/client_session.h"
#include "proxy/log.h"
#include "proxy/pooler.h"

namespace pgtenant::proxy {

using protocol::DecodeStatus;
using protocol::Frame;
namespace fe = protocol::fe;

void ClientSession::FinishAdminLogin() {
  std::string out;
  protocol::AppendAuthRequest(&out, protocol::kAuthOk);
  // What psql needs to run: the console is not a Postgres, so it reports fixed values.
  protocol::AppendParameterStatus(&out, "server_version", "15.0 (pgtenant " PGTENANT_VERSION ")");
  protocol::AppendParameterStatus(&out, "server_encoding", "UTF8");
  protocol::AppendParameterStatus(&out, "client_encoding", "UTF8");
  protocol::AppendParameterStatus(&out, "DateStyle", "ISO, MDY");
  protocol::AppendParameterStatus(&out, "integer_datetimes", "on");
  protocol::AppendParameterStatus(&out, "standard_conforming_strings", "on");
  protocol::AppendParameterStatus(&out, "application_name", "");
  cancel_key_ = Pooler::NewCancelKey();
  protocol::AppendBackendKeyData(&out, slot_, cancel_key_);
  protocol::AppendReadyForQuery(&out, 'I');
  stream_.Write(out);
  state_ = State::kIdle;
  LOG_INFO("admin console: user %s connected from %s", user_.c_str(), peer().c_str());
}

size_t ClientSession::HandleAdmin(std::span<const uint8_t> data) {
  size_t pos = 0;
  while (state_ == State::kIdle) {
    Frame f;
    NextFrame next = DecodeNextFrame(data.subspan(pos), pooler_->config().max_message_size, &f);
    if (next == NextFrame::kIncomplete) break;
    if (next == NextFrame::kMalformed) return data.size();
    pos += f.total_size;
    std::string out;
    if (f.type == fe::kTerminate) {
      Close();
      return data.size();
    }
    if (skip_until_sync_) {
      if (f.type == fe::kSync) {
        skip_until_sync_ = false;
        protocol::AppendReadyForQuery(&out, 'I');
        stream_.Write(out);
      }
      continue;
    }
    if (f.type != fe::kQuery) {
      protocol::AppendError(&out, "ERROR", "0A000",
                            "the admin console speaks the simple query protocol only");
      skip_until_sync_ = f.type != fe::kSync;
      if (f.type == fe::kSync) protocol::AppendReadyForQuery(&out, 'I');
      stream_.Write(out);
      continue;
    }
    std::string_view sql(reinterpret_cast<const char*>(f.payload.data()), f.payload.size());
    if (!sql.empty() && sql.back() == '\0') sql.remove_suffix(1);
    bool keep_open = pooler_->AdminQuery(sql, &out);
    stream_.Write(out);
    if (!keep_open) {
      pooler_->BeginShutdown();
      return data.size();
    }
  }
  return pos;
}

}  // namespace pgtenant::proxy
