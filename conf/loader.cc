#include "conf/loader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <system_error>
#include <utility>

#include "conf/pool_template.h"
#include "conf/validate.h"
#include "conf/yaml_documents.h"
#include "conf/yaml_reader.h"

namespace pgtenant::conf {
namespace {

// A config with ten thousand tenants is well under a megabyte; anything near this is a mistake
// (wrong file, a log, /dev/zero) and is refused before yaml-cpp tries to build a tree of it.
constexpr off_t kMaxConfigBytes = 16 * 1024 * 1024;

using Node = YAML::Node;
using Path = std::string;
using Fields = std::vector<YamlReader::Field>;

// Step one: the schema. Each section lists its keys and how each is read; YamlReader does the
// type checks and reports unknown keys against these lists.
class ConfigDecoder {
 public:
  ConfigDecoder(YamlReader* reader, Config* config) : r_(*reader), c_(*config) {}

  void Decode(const Node& root) {
    r_.ReadMap(root, "", {
        {"listen", [&](const Node& n, const Path& p) { Listen(n, p); }},
        {"metrics", [&](const Node& n, const Path& p) { Metrics(n, p); }},
        {"admin", [&](const Node& n, const Path& p) { Admin(n, p); }},
        {"auth", [&](const Node& n, const Path& p) { Auth(n, p); }},
        {"tenancy", [&](const Node& n, const Path& p) { Tenancy(n, p); }},
        {"pools", [&](const Node& n, const Path& p) { Pools(n, p, &c_.pools); }},
        {"pool_templates", [&](const Node& n, const Path& p) { Pools(n, p, &c_.pool_templates); }},
        {"tenants", [&](const Node& n, const Path& p) { Tenants(n, p); }},
        {"config_watch", Bool(&c_.config_watch)},
        {"timeouts", [&](const Node& n, const Path& p) { Timeouts(n, p); }},
        {"limits", [&](const Node& n, const Path& p) { Limits(n, p); }},
        {"billing", [&](const Node& n, const Path& p) { Billing(n, p); }},
    });
  }

 private:
  YamlReader::ValueReader Str(std::string* out) {
    return [this, out](const Node& n, const Path& p) { r_.ReadString(n, p, out); };
  }
  YamlReader::ValueReader Int(int* out) {
    return [this, out](const Node& n, const Path& p) { r_.ReadInt(n, p, out); };
  }
  YamlReader::ValueReader Bool(bool* out) {
    return [this, out](const Node& n, const Path& p) { r_.ReadBool(n, p, out); };
  }
  YamlReader::ValueReader Duration(Millis* out) {
    return [this, out](const Node& n, const Path& p) { r_.ReadDuration(n, p, out); };
  }
  YamlReader::ValueReader List(std::vector<std::string>* out) {
    return [this, out](const Node& n, const Path& p) { r_.ReadStringList(n, p, out); };
  }
  template <typename E>
  YamlReader::ValueReader Enum(E* out, std::vector<std::pair<std::string, E>> table) {
    return [this, out, table = std::move(table)](const Node& n, const Path& p) {
      r_.ReadEnum(n, p, table, out);
    };
  }

  void Listen(const Node& node, const Path& path) {
    ::pgtenant::conf::Listen& l = c_.listen;
    r_.ReadMap(node, path, {
        {"host", Str(&l.host)},
        {"port", Int(&l.port)},
        {"max_client_connections", Int(&l.max_client_connections)},
        {"tls", [&](const Node& n, const Path& p) {
           r_.ReadMap(n, p, {
               {"mode", Enum(&l.tls.mode, {{"disable", ClientTlsMode::kDisable},
                                           {"prefer", ClientTlsMode::kPrefer},
                                           {"require", ClientTlsMode::kRequire}})},
               {"cert_file", Str(&l.tls.cert_file)},
               {"key_file", Str(&l.tls.key_file)},
           });
         }},
    });
  }

  void Metrics(const Node& node, const Path& path) {
    r_.ReadMap(node, path, {{"host", Str(&c_.metrics.host)},
                            {"port", Int(&c_.metrics.port)},
                            {"busiest_tenants", Int(&c_.metrics.busiest_tenants)},
                            {"tenant_labels", Enum(&c_.metrics.tenant_labels,
                                                   {{"busiest", TenantLabels::kBusiest},
                                                    {"all", TenantLabels::kAll},
                                                    {"dedicated", TenantLabels::kDedicated},
                                                    {"none", TenantLabels::kNone}})}});
  }

  void Admin(const Node& node, const Path& path) {
    r_.ReadMap(node, path,
               {{"database", Str(&c_.admin.database)}, {"users", List(&c_.admin.users)}});
  }

  void Auth(const Node& node, const Path& path) {
    r_.ReadMap(node, path, {
        {"type", Enum(&c_.auth.type, {{"scram-sha-256", AuthType::kScramSha256},
                                      {"md5", AuthType::kMd5},
                                      {"trust", AuthType::kTrust}})},
        {"users", [&](const Node& n, const Path& p) {
           r_.ReadNamedMap(n, p, [&](const std::string& name, const Node& v, const Path& up) {
             User& user = c_.auth.users[name];
             user.name = name;
             r_.ReadMap(v, up, {{"password", Str(&user.password)},
                                {"password_env", Str(&user.password_env)},
                                {"tenants", List(&user.tenants)},
                                {"max_client_connections", Int(&user.max_client_connections)}});
           });
         }},
    });
  }

  void Tenancy(const Node& node, const Path& path) {
    ::pgtenant::conf::Tenancy& t = c_.tenancy;
    r_.ReadMap(node, path, {
        {"variable", Str(&t.variable)},
        {"id_pattern", Str(&t.id_pattern)},
        {"sources", [&](const Node& n, const Path& p) { Sources(n, p); }},
        {"user_separator", Str(&t.user_separator)},
        {"default_pool", [&](const Node& n, const Path& p) {
           std::string pool;
           if (r_.ReadString(n, p, &pool)) t.default_pool = pool;
         }},
        {"require_tenant", Bool(&t.require_tenant)},
    });
  }

  void Sources(const Node& node, const Path& path) {
    std::vector<TenantSource>& sources = c_.tenancy.sources;
    sources.clear();
    r_.ReadList(node, path, [&](const Node& item, const Path& p) {
      TenantSource source{};
      if (r_.ReadEnum(item, p, {{"parameter", TenantSource::kParameter},
                                {"options", TenantSource::kOptions},
                                {"user", TenantSource::kUser},
                                {"set", TenantSource::kSet}}, &source)) {
        sources.push_back(source);
      }
    });
  }

  void Pools(const Node& node, const Path& path, std::map<std::string, Pool>* pools) {
    r_.ReadNamedMap(node, path, [&](const std::string& name, const Node& v, const Path& pp) {
      Pool& pool = (*pools)[name];
      pool.name = name;
      r_.ReadMap(v, pp, {
          {"host", Str(&pool.host)},
          {"port", Int(&pool.port)},
          {"database", Str(&pool.database)},
          {"user", Str(&pool.user)},
          {"password", Str(&pool.password)},
          {"password_env", Str(&pool.password_env)},
          {"mode", Enum(&pool.mode, {{"transaction", PoolMode::kTransaction},
                                     {"session", PoolMode::kSession}})},
          {"size", Int(&pool.size)},
          {"tls", Enum(&pool.tls, {{"disable", ServerTlsMode::kDisable},
                                   {"prefer", ServerTlsMode::kPrefer},
                                   {"require", ServerTlsMode::kRequire},
                                   {"verify-full", ServerTlsMode::kVerifyFull}})},
          {"ca_file", Str(&pool.ca_file)},
          {"max_prepared_statements", Int(&pool.max_prepared_statements)},
          {"max_connections_per_tenant", Int(&pool.max_connections_per_tenant)},
          {"min_size", Int(&pool.min_size)},
      });
    });
  }

  void Tenants(const Node& node, const Path& path) {
    r_.ReadNamedMap(node, path, [&](const std::string& id, const Node& v, const Path& tp) {
      Tenant& tenant = c_.tenants[id];
      tenant.id = id;
      r_.ReadMap(v, tp, {{"pool", Str(&tenant.pool)},
                         {"max_client_connections", Int(&tenant.max_client_connections)},
                         {"max_server_connections", Int(&tenant.max_server_connections)},
                         {"template", Str(&tenant.template_name)},
                         {"database", Str(&tenant.database)},
                         {"host", Str(&tenant.host)},
                         {"stripe_customer", Str(&tenant.stripe_customer)}});
    });
  }

  void Timeouts(const Node& node, const Path& path) {
    ::pgtenant::conf::Timeouts& t = c_.timeouts;
    r_.ReadMap(node, path, {
        {"client_login", Duration(&t.client_login)},
        {"query_wait", Duration(&t.query_wait)},
        {"idle_transaction", Duration(&t.idle_transaction)},
        {"server_connect", Duration(&t.server_connect)},
        {"server_idle", Duration(&t.server_idle)},
        {"server_lifetime", Duration(&t.server_lifetime)},
        {"shutdown", Duration(&t.shutdown)},
    });
  }

  void Limits(const Node& node, const Path& path) {
    r_.ReadMap(node, path, {{"max_message_size", [&](const Node& n, const Path& p) {
      uint64_t bytes = 0;
      // Saturate rather than wrap, so the validator's upper bound reports a 5GB value.
      if (r_.ReadByteSize(n, p, &bytes)) {
        c_.max_message_size = static_cast<uint32_t>(
            std::min<uint64_t>(bytes, std::numeric_limits<uint32_t>::max()));
      }
    }},
                            {"max_server_connections", Int(&c_.max_server_connections)},
                            {"max_server_connections_per_host", Int(&c_.max_server_connections_per_host)}});
  }

  void Billing(const Node& node, const Path& path) {
    ::pgtenant::conf::Billing& b = c_.billing;
    r_.ReadMap(node, path, {
        {"state_dir", Str(&b.state_dir)},
        {"window", Duration(&b.window)},
        {"instance", Str(&b.instance)},
        {"api_base", Str(&b.api_base)},
        {"api_key_env", Str(&b.api_key_env)},
        {"max_requests_per_second", Int(&b.max_requests_per_second)},
        {"default_customer", Str(&b.default_customer)},
        {"meters", [&](const Node& n, const Path& p) {
           r_.ReadNamedMap(n, p, [&](const std::string& meter, const Node& v, const Path& mp) {
             r_.ReadString(v, mp, &b.meters[meter]);
           });
         }},
    });
  }

  YamlReader& r_;
  Config& c_;
};

bool IsWithin(const std::string& path, const std::string& parent) {
  if (path.size() < parent.size() || path.compare(0, parent.size(), parent) != 0) return false;
  return path.size() == parent.size() || path[parent.size()] == '.' || path[parent.size()] == '[';
}

// Adds the validator's findings to the decoder's. A key the decoder could not read keeps its
// default, so what the validator says about it or below it ("pools: at least one pool" after
// "pools: expected a map") is an echo of the first error and is dropped. Then everything is put
// in file order, which is how a user works through the list.
void MergeValidation(std::vector<Diagnostic> checks, std::vector<Diagnostic>* diagnostics) {
  std::vector<std::string> unreadable;
  for (const Diagnostic& d : *diagnostics) {
    if (!d.warning && !d.path.empty()) unreadable.push_back(d.path);
  }
  for (Diagnostic& check : checks) {
    bool echo = std::any_of(unreadable.begin(), unreadable.end(),
                            [&](const std::string& p) { return IsWithin(check.path, p); });
    if (!echo) diagnostics->push_back(std::move(check));
  }
  std::stable_sort(diagnostics->begin(), diagnostics->end(),
                   [](const Diagnostic& a, const Diagnostic& b) { return a.line < b.line; });
}

// yaml-cpp quotes offending input in its messages; keep control bytes from reaching a terminal.
std::string Printable(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (c >= 0x20 && c != 0x7f) {
      out += static_cast<char>(c);
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  return out;
}

// Parses and decodes; yaml-cpp's exceptions end here. Returns false when the text is not a
// usable document at all (syntax error, not a map, several documents): validating the defaults
// left in *config would only add noise.
bool Decode(const std::string& text, Config* config, SourceLines* lines,
            std::vector<Diagnostic>* diagnostics) {
  YamlReader reader(diagnostics, lines);
  try {
    std::vector<Node> documents = LoadYamlDocuments(text);
    if (documents.size() > 1) {
      reader.Error("", YamlReader::LineOf(documents[1]),
                   "the file holds " + std::to_string(documents.size()) + " YAML documents",
                   "pgtenant reads a single document; remove the extra '---' sections");
      return false;
    }
    Node root = documents.empty() ? Node() : documents[0];
    if (!root.IsNull() && !root.IsMap()) {
      reader.Error("", YamlReader::LineOf(root), "the config must be a map of sections",
                   "start with keys such as 'listen:' and 'pools:'");
      return false;
    }
    lines->Record("", 1);
    ConfigDecoder(&reader, config).Decode(root);
    return true;
  } catch (const YAML::Exception& e) {
    int line = e.mark.is_null() ? 0 : e.mark.line + 1;
    reader.Error("", line, "YAML syntax error: " + Printable(e.msg));
    return false;
  }
}

void ResolveSecret(const std::string& env_name, std::string* password) {
  if (env_name.empty() || !password->empty()) return;
  if (const char* value = std::getenv(env_name.c_str())) *password = value;
}

std::string ResolveFile(const std::string& file, const std::filesystem::path& base) {
  if (file.empty() || base.empty() || std::filesystem::path(file).is_absolute()) return file;
  return (base / file).lexically_normal().string();
}

// Before validation: what the validator must see as the server would use it. A password written
// in the file wins over password_env (giving both is an error the validator reports).
void ResolveExternal(Config* config) {
  std::filesystem::path base = std::filesystem::path(config->source_path).parent_path();
  config->listen.tls.cert_file = ResolveFile(config->listen.tls.cert_file, base);
  config->listen.tls.key_file = ResolveFile(config->listen.tls.key_file, base);
  config->billing.state_dir = ResolveFile(config->billing.state_dir, base);
  for (auto* pools : {&config->pools, &config->pool_templates}) {
    for (auto& [name, pool] : *pools) {
      pool.ca_file = ResolveFile(pool.ca_file, base);
      ResolveSecret(pool.password_env, &pool.password);
    }
  }
  for (auto& [name, user] : config->auth.users) {
    ResolveSecret(user.password_env, &user.password);
  }
}

// After validation: fields that are facts about the others, so users of Config need not recompute.
void Derive(Config* config) {
  for (auto& [name, user] : config->auth.users) {
    user.password_is_plaintext = ClassifyPassword(user.password) == PasswordKind::kPlaintext;
    user.any_tenant = false;
    for (const std::string& tenant : user.tenants) user.any_tenant |= tenant == "*";
  }
  for (auto& [id, tenant] : config->tenants) {
    if (!tenant.template_name.empty()) tenant.pool = TemplatePoolName(tenant.template_name, id);
    if (tenant.pool.empty() && config->tenancy.default_pool) tenant.pool = *config->tenancy.default_pool;
  }
}

std::string ErrnoMessage(int error) { return std::error_code(error, std::generic_category()).message(); }

LoadResult FileError(std::string message) {
  LoadResult result;
  result.diagnostics.push_back(Diagnostic{"", 0, std::move(message), "", false});
  return result;
}

}  // namespace

LoadResult LoadConfigString(const std::string& yaml_text, const std::string& source_name) {
  LoadResult result;
  Config config;
  config.source_path = source_name;
  SourceLines lines;
  if (!Decode(yaml_text, &config, &lines, &result.diagnostics)) return result;
  ResolveExternal(&config);
  std::vector<Diagnostic> checks;
  ValidateConfig(config, lines, &checks);
  MergeValidation(std::move(checks), &result.diagnostics);
  if (CountErrors(result.diagnostics) > 0) return result;
  Derive(&config);
  result.config = std::make_shared<const Config>(std::move(config));
  return result;
}

LoadResult LoadConfigFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return FileError("cannot open the config file: " + ErrnoMessage(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return FileError("the config path is not a regular file");
  }
  if (st.st_size > kMaxConfigBytes) {
    ::close(fd);
    return FileError("the config file is too large (" + std::to_string(st.st_size) +
                     " bytes; at most 16 MiB)");
  }
  std::string text(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::read(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int error = errno;
      ::close(fd);
      return FileError("cannot read the config file: " + ErrnoMessage(error));
    }
    if (n == 0) break;  // the file shrank while we read it; take what is there
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  text.resize(done);
  return LoadConfigString(text, path);
}

}  // namespace pgtenant::conf
