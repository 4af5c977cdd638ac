// YamlReader: step one of loading (docs/development.md, *Config loading*). Reads yaml-cpp nodes
// into plain values and turns every shape or type problem (unknown key, duplicate key, a list where
// a map is wanted, "abc" for a number, an unknown enum name) into a Diagnostic instead of an
// exception, then carries on so that one run reports everything. It records the line of every key
// it reads in a SourceLines.
//
// Internal to conf/. Not thread-safe; one reader per load.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "conf/config.h"
#include "conf/diagnostic.h"

namespace pgtenant::conf {

class YamlReader {
 public:
  // REQUIRES: both outlive the reader.
  YamlReader(std::vector<Diagnostic>* diagnostics, SourceLines* lines)
      : diagnostics_(diagnostics), lines_(lines) {}

  using ValueReader = std::function<void(const YAML::Node& value, const std::string& path)>;
  struct Field {
    std::string key;
    ValueReader read;
  };

  // A map with a fixed set of keys. Calls each field's reader for the keys present; reports
  // unknown keys (with a "did you mean" hint) and duplicates. A null node (`key:` with no value)
  // reads as an empty map, so every field keeps its default.
  void ReadMap(const YAML::Node& node, const std::string& path, const std::vector<Field>& fields);

  // A map keyed by names the user chose (pools, users, tenants): calls `read` for each entry with
  // the entry's path "PATH.NAME". Reports non-string, empty and duplicate names.
  using EntryReader = std::function<void(const std::string& name, const YAML::Node& value,
                                         const std::string& path)>;
  void ReadNamedMap(const YAML::Node& node, const std::string& path, const EntryReader& read);

  // Scalar readers. Each returns false, leaving *out untouched, after reporting a diagnostic.
  bool ReadString(const YAML::Node& node, const std::string& path, std::string* out);
  // Out-of-range integers saturate to INT_MIN/INT_MAX so that the validator's range check
  // reports them with the same message as any other out-of-range value.
  bool ReadInt(const YAML::Node& node, const std::string& path, int* out);
  bool ReadBool(const YAML::Node& node, const std::string& path, bool* out);
  bool ReadDuration(const YAML::Node& node, const std::string& path, Millis* out);
  bool ReadByteSize(const YAML::Node& node, const std::string& path, uint64_t* out);
  // A list of strings; item i is recorded as "PATH[i]". A null node reads as an empty list.
  bool ReadStringList(const YAML::Node& node, const std::string& path,
                      std::vector<std::string>* out);

  // A list: calls `read` for each item with its path "PATH[i]", after recording the item's line.
  // A null node reads as an empty list. Returns false (after a diagnostic) if it is not a list.
  using ItemReader = std::function<void(const YAML::Node& item, const std::string& path)>;
  bool ReadList(const YAML::Node& node, const std::string& path, const ItemReader& read);

  // One of `names`; *index is the position of the match.
  bool ReadEnumIndex(const YAML::Node& node, const std::string& path,
                     const std::vector<std::string>& names, size_t* index);

  template <typename E>
  bool ReadEnum(const YAML::Node& node, const std::string& path,
                const std::vector<std::pair<std::string, E>>& table, E* out) {
    std::vector<std::string> names;
    for (const auto& entry : table) names.push_back(entry.first);
    size_t index = 0;
    if (!ReadEnumIndex(node, path, names, &index)) return false;
    *out = table[index].second;
    return true;
  }

  void Error(const std::string& path, int line, std::string message, std::string hint = "");

  // 1-based line of a node, 0 when yaml-cpp has no position for it.
  static int LineOf(const YAML::Node& node);

 private:
  // Shared by the scalar readers: reports and returns false unless `node` is a scalar.
  bool ExpectScalar(const YAML::Node& node, const std::string& path, const char* what);
  int LineFor(const YAML::Node& node, const std::string& path) const;

  std::vector<Diagnostic>* diagnostics_;
  SourceLines* lines_;
};

}  // namespace pgtenant::conf
