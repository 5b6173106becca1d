"""Constrained decoding on the tiny random model: whatever it samples, the answer is valid.

A random model has no idea of JSON or tools; every document it writes here comes from the
grammar's mask. The schemas are bounded (enums, integer ranges, maxLength, maxItems) so
the grammar closes them within `max_tokens`. Decoding runs through mlx-lm's
`generate_step` with our sampler and processors, as any mlx-lm style token loop would.
"""

from __future__ import annotations

import json

import jsonschema
import mlx.core as mx
import numpy as np
import pytest
from mlx_lm.generate import generate_step

from mlx_model.constrained import OutputConstraint
from mlx_model.processing.output_parser import OutputParser
from mlx_model.sampling import SamplingOptions, make_token_sampler

SCHEMAS = {
    "person": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 6},
            "age": {"type": "integer", "minimum": 0, "maximum": 120},
            "color": {"enum": ["red", "green", "blue"]},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 3}, "maxItems": 2},
        },
        "required": ["name", "age", "color", "tags"],
    },
    "nested": {
        "$defs": {"Size": {"enum": ["S", "M", "L"]}},
        "type": "object",
        "properties": {
            "ok": {"type": "boolean"},
            "size": {"$ref": "#/$defs/Size"},
            "box": {
                "type": "object",
                "properties": {"w": {"type": "integer", "minimum": 1, "maximum": 9}},
                "required": ["w"],
            },
        },
        "required": ["ok", "size", "box"],
    },
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "maxLength": 8},
                    "unit": {"enum": ["c", "f"]},
                    "days": {"type": "integer", "minimum": 1, "maximum": 7},
                },
                "required": ["city", "days"],
            },
        },
    },
    {
        "type": "function",
        "function": {"name": "now", "parameters": {"type": "object", "properties": {}}},
    },
]
MAX_TOKENS = 160


def decode(model, tokenizer, prompt_ids, processors, seed: int) -> str:
    """Sample at temperature 1 (whole vocabulary) until a stop id; the generated text."""
    mx.random.seed(seed)
    sampler, standard = make_token_sampler(
        SamplingOptions(temperature=1.0, top_p=1.0, top_k=0, repetition_penalty=1.1)
    )
    out: list[int] = []
    for token, _ in generate_step(
        mx.array(prompt_ids), model, max_tokens=MAX_TOKENS, sampler=sampler,
        logits_processors=standard + list(processors),
    ):  # fmt: skip
        out.append(int(token))
        if out[-1] in tokenizer.eos_token_ids:
            break
    return tokenizer.decode(out)


def prompt(processor, **options) -> list[int]:
    messages = [{"role": "user", "content": "Describe the weather in Paris."}]
    return processor.apply_chat_template(messages, **options)["input_ids"].reshape(-1).tolist()


@pytest.mark.parametrize(("name", "seed"), [("person", 0), ("person", 1), ("nested", 2)])
def test_random_model_answers_validate_against_the_schema(
    our_model, tiny_processor, grammar_vocabulary, name, seed
):
    schema = SCHEMAS[name]
    constraint = grammar_vocabulary.constraint(OutputConstraint.json_schema(schema))
    text = decode(
        our_model,
        tiny_processor.tokenizer,
        prompt(tiny_processor),
        [constraint.logits_processor()],
        seed,
    )
    assert text.endswith("<turn|>"), text
    jsonschema.validate(json.loads(text.removesuffix("<turn|>")), schema)


@pytest.mark.parametrize(("tool_choice", "seed"), [(None, 3), ("get_weather", 4)])
def test_random_model_forced_tool_calls_parse_and_validate(
    our_model, tiny_processor, grammar_vocabulary, tool_choice, seed
):
    constraint = grammar_vocabulary.constraint(OutputConstraint.tool_call(TOOLS, tool_choice))
    ids = prompt(tiny_processor, tools=TOOLS)
    text = decode(our_model, tiny_processor.tokenizer, ids, [constraint.logits_processor()], seed)
    parser = OutputParser(tiny_processor.tokenizer.special)
    parser.feed(text)
    parser.finish()
    assert parser.stop_reason == "tool_call" and not parser.errors, text
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
    for call in parser.result.tool_calls:
        assert tool_choice in (None, call.name)
        jsonschema.validate(call.arguments, schemas[call.name])


def test_the_grammar_applies_after_a_thought_and_chains_after_other_processors(
    our_model, tiny_processor, grammar_vocabulary
):
    tokenizer = tiny_processor.tokenizer
    thought = tokenizer.encode("<|channel>thought\nLet me think.<channel|>")

    def think_first(tokens: mx.array, logits: mx.array) -> mx.array:
        """Force a short thought (a random model would not close one by itself)."""
        done = tokens.size - start
        if done >= len(thought):
            return logits
        return mx.where(mx.arange(logits.shape[-1]) == thought[done], logits, -mx.inf)

    ids = prompt(tiny_processor, enable_thinking=True)
    start = len(ids)
    schema = SCHEMAS["person"]
    constraint = grammar_vocabulary.constraint(OutputConstraint.json_schema(schema), thinking=True)
    text = decode(our_model, tokenizer, ids, [think_first, constraint.logits_processor()], seed=5)
    parser = OutputParser.for_prompt(tokenizer.decode(ids), tokenizer.special)
    parser.feed(text)
    parser.finish()
    assert parser.result.thinking == "Let me think."
    jsonschema.validate(json.loads(parser.result.text), schema)


def test_rolling_back_ids_past_the_end_of_the_grammar_restores_the_state(
    tiny_processor, grammar_vocabulary
):
    """A speculative loop verifies drafts past a stop id, then rolls them back: ids after
    the grammar's end never reached the matcher, so they must not be undone there."""
    tokenizer = tiny_processor.tokenizer
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    answer = tokenizer.encode('{"n":4 }')
    stop = tokenizer.token_to_id("<turn|>")
    reference = grammar_vocabulary.constraint(OutputConstraint.json_schema(schema))
    reference.advance_many(answer[:-1])
    drafted = grammar_vocabulary.constraint(OutputConstraint.json_schema(schema))
    drafted.advance_many([*answer, stop, stop])
    drafted.rollback(3)
    assert drafted.consumed == reference.consumed
    np.testing.assert_array_equal(drafted.next_mask(), reference.next_mask())


def test_after_a_prompt_that_opens_a_thought_the_processor_lets_the_thought_run(
    tiny_processor, grammar_vocabulary
):
    tokenizer = tiny_processor.tokenizer
    vocab = grammar_vocabulary.vocab_size
    constraint = grammar_vocabulary.constraint(OutputConstraint.json_object(), thinking=True)
    processor = constraint.logits_processor()
    prompt = tokenizer.encode("<|turn>model\n<|channel>thought\n")
    allowed = np.isfinite(np.asarray(processor(mx.array(prompt), mx.zeros((1, vocab)))))
    assert allowed.sum() == vocab - len(set(tokenizer.eos_token_ids))
    thought = tokenizer.encode("ok<channel|>")
    allowed = np.isfinite(np.asarray(processor(mx.array(prompt + thought), mx.zeros((1, vocab)))))
    assert set(np.flatnonzero(allowed[0])) == {tokenizer.encode("{")[0]}
