// What a server connection's session holds that a client cares about — the tenant variable and
// the settings a client gave at startup (product.md section 4) — and the statements that turn
// one into the other. Pure: no I/O.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgtenant::proxy {

struct SessionSettings {
  // The tenant variable's value; nullopt = its default (never set, or RESET).
  std::optional<std::string> tenant;
  // The variable may hold anything: SQL that names it ran on this connection.
  bool tenant_unknown = false;
  // Settings applied with SET, sorted by name.
  std::vector<std::pair<std::string, std::string>> settings;

  void Set(std::string_view name, std::string_view value);
  const std::string* Find(std::string_view name) const;
  void Clear() {
    tenant.reset();
    tenant_unknown = false;
    settings.clear();
  }
};

// True when `name` is a valid (possibly dotted) configuration parameter name.
bool IsValidSettingName(std::string_view name);

// What makes a server session holding `have` hold `want`: SQL statements for the settings
// (one per element) and for the tenant variable (empty when nothing to do). They are kept
// apart because they are sent differently: settings in a transaction of their own (a rollback
// of the client's transaction must not revert them, or the revert would be reported to the
// client with another client's values); the tenant in the client's own first transaction, so
// that if setting it fails the client's statements do not run.
// When `trust_tenant` is false the tenant variable is set even if `have` claims the same value:
// the previous holder of the connection may have changed it behind pgtenant's back (a
// set_config inside a function), so only the same client's own connection is trusted.
struct Prelude {
  std::vector<std::string> settings;
  std::string tenant;
  bool empty() const { return settings.empty() && tenant.empty(); }
};
Prelude BuildPrelude(const SessionSettings& have, const SessionSettings& want,
                     std::string_view tenant_variable, bool trust_tenant);

}  // namespace pgtenant::proxy
