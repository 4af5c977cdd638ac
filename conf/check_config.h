// `pgtenant --check-config FILE` (docs/reference.md section 1): validate and print every problem.
#pragma once

#include <ostream>
#include <string>

namespace pgtenant::conf {

// Loads `path` and writes each diagnostic as FormatDiagnostic(d, path), one a line, then a last
// line "PATH: OK" or "PATH: N error(s)" (warnings are printed but do not count). Returns the exit
// status: 0 when the config is valid, 1 otherwise.
int CheckConfigMain(const std::string& path, std::ostream& out);

}  // namespace pgtenant::conf
