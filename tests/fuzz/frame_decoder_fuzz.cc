// Fuzzes the frame decoder and the message parsers over arbitrary client bytes, as the proxy
// meets them: one optional untyped startup packet, then typed frames.
//
// Input: byte 0 chooses the frame size limit (bits 0-1) and whether the stream starts with an
// untyped packet (bit 2); the rest is the byte stream.
//
// Besides "no crash, no UB", it checks the decoder's contract (a frame lies inside the input and
// its length adds up; kNeedMoreData is stable when bytes are appended) and that every message a
// parser accepts re-encodes, through the builders of protocol/messages.h, to the same bytes.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "protocol/frame_decoder.h"
#include "protocol/messages.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using pgtenant::protocol::DecodeStatus;
using pgtenant::protocol::Frame;
namespace protocol = pgtenant::protocol;

bool SameBytes(std::span<const uint8_t> a, std::string_view b) {
  return std::string_view(reinterpret_cast<const char*>(a.data()), a.size()) == b;
}

void CheckFrame(std::span<const uint8_t> in, const Frame& frame, size_t header) {
  FUZZ_CHECK(frame.total_size <= in.size());
  FUZZ_CHECK(frame.total_size == frame.payload.size() + header);
  FUZZ_CHECK(frame.payload.data() == in.data() + header);
}

void ParseStartup(std::span<const uint8_t> payload) {
  auto startup = protocol::ParseStartupPacket(payload);
  if (!startup.ok() || startup->code != protocol::kProtocolVersion3) return;
  // Accepted startup messages have exactly one encoding.
  std::string again;
  protocol::AppendStartupMessage(&again, startup->params);
  FUZZ_CHECK(SameBytes(payload, std::string_view(again).substr(4)));
}

void ParseTyped(const Frame& frame) {
  const std::span<const uint8_t> payload = frame.payload;
  switch (frame.type) {
    case 'P': {
      protocol::ParseMessage parse;
      if (!protocol::ParseParseMessage(payload, &parse)) return;
      std::string again;
      protocol::AppendParse(&again, parse.statement, parse.query, parse.param_types);
      FUZZ_CHECK(SameBytes(payload, std::string_view(again).substr(5)));
      return;
    }
    case 'B': {
      protocol::BindMessage bind;
      if (!protocol::ParseBindMessage(payload, &bind)) return;
      size_t bytes = bind.portal.size() + bind.statement.size() + 2 + 2 +
                     2 * bind.param_formats.size() + 2 + 2 + 2 * bind.result_formats.size();
      for (const auto& p : bind.params) bytes += 4 + (p ? p->size() : 0);
      FUZZ_CHECK(bytes == payload.size());
      return;
    }
    case 'D':
    case 'C': {
      protocol::TargetMessage target;
      if (!protocol::ParseTargetMessage(payload, &target)) return;
      FUZZ_CHECK(target.kind == 'S' || target.kind == 'P');
      FUZZ_CHECK(target.name.size() + 2 == payload.size());
      return;
    }
    case 'E': {
      std::string_view portal;
      int32_t max_rows = 0;
      if (protocol::ParseExecuteMessage(payload, &portal, &max_rows)) {
        FUZZ_CHECK(portal.size() + 5 == payload.size());
      }
      // The same bytes as a backend ErrorResponse.
      protocol::ErrorFields fields = protocol::ParseErrorFields(payload);
      FUZZ_CHECK(fields.severity.size() <= payload.size() &&
                 fields.message.size() <= payload.size());
      return;
    }
    default:
      protocol::ParseErrorFields(payload);
      return;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static constexpr uint32_t kLimits[] = {5, 64, protocol::kMaxStartupPacket, 64u << 20};
  const uint32_t max_size = kLimits[data[0] & 3];
  bool untyped = (data[0] & 4) != 0;
  std::span<const uint8_t> in(data + 1, size - 1);

  while (!in.empty()) {
    Frame frame;
    const DecodeStatus status = untyped ? protocol::DecodeUntyped(in, max_size, &frame)
                                        : protocol::DecodeTyped(in, max_size, &frame);
    if (status == DecodeStatus::kMalformed) break;
    if (status == DecodeStatus::kNeedMoreData) {
      // A prefix of a frame must not turn into a verdict on fewer bytes.
      Frame shorter;
      if (in.size() > 1) {
        auto prefix = in.first(in.size() - 1);
        FUZZ_CHECK((untyped ? protocol::DecodeUntyped(prefix, max_size, &shorter)
                            : protocol::DecodeTyped(prefix, max_size, &shorter)) ==
                   DecodeStatus::kNeedMoreData);
      }
      break;
    }
    CheckFrame(in, frame, untyped ? 4 : 5);
    FUZZ_CHECK(frame.total_size <= (untyped ? max_size : size_t{max_size} + 1));
    if (untyped) {
      FUZZ_CHECK(frame.type == 0);
      ParseStartup(frame.payload);
    } else {
      ParseTyped(frame);
    }
    in = in.subspan(frame.total_size);
    untyped = false;
  }
  return 0;
}
