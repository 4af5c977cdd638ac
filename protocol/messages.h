// Typed views of the protocol messages pgtenant reads, and builders for the ones it writes.
// Parsers take a frame's payload (after the length word) and never read past it; builders
// append to a caller-owned buffer so that several messages go out in one write.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/status.h"

namespace pgtenant::protocol {

// Frontend message type bytes.
namespace fe {
inline constexpr char kQuery = 'Q', kParse = 'P', kBind = 'B', kExecute = 'E', kDescribe = 'D',
                      kClose = 'C', kSync = 'S', kFlush = 'H', kTerminate = 'X',
                      kFunctionCall = 'F', kCopyData = 'd', kCopyDone = 'c', kCopyFail = 'f',
                      kPassword = 'p';
}  // namespace fe
// Backend message type bytes.
namespace be {
inline constexpr char kAuthentication = 'R', kParameterStatus = 'S', kBackendKeyData = 'K',
                      kReadyForQuery = 'Z', kErrorResponse = 'E', kNoticeResponse = 'N',
                      kCommandComplete = 'C', kRowDescription = 'T', kDataRow = 'D',
                      kCopyInResponse = 'G', kCopyOutResponse = 'H', kCopyBothResponse = 'W',
                      kNotification = 'A', kParseComplete = '1', kBindComplete = '2',
                      kCloseComplete = '3', kNoData = 'n', kEmptyQuery = 'I',
                      kParameterDescription = 't', kPortalSuspended = 's', kCopyData = 'd',
                      kCopyDone = 'c', kNegotiateProtocolVersion = 'v';
}  // namespace be

// Authentication request codes (the int32 after 'R').
enum AuthCode : int32_t {
  kAuthOk = 0,
  kAuthCleartext = 3,
  kAuthMd5 = 5,
  kAuthSasl = 10,
  kAuthSaslContinue = 11,
  kAuthSaslFinal = 12,
};

// The untyped first packet of a connection.
struct StartupPacket {
  int32_t code = 0;  // protocol version, or kSslRequestCode / kGssEncRequestCode / kCancelRequestCode
  std::vector<std::pair<std::string, std::string>> params;  // for a StartupMessage
  int32_t cancel_pid = 0;                                   // for a CancelRequest
  int32_t cancel_key = 0;
};
Result<StartupPacket> ParseStartupPacket(std::span<const uint8_t> payload);
// The payload of an untyped packet is exactly an SSLRequest.
bool IsSslRequest(std::span<const uint8_t> payload);

struct ErrorFields {
  std::string severity;  // the non-localised 'V' field when present, else 'S'
  std::string sqlstate;  // 'C'
  std::string message;   // 'M'
};
ErrorFields ParseErrorFields(std::span<const uint8_t> payload);

// Extended-protocol frontend messages, as views into the frame payload.
struct ParseMessage {
  std::string_view statement;
  std::string_view query;
  std::vector<int32_t> param_types;
};
bool ParseParseMessage(std::span<const uint8_t> payload, ParseMessage* out);

struct BindMessage {
  std::string_view portal;
  std::string_view statement;
  std::vector<int16_t> param_formats;
  std::vector<std::optional<std::string_view>> params;  // nullopt = SQL NULL
  std::vector<int16_t> result_formats;
};
bool ParseBindMessage(std::span<const uint8_t> payload, BindMessage* out);
// The same Bind (portal, parameters, formats) for another prepared statement.
// REQUIRES: `bind` was parsed from `payload`.
void AppendBindForStatement(std::string* out, std::span<const uint8_t> payload, const BindMessage& bind,
                            std::string_view statement);

// Describe and Close: 'S' (statement) or 'P' (portal), and the name.
struct TargetMessage {
  char kind = 0;
  std::string_view name;
};
bool ParseTargetMessage(std::span<const uint8_t> payload, TargetMessage* out);
bool ParseExecuteMessage(std::span<const uint8_t> payload, std::string_view* portal, int32_t* max_rows);

// Builders. Each appends one complete message.
void AppendError(std::string* out, std::string_view severity, std::string_view sqlstate,
                 std::string_view message, std::string_view detail = {},
                 std::string_view hint = {});
void AppendNotice(std::string* out, std::string_view sqlstate, std::string_view message);
void AppendReadyForQuery(std::string* out, char status);
void AppendParameterStatus(std::string* out, std::string_view name, std::string_view value);
void AppendBackendKeyData(std::string* out, int32_t pid, int32_t key);
void AppendAuthRequest(std::string* out, int32_t code, std::string_view extra = {});
void AppendAuthSasl(std::string* out, std::string_view mechanism);  // AuthenticationSASL
void AppendCommandComplete(std::string* out, std::string_view tag);
void AppendParseComplete(std::string* out);
void AppendBindComplete(std::string* out);
void AppendCloseComplete(std::string* out);
void AppendNoData(std::string* out);
void AppendParameterDescription(std::string* out, const std::vector<int32_t>& types);
// A RowDescription of one text column, as Postgres describes `SELECT set_config(...)`.
void AppendTextRowDescription(std::string* out, std::string_view column);
// A DataRow of one text value.
void AppendTextDataRow(std::string* out, std::string_view value);
// A RowDescription of text columns (oid 25, text format, no table), as the admin console sends.
void AppendRowDescription(std::string* out, const std::vector<std::string>& columns);
// A DataRow of text values; nullopt is SQL NULL. REQUIRES: values.size() <= 32767.
void AppendDataRow(std::string* out, const std::vector<std::optional<std::string>>& values);
void AppendEmptyQueryResponse(std::string* out);
// Frontend messages pgtenant sends to servers.
// SSLRequest: asks the server to switch to TLS; it answers one byte, 'S' or 'N'.
void AppendSslRequest(std::string* out);
void AppendStartupMessage(std::string* out,
                          const std::vector<std::pair<std::string, std::string>>& params);
void AppendCancelRequest(std::string* out, int32_t pid, int32_t key);
void AppendQuery(std::string* out, std::string_view sql);
void AppendSync(std::string* out);
void AppendTerminate(std::string* out);
void AppendPasswordMessage(std::string* out, std::string_view password);
void AppendSaslInitialResponse(std::string* out, std::string_view mechanism, std::string_view data);
void AppendSaslResponse(std::string* out, std::string_view data);
// Extended-protocol messages for an unnamed statement and portal without parameters.
void AppendParse(std::string* out, std::string_view sql);
void AppendParse(std::string* out, std::string_view statement, std::string_view sql,
                 const std::vector<int32_t>& param_types);
void AppendBindUnnamed(std::string* out);
// Bind of the unnamed portal to a statement that takes no parameters.
void AppendBindNoParameters(std::string* out, std::string_view statement);
void AppendExecuteUnnamed(std::string* out);
// Close of a statement ('S') or portal ('P'); closing one that does not exist is no error.
void AppendClose(std::string* out, char kind, std::string_view name);
// Describe of a statement ('S') or portal ('P').
void AppendDescribe(std::string* out, char kind, std::string_view name);

}  // namespace pgtenant::protocol
