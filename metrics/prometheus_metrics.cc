#include "metrics/prometheus_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <array>
#include <exception>
#include <unordered_map>
#include <utility>
#include <vector>

#include "metrics/metric_defs.h"

namespace pgtenant::metrics {

namespace {

using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;
using prometheus::Histogram;
using prometheus::Labels;

constexpr size_t kMetricCount = static_cast<size_t>(MetricId::kCount);

// A session with no tenant yet (require_tenant: false) is still counted, under a visible name
// rather than an empty label value (which Prometheus treats as "label absent").
constexpr const char* kNoTenant = "_none";

struct PromPool : PoolHandle {
  std::array<Gauge*, 3> clients{};  // active, waiting, idle
  std::array<Gauge*, 4> servers{};  // active, idle, used, login
  Gauge* max_wait = nullptr;
  Gauge* pinned = nullptr;
  Histogram* wait = nullptr;
  Histogram* transaction = nullptr;
};

// The series of one (pool, tenant label).
struct LabelSeries {
  Counter* transactions = nullptr;
  Counter* queries = nullptr;
  Counter* server_seconds = nullptr;
  Counter* bytes_in = nullptr;
  Counter* bytes_out = nullptr;
  Counter* errors = nullptr;
  Gauge* waiting = nullptr;
  Histogram* wait = nullptr;
  int64_t waiting_now = 0;  // SetTenantWaiting's sum, before it is set
};

// What Tenant() hands out: the series it counts into now. Under kBusiest one per (pool, tenant),
// which also keeps the tenant's recent server time for the ranking; under the other policies
// one per label, shared by the tenants of that label.
struct PromTenant : TenantHandle {
  LabelSeries* series = nullptr;
  std::string tenant;         // kBusiest: the tenant it counts for
  double recent_seconds = 0;  // kBusiest: server time since the last ranking
  double score = 0;           // kBusiest: decayed server time, the ranking's measure
  bool labelled = false;      // kBusiest: counts under its own label now
};

// kBusiest ranking: every kRankIntervalSeconds the score decays by this factor before the new
// server time is added, a half-life of about a minute (0.89^6 = 0.5), so "busiest" means lately,
// not since start.
constexpr double kScoreDecay = 0.89;
// A labelled tenant keeps its label against a challenger unless the challenger's score beats its
// own by this factor: two tenants of nearly equal load do not swap labels at every ranking.
constexpr double kIncumbentBonus = 1.25;

constexpr std::array<const char*, 3> kClientStates = {"active", "waiting", "idle"};
constexpr std::array<const char*, 4> kServerStates = {"active", "idle", "used", "login"};

template <size_t N>
Histogram::BucketBoundaries Buckets(const double (&bounds)[N]) {
  return Histogram::BucketBoundaries(bounds, bounds + N);
}

std::string BindAddress(const PrometheusOptions& o) {
  bool v6 = o.host.find(':') != std::string::npos;
  return (v6 ? "[" + o.host + "]" : o.host) + ":" + std::to_string(o.port);
}

}  // namespace

struct PrometheusMetrics::State {
  struct PoolEntry {
    std::unique_ptr<PromPool> handle;
    std::unordered_map<std::string, std::unique_ptr<LabelSeries>> labels;  // by tenant label
    // Handles: by tenant label (fixed policies, and kBusiest's "_none") or by tenant (kBusiest).
    std::unordered_map<std::string, std::unique_ptr<PromTenant>> tenants;
  };

  explicit State(const PrometheusOptions& o)
      : tenant_labels(o.tenant_labels), busiest_tenants(o.busiest_tenants), default_pool(o.default_pool),
        registry(std::make_shared<prometheus::Registry>()),
        wait_buckets(Buckets(kWaitBuckets)), transaction_buckets(Buckets(kTransactionBuckets)),
        dead_histogram(Histogram::BucketBoundaries{}) {
    for (const MetricDef& def : kMetricDefs) Register(def);
    G(MetricId::kUp).Add({}).Set(1);
    G(MetricId::kBuildInfo).Add({{"version", o.version}}).Set(1);
    clients = &G(MetricId::kClients).Add({});
    accepted = &C(MetricId::kClientConnectionsAccepted).Add({});
    // Both results exist from the start so that rate() and alerts see a 0, not an absent series.
    reload_success = &C(MetricId::kConfigReloads).Add({{"result", "success"}});
    reload_failure = &C(MetricId::kConfigReloads).Add({{"result", "failure"}});
    last_reload = &G(MetricId::kConfigLastReloadSuccess).Add({});
    last_reload->SetToCurrentTime();
    dead_series = LabelSeries{&dead_counter, &dead_counter, &dead_counter, &dead_counter, &dead_counter,
                              &dead_counter, &dead_gauge, &dead_histogram};
  }

  void Register(const MetricDef& def) {
    size_t i = static_cast<size_t>(def.id);
    std::string name(def.name), help(def.help);
    switch (def.type) {
      case MetricType::kCounter:
        counters[i] = &prometheus::BuildCounter().Name(name).Help(help).Register(*registry);
        break;
      case MetricType::kGauge:
        gauges[i] = &prometheus::BuildGauge().Name(name).Help(help).Register(*registry);
        break;
      case MetricType::kHistogram:
        histograms[i] = &prometheus::BuildHistogram().Name(name).Help(help).Register(*registry);
        break;
    }
  }
  Family<Counter>& C(MetricId id) { return *counters[static_cast<size_t>(id)]; }
  Family<Gauge>& G(MetricId id) { return *gauges[static_cast<size_t>(id)]; }
  Family<Histogram>& H(MetricId id) { return *histograms[static_cast<size_t>(id)]; }

  // The pool's entry; its series are created on first use (a tenant's series imply its pool's).
  PoolEntry& Entry(const std::string& pool) {
    PoolEntry& entry = pools[pool];
    if (!entry.handle) entry.handle = NewPool(pool);
    return entry;
  }

  std::unique_ptr<PromPool> NewPool(const std::string& pool) {
    auto h = std::make_unique<PromPool>();
    for (size_t i = 0; i < kClientStates.size(); ++i) {
      h->clients[i] = &G(MetricId::kClientConnections).Add({{"pool", pool}, {"state", kClientStates[i]}});
    }
    for (size_t i = 0; i < kServerStates.size(); ++i) {
      h->servers[i] = &G(MetricId::kServerConnections).Add({{"pool", pool}, {"state", kServerStates[i]}});
    }
    Labels labels{{"pool", pool}};
    h->max_wait = &G(MetricId::kPoolMaxWait).Add(labels);
    h->pinned = &G(MetricId::kPinnedClients).Add(labels);
    h->wait = &H(MetricId::kWaitSeconds).Add(labels, wait_buckets);
    h->transaction = &H(MetricId::kTransactionDuration).Add(labels, transaction_buckets);
    return h;
  }

  // The series of (pool, label), created on first use.
  LabelSeries* Series(const std::string& pool, const std::string& label) {
    std::unique_ptr<LabelSeries>& slot = Entry(pool).labels[label];
    if (!slot) {
      slot = std::make_unique<LabelSeries>();
      Labels labels{{"pool", pool}, {"tenant", label}};
      slot->transactions = &C(MetricId::kTransactions).Add(labels);
      slot->queries = &C(MetricId::kQueries).Add(labels);
      slot->server_seconds = &C(MetricId::kTenantServerSeconds).Add(labels);
      slot->errors = &C(MetricId::kTenantErrors).Add(labels);
      slot->waiting = &G(MetricId::kTenantWaiting).Add(labels);
      slot->wait = &H(MetricId::kTenantWaitSeconds).Add(labels, wait_buckets);
      labels["direction"] = "in";
      slot->bytes_in = &C(MetricId::kTenantBytes).Add(labels);
      labels["direction"] = "out";
      slot->bytes_out = &C(MetricId::kTenantBytes).Add(labels);
    }
    return slot.get();
  }

  // Takes a label's series out of the registry. No handle may point at `s` any more.
  void RemoveSeries(LabelSeries& s) {
    C(MetricId::kTransactions).Remove(s.transactions);
    C(MetricId::kQueries).Remove(s.queries);
    C(MetricId::kTenantServerSeconds).Remove(s.server_seconds);
    C(MetricId::kTenantErrors).Remove(s.errors);
    C(MetricId::kTenantBytes).Remove(s.bytes_in);
    C(MetricId::kTenantBytes).Remove(s.bytes_out);
    G(MetricId::kTenantWaiting).Remove(s.waiting);
    H(MetricId::kTenantWaitSeconds).Remove(s.wait);
  }

  // kBusiest: moves the handle of `pool`'s tenant to its own label or back to "_other".
  void Relabel(const std::string& pool, PromTenant& t, bool own) {
    if (t.labelled == own) return;
    t.labelled = own;
    if (own) {
      t.series = Series(pool, t.tenant);
      return;
    }
    t.series = Series(pool, kOtherTenant);
    PoolEntry& entry = pools[pool];
    auto it = entry.labels.find(t.tenant);
    if (it == entry.labels.end()) return;
    RemoveSeries(*it->second);
    entry.labels.erase(it);
  }

  // Takes the pool's series out of the registry and points its handles at unregistered metrics,
  // so that a session still holding one cannot touch freed memory.
  void Retire(PoolEntry& entry) {
    PromPool& p = *entry.handle;
    for (Gauge*& g : p.clients) G(MetricId::kClientConnections).Remove(std::exchange(g, &dead_gauge));
    for (Gauge*& g : p.servers) G(MetricId::kServerConnections).Remove(std::exchange(g, &dead_gauge));
    G(MetricId::kPoolMaxWait).Remove(std::exchange(p.max_wait, &dead_gauge));
    G(MetricId::kPinnedClients).Remove(std::exchange(p.pinned, &dead_gauge));
    H(MetricId::kWaitSeconds).Remove(std::exchange(p.wait, &dead_histogram));
    H(MetricId::kTransactionDuration).Remove(std::exchange(p.transaction, &dead_histogram));
    retired_pools.push_back(std::move(entry.handle));
    for (auto& [key, t] : entry.tenants) {
      t->series = &dead_series;
      t->labelled = false;
      retired_tenants.push_back(std::move(t));
    }
    for (auto& [label, series] : entry.labels) RemoveSeries(*series);
  }

  TenantLabels tenant_labels;
  int busiest_tenants;
  std::optional<std::string> default_pool;
  std::shared_ptr<prometheus::Registry> registry;
  std::array<Family<Counter>*, kMetricCount> counters{};
  std::array<Family<Gauge>*, kMetricCount> gauges{};
  std::array<Family<Histogram>*, kMetricCount> histograms{};
  Histogram::BucketBoundaries wait_buckets;
  Histogram::BucketBoundaries transaction_buckets;
  Gauge* clients = nullptr;
  Counter* accepted = nullptr;
  Counter* reload_success = nullptr;
  Counter* reload_failure = nullptr;
  Gauge* last_reload = nullptr;
  // Billing: made by the first SetBilling(); the counters follow the sender's totals.
  struct BillingSeries {
    std::array<Counter*, 6> events{};  // delivered, duplicate, retried, failed, expired, unbilled
    std::array<uint64_t, 6> seen{};
    Gauge* pending = nullptr;
    Gauge* oldest = nullptr;
    Gauge* last_success = nullptr;
  };
  std::unique_ptr<BillingSeries> billing;

  std::unordered_map<std::string, PoolEntry> pools;
  // Handles of forgotten pools: kept so that pointers held by sessions stay valid. Bounded by the
  // pools and tenant labels ever removed, which reloads make rare.
  std::vector<std::unique_ptr<PromPool>> retired_pools;
  std::vector<std::unique_ptr<PromTenant>> retired_tenants;
  Counter dead_counter;
  Gauge dead_gauge;
  Histogram dead_histogram;
  LabelSeries dead_series;

  // Last member: destroyed first, so no scrape runs while the registry is torn down.
  std::unique_ptr<prometheus::Exposer> exposer;
};

Result<std::unique_ptr<PrometheusMetrics>> PrometheusMetrics::Create(const PrometheusOptions& options) {
  auto state = std::make_unique<State>(options);
  if (options.serve_http) {
    std::string address = BindAddress(options);
    // civetweb reports a failed bind by throwing; this is the boundary where that becomes a Status.
    try {
      state->exposer = std::make_unique<prometheus::Exposer>(address, /*num_threads=*/1);
    } catch (const std::exception& e) {
      return Status::Error("F0000", "metrics: cannot listen on " + address + ": " + e.what() +
                                        " (check metrics.host and metrics.port)");
    }
    state->exposer->RegisterCollectable(state->registry);
  }
  return std::unique_ptr<PrometheusMetrics>(new PrometheusMetrics(std::move(state)));
}

PrometheusMetrics::PrometheusMetrics(std::unique_ptr<State> state) : state_(std::move(state)) {}
PrometheusMetrics::~PrometheusMetrics() = default;

int PrometheusMetrics::port() const {
  if (!state_->exposer) return 0;
  std::vector<int> ports = state_->exposer->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

std::string PrometheusMetrics::Scrape() const {
  return prometheus::TextSerializer().Serialize(state_->registry->Collect());
}

PoolHandle* PrometheusMetrics::Pool(const std::string& pool) {
  return state_->Entry(pool).handle.get();
}

std::string PrometheusMetrics::TenantLabel(const std::string& pool, const std::string& tenant) const {
  if (tenant.empty() && state_->tenant_labels != TenantLabels::kNone) return kNoTenant;
  switch (state_->tenant_labels) {
    case TenantLabels::kBusiest: {
      if (tenant[0] == '_') return kOtherTenant;
      auto entry = state_->pools.find(pool);
      if (entry == state_->pools.end()) return kOtherTenant;
      auto it = entry->second.tenants.find(tenant);
      return it != entry->second.tenants.end() && it->second->labelled ? tenant : kOtherTenant;
    }
    case TenantLabels::kAll:
      break;
    case TenantLabels::kDedicated:
      if (state_->default_pool && pool == *state_->default_pool) return kOtherTenant;
      break;
    case TenantLabels::kNone:
      return kAllTenants;
  }
  return tenant;
}

TenantHandle* PrometheusMetrics::Tenant(const std::string& pool, const std::string& tenant) {
  // Ids starting with '_' (possible only under a custom id_pattern) are never ranked: their
  // handles would share keys, and a demotion the series, with "_other" and "_none".
  bool ranked = state_->tenant_labels == TenantLabels::kBusiest && !tenant.empty() && tenant[0] != '_';
  std::string key = ranked ? tenant : TenantLabel(pool, tenant);
  std::unique_ptr<PromTenant>& slot = state_->Entry(pool).tenants[key];
  if (!slot) {
    slot = std::make_unique<PromTenant>();
    // A ranked tenant starts under "_other": a label is earned by server time, at the next ranking.
    slot->series = state_->Series(pool, ranked ? kOtherTenant : key);
    if (ranked) slot->tenant = tenant;
  }
  return slot.get();
}

void PrometheusMetrics::OnTransaction(TenantHandle* tenant, double server_seconds) {
  if (tenant == nullptr) return;
  auto* t = static_cast<PromTenant*>(tenant);
  t->series->transactions->Increment();
  t->series->server_seconds->Increment(server_seconds);
  t->recent_seconds += server_seconds;
}

void PrometheusMetrics::OnQuery(TenantHandle* tenant) {
  if (tenant != nullptr) static_cast<PromTenant*>(tenant)->series->queries->Increment();
}

void PrometheusMetrics::OnBytes(TenantHandle* tenant, uint64_t in, uint64_t out) {
  if (tenant == nullptr) return;
  LabelSeries* s = static_cast<PromTenant*>(tenant)->series;
  // Skipping zero adds saves a compare-exchange loop on the common one-direction call.
  if (in != 0) s->bytes_in->Increment(static_cast<double>(in));
  if (out != 0) s->bytes_out->Increment(static_cast<double>(out));
}

void PrometheusMetrics::OnError(TenantHandle* tenant) {
  if (tenant != nullptr) static_cast<PromTenant*>(tenant)->series->errors->Increment();
}

void PrometheusMetrics::OnTenantWait(TenantHandle* tenant, double seconds) {
  if (tenant != nullptr) static_cast<PromTenant*>(tenant)->series->wait->Observe(seconds);
}

void PrometheusMetrics::SetTenantWaiting(const std::vector<std::pair<TenantHandle*, int64_t>>& waiting) {
  for (const auto& [handle, n] : waiting) {
    if (handle != nullptr) static_cast<PromTenant*>(handle)->series->waiting_now += n;
  }
  // Every label is set, so a label whose clients stopped waiting goes back to 0.
  for (auto& [pool, entry] : state_->pools) {
    for (auto& [label, series] : entry.labels) {
      series->waiting->Set(static_cast<double>(series->waiting_now));
      series->waiting_now = 0;
    }
  }
  state_->dead_series.waiting_now = 0;
}

void PrometheusMetrics::RankBusiestTenants() {
  if (state_->tenant_labels != TenantLabels::kBusiest) return;
  struct Candidate {
    const std::string* pool;
    PromTenant* tenant;
    double rank;
  };
  std::vector<Candidate> candidates;
  for (auto& [pool, entry] : state_->pools) {
    for (auto& [key, t] : entry.tenants) {
      if (t->tenant.empty()) continue;  // "_none": always its own label
      t->score = t->score * kScoreDecay + t->recent_seconds;
      t->recent_seconds = 0;
      if (t->score <= 0 && !t->labelled) continue;
      candidates.push_back({&pool, t.get(), t->labelled ? t->score * kIncumbentBonus : t->score});
    }
  }
  size_t k = std::min(candidates.size(), static_cast<size_t>(std::max(state_->busiest_tenants, 0)));
  std::partial_sort(candidates.begin(), candidates.begin() + static_cast<std::ptrdiff_t>(k), candidates.end(),
                    [](const Candidate& a, const Candidate& b) { return a.rank > b.rank; });
  // Labels leave before they are given, so the scrape never holds more than K of them.
  for (size_t i = k; i < candidates.size(); ++i) state_->Relabel(*candidates[i].pool, *candidates[i].tenant, false);
  for (size_t i = 0; i < k; ++i) {
    state_->Relabel(*candidates[i].pool, *candidates[i].tenant, candidates[i].tenant->score > 0);
  }
}

void PrometheusMetrics::OnWait(PoolHandle* pool, double seconds) {
  if (pool != nullptr) static_cast<PromPool*>(pool)->wait->Observe(seconds);
}

void PrometheusMetrics::OnTransactionDuration(PoolHandle* pool, double seconds) {
  if (pool != nullptr) static_cast<PromPool*>(pool)->transaction->Observe(seconds);
}

void PrometheusMetrics::SetClientCounts(PoolHandle* pool, const ClientCounts& c) {
  if (pool == nullptr) return;
  auto* p = static_cast<PromPool*>(pool);
  p->clients[0]->Set(static_cast<double>(c.active));
  p->clients[1]->Set(static_cast<double>(c.waiting));
  p->clients[2]->Set(static_cast<double>(c.idle));
}

void PrometheusMetrics::SetServerCounts(PoolHandle* pool, const ServerCounts& c) {
  if (pool == nullptr) return;
  auto* p = static_cast<PromPool*>(pool);
  p->servers[0]->Set(static_cast<double>(c.active));
  p->servers[1]->Set(static_cast<double>(c.idle));
  p->servers[2]->Set(static_cast<double>(c.used));
  p->servers[3]->Set(static_cast<double>(c.login));
}

void PrometheusMetrics::SetPinnedClients(PoolHandle* pool, int64_t n) {
  if (pool != nullptr) static_cast<PromPool*>(pool)->pinned->Set(static_cast<double>(n));
}

void PrometheusMetrics::SetMaxWait(PoolHandle* pool, double seconds) {
  if (pool != nullptr) static_cast<PromPool*>(pool)->max_wait->Set(seconds);
}

void PrometheusMetrics::OnClientConnected() {
  state_->clients->Increment();
  state_->accepted->Increment();
}

void PrometheusMetrics::OnClientDisconnected() { state_->clients->Decrement(); }

void PrometheusMetrics::OnReload(bool ok) {
  if (!ok) {
    state_->reload_failure->Increment();
    return;
  }
  state_->reload_success->Increment();
  state_->last_reload->SetToCurrentTime();
}

void PrometheusMetrics::SetBilling(const BillingCounts& c) {
  static constexpr const char* kResults[] = {"delivered", "duplicate", "retried", "failed", "expired", "unbilled"};
  auto& b = state_->billing;
  if (!b) {
    b = std::make_unique<State::BillingSeries>();
    for (size_t i = 0; i < b->events.size(); ++i) {
      b->events[i] = &state_->C(MetricId::kBillingEvents).Add({{"result", kResults[i]}});
    }
    b->pending = &state_->G(MetricId::kBillingPendingWindows).Add({});
    b->oldest = &state_->G(MetricId::kBillingOldestPendingAge).Add({});
    b->last_success = &state_->G(MetricId::kBillingLastSuccess).Add({});
  }
  // "delivered" counts windows Stripe took now; duplicates (taken earlier) have their own result.
  const std::array<uint64_t, 6> now = {c.delivered - std::min(c.duplicates, c.delivered), c.duplicates,
                                       c.retried, c.failed, c.expired, c.unbilled};
  for (size_t i = 0; i < now.size(); ++i) {
    if (now[i] > b->seen[i]) b->events[i]->Increment(static_cast<double>(now[i] - b->seen[i]));
    b->seen[i] = std::max(b->seen[i], now[i]);
  }
  b->pending->Set(static_cast<double>(c.pending));
  b->oldest->Set(static_cast<double>(c.oldest_pending_age_seconds));
  b->last_success->Set(static_cast<double>(c.last_success_unix));
}

void PrometheusMetrics::SetDefaultPool(const std::optional<std::string>& default_pool) {
  state_->default_pool = default_pool;
}

void PrometheusMetrics::ForgetPool(const std::string& pool) {
  auto it = state_->pools.find(pool);
  if (it == state_->pools.end()) return;
  state_->Retire(it->second);
  state_->pools.erase(it);
}

}  // namespace pgtenant::metrics
