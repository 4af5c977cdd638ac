"""What every program of tests/apps shares: arguments, cases, the check, the output lines.

A program runs each of its patterns (one framework's or driver's exact way of naming the tenant)
for each case, every case on a new connection that names no tenant at login:

    [t007]        a shared tenant (pool shared, database app)
    [acme]        the dedicated tenant (pool acme, database acme)
    [t012,t013]   two shared tenants one after the other on one connection, as a pooled app
                  connection serves request after request
    [t012,acme]   a shared then the dedicated tenant on one connection; only when both tenants
                  are reached through the same database name (through pgtenant: --db-acme app),
                  since a PostgreSQL connection cannot change its database

Inside the transaction (or the statement) that the pattern runs for a tenant, the program reads
CHECK_SQL and wants exactly: the tenant's 3 rows, current_setting('app.tenant_id') equal to the
tenant, current_database() equal to the tenant's database (acme for acme, app for the others).
It prints one line per pattern and case, `PATTERN [CASE]: ok` or `PATTERN [CASE]: FAIL: ...`
(for an error: the step, SQLSTATE and message), then `RESULT passed=N failed=M`; exit code 1 when
anything failed. The JavaScript and Java programs follow the same contract with their own code.
"""

import argparse
import sys

# $1 / %s is always 0: the check takes a parameter so that drivers that use the extended protocol
# only for statements with parameters (node-postgres) send it with Parse/Bind/Execute.
CHECK_SQL = ("SELECT current_setting('app.tenant_id', true) AS setting, current_database() AS db, "
             "coalesce(string_agg(tenant_id, ',' ORDER BY id), '') AS tenants "
             "FROM items WHERE id >= {p}")
ROWS_PER_TENANT = 3


def check_sql(placeholder):
    return CHECK_SQL.format(p=placeholder)


def database_of(tenant):
    return "acme" if tenant == "acme" else "app"


def parse_args(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--db-shared", default="app", help="database name to log in with for t0NN")
    p.add_argument("--db-acme", default="acme", help="database name to log in with for acme")
    p.add_argument("--only", default="", help="comma-separated pattern names to run")
    return p.parse_args()


def cases(args):
    out = [["t007"], ["acme"], ["t012", "t013"]]
    if args.db_shared == args.db_acme:
        out.append(["t012", "acme"])
    return out


def dbname_of_case(args, case):
    return args.db_acme if case[0] == "acme" else args.db_shared


class Failure(Exception):
    """A check that did not hold, or an error, with the step it happened at."""


def verdict(tenant, row):
    """row: (setting, db, tenants) of CHECK_SQL; None when right, else what is wrong."""
    if row is None:
        return "tenant %s: the check returned no row" % tenant
    setting, db, tenants = row
    want_tenants = ",".join([tenant] * ROWS_PER_TENANT)
    wrong = []
    if setting != tenant:
        wrong.append("current_setting(app.tenant_id) = %r" % (setting,))
    if db != database_of(tenant):
        wrong.append("current_database() = %r, want %r" % (db, database_of(tenant)))
    if tenants != want_tenants:
        wrong.append("rows of %r, want 3 of %s" % (tenants, tenant))
    return ("tenant %s: " % tenant + "; ".join(wrong)) if wrong else None


def expect(tenant, row):
    bad = verdict(tenant, row)
    if bad:
        raise Failure(bad)


class Steps:
    """Remembers the statement a pattern is at, so that an error names it."""

    def __init__(self):
        self.at = "connect"

    def __call__(self, label):
        self.at = label


def one_line(text):
    return " ".join(str(text).split())


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def line(self, name, case, problem):
        label = "%s [%s]" % (name, ",".join(case))
        if problem is None:
            self.passed += 1
            print("%s: ok" % label, flush=True)
        else:
            self.failed += 1
            print("%s: FAIL: %s" % (label, one_line(problem)), flush=True)

    def finish(self):
        print("RESULT passed=%d failed=%d" % (self.passed, self.failed), flush=True)
        return 0 if self.failed == 0 else 1


def selected(args, patterns):
    """patterns: list of (name, function); those named by --only, or all."""
    if not args.only:
        return patterns
    names = set(args.only.split(","))
    return [(n, f) for n, f in patterns if n in names]


def run_blocking(args, patterns, connect, close, describe_error):
    """For the blocking drivers: connect(args, dbname) -> conn; each pattern is
    fn(conn, tenant, steps) for one tenant, raising Failure or a driver error."""
    report = Report()
    for name, fn in selected(args, patterns):
        for case in cases(args):
            steps = Steps()
            problem = None
            conn = None
            try:
                conn = connect(args, dbname_of_case(args, case))
                for tenant in case:
                    steps("tenant %s" % tenant)
                    fn(conn, tenant, steps)
            except Failure as e:
                problem = str(e)
            except Exception as e:  # the driver's error: report it with the step
                problem = "at %s: %s" % (steps.at, describe_error(e))
            finally:
                if conn is not None:
                    try:
                        close(conn)
                    except Exception:
                        pass
            report.line(name, case, problem)
    return report.finish()


def main_exit(code):
    sys.stdout.flush()
    sys.exit(code)
