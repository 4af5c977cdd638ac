// Which tenant a client session acts for at login, from the startup packet alone
// (docs/reference.md section 3: sources `parameter`, `options`, `user`), and whether a user may act
// as a tenant (at login and at SET time).
//
// Typical use in the login path:
//   1. IdentifyStartup(params, config)     -> login user for authentication, tenant if given
//   2. authenticate identity.login_user
//   3. CheckTenantAllowed(config, table.validator(), user, tenant, TenantCheckPhase::kLogin)
// Checking after authentication keeps an unauthenticated client from learning which users and
// tenants exist. ResolveStartupTenant does 1 and 3 together for callers that do not care.
//
// Thread-safety: pure functions over immutable config.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "conf/config.h"
#include "protocol/status.h"
#include "routing/startup_options.h"
#include "routing/tenant_validator.h"

namespace pgtenant::routing {

struct StartupIdentity {
  // The user to authenticate: the startup `user`, minus a `user`-source tenant suffix.
  std::string login_user;
  std::optional<std::string> tenant;
  // Where the tenant came from: the first source in tenancy.sources that gave it. Meaningful
  // only when `tenant` is set.
  conf::TenantSource tenant_source = conf::TenantSource::kParameter;
  // The `options` startup parameter with the tenant variable's settings removed, for the
  // caller to apply on every server connection (docs/reference.md section 4).
  StartupOptions other_options;
};

// Errors:
//   28000  no user; the tenant variable sent through a source tenancy.sources does not allow
//          (it would otherwise reach the server unchecked); two sources (or one source twice)
//          with different values
//   42601  malformed `options` (as the server would report it)
// No tenant at all is not an error here: require_tenant is enforced per statement.
Result<StartupIdentity> IdentifyStartup(const std::map<std::string, std::string>& startup_params,
                                        const conf::Config& config);

enum class TenantCheckPhase { kLogin, kSet };

// May `user` act as `tenant`? In order:
//   22023  the id does not fully match tenancy.id_pattern
//   28000 (kLogin) / 22023 (kSet)  not listed under `tenants` and no tenancy.default_pool
//   42501  the user's `tenants` list neither has "*" nor the id. At kLogin an unknown user
//          passes (authentication fails later with 28P01 and reveals nothing); at kSet the
//          user is authenticated, so an unknown user is refused.
Status CheckTenantAllowed(const conf::Config& config, const TenantValidator& validator,
                          std::string_view user, std::string_view tenant, TenantCheckPhase phase);

// As above but compiles id_pattern on every call; for tests and cold paths.
Status CheckTenantAllowed(const conf::Config& config, const std::string& user,
                          const std::string& tenant, TenantCheckPhase phase);

// IdentifyStartup, then CheckTenantAllowed(kLogin) when a tenant was given.
Result<StartupIdentity> ResolveStartupTenant(
    const std::map<std::string, std::string>& startup_params, const conf::Config& config,
    const TenantValidator& validator);
Result<StartupIdentity> ResolveStartupTenant(
    const std::map<std::string, std::string>& startup_params, const conf::Config& config);

// True when a startup parameter or option named `name` is the tenant variable.
bool IsTenantVariable(std::string_view name, const conf::Tenancy& tenancy);

const char* TenantSourceName(conf::TenantSource source);

}  // namespace pgtenant::routing
