#include "billing/json.h"

#include <cstdio>

namespace pgtenant::billing {

void AppendJsonString(std::string* out, std::string_view s) {
  out->push_back('"');
  for (char c : s) {
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          out->append(buf);
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

namespace {

// A recursive-descent reader over one buffer; every function returns false on malformed input.
class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}

  void Space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) ++i_;
  }
  bool Peek(char c) { Space(); return i_ < s_.size() && s_[i_] == c; }
  bool Eat(char c) {
    if (!Peek(c)) return false;
    ++i_;
    return true;
  }

  bool String(std::string* out) {
    if (!Eat('"')) return false;
    while (i_ < s_.size()) {
      char c = s_[i_++];
      if (c == '"') return true;
      if (c != '\\') { out->push_back(c); continue; }
      if (i_ >= s_.size()) return false;
      char e = s_[i_++];
      switch (e) {
        case 'n': out->push_back('\n'); break;
        case 't': out->push_back('\t'); break;
        case 'r': out->push_back('\r'); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'u': {
          // Kept readable rather than decoded: only messages for people use these.
          if (i_ + 4 > s_.size()) return false;
          out->append("\\u").append(s_.substr(i_, 4));
          i_ += 4;
          break;
        }
        default: out->push_back(e);
      }
    }
    return false;
  }

  // Skips any value; `depth` bounds recursion on hostile input.
  bool Skip(int depth) {
    if (depth > 64) return false;
    Space();
    if (i_ >= s_.size()) return false;
    char c = s_[i_];
    if (c == '"') { std::string ignored; return String(&ignored); }
    if (c == '{' || c == '[') {
      char close = c == '{' ? '}' : ']';
      ++i_;
      if (Eat(close)) return true;
      do {
        if (c == '{') {
          std::string key;
          if (!String(&key) || !Eat(':')) return false;
        }
        if (!Skip(depth + 1)) return false;
      } while (Eat(','));
      return Eat(close);
    }
    // Numbers, true, false, null: everything up to a delimiter.
    size_t begin = i_;
    while (i_ < s_.size() && s_[i_] != ',' && s_[i_] != '}' && s_[i_] != ']' && s_[i_] != ' ' &&
           s_[i_] != '\n' && s_[i_] != '\r' && s_[i_] != '\t') {
      ++i_;
    }
    return i_ > begin;
  }

  // Reads an object, calling on_member(key) positioned at each value; on_member consumes it.
  template <typename F>
  bool Object(F&& on_member) {
    if (!Eat('{')) return false;
    if (Eat('}')) return true;
    do {
      std::string key;
      if (!String(&key) || !Eat(':')) return false;
      if (!on_member(key)) return false;
    } while (Eat(','));
    return Eat('}');
  }

 private:
  std::string_view s_;
  size_t i_ = 0;
};

}  // namespace

std::optional<std::map<std::string, std::string>> StringMembersOf(std::string_view json,
                                                                  std::string_view object_key) {
  Reader r(json);
  std::optional<std::map<std::string, std::string>> found;
  bool ok = r.Object([&](const std::string& key) {
    if (key != object_key || !r.Peek('{')) return r.Skip(1);
    std::map<std::string, std::string> members;
    bool inner = r.Object([&](const std::string& k) {
      if (!r.Peek('"')) return r.Skip(2);
      std::string v;
      if (!r.String(&v)) return false;
      members[k] = std::move(v);
      return true;
    });
    if (inner) found = std::move(members);
    return inner;
  });
  if (!ok) return std::nullopt;
  return found;
}

}  // namespace pgtenant::billing
