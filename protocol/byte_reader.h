// Bounds-checked big-endian cursor over a byte span. Every getter returns false (and leaves
// the output untouched) instead of reading past the end, so parsers of untrusted bytes can
// simply chain calls and check once.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

namespace pgtenant::protocol {

class ByteReader {
 public:
  explicit ByteReader(std::span<const uint8_t> data) : data_(data) {}
  ByteReader(const void* p, size_t n) : data_(static_cast<const uint8_t*>(p), n) {}

  size_t remaining() const { return data_.size() - pos_; }
  size_t position() const { return pos_; }
  bool empty() const { return remaining() == 0; }

  bool GetByte(uint8_t* out) {
    if (remaining() < 1) return false;
    *out = data_[pos_++];
    return true;
  }
  bool GetInt16(int16_t* out) {
    if (remaining() < 2) return false;
    *out = static_cast<int16_t>((data_[pos_] << 8) | data_[pos_ + 1]);
    pos_ += 2;
    return true;
  }
  bool GetInt32(int32_t* out) {
    if (remaining() < 4) return false;
    uint32_t v = (uint32_t{data_[pos_]} << 24) | (uint32_t{data_[pos_ + 1]} << 16) |
                 (uint32_t{data_[pos_ + 2]} << 8) | uint32_t{data_[pos_ + 3]};
    *out = static_cast<int32_t>(v);
    pos_ += 4;
    return true;
  }
  // A NUL-terminated string; the view excludes the NUL and points into the span.
  bool GetCString(std::string_view* out) {
    const void* nul = std::memchr(data_.data() + pos_, 0, remaining());
    if (nul == nullptr) return false;
    size_t len = static_cast<const uint8_t*>(nul) - (data_.data() + pos_);
    *out = std::string_view(reinterpret_cast<const char*>(data_.data() + pos_), len);
    pos_ += len + 1;
    return true;
  }
  bool GetBytes(size_t n, std::span<const uint8_t>* out) {
    if (remaining() < n) return false;
    *out = data_.subspan(pos_, n);
    pos_ += n;
    return true;
  }
  std::span<const uint8_t> Rest() const { return data_.subspan(pos_); }

 private:
  std::span<const uint8_t> data_;
  size_t pos_ = 0;
};

}  // namespace pgtenant::protocol
