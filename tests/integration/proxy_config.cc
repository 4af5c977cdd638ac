// The standard pgtenant config of the integration tests (harness.h).
#include <cstdlib>
#include <sstream>

#include "integration/harness.h"

namespace pgtenant::testing {
namespace {

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r");
  size_t e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

}  // namespace

std::string ProxyConfig(int listen_port, const PgFixture& pg, const ProxyConfigOptions& o) {
  std::ostringstream y;
  const std::string pg_port = std::to_string(pg.port);
  y << "listen:\n  host: 127.0.0.1\n  port: " << listen_port << "\n" << o.listen_extra
    << "metrics:\n  port: 0\n"
    << "admin:\n  database: pgtenant\n  users: [admin]\n"
    << "auth:\n  type: scram-sha-256\n  users:\n"
    << "    app:\n      password: \"app_pw\"\n      tenants: [\"*\"]\n"
    << "    admin:\n      password: \"admin_pw\"\n"
    << "    acme_service:\n      password: \"acme_pw\"\n      tenants: [acme]\n"
    << "tenancy:\n  variable: app.tenant_id\n  sources: [parameter, options, user, set]\n"
    << "  default_pool: shared\n  require_tenant: false\n"
    << "pools:\n"
    << "  shared:\n    host: 127.0.0.1\n    port: " << pg_port << "\n    database: app\n"
    << "    user: app_rls\n    password: \"app_rls_pw\"\n    mode: " << o.shared_mode << "\n"
    << "    size: " << o.shared_size << "\n" << o.shared_pool_extra
    << "  acme:\n    host: 127.0.0.1\n    port: " << pg_port << "\n    database: acme\n"
    << "    user: app_rls\n    password: \"app_rls_pw\"\n    mode: transaction\n"
    << "    size: " << o.acme_size << "\n"
    << "tenants:\n  acme: { pool: acme }\n" << o.tenants_extra;
  if (!o.timeouts.empty()) {
    y << "timeouts:\n";
    for (const auto& [key, value] : o.timeouts) y << "  " << key << ": " << value << "\n";
  }
  y << o.extra_yaml;
  return y.str();
}

std::string DefaultProxyConfig(int listen_port, const PgFixture& pg,
                               const std::string& extra_yaml) {
  ProxyConfigOptions options;
  options.extra_yaml = extra_yaml;
  return ProxyConfig(listen_port, pg, options);
}

int ListenPortOf(const std::string& yaml) {
  std::istringstream in(yaml);
  std::string line;
  bool in_listen = false;
  while (std::getline(in, line)) {
    if (line.rfind("listen:", 0) == 0) {
      // Flow style: listen: { host: ..., port: N }
      size_t p = line.find("port:");
      if (p != std::string::npos) return atoi(line.c_str() + p + 5);
      in_listen = true;
      continue;
    }
    if (!line.empty() && line[0] != ' ' && line[0] != '#') in_listen = false;
    std::string t = Trim(line);
    if (in_listen && t.rfind("port:", 0) == 0) return atoi(t.c_str() + 5);
  }
  return 0;
}

}  // namespace pgtenant::testing
