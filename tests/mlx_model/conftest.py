"""Fixtures for the network tests: our model and transformers' on the same tiny checkpoints,
and builders of prompts in transformers' input format (the processor is tested elsewhere)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np
import pytest

from mlx_model import prompt as model_prompt
from mlx_model.gemma4_unified import Model
from mlx_model.generate import prefill
from mlx_model.loading import load_model
from mlx_model.testing.checkpoint_factory import (
    TinyAssistantSizes,
    TinyModelSizes,
    token_ids_of,
    write_tiny_assistant_checkpoint,
    write_tiny_checkpoint,
)
from mlx_model.testing.reference import compute_in_float64, vision_model_masks


def load_our_model(folder: Path, **config_overrides: Any) -> Model:
    """Our model through the real loading path (`mlx_model.load_model`), weights read now."""
    return load_model(folder, lazy=False, **config_overrides)


def load_reference(folder: Path, dtype: str = "float32"):
    """transformers' model; "float64" computes in float64 throughout (the exact answer)."""
    import torch
    from transformers import Gemma4UnifiedForConditionalGeneration

    torch.set_num_threads(1)  # tiny models: more threads only add OpenMP hand-off time
    model = Gemma4UnifiedForConditionalGeneration.from_pretrained(
        folder, dtype=getattr(torch, dtype)
    )
    if dtype == "float64":
        compute_in_float64(model)
    return model.eval()


@pytest.fixture(scope="session")
def our_model(tiny_checkpoint: Path) -> Model:
    return load_our_model(tiny_checkpoint)


@pytest.fixture(scope="session")
def our_model_all_layers(tiny_checkpoint: Path) -> Model:
    """The switch: transformers' forward-path image/video attention (every layer)."""
    return load_our_model(tiny_checkpoint, vision_overlay_mode="all_layers")


@pytest.fixture(scope="session")
def tiny_checkpoint_causal(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same checkpoint with `use_bidirectional_attention: null` (as Google's E2B/E4B)."""
    folder = tmp_path_factory.mktemp("tiny-causal")
    for item in tiny_checkpoint.iterdir():
        shutil.copy(item, folder / item.name)
    config = json.loads((folder / "config.json").read_text())
    config["text_config"]["use_bidirectional_attention"] = None
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="session")
def wide_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """float32, text only, attention like the 12B's full layers (16 query heads, one KV head,
    head dim 128): memory measurements where attention and the KV cache dominate."""
    return write_tiny_checkpoint(
        tmp_path_factory.mktemp("tiny-wide"),
        sizes=TinyModelSizes.wide_attention(),
        with_vision=False,
        with_audio=False,
    )


@pytest.fixture(scope="session")
def hf_model(tiny_checkpoint: Path):
    return load_reference(tiny_checkpoint)


@pytest.fixture(scope="session")
def hf_model_f64(tiny_checkpoint: Path):
    return load_reference(tiny_checkpoint, "float64")


@pytest.fixture(scope="session")
def tiny_assistant(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A float32 drafter with the tied dense LM head, for `tiny_checkpoint`. Not in the
    folder beside it (`assistant_path`), where loading the model would find it: the rest
    of the suite loads `tiny_checkpoint` without a drafter."""
    return write_tiny_assistant_checkpoint(
        tmp_path_factory.mktemp("tiny-assistant"), tiny_checkpoint
    )


@pytest.fixture(scope="session")
def tiny_assistant_sparse(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A float32 drafter with the centroid-routed sparse LM head, for `tiny_checkpoint`."""
    return write_tiny_assistant_checkpoint(
        tmp_path_factory.mktemp("tiny-assistant-sparse"),
        tiny_checkpoint,
        sizes=TinyAssistantSizes(sparse_head=True),
        seed=2,
    )


@pytest.fixture(scope="session")
def ids(tiny_checkpoint: Path):
    return token_ids_of(tiny_checkpoint)


@pytest.fixture(scope="session")
def window(our_model: Model) -> int:
    return our_model.config.text_config.sliding_window


# --------------------------------------------------------------------------- prompts


@dataclass
class Prompt:
    """input_ids, mm_token_type_ids and media arrays, as transformers' processor returns them."""

    input_ids: list[int] = field(default_factory=list)
    token_types: list[int] = field(default_factory=list)
    media: dict[str, np.ndarray] = field(default_factory=dict)

    def inputs(self) -> dict[str, np.ndarray]:
        out = {
            "input_ids": np.array([self.input_ids], dtype=np.int64),
            "mm_token_type_ids": np.array([self.token_types], dtype=np.int64),
        }
        out.update(self.media)
        return out

    def __len__(self) -> int:
        return len(self.input_ids)


class PromptBuilder:
    """Builds prompts from random text, images, video frames and audio clips."""

    def __init__(self, token_ids, patch_dim: int, audio_dim: int, seed: int):
        self.t = token_ids
        self.patch_dim = patch_dim
        self.audio_dim = audio_dim
        self.rng = np.random.default_rng(seed)
        special = min(
            token_ids.boi,
            token_ids.eoi,
            token_ids.image,
            token_ids.video,
            token_ids.boa,
            token_ids.eoa,
            token_ids.audio,
        )
        self.text_range = (32, special)  # above the control tokens, below the multimodal ones
        self.prompt = Prompt()
        self._images: list[tuple[np.ndarray, np.ndarray]] = []
        self._frames: list[tuple[np.ndarray, np.ndarray]] = []
        self._frames_per_video: list[int] = []
        self._audio: list[np.ndarray] = []

    def _add(self, ids: list[int], token_type: int) -> None:
        self.prompt.input_ids += [int(i) for i in ids]
        self.prompt.token_types += [token_type] * len(ids)

    def random_tokens(self, n: int) -> list[int]:
        return [int(i) for i in self.rng.integers(*self.text_range, size=n)]

    def text(self, n: int) -> PromptBuilder:
        self._add(self.random_tokens(n), 0)
        return self

    def _patches(self, rows: int, cols: int, budget: int) -> tuple[np.ndarray, np.ndarray]:
        n = rows * cols
        pixels = np.zeros((budget, self.patch_dim), np.float32)
        pixels[:n] = self.rng.random((n, self.patch_dim), dtype=np.float32)
        positions = np.full((budget, 2), -1, np.int64)
        positions[:n] = [(x, y) for y in range(rows) for x in range(cols)]  # (x, y), raster
        return pixels, positions

    def image(self, rows: int, cols: int, budget: int) -> PromptBuilder:
        self._images.append(self._patches(rows, cols, budget))
        self._add([self.t.boi], 0)
        self._add([self.t.image] * rows * cols, 1)
        self._add([self.t.eoi], 0)
        return self

    def video(self, frames: int, rows: int, cols: int, budget: int) -> PromptBuilder:
        for j in range(frames):
            self._frames.append(self._patches(rows, cols, budget))
            if j:
                self.text(1)  # the space between frames
            self.text(2)  # the "MM:SS " timestamp
            self._add([self.t.boi], 0)
            self._add([self.t.video] * rows * cols, 2)
            self._add([self.t.eoi], 0)
        self._frames_per_video.append(frames)
        return self

    def audio(self, frames: int) -> PromptBuilder:
        self._audio.append(self.rng.uniform(-0.5, 0.5, (frames, self.audio_dim)).astype(np.float32))
        self._add([self.t.boa], 0)
        self._add([self.t.audio] * frames, 3)
        self._add([self.t.eoa], 0)
        return self

    def build(self) -> Prompt:
        media = self.prompt.media
        if self._images:
            budget = max(p.shape[0] for p, _ in self._images)
            media["pixel_values"] = np.stack([_pad(p, budget, 0.0) for p, _ in self._images])
            media["image_position_ids"] = np.stack([_pad(q, budget, -1) for _, q in self._images])
        if self._frames:
            media["pixel_values_videos"] = np.stack([p for p, _ in self._frames])
            media["video_position_ids"] = np.stack([q for _, q in self._frames])
            media["num_frames_per_video"] = np.array(self._frames_per_video, np.int64)
        if self._audio:
            t_max = max(a.shape[0] for a in self._audio)
            media["input_features"] = np.stack([_pad(a, t_max, 0.0) for a in self._audio])
            mask = np.zeros((len(self._audio), t_max), bool)
            for i, a in enumerate(self._audio):
                mask[i, : a.shape[0]] = True
            media["input_features_mask"] = mask
        return self.prompt


def _pad(x: np.ndarray, rows: int, value: float) -> np.ndarray:
    out = np.full((rows, *x.shape[1:]), value, dtype=x.dtype)
    out[: x.shape[0]] = x
    return out


@pytest.fixture
def prompt_builder(our_model: Model, ids, request):
    cfg = our_model.config

    def make(seed: int = 0) -> PromptBuilder:
        return PromptBuilder(
            ids, cfg.vision_config.patch_dim, cfg.audio_config.audio_embed_dim, seed
        )

    return make


def prefill_inputs(model, inputs, cache, chunk_size=None, *, progress=None, should_stop=None,
                   start=0):  # fmt: skip
    """The token loop's chunked prefill of processor-style inputs from `start` (`chunk_size`
    None: one chunk); returns (prompt tokens now in the cache, the last chunk's logits)."""
    prompt = model_prompt.Prompt.from_inputs(inputs, model_prompt.media_token_ids(model.config))
    done, logits = start, None
    chunk = chunk_size or prompt.length
    for done, logits in prefill(model, prompt, cache, start=start, chunk_size=chunk,  # noqa: B007
                                should_stop=should_stop):  # fmt: skip
        if progress is not None:
            progress(done, prompt.length)
    return done, logits


# --------------------------------------------------------------------------- comparisons


def reference_logits(
    hf_model, prompt_inputs: dict[str, np.ndarray], semantics: str = "sliding_only"
) -> np.ndarray:
    """transformers' logits for a whole prompt (float64 for a float64 model, else float32).

    `semantics` names the image/video attention the reference uses: "sliding_only" (our
    default, Google's: transformers' `create_masks_for_vision_model` masks with Google's
    two-sided window) or "all_layers" (transformers' own forward path).
    """
    import torch

    inputs = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in prompt_inputs.items()}
    for key in ("pixel_values", "pixel_values_videos", "input_features"):
        if key in inputs:
            inputs[key] = inputs[key].to(hf_model.dtype)
    extra = {}
    if semantics == "sliding_only" and "mm_token_type_ids" in inputs:
        extra["attention_mask"] = vision_model_masks(hf_model, inputs["mm_token_type_ids"])
    elif semantics not in ("sliding_only", "all_layers"):
        raise ValueError(f"unknown semantics {semantics!r}")
    with torch.no_grad():
        out = hf_model(**inputs, use_cache=False, **extra).logits
    return out.double().numpy() if out.dtype == torch.float64 else out.float().numpy()


def relative_error(ours: Any, ref: np.ndarray) -> float:
    ours = np.array(ours.astype(mx.float32)) if isinstance(ours, mx.array) else ours
    return float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))


def argmax_agreement(ours: Any, ref: np.ndarray) -> float:
    ours = np.array(ours.astype(mx.float32)) if isinstance(ours, mx.array) else ours
    return float((ours.argmax(-1) == ref.argmax(-1)).mean())


@pytest.fixture(scope="session")
def tiny_processor(tiny_checkpoint: Path):
    from mlx_model.processing import Processor

    return Processor.from_pretrained(tiny_checkpoint)


@pytest.fixture(scope="session")
def grammar_vocabulary(tiny_processor, our_model: Model):
    """The tiny tokenizer's vocabulary as the grammar engine sees it (model-sized masks)."""
    from mlx_model.constrained import GrammarVocabulary

    return GrammarVocabulary.for_tokenizer(
        tiny_processor.tokenizer, our_model.config.text_config.vocab_size
    )
