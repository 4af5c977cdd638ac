// The whole pgtenant configuration (docs/reference.md section 2; docs/configuration.md) as plain
// structs with in-class defaults. A loaded Config is frozen: it is shared as
// std::shared_ptr<const Config> and swapped whole on reload, never mutated in place.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pgtenant::conf {

enum class ClientTlsMode { kDisable, kPrefer, kRequire };
enum class ServerTlsMode { kDisable, kPrefer, kRequire, kVerifyFull };
enum class AuthType { kScramSha256, kMd5, kTrust };
enum class PoolMode { kTransaction, kSession };
enum class TenantSource { kParameter, kOptions, kUser, kSet };

// Durations are kept in milliseconds; 0 means "none" (no timeout).
using Millis = int64_t;

struct ClientTls {
  ClientTlsMode mode = ClientTlsMode::kDisable;
  std::string cert_file;
  std::string key_file;
};

struct Listen {
  std::string host = "127.0.0.1";
  int port = 6432;
  int max_client_connections = 10000;
  ClientTls tls;
};

enum class TenantLabels { kBusiest, kAll, kDedicated, kNone };

struct Metrics {
  std::string host = "127.0.0.1";
  int port = 9930;  // 0 = off
  // Which tenants get their own label on the per-tenant series (see metrics/metrics.h for the
  // series counts): the busiest_tenants tenants with the most server time lately, every tenant,
  // only tenants with a pool other than the default, or none.
  TenantLabels tenant_labels = TenantLabels::kBusiest;
  int busiest_tenants = 20;
};

struct Admin {
  std::string database = "pgtenant";
  std::vector<std::string> users;
};

struct User {
  std::string name;
  // As written in the config (after password_env was resolved): a SCRAM verifier
  // ("SCRAM-SHA-256$..."), an md5 hash ("md5" + 32 hex digits) or plain text.
  std::string password;
  std::string password_env;  // the variable named by password_env, kept for SHOW CONFIG and reload
  bool password_is_plaintext = false;
  std::vector<std::string> tenants;  // "*" means any tenant
  bool any_tenant = false;           // tenants contains "*"
  int max_client_connections = 0;    // 0 = no per-user limit
};

struct Auth {
  AuthType type = AuthType::kScramSha256;
  std::map<std::string, User> users;
};

struct Tenancy {
  std::string variable = "app.tenant_id";
  std::string id_pattern = "^[a-z0-9_]{1,63}$";
  std::vector<TenantSource> sources = {TenantSource::kParameter, TenantSource::kOptions,
                                       TenantSource::kUser, TenantSource::kSet};
  std::string user_separator = ".";
  std::optional<std::string> default_pool;  // absent: unlisted tenants are refused
  bool require_tenant = true;
};

struct Pool {
  std::string name;
  std::string host = "127.0.0.1";
  int port = 5432;
  std::string database;
  std::string user;
  std::string password;  // resolved from password or password_env
  std::string password_env;  // the variable named by password_env, if that was used
  PoolMode mode = PoolMode::kTransaction;
  int size = 20;
  ServerTlsMode tls = ServerTlsMode::kDisable;
  std::string ca_file;
  // Protocol-level prepared statements each server connection keeps (transaction mode maps
  // client statement names onto them); 0 passes names through unmapped.
  int max_prepared_statements = 500;
  // The most server connections of this pool one tenant may hold at once (0: no cap); a
  // tenant's own tenants.X.max_server_connections takes precedence (docs/configuration.md).
  int max_connections_per_tenant = 0;
  // Server connections kept open even when idle (opened at start, never closed as idle).
  int min_size = 0;
};

struct Tenant {
  std::string id;
  std::string pool;
  int max_client_connections = 0;  // 0 = no per-tenant limit
  int max_server_connections = 0;  // of its pool held at once; 0 = the pool's per-tenant cap
  // A pool of its own made from pool_templates.NAME (conf/pool_template.h), instead of `pool`;
  // `database` and `host`, when given, override the template's.
  std::string template_name = {};
  std::string database = {};
  std::string host = {};
  // The Stripe customer billed for this tenant's usage (billing:, docs/billing.md).
  std::string stripe_customer = {};
};

// Usage billing to Stripe meters (docs/billing.md). Off while state_dir is empty.
struct Billing {
  bool enabled() const { return !state_dir.empty(); }
  std::string state_dir;                 // the usage ledger and the dead-letter file
  Millis window = 3600000;               // the reporting window: one meter event per tenant, meter, window
  std::string instance = "pgtenant";     // the identifier prefix; distinct per deployment
  std::string api_base = "https://api.stripe.com";
  std::string api_key_env = "STRIPE_API_KEY";  // the secret key comes from this variable only
  int max_requests_per_second = 100;
  // Meter name (server_ms, transactions, queries, bytes_in, bytes_out) -> Stripe event_name.
  std::map<std::string, std::string> meters;
  // The customer of a tenant without tenants.X.stripe_customer: "{tenant}" is replaced by its id
  // ("" = such tenants are counted, never sent).
  std::string default_customer;
};

struct Timeouts {
  Millis client_login = 15000;
  Millis query_wait = 30000;
  Millis idle_transaction = 0;
  Millis server_connect = 5000;
  Millis server_idle = 600000;
  Millis server_lifetime = 3600000;
  Millis shutdown = 30000;
};

struct Config {
  std::string source_path;  // the file it was loaded from
  Listen listen;
  Metrics metrics;
  Admin admin;
  Auth auth;
  Tenancy tenancy;
  std::map<std::string, Pool> pools;
  // Pools defined once and made per tenant on first use (tenants.ID.template).
  std::map<std::string, Pool> pool_templates;
  std::map<std::string, Tenant> tenants;
  bool config_watch = false;
  Timeouts timeouts;
  uint32_t max_message_size = 64 * 1024 * 1024;  // 08P01 beyond it
  // The budget of server connections across every pool, and per backend host:port (0: none).
  int max_server_connections = 0;
  int max_server_connections_per_host = 0;
  Billing billing;
};

using ConfigPtr = std::shared_ptr<const Config>;

}  // namespace pgtenant::conf
