"""tests/apps patterns for psycopg 3 (extended protocol: parameters go to the server in Bind).
`with conn.transaction()` on an autocommit connection sends BEGIN ... COMMIT; with autocommit off
(psycopg's default) the driver sends BEGIN before the first statement. Contract: apps_common.py."""

import psycopg
from psycopg import sql

import apps_common as ac

CHECK = ac.check_sql("%s")


def connect(args, dbname):
    return psycopg.connect(host=args.host, port=args.port, user=args.user, password=args.password,
                           dbname=dbname, sslmode="disable", connect_timeout=10, autocommit=True)


def describe_error(e):
    if isinstance(e, psycopg.Error) and e.sqlstate:
        return "%s %s" % (e.sqlstate, e.diag.message_primary)
    return "%s: %s" % (type(e).__name__, e)


def run(conn, steps, label, query, params=None):
    steps(label)
    return conn.execute(query, params)


def check(conn, steps, tenant):
    ac.expect(tenant, run(conn, steps, "check", CHECK, (0,)).fetchone())


def in_transaction(label, query, params_of):
    """`with conn.transaction()`: BEGIN, `query` with the parameters params_of(tenant) (query may
    be a function of the tenant too), the check, COMMIT."""
    def pattern(conn, tenant, steps):
        steps("BEGIN (conn.transaction)")
        with conn.transaction():
            run(conn, steps, label, query(tenant) if callable(query) else query, params_of(tenant))
            check(conn, steps, tenant)
            steps("COMMIT (conn.transaction)")
    return pattern


def autocommit_off_set_config(conn, tenant, steps):
    """Autocommit off: the driver's BEGIN, set_config(..., true) with the value bound, the check,
    commit()."""
    conn.autocommit = False
    run(conn, steps, "BEGIN (implicit) + set_config($1, true)",
        "SELECT set_config('app.tenant_id', %s, true)", (tenant,))
    check(conn, steps, tenant)
    steps("COMMIT")
    conn.commit()
    conn.autocommit = True


def session_alias(conn, tenant, steps):
    """`SELECT set_config('app.tenant_id', $1, false) AS tenant` outside a block, then the check
    as the next statement."""
    run(conn, steps, "set_config($1, false) AS tenant",
        "SELECT set_config('app.tenant_id', %s, false) AS tenant", (tenant,))
    check(conn, steps, tenant)


def set_local(tenant):
    # SET takes no Bind parameters: psycopg composes the literal on the client.
    return sql.SQL("SET LOCAL app.tenant_id = {}").format(sql.Literal(tenant))


PATTERNS = [
    ("psycopg3.transaction.set_config_local",
     in_transaction("set_config($1, true)", "SELECT set_config('app.tenant_id', %s, true)",
                    lambda t: (t,))),
    ("psycopg3.transaction.set_local",
     in_transaction("SET LOCAL app.tenant_id", set_local, lambda t: None)),
    ("psycopg3.transaction.cast",
     in_transaction("set_config(CAST($1 AS text), true)",
                    "SELECT set_config('app.tenant_id', CAST(%s AS text), true)", lambda t: (t,))),
    ("psycopg3.transaction.bound_name",
     in_transaction("set_config($1, $2, true)", "SELECT set_config(%s, %s, true)",
                    lambda t: ("app.tenant_id", t))),
    ("psycopg3.transaction.among_targets",
     in_transaction("SELECT now(), set_config($1, true) AS tenant, 1",
                    "SELECT now() AS at, set_config('app.tenant_id', %s, true) AS tenant, 1 AS one",
                    lambda t: (t,))),
    ("psycopg3.autocommit_off.set_config_local", autocommit_off_set_config),
    ("psycopg3.session_alias", session_alias),
]


def main():
    args = ac.parse_args(__doc__)
    ac.main_exit(ac.run_blocking(args, PATTERNS, connect, lambda c: c.close(), describe_error))


if __name__ == "__main__":
    main()
