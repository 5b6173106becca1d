"""The token loop on its own: chunked prefill with progress, decode, stop ids, stopping early."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from mlx_model.engine import Engine
from mlx_model.generate import generate_step, plan_chunks, prefill
from mlx_model.prompt import media_token_ids, render_prompt
from mlx_model.sampling import SamplingOptions, make_token_sampler
from tests.mlx_model.forced_tokens import forced

MESSAGES = [{"role": "user", "content": "The quick brown fox jumps over the lazy dog. " * 4}]


@pytest.fixture(scope="module")
def engine(tiny_checkpoint):
    return Engine.load(tiny_checkpoint, apply_limits=False, context_length=2048, prefill_chunk=8)


@pytest.fixture
def prompt(engine):
    return render_prompt(engine.processor, MESSAGES, media_token_ids(engine.config))


def greedy():
    return make_token_sampler(SamplingOptions(temperature=0.0))


def test_generate_step_gives_the_engines_greedy_tokens(engine, prompt):
    sampler, _ = greedy()
    steps = []
    tokens = list(
        generate_step(
            engine.model, prompt, engine.model.make_cache(), sampler=sampler, max_tokens=6,
            prefill_step_size=8, prompt_progress_callback=lambda done, total: steps.append(done),
        )
    )  # fmt: skip
    engine.prompt_cache.clear()
    reference = engine.generate(MESSAGES, max_tokens=6, temperature=0.0, settle_cache=False)
    assert tokens == reference.token_ids[: len(tokens)] and len(tokens) == len(reference.token_ids)
    assert steps == [end for _, end in plan_chunks(prompt, 0, 8)] and steps[-1] == prompt.length


def test_a_stop_id_is_yielded_and_ends_the_loop(engine, prompt):
    sampler, _ = greedy()
    stop = engine.tokenizer.token_to_id("<turn|>")
    word = engine.tokenizer.encode("fox")[0]
    tokens = list(
        generate_step(
            engine.model, prompt, engine.model.make_cache(), sampler=sampler, max_tokens=50,
            logits_processors=[forced([word, word, stop, word])], stop_ids=frozenset({stop}),
        )
    )  # fmt: skip
    assert tokens == [word, word, stop]


def test_processors_see_the_prompt_then_each_generated_id_and_change_nothing_by_looking(
    engine, prompt
):
    sampler, _ = greedy()
    seen: list[list[int]] = []

    def watch(tokens: mx.array, logits: mx.array) -> mx.array:
        seen.append(np.asarray(tokens).tolist())  # read on the host, as a grammar does
        return logits

    def run(processors):
        return list(
            generate_step(
                engine.model, prompt, engine.model.make_cache(), sampler=sampler, max_tokens=5,
                logits_processors=processors,
            )
        )  # fmt: skip

    watched = run([watch])
    assert watched == run([])
    head = prompt.ids.tolist()
    assert seen == [head + watched[:i] for i in range(len(watched))]


def test_should_stop_ends_the_loop_between_steps(engine, prompt):
    sampler, _ = greedy()
    count = 0

    def should_stop() -> bool:
        return count >= 3

    for _ in generate_step(
        engine.model, prompt, engine.model.make_cache(), sampler=sampler, max_tokens=100,
        should_stop=should_stop,
    ):  # fmt: skip
        count += 1
    assert count == 3


def test_prefill_can_give_the_hidden_states_a_speculative_loop_starts_from(engine, prompt):
    *_, (done, (logits, hidden)) = prefill(
        engine.model, prompt, engine.model.make_cache(), chunk_size=8, return_hidden=True
    )
    whole_logits, whole_hidden = engine.model(
        mx.array(prompt.ids[None]), cache=engine.model.make_cache(), logits_to_keep=1,
        return_hidden=True,
    )  # fmt: skip
    assert done == prompt.length
    assert np.allclose(np.array(logits), np.array(whole_logits), atol=1e-4)
    assert np.allclose(np.array(hidden[:, -1]), np.array(whole_hidden[:, -1]), atol=1e-4)
