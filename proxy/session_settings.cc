#include "proxy/session_settings.h"

#include <algorithm>

#include "routing/injection.h"

namespace pgtenant::proxy {
namespace {

bool IsIdentStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsIdentChar(char c) { return IsIdentStart(c) || (c >= '0' && c <= '9') || c == '$'; }

// Each dotted part double-quoted: setting names come from clients, and quoting makes any
// valid name safe to splice into SQL.
std::string QuoteName(std::string_view name) {
  std::string out;
  size_t start = 0;
  while (true) {
    size_t dot = name.find('.', start);
    std::string_view part = name.substr(start, dot == std::string_view::npos ? name.size() - start : dot - start);
    out += '"';
    for (char c : part) {
      // Postgres folds unquoted names to lower case; quoting must not change which setting
      // the client meant.
      out += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    out += '"';
    if (dot == std::string_view::npos) break;
    out += '.';
    start = dot + 1;
  }
  return out;
}

std::string LowerName(std::string_view name) {
  std::string out(name);
  for (char& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return out;
}

}  // namespace

const SettingList SessionSettings::kNoSettings;

void SessionSettings::Set(std::string_view name, std::string_view value) {
  const std::string* current = Find(name);
  if (current != nullptr && *current == value) return;  // keeps sharing the list
  auto copy = list_ ? std::make_shared<SettingList>(*list_) : std::make_shared<SettingList>();
  auto it = std::lower_bound(copy->begin(), copy->end(), name,
                             [](const auto& p, std::string_view n) { return p.first < n; });
  if (it != copy->end() && it->first == name) {
    it->second = value;
  } else {
    copy->emplace(it, std::string(name), std::string(value));
  }
  list_ = std::move(copy);
}

void SessionSettings::Erase(std::string_view name) {
  if (Find(name) == nullptr) return;
  auto copy = std::make_shared<SettingList>(*list_);
  copy->erase(std::find_if(copy->begin(), copy->end(), [&](const auto& p) { return p.first == name; }));
  if (copy->empty()) {
    list_.reset();
  } else {
    list_ = std::move(copy);
  }
}

const std::string* SessionSettings::Find(std::string_view name) const {
  const SettingList& list = settings();
  auto it = std::lower_bound(list.begin(), list.end(), name,
                             [](const auto& p, std::string_view n) { return p.first < n; });
  return it != list.end() && it->first == name ? &it->second : nullptr;
}

void SettingsInterner::Intern(SessionSettings* settings) {
  if (!settings->list_ || settings->list_->empty()) {
    settings->list_.reset();
    return;
  }
  for (const auto& known : recent_) {
    if (known && (known == settings->list_ || *known == *settings->list_)) {
      settings->list_ = known;
      return;
    }
  }
  recent_[next_] = settings->list_;
  next_ = (next_ + 1) % kRemembered;
}

bool IsValidSettingName(std::string_view name) {
  if (name.empty() || name.size() > 63 * 3) return false;
  bool part_start = true;
  for (char c : name) {
    if (c == '.') {
      if (part_start) return false;
      part_start = true;
      continue;
    }
    if (part_start ? !IsIdentStart(c) : !IsIdentChar(c)) return false;
    part_start = false;
  }
  return !part_start;
}

Prelude BuildPrelude(const SessionSettings& have_known, const SessionSettings& want, bool trust_tenant,
                     bool have_unknown) {
  Prelude out;
  static const SessionSettings kDefaults;
  // RESET ALL leaves the session with the server's defaults, as a new connection has them
  // (role and session_authorization excepted: they pin the client, and a pinned connection is
  // reset with DISCARD ALL before reuse).
  if (have_unknown) out.settings.push_back("RESET ALL");
  const SessionSettings& have = have_unknown ? kDefaults : have_known;
  for (const auto& [name, value] : want.settings()) {
    const std::string* cur = have.Find(name);
    if (cur == nullptr || *cur != value) {
      // set_config, not SET: it takes the value as one string and parses it as the server
      // parses a startup parameter, so a list keeps its elements (`search_path` given at startup
      // as "app,public"), where `SET search_path TO 'app,public'` names one schema "app,public".
      out.settings.push_back("SELECT pg_catalog.set_config(" + routing::QuoteLiteral(LowerName(name)) + ", " +
                             routing::QuoteLiteral(value) + ", false)");
    }
  }
  for (const auto& [name, value] : have.settings()) {
    if (want.Find(name) == nullptr) out.settings.push_back("RESET " + QuoteName(name));
  }
  out.set_tenant = have_unknown || !trust_tenant || have.tenant != want.tenant;
  return out;
}

std::string TenantSql(const std::optional<std::string>& tenant, std::string_view tenant_variable) {
  return tenant ? routing::BuildSetTenantSql(tenant_variable, *tenant) : routing::BuildResetTenantSql(tenant_variable);
}

}  // namespace pgtenant::proxy
