"""tests/apps patterns for asyncpg: statements with arguments are prepared and bound (extended
protocol), statements without arguments go as a simple Query; `async with conn.transaction()`
sends BEGIN and COMMIT. Contract: apps_common.py."""

import asyncio

import asyncpg

import apps_common as ac

CHECK = ac.check_sql("$1")


def describe_error(e):
    if isinstance(e, asyncpg.PostgresError):
        return "%s %s" % (e.sqlstate, getattr(e, "message", str(e)))
    return "%s: %s" % (type(e).__name__, e)


async def check(conn, steps, tenant):
    steps("check")
    row = await conn.fetchrow(CHECK, 0)
    ac.expect(tenant, None if row is None else tuple(row))


def in_transaction(label, query, args_of):
    """`async with conn.transaction()`: BEGIN, query(tenant) with args_of(tenant), the check,
    COMMIT."""
    async def pattern(conn, tenant, steps):
        steps("BEGIN (conn.transaction)")
        async with conn.transaction():
            steps(label)
            await conn.execute(query(tenant), *args_of(tenant))
            await check(conn, steps, tenant)
            steps("COMMIT (conn.transaction)")
    return pattern


async def session_alias(conn, tenant, steps):
    steps("set_config($1, false) AS tenant")
    await conn.fetchval("SELECT set_config('app.tenant_id', $1, false) AS tenant", tenant)
    await check(conn, steps, tenant)


def quote(tenant):
    return "'" + tenant.replace("'", "''") + "'"


PATTERNS = [
    ("asyncpg.transaction.set_config_local",
     in_transaction("set_config($1, true)",
                    lambda t: "SELECT set_config('app.tenant_id', $1, true)", lambda t: (t,))),
    ("asyncpg.transaction.set_local",
     in_transaction("SET LOCAL app.tenant_id",
                    lambda t: "SET LOCAL app.tenant_id = " + quote(t), lambda t: ())),
    ("asyncpg.transaction.bound_name",
     in_transaction("set_config($1, $2, true)",
                    lambda t: "SELECT set_config($1, $2, true)", lambda t: ("app.tenant_id", t))),
    ("asyncpg.session_alias", session_alias),
]


async def run_all(args):
    report = ac.Report()
    for name, fn in ac.selected(args, PATTERNS):
        for case in ac.cases(args):
            steps = ac.Steps()
            problem = None
            conn = None
            try:
                conn = await asyncpg.connect(host=args.host, port=args.port, user=args.user,
                                             password=args.password, ssl=False, timeout=10,
                                             database=ac.dbname_of_case(args, case))
                for tenant in case:
                    steps("tenant %s" % tenant)
                    await fn(conn, tenant, steps)
            except ac.Failure as e:
                problem = str(e)
            except Exception as e:
                problem = "at %s: %s" % (steps.at, describe_error(e))
            finally:
                if conn is not None:
                    conn.terminate()
            report.line(name, case, problem)
    return report.finish()


def main():
    args = ac.parse_args(__doc__)
    ac.main_exit(asyncio.run(run_all(args)))


if __name__ == "__main__":
    main()
