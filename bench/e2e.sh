#!/usr/bin/env bash
# End-to-end benchmark: pgbench directly, through PgBouncer and through pgtenant in one run,
# using the shared harness (../shared/bench/compare.sh, read-only; results go elsewhere).
#
#   bench/e2e.sh [SCENARIO] [OUT_DIR]
#
# Scenarios (docs/benchmarks.md lists the figures each produced):
#   main      select-only and TPC-B, simple and extended protocol, 50 and 1000 clients, plus the
#             10,000 idle clients memory phase (default)
#   prepared  select-only, -M simple / extended / prepared at 500 clients (PgBouncer 1.18
#             cannot pool -M prepared: its row shows the failures)
#   tenancy   select-only at 500 clients through pgtenant with TENANCY=off, then TENANCY=on with
#             a tenant for every client (options=-c app.tenant_id=...): the cost of tenancy
#   storm     pgbench -C (a new SCRAM login per transaction), 100 clients
#   latency   one client, select-only: the latency each pooler adds
#   billing   select-only at 1000 clients through pgtenant, billing off then on (every
#             transaction metered into the usage ledger and reported to the local fake Stripe,
#             bench/pgtenant-with-billing.sh), ROUNDS (2) times: the cost of billing
# Any compare.sh variable may be set in the environment to override a scenario's.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
shared=${SHARED_BENCH:-$root/../shared/bench}
scenario=${1:-main}
out=${2:-/tmp/pgtenant-bench/$scenario-$(date +%Y%m%d-%H%M%S)}
bin=${PGTENANT_BIN:-$root/build/pgtenant}
[[ -x $bin ]] || { echo "e2e: build pgtenant first (scripts/build), or set PGTENANT_BIN" >&2; exit 1; }
[[ -x $shared/compare.sh ]] || { echo "e2e: $shared/compare.sh not found (set SHARED_BENCH)" >&2; exit 1; }

export PGTENANT_BIN=$bin PROXY_NAME=pgtenant OUT_DIR=$out
export PROXY_CMD="$shared/pgtenant-for-compare.sh {LISTEN_PORT} {BACKEND_PORT} {POOL_SIZE} {USER} {PASSWORD} {DB} {WORKDIR} {MAX_CLIENT_CONN}"
export PROXY_VERSION_CMD="$bin --version"
run() { (cd "$shared" && ./compare.sh); }

case $scenario in
  main)
    : "${CLIENTS:=50 1000}" "${WORKLOADS:=select tpcb}" "${PROTOCOLS:=simple extended}"
    export CLIENTS WORKLOADS PROTOCOLS
    run ;;
  prepared)
    : "${CLIENTS:=500}" "${WORKLOADS:=select}" "${PROTOCOLS:=simple extended prepared}"
    export CLIENTS WORKLOADS PROTOCOLS IDLE_CONNS=0
    run ;;
  tenancy)
    : "${CLIENTS:=500}"
    export CLIENTS WORKLOADS=select PROTOCOLS=simple IDLE_CONNS=0 TARGETS=pgtenant
    OUT_DIR=$out/off TENANCY=off run
    OUT_DIR=$out/on TENANCY=on PGOPTIONS='-c app.tenant_id=t1' \
      PGBOUNCER_EXTRA='ignore_startup_parameters = options' run ;;
  storm)
    # The leading space keeps compare.sh's argument parser from taking -C for an option of its own.
    export CLIENTS=100 WORKLOADS=select PROTOCOLS=simple IDLE_CONNS=0 AUTH_TYPE=scram-sha-256 \
      PGBENCH_EXTRA=' -C'
    run ;;
  latency)
    export CLIENTS=1 WORKLOADS=select PROTOCOLS=simple IDLE_CONNS=0
    run ;;
  billing)
    # Every client acts for tenant t1 (TENANCY=on), so every transaction is metered.
    : "${CLIENTS:=1000}" "${PROTOCOLS:=simple}"
    export CLIENTS PROTOCOLS WORKLOADS=select IDLE_CONNS=0 TARGETS=pgtenant TENANCY=on \
      PGOPTIONS='-c app.tenant_id=t1' PGBOUNCER_EXTRA='ignore_startup_parameters = options' \
      REAL_PGTENANT_BIN=$bin PGTENANT_BIN=$here/pgtenant-with-billing.sh
    for round in $(seq 1 "${ROUNDS:-2}"); do
      for billing in off on; do
        OUT_DIR=$out/$round-$billing BILLING=$billing run
        # The fake Stripe the wrapper started for that run (its workdir is gone; find it by name).
        pkill -f "fake_stripe.py --port 0 --api-key sk_test_bench" 2>/dev/null || true
      done
    done ;;
  *) echo "e2e: unknown scenario $scenario (main, prepared, tenancy, storm, latency, billing)" >&2; exit 2 ;;
esac
echo "e2e: report in $out (report.md)"
