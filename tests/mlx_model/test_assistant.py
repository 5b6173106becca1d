"""The drafter (`gemma4_unified_assistant`) against transformers' `Gemma4UnifiedAssistantForCausalLM`.

The reference drafts are made by transformers' own candidate generator
(`SinglePositionMultiTokenCandidateGenerator`) from transformers' target outputs; ours by
`MTPDrafter` from our target's caches. Two gates:

- the drafter alone, fed transformers' target state (hidden state, shared K/V, embeddings):
  relative error of the draft logits <= 1e-4 (float32), both LM-head kinds;
- end to end (our target's caches and hidden state, through `target_kv`): the same draft
  tokens, and the logits within 1e-3: the random tiny target's own float32 error (~5e-6 on
  its hidden state, see docs/MODEL.md) is amplified by the random drafter.
"""

from __future__ import annotations

import json
import warnings

import mlx.core as mx
import numpy as np
import pytest

from mlx_model.convert import convert
from mlx_model.gemma4_assistant import AssistantConfig, SharedKV, sliding_window_mask
from mlx_model.loading import CheckpointError, load_drafter, load_model
from mlx_model.speculative import (
    DrafterPrecisionWarning,
    MTPDrafter,
    check_compatible,
    precision_mismatches,
)
from mlx_model.testing.checkpoint_factory import TinyAssistantSizes, write_tiny_assistant_checkpoint

from .conftest import relative_error

torch = pytest.importorskip("torch", reason="the reference stack is the dev extra")
transformers = pytest.importorskip("transformers")

DRAFTER_TOL = 1e-4
END_TO_END_TOL = 1e-3
K = 4


@pytest.fixture(scope="module")
def assistants(tiny_checkpoint, tiny_assistant, tiny_assistant_sparse, tmp_path_factory):
    """Drafter folders by kind: dense head, sparse head, dense in transformers' "all" mode
    (sliding window halved + 1, so the drafter sees fewer keys than the target keeps)."""
    all_mode = write_tiny_assistant_checkpoint(
        tmp_path_factory.mktemp("tiny-assistant-all"),
        tiny_checkpoint,
        sizes=TinyAssistantSizes(use_bidirectional_attention="all"),
        seed=3,
    )
    return {"dense": tiny_assistant, "sparse": tiny_assistant_sparse, "all_mode": all_mode}


def _hf_assistant(folder):
    model = transformers.Gemma4UnifiedAssistantForCausalLM.from_pretrained(
        folder, dtype=torch.float32
    ).eval()
    model.generation_config.num_assistant_tokens = K
    return model


def _hf_state(hf_model, ids: np.ndarray, steps: str):
    """transformers' target state: `prefill` (the prompt), `verify` (then a forward of 1 + K
    tokens, all kept) or `decode` (then 3 one-token steps). Returns (outputs, sequence with
    the next token, n_last_matches, tokens fed after the prompt)."""
    kw = {"use_cache": True, "output_hidden_states": True, "return_shared_kv_states": True}
    with torch.no_grad():
        out = hf_model(input_ids=torch.from_numpy(ids), **kw)
        seq = ids[0].tolist()
        fed: list[list[int]] = []
        nxt = int(out.logits[0, -1].argmax())
        rng = np.random.default_rng(len(seq))
        if steps == "verify":
            chunk = [nxt] + [int(t) for t in rng.integers(30, 300, K)]
            out = hf_model(input_ids=torch.tensor([chunk]), cache=out.cache, **kw)
            seq += chunk
            fed.append(chunk)
            nxt = int(out.logits[0, -1].argmax())
        elif steps == "decode":
            for _ in range(3):
                out = hf_model(input_ids=torch.tensor([[nxt]]), cache=out.cache, **kw)
                seq.append(nxt)
                fed.append([nxt])
                nxt = int(out.logits[0, -1].argmax())
    last = out.hidden_states[-1].shape[1] - 1
    return out, seq + [nxt], last, fed


def _hf_drafts(hf_model, hf_assistant, out, seq, last, prefill: bool):
    from transformers import GenerationConfig
    from transformers.generation.candidate_generator import (
        SinglePositionMultiTokenCandidateGenerator,
    )

    gen = SinglePositionMultiTokenCandidateGenerator(
        hf_assistant, hf_model.get_input_embeddings(), GenerationConfig(max_length=10_000)
    )
    gen.is_main_model_prefill = prefill
    with torch.no_grad():
        ids, logits = gen.get_candidates(torch.tensor([seq]), {}, out, False, last)
    return ids[0, -K:].tolist(), logits[0].float().numpy()


def _draft(drafter, caches, token: int, hidden) -> tuple[list[int], np.ndarray]:
    drafter.start(caches, int(caches[0].offset))
    tok, h, toks, rows = mx.array([token]), hidden, [], []
    for _ in range(K):
        row, h = drafter.step(tok, h)
        tok = mx.argmax(row, axis=-1)
        toks.append(int(tok.item()))
        rows.append(np.array(row[0]))
    return toks, np.stack(rows)


def _prompt(n: int) -> np.ndarray:
    return np.random.default_rng(n).integers(30, 300, size=(1, n))


def test_assistant_config_reads_the_checkpoint_layout(tiny_assistant, tiny_checkpoint):
    raw = json.loads((tiny_assistant / "config.json").read_text())
    config = AssistantConfig.from_dict(raw)
    target = json.loads((tiny_checkpoint / "config.json").read_text())
    assert config.backbone_hidden_size == target["text_config"]["hidden_size"]
    assert all(spec.kv_sharing == "reuse" for spec in config.text_config.layers)


def test_unset_kv_sharing_means_every_layer_shares_as_in_transformers(tiny_assistant):
    raw = json.loads((tiny_assistant / "config.json").read_text())
    del raw["text_config"]["num_kv_shared_layers"]
    config = AssistantConfig.from_dict(raw)
    assert all(not spec.has_kv_projections for spec in config.text_config.layers)


def test_a_drafter_layer_with_its_own_keys_is_refused(tiny_assistant, tmp_path):
    raw = json.loads((tiny_assistant / "config.json").read_text())
    raw["text_config"]["num_kv_shared_layers"] = 1
    (tmp_path / "config.json").write_text(json.dumps(raw))
    (tmp_path / "model.safetensors").write_bytes(
        (tiny_assistant / "model.safetensors").read_bytes()
    )
    with pytest.raises(CheckpointError, match="num_kv_shared_layers"):
        load_drafter(tmp_path)


def test_transformers_loads_the_factory_drafter_with_nothing_missing(tiny_assistant_sparse):
    _, info = transformers.Gemma4UnifiedAssistantForCausalLM.from_pretrained(
        tiny_assistant_sparse, dtype=torch.float32, output_loading_info=True
    )
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set()


@pytest.mark.parametrize("kind", ["dense", "sparse", "all_mode"])
@pytest.mark.parametrize("prompt_len", [10, 40])
def test_draft_logits_match_transformers_given_the_same_target_state(
    hf_model, assistants, kind, prompt_len
):
    """Fed transformers' own hidden state, K/V and embeddings; a prompt past the window
    (16) exercises the sliding layers' mask."""
    hf_assistant = _hf_assistant(assistants[kind])
    out, seq, last, _ = _hf_state(hf_model, _prompt(prompt_len), "prefill")
    ref_tokens, ref = _hf_drafts(hf_model, hf_assistant, out, seq, last, prefill=True)

    drafter = load_drafter(assistants[kind], lazy=False)
    shared = {}
    for layer_type, (k, v) in out.shared_kv_states.items():
        keys, values = mx.array(k.numpy()), mx.array(v.numpy())
        mask = sliding_window_mask(keys.shape[2], drafter.window)
        shared[layer_type] = SharedKV(
            keys, values, mask if layer_type == "sliding_attention" else None
        )
    embed = hf_model.get_input_embeddings()
    hidden, token, rows = mx.array(out.hidden_states[-1][:, -1:].numpy()), seq[-1], []
    for _ in range(K):
        with torch.no_grad():
            e = mx.array(embed(torch.tensor([[token]])).numpy())
        hidden, logits = drafter(mx.concatenate([e, hidden], axis=-1), shared, len(seq) - 1)
        rows.append(np.array(logits[0, 0]))
        token = int(rows[-1].argmax())
    ours = np.stack(rows)
    assert relative_error(ours, ref) <= DRAFTER_TOL
    assert ours.argmax(-1).tolist() == ref_tokens


@pytest.mark.parametrize("kind", ["dense", "sparse", "all_mode"])
@pytest.mark.parametrize("state", ["prefill", "verify", "decode"])
def test_drafts_from_our_target_match_transformers_end_to_end(
    our_model, hf_model, assistants, kind, state
):
    """Our target's caches after a prefill past the window, a verify forward (rotating
    buffer in temporal order) or decode steps (wrapped ring buffer) feed the drafter."""
    hf_assistant = _hf_assistant(assistants[kind])
    ids = _prompt(40)
    out, seq, last, fed = _hf_state(hf_model, ids, state)
    ref_tokens, ref = _hf_drafts(hf_model, hf_assistant, out, seq, last, state == "prefill")

    caches = our_model.make_cache()
    _, hidden = our_model(mx.array(ids), cache=caches, return_hidden=True, logits_to_keep=1)
    for chunk in fed:
        _, hidden = our_model(mx.array([chunk]), cache=caches, return_hidden=True)
    drafter = MTPDrafter(load_drafter(assistants[kind], lazy=False), our_model)
    tokens, ours = _draft(drafter, caches, seq[-1], hidden[:, -1:])
    assert tokens == ref_tokens
    assert relative_error(ours, ref) <= END_TO_END_TOL


def test_pre_quantized_drafter_loads_as_stored(tiny_assistant, tiny_checkpoint, tmp_path):
    """A 4-bit conversion (`gemma-desk convert` writes mlx-vlm's layout) gives exactly the
    drafter that quantizing on load gives."""
    converted = convert(tiny_assistant, tmp_path / "assistant-4bit", bits=4, group_size=32)
    config = json.loads((converted / "config.json").read_text())
    assert config["quantization"]["bits"] == 4
    stored = load_drafter(converted)
    on_load = load_drafter(tiny_assistant, bits=4, group_size=32)
    target = load_model(tiny_checkpoint)
    caches = target.make_cache()
    _, hidden = target(mx.array(_prompt(12)), cache=caches, return_hidden=True, logits_to_keep=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DrafterPrecisionWarning)
        a = _draft(MTPDrafter(stored, target), caches, 50, hidden)[1]
        b = _draft(MTPDrafter(on_load, target), caches, 50, hidden)[1]
    np.testing.assert_array_equal(a, b)


def test_pre_quantized_sparse_drafter_routes_through_the_quantized_embedding(
    tiny_assistant_sparse, our_model, tmp_path
):
    converted = convert(tiny_assistant_sparse, tmp_path / "sparse-8bit", bits=8, group_size=32)
    drafter = load_drafter(converted)
    caches = our_model.make_cache()
    _, hidden = our_model(mx.array(_prompt(12)), cache=caches, return_hidden=True, logits_to_keep=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DrafterPrecisionWarning)
        quantized = _draft(MTPDrafter(drafter, our_model), caches, 50, hidden)
    exact = _draft(MTPDrafter(load_drafter(tiny_assistant_sparse), our_model), caches, 50, hidden)
    assert quantized[0][0] == exact[0][0]
    assert relative_error(quantized[1][:1], exact[1][:1]) < 0.05


def test_load_model_refuses_a_drafter_and_load_drafter_refuses_a_model(
    tiny_assistant, tiny_checkpoint
):
    with pytest.raises(CheckpointError, match="load_drafter"):
        load_model(tiny_assistant)
    with pytest.raises(CheckpointError, match="not a drafter"):
        load_drafter(tiny_checkpoint)


def test_a_drafter_for_another_model_is_refused_with_the_sizes(tiny_assistant, tmp_path):
    from mlx_model.testing.checkpoint_factory import TinyModelSizes, write_tiny_checkpoint

    other = write_tiny_checkpoint(
        tmp_path / "other", sizes=TinyModelSizes(hidden_size=48), with_vision=False
    )
    with pytest.raises(ValueError, match="hidden size of 64"):
        check_compatible(load_drafter(tiny_assistant), load_model(other))


def test_precision_mismatch_is_detected_and_warned(tiny_assistant, tiny_checkpoint):
    target = load_model(tiny_checkpoint)
    assert precision_mismatches(load_drafter(tiny_assistant), target) == []
    bf16 = load_drafter(tiny_assistant, dtype="bfloat16")
    assert any("bfloat16" in m for m in precision_mismatches(bf16, target))
    coarse = load_drafter(tiny_assistant, bits=4, group_size=32)
    with pytest.warns(DrafterPrecisionWarning, match="quantized to 4 bits"):
        MTPDrafter(coarse, target)
    # a float drafter beside a quantized target is the published pairing: no warning
    quantized_target = load_model(tiny_checkpoint, bits=4, group_size=32)
    assert precision_mismatches(load_drafter(tiny_assistant), quantized_target) == []
