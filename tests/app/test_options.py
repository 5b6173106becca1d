"""Generation options: one object, one set of limits and defaults, checked when it is made."""

from __future__ import annotations

import pytest

from app.options import (
    DEFAULTS,
    IMAGE_BUDGETS,
    LIMITS,
    FunctionChoice,
    GenerationOptions,
    OptionError,
    ResponseFormat,
)
from mlx_model.processing.image import SUPPORTED_BUDGETS


def test_defaults_leave_sampling_to_the_model():
    assert DEFAULTS.sampling() == {}
    assert DEFAULTS.max_tokens == 4096 and DEFAULTS.context_policy == "error"


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("temperature", 2.5),
        ("temperature", -0.1),
        ("top_p", 0.0),
        ("top_k", -1),
        ("top_k", 2.5),
        ("min_p", 1.5),
        ("repetition_penalty", 0.0),
        ("seed", -1),
        ("seed", 2**64),
        ("max_tokens", 0),
        ("temperature", float("nan")),
        ("temperature", True),
        ("image_budget", 100),
        ("context_policy", "truncate"),
        ("enable_thinking", "false"),
        ("stop", ("",)),
    ],
)
def test_a_value_outside_its_rule_is_an_option_error_naming_the_option(name, bad):
    with pytest.raises(OptionError) as caught:
        GenerationOptions(**{name: bad})
    assert caught.value.name == name
    assert name in str(caught.value)


def test_the_rule_is_written_in_the_message():
    with pytest.raises(OptionError, match="at most 2"):
        GenerationOptions(temperature=3.0)


def test_integral_floats_become_ints_and_ints_become_floats():
    options = GenerationOptions(top_k=40.0, temperature=1, seed=7.0)
    assert options.top_k == 40 and type(options.top_k) is int
    assert options.temperature == 1.0 and type(options.temperature) is float


def test_a_single_stop_string_becomes_a_tuple():
    assert GenerationOptions(stop="END").stop == ("END",)


def test_merged_applies_only_the_values_that_are_set():
    base = GenerationOptions(temperature=0.7, max_tokens=100)
    merged = base.merged({"temperature": None, "top_k": 20})
    assert (merged.temperature, merged.top_k, merged.max_tokens) == (0.7, 20, 100)


def test_replace_refuses_an_unknown_option():
    with pytest.raises(OptionError, match="no generation option"):
        DEFAULTS.replace(temprature=1.0)


def test_image_budgets_are_the_processors_own():
    assert IMAGE_BUDGETS == SUPPORTED_BUDGETS


def test_every_numeric_field_has_one_limit():
    assert set(LIMITS) == {
        "max_tokens", "temperature", "top_p", "top_k", "min_p", "repetition_penalty", "seed"
    }  # fmt: skip


def test_the_answer_format_is_an_option_checked_like_the_others():
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    options = GenerationOptions(response_format=ResponseFormat.json_schema(schema, name="n"))
    assert options.constrained and not options.forces_tool_call
    assert options.response_format.openai()["json_schema"] == {
        "name": "n",
        "schema": schema,
        "strict": True,
    }
    with pytest.raises(OptionError) as caught:
        ResponseFormat("json_schema")
    assert caught.value.name == "response_format"
    with pytest.raises(OptionError):
        GenerationOptions(response_format={"type": "json_object"})


def test_tool_choice_is_auto_none_required_or_a_named_function():
    assert GenerationOptions(tool_choice="required").forces_tool_call
    assert GenerationOptions(tool_choice=FunctionChoice("f")).forces_tool_call
    assert not GenerationOptions(tool_choice="none").constrained
    for bad in ("any", {"type": "function"}):
        with pytest.raises(OptionError):
            GenerationOptions(tool_choice=bad)
    with pytest.raises(OptionError) as caught:
        FunctionChoice("")
    assert caught.value.name == "tool_choice"
    with pytest.raises(OptionError) as caught:
        GenerationOptions(parallel_tool_calls="no")
    assert caught.value.name == "parallel_tool_calls"
