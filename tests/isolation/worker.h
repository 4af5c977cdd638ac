// One client of the isolation workload (workload.h): a thread's worth of state and the units of
// work it runs. Honest actions name tenants by every source pgtenant accepts and check each
// unit; adversarial actions try to make the tenant variable or session state outlive their own
// transaction or session.
//
// A client always knows which tenant it must see (`own_`): the one it named last, by a startup
// source, SET, set_config, RESET (back to the startup one) or a reconnect. After an adversarial
// hidden change (one a pooler cannot see in the SQL text) its own view is what the pooler
// makes of it, so its probes are not checked until it names a tenant again; everybody else's
// always are.
//
// Thread-safety: a Worker belongs to one thread; only the Tally is shared.
#pragma once

#include <chrono>
#include <deque>
#include <random>
#include <string>

#include "integration/harness.h"
#include "isolation/workload.h"

namespace pgtenant::isolation {

class Worker {
 public:
  using Clock = std::chrono::steady_clock;

  Worker(int index, const WorkloadOptions& options, Tally* tally, Clock::time_point deadline);
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  ~Worker();

  // Runs actions until the deadline or the action bound.
  void Run();

 private:
  // The outcome of one statement.
  struct Outcome {
    bool ok = false;       // COMMAND_OK, TUPLES_OK (or COPY_IN when asked for)
    std::string sqlstate;  // of an error
    std::string value;     // first column of the first row
    std::string message;
  };

  // ---- session ----
  // A new session whose startup names `startup_tenant` (a random tenant and source when empty).
  bool Connect(const std::string& startup_tenant = {});
  void Drop();
  Outcome Exec(const std::string& sql);
  Outcome ExecBound(const char* sql, std::vector<std::string> values);
  // Remembers what was sent and what came back, for the description of a leak or an error.
  void Note(const std::string& what);
  std::string History() const;
  void Unexpected(const std::string& where, const Outcome& o);
  void Expected() { ++tally_->expected_errors; }
  // After an unexpected error: roll back an open transaction, drop a broken connection.
  void Recover();
  bool InTransaction() const;

  // ---- checking ----
  // Runs the probe. The client must see `tenant` ("" = none) on database `db`. `own_change`:
  // inside the client's own transaction after it changed the variable itself.
  void Probe(const std::string& tenant, const std::string& db, bool own_change = false);
  void ProbeOwn() { Probe(own_, DbOf(own_)); }
  // WorkloadOptions::set_in_every_transaction: SET (or RESET) the tenant in the open block.
  bool NameInTransaction();
  void Evaluate(const PGresult* r, const std::string& tenant, const std::string& db,
                bool own_change);
  // The client named its tenant explicitly: its view is checked again.
  void Named(const std::string& tenant);
  // The client changed the variable to `value` where a pooler cannot see it.
  void HiddenChange(const std::string& value);

  // ---- honest actions ----
  void HonestAction();
  void TransactionProbe();
  void SwitchBySet();
  void SwitchBySetConfig();
  void SwitchBySetConfigBound();
  void SwitchByPrepared();
  void ResetTenant();
  void ResetAll(const char* sql);
  void SetLocalInTransaction();

  // ---- adversarial actions ----
  void AdversaryAction();
  void LiteralChangeInTransaction();
  void HiddenChangeInTransaction();
  void HiddenChangeOutsideTransaction();
  void HiddenChangeThenNamingAgain();
  void AbortedTransaction();
  void DisconnectMidTransaction();
  void DisconnectMidCopy();
  void CancelSleep();
  void CreateSessionState();
  void FollowedSetting();
  void ResetsInBlocksAndPipelines();
  // Runs `sql` as one pipeline (each statement a Parse/Bind/Execute, one Sync at the end).
  std::vector<Outcome> Pipeline(const std::vector<std::string>& sql);
  void ReleasePin();

  // ---- tenants ----
  std::string RandomTenant();        // t000..t099, sometimes acme or a template tenant dNNN
  std::string RandomSharedTenant();  // t000..t099
  // A tenant with a database of its own: acme, or a template tenant dNNN (pgt_iso_dNNN).
  static bool IsDedicated(const std::string& tenant) { return tenant == "acme" || (!tenant.empty() && tenant[0] == 'd'); }
  static std::string DbOf(const std::string& tenant) {
    if (tenant == "acme") return "acme";
    return IsDedicated(tenant) ? "pgt_iso_" + tenant : "app";
  }
  int Rand(int n) { return static_cast<int>(rng_() % static_cast<unsigned>(n)); }

  const int index_;
  const WorkloadOptions& options_;
  Tally* const tally_;
  const Clock::time_point deadline_;
  const bool adversarial_;
  std::mt19937 rng_;

  pgtenant::testing::PGconnPtr conn_;
  std::string startup_;                // tenant named at startup ("" none)
  std::string own_;                    // tenant the client must see now ("" none)
  bool hidden_change_ = false;         // the variable was changed behind the pooler's back
  bool renamed_after_hidden_ = false;  // ... and the client named its tenant again since
  std::string hidden_value_;           // the value of its last hidden change
  bool holds_state_ = false;         // created session state that DISCARD ALL or a disconnect ends
  bool holds_pin_ = false;           // counted in tally_->pinned_adversaries
  bool prepared_ = false;            // the named statement pgt_set exists on this session
  int session_budget_ = -1;          // session mode: units left before reconnecting
  std::deque<std::string> history_;  // the last statements and their outcomes, for samples
};

}  // namespace pgtenant::isolation
