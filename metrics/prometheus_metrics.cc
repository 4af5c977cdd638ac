#include "metrics/prometheus_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

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

struct PromTenant : TenantHandle {
  Counter* transactions = nullptr;
  Counter* queries = nullptr;
  Counter* server_seconds = nullptr;
  Counter* bytes_in = nullptr;
  Counter* bytes_out = nullptr;
  Counter* errors = nullptr;
};

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
    std::unordered_map<std::string, std::unique_ptr<PromTenant>> tenants;  // by tenant label
  };

  explicit State(const PrometheusOptions& o)
      : tenant_labels(o.tenant_labels), default_pool(o.default_pool),
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

  std::unique_ptr<PromTenant> NewTenant(const std::string& pool, const std::string& label) {
    auto h = std::make_unique<PromTenant>();
    Labels labels{{"pool", pool}, {"tenant", label}};
    h->transactions = &C(MetricId::kTransactions).Add(labels);
    h->queries = &C(MetricId::kQueries).Add(labels);
    h->server_seconds = &C(MetricId::kTenantServerSeconds).Add(labels);
    h->errors = &C(MetricId::kTenantErrors).Add(labels);
    labels["direction"] = "in";
    h->bytes_in = &C(MetricId::kTenantBytes).Add(labels);
    labels["direction"] = "out";
    h->bytes_out = &C(MetricId::kTenantBytes).Add(labels);
    return h;
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
    for (auto& [label, t] : entry.tenants) {
      C(MetricId::kTransactions).Remove(std::exchange(t->transactions, &dead_counter));
      C(MetricId::kQueries).Remove(std::exchange(t->queries, &dead_counter));
      C(MetricId::kTenantServerSeconds).Remove(std::exchange(t->server_seconds, &dead_counter));
      C(MetricId::kTenantErrors).Remove(std::exchange(t->errors, &dead_counter));
      C(MetricId::kTenantBytes).Remove(std::exchange(t->bytes_in, &dead_counter));
      C(MetricId::kTenantBytes).Remove(std::exchange(t->bytes_out, &dead_counter));
      retired_tenants.push_back(std::move(t));
    }
  }

  TenantLabels tenant_labels;
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

  std::unordered_map<std::string, PoolEntry> pools;
  // Handles of forgotten pools: kept so that pointers held by sessions stay valid. Bounded by the
  // pools and tenant labels ever removed, which reloads make rare.
  std::vector<std::unique_ptr<PromPool>> retired_pools;
  std::vector<std::unique_ptr<PromTenant>> retired_tenants;
  Counter dead_counter;
  Gauge dead_gauge;
  Histogram dead_histogram;

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
  switch (state_->tenant_labels) {
    case TenantLabels::kAll:
      break;
    case TenantLabels::kDedicated:
      if (state_->default_pool && pool == *state_->default_pool) return kOtherTenant;
      break;
    case TenantLabels::kNone:
      return kAllTenants;
  }
  return tenant.empty() ? kNoTenant : tenant;
}

TenantHandle* PrometheusMetrics::Tenant(const std::string& pool, const std::string& tenant) {
  std::string label = TenantLabel(pool, tenant);
  std::unique_ptr<PromTenant>& slot = state_->Entry(pool).tenants[label];
  if (!slot) slot = state_->NewTenant(pool, label);
  return slot.get();
}

void PrometheusMetrics::OnTransaction(TenantHandle* tenant, double server_seconds) {
  if (tenant == nullptr) return;
  auto* t = static_cast<PromTenant*>(tenant);
  t->transactions->Increment();
  t->server_seconds->Increment(server_seconds);
}

void PrometheusMetrics::OnQuery(TenantHandle* tenant) {
  if (tenant != nullptr) static_cast<PromTenant*>(tenant)->queries->Increment();
}

void PrometheusMetrics::OnBytes(TenantHandle* tenant, uint64_t in, uint64_t out) {
  if (tenant == nullptr) return;
  auto* t = static_cast<PromTenant*>(tenant);
  // Skipping zero adds saves a compare-exchange loop on the common one-direction call.
  if (in != 0) t->bytes_in->Increment(static_cast<double>(in));
  if (out != 0) t->bytes_out->Increment(static_cast<double>(out));
}

void PrometheusMetrics::OnError(TenantHandle* tenant) {
  if (tenant != nullptr) static_cast<PromTenant*>(tenant)->errors->Increment();
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
