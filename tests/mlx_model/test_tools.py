"""The tool registry: schemas from typed functions, validation, execution, built-in tools."""

from __future__ import annotations

import os
import threading
import time
from typing import Literal

import pytest

from mlx_model.events import ToolCall
from mlx_model.tools import (
    ToolError,
    ToolRegistry,
    builtin_registry,
    calculator,
    current_datetime,
    make_read_text_file,
    schema_errors,
    tool_from_function,
)


def get_weather(
    city: str, unit: Literal["celsius", "fahrenheit"] = "celsius", days: int = 1
) -> dict:
    """Get the weather forecast for a city.

    Longer explanation that is not part of the description.

    Args:
        city: Name of the city.
        unit: Temperature unit.
        days: How many days
            to forecast.
    """
    return {"city": city, "unit": unit, "days": days}


def test_schema_is_derived_from_type_hints_and_docstring():
    tool = tool_from_function(get_weather)
    assert tool.name == "get_weather"
    assert tool.description == "Get the weather forecast for a city."
    params = tool.parameters
    assert params["type"] == "object"
    assert params["required"] == ["city"]
    assert params["properties"]["city"] == {"type": "string", "description": "Name of the city."}
    assert params["properties"]["unit"]["enum"] == ["celsius", "fahrenheit"]
    assert params["properties"]["days"]["type"] == "integer"
    assert params["properties"]["days"]["description"] == "How many days to forecast."
    assert tool.schema()["function"]["parameters"] is params


def test_optional_and_container_hints_map_to_json_schema():
    def f(tags: list[str], scores: dict[str, float], note: str | None = None) -> None:
        """F."""

    props = tool_from_function(f).parameters["properties"]
    assert props["tags"] == {"type": "array", "items": {"type": "string"}}
    assert props["scores"] == {"type": "object", "additionalProperties": {"type": "number"}}
    assert props["note"] == {"type": "string"}


def test_function_without_type_hints_is_rejected():
    def f(x):
        """F."""

    with pytest.raises(TypeError, match="type hint"):
        tool_from_function(f)


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ({}, "missing required property 'city'"),
        ({"city": 3}, "arguments.city: expected string"),
        ({"city": "Oslo", "unit": "kelvin"}, "is not one of"),
        ({"city": "Oslo", "days": "two"}, "arguments.days: expected integer"),
        ({"city": "Oslo", "colour": "red"}, "unexpected property 'colour'"),
    ],
)
def test_invalid_call_is_rejected_with_a_reason(arguments, fragment):
    registry = ToolRegistry()
    registry.register(get_weather)
    with pytest.raises(ToolError, match=fragment):
        registry.validate(ToolCall("get_weather", arguments))
    result = registry.execute(ToolCall("get_weather", arguments))
    assert not result.ok and fragment.split("'")[0] in result.error


def test_unknown_tool_is_reported_not_raised():
    result = ToolRegistry().execute(ToolCall("nope", {}))
    assert result.error is not None and "unknown tool 'nope'" in result.error
    assert result.response() == {"error": result.error}


def test_valid_call_runs_and_integral_floats_become_ints():
    registry = ToolRegistry()
    registry.register(get_weather)
    result = registry.execute(ToolCall("get_weather", {"city": "Oslo", "days": 3.0}))
    assert result.ok
    assert result.result == {"city": "Oslo", "unit": "celsius", "days": 3}
    assert isinstance(result.result["days"], int)


def test_a_failing_tool_becomes_an_error_result():
    registry = ToolRegistry()

    @registry.register
    def explode(x: int) -> int:
        """Explode."""
        raise RuntimeError("boom")

    result = registry.execute(ToolCall("explode", {"x": 1}))
    assert result.error == "RuntimeError: boom"


def test_parallel_calls_run_concurrently_and_keep_their_order():
    registry = ToolRegistry()
    barrier = threading.Barrier(3, timeout=5)

    @registry.register
    def wait(n: int) -> int:
        """Wait for the other calls (only possible when they run at the same time)."""
        barrier.wait()
        return n * 10

    calls = [ToolCall("wait", {"n": n}) for n in (1, 2, 3)]
    results = registry.execute_all(calls)
    assert [r.result for r in results] == [10, 20, 30]
    assert [r.call for r in results] == calls


def test_consent_is_asked_for_tools_that_need_it():
    asked = []
    registry = ToolRegistry(consent=lambda call: asked.append(call.name) or False)
    registry.register(get_weather, requires_consent=True)
    result = registry.execute(ToolCall("get_weather", {"city": "Oslo"}))
    assert asked == ["get_weather"]
    assert "declined" in result.error


def test_duplicate_names_are_refused():
    registry = ToolRegistry()
    registry.register(get_weather)
    with pytest.raises(ValueError, match="already registered"):
        registry.register(get_weather)


def test_schema_errors_accepts_a_matching_nested_value():
    schema = {
        "type": "object",
        "properties": {"xs": {"type": "array", "items": {"type": "integer"}}},
    }
    assert schema_errors({"xs": [1, 2]}, schema) == []
    assert schema_errors({"xs": [1, "a"]}, schema) == ["arguments.xs[1]: expected integer, got str"]


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
    registry = builtin_registry([granted])
    assert "read_text_file" in registry
    result = registry.execute(ToolCall("read_text_file", {"path": "notes.txt"}))
    assert result.result["content"] == "hello notes"
