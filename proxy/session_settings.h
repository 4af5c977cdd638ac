// What a server connection's session holds that a client cares about — the tenant variable and
// the settings a client gave at startup (docs/reference.md section 4) — and the statements that turn
// one into the other. Pure: no I/O.
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgtenant::proxy {

// Startup and SET settings, sorted by name.
using SettingList = std::vector<std::pair<std::string, std::string>>;

class SettingsInterner;

class SessionSettings {
 public:
  // The tenant variable's value; nullopt = its default (never set, or RESET).
  std::optional<std::string> tenant;

  const SettingList& settings() const { return list_ ? *list_ : kNoSettings; }
  void Set(std::string_view name, std::string_view value);
  const std::string* Find(std::string_view name) const;
  void Erase(std::string_view name);
  bool SameSettingsAs(const SessionSettings& other) const {
    return list_ == other.list_ || settings() == other.settings();
  }
  // This session now has `other`'s settings (shares its list; costs no copy).
  void TakeSettingsOf(const SessionSettings& other) { list_ = other.list_; }
  void Clear() {
    tenant.reset();
    list_.reset();
  }
 private:
  friend class SettingsInterner;
  static const SettingList kNoSettings;
  // Immutable once shared: Set() copies it first. Thousands of clients of one application send
  // the same startup settings, and a server holding a client's settings shares that client's
  // list, so most sessions point at one list and comparing two is a pointer comparison.
  std::shared_ptr<const SettingList> list_;
};

// Remembers the most recent distinct setting lists so that a new client with the same startup
// settings as an earlier one shares its list instead of holding a copy (an idle client's
// settings would otherwise be ~100 bytes of its memory). Bounded: the oldest list is forgotten
// (not freed: sessions still holding it keep it alive).
class SettingsInterner {
 public:
  void Intern(SessionSettings* settings);

 private:
  static constexpr size_t kRemembered = 16;
  std::array<std::shared_ptr<const SettingList>, kRemembered> recent_;
  size_t next_ = 0;
};

// True when `name` is a valid (possibly dotted) configuration parameter name.
bool IsValidSettingName(std::string_view name);

// What makes a server session holding `have` hold `want`: SQL statements for the settings
// (one per element) and whether the tenant variable must be set (TenantSql). They are kept
// apart because they are sent differently: settings in a transaction of their own (a rollback
// of the client's transaction must not revert them, or the revert would be reported to the
// client with another client's values); the tenant in the client's own first transaction, so
// that if setting it fails the client's statements do not run.
// When `trust_tenant` is false the tenant variable is set even if `have` claims the same value:
// the previous holder of the connection may have changed it behind pgtenant's back (a
// set_config inside a function), so only the same client's own connection is trusted.
// When `have_unknown` the session's settings may be anything (a client's RESET whose block may
// have rolled back): the prelude starts with RESET ALL and sets every wanted setting and the
// tenant again.
struct Prelude {
  std::vector<std::string> settings;
  bool set_tenant = false;  // to want.tenant; a flag, not SQL: usually it goes as a Bind
  bool empty() const { return settings.empty() && !set_tenant; }
};
Prelude BuildPrelude(const SessionSettings& have, const SessionSettings& want, bool trust_tenant,
                     bool have_unknown = false);
// SQL that sets the tenant variable to `tenant`, or RESETs it for nullopt (routing/injection.h
// quotes both).
std::string TenantSql(const std::optional<std::string>& tenant, std::string_view tenant_variable);

}  // namespace pgtenant::proxy
