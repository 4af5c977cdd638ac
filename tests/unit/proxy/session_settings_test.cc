#include "proxy/session_settings.h"

#include <gtest/gtest.h>

namespace pgtenant::proxy {
namespace {

SessionSettings Startup(std::initializer_list<std::pair<const char*, const char*>> settings) {
  SessionSettings s;
  for (const auto& [name, value] : settings) s.Set(name, value);
  return s;
}

TEST(SessionSettingsTest, SetKeepsNamesSortedAndReplacesValues) {
  SessionSettings s = Startup({{"search_path", "app"}, {"application_name", "web"}, {"datestyle", "ISO"}});
  s.Set("search_path", "other");
  ASSERT_EQ(s.settings().size(), 3u);
  EXPECT_EQ(s.settings()[0].first, "application_name");
  EXPECT_EQ(s.settings()[1].first, "datestyle");
  EXPECT_EQ(s.settings()[2].second, "other");
  ASSERT_NE(s.Find("datestyle"), nullptr);
  EXPECT_EQ(*s.Find("datestyle"), "ISO");
  EXPECT_EQ(s.Find("timezone"), nullptr);
}

TEST(SessionSettingsTest, EraseLeavesASharedListAlone) {
  SessionSettings client = Startup({{"application_name", "web"}, {"search_path", "app"}});
  SessionSettings server;
  server.TakeSettingsOf(client);
  server.Erase("search_path");
  EXPECT_EQ(server.Find("search_path"), nullptr);
  ASSERT_NE(client.Find("search_path"), nullptr);  // the client's list is untouched
  EXPECT_FALSE(server.SameSettingsAs(client));
  server.Erase("nothing_here");
  server.Erase("application_name");
  EXPECT_TRUE(server.settings().empty());
  EXPECT_TRUE(server.SameSettingsAs(SessionSettings()));
}

TEST(SessionSettingsTest, ASharedListIsCopiedBeforeItChanges) {
  SessionSettings client = Startup({{"application_name", "web"}});
  SessionSettings server;
  server.TakeSettingsOf(client);
  EXPECT_TRUE(server.SameSettingsAs(client));
  // The server's session changes (a SET it reported): the client's wish must not change.
  server.Set("application_name", "batch");
  EXPECT_EQ(*client.Find("application_name"), "web");
  EXPECT_EQ(*server.Find("application_name"), "batch");
  EXPECT_FALSE(server.SameSettingsAs(client));
  // Setting the value a session already has keeps it equal.
  client.Set("application_name", "web");
  EXPECT_EQ(*client.Find("application_name"), "web");
  server.Clear();
  EXPECT_TRUE(server.settings().empty());
  EXPECT_FALSE(server.SameSettingsAs(client));
}

TEST(SessionSettingsTest, EqualListsCompareEqualWhetherSharedOrNot) {
  SessionSettings a = Startup({{"application_name", "web"}, {"timezone", "UTC"}});
  SessionSettings b = Startup({{"timezone", "UTC"}, {"application_name", "web"}});
  EXPECT_TRUE(a.SameSettingsAs(b));
  EXPECT_TRUE(SessionSettings().SameSettingsAs(SessionSettings()));
}

TEST(SettingsInternerTest, IdenticalStartupSettingsShareOneList) {
  SettingsInterner interner;
  SessionSettings first = Startup({{"application_name", "web"}});
  SessionSettings second = Startup({{"application_name", "web"}});
  SessionSettings other = Startup({{"application_name", "batch"}});
  interner.Intern(&first);
  interner.Intern(&second);
  interner.Intern(&other);
  EXPECT_EQ(&first.settings(), &second.settings());
  EXPECT_NE(&first.settings(), &other.settings());
  // Changing one afterwards does not touch the others that share its list.
  second.Set("application_name", "changed");
  EXPECT_EQ(*first.Find("application_name"), "web");
  SessionSettings third = Startup({{"application_name", "web"}});
  interner.Intern(&third);
  EXPECT_EQ(&first.settings(), &third.settings());
}

TEST(SettingsInternerTest, RemembersABoundedNumberOfLists) {
  SettingsInterner interner;
  SessionSettings oldest = Startup({{"application_name", "app0"}});
  interner.Intern(&oldest);
  for (int i = 1; i <= 100; ++i) {
    SessionSettings s = Startup({{"application_name", ("app" + std::to_string(i)).c_str()}});
    interner.Intern(&s);
  }
  // Forgotten by the interner, still alive in the session holding it.
  EXPECT_EQ(*oldest.Find("application_name"), "app0");
  SessionSettings again = Startup({{"application_name", "app0"}});
  interner.Intern(&again);
  EXPECT_NE(&oldest.settings(), &again.settings());
  EXPECT_TRUE(oldest.SameSettingsAs(again));
}

TEST(BuildPreludeTest, SetsWhatDiffersAndResetsWhatTheClientDoesNotHave) {
  SessionSettings have = Startup({{"application_name", "old"}, {"search_path", "x"}});
  have.tenant = "t1";
  SessionSettings want = Startup({{"application_name", "new"}});
  want.tenant = "t2";
  Prelude p = BuildPrelude(have, want, true);
  ASSERT_EQ(p.settings.size(), 2u);
  EXPECT_EQ(p.settings[0], "SELECT pg_catalog.set_config('application_name', 'new', false)");
  EXPECT_EQ(p.settings[1], "RESET \"search_path\"");
  EXPECT_TRUE(p.set_tenant);
  EXPECT_EQ(TenantSql(want.tenant, "app.tenant_id"), "SET app.tenant_id = 't2'");
  EXPECT_EQ(TenantSql(std::nullopt, "App.Tenant_ID"), "RESET \"App\".\"Tenant_ID\"");
  have.TakeSettingsOf(want);
  have.tenant = want.tenant;
  EXPECT_TRUE(BuildPrelude(have, want, true).empty());
  // Another client's connection: the tenant is set again even though it looks the same.
  EXPECT_TRUE(BuildPrelude(have, want, false).set_tenant);
  // Settings that may be anything (a client's RESET whose block may have rolled back): reset
  // them all, set every wanted one and the tenant again.
  Prelude unknown = BuildPrelude(have, want, true, /*have_unknown=*/true);
  ASSERT_EQ(unknown.settings.size(), 2u);
  EXPECT_EQ(unknown.settings[0], "RESET ALL");
  EXPECT_EQ(unknown.settings[1], "SELECT pg_catalog.set_config('application_name', 'new', false)");
  EXPECT_TRUE(unknown.set_tenant);
}

}  // namespace
}  // namespace pgtenant::proxy
