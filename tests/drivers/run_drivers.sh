#!/usr/bin/env bash
# The driver suite: the same small workload for each real PostgreSQL driver, run directly against
# PostgreSQL and through pgtenant in transaction mode (pool size 5, 50 concurrent clients), so that
# a difference between the two is visible; then again with every client naming its tenant with SQL
# after the driver's own connect-time set-up (--tenant-after-connect), directly and through a
# pgtenant with `require_tenant: true`. Through pgtenant, no client may be pinned: its
# pgtenant_pinned_clients gauge is sampled every 0.5 s during the run. See tests/drivers/README.md.
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
# PGTENANT_DRIVERS_TARGETS (runs per driver, in this order: "direct pgtenant direct-after-connect
# require-tenant"), PGTENANT_DRIVERS_VERBOSE=1 (pgtenant -v).
set -uo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
ALL_DRIVERS=(psycopg2 psycopg3 asyncpg jdbc node)
CLIENTS="${PGTENANT_DRIVERS_CLIENTS:-50}"
ITERATIONS="${PGTENANT_DRIVERS_ITERATIONS:-20}"
ALL_TARGETS=(direct pgtenant direct-after-connect require-tenant)
TARGETS="${PGTENANT_DRIVERS_TARGETS:-${ALL_TARGETS[*]}}"
RUN_DEADLINE=60   # seconds after which a workload starts no new round (it ends 15 s later)
RUN_KILL=120     # seconds after which a workload that did not end by itself is killed
PINNED_INTERVAL=0.5  # seconds between two samples of pgtenant_pinned_clients
PYTHON=/usr/bin/python3  # Debian's, where the python3-* driver packages live
JDBC_JAR=/usr/share/java/postgresql.jar

SUITE=run_drivers
PGT_VERBOSE="${PGTENANT_DRIVERS_VERBOSE:-}"
# die, log, the fixture, pgtenant's start and stop: shared with tests/apps/run_apps.sh.
# shellcheck source=tests/lib/suite.sh
source "$ROOT/tests/lib/suite.sh"

suite_args driver drivers "${ALL_DRIVERS[@]}" -- "$@"
DRIVERS=("${SELECTED[@]}")
read -r -a RUN_TARGETS <<<"$TARGETS"
[[ ${#RUN_TARGETS[@]} -gt 0 ]] || die "PGTENANT_DRIVERS_TARGETS is empty (any of: ${ALL_TARGETS[*]})"
for t in "${RUN_TARGETS[@]}"; do
  [[ " ${ALL_TARGETS[*]} " == *" $t "* ]] ||
    die "unknown target $t in PGTENANT_DRIVERS_TARGETS (any of: ${ALL_TARGETS[*]})"
done

# ---- pgtenant ----

REQUIRE_TENANT=false  # tenancy.require_tenant of the next pgtenant started
METRICS_PORT=""

# The metrics endpoint is on (on a free port of its own) for the pinned-clients check.
write_config() {
  METRICS_PORT="$(free_port)"
  cat >"$WORK/pgtenant.yaml" <<EOF
listen:
  host: 127.0.0.1
  port: $PGT_PORT
  max_client_connections: 2000
metrics:
  host: 127.0.0.1
  port: $METRICS_PORT
  tenant_labels: none
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
  require_tenant: $REQUIRE_TENANT
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

# ---- the pinned-clients check ----

# scrape URL: the body of an HTTP GET (2 s at most), with curl, or Python where curl is missing
# (scripts/install-deps does not install curl).
if command -v curl >/dev/null; then
  scrape() { curl -sS --max-time 2 "$1" 2>&1; }
else
  scrape() {
    "$PYTHON" -c 'import sys, urllib.request
try:
    sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())
except Exception as e:
    print(e); sys.exit(1)' "$1"
  }
fi

# sample_pinned FILE STOP: while the file STOP exists (and this script and the current pgtenant
# run), at most every PINNED_INTERVAL seconds and for at most RUN_KILL + 30 s, appends to FILE one
# line per scrape of the metrics endpoint: "+SECONDS pinned=SUM pool=N ..." (the
# pgtenant_pinned_clients gauge of each pool), or "+SECONDS unreadable: WHY". On the first sample
# with a pinned client it saves the admin console's SHOW CLIENTS to FILE.clients.
sample_pinned() {
  local file="$1" stop="$2" url="http://127.0.0.1:$METRICS_PORT/metrics"
  local t0=${EPOCHREALTIME/./} max n=0 body line at shown=""
  max=$(((RUN_KILL + 30) * 2))
  : >"$file"
  while [[ -e "$stop" ]] && ((n < max)) && kill -0 $$ 2>/dev/null && kill -0 "$PGT_PID" 2>/dev/null; do
    n=$((n + 1))
    at=$(((${EPOCHREALTIME/./} - t0) / 100000))
    at="+$((at / 10)).$((at % 10))s"
    if ! body="$(scrape "$url")"; then
      echo "$at unreadable: $(head -n 1 <<<"$body")" >>"$file"
    elif ! line="$(awk '$1 ~ /^pgtenant_pinned_clients(\{|$)/ {
            pool = $1; sub(/^[^{]*\{?/, "", pool); sub(/\}$/, "", pool); gsub(/"/, "", pool)
            sum += $2; pools = pools " " (pool == "" ? "-" : pool) "=" $2; found = 1 }
          END { if (!found) exit 1; printf "pinned=%d%s", sum, pools }' <<<"$body")"; then
      echo "$at unreadable: no pgtenant_pinned_clients in the scrape" >>"$file"
    else
      echo "$at $line" >>"$file"
      if [[ -z "$shown" && "$line" != pinned=0* ]]; then
        shown=1
        PGPASSWORD=admin_pw "$PG_BIN/psql" -X -q -P pager=off -h 127.0.0.1 -p "$PGT_PORT" -U admin \
          -d pgtenant -c 'SHOW CLIENTS' >"$file.clients" 2>&1
      fi
    fi
    sleep "$PINNED_INTERVAL"
  done
}

PINNED_PID=""
PINNED_FILE=""
PINNED_STOP=""

# start_pinned NAME: samples pgtenant_pinned_clients in the background into WORK/pinned-NAME.txt.
start_pinned() {
  PINNED_FILE="$WORK/pinned-$1.txt"
  PINNED_STOP="$WORK/pinned-$1.running"
  rm -f "$PINNED_FILE.clients"
  : >"$PINNED_STOP"
  sample_pinned "$PINNED_FILE" "$PINNED_STOP" &
  PINNED_PID=$!
}

# stop_pinned: ends the sampling (within one interval) and waits for it.
stop_pinned() {
  [[ -n "$PINNED_PID" ]] || return 0
  rm -f "$PINNED_STOP"
  wait "$PINNED_PID" 2>/dev/null
  PINNED_PID=""
}

# pinned_verdict: after stop_pinned, sets PINNED_SUMMARY ("0 pinned in N samples") and
# PINNED_PROBLEMS (the lines that fail the run: a sample with a pinned client, or no sample read).
pinned_verdict() {
  local total read bad
  total="$(grep -c . "$PINNED_FILE")"
  read="$(grep -c ' pinned=' "$PINNED_FILE")"
  bad="$(grep -c ' pinned=[1-9]' "$PINNED_FILE")"
  PINNED_SUMMARY="0 pinned in $read samples"
  [[ $read -eq $total ]] || PINNED_SUMMARY+=", $((total - read)) unreadable"
  PINNED_PROBLEMS=()
  if [[ $read -eq 0 ]]; then
    PINNED_SUMMARY="pinned unknown: no sample"
    PINNED_PROBLEMS+=("pinned check: no pgtenant_pinned_clients sample read from \
http://127.0.0.1:$METRICS_PORT/metrics in $total tries ($PINNED_FILE): $(head -n 1 "$PINNED_FILE")")
  elif [[ $bad -gt 0 ]]; then
    local first max
    first="$(grep -m 1 ' pinned=[1-9]' "$PINNED_FILE")"
    max="$(sed -n 's/.* pinned=\([0-9]*\).*/\1/p' "$PINNED_FILE" | sort -n | tail -n 1)"
    PINNED_SUMMARY="up to $max pinned in $bad of $read samples"
    PINNED_PROBLEMS+=("PINNED CLIENTS: pgtenant_pinned_clients was above 0 in $bad of $read \
samples (max $max; first: $first); samples in $PINNED_FILE")
    if [[ -s "$PINNED_FILE.clients" ]]; then
      local rows
      rows="$(awk -F'|' '
          NR == 1 { for (i = 1; i <= NF; i++) { h = $i; gsub(/ /, "", h); if (h == "pinned") col = i } }
          NR <= 2 { print; next }
          col { v = $col; gsub(/ /, "", v); if (v == "1") print }' "$PINNED_FILE.clients" | head -n 12)"
      if [[ $(wc -l <<<"$rows") -gt 2 ]]; then
        PINNED_PROBLEMS+=("SHOW CLIENTS right after the first such sample, rows with pinned = 1 \
(all rows in $PINNED_FILE.clients):")
        local row
        while IFS= read -r row; do PINNED_PROBLEMS+=("  $row"); done <<<"$rows"
      else
        PINNED_PROBLEMS+=("SHOW CLIENTS right after the first such sample listed no pinned client \
any more ($PINNED_FILE.clients)")
      fi
    fi
  fi
}

PASSED=0
FAILED=0

# run_one DRIVER TARGET: TARGET is "direct" (PostgreSQL as app_rls, tenant at login),
# "direct-after-connect" (the same, tenant named by SQL after connecting), "pgtenant" (user app,
# tenant at login) or "require-tenant" (user app, tenant named by SQL after connecting, pgtenant
# with require_tenant: true). Through pgtenant, the pinned-clients gauge is sampled during the run.
run_one() {
  local driver="$1" target="$2" port user password label via="" flags=()
  case "$target" in
    direct) label="driver $driver direct" ;;
    direct-after-connect)
      label="driver $driver direct (tenant after connect)" flags=(--tenant-after-connect) ;;
    pgtenant) label="driver $driver via pgtenant" via=1 ;;
    require-tenant)
      label="driver $driver via pgtenant (require_tenant)" via=1 flags=(--tenant-after-connect) ;;
  esac
  if [[ -z "$via" ]]; then
    port="$PG_PORT" user=app_rls password=app_rls_pw
  else
    port="$PGT_PORT" user=app password=app_pw
  fi
  local tag="$driver-$target-$$" out="$WORK/$driver-$target.out" start=$SECONDS rc
  local -a cmd
  read -r -a cmd <<<"$(workload_cmd "$driver")"
  [[ -n "$via" ]] && start_pinned "$driver-$target"
  timeout -k 10 "$RUN_KILL" "${cmd[@]}" --host 127.0.0.1 --port "$port" --user "$user" \
    --password "$password" --dbname app --clients "$CLIENTS" --iterations "$ITERATIONS" \
    --deadline "$RUN_DEADLINE" --tag "$tag" "${flags[@]}" >"$out" 2>&1
  rc=$?
  local result problems=() pinned=""
  if [[ -n "$via" ]]; then
    stop_pinned
    pinned_verdict
    pinned=", $PINNED_SUMMARY"
    problems+=("${PINNED_PROBLEMS[@]}")
  fi
  result="$(grep '^RESULT ' "$out" | tail -n 1)"
  [[ $rc -eq 124 || $rc -eq 137 ]] && problems+=("killed after ${RUN_KILL}s")
  [[ -z "$result" ]] && problems+=("no RESULT line (exit $rc)")
  # The workload must leave the tables as it found them.
  local state
  state="$(psql_super "select (select count(*) from items), (select count(*) from copytest where b like '$tag-%')" 2>&1)"
  [[ "$state" == "300|0" ]] || problems+=("tables not restored: items|copytest rows = $state (want 300|0)")
  if [[ -n "$via" ]]; then
    local status
    status="$(pgtenant_status)"
    [[ -z "$status" ]] || problems+=("$status")
  fi
  local clients statements errors leaks
  clients="$(sed -n 's/.* clients=\([0-9]*\).*/\1/p' <<<"$result")"
  statements="$(sed -n 's/.* statements=\([0-9]*\).*/\1/p' <<<"$result")"
  errors="$(sed -n 's/.* errors=\([0-9]*\).*/\1/p' <<<"$result")"
  leaks="$(sed -n 's/.* leaks=\([0-9]*\).*/\1/p' <<<"$result")"
  local summary="${clients:-?} clients, ${statements:-?} statements, ${errors:-?} errors, ${leaks:-?} leaks$pinned"
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
  if [[ -n "$via" ]]; then
    pgtenant_log_tail 10
  fi
  FAILED=$((FAILED + 1))
}

main() {
  local suite_start=$SECONDS d t
  check_clients "${DRIVERS[@]}"
  load_fixture
  log "PostgreSQL on port $PG_PORT; targets ${RUN_TARGETS[*]}; a fresh pgtenant for each driver and \
pgtenant target (logs $WORK/pgtenant-DRIVER[-require-tenant].log)"
  for d in "${DRIVERS[@]}"; do
    if ! prepare_driver "$d"; then
      echo "driver $d: FAILED (could not prepare the workload)"
      FAILED=$((FAILED + 1))
      continue
    fi
    for t in "${RUN_TARGETS[@]}"; do
      case "$t" in
        direct | direct-after-connect) run_one "$d" "$t" ;;
        pgtenant)
          REQUIRE_TENANT=false
          start_pgtenant "$d"
          run_one "$d" "$t"
          stop_pgtenant
          ;;
        require-tenant)
          REQUIRE_TENANT=true
          start_pgtenant "$d-require-tenant"
          run_one "$d" "$t"
          stop_pgtenant
          ;;
      esac
    done
  done
  log "suite took $((SECONDS - suite_start))s"
  echo "$PASSED passed, $FAILED failed"
  [[ $FAILED -eq 0 ]]
}

main
