#!/usr/bin/env bash
# The driver suite's dependencies beyond Debian's packages (those are in scripts/install-deps,
# which calls this): node-postgres, installed with `npm ci` from the committed
# node/package-lock.json into tests/drivers/node/node_modules (ignored by git). Skipped when that
# lock file was installed already. Needs npm and the npm registry; no root.
set -euo pipefail

NODE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/node" && pwd)"
STAMP="$NODE_DIR/node_modules/.pgtenant-installed-lock.json"

if [[ -d "$NODE_DIR/node_modules/pg" ]] && cmp -s "$NODE_DIR/package-lock.json" "$STAMP"; then
  echo "install-deps: node-postgres present (tests/drivers/node/node_modules)"
  exit 0
fi
command -v npm >/dev/null || { echo "install-deps: npm is missing (Debian package npm)" >&2; exit 1; }
echo "install-deps: npm ci in tests/drivers/node"
(cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error)
cp "$NODE_DIR/package-lock.json" "$STAMP"
