"""The driver-suite workload for asyncpg (always prepares: named statements __asyncpg_stmt_N__).

Each client is an asyncio task with its own connection; the tenant comes from a startup parameter
(server_settings={'app.tenant_id': ...}, pgtenant's `parameter` source), or with
--tenant-after-connect from `SELECT set_config('app.tenant_id', $1, false)` with the tenant bound, as
the first statement of the connection (autocommit; asyncpg prepares it like any statement with
arguments). asyncpg keeps its statement
cache on (the default), the case PgBouncer users must turn off. Its cancel API is the statement
timeout: on timeout asyncpg sends a CancelRequest and waits for the server to finish the statement.
See workload_common.py for the contract.
"""

import asyncio
import io
import os
import sys
import time

import asyncpg

import workload_common as wc

ITEMS_SQL = wc.ITEMS_SQL.replace("%s", "$1")


async def connect(args, tally, c, tenant):
    login = {} if args.tenant_after_connect else {"server_settings": {"app.tenant_id": tenant}}
    conn = await asyncpg.connect(host=args.host, port=args.port, user=args.user,
                                 password=args.password, database=args.dbname, ssl=False,
                                 timeout=10, **login)
    if args.tenant_after_connect:
        try:
            value = await conn.fetchval("SELECT set_config('app.tenant_id', $1, false)", tenant)
        except BaseException:
            conn.terminate()
            raise
        tally.stmt()
        wc.check_tenant_set(tally, c, tenant, value)
    return conn


async def read_checks(conn, items_stmt, tally, c, tenant):
    # Both an explicit prepared statement and the implicit statement cache.
    rows = await items_stmt.fetch(0)
    wc.check_items(tally, c, tenant, [tuple(r) for r in rows])
    rows = await conn.fetch(ITEMS_SQL, 0)
    wc.check_items(tally, c, tenant, [tuple(r) for r in rows])
    wc.check_setting(tally, c, tenant, await conn.fetchval(wc.SETTING_SQL))
    tally.stmt(3)


async def insert_roundtrip(conn, tally, c, tenant, k):
    rid = wc.insert_id(c, k)
    async with conn.transaction():
        await conn.execute("INSERT INTO items (tenant_id, id, body) VALUES ($1, $2, $3)",
                           tenant, rid, "driver row of " + tenant)
        got = [tuple(r) for r in
               await conn.fetch("SELECT tenant_id, body FROM items WHERE id = $1", rid)]
        if got != [(tenant, "driver row of " + tenant)]:
            tally.leak(c, "inserted row %d read back as %r" % (rid, got))
        status = await conn.execute("DELETE FROM items WHERE id = $1", rid)
        if status != "DELETE 1":
            tally.error(c, "DELETE of row %d gave %s" % (rid, status))
    tally.stmt(3)


async def copy_roundtrip(conn, tally, args, c, k):
    rows = wc.copy_rows(args.tag, c, k)
    prefix = wc.copy_prefix(args.tag, c, k)
    data = "".join("%d\t%s\n" % r for r in rows).encode()
    async with conn.transaction():
        await conn.copy_to_table("copytest", source=io.BytesIO(data), columns=["a", "b"])
        out = io.BytesIO()
        await conn.copy_from_query("SELECT a, b FROM copytest WHERE b LIKE $1 ORDER BY b",
                                   prefix + "-%", output=out)
        got = [line.split("\t") for line in out.getvalue().decode().splitlines()]
        wc.check_copy_out(tally, c, rows, got)
        # And the whole-table form, filtered here.
        out = io.BytesIO()
        await conn.copy_from_table("copytest", columns=["a", "b"], output=out)
        mine = [line.split("\t") for line in out.getvalue().decode().splitlines()
                if line.split("\t")[1].startswith(prefix + "-")]
        wc.check_copy_out(tally, c, rows, mine)
        await conn.execute("DELETE FROM copytest WHERE b LIKE $1", prefix + "-%")
    tally.stmt(4)


async def error_in_transaction(conn, tally, c):
    tr = conn.transaction()
    await tr.start()
    await conn.fetchval("SELECT 1")
    try:
        await conn.fetchval("SELECT 1/0")
        tally.error(c, "SELECT 1/0 did not fail")
    except asyncpg.DivisionByZeroError:
        pass
    await tr.rollback()
    if await conn.fetchval("SELECT 2") != 2:
        tally.error(c, "SELECT 2 after ROLLBACK gave a wrong value")
    tally.stmt(3)


async def cancel_sleep(conn, tally, c):
    start = time.monotonic()
    timed_out = False
    try:
        await conn.execute(wc.SLEEP_SQL, timeout=0.4)
    except (asyncio.TimeoutError, asyncpg.QueryCanceledError):
        # Usually the timeout; the canceled statement's own error may win the race.
        timed_out = True
    # asyncpg waits here until the server has answered the canceled statement.
    if await conn.fetchval("SELECT 3") != 3:
        tally.error(c, "SELECT 3 after cancel gave a wrong value")
    elapsed = time.monotonic() - start
    if not timed_out or elapsed > wc.CANCEL_LIMIT_S:
        tally.error(c, "pg_sleep(5) not canceled (timed out=%s, %.1fs until SELECT 3 ran)"
                    % (timed_out, elapsed))
    tally.stmt(2)


async def run_rounds(conn, args, tally, c, tenant, deadline):
    items_stmt = await conn.prepare(ITEMS_SQL)
    for k in range(args.iterations):
        if time.monotonic() > deadline:
            tally.error(c, "deadline passed at round %d" % k)
            return conn
        step = "read"
        try:
            await read_checks(conn, items_stmt, tally, c, tenant)
            step = "insert"
            await insert_roundtrip(conn, tally, c, tenant, k)
            if wc.does_copy(c, k):
                step = "copy"
                await copy_roundtrip(conn, tally, args, c, k)
            if wc.does_error(c, k):
                step = "error-in-transaction"
                await error_in_transaction(conn, tally, c)
            if wc.does_cancel(c, k, args.iterations):
                step = "cancel"
                await cancel_sleep(conn, tally, c)
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            tally.error(c, "round %d %s: %s: %s" % (k, step, type(e).__name__, e))
            if conn.is_closed():
                conn = await connect(args, tally, c, tenant)
                items_stmt = await conn.prepare(ITEMS_SQL)
    return conn


async def run_client(args, tally, c, deadline):
    tenant = wc.tenant_of(c)
    conn = None
    try:
        conn = await connect(args, tally, c, tenant)
        conn = await run_rounds(conn, args, tally, c, tenant, deadline)
    except Exception as e:
        tally.error(c, "%s: %s" % (type(e).__name__, e))
    finally:
        if conn is not None:
            await conn.close(timeout=5)


async def amain(args, tally):
    """Runs the clients; returns how many were still running GRACE_S after the deadline."""
    deadline = wc.deadline_from(args)
    tasks = [asyncio.ensure_future(run_client(args, tally, c, deadline))
             for c in range(args.clients)]
    _, pending = await asyncio.wait(tasks, timeout=deadline + wc.GRACE_S - time.monotonic())
    return len(pending)


def main():
    args = wc.parse_args(__doc__)
    tally = wc.Tally(args.clients)
    loop = asyncio.new_event_loop()
    stuck = loop.run_until_complete(amain(args, tally))
    if stuck:
        # Tasks stuck in the driver are left behind: report and end the process at once.
        wc.hung(tally, stuck)
        os._exit(tally.finish())
    loop.close()
    return tally.finish()


if __name__ == "__main__":
    sys.exit(main())
