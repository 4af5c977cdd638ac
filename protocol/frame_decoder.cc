#include "protocol/frame_decoder.h"

namespace pgtenant::protocol {
namespace {

uint32_t ReadLength(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

}  // namespace

DecodeStatus DecodeTyped(std::span<const uint8_t> in, uint32_t max_size, Frame* out) {
  if (in.size() < 5) return DecodeStatus::kNeedMoreData;
  uint32_t len = ReadLength(in.data() + 1);
  // The length counts itself; anything below 4 cannot be produced by a real peer, and a
  // length with the top bit set would wrap the signed int32 Postgres uses.
  if (len < 4 || len > max_size) return DecodeStatus::kMalformed;
  size_t total = size_t{len} + 1;
  if (in.size() < total) return DecodeStatus::kNeedMoreData;
  out->type = static_cast<char>(in[0]);
  out->payload = in.subspan(5, len - 4);
  out->total_size = total;
  return DecodeStatus::kFrame;
}

DecodeStatus DecodeUntyped(std::span<const uint8_t> in, uint32_t max_size, Frame* out) {
  if (in.size() < 4) return DecodeStatus::kNeedMoreData;
  uint32_t len = ReadLength(in.data());
  if (len < 8 || len > max_size) return DecodeStatus::kMalformed;  // at least the code word
  if (in.size() < len) return DecodeStatus::kNeedMoreData;
  out->type = 0;
  out->payload = in.subspan(4, len - 4);
  out->total_size = len;
  return DecodeStatus::kFrame;
}

}  // namespace pgtenant::protocol
