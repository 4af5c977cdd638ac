// worker.h: sessions, the probe and the honest actions. Adversarial actions are in
// adversary.cc.
#include "isolation/worker.h"

#include <cstdio>
#include <thread>

namespace pgtenant::isolation {

using pgtenant::testing::LastSqlState;
using pgtenant::testing::PGconnPtr;
using pgtenant::testing::PGresultPtr;
using std::chrono::milliseconds;

namespace {

// The probe: the variable, the rows RLS lets through and how many belong to another tenant,
// the database, and every kind of session state an adversary may leave behind (all named
// adv*). Columns are read by index in Worker::Evaluate.
constexpr const char* kProbe =
    "select coalesce(current_setting('app.tenant_id', true), ''), count(*), "
    "count(*) filter (where tenant_id <> current_setting('app.tenant_id', true)), "
    "current_database(), coalesce(current_setting('adv.marker', true), ''), "
    "(select count(*) from pg_prepared_statements where name like 'adv%'), "
    "(select count(*) from pg_class where relnamespace = pg_my_temp_schema()), "
    "(select count(*) from pg_listening_channels()), "
    "(select count(*) from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()), "
    "(select count(*) from pg_cursors where name like 'adv%'), "
    "current_setting('search_path') "
    "from items";

// search_path as every honest client has it (PostgreSQL's default; nobody names it at startup).
constexpr const char* kDefaultSearchPath = "\"$user\", public";

std::string Quoted(const std::string& s) { return "'" + s + "'"; }

}  // namespace

Worker::Worker(int index, const WorkloadOptions& options, Tally* tally, Clock::time_point deadline)
    : index_(index),
      options_(options),
      tally_(tally),
      deadline_(deadline),
      adversarial_(options.adversary_every > 0 && index % options.adversary_every == 0),
      rng_(static_cast<unsigned>(index) * 7919u +
           static_cast<unsigned>(Clock::now().time_since_epoch().count())) {}

Worker::~Worker() { ReleasePin(); }

void Worker::Run() {
  for (int n = 0; n < options_.max_actions_per_client && Clock::now() < deadline_; ++n) {
    if (!conn_ && !Connect()) {
      std::this_thread::sleep_for(milliseconds(100));
      continue;
    }
    if (adversarial_ && Rand(2) == 0) {
      AdversaryAction();
      ++tally_->adversarial_actions;
    } else {
      HonestAction();
    }
    ++tally_->actions;
    if (conn_ && PQstatus(conn_.get()) == CONNECTION_BAD) {
      Unexpected("connection lost", Outcome{false, "", "", PQerrorMessage(conn_.get())});
      Drop();
    }
    if (conn_ && session_budget_ > 0 && --session_budget_ == 0) Drop();
  }
  Drop();
}

// ---- session ----

bool Worker::Connect(const std::string& startup_tenant) {
  Drop();
  std::string tenant = startup_tenant.empty() ? RandomTenant() : startup_tenant;
  std::string user = options_.user, extra;
  // Source 3 names no tenant at startup.
  int source = !options_.startup_sources ? 3 : startup_tenant.empty() ? Rand(4) : Rand(3);
  if (source == 0) extra = "options='-c app.tenant_id=" + tenant + "'";
  if (source == 1) extra = "options='--app.tenant_id=" + tenant + "'";
  if (source == 2) user += "." + tenant;
  std::string conninfo = "host=" + options_.host + " port=" + std::to_string(options_.port) +
                         " dbname=" + options_.dbname + " user=" + user +
                         " password=" + options_.password +
                         " sslmode=disable connect_timeout=30 application_name=iso" +
                         std::to_string(index_) + " " + extra;
  conn_.reset(PQconnectdb(conninfo.c_str()));
  if (PQstatus(conn_.get()) != CONNECTION_OK) {
    Unexpected("connect (" + extra + user + ")",
               Outcome{false, "", "", conn_ ? PQerrorMessage(conn_.get()) : "out of memory"});
    conn_.reset();
    return false;
  }
  ++tally_->connects;
  history_.clear();
  Note("connect " + user + " " + extra);
  startup_ = source == 3 ? "" : tenant;
  own_ = startup_;
  hidden_change_ = renamed_after_hidden_ = holds_state_ = prepared_ = false;
  hidden_value_.clear();
  session_budget_ = options_.session_mode ? 2 + Rand(8) : -1;
  if (source == 3) {
    Outcome o = Exec("SET app.tenant_id = " + Quoted(tenant));
    if (!o.ok) {
      Unexpected("SET after connect", o);
      return true;  // the next action's checks still hold: own_ is none
    }
    own_ = tenant;
  }
  return true;
}

void Worker::Drop() {
  conn_.reset();
  holds_state_ = false;
  ReleasePin();
}

Worker::Outcome Worker::Exec(const std::string& sql) {
  PGresultPtr r(PQexec(conn_.get(), sql.c_str()));
  Outcome o;
  ExecStatusType st = PQresultStatus(r.get());
  o.ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_COPY_IN;
  o.sqlstate = LastSqlState(r.get());
  if (st == PGRES_TUPLES_OK && PQntuples(r.get()) > 0) o.value = PQgetvalue(r.get(), 0, 0);
  if (!o.ok) o.message = PQresultErrorMessage(r.get());
  if (!o.ok && o.message.empty()) o.message = PQerrorMessage(conn_.get());
  Note(sql + " -> " + (o.ok ? o.value : "E" + o.sqlstate));
  return o;
}

Worker::Outcome Worker::ExecBound(const char* sql, std::vector<std::string> values) {
  std::vector<const char*> params;
  for (const auto& v : values) params.push_back(v.c_str());
  PGresultPtr r(PQexecParams(conn_.get(), sql, static_cast<int>(params.size()), nullptr,
                             params.data(), nullptr, nullptr, 0));
  Outcome o;
  ExecStatusType st = PQresultStatus(r.get());
  o.ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
  o.sqlstate = LastSqlState(r.get());
  if (st == PGRES_TUPLES_OK && PQntuples(r.get()) > 0) o.value = PQgetvalue(r.get(), 0, 0);
  if (!o.ok) o.message = PQresultErrorMessage(r.get());
  std::string args;
  for (const auto& v : values) args += " " + v;
  Note(std::string(sql) + " [" + args + " ] -> " + (o.ok ? o.value : "E" + o.sqlstate));
  return o;
}

void Worker::Note(const std::string& what) {
  constexpr size_t kKeep = 10;
  history_.push_back(what.size() > 90 ? what.substr(0, 90) + "..." : what);
  if (history_.size() > kKeep) history_.pop_front();
}

std::string Worker::History() const {
  std::string out;
  for (const auto& h : history_) out += "\n      " + h;
  return out;
}

void Worker::Unexpected(const std::string& where, const Outcome& o) {
  ++tally_->unexpected_errors;
  if (!adversarial_) ++tally_->honest_errors;
  tally_->Sample("error", "client " + std::to_string(index_) + " (" + own_ + ") " + where + ": " +
                              o.sqlstate + " " + o.message + History());
  Recover();
}

bool Worker::InTransaction() const {
  PGTransactionStatusType s = PQtransactionStatus(conn_.get());
  return s == PQTRANS_INTRANS || s == PQTRANS_INERROR;
}

void Worker::Recover() {
  if (!conn_) return;
  if (PQstatus(conn_.get()) == CONNECTION_BAD) {
    Drop();
    return;
  }
  if (InTransaction()) PGresultPtr(PQexec(conn_.get(), "ROLLBACK"));
}

// ---- checking ----

void Worker::Probe(const std::string& tenant, const std::string& db, bool own_change) {
  if (options_.set_in_every_transaction && !own_change && !InTransaction()) {
    Outcome b = Exec("BEGIN");
    if (!b.ok) return Unexpected("BEGIN", b);
    if (!NameInTransaction()) return;
    PGresultPtr r(PQexec(conn_.get(), kProbe));
    Evaluate(r.get(), tenant, db, own_change);
    Outcome c = Exec("COMMIT");
    if (!c.ok) Unexpected("COMMIT", c);
    return;
  }
  PGresultPtr r(PQexec(conn_.get(), kProbe));
  Evaluate(r.get(), tenant, db, own_change);
}

// The client-side pattern for poolers without tenant support: name the tenant at the start of
// every transaction block.
bool Worker::NameInTransaction() {
  Outcome s = Exec(own_.empty() ? "RESET app.tenant_id" : "SET app.tenant_id = " + Quoted(own_));
  if (!s.ok) Unexpected("SET in the transaction", s);
  return s.ok;
}

void Worker::Evaluate(const PGresult* r, const std::string& tenant, const std::string& db,
                      bool own_change) {
  Note(std::string("probe -> ") + (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1
                                       ? std::string(PQgetvalue(r, 0, 0)) + "/" +
                                             PQgetvalue(r, 0, 1) + "/" + PQgetvalue(r, 0, 3)
                                       : "E" + LastSqlState(r)));
  if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
    return Unexpected("probe", Outcome{false, LastSqlState(r), "", PQresultErrorMessage(r)});
  }
  if (hidden_change_ && !own_change) {
    ++tally_->units_unchecked;
    return;
  }
  ++tally_->units_checked;
  auto col = [&](int i) { return std::string(PQgetvalue(r, 0, i)); };
  const std::string rows = tenant.empty() || DbOf(tenant) != db ? "0" : "3";
  bool tenant_ok = col(0) == tenant && col(1) == rows && col(2) == "0" && col(3) == db;
  bool state_ok = col(4).empty() && col(5) == "0" && col(6) == "0" && col(7) == "0" &&
                  col(8) == "0" && col(9) == "0" && col(10) == kDefaultSearchPath;
  std::string seen = "expected " + (tenant.empty() ? "<none>" : tenant) + "/" + rows + "/" + db +
                     ", saw " + col(0) + "/" + col(1) + " rows, " + col(2) + " foreign/" + col(3) +
                     " state[" + col(4) + "," + col(5) + "," + col(6) + "," + col(7) + "," +
                     col(8) + "," + col(9) + "," + col(10) + "]";
  std::string who = "client " + std::to_string(index_) + (adversarial_ ? " (adversary)" : "");
  if (!tenant_ok) {
    if (own_change || (renamed_after_hidden_ && col(0) == hidden_value_)) {
      ++tally_->self_mismatches;
      tally_->Sample("self", who + (own_change ? " in its own change: " : " after renaming: ") +
                                 seen + History());
    } else {
      ++tally_->tenant_leaks;
      tally_->Sample("leak", who + ": " + seen + History());
    }
  }
  if (!state_ok && !holds_state_) {
    ++tally_->state_leaks;
    tally_->Sample("state", who + ": " + seen + History());
  }
}

void Worker::Named(const std::string& tenant) {
  own_ = tenant;
  if (hidden_change_) renamed_after_hidden_ = true;
  hidden_change_ = false;
  ++tally_->tenant_switches;
}

void Worker::HiddenChange(const std::string& value) {
  hidden_change_ = true;
  hidden_value_ = value;
}

// ---- honest actions ----

void Worker::HonestAction() {
  int r = Rand(100);
  if (r < 30) return ProbeOwn();
  if (r < 45) return TransactionProbe();
  if (r < 55) return SwitchBySet();
  if (r < 62) return SwitchBySetConfig();
  if (r < 69) return SwitchBySetConfigBound();
  if (r < 74) return SwitchByPrepared();
  if (r < 76) return (void)Connect();
  if (r < 81) return ResetTenant();
  if (r < 85) return ResetAll("RESET ALL");
  if (r < 89) return ResetAll("DISCARD ALL");
  return SetLocalInTransaction();
}

void Worker::TransactionProbe() {
  Outcome b = Exec("BEGIN");
  if (!b.ok) return Unexpected("BEGIN", b);
  if (options_.set_in_every_transaction && !NameInTransaction()) return;
  Probe(own_, DbOf(own_));
  Probe(own_, DbOf(own_));
  Outcome c = Exec("COMMIT");
  if (!c.ok) Unexpected("COMMIT", c);
}

void Worker::SwitchBySet() {
  std::string t = RandomTenant();
  static const char* const kForms[] = {"SET app.tenant_id = '%s'",
                                       "SET SESSION app.tenant_id TO %s",
                                       "SET app.tenant_id TO '%s'", "set app.tenant_id='%s'"};
  char sql[128];
  snprintf(sql, sizeof(sql), kForms[Rand(4)], t.c_str());
  Outcome o = Exec(sql);
  if (!o.ok) return Unexpected(sql, o);
  Named(t);
  ProbeOwn();
}

void Worker::SwitchBySetConfig() {
  std::string t = RandomTenant();
  Outcome o = Exec("select set_config('app.tenant_id', " + Quoted(t) + ", false)");
  if (!o.ok || o.value != t) return Unexpected("set_config " + t + " gave " + o.value, o);
  Named(t);
  ProbeOwn();
}

void Worker::SwitchBySetConfigBound() {
  std::string t = RandomTenant();
  Outcome o = ExecBound("select set_config('app.tenant_id', $1, false)", {t});
  if (!o.ok || o.value != t) return Unexpected("bound set_config " + t + " gave " + o.value, o);
  Named(t);
  ProbeOwn();
}

void Worker::SwitchByPrepared() {
  if (!prepared_) {
    PGresultPtr p(PQprepare(conn_.get(), "pgt_set", "select set_config('app.tenant_id', $1, false)",
                            1, nullptr));
    if (PQresultStatus(p.get()) != PGRES_COMMAND_OK) {
      return Unexpected("prepare pgt_set",
                        Outcome{false, LastSqlState(p.get()), "", PQresultErrorMessage(p.get())});
    }
    prepared_ = true;
  }
  std::string t = RandomTenant();
  const char* values[1] = {t.c_str()};
  PGresultPtr r(PQexecPrepared(conn_.get(), "pgt_set", 1, values, nullptr, nullptr, 0));
  if (PQresultStatus(r.get()) != PGRES_TUPLES_OK || std::string(PQgetvalue(r.get(), 0, 0)) != t) {
    return Unexpected("execute pgt_set " + t,
                      Outcome{false, LastSqlState(r.get()), "", PQresultErrorMessage(r.get())});
  }
  Note("execute pgt_set [ " + t + " ] -> " + t);
  Named(t);
  ProbeOwn();
}

void Worker::ResetTenant() {
  Outcome o = Exec(Rand(2) ? "RESET app.tenant_id" : "SET app.tenant_id TO DEFAULT");
  if (!o.ok) return Unexpected("RESET app.tenant_id", o);
  Named(startup_);
  ProbeOwn();
}

// Both return the tenant to the startup one; DISCARD ALL also ends every other session state.
void Worker::ResetAll(const char* sql) {
  Outcome o = Exec(sql);
  if (!o.ok) return Unexpected(sql, o);
  Named(startup_);
  if (std::string(sql) == "DISCARD ALL") {
    prepared_ = false;  // DEALLOCATE ALL is part of it
    holds_state_ = false;
    ReleasePin();
  }
  ProbeOwn();
}

void Worker::SetLocalInTransaction() {
  if (own_.empty() || IsDedicated(own_)) return TransactionProbe();
  std::string t = RandomSharedTenant();
  Outcome b = Exec("BEGIN");
  if (!b.ok) return Unexpected("BEGIN", b);
  Outcome s = Rand(2) ? Exec("SET LOCAL app.tenant_id = " + Quoted(t))
                      : ExecBound("select set_config('app.tenant_id', $1, true)", {t});
  if (!s.ok) return Unexpected("SET LOCAL " + t, s);
  Probe(t, "app", /*own_change=*/true);
  Outcome c = Exec("COMMIT");
  if (!c.ok) return Unexpected("COMMIT", c);
  ProbeOwn();
}

// ---- tenants ----

std::string Worker::RandomSharedTenant() {
  char buf[8];
  snprintf(buf, sizeof(buf), "t%03d", Rand(100));
  return buf;
}

std::string Worker::RandomTenant() {
  if (options_.use_acme && Rand(25) == 0) return "acme";
  if (options_.template_tenants > 0 && Rand(8) == 0) {
    char buf[16];
    snprintf(buf, sizeof(buf), "d%03d", Rand(options_.template_tenants) % 1000);
    return buf;
  }
  return RandomSharedTenant();
}

}  // namespace pgtenant::isolation
