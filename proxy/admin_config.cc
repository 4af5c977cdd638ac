// SHOW CONFIG (declared in proxy/admin_console.h): the running conf::Config flattened to one row
// per key path, with its default and whether a reload can change it. Secrets never leave here:
// passwords are replaced by a mask that only says what kind of secret is configured.
#include <string>
#include <vector>

#include "conf/duration.h"
#include "proxy/admin_console.h"

namespace pgtenant::proxy {

namespace {

using Cell = std::optional<std::string>;

// Keys that a reload cannot change (docs/reference.md section 5: only listen host/port need a
// restart; the metrics endpoint is bound once at start as well).
bool NeedsRestart(const std::string& key) {
  return key == "listen.host" || key == "listen.port" || key == "metrics.host" ||
         key == "metrics.port" || key == "metrics.tenant_labels" || key == "metrics.busiest_tenants";
}

class ConfigRows {
 public:
  void Add(const std::string& key, Cell value, Cell default_value) {
    rows_.push_back({key, std::move(value), std::move(default_value), NeedsRestart(key) ? "no" : "yes"});
  }
  std::vector<std::vector<Cell>>& rows() { return rows_; }

 private:
  std::vector<std::vector<Cell>> rows_;
};

Cell Str(const std::string& s) { return s.empty() ? Cell() : Cell(s); }
Cell Int(int64_t v) { return std::to_string(v); }
Cell Bool(bool b) { return b ? "true" : "false"; }
Cell Dur(conf::Millis ms) { return conf::FormatDuration(ms); }

Cell Join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ",") + item;
  return out.empty() ? Cell() : Cell(out);
}

const char* Name(conf::ClientTlsMode m) {
  switch (m) {
    case conf::ClientTlsMode::kPrefer: return "prefer";
    case conf::ClientTlsMode::kRequire: return "require";
    default: return "disable";
  }
}
const char* Name(conf::ServerTlsMode m) {
  switch (m) {
    case conf::ServerTlsMode::kPrefer: return "prefer";
    case conf::ServerTlsMode::kRequire: return "require";
    case conf::ServerTlsMode::kVerifyFull: return "verify-full";
    default: return "disable";
  }
}
const char* Name(conf::AuthType t) {
  switch (t) {
    case conf::AuthType::kMd5: return "md5";
    case conf::AuthType::kTrust: return "trust";
    default: return "scram-sha-256";
  }
}
const char* Name(conf::TenantLabels t) {
  switch (t) {
    case conf::TenantLabels::kBusiest: return "busiest";
    case conf::TenantLabels::kAll: return "all";
    case conf::TenantLabels::kDedicated: return "dedicated";
    case conf::TenantLabels::kNone: return "none";
  }
  return "?";
}
const char* Name(conf::PoolMode m) { return m == conf::PoolMode::kSession ? "session" : "transaction"; }
const char* Name(conf::TenantSource s) {
  switch (s) {
    case conf::TenantSource::kOptions: return "options";
    case conf::TenantSource::kUser: return "user";
    case conf::TenantSource::kSet: return "set";
    default: return "parameter";
  }
}

Cell Sources(const std::vector<conf::TenantSource>& sources) {
  std::vector<std::string> names;
  for (conf::TenantSource s : sources) names.emplace_back(Name(s));
  return Join(names);
}

// The mask says which kind of secret is configured (useful: a plain-text password is a finding)
// and where it came from, never any of its characters.
Cell MaskedPassword(const std::string& password, const std::string& password_env) {
  if (password.empty()) return std::nullopt;
  std::string kind = password.rfind("SCRAM-SHA-256$", 0) == 0 ? "scram-sha-256 verifier"
                     : password.size() == 35 && password.rfind("md5", 0) == 0 ? "md5 hash"
                                                                              : "plain text";
  if (!password_env.empty()) kind += ", from password_env";
  return "******** (" + kind + ")";
}

void AddProcessKeys(ConfigRows* rows, const conf::Config& c) {
  const conf::Config d;
  rows->Add("config_file", Str(c.source_path), std::nullopt);
  rows->Add("listen.host", c.listen.host, d.listen.host);
  rows->Add("listen.port", Int(c.listen.port), Int(d.listen.port));
  rows->Add("listen.max_client_connections", Int(c.listen.max_client_connections),
            Int(d.listen.max_client_connections));
  rows->Add("listen.tls.mode", Name(c.listen.tls.mode), Name(d.listen.tls.mode));
  rows->Add("listen.tls.cert_file", Str(c.listen.tls.cert_file), std::nullopt);
  rows->Add("listen.tls.key_file", Str(c.listen.tls.key_file), std::nullopt);
  rows->Add("metrics.host", c.metrics.host, d.metrics.host);
  rows->Add("metrics.port", Int(c.metrics.port), Int(d.metrics.port));
  rows->Add("metrics.tenant_labels", Name(c.metrics.tenant_labels), Name(d.metrics.tenant_labels));
  rows->Add("metrics.busiest_tenants", Int(c.metrics.busiest_tenants), Int(d.metrics.busiest_tenants));
  rows->Add("admin.database", c.admin.database, d.admin.database);
  rows->Add("admin.users", Join(c.admin.users), std::nullopt);
  rows->Add("auth.type", Name(c.auth.type), Name(d.auth.type));
  for (const auto& [name, user] : c.auth.users) {
    std::string p = "auth.users." + name + ".";
    rows->Add(p + "password", MaskedPassword(user.password, user.password_env), std::nullopt);
    rows->Add(p + "password_env", Str(user.password_env), std::nullopt);
    rows->Add(p + "tenants", Join(user.tenants), std::nullopt);
  }
}

void AddTenancyKeys(ConfigRows* rows, const conf::Config& c) {
  const conf::Tenancy& t = c.tenancy;
  const conf::Tenancy d;
  rows->Add("tenancy.variable", t.variable, d.variable);
  rows->Add("tenancy.id_pattern", t.id_pattern, d.id_pattern);
  rows->Add("tenancy.sources", Sources(t.sources), Sources(d.sources));
  rows->Add("tenancy.user_separator", t.user_separator, d.user_separator);
  rows->Add("tenancy.default_pool", t.default_pool ? Cell(*t.default_pool) : Cell(), std::nullopt);
  rows->Add("tenancy.require_tenant", Bool(t.require_tenant), Bool(d.require_tenant));
}

void AddPoolKeys(ConfigRows* rows, const conf::Config& c) {
  const conf::Pool d;
  for (const auto& [name, pool] : c.pools) {
    std::string p = "pools." + name + ".";
    rows->Add(p + "host", pool.host, d.host);
    rows->Add(p + "port", Int(pool.port), Int(d.port));
    rows->Add(p + "database", Str(pool.database), std::nullopt);
    rows->Add(p + "user", Str(pool.user), std::nullopt);
    rows->Add(p + "password", MaskedPassword(pool.password, pool.password_env), std::nullopt);
    rows->Add(p + "password_env", Str(pool.password_env), std::nullopt);
    rows->Add(p + "mode", Name(pool.mode), Name(d.mode));
    rows->Add(p + "size", Int(pool.size), Int(d.size));
    rows->Add(p + "tls", Name(pool.tls), Name(d.tls));
    rows->Add(p + "ca_file", Str(pool.ca_file), std::nullopt);
    rows->Add(p + "max_prepared_statements", Int(pool.max_prepared_statements),
              Int(d.max_prepared_statements));
    rows->Add(p + "max_connections_per_tenant", Int(pool.max_connections_per_tenant),
              Int(d.max_connections_per_tenant));
    rows->Add(p + "min_size", Int(pool.min_size), Int(d.min_size));
  }
  const conf::Tenant dt;
  for (const auto& [id, tenant] : c.tenants) {
    std::string p = "tenants." + id + ".";
    rows->Add(p + "pool", Str(tenant.pool), std::nullopt);
    rows->Add(p + "max_client_connections", Int(tenant.max_client_connections),
              Int(dt.max_client_connections));
    rows->Add(p + "max_server_connections", Int(tenant.max_server_connections),
              Int(dt.max_server_connections));
  }
}

void AddTimeoutKeys(ConfigRows* rows, const conf::Config& c) {
  const conf::Config d;
  rows->Add("config_watch", Bool(c.config_watch), Bool(d.config_watch));
  const conf::Timeouts& t = c.timeouts;
  const conf::Timeouts& dt = d.timeouts;
  rows->Add("timeouts.client_login", Dur(t.client_login), Dur(dt.client_login));
  rows->Add("timeouts.query_wait", Dur(t.query_wait), Dur(dt.query_wait));
  rows->Add("timeouts.idle_transaction", Dur(t.idle_transaction), Dur(dt.idle_transaction));
  rows->Add("timeouts.server_connect", Dur(t.server_connect), Dur(dt.server_connect));
  rows->Add("timeouts.server_idle", Dur(t.server_idle), Dur(dt.server_idle));
  rows->Add("timeouts.server_lifetime", Dur(t.server_lifetime), Dur(dt.server_lifetime));
  rows->Add("timeouts.shutdown", Dur(t.shutdown), Dur(dt.shutdown));
  rows->Add("limits.max_message_size", Int(c.max_message_size), Int(d.max_message_size));
  rows->Add("limits.max_server_connections", Int(c.max_server_connections), Int(d.max_server_connections));
  rows->Add("limits.max_server_connections_per_host", Int(c.max_server_connections_per_host),
            Int(d.max_server_connections_per_host));
}

}  // namespace

void RenderConfig(std::string* out, const conf::Config& config) {
  ConfigRows rows;
  AddProcessKeys(&rows, config);
  AddTenancyKeys(&rows, config);
  AddPoolKeys(&rows, config);
  AddTimeoutKeys(&rows, config);
  AppendResultSet(out, {"key", "value", "default", "changeable"}, rows.rows(), "SHOW");
}

}  // namespace pgtenant::proxy
