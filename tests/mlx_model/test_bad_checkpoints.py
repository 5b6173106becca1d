"""Bad checkpoint folders fail with one CheckpointError naming the file or the config field."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import mlx.core as mx
import pytest

from mlx_model.loading import CheckpointError, load_model


def copy_of(checkpoint: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(checkpoint, tmp_path / "checkpoint"))


def edit_config(folder: Path, edit) -> None:
    path = folder / "config.json"
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config))


def rewrite_weights(file: Path, edit) -> None:
    weights = dict(mx.load(str(file)))
    edit(weights)
    mx.eval(weights)
    mx.save_safetensors(str(file), weights)


def first_shard_holding(folder: Path, fragment: str) -> tuple[Path, str]:
    for file in sorted(folder.glob("*.safetensors")):
        for name in mx.load(str(file)):
            if fragment in name:
                return file, name
    raise AssertionError(f"no tensor matching {fragment}")


def test_checkpoint_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)


def test_missing_shard_names_the_file(tiny_checkpoint_sharded, tmp_path):
    folder = copy_of(tiny_checkpoint_sharded, tmp_path)
    shard = sorted(folder.glob("model-*.safetensors"))[1]
    shard.unlink()
    with pytest.raises(CheckpointError, match=f"{shard.name}: missing shard"):
        load_model(folder)


def test_truncated_safetensors_names_the_file(tiny_checkpoint, tmp_path):
    folder = copy_of(tiny_checkpoint, tmp_path)
    file = folder / "model.safetensors"
    data = file.read_bytes()
    file.write_bytes(data[: len(data) - 1000])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: truncated safetensors file"):
        load_model(folder)


def test_file_cut_inside_its_header_is_reported_as_truncated(tiny_checkpoint, tmp_path):
    folder = copy_of(tiny_checkpoint, tmp_path)
    file = folder / "model.safetensors"
    file.write_bytes(file.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: truncated"):
        load_model(folder)


def test_wrong_model_type_names_the_field(tiny_checkpoint, tmp_path):
    folder = copy_of(tiny_checkpoint, tmp_path)
    edit_config(folder, lambda c: c.update(model_type="gemma3"))
    with pytest.raises(CheckpointError, match=r"config\.json: `model_type` is 'gemma3'"):
        load_model(folder)


def test_missing_config_field_names_the_field(tiny_checkpoint, tmp_path):
    folder = copy_of(tiny_checkpoint, tmp_path)
    edit_config(folder, lambda c: c["text_config"].pop("hidden_size"))
    with pytest.raises(
        CheckpointError, match=r"config\.json: missing required field `text_config\.hidden_size`"
    ):
        load_model(folder)


def test_missing_config_file_is_named(tiny_checkpoint, tmp_path):
    folder = copy_of(tiny_checkpoint, tmp_path)
    (folder / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"config\.json: missing"):
        load_model(folder)


def test_folder_without_weights_says_so(tiny_checkpoint, tmp_path):
    folder = copy_of(tiny_checkpoint, tmp_path)
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"no \*\.safetensors weight files"):
        load_model(folder)


def test_tensor_of_the_wrong_shape_names_tensor_file_and_shapes(tiny_checkpoint_sharded, tmp_path):
    folder = copy_of(tiny_checkpoint_sharded, tmp_path)
    file, name = first_shard_holding(folder, "mlp.up_proj.weight")

    def transpose(weights):
        weights[name] = weights[name].T

    rewrite_weights(file, transpose)
    with pytest.raises(CheckpointError, match=rf"{file.name}: tensor `{name}` has shape") as info:
        load_model(folder)
    assert "expected" in str(info.value)


def test_missing_tensor_is_named(tiny_checkpoint, tmp_path):
    folder = copy_of(tiny_checkpoint, tmp_path)
    file, name = first_shard_holding(folder, "layers.2.self_attn.q_norm.weight")
    rewrite_weights(file, lambda w: w.pop(name))
    with pytest.raises(
        CheckpointError,
        match=r"missing tensor for `language_model\.layers\.2\.self_attn\.q_norm\.weight`",
    ):
        load_model(folder)


def test_unexpected_tensor_names_tensor_and_file(tiny_checkpoint, tmp_path):
    folder = copy_of(tiny_checkpoint, tmp_path)
    rewrite_weights(
        folder / "model.safetensors",
        lambda w: w.update({"model.extra_head.weight": mx.zeros((2, 2))}),
    )
    with pytest.raises(
        CheckpointError, match=r"model\.safetensors: unexpected tensor `model\.extra_head\.weight`"
    ):
        load_model(folder)


def test_vestigial_multimodal_embedding_tensors_are_skipped_with_one_log_line(
    tiny_checkpoint, tmp_path, caplog
):
    folder = copy_of(tiny_checkpoint, tmp_path)
    rewrite_weights(
        folder / "model.safetensors",
        lambda w: w.update(
            {
                "model.embed_vision.embedding.weight": mx.zeros((8, 4)),
                "model.embed_audio.embedding.weight": mx.zeros((8, 4)),
            }
        ),
    )
    with caplog.at_level(logging.INFO, logger="mlx_model.loading"):
        model = load_model(folder, lazy=False)
    lines = [r.getMessage() for r in caplog.records if "unused tensor" in r.getMessage()]
    assert len(lines) == 1 and "embed_vision.embedding.weight" in lines[0]
    assert "embed_audio.embedding.weight" in lines[0]
    reference = load_model(tiny_checkpoint, lazy=False)
    ids = mx.array([[5, 6, 7]])
    assert mx.array_equal(model(ids), reference(ids))


@pytest.mark.parametrize(
    "name", ["model.embed_vision.embedding_norm.weight", "model.embed_audio.extra.weight"]
)
def test_other_unexpected_multimodal_tensors_still_fail(tiny_checkpoint, tmp_path, name):
    folder = copy_of(tiny_checkpoint, tmp_path)
    rewrite_weights(folder / "model.safetensors", lambda w: w.update({name: mx.zeros((2, 2))}))
    with pytest.raises(CheckpointError, match=rf"unexpected tensor `{re.escape(name)}`"):
        load_model(folder)


def test_tensor_listed_in_the_index_but_absent_from_its_shard_is_named(
    tiny_checkpoint_sharded, tmp_path
):
    folder = copy_of(tiny_checkpoint_sharded, tmp_path)
    file, name = first_shard_holding(folder, "post_feedforward_layernorm")
    rewrite_weights(file, lambda w: w.pop(name))
    with pytest.raises(CheckpointError, match=rf"{file.name}: tensor `{name}` is listed in"):
        load_model(folder)
