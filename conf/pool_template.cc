#include "conf/pool_template.h"

namespace pgtenant::conf {
namespace {

std::string Substitute(std::string text, const std::string& tenant) {
  static constexpr std::string_view kPlaceholder = "{tenant}";
  for (size_t at = text.find(kPlaceholder); at != std::string::npos; at = text.find(kPlaceholder, at + tenant.size())) {
    text.replace(at, kPlaceholder.size(), tenant);
  }
  return text;
}

}  // namespace

std::string_view MetricsPoolName(std::string_view pool) { return pool.substr(0, pool.find('/')); }

std::string TemplatePoolName(std::string_view template_name, std::string_view tenant) {
  std::string name(template_name);
  name += '/';
  name += tenant;
  return name;
}

Pool PoolFromTemplate(const std::string& template_name, const Pool& tmpl, const std::string& id, const Tenant& tenant) {
  Pool pool = tmpl;
  pool.name = TemplatePoolName(template_name, id);
  pool.host = Substitute(tenant.host.empty() ? tmpl.host : tenant.host, id);
  pool.database = Substitute(tenant.database.empty() ? tmpl.database : tenant.database, id);
  pool.user = Substitute(tmpl.user, id);
  return pool;
}

std::optional<Pool> PoolConfigFor(const Config& config, const std::string& name) {
  if (auto it = config.pools.find(name); it != config.pools.end()) return it->second;
  const size_t slash = name.find('/');
  if (slash == std::string::npos) return std::nullopt;
  const std::string template_name = name.substr(0, slash);
  const std::string id = name.substr(slash + 1);
  auto tenant = config.tenants.find(id);
  auto tmpl = config.pool_templates.find(template_name);
  if (tenant == config.tenants.end() || tmpl == config.pool_templates.end() ||
      tenant->second.template_name != template_name) {
    return std::nullopt;
  }
  return PoolFromTemplate(template_name, tmpl->second, id, tenant->second);
}

}  // namespace pgtenant::conf
