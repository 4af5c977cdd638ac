#include "routing/sql_escapes.h"

#include <cstdint>

namespace pgtenant::routing {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Reads exactly `count` hex digits at body[i..]; -1 if there are not that many.
int64_t ReadHex(std::string_view body, size_t i, size_t count) {
  if (i + count > body.size()) return -1;
  int64_t v = 0;
  for (size_t k = 0; k < count; ++k) {
    const int h = HexValue(body[i + k]);
    if (h < 0) return -1;
    v = v * 16 + h;
  }
  return v;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Combines UTF-16 surrogate halves the way scan.l does; false for a lone or misordered half.
class CodePointSink {
 public:
  explicit CodePointSink(std::string* out) : out_(out) {}
  bool Add(int64_t cp) {
    const bool high = cp >= 0xD800 && cp <= 0xDBFF;
    const bool low = cp >= 0xDC00 && cp <= 0xDFFF;
    if (pending_high_ != 0) {
      if (!low) return false;
      cp = 0x10000 + ((pending_high_ - 0xD800) << 10) + (cp - 0xDC00);
      pending_high_ = 0;
    } else if (high) {
      pending_high_ = cp;
      return true;
    } else if (low) {
      return false;
    }
    if (cp <= 0 || cp > 0x10FFFF) return false;
    AppendUtf8(static_cast<uint32_t>(cp), out_);
    return true;
  }
  bool AddByte(char c) {
    if (pending_high_ != 0) return false;
    out_->push_back(c);
    return true;
  }
  bool Finish() const { return pending_high_ == 0; }

 private:
  std::string* out_;
  int64_t pending_high_ = 0;
};

}  // namespace

bool IsHexDigit(char c) { return HexValue(c) >= 0; }

bool DecodeBackslashEscapes(std::string_view body, std::string* out) {
  out->clear();
  CodePointSink sink(out);
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (c != '\\') {
      if (!sink.AddByte(c)) return false;
      continue;
    }
    if (++i >= body.size()) return false;
    const char d = body[i];
    int64_t value = -1;
    if (d >= '0' && d <= '7') {
      value = 0;
      size_t k = 0;
      for (; k < 3 && i + k < body.size() && body[i + k] >= '0' && body[i + k] <= '7'; ++k) {
        value = value * 8 + (body[i + k] - '0');
      }
      i += k - 1;
      value &= 0xFF;  // scan.l keeps the low byte of \777
    } else if (d == 'x' && i + 1 < body.size() && HexValue(body[i + 1]) >= 0) {
      const bool two = i + 2 < body.size() && HexValue(body[i + 2]) >= 0;
      value = ReadHex(body, i + 1, two ? 2 : 1);
      i += two ? 2 : 1;
    } else if (d == 'u' || d == 'U') {
      const size_t digits = d == 'u' ? 4 : 8;
      const int64_t cp = ReadHex(body, i + 1, digits);
      if (cp < 0 || !sink.Add(cp)) return false;
      i += digits;
      continue;
    }
    if (value == 0) return false;  // a NUL byte is never valid text
    if (value > 0) {
      if (!sink.AddByte(static_cast<char>(value))) return false;
      continue;
    }
    char plain = d;
    switch (d) {
      case 'b':
        plain = '\b';
        break;
      case 'f':
        plain = '\f';
        break;
      case 'n':
        plain = '\n';
        break;
      case 'r':
        plain = '\r';
        break;
      case 't':
        plain = '\t';
        break;
      case 'v':
        plain = '\v';
        break;
      default:
        break;
    }
    if (!sink.AddByte(plain)) return false;
  }
  return sink.Finish();
}

bool DecodeUnicodeEscapes(std::string_view body, char escape, std::string* out) {
  out->clear();
  CodePointSink sink(out);
  for (size_t i = 0; i < body.size(); ++i) {
    if (body[i] != escape) {
      if (!sink.AddByte(body[i])) return false;
      continue;
    }
    if (i + 1 < body.size() && body[i + 1] == escape) {
      if (!sink.AddByte(escape)) return false;
      ++i;
      continue;
    }
    const bool wide = i + 1 < body.size() && body[i + 1] == '+';
    const int64_t cp = wide ? ReadHex(body, i + 2, 6) : ReadHex(body, i + 1, 4);
    if (cp < 0 || !sink.Add(cp)) return false;
    i += wide ? 7 : 4;
  }
  return sink.Finish();
}

}  // namespace pgtenant::routing
