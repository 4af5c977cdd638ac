#include "routing/tenant_validator.h"

#include <gtest/gtest.h>

#include <regex>
#include <string>

namespace pgtenant::routing {
namespace {

TEST(TenantValidator, DefaultPatternFastPathAgreesWithRegex) {
  const TenantValidator fast(conf::Tenancy{});
  const std::regex slow{std::string(kDefaultIdPattern)};
  const std::string ids[] = {"",
                             "a",
                             "acme",
                             "acme_1",
                             "ACME",
                             "a-b",
                             "a b",
                             "acme\n",
                             std::string(63, 'x'),
                             std::string(64, 'x'),
                             "é",
                             std::string("a\0b", 3),
                             "_",
                             "0"};
  for (const std::string& id : ids) {
    EXPECT_EQ(fast.Matches(id), std::regex_match(id, slow)) << id;
  }
}

TEST(TenantValidator, CustomPatternMustMatchWholeId) {
  conf::Tenancy tenancy;
  tenancy.id_pattern = "t_[0-9]+";  // no anchors: still a full match
  const TenantValidator v(tenancy);
  EXPECT_TRUE(v.pattern_ok());
  EXPECT_TRUE(v.Matches("t_42"));
  EXPECT_FALSE(v.Matches("t_42x"));
  EXPECT_FALSE(v.Matches("xt_42"));
  EXPECT_FALSE(v.Matches("t_42\n"));
}

TEST(TenantValidator, OversizedIdNeverReachesRegex) {
  conf::Tenancy tenancy;
  tenancy.id_pattern = "^.*$";
  const TenantValidator v(tenancy);
  EXPECT_TRUE(v.Matches(std::string(kMaxTenantIdLength, 'a')));
  EXPECT_FALSE(v.Matches(std::string(kMaxTenantIdLength + 1, 'a')));
  EXPECT_FALSE(v.Matches(std::string(1 << 20, 'a')));
}

TEST(TenantValidator, InvalidPatternFailsClosed) {
  conf::Tenancy tenancy;
  tenancy.id_pattern = "([a-z";
  const TenantValidator v(tenancy);
  EXPECT_FALSE(v.pattern_ok());
  EXPECT_FALSE(v.error().empty());
  EXPECT_FALSE(v.Matches("acme"));
}

TEST(TenantValidator, DisplayTenantEscapesAndClips) {
  EXPECT_EQ(DisplayTenant("acme"), "acme");
  EXPECT_EQ(DisplayTenant("a\nb\\"), "a\\x0ab\\x5c");
  EXPECT_EQ(DisplayTenant(std::string(100, 'x')), std::string(64, 'x') + "...");
}

}  // namespace
}  // namespace pgtenant::routing
