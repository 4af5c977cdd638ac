#include "routing/routing_table.h"

namespace pgtenant::routing {

RoutingTable::RoutingTable(const conf::Config& config)
    : default_pool_(config.tenancy.default_pool), validator_(config.tenancy) {
  tenants_.reserve(config.tenants.size());
  for (const auto& [id, tenant] : config.tenants) {
    conf::Tenant copy = tenant;
    // The map key is authoritative; a loader that left Tenant::id empty still routes.
    copy.id = id;
    tenants_.emplace(id, std::move(copy));
  }
}

std::shared_ptr<const RoutingTable> RoutingTable::Build(const conf::Config& config) {
  // The constructor is private so that every table is immutable and shared.
  return std::shared_ptr<const RoutingTable>(new RoutingTable(config));
}

const conf::Tenant* RoutingTable::Find(std::string_view tenant) const {
  const auto it = tenants_.find(tenant);
  return it == tenants_.end() ? nullptr : &it->second;
}

const std::string* RoutingTable::PoolFor(std::string_view tenant) const {
  if (const conf::Tenant* t = Find(tenant)) return &t->pool;
  return default_pool_ ? &*default_pool_ : nullptr;
}

}  // namespace pgtenant::routing
