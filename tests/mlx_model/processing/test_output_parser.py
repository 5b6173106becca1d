"""The streaming output parser: answer/thinking split, tool calls, stop reasons, and round trips."""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlx_model.events import TextDelta, ThinkingDelta, ToolCallEvent
from mlx_model.processing import OutputParser, render_tool_call
from mlx_model.processing.chat_template import render_chat_template
from mlx_model.processing.output_parser import format_argument, parse_tool_call_body


def run(text: str, chunks: list[int] | None = None, **kwargs):
    parser = OutputParser(**kwargs)
    events, start = [], 0
    for size in chunks or [len(text)]:
        events += parser.feed(text[start : start + size])
        start += size
    events += parser.feed(text[start:])
    events += parser.finish()
    return parser, events


def joined(events, kind) -> str:
    return "".join(e.text for e in events if isinstance(e, kind))


def test_answer_text_ends_at_end_of_turn():
    parser, events = run("Hello there.<turn|>ignored")
    assert joined(events, TextDelta) == "Hello there."
    assert parser.stop_reason == "end_of_turn"


def test_thinking_channel_is_split_from_the_answer():
    parser, events = run("<|channel>thought\nLet me think.<channel|>The answer is 4.<turn|>")
    assert joined(events, ThinkingDelta) == "Let me think."
    assert joined(events, TextDelta) == "The answer is 4."


def test_prefilled_empty_thought_channel_leaves_only_the_answer():
    # The template ends the prompt with `<|channel>thought\n<channel|>` when thinking is off.
    parser = OutputParser.for_prompt("<|turn>model\n<|channel>thought\n<channel|>")
    events = parser.feed("Just the answer.<eos>") + parser.finish()
    assert joined(events, TextDelta) == "Just the answer." and parser.stop_reason == "eos"


def test_prompt_ending_inside_an_open_thought_channel_starts_in_thinking():
    parser = OutputParser.for_prompt("<|turn>model\n<|channel>thought\n")
    events = parser.feed("pondering<channel|>done") + parser.finish()
    assert joined(events, ThinkingDelta) == "pondering" and joined(events, TextDelta) == "done"


def test_tool_call_is_parsed_and_stops_with_tool_call_reason():
    text = '<|tool_call>call:get_weather{city:<|"|>Paris<|"|>,days:3}<tool_call|><|tool_response>'
    parser, events = run(text)
    calls = [e.call for e in events if isinstance(e, ToolCallEvent)]
    assert [(c.name, c.arguments) for c in calls] == [("get_weather", {"city": "Paris", "days": 3})]
    assert parser.stop_reason == "tool_call"
    assert joined(events, TextDelta) == ""


def test_a_tool_response_marker_without_a_call_ends_the_turn_as_usual():
    parser, events = run('print("hello")<|tool_response>')
    assert parser.stop_reason == "end_of_turn"
    assert joined(events, TextDelta) == 'print("hello")'


def test_running_out_of_tokens_reports_length():
    parser, events = run("An unfinished sen")
    assert parser.stop_reason == "length" and joined(events, TextDelta) == "An unfinished sen"


def test_partial_control_token_is_held_back_until_it_resolves():
    parser = OutputParser()
    assert parser.feed("Hi <|chan") == [TextDelta("Hi ")]
    assert parser.feed("nel>thought\nhmm") == [ThinkingDelta("hmm")]
    assert parser.feed(" a < b") == [ThinkingDelta(" a < b")]


def test_stray_control_tokens_never_reach_the_answer():
    parser, events = run('A<|"|>B<|turn>C<turn|>')
    assert joined(events, TextDelta) == "ABC"


def test_malformed_tool_call_is_surfaced_as_text_not_dropped():
    parser, events = run("<|tool_call>call:broken{city:<tool_call|><turn|>")
    assert not [e for e in events if isinstance(e, ToolCallEvent)]
    assert "call:broken" in joined(events, TextDelta)
    assert parser.errors


def test_tool_call_end_marker_inside_a_string_does_not_end_the_call():
    text = render_tool_call("echo", {"text": "literal <tool_call|> inside"})
    _, events = run(text)
    [event] = [e for e in events if isinstance(e, ToolCallEvent)]
    assert event.call.arguments == {"text": "literal <tool_call|> inside"}


def test_renderer_matches_the_chat_template(processor):
    arguments = {"b": [1, 2.5, True, None], "A": {"z": "x", "y": {"k": "v"}}, "c": "hi"}
    messages = [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": arguments}}],
        },
    ]
    prompt = render_chat_template(
        processor.chat_template,
        messages,
        add_generation_prompt=False,
        special_tokens={"bos_token": "<bos>"},
    )
    assert render_tool_call("f", arguments) in prompt


# -- property: render -> parse round trip under any chunking ---------------------------------

DELIMITER = '<|"|>'
safe_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40).filter(
    lambda s: DELIMITER not in s
)
tricky_text = st.one_of(
    safe_text,
    st.sampled_from(
        [
            '{"a": 1}',
            "}{",
            "a,b:c",
            "line\nbreak",
            'quote " mark',
            "<tool_call|>",
            "<turn|>",
            "<|channel>",
            "emoji 🎉 ü 日本",
            "  spaced  ",
            "",
            "true",
            "42",
            "None",
        ]
    ),
)
identifier = st.text(alphabet=string.ascii_letters + string.digits + "_", min_size=1, max_size=12)
keys = st.one_of(identifier, safe_text.filter(lambda s: s == s.strip() and s))
scalars = st.one_of(
    tricky_text,
    st.integers(min_value=-(10**18), max_value=10**18),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)
    ),
    max_leaves=12,
)
arguments = st.dictionaries(keys, json_values, max_size=5)
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_\-]{0,20}", fullmatch=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=names, args=arguments, data=st.data())
def test_any_rendered_tool_call_parses_back_identically_for_any_chunking(name, args, data):
    text = "Sure." + render_tool_call(name, args) + "<|tool_response>"
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=12)))
    sizes = [b - a for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    parser, events = run(text, sizes)
    calls = [e.call for e in events if isinstance(e, ToolCallEvent)]
    assert len(calls) == 1
    assert calls[0].name == name and calls[0].arguments == args
    assert joined(events, TextDelta) == "Sure."
    assert parser.stop_reason == "tool_call"


@settings(max_examples=100, deadline=None)
@given(text=safe_text.filter(lambda s: "<" not in s), data=st.data())
def test_plain_text_is_reproduced_exactly_for_any_chunking(text, data):
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=8)))
    sizes = [b - a for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    _, events = run(text, sizes)
    assert joined(events, TextDelta) == text


@pytest.mark.parametrize("value", ["x", 1, 2.5, True, None, [1, "a"], {"k": {"n": [True]}}])
def test_single_value_round_trip(value):
    body = "call:f{v:" + format_argument(value, escape_keys=False) + "}"
    assert parse_tool_call_body(body).arguments == {"v": value}


def test_a_nul_character_in_a_tool_calls_argument_is_kept_as_written():
    written = {"s": "a\x00e\x00l<b"}
    _, events = run("Sure." + render_tool_call("f", written))
    assert [e.call.arguments for e in events if isinstance(e, ToolCallEvent)] == [written]


@pytest.mark.parametrize("plain", [False, True])
def test_a_nul_character_in_the_answer_is_kept_as_written(plain):
    parser = OutputParser()
    events = parser.feed("a\x00e\x00l b", plain=plain) + parser.finish()
    assert joined(events, TextDelta) == "a\x00e\x00l b"
