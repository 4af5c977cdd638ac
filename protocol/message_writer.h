// Builds protocol messages into a caller-owned std::string: Begin(type), Put*, Finish() patches
// the length. Several messages may be written back to back into one buffer so that they go
// out in a single write.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace pgtenant::protocol {

class MessageWriter {
 public:
  explicit MessageWriter(std::string* out) : out_(out) {}

  // Starts a typed message. type == 0 starts an untyped one (startup, cancel, SSLRequest).
  MessageWriter& Begin(char type) {
    if (type != 0) out_->push_back(type);
    start_ = out_->size();
    out_->append(4, '\0');
    return *this;
  }
  MessageWriter& PutByte(uint8_t v) {
    out_->push_back(static_cast<char>(v));
    return *this;
  }
  MessageWriter& PutInt16(int16_t v) {
    out_->push_back(static_cast<char>((v >> 8) & 0xff));
    out_->push_back(static_cast<char>(v & 0xff));
    return *this;
  }
  MessageWriter& PutInt32(int32_t v) {
    uint32_t u = static_cast<uint32_t>(v);
    char b[4] = {static_cast<char>(u >> 24), static_cast<char>(u >> 16), static_cast<char>(u >> 8),
                 static_cast<char>(u)};
    out_->append(b, 4);
    return *this;
  }
  MessageWriter& PutCString(std::string_view s) {
    out_->append(s);
    out_->push_back('\0');
    return *this;
  }
  MessageWriter& PutBytes(std::string_view s) {
    out_->append(s);
    return *this;
  }
  // Patches the length of the message started by Begin().
  void Finish() {
    uint32_t len = static_cast<uint32_t>(out_->size() - start_);
    (*out_)[start_] = static_cast<char>(len >> 24);
    (*out_)[start_ + 1] = static_cast<char>(len >> 16);
    (*out_)[start_ + 2] = static_cast<char>(len >> 8);
    (*out_)[start_ + 3] = static_cast<char>(len);
  }

 private:
  std::string* out_;
  size_t start_ = 0;
};

}  // namespace pgtenant::protocol
