// Loading a pgtenant config file (docs/reference.md section 2) in three steps (docs/development.md,
// *Config loading*):
//   1. decode: yaml-cpp fills the plain structs of conf/config.h; YAML syntax errors, unknown keys
//      and wrong types become diagnostics (yaml-cpp's exceptions stop at this boundary);
//   2. validate: ValidateConfig (conf/validate.h) checks the whole config and gathers EVERY problem;
//      What it finds about a key the decoder already rejected is dropped as an echo.
//   3. freeze: if no diagnostic is an error the result is a std::shared_ptr<const Config>, shared
//      read-only and swapped whole on reload.
//
// Beyond the struct fields, loading also:
//   - resolves password_env: Pool/User::password receives the variable's value at load time, and
//     password_env keeps the variable's name. Values never appear in diagnostics.
//   - takes relative cert_file, key_file and ca_file paths relative to the config file's directory
//     and stores them so resolved.
//   - derives User::any_tenant and User::password_is_plaintext, and gives tenants that name no
//     pool the tenancy.default_pool.
//
// Thread-safety: the functions keep no state and may run on any thread, but they read the process
// environment (getenv), which must not be modified concurrently.
#pragma once

#include <string>
#include <vector>

#include "conf/config.h"
#include "conf/diagnostic.h"

namespace pgtenant::conf {

struct LoadResult {
  ConfigPtr config;  // null when any diagnostic is an error; warnings alone keep it
  std::vector<Diagnostic> diagnostics;  // in file order (line 0 first)
  bool ok() const { return config != nullptr; }
};

// Reads and loads the file at `path`. A missing, unreadable or oversized (> 16 MiB) file gives
// exactly one diagnostic, with path "" and line 0. Config::source_path is set to `path`.
LoadResult LoadConfigFile(const std::string& path);

// Loads YAML text as if read from `source_name`, which becomes Config::source_path and is the
// base for relative file paths when it contains a directory.
LoadResult LoadConfigString(const std::string& yaml_text, const std::string& source_name);

}  // namespace pgtenant::conf
