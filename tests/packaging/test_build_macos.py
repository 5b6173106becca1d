"""packaging/build_macos.sh as a dry run: stand-ins for the Mac tools record every call.

The script runs for real (icon rendering, the Info.plist check, disk-image staging) in a copy
of the files it reads; `codesign`, `hdiutil`, `iconutil`, `xcrun` (notarytool, stapler),
PyInstaller and packaging/check_frozen.py (which CI runs for real on the Linux build) are
stand-ins that log their arguments. The stand-in PyInstaller runs the real spec
(tests/packaging/spec_runner.py) and writes the Info.plist it declares into a bundle laid out
as PyInstaller lays out MLX.
"""

from __future__ import annotations

import json
import os
import plistlib
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
APP = "dist/Gemma Desk.app"
DMG = f"dist/GemmaDesk-{VERSION}.dmg"
IDENTITY = "Developer ID Application: Example Maker (TEAM123456)"
STAND_INS = ("codesign", "hdiutil", "iconutil", "xcrun", "pyinstaller")
CHECK = ["check_frozen.py", APP]

STAND_IN = """#!{python}
import json, os, plistlib, sys
from pathlib import Path

tool, args = Path(sys.argv[0]).name, sys.argv[1:]
with open(os.environ["STAND_IN_LOG"], "a") as log:
    log.write(json.dumps([tool, *args]) + "\\n")
if tool == "iconutil":
    Path(args[args.index("-o") + 1]).write_bytes(b"icns")
elif tool == "hdiutil" and args[0] == "create":
    Path(args[-1]).write_bytes(b"disk image")
elif tool == "xcrun" and args[:2] == ["notarytool", "submit"]:
    status = os.environ.get("STAND_IN_NOTARY_STATUS", "Accepted")
    print(json.dumps({{"id": "submission-1", "status": status}}))
elif tool == "pyinstaller":
    sys.path.insert(0, {root!r})
    from tests.packaging.spec_runner import run_spec

    bundle = run_spec("darwin", Path(args[-1]).resolve()).kwargs("BUNDLE")
    contents = Path(args[args.index("--distpath") + 1]) / bundle["name"] / "Contents"
    (contents / "MacOS").mkdir(parents=True)
    plist = {{"CFBundleExecutable": "Gemma Desk", "CFBundleIdentifier": bundle["bundle_identifier"],
             "CFBundleShortVersionString": bundle["version"], **bundle["info_plist"]}}
    (contents / "Info.plist").write_bytes(plistlib.dumps(plist))
    (contents / "MacOS" / "Gemma Desk").write_bytes(b"app")
    mlx = contents / "Frameworks" / "mlx" / "lib"
    mlx.mkdir(parents=True)
    (mlx / "libmlx.dylib").write_bytes(b"library")
    (mlx / "mlx.metallib").write_bytes(b"kernels")
    (contents / "Frameworks" / "libmlx.dylib").symlink_to("mlx/lib/libmlx.dylib")
"""


def dry_run(tmp_path: Path):
    """A runner of the script in a copy of what it reads, the stand-ins first on PATH."""
    tree = tmp_path / "tree"
    for relative in ("packaging/build_macos.sh", "packaging/gemma_desk.spec",
                     "packaging/entitlements.plist", "pyproject.toml", "assets/icons/app-icon.svg"):  # fmt: skip
        (tree / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / relative, tree / relative)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = STAND_IN.format(python=sys.executable, root=str(ROOT))
    for tool in STAND_INS:
        (bin_dir / tool).write_text(stand_in)
        (bin_dir / tool).chmod(0o755)
    (tree / "packaging" / "check_frozen.py").write_text(stand_in)
    log = tmp_path / "calls.jsonl"

    def run(**env: str) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
        environment = {
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "HOME": str(tmp_path),
            "PY": sys.executable,
            "PYINSTALLER": str(bin_dir / "pyinstaller"),
            "STAND_IN_LOG": str(log),
            **env,
        }
        result = subprocess.run(["bash", str(tree / "packaging" / "build_macos.sh")], env=environment,
                                capture_output=True, text=True, timeout=300)  # fmt: skip
        calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return result, calls

    run.tree = tree
    return run


@pytest.fixture
def mac_build(tmp_path: Path):
    return dry_run(tmp_path)


@pytest.fixture(scope="module")
def unsigned_build(tmp_path_factory: pytest.TempPathFactory):
    """One run without credentials: (result, calls, the tree it built in)."""
    run = dry_run(tmp_path_factory.mktemp("mac-build"))
    return (*run(), run.tree)


def test_without_credentials_the_app_is_signed_ad_hoc_and_notarization_is_skipped(unsigned_build):
    result, calls, _ = unsigned_build
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls == [
        ["iconutil", "-c", "icns", "packaging/build/AppIcon.iconset", "-o", "packaging/build/AppIcon.icns"],
        ["pyinstaller", "--noconfirm", "--clean", "--distpath", "dist",
         "--workpath", "packaging/build/pyinstaller", "packaging/gemma_desk.spec"],
        ["codesign", "--force", "--deep", "--entitlements", "packaging/entitlements.plist",
         "--sign", "-", APP],
        ["codesign", "--verify", "--deep", "--strict", "--verbose=2", APP],
        CHECK,
        ["hdiutil", "create", "-volname", f"Gemma Desk {VERSION}", "-srcfolder", "packaging/build/dmg",
         "-fs", "HFS+", "-format", "UDZO", "-ov", DMG],
    ]  # fmt: skip
    assert "CODESIGN_IDENTITY is not set: signing ad hoc" in result.stdout
    assert "No notarization credentials" in result.stdout
    assert "skipped" in result.stdout


def test_with_an_identity_and_a_profile_it_signs_hardened_notarizes_and_staples(mac_build):
    result, calls = mac_build(CODESIGN_IDENTITY=IDENTITY, NOTARY_PROFILE="gemma-notary")
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls[2:] == [
        ["codesign", "--force", "--deep", "--options", "runtime", "--timestamp",
         "--entitlements", "packaging/entitlements.plist", "--sign", IDENTITY, APP],
        ["codesign", "--verify", "--deep", "--strict", "--verbose=2", APP],
        CHECK,
        ["hdiutil", "create", "-volname", f"Gemma Desk {VERSION}", "-srcfolder", "packaging/build/dmg",
         "-fs", "HFS+", "-format", "UDZO", "-ov", DMG],
        ["codesign", "--force", "--timestamp", "--sign", IDENTITY, DMG],
        ["xcrun", "notarytool", "submit", DMG, "--keychain-profile", "gemma-notary", "--wait",
         "--output-format", "json"],
        ["xcrun", "stapler", "staple", DMG],
        ["xcrun", "stapler", "validate", DMG],
    ]  # fmt: skip


def test_an_api_key_notarizes_without_a_keychain_profile(mac_build):
    result, calls = mac_build(CODESIGN_IDENTITY=IDENTITY, NOTARY_KEY="/keys/AuthKey_ABC.p8",
                              NOTARY_KEY_ID="ABC", NOTARY_ISSUER="issuer-uuid")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    submit = next(call for call in calls if call[:3] == ["xcrun", "notarytool", "submit"])
    assert submit[4:10] == ["--key", "/keys/AuthKey_ABC.p8", "--key-id", "ABC", "--issuer",
                            "issuer-uuid"]  # fmt: skip


def test_a_rejected_submission_prints_apples_log_and_fails_before_stapling(mac_build):
    result, calls = mac_build(CODESIGN_IDENTITY=IDENTITY, NOTARY_PROFILE="gemma-notary",
                              STAND_IN_NOTARY_STATUS="Invalid")  # fmt: skip
    assert result.returncode == 1
    assert "notarization ended 'Invalid'" in result.stderr
    assert calls[-1] == ["xcrun", "notarytool", "log", "submission-1", "--keychain-profile",
                         "gemma-notary"]  # fmt: skip
    assert not any(call[:2] == ["xcrun", "stapler"] for call in calls)


def test_notarization_without_an_identity_stops_before_building(mac_build):
    result, calls = mac_build(NOTARY_PROFILE="gemma-notary")
    assert result.returncode == 2
    assert "set CODESIGN_IDENTITY" in result.stderr
    assert calls == []


def test_the_disk_image_holds_the_app_and_a_link_to_applications(unsigned_build):
    result, _, tree = unsigned_build
    assert result.returncode == 0, result.stderr
    stage = tree / "packaging" / "build" / "dmg"
    assert (stage / "Gemma Desk.app" / "Contents" / "Info.plist").is_file()
    assert os.readlink(stage / "Applications") == "/Applications"


def test_the_icon_set_has_every_size_macos_asks_for(unsigned_build):
    result, _, tree = unsigned_build
    assert result.returncode == 0, result.stderr
    iconset = tree / "packaging" / "build" / "AppIcon.iconset"
    names = {p.name for p in iconset.iterdir()}
    for size in (16, 32, 128, 256, 512):
        assert {f"icon_{size}x{size}.png", f"icon_{size}x{size}@2x.png"} <= names


def test_the_metal_library_is_found_beside_either_path_to_libmlx(unsigned_build):
    result, _, tree = unsigned_build
    assert result.returncode == 0, result.stderr
    frameworks = tree / APP / "Contents" / "Frameworks"
    assert (frameworks / "mlx.metallib").read_bytes() == b"kernels"
    assert (frameworks / "mlx.metallib").is_symlink()  # a link, not a second copy


def test_the_bundle_the_spec_declares_passes_the_scripts_plist_check(unsigned_build):
    result, _, tree = unsigned_build
    assert result.returncode == 0, result.stderr
    plist = plistlib.loads((tree / APP / "Contents" / "Info.plist").read_bytes())
    assert plist["CFBundleShortVersionString"] == VERSION


@pytest.mark.skipif(shutil.which("codesign") is not None, reason="Xcode's tools are installed here")
def test_without_the_mac_tools_it_says_what_it_needs(tmp_path):
    result = subprocess.run(["bash", str(ROOT / "packaging" / "build_macos.sh")],
                            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2
    assert "Xcode's command-line tools" in result.stderr
