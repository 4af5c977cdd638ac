// The isolation workload (docs/isolation.md): many concurrent clients, each with its own libpq
// connection, run short units of work through a pooler and check, on the server, that every
// unit runs with the client's own tenant and nobody else's session state. Some clients are
// adversarial: they change the tenant variable behind the pooler's back, abort, cancel and
// disconnect mid-transaction or mid-COPY, and (optionally) create session state.
//
// The workload only needs a host:port speaking the PostgreSQL protocol in front of the test
// schema (tests/integration/sql/app.sql), so the same probe runs against pgtenant or any other
// pooler (docs/isolation.md has PgBouncer's figures).
//
// Thread-safety: RunWorkload starts one thread per client and joins them all before it returns.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace pgtenant::isolation {

struct WorkloadOptions {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string user = "app";
  std::string password = "app_pw";
  std::string dbname = "app";
  int clients = 100;
  std::chrono::seconds duration{10};
  int max_actions_per_client = 1'000'000;  // a bound besides the deadline
  // Every Nth client (index % N == 0) is adversarial; 0 = none.
  int adversary_every = 5;
  // Session pooling: sessions are short (a few units, then reconnect), since each one holds a
  // server connection for its whole life.
  bool session_mode = false;
  // Adversaries also create session state (untracked SET, SQL PREPARE, temp table, LISTEN,
  // advisory lock, WITH HOLD cursor) and honest probes check that none of it is visible.
  bool state_adversaries = false;
  int max_pinned_adversaries = 3;  // adversaries holding state at once
  // Clients may name their tenant at startup (options, user suffix); false: only with SET.
  bool startup_sources = true;
  // pgtenant semantics: a literal session-level tenant change inside a transaction block must
  // be refused (25001). False for poolers that pass it through.
  bool strict_refusals = true;
  // Tenant acme (its own database, reached through the same user) is among the tenants.
  bool use_acme = true;
  // Tenants d000..d(N-1), each in its own database pgt_iso_dNNN through a pool pgtenant makes
  // from a template (pool_templates); 0 = none.
  int template_tenants = 0;
  // Honest clients name their tenant inside every transaction (BEGIN; SET ...; probe; COMMIT)
  // instead of once per session: the only safe pattern on a pooler without tenant support.
  bool set_in_every_transaction = false;
};

// What one run saw. "Leaks" are observations of a context other than the client's own; errors
// a client provoked itself (its own cancel, its own 1/0, a refusal it asked for) are expected.
struct WorkloadReport {
  int clients = 0;
  double seconds = 0;
  long actions = 0;
  long units_checked = 0;    // probes whose context was checked
  long units_unchecked = 0;  // probes of an adversary after its own hidden change
  long connects = 0;
  long tenant_switches = 0;
  long adversarial_actions = 0;
  long expected_errors = 0;
  long unexpected_errors = 0;
  long honest_errors = 0;    // of those, errors honest clients got (they provoked none)
  long tenant_leaks = 0;     // wrong variable, foreign rows, wrong row count or database
  long state_leaks = 0;      // another client's session state visible
  long self_mismatches = 0;  // an adversary that re-named its tenant (SET/RESET) saw another
  long cancels_sent = 0;
  long cancels_effective = 0;
  bool overran = false;              // the watchdog had to end the run
  std::vector<std::string> samples;  // the first few leaks and errors, described

  std::string Summary() const;
};

// Counters the workers share.
class Tally {
 public:
  std::atomic<long> actions{0}, units_checked{0}, units_unchecked{0}, connects{0},
      tenant_switches{0}, adversarial_actions{0}, expected_errors{0}, unexpected_errors{0}, honest_errors{0},
      tenant_leaks{0}, state_leaks{0}, self_mismatches{0}, cancels_sent{0}, cancels_effective{0},
      pinned_adversaries{0};

  // Keeps the first few descriptions of each kind.
  void Sample(const std::string& kind, const std::string& text);
  std::vector<std::string> Samples() const;

 private:
  mutable std::mutex mu_;
  std::vector<std::string> samples_;
  std::vector<std::pair<std::string, int>> per_kind_;
};

// Runs the workload until options.duration has passed, then joins every client. When the
// clients have not all finished 60 s after the deadline (a pooler that hangs), `on_overrun` is
// called once (e.g. to kill the pooler so blocked calls return) and the report says so.
WorkloadReport RunWorkload(const WorkloadOptions& options, const std::function<void()>& on_overrun);

}  // namespace pgtenant::isolation
