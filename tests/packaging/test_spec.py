"""The PyInstaller spec: what the macOS bundle declares, what a Linux build is, what is left out."""

from __future__ import annotations

import plistlib
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_bundle_plist_declares_what_macos_requires_of_the_app(run_spec):
    plist = run_spec("darwin").kwargs("BUNDLE")["info_plist"]
    # Without the usage strings macOS ends the app on its first microphone or camera use.
    assert "voice" in plist["NSMicrophoneUsageDescription"]
    assert "video" in plist["NSCameraUsageDescription"]
    assert plist["LSMinimumSystemVersion"] == "14.0"
    assert plist["LSArchitecturePriority"] == ["arm64"]
    assert plist["NSHighResolutionCapable"] is True


def test_bundle_opens_images_audio_video_pdf_and_text(run_spec):
    plist = run_spec("darwin").kwargs("BUNDLE")["info_plist"]
    types = {t for entry in plist["CFBundleDocumentTypes"] for t in entry["LSItemContentTypes"]}
    assert {"public.image", "public.audio", "public.movie", "com.adobe.pdf", "public.text"} <= types
    for entry in plist["CFBundleDocumentTypes"]:
        assert entry["CFBundleTypeRole"] == "Viewer"  # opens files, never claims to own them
        assert entry["LSHandlerRank"] == "Alternate"


def test_bundle_version_is_pyprojects(run_spec):
    run = run_spec("darwin")
    plist = run.kwargs("BUNDLE")["info_plist"]
    assert plist["CFBundleShortVersionString"] == VERSION
    assert plist["CFBundleVersion"] == VERSION
    assert run.kwargs("BUNDLE")["version"] == VERSION


def test_bundle_plist_is_a_valid_property_list(run_spec):
    plist = run_spec("darwin").kwargs("BUNDLE")["info_plist"]
    assert plistlib.loads(plistlib.dumps(plist)) == plist


def test_macos_executable_is_arm64_without_a_terminal(run_spec):
    exe = run_spec("darwin").kwargs("EXE")
    assert exe["target_arch"] == "arm64"
    assert exe["console"] is False
    assert exe["name"] == "Gemma Desk"


def test_linux_build_is_one_folder_named_like_the_command(run_spec):
    run = run_spec("linux")
    assert "BUNDLE" not in run.calls
    assert run.kwargs("EXE")["exclude_binaries"] is True  # one folder, not one file
    assert run.kwargs("EXE")["name"] == run.kwargs("COLLECT")["name"] == "gemma-desk"


def test_pytorch_transformers_models_and_test_tools_are_left_out(run_spec):
    excludes = set(run_spec("linux").kwargs("Analysis")["excludes"])
    assert {"torch", "torchvision", "pytest", "hypothesis"} <= excludes
    assert {"transformers.models.gemma4", "transformers.modeling_utils"} <= excludes
    assert "transformers.models.auto" not in excludes  # mlx-lm's tokenizer imports need it


def test_our_packages_are_collected_whole_but_the_torch_reference(run_spec):
    hidden = run_spec("linux").namespace["hiddenimports"]
    assert {"app.submodule", "ui.submodule", "mlx_model.submodule"} <= set(hidden)
    assert "mlx_model.testing.reference" not in hidden


def test_hook_metadata_of_unshipped_packages_and_qt_translations_are_dropped(run_spec):
    datas = {dest for dest, _, _ in run_spec("linux").namespace["a"].datas}
    assert "numpy-2.4.6.dist-info/METADATA" in datas
    assert "PySide6/Qt/plugins/platforms/libqxcb.so" in datas
    assert not any(d.startswith(("torch-", "pytest_timeout-")) for d in datas)
    assert not any("translations" in d for d in datas)


def test_version_metadata_and_assets_travel_with_the_app(run_spec):
    datas = run_spec("linux").kwargs("Analysis")["datas"]
    assert (str(ROOT / "pyproject.toml"), ".") in datas  # app/version.py reads it there
    assert (str(ROOT / "assets"), "assets") in datas
