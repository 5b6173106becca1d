"""The tool registry: schemas from typed functions, validation, execution."""

from __future__ import annotations

import json
import threading
from typing import Literal

import pytest

from app.tools.registry import ToolError, ToolRegistry, schema_errors, tool_from_function
from mlx_model.events import ToolCall


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


def test_a_tool_needing_consent_is_refused_when_nobody_can_be_asked():
    ran = []
    registry = ToolRegistry()

    @registry.register(requires_consent=True)
    def delete_everything(path: str) -> str:
        """Delete a folder."""
        ran.append(path)
        return "gone"

    result = registry.execute(ToolCall("delete_everything", {"path": "/"}))
    assert ran == [] and result.result is None
    assert "needs the user's consent" in result.error


def test_a_huge_result_is_cut_and_says_so():
    registry = ToolRegistry(max_result_chars=1000)

    @registry.register
    def dump() -> dict:
        """Return a lot."""
        return {"rows": ["x" * 100] * 20_000}

    @registry.register
    def small() -> dict:
        """Return a little."""
        return {"ok": True}

    big = registry.execute(ToolCall("dump", {}))
    assert isinstance(big.result, str) and len(big.result) < 1200
    assert big.result.startswith('{"rows": ["xxx')
    total = len(json.dumps({"rows": ["x" * 100] * 20_000}))
    assert f"truncated: the tool returned {total:,} characters; only the first 1,000" in big.result
    assert registry.execute(ToolCall("small", {})).result == {"ok": True}


def test_a_huge_error_message_is_cut_too():
    registry = ToolRegistry(max_result_chars=100)

    @registry.register
    def fail() -> None:
        """Fail loudly."""
        raise RuntimeError("e" * 10_000)

    error = registry.execute(ToolCall("fail", {})).error
    assert len(error) < 200 and "truncated" in error


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
