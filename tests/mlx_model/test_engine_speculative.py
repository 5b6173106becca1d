"""Speculative decoding in the engine's turn: the same turns as plain decoding, end to end.

Two engines share the tiny model: one decodes plainly, the other through
`SpeculativeDecodeLoop` in its `decode_loop` slot (drafting every round, so rejections and
rollbacks happen). With the real drafter (random weights) most drafts are rejected; with
the scripted drafter most are accepted; under the token-forcing processors of the tests'
scripts the drafter is forced too, so whole blocks are accepted.
"""

from __future__ import annotations

import numpy as np
import pytest

from mlx_model.engine import Engine
from mlx_model.events import Finished, ToolCallEvent
from mlx_model.loading import load_drafter
from mlx_model.prompt import media_token_ids, render_prompt
from mlx_model.sampling import TokenSuppressor
from mlx_model.speculative import DraftPolicy, MTPDrafter, SpeculativeDecodeLoop
from tests.doubles import tool_call_text, turn_ids
from tests.mlx_model.drafters import ScriptedDrafter
from tests.mlx_model.forced_tokens import force_tokens, forced

GREEDY = {"temperature": 0.0}
EVERY_ROUND = DraftPolicy(max_draft=4, adaptive=False)
MESSAGES = [
    {"role": "system", "content": "Gemma runs locally on the Mac with MLX."},
    {"role": "user", "content": "Hello, how are you today? What is the weather in Paris?"},
]


def _twin(engine: Engine, decode_loop) -> Engine:
    """Another engine on the same model and processor, with its own prompt cache."""
    return Engine(
        engine.model,
        engine.processor,
        sampling_defaults=engine.sampling_defaults,
        eos_token_ids=sorted(engine.eos_token_ids),
        context_limit=engine.context_limit,
        prefill_chunk=engine.prefill_chunk,
        suppress_tokens=engine.token_suppressor.token_ids,
        decode_loop=decode_loop,
    )


@pytest.fixture(scope="module")
def plain(tiny_checkpoint):
    return Engine.load(tiny_checkpoint, apply_limits=False, context_length=2048, prefill_chunk=8)


@pytest.fixture(scope="module")
def mtp(plain, tiny_assistant):
    drafter = MTPDrafter(load_drafter(tiny_assistant, lazy=False), plain.model)
    return _twin(plain, SpeculativeDecodeLoop(drafter, EVERY_ROUND))


@pytest.fixture(autouse=True)
def _fresh(plain, mtp):
    plain.prompt_cache.clear()
    mtp.prompt_cache.clear()


def _scripted(plain: Engine, messages, reply: list[int], **render) -> Engine:
    """A speculative twin whose drafter knows `reply` (the plain engine's answer) and
    proposes it three times in four."""
    prompt = render_prompt(plain.processor, messages, media_token_ids(plain.config), **render)
    reference = [int(t) for t in prompt.ids] + list(reply)
    drafter = ScriptedDrafter(reference, plain.vocab_size, agree=0.75)
    return _twin(plain, SpeculativeDecodeLoop(drafter, EVERY_ROUND))


def _assert_same_cache(plain: Engine, mtp: Engine) -> None:
    """Each entry's keys are what its caches hold, and the speculative engine's entries hold
    the plain one's tokens (a turn cut short may leave its last token out: it was never fed
    when it came from the verify forward; the plain loop always fed it already)."""
    entries = [list(e.prompt_cache.entries.values()) for e in (plain, mtp)]
    assert len(entries[0]) == len(entries[1])
    for ours, theirs in zip(entries[1], entries[0], strict=True):
        assert ours.length == ours.caches[0].offset
        assert ours.keys.tolist() == theirs.keys[: ours.length].tolist()
        assert theirs.length - 1 <= ours.length <= theirs.length


def _image(seed=0, size=(48, 80)):
    from PIL import Image

    rng = np.random.default_rng(seed)
    return Image.fromarray((rng.random((*size, 3)) * 255).astype(np.uint8))


IMAGE_MESSAGES = [
    {
        "role": "user",
        "content": [
            {"type": "image", "image": _image()},
            {"type": "text", "text": "What is in this image?"},
        ],
    }
]


@pytest.mark.parametrize("drafter", ["mtp", "scripted"])
@pytest.mark.parametrize("prompt", ["text", "image"])
def test_a_greedy_turn_is_the_plain_turn_token_for_token(plain, mtp, drafter, prompt):
    """40 new tokens wrap the tiny model's 16-token sliding window (the prompt already has)."""
    messages = IMAGE_MESSAGES if prompt == "image" else MESSAGES
    options = dict(max_tokens=40, image_budget=70, **GREEDY)
    expected = plain.generate(messages, **options)
    assert len(expected.token_ids) == 40
    if drafter == "mtp":
        engine = mtp
    else:
        engine = _scripted(plain, messages, expected.token_ids, image_budget=70)
    got = engine.generate(messages, **options)
    assert got.error is None
    assert got.token_ids == expected.token_ids
    assert got.text == expected.text
    counts = got.stats.extra["speculative"]
    assert counts["drafted"] > 0
    if drafter == "scripted":
        assert counts["accepted"] > counts["drafted"] / 3


def test_turns_reuse_the_prompt_cache_and_stay_identical(plain, mtp):
    """Turn 2 starts from the cache turn 1 left (rolled back, settled); so does turn 3."""
    conversation = list(MESSAGES)
    for question in ("And tomorrow?", "Thanks, and in Rome?"):
        expected = plain.generate(conversation, max_tokens=24, **GREEDY)
        got = mtp.generate(conversation, max_tokens=24, **GREEDY)
        assert got.token_ids == expected.token_ids
        assert got.stats.cached_tokens == expected.stats.cached_tokens
        _assert_same_cache(plain, mtp)
        conversation += [
            {"role": "assistant", "content": got.text},
            {"role": "user", "content": question},
        ]
    assert got.stats.cached_tokens > 0


def test_a_tool_call_turn_and_the_turn_after_it_match_plain(plain, mtp):
    tokenizer = plain.tokenizer
    call = turn_ids(
        tokenizer, tool_call_text(tokenizer, "get_weather", {"city": "Paris"}), end="tool_call"
    )
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    followed = [
        *MESSAGES,
        {
            "role": "assistant",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
        },
        {"role": "tool", "name": "get_weather", "content": "Sunny, 24 C"},
    ]
    firsts = [
        engine.generate(
            MESSAGES, tools=tools, max_tokens=60, logits_processors=[forced(call)], **GREEDY
        )
        for engine in (plain, mtp)
    ]
    _assert_same_cache(plain, mtp)
    for first in firsts:
        calls = [e.call.name for e in first.events if isinstance(e, ToolCallEvent)]
        assert calls == ["get_weather"] and first.stats.stop_reason == "tool_call"
    assert firsts[1].token_ids == firsts[0].token_ids
    seconds = [
        engine.generate(followed, tools=tools, max_tokens=20, **GREEDY) for engine in (plain, mtp)
    ]
    _assert_same_cache(plain, mtp)
    assert seconds[1].token_ids == seconds[0].token_ids
    assert seconds[1].stats.cached_tokens == seconds[0].stats.cached_tokens > 0
    # the forced drafts are the target's choices: whole blocks accepted
    counts = firsts[1].stats.extra["speculative"]
    assert counts["accepted"] > counts["drafted"] / 2


def test_a_stop_token_inside_an_accepted_block_ends_the_turn_there(plain, mtp):
    tokenizer = plain.tokenizer
    words = tokenizer.encode("Hello world, it is sunny")
    script = [*words, tokenizer.token_to_id("<turn|>"), *words]
    got = mtp.generate(MESSAGES, max_tokens=50, logits_processors=[forced(script)], **GREEDY)
    assert got.token_ids == script[: len(words) + 1]
    assert got.stats.stop_reason == "end_of_turn"
    plain.generate(MESSAGES, max_tokens=50, logits_processors=[forced(script)], **GREEDY)
    _assert_same_cache(plain, mtp)
    after = [*MESSAGES, {"role": "assistant", "content": got.text}]
    after.append({"role": "user", "content": "And tomorrow?"})
    assert (
        mtp.generate(after, max_tokens=12, **GREEDY).token_ids
        == plain.generate(after, max_tokens=12, **GREEDY).token_ids
    )


def test_suppressed_tokens_and_repetition_penalty_apply_at_every_verified_position(plain, mtp):
    free = plain.generate(MESSAGES, max_tokens=30, **GREEDY).token_ids
    banned = sorted(set(free[:6]))
    saved = plain.token_suppressor, mtp.token_suppressor
    try:
        plain.token_suppressor = mtp.token_suppressor = TokenSuppressor(banned, plain.vocab_size)
        options = dict(max_tokens=30, repetition_penalty=1.5, **GREEDY)
        expected = plain.generate(MESSAGES, **options)
        got = mtp.generate(MESSAGES, **options)
    finally:
        plain.token_suppressor, mtp.token_suppressor = saved
    assert not set(expected.token_ids) & set(banned)
    assert got.token_ids == expected.token_ids


def test_a_grammar_constraint_gives_the_plain_answer(plain, mtp, grammar_vocabulary):
    from mlx_model.constrained import OutputConstraint

    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 6}},
        "required": ["city"],
    }
    results = []
    for engine in (plain, mtp):
        constraint = grammar_vocabulary.constraint(OutputConstraint.json_schema(schema))
        results.append(
            engine.generate(
                MESSAGES,
                max_tokens=40,
                logits_processors=[constraint.logits_processor()],
                **GREEDY,
            )
        )
    assert results[1].token_ids == results[0].token_ids
    assert results[0].text.startswith("{")


def test_cancel_takes_effect_within_one_token_and_the_cache_stays_usable(plain, mtp):
    filler = plain.tokenizer.encode("fox")[0]

    def choose(step):
        if step == 3:
            mtp.cancel()
        return filler

    result = mtp.generate(
        MESSAGES, max_tokens=100, logits_processors=[force_tokens(choose)], **GREEDY
    )
    assert result.stats.stop_reason == "cancelled"
    assert len(result.token_ids) <= 4
    entry = next(iter(mtp.prompt_cache.entries.values()))
    assert entry.length == entry.caches[0].offset
    after = mtp.generate(MESSAGES, max_tokens=10, **GREEDY)
    assert after.token_ids == plain.generate(MESSAGES, max_tokens=10, **GREEDY).token_ids


def test_sampling_runs_speculatively_and_is_reproducible(mtp):
    options = dict(max_tokens=16, temperature=1.0, top_k=0, top_p=1.0, seed=11)
    a = mtp.generate(MESSAGES, **options)
    mtp.prompt_cache.clear()
    b = mtp.generate(MESSAGES, **options)
    assert a.error is None and a.token_ids == b.token_ids
    assert a.stats.extra["speculative"]["drafted"] > 0


def test_every_turn_reports_its_drafting_counts(plain, mtp):
    events = list(mtp.stream(MESSAGES, max_tokens=20, **GREEDY))
    stats = events[-1].stats
    assert isinstance(events[-1], Finished)
    counts = stats.extra["speculative"]
    assert set(counts) >= {"drafted", "accepted", "acceptance_rate", "mean_accepted_length"}
    assert 0 <= counts["accepted"] <= counts["drafted"]
    assert counts["acceptance_rate"] == pytest.approx(counts["accepted"] / counts["drafted"], 1e-3)
    assert stats.decode_tps > 0
    assert "speculative" not in plain.generate(MESSAGES, max_tokens=4, **GREEDY).stats.extra


# --- loading with a drafter ---------------------------------------------------------------------

LOAD = dict(apply_limits=False, context_length=2048, prefill_chunk=8)


def test_loading_with_a_drafter_plans_its_bytes_and_decodes_speculatively(
    tiny_checkpoint, tiny_assistant
):
    from mlx.utils import tree_flatten

    from mlx_model.memory_plan import plan_checkpoint

    engine = Engine.load(tiny_checkpoint, draft_model=tiny_assistant, **LOAD)
    alone = plan_checkpoint(tiny_checkpoint, bits=None, context_length=2048, prefill_chunk=8)
    weights = sum(
        v.nbytes for _, v in tree_flatten(engine.decode_loop.drafter.assistant.parameters())
    )
    vocab = engine.vocab_size
    assert engine.plan.drafter_bytes == weights + 4 * vocab * 4  # weights + one round's logits
    assert engine.plan.total_bytes == alone.total_bytes + engine.plan.drafter_bytes
    assert "drafter" in engine.plan.describe() and engine.notices == []
    assert engine.draft_model == tiny_assistant
    result = engine.generate(MESSAGES, max_tokens=8, **GREEDY)
    assert "speculative" in result.stats.extra


def test_a_drafter_that_does_not_fit_is_left_out_unless_it_was_required(
    tiny_checkpoint, tiny_assistant
):
    from mlx_model.errors import MemoryPlanError
    from mlx_model.memory_plan import drafter_nbytes, plan_checkpoint

    alone = plan_checkpoint(tiny_checkpoint, bits=None, context_length=2048, prefill_chunk=8)
    budget = alone.total_bytes + drafter_nbytes(tiny_assistant, dtype_bytes=4) // 2
    with pytest.raises(MemoryPlanError, match="drafter"):
        Engine.load(tiny_checkpoint, draft_model=tiny_assistant, device_budget_bytes=budget, **LOAD)
    engine = Engine.load(
        tiny_checkpoint,
        draft_model=tiny_assistant,
        draft_required=False,
        device_budget_bytes=budget,
        **LOAD,
    )
    assert not getattr(engine.decode_loop, "uses_hidden_state", False)
    assert engine.draft_model is None and engine.plan.drafter_bytes == 0
    assert len(engine.notices) == 1 and "does not fit in memory" in engine.notices[0]


def test_a_drafter_for_another_model_is_left_out_unless_it_was_required(tiny_checkpoint, tmp_path):
    from mlx_model.errors import CheckpointError
    from mlx_model.testing.checkpoint_factory import TinyModelSizes, write_tiny_checkpoint

    other = write_tiny_checkpoint(
        tmp_path / "other", sizes=TinyModelSizes(hidden_size=48), with_vision=False,
        with_audio=False, assistant=True,
    )  # fmt: skip
    drafter = other.with_name("other-assistant")
    with pytest.raises(CheckpointError, match="hidden size"):
        Engine.load(tiny_checkpoint, draft_model=drafter, **LOAD)
    engine = Engine.load(tiny_checkpoint, draft_model=drafter, draft_required=False, **LOAD)
    assert engine.draft_model is None
    assert "other-assistant was left out" in engine.notices[0]


def test_a_float_drafter_takes_the_models_float_type_and_is_not_warned_about(
    tiny_checkpoint_bf16, tiny_assistant
):
    import mlx.core as mx

    engine = Engine.load(tiny_checkpoint_bf16, draft_model=tiny_assistant, **LOAD)
    assert engine.decode_loop.drafter.assistant.dtype == mx.bfloat16
    assert engine.notices == []


def test_a_coarser_drafter_is_logged_and_noticed(tiny_checkpoint, tiny_assistant, tmp_path, caplog):
    from mlx_model.convert import convert

    coarse = convert(tiny_assistant, tmp_path / "assistant-4bit", bits=4, group_size=32)
    with caplog.at_level("WARNING", logger="mlx_model.engine"):
        engine = Engine.load(tiny_checkpoint, draft_model=coarse, **LOAD)
    assert getattr(engine.decode_loop, "uses_hidden_state", False)
    assert len(engine.notices) == 1 and "quantized to 4 bits" in engine.notices[0]
    assert any("quantized to 4 bits" in r.getMessage() for r in caplog.records)
