// Fuzzes the config loader (conf/loader.h) with arbitrary YAML text: yaml-cpp's exceptions must
// stop at the loader, and the result must be consistent.
//
// Invariants checked besides "no crash, no UB, no escaping exception":
//   * a config comes back exactly when no diagnostic is an error;
//   * diagnostics carry a message and a non-negative line;
//   * a loaded config is internally consistent: every tenant's pool exists, map keys equal the
//     names stored in the values, User::any_tenant agrees with the tenants list.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "conf/diagnostic.h"
#include "conf/loader.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

namespace conf = pgtenant::conf;

void CheckConfig(const conf::Config& c) {
  for (const auto& [name, pool] : c.pools) FUZZ_CHECK(pool.name == name);
  for (const auto& [id, tenant] : c.tenants) {
    FUZZ_CHECK(tenant.id == id);
    FUZZ_CHECK(c.pools.count(tenant.pool) == 1);
  }
  for (const auto& [name, user] : c.auth.users) {
    FUZZ_CHECK(user.name == name);
    const bool star =
        std::find(user.tenants.begin(), user.tenants.end(), "*") != user.tenants.end();
    FUZZ_CHECK(user.any_tenant == star);
  }
  if (c.tenancy.default_pool) FUZZ_CHECK(c.pools.count(*c.tenancy.default_pool) == 1);
  FUZZ_CHECK(c.max_message_size > 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const conf::LoadResult result = conf::LoadConfigString(text, "fuzz/pgtenant.yaml");
  FUZZ_CHECK(result.ok() == (conf::CountErrors(result.diagnostics) == 0));
  for (const conf::Diagnostic& d : result.diagnostics) {
    FUZZ_CHECK(!d.message.empty() && d.line >= 0);
    conf::FormatDiagnostic(d, "pgtenant.yaml");
  }
  if (result.ok()) CheckConfig(*result.config);
  return 0;
}
