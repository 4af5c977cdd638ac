#include "conf/validate.h"

#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <optional>
#include <regex>
#include <set>
#include <system_error>

#include "billing/meter.h"   // header only: the meter names are the ledger's
#include "billing/window.h"  // header only: ValidInstance

namespace pgtenant::conf {
namespace {

constexpr int64_t kMinMessageSize = 1024;
constexpr int64_t kMaxMessageSize = 1024 * 1024 * 1024;

bool IsIdentStart(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool IsIdentChar(char c) { return IsIdentStart(c) || (c >= '0' && c <= '9'); }
bool IsHexLower(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

bool IsBase64(std::string_view s, size_t decoded_bytes = 0) {
  if (s.empty() || s.size() % 4 != 0) return false;
  size_t padding = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '=') {
      if (i < s.size() - 2) return false;
      ++padding;
    } else if (padding > 0 || !(IsIdentChar(c) || c == '+' || c == '/') || c == '_') {
      return false;
    }
  }
  return decoded_bytes == 0 || s.size() / 4 * 3 - padding == decoded_bytes;
}

std::string Quote(const std::string& s) { return "\"" + s + "\""; }

// What std::regex must not be handed. libstdc++ 12 reads the counts of {n,m} and back-reference
// numbers into a long without an overflow check (undefined behaviour, fixed in GCC 13), and
// compiles alternatives recursively, so a long enough pattern exhausts the stack. Returns ""
// when the pattern may be compiled.
constexpr size_t kMaxIdPatternLength = 1024;
std::string IdPatternLimit(const std::string& pattern) {
  if (pattern.size() > kMaxIdPatternLength) return "longer than 1024 characters";
  size_t digits = 0;
  for (char c : pattern) {
    digits = (c >= '0' && c <= '9') ? digits + 1 : 0;
    if (digits > 9) return "has a number of more than 9 digits";
  }
  return "";
}

std::vector<std::string> KeysOf(const auto& map) {
  std::vector<std::string> keys;
  for (const auto& entry : map) keys.push_back(entry.first);
  return keys;
}

class Validator {
 public:
  Validator(const Config& config, const SourceLines& lines, std::vector<Diagnostic>* out)
      : c_(config), lines_(lines), out_(out) {}

  void Run() {
    Listen();
    Metrics();
    Admin();
    Tenancy();  // before Tenants and Auth: they need the compiled id_pattern
    Pools();
    Tenants();
    Auth();
    Range("limits.max_message_size", c_.max_message_size, kMinMessageSize, kMaxMessageSize);
    Range("limits.max_server_connections", c_.max_server_connections, 0, INT32_MAX);
    Range("limits.max_server_connections_per_host", c_.max_server_connections_per_host, 0, INT32_MAX);
    Billing();
  }

 private:
  void Report(const std::string& path, std::string message, std::string hint, bool warning) {
    out_->push_back(Diagnostic{path, lines_.LineOf(path), std::move(message), std::move(hint),
                               warning});
  }
  void Error(const std::string& path, std::string message, std::string hint = "") {
    Report(path, std::move(message), std::move(hint), false);
  }
  void Warning(const std::string& path, std::string message, std::string hint = "") {
    Report(path, std::move(message), std::move(hint), true);
  }

  void Range(const std::string& path, int64_t value, int64_t min, int64_t max) {
    if (value >= min && value <= max) return;
    std::string got = ", got " + std::to_string(value);
    if (max == INT32_MAX) {
      Error(path, "must be at least " + std::to_string(min) + got);
    } else {
      Error(path, "must be between " + std::to_string(min) + " and " + std::to_string(max) + got);
    }
  }

  // A required string: absent and empty are reported differently because the fixes differ.
  void Required(const std::string& path, const std::string& value, const std::string& hint) {
    if (!value.empty()) return;
    Error(path, lines_.Has(path) ? "must not be empty" : "is required", hint);
  }

  void ReadableFile(const std::string& path, const std::string& file) {
    if (file.empty()) return;
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0) {
      Error(path, "cannot read " + file + ": " + std::generic_category().message(errno));
    } else if (S_ISDIR(st.st_mode)) {
      Error(path, file + " is a directory, not a file");
    } else if (::access(file.c_str(), R_OK) != 0) {
      Error(path, "cannot read " + file + ": " + std::generic_category().message(errno));
    }
  }

  void NamesPool(const std::string& path, const std::string& pool) {
    if (c_.pools.count(pool) != 0) return;
    std::string close = ClosestMatch(pool, KeysOf(c_.pools));
    Error(path, "no pool named " + Quote(pool),
          close.empty() ? "name one of the pools under 'pools'" : "did you mean '" + close + "'?");
  }

  bool MatchesIdPattern(const std::string& id) const {
    return !id_regex_ || std::regex_match(id, *id_regex_);
  }

  // password / password_env of a pool or user at `prefix`. Returns true if either was given.
  // Only the variable's name is ever printed, never its value.
  bool Secret(const std::string& prefix, const std::string& env_name) {
    bool has_password = lines_.Has(prefix + ".password");
    bool has_env = lines_.Has(prefix + ".password_env");
    std::string env_path = prefix + ".password_env";
    if (has_password && has_env) {
      Error(env_path, "give either password or password_env, not both");
    } else if (has_env && env_name.empty()) {
      Error(env_path, "must name an environment variable");
    } else if (has_env) {
      const char* value = std::getenv(env_name.c_str());
      if (value == nullptr) {
        Error(env_path, "environment variable " + env_name + " is not set",
              "export " + env_name + " before starting pgtenant");
      } else if (*value == '\0') {
        Error(env_path, "environment variable " + env_name + " is empty");
      }
    }
    return has_password || has_env;
  }

  void Listen() {
    const auto& l = c_.listen;
    Required("listen.host", l.host, "an address to listen on, e.g. 127.0.0.1 or 0.0.0.0");
    if (!l.host.empty() && !IsListenHost(l.host)) {
      Error("listen.host", Quote(l.host) + " is not an IP address, \"*\" or a host name",
            "e.g. 127.0.0.1, 0.0.0.0, ::, * (every address) or localhost");
    }
    Range("listen.port", l.port, 1, 65535);
    Range("listen.max_client_connections", l.max_client_connections, 1, INT32_MAX);
    if (l.tls.mode == ClientTlsMode::kDisable) return;
    std::string with = "required with listen.tls.mode " +
                       std::string(l.tls.mode == ClientTlsMode::kPrefer ? "prefer" : "require");
    Required("listen.tls.cert_file", l.tls.cert_file, with);
    Required("listen.tls.key_file", l.tls.key_file, with);
    ReadableFile("listen.tls.cert_file", l.tls.cert_file);
    ReadableFile("listen.tls.key_file", l.tls.key_file);
  }

  void Metrics() {
    Range("metrics.port", c_.metrics.port, 0, 65535);
    if (c_.metrics.port != 0) Required("metrics.host", c_.metrics.host, "or set metrics.port: 0");
    // Each label costs 25 series (docs/operations.md); a thousand is already a big scrape.
    Range("metrics.busiest_tenants", c_.metrics.busiest_tenants, 1, 1000);
  }

  void Admin() {
    Required("admin.database", c_.admin.database, "the database name of the admin console");
    for (size_t i = 0; i < c_.admin.users.size(); ++i) {
      const std::string& user = c_.admin.users[i];
      if (c_.auth.users.count(user) != 0) continue;
      std::string close = ClosestMatch(user, KeysOf(c_.auth.users));
      Error("admin.users[" + std::to_string(i) + "]", "no user named " + Quote(user) + " in auth.users",
            close.empty() ? "add it under auth.users" : "did you mean '" + close + "'?");
    }
  }

  void Tenancy() {
    const auto& t = c_.tenancy;
    if (!IsCustomGucName(t.variable)) {
      Error("tenancy.variable", Quote(t.variable) + " is not a custom setting name",
            "use two or more dot-separated identifiers, such as app.tenant_id");
    }
    const std::string limit = IdPatternLimit(t.id_pattern);
    if (!limit.empty()) {
      Error("tenancy.id_pattern", "the pattern " + limit,
            "tenant ids are short: write a short pattern, e.g. ^[a-z0-9_]{1,63}$");
    } else {
      try {
        id_regex_.emplace(t.id_pattern, std::regex::ECMAScript);
      } catch (const std::regex_error& e) {
        Error("tenancy.id_pattern", std::string("not a valid regular expression: ") + e.what(),
              "ECMAScript syntax, e.g. ^[a-z0-9_]{1,63}$");
      }
    }
    if (t.sources.empty() && lines_.Has("tenancy.sources")) {
      Error("tenancy.sources", "must name at least one source",
            "choose from parameter, options, user, set");
    }
    std::set<TenantSource> seen;
    for (size_t i = 0; i < t.sources.size(); ++i) {
      if (!seen.insert(t.sources[i]).second) {
        Error("tenancy.sources[" + std::to_string(i) + "]", "duplicate source",
              "list each source once");
      }
    }
    Required("tenancy.user_separator", t.user_separator, "e.g. \".\" so user app.acme is app for acme");
    if (t.default_pool) NamesPool("tenancy.default_pool", *t.default_pool);
  }

  void Pools() {
    if (c_.pools.empty()) {
      Error("pools", "at least one pool is required",
            "add a pool under 'pools' with host, port, database and user");
    }
    for (const auto& [name, pool] : c_.pools) CheckPool("pools." + name, name, pool);
    for (const auto& [name, pool] : c_.pool_templates) CheckPool("pool_templates." + name, name, pool);
  }

  void CheckPool(const std::string& p, const std::string& name, const Pool& pool) {
    if (name.find('/') != std::string::npos) {
      Error(p, "a pool name cannot contain '/' (pgtenant names the pools it makes from templates TEMPLATE/TENANT)");
    }
    Required(p + ".host", pool.host, "the PostgreSQL server's address");
    Range(p + ".port", pool.port, 1, 65535);
    Required(p + ".database", pool.database, "the database this pool connects to");
    Required(p + ".user", pool.user, "the role this pool logs in as");
    Secret(p, pool.password_env);  // neither is fine: the server may trust this role
    Range(p + ".size", pool.size, 1, INT32_MAX);
    Range(p + ".min_size", pool.min_size, 0, std::max(pool.size, 0));
    Range(p + ".max_prepared_statements", pool.max_prepared_statements, 0, 100000);
    Range(p + ".max_connections_per_tenant", pool.max_connections_per_tenant, 0, INT32_MAX);
    if (pool.tls == ServerTlsMode::kVerifyFull) {
      Required(p + ".ca_file", pool.ca_file, "verify-full checks the server against this CA");
    }
    ReadableFile(p + ".ca_file", pool.ca_file);
  }

  void Tenants() {
    for (const auto& [id, tenant] : c_.tenants) {
      std::string p = "tenants." + id;
      if (!MatchesIdPattern(id)) {
        Error(p, "tenant id " + Quote(id) + " does not match tenancy.id_pattern " +
              Quote(c_.tenancy.id_pattern));
      }
      if (!tenant.template_name.empty()) {
        if (!tenant.pool.empty()) Error(p, "give either pool or template, not both");
        if (c_.pool_templates.count(tenant.template_name) == 0) {
          std::string close = ClosestMatch(tenant.template_name, KeysOf(c_.pool_templates));
          Error(p + ".template", "no pool template named " + Quote(tenant.template_name),
                close.empty() ? "name one of the templates under 'pool_templates'" : "did you mean '" + close + "'?");
        }
      } else if (!tenant.database.empty() || !tenant.host.empty()) {
        Error(p + (tenant.database.empty() ? ".host" : ".database"),
              "overrides a template's value: it needs tenants." + id + ".template");
      } else if (!tenant.pool.empty()) {
        NamesPool(p + ".pool", tenant.pool);
      } else if (!c_.tenancy.default_pool) {
        Error(p + ".pool", "is required: there is no tenancy.default_pool to fall back on");
      }
      Range(p + ".max_client_connections", tenant.max_client_connections, 0, INT32_MAX);
      Range(p + ".max_server_connections", tenant.max_server_connections, 0, INT32_MAX);
    }
  }

  void Billing() {
    const conf::Billing& b = c_.billing;
    if (!b.enabled()) {
      if (lines_.Has("billing")) {
        Error("billing.state_dir", "is required to meter usage", "a directory pgtenant may write; or remove 'billing'");
      }
      return;
    }
    // Windows shorter than a second are for nobody; longer than a day would keep usage from
    // Stripe for too long (and Stripe bills by the period anyway).
    if (b.window < 1000 || b.window > 86400000 || b.window % 1000 != 0) {
      Error("billing.window", "must be a whole number of seconds from 1s to 24h");
    }
    if (!billing::ValidInstance(b.instance)) {
      Error("billing.instance", "must be 1 to 20 characters of a-z, 0-9 and _",
            "a short name of this deployment: it begins every meter event's identifier");
    }
    if (b.api_base.rfind("https://", 0) != 0 && b.api_base.rfind("http://127.0.0.1", 0) != 0 &&
        b.api_base.rfind("http://localhost", 0) != 0) {
      Error("billing.api_base", "must be an https:// URL", "plain http is allowed only to 127.0.0.1 or localhost (tests)");
    }
    Required("billing.api_key_env", b.api_key_env, "the environment variable holding the Stripe secret key");
    Range("billing.max_requests_per_second", b.max_requests_per_second, 1, 1000);
    std::vector<std::string> names(billing::kMeterNames.begin(), billing::kMeterNames.end());
    for (const auto& [meter, event] : b.meters) {
      std::string p = "billing.meters." + meter;
      if (!billing::MeterFromName(meter)) {
        std::string close = ClosestMatch(meter, names);
        Error(p, "no meter named " + Quote(meter),
              close.empty() ? "meters are server_ms, transactions, queries, bytes_in, bytes_out" : "did you mean '" + close + "'?");
      }
      if (event.empty() || event.size() > 100) Error(p, "needs the Stripe meter's event_name (1 to 100 characters)");
    }
    if (b.meters.empty()) Warning("billing.meters", "no meter is billed: usage is counted but nothing is sent");
  }

  void Auth() {
    for (const auto& [name, user] : c_.auth.users) {
      std::string p = "auth.users." + name;
      if (!Secret(p, user.password_env) && c_.auth.type != AuthType::kTrust) {
        Error(p, "needs a password or password_env", "or use auth.type: trust");
      }
      UserPassword(p, user);
      UserTenants(p, user);
      Range(p + ".max_client_connections", user.max_client_connections, 0, INT32_MAX);
    }
  }

  void UserPassword(const std::string& p, const User& user) {
    bool from_file = lines_.Has(p + ".password");
    std::string path = from_file ? p + ".password" : p + ".password_env";
    switch (ClassifyPassword(user.password)) {
      case PasswordKind::kEmpty:
        if (from_file && c_.auth.type != AuthType::kTrust) Error(path, "must not be empty");
        break;
      case PasswordKind::kMd5Hash:
        if (c_.auth.type == AuthType::kScramSha256) {
          Error(path, "an md5 hash cannot be checked with auth.type scram-sha-256",
                "store a SCRAM verifier or the password itself, or set auth.type: md5");
        }
        break;
      case PasswordKind::kScramVerifier:
        if (!IsWellFormedScramVerifier(user.password)) {
          Error(path, "malformed SCRAM verifier",
                "copy it whole from pg_authid.rolpassword: "
                "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>");
        }
        break;
      case PasswordKind::kPlaintext:
        if (from_file) {
          Warning(path, "plaintext password",
                  "store a SCRAM verifier (SCRAM-SHA-256$...) or use password_env");
        }
        break;
    }
  }

  void UserTenants(const std::string& p, const User& user) {
    for (size_t i = 0; i < user.tenants.size(); ++i) {
      const std::string& id = user.tenants[i];
      std::string path = p + ".tenants[" + std::to_string(i) + "]";
      if (id == "*") continue;
      if (!MatchesIdPattern(id)) {
        Error(path, Quote(id) + " is neither \"*\" nor a tenant id matching tenancy.id_pattern");
      } else if (c_.tenants.count(id) == 0 && !c_.tenancy.default_pool) {
        Warning(path, "tenant " + Quote(id) + " has no pool, so this user can never act as it",
                "list it under 'tenants' or set tenancy.default_pool");
      }
    }
  }

  const Config& c_;
  const SourceLines& lines_;
  std::vector<Diagnostic>* out_;
  std::optional<std::regex> id_regex_;  // unset when id_pattern does not compile
};

}  // namespace

void ValidateConfig(const Config& config, const SourceLines& lines, std::vector<Diagnostic>* out) {
  Validator(config, lines, out).Run();
}

PasswordKind ClassifyPassword(std::string_view stored) {
  if (stored.empty()) return PasswordKind::kEmpty;
  if (stored.starts_with("SCRAM-SHA-256$")) return PasswordKind::kScramVerifier;
  if (stored.size() == 35 && stored.starts_with("md5")) {
    bool hex = true;
    for (char c : stored.substr(3)) hex = hex && IsHexLower(c);
    if (hex) return PasswordKind::kMd5Hash;
  }
  return PasswordKind::kPlaintext;
}

bool IsWellFormedScramVerifier(std::string_view stored) {
  constexpr std::string_view kPrefix = "SCRAM-SHA-256$";
  if (!stored.starts_with(kPrefix)) return false;
  std::string_view rest = stored.substr(kPrefix.size());
  size_t colon1 = rest.find(':');
  size_t dollar = rest.find('$');
  if (colon1 == std::string_view::npos || dollar == std::string_view::npos || dollar < colon1) {
    return false;
  }
  size_t colon2 = rest.find(':', dollar);
  if (colon2 == std::string_view::npos) return false;
  std::string_view iterations = rest.substr(0, colon1);
  if (iterations.empty() || iterations.size() > 9 || iterations == "0") return false;
  for (char c : iterations) {
    if (c < '0' || c > '9') return false;
  }
  return IsBase64(rest.substr(colon1 + 1, dollar - colon1 - 1)) &&
         IsBase64(rest.substr(dollar + 1, colon2 - dollar - 1), 32) &&
         IsBase64(rest.substr(colon2 + 1), 32);
}

bool IsCustomGucName(std::string_view name) {
  size_t parts = 0;
  size_t start = 0;
  while (true) {
    size_t end = name.find('.', start);
    std::string_view part = name.substr(start, end == std::string_view::npos ? name.npos : end - start);
    if (part.empty() || !IsIdentStart(part[0])) return false;
    for (char c : part) {
      if (!IsIdentChar(c)) return false;
    }
    ++parts;
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return parts >= 2;
}

bool IsListenHost(std::string_view host) {
  if (host == "*") return true;
  std::string text(host);
  unsigned char addr[16];
  if (inet_pton(AF_INET, text.c_str(), addr) == 1 || inet_pton(AF_INET6, text.c_str(), addr) == 1) {
    return true;
  }
  if (host.size() > 1 && host.back() == '.') host.remove_suffix(1);  // "db.example.com."
  if (host.empty() || host.size() > 253) return false;
  size_t label = 0;
  for (size_t i = 0; i <= host.size(); ++i) {
    if (i == host.size() || host[i] == '.') {
      // An empty label ("a..b", ".a") or one that begins or ends with '-' is not a name.
      if (label == 0 || label > 63 || host[i - label] == '-' || host[i - 1] == '-') return false;
      label = 0;
      continue;
    }
    char c = host[i];
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_';
    if (!ok) return false;
    ++label;
  }
  return true;
}

}  // namespace pgtenant::conf
