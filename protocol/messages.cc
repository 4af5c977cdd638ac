#include "protocol/messages.h"

#include "protocol/byte_reader.h"
#include "protocol/frame_decoder.h"
#include "protocol/message_writer.h"

namespace pgtenant::protocol {

Result<StartupPacket> ParseStartupPacket(std::span<const uint8_t> payload) {
  ByteReader r(payload);
  StartupPacket p;
  if (!r.GetInt32(&p.code)) return Status::ProtocolViolation("startup packet too short");
  if (p.code == kCancelRequestCode) {
    if (!r.GetInt32(&p.cancel_pid) || !r.GetInt32(&p.cancel_key) || !r.empty()) {
      return Status::ProtocolViolation("malformed cancel request");
    }
    return p;
  }
  if (p.code == kSslRequestCode || p.code == kGssEncRequestCode) {
    if (!r.empty()) return Status::ProtocolViolation("malformed SSL/GSS request");
    return p;
  }
  if ((p.code >> 16) != 3) {
    return Status::Error("0A000", "unsupported frontend protocol " + std::to_string(p.code >> 16) +
                                      "." + std::to_string(p.code & 0xffff) +
                                      ": server supports 3.0");
  }
  // name\0value\0 ... \0
  while (true) {
    std::string_view name;
    if (!r.GetCString(&name)) return Status::ProtocolViolation("startup packet is not terminated");
    if (name.empty()) break;
    std::string_view value;
    if (!r.GetCString(&value)) return Status::ProtocolViolation("startup parameter without value");
    p.params.emplace_back(std::string(name), std::string(value));
  }
  if (!r.empty()) return Status::ProtocolViolation("trailing bytes after startup parameters");
  return p;
}

ErrorFields ParseErrorFields(std::span<const uint8_t> payload) {
  ErrorFields f;
  ByteReader r(payload);
  std::string localized_severity;
  while (true) {
    uint8_t code;
    if (!r.GetByte(&code) || code == 0) break;
    std::string_view value;
    if (!r.GetCString(&value)) break;
    switch (code) {
      case 'S': localized_severity = value; break;
      case 'V': f.severity = value; break;
      case 'C': f.sqlstate = value; break;
      case 'M': f.message = value; break;
      default: break;
    }
  }
  if (f.severity.empty()) f.severity = localized_severity;
  return f;
}

void AppendError(std::string* out, std::string_view severity, std::string_view sqlstate,
                 std::string_view message, std::string_view detail, std::string_view hint) {
  MessageWriter w(out);
  w.Begin('E');
  w.PutByte('S').PutCString(severity);
  w.PutByte('V').PutCString(severity);
  w.PutByte('C').PutCString(sqlstate);
  w.PutByte('M').PutCString(message);
  if (!detail.empty()) w.PutByte('D').PutCString(detail);
  if (!hint.empty()) w.PutByte('H').PutCString(hint);
  w.PutByte(0);
  w.Finish();
}

void AppendNotice(std::string* out, std::string_view sqlstate, std::string_view message) {
  MessageWriter w(out);
  w.Begin('N');
  w.PutByte('S').PutCString("NOTICE");
  w.PutByte('V').PutCString("NOTICE");
  w.PutByte('C').PutCString(sqlstate);
  w.PutByte('M').PutCString(message);
  w.PutByte(0);
  w.Finish();
}

void AppendReadyForQuery(std::string* out, char status) {
  MessageWriter w(out);
  w.Begin('Z').PutByte(static_cast<uint8_t>(status)).Finish();
}

void AppendParameterStatus(std::string* out, std::string_view name, std::string_view value) {
  MessageWriter w(out);
  w.Begin('S').PutCString(name).PutCString(value).Finish();
}

void AppendBackendKeyData(std::string* out, int32_t pid, int32_t key) {
  MessageWriter w(out);
  w.Begin('K').PutInt32(pid).PutInt32(key).Finish();
}

void AppendAuthRequest(std::string* out, int32_t code, std::string_view extra) {
  MessageWriter w(out);
  w.Begin('R').PutInt32(code).PutBytes(extra).Finish();
}

void AppendAuthSasl(std::string* out, std::string_view mechanism) {
  MessageWriter w(out);
  w.Begin('R').PutInt32(kAuthSasl).PutCString(mechanism).PutByte(0).Finish();
}

void AppendCommandComplete(std::string* out, std::string_view tag) {
  MessageWriter w(out);
  w.Begin('C').PutCString(tag).Finish();
}

bool ParseParseMessage(std::span<const uint8_t> payload, ParseMessage* out) {
  ByteReader r(payload);
  int16_t n;
  if (!r.GetCString(&out->statement) || !r.GetCString(&out->query) || !r.GetInt16(&n) || n < 0) return false;
  out->param_types.resize(n);
  for (int i = 0; i < n; ++i) {
    if (!r.GetInt32(&out->param_types[i])) return false;
  }
  return r.empty();
}

bool ParseBindMessage(std::span<const uint8_t> payload, BindMessage* out) {
  ByteReader r(payload);
  int16_t n;
  if (!r.GetCString(&out->portal) || !r.GetCString(&out->statement) || !r.GetInt16(&n) || n < 0) return false;
  out->param_formats.resize(n);
  for (int i = 0; i < n; ++i) {
    if (!r.GetInt16(&out->param_formats[i])) return false;
  }
  if (!r.GetInt16(&n) || n < 0) return false;
  out->params.resize(n);
  for (int i = 0; i < n; ++i) {
    int32_t len;
    if (!r.GetInt32(&len)) return false;
    if (len == -1) {
      out->params[i] = std::nullopt;
      continue;
    }
    std::span<const uint8_t> bytes;
    if (len < 0 || !r.GetBytes(static_cast<size_t>(len), &bytes)) return false;
    out->params[i] = std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
  if (!r.GetInt16(&n) || n < 0) return false;
  out->result_formats.resize(n);
  for (int i = 0; i < n; ++i) {
    if (!r.GetInt16(&out->result_formats[i])) return false;
  }
  return r.empty();
}

bool ParseTargetMessage(std::span<const uint8_t> payload, TargetMessage* out) {
  ByteReader r(payload);
  uint8_t kind;
  if (!r.GetByte(&kind) || (kind != 'S' && kind != 'P') || !r.GetCString(&out->name)) return false;
  out->kind = static_cast<char>(kind);
  return r.empty();
}

bool ParseExecuteMessage(std::span<const uint8_t> payload, std::string_view* portal, int32_t* max_rows) {
  ByteReader r(payload);
  return r.GetCString(portal) && r.GetInt32(max_rows) && r.empty();
}

void AppendParseComplete(std::string* out) { MessageWriter(out).Begin('1').Finish(); }
void AppendBindComplete(std::string* out) { MessageWriter(out).Begin('2').Finish(); }
void AppendCloseComplete(std::string* out) { MessageWriter(out).Begin('3').Finish(); }
void AppendNoData(std::string* out) { MessageWriter(out).Begin('n').Finish(); }

void AppendParameterDescription(std::string* out, const std::vector<int32_t>& types) {
  MessageWriter w(out);
  w.Begin('t').PutInt16(static_cast<int16_t>(types.size()));
  for (int32_t t : types) w.PutInt32(t);
  w.Finish();
}

void AppendTextRowDescription(std::string* out, std::string_view column) {
  constexpr int32_t kTextOid = 25;
  MessageWriter w(out);
  w.Begin('T').PutInt16(1).PutCString(column).PutInt32(0).PutInt16(0).PutInt32(kTextOid).PutInt16(-1)
      .PutInt32(-1).PutInt16(0).Finish();
}

void AppendTextDataRow(std::string* out, std::string_view value) {
  MessageWriter w(out);
  w.Begin('D').PutInt16(1).PutInt32(static_cast<int32_t>(value.size())).PutBytes(value).Finish();
}

void AppendRowDescription(std::string* out, const std::vector<std::string>& columns) {
  constexpr int32_t kTextOid = 25;
  MessageWriter w(out);
  w.Begin('T').PutInt16(static_cast<int16_t>(columns.size()));
  for (const std::string& column : columns) {
    w.PutCString(column).PutInt32(0).PutInt16(0).PutInt32(kTextOid).PutInt16(-1).PutInt32(-1).PutInt16(0);
  }
  w.Finish();
}

void AppendDataRow(std::string* out, const std::vector<std::optional<std::string>>& values) {
  MessageWriter w(out);
  w.Begin('D').PutInt16(static_cast<int16_t>(values.size()));
  for (const std::optional<std::string>& value : values) {
    if (!value) {
      w.PutInt32(-1);
      continue;
    }
    w.PutInt32(static_cast<int32_t>(value->size())).PutBytes(*value);
  }
  w.Finish();
}

void AppendEmptyQueryResponse(std::string* out) {
  MessageWriter w(out);
  w.Begin('I').Finish();
}

void AppendStartupMessage(std::string* out,
                          const std::vector<std::pair<std::string, std::string>>& params) {
  MessageWriter w(out);
  w.Begin(0).PutInt32(kProtocolVersion3);
  for (const auto& [name, value] : params) w.PutCString(name).PutCString(value);
  w.PutByte(0);
  w.Finish();
}

void AppendSslRequest(std::string* out) {
  MessageWriter w(out);
  w.Begin(0).PutInt32(kSslRequestCode).Finish();
}

bool IsSslRequest(std::span<const uint8_t> payload) {
  ByteReader r(payload);
  int32_t code = 0;
  return r.GetInt32(&code) && code == kSslRequestCode && r.empty();
}

void AppendCancelRequest(std::string* out, int32_t pid, int32_t key) {
  MessageWriter w(out);
  w.Begin(0).PutInt32(kCancelRequestCode).PutInt32(pid).PutInt32(key).Finish();
}

void AppendQuery(std::string* out, std::string_view sql) {
  MessageWriter w(out);
  w.Begin('Q').PutCString(sql).Finish();
}

void AppendSync(std::string* out) {
  MessageWriter w(out);
  w.Begin('S').Finish();
}

void AppendTerminate(std::string* out) {
  MessageWriter w(out);
  w.Begin('X').Finish();
}

void AppendPasswordMessage(std::string* out, std::string_view password) {
  MessageWriter w(out);
  w.Begin('p').PutCString(password).Finish();
}

void AppendSaslInitialResponse(std::string* out, std::string_view mechanism, std::string_view data) {
  MessageWriter w(out);
  w.Begin('p').PutCString(mechanism).PutInt32(static_cast<int32_t>(data.size())).PutBytes(data).Finish();
}

void AppendSaslResponse(std::string* out, std::string_view data) {
  MessageWriter w(out);
  w.Begin('p').PutBytes(data).Finish();
}

void AppendParse(std::string* out, std::string_view sql) {
  MessageWriter w(out);
  w.Begin('P').PutCString("").PutCString(sql).PutInt16(0).Finish();
}

void AppendParse(std::string* out, std::string_view statement, std::string_view sql,
                 const std::vector<int32_t>& param_types) {
  MessageWriter w(out);
  w.Begin('P').PutCString(statement).PutCString(sql).PutInt16(static_cast<int16_t>(param_types.size()));
  for (int32_t t : param_types) w.PutInt32(t);
  w.Finish();
}

void AppendBindForStatement(std::string* out, std::span<const uint8_t> payload, const BindMessage& bind,
                            std::string_view statement) {
  // The parameters and formats follow the two names unchanged: copy them as they are.
  const size_t rest = bind.portal.size() + 1 + bind.statement.size() + 1;
  std::string_view tail(reinterpret_cast<const char*>(payload.data()) + rest, payload.size() - rest);
  MessageWriter w(out);
  w.Begin('B').PutCString(bind.portal).PutCString(statement).PutBytes(tail).Finish();
}

void AppendClose(std::string* out, char kind, std::string_view name) {
  MessageWriter w(out);
  w.Begin('C').PutByte(static_cast<uint8_t>(kind)).PutCString(name).Finish();
}

void AppendDescribe(std::string* out, char kind, std::string_view name) {
  MessageWriter w(out);
  w.Begin('D').PutByte(static_cast<uint8_t>(kind)).PutCString(name).Finish();
}

void AppendBindUnnamed(std::string* out) { AppendBindNoParameters(out, ""); }

void AppendBindNoParameters(std::string* out, std::string_view statement) {
  MessageWriter w(out);
  // portal "", no parameter formats, no parameters, no result formats
  w.Begin('B').PutCString("").PutCString(statement).PutInt16(0).PutInt16(0).PutInt16(0).Finish();
}

void AppendExecuteUnnamed(std::string* out) {
  MessageWriter w(out);
  w.Begin('E').PutCString("").PutInt32(0).Finish();
}

}  // namespace pgtenant::protocol
