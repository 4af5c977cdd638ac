#include "metrics/prometheus_metrics.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <set>
#include <string>

#include "metrics/metric_defs.h"
#include "metrics/null_metrics.h"
#include "tests/unit/metrics/exposition.h"

namespace pgtenant::metrics {
namespace {

using testing::Exposition;
using testing::ParseExposition;

std::unique_ptr<PrometheusMetrics> Make(TenantLabels policy = TenantLabels::kAll,
                                        std::optional<std::string> default_pool = "shared",
                                        int busiest_tenants = 20) {
  PrometheusOptions o;
  o.tenant_labels = policy;
  o.busiest_tenants = busiest_tenants;
  o.default_pool = std::move(default_pool);
  o.version = "9.8.7";
  o.serve_http = false;
  auto m = PrometheusMetrics::Create(o);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return std::move(m).value();
}

std::string T(const std::string& name, const std::string& pool, const std::string& tenant) {
  return name + "{pool=\"" + pool + "\",tenant=\"" + tenant + "\"}";
}

TEST(PrometheusMetrics, ProcessSeriesExistFromTheStart) {
  auto m = Make();
  Exposition e = ParseExposition(m->Scrape());
  EXPECT_EQ(e.Value("pgtenant_up"), 1);
  EXPECT_EQ(e.Value("pgtenant_build_info{version=\"9.8.7\"}"), 1);
  EXPECT_EQ(e.Value("pgtenant_clients"), 0);
  EXPECT_EQ(e.Value("pgtenant_config_reloads_total{result=\"success\"}"), 0);
  EXPECT_EQ(e.Value("pgtenant_config_reloads_total{result=\"failure\"}"), 0);
  EXPECT_FALSE(e.Has("pgtenant_transactions_total")) << "no pool series before a pool is used";
}

TEST(PrometheusMetrics, EveryDefinedMetricIsExportedWithItsTypeAndHelp) {
  auto m = Make();
  m->Tenant("shared", "acme");  // creates the pool and tenant families' series
  m->SetBilling({});            // and the billing ones
  Exposition e = ParseExposition(m->Scrape());
  for (const MetricDef& def : kMetricDefs) {
    std::string name(def.name);
    const char* type = def.type == MetricType::kCounter ? "counter"
                       : def.type == MetricType::kGauge ? "gauge"
                                                        : "histogram";
    EXPECT_EQ(e.types[name], type) << name;
    EXPECT_EQ(e.help[name], std::string(def.help)) << name;
  }
  EXPECT_EQ(e.types.size(), std::size(kMetricDefs)) << "a family not listed in metric_defs.h";
}

TEST(PrometheusMetrics, AllPolicyCountsEachTenant) {
  auto m = Make(TenantLabels::kAll);
  TenantHandle* acme = m->Tenant("shared", "acme");
  TenantHandle* globex = m->Tenant("shared", "globex");
  ASSERT_NE(acme, globex);
  EXPECT_EQ(m->Tenant("shared", "acme"), acme) << "handles are cached";
  for (int i = 0; i < 3; ++i) m->OnQuery(acme);
  m->OnTransaction(acme, 0.25);
  m->OnTransaction(acme, 0.5);
  m->OnBytes(acme, 100, 2000);
  m->OnBytes(acme, 1, 0);
  m->OnError(globex);
  m->OnQuery(globex);

  Exposition e = ParseExposition(m->Scrape());
  EXPECT_EQ(e.Value(T("pgtenant_queries_total", "shared", "acme")), 3);
  EXPECT_EQ(e.Value(T("pgtenant_transactions_total", "shared", "acme")), 2);
  EXPECT_DOUBLE_EQ(e.Value(T("pgtenant_tenant_server_seconds_total", "shared", "acme")), 0.75);
  EXPECT_EQ(e.Value("pgtenant_tenant_bytes_total{direction=\"in\",pool=\"shared\",tenant=\"acme\"}"), 101);
  EXPECT_EQ(e.Value("pgtenant_tenant_bytes_total{direction=\"out\",pool=\"shared\",tenant=\"acme\"}"), 2000);
  EXPECT_EQ(e.Value(T("pgtenant_tenant_errors_total", "shared", "acme")), 0);
  EXPECT_EQ(e.Value(T("pgtenant_tenant_errors_total", "shared", "globex")), 1);
  EXPECT_EQ(e.Value(T("pgtenant_queries_total", "shared", "globex")), 1);
  // The documented cost: 25 series per tenant (6 counters, the waiting gauge, the wait
  // histogram's 15 buckets + +Inf + _sum + _count).
  EXPECT_EQ(e.CountContaining("tenant=\"acme\""), 25);
}

TEST(PrometheusMetrics, DedicatedPolicyAggregatesDefaultPoolTenants) {
  auto m = Make(TenantLabels::kDedicated, "shared");
  TenantHandle* a = m->Tenant("shared", "a");
  TenantHandle* b = m->Tenant("shared", "b");
  TenantHandle* acme = m->Tenant("acme_pool", "acme");
  EXPECT_EQ(a, b) << "tenants of the default pool share the _other handle";
  EXPECT_NE(a, acme);
  m->OnTransaction(a, 1);
  m->OnTransaction(b, 2);
  m->OnTransaction(acme, 4);

  Exposition e = ParseExposition(m->Scrape());
  EXPECT_EQ(e.Value(T("pgtenant_transactions_total", "shared", "_other")), 2);
  EXPECT_EQ(e.Value(T("pgtenant_tenant_server_seconds_total", "shared", "_other")), 3);
  EXPECT_EQ(e.Value(T("pgtenant_transactions_total", "acme_pool", "acme")), 1);
  EXPECT_EQ(e.CountContaining("tenant=\"a\""), 0);
  EXPECT_EQ(e.CountContaining("tenant=\"b\""), 0);
}

TEST(PrometheusMetrics, DedicatedPolicyWithoutDefaultPoolLabelsEveryTenant) {
  auto m = Make(TenantLabels::kDedicated, std::nullopt);
  EXPECT_EQ(m->TenantLabel("shared", "a"), "a");
}

TEST(PrometheusMetrics, SetDefaultPoolChangesLaterLookups) {
  auto m = Make(TenantLabels::kDedicated, "shared");
  EXPECT_EQ(m->TenantLabel("big", "acme"), "acme");
  m->SetDefaultPool("big");
  EXPECT_EQ(m->TenantLabel("big", "acme"), "_other");
  EXPECT_EQ(m->TenantLabel("shared", "acme"), "acme");
}

TEST(PrometheusMetrics, NonePolicyUsesOneTenantLabel) {
  auto m = Make(TenantLabels::kNone);
  TenantHandle* a = m->Tenant("shared", "a");
  TenantHandle* b = m->Tenant("other", "b");
  EXPECT_NE(a, b) << "still one series per pool";
  EXPECT_EQ(m->Tenant("shared", "zzz"), a);
  m->OnQuery(a);
  m->OnQuery(m->Tenant("shared", "c"));
  Exposition e = ParseExposition(m->Scrape());
  EXPECT_EQ(e.Value(T("pgtenant_queries_total", "shared", "_all")), 2);
  EXPECT_EQ(e.Value(T("pgtenant_queries_total", "other", "_all")), 0);
  EXPECT_EQ(e.CountContaining("tenant=\"a\""), 0);
}

TEST(PrometheusMetrics, EmptyTenantIsCountedAsNone) {
  auto m = Make(TenantLabels::kAll);
  m->OnError(m->Tenant("shared", ""));
  Exposition e = ParseExposition(m->Scrape());
  EXPECT_EQ(e.Value(T("pgtenant_tenant_errors_total", "shared", "_none")), 1);
}

TEST(PrometheusMetrics, PoolGauges) {
  auto m = Make();
  PoolHandle* p = m->Pool("shared");
  EXPECT_EQ(m->Pool("shared"), p);
  m->SetClientCounts(p, {.active = 3, .waiting = 2, .idle = 40});
  m->SetServerCounts(p, {.active = 3, .idle = 5, .used = 1, .login = 2});
  m->SetPinnedClients(p, 4);
  m->SetMaxWait(p, 1.5);
  Exposition e = ParseExposition(m->Scrape());
  auto state = [](const char* name, const char* s) {
    return std::string(name) + "{pool=\"shared\",state=\"" + s + "\"}";
  };
  EXPECT_EQ(e.Value(state("pgtenant_client_connections", "active")), 3);
  EXPECT_EQ(e.Value(state("pgtenant_client_connections", "waiting")), 2);
  EXPECT_EQ(e.Value(state("pgtenant_client_connections", "idle")), 40);
  EXPECT_EQ(e.Value(state("pgtenant_server_connections", "active")), 3);
  EXPECT_EQ(e.Value(state("pgtenant_server_connections", "idle")), 5);
  EXPECT_EQ(e.Value(state("pgtenant_server_connections", "used")), 1);
  EXPECT_EQ(e.Value(state("pgtenant_server_connections", "login")), 2);
  EXPECT_EQ(e.Value("pgtenant_pinned_clients{pool=\"shared\"}"), 4);
  EXPECT_EQ(e.Value("pgtenant_pool_max_wait_seconds{pool=\"shared\"}"), 1.5);
  // The documented cost: 46 series per pool before any tenant.
  EXPECT_EQ(e.CountContaining("pool=\"shared\""), 46);

  m->SetClientCounts(p, {.active = 0, .waiting = 0, .idle = 1});
  e = ParseExposition(m->Scrape());
  EXPECT_EQ(e.Value(state("pgtenant_client_connections", "active")), 0);
  EXPECT_EQ(e.Value(state("pgtenant_client_connections", "idle")), 1);
}

TEST(PrometheusMetrics, Histograms) {
  auto m = Make();
  PoolHandle* p = m->Pool("shared");
  m->OnWait(p, 0.003);
  m->OnWait(p, 0);
  m->OnWait(p, 100);  // beyond the last bucket
  m->OnTransactionDuration(p, 0.02);
  Exposition e = ParseExposition(m->Scrape());
  auto wait = [](const char* le) {
    return std::string("pgtenant_wait_seconds_bucket{pool=\"shared\",le=\"") + le + "\"}";
  };
  EXPECT_EQ(e.Value(wait("0.0005")), 1);
  EXPECT_EQ(e.Value(wait("0.0025")), 1);
  EXPECT_EQ(e.Value(wait("0.005")), 2);
  EXPECT_EQ(e.Value(wait("30")), 2);
  EXPECT_EQ(e.Value(wait("+Inf")), 3);
  EXPECT_EQ(e.Value("pgtenant_wait_seconds_count{pool=\"shared\"}"), 3);
  EXPECT_DOUBLE_EQ(e.Value("pgtenant_wait_seconds_sum{pool=\"shared\"}"), 100.003);
  EXPECT_EQ(e.Value("pgtenant_transaction_duration_seconds_bucket{pool=\"shared\",le=\"0.01\"}"), 0);
  EXPECT_EQ(e.Value("pgtenant_transaction_duration_seconds_bucket{pool=\"shared\",le=\"0.025\"}"), 1);
  EXPECT_EQ(e.Value("pgtenant_transaction_duration_seconds_bucket{pool=\"shared\",le=\"60\"}"), 1);
}

TEST(PrometheusMetrics, ClientConnections) {
  auto m = Make();
  m->OnClientConnected();
  m->OnClientConnected();
  m->OnClientConnected();
  m->OnClientDisconnected();
  Exposition e = ParseExposition(m->Scrape());
  EXPECT_EQ(e.Value("pgtenant_clients"), 2);
  EXPECT_EQ(e.Value("pgtenant_client_connections_accepted_total"), 3);
}

TEST(PrometheusMetrics, Reloads) {
  using std::chrono::system_clock;
  double before = std::chrono::duration<double>(system_clock::now().time_since_epoch()).count();
  auto m = Make();
  double started = ParseExposition(m->Scrape()).Value(
      "pgtenant_config_last_reload_success_timestamp_seconds");
  EXPECT_GE(started, std::floor(before));

  m->OnReload(false);
  m->OnReload(false);
  Exposition e = ParseExposition(m->Scrape());
  EXPECT_EQ(e.Value("pgtenant_config_reloads_total{result=\"failure\"}"), 2);
  EXPECT_EQ(e.Value("pgtenant_config_reloads_total{result=\"success\"}"), 0);
  EXPECT_EQ(e.Value("pgtenant_config_last_reload_success_timestamp_seconds"), started)
      << "a failed reload leaves the last-success time alone";

  m->OnReload(true);
  double after = std::chrono::duration<double>(system_clock::now().time_since_epoch()).count();
  e = ParseExposition(m->Scrape());
  EXPECT_EQ(e.Value("pgtenant_config_reloads_total{result=\"success\"}"), 1);
  double stamped = e.Value("pgtenant_config_last_reload_success_timestamp_seconds");
  EXPECT_GE(stamped, started);
  EXPECT_LE(stamped, std::ceil(after));
}

TEST(PrometheusMetrics, ForgetPoolRemovesItsSeriesAndKeepsHandlesUsable) {
  auto m = Make();
  PoolHandle* old_pool = m->Pool("gone");
  TenantHandle* old_tenant = m->Tenant("gone", "acme");
  m->OnQuery(old_tenant);
  m->OnQuery(m->Tenant("kept", "acme"));
  m->ForgetPool("gone");
  m->ForgetPool("never-existed");

  Exposition e = ParseExposition(m->Scrape());
  EXPECT_EQ(e.CountContaining("pool=\"gone\""), 0);
  EXPECT_EQ(e.Value(T("pgtenant_queries_total", "kept", "acme")), 1);

  // A session that still holds the old handles records into nothing.
  m->OnQuery(old_tenant);
  m->OnTransaction(old_tenant, 1);
  m->OnBytes(old_tenant, 1, 1);
  m->OnError(old_tenant);
  m->OnWait(old_pool, 1);
  m->OnTransactionDuration(old_pool, 1);
  m->SetClientCounts(old_pool, {.active = 1});
  m->SetServerCounts(old_pool, {.active = 1});
  m->SetPinnedClients(old_pool, 1);
  m->SetMaxWait(old_pool, 1);
  EXPECT_EQ(ParseExposition(m->Scrape()).CountContaining("pool=\"gone\""), 0);

  // A pool of the same name added back starts from zero, with new handles.
  TenantHandle* again = m->Tenant("gone", "acme");
  EXPECT_NE(again, old_tenant);
  e = ParseExposition(m->Scrape());
  EXPECT_EQ(e.Value(T("pgtenant_queries_total", "gone", "acme")), 0);
}

// ---- tenant_labels: busiest ----

// The tenant labels of one counter family in a scrape, as "pool/tenant".
std::set<std::string> Labelled(const Exposition& e) {
  std::set<std::string> out;
  const std::string prefix = "pgtenant_transactions_total{pool=\"";
  for (const auto& [series, value] : e.samples) {
    if (series.rfind(prefix, 0) != 0) continue;
    size_t pool_end = series.find('"', prefix.size());
    size_t tenant_at = series.find("tenant=\"", pool_end) + 8;
    out.insert(series.substr(prefix.size(), pool_end - prefix.size()) + "/" +
               series.substr(tenant_at, series.find('"', tenant_at) - tenant_at));
  }
  return out;
}

TEST(PrometheusMetrics, BusiestStartsEveryTenantUnderOtherUntilARanking) {
  auto m = Make(TenantLabels::kBusiest, "shared", 2);
  TenantHandle* a = m->Tenant("shared", "a");
  TenantHandle* b = m->Tenant("shared", "b");
  EXPECT_NE(a, b) << "each tenant has its own handle: its label follows the ranking";
  EXPECT_EQ(m->Tenant("shared", "a"), a) << "handles are cached";
  m->OnTransaction(a, 1);
  m->OnTransaction(b, 2);
  Exposition e = ParseExposition(m->Scrape());
  EXPECT_EQ(Labelled(e), (std::set<std::string>{"shared/_other"}));
  EXPECT_EQ(e.Value(T("pgtenant_transactions_total", "shared", "_other")), 2);
  EXPECT_EQ(e.Value(T("pgtenant_tenant_server_seconds_total", "shared", "_other")), 3);
}

TEST(PrometheusMetrics, BusiestLabelsTheKTenantsWithTheMostServerTimeOverEveryPool) {
  auto m = Make(TenantLabels::kBusiest, "shared", 2);
  TenantHandle* quiet = m->Tenant("shared", "quiet");
  TenantHandle* loud = m->Tenant("shared", "loud");
  TenantHandle* ded = m->Tenant("ded", "d1");
  m->OnTransaction(quiet, 0.1);
  m->OnTransaction(loud, 5);
  m->OnTransaction(ded, 3);
  m->RankBusiestTenants();
  EXPECT_EQ(m->TenantLabel("shared", "loud"), "loud");
  EXPECT_EQ(m->TenantLabel("ded", "d1"), "d1");
  EXPECT_EQ(m->TenantLabel("shared", "quiet"), "_other");
  // Counted from the ranking on under the new label; what came before stays in "_other".
  m->OnTransaction(loud, 1);
  m->OnQuery(loud);
  m->OnError(quiet);
  Exposition e = ParseExposition(m->Scrape());
  EXPECT_EQ(Labelled(e), (std::set<std::string>{"shared/_other", "shared/loud", "ded/_other", "ded/d1"}));
  EXPECT_EQ(e.Value(T("pgtenant_transactions_total", "shared", "loud")), 1);
  EXPECT_EQ(e.Value(T("pgtenant_queries_total", "shared", "loud")), 1);
  EXPECT_EQ(e.Value(T("pgtenant_transactions_total", "shared", "_other")), 2);
  EXPECT_EQ(e.Value(T("pgtenant_tenant_errors_total", "shared", "_other")), 1);
  EXPECT_EQ(e.CountContaining("tenant=\"loud\""), 25);
}

TEST(PrometheusMetrics, BusiestMovesALabelWhenAnotherTenantBecomesClearlyBusier) {
  auto m = Make(TenantLabels::kBusiest, "shared", 1);
  TenantHandle* a = m->Tenant("shared", "a");
  TenantHandle* b = m->Tenant("shared", "b");
  m->OnTransaction(a, 1);
  m->RankBusiestTenants();
  ASSERT_EQ(m->TenantLabel("shared", "a"), "a");
  // b a little busier than a's decayed score: not enough to take the label (no flapping).
  m->OnTransaction(b, 1.0);
  m->RankBusiestTenants();
  EXPECT_EQ(m->TenantLabel("shared", "a"), "a");
  EXPECT_EQ(m->TenantLabel("shared", "b"), "_other");
  // b clearly busier: the label moves, and a's series leave the scrape.
  m->OnTransaction(b, 10);
  m->RankBusiestTenants();
  EXPECT_EQ(m->TenantLabel("shared", "a"), "_other");
  EXPECT_EQ(m->TenantLabel("shared", "b"), "b");
  m->OnTransaction(a, 0.001);
  Exposition e = ParseExposition(m->Scrape());
  EXPECT_EQ(e.CountContaining("tenant=\"a\""), 0);
  EXPECT_EQ(Labelled(e), (std::set<std::string>{"shared/_other", "shared/b"}));
  EXPECT_EQ(e.Value(T("pgtenant_transactions_total", "shared", "_other")), 4) << "a twice, b twice before its label";
}

TEST(PrometheusMetrics, BusiestNeverHoldsMoreThanKLabelsWhateverTheTenants) {
  constexpr int kK = 7;
  auto m = Make(TenantLabels::kBusiest, "shared", kK);
  std::vector<TenantHandle*> handles;
  for (int i = 0; i < 500; ++i) {
    std::string pool = i % 5 == 0 ? "ded" : "shared";
    std::string tenant = "t";
    tenant += std::to_string(i);
    handles.push_back(m->Tenant(pool, tenant));
  }
  // Load shifting between tenants at every ranking.
  for (int round = 0; round < 20; ++round) {
    for (size_t i = 0; i < handles.size(); ++i) {
      if ((i * 7 + static_cast<size_t>(round) * 13) % 50 < 3) m->OnTransaction(handles[i], 0.01 * static_cast<double>(i % 17 + 1));
    }
    m->RankBusiestTenants();
    std::set<std::string> labels = Labelled(ParseExposition(m->Scrape()));
    size_t own = 0;
    for (const std::string& l : labels) own += l.find("/_") == std::string::npos ? 1 : 0;
    EXPECT_LE(own, static_cast<size_t>(kK)) << "round " << round;
    EXPECT_GE(own, 1u) << "round " << round;
  }
}

TEST(PrometheusMetrics, BusiestNeverRanksAnIdThatLooksLikeAGroupLabel) {
  // A custom id_pattern may allow "_other": it is counted with the others, never given (or
  // taken) a label of its own, so the shared "_other" series cannot be removed under others.
  auto m = Make(TenantLabels::kBusiest, "shared", 1);
  TenantHandle* odd = m->Tenant("shared", "_other");
  TenantHandle* plain = m->Tenant("shared", "a");
  m->OnTransaction(odd, 5);
  m->RankBusiestTenants();
  m->OnTransaction(plain, 10);
  m->RankBusiestTenants();
  m->OnTransaction(odd, 1);
  m->OnTransaction(plain, 1);
  Exposition e = ParseExposition(m->Scrape());
  EXPECT_EQ(e.Value(T("pgtenant_transactions_total", "shared", "_other")), 3);
  EXPECT_EQ(e.Value(T("pgtenant_transactions_total", "shared", "a")), 1);
}

TEST(PrometheusMetrics, BusiestKeepsTheNoTenantLabel) {
  auto m = Make(TenantLabels::kBusiest, "shared", 1);
  m->OnError(m->Tenant("shared", ""));
  m->RankBusiestTenants();
  Exposition e = ParseExposition(m->Scrape());
  EXPECT_EQ(e.Value(T("pgtenant_tenant_errors_total", "shared", "_none")), 1);
}

TEST(PrometheusMetrics, TenantWaitingGaugeIsTheSumOfItsLabelsHandles) {
  auto m = Make(TenantLabels::kBusiest, "shared", 1);
  TenantHandle* loud = m->Tenant("shared", "loud");
  TenantHandle* q1 = m->Tenant("shared", "q1");
  TenantHandle* q2 = m->Tenant("shared", "q2");
  m->OnTransaction(loud, 1);
  m->RankBusiestTenants();
  m->SetTenantWaiting({{loud, 12}, {q1, 2}, {q2, 3}, {nullptr, 4}});
  Exposition e = ParseExposition(m->Scrape());
  EXPECT_EQ(e.Value(T("pgtenant_tenant_waiting_clients", "shared", "loud")), 12);
  EXPECT_EQ(e.Value(T("pgtenant_tenant_waiting_clients", "shared", "_other")), 5);
  m->SetTenantWaiting({{q1, 1}});
  e = ParseExposition(m->Scrape());
  EXPECT_EQ(e.Value(T("pgtenant_tenant_waiting_clients", "shared", "loud")), 0) << "nobody of loud waits any more";
  EXPECT_EQ(e.Value(T("pgtenant_tenant_waiting_clients", "shared", "_other")), 1);
}

TEST(PrometheusMetrics, TenantWaitHistogram) {
  auto m = Make(TenantLabels::kAll);
  TenantHandle* acme = m->Tenant("shared", "acme");
  m->OnTenantWait(acme, 0);
  m->OnTenantWait(acme, 0.2);
  m->OnTenantWait(nullptr, 1);
  Exposition e = ParseExposition(m->Scrape());
  auto bucket = [](const char* le) {
    return std::string("pgtenant_tenant_wait_seconds_bucket{pool=\"shared\",tenant=\"acme\",le=\"") + le + "\"}";
  };
  EXPECT_EQ(e.Value(bucket("0.0005")), 1);
  EXPECT_EQ(e.Value(bucket("0.25")), 2);
  EXPECT_EQ(e.Value("pgtenant_tenant_wait_seconds_count{pool=\"shared\",tenant=\"acme\"}"), 2);
}

TEST(PrometheusMetrics, ForgetPoolUnderBusiestKeepsHandlesUsable) {
  auto m = Make(TenantLabels::kBusiest, "shared", 3);
  TenantHandle* t = m->Tenant("gone", "acme");
  m->OnTransaction(t, 1);
  m->RankBusiestTenants();
  ASSERT_EQ(m->TenantLabel("gone", "acme"), "acme");
  m->ForgetPool("gone");
  m->OnTransaction(t, 1);
  m->OnTenantWait(t, 1);
  m->SetTenantWaiting({{t, 3}});
  m->RankBusiestTenants();
  EXPECT_EQ(ParseExposition(m->Scrape()).CountContaining("pool=\"gone\""), 0);
}

TEST(PrometheusMetrics, BillingSeriesFollowTheSendersTotals) {
  auto m = Make();
  EXPECT_FALSE(ParseExposition(m->Scrape()).Has("pgtenant_billing_pending_windows")) << "billing off: no series";
  m->SetBilling({.delivered = 5, .duplicates = 2, .retried = 3, .failed = 1, .expired = 0, .unbilled = 4,
                 .pending = 7, .oldest_pending_age_seconds = 90, .last_success_unix = 1764900000});
  Exposition e = ParseExposition(m->Scrape());
  auto events = [&](const char* result) {
    return e.Value(std::string("pgtenant_billing_events_total{result=\"") + result + "\"}");
  };
  EXPECT_EQ(events("delivered"), 3) << "taken now: 5 acknowledged, 2 of them duplicates";
  EXPECT_EQ(events("duplicate"), 2);
  EXPECT_EQ(events("retried"), 3);
  EXPECT_EQ(events("failed"), 1);
  EXPECT_EQ(events("expired"), 0);
  EXPECT_EQ(events("unbilled"), 4);
  EXPECT_EQ(e.Value("pgtenant_billing_pending_windows"), 7);
  EXPECT_EQ(e.Value("pgtenant_billing_oldest_pending_age_seconds"), 90);
  EXPECT_EQ(e.Value("pgtenant_billing_last_success_timestamp_seconds"), 1764900000);
  m->SetBilling({.delivered = 9, .duplicates = 2, .retried = 3, .failed = 1, .expired = 1, .unbilled = 4});
  e = ParseExposition(m->Scrape());
  EXPECT_EQ(events("delivered"), 7) << "counters follow the totals";
  EXPECT_EQ(events("expired"), 1);
  EXPECT_EQ(e.Value("pgtenant_billing_pending_windows"), 0);
}

TEST(PrometheusMetrics, NullHandlesAreIgnored) {
  auto m = Make();
  std::string before = m->Scrape();
  m->OnTransaction(nullptr, 1);
  m->OnQuery(nullptr);
  m->OnBytes(nullptr, 1, 1);
  m->OnError(nullptr);
  m->OnTenantWait(nullptr, 1);
  m->SetTenantWaiting({{nullptr, 1}});
  m->OnWait(nullptr, 1);
  m->OnTransactionDuration(nullptr, 1);
  m->SetClientCounts(nullptr, {});
  m->SetServerCounts(nullptr, {});
  m->SetPinnedClients(nullptr, 1);
  m->SetMaxWait(nullptr, 1);
  EXPECT_EQ(m->Scrape(), before);
}

TEST(PrometheusMetrics, TenantLabelValuesAreEscaped) {
  // A custom id_pattern could allow quotes or backslashes; the exposition must stay parseable.
  auto m = Make();
  m->OnQuery(m->Tenant("shared", "a\"b\\c"));
  std::string text = m->Scrape();
  EXPECT_NE(text.find("tenant=\"a\\\"b\\\\c\""), std::string::npos) << text;
}

TEST(NullMetrics, HandsOutNullHandlesAndAcceptsThem) {
  NullMetrics n;
  Metrics& m = n;
  EXPECT_EQ(m.Pool("p"), nullptr);
  EXPECT_EQ(m.Tenant("p", "t"), nullptr);
  m.OnTransaction(m.Tenant("p", "t"), 1);
  m.OnReload(true);
  m.ForgetPool("p");
}

}  // namespace
}  // namespace pgtenant::metrics
