#include "routing/tenant_source.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <optional>
#include <string>

namespace pgtenant::routing {
namespace {

using conf::TenantSource;
using Params = std::map<std::string, std::string>;

conf::User MakeUser(const std::string& name, std::vector<std::string> tenants) {
  conf::User u;
  u.name = name;
  u.password = "secret";
  u.any_tenant = std::find(tenants.begin(), tenants.end(), "*") != tenants.end();
  u.tenants = std::move(tenants);
  return u;
}

// A config with every source and a default pool (docs/reference.md section 2), built by hand (no
// loader).
conf::Config BaseConfig() {
  conf::Config c;
  c.auth.users["app"] = MakeUser("app", {"*"});
  c.auth.users["acme_service"] = MakeUser("acme_service", {"acme"});
  c.auth.users["svc"] = MakeUser("svc", {"*"});
  c.auth.users["svc.globex"] = MakeUser("svc.globex", {"globex"});  // a real dotted user
  c.auth.users["team.eu"] = MakeUser("team.eu", {"*"});
  c.pools["shared"].name = "shared";
  c.pools["acme"].name = "acme";
  c.tenants["acme"] = conf::Tenant{"acme", "acme", 0};
  c.tenants["globex"] = conf::Tenant{"globex", "shared", 50};
  c.tenancy.default_pool = "shared";
  return c;
}

using Adjust = std::function<void(conf::Config&)>;

struct SourceCase {
  const char* name;
  Params params;
  Adjust adjust;           // config change for this row; may be empty
  std::string sqlstate;    // empty: success expected
  std::string login_user;  // on success
  std::optional<std::string> tenant;
  TenantSource source;       // on success with a tenant
  std::string message_part;  // on error: a substring of the message
};

SourceCase Ok(const char* name, Params params, std::string login_user,
              std::optional<std::string> tenant, TenantSource source = TenantSource::kParameter,
              Adjust adjust = {}) {
  return {name,
          std::move(params),
          std::move(adjust),
          "",
          std::move(login_user),
          std::move(tenant),
          source,
          ""};
}

SourceCase Err(const char* name, Params params, std::string sqlstate, std::string message_part = "",
               Adjust adjust = {}) {
  return {name, std::move(params), std::move(adjust),        std::move(sqlstate),
          "",   std::nullopt,      TenantSource::kParameter, std::move(message_part)};
}

void NoDefaultPool(conf::Config& c) { c.tenancy.default_pool.reset(); }
void OnlyUserAndSet(conf::Config& c) {
  c.tenancy.sources = {TenantSource::kUser, TenantSource::kSet};
}
void OnlyParameterAndSet(conf::Config& c) {
  c.tenancy.sources = {TenantSource::kParameter, TenantSource::kSet};
}
void UserFirst(conf::Config& c) {
  c.tenancy.sources = {TenantSource::kUser, TenantSource::kOptions, TenantSource::kParameter};
}
void DoubleUnderscore(conf::Config& c) { c.tenancy.user_separator = "__"; }

constexpr auto kParam = TenantSource::kParameter;
constexpr auto kOpts = TenantSource::kOptions;
constexpr auto kUser = TenantSource::kUser;

// clang-format off
const SourceCase kSourceCases[] = {
    // One row per source of docs/reference.md section 3.
    Ok("parameter", {{"user", "app"}, {"app.tenant_id", "acme"}}, "app", "acme", kParam),
    Ok("parameter_name_any_case", {{"user", "app"}, {"APP.Tenant_Id", "acme"}},
       "app", "acme", kParam),
    Ok("options_c_separate", {{"user", "app"}, {"options", "-c app.tenant_id=acme"}},
       "app", "acme", kOpts),
    Ok("options_c_attached", {{"user", "app"}, {"options", "-capp.tenant_id=acme"}},
       "app", "acme", kOpts),
    Ok("options_double_dash", {{"user", "app"}, {"options", "--app.tenant_id=acme"}},
       "app", "acme", kOpts),
    Ok("options_dashed_name", {{"user", "app"}, {"options", "--app.tenant-id=acme"}},
       "app", "acme", kOpts),
    Ok("options_in_cluster", {{"user", "app"}, {"options", "-ec app.tenant_id=acme"}},
       "app", "acme", kOpts),
    Ok("user", {{"user", "app.acme"}}, "app", "acme", kUser),
    Ok("none", {{"user", "app"}, {"database", "app"}}, "app", std::nullopt),

    // Agreement and conflicts.
    Ok("parameter_and_options_agree",
       {{"user", "app"}, {"app.tenant_id", "acme"}, {"options", "-c app.tenant_id=acme"}},
       "app", "acme", kParam),
    Ok("all_three_agree",
       {{"user", "app.acme"}, {"app.tenant_id", "acme"}, {"options", "-c app.tenant_id=acme"}},
       "app", "acme", kParam),
    Ok("user_and_options_agree", {{"user", "app.acme"}, {"options", "--app.tenant_id=acme"}},
       "app", "acme", kOpts),
    Ok("source_order_follows_config", {{"user", "app.acme"}, {"app.tenant_id", "acme"}},
       "app", "acme", kUser, UserFirst),
    Err("parameter_and_options_disagree",
        {{"user", "app"}, {"app.tenant_id", "acme"}, {"options", "-c app.tenant_id=globex"}},
        "28000",
        "tenant given twice with different values: parameter says acme, options says globex"),
    Err("user_and_parameter_disagree", {{"user", "app.acme"}, {"app.tenant_id", "globex"}}, "28000",
        "parameter says globex, user says acme"),
    Err("options_twice_disagree",
        {{"user", "app"}, {"options", "-c app.tenant_id=acme --app.tenant_id=globex"}}, "28000",
        "options says acme, options says globex"),
    Err("parameter_twice_by_case",
        {{"user", "app"}, {"app.tenant_id", "acme"}, {"APP.TENANT_ID", "globex"}}, "28000"),

    // A source the config does not allow may not carry the variable to the server.
    Err("parameter_not_allowed", {{"user", "app"}, {"app.tenant_id", "acme"}}, "28000",
        "source \"parameter\"", OnlyUserAndSet),
    Err("options_not_allowed", {{"user", "app"}, {"options", "-c app.tenant_id=acme"}}, "28000",
        "source \"options\"", OnlyParameterAndSet),
    Ok("user_not_allowed_is_plain_name", {{"user", "app.acme"}}, "app.acme", std::nullopt, kParam,
       OnlyParameterAndSet),

    // user_separator edge cases.
    Ok("real_dotted_user_wins", {{"user", "svc.globex"}}, "svc.globex", std::nullopt),
    Ok("no_prefix_user", {{"user", "nobody.acme"}}, "nobody.acme", std::nullopt),
    Ok("separator_at_end", {{"user", "app."}}, "app.", std::nullopt),
    Ok("separator_at_start", {{"user", ".acme"}}, ".acme", std::nullopt),
    Ok("separator_only", {{"user", "."}}, ".", std::nullopt),
    Ok("multiple_separators_last_wins", {{"user", "team.eu.acme"}}, "team.eu", "acme", kUser),
    Ok("multiple_separators_prefix_unknown", {{"user", "app.acme.x"}}, "app.acme.x", std::nullopt),
    Ok("custom_separator", {{"user", "app__acme"}}, "app", "acme", kUser, DoubleUnderscore),
    Ok("custom_separator_at_end", {{"user", "app__"}},
       "app__", std::nullopt, kParam, DoubleUnderscore),
    Ok("custom_separator_dot_is_plain", {{"user", "app.acme"}}, "app.acme", std::nullopt, kParam,
       DoubleUnderscore),

    // Validation of the tenant found.
    Err("bad_id_from_user", {{"user", "app.ACME"}}, "22023", "tenancy.id_pattern"),
    Err("bad_id_injection", {{"user", "app"}, {"app.tenant_id", "acme'; DROP TABLE x; --"}},
        "22023"),
    Err("empty_id", {{"user", "app"}, {"app.tenant_id", ""}}, "22023"),
    Ok("unlisted_with_default_pool", {{"user", "app"}, {"app.tenant_id", "initech"}},
       "app", "initech", kParam),
    Err("unlisted_without_default_pool", {{"user", "app"}, {"app.tenant_id", "initech"}}, "28000",
        "tenant \"initech\" is not configured and there is no default_pool", NoDefaultPool),
    Ok("listed_without_default_pool", {{"user", "app"}, {"app.tenant_id", "acme"}}, "app", "acme",
       kParam, NoDefaultPool),
    Ok("user_may_act_as_listed", {{"user", "acme_service"}, {"app.tenant_id", "acme"}},
       "acme_service", "acme", kParam),
    Err("user_may_not_act", {{"user", "acme_service"}, {"app.tenant_id", "globex"}}, "42501",
        "may not act as tenant \"globex\""),
    Err("user_source_privilege", {{"user", "acme_service.globex"}}, "42501"),
    Ok("unknown_user_passes_to_auth", {{"user", "mallory"}, {"app.tenant_id", "acme"}},
       "mallory", "acme", kParam),

    // Malformed startup.
    Err("missing_user", {{"database", "app"}}, "28000"),
    Err("empty_user", {{"user", ""}}, "28000"),
    Err("bad_options", {{"user", "app"}, {"options", "-c"}}, "42601"),
};
// clang-format on

class TenantSourceTable : public ::testing::TestWithParam<SourceCase> {};

TEST_P(TenantSourceTable, Resolves) {
  const SourceCase& c = GetParam();
  conf::Config config = BaseConfig();
  if (c.adjust) c.adjust(config);
  Result<StartupIdentity> got = ResolveStartupTenant(c.params, config);
  if (!c.sqlstate.empty()) {
    ASSERT_FALSE(got.ok()) << "expected " << c.sqlstate;
    EXPECT_EQ(got.status().sqlstate(), c.sqlstate) << got.status().message();
    EXPECT_NE(got.status().message().find(c.message_part), std::string::npos)
        << got.status().message();
    return;
  }
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->login_user, c.login_user);
  EXPECT_EQ(got->tenant, c.tenant);
  if (c.tenant) {
    EXPECT_EQ(got->tenant_source, c.source);
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, TenantSourceTable, ::testing::ValuesIn(kSourceCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(IdentifyStartup, KeepsOtherOptionsWithoutTheTenant) {
  const conf::Config config = BaseConfig();
  Result<StartupIdentity> got = IdentifyStartup(
      {{"user", "app"}, {"options", "-c search_path=a\\ b -c app.tenant_id=acme -B 10"}}, config);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->tenant, "acme");
  using Settings = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(got->other_options.settings, (Settings{{"search_path", "a b"}}));
  EXPECT_EQ(got->other_options.unparsed, (std::vector<std::string>{"-B", "10"}));
}

TEST(IdentifyStartup, DoesNotAuthorize) {
  // Identification alone must not reveal tenant configuration before authentication.
  conf::Config config = BaseConfig();
  config.tenancy.default_pool.reset();
  Result<StartupIdentity> got =
      IdentifyStartup({{"user", "acme_service"}, {"app.tenant_id", "nope"}}, config);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->tenant, "nope");
}

TEST(IdentifyStartup, ConflictMessageDoesNotEchoRawBytes) {
  const conf::Config config = BaseConfig();
  Result<StartupIdentity> got = IdentifyStartup(
      {{"user", "app"}, {"app.tenant_id", "a\nFAKE LOG LINE"}, {"options", "-c app.tenant_id=b"}},
      config);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().message().find('\n'), std::string::npos);
}

TEST(CheckTenantAllowed, PhaseDecidesUnroutableCode) {
  conf::Config config = BaseConfig();
  config.tenancy.default_pool.reset();
  EXPECT_EQ(CheckTenantAllowed(config, "app", "initech", TenantCheckPhase::kLogin).sqlstate(),
            "28000");
  EXPECT_EQ(CheckTenantAllowed(config, "app", "initech", TenantCheckPhase::kSet).sqlstate(),
            "22023");
  EXPECT_TRUE(CheckTenantAllowed(config, "app", "acme", TenantCheckPhase::kSet).ok());
}

TEST(CheckTenantAllowed, OrderAndUsers) {
  const conf::Config config = BaseConfig();
  const TenantValidator validator(config.tenancy);
  // Pattern first, even for a user who may not act as anyone.
  EXPECT_EQ(CheckTenantAllowed(config, validator, "acme_service", "Bad!", TenantCheckPhase::kSet)
                .sqlstate(),
            "22023");
  EXPECT_EQ(CheckTenantAllowed(config, validator, "acme_service", "globex", TenantCheckPhase::kSet)
                .sqlstate(),
            "42501");
  // At SET time the user is authenticated; an unknown one is refused, not waved through.
  EXPECT_EQ(
      CheckTenantAllowed(config, validator, "mallory", "acme", TenantCheckPhase::kSet).sqlstate(),
      "42501");
  EXPECT_TRUE(
      CheckTenantAllowed(config, validator, "mallory", "acme", TenantCheckPhase::kLogin).ok());
}

TEST(CheckTenantAllowed, StarInListWithoutFlag) {
  conf::Config config = BaseConfig();
  conf::User u;
  u.tenants = {"*"};  // a hand-built config that did not set any_tenant
  config.auth.users["star"] = u;
  EXPECT_TRUE(CheckTenantAllowed(config, "star", "globex", TenantCheckPhase::kSet).ok());
}

}  // namespace
}  // namespace pgtenant::routing
