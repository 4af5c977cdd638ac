"""What every driver workload of tests/drivers shares: arguments, tenants, checks, the result line.

A workload runs CLIENTS concurrent clients, each for ITERATIONS rounds or until the deadline, and
prints one machine-readable line at the end that run_drivers.sh reads:

    RESULT clients=50 statements=4310 errors=0 leaks=0

before it, one line per problem: `ERROR c17: ...` (anything unexpected: an exception, a cancel that
did not cancel, a connection that stopped working) or `LEAK c17: ...` (a row or setting of another
tenant, or a count that is not the tenant's own 3 rows). The Java and JavaScript workloads follow the
same contract with their own code.

By default a client names its tenant at login (a startup parameter). With --tenant-after-connect it
logs in without one and names it with SQL, the way applications do, as the first statement of every
connection it opens (each workload's connect() does it, so reconnects after errors do it too).
"""

import argparse
import os
import threading
import time

# Every tenant in sql/app.sql has exactly these rows: ids 1..3, body "item N of tXXX".
ROWS_PER_TENANT = 3
TENANTS = 50  # clients use t000..t049

ITEMS_SQL = "SELECT tenant_id, id, body FROM items WHERE id >= %s ORDER BY id"
SETTING_SQL = "SELECT current_setting('app.tenant_id', true)"
SLEEP_SQL = "SELECT pg_sleep(5)"
# The canceled sleep must end well before its 5 s; anything longer means the cancel was lost.
CANCEL_LIMIT_S = 4.0
MAX_PROBLEM_LINES = 200
# Seconds past the deadline that clients get to finish their round before they count as hung.
GRACE_S = 15.0


def parse_args(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--dbname", default="app")
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--deadline", type=float, default=60.0,
                   help="seconds after which clients start no new round")
    p.add_argument("--tag", required=True, help="unique per run; marks this run's COPY rows")
    p.add_argument("--tenant-after-connect", action="store_true",
                   help="log in without a tenant, let the driver do its own connect-time set-up, "
                        "then name the tenant with SQL as the first statement (and again after "
                        "every reconnect)")
    return p.parse_args()


def check_tenant_set(tally, client, tenant, value):
    """value: what the driver's set_config('app.tenant_id', ..., false) returned."""
    if value != tenant:
        tally.error(client, "set_config(app.tenant_id, %s) returned %r" % (tenant, value))


def tenant_of(client):
    return "t%03d" % (client % TENANTS)


def insert_id(client, iteration):
    # Far above the fixture's ids 1..3 and unique per client and round.
    return 100000 + client * 1000 + iteration


def copy_rows(tag, client, iteration):
    """The rows a client copies in for one round: (a, b) with b naming run, client and round."""
    prefix = copy_prefix(tag, client, iteration)
    return [(client, "%s-r%d" % (prefix, r)) for r in range(3)]


def copy_prefix(tag, client, iteration):
    return "%s-c%d-i%d" % (tag, client, iteration)


def does_copy(client, iteration):
    return iteration % 5 == client % 5


def does_error(client, iteration):
    return iteration % 10 == client % 10


def does_cancel(client, iteration, iterations):
    return iteration == client % iterations


class Tally:
    """Counters shared by all clients of a run (threads or tasks); thread-safe."""

    def __init__(self, clients):
        self.clients = clients
        self.statements = 0
        self.errors = 0
        self.leaks = 0
        self.lines = 0
        self._lock = threading.Lock()

    def stmt(self, n=1):
        with self._lock:
            self.statements += n

    def error(self, client, text):
        self._problem("ERROR", client, text)

    def leak(self, client, text):
        self._problem("LEAK", client, text)

    def _problem(self, kind, client, text):
        with self._lock:
            if kind == "LEAK":
                self.leaks += 1
            else:
                self.errors += 1
            self.lines += 1
            if self.lines <= MAX_PROBLEM_LINES:
                print("%s c%s: %s" % (kind, client, " ".join(str(text).split())), flush=True)

    def finish(self):
        print("RESULT clients=%d statements=%d errors=%d leaks=%d"
              % (self.clients, self.statements, self.errors, self.leaks), flush=True)
        return 0 if self.errors == 0 and self.leaks == 0 else 1


def check_items(tally, client, tenant, rows):
    """rows: (tenant_id, id, body) of the prepared SELECT; exactly the tenant's own 3 rows."""
    if len(rows) != ROWS_PER_TENANT:
        tally.leak(client, "tenant %s saw %d rows, want %d: %r"
                   % (tenant, len(rows), ROWS_PER_TENANT, rows[:6]))
        return
    for tid, _id, body in rows:
        if tid != tenant or not str(body).endswith("of " + tenant):
            tally.leak(client, "tenant %s saw row of %s: %r" % (tenant, tid, body))
            return


def check_setting(tally, client, tenant, value):
    if value != tenant:
        tally.leak(client, "tenant %s: current_setting(app.tenant_id) = %r" % (tenant, value))


def check_copy_out(tally, client, want, got):
    """want: the (a, b) rows copied in; got: rows copied out, as (a, b) with a as int or str."""
    norm = sorted((int(a), str(b)) for a, b in got)
    if norm != sorted(want):
        tally.error(client, "COPY out gave %r, want %r" % (norm, sorted(want)))


class Canceller:
    """Calls cancel() (a driver's thread-safe cancel API) 0.4 s after start, then every second
    until stop(): a cancel that arrives before the statement started is lost by design (Postgres
    ignores it too), so it is repeated. stop() returns only after the last cancel finished, so no
    late cancel can hit the client's next statement."""

    def __init__(self, cancel):
        self._cancel = cancel
        self._done = threading.Event()
        self.sent = 0
        self.failure = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        delay = 0.4
        while not self._done.wait(delay):
            try:
                self._cancel()
                self.sent += 1
            except Exception as e:  # reported by the caller
                self.failure = e
                return
            delay = 1.0

    def stop(self):
        self._done.set()
        self._thread.join()


def deadline_from(args):
    return time.monotonic() + args.deadline


def hung(tally, count):
    tally.error("*", "%d clients still inside a statement %.0f s after the deadline" % (count, GRACE_S))


def run_threads(args, run_client):
    """Runs run_client(args, tally, client, deadline) in one thread per client; returns the exit
    code. Threads stuck in a driver call cannot be joined, so then the process ends at once."""
    tally = Tally(args.clients)
    deadline = deadline_from(args)
    threads = [threading.Thread(target=run_client, args=(args, tally, c, deadline), daemon=True)
               for c in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline + GRACE_S - time.monotonic()))
    stuck = sum(t.is_alive() for t in threads)
    if stuck:
        hung(tally, stuck)
    code = tally.finish()
    if stuck:
        os._exit(code)
    return code


def run_blocking_client(args, tally, c, deadline, driver, db_error):
    """One client's rounds for a blocking driver (psycopg2, psycopg 3).

    `driver` is the workload module: connect(args, tally, c, tenant), read_checks, insert_roundtrip,
    copy_roundtrip, error_in_transaction and cancel_sleep with the signatures the workloads
    share. A round that fails with `db_error` is counted; the client then goes on with its
    connection rolled back, or a new one when that fails.
    """
    tenant = tenant_of(c)
    conn = None
    try:
        conn = driver.connect(args, tally, c, tenant)
        for k in range(args.iterations):
            if time.monotonic() > deadline:
                tally.error(c, "deadline passed at round %d" % k)
                return
            step = "read"
            try:
                driver.read_checks(conn, tally, c, tenant)
                step = "insert"
                driver.insert_roundtrip(conn, tally, c, tenant, k)
                if does_copy(c, k):
                    step = "copy"
                    driver.copy_roundtrip(conn, tally, args, c, k)
                if does_error(c, k):
                    step = "error-in-transaction"
                    driver.error_in_transaction(conn, tally, c)
                if does_cancel(c, k, args.iterations):
                    step = "cancel"
                    driver.cancel_sleep(conn, tally, c)
            except db_error as e:
                tally.error(c, "round %d %s: %s: %s" % (k, step, type(e).__name__, e))
                conn = _recover(args, tally, c, driver, db_error, conn, tenant)
    except Exception as e:
        tally.error(c, "%s: %s" % (type(e).__name__, e))
    finally:
        if conn is not None:
            conn.close()


def _recover(args, tally, c, driver, db_error, conn, tenant):
    """The connection rolled back, or, when that fails, a new one (whose connect() names the
    tenant again)."""
    try:
        if not conn.closed:
            conn.rollback()
            return conn
    except db_error:
        pass
    conn.close()
    return driver.connect(args, tally, c, tenant)
