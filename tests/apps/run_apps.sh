#!/usr/bin/env bash
# The application suite: each framework's and driver's exact SQL for naming a tenant (Prisma,
# PostgREST, Supabase, node-postgres, psycopg2, psycopg 3, asyncpg, PgJDBC), for a shared and a
# dedicated tenant on connections that name no tenant at login, run directly against PostgreSQL
# and through pgtenant with `require_tenant: true`. See tests/apps/README.md.
#
#   run_apps.sh BUILD_DIR [APP...]     APP: psycopg2 psycopg3 asyncpg jdbc node (default all)
#
# Uses the PostgreSQL fixture named by $PGTENANT_FIXTURE_ENV (as ctest gives it) or starts its own
# (tests/integration/pg_fixture.sh). Installs nothing (scripts/install-deps does). Prints one line
# per target, pattern and case, a last line "N passed, M failed"; exits 1 when anything failed.
#
# Environment: PGTENANT_APPS_TARGETS ("direct pgtenant"), PGTENANT_APPS_ONLY (comma-separated
# pattern names), PGTENANT_APPS_VERBOSE=1 (pgtenant -v), PGTENANT_APPS_REQUIRE_TENANT ("true";
# "false" shows what the forms do once the refusal of statements before a tenant is out of the way).
set -uo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
ALL_APPS=(psycopg2 psycopg3 asyncpg jdbc node)
TARGETS="${PGTENANT_APPS_TARGETS:-direct pgtenant}"
RUN_KILL=120  # seconds after which a program that did not end by itself is killed
PYTHON=/usr/bin/python3  # Debian's, where the python3-* driver packages live
JDBC_JAR=/usr/share/java/postgresql.jar
POOL_SIZE=3
REQUIRE_TENANT="${PGTENANT_APPS_REQUIRE_TENANT:-true}"

SUITE=run_apps
PGT_VERBOSE="${PGTENANT_APPS_VERBOSE:-}"
# die, log, the fixture, pgtenant's start and stop: shared with tests/drivers/run_drivers.sh.
# shellcheck source=tests/lib/suite.sh
source "$ROOT/tests/lib/suite.sh"

suite_args app apps "${ALL_APPS[@]}" -- "$@"
APPS=("${SELECTED[@]}")

# A tenant is named only by the application's SQL (no startup source carries one), every
# statement that needs a server before that is refused; tenant acme has a pool of its own.
write_config() {
  cat >"$WORK/pgtenant.yaml" <<CONF
listen:
  host: 127.0.0.1
  port: $PGT_PORT
metrics:
  port: 0
auth:
  type: scram-sha-256
  users:
    app:
      password: "app_pw"
      tenants: ["*"]
tenancy:
  variable: app.tenant_id
  sources: [parameter, options, user, set]
  default_pool: shared
  require_tenant: $REQUIRE_TENANT
tenants:
  acme:
    pool: acme
pools:
  shared:
    host: 127.0.0.1
    port: $PG_PORT
    database: app
    user: app_rls
    password: "app_rls_pw"
    mode: transaction
    size: $POOL_SIZE
  acme:
    host: 127.0.0.1
    port: $PG_PORT
    database: acme
    user: app_rls
    password: "app_rls_pw"
    mode: transaction
    size: $POOL_SIZE
timeouts:
  query_wait: 10s
  server_connect: 5s
CONF
}

prepare_app() {
  case "$1" in
    jdbc)
      mkdir -p "$WORK/jdbc"
      javac -nowarn -d "$WORK/jdbc" -cp "$JDBC_JAR" "$SCRIPT_DIR/jdbc/JdbcApps.java" \
        >"$WORK/javac.log" 2>&1 || { cat "$WORK/javac.log" >&2; return 1; }
      ;;
  esac
}

# app_cmd APP: the command line of an app's program, without the target arguments.
app_cmd() {
  case "$1" in
    psycopg2 | psycopg3 | asyncpg) echo "$PYTHON -B -u $SCRIPT_DIR/${1}_apps.py" ;;
    jdbc) echo "java -cp $WORK/jdbc:$JDBC_JAR JdbcApps" ;;
    node) echo "node $SCRIPT_DIR/node/apps.js" ;;
  esac
}

PASSED=0
FAILED=0

# run_one APP TARGET: TARGET is "direct" (PostgreSQL as app_rls, acme in its own database) or
# "pgtenant" (user app, every connection to the database name app, pgtenant routes by tenant).
run_one() {
  local app="$1" target="$2" port user password db_acme
  if [[ "$target" == direct ]]; then
    port="$PG_PORT" user=app_rls password=app_rls_pw db_acme=acme
  else
    port="$PGT_PORT" user=app password=app_pw db_acme=app
  fi
  local out="$WORK/$app-$target.out" rc
  local -a cmd only=()
  read -r -a cmd <<<"$(app_cmd "$app")"
  [[ -n "${PGTENANT_APPS_ONLY:-}" ]] && only=(--only "$PGTENANT_APPS_ONLY")
  NODE_PATH="$NODE_DIR/node_modules" timeout -k 10 "$RUN_KILL" "${cmd[@]}" --host 127.0.0.1 \
    --port "$port" --user "$user" --password "$password" --db-shared app --db-acme "$db_acme" \
    "${only[@]}" >"$out" 2>&1
  rc=$?
  local line ok fail
  while IFS= read -r line; do
    case "$line" in
      RESULT\ *) ;;
      *": ok") echo "$target: $line"; PASSED=$((PASSED + 1)) ;;
      *": FAIL: "*) echo "$target: $line"; FAILED=$((FAILED + 1)) ;;
      *) echo "$target: $app: $line" ;;
    esac
  done <"$out"
  ok="$(grep -c ': ok$' "$out")"
  fail="$(grep -c ': FAIL: ' "$out")"
  local problems=()
  [[ $rc -eq 124 || $rc -eq 137 ]] && problems+=("killed after ${RUN_KILL}s")
  grep -q '^RESULT ' "$out" || problems+=("no RESULT line (exit $rc)")
  [[ $rc -ne 0 && $fail -eq 0 ]] && problems+=("exit $rc with no failed pattern")
  if [[ "$target" == pgtenant ]]; then
    local status
    status="$(pgtenant_status)"
    [[ -z "$status" ]] || problems+=("$status")
  fi
  local p
  for p in "${problems[@]}"; do
    echo "$target: $app: FAIL: $p"
    FAILED=$((FAILED + 1))
  done
  log "$app $target: $ok ok, $fail failed (output $out)"
  if [[ "$target" == pgtenant && $((fail + ${#problems[@]})) -gt 0 ]]; then pgtenant_log_tail 10; fi
}

main() {
  local suite_start=$SECONDS a
  check_clients "${APPS[@]}"
  load_fixture
  log "PostgreSQL on port $PG_PORT; a fresh pgtenant (require_tenant: $REQUIRE_TENANT) for each app (logs $WORK/pgtenant-APP.log)"
  for a in "${APPS[@]}"; do
    if ! prepare_app "$a"; then
      echo "$a: FAIL: could not prepare the program"
      FAILED=$((FAILED + 1))
      continue
    fi
    if [[ " $TARGETS " == *" direct "* ]]; then run_one "$a" direct; fi
    if [[ " $TARGETS " == *" pgtenant "* ]]; then
      start_pgtenant "$a"
      run_one "$a" pgtenant
      stop_pgtenant
    fi
  done
  log "suite took $((SECONDS - suite_start))s"
  echo "$PASSED passed, $FAILED failed"
  [[ $FAILED -eq 0 ]]
}

main
