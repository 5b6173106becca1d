"""Grammars for constrained decoding: what each output constraint lets through, token by token.

Texts are tokenized with the tiny checkpoint's tokenizer and fed to a `TokenConstraint`;
a text is accepted when every id is allowed and the answer is complete at the end.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from mlx_model.constrained import GrammarError, OutputConstraint, allowed_ids, apply_token_mask
from mlx_model.processing.output_parser import parse_tool_calls, render_tool_call

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 8},
                "unit": {"enum": ["c", "f"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
                "Zeta": {"type": "boolean"},
            },
            "required": ["city", "days"],
        },
    },
}
NO_ARGS = {
    "type": "function",
    "function": {"name": "now", "parameters": {"type": "object", "properties": {}}},
}
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 6},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "color": {"enum": ["red", "green"]},
    },
    "required": ["name", "age", "color"],
}


def accepts(vocabulary, constraint: OutputConstraint, text: str, **options) -> bool:
    state = vocabulary.constraint(constraint, **options)
    try:
        state.advance_many(vocabulary.tokenizer.encode(text))
    except GrammarError:
        return False
    return state.is_complete


def call_text(vocabulary, name: str, arguments: dict, calls: int = 1) -> str:
    one = render_tool_call(name, arguments, vocabulary.tokenizer.special)
    return one * calls + vocabulary.tokenizer.special.str_token


@pytest.mark.parametrize(
    "arguments",
    [
        {"city": "Paris", "days": 3},
        {"city": "Paris", "days": 7, "unit": "f"},
        {"city": "", "days": 1, "unit": "c", "Zeta": True},
        {"city": "a,b}:{", "days": 2, "Zeta": False},
    ],
)
def test_tool_call_grammar_accepts_what_the_chat_template_renders(grammar_vocabulary, arguments):
    constraint = OutputConstraint.tool_call([WEATHER, NO_ARGS])
    assert accepts(
        grammar_vocabulary, constraint, call_text(grammar_vocabulary, "get_weather", arguments)
    )


@pytest.mark.parametrize(
    "arguments",
    [
        {"city": "Amsterdam!", "days": 3},  # longer than maxLength
        {"days": 3},  # required city missing
        {"city": "Oslo", "days": 8},  # above the maximum
        {"city": "Oslo", "days": 2, "unit": "k"},  # not in the enum
        {"city": "Oslo", "days": 2, "wind": True},  # not a property
    ],
)
def test_tool_call_grammar_refuses_arguments_outside_the_schema(grammar_vocabulary, arguments):
    constraint = OutputConstraint.tool_call([WEATHER])
    assert not accepts(
        grammar_vocabulary, constraint, call_text(grammar_vocabulary, "get_weather", arguments)
    )


def test_tool_call_grammar_wants_keys_in_the_templates_sorted_order(grammar_vocabulary):
    s = grammar_vocabulary.tokenizer.special
    swapped = f"{s.stc_token}call:get_weather{{days:3,city:{s.escape_token}Oslo{s.escape_token}}}{s.etc_token}{s.str_token}"
    assert not accepts(grammar_vocabulary, OutputConstraint.tool_call([WEATHER]), swapped)


def test_a_named_tool_choice_allows_only_that_function(grammar_vocabulary):
    constraint = OutputConstraint.tool_call([WEATHER, NO_ARGS], "now")
    assert accepts(grammar_vocabulary, constraint, call_text(grammar_vocabulary, "now", {}))
    assert not accepts(
        grammar_vocabulary,
        constraint,
        call_text(grammar_vocabulary, "get_weather", {"city": "x", "days": 1}),
    )


def test_parallel_calls_are_allowed_unless_switched_off(grammar_vocabulary):
    twice = call_text(grammar_vocabulary, "now", {}, calls=2)
    assert accepts(grammar_vocabulary, OutputConstraint.tool_call([NO_ARGS]), twice)
    assert not accepts(
        grammar_vocabulary, OutputConstraint.tool_call([NO_ARGS], parallel=False), twice
    )


def test_a_call_must_hand_over_to_the_tool_runner(grammar_vocabulary):
    text = call_text(grammar_vocabulary, "now", {}).removesuffix(
        grammar_vocabulary.tokenizer.special.str_token
    )
    assert not accepts(grammar_vocabulary, OutputConstraint.tool_call([NO_ARGS]), text)


def test_nested_schemas_with_refs_round_trip_through_the_output_parser(grammar_vocabulary):
    parameters = {  # the shape pydantic writes: $defs, $ref, anyOf with null, arrays
        "$defs": {
            "Stop": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "maxLength": 5},
                    "minutes": {"type": "integer"},
                },
                "required": ["name", "minutes"],
            }
        },
        "type": "object",
        "properties": {
            "stops": {
                "type": "array",
                "items": {"$ref": "#/$defs/Stop"},
                "minItems": 1,
                "maxItems": 2,
            },
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "ratio": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "required": ["stops", "note"],
    }
    tool = {"type": "function", "function": {"name": "plan", "parameters": parameters}}
    arguments = {
        "stops": [{"name": "Gare", "minutes": 4}, {"name": "Parc", "minutes": -2}],
        "note": None,
        "ratio": 0.5,
    }
    text = call_text(grammar_vocabulary, "plan", arguments)
    assert accepts(grammar_vocabulary, OutputConstraint.tool_call([tool]), text)
    assert parse_tool_calls(text, grammar_vocabulary.tokenizer.special)[0].arguments == arguments
    three = {**arguments, "stops": arguments["stops"] + [{"name": "X", "minutes": 1}]}
    assert not accepts(
        grammar_vocabulary,
        OutputConstraint.tool_call([tool]),
        call_text(grammar_vocabulary, "plan", three),
    )


def test_tool_strings_cannot_spell_the_delimiter(grammar_vocabulary):
    free = {
        "type": "function",
        "function": {
            "name": "say",
            "parameters": {
                "type": "object",
                "properties": {"text": {"type": "string"}},
                "required": ["text"],
            },
        },
    }
    s = grammar_vocabulary.tokenizer.special
    constraint = OutputConstraint.tool_call([free])
    state = grammar_vocabulary.constraint(constraint)
    head = f"{s.stc_token}call:say{{text:{s.escape_token}ab"
    state.advance_many(grammar_vocabulary.tokenizer.encode(head))
    state.advance_many([grammar_vocabulary.tokenizer.encode(ch)[-1] for ch in '<|"|'])
    with pytest.raises(GrammarError):
        state.advance_many(grammar_vocabulary.tokenizer.encode(">"))


def test_json_schema_answers_end_the_turn(grammar_vocabulary):
    constraint = OutputConstraint.json_schema(PERSON)
    assert accepts(
        grammar_vocabulary, constraint, '{"name": "Ann", "age": 7, "color": "red"}<turn|>'
    )
    assert not accepts(grammar_vocabulary, constraint, '{"name": "Ann", "age": 7, "color": "red"}')


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "Annabel", "age": 7, "color": "red"}<turn|>',  # maxLength
        '{"name": "Ann", "age": 121, "color": "red"}<turn|>',  # maximum
        '{"name": "Ann", "age": 7, "color": "blue"}<turn|>',  # enum
        '{"name": "Ann", "age": 7, "color": "red", "x": 1}<turn|>',  # closed object
        '{"name": "Ann",  "age": 7, "color": "red"}<turn|>',  # more than one space
    ],
)
def test_json_schema_grammar_refuses_invalid_documents(grammar_vocabulary, text):
    assert not accepts(grammar_vocabulary, OutputConstraint.json_schema(PERSON), text)


def test_json_mode_takes_any_object_but_nothing_else(grammar_vocabulary):
    constraint = OutputConstraint.json_object()
    assert accepts(grammar_vocabulary, constraint, '{"a": [1, {"b": null}], "c": "d"}<turn|>')
    assert not accepts(grammar_vocabulary, constraint, "[1, 2]<turn|>")
    assert not accepts(grammar_vocabulary, constraint, "Sure! {}<turn|>")


def test_a_json_answer_with_tools_is_the_document_or_tool_calls(grammar_vocabulary):
    constraint = OutputConstraint.json_schema(PERSON).with_tools([WEATHER])
    document = '{"name": "Ann", "age": 7, "color": "red"}<turn|>'
    assert accepts(grammar_vocabulary, constraint, document)
    call = call_text(grammar_vocabulary, "get_weather", {"city": "Oslo", "days": 2})
    assert accepts(grammar_vocabulary, constraint, call)
    assert not accepts(grammar_vocabulary, constraint, "Sure.<turn|>")
    assert not accepts(grammar_vocabulary, constraint, call_text(grammar_vocabulary, "now", {}))


def test_grammar_errors_are_invalid_requests():
    from mlx_model.errors import error_kind

    assert error_kind(GrammarError("bad schema")) == "invalid_request"


def test_a_prompt_ending_in_an_open_thought_starts_in_thinking(grammar_vocabulary):
    tokenizer = grammar_vocabulary.tokenizer
    state = grammar_vocabulary.constraint(OutputConstraint.json_schema(PERSON), thinking=True)
    state.follow_prompt(tokenizer.encode("<|turn>model\n<|channel>thought\n"))
    assert not state.in_answer
    state.advance_many(tokenizer.encode("hm<channel|>"))
    assert state.in_answer
    closed = grammar_vocabulary.constraint(OutputConstraint.json_schema(PERSON))
    closed.follow_prompt(tokenizer.encode("<|turn>model\n<|channel>thought\n<channel|>"))
    assert closed.in_answer


def test_strict_schemas_with_unsupported_keywords_are_refused(grammar_vocabulary):
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "not": {"required": ["a"]}}
    with pytest.raises(GrammarError, match="not"):
        grammar_vocabulary.constraint(OutputConstraint.json_schema(schema))
    grammar_vocabulary.constraint(OutputConstraint.json_schema(schema, strict=False))


def test_a_tool_choice_naming_no_offered_tool_is_an_error():
    with pytest.raises(GrammarError, match="missing"):
        OutputConstraint.tool_call([WEATHER], "missing")


def test_thinking_runs_free_until_the_channel_closes(grammar_vocabulary):
    tokenizer = grammar_vocabulary.tokenizer
    state = grammar_vocabulary.constraint(OutputConstraint.json_schema(PERSON), thinking=True)
    first = set(allowed_ids(state.next_mask(), grammar_vocabulary.vocab_size))
    assert first == {grammar_vocabulary.thought_start, tokenizer.encode("{")[0]}
    state.advance_many(tokenizer.encode("<|channel>thought\nI could say"))
    inside = set(allowed_ids(state.next_mask(), grammar_vocabulary.vocab_size))
    assert inside.isdisjoint(tokenizer.eos_token_ids)  # the turn cannot end inside a thought
    assert len(inside) == grammar_vocabulary.vocab_size - len(set(tokenizer.eos_token_ids))
    state.advance(grammar_vocabulary.thought_end)
    assert state.in_answer
    assert set(allowed_ids(state.next_mask(), grammar_vocabulary.vocab_size)) == {
        tokenizer.encode("{")[0]
    }


def test_without_thinking_the_thought_channel_cannot_open(grammar_vocabulary):
    state = grammar_vocabulary.constraint(OutputConstraint.json_object())
    assert grammar_vocabulary.thought_start not in allowed_ids(
        state.next_mask(), grammar_vocabulary.vocab_size
    )


def test_draft_masks_match_step_by_step_masks_and_keep_the_state(grammar_vocabulary):
    tokenizer = grammar_vocabulary.tokenizer
    constraint = OutputConstraint.json_schema(PERSON)
    drafted = tokenizer.encode('<|channel>thought\nok<channel|>{"name": "Al", "age"')
    state = grammar_vocabulary.constraint(constraint, thinking=True)
    before = state.next_mask()
    masks = state.draft_masks(drafted)
    assert state.consumed == 0 and np.array_equal(state.next_mask(), before)
    reference = grammar_vocabulary.constraint(constraint, thinking=True)
    for i, token_id in enumerate(drafted):
        assert np.array_equal(masks[i], reference.next_mask()[0]), f"position {i}"
        reference.advance(token_id)
    assert np.array_equal(masks[-1], reference.next_mask()[0])


def test_a_refused_draft_id_stops_the_masks_there(grammar_vocabulary):
    tokenizer = grammar_vocabulary.tokenizer
    state = grammar_vocabulary.constraint(OutputConstraint.json_schema(PERSON))
    drafted = tokenizer.encode('{"nope"')
    masks = state.draft_masks(drafted)
    refused = next(
        i
        for i, t in enumerate(drafted)
        if t not in allowed_ids(masks[i], grammar_vocabulary.vocab_size)
    )
    assert all(np.array_equal(masks[j], masks[refused]) for j in range(refused, len(masks)))
    assert state.consumed == 0


def test_rollback_undoes_rejected_drafts_across_the_thought_boundary(grammar_vocabulary):
    tokenizer = grammar_vocabulary.tokenizer
    state = grammar_vocabulary.constraint(OutputConstraint.json_schema(PERSON), thinking=True)
    state.advance_many(tokenizer.encode("<|channel>thought\nhm"))
    thinking_mask = state.next_mask()
    state.advance_many(tokenizer.encode('<channel|>{"name"'))
    state.rollback(len(tokenizer.encode('<channel|>{"name"')))
    assert not state.in_answer
    assert np.array_equal(state.next_mask(), thinking_mask)


def test_apply_token_mask_sets_refused_logits_to_minus_infinity():
    vocab = 70
    allowed = [0, 31, 32, 69]
    bits = np.zeros(96, dtype=np.uint8)
    bits[allowed] = 1
    mask = np.packbits(bits, bitorder="little").view(np.int32)
    logits = mx.arange(vocab, dtype=mx.float32)[None]
    out = np.array(apply_token_mask(logits, mask))
    assert np.isfinite(out[0]).nonzero()[0].tolist() == allowed
    assert out[0, allowed].tolist() == [float(i) for i in allowed]
    batched = np.array(
        apply_token_mask(mx.broadcast_to(logits, (2, vocab)), np.stack([mask, mask]))
    )
    assert np.array_equal(batched[1], out[0])


def test_the_logits_processor_reads_only_the_generated_ids(grammar_vocabulary):
    tokenizer = grammar_vocabulary.tokenizer
    state = grammar_vocabulary.constraint(OutputConstraint.json_schema(PERSON))
    processor = state.logits_processor()
    prompt = tokenizer.encode("<|turn>user\nHi<turn|>\n<|turn>model\n")
    logits = mx.zeros((1, grammar_vocabulary.vocab_size))
    out = processor(mx.array(prompt), logits)
    assert np.isfinite(np.array(out[0])).nonzero()[0].tolist() == tokenizer.encode("{")
    answer = tokenizer.encode('{"name"')
    processor(mx.array(prompt + answer), logits)
    assert state.consumed == len(answer)
