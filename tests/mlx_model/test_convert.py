"""gemma-desk convert: an MLX-quantized checkpoint that loads back to identical outputs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from mlx_model import convert as convert_command
from mlx_model.convert import convert
from mlx_model.loading import load_model


def random_prompt(folder: Path, length: int = 32, seed: int = 1) -> mx.array:
    vocab = json.loads((folder / "config.json").read_text())["text_config"]["vocab_size"]
    return mx.array(np.random.default_rng(seed).integers(0, vocab, size=(1, length)))


@pytest.mark.parametrize("bits", [4, 8])
def test_converted_checkpoint_gives_identical_logits(tiny_checkpoint_bf16, tmp_path, bits):
    folder = convert(tiny_checkpoint_bf16, tmp_path / f"q{bits}", bits=bits)
    prompt = random_prompt(tiny_checkpoint_bf16)
    on_load = load_model(tiny_checkpoint_bf16, bits=bits)(input_ids=prompt)
    converted = load_model(folder)(input_ids=prompt)
    assert mx.array_equal(on_load, converted)


def test_converted_cached_decoding_is_identical_too(tiny_checkpoint_bf16, tmp_path):
    folder = convert(tiny_checkpoint_bf16, tmp_path / "q4", bits=4)
    prompt = random_prompt(tiny_checkpoint_bf16)
    n = prompt.shape[1]
    steps = []
    for model in (load_model(tiny_checkpoint_bf16, bits=4), load_model(folder)):
        cache = model.make_cache()
        model(input_ids=prompt[:, :-2], cache=cache)
        steps.append([model(input_ids=prompt[:, i : i + 1], cache=cache) for i in (n - 2, n - 1)])
    assert all(mx.array_equal(a, b) for a, b in zip(*steps, strict=True))


def test_config_records_the_quantization(tiny_checkpoint_bf16, tmp_path):
    folder = convert(tiny_checkpoint_bf16, tmp_path / "q4", bits=4, group_size=32)
    config = json.loads((folder / "config.json").read_text())
    assert config["quantization"] == {"group_size": 32, "bits": 4, "mode": "affine"}
    assert config["quantization_config"] == config["quantization"]  # as mlx-lm/mlx-vlm write
    assert config["model_type"] == "gemma4_unified"


def test_tensors_are_stored_packed_with_scales_and_biases(tiny_checkpoint_bf16, tmp_path):
    folder = convert(tiny_checkpoint_bf16, tmp_path / "q4", bits=4)
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    names = set(index["weight_map"])
    assert "language_model.model.embed_tokens.scales" in names
    assert "language_model.model.layers.0.mlp.down_proj.biases" in names
    weights = mx.load(str(folder / "model.safetensors"))
    assert weights["language_model.model.layers.0.mlp.down_proj.weight"].dtype == mx.uint32


def test_tokenizer_template_and_processor_files_are_copied(tiny_checkpoint_bf16, tmp_path):
    folder = convert(tiny_checkpoint_bf16, tmp_path / "q4", bits=4)
    for path in tiny_checkpoint_bf16.iterdir():
        if path.suffix != ".safetensors" and path.name != "config.json":
            assert (folder / path.name).read_bytes() == path.read_bytes(), path.name


def test_large_checkpoints_are_written_in_shards_with_an_index(tiny_checkpoint_bf16, tmp_path):
    folder = convert(tiny_checkpoint_bf16, tmp_path / "q4", bits=4, max_shard_bytes=200_000)
    shards = sorted(folder.glob("model-*-of-*.safetensors"))
    assert len(shards) > 1
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == {p.name for p in shards}
    prompt = random_prompt(tiny_checkpoint_bf16)
    expected = load_model(tiny_checkpoint_bf16, bits=4)(input_ids=prompt)
    assert mx.array_equal(load_model(folder)(input_ids=prompt), expected)


def test_mixed_precision_embedding_is_recorded_per_module(tiny_checkpoint_bf16, tmp_path):
    folder = convert(tiny_checkpoint_bf16, tmp_path / "mixed", bits=4, embedding_bits=8)
    quantization = json.loads((folder / "config.json").read_text())["quantization"]
    assert quantization["bits"] == 4
    assert quantization["language_model.model.embed_tokens"]["bits"] == 8
    model = load_model(folder)
    assert isinstance(model.language_model.embed_tokens, nn.QuantizedEmbedding)
    assert model.language_model.embed_tokens.bits == 8
    assert model.language_model.layers[0].self_attn.q_proj.bits == 4


def test_a_quantized_checkpoint_is_not_quantized_again(tiny_checkpoint_bf16, tmp_path):
    folder = convert(tiny_checkpoint_bf16, tmp_path / "q4", bits=4)
    with pytest.raises(ValueError, match="already quantized"):
        load_model(folder, bits=8)


def test_asking_for_the_stored_precision_loads_the_checkpoint_as_is(tiny_checkpoint_bf16, tmp_path):
    folder = convert(tiny_checkpoint_bf16, tmp_path / "q4", bits=4)
    prompt = random_prompt(tiny_checkpoint_bf16)
    assert mx.array_equal(
        load_model(folder, bits=4)(input_ids=prompt), load_model(folder)(input_ids=prompt)
    )


def test_a_non_empty_destination_is_refused(tiny_checkpoint_bf16, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        convert(tiny_checkpoint_bf16, tmp_path / "busy", bits=4)
    assert (tmp_path / "busy" / "notes.txt").read_text() == "keep me"


def test_convert_command_writes_the_checkpoint(tiny_checkpoint_bf16, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    convert_command.add_arguments(parser)
    dst = tmp_path / "cli-q8"
    args = parser.parse_args([str(tiny_checkpoint_bf16), str(dst), "--bits", "8"])
    assert convert_command.run(args) == 0
    assert "wrote 8-bit checkpoint" in capsys.readouterr().out
    assert json.loads((dst / "config.json").read_text())["quantization"]["bits"] == 8


def test_convert_command_reports_a_bad_source(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    convert_command.add_arguments(parser)
    (tmp_path / "empty").mkdir()
    args = parser.parse_args([str(tmp_path / "empty"), str(tmp_path / "out")])
    assert convert_command.run(args) == 2
    assert "config.json" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()
