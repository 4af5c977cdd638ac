#!/usr/bin/env bash
# Scale benchmark (issue "A thousand tenants", acceptance 1): one throwaway PostgreSQL 15 with
# TENANTS (1,000) dedicated databases tenant_d0001..tenant_dNNNN plus a shared RLS database of
# TENANTS tenants s0001..sNNNN; CLIENTS (5,000) clients, half shared, half dedicated, whose
# tenants follow Zipf(ZIPF_S); a global budget of BUDGET (300) server connections. pgtenant and
# PgBouncer 1.18 (its closest settings) in one run, all on 127.0.0.1.
#
#   bench/scale.sh [OUT_DIR]          (OUT_DIR default /tmp/pgtenant-bench/scale-DATE)
#
# Setup (timed and reported): a template database `tpl` with items(id int primary key, v text)
# of ROWS (100) rows, copied into each dedicated database with CREATE DATABASE ... STRATEGY
# FILE_COPY (CREATE_JOBS psql sessions in parallel); database `shared` with items(tenant_id,
# id, v) of TENANTS x ROWS rows, RLS policy tenant_id = current_setting('app.tenant_id', true)
# (FORCE ROW LEVEL SECURITY); role `app` (no superuser, owns nothing) used by every client and
# by both poolers.
# Targets, one after the other, each started just before its run and stopped after it:
#   pgtenant:  pool `shared` (size SHARED_POOL 100), pool template `dedicated` (database
#              tenant_{tenant}, size DEDICATED_POOL 5) named by all TENANTS dedicated tenants
#              under `tenants:`, limits.max_server_connections BUDGET, transaction mode,
#              timeouts.query_wait QUERY_WAIT (30 s), server_idle SERVER_IDLE (5 s); clients name
#              their tenant with options=-c app.tenant_id=ID.
#   pgbouncer: pool_mode transaction, one [databases] line per dedicated database (PGB_DATABASES
#              explicit) or the `*` auto-database (auto), default_pool_size = max_db_connections
#              = DEDICATED_POOL, `shared` with pool_size = max_db_connections = SHARED_POOL,
#              max_user_connections = BUDGET (one user: the global cap), server_idle_timeout
#              SERVER_IDLE, query_wait_timeout QUERY_WAIT; clients connect to tenant_dNNNN / shared.
# Load: bench/scale_driver (build target scale_driver; one thread, libpq on epoll): each client
# bound to one tenant (same seeded assignment for both targets), closed loop (THINK_MS 0), one
# round trip per transaction: dedicated `SELECT v FROM items WHERE id = K`; shared
# `BEGIN; SET LOCAL app.tenant_id = 'sNNNN'; SELECT v FROM items WHERE id = K; COMMIT` (the
# same text through both poolers; RLS picks the tenant's row). Clients log in with at most
# CONNECT_CONCURRENCY logins in flight; the window of DURATION s starts WARM s after the last
# login (or RAMP_MAX s), then TAIL s more of load, in which pgtenant is reloaded RELOADS times
# (one tenant's entry changed, SIGHUP, timed until its "reload: config applied" log line); the
# same again with no clients, and `pgtenant --check-config` of the file is timed.
# Sampled every 200 ms by the driver: server connections in pg_stat_activity (client backends,
# its own session excluded): high-water vs BUDGET; pooler VmRSS (and VmHWM at the end); CPU per
# party over the window. Prints and writes OUT_DIR/report.md: tps, p50/p99/p99.9, errors by kind,
# clients and tenants never served in the window, server-connection high-water, RSS, CPU.
#
# Environment (defaults):
#   PGTENANT_BIN   the pgtenant binary (build/pgtenant). Benchmark a fixed build of your own.
#   SCALE_DRIVER   the driver (build/bench/scale_driver)
#   TARGETS        "pgtenant pgbouncer"      CLIENTS 5000   TENANTS 1000   SHARED_PCT 50
#   ZIPF_S 1.0     SEED 18     THINK_MS 0 (mean of an exponential think time; 0 = closed loop)
#   BUDGET 300     SHARED_POOL 100   DEDICATED_POOL 5   QUERY_WAIT 30   SERVER_IDLE 5 (seconds)
#   PGB_DATABASES  explicit | auto        ROWS 100     CREATE_JOBS 4
#   DURATION 30    WARM 3    TAIL 10    RAMP_MAX 120 (seconds)   CONNECT_CONCURRENCY 100
#   RELOADS 3      MAX_CONNECTIONS 400 (PostgreSQL)   RUN_USER benchpg (postgres and poolers, when root)
#   QUIET_WAIT 60, QUIET_PCT 25: before each target wait up to QUIET_WAIT s for the machine to
#                  be less than QUIET_PCT % busy (a shared machine)
#   MAX_RUN_SECONDS 900 (watchdog: the whole script is stopped after this)   KEEP_TMP 0
# Requirements: PostgreSQL 15 (PGBIN=/usr/lib/postgresql/15/bin), pgbouncer (/usr/sbin/pgbouncer),
# python3 (stdlib; bench/scale.py), setpriv. Needs about 8 GB of disk in /tmp for the databases.
# Only processes this script started are stopped, by PID.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

: "${PGTENANT_BIN:=$root/build/pgtenant}"
: "${SCALE_DRIVER:=$root/build/bench/scale_driver}"
: "${PGBIN:=/usr/lib/postgresql/15/bin}"
: "${PGBOUNCER:=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)}"
: "${TARGETS:=pgtenant pgbouncer}"
: "${CLIENTS:=5000}"
: "${TENANTS:=1000}"
: "${SHARED_PCT:=50}"
: "${ZIPF_S:=1.0}"
: "${SEED:=18}"
: "${THINK_MS:=0}"
: "${BUDGET:=300}"
: "${SHARED_POOL:=100}"
: "${DEDICATED_POOL:=5}"
: "${QUERY_WAIT:=30}"
: "${SERVER_IDLE:=5}"
: "${PGB_DATABASES:=explicit}"
: "${ROWS:=100}"
: "${CREATE_JOBS:=4}"
: "${DURATION:=30}"
: "${WARM:=3}"
: "${TAIL:=10}"
: "${RAMP_MAX:=120}"
: "${CONNECT_CONCURRENCY:=100}"
: "${RELOADS:=3}"
: "${MAX_CONNECTIONS:=400}"
: "${RUN_USER:=benchpg}"
: "${QUIET_WAIT:=60}"
: "${QUIET_PCT:=25}"
: "${MAX_RUN_SECONDS:=900}"
: "${KEEP_TMP:=0}"
OUT_DIR=${1:-${OUT_DIR:-/tmp/pgtenant-bench/scale-$(date +%Y%m%d-%H%M%S)}}
PY=${PYTHON:-python3}
HELPER=$here/scale.py
DBUSER=bench APPUSER=app

. "$here/lib.sh"  # log, die, setup_run_user, as_user, free_ports, stop_pid, start_watchdog,
                  # start_throwaway_postgres

[[ -x $PGTENANT_BIN ]] || die "no pgtenant binary at $PGTENANT_BIN (set PGTENANT_BIN)"
[[ -x $SCALE_DRIVER ]] || die "no driver at $SCALE_DRIVER (build the target scale_driver; set SCALE_DRIVER)"
[[ -x $PGBIN/initdb ]] || die "no PostgreSQL binaries in $PGBIN"
[[ -x $PGBOUNCER ]] || die "pgbouncer not found"
for t in $TARGETS; do [[ $t == pgtenant || $t == pgbouncer ]] || die "unknown target $t"; done
[[ $PGB_DATABASES == explicit || $PGB_DATABASES == auto ]] || die "PGB_DATABASES must be explicit or auto"
(( TENANTS >= 1 && TENANTS <= 9999 )) || die "TENANTS must be 1..9999"
(( MAX_CONNECTIONS >= BUDGET + 20 )) || die "MAX_CONNECTIONS must leave room above BUDGET"

mkdir -p "$OUT_DIR/logs"
OUT_DIR=$(cd "$OUT_DIR" && pwd)

# file descriptors: each pooler holds one per client plus its servers, the driver one per client
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
need=$(( CLIENTS + BUDGET + 200 ))
(( $(ulimit -n) >= need )) || log "WARNING: ulimit -n $(ulimit -n) < $need"

setup_run_user
read -r PG_PORT PGB_PORT PGT_PORT < <(free_ports 3)
[[ -n ${PGT_PORT:-} ]] || die "no free ports"

WORK=$(mktemp -d /tmp/scale-bench.XXXXXX)
chmod 755 "$WORK"
[[ $EUID -eq 0 ]] && chown "$RUN_USER:" "$WORK"
PGDATA=$WORK/pgdata
PG_PID="" PGB_PID="" PGT_PID="" DRIVER_PID="" RELOADER_PID="" WATCHDOG_PID=""
PSQL=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U "$DBUSER")
export PGCONNECT_TIMEOUT=10

cleanup() {
  set +e
  stop_pid "$RELOADER_PID"
  stop_pid "$DRIVER_PID"
  stop_pid "$PGT_PID"
  stop_pid "$PGB_PID"
  if [[ -f $PGDATA/postmaster.pid ]]; then
    as_user "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w -t 60 stop >/dev/null 2>&1
  fi
  [[ -n $WATCHDOG_PID ]] && kill -TERM "$WATCHDOG_PID" 2>/dev/null
  [[ -f $WORK/postgres.log ]] && cp "$WORK/postgres.log" "$OUT_DIR/logs/"
  if [[ $KEEP_TMP == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'log "stopped"; exit 130' INT TERM

start_watchdog "$MAX_RUN_SECONDS"
T_START=$SECONDS

# ------------------------------------------------------------------ PostgreSQL
log "output: $OUT_DIR; work dir $WORK; ports postgres $PG_PORT pgbouncer $PGB_PORT pgtenant $PGT_PORT"
start_throwaway_postgres scale.sh 256MB "checkpoint_timeout = 30min" "max_wal_size = 4GB"
log "postgres pid $PG_PID; creating $TENANTS dedicated databases and the shared one"

t0=$(date +%s.%N)
"${PSQL[@]}" -p "$PG_PORT" -d postgres <<EOF
CREATE ROLE $APPUSER LOGIN;
CREATE DATABASE tpl;
CREATE DATABASE shared;
EOF
"${PSQL[@]}" -p "$PG_PORT" -d tpl <<EOF
CREATE TABLE items (id int PRIMARY KEY, v text);
INSERT INTO items SELECT i, md5(i::text) FROM generate_series(1, $ROWS) i;
GRANT SELECT ON items TO $APPUSER;
VACUUM ANALYZE items;
EOF
"${PSQL[@]}" -p "$PG_PORT" -d shared <<EOF
CREATE TABLE items (tenant_id text, id int, v text, PRIMARY KEY (tenant_id, id));
INSERT INTO items SELECT 's' || lpad(t::text, 4, '0'), i, md5(t::text || '/' || i::text)
  FROM generate_series(1, $TENANTS) t, generate_series(1, $ROWS) i;
ALTER TABLE items ENABLE ROW LEVEL SECURITY;
ALTER TABLE items FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON items USING (tenant_id = current_setting('app.tenant_id', true));
GRANT SELECT ON items TO $APPUSER;
VACUUM ANALYZE items;
EOF
t1=$(date +%s.%N)
pids=()
for j in $(seq 0 $((CREATE_JOBS - 1))); do
  for i in $(seq $((j + 1)) "$CREATE_JOBS" "$TENANTS"); do
    printf 'CREATE DATABASE tenant_d%04d TEMPLATE tpl STRATEGY FILE_COPY;\n' "$i"
  done > "$WORK/create-$j.sql"
  "${PSQL[@]}" -p "$PG_PORT" -d postgres -f "$WORK/create-$j.sql" > "$OUT_DIR/logs/create-$j.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || die "CREATE DATABASE failed (logs/create-*.log)"; done
t2=$(date +%s.%N)
ndb=$("${PSQL[@]}" -p "$PG_PORT" -d postgres -Atc "select count(*) from pg_database where datname like 'tenant_d%'")
(( ndb == TENANTS )) || die "only $ndb of $TENANTS dedicated databases exist"
SETUP_SHARED_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b - a}')
SETUP_CREATE_S=$(awk -v a="$t1" -v b="$t2" 'BEGIN{printf "%.1f", b - a}')
SETUP_DISK=$(du -sh "$PGDATA/base" 2>/dev/null | cut -f1)
log "$TENANTS databases created in ${SETUP_CREATE_S} s ($CREATE_JOBS sessions, FILE_COPY); shared database in ${SETUP_SHARED_S} s; base/ is $SETUP_DISK"
printf '{"create_dbs_s": %.2f, "shared_db_s": %.2f, "create_jobs": %d, "disk": "%s"}\n' \
  "$SETUP_CREATE_S" "$SETUP_SHARED_S" "$CREATE_JOBS" "$SETUP_DISK" > "$OUT_DIR/setup.json"
# check the RLS set-up as the application role
chk=$("$PGBIN/psql" -X -At -h 127.0.0.1 -p "$PG_PORT" -U "$APPUSER" -d shared \
  -c "BEGIN; SET LOCAL app.tenant_id = 's0007'; SELECT count(*), count(DISTINCT tenant_id) FROM items; COMMIT" | grep '|')
[[ $chk == "$ROWS|1" ]] || die "RLS check as $APPUSER gave '$chk', expected '$ROWS|1'"

# ------------------------------------------------------------------ configs
mkdir -p "$WORK/pgbouncer" "$WORK/pgtenant"
maxc=$(( CLIENTS + 1000 ))
printf '"%s" ""\n"%s" ""\n' "$APPUSER" "$DBUSER" > "$WORK/pgbouncer/userlist.txt"
{
  echo "[databases]"
  echo "shared = host=127.0.0.1 port=$PG_PORT dbname=shared pool_size=$SHARED_POOL max_db_connections=$SHARED_POOL"
  if [[ $PGB_DATABASES == auto ]]; then
    echo "* = host=127.0.0.1 port=$PG_PORT"
  else
    for i in $(seq 1 "$TENANTS"); do printf 'tenant_d%04d = host=127.0.0.1 port=%d dbname=tenant_d%04d\n' "$i" "$PG_PORT" "$i"; done
  fi
  cat <<EOF

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = trust
auth_file = $WORK/pgbouncer/userlist.txt
admin_users = $DBUSER
pool_mode = transaction
default_pool_size = $DEDICATED_POOL
min_pool_size = 0
reserve_pool_size = 0
max_db_connections = $DEDICATED_POOL
max_user_connections = $BUDGET
server_idle_timeout = $SERVER_IDLE
query_wait_timeout = $QUERY_WAIT
max_client_conn = $maxc
listen_backlog = 4096
log_connections = 0
log_disconnections = 0
logfile = $WORK/pgbouncer/pgbouncer.log
pidfile = $WORK/pgbouncer/pgbouncer.pid
EOF
} > "$WORK/pgbouncer/pgbouncer.ini"
PGT_CONF=$WORK/pgtenant/pgtenant.yaml
{
  cat <<EOF
listen: { host: 127.0.0.1, port: $PGT_PORT, max_client_connections: $maxc }
metrics: { host: 127.0.0.1, port: 0 }
admin: { database: pgtenant, users: [$DBUSER] }
auth:
  type: trust
  users:
    $APPUSER: { tenants: ["*"] }
    $DBUSER: { tenants: [] }
tenancy:
  variable: app.tenant_id
  sources: [options, parameter, set]
  default_pool: shared
  require_tenant: true
pools:
  shared:
    host: 127.0.0.1
    port: $PG_PORT
    database: shared
    user: $APPUSER
    mode: transaction
    size: $SHARED_POOL
pool_templates:
  dedicated:
    host: 127.0.0.1
    port: $PG_PORT
    database: "tenant_{tenant}"
    user: $APPUSER
    mode: transaction
    size: $DEDICATED_POOL
timeouts:
  query_wait: ${QUERY_WAIT}s
  server_idle: ${SERVER_IDLE}s
limits:
  max_server_connections: $BUDGET
tenants:
EOF
  for i in $(seq 1 "$TENANTS"); do printf '  d%04d: { template: dedicated }\n' "$i"; done
} > "$PGT_CONF"
[[ $EUID -eq 0 ]] && chown -R "$RUN_USER:" "$WORK/pgbouncer" "$WORK/pgtenant"
chmod 600 "$WORK/pgbouncer/userlist.txt"
cp "$WORK/pgbouncer/pgbouncer.ini" "$PGT_CONF" "$OUT_DIR/"

ms_of() { # ms_of CMD...: wall-clock milliseconds of one run
  local a b; a=$(date +%s%N); "$@" > /dev/null 2>&1 || true; b=$(date +%s%N); echo $(( (b - a) / 1000000 ))
}
"$PGTENANT_BIN" --check-config "$PGT_CONF" > "$OUT_DIR/logs/pgtenant-check.log" 2>&1 ||
  { tail "$OUT_DIR/logs/pgtenant-check.log"; die "pgtenant config refused"; }
CHECK_MS=$(for _ in 1 2 3; do ms_of "$PGTENANT_BIN" --check-config "$PGT_CONF"; done | sort -n | tr '\n' ' ')
log "pgtenant --check-config of the ${TENANTS}-tenant file ($(wc -l < "$PGT_CONF") lines): $CHECK_MS ms (3 runs)"

# ------------------------------------------------------------------ poolers
spawn() { # exec keeps $! == the server's PID
  if [[ $EUID -eq 0 ]]; then exec setpriv --reuid="$RUN_USER" --regid="$RUN_USER" --init-groups "$@"; else exec "$@"; fi
}
wait_login() { # wait_login PORT PID [PGOPTIONS]: a real login (with a tenant) + SELECT 1, up to 20 s
  local i
  for i in $(seq 100); do
    kill -0 "$2" 2>/dev/null || return 1
    PGOPTIONS=${3:-} "$PGBIN/psql" -X -q -h 127.0.0.1 -p "$1" -U "$APPUSER" -d shared -c 'select 1' >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}
start_target() {
  case $1 in
    pgbouncer)
      spawn "$PGBOUNCER" "$WORK/pgbouncer/pgbouncer.ini" < /dev/null > "$OUT_DIR/logs/pgbouncer.stdout" 2>&1 &
      PGB_PID=$!
      wait_login "$PGB_PORT" "$PGB_PID" || { tail "$WORK/pgbouncer/pgbouncer.log" || true; die "pgbouncer did not start"; }
      log "pgbouncer pid $PGB_PID ($("$PGBOUNCER" --version | head -1))" ;;
    pgtenant)
      spawn "$PGTENANT_BIN" --config "$PGT_CONF" < /dev/null > "$WORK/pgtenant/pgtenant.log" 2>&1 &
      PGT_PID=$!
      wait_login "$PGT_PORT" "$PGT_PID" '-c app.tenant_id=s0001' || { tail "$WORK/pgtenant/pgtenant.log" || true; die "pgtenant did not start"; }
      log "pgtenant pid $PGT_PID ($PGTENANT_BIN, $("$PGTENANT_BIN" --version 2>&1 | head -1))" ;;
  esac
}
stop_target() {
  case $1 in
    pgbouncer) stop_pid "$PGB_PID"; PGB_PID=""; cp "$WORK/pgbouncer/pgbouncer.log" "$OUT_DIR/logs/" 2>/dev/null || true ;;
    pgtenant)  stop_pid "$PGT_PID"; PGT_PID=""; cp "$WORK/pgtenant/pgtenant.log" "$OUT_DIR/logs/" 2>/dev/null || true ;;
  esac
}
port_of() { case $1 in pgtenant) echo "$PGT_PORT" ;; pgbouncer) echo "$PGB_PORT" ;; esac; }
pid_of()  { case $1 in pgtenant) echo "$PGT_PID" ;; pgbouncer) echo "$PGB_PID" ;; esac; }

cpu_now() { # "busy total" jiffies of the machine
  local _cpu u n s i w q sq st
  read -r _cpu u n s i w q sq st _ < /proc/stat
  echo "$(( u + n + s + q + sq + st )) $(( u + n + s + i + w + q + sq + st ))"
}
wait_quiet() { # up to QUIET_WAIT s for the machine to be under QUIET_PCT % busy (over 1 s)
  local i b0 t0 b1 t1 pct=100
  for i in $(seq "$QUIET_WAIT"); do
    read -r b0 t0 < <(cpu_now); sleep 1; read -r b1 t1 < <(cpu_now)
    pct=$(( (b1 - b0) * 100 / (t1 - t0 > 0 ? t1 - t0 : 1) ))
    (( pct < QUIET_PCT )) && return 0
    (( i == 1 )) && log "machine ${pct}% busy (other work); waiting up to ${QUIET_WAIT}s for < ${QUIET_PCT}%"
  done
  log "machine still ${pct}% busy; running anyway"
}
backends() { "${PSQL[@]}" -p "$PG_PORT" -d postgres -Atc "select count(*) from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid()"; }

run_target() { # run_target TARGET
  local target=$1 status=$OUT_DIR/$1.status i
  (( QUIET_WAIT > 0 )) && wait_quiet
  start_target "$target"
  : > "$status"
  log "$target: $CLIENTS clients (${SHARED_PCT}% shared), Zipf s=$ZIPF_S over $TENANTS tenants per side, think $THINK_MS ms; window $DURATION s"
  "$SCALE_DRIVER" --target "$target" --port "$(port_of "$target")" --user "$APPUSER" --clients "$CLIENTS" \
    --tenants "$TENANTS" --shared-pct "$SHARED_PCT" --zipf-s "$ZIPF_S" --seed "$SEED" --rows "$ROWS" \
    --think-ms "$THINK_MS" --duration "$DURATION" --warm "$WARM" --tail "$TAIL" --ramp-max "$RAMP_MAX" \
    --connect-concurrency "$CONNECT_CONCURRENCY" --connect-timeout 60 \
    --sample-conninfo "host=127.0.0.1 port=$PG_PORT dbname=postgres user=$DBUSER" \
    --pooler-pid "$(pid_of "$target")" --postmaster-pid "$PG_PID" \
    --status "$status" --out "$OUT_DIR/$target.json" 2> "$OUT_DIR/logs/driver-$target.log" &
  DRIVER_PID=$!
  # under load, after the window: reload pgtenant RELOADS times
  if [[ $target == pgtenant ]] && (( RELOADS > 0 )); then
    while kill -0 "$DRIVER_PID" 2>/dev/null && ! grep -q '^window_end' "$status"; do sleep 0.2; done
    if grep -q '^window_end' "$status"; then
      "$PY" "$HELPER" reload --pid "$PGT_PID" --log "$WORK/pgtenant/pgtenant.log" --config "$PGT_CONF" \
        --count "$RELOADS" --tenant "d$(printf '%04d' $(( TENANTS / 2 )))" --label "under load" \
        --out "$OUT_DIR/reload.jsonl" >&2 || log "reload under load: failed"
    fi
  fi
  local rc=0
  wait "$DRIVER_PID" || rc=$?
  DRIVER_PID=""
  (( rc == 0 )) || log "driver exited with status $rc (logs/driver-$target.log)"
  grep -E 'connected|window' "$OUT_DIR/logs/driver-$target.log" | head -3 >&2 || true
  kill -0 "$(pid_of "$target")" 2>/dev/null || log "WARNING: $target is no longer running"
  if [[ $target == pgtenant ]]; then
    "${PSQL[@]}" -p "$PGT_PORT" -d pgtenant -c 'SHOW POOLS' > "$OUT_DIR/logs/pgtenant-show-pools-after.txt" 2>&1 || true
    if (( RELOADS > 0 )); then
      "$PY" "$HELPER" reload --pid "$PGT_PID" --log "$WORK/pgtenant/pgtenant.log" --config "$PGT_CONF" \
        --count "$RELOADS" --tenant "d$(printf '%04d' $(( TENANTS / 2 + 1 )))" --label "no clients" \
        --out "$OUT_DIR/reload.jsonl" >&2 || log "reload without clients: failed"
    fi
  else
    "${PSQL[@]}" -p "$PGB_PORT" -d pgbouncer -c 'SHOW POOLS' > "$OUT_DIR/logs/pgbouncer-show-pools-after.txt" 2>&1 || true
  fi
  stop_target "$target"
  for i in $(seq 50); do [[ $(backends) == 0 ]] && break; sleep 0.2; done
  "$PY" "$HELPER" line --result "$OUT_DIR/$target.json" --budget "$BUDGET" >&2 || true
}

: > "$OUT_DIR/reload.jsonl"
for target in $TARGETS; do run_target "$target"; done

# ------------------------------------------------------------------ report
{
  echo "# Scale: $(date -Is)"
  echo
  echo "pgtenant: \`$PGTENANT_BIN\` ($("$PGTENANT_BIN" --version 2>&1 | head -1)); $("$PGBOUNCER" --version | head -1);"
  echo "$("$PGBIN/postgres" --version); $(nproc) CPUs, $(free -g | awk '/^Mem/{print $2}') GiB, $(uname -r)."
  echo
  echo "Settings: CLIENTS=$CLIENTS TENANTS=$TENANTS SHARED_PCT=$SHARED_PCT ZIPF_S=$ZIPF_S SEED=$SEED THINK_MS=$THINK_MS" \
       "BUDGET=$BUDGET SHARED_POOL=$SHARED_POOL DEDICATED_POOL=$DEDICATED_POOL QUERY_WAIT=$QUERY_WAIT SERVER_IDLE=$SERVER_IDLE" \
       "PGB_DATABASES=$PGB_DATABASES DURATION=$DURATION WARM=$WARM CONNECT_CONCURRENCY=$CONNECT_CONCURRENCY TARGETS=\"$TARGETS\""
  echo
  echo "Setup: $TENANTS databases created in ${SETUP_CREATE_S} s (CREATE DATABASE ... STRATEGY FILE_COPY, $CREATE_JOBS sessions);" \
       "shared database ($TENANTS tenants x $ROWS rows, RLS) in ${SETUP_SHARED_S} s; data directory base/ $SETUP_DISK."
  echo
  "$PY" "$HELPER" report --dir "$OUT_DIR" --targets "$TARGETS" --budget "$BUDGET" --check-ms "$CHECK_MS"
  echo
  echo "Total run time: $((SECONDS - T_START)) s."
} > "$OUT_DIR/report.md"
cat "$OUT_DIR/report.md"
log "done in $((SECONDS - T_START)) s: $OUT_DIR/report.md"
