"""The built-in tools: a calculator that only does arithmetic, the date, and reading a file
from a folder the user granted (confined to it)."""

from __future__ import annotations

import os
import time

import pytest

from app.tools.builtin import builtin_registry, calculator, current_datetime, make_read_text_file
from app.tools.registry import ToolError
from mlx_model.events import ToolCall

# --- built-in tools ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("2 ** 10", 1024),
        ("2^3", 8),
        ("-7 // 2", -4),
        ("sqrt(16) + abs(-2)", 6.0),
        ("round(pi, 2)", 3.14),
        ("max(1, 5, 3)", 5),
    ],
)
def test_calculator_evaluates_arithmetic(expression, value):
    assert calculator(expression)["result"] == pytest.approx(value)


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('true')",
        "open('x')",
        "(1).__class__",
        "[x for x in ()]",
        "lambda: 1",
        "a + 1",
        "'abc' * 3",
        "9 ** 9 ** 9",
        "factorial(100000)",
        "1 / 0",
        "1 +",
    ],
)
def test_calculator_refuses_anything_but_arithmetic(expression):
    with pytest.raises(ToolError):
        calculator(expression)


def test_current_datetime_reports_today():
    before = time.strftime("%Y-%m-%d")
    value = current_datetime()
    assert value["date"] in (before, time.strftime("%Y-%m-%d"))
    assert current_datetime("UTC")["timezone"] == "UTC"
    with pytest.raises(ToolError):
        current_datetime("Not/AZone")


@pytest.fixture
def granted(tmp_path):
    folder = tmp_path / "granted"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("hello notes", encoding="utf-8")
    (folder / "sub" / "deep.txt").write_text("deep", encoding="utf-8")
    (folder / "binary.bin").write_bytes(b"\xff\xfe\x00\x81" * 10)
    (tmp_path / "secret.txt").write_text("secret", encoding="utf-8")
    return folder


def test_read_text_file_reads_inside_the_granted_folder(granted):
    read = make_read_text_file([granted])
    assert read("notes.txt")["content"] == "hello notes"
    assert read("sub/deep.txt") == {"path": "sub/deep.txt", "content": "deep", "truncated": False}
    assert read(str(granted / "notes.txt"))["content"] == "hello notes"


@pytest.mark.parametrize("path", ["../secret.txt", "sub/../../secret.txt", "/etc/passwd"])
def test_read_text_file_refuses_paths_outside_the_folder(granted, path):
    with pytest.raises(ToolError, match="outside the shared folders"):
        make_read_text_file([granted])(path)


def test_read_text_file_does_not_follow_symlinks_out_of_the_folder(granted):
    os.symlink(granted.parent / "secret.txt", granted / "link.txt")
    with pytest.raises(ToolError, match="outside"):
        make_read_text_file([granted])("link.txt")


def test_read_text_file_refuses_binary_and_truncates_large_files(granted):
    read = make_read_text_file([granted], max_bytes=5)
    with pytest.raises(ToolError, match="not a UTF-8 text file"):
        read("binary.bin")
    assert read("notes.txt") == {"path": "notes.txt", "content": "hello", "truncated": True}


def test_builtin_registry_offers_file_reading_only_when_a_folder_is_granted(granted):
    assert set(builtin_registry().tools) == {"current_datetime", "calculator"}
    registry = builtin_registry([granted], consent=lambda call: True)
    assert "read_text_file" in registry
    result = registry.execute(ToolCall("read_text_file", {"path": "notes.txt"}))
    assert result.result["content"] == "hello notes"
    # Reading a file needs consent: with no way to ask, it is refused.
    refused = builtin_registry([granted]).execute(ToolCall("read_text_file", {"path": "notes.txt"}))
    assert refused.result is None and "consent" in refused.error
