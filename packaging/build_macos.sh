#!/usr/bin/env bash
# Build "Gemma Desk.app" and a disk image on an Apple Silicon Mac.
#   bash packaging/build_macos.sh            -> dist/Gemma Desk.app, dist/GemmaDesk-<version>.dmg
# Needs: the project venv (make run once), pyinstaller (pip install pyinstaller), Xcode CLT
# (iconutil, hdiutil, codesign). Set CODESIGN_IDENTITY to sign (ad-hoc "-" by default).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
VERSION=$($PY -c "import tomllib;print(tomllib.load(open('pyproject.toml','rb'))['project']['version'])")
BUILD=packaging/build
mkdir -p "$BUILD/AppIcon.iconset"
# App icon: render the SVG at every size macOS wants, then pack an .icns.
for size in 16 32 64 128 256 512; do
  QT_QPA_PLATFORM=offscreen $PY - "$size" <<'PY'
import sys
from PySide6.QtGui import QGuiApplication, QIcon
app = QGuiApplication([])
size = int(sys.argv[1])
icon = QIcon("assets/icons/app-icon.svg")
icon.pixmap(size, size).save(f"packaging/build/AppIcon.iconset/icon_{size}x{size}.png")
icon.pixmap(size * 2, size * 2).save(f"packaging/build/AppIcon.iconset/icon_{size}x{size}@2x.png")
PY
done
iconutil -c icns "$BUILD/AppIcon.iconset" -o "$BUILD/AppIcon.icns"
$PY -m PyInstaller --noconfirm --clean --distpath dist --workpath "$BUILD/pyinstaller" packaging/gemma_desk.spec
codesign --force --deep --sign "${CODESIGN_IDENTITY:--}" "dist/Gemma Desk.app"
# Disk image with the app and a link to /Applications.
STAGE="$BUILD/dmg"
rm -rf "$STAGE" && mkdir -p "$STAGE"
cp -R "dist/Gemma Desk.app" "$STAGE/"
ln -s /Applications "$STAGE/Applications"
hdiutil create -volname "Gemma Desk" -srcfolder "$STAGE" -ov -format UDZO "dist/GemmaDesk-$VERSION.dmg"
"dist/Gemma Desk.app/Contents/MacOS/Gemma Desk" --smoke-test
echo "built dist/GemmaDesk-$VERSION.dmg"
