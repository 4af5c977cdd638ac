// Test helper: parses the Prometheus text exposition into series -> value, keyed by the sample
// line's name and labels exactly as written (prometheus-cpp sorts labels by name and writes a
// histogram's le last).
#pragma once

#include <cstdlib>
#include <map>
#include <sstream>
#include <string>

namespace pgtenant::metrics::testing {

struct Exposition {
  std::map<std::string, double> samples;     // `name{a="x",b="y"}` -> value
  std::map<std::string, std::string> types;  // family name -> "counter" | "gauge" | "histogram"
  std::map<std::string, std::string> help;   // family name -> help text

  bool Has(const std::string& series) const { return samples.count(series) != 0; }
  // The value of a series; NaN-free sentinel -1 when absent so that EXPECT_EQ shows it.
  double Value(const std::string& series) const {
    auto it = samples.find(series);
    return it == samples.end() ? -1 : it->second;
  }
  // How many samples mention the text (e.g. a label pair).
  int CountContaining(const std::string& text) const {
    int n = 0;
    for (const auto& [series, value] : samples) n += series.find(text) != std::string::npos;
    return n;
  }
};

inline Exposition ParseExposition(const std::string& text) {
  Exposition e;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (line.rfind("# TYPE ", 0) == 0 || line.rfind("# HELP ", 0) == 0) {
      std::string rest = line.substr(7);
      size_t sp = rest.find(' ');
      std::string name = rest.substr(0, sp), value = sp == std::string::npos ? "" : rest.substr(sp + 1);
      (line[2] == 'T' ? e.types : e.help)[name] = value;
      continue;
    }
    if (line[0] == '#') continue;
    size_t sp = line.rfind(' ');
    e.samples[line.substr(0, sp)] = std::strtod(line.c_str() + sp + 1, nullptr);
  }
  return e;
}

}  // namespace pgtenant::metrics::testing
