// Fuzzes the login path up to authentication: the startup packet parser, the `options` parser
// (routing/startup_options.h) and tenant identification (routing/tenant_source.h) against small
// configs built in code.
//
// Input: byte 0 bit 0 clear: the rest is a startup packet payload (after the length word);
// set: the rest is an `options` string, sent with user "app". Bit 1 picks the config.
//
// Invariants checked besides "no crash, no UB":
//   * FormatStartupOptions output parses back to the same options; EscapeOptionToken survives
//     SplitOptionsString;
//   * an identity never passes the tenant variable on in other_options (it would reach the
//     server unchecked), and a tenant accepted at login matches tenancy.id_pattern.
#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>

#include "conf/config.h"
#include "protocol/frame_decoder.h"
#include "protocol/messages.h"
#include "routing/startup_options.h"
#include "routing/tenant_source.h"
#include "routing/tenant_validator.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

namespace routing = pgtenant::routing;
namespace conf = pgtenant::conf;

conf::User MakeUser(const std::string& name, std::vector<std::string> tenants) {
  conf::User u;
  u.name = name;
  u.password = "secret";
  for (const std::string& t : tenants) u.any_tenant = u.any_tenant || t == "*";
  u.tenants = std::move(tenants);
  return u;
}

// Config 0: the usual one (every source, default pool). Config 1: only the user source
// and SET, a multi-byte separator, a regex id pattern and no default pool.
conf::Config MakeConfig(int variant) {
  conf::Config c;
  c.auth.users["app"] = MakeUser("app", {"*"});
  c.auth.users["acme_service"] = MakeUser("acme_service", {"acme"});
  c.auth.users["svc.globex"] = MakeUser("svc.globex", {"globex"});
  c.pools["shared"].name = "shared";
  c.pools["acme"].name = "acme";
  c.tenants["acme"] = conf::Tenant{"acme", "acme", 0};
  c.tenants["globex"] = conf::Tenant{"globex", "shared", 50};
  if (variant == 0) {
    c.tenancy.default_pool = "shared";
  } else {
    c.tenancy.variable = "Tenant.ID";
    c.tenancy.sources = {conf::TenantSource::kUser, conf::TenantSource::kSet};
    c.tenancy.user_separator = "::";
    c.tenancy.id_pattern = "(acme|globex|t[0-9]+)";
  }
  return c;
}

struct Setup {
  conf::Config config[2] = {MakeConfig(0), MakeConfig(1)};
  routing::TenantValidator validator[2] = {routing::TenantValidator(config[0].tenancy),
                                           routing::TenantValidator(config[1].tenancy)};
};

bool SameOptions(const routing::StartupOptions& a, const routing::StartupOptions& b) {
  return a.settings == b.settings && a.unparsed == b.unparsed;
}

void CheckOptions(std::string_view text) {
  for (const std::string& token : routing::SplitOptionsString(text)) {
    if (token.empty()) continue;
    const auto again = routing::SplitOptionsString(routing::EscapeOptionToken(token));
    FUZZ_CHECK(again.size() == 1 && again[0] == token);
  }
  auto parsed = routing::ParseStartupOptions(text);
  if (!parsed.ok()) {
    FUZZ_CHECK(parsed.status().sqlstate() == "42601");
    return;
  }
  auto again = routing::ParseStartupOptions(routing::FormatStartupOptions(*parsed));
  FUZZ_CHECK(again.ok() && SameOptions(*parsed, *again));
}

void Identify(const Setup& setup, int variant, const std::map<std::string, std::string>& params) {
  const conf::Config& config = setup.config[variant];
  auto identity = routing::ResolveStartupTenant(params, config, setup.validator[variant]);
  if (!identity.ok()) return;
  FUZZ_CHECK(!identity->login_user.empty());
  for (const auto& [name, value] : identity->other_options.settings) {
    FUZZ_CHECK(!routing::IsTenantVariable(name, config.tenancy));
  }
  if (identity->tenant) FUZZ_CHECK(setup.validator[variant].Matches(*identity->tenant));
  // The options the proxy forwards must still parse.
  const std::string forwarded = routing::FormatStartupOptions(identity->other_options);
  FUZZ_CHECK(routing::ParseStartupOptions(forwarded).ok());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Setup* setup = new Setup();
  if (size < 1) return 0;
  const int variant = (data[0] >> 1) & 1;
  const std::span<const uint8_t> rest(data + 1, size - 1);
  std::map<std::string, std::string> params;
  if (data[0] & 1) {
    const std::string options(reinterpret_cast<const char*>(rest.data()), rest.size());
    CheckOptions(options);
    params["user"] = "app";
    params["options"] = options;
  } else {
    auto startup = pgtenant::protocol::ParseStartupPacket(rest);
    if (!startup.ok()) return 0;
    // The last value of a repeated name wins, as in the server.
    for (const auto& [name, value] : startup->params) params[name] = value;
    const auto options = params.find("options");
    if (options != params.end()) CheckOptions(options->second);
  }
  Identify(*setup, variant, params);
  return 0;
}
