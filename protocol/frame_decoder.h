// Splits a byte stream into protocol frames. Stateless: call it on the front of whatever has
// been received; it never reads past the span and never allocates. Incomplete input and bad
// input are distinct outcomes: the first means "read more", the second closes that client
// with 08P01.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace pgtenant::protocol {

enum class DecodeStatus { kNeedMoreData, kFrame, kMalformed };

// Codes carried in the untyped packets a client may send before the startup message.
inline constexpr int32_t kProtocolVersion3 = 196608;  // 3.0
inline constexpr int32_t kSslRequestCode = 80877103;
inline constexpr int32_t kGssEncRequestCode = 80877104;
inline constexpr int32_t kCancelRequestCode = 80877102;

// Smallest frame limits Postgres itself enforces for the startup packet.
inline constexpr uint32_t kMaxStartupPacket = 10000;

struct Frame {
  char type = 0;                      // 0 for untyped (startup-phase) packets
  std::span<const uint8_t> payload;   // bytes after the length word
  size_t total_size = 0;              // bytes the frame occupies in the stream
};

// A typed message: 1 type byte, int32 length (counting itself), payload.
// REQUIRES: max_size >= 5.
DecodeStatus DecodeTyped(std::span<const uint8_t> in, uint32_t max_size, Frame* out);

// An untyped packet of the startup phase: int32 length (counting itself), payload.
DecodeStatus DecodeUntyped(std::span<const uint8_t> in, uint32_t max_size, Frame* out);

}  // namespace pgtenant::protocol
