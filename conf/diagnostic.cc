#include "conf/diagnostic.h"

#include <algorithm>
#include <cctype>

namespace pgtenant::conf {

std::string FormatDiagnostic(const Diagnostic& d, const std::string& file) {
  std::string out = file;
  // Appended piece by piece: at -O3 GCC 12 reports a false -Wrestrict inside the inlined
  // `":" + std::to_string(...)` (operator+ of a literal and a temporary string).
  if (d.line > 0) {
    out += ':';
    out += std::to_string(d.line);
  }
  out += d.warning ? ": warning: " : ": error: ";
  if (!d.path.empty()) out += d.path + ": ";
  out += d.message;
  if (!d.hint.empty()) out += " (hint: " + d.hint + ")";
  return out;
}

size_t CountErrors(const std::vector<Diagnostic>& diagnostics) {
  return static_cast<size_t>(std::count_if(diagnostics.begin(), diagnostics.end(),
                                           [](const Diagnostic& d) { return !d.warning; }));
}

namespace {

char Lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

// Optimal string alignment distance: Levenshtein plus adjacent transposition, so "szie" is one
// edit from "size".
size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = Lower(a[i - 1]) == Lower(b[j - 1]) ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && Lower(a[i - 1]) == Lower(b[j - 2]) &&
          Lower(a[i - 2]) == Lower(b[j - 1])) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

}  // namespace

std::string ClosestMatch(std::string_view word, const std::vector<std::string>& candidates) {
  // Very long words are not typos of short keys; skip the quadratic work for them.
  if (word.empty() || word.size() > 64) return "";
  // About one edit per three letters (at least one): close enough to be a slip of the finger,
  // far enough apart that unrelated short keys are not offered.
  size_t allowed = std::max<size_t>(1, word.size() / 3);
  std::string best;
  size_t best_distance = allowed + 1;
  for (const std::string& candidate : candidates) {
    size_t distance = EditDistance(word, candidate);
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

int SourceLines::LineOf(std::string_view path) const {
  while (true) {
    auto it = lines_.find(path);
    if (it != lines_.end()) return it->second;
    if (path.empty()) return 0;
    // Drop the last segment: "[3]" or ".key". Keys may contain dots; the extra stops just miss.
    size_t cut = path.find_last_of(".[");
    path = cut == std::string_view::npos ? std::string_view() : path.substr(0, cut);
  }
}

}  // namespace pgtenant::conf
