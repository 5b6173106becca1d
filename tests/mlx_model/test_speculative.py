"""The speculative token loop: exactly the plain loop's output, caches rolled back exactly.

Plain decoding here is the engine's rule: `sampling.choose_token` on the last logits with the
history so far, one token per forward. Drafters: the real multi-token-prediction drafter
(random weights: it rarely agrees) and a scripted one that proposes the plain continuation
with a given probability (so whole blocks are accepted, and rejected at chosen places).
"""

from __future__ import annotations

import math

import mlx.core as mx
import numpy as np
import pytest
from mlx_lm.models.cache import KVCache
from mlx_lm.sample_utils import greedy_sampler, make_repetition_penalty

from mlx_model.loading import load_drafter
from mlx_model.sampling import choose_token
from mlx_model.speculative import (
    DraftLengthController,
    DraftPolicy,
    MTPDrafter,
    SpeculativeStats,
    TokenSampler,
    rollback,
    speculative_generate_step,
)
from tests.mlx_model.drafters import ScriptedDrafter

# A divergence from plain decoding is accepted only where plain decoding's top two
# log-probabilities are closer than float32 rounding of the logits can tell apart.
NEAR_TIE = 1e-4


# --------------------------------------------------------------------------- helpers


def prefill(model, inputs: dict):
    caches = model.make_cache()
    logits, hidden = model(**inputs, cache=caches, return_hidden=True, logits_to_keep=1)
    return caches, logits, hidden


def plain_decode(model, caches, logits, history, max_tokens, eos=(), processors=()):
    """(tokens, top-2 margin of the log-probabilities at each step), the engine's way."""
    hist = list(history)
    logits = logits[:, -1, :]
    tokens, margins = [], []
    while True:
        processed = logits.astype(mx.float32)
        for p in processors:
            processed = p(mx.array(hist), processed)
        top2 = np.sort(np.array(processed[0]))[-2:]
        margins.append(float(top2[1] - top2[0]))
        token = int(choose_token(logits, hist, greedy_sampler, list(processors)).item())
        tokens.append(token)
        if token in eos or len(tokens) >= max_tokens:
            return tokens, margins
        logits = model(mx.array([[token]]), cache=caches)[:, -1, :]
        hist.append(token)


def assert_same_or_near_tie(plain, margins, spec):
    for i, (a, b) in enumerate(zip(plain, spec, strict=False)):
        if a != b:
            assert margins[i] < NEAR_TIE, f"diverged at {i} with top-2 margin {margins[i]:.2e}"
            return
    assert len(plain) == len(spec)


def speculate(model, drafter, caches, logits, hidden, history, **kw):
    stats = kw.pop("stats", SpeculativeStats())
    gen = speculative_generate_step(
        model, drafter, caches, logits, hidden, history=history, stats=stats, **kw
    )
    return list(gen), stats


FIXED = DraftPolicy(max_draft=4, adaptive=False)


@pytest.fixture(scope="module")
def mtp_drafter(our_model, tiny_assistant):
    return MTPDrafter(load_drafter(tiny_assistant, lazy=False), our_model)


def _text_prompt(n: int, seed: int) -> dict:
    ids = np.random.default_rng(seed).integers(30, 300, size=(1, n))
    return {"input_ids": ids}


def _reference(model, inputs, max_tokens, **kw):
    caches, logits, _ = prefill(model, inputs)
    history = inputs["input_ids"][0].tolist()
    tokens, margins = plain_decode(model, caches, logits, history, max_tokens, **kw)
    return history, tokens, margins, caches


# --------------------------------------------------------------------------- greedy identity


@pytest.mark.parametrize("drafter_kind", ["mtp", "scripted", "scripted_adaptive"])
@pytest.mark.parametrize("prompt", ["text_past_the_window", "image"])
def test_greedy_output_is_plain_decoding_token_for_token(
    our_model, mtp_drafter, prompt_builder, drafter_kind, prompt
):
    """48 new tokens wrap the 16-token sliding window three times."""
    if prompt == "image":
        inputs = prompt_builder(5).text(4).image(rows=3, cols=4, budget=14).text(5).build().inputs()
    else:
        inputs = _text_prompt(20, seed=1)
    n = 48
    history, plain, margins, plain_caches = _reference(our_model, inputs, n)
    vocab = our_model.config.text_config.vocab_size
    policy = FIXED
    if drafter_kind == "mtp":
        drafter = mtp_drafter
    else:
        drafter = ScriptedDrafter(history + plain, vocab, agree=0.75)
        if drafter_kind == "scripted_adaptive":
            policy = DraftPolicy(max_draft=4, measure_costs=False)
    caches, logits, hidden = prefill(our_model, inputs)
    spec, stats = speculate(
        our_model, drafter, caches, logits, hidden, history, max_tokens=n, policy=policy
    )
    assert_same_or_near_tie(plain, margins, spec)
    assert caches[0].offset == plain_caches[0].offset == len(history) + n - 1
    assert stats.drafted > 0
    if drafter_kind != "mtp":
        assert stats.accepted > stats.drafted / 3


def test_stop_token_inside_an_accepted_block_ends_there(our_model):
    inputs = _text_prompt(12, seed=2)
    history, plain, _, _ = _reference(our_model, inputs, 30)
    stop = plain[9]
    first = plain.index(stop)
    vocab = our_model.config.text_config.vocab_size
    drafter = ScriptedDrafter(history + plain, vocab, agree=1.0)
    caches, logits, hidden = prefill(our_model, inputs)
    spec, _ = speculate(
        our_model, drafter, caches, logits, hidden, history,
        max_tokens=30, eos_token_ids=[stop], policy=FIXED,
    )  # fmt: skip
    assert spec == plain[: first + 1]
    assert caches[0].offset == len(history) + first  # the stop token itself is not fed


def test_max_tokens_is_exact_when_a_block_would_overshoot(our_model):
    inputs = _text_prompt(12, seed=3)
    history, plain, _, _ = _reference(our_model, inputs, 7)
    drafter = ScriptedDrafter(history + plain + [0] * 8, 640, agree=1.0)
    caches, logits, hidden = prefill(our_model, inputs)
    spec, stats = speculate(
        our_model, drafter, caches, logits, hidden, history, max_tokens=7, policy=FIXED
    )
    assert spec == plain and len(spec) == 7
    assert caches[0].offset == len(history) + 6
    assert stats.tokens == 7


def test_closing_the_generator_mid_block_rolls_the_caches_back(our_model):
    inputs = _text_prompt(12, seed=4)
    history, plain, _, _ = _reference(our_model, inputs, 20)
    drafter = ScriptedDrafter(history + plain, 640, agree=1.0)
    caches, logits, hidden = prefill(our_model, inputs)
    gen = speculative_generate_step(
        our_model, drafter, caches, logits, hidden, history=history, max_tokens=20, policy=FIXED
    )
    got = [next(gen) for _ in range(4)]  # inside the first accepted block
    gen.close()
    assert got == plain[:4]
    assert caches[0].offset == len(history) + 3


def test_prompt_cache_reuse_across_turns_matches_plain(our_model):
    """Turn 2 prefills the last reply token and a new message on top of the caches turn 1
    left (a multi-token chunk over rotating buffers the loop rolled back) and decodes again."""
    inputs = _text_prompt(14, seed=5)
    history, plain1, _, plain_caches = _reference(our_model, inputs, 25)
    message = np.random.default_rng(6).integers(30, 300, size=9).tolist()
    turn2 = [plain1[-1], *message]
    plain_logits = our_model(mx.array([turn2]), cache=plain_caches)
    history2 = history + plain1 + message
    plain2, margins = plain_decode(our_model, plain_caches, plain_logits, history2, 25)

    caches, logits, hidden = prefill(our_model, inputs)
    drafter = ScriptedDrafter(history + plain1, 640, agree=0.8, seed=1)
    spec1, _ = speculate(
        our_model, drafter, caches, logits, hidden, history, max_tokens=25, policy=FIXED
    )
    assert spec1 == plain1
    logits, hidden = our_model(mx.array([turn2]), cache=caches, return_hidden=True)
    np.testing.assert_allclose(np.array(logits), np.array(plain_logits), atol=1e-4)
    drafter = ScriptedDrafter(history2 + plain2, 640, agree=0.8, seed=2)
    spec2, _ = speculate(
        our_model,
        drafter,
        caches,
        logits[:, -1:],
        hidden[:, -1:],
        history2,
        max_tokens=25,
        policy=FIXED,
    )
    assert_same_or_near_tie(plain2, margins, spec2)


def test_logits_processors_apply_at_every_verified_position(our_model):
    """A history-dependent processor (repetition penalty) and suppressed tokens: the loop
    must give each verified position its own history, as the plain loop does."""
    inputs = _text_prompt(12, seed=7)
    _, unconstrained, _, _ = _reference(our_model, inputs, 30)
    banned = mx.array(sorted(set(unconstrained[:10])))

    def suppress(tokens, logits):
        return logits.at[:, banned].add(-1e9)

    processors = [make_repetition_penalty(1.6, 8), suppress]
    history, plain, margins, _ = _reference(our_model, inputs, 30, processors=processors)
    assert not set(plain) & set(unconstrained[:10])
    drafter = ScriptedDrafter(history + plain, 640, agree=0.8)
    caches, logits, hidden = prefill(our_model, inputs)
    spec, stats = speculate(
        our_model, drafter, caches, logits, hidden, history,
        max_tokens=30, logits_processors=processors, policy=FIXED,
    )  # fmt: skip
    assert_same_or_near_tie(plain, margins, spec)
    assert stats.accepted > 0


def test_stats_count_drafted_and_accepted_tokens(our_model):
    inputs = _text_prompt(12, seed=8)
    history, plain, _, _ = _reference(our_model, inputs, 21)
    drafter = ScriptedDrafter(history + plain, 640, agree=1.0)
    caches, logits, hidden = prefill(our_model, inputs)
    _, stats = speculate(
        our_model, drafter, caches, logits, hidden, history, max_tokens=21, policy=FIXED
    )
    # 1 token from the prompt, then 4 rounds of 4 accepted drafts + the target's own token
    assert (stats.rounds, stats.drafted, stats.accepted) == (4, 16, 16)
    assert stats.acceptance_rate == 1.0 and stats.mean_accepted_length == 4.0
    assert stats.as_dict()["decode_tokens_per_s"] > 0


# --------------------------------------------------------------------------- rollback


@pytest.mark.parametrize("prompt_len", [5, 40])
@pytest.mark.parametrize("kv_bits", [None, 8])
def test_rollback_leaves_the_caches_as_if_only_the_accepted_tokens_were_fed(
    our_model, prompt_len, kv_bits
):
    prompt = mx.array(_text_prompt(prompt_len, seed=9)["input_ids"])
    block = [31, 32, 33, 34, 35]
    spec = our_model.make_cache(kv_bits=kv_bits)
    our_model(prompt, cache=spec)
    our_model(mx.array([block]), cache=spec)
    rollback(spec, 3)
    plain = our_model.make_cache(kv_bits=kv_bits)
    our_model(prompt, cache=plain)
    our_model(mx.array([block[:2]]), cache=plain)
    assert spec[0].offset == plain[0].offset
    for t in [40, 41, 42, 43] * 5:  # one-token steps, wrapping the window
        a = our_model(mx.array([[t]]), cache=spec)
        b = our_model(mx.array([[t]]), cache=plain)
        np.testing.assert_allclose(np.array(a), np.array(b), atol=1e-6)
    a = our_model(mx.array([block]), cache=spec)  # and a multi-token chunk
    b = our_model(mx.array([block]), cache=plain)
    np.testing.assert_allclose(np.array(a), np.array(b), atol=1e-6)


# --------------------------------------------------------------------------- draft length


def test_drafting_switches_off_when_nothing_is_accepted_and_probes_again():
    policy = DraftPolicy(max_draft=4, measure_costs=False, probe_interval=5)
    controller = DraftLengthController(policy)
    ks = []
    for _ in range(40):
        k = controller.next_k()
        ks.append(k)
        if k:
            controller.observe_round(k, 0, 0.0)
        else:
            controller.observe_plain(0.0)
    assert ks[0] > 0 and 0 in ks
    off = ks.index(0)
    probes = [i for i, k in enumerate(ks) if i > off and k]
    assert probes and all(ks[i] == 1 for i in probes)
    assert all(b - a == policy.probe_interval + 1 for a, b in zip(probes, probes[1:], strict=False))


def test_draft_length_grows_with_acceptance_and_shrinks_without():
    controller = DraftLengthController(DraftPolicy(max_draft=4, measure_costs=False))
    for _ in range(10):
        k = controller.next_k()
        controller.observe_round(k, k, 0.0)
    assert controller.next_k() == 4
    for _ in range(15):  # then each round keeps one draft: per-token acceptance 1/2
        k = controller.next_k()
        controller.observe_round(k, min(k, 1), 0.0)
    assert controller.acceptance == pytest.approx(0.5, abs=0.1)
    assert 1 <= controller.next_k() < 4


def test_measured_costs_switch_drafting_off_when_rounds_are_too_slow():
    controller = DraftLengthController(DraftPolicy(max_draft=2, probe_interval=1000))
    assert controller.next_k() == 0  # a plain step first: the unit of cost
    controller.observe_plain(0.01)
    for _ in range(8):
        k = controller.next_k()
        if not k:
            break
        controller.observe_round(k, k - 1, 0.01 * 4 * k)  # rounds cost 4 plain steps a draft
    assert controller.next_k() == 0


def test_a_random_drafter_is_switched_off_by_the_adaptive_policy(our_model, mtp_drafter):
    inputs = _text_prompt(10, seed=10)
    caches, logits, hidden = prefill(our_model, inputs)
    policy = DraftPolicy(max_draft=4, measure_costs=False, probe_interval=8)
    history = inputs["input_ids"][0].tolist()
    _, stats = speculate(
        our_model, mtp_drafter, caches, logits, hidden, history, max_tokens=60, policy=policy
    )
    assert stats.acceptance_rate < 0.2
    assert stats.plain_steps > 30


# --------------------------------------------------------------------------- sampling


class MarkovTarget:
    """A stand-in target whose logits at a position depend only on that position's token."""

    def __init__(self, table: np.ndarray):
        self.table = mx.array(table)

    def make_cache(self):
        return [KVCache()]

    def __call__(self, ids, cache, return_hidden=False, **_):
        ids = mx.array(ids)
        L = ids.shape[1]
        keys = mx.zeros((1, 1, L, 2))
        cache[0].update_and_fetch(keys, keys)
        logits = self.table[ids]
        return (logits, mx.zeros((1, L, 2))) if return_hidden else logits


class MarkovDrafter:
    def __init__(self, table: np.ndarray):
        self.table = mx.array(table)

    def start(self, caches, position):
        pass

    def step(self, token, hidden):
        return self.table[token.reshape(-1)], hidden


def _chi2_critical(df: int, z: float = 3.090) -> float:
    """Upper critical value of chi-square at alpha = 0.001 (z = 3.090), Wilson-Hilferty."""
    c = 2 / (9 * df)
    return df * (1 - c + z * math.sqrt(c)) ** 3


def _transition_counts(target, drafter, sampler, n_tokens, vocab):
    """Counts of (token, next token) over one long speculative run (drafting 2 a round)."""
    caches = target.make_cache()
    logits, hidden = target(mx.array([[0]]), caches, return_hidden=True)
    policy = DraftPolicy(max_draft=2, adaptive=False)
    tokens = [0] + list(
        speculative_generate_step(
            target, drafter, caches, logits, hidden,
            sampler=sampler, max_tokens=n_tokens, policy=policy,
        )
    )  # fmt: skip
    counts = np.zeros((vocab, vocab))
    np.add.at(counts, (tokens[:-1], tokens[1:]), 1)
    return counts


def _chi_square(counts: np.ndarray, probs: np.ndarray) -> tuple[float, int]:
    """Pearson's statistic of each row's counts against that row's probabilities, summed,
    and its degrees of freedom; a count where the probability is 0 makes it infinite."""
    expected = counts.sum(axis=1, keepdims=True) * probs
    if (counts[expected == 0] > 0).any():
        return math.inf, 1
    keep = expected > 0
    chi2 = float((((counts - expected) ** 2)[keep] / expected[keep]).sum())
    return chi2, int(keep.sum() - (counts.sum(axis=1) > 0).sum())


def _markov_pair(vocab: int = 4):
    rng = np.random.default_rng(0)
    target = rng.normal(0, 1.2, (vocab, vocab)).astype(np.float32)
    drafter = rng.normal(0, 1.2, (vocab, vocab)).astype(np.float32)
    return target, drafter


SAMPLER = TokenSampler(temperature=0.8, top_k=3)


def _chain(table: np.ndarray) -> np.ndarray:
    return np.exp(np.array(SAMPLER.log_probs(mx.array(table)), dtype=np.float64))


def test_speculative_sampling_keeps_the_target_distribution():
    """The target is a Markov chain over a 4-token vocabulary sampled at temperature 0.8 with
    top-k 3; the drafter is a different chain. Over 1500 tokens (fixed seed), the observed
    transitions must fit the target's filtered chain: Pearson chi-square below the critical
    value at alpha = 0.001 (26.3 for the 8 degrees of freedom)."""
    target, drafter = _markov_pair()
    mx.random.seed(1234)
    counts = _transition_counts(MarkovTarget(target), MarkovDrafter(drafter), SAMPLER, 1500, 4)
    chi2, df = _chi_square(counts, _chain(target))
    assert chi2 < _chi2_critical(df), f"chi-square {chi2:.1f} with {df} degrees of freedom"


def test_the_distribution_test_catches_resampling_from_p_instead_of_the_residual(monkeypatch):
    """Power check of the test above: the classic mistake (after a rejection, draw from the
    target's p instead of norm(max(p - q, 0))) biases the output, and the same harness and
    threshold reject it (chi-square ~150 against 26.3)."""
    import mlx_model.speculative as speculative

    def resample_from_p(drafts, draft_logp, target_logp):
        k = drafts.shape[0]
        p, q = mx.exp(target_logp), mx.exp(draft_logp)
        p_d = mx.take_along_axis(p[:k], drafts[:, None], axis=-1)[:, 0]
        q_d = mx.take_along_axis(q, drafts[:, None], axis=-1)[:, 0]
        accepted = (mx.random.uniform(shape=(k,)) * q_d < p_d).tolist() + [False]
        n = accepted.index(False)
        return n, int(mx.random.categorical(mx.log(p[n])).item())

    monkeypatch.setattr(speculative, "_speculative_sample", resample_from_p)
    target, drafter = _markov_pair()
    mx.random.seed(1234)
    counts = _transition_counts(MarkovTarget(target), MarkovDrafter(drafter), SAMPLER, 1500, 4)
    chi2, df = _chi_square(counts, _chain(target))
    assert chi2 > _chi2_critical(df)


def test_rolling_back_a_whole_block_past_a_full_window_is_refused(our_model):
    """The loop always keeps a verified block's first token; dropping all of it from a
    wrapped sliding buffer would leave fewer keys than the window needs."""
    caches = our_model.make_cache()
    our_model(mx.array(_text_prompt(40, seed=11)["input_ids"]), cache=caches)
    our_model(mx.array([[31, 32, 33]]), cache=caches)
    with pytest.raises(RuntimeError, match="whole block"):
        rollback(caches, 3)


def test_closing_while_drafting_is_off_keeps_the_started_plain_step(our_model):
    """With drafting off the loop starts the next step before yielding a token, as the plain
    loop does; closing it then leaves that token in the caches, and they stay consistent."""
    inputs = _text_prompt(12, seed=12)
    history, plain, _, _ = _reference(our_model, inputs, 12)
    drafter = ScriptedDrafter(history + plain, 640, agree=0.0)
    policy = DraftPolicy(max_draft=2, measure_costs=False, prior_acceptance=0.01)
    caches, logits, hidden = prefill(our_model, inputs)
    gen = speculative_generate_step(
        our_model, drafter, caches, logits, hidden, history=history, max_tokens=30, policy=policy
    )
    got = [next(gen) for _ in range(10)]
    gen.close()
    assert got == plain[:10]
    assert caches[0].offset == len(history) + 10
    nxt = our_model(mx.array([[plain[10]]]), cache=caches)
    assert int(mx.argmax(nxt[0, -1]).item()) == plain[11]


def test_a_grammar_constraint_follows_drafts_and_rejections(
    our_model, tiny_processor, grammar_vocabulary
):
    """The constrained-decoding processor keeps llguidance state per id: verifying drafts
    advances it, a rejection must roll it back. Same JSON answer as plain decoding."""
    from mlx_model.constrained import OutputConstraint

    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 5},
            "n": {"type": "integer", "minimum": 0, "maximum": 99},
        },
        "required": ["name", "n"],
    }
    messages = [{"role": "user", "content": "Describe the weather in Paris."}]
    ids = tiny_processor.apply_chat_template(messages)["input_ids"].reshape(-1).tolist()
    inputs = {"input_ids": np.array([ids])}
    eos = tiny_processor.tokenizer.eos_token_ids

    def constrained():
        constraint = grammar_vocabulary.constraint(OutputConstraint.json_schema(schema))
        return [constraint.logits_processor()]

    history, plain, margins, _ = _reference(
        our_model, inputs, 60, eos=eos, processors=constrained()
    )
    assert plain[-1] in eos
    drafter = ScriptedDrafter(history + plain, 640, agree=0.6, seed=3)
    caches, logits, hidden = prefill(our_model, inputs)
    spec, stats = speculate(
        our_model, drafter, caches, logits, hidden, history,
        max_tokens=60, eos_token_ids=eos, logits_processors=constrained(), policy=FIXED,
    )  # fmt: skip
    assert_same_or_near_tie(plain, margins, spec)
    assert stats.accepted > 0 and stats.accepted < stats.drafted
