"""Reading config.json into per-layer settings, checked against transformers' own derivation."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from mlx_model.config import (
    FULL,
    SLIDING,
    ConfigError,
    ModelConfig,
    load_config,
    read_checkpoint_config,
)

REFERENCE_12B = (
    Path(__file__).resolve().parents[2] / "mlx_model/reference_configs/gemma-4-12B-it.config.json"
)


@pytest.fixture
def config_12b() -> dict:
    return json.loads(REFERENCE_12B.read_text())


def _hf_config(d: dict):
    from transformers import Gemma4UnifiedConfig

    d = {k: v for k, v in d.items() if not k.startswith("_")}
    return Gemma4UnifiedConfig(**{k: v for k, v in d.items() if k != "model_type"})


def test_12b_layers_match_transformers_per_layer_derivation(config_12b):
    ours = ModelConfig.from_dict(config_12b).text_config
    hf = _hf_config(config_12b).text_config
    full = [s.index for s in ours.layers if s.layer_type == FULL]
    assert full == [5, 11, 17, 23, 29, 35, 41, 47]
    for spec in ours.layers:
        ref = hf.per_layer_config[spec.index]
        assert (spec.head_dim, spec.num_key_value_heads) == (ref.head_dim, ref.num_key_value_heads)
        assert spec.k_eq_v == (spec.layer_type == FULL)
        assert spec.sliding_window == (1024 if spec.is_sliding else None)
        assert spec.kv_sharing is None


def test_rope_frequencies_match_transformers_for_both_layer_types(config_12b):
    import torch  # noqa: F401  (transformers' rope functions need it)
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    from transformers.models.gemma4_unified.modeling_gemma4_unified import (
        Gemma4UnifiedTextRotaryEmbedding,
    )

    ours = ModelConfig.from_dict(config_12b).text_config
    hf = _hf_config(config_12b).text_config
    full = ours.layers[5]
    ref_full, _ = ROPE_INIT_FUNCTIONS["proportional"](hf, None, layer_type=FULL)
    np.testing.assert_allclose(full.rope.inv_freq(full.head_dim), ref_full.numpy(), rtol=1e-6)
    assert np.count_nonzero(full.rope.inv_freq(512)) == 64  # 0.25 * 512 / 2 rotated pairs
    assert np.isinf(full.rope.wavelengths(512)[64:]).all()
    sliding = ours.layers[0]
    ref_sliding, _ = Gemma4UnifiedTextRotaryEmbedding.compute_default_rope_parameters(
        hf.per_layer_config[SLIDING], None, layer_type=SLIDING
    )
    np.testing.assert_allclose(sliding.rope.inv_freq(256), ref_sliding.numpy(), rtol=1e-6)


def test_save_pretrained_layout_reads_the_same_as_the_checkpoint_layout(tiny_checkpoint, tmp_path):
    raw = json.loads((tiny_checkpoint / "config.json").read_text())
    _hf_config(raw).save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert "per_layer_config" in saved["text_config"]
    assert "global_head_dim" not in saved["text_config"]
    a, b = load_config(tiny_checkpoint), load_config(tmp_path)
    assert a.text_config.layers == b.text_config.layers
    assert (a.eoa_token_id, a.image_token_id) == (b.eoa_token_id, b.image_token_id)


def test_missing_layer_types_follow_the_five_to_one_rule_with_a_full_last_layer(config_12b):
    text = config_12b["text_config"]
    del text["layer_types"]
    text["num_hidden_layers"] = 8
    layers = ModelConfig.from_dict(config_12b).text_config.layer_types
    assert layers == [SLIDING] * 5 + [FULL] + [SLIDING, FULL]


def test_kv_sharing_modes_match_transformers(config_12b):
    text = config_12b["text_config"]
    del text["layer_types"]
    text.update(num_hidden_layers=12, num_kv_shared_layers=4)
    ours = ModelConfig.from_dict(config_12b).text_config
    hf = _hf_config(config_12b).text_config
    assert [s.kv_sharing for s in ours.layers] == hf.kv_sharing_modes
    assert not ours.layers[-1].has_kv_projections


def test_all_bidirectional_mode_halves_the_window_like_transformers(config_12b):
    config_12b["text_config"]["use_bidirectional_attention"] = "all"
    ours = ModelConfig.from_dict(config_12b).text_config
    hf = _hf_config(config_12b).text_config
    assert ours.layers[0].sliding_window == hf.sliding_window == 1024 // 2 + 1


def test_vision_attention_comes_from_the_checkpoint_config(config_12b):
    """`"vision"` -> Google's semantics (sliding layers only); null -> plain causal
    everywhere; transformers' forward-path semantics only when asked for."""
    assert config_12b["text_config"]["use_bidirectional_attention"] == "vision"
    assert ModelConfig.from_dict(config_12b).text_config.vision_overlay == "sliding_only"
    switched = ModelConfig.from_dict(config_12b, vision_overlay_mode="all_layers")
    assert switched.text_config.vision_overlay == "all_layers"
    for absent in (None, "missing"):
        text = copy.deepcopy(config_12b)
        if absent is None:
            text["text_config"]["use_bidirectional_attention"] = None
        else:
            del text["text_config"]["use_bidirectional_attention"]
        assert ModelConfig.from_dict(text).text_config.vision_overlay is None
        switched = ModelConfig.from_dict(text, vision_overlay_mode="all_layers")
        assert switched.text_config.vision_overlay is None


def test_unknown_vision_overlay_mode_is_refused(config_12b):
    with pytest.raises(ConfigError, match="vision_overlay_mode"):
        ModelConfig.from_dict(config_12b, vision_overlay_mode="everywhere")


def test_k_eq_v_off_keeps_kv_heads_on_full_layers(config_12b):
    config_12b["text_config"]["attention_k_eq_v"] = False
    ours = ModelConfig.from_dict(config_12b).text_config
    full = ours.layers[5]
    assert (full.head_dim, full.num_key_value_heads, full.k_eq_v) == (512, 8, False)


def test_final_softcapping_and_token_ids_are_read(config_12b):
    cfg = ModelConfig.from_dict(config_12b)
    assert cfg.text_config.final_logit_softcapping == 30.0
    assert cfg.eoa_token_id == config_12b["eoa_token_index"]
    assert cfg.vision_config.patch_dim == 48 * 48 * 3


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d.update(model_type="gemma3"), "model_type"),
        (lambda d: d["text_config"].pop("hidden_size"), "hidden_size"),
        (lambda d: d.pop("text_config"), "text_config"),
        (lambda d: d["text_config"]["layer_types"].pop(), "layer_types"),
        (lambda d: d["text_config"].update(num_attention_heads=15), "num_attention_heads"),
        (
            lambda d: d["text_config"]["rope_parameters"][FULL].update(rope_type="yarn"),
            "rope_type",
        ),
        (
            lambda d: d["text_config"].update(per_layer_config={"99": {"head_dim": 8}}),
            "per_layer_config",
        ),
        (lambda d: d["text_config"].update(hidden_activation="relu"), "hidden_activation"),
        (lambda d: d.pop("image_token_id"), "image_token_id"),
        (lambda d: d.pop("eoa_token_index"), "eoa_token_index"),
        (lambda d: d["vision_config"].update(output_proj_dims=7), "output_proj_dims"),
        (lambda d: d["audio_config"].update(hidden_size=3), "hidden_size"),
    ],
)
def test_bad_configs_raise_config_error_naming_the_field(config_12b, edit, field):
    d = copy.deepcopy(config_12b)
    edit(d)
    with pytest.raises(ConfigError, match=field):
        ModelConfig.from_dict(d)


def test_load_config_names_a_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config.json"):
        load_config(tmp_path)
    assert issubclass(ConfigError, ValueError)


def test_a_missing_model_folder_is_named_in_the_error(tmp_path):
    with pytest.raises(ValueError, match="no such model folder"):
        read_checkpoint_config(tmp_path / "nowhere")


def test_a_folder_without_config_json_is_named_in_the_error(tmp_path):
    with pytest.raises(ValueError, match=r"config\.json: missing"):
        read_checkpoint_config(tmp_path)
