// Pools made per tenant from a template (docs/configuration.md, `pool_templates`): a dedicated
// database per tenant without a hand-written pool entry each. `tenants.acme: {template:
// dedicated}` gives tenant acme the pool "dedicated/acme", made from pool_templates.dedicated
// with "{tenant}" in its host, database and user replaced by "acme" (and the tenant's own
// `database` / `host` overriding the template's). Pooler makes the pool on the tenant's first
// use and drops it once it has no server connection left.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "conf/config.h"

namespace pgtenant::conf {

// "TEMPLATE/TENANT". A configured pool's name cannot contain '/', so the two never collide.
std::string TemplatePoolName(std::string_view template_name, std::string_view tenant);

// The name a pool reports its metrics under: a pool made from a template reports under the
// template's name (one set of pool series for a thousand tenants; the tenant label tells them
// apart), any other pool under its own.
std::string_view MetricsPoolName(std::string_view pool);

// The pool config `name` stands for in `config`: pools.NAME, or the pool a template makes for
// the tenant that names it (nullopt: neither, e.g. the tenant left the template meanwhile).
std::optional<Pool> PoolConfigFor(const Config& config, const std::string& name);

// The pool `tmpl` makes for tenant `id` (entry `tenant`), named TemplatePoolName(...).
Pool PoolFromTemplate(const std::string& template_name, const Pool& tmpl, const std::string& id, const Tenant& tenant);

}  // namespace pgtenant::conf
