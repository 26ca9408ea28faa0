#!/usr/bin/env bash
# Fails when docs/cli.md differs from what `moat help-markdown` prints (every command's --help).
set -euo pipefail
moat=$1 doc=$2
if ! diff -u "$doc" <("$moat" help-markdown) >/tmp/moat-cli-doc.diff; then
  echo "docs/cli.md is out of date with the CLI's --help; regenerate it with:" >&2
  echo "  $moat help-markdown > docs/cli.md" >&2
  head -50 /tmp/moat-cli-doc.diff >&2
  exit 1
fi
echo "docs/cli.md matches --help"
