"""Tokenizer loading and the streaming detokenizer."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlx_model.processing import Tokenizer
from mlx_model.testing.checkpoint_factory import token_ids_of


@pytest.fixture(scope="module")
def tokenizer(tiny_checkpoint) -> Tokenizer:
    return Tokenizer.from_pretrained(tiny_checkpoint)


def test_special_token_ids_come_from_the_checkpoint(tokenizer, tiny_checkpoint):
    ids = token_ids_of(tiny_checkpoint)
    assert tokenizer.bos_token_id == ids.bos
    assert tokenizer.image_token_id == ids.image
    assert tokenizer.video_token_id == ids.video
    assert tokenizer.audio_token_id == ids.audio


def test_stop_ids_are_eos_end_of_turn_and_tool_response(tokenizer, tiny_checkpoint):
    ids = token_ids_of(tiny_checkpoint)
    assert set(tokenizer.eos_token_ids) == {ids.eos, ids.turn_end, ids.tool_response_start}


def test_control_token_strings_encode_to_single_ids(tokenizer, tiny_checkpoint):
    ids = token_ids_of(tiny_checkpoint)
    assert tokenizer.encode("<|turn>user\nhi<turn|>")[0] == ids.turn_start
    assert tokenizer.encode("<|image|><|image|>") == [ids.image, ids.image]


def test_encoding_matches_transformers(tokenizer, hf_processor):
    text = '<bos><|turn>user\nWhat is the weather in Paris? 日本語 🎉<turn|>\n<|"|>x<|"|>'
    assert (
        tokenizer.encode(text)
        == hf_processor.tokenizer(text, add_special_tokens=False)["input_ids"]
    )


def test_token_strings_follow_the_tokenizer_config(tmp_path, tiny_checkpoint):
    for name in ("tokenizer.json", "generation_config.json", "config.json"):
        (tmp_path / name).write_bytes((tiny_checkpoint / name).read_bytes())
    config = json.loads((tiny_checkpoint / "tokenizer_config.json").read_text())
    config["extra_special_tokens"]["image_token"] = "<|audio|>"  # a (silly) remap must be honoured
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    assert Tokenizer.from_pretrained(tmp_path).image_token_id == token_ids_of(tiny_checkpoint).audio


def stream(tokenizer: Tokenizer, ids: list[int]) -> list[str]:
    detok = tokenizer.detokenizer()
    pieces = [detok.add_token(i) for i in ids]
    pieces.append(detok.finalize())
    return pieces


def test_multibyte_characters_are_never_split(tokenizer):
    text = "Grüße 日本語 🎉 naïve"
    ids = tokenizer.encode(text)
    assert len(ids) > len(text.split())  # byte-fallback pieces: several ids per character
    pieces = stream(tokenizer, ids)
    assert "".join(pieces) == tokenizer.decode(ids) == text
    assert all("\ufffd" not in piece for piece in pieces)


def test_control_tokens_arrive_whole(tokenizer):
    ids = tokenizer.encode("<|channel>thought\nhm<channel|>ok<turn|>")
    pieces = stream(tokenizer, ids)
    assert "<|channel>" in pieces and "<channel|>" in pieces and "<turn|>" in pieces


@settings(max_examples=60, deadline=None)
@given(text=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80))
def test_streamed_text_equals_full_decode(tokenizer, text):
    ids = tokenizer.encode(text)
    pieces = stream(tokenizer, ids)
    assert "".join(pieces) == tokenizer.decode(ids)
    assert all("\ufffd" not in p for p in pieces[:-1]) or "\ufffd" in text
