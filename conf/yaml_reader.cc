#include "conf/yaml_reader.h"

#include <algorithm>
#include <charconv>
#include <climits>
#include <set>

#include "conf/duration.h"

namespace pgtenant::conf {
namespace {

// Values are echoed in diagnostics so the user sees what was read; long ones are cut so a stray
// paste cannot flood the terminal. Readers of secrets (passwords) never echo.
std::string Quote(const std::string& value) {
  constexpr size_t kMaxShown = 40;
  if (value.size() <= kMaxShown) return "\"" + value + "\"";
  return "\"" + value.substr(0, kMaxShown) + "...\"";
}

std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null: return "nothing";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Scalar: return "a string";
    default: return "an undefined value";
  }
}

// yaml-cpp tags plain scalars "?" and quoted ones "!"; a quoted "5" was written as a string.
bool IsQuoted(const YAML::Node& node) { return node.Tag() != "?"; }

std::string JoinKeys(const std::vector<std::string>& keys, const char* separator) {
  std::string out;
  for (const std::string& key : keys) {
    if (!out.empty()) out += separator;
    out += key;
  }
  return out;
}

std::string ChildPath(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

}  // namespace

int YamlReader::LineOf(const YAML::Node& node) {
  YAML::Mark mark = node.Mark();
  return mark.is_null() ? 0 : mark.line + 1;
}

int YamlReader::LineFor(const YAML::Node& node, const std::string& path) const {
  if (lines_->Has(path)) return lines_->LineOf(path);
  int line = LineOf(node);
  return line > 0 ? line : lines_->LineOf(path);
}

void YamlReader::Error(const std::string& path, int line, std::string message, std::string hint) {
  diagnostics_->push_back(Diagnostic{path, line, std::move(message), std::move(hint), false});
}

void YamlReader::ReadMap(const YAML::Node& node, const std::string& path,
                         const std::vector<Field>& fields) {
  if (node.IsNull()) return;
  if (!node.IsMap()) {
    Error(path, LineFor(node, path), "expected a map of keys, got " + Describe(node));
    return;
  }
  std::vector<std::string> keys;
  for (const Field& field : fields) keys.push_back(field.key);
  std::set<std::string> seen;
  for (auto it = node.begin(); it != node.end(); ++it) {
    // Copies: yaml-cpp's iterator hands out a temporary pair, so references would dangle.
    YAML::Node key = it->first;
    YAML::Node value = it->second;
    int line = LineOf(key);
    if (!key.IsScalar()) {
      Error(path, line, "a key must be a plain name, got " + Describe(key));
      continue;
    }
    std::string child = ChildPath(path, key.Scalar());
    if (!seen.insert(key.Scalar()).second) {
      Error(child, line, "duplicate key", "each key may appear once; remove one of them");
      continue;
    }
    auto field = std::find_if(fields.begin(), fields.end(),
                              [&](const Field& f) { return f.key == key.Scalar(); });
    if (field == fields.end()) {
      std::string close = ClosestMatch(key.Scalar(), keys);
      Error(child, line, close.empty() ? "unknown key" : "unknown key; did you mean '" + close + "'?",
            "valid keys here: " + JoinKeys(keys, ", "));
      continue;
    }
    lines_->Record(child, line);
    field->read(value, child);
  }
}

void YamlReader::ReadNamedMap(const YAML::Node& node, const std::string& path,
                              const EntryReader& read) {
  if (node.IsNull()) return;
  if (!node.IsMap()) {
    Error(path, LineFor(node, path), "expected a map of names, got " + Describe(node));
    return;
  }
  std::set<std::string> seen;
  for (auto it = node.begin(); it != node.end(); ++it) {
    // Copies: yaml-cpp's iterator hands out a temporary pair, so references would dangle.
    YAML::Node key = it->first;
    YAML::Node value = it->second;
    int line = LineOf(key);
    if (!key.IsScalar() || key.Scalar().empty()) {
      Error(path, line, "a name must be a non-empty string, got " + Describe(key));
      continue;
    }
    std::string child = ChildPath(path, key.Scalar());
    if (!seen.insert(key.Scalar()).second) {
      Error(child, line, "duplicate name", "each name may appear once; remove one of them");
      continue;
    }
    lines_->Record(child, line);
    read(key.Scalar(), value, child);
  }
}

bool YamlReader::ExpectScalar(const YAML::Node& node, const std::string& path, const char* what) {
  if (node.IsScalar()) return true;
  Error(path, LineFor(node, path), std::string("expected ") + what + ", got " + Describe(node));
  return false;
}

bool YamlReader::ReadString(const YAML::Node& node, const std::string& path, std::string* out) {
  if (!ExpectScalar(node, path, "a string")) return false;
  *out = node.Scalar();
  return true;
}

bool YamlReader::ReadInt(const YAML::Node& node, const std::string& path, int* out) {
  if (!ExpectScalar(node, path, "an integer")) return false;
  if (IsQuoted(node)) {
    Error(path, LineFor(node, path), "expected an integer, got the quoted string " +
          Quote(node.Scalar()), "write the number without quotes");
    return false;
  }
  const std::string& text = node.Scalar();
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (end != text.data() + text.size() || (ec != std::errc() && ec != std::errc::result_out_of_range)) {
    Error(path, LineFor(node, path), "expected an integer, got " + Quote(text));
    return false;
  }
  if (ec == std::errc::result_out_of_range) value = text[0] == '-' ? INT64_MIN : INT64_MAX;
  *out = static_cast<int>(std::clamp<int64_t>(value, INT_MIN, INT_MAX));
  return true;
}

bool YamlReader::ReadBool(const YAML::Node& node, const std::string& path, bool* out) {
  if (!ExpectScalar(node, path, "true or false")) return false;
  bool value = false;
  if (IsQuoted(node) || !YAML::convert<bool>::decode(node, value)) {
    Error(path, LineFor(node, path), "expected true or false, got " + Quote(node.Scalar()));
    return false;
  }
  *out = value;
  return true;
}

bool YamlReader::ReadDuration(const YAML::Node& node, const std::string& path, Millis* out) {
  if (!ExpectScalar(node, path, "a duration")) return false;
  auto millis = ParseDuration(node.Scalar());
  if (!millis) {
    Error(path, LineFor(node, path), "not a valid duration: " + Quote(node.Scalar()),
          "write e.g. 500ms, 15s, 10m, 1h, 2d, or a whole number of seconds; 0 = none");
    return false;
  }
  *out = *millis;
  return true;
}

bool YamlReader::ReadByteSize(const YAML::Node& node, const std::string& path, uint64_t* out) {
  if (!ExpectScalar(node, path, "a size")) return false;
  auto bytes = ParseByteSize(node.Scalar());
  if (!bytes) {
    Error(path, LineFor(node, path), "not a valid size: " + Quote(node.Scalar()),
          "write a number of bytes or e.g. 64kB, 16MB, 1GB");
    return false;
  }
  *out = *bytes;
  return true;
}

bool YamlReader::ReadList(const YAML::Node& node, const std::string& path,
                          const ItemReader& read) {
  if (node.IsNull()) return true;
  if (!node.IsSequence()) {
    Error(path, LineFor(node, path), "expected a list, got " + Describe(node),
          "write a list as [a, b] or as lines starting with '- '");
    return false;
  }
  for (size_t i = 0; i < node.size(); ++i) {
    std::string item_path = path + "[" + std::to_string(i) + "]";
    lines_->Record(item_path, LineFor(node[i], item_path));
    read(node[i], item_path);
  }
  return true;
}

bool YamlReader::ReadStringList(const YAML::Node& node, const std::string& path,
                                std::vector<std::string>* out) {
  out->clear();
  size_t errors_before = diagnostics_->size();
  bool is_list = ReadList(node, path, [&](const YAML::Node& item, const std::string& item_path) {
    std::string value;
    if (ReadString(item, item_path, &value)) out->push_back(std::move(value));
  });
  return is_list && diagnostics_->size() == errors_before;
}

bool YamlReader::ReadEnumIndex(const YAML::Node& node, const std::string& path,
                               const std::vector<std::string>& names, size_t* index) {
  std::string expected = "one of " + JoinKeys(names, " | ");
  if (!ExpectScalar(node, path, expected.c_str())) return false;
  auto it = std::find(names.begin(), names.end(), node.Scalar());
  if (it == names.end()) {
    std::string close = ClosestMatch(node.Scalar(), names);
    Error(path, LineFor(node, path), "unknown value " + Quote(node.Scalar()) + "; expected " +
          expected, close.empty() ? "" : "did you mean '" + close + "'?");
    return false;
  }
  *index = static_cast<size_t>(it - names.begin());
  return true;
}

}  // namespace pgtenant::conf
