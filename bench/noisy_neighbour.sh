#!/usr/bin/env bash
# Noisy-neighbour benchmark (issue "A thousand tenants"): does one busy tenant of the shared pool
# make the other tenants wait? pgtenant (waiting clients take turns by tenant) and PgBouncer 1.18
# (first come, first served) in one run, on one throwaway PostgreSQL 15, all on 127.0.0.1.
#
#   bench/noisy_neighbour.sh [OUT_DIR]          (OUT_DIR default /tmp/pgtenant-bench/noisy-DATE)
#
# For each target (pgtenant, pgbouncer), each with one pool of POOL_SIZE (20) server connections
# in transaction mode:
#   phase A "quiet only":     QUIET_TENANTS (99) tenants x QUIET_CLIENTS (4) clients, each
#                             running a one-row primary-key SELECT on pgbench_accounts (scale 1)
#   phase B "noisy + quiet":  the same plus tenant t000 with NOISY_CLIENTS (400) clients running
#                             BEGIN; SELECT pg_sleep(0.020); COMMIT
# One pgbench process per tenant (-j 1), each logging in with PGOPTIONS='-c app.tenant_id=tNNN'
# (pgtenant takes the tenant from `options`; PgBouncer is told to ignore it). Latencies come from
# pgbench's per-transaction logs (-l), over a common window of DURATION seconds that starts RAMP
# seconds after launch (and 1 s after the last pgbench process completed its first transaction).
# Prints and writes OUT_DIR/report.md: quiet tps/p50/p99, noisy tps, errors, CPU per party, and
# the ratio quiet p99(B) / p99(A) per target.
#
# Environment (defaults):
#   PGTENANT_BIN   the pgtenant binary (build/pgtenant). Benchmark a fixed build of your own.
#   TARGETS        "pgtenant pgbouncer"          REPEAT      1 (whole matrix, interleaved)
#   QUIET_TENANTS  99     QUIET_CLIENTS  4       NOISY_CLIENTS  400     POOL_SIZE  20
#   NOISY_SLEEP_MS 20     NOISY_SCRIPT   txn (BEGIN; pg_sleep; COMMIT) | stmt (one pg_sleep)
#   QUIET_RATE     0 = quiet clients run back to back (closed loop); N = each quiet tenant is
#                  throttled to N tps (pgbench -R; latency then counts from the scheduled start)
#   MAX_PER_TENANT 0 = pgtenant's pools.shared.max_connections_per_tenant (0 = no cap)
#   DURATION 20  RAMP 5  TAIL 3 (seconds; pgbench -T = RAMP+DURATION+TAIL)   WARMUP 3
#   MAX_CONNECTIONS 200 (PostgreSQL)   RUN_USER benchpg (runs postgres and the poolers when root)
#   QUIET_WAIT 60, QUIET_PCT 25: before each phase wait up to QUIET_WAIT s for the machine to be
#                  less than QUIET_PCT % busy (a shared machine; the report's "other" CPU column
#                  shows what other work ran during each window anyway)
#   MAX_RUN_SECONDS 900 (watchdog: the whole script is stopped after this)   KEEP_TMP 0
# Requirements: PostgreSQL 15 (PGBIN=/usr/lib/postgresql/15/bin), pgbench, pgbouncer
# (/usr/sbin/pgbouncer), python3 (stdlib), setpriv, timeout. Only processes this script started
# are stopped, by PID.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

: "${PGTENANT_BIN:=$root/build/pgtenant}"
: "${PGBIN:=/usr/lib/postgresql/15/bin}"
: "${PGBENCH:=$(command -v pgbench || echo "$PGBIN/pgbench")}"
: "${PGBOUNCER:=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)}"
: "${TARGETS:=pgtenant pgbouncer}"
: "${REPEAT:=1}"
: "${QUIET_TENANTS:=99}"
: "${QUIET_CLIENTS:=4}"
: "${NOISY_CLIENTS:=400}"
: "${POOL_SIZE:=20}"
: "${NOISY_SLEEP_MS:=20}"
: "${NOISY_SCRIPT:=txn}"
: "${QUIET_RATE:=0}"
: "${MAX_PER_TENANT:=0}"
: "${DURATION:=20}"
: "${RAMP:=5}"
: "${TAIL:=3}"
: "${WARMUP:=3}"
: "${MAX_CONNECTIONS:=200}"
: "${RUN_USER:=benchpg}"
: "${QUIET_WAIT:=60}"
: "${QUIET_PCT:=25}"
: "${MAX_RUN_SECONDS:=900}"
: "${KEEP_TMP:=0}"
OUT_DIR=${1:-${OUT_DIR:-/tmp/pgtenant-bench/noisy-$(date +%Y%m%d-%H%M%S)}}
PY=${PYTHON:-python3}
HELPER=$here/noisy_neighbour.py
DB=bench DBUSER=bench

. "$here/lib.sh"  # log, die, setup_run_user, as_user, free_ports, stop_pid, start_watchdog,
                  # start_throwaway_postgres

[[ -x $PGTENANT_BIN ]] || die "no pgtenant binary at $PGTENANT_BIN (set PGTENANT_BIN)"
[[ -x $PGBIN/initdb ]] || die "no PostgreSQL binaries in $PGBIN"
[[ -x $PGBENCH ]] || die "pgbench not found"
[[ -x $PGBOUNCER ]] || die "pgbouncer not found"
[[ $NOISY_SCRIPT == txn || $NOISY_SCRIPT == stmt ]] || die "NOISY_SCRIPT must be txn or stmt"
for t in $TARGETS; do [[ $t == pgtenant || $t == pgbouncer ]] || die "unknown target $t"; done
(( QUIET_TENANTS >= 1 && QUIET_TENANTS <= 999 )) || die "QUIET_TENANTS must be 1..999"

mkdir -p "$OUT_DIR/logs"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
RESULTS=$OUT_DIR/results.jsonl
: > "$RESULTS"

# file descriptors: the poolers hold ~2 per client, pgbench one per client
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
need=$(( (QUIET_TENANTS * QUIET_CLIENTS + NOISY_CLIENTS) * 2 + 200 ))
(( $(ulimit -n) >= need )) || log "WARNING: ulimit -n $(ulimit -n) < $need"

setup_run_user
read -r PG_PORT PGB_PORT PGT_PORT < <(free_ports 3)
[[ -n ${PGT_PORT:-} ]] || die "no free ports"

WORK=$(mktemp -d /tmp/noisy-neighbour.XXXXXX)
chmod 755 "$WORK"
[[ $EUID -eq 0 ]] && chown "$RUN_USER:" "$WORK"
PGDATA=$WORK/pgdata
PG_PID="" PGB_PID="" PGT_PID="" SAMPLER_PID="" WATCHDOG_PID=""
CLIENT_PIDS=()
PSQL=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U "$DBUSER")
export PGCONNECT_TIMEOUT=10

cleanup() {
  set +e
  local p
  for p in "${CLIENT_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  [[ -n $SAMPLER_PID ]] && kill -TERM "$SAMPLER_PID" 2>/dev/null
  stop_pid "$PGT_PID"
  stop_pid "$PGB_PID"
  if [[ -f $PGDATA/postmaster.pid ]]; then
    as_user "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w -t 30 stop >/dev/null 2>&1
  fi
  [[ -n $WATCHDOG_PID ]] && kill -TERM "$WATCHDOG_PID" 2>/dev/null
  for f in postgres.log pgbouncer/pgbouncer.log pgtenant/pgtenant.log; do
    [[ -f $WORK/$f ]] && cp "$WORK/$f" "$OUT_DIR/logs/"
  done
  if [[ $KEEP_TMP == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'log "stopped"; exit 130' INT TERM

start_watchdog "$MAX_RUN_SECONDS"
T_START=$SECONDS

# ------------------------------------------------------------------ PostgreSQL
log "output: $OUT_DIR; work dir $WORK; ports postgres $PG_PORT pgbouncer $PGB_PORT pgtenant $PGT_PORT"
start_throwaway_postgres noisy_neighbour.sh 128MB
"${PSQL[@]}" -p "$PG_PORT" -d postgres -c "create database $DB" >/dev/null
"$PGBENCH" -i -s 1 -q -h 127.0.0.1 -p "$PG_PORT" -U "$DBUSER" "$DB" > "$OUT_DIR/logs/pgbench-init.log" 2>&1 ||
  die "pgbench -i failed"
log "postgres pid $PG_PID, pgbench_accounts loaded (scale 1, 100,000 rows)"

# ------------------------------------------------------------------ scripts
printf '%s\n' '\set aid random(1, 100000)' 'SELECT abalance FROM pgbench_accounts WHERE aid = :aid;' > "$OUT_DIR/quiet.sql"
sleep_s=$(printf '0.%03d' "$NOISY_SLEEP_MS"); (( NOISY_SLEEP_MS < 1000 )) || die "NOISY_SLEEP_MS must be < 1000"
if [[ $NOISY_SCRIPT == txn ]]; then
  printf '%s\n' 'BEGIN;' "SELECT pg_sleep($sleep_s);" 'COMMIT;' > "$OUT_DIR/noisy.sql"
else
  printf '%s\n' "SELECT pg_sleep($sleep_s);" > "$OUT_DIR/noisy.sql"
fi

# ------------------------------------------------------------------ poolers
wait_login() { # wait_login PORT PID: a real login with a tenant + SELECT 1, up to 20 s
  local i
  for i in $(seq 100); do
    kill -0 "$2" 2>/dev/null || return 1
    PGOPTIONS='-c app.tenant_id=t001' "${PSQL[@]}" -p "$1" -d "$DB" -c 'select 1' >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}
mkdir -p "$WORK/pgbouncer" "$WORK/pgtenant"
printf '"%s" ""\n' "$DBUSER" > "$WORK/pgbouncer/userlist.txt"
maxc=$(( QUIET_TENANTS * QUIET_CLIENTS + NOISY_CLIENTS + 1000 ))
cat > "$WORK/pgbouncer/pgbouncer.ini" <<EOF
[databases]
$DB = host=127.0.0.1 port=$PG_PORT dbname=$DB

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = trust
auth_file = $WORK/pgbouncer/userlist.txt
pool_mode = transaction
default_pool_size = $POOL_SIZE
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = $maxc
max_db_connections = 0
listen_backlog = 4096
query_wait_timeout = 120
ignore_startup_parameters = extra_float_digits, options
log_connections = 0
log_disconnections = 0
logfile = $WORK/pgbouncer/pgbouncer.log
pidfile = $WORK/pgbouncer/pgbouncer.pid
EOF
cat > "$WORK/pgtenant/pgtenant.yaml" <<EOF
listen: { host: 127.0.0.1, port: $PGT_PORT, max_client_connections: $maxc }
metrics: { host: 127.0.0.1, port: 0 }
auth:
  type: trust
  users:
    $DBUSER: { tenants: ["*"] }
tenancy:
  variable: app.tenant_id
  sources: [options, parameter, set]
  default_pool: shared
  require_tenant: false
pools:
  shared:
    host: 127.0.0.1
    port: $PG_PORT
    database: $DB
    user: $DBUSER
    mode: transaction
    size: $POOL_SIZE
    max_connections_per_tenant: $MAX_PER_TENANT
timeouts:
  query_wait: 120s
EOF
[[ $EUID -eq 0 ]] && chown -R "$RUN_USER:" "$WORK/pgbouncer" "$WORK/pgtenant"
chmod 600 "$WORK/pgbouncer/userlist.txt"
cp "$WORK/pgbouncer/pgbouncer.ini" "$WORK/pgtenant/pgtenant.yaml" "$OUT_DIR/"

spawn() { # exec keeps $! == the server's PID
  if [[ $EUID -eq 0 ]]; then exec setpriv --reuid="$RUN_USER" --regid="$RUN_USER" --init-groups "$@"; else exec "$@"; fi
}
if [[ " $TARGETS " == *" pgbouncer "* ]]; then
  spawn "$PGBOUNCER" "$WORK/pgbouncer/pgbouncer.ini" < /dev/null > "$OUT_DIR/logs/pgbouncer.stdout" 2>&1 &
  PGB_PID=$!
  wait_login "$PGB_PORT" "$PGB_PID" || { tail "$WORK/pgbouncer/pgbouncer.log" || true; die "pgbouncer did not start"; }
  log "pgbouncer pid $PGB_PID ($("$PGBOUNCER" --version | head -1))"
fi
if [[ " $TARGETS " == *" pgtenant "* ]]; then
  "$PGTENANT_BIN" --check-config "$WORK/pgtenant/pgtenant.yaml" > "$OUT_DIR/logs/pgtenant-check.log" 2>&1 ||
    { cat "$OUT_DIR/logs/pgtenant-check.log"; die "pgtenant config refused"; }
  spawn "$PGTENANT_BIN" --config "$WORK/pgtenant/pgtenant.yaml" < /dev/null > "$WORK/pgtenant/pgtenant.log" 2>&1 &
  PGT_PID=$!
  wait_login "$PGT_PORT" "$PGT_PID" || { tail "$WORK/pgtenant/pgtenant.log" || true; die "pgtenant did not start"; }
  log "pgtenant pid $PGT_PID ($PGTENANT_BIN, $("$PGTENANT_BIN" --version 2>&1 | head -1))"
fi

port_of() { case $1 in pgtenant) echo "$PGT_PORT" ;; pgbouncer) echo "$PGB_PORT" ;; esac; }
pid_of()  { case $1 in pgtenant) echo "$PGT_PID" ;; pgbouncer) echo "$PGB_PID" ;; esac; }

# ------------------------------------------------------------------ phases
warm() { # open every server connection of the pool before measuring
  (( WARMUP > 0 )) || return 0
  PGOPTIONS='-c app.tenant_id=t001' timeout -k 5 $((WARMUP + 30)) "$PGBENCH" -n -c $((2 * POOL_SIZE)) -j 1 -T "$WARMUP" \
    -f "$OUT_DIR/quiet.sql" -h 127.0.0.1 -p "$(port_of "$1")" -U "$DBUSER" "$DB" >> "$OUT_DIR/logs/warmup.log" 2>&1 ||
    log "warm-up through $1 failed (logs/warmup.log)"
}

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

run_phase() { # run_phase REP TARGET A|B
  local rep=$1 target=$2 phase=$3 port dir T i tid rc n
  port=$(port_of "$target")
  dir=$OUT_DIR/r$rep-$target-$phase
  mkdir -p "$dir"
  T=$((RAMP + DURATION + TAIL))
  local rate=(); (( QUIET_RATE > 0 )) && rate=(-R "$QUIET_RATE")
  local outs=() pids=()
  local other; other=$( [[ $target == pgtenant ]] && echo "$PGB_PID" || echo "$PGT_PID" )
  (( QUIET_WAIT > 0 )) && wait_quiet
  "$PY" "$HELPER" sample --out "$dir/samples.jsonl" --seconds $((T + 60)) --roots $$ \
    --pooler "$(pid_of "$target")" --postmaster "$PG_PID" --exclude "${other:-0},${WATCHDOG_PID:-0}" &
  SAMPLER_PID=$!
  local launch; launch=$(date +%s.%N)
  log "run $rep: $target phase $phase: $QUIET_TENANTS quiet tenants x $QUIET_CLIENTS clients$( [[ $phase == B ]] && echo " + noisy tenant x $NOISY_CLIENTS")$( ((QUIET_RATE > 0)) && echo ", quiet throttled to $QUIET_RATE tps per tenant"), pgbench -T $T"
  if [[ $phase == B ]]; then
    PGOPTIONS='-c app.tenant_id=t000' timeout -k 5 $((T + 60)) "$PGBENCH" -n -c "$NOISY_CLIENTS" -j 1 -T "$T" \
      -f "$OUT_DIR/noisy.sql" -l --log-prefix="$dir/n-t000.log" -h 127.0.0.1 -p "$port" -U "$DBUSER" "$DB" \
      > "$dir/n-t000.out" 2>&1 &
    pids+=($!); outs+=("$dir/n-t000.out"); CLIENT_PIDS+=($!)
  fi
  for i in $(seq 1 "$QUIET_TENANTS"); do
    tid=$(printf 't%03d' "$i")
    PGOPTIONS="-c app.tenant_id=$tid" timeout -k 5 $((T + 60)) "$PGBENCH" -n -c "$QUIET_CLIENTS" -j 1 -T "$T" "${rate[@]}" \
      -f "$OUT_DIR/quiet.sql" -l --log-prefix="$dir/q-$tid.log" -h 127.0.0.1 -p "$port" -U "$DBUSER" "$DB" \
      > "$dir/q-$tid.out" 2>&1 &
    pids+=($!); outs+=("$dir/q-$tid.out"); CLIENT_PIDS+=($!)
  done
  n=0
  for i in "${!pids[@]}"; do
    rc=0; wait "${pids[$i]}" || rc=$?
    echo "exit status $rc" >> "${outs[$i]}"
    (( rc == 0 )) || n=$((n + 1))
  done
  CLIENT_PIDS=()
  kill -TERM "$SAMPLER_PID" 2>/dev/null || true; wait "$SAMPLER_PID" 2>/dev/null || true; SAMPLER_PID=""
  (( n == 0 )) || log "$n pgbench process(es) exited non-zero (see $dir/*.out)"
  kill -0 "$(pid_of "$target")" 2>/dev/null || log "WARNING: $target is no longer running"
  "$PY" "$HELPER" analyse --dir "$dir" --target "$target" --phase "$phase" --rep "$rep" --launch "$launch" \
    --ramp "$RAMP" --duration "$DURATION" --samples "$dir/samples.jsonl" --out "$RESULTS" > /dev/null
  tail -1 "$RESULTS" | "$PY" -c 'import json,sys; r=json.load(sys.stdin); print("   quiet tps %s p50 %s ms p99 %s ms, noisy tps %s, errors %s, window %s s, machine CPU %s%% of a core" % (r["quiet_tps"], r["quiet_p50_ms"], r["quiet_p99_ms"], r["noisy_tps"], r["errors"], r["window_s"], r.get("machine_core_pct")))' >&2
  # the logs are big and analysed: keep them compressed
  gzip -q "$dir"/*.log.* 2>/dev/null || true
  sleep 2
}

for rep in $(seq "$REPEAT"); do
  for target in $TARGETS; do
    warm "$target"
    run_phase "$rep" "$target" A
    run_phase "$rep" "$target" B
  done
done

# ------------------------------------------------------------------ report
{
  echo "# Noisy neighbour: $(date -Is)"
  echo
  echo "pgtenant: \`$PGTENANT_BIN\` ($("$PGTENANT_BIN" --version 2>&1 | head -1)); $("$PGBOUNCER" --version | head -1);"
  echo "$("$PGBIN/postgres" --version); $("$PGBENCH" --version); $(nproc) CPUs, $(uname -r)."
  echo
  echo "Settings: QUIET_TENANTS=$QUIET_TENANTS QUIET_CLIENTS=$QUIET_CLIENTS NOISY_CLIENTS=$NOISY_CLIENTS" \
       "POOL_SIZE=$POOL_SIZE NOISY_SLEEP_MS=$NOISY_SLEEP_MS NOISY_SCRIPT=$NOISY_SCRIPT QUIET_RATE=$QUIET_RATE" \
       "MAX_PER_TENANT=$MAX_PER_TENANT DURATION=$DURATION RAMP=$RAMP REPEAT=$REPEAT TARGETS=\"$TARGETS\""
  echo
  "$PY" "$HELPER" report --results "$RESULTS"
  echo
  echo "Latency: pgbench's per-transaction log, every quiet transaction that ended inside the window."
  echo "CPU: % of one core over the window (200 = both cores of a 2-CPU machine). machine = all"
  echo "non-idle CPU (/proc/stat); pooler, postgres (postmaster and backends), pgbench (all client"
  echo "processes) from /proc/PID/stat; irq+softirq = interrupt time /proc/stat charges to no process"
  echo "(loopback TCP is partly handled there); other = the rest: other work on the machine."
  echo "Total run time: $((SECONDS - T_START)) s."
} > "$OUT_DIR/report.md"
cat "$OUT_DIR/report.md"
log "done in $((SECONDS - T_START)) s: $OUT_DIR/report.md"
