#!/usr/bin/env bash
# A throwaway PostgreSQL 15 for the integration tests and the demo.
#
#   pg_fixture.sh start STATE_DIR [--bare]   initdb + start on a free 127.0.0.1 port, load the test
#                                            schema (unless --bare), write STATE_DIR/pg.env
#   pg_fixture.sh stop STATE_DIR             stop (immediate) and delete the data directory
#
# Postgres refuses to run as root, so when started by root every Postgres command runs as the
# system user `pgtenant` (created on first use). The data directory lives under /tmp, not under
# STATE_DIR, because STATE_DIR may sit in a directory that user cannot enter (/root/...).
#
# Schema: every tests/integration/sql/NAME.sql is loaded into the database NAME, after the role
# app_rls and the databases app and acme exist.
#
# TLS: the server has ssl = on with a certificate from a CA made here (make_test_certs.sh), for
# the backend TLS tests; plain connections are accepted too. PGT_PG_CA names that CA.
#
# pg.env holds KEY=VALUE lines (no quoting) read by tests/integration/harness.cc:
#   PGT_PG_PORT PGT_PG_DATA PGT_PG_BIN PGT_PG_LOG PGT_PG_RUNAS PGT_PG_SUPERUSER PGT_PG_SUPERPASS
#   PGT_PG_CA
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SQL_DIR="$SCRIPT_DIR/sql"
RUN_USER=pgtenant
SUPERUSER=postgres
SUPERPASS=postgres

die() { echo "pg_fixture: $*" >&2; exit 1; }

find_bin_dir() {
  if [[ -n "${PGT_PG_BIN:-}" ]]; then echo "$PGT_PG_BIN"; return; fi
  if [[ -x /usr/lib/postgresql/15/bin/pg_ctl ]]; then echo /usr/lib/postgresql/15/bin; return; fi
  local d
  for d in /usr/lib/postgresql/*/bin; do
    if [[ -x "$d/pg_ctl" ]]; then echo "$d"; return; fi
  done
  die "no PostgreSQL server binaries found (install postgresql-15: scripts/install-deps)"
}

# as_pg CMD...: run CMD as the user that owns the cluster.
as_pg() {
  if [[ "$RUN_AS" == "$(id -un)" ]]; then
    "$@"
  else
    setpriv --reuid="$RUN_AS" --regid="$RUN_AS" --init-groups -- "$@"
  fi
}

ensure_run_user() {
  if [[ "$(id -u)" -ne 0 ]]; then
    RUN_AS="$(id -un)"
    return
  fi
  RUN_AS="$RUN_USER"
  if ! id -u "$RUN_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$RUN_USER" 2>/dev/null ||
      id -u "$RUN_USER" >/dev/null 2>&1 || die "cannot create user $RUN_USER"
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' 2>/dev/null ||
    echo $((20000 + RANDOM % 30000))
}

psql_super() {  # psql_super DB [psql args...]: as the superuser over TCP with the password
  local db="$1"; shift
  PGPASSWORD="$SUPERPASS" "$BIN/psql" -X -q -v ON_ERROR_STOP=1 \
    -h 127.0.0.1 -p "$PORT" -U "$SUPERUSER" -d "$db" "$@"
}

# Settings go to an included file so that a retry on another port rewrites it whole.
write_conf() {
  grep -q "pgtenant_fixture.conf" "$DATA/postgresql.conf" ||
    echo "include_if_exists = 'pgtenant_fixture.conf'" >>"$DATA/postgresql.conf"
  cat >"$DATA/pgtenant_fixture.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PORT
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
unix_socket_directories = '$DATA'
log_line_prefix = '%m [%p] %q%u@%d '
log_min_messages = warning
ssl = on
ssl_cert_file = '$DATA/tls/server.crt'
ssl_key_file = '$DATA/tls/server.key'
EOF
  [[ "$RUN_AS" == "$(id -un)" ]] || chown "$RUN_AS:" "$DATA/pgtenant_fixture.conf"
}

init_cluster() {
  DATA="$(mktemp -d /tmp/pgtenant-pg.XXXXXX)"
  chmod 700 "$DATA"
  [[ "$RUN_AS" == "$(id -un)" ]] || chown "$RUN_AS:" "$DATA"
  local pwfile="$DATA.pw"
  echo "$SUPERPASS" >"$pwfile"
  [[ "$RUN_AS" == "$(id -un)" ]] || chown "$RUN_AS:" "$pwfile"
  as_pg "$BIN/initdb" -D "$DATA" -U "$SUPERUSER" --pwfile="$pwfile" \
    --auth-host=scram-sha-256 --auth-local=trust -E UTF8 --locale=C.UTF-8 >"$DATA.initdb.log" 2>&1 ||
    { cat "$DATA.initdb.log" >&2; rm -f "$pwfile"; die "initdb failed"; }
  rm -f "$pwfile" "$DATA.initdb.log"
  # Postgres insists that its key is readable by its own user only.
  bash "$SCRIPT_DIR/make_test_certs.sh" "$DATA/tls" || die "cannot make the TLS certificates (is openssl installed?)"
  [[ "$RUN_AS" == "$(id -un)" ]] || chown -R "$RUN_AS:" "$DATA/tls"
  chmod 755 "$DATA/tls"
}

# A free port can be taken between picking and binding, so try a few.
start_server() {
  local attempt
  for attempt in 1 2 3 4 5; do
    PORT="$(free_port)"
    write_conf
    if as_pg "$BIN/pg_ctl" -D "$DATA" -l "$DATA/postgres.log" -w -t 60 start >/dev/null; then
      return 0
    fi
    echo "pg_fixture: start on port $PORT failed (attempt $attempt)" >&2
    tail -n 5 "$DATA/postgres.log" >&2 || true
  done
  die "could not start PostgreSQL"
}

load_schema() {
  psql_super postgres <<'EOF'
CREATE ROLE app_rls LOGIN PASSWORD 'app_rls_pw' NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
CREATE DATABASE app OWNER postgres;
CREATE DATABASE acme OWNER postgres;
GRANT CONNECT ON DATABASE app TO app_rls;
GRANT CONNECT ON DATABASE acme TO app_rls;
EOF
  local f db
  for f in "$SQL_DIR"/*.sql; do
    [[ -e "$f" ]] || continue
    db="$(basename "$f" .sql)"
    psql_super "$db" -f "$f" || die "loading $f into $db failed"
  done
}

write_env() {
  mkdir -p "$STATE_DIR"
  cat >"$STATE_DIR/pg.env.tmp" <<EOF
PGT_PG_PORT=$PORT
PGT_PG_DATA=$DATA
PGT_PG_BIN=$BIN
PGT_PG_LOG=$DATA/postgres.log
PGT_PG_RUNAS=$RUN_AS
PGT_PG_SUPERUSER=$SUPERUSER
PGT_PG_SUPERPASS=$SUPERPASS
PGT_PG_CA=$DATA/tls/ca.crt
EOF
  mv "$STATE_DIR/pg.env.tmp" "$STATE_DIR/pg.env"
}

cmd_stop() {
  local env="$STATE_DIR/pg.env"
  [[ -f "$env" ]] || return 0
  local data bin runas
  data="$(sed -n 's/^PGT_PG_DATA=//p' "$env")"
  bin="$(sed -n 's/^PGT_PG_BIN=//p' "$env")"
  runas="$(sed -n 's/^PGT_PG_RUNAS=//p' "$env")"
  RUN_AS="$runas"
  if [[ -n "$data" && -d "$data" ]]; then
    as_pg "$bin/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
    # Only ever delete what this script created.
    case "$data" in
      /tmp/pgtenant-pg.*) rm -rf "$data" ;;
      *) echo "pg_fixture: not deleting unexpected data dir $data" >&2 ;;
    esac
  fi
  rm -f "$env"
}

cmd_start() {
  local bare="${1:-}"
  cmd_stop  # a previous run's cluster in the same STATE_DIR
  BIN="$(find_bin_dir)"
  ensure_run_user
  cd /  # Postgres tools complain when the cwd is not readable by the run user
  init_cluster
  start_server
  if [[ "$bare" != "--bare" ]]; then
    load_schema
  fi
  write_env
  echo "pg_fixture: PostgreSQL running on 127.0.0.1:$PORT (data $DATA, user $RUN_AS); env in $STATE_DIR/pg.env"
}

[[ $# -ge 2 ]] || die "usage: $0 start|stop STATE_DIR [--bare]"
ACTION="$1"
STATE_DIR="$(mkdir -p "$2" && cd "$2" && pwd)"
case "$ACTION" in
  start) cmd_start "${3:-}" ;;
  stop) cmd_stop ;;
  *) die "unknown action $ACTION (start|stop)" ;;
esac
