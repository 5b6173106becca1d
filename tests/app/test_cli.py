"""The `gemma-desk` command: one entry point, subcommands, `python -m app` the same."""

from __future__ import annotations

import os
import subprocess
import sys

from app.cli import SUBCOMMANDS, main


def test_help_lists_every_subcommand(capsys):
    assert main(["--help"]) == 0
    printed = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in printed


def test_make_test_checkpoint_writes_a_loadable_folder(tmp_path, capsys):
    target = tmp_path / "tiny"
    assert main(["make-test-checkpoint", str(target), "--dtype", "float32"]) == 0
    assert (target / "config.json").is_file()
    assert (target / "model.safetensors").is_file()
    assert (target / "tokenizer.json").is_file()


def test_make_test_checkpoint_refuses_to_overwrite_a_folder_with_files(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["make-test-checkpoint", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().out
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_python_dash_m_app_is_the_same_command():
    result = subprocess.run(
        [sys.executable, "-m", "app", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "make-test-checkpoint" in result.stdout


def test_gui_with_a_missing_model_opens_the_first_run_screen_and_names_the_problem(tmp_path):
    # A fresh process: the GUI thread computes the download offer's memory plan while the
    # engine thread imports the model stack to load the (missing) folder. Both import
    # mlx/mlx-lm lazily, which once failed with Python's import `_DeadlockError`.
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "GEMMA_DESK_DATA_DIR": str(tmp_path / "data"),
        "GEMMA_DESK_CONFIG_DIR": str(tmp_path / "config"),
    }
    missing = tmp_path / "no-model-here"
    result = subprocess.run(
        [sys.executable, "-m", "app", "--smoke-test", "--model", str(missing)],
        capture_output=True, text=True, timeout=180, env=env,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "page=first-run" in output
    assert "no such model folder" in output
    assert "deadlock" not in output.lower()
