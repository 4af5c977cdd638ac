#include "routing/tenant_source.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "routing/sql_names.h"

namespace pgtenant::routing {
namespace {

using conf::TenantSource;

struct Sighting {
  TenantSource source;
  std::string value;
};

bool SourceAllowed(const conf::Tenancy& tenancy, TenantSource source) {
  return std::find(tenancy.sources.begin(), tenancy.sources.end(), source) != tenancy.sources.end();
}

size_t SourceRank(const conf::Tenancy& tenancy, TenantSource source) {
  return std::find(tenancy.sources.begin(), tenancy.sources.end(), source) -
         tenancy.sources.begin();
}

Status SourceNotAllowed(TenantSource source, const conf::Tenancy& tenancy) {
  return Status::InvalidAuthorization(std::string("the tenant was given through source \"") +
                                      TenantSourceName(source) + "\" (" + tenancy.variable +
                                      "), which tenancy.sources does not allow; use an allowed "
                                      "source or add this one to tenancy.sources");
}

// "app.acme" -> {"app", "acme"} when "app.acme" is not itself a user and "app" is. The last
// separator splits, so tenant ids never contain the separator but user names may.
std::optional<std::pair<std::string, std::string>> SplitUserTenant(const std::string& user,
                                                                   const conf::Config& config) {
  const std::string& sep = config.tenancy.user_separator;
  const auto& users = config.auth.users;
  if (sep.empty() || users.count(user) > 0) return std::nullopt;
  const size_t pos = user.rfind(sep);
  if (pos == std::string::npos || pos == 0 || pos + sep.size() >= user.size()) return std::nullopt;
  std::string prefix = user.substr(0, pos);
  if (users.count(prefix) == 0) return std::nullopt;
  return std::make_pair(std::move(prefix), user.substr(pos + sep.size()));
}

// Parameter and options sightings of the variable; fills identity->other_options.
Status CollectParameterAndOptions(const std::map<std::string, std::string>& params,
                                  const conf::Tenancy& tenancy, StartupIdentity* identity,
                                  std::vector<Sighting>* seen) {
  for (const auto& [name, value] : params) {
    if (!IsTenantVariable(name, tenancy)) continue;
    if (!SourceAllowed(tenancy, TenantSource::kParameter)) {
      return SourceNotAllowed(TenantSource::kParameter, tenancy);
    }
    seen->push_back({TenantSource::kParameter, value});
  }
  const auto options = params.find("options");
  if (options == params.end()) return Status::Ok();
  Result<StartupOptions> parsed = ParseStartupOptions(options->second);
  if (!parsed.ok()) return parsed.status();
  for (auto& [name, value] : parsed->settings) {
    if (!IsTenantVariable(name, tenancy)) {
      identity->other_options.settings.emplace_back(std::move(name), std::move(value));
      continue;
    }
    if (!SourceAllowed(tenancy, TenantSource::kOptions)) {
      return SourceNotAllowed(TenantSource::kOptions, tenancy);
    }
    seen->push_back({TenantSource::kOptions, std::move(value)});
  }
  identity->other_options.unparsed = std::move(parsed->unparsed);
  return Status::Ok();
}

}  // namespace

const char* TenantSourceName(TenantSource source) {
  switch (source) {
    case TenantSource::kParameter:
      return "parameter";
    case TenantSource::kOptions:
      return "options";
    case TenantSource::kUser:
      return "user";
    case TenantSource::kSet:
      return "set";
  }
  return "?";
}

bool IsTenantVariable(std::string_view name, const conf::Tenancy& tenancy) {
  return GucNameEquals(name, tenancy.variable);
}

Result<StartupIdentity> IdentifyStartup(const std::map<std::string, std::string>& startup_params,
                                        const conf::Config& config) {
  const conf::Tenancy& tenancy = config.tenancy;
  const auto user = startup_params.find("user");
  if (user == startup_params.end() || user->second.empty()) {
    return Status::InvalidAuthorization("no PostgreSQL user name specified in startup packet");
  }
  StartupIdentity identity;
  identity.login_user = user->second;
  std::vector<Sighting> seen;
  Status s = CollectParameterAndOptions(startup_params, tenancy, &identity, &seen);
  if (!s.ok()) return s;
  if (SourceAllowed(tenancy, TenantSource::kUser)) {
    if (auto split = SplitUserTenant(user->second, config)) {
      identity.login_user = std::move(split->first);
      seen.push_back({TenantSource::kUser, std::move(split->second)});
    }
  }
  if (seen.empty()) return identity;
  // Report in tenancy.sources order so the first entry is the session's source.
  std::stable_sort(seen.begin(), seen.end(), [&](const Sighting& a, const Sighting& b) {
    return SourceRank(tenancy, a.source) < SourceRank(tenancy, b.source);
  });
  for (const Sighting& other : seen) {
    if (other.value == seen.front().value) continue;
    return Status::InvalidAuthorization(std::string("tenant given twice with different values: ") +
                                        TenantSourceName(seen.front().source) + " says " +
                                        DisplayTenant(seen.front().value) + ", " +
                                        TenantSourceName(other.source) + " says " +
                                        DisplayTenant(other.value) + "; give the tenant once");
  }
  identity.tenant = seen.front().value;
  identity.tenant_source = seen.front().source;
  return identity;
}

Status CheckTenantAllowed(const conf::Config& config, const TenantValidator& validator,
                          std::string_view user, std::string_view tenant, TenantCheckPhase phase) {
  const std::string shown = DisplayTenant(tenant);
  if (!validator.Matches(tenant)) {
    return Status::InvalidParameter("tenant id \"" + shown +
                                    "\" does not match tenancy.id_pattern " + validator.pattern());
  }
  const std::string id(tenant);
  if (config.tenants.count(id) == 0 && !config.tenancy.default_pool) {
    std::string message = "tenant \"" + shown +
                          "\" is not configured and there is no default_pool; add it under "
                          "tenants: or set tenancy.default_pool";
    return phase == TenantCheckPhase::kLogin ? Status::InvalidAuthorization(std::move(message))
                                             : Status::InvalidParameter(std::move(message));
  }
  const auto it = config.auth.users.find(std::string(user));
  if (it == config.auth.users.end()) {
    if (phase == TenantCheckPhase::kLogin) return Status::Ok();
    return Status::InsufficientPrivilege("user \"" + std::string(user) + "\" is not configured");
  }
  const conf::User& u = it->second;
  const bool listed = std::any_of(u.tenants.begin(), u.tenants.end(),
                                  [&](const std::string& t) { return t == "*" || t == tenant; });
  if (!u.any_tenant && !listed) {
    return Status::InsufficientPrivilege("user \"" + it->first + "\" may not act as tenant \"" +
                                         shown + "\"; add it to auth.users." + it->first +
                                         ".tenants");
  }
  return Status::Ok();
}

Status CheckTenantAllowed(const conf::Config& config, const std::string& user,
                          const std::string& tenant, TenantCheckPhase phase) {
  return CheckTenantAllowed(config, TenantValidator(config.tenancy), user, tenant, phase);
}

Result<StartupIdentity> ResolveStartupTenant(
    const std::map<std::string, std::string>& startup_params, const conf::Config& config,
    const TenantValidator& validator) {
  Result<StartupIdentity> identity = IdentifyStartup(startup_params, config);
  if (!identity.ok() || !identity->tenant) return identity;
  Status s = CheckTenantAllowed(config, validator, identity->login_user, *identity->tenant,
                                TenantCheckPhase::kLogin);
  if (!s.ok()) return s;
  return identity;
}

Result<StartupIdentity> ResolveStartupTenant(
    const std::map<std::string, std::string>& startup_params, const conf::Config& config) {
  return ResolveStartupTenant(startup_params, config, TenantValidator(config.tenancy));
}

}  // namespace pgtenant::routing
