#include "routing/routing_table.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace pgtenant::routing {
namespace {

conf::Config SmallConfig() {
  conf::Config c;
  c.tenants["acme"] = conf::Tenant{"acme", "acme_pool", 0};
  c.tenants["globex"] = conf::Tenant{"globex", "shared", 50};
  return c;
}

TEST(RoutingTable, ListedTenantUsesItsPool) {
  const auto table = RoutingTable::Build(SmallConfig());
  ASSERT_NE(table->PoolFor("acme"), nullptr);
  EXPECT_EQ(*table->PoolFor("acme"), "acme_pool");
  ASSERT_NE(table->Find("globex"), nullptr);
  EXPECT_EQ(table->Find("globex")->max_client_connections, 50);
  EXPECT_EQ(table->Find("globex")->id, "globex");
}

TEST(RoutingTable, UnlistedTenantWithoutDefaultPoolIsRefused) {
  const auto table = RoutingTable::Build(SmallConfig());
  EXPECT_EQ(table->PoolFor("initech"), nullptr);
  EXPECT_EQ(table->Find("initech"), nullptr);
  EXPECT_FALSE(table->IsRoutable("initech"));
  EXPECT_FALSE(table->IsRoutable(""));
}

TEST(RoutingTable, UnlistedTenantUsesDefaultPool) {
  conf::Config c = SmallConfig();
  c.tenancy.default_pool = "shared";
  const auto table = RoutingTable::Build(c);
  ASSERT_NE(table->PoolFor("initech"), nullptr);
  EXPECT_EQ(*table->PoolFor("initech"), "shared");
  EXPECT_EQ(table->Find("initech"), nullptr);       // routable, but not listed
  EXPECT_EQ(*table->PoolFor("acme"), "acme_pool");  // a listed tenant still wins
}

TEST(RoutingTable, LookupIsExactAndCaseSensitive) {
  const auto table = RoutingTable::Build(SmallConfig());
  EXPECT_EQ(table->Find("ACME"), nullptr);
  EXPECT_EQ(table->Find("acme "), nullptr);
  EXPECT_EQ(table->Find(std::string_view("acme\0", 5)), nullptr);
  const std::string longer = "acmexyz";
  EXPECT_NE(table->Find(std::string_view(longer).substr(0, 4)), nullptr);
}

TEST(RoutingTable, KeyIsAuthoritativeOverTenantId) {
  conf::Config c;
  c.tenants["acme"] = conf::Tenant{"", "p", 0};
  const auto table = RoutingTable::Build(c);
  ASSERT_NE(table->Find("acme"), nullptr);
  EXPECT_EQ(table->Find("acme")->id, "acme");
}

TEST(RoutingTable, IsIndependentOfTheConfigItWasBuiltFrom) {
  auto c = std::make_unique<conf::Config>(SmallConfig());
  const auto table = RoutingTable::Build(*c);
  c.reset();
  EXPECT_EQ(*table->PoolFor("acme"), "acme_pool");
}

TEST(RoutingTable, CarriesTheCompiledValidator) {
  conf::Config c = SmallConfig();
  c.tenancy.id_pattern = "^[a-z]+$";
  const auto table = RoutingTable::Build(c);
  EXPECT_TRUE(table->validator().Matches("acme"));
  EXPECT_FALSE(table->validator().Matches("acme1"));
}

TEST(RoutingTable, HundredThousandTenants) {
  conf::Config c;
  constexpr int kTenants = 100000;
  for (int i = 0; i < kTenants; ++i) {
    const std::string id = "tenant_" + std::to_string(i);
    c.tenants[id] = conf::Tenant{id, "pool_" + std::to_string(i % 16), 0};
  }
  const auto start = std::chrono::steady_clock::now();
  const auto table = RoutingTable::Build(c);
  EXPECT_EQ(table->listed_tenants(), static_cast<size_t>(kTenants));
  for (int i = 0; i < kTenants; ++i) {
    const std::string id = "tenant_" + std::to_string(i);
    const std::string* pool = table->PoolFor(id);
    ASSERT_NE(pool, nullptr) << id;
    ASSERT_EQ(*pool, "pool_" + std::to_string(i % 16));
  }
  EXPECT_EQ(table->PoolFor("tenant_100000"), nullptr);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  // Generous even for a Debug build on a shared machine; a quadratic build would blow it.
  EXPECT_LT(std::chrono::duration_cast<std::chrono::seconds>(elapsed).count(), 10);
}

}  // namespace
}  // namespace pgtenant::routing
