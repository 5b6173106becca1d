#!/usr/bin/env bash
# Linux smoke build: no .app can be built here, so prove what can be proven on Linux:
# 1. the project builds as a wheel; 2. the GUI starts from it, renders and quits
# (under Xvfb when xvfb-run is installed - apt-get install -y xvfb - else offscreen).
#   bash packaging/linux_smoke.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=build/linux-smoke
rm -rf "$OUT" && mkdir -p "$OUT"
$PY -m pip wheel --quiet --no-deps --no-build-isolation -w "$OUT" .
ls "$OUT"/*.whl
export GEMMA_DESK_DATA_DIR="$OUT/data" GEMMA_DESK_CONFIG_DIR="$OUT/config"
if command -v xvfb-run >/dev/null; then
  xvfb-run -a env QT_QPA_PLATFORM=xcb $PY -m app --smoke-test
else
  QT_QPA_PLATFORM=offscreen $PY -m app --smoke-test
fi
echo "linux smoke build: ok"
