# Shell functions shared by the benchmark scripts that run their own throwaway PostgreSQL and
# poolers (bench/scale.sh, bench/noisy_neighbour.sh). Sourced, not run. The caller sets PY
# (python3) and RUN_USER, and defines its own cleanup.

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# postgres and pgbouncer refuse to run as root: as root, run them (and pgtenant) as RUN_USER,
# created if missing; otherwise RUN_USER becomes the current user.
setup_run_user() {
  if [[ $EUID -eq 0 ]]; then
    if ! id -u "$RUN_USER" >/dev/null 2>&1; then
      log "creating OS user $RUN_USER"
      useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$RUN_USER"
    fi
  else
    RUN_USER=$(id -un)
  fi
}

as_user() { # setpriv (unlike su/runuser) keeps the raised ulimit -n
  if [[ $EUID -eq 0 ]]; then setpriv --reuid="$RUN_USER" --regid="$RUN_USER" --init-groups env HOME=/tmp "$@"
  else "$@"; fi
}

free_ports() { # N free TCP ports on 127.0.0.1, outside the ephemeral range
  "$PY" - "$1" <<'PYEOF'
import random, socket, sys
n, got, socks = int(sys.argv[1]), [], []
for _ in range(10000):
    if len(got) == n:
        break
    p = random.randint(20000, 32000)
    if p in got:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); socks.append(s); got.append(p)
    except OSError:
        s.close()
print(" ".join(map(str, got)))
PYEOF
}

stop_pid() { # stop_pid PID: TERM, up to 10 s, then KILL - only processes started here
  local pid=$1 i
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

# The watchdog: however things hang, the run ends after $1 seconds (its PID in WATCHDOG_PID).
start_watchdog() {
  ( for _ in $(seq "$1"); do sleep 1; done
    echo "[watchdog] $1 s reached, stopping" >&2; kill -TERM $$ ) &
  WATCHDOG_PID=$!
}

# A throwaway PostgreSQL in $PGDATA on 127.0.0.1:$PG_PORT as $RUN_USER, trust for $DBUSER,
# fsync/synchronous_commit/full_page_writes/autovacuum off; $1 labels the config block, $2 is
# shared_buffers, the rest are more postgresql.conf lines. Sets PG_PID. Needs PGBIN, WORK, OUT_DIR,
# MAX_CONNECTIONS.
start_throwaway_postgres() {
  local label=$1 shared_buffers=$2 line
  shift 2
  as_user "$PGBIN/initdb" -D "$PGDATA" -U "$DBUSER" -E UTF8 --no-locale --auth=trust > "$OUT_DIR/logs/initdb.log" 2>&1 ||
    { tail "$OUT_DIR/logs/initdb.log"; die "initdb failed"; }
  {
    printf '\n# ---- %s (throwaway)\n' "$label"
    printf '%s\n' "listen_addresses = '127.0.0.1'" "port = $PG_PORT" "unix_socket_directories = ''" \
      "max_connections = $MAX_CONNECTIONS" "shared_buffers = $shared_buffers" "fsync = off" \
      "synchronous_commit = off" "full_page_writes = off" "autovacuum = off"
    for line in "$@"; do printf '%s\n' "$line"; done
  } >> "$PGDATA/postgresql.conf"
  printf 'host all all 127.0.0.1/32 trust\n' > "$PGDATA/pg_hba.conf"
  as_user "$PGBIN/pg_ctl" -D "$PGDATA" -l "$WORK/postgres.log" -w -t 60 start >/dev/null ||
    { tail -20 "$WORK/postgres.log"; die "postgres did not start"; }
  PG_PID=$(head -1 "$PGDATA/postmaster.pid")
}
