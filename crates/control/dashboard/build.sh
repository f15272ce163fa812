#!/usr/bin/env bash
# Builds the dashboard's bundle: dist/index.html, dist/app.js, dist/app.css (embedded into
# `weft control` with include_bytes). Reproducible: the same sources give the same bytes.
#   ./build.sh            build into dist/
#   ./build.sh OUTDIR     build into OUTDIR (check.sh uses this)
set -euo pipefail
cd "$(dirname "$0")"
out="${1:-dist}"

if [ ! -x node_modules/.bin/esbuild ]; then
  npm ci --no-audit --no-fund
fi

mkdir -p "$out"
# main.js imports uPlot's CSS and src/style.css: esbuild writes them, in that order, to app.css.
node_modules/.bin/esbuild src/main.js \
  --bundle \
  --format=esm \
  --target=es2020 \
  --minify \
  --legal-comments=none \
  --log-level=warning \
  --outfile="$out/app.js"
cp index.html "$out/index.html"
for f in index.html app.js app.css; do
  [ -s "$out/$f" ] || { echo "build.sh: $out/$f is missing or empty" >&2; exit 1; }
done
echo "built $out/: $(wc -c < "$out/app.js") B app.js, $(wc -c < "$out/app.css") B app.css"
