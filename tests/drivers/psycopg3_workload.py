"""The driver-suite workload for psycopg 3 with server-side prepared statements.

prepare_threshold=0 and prepare=True make psycopg prepare every statement on the server the first
time (named protocol-level statements _pg3_N) and run it with Bind/Execute afterwards, which is
what transaction pooling must survive. Default mode (autocommit off, psycopg sends BEGIN). The tenant
comes from the `options` startup parameter; with --tenant-after-connect from
`SELECT set_config('app.tenant_id', $1, false)` with the tenant bound, right after connecting, in the
transaction psycopg opens for it and then commits (prepared like every statement here, as
prepare_threshold=0 makes it). See workload_common.py for the contract.
"""

import sys
import time

import psycopg
import psycopg.errors

import workload_common as wc


def connect(args, tally, c, tenant):
    login = {} if args.tenant_after_connect else {"options": "-c app.tenant_id=%s" % tenant}
    conn = psycopg.connect(host=args.host, port=args.port, user=args.user,
                           password=args.password, dbname=args.dbname, sslmode="disable",
                           connect_timeout=10, prepare_threshold=0, **login)
    if args.tenant_after_connect:
        try:
            # BEGIN (sent by psycopg), the bound set_config, COMMIT.
            value = conn.execute("SELECT set_config('app.tenant_id', %s, false)",
                                 (tenant,)).fetchone()[0]
            conn.commit()
        except BaseException:
            conn.close()
            raise
        tally.stmt()
        wc.check_tenant_set(tally, c, tenant, value)
    return conn


def read_checks(conn, tally, c, tenant):
    with conn.transaction():
        with conn.cursor() as cur:
            cur.execute(wc.ITEMS_SQL, (0,), prepare=True)
            wc.check_items(tally, c, tenant, cur.fetchall())
            cur.execute(wc.SETTING_SQL, prepare=True)
            wc.check_setting(tally, c, tenant, cur.fetchone()[0])
    tally.stmt(2)


def insert_roundtrip(conn, tally, c, tenant, k):
    rid = wc.insert_id(c, k)
    with conn.transaction():
        with conn.cursor() as cur:
            cur.execute("INSERT INTO items (tenant_id, id, body) VALUES (%s, %s, %s)",
                        (tenant, rid, "driver row of " + tenant), prepare=True)
            cur.execute("SELECT tenant_id, body FROM items WHERE id = %s", (rid,), prepare=True)
            got = cur.fetchall()
            if got != [(tenant, "driver row of " + tenant)]:
                tally.leak(c, "inserted row %d read back as %r" % (rid, got))
            cur.execute("DELETE FROM items WHERE id = %s", (rid,), prepare=True)
            if cur.rowcount != 1:
                tally.error(c, "DELETE of row %d removed %d rows" % (rid, cur.rowcount))
    tally.stmt(3)


def copy_roundtrip(conn, tally, args, c, k):
    rows = wc.copy_rows(args.tag, c, k)
    prefix = wc.copy_prefix(args.tag, c, k)
    with conn.transaction():
        with conn.cursor() as cur:
            with cur.copy("COPY copytest (a, b) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            got = []
            with cur.copy("COPY (SELECT a, b FROM copytest WHERE b LIKE '%s-%%' ORDER BY b) "
                          "TO STDOUT" % prefix) as copy:
                got = list(copy.rows())
            wc.check_copy_out(tally, c, rows, got)
            cur.execute("DELETE FROM copytest WHERE b LIKE %s", (prefix + "-%",), prepare=True)
    tally.stmt(3)


def error_in_transaction(conn, tally, c):
    with conn.cursor() as cur:
        cur.execute("SELECT 1", prepare=True)
        try:
            cur.execute("SELECT 1/0", prepare=True)
            tally.error(c, "SELECT 1/0 did not fail")
        except psycopg.errors.DivisionByZero:
            pass
        conn.rollback()
        cur.execute("SELECT 2", prepare=True)
        if cur.fetchone()[0] != 2:
            tally.error(c, "SELECT 2 after ROLLBACK gave a wrong value")
        conn.commit()
    tally.stmt(3)


def cancel_sleep(conn, tally, c):
    start = time.monotonic()
    canceller = wc.Canceller(conn.cancel).start()
    canceled = False
    try:
        with conn.cursor() as cur:
            cur.execute(wc.SLEEP_SQL, prepare=True)
    except psycopg.errors.QueryCanceled:
        canceled = True
    finally:
        canceller.stop()
    elapsed = time.monotonic() - start
    conn.rollback()
    if canceller.failure is not None:
        tally.error(c, "cancel() failed: %s" % canceller.failure)
    elif not canceled or elapsed > wc.CANCEL_LIMIT_S:
        tally.error(c, "pg_sleep(5) not canceled (canceled=%s, %.1fs, %d cancels sent)"
                    % (canceled, elapsed, canceller.sent))
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT 3", prepare=True)
        if cur.fetchone()[0] != 3:
            tally.error(c, "SELECT 3 after cancel gave a wrong value")
    tally.stmt(2)


def run_client(args, tally, c, deadline):
    wc.run_blocking_client(args, tally, c, deadline, sys.modules[__name__], psycopg.Error)


def main():
    return wc.run_threads(wc.parse_args(__doc__), run_client)


if __name__ == "__main__":
    sys.exit(main())
