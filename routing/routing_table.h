// The immutable tenant -> pool map of one config generation (docs/reference.md sections 2 and 3).
// Built once per (re)load and shared as std::shared_ptr<const RoutingTable>; a reload builds a
// new table and swaps the pointer, so readers never lock and a session keeps the table it
// started a decision with.
//
// Lookups are O(1) and take std::string_view without copying (transparent hash). Built for
// configs with 100,000+ tenants.
//
// Thread-safety: immutable after Build(); any number of threads may read it.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "conf/config.h"
#include "routing/tenant_validator.h"

namespace pgtenant::routing {

class RoutingTable {
 public:
  // Copies what routing needs out of `config`; the table does not keep a reference to it.
  static std::shared_ptr<const RoutingTable> Build(const conf::Config& config);

  // The pool serving `tenant`: its own pool when listed under `tenants`, otherwise
  // tenancy.default_pool, otherwise nullptr (the tenant is refused). The pointer lives as long
  // as the table.
  const std::string* PoolFor(std::string_view tenant) const;

  // The tenant's entry when it is listed under `tenants`, else nullptr.
  const conf::Tenant* Find(std::string_view tenant) const;

  bool IsRoutable(std::string_view tenant) const { return PoolFor(tenant) != nullptr; }

  // tenancy.id_pattern, compiled once for this config generation.
  const TenantValidator& validator() const { return validator_; }

  const std::optional<std::string>& default_pool() const { return default_pool_; }
  size_t listed_tenants() const { return tenants_.size(); }

 private:
  explicit RoutingTable(const conf::Config& config);

  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, conf::Tenant, Hash, std::equal_to<>> tenants_;
  std::optional<std::string> default_pool_;
  TenantValidator validator_;
};

}  // namespace pgtenant::routing
