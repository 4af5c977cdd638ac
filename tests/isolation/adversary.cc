// worker.h: the adversarial actions. Each one does what an application could do by mistake or
// on purpose, and leaves the client in a state whose expected view is known: unchanged (the
// change was refused, rolled back or cancelled), its own hidden value (HiddenChange), or a new
// session after a disconnect.
#include <poll.h>

#include <cstdio>
#include <thread>
#include <vector>

#include "isolation/worker.h"

namespace pgtenant::isolation {

using pgtenant::testing::LastSqlState;
using pgtenant::testing::PGresultPtr;
using std::chrono::milliseconds;

namespace {

std::string Quoted(const std::string& s) { return "'" + s + "'"; }

}  // namespace

void Worker::AdversaryAction() {
  switch (Rand(options_.state_adversaries ? 13 : 11)) {
    case 0:
      return LiteralChangeInTransaction();
    case 1:
      return HiddenChangeInTransaction();
    case 2:
      return HiddenChangeOutsideTransaction();
    case 3:
      return AbortedTransaction();
    case 4:
      return DisconnectMidTransaction();
    case 5:
      return DisconnectMidCopy();
    case 6:
      return CancelSleep();
    case 7:
      return ResetAll("RESET ALL");
    case 8:
      return ResetAll("DISCARD ALL");
    case 9:
      return HiddenChangeThenNamingAgain();
    case 10:
      return ResetsInBlocksAndPipelines();
    case 11:
      return CreateSessionState();
    default:
      return FollowedSetting();
  }
}

std::vector<Worker::Outcome> Worker::Pipeline(const std::vector<std::string>& sql) {
  std::vector<Outcome> out;
  std::string noted = "pipeline:";
  if (PQenterPipelineMode(conn_.get()) != 1) return out;
  for (const std::string& s : sql) {
    PQsendQueryParams(conn_.get(), s.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0);
    noted += " " + s + ";";
  }
  PQpipelineSync(conn_.get());
  // Each statement's result, then a NULL; the sync's result ends it. A bounded number of reads.
  for (int reads = 0; reads < 4 * static_cast<int>(sql.size()) + 8; ++reads) {
    PGresultPtr r(PQgetResult(conn_.get()));
    if (!r) continue;
    ExecStatusType st = PQresultStatus(r.get());
    if (st == PGRES_PIPELINE_SYNC) break;
    Outcome o;
    o.ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    o.sqlstate = LastSqlState(r.get());
    if (!o.ok && st != PGRES_PIPELINE_ABORTED) o.message = PQresultErrorMessage(r.get());
    if (st == PGRES_PIPELINE_ABORTED) o.sqlstate = "aborted";
    out.push_back(o);
    noted += o.ok ? " ok" : " E" + o.sqlstate;
  }
  PQexitPipelineMode(conn_.get());
  Note(noted);
  return out;
}

// RESET ALL, DISCARD ALL and DEALLOCATE ALL where they fail, roll back, or cannot be read in the
// SQL text: inside blocks, in pipelines, behind a comment, prepared and run again. pgtenant must
// take from each exactly what the server did: the client's own view as on Postgres, and for
// everybody else nothing (the next client of the connection gets its own rows, no error).
void Worker::ResetsInBlocksAndPipelines() {
  auto expect_error = [&](const Outcome& o, const char* sqlstate, const std::string& what) {
    if (o.ok || o.sqlstate != sqlstate) {
      Unexpected(what + " should fail with " + sqlstate, o);
      return false;
    }
    Expected();
    return true;
  };
  auto deallocated = [&] { prepared_ = false; };  // pgt_set is gone, as on Postgres
  auto reset_all = [&] { Named(startup_); };
  switch (Rand(12)) {
    case 0: {  // a RESET ALL that rolls back changes nothing
      for (const char* sql : {"BEGIN", "RESET ALL", "ROLLBACK"}) {
        Outcome o = Exec(sql);
        if (!o.ok) return Unexpected(sql, o);
      }
      break;
    }
    case 1: {  // ... and one that commits is the client's
      for (const char* sql : {"BEGIN", "RESET ALL", "COMMIT"}) {
        Outcome o = Exec(sql);
        if (!o.ok) return Unexpected(sql, o);
      }
      reset_all();
      break;
    }
    case 2: {  // DISCARD ALL refused inside a block
      if (!Exec("BEGIN").ok) return Unexpected("BEGIN", Outcome{});
      if (!expect_error(Exec("DISCARD ALL"), "25001", "DISCARD ALL in a block")) return;
      Outcome r = Exec("ROLLBACK");
      if (!r.ok) return Unexpected("ROLLBACK", r);
      break;
    }
    case 3:  // ... and behind another statement of the same Query
      if (!expect_error(Exec("SELECT 1; DISCARD ALL"), "25001", "SELECT 1; DISCARD ALL")) return;
      break;
    case 4: {  // ... and as the second statement of a pipeline
      std::vector<Outcome> o = Pipeline({"select 1", "DISCARD ALL"});
      if (o.size() != 2 || !o[0].ok) return Unexpected("pipeline select 1, DISCARD ALL", o.empty() ? Outcome{} : o[0]);
      if (!expect_error(o[1], "25001", "DISCARD ALL in a pipeline")) return;
      break;
    }
    case 5: {  // DEALLOCATE ALL in a pipeline runs
      std::vector<Outcome> o = Pipeline({"select 1", "DEALLOCATE ALL"});
      if (o.size() != 2 || !o[0].ok || !o[1].ok) {
        return Unexpected("pipeline select 1, DEALLOCATE ALL", o.size() == 2 ? o[1] : Outcome{});
      }
      deallocated();
      break;
    }
    case 6: {  // RESET ALL in a pipeline commits with it
      std::vector<Outcome> o = Pipeline({"select 1", "RESET ALL"});
      if (o.size() != 2 || !o[0].ok || !o[1].ok) {
        return Unexpected("pipeline select 1, RESET ALL", o.size() == 2 ? o[1] : Outcome{});
      }
      reset_all();
      break;
    }
    case 7: {  // behind a comment
      static const char* const kHidden[] = {"/* c */ DEALLOCATE ALL", "/* c */ RESET ALL", "-- c\nDISCARD ALL"};
      int which = Rand(3);
      std::string sql = kHidden[which];
      Outcome o = Exec(sql);
      if (!o.ok) return Unexpected(sql, o);
      if (which == 0) deallocated();
      if (which >= 1) reset_all();
      if (which == 2) {
        deallocated();
        holds_state_ = false;
        ReleasePin();
      }
      break;
    }
    case 8: {  // DEALLOCATE ALL in an aborted block fails
      if (!Exec("BEGIN").ok) return Unexpected("BEGIN", Outcome{});
      if (!expect_error(Exec("select 1/0"), "22012", "1/0")) return;
      if (!expect_error(Exec("DEALLOCATE ALL"), "25P02", "DEALLOCATE ALL in an aborted block")) return;
      Outcome r = Exec("ROLLBACK");
      if (!r.ok) return Unexpected("ROLLBACK", r);
      break;
    }
    case 9: {  // DEALLOCATE ALL is not transactional: it stays done after a rollback
      for (const char* sql : {"BEGIN", "DEALLOCATE ALL", "ROLLBACK"}) {
        Outcome o = Exec(sql);
        if (!o.ok) return Unexpected(sql, o);
      }
      deallocated();
      break;
    }
    case 10: {  // RESET ALL; 1/0 in one Query: the implicit block rolls back
      if (!expect_error(Exec("RESET ALL; select 1/0"), "22012", "RESET ALL; select 1/0")) return;
      break;
    }
    default: {  // DISCARD ALL prepared, then run by Bind/Execute alone
      PGresultPtr p(PQprepare(conn_.get(), "disc_stmt", "DISCARD ALL", 0, nullptr));
      if (PQresultStatus(p.get()) != PGRES_COMMAND_OK) {
        return Unexpected("prepare DISCARD ALL", Outcome{false, LastSqlState(p.get()), "", PQresultErrorMessage(p.get())});
      }
      PGresultPtr r(PQexecPrepared(conn_.get(), "disc_stmt", 0, nullptr, nullptr, nullptr, 0));
      Note("prepare and execute DISCARD ALL");
      if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
        return Unexpected("execute DISCARD ALL", Outcome{false, LastSqlState(r.get()), "", PQresultErrorMessage(r.get())});
      }
      reset_all();
      deallocated();
      holds_state_ = false;
      ReleasePin();
      break;
    }
  }
  ProbeOwn();
}

// A change pgtenant cannot see, then another tenant named, then the client's own tenant named
// again (SET, or RESET ALL back to the startup one) and probed a few times: the hidden value
// must not come back on any connection the client used before the naming. (pgtenant once
// forgot the naming after the first connection it reached, and trusted the older ones;
// TenancyTest.HiddenChangeDoesNotOutliveTheClientsNextNaming reproduces it deterministically.)
void Worker::HiddenChangeThenNamingAgain() {
  // Half the time from a session that starts on acme, whose pool other clients rarely use: the
  // connection holding the hidden value then stays idle until this client comes back.
  if (options_.use_acme && options_.startup_sources && Rand(2) == 0 && !Connect("acme")) return;
  const std::string own = own_;
  const std::string hidden = RandomSharedTenant();
  Outcome h = Exec("select switch_tenant(" + Quoted(hidden) + ")");
  if (!h.ok || h.value != hidden) return Unexpected("switch_tenant " + hidden, h);
  HiddenChange(hidden);
  const std::string other = RandomSharedTenant();  // another pool than acme's
  Outcome s = Exec("SET app.tenant_id = " + Quoted(other));
  if (!s.ok) return Unexpected("SET app.tenant_id to " + other, s);
  Named(other);
  ProbeOwn();
  if (own.empty() || Rand(2) == 0) {
    ResetAll("RESET ALL");
  } else {
    Outcome back = Exec("SET app.tenant_id = " + Quoted(own));
    if (!back.ok) return Unexpected("SET app.tenant_id back to " + own, back);
    Named(own);
  }
  for (int i = 0; i < 3; ++i) ProbeOwn();
}

// A session-level search_path that pgtenant follows (restores on this client's next connections)
// instead of pinning: it must reach no other client of the connection it ran on. Over the simple
// or the extended protocol; sometimes RESET again at once.
void Worker::FollowedSetting() {
  holds_state_ = true;  // until a disconnect or DISCARD ALL: this client's own probes may see it
  Outcome o;
  if (Rand(2) == 0) {
    o = Exec("SET search_path = pg_catalog, public");
  } else {
    PGresultPtr r(PQexecParams(conn_.get(), "SET SESSION search_path TO public, pg_catalog", 0, nullptr, nullptr,
                               nullptr, nullptr, 0));
    o = Outcome{PQresultStatus(r.get()) == PGRES_COMMAND_OK, LastSqlState(r.get()), "", PQresultErrorMessage(r.get())};
  }
  if (!o.ok) return Unexpected("SET search_path", o);
  ProbeOwn();
  if (Rand(2) == 0) {
    Outcome reset = Exec("RESET search_path");
    if (!reset.ok) return Unexpected("RESET search_path", reset);
    ProbeOwn();
  }
}

// A session-level change a pooler can read inside a transaction block. Right after BEGIN it is
// the block's, and the session's once the block commits, as on Postgres (pgtenant has not given
// the block a server yet, so the change also chooses its pool). Once a statement of the block
// ran, pgtenant refuses it with 25001 (the transaction is aborted, COMMIT rolls back).
void Worker::LiteralChangeInTransaction() {
  std::string t = RandomTenant();
  while (t == own_) t = RandomTenant();  // naming the current tenant again is no change
  static const char* const kForms[] = {"SET app.tenant_id = '%s'",
                                       "select set_config('app.tenant_id', '%s', false)",
                                       "SET SESSION app.tenant_id TO %s"};
  char sql[128];
  snprintf(sql, sizeof(sql), kForms[Rand(3)], t.c_str());
  // pgtenant's refusal aborts the block; its COMMIT rolls back and nothing changed.
  auto refused = [&](const Outcome& o) {
    if (o.ok || o.sqlstate != "25001") return false;
    Expected();
    Outcome c = Exec("COMMIT");
    if (!c.ok) {
      Unexpected("COMMIT after 25001", c);
    } else {
      ProbeOwn();
    }
    return true;
  };
  Outcome b = Exec("BEGIN");
  if (!b.ok) return Unexpected("BEGIN", b);
  if (Rand(2) == 0) {
    Outcome o = Exec(sql);
    // Refused where pgtenant holds a server for the block already (session mode, a pinned
    // client), as below.
    if (refused(o)) return;
    if (!o.ok) return Unexpected(std::string("right after BEGIN: ") + sql, o);
    Probe(t, DbOf(t), /*own_change=*/true);
    const bool commit = Rand(2) == 0;
    Outcome e = Exec(commit ? "COMMIT" : "ROLLBACK");
    if (!e.ok) return Unexpected(commit ? "COMMIT" : "ROLLBACK", e);
    if (commit) Named(t);
    return ProbeOwn();
  }
  Outcome first = Exec("select 1");
  if (!first.ok) return Unexpected("select 1 in the block", first);
  Outcome o = Exec(sql);
  if (refused(o)) return;
  if (!o.ok) return Unexpected(std::string("in a transaction: ") + sql, o);
  if (options_.strict_refusals) return Unexpected(std::string("not refused: ") + sql, o);
  Probe(t, DbOf(own_), /*own_change=*/true);
  Outcome c = Exec("COMMIT");
  if (!c.ok) return Unexpected("COMMIT", c);
  HiddenChange(t);
}

// Changes a pooler cannot see in the SQL text (or may not), committed in the client's own
// transaction. Within it the client sees what Postgres gives; afterwards it is "hidden".
void Worker::HiddenChangeInTransaction() {
  std::string t = RandomSharedTenant();
  Outcome b = Exec("BEGIN");
  if (!b.ok) return Unexpected("BEGIN", b);
  Outcome o;
  // Forms 1 and 2 name the variable in the text: pgtenant reads them, and right after BEGIN
  // (no statement of the block ran yet) takes them as the block's tenant change, which becomes
  // the session's when the block commits, as on Postgres.
  const int form = Rand(4);
  const bool readable = options_.strict_refusals && (form == 1 || form == 2);
  switch (form) {
    case 0:
      o = Exec("select switch_tenant(" + Quoted(t) + ")");
      break;
    case 1:
      o = Exec("select SET_CONFIG('APP.TENANT_ID', " + Quoted(t) + ", false)");
      break;
    case 2:
      o = Exec("select pg_catalog.set_config('app.tenant_id', " + Quoted(t) + ", false)");
      break;
    default:
      o = ExecBound("select set_config($1, $2, false)", {"app.tenant_id", t});
      break;
  }
  if (readable && o.ok && o.value == t) {
    Probe(t, DbOf(t), /*own_change=*/true);
    Outcome c = Exec("COMMIT");
    if (!c.ok) return Unexpected("COMMIT", c);
    Named(t);
    return;
  }
  if (!o.ok && o.sqlstate == "25001") {  // a pooler that saw through it
    Expected();
    Outcome r = Exec("ROLLBACK");
    if (!r.ok) return Unexpected("ROLLBACK after 25001", r);
    return ProbeOwn();
  }
  if (!o.ok || o.value != t) return Unexpected("hidden change to " + t + " gave " + o.value, o);
  Probe(t, DbOf(own_), /*own_change=*/true);
  Outcome c = Exec("COMMIT");
  if (!c.ok) return Unexpected("COMMIT", c);
  HiddenChange(t);
}

void Worker::HiddenChangeOutsideTransaction() {
  std::string t = RandomSharedTenant();
  Outcome o = Exec("select switch_tenant(" + Quoted(t) + ")");
  if (!o.ok || o.value != t) return Unexpected("switch_tenant " + t, o);
  HiddenChange(t);
}

void Worker::AbortedTransaction() {
  std::string t = RandomSharedTenant();
  Outcome b = Exec("BEGIN");
  if (!b.ok) return Unexpected("BEGIN", b);
  bool local = Rand(2) == 0 && !own_.empty() && !IsDedicated(own_);
  Outcome c = local ? Exec("SET LOCAL app.tenant_id = " + Quoted(t))
                    : Exec("select switch_tenant(" + Quoted(t) + ")");
  if (!c.ok) return Unexpected("change before the error", c);
  Outcome e = Exec("select 1/0");
  if (e.sqlstate != "22012") return Unexpected("1/0 gave", e);
  Expected();
  Outcome a = Exec("select 1");
  if (a.sqlstate != "25P02") return Unexpected("in an aborted transaction", a);
  Expected();
  Outcome r = Exec("ROLLBACK");
  if (!r.ok) return Unexpected("ROLLBACK", r);
  ProbeOwn();
}

// Leaves in the middle of a transaction: with a change and an update, or with a query running.
void Worker::DisconnectMidTransaction() {
  Outcome b = Exec("BEGIN");
  if (!b.ok) return Unexpected("BEGIN", b);
  Outcome u = Exec("update items set body = body where id = 1");
  if (!u.ok) return Unexpected("update", u);
  if (Rand(2) == 0) {
    Outcome s = Exec("select switch_tenant(" + Quoted(RandomSharedTenant()) + ")");
    if (!s.ok) return Unexpected("switch_tenant", s);
  } else if (PQsendQuery(conn_.get(), "select pg_sleep(0.5)") == 1) {
    Note("send select pg_sleep(0.5), disconnect");
    std::this_thread::sleep_for(milliseconds(20));
  }
  Drop();
  Connect();
}

void Worker::DisconnectMidCopy() {
  if (Rand(2) == 0) {
    Outcome b = Exec("BEGIN");
    if (!b.ok) return Unexpected("BEGIN", b);
    Outcome s = Exec("select switch_tenant(" + Quoted(RandomSharedTenant()) + ")");
    if (!s.ok) return Unexpected("switch_tenant", s);
  }
  PGresultPtr r(PQexec(conn_.get(), "COPY copytest (a, b) FROM STDIN"));
  Note("COPY FROM STDIN, then disconnect");
  if (PQresultStatus(r.get()) != PGRES_COPY_IN) {
    return Unexpected("COPY FROM STDIN",
                      Outcome{false, LastSqlState(r.get()), "", PQresultErrorMessage(r.get())});
  }
  const char kRows[] = "1\tadversary\n2\tadversary\n3\tadv";
  PQputCopyData(conn_.get(), kRows, sizeof(kRows) - 1);
  PQflush(conn_.get());
  Drop();
  Connect();
}

// Cancels its own pg_sleep: 57014 is expected; if the cancel came too late the statement (and
// in the implicit transaction, its switch_tenant) took effect.
void Worker::CancelSleep() {
  bool txn = Rand(2) == 0;
  std::string t = RandomSharedTenant();
  if (txn) {
    Outcome b = Exec("BEGIN");
    if (!b.ok) return Unexpected("BEGIN", b);
  }
  std::string sql =
      txn ? "select pg_sleep(1)" : "select switch_tenant(" + Quoted(t) + "), pg_sleep(1)";
  if (PQsendQuery(conn_.get(), sql.c_str()) != 1) {
    return Unexpected("send " + sql, Outcome{false, "", "", PQerrorMessage(conn_.get())});
  }
  Note("send " + sql + ", cancel");
  std::this_thread::sleep_for(milliseconds(20 + Rand(150)));
  PGcancel* cancel = PQgetCancel(conn_.get());
  char err[256] = {0};
  int sent = cancel ? PQcancel(cancel, err, sizeof(err)) : 0;
  if (cancel) PQfreeCancel(cancel);
  ++tally_->cancels_sent;
  bool ok = false, finished = false;
  std::string state, message;
  auto limit = Clock::now() + std::chrono::seconds(30);
  while (Clock::now() < limit) {
    if (PQisBusy(conn_.get())) {
      pollfd pfd{PQsocket(conn_.get()), POLLIN, 0};
      poll(&pfd, 1, 100);
      if (!PQconsumeInput(conn_.get())) break;
      continue;
    }
    PGresultPtr r(PQgetResult(conn_.get()));
    if (!r) {
      finished = true;
      break;
    }
    if (PQresultStatus(r.get()) == PGRES_TUPLES_OK)
      ok = true;
    else
      state = LastSqlState(r.get()), message = PQresultErrorMessage(r.get());
  }
  if (!finished)
    return Unexpected("cancelled query did not end", Outcome{false, state, "", message});
  // Counted only now: Unexpected() rolls back, which needs the query to have ended.
  if (!sent) Unexpected("PQcancel", Outcome{false, "", "", err});
  if (!conn_) return;
  Note(std::string("cancel -> ") + (ok ? "completed" : "E" + state));
  if (state == "57014") {
    ++tally_->cancels_effective;
    Expected();
    if (txn) {
      Outcome r = Exec("ROLLBACK");
      if (!r.ok) return Unexpected("ROLLBACK after cancel", r);
    }
    return ProbeOwn();
  }
  if (!ok) return Unexpected("cancelled " + sql, Outcome{false, state, "", message});
  if (txn) {
    Outcome c = Exec("COMMIT");
    if (!c.ok) return Unexpected("COMMIT", c);
  } else {
    HiddenChange(t);
  }
}

// Session state that cannot move between server connections; a pooler must keep it to this
// client (or refuse it) and clear it before anyone else uses the connection. Refusals count as
// expected errors.
void Worker::CreateSessionState() {
  if (tally_->pinned_adversaries.fetch_add(1) >= options_.max_pinned_adversaries) {
    --tally_->pinned_adversaries;
    return ProbeOwn();
  }
  holds_pin_ = true;
  holds_state_ = true;
  const std::string lock = "select pg_advisory_lock(" + std::to_string(100000 + index_) + ")";
  for (const std::string& sql :
       {std::string("SET adv.marker = 'leak'"), std::string("PREPARE adv_stmt AS select 1"),
        std::string("CREATE TEMP TABLE adv_tmp (x int)"), std::string("LISTEN adv_chan"), lock,
        std::string("BEGIN"), std::string("DECLARE adv_cur CURSOR WITH HOLD FOR select 1"),
        std::string("COMMIT")}) {
    Outcome o = Exec(sql);
    if (!o.ok) {
      Expected();
      tally_->Sample("refused", "client " + std::to_string(index_) + ": " + sql + ": " +
                                    o.sqlstate + " " + o.message);
    }
    if (!conn_ || PQstatus(conn_.get()) == CONNECTION_BAD) return Drop();
  }
  if (InTransaction()) Exec("ROLLBACK");
  ProbeOwn();
  ProbeOwn();
  if (Rand(2) == 0) {
    Drop();
    Connect();
  } else {
    ResetAll("DISCARD ALL");  // and the probe after it checks the state is gone
  }
}

void Worker::ReleasePin() {
  if (!holds_pin_) return;
  --tally_->pinned_adversaries;
  holds_pin_ = false;
}

}  // namespace pgtenant::isolation
