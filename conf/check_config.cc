#include "conf/check_config.h"

#include "conf/loader.h"

namespace pgtenant::conf {

int CheckConfigMain(const std::string& path, std::ostream& out) {
  LoadResult result = LoadConfigFile(path);
  for (const Diagnostic& d : result.diagnostics) out << FormatDiagnostic(d, path) << "\n";
  size_t errors = CountErrors(result.diagnostics);
  if (result.ok()) {
    out << path << ": OK\n";
    return 0;
  }
  // A failed load always carries at least one error; say 1 rather than 0 if that ever breaks.
  out << path << ": " << (errors == 0 ? 1 : errors) << " error(s)\n";
  return 1;
}

}  // namespace pgtenant::conf
