#!/usr/bin/env bash
# Build the frozen Linux app from packaging/gemma_desk.spec (`make package` runs this):
#   dist/gemma-desk/                                  one folder; run dist/gemma-desk/gemma-desk
#   dist/gemma-desk-<version>-linux-<arch>.tar.gz     the same folder, packed
# Then `make check-package` runs it from outside the source tree (packaging/check_frozen.py).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
VERSION=$("$PY" -c "import tomllib;print(tomllib.load(open('pyproject.toml','rb'))['project']['version'])")
ARCHIVE="dist/gemma-desk-$VERSION-linux-$(uname -m).tar.gz"
start=$(date +%s)
"$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
  --distpath dist --workpath build/pyinstaller packaging/gemma_desk.spec
built=$(date +%s)
tar -C dist --owner=0 --group=0 --numeric-owner -czf "$ARCHIVE" gemma-desk
done=$(date +%s)
echo "frozen app: dist/gemma-desk ($(du -sm dist/gemma-desk | cut -f1) MiB)," \
  "$ARCHIVE ($(du -m "$ARCHIVE" | cut -f1) MiB)"
echo "build time: PyInstaller $((built - start)) s, archive $((done - built)) s"
