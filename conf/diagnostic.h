// Diagnostics: what the config loader and validator report, each tied to a YAML key path and line,
// plus the bookkeeping that lets checks on the plain structs still point at a line.
// Plain values; thread-compatible.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace pgtenant::conf {

struct Diagnostic {
  std::string path;  // key path such as "pools.shared.size" or "tenancy.sources[1]"; "" = whole file
  int line = 0;      // 1-based; 0 if unknown
  std::string message;
  std::string hint;  // what to do about it; may be empty
  bool warning = false;
};

// "FILE:LINE: error: PATH: MESSAGE (hint: HINT)". The line, path and hint parts are left out when
// unknown or empty; warnings say "warning:" instead of "error:".
std::string FormatDiagnostic(const Diagnostic& d, const std::string& file);

// Number of diagnostics that are errors (not warnings).
size_t CountErrors(const std::vector<Diagnostic>& diagnostics);

// Among `candidates`, the one closest to `word` by edit distance (adjacent transpositions count as
// one edit) if it is close enough to be a likely typo; "" otherwise. Case-insensitive.
std::string ClosestMatch(std::string_view word, const std::vector<std::string>& candidates);

// Lines of the YAML nodes the loader saw, by key path. The loader records every key it reads, so
// the validator can both place a diagnostic and tell "key absent" from "key given an empty value".
class SourceLines {
 public:
  void Record(const std::string& path, int line) { lines_[path] = line; }

  // True if the loader saw exactly this path.
  bool Has(std::string_view path) const { return lines_.find(path) != lines_.end(); }

  // The line of `path`, or else of its nearest recorded parent ("pools.a.database" falls back to
  // "pools.a" when the key is missing); 0 if none is known.
  int LineOf(std::string_view path) const;

 private:
  std::map<std::string, int, std::less<>> lines_;
};

}  // namespace pgtenant::conf
