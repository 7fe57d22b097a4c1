#!/usr/bin/env bash
# Compile contracts/ with the npm-pinned solcjs into lilypad_p2p/chain/artifacts/ (committed).
#   bash contracts/compile.sh           rewrite the artifacts
#   bash contracts/compile.sh --check   recompile into a temp dir; exit 1 if the committed ones differ
set -euo pipefail
cd "$(dirname "$0")"
ARTIFACTS=../lilypad_p2p/chain/artifacts
if [ ! -d node_modules/solc ]; then
  npm ci --silent --no-audit --no-fund
fi
if [ "${1:-}" = "--check" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  node compile.mjs "$tmp"
  if ! diff -r "$tmp" "$ARTIFACTS" >/dev/null; then
    echo "contracts/compile.sh --check: committed artifacts differ from a fresh compile;" >&2
    echo "run 'bash contracts/compile.sh' and commit lilypad_p2p/chain/artifacts/" >&2
    diff -r "$tmp" "$ARTIFACTS" | head -20 >&2 || true
    exit 1
  fi
  echo "contract artifacts up to date"
else
  node compile.mjs "$ARTIFACTS"
  echo "wrote $(ls "$ARTIFACTS" | tr '\n' ' ')to lilypad_p2p/chain/artifacts/"
fi
