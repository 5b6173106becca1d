"""The generation engine: parity with transformers' greedy `generate`, stopping, cancellation,
chunked prefill, the context limit, and the event stream's shape."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from mlx_model.engine import Engine
from mlx_model.events import (
    Finished,
    GenerationError,
    PrefillProgress,
    TextDelta,
    ThinkingDelta,
)
from mlx_model.prompt import drop_oldest_turn
from mlx_model.testing.checkpoint_factory import token_ids_of
from tests.mlx_model.forced_tokens import force_tokens, forced

from .conftest import reference_logits

GREEDY = {"temperature": 0.0}


@pytest.fixture(scope="module")
def engine(tiny_checkpoint):
    # Every prefill reports progress here (the product's threshold is a few thousand tokens).
    return Engine.load(
        tiny_checkpoint,
        apply_limits=False,
        context_length=2048,
        prefill_chunk=8,
        progress_min_tokens=0,
    )


@pytest.fixture(autouse=True)
def _fresh(engine):
    engine.prompt_cache.clear()


def _image(seed=0, size=(48, 80)):
    from PIL import Image

    rng = np.random.default_rng(seed)
    return Image.fromarray((rng.random((*size, 3)) * 255).astype(np.uint8))


def _reference_greedy(hf_model, inputs, max_new_tokens, eos_ids):
    """transformers' greedy decoding, the whole sequence each step, with Google's image/video
    attention (its `generate` with a dynamic cache applies its forward-path semantics)."""
    step = dict(inputs)
    new: list[int] = []
    for _ in range(max_new_tokens):
        token = int(reference_logits(hf_model, step)[0, -1].argmax())
        new.append(token)
        if token in eos_ids:
            break
        step["input_ids"] = np.concatenate([step["input_ids"], [[token]]], axis=1)
        step["mm_token_type_ids"] = np.concatenate(
            [step["mm_token_type_ids"], np.zeros((1, 1), np.int64)], axis=1
        )
    return new


TEXT_MESSAGES = [
    {"role": "system", "content": "Gemma runs locally on the Mac with MLX."},
    {"role": "user", "content": "Hello, how are you today? What is the weather in Paris?"},
]


@pytest.mark.parametrize("with_image", [False, True], ids=["text", "image"])
def test_greedy_generation_equals_transformers_greedy_decoding(engine, hf_model, with_image):
    messages = TEXT_MESSAGES
    if with_image:  # a 70-token image: longer than the sliding window and the prefill chunk
        messages = [
            {
                "role": "user",
                "content": [
                    {"type": "image", "image": _image()},
                    {"type": "text", "text": "What is in this image?"},
                ],
            }
        ]
    result = engine.generate(messages, max_tokens=16, image_budget=70, **GREEDY)
    assert result.error is None
    inputs = engine.processor.apply_chat_template(messages, image_budget=70)
    expected = _reference_greedy(hf_model, inputs, 16, engine.eos_token_ids)
    assert result.token_ids == expected
    assert result.stats.prefilled_tokens == inputs["input_ids"].shape[1]


def test_stream_event_order_and_stats(engine):
    events = list(engine.stream(TEXT_MESSAGES, max_tokens=12, **GREEDY))
    assert isinstance(events[-1], Finished)
    assert not any(isinstance(e, Finished | GenerationError) for e in events[:-1])
    first_delta = next(i for i, e in enumerate(events) if isinstance(e, TextDelta | ThinkingDelta))
    assert all(not isinstance(e, PrefillProgress) for e in events[first_delta:])
    stats = events[-1].stats
    assert stats.generated_tokens == len(events[-1].token_ids) > 0
    assert stats.ttft_s > 0 and stats.prefill_tps > 0 and stats.peak_memory_bytes > 0
    assert stats.context_limit == 2048
    assert stats.stop_reason in ("eos", "end_of_turn", "length", "tool_call")


def test_max_tokens_stops_with_length(engine, tiny_checkpoint):
    filler = token_ids_of(tiny_checkpoint).unk + 100  # an ordinary text piece, never a stop
    result = engine.generate(
        TEXT_MESSAGES, max_tokens=5, logits_processors=[forced([filler, None])], **GREEDY
    )
    assert result.token_ids == [filler] * 5
    assert result.stats.stop_reason == "length"


@pytest.mark.parametrize(("stop_token", "reason"), [("<turn|>", "end_of_turn"), ("<eos>", "eos")])
def test_stops_on_the_checkpoints_stop_tokens(engine, stop_token, reason):
    tokenizer = engine.tokenizer
    text_ids = tokenizer.encode("Hello world")
    script = [*text_ids, tokenizer.token_to_id(stop_token), *text_ids]
    result = engine.generate(
        TEXT_MESSAGES, max_tokens=50, logits_processors=[forced(script)], **GREEDY
    )
    assert result.token_ids == script[: len(text_ids) + 1]
    assert result.text == "Hello world"
    assert result.stats.stop_reason == reason


def test_stop_string_ends_generation_and_is_not_shown(engine):
    tokenizer = engine.tokenizer
    script = tokenizer.encode("The quick brown fox jumps over the lazy dog")
    cycle = force_tokens(lambda step: script[step % len(script)])
    result = engine.generate(
        TEXT_MESSAGES, max_tokens=40, stop=["fox"], logits_processors=[cycle], **GREEDY
    )
    assert result.text == "The quick brown "
    assert result.stats.stop_reason == "stop_string"
    assert len(result.token_ids) < len(script)


def test_thinking_is_streamed_separately(engine):
    tokenizer = engine.tokenizer
    script = tokenizer.encode("<|channel>thought\nLet me check<channel|>The answer is yes<turn|>")
    result = engine.generate(
        TEXT_MESSAGES,
        max_tokens=50,
        enable_thinking=True,
        logits_processors=[forced(script)],
        **GREEDY,
    )
    assert result.thinking == "Let me check"
    assert result.text == "The answer is yes"
    assert result.stats.stop_reason == "end_of_turn"


def test_same_seed_same_sample_and_options_are_validated(engine):
    a = engine.generate(TEXT_MESSAGES, max_tokens=8, temperature=1.0, top_k=0, top_p=1.0, seed=7)
    b = engine.generate(TEXT_MESSAGES, max_tokens=8, temperature=1.0, top_k=0, top_p=1.0, seed=7)
    assert a.token_ids == b.token_ids
    bad = engine.generate(TEXT_MESSAGES, top_p=3.0)
    assert bad.error is not None and bad.error.kind == "invalid_request"


# --- cancellation ------------------------------------------------------------------------------


def test_cancel_takes_effect_within_one_decode_step(engine, tiny_checkpoint):
    filler = token_ids_of(tiny_checkpoint).unk + 100

    def choose(step):
        if step == 3:
            engine.cancel()  # as if the user pressed stop while token 4 is being computed
        return filler

    result = engine.generate(
        TEXT_MESSAGES, max_tokens=100, logits_processors=[force_tokens(choose)], **GREEDY
    )
    assert result.stats.stop_reason == "cancelled"
    assert len(result.token_ids) == 3


def test_cancel_from_another_thread_and_engine_is_usable_right_after(engine, tiny_checkpoint):
    filler = token_ids_of(tiny_checkpoint).unk + 100
    never_stops = forced([filler, None])
    timer = threading.Timer(0.3, engine.cancel)
    timer.start()
    started = time.perf_counter()
    result = engine.generate(
        TEXT_MESSAGES, max_tokens=100_000, logits_processors=[never_stops], **GREEDY
    )
    timer.join()
    assert result.stats.stop_reason == "cancelled"
    assert time.perf_counter() - started < 5
    after = engine.generate(TEXT_MESSAGES, max_tokens=10, **GREEDY)
    engine.prompt_cache.clear()
    cold = engine.generate(TEXT_MESSAGES, max_tokens=10, **GREEDY)
    assert after.error is None and after.stats.stop_reason != "cancelled"
    assert after.token_ids == cold.token_ids


def test_cancel_during_chunked_prefill(engine):
    long = [{"role": "user", "content": "The quick brown fox jumps over the lazy dog. " * 12}]
    events = []
    for event in engine.stream(long, max_tokens=5, **GREEDY):
        events.append(event)
        if isinstance(event, PrefillProgress):
            engine.cancel()
    finished = events[-1]
    progress = [e for e in events if isinstance(e, PrefillProgress)]
    assert len(progress) == 1
    assert finished.stats.stop_reason == "cancelled"
    assert finished.stats.generated_tokens == 0
    assert finished.stats.prefilled_tokens == progress[0].done < progress[0].total


def test_cancel_between_prefill_chunks_keeps_the_prompt_cache_consistent(engine):
    long = [{"role": "user", "content": "The quick brown fox jumps over the lazy dog. " * 12}]
    seen = []
    for event in engine.stream(long, max_tokens=5, **GREEDY):
        if isinstance(event, PrefillProgress):
            seen.append(event)
            if len(seen) == 3:
                engine.cancel()
    resumed = engine.generate(long, max_tokens=5, **GREEDY)
    engine.prompt_cache.clear()
    cold = engine.generate(long, max_tokens=5, **GREEDY)
    assert resumed.stats.cached_tokens == seen[-1].done  # the chunks done before the cancel
    assert resumed.token_ids == cold.token_ids


def test_progress_is_reported_only_from_the_threshold_of_tokens_to_prefill(engine, monkeypatch):
    long = [{"role": "user", "content": "The quick brown fox jumps over the lazy dog. " * 12}]
    total = engine.processor.apply_chat_template(long)["input_ids"].shape[1]
    monkeypatch.setattr(engine, "progress_min_tokens", total + 1)
    assert not any(isinstance(e, PrefillProgress) for e in engine.stream(long, max_tokens=2))
    engine.prompt_cache.clear()
    monkeypatch.setattr(engine, "progress_min_tokens", total)
    events = list(engine.stream(long, max_tokens=2, settle_cache=False))
    progress = [e for e in events if isinstance(e, PrefillProgress)]
    done = [p.done for p in progress]
    assert done[0] <= 8 and done[-1] == total and len(done) >= total // 8  # one per chunk
    assert all(a < b for a, b in zip(done, done[1:], strict=False))
    assert {p.total for p in progress} == {total}
    assert progress[0].eta_s is not None and progress[0].eta_s > 0 and progress[-1].eta_s == 0.0
    elapsed = [p.elapsed_s for p in progress]
    assert elapsed == sorted(elapsed) and elapsed[-1] > 0
    # The next turn reuses the cache: only its new tokens count, under the threshold.
    follow = [*long, {"role": "assistant", "content": "Yes."}, {"role": "user", "content": "And?"}]
    assert not any(isinstance(e, PrefillProgress) for e in engine.stream(follow, max_tokens=2))


def test_cancel_when_idle_does_not_affect_the_next_generation(engine):
    engine.cancel()
    result = engine.generate(TEXT_MESSAGES, max_tokens=4, **GREEDY)
    assert result.stats.stop_reason != "cancelled"


# --- prefill and context ----------------------------------------------------------------------


def test_chunked_prefill_reports_progress_and_never_cuts_an_image(engine):
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Describe the picture."},
                {"type": "image", "image": _image(1)},
                {"type": "text", "text": "Hello"},
            ],
        }
    ]
    inputs = engine.processor.apply_chat_template(messages, image_budget=70)
    types = inputs["mm_token_type_ids"][0]
    events = list(engine.stream(messages, max_tokens=2, image_budget=70, **GREEDY))
    progress = [e for e in events if isinstance(e, PrefillProgress)]
    done = [p.done for p in progress]
    assert done == sorted(done) and done[-1] == len(types) and len(done) > 3
    for boundary in done[:-1]:  # no boundary falls between two tokens of the image block
        assert not (types[boundary - 1] == 1 and types[boundary] == 1)
    assert isinstance(events[-1], Finished)


def _long_conversation(turns: int):
    messages = [{"role": "system", "content": "Gemma runs locally."}]
    for i in range(turns):
        messages.append({"role": "user", "content": f"Question {i}: the quick brown fox jumps?"})
        messages.append({"role": "assistant", "content": "Thank you very much! The model said no."})
    messages.append({"role": "user", "content": "What is the date?"})
    return messages


def test_context_limit_is_a_clear_error(tiny_checkpoint):
    small = Engine.load(tiny_checkpoint, apply_limits=False, context_length=64)
    result = small.generate(_long_conversation(6), max_tokens=4, **GREEDY)
    assert result.error is not None and result.error.kind == "context_overflow"
    assert "64" in result.error.message


def test_drop_oldest_policy_keeps_the_system_prompt(tiny_checkpoint):
    small = Engine.load(tiny_checkpoint, apply_limits=False, context_length=96)
    messages = _long_conversation(6)
    result = small.generate(messages, max_tokens=4, context_policy="drop_oldest", **GREEDY)
    assert result.error is None
    dropped = result.stats.extra["dropped_messages"]
    assert dropped > 0 and dropped % 2 == 0
    entry = next(iter(small.prompt_cache.entries.values()))
    context = small.tokenizer.decode(entry.keys[entry.keys >= 0].tolist())
    assert "Gemma runs locally." in context
    assert "Question 0" not in context and "What is the date?" in context


def test_drop_oldest_turn_keeps_system_and_last_user_turn():
    msgs = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "1"},
        {"role": "assistant", "content": "a"},
        {"role": "user", "content": "2"},
    ]
    assert drop_oldest_turn(msgs) == [msgs[0], msgs[3]]
    assert drop_oldest_turn([msgs[0], msgs[3]]) is None


def test_busy_engine_refuses_a_second_stream(engine):
    first = engine.stream(TEXT_MESSAGES, max_tokens=50, **GREEDY)
    next(first)
    second = list(engine.stream(TEXT_MESSAGES, max_tokens=2))
    assert isinstance(second[0], GenerationError) and second[0].kind == "busy"
    first.close()
    assert engine.generate(TEXT_MESSAGES, max_tokens=2, **GREEDY).error is None


def test_load_reports_progress_in_order_up_to_the_processor(tiny_checkpoint):
    steps: list[tuple[float, str]] = []
    Engine.load(tiny_checkpoint, apply_limits=False, progress=lambda f, m: steps.append((f, m)))
    fractions = [fraction for fraction, _ in steps]
    assert fractions == sorted(fractions) and fractions[0] >= 0.0 and fractions[-1] < 1.0
    assert [message for _, message in steps][-1] == "Loading the tokenizer and processors"


def test_media_errors_are_reported_by_type_never_as_internal(engine, tmp_path):
    too_long = np.zeros(16_000 * 31, dtype=np.float32)
    result = engine.generate(
        [
            {
                "role": "user",
                "content": [{"type": "audio", "audio": too_long}, {"type": "text", "text": "Hi"}],
            }
        ],
        max_tokens=2,
    )
    assert result.error is not None and result.error.kind == "media_too_long", result.error
    assert "MediaTooLongError" not in result.error.message
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    result = engine.generate(
        [{"role": "user", "content": [{"type": "image", "image": str(broken)}]}], max_tokens=2
    )
    assert result.error is not None and result.error.kind == "media", result.error
