#!/usr/bin/env bash
# The driver suite: the same small workload for each real PostgreSQL driver, run directly against
# PostgreSQL and through pgtenant in transaction mode (pool size 5, 50 concurrent clients), so that
# a difference between the two is visible. See tests/drivers/README.md.
#
#   run_drivers.sh BUILD_DIR [DRIVER...]     DRIVER: psycopg2 psycopg3 asyncpg jdbc node (default all)
#
# Uses the PostgreSQL fixture named by $PGTENANT_FIXTURE_ENV (as ctest gives it) or starts its own
# (tests/integration/pg_fixture.sh). Installs nothing: the drivers' Debian packages and
# node-postgres (tests/drivers/install.sh) come from scripts/install-deps, and a missing one stops
# the run with a message that says so. Prints one line per driver and target and a last line
# "N passed, M failed"; exits 1 when anything failed.
#
# Environment: PGTENANT_DRIVERS_CLIENTS (50), PGTENANT_DRIVERS_ITERATIONS (20),
# PGTENANT_DRIVERS_TARGETS ("direct pgtenant"), PGTENANT_DRIVERS_VERBOSE=1 (pgtenant -v).
set -uo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
ALL_DRIVERS=(psycopg2 psycopg3 asyncpg jdbc node)
CLIENTS="${PGTENANT_DRIVERS_CLIENTS:-50}"
ITERATIONS="${PGTENANT_DRIVERS_ITERATIONS:-20}"
TARGETS="${PGTENANT_DRIVERS_TARGETS:-direct pgtenant}"
RUN_DEADLINE=60   # seconds after which a workload starts no new round (it ends 15 s later)
RUN_KILL=120     # seconds after which a workload that did not end by itself is killed
PYTHON=/usr/bin/python3  # Debian's, where the python3-* driver packages live
JDBC_JAR=/usr/share/java/postgresql.jar

SUITE=run_drivers
PGT_VERBOSE="${PGTENANT_DRIVERS_VERBOSE:-}"
# die, log, the fixture, pgtenant's start and stop: shared with tests/apps/run_apps.sh.
# shellcheck source=tests/lib/suite.sh
source "$ROOT/tests/lib/suite.sh"

suite_args driver drivers "${ALL_DRIVERS[@]}" -- "$@"
DRIVERS=("${SELECTED[@]}")

# ---- pgtenant ----

write_config() {
  cat >"$WORK/pgtenant.yaml" <<EOF
listen:
  host: 127.0.0.1
  port: $PGT_PORT
  max_client_connections: 2000
metrics:
  port: 0
admin:
  database: pgtenant
  users: [admin]
auth:
  type: scram-sha-256
  users:
    app:
      password: "app_pw"
      tenants: ["*"]
    admin:
      password: "admin_pw"
tenancy:
  variable: app.tenant_id
  sources: [parameter, options, user, set]
  default_pool: shared
  require_tenant: false
pools:
  shared:
    host: 127.0.0.1
    port: $PG_PORT
    database: app
    user: app_rls
    password: "app_rls_pw"
    mode: transaction
    size: 5
timeouts:
  query_wait: 60s
  server_connect: 5s
EOF
}

# ---- drivers ----

prepare_driver() {
  case "$1" in
    jdbc)
      mkdir -p "$WORK/jdbc"
      javac -nowarn -d "$WORK/jdbc" -cp "$JDBC_JAR" "$SCRIPT_DIR/jdbc/JdbcWorkload.java" \
        >"$WORK/javac.log" 2>&1 || { cat "$WORK/javac.log" >&2; return 1; }
      ;;
  esac
}

# workload_cmd DRIVER: the command line of a driver's workload, without the target arguments.
workload_cmd() {
  case "$1" in
    psycopg2) echo "$PYTHON -B -u $SCRIPT_DIR/psycopg2_workload.py" ;;
    psycopg3) echo "$PYTHON -B -u $SCRIPT_DIR/psycopg3_workload.py" ;;
    asyncpg) echo "$PYTHON -B -u $SCRIPT_DIR/asyncpg_workload.py" ;;
    jdbc) echo "java -cp $WORK/jdbc:$JDBC_JAR JdbcWorkload" ;;
    node) echo "node $NODE_DIR/workload.js" ;;
  esac
}

PASSED=0
FAILED=0

# run_one DRIVER TARGET: TARGET is "direct" (PostgreSQL as app_rls) or "pgtenant" (user app).
run_one() {
  local driver="$1" target="$2" port user password label
  if [[ "$target" == direct ]]; then
    port="$PG_PORT" user=app_rls password=app_rls_pw label="driver $driver direct"
  else
    port="$PGT_PORT" user=app password=app_pw label="driver $driver via pgtenant"
  fi
  local tag="$driver-$target-$$" out="$WORK/$driver-$target.out" start=$SECONDS rc
  local -a cmd
  read -r -a cmd <<<"$(workload_cmd "$driver")"
  timeout -k 10 "$RUN_KILL" "${cmd[@]}" --host 127.0.0.1 --port "$port" --user "$user" \
    --password "$password" --dbname app --clients "$CLIENTS" --iterations "$ITERATIONS" \
    --deadline "$RUN_DEADLINE" --tag "$tag" >"$out" 2>&1
  rc=$?
  local result problems=()
  result="$(grep '^RESULT ' "$out" | tail -n 1)"
  [[ $rc -eq 124 || $rc -eq 137 ]] && problems+=("killed after ${RUN_KILL}s")
  [[ -z "$result" ]] && problems+=("no RESULT line (exit $rc)")
  # The workload must leave the tables as it found them.
  local state
  state="$(psql_super "select (select count(*) from items), (select count(*) from copytest where b like '$tag-%')" 2>&1)"
  [[ "$state" == "300|0" ]] || problems+=("tables not restored: items|copytest rows = $state (want 300|0)")
  if [[ "$target" == pgtenant ]]; then
    local status
    status="$(pgtenant_status)"
    [[ -z "$status" ]] || problems+=("$status")
  fi
  local clients statements errors leaks
  clients="$(sed -n 's/.* clients=\([0-9]*\).*/\1/p' <<<"$result")"
  statements="$(sed -n 's/.* statements=\([0-9]*\).*/\1/p' <<<"$result")"
  errors="$(sed -n 's/.* errors=\([0-9]*\).*/\1/p' <<<"$result")"
  leaks="$(sed -n 's/.* leaks=\([0-9]*\).*/\1/p' <<<"$result")"
  local summary="${clients:-?} clients, ${statements:-?} statements, ${errors:-?} errors, ${leaks:-?} leaks"
  if [[ $rc -eq 0 && ${#problems[@]} -eq 0 && "$errors" == 0 && "$leaks" == 0 ]]; then
    echo "$label: ok ($summary) [$((SECONDS - start))s]"
    PASSED=$((PASSED + 1))
    return
  fi
  echo "$label: FAILED ($summary) [$((SECONDS - start))s]"
  local p
  for p in "${problems[@]}"; do echo "    $p"; done
  grep -v '^RESULT ' "$out" | head -n 15 | sed 's/^/    /'
  local more=$(($(grep -cv '^RESULT ' "$out") - 15))
  [[ $more -gt 0 ]] && echo "    ... $more more lines in $out"
  if [[ "$target" == pgtenant ]]; then
    pgtenant_log_tail 10
  fi
  FAILED=$((FAILED + 1))
}

main() {
  local suite_start=$SECONDS d
  check_clients "${DRIVERS[@]}"
  load_fixture
  log "PostgreSQL on port $PG_PORT; a fresh pgtenant for each driver (logs $WORK/pgtenant-DRIVER.log)"
  for d in "${DRIVERS[@]}"; do
    if ! prepare_driver "$d"; then
      echo "driver $d: FAILED (could not prepare the workload)"
      FAILED=$((FAILED + 1))
      continue
    fi
    if [[ " $TARGETS " == *" direct "* ]]; then run_one "$d" direct; fi
    if [[ " $TARGETS " == *" pgtenant "* ]]; then
      start_pgtenant "$d"
      run_one "$d" pgtenant
      stop_pgtenant
    fi
  done
  log "suite took $((SECONDS - suite_start))s"
  echo "$PASSED passed, $FAILED failed"
  [[ $FAILED -eq 0 ]]
}

main
