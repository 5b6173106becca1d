"""packaging/check_frozen.py's own parts: its inputs are real media, its environment is a
user's, and it finds the executable in each form the app ships in. (CI runs the checks
themselves on the real build.)"""

from __future__ import annotations

import importlib.util
import plistlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def check_frozen():
    spec = importlib.util.spec_from_file_location(
        "check_frozen", ROOT / "packaging" / "check_frozen.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_picture_is_a_valid_png(check_frozen, tmp_path):
    with Image.open(check_frozen.write_png(tmp_path / "p.png", 64, 48)) as image:
        image.load()
        assert (image.format, image.mode, image.size) == ("PNG", "RGB", (64, 48))
        assert len(np.unique(np.asarray(image).reshape(-1, 3), axis=0)) > 10  # a gradient


def test_the_tone_is_a_one_second_440_hz_wav(check_frozen, tmp_path):
    samples, rate = soundfile.read(check_frozen.write_wav(tmp_path / "t.wav"))
    assert (rate, len(samples)) == (16_000, 16_000)
    spectrum = np.abs(np.fft.rfft(samples))
    assert np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()] == pytest.approx(440, abs=2)


def test_the_app_runs_with_a_users_environment_not_the_builds(check_frozen, tmp_path):
    env = check_frozen.clean_environment(tmp_path)
    assert sys.prefix not in env["PATH"]
    assert not {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"} & set(env)
    assert env["GEMMA_DESK_DATA_DIR"].startswith(str(tmp_path))


def test_the_executable_is_found_in_an_archive(check_frozen, tmp_path):
    folder = tmp_path / "build" / "gemma-desk"
    folder.mkdir(parents=True)
    (folder / "gemma-desk").write_text("#!/bin/sh\n")
    archive = tmp_path / "app.tar.gz"
    subprocess.run(["tar", "-czf", str(archive), "-C", str(tmp_path / "build"), "gemma-desk"],
                   check=True)  # fmt: skip
    executable = check_frozen.place(archive, tmp_path / "unpacked")
    assert executable == tmp_path / "unpacked" / "gemma-desk" / "gemma-desk"


def test_the_executable_is_found_in_a_mac_bundle_by_its_plist(check_frozen, tmp_path):
    contents = tmp_path / "Gemma Desk.app" / "Contents"
    (contents / "MacOS").mkdir(parents=True)
    (contents / "MacOS" / "Gemma Desk").write_text("app")
    (contents / "Info.plist").write_bytes(plistlib.dumps({"CFBundleExecutable": "Gemma Desk"}))
    executable = check_frozen.place(tmp_path / "Gemma Desk.app", tmp_path / "copy")
    assert executable == tmp_path / "copy" / "Gemma Desk.app" / "Contents" / "MacOS" / "Gemma Desk"


def test_nothing_to_check_says_to_build_first(check_frozen, tmp_path, capsys):
    assert check_frozen.main([str(tmp_path / "missing.tar.gz")]) == 2
    assert "make package" in capsys.readouterr().err
