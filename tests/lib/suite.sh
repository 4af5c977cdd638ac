# shellcheck shell=bash
# Shell helpers shared by the suites that run real clients against PostgreSQL and through a
# pgtenant they start themselves: tests/drivers/run_drivers.sh and tests/apps/run_apps.sh.
# Sourced, not run. The sourcing script sets before it calls anything here:
#   SUITE   its name, the prefix of its messages ("run_drivers")
#   ROOT    the repository root
#   WORK    its working directory under the build directory (fixture, config, logs)
#   PYTHON  the Python interpreter (Debian's /usr/bin/python3)
# and defines write_config, which writes $WORK/pgtenant.yaml for a pgtenant on $PGT_PORT with
# PostgreSQL on $PG_PORT. PGT_VERBOSE=1 starts pgtenant with -v.

die() { echo "$SUITE: $*" >&2; exit 1; }
log() { echo "$SUITE: $*"; }

# nodejs from NodeSource ships npm itself and conflicts with Debian's npm package, so node and npm
# count as present when their commands are.
package_present() {
  case "$1" in
    nodejs) command -v node >/dev/null ;;
    npm) command -v npm >/dev/null ;;
    *) dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed' ;;
  esac
}

# check_packages PKG...: stops the run, naming what to run, when a Debian package is missing.
check_packages() {
  local missing=() p
  for p in "$@"; do
    package_present "$p" || [[ " ${missing[*]} " == *" $p "* ]] || missing+=("$p")
  done
  [[ ${#missing[@]} -eq 0 ]] || die "missing Debian packages ${missing[*]}: run scripts/install-deps (as root)"
}

# packages_of CLIENT: the Debian packages a client program needs (psycopg2 psycopg3 asyncpg jdbc node).
packages_of() {
  case "$1" in
    psycopg2) echo python3 python3-psycopg2 ;;
    psycopg3) echo python3 python3-psycopg ;;
    asyncpg) echo python3 python3-asyncpg ;;
    jdbc) echo libpostgresql-jdbc-java default-jdk-headless ;;
    node) echo nodejs npm ;;
  esac
}

# check_clients CLIENT...: stops the run, naming what to run, when something a client needs is
# missing.
check_clients() {
  local c
  # shellcheck disable=SC2046  # one word per package
  check_packages $(for c in "$@"; do packages_of "$c"; done)
  if [[ " $* " == *" node "* ]]; then check_node_modules; fi
}

# node-postgres as tests/drivers/install.sh leaves it (from the committed lock file).
NODE_DIR="$ROOT/tests/drivers/node"
node_modules_present() {
  [[ -d "$NODE_DIR/node_modules/pg" ]] &&
    cmp -s "$NODE_DIR/package-lock.json" "$NODE_DIR/node_modules/.pgtenant-installed-lock.json"
}

check_node_modules() {
  node_modules_present ||
    die "node-postgres is not installed in tests/drivers/node/node_modules, or not from the current package-lock.json: run scripts/install-deps (or tests/drivers/install.sh)"
}

# ---- PostgreSQL and pgtenant ----

OWN_FIXTURE=""
PGT_PID=""
PGT_LOG=""

cleanup() {
  stop_pgtenant
  if [[ -n "$OWN_FIXTURE" ]]; then
    bash "$ROOT/tests/integration/pg_fixture.sh" stop "$OWN_FIXTURE" >/dev/null 2>&1
  fi
}
trap cleanup EXIT

# load_fixture: PG_PORT, PG_BIN, PG_SUPERUSER, PG_SUPERPASS of the fixture named by
# $PGTENANT_FIXTURE_ENV (as ctest gives it), or of one started here and stopped at exit.
load_fixture() {
  local env="${PGTENANT_FIXTURE_ENV:-}"
  if [[ -z "$env" || ! -f "$env" ]]; then
    OWN_FIXTURE="$WORK/pgfixture"
    bash "$ROOT/tests/integration/pg_fixture.sh" start "$OWN_FIXTURE" >"$WORK/fixture.log" 2>&1 ||
      { cat "$WORK/fixture.log" >&2; die "could not start PostgreSQL"; }
    env="$OWN_FIXTURE/pg.env"
  fi
  PG_PORT="$(sed -n 's/^PGT_PG_PORT=//p' "$env")"
  PG_BIN="$(sed -n 's/^PGT_PG_BIN=//p' "$env")"
  PG_SUPERUSER="$(sed -n 's/^PGT_PG_SUPERUSER=//p' "$env")"
  PG_SUPERPASS="$(sed -n 's/^PGT_PG_SUPERPASS=//p' "$env")"
  [[ -n "$PG_PORT" ]] || die "no PGT_PG_PORT in $env"
}

# psql_super SQL [DB]: one statement as the superuser, unaligned tuples only.
psql_super() {
  PGPASSWORD="$PG_SUPERPASS" "$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 \
    -h 127.0.0.1 -p "$PG_PORT" -U "$PG_SUPERUSER" -d "${2:-app}" -c "$1"
}

free_port() {
  "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# pgtenant_status: "" while the pgtenant started last runs, else how it ended.
pgtenant_status() {
  [[ -n "$PGT_PID" ]] || { echo "not started"; return; }
  kill -0 "$PGT_PID" 2>/dev/null && return
  local rc=0
  wait "$PGT_PID" 2>/dev/null || rc=$?
  PGT_PID=""
  if [[ $rc -gt 128 ]]; then
    echo "pgtenant died of signal $((rc - 128)) ($(kill -l $((rc - 128)) 2>/dev/null))"
  else
    echo "pgtenant exited with status $rc"
  fi
}

stop_pgtenant() {
  [[ -n "$PGT_PID" ]] || return 0
  kill -TERM "$PGT_PID" 2>/dev/null
  wait "$PGT_PID" 2>/dev/null
  PGT_PID=""
}

# start_pgtenant NAME: a fresh pgtenant ($PGTENANT) on a free port PGT_PORT, configured by
# write_config, logging to WORK/pgtenant-NAME.log; returns once it accepts connections.
start_pgtenant() {
  local attempt
  PGT_LOG="$WORK/pgtenant-$1.log"
  for attempt in 1 2 3; do
    PGT_PORT="$(free_port)"
    write_config
    local verbose=()
    [[ "${PGT_VERBOSE:-}" == 1 ]] && verbose=(-v)
    "$PGTENANT" --config "$WORK/pgtenant.yaml" "${verbose[@]}" >"$PGT_LOG" 2>&1 &
    PGT_PID=$!
    for _ in $(seq 100); do
      kill -0 "$PGT_PID" 2>/dev/null || break
      if (exec 3<>"/dev/tcp/127.0.0.1/$PGT_PORT") 2>/dev/null; then return 0; fi
      sleep 0.1
    done
    kill -TERM "$PGT_PID" 2>/dev/null
    wait "$PGT_PID" 2>/dev/null
    PGT_PID=""
    echo "$SUITE: pgtenant did not start (attempt $attempt):" >&2
    tail -n 20 "$PGT_LOG" >&2
  done
  die "could not start pgtenant"
}

# pgtenant_log_tail N: the last N lines of the current pgtenant log, indented, without the
# plaintext-password warnings of the test configs.
pgtenant_log_tail() {
  echo "    pgtenant log (last $1 lines of $PGT_LOG):"
  grep -v ': warning: .*plaintext password' "$PGT_LOG" | tail -n "$1" | sed 's/^/      /'
}

# suite_args NOUN WORK_SUBDIR ALL... -- ARGS...: reads the runner's arguments (BUILD_DIR, then
# names among ALL, default all) into BUILD_DIR and SELECTED, and sets PGTENANT (the binary, which
# must exist) and WORK (BUILD_DIR/WORK_SUBDIR, created).
suite_args() {
  local noun=$1 subdir=$2
  shift 2
  local all=()
  while [[ $# -gt 0 && $1 != -- ]]; do all+=("$1"); shift; done
  [[ $# -gt 0 ]] && shift
  [[ $# -ge 1 ]] || die "usage: $0 BUILD_DIR [${noun^^}...]"
  BUILD_DIR="$(cd "$1" && pwd)" || die "no build dir $1"
  shift
  SELECTED=("$@")
  [[ ${#SELECTED[@]} -gt 0 ]] || SELECTED=("${all[@]}")
  local x
  for x in "${SELECTED[@]}"; do
    [[ " ${all[*]} " == *" $x "* ]] || die "unknown $noun $x (one of: ${all[*]})"
  done
  PGTENANT="$BUILD_DIR/pgtenant"
  [[ -x "$PGTENANT" ]] || die "no $PGTENANT: build the pgtenant target first (scripts/build pgtenant)"
  WORK="$BUILD_DIR/$subdir"
  mkdir -p "$WORK"
}
