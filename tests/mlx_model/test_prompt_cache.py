"""The multi-turn prompt cache: only new tokens are prefilled, edits trim to the common prefix,
thought stripping does not throw the cache away, and conversations share a small LRU."""

from __future__ import annotations

import numpy as np
import pytest

from mlx_model.engine import Engine
from mlx_model.prompt_cache import block_safe_length, common_prefix_length, prompt_keys
from mlx_model.testing.checkpoint_factory import TinyModelSizes, write_tiny_checkpoint
from tests.mlx_model.forced_tokens import forced

GREEDY = {"temperature": 0.0}


@pytest.fixture(scope="module")
def engine(tiny_checkpoint):
    """Sliding window 16: every cache here has wrapped, so rewinds go through snapshots."""
    return Engine.load(tiny_checkpoint, apply_limits=False, context_length=4096, prefill_chunk=32)


@pytest.fixture(scope="module")
def wide_engine(tmp_path_factory):
    """Sliding window 512: caches never wrap in these tests, so they trim to any point."""
    folder = write_tiny_checkpoint(
        tmp_path_factory.mktemp("wide"), seed=1, sizes=TinyModelSizes(sliding_window=512)
    )
    return Engine.load(folder, apply_limits=False, context_length=4096, prefill_chunk=32)


@pytest.fixture(autouse=True)
def _fresh(engine, wide_engine):
    for e in (engine, wide_engine):
        e.prompt_cache.clear()


def _length(engine, messages, add_generation_prompt=True, **kw):
    return engine.processor.apply_chat_template(
        messages, add_generation_prompt=add_generation_prompt, **kw
    )["input_ids"].shape[1]


def _turn_start(engine, messages, **kw):
    ids = engine.processor.apply_chat_template(messages, **kw)["input_ids"][0]
    return int(np.flatnonzero(ids == engine.tokenizer.token_to_id("<|turn>"))[-1])


FIRST = [
    {"role": "system", "content": "Gemma runs locally on the Mac with MLX."},
    {"role": "user", "content": "Hello, how are you today? What is the weather in Paris?"},
]


def _second(first_reply: str, thinking: str = ""):
    reply = {"role": "assistant", "content": first_reply}
    if thinking:
        reply["reasoning_content"] = thinking
    return [*FIRST, reply, {"role": "user", "content": "Thank you very much! Summarize the file."}]


# --- units -----------------------------------------------------------------------------------


def test_common_prefix_length():
    assert common_prefix_length([1, 2, 3, 4], [1, 2, 9]) == 2
    assert common_prefix_length([1, 2], [1, 2, 3]) == 2
    assert common_prefix_length([], [1]) == 0


def test_reuse_never_ends_inside_an_image_block():
    types = np.array([0, 0, 1, 1, 1, 1, 0, 0])
    assert block_safe_length(4, types) == 2  # would cut the block: back to its start
    assert block_safe_length(6, types) == 6  # right after the block is fine
    assert block_safe_length(2, types) == 2


def test_same_sized_images_with_different_pixels_get_different_keys():
    ids = np.array([[5, 9, 9, 9, 6, 7]])
    base = {"input_ids": ids, "image_position_ids": np.array([[[0, 0], [1, 0], [2, 0]]])}
    a = prompt_keys({**base, "pixel_values": np.zeros((1, 3, 4))}, {"image": 9})
    b = prompt_keys({**base, "pixel_values": np.ones((1, 3, 4))}, {"image": 9})
    assert list(a[[0, 4, 5]]) == [5, 6, 7] and (a[1:4] < 0).all()
    assert common_prefix_length(a, b) == 1


# --- multi-turn ----------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["engine", "wide_engine"])
def test_second_turn_prefills_only_the_new_tokens_and_matches_a_cold_start(request, which):
    engine = request.getfixturevalue(which)
    first = engine.generate(FIRST, max_tokens=12, **GREEDY)
    messages = _second(first.text)
    warm = engine.generate(messages, max_tokens=12, **GREEDY)
    # After the first turn the cache was settled on the reply as the next prompt renders it.
    settled = _length(engine, [*FIRST, {"role": "assistant", "content": first.text}], False)
    total = _length(engine, messages)
    assert warm.stats.cached_tokens == settled
    assert warm.stats.prefilled_tokens == total - settled
    engine.prompt_cache.clear()
    cold = engine.generate(messages, max_tokens=12, **GREEDY)
    assert cold.stats.cached_tokens == 0 and cold.stats.prefilled_tokens == total
    assert warm.token_ids == cold.token_ids


def test_without_settling_thought_stripping_costs_only_the_last_reply(engine):
    tokenizer = engine.tokenizer
    reply = "<|channel>thought\nLet me check<channel|>The weather is sunny<turn|>"
    script = tokenizer.encode(reply)
    first = engine.generate(
        FIRST,
        max_tokens=40,
        enable_thinking=True,
        settle_cache=False,
        logits_processors=[forced(script)],
    )
    assert first.thinking == "Let me check"
    messages = _second(first.text, thinking=first.thinking)
    second = engine.generate(messages, max_tokens=8, enable_thinking=True, settle_cache=False)
    # The history renders the reply without its thought, so the cache rewinds to the start of
    # the first model turn (its snapshot) and re-prefills only from there.
    start = _turn_start(engine, FIRST, enable_thinking=True)
    total = _length(engine, messages, enable_thinking=True)
    assert second.stats.cached_tokens == start
    assert second.stats.prefilled_tokens == total - start
    assert start > total // 2  # the system prompt and first question are not re-run


def test_regenerate_rewinds_to_the_model_turn_and_repeats_greedy_output(engine):
    first = engine.generate(FIRST, max_tokens=12, **GREEDY)
    again = engine.generate(FIRST, max_tokens=12, **GREEDY)
    total = _length(engine, FIRST)
    assert again.token_ids == first.token_ids
    assert again.stats.cached_tokens == _turn_start(engine, FIRST)
    assert again.stats.prefilled_tokens == total - again.stats.cached_tokens
    assert again.stats.cached_tokens == _length(engine, FIRST, add_generation_prompt=False)


def test_editing_an_earlier_message_trims_to_the_longest_common_prefix(wide_engine):
    engine = wide_engine
    first = engine.generate(FIRST, max_tokens=8, **GREEDY)
    messages = _second(first.text)
    engine.generate(messages, max_tokens=8, **GREEDY)
    edited = [dict(m) for m in messages]
    edited[1]["content"] = "Hello, how are you today? What is the weather in Oslo?"
    ids_old = engine.processor.apply_chat_template(messages)["input_ids"][0]
    ids_new = engine.processor.apply_chat_template(edited)["input_ids"][0]
    common = common_prefix_length(ids_old, ids_new)
    result = engine.generate(edited, max_tokens=8, **GREEDY)
    assert result.stats.cached_tokens == common
    assert result.stats.prefilled_tokens == len(ids_new) - common
    engine.prompt_cache.clear()
    assert engine.generate(edited, max_tokens=8, **GREEDY).token_ids == result.token_ids


def test_editing_before_the_snapshot_of_a_wrapped_cache_starts_over_correctly(engine):
    first = engine.generate(FIRST, max_tokens=8, **GREEDY)
    edited = _second(first.text)
    edited[0] = {"role": "system", "content": "Nothing leaves the machine."}
    result = engine.generate(edited, max_tokens=8, **GREEDY)
    assert result.stats.cached_tokens < 8  # at most the shared <bos><|turn>system\n
    engine.prompt_cache.clear()
    assert engine.generate(edited, max_tokens=8, **GREEDY).token_ids == result.token_ids


def test_conversations_keep_their_own_caches_in_an_lru(tiny_checkpoint):
    engine = Engine.load(
        tiny_checkpoint, apply_limits=False, context_length=4096, max_cached_conversations=2
    )
    other = [{"role": "user", "content": "Transcribe the audio clip. Nothing leaves the machine."}]
    a1 = engine.generate(FIRST, max_tokens=6, conversation_id="a", **GREEDY)
    engine.generate(other, max_tokens=6, conversation_id="b", **GREEDY)
    a2 = engine.generate(_second(a1.text), max_tokens=6, conversation_id="a", **GREEDY)
    assert a2.stats.cached_tokens > 0.8 * _length(engine, _second(a1.text)) - 20
    engine.generate(other, max_tokens=6, conversation_id="c", **GREEDY)  # evicts "b" (oldest)
    assert set(engine.prompt_cache.entries) == {"a", "c"}
    # without a key, the entry sharing the longest prefix is found
    again = engine.generate(_second(a1.text), max_tokens=6, **GREEDY)
    assert again.stats.cached_tokens > 0
    assert again.token_ids == a2.token_ids


def test_a_different_image_of_the_same_size_is_not_reused(engine):
    from PIL import Image

    def ask(seed):
        pixels = (np.random.default_rng(seed).random((48, 48, 3)) * 255).astype(np.uint8)
        image = Image.fromarray(pixels)
        content = [{"type": "image", "image": image}, {"type": "text", "text": "Describe it."}]
        return [{"role": "user", "content": content}]

    engine.generate(ask(0), max_tokens=4, image_budget=70, **GREEDY)
    swapped = engine.generate(ask(1), max_tokens=4, image_budget=70, **GREEDY)
    ids = engine.processor.apply_chat_template(ask(1), image_budget=70)["input_ids"][0]
    first_image = int(np.flatnonzero(ids == engine.config.image_token_id)[0])
    assert swapped.stats.cached_tokens <= first_image - 1  # stops before the image block
    engine.prompt_cache.clear()
    cold = engine.generate(ask(1), max_tokens=4, image_budget=70, **GREEDY)
    assert cold.token_ids == swapped.token_ids
