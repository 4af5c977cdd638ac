#!/usr/bin/env bash
# Stands in for the pgtenant binary in bench/e2e.sh's "billing" scenario: the shared launcher
# (../shared/bench/pgtenant-for-compare.sh) writes its config and execs "$PGTENANT_BIN --config
# CFG"; with PGTENANT_BIN pointing here, this adds a `billing:` section to CFG (every meter billed,
# every tenant a customer, 60 s windows, the ledger in the config's directory), starts the local
# Stripe-compatible server tests/stripe/fake_stripe.py on 127.0.0.1 for it to report to, and execs
# the real binary, REAL_PGTENANT_BIN. BILLING=off execs the real binary on the config unchanged.
# The fake's PID is written to CFG's directory (fake_stripe.pid) for the caller to stop; it also
# exits by itself after FAKE_STRIPE_SECONDS (900).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
real=${REAL_PGTENANT_BIN:?set REAL_PGTENANT_BIN to the pgtenant binary}
[[ ${1:-} == --config && -n ${2:-} ]] || { echo "pgtenant-with-billing: expected --config FILE" >&2; exit 2; }
cfg=$2
[[ ${BILLING:-on} == on ]] || exec "$real" --config "$cfg"

dir=$(dirname "$cfg")
key=sk_test_bench
portfile=$dir/fake_stripe.port
python3 "$root/tests/stripe/fake_stripe.py" --port 0 --api-key "$key" \
  --max-seconds "${FAKE_STRIPE_SECONDS:-900}" >"$portfile" 2>"$dir/fake_stripe.log" &
echo $! >"$dir/fake_stripe.pid"
for _ in $(seq 1 100); do [[ -s $portfile ]] && break; sleep 0.1; done
port=$(head -1 "$portfile")
[[ $port =~ ^[0-9]+$ ]] || { echo "pgtenant-with-billing: fake_stripe.py did not start" >&2; exit 1; }
cat >>"$cfg" <<YAML
billing:
  state_dir: $dir/billing
  window: 60s
  instance: bench
  api_base: "http://127.0.0.1:$port"
  api_key_env: BENCH_STRIPE_KEY
  max_requests_per_second: 1000
  default_customer: "cus_{tenant}"
  meters:
    server_ms: pgt_server_ms
    transactions: pgt_transactions
    queries: pgt_queries
    bytes_in: pgt_bytes_in
    bytes_out: pgt_bytes_out
YAML
export BENCH_STRIPE_KEY=$key
exec "$real" --config "$cfg"
