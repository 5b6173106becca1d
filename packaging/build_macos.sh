#!/usr/bin/env bash
# Build, sign and package Gemma Desk on an Apple Silicon Mac (`make package` runs this there):
#   dist/Gemma Desk.app and dist/GemmaDesk-<version>.dmg
# Unattended: every choice comes from the environment (docs/PACKAGING.md).
#   CODESIGN_IDENTITY  e.g. "Developer ID Application: Name (TEAMID)": sign the app and the disk
#                      image with it, the hardened runtime and a secure timestamp. Unset: an
#                      ad-hoc signature (the app runs on this Mac; Gatekeeper blocks it elsewhere).
#   NOTARY_PROFILE     a notarytool keychain profile (`xcrun notarytool store-credentials`), or
#   NOTARY_KEY, NOTARY_KEY_ID, NOTARY_ISSUER   an App Store Connect API key (.p8 file, its id,
#                      the issuer id). Either one: notarize the .dmg and staple the ticket
#                      (needs CODESIGN_IDENTITY). Neither: notarization is skipped, with a message.
#   PY                 Python with the packaging extra (default .venv/bin/python)
#   PYINSTALLER        the PyInstaller command (default: $PY -m PyInstaller)
# Needs Xcode's command-line tools: codesign, hdiutil, iconutil, xcrun (notarytool, stapler).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
for tool in codesign hdiutil iconutil xcrun; do
  if ! command -v "$tool" >/dev/null; then
    echo "error: $tool not found: build on a Mac with Xcode's command-line tools" \
      "(xcode-select --install)" >&2
    exit 2
  fi
done
VERSION=$("$PY" -c "import tomllib;print(tomllib.load(open('pyproject.toml','rb'))['project']['version'])")
APP="dist/Gemma Desk.app"
DMG="dist/GemmaDesk-$VERSION.dmg"
BUILD=packaging/build
ENTITLEMENTS=packaging/entitlements.plist
IDENTITY=${CODESIGN_IDENTITY:-}

notary=()
if [ -n "${NOTARY_PROFILE:-}" ]; then
  notary=(--keychain-profile "$NOTARY_PROFILE")
elif [ -n "${NOTARY_KEY:-}" ] && [ -n "${NOTARY_KEY_ID:-}" ] && [ -n "${NOTARY_ISSUER:-}" ]; then
  notary=(--key "$NOTARY_KEY" --key-id "$NOTARY_KEY_ID" --issuer "$NOTARY_ISSUER")
fi
if [ ${#notary[@]} -gt 0 ] && [ -z "$IDENTITY" ]; then
  echo "error: notarization needs a Developer ID signature: set CODESIGN_IDENTITY" >&2
  exit 2
fi

echo "== icon"
rm -rf "$BUILD/AppIcon.iconset" && mkdir -p "$BUILD/AppIcon.iconset"
QT_QPA_PLATFORM=offscreen "$PY" - "$BUILD/AppIcon.iconset" <<'PY'
import sys
from PySide6.QtGui import QGuiApplication, QIcon
app = QGuiApplication([])
icon = QIcon("assets/icons/app-icon.svg")
for size in (16, 32, 64, 128, 256, 512):
    for scale, suffix in ((1, ""), (2, "@2x")):
        path = f"{sys.argv[1]}/icon_{size}x{size}{suffix}.png"
        if not icon.pixmap(size * scale, size * scale).save(path):
            raise SystemExit(f"could not render {path}")
PY
iconutil -c icns "$BUILD/AppIcon.iconset" -o "$BUILD/AppIcon.icns"

echo "== app bundle"
if [ -n "${PYINSTALLER:-}" ]; then
  "$PYINSTALLER" --noconfirm --clean --distpath dist --workpath "$BUILD/pyinstaller" \
    packaging/gemma_desk.spec
else
  "$PY" -m PyInstaller --noconfirm --clean --distpath dist --workpath "$BUILD/pyinstaller" \
    packaging/gemma_desk.spec
fi
"$PY" - "$APP/Contents/Info.plist" "$VERSION" <<'PY'
import plistlib, sys
plist = plistlib.load(open(sys.argv[1], "rb"))
assert plist["CFBundleShortVersionString"] == sys.argv[2], plist["CFBundleShortVersionString"]
for key in ("NSMicrophoneUsageDescription", "NSCameraUsageDescription", "CFBundleDocumentTypes"):
    assert plist.get(key), f"Info.plist lacks {key}"
PY
# MLX looks for mlx.metallib beside the libmlx.dylib it was loaded from. PyInstaller also links
# libmlx.dylib at the top of Frameworks; should it be loaded through that link, the Metal
# library must be found there too.
FRAMEWORKS="$APP/Contents/Frameworks"
if [ -L "$FRAMEWORKS/libmlx.dylib" ] && [ ! -e "$FRAMEWORKS/mlx.metallib" ]; then
  ln -s "$(dirname "$(readlink "$FRAMEWORKS/libmlx.dylib")")/mlx.metallib" "$FRAMEWORKS/mlx.metallib"
fi

echo "== signature"
if [ -n "$IDENTITY" ]; then
  codesign --force --deep --options runtime --timestamp --entitlements "$ENTITLEMENTS" \
    --sign "$IDENTITY" "$APP"
else
  echo "CODESIGN_IDENTITY is not set: signing ad hoc (runs on this Mac only; Gatekeeper" \
    "blocks it elsewhere)."
  codesign --force --deep --entitlements "$ENTITLEMENTS" --sign - "$APP"
fi
codesign --verify --deep --strict --verbose=2 "$APP"

echo "== checks (the signed app, copied outside the source tree)"
# --version, the window, a model turn with an image and audio on Metal, the API server.
"$PY" packaging/check_frozen.py "$APP"

echo "== disk image"
STAGE="$BUILD/dmg"
rm -rf "$STAGE" "$DMG" && mkdir -p "$STAGE"
cp -R "$APP" "$STAGE/"
ln -s /Applications "$STAGE/Applications"
hdiutil create -volname "Gemma Desk $VERSION" -srcfolder "$STAGE" -fs HFS+ -format UDZO -ov "$DMG"
if [ -n "$IDENTITY" ]; then
  codesign --force --timestamp --sign "$IDENTITY" "$DMG"
fi

echo "== notarization"
if [ ${#notary[@]} -gt 0 ]; then
  result=$(xcrun notarytool submit "$DMG" "${notary[@]}" --wait --output-format json)
  read -r submission status < <("$PY" -c \
    'import json,sys; r=json.load(sys.stdin); print(r["id"], r["status"])' <<<"$result")
  if [ "$status" != "Accepted" ]; then
    echo "error: notarization ended '$status'; Apple's log follows" >&2
    xcrun notarytool log "$submission" "${notary[@]}" >&2 || true
    exit 1
  fi
  xcrun stapler staple "$DMG"
  xcrun stapler validate "$DMG"
else
  echo "No notarization credentials (NOTARY_PROFILE, or NOTARY_KEY + NOTARY_KEY_ID +" \
    "NOTARY_ISSUER): skipped. Gatekeeper will warn on other Macs."
fi
echo "built $DMG ($(du -sh "$APP" | cut -f1) app, $(du -h "$DMG" | cut -f1) disk image)"
