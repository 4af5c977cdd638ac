"""tests/apps patterns for psycopg2 (simple protocol; parameters are quoted into the SQL text by
the driver). Autocommit off is psycopg2's (and SQLAlchemy's) default: the driver sends BEGIN
before the first statement of each transaction. Contract: apps_common.py."""

import psycopg2

import apps_common as ac

CHECK = ac.check_sql("%s")


def connect(args, dbname):
    return psycopg2.connect(host=args.host, port=args.port, user=args.user, password=args.password,
                            dbname=dbname, sslmode="disable", connect_timeout=10)


def describe_error(e):
    if isinstance(e, psycopg2.Error) and e.pgcode:
        return "%s %s" % (e.pgcode, e.diag.message_primary)
    return "%s: %s" % (type(e).__name__, e)


def run(cur, steps, label, sql, params=None):
    steps(label)
    cur.execute(sql, params)


def check(cur, steps, tenant):
    run(cur, steps, "check", CHECK, (0,))
    ac.expect(tenant, cur.fetchone())


def autocommit_off(statement):
    """Autocommit off: the driver's implicit BEGIN, then `statement` names the tenant, the
    check, COMMIT."""
    def pattern(conn, tenant, steps):
        conn.autocommit = False
        with conn.cursor() as cur:
            run(cur, steps, "BEGIN (implicit) + " + statement.split("%")[0].strip(), statement,
                (tenant,))
            check(cur, steps, tenant)
        steps("COMMIT")
        conn.commit()
    return pattern


def begin_set_local_commit(conn, tenant, steps):
    """BEGIN; SET LOCAL app.tenant_id = 'x'; query; COMMIT, each its own Query."""
    conn.autocommit = True
    with conn.cursor() as cur:
        run(cur, steps, "BEGIN", "BEGIN")
        run(cur, steps, "SET LOCAL app.tenant_id", "SET LOCAL app.tenant_id = %s", (tenant,))
        check(cur, steps, tenant)
        run(cur, steps, "COMMIT", "COMMIT")


def block_in_one_query(conn, tenant, steps):
    """`BEGIN; SET LOCAL app.tenant_id = 'x'; SELECT ...` as one Query, then COMMIT."""
    conn.autocommit = True
    with conn.cursor() as cur:
        run(cur, steps, "BEGIN; SET LOCAL ...; SELECT (one Query)",
            "BEGIN; SET LOCAL app.tenant_id = %s; " + CHECK, (tenant, 0))
        ac.expect(tenant, cur.fetchone())
        run(cur, steps, "COMMIT", "COMMIT")


def set_and_select_in_one_query(conn, tenant, steps):
    """`SET app.tenant_id = 'x'; SELECT ...` as one Query (autocommit); the setting must also
    hold for the statement after it."""
    conn.autocommit = True
    with conn.cursor() as cur:
        run(cur, steps, "SET; SELECT (one Query)", "SET app.tenant_id = %s; " + CHECK, (tenant, 0))
        ac.expect(tenant, cur.fetchone())
        check(cur, steps, tenant)


def set_up_then_set(*setup):
    """Driver/ORM set-up before the tenant is named (autocommit), then a session SET of the
    tenant and the check."""
    def pattern(conn, tenant, steps):
        conn.autocommit = True
        with conn.cursor() as cur:
            for sql in setup:
                run(cur, steps, sql, sql)
                if cur.description is not None:
                    cur.fetchall()
            run(cur, steps, "SET app.tenant_id", "SET app.tenant_id = %s", (tenant,))
            check(cur, steps, tenant)
    return pattern


PATTERNS = [
    ("psycopg2.autocommit_off.session_set",
     autocommit_off("SET app.tenant_id = %s")),
    ("psycopg2.autocommit_off.set_local",
     autocommit_off("SET LOCAL app.tenant_id = %s")),
    ("psycopg2.autocommit_off.set_config_local",
     autocommit_off("SELECT set_config('app.tenant_id', %s, true)")),
    ("psycopg2.begin_set_local_commit", begin_set_local_commit),
    ("psycopg2.block_in_one_query", block_in_one_query),
    ("psycopg2.set_and_select_in_one_query", set_and_select_in_one_query),
    ("psycopg2.session_set", set_up_then_set()),
    ("psycopg2.setup.application_name", set_up_then_set("SET application_name = 'apps-test'")),
    ("psycopg2.setup.extra_float_digits", set_up_then_set("SET extra_float_digits = 3")),
    ("psycopg2.setup.time_zone", set_up_then_set("SET TIME ZONE 'UTC'")),
    ("psycopg2.setup.show", set_up_then_set("SHOW transaction_isolation")),
    ("psycopg2.setup.empty_block", set_up_then_set("BEGIN", "COMMIT")),
]


def main():
    args = ac.parse_args(__doc__)
    ac.main_exit(ac.run_blocking(args, PATTERNS, connect, lambda c: c.close(), describe_error))


if __name__ == "__main__":
    main()
