#!/usr/bin/env bash
# Installs the pinned npm packages of the Google-compatibility tests (tests/node), when present.
set -euo pipefail
dir="$(dirname "$0")/../tests/node"
[ -f "$dir/package-lock.json" ] || exit 0
if [ -d "$dir/node_modules" ] && [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
  exit 0
fi
(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
