#!/usr/bin/env bash
# Fails when the committed dist/ does not match what its sources build to.
set -euo pipefail
cd "$(dirname "$0")"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
./build.sh "$tmp" > /dev/null
status=0
for f in index.html app.js app.css; do
  if [ ! -f "dist/$f" ]; then
    echo "check.sh: dist/$f is missing: run crates/control/dashboard/build.sh and commit dist/" >&2
    status=1
  elif ! cmp -s "$tmp/$f" "dist/$f"; then
    echo "check.sh: dist/$f does not match its sources: run crates/control/dashboard/build.sh and commit dist/" >&2
    status=1
  fi
done
extra="$(cd dist && ls -A | grep -vxE 'index.html|app.js|app.css' || true)"
if [ -n "$extra" ]; then
  echo "check.sh: unexpected files in dist/: $extra" >&2
  status=1
fi
[ "$status" = 0 ] && echo "check.sh: dist/ matches its sources"
exit "$status"
