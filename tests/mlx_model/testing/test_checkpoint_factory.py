"""The test-checkpoint factory writes the real Hugging Face format, not a dialect of ours."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tokenizers import Tokenizer

from mlx_model.testing.checkpoint_factory import (
    CONTROL_TOKENS,
    MULTIMODAL_TOKENS,
    token_ids_of,
    weight_shapes,
)

torch = pytest.importorskip("torch", reason="the reference stack is the dev extra")
transformers = pytest.importorskip("transformers")


def test_transformers_reads_the_config_as_gemma4_unified(tiny_checkpoint):
    config = transformers.AutoConfig.from_pretrained(tiny_checkpoint)
    assert type(config).__name__ == "Gemma4UnifiedConfig"
    assert config.text_config.attention_k_eq_v is True
    assert config.vision_config is not None and config.audio_config is not None


def test_transformers_loads_every_weight_with_nothing_missing_or_unexpected(tiny_checkpoint):
    model, info = transformers.Gemma4UnifiedForConditionalGeneration.from_pretrained(
        tiny_checkpoint, dtype=torch.float32, output_loading_info=True
    )
    assert info["missing_keys"] == set()
    assert info["unexpected_keys"] == set()
    assert info["mismatched_keys"] == set()


def test_sharded_checkpoint_has_an_index_covering_every_tensor(tiny_checkpoint_sharded):
    index = json.loads((tiny_checkpoint_sharded / "model.safetensors.index.json").read_text())
    config = json.loads((tiny_checkpoint_sharded / "config.json").read_text())
    assert set(index["weight_map"]) == set(weight_shapes(config))
    assert len(set(index["weight_map"].values())) == 3
    for shard in set(index["weight_map"].values()):
        assert (tiny_checkpoint_sharded / shard).is_file()


def test_sharded_checkpoint_loads_in_transformers(tiny_checkpoint_sharded):
    _, info = transformers.Gemma4UnifiedForConditionalGeneration.from_pretrained(
        tiny_checkpoint_sharded, dtype=torch.float32, output_loading_info=True
    )
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set()


def test_tokenizer_holds_every_gemma4_control_token_as_one_special_token(tiny_checkpoint):
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_checkpoint)
    for token in [*CONTROL_TOKENS, *MULTIMODAL_TOKENS.values()]:
        ids = tokenizer.encode(token, add_special_tokens=False)
        assert len(ids) == 1, token
        assert tokenizer.convert_ids_to_tokens(ids[0]) == token


def test_transformers_tokenizer_matches_the_raw_tokenizers_file(tiny_checkpoint):
    raw = Tokenizer.from_file(str(tiny_checkpoint / "tokenizer.json"))
    hf = transformers.AutoTokenizer.from_pretrained(tiny_checkpoint)
    text = 'Hello, how are you? <|turn>user\nünïcödé 中文 🙂 {braces} <|"|>'
    assert hf.encode(text, add_special_tokens=False) == raw.encode(text).ids
    assert hf.decode(raw.encode(text).ids) == text


def test_multimodal_token_ids_are_the_checkpoints_own_not_the_12bs(tiny_checkpoint):
    ids = token_ids_of(tiny_checkpoint)
    config = json.loads((tiny_checkpoint / "config.json").read_text())
    assert config["image_token_id"] == ids.image < 1000
    assert config["eoa_token_index"] == ids.eoa
    assert config["text_config"]["eos_token_id"] == ids.eos != 1


def test_processor_loads_as_gemma4_unified_processor_with_our_template(tiny_checkpoint):
    processor = transformers.AutoProcessor.from_pretrained(tiny_checkpoint)
    assert type(processor).__name__ == "Gemma4UnifiedProcessor"
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
    ]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text.startswith("<bos><|turn>system\nBe brief.<turn|>\n<|turn>user\nHi<turn|>\n")
    assert text.endswith("<|turn>model\n<|channel>thought\n<channel|>")


def test_random_weights_are_not_left_at_trivial_values(tiny_checkpoint):
    from safetensors.numpy import load_file

    weights = load_file(str(tiny_checkpoint / "model.safetensors"))
    scalars = [v for k, v in weights.items() if k.endswith("layer_scalar")]
    norms = [v for k, v in weights.items() if k.endswith("layernorm.weight")]
    biases = [v for k, v in weights.items() if k.endswith(".bias")]
    assert scalars and all(not np.allclose(s, 1.0) for s in scalars)
    assert norms and all(not np.allclose(n, 1.0) for n in norms)
    assert biases and all(not np.allclose(b, 0.0) for b in biases)


def test_bfloat16_checkpoint_stores_bfloat16_tensors(tiny_checkpoint_bf16):
    header_len = int.from_bytes(
        (tiny_checkpoint_bf16 / "model.safetensors").read_bytes()[:8], "little"
    )
    header = json.loads(
        (tiny_checkpoint_bf16 / "model.safetensors").read_bytes()[8 : 8 + header_len]
    )
    dtypes = {v["dtype"] for k, v in header.items() if k != "__metadata__"}
    assert dtypes == {"BF16"}


def test_assistant_option_writes_a_matching_drafter_next_to_the_target(tmp_path):
    from mlx_model.testing.checkpoint_factory import (
        TinyAssistantSizes,
        assistant_path,
        write_tiny_checkpoint,
    )

    target = write_tiny_checkpoint(
        tmp_path / "target",
        dtype="bfloat16",
        with_audio=False,
        assistant=TinyAssistantSizes(sparse_head=True),
    )
    drafter = assistant_path(target)
    assert drafter == tmp_path / "target-assistant"
    config = transformers.AutoConfig.from_pretrained(drafter)
    assert type(config).__name__ == "Gemma4UnifiedAssistantConfig"
    assert config.backbone_hidden_size == config_of(target)["text_config"]["hidden_size"]
    assert config.use_ordered_embeddings is True
    _, info = transformers.Gemma4UnifiedAssistantForCausalLM.from_pretrained(
        drafter, dtype=torch.bfloat16, output_loading_info=True
    )
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set()


def config_of(folder):
    return json.loads((folder / "config.json").read_text())
