"""The driver-suite workload for psycopg2 (libpq, simple protocol, client-side parameters).

psycopg2 never prepares on the server, so its "prepared SELECT" is the same parameterised
cursor.execute repeated; it runs in psycopg2's default mode (autocommit off: every statement opens
a transaction that commit()/rollback() ends), as most applications use it. The tenant comes from
the `options` startup parameter (-c app.tenant_id=tXXX); with --tenant-after-connect from
`SET app.tenant_id = 'tXXX'` right after connecting, inside the transaction psycopg2 opens for it
(BEGIN; SET ...; COMMIT), as an application with autocommit off sends it. See workload_common.py for
the contract.
"""

import io
import sys
import time

import psycopg2
import psycopg2.errors

import workload_common as wc


def connect(args, tally, c, tenant):
    login = {} if args.tenant_after_connect else {"options": "-c app.tenant_id=%s" % tenant}
    conn = psycopg2.connect(host=args.host, port=args.port, user=args.user,
                            password=args.password, dbname=args.dbname, sslmode="disable",
                            connect_timeout=10, **login)
    if args.tenant_after_connect:
        try:
            with conn:  # BEGIN (sent by psycopg2), SET, COMMIT: the tenant counts once it committed
                with conn.cursor() as cur:
                    cur.execute("SET app.tenant_id = %s", (tenant,))
        except BaseException:
            conn.close()
            raise
        tally.stmt()
    return conn


def read_checks(conn, tally, c, tenant):
    with conn:  # commits
        with conn.cursor() as cur:
            cur.execute(wc.ITEMS_SQL, (0,))
            wc.check_items(tally, c, tenant, cur.fetchall())
            cur.execute(wc.SETTING_SQL)
            wc.check_setting(tally, c, tenant, cur.fetchone()[0])
    tally.stmt(2)


def insert_roundtrip(conn, tally, c, tenant, k):
    rid = wc.insert_id(c, k)
    with conn:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO items (tenant_id, id, body) VALUES (%s, %s, %s)",
                        (tenant, rid, "driver row of " + tenant))
            cur.execute("SELECT tenant_id, body FROM items WHERE id = %s", (rid,))
            got = cur.fetchall()
            if got != [(tenant, "driver row of " + tenant)]:
                tally.leak(c, "inserted row %d read back as %r" % (rid, got))
            cur.execute("DELETE FROM items WHERE id = %s", (rid,))
            if cur.rowcount != 1:
                tally.error(c, "DELETE of row %d removed %d rows" % (rid, cur.rowcount))
    tally.stmt(3)


def copy_roundtrip(conn, tally, args, c, k):
    rows = wc.copy_rows(args.tag, c, k)
    prefix = wc.copy_prefix(args.tag, c, k)
    data = "".join("%d\t%s\n" % r for r in rows)
    out = io.StringIO()
    with conn:
        with conn.cursor() as cur:
            cur.copy_expert("COPY copytest (a, b) FROM STDIN", io.StringIO(data))
            cur.copy_expert("COPY (SELECT a, b FROM copytest WHERE b LIKE '%s-%%' ORDER BY b) "
                            "TO STDOUT" % prefix, out)
            got = [line.split("\t") for line in out.getvalue().splitlines()]
            wc.check_copy_out(tally, c, rows, got)
            cur.execute("DELETE FROM copytest WHERE b LIKE %s", (prefix + "-%",))
    tally.stmt(3)


def error_in_transaction(conn, tally, c):
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        try:
            cur.execute("SELECT 1/0")
            tally.error(c, "SELECT 1/0 did not fail")
        except psycopg2.errors.DivisionByZero:
            pass
        conn.rollback()
        cur.execute("SELECT 2")
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
            cur.execute(wc.SLEEP_SQL)
    except psycopg2.errors.QueryCanceled:
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
    with conn, conn.cursor() as cur:
        cur.execute("SELECT 3")
        if cur.fetchone()[0] != 3:
            tally.error(c, "SELECT 3 after cancel gave a wrong value")
    tally.stmt(2)


def run_client(args, tally, c, deadline):
    wc.run_blocking_client(args, tally, c, deadline, sys.modules[__name__], psycopg2.Error)


def main():
    return wc.run_threads(wc.parse_args(__doc__), run_client)


if __name__ == "__main__":
    sys.exit(main())
