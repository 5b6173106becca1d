"""`Processor`: chat messages with media -> the model's named inputs, as transformers' `Gemma4UnifiedProcessor`.

Steps: load every media block in conversation order (images, videos with optional sound,
audio with its long-clip policy), render the chat template with one placeholder per item,
expand the placeholders (`<|image>` + `<|image|>`×N + `<image|>`; per video frame
`MM:SS <|image><|video|>×N<image|>` joined by spaces; `<|audio>` + `<|audio|>`×N + `<audio|>`),
tokenize, and mark multimodal tokens in `mm_token_type_ids` (1 image, 2 video, 3 audio).
All sizes, budgets and ids come from the checkpoint's configs and tokenizer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .audio import AudioFeatures, LongAudioPolicy, batch_features, frame_audio, load_audio
from .chat_template import ChatTemplateChoice, render_chat_template, select_chat_template
from .errors import ChatFormatError, UnsupportedMediaError
from .image import SUPPORTED_BUDGETS, ImageFeatures, preprocess_image, validate_budget
from .output_parser import OutputParser
from .plain_text import ContentGuard
from .tokenizer import StreamingDetokenizer, Tokenizer
from .video import (
    DEFAULT_NUM_FRAMES,
    FrameSampling,
    LongVideoPolicy,
    VideoClip,
    extract_audio_track,
    format_timestamp,
    frame_features,
    load_video,
    video_source_path,
)


@dataclass(frozen=True)
class ProcessorConfig:
    """Preprocessing settings read from the checkpoint (reference defaults where absent)."""

    patch_size: int = 16
    pooling_kernel_size: int = 3
    image_budget: int = 280
    video_patch_size: int = 16
    video_pooling_kernel_size: int = 3
    video_budget: int = 70
    # Frames of one clip: the video processor config's (transformers' default: 32 uniformly).
    video_sampling: FrameSampling = FrameSampling(num_frames=DEFAULT_NUM_FRAMES)
    sampling_rate: int = 16_000
    samples_per_token: int = 640
    audio_seq_length: int = 750  # max audio tokens per clip (30 s at 40 ms)

    @property
    def max_audio_seconds(self) -> float:
        return self.audio_seq_length * self.samples_per_token / self.sampling_rate

    @classmethod
    def from_pretrained(cls, path: str | Path) -> ProcessorConfig:
        path = Path(path)
        merged: dict[str, dict[str, Any]] = {"image": {}, "video": {}, "audio": {}, "processor": {}}

        def read(name: str) -> dict[str, Any]:
            file = path / name
            return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else {}

        processor = read("processor_config.json")
        merged["processor"].update(processor)
        merged["image"].update(processor.get("image_processor") or {})
        merged["video"].update(processor.get("video_processor") or {})
        merged["audio"].update(
            processor.get("feature_extractor") or processor.get("audio_processor") or {}
        )
        preprocessor = read("preprocessor_config.json")
        if preprocessor:
            merged["image"] = {**preprocessor, **merged["image"]}
            if "audio_samples_per_token" in preprocessor or "sampling_rate" in preprocessor:
                merged["audio"] = {**preprocessor, **merged["audio"]}
        merged["video"] = {**read("video_preprocessor_config.json"), **merged["video"]}
        image, video, audio, proc = (
            merged["image"],
            merged["video"],
            merged["audio"],
            merged["processor"],
        )
        d = cls()
        return cls(
            patch_size=int(image.get("patch_size", d.patch_size)),
            pooling_kernel_size=int(image.get("pooling_kernel_size", d.pooling_kernel_size)),
            image_budget=int(
                image.get("max_soft_tokens", proc.get("image_seq_length", d.image_budget))
            ),
            video_patch_size=int(
                video.get("patch_size", image.get("patch_size", d.video_patch_size))
            ),
            video_pooling_kernel_size=int(
                video.get(
                    "pooling_kernel_size",
                    image.get("pooling_kernel_size", d.video_pooling_kernel_size),
                )
            ),
            video_budget=int(video.get("max_soft_tokens", d.video_budget)),
            video_sampling=FrameSampling.from_video_processor_config(video),
            sampling_rate=int(audio.get("sampling_rate", d.sampling_rate)),
            samples_per_token=int(
                audio.get("audio_samples_per_token", audio.get("feature_size", d.samples_per_token))
            ),
            audio_seq_length=int(proc.get("audio_seq_length", d.audio_seq_length)),
        )


@dataclass
class _Video:
    pixel_values: np.ndarray
    position_ids: np.ndarray
    tokens_per_frame: int
    timestamps: list[float]


class Processor:
    """Turns chat messages with media into `input_ids`, `pixel_values`, `input_features`, ..."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        config: ProcessorConfig,
        chat_template: str,
        template_choice: ChatTemplateChoice | None = None,
    ):
        self.tokenizer = tokenizer
        self.config = config
        self.chat_template = chat_template
        self.template_choice = template_choice
        s = tokenizer.special
        self.image_token_id = tokenizer.require_id(s.image_token)
        self.video_token_id = tokenizer.token_to_id(s.video_token)
        self.audio_token_id = tokenizer.token_to_id(s.audio_token)

    @classmethod
    def from_pretrained(
        cls, path: str | Path, *, use_checkpoint_template: bool = False
    ) -> Processor:
        """Load tokenizer, preprocessing configs and chat template from a checkpoint folder.

        The chat template is Google's canonical Gemma 4 format unless the checkpoint ships a
        template of its own that is not a known outdated Gemma 4 one, or
        `use_checkpoint_template` forces the checkpoint's (see `select_chat_template`).
        """
        tokenizer = Tokenizer.from_pretrained(path)
        choice = select_chat_template(
            path, tokenizer.config, use_checkpoint_template=use_checkpoint_template
        )
        return cls(tokenizer, ProcessorConfig.from_pretrained(path), choice.text, choice)

    # -- conveniences for the engine ---------------------------------------------------

    def detokenizer(self) -> StreamingDetokenizer:
        return self.tokenizer.detokenizer()

    def output_parser(self, prompt: str | Sequence[int] | None = None) -> OutputParser:
        """A parser for the model's reply to `prompt` (starts inside thinking if the prompt
        opened it). Given the prompt's token ids, only real control tokens count."""
        special = self.tokenizer.special
        if prompt is None:
            return OutputParser(special)
        if isinstance(prompt, str):
            return OutputParser.for_prompt(prompt, special)
        ids = [int(i) for i in prompt]
        soc, eoc = (
            self.tokenizer.token_to_id(special.soc_token),
            self.tokenizer.token_to_id(special.eoc_token),
        )
        last_soc = max((i for i, t in enumerate(ids) if t == soc), default=-1)
        last_eoc = max((i for i, t in enumerate(ids) if t == eoc), default=-1)
        if last_soc < 0 or last_eoc > last_soc:
            return OutputParser(special)
        return OutputParser.after_channel_open(self.tokenizer.decode(ids[last_soc + 1 :]), special)

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        return self.tokenizer.eos_token_ids

    # -- the main call ---------------------------------------------------------------

    def render(
        self,
        messages: list[dict[str, Any]],
        add_generation_prompt: bool = True,
        enable_thinking: bool = False,
        tools: list[dict[str, Any]] | None = None,
        preserve_thinking: bool = False,
    ) -> str:
        """The prompt text with one unexpanded placeholder per media item."""
        guard = self._guard()
        return guard.restore(
            self._render_guarded(
                guard, messages, add_generation_prompt, enable_thinking, tools, preserve_thinking
            )
        )

    def _guard(self) -> ContentGuard:
        return ContentGuard(self.tokenizer.special_pattern)

    def _render_guarded(
        self,
        guard: ContentGuard,
        messages: list[dict[str, Any]],
        add_generation_prompt: bool,
        enable_thinking: bool,
        tools: list[dict[str, Any]] | None,
        preserve_thinking: bool,
    ) -> str:
        """The template's rendering with control strings in the content hidden by `guard`."""
        s = self.tokenizer.special
        return render_chat_template(
            self.chat_template,
            guard.protect_messages(messages, s.soc_token, s.eoc_token),
            tools=guard.protect(tools) if tools is not None else None,
            add_generation_prompt=add_generation_prompt,
            enable_thinking=enable_thinking,
            special_tokens=self.tokenizer.special_tokens_map(),
            preserve_thinking=preserve_thinking,
        )

    def apply_chat_template(
        self,
        messages: list[dict[str, Any]],
        add_generation_prompt: bool = True,
        enable_thinking: bool = False,
        tools: list[dict[str, Any]] | None = None,
        image_budget: int | None = None,
        *,
        long_audio: LongAudioPolicy = "error",
        long_video: LongVideoPolicy = "error",
        video_fps: float | None = None,
        return_prompt: bool = False,
        preserve_thinking: bool = False,
    ) -> dict[str, Any]:
        """Messages (Hugging Face chat shape) -> dict of NumPy arrays with transformers' key names.

        `image_budget` (70/140/280/560/1120) applies to images without their own
        `"max_soft_tokens"` key. `long_audio` ("error" | "trim" | "split") is the policy for
        clips over 30 s unless a block carries its own `"long_audio"`; `long_video`
        ("error" | "trim") likewise for videos over 60 s. A video's frames are sampled as the
        checkpoint's video processor config says (`num_frames` uniformly); a block's
        `"num_frames"` or `"fps"`, or `video_fps`, override that. A video block's `"video"` may
        also be a decoded `VideoClip` (RGB frames already sampled, e.g. one segment of a long
        video): its frames are resized and patchified for the block's budget. A video block with
        `"include_audio": True` adds its sound track as audio right after it.
        With `return_prompt=True` the expanded prompt string is returned under `"prompt"`.
        `preserve_thinking` keeps the thoughts of earlier tool-calling model turns.
        """
        default_budget = (
            validate_budget(image_budget) if image_budget is not None else self.config.image_budget
        )
        images: list[ImageFeatures] = []
        videos: list[_Video] = []
        audios: list[AudioFeatures] = []
        rendered_messages = []
        for message in messages:
            content = message.get("content")
            if isinstance(content, list):
                blocks = []
                for block in content:
                    blocks += self._load_block(
                        block,
                        default_budget,
                        images,
                        videos,
                        audios,
                        long_audio,
                        long_video,
                        video_fps,
                    )
                message = {**message, "content": blocks}
            rendered_messages.append(message)

        # Content is tokenized as plain text: only the template's structure (and the media
        # expansion) produces control tokens.
        guard = self._guard()
        prompt = self._render_guarded(
            guard,
            rendered_messages,
            add_generation_prompt,
            enable_thinking,
            tools,
            preserve_thinking,
        )
        prompt = self._expand(prompt, images, videos, audios)
        bos = self.tokenizer.special.bos_token
        input_ids = self.tokenizer.encode_segments(
            guard.segments(prompt), add_special_tokens=not prompt.startswith(bos)
        )
        prompt = guard.restore(prompt)
        ids = np.asarray([input_ids], dtype=np.int64)
        out: dict[str, Any] = {"input_ids": ids, "mm_token_type_ids": self._token_types(ids)}
        if images:
            budget = max(f.pixel_values.shape[0] for f in images)
            dim = images[0].pixel_values.shape[1]
            pixel_values = np.zeros((len(images), budget, dim), dtype=np.float32)
            positions = np.full((len(images), budget, 2), -1, dtype=np.int64)
            for i, f in enumerate(images):
                pixel_values[i, : f.pixel_values.shape[0]] = f.pixel_values
                positions[i, : f.position_ids.shape[0]] = f.position_ids
            out["pixel_values"] = pixel_values
            out["image_position_ids"] = positions
        if videos:
            out["pixel_values_videos"] = np.concatenate([v.pixel_values for v in videos])
            out["video_position_ids"] = np.concatenate([v.position_ids for v in videos])
            out["num_frames_per_video"] = np.asarray(
                [len(v.timestamps) for v in videos], dtype=np.int64
            )
        if audios:
            out["input_features"], out["input_features_mask"] = batch_features(audios)
        if return_prompt:
            out["prompt"] = prompt
        return out

    # -- internals -------------------------------------------------------------------

    def _load_block(
        self,
        block: dict[str, Any],
        default_budget: int,
        images: list[ImageFeatures],
        videos: list[_Video],
        audios: list[AudioFeatures],
        long_audio: LongAudioPolicy,
        long_video: LongVideoPolicy,
        video_fps: float | None,
    ) -> list[dict[str, Any]]:
        cfg = self.config
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            return [block]
        if kind in ("image", "image_url"):
            source = next((block[k] for k in ("image", "path", "url") if k in block), None)
            if kind == "image_url" and source is None:
                source = (
                    block["image_url"]["url"]
                    if isinstance(block.get("image_url"), dict)
                    else block.get("image_url")
                )
            if source is None:
                raise UnsupportedMediaError(
                    "An image block needs an 'image' (path, PIL image or array)."
                )
            budget = validate_budget(int(block.get("max_soft_tokens", default_budget)))
            images.append(
                preprocess_image(
                    source,
                    budget,
                    patch_size=cfg.patch_size,
                    pooling_kernel_size=cfg.pooling_kernel_size,
                )
            )
            return [{"type": "image"}]
        if kind == "video":
            if self.video_token_id is None:
                raise ChatFormatError("This checkpoint's tokenizer has no video token.")
            path = video_source_path(block)
            budget = validate_budget(int(block.get("max_soft_tokens", cfg.video_budget)))
            transform = frame_features(budget, cfg.video_patch_size, cfg.video_pooling_kernel_size)
            if isinstance(path, VideoClip):  # frames already sampled (a long video's segment)
                clip = replace(path, frames=[transform(frame) for frame in path.frames])
                path = None
            else:
                clip = load_video(
                    path,
                    sampling=self._frame_sampling(block, video_fps),
                    policy=block.get("long_video", long_video),
                    transform=transform,
                )
            pixels = np.stack([f.pixel_values for f in clip.frames])
            positions = np.stack([f.position_ids for f in clip.frames])
            per_frame = clip.frames[0].num_soft_tokens
            videos.append(_Video(pixels, positions, per_frame, clip.timestamps))
            out = [{"type": "video"}]
            if block.get("include_audio") and path is not None:
                clips = extract_audio_track(
                    path,
                    cfg.sampling_rate,
                    policy=block.get("long_audio", long_audio),
                    max_clip_seconds=cfg.max_audio_seconds,
                )
                for waveform in clips or []:
                    audios.append(frame_audio(waveform, cfg.samples_per_token))
                    out.append({"type": "audio"})
            return out
        if kind in ("audio", "input_audio"):
            if self.audio_token_id is None:
                raise ChatFormatError("This checkpoint's tokenizer has no audio token.")
            source = next((block[k] for k in ("audio", "path", "url") if k in block), None)
            if source is None:
                raise UnsupportedMediaError(
                    "An audio block needs an 'audio' (path or (samples, rate))."
                )
            clips = load_audio(
                source,
                cfg.sampling_rate,
                max_clip_seconds=cfg.max_audio_seconds,
                policy=block.get("long_audio", long_audio),
            )
            for waveform in clips:
                audios.append(frame_audio(waveform, cfg.samples_per_token))
            return [{"type": "audio"} for _ in clips]
        raise ChatFormatError(
            f"Unknown content block type {kind!r}; use text, image, audio or video."
        )

    def _frame_sampling(self, block: dict[str, Any], video_fps: float | None) -> FrameSampling:
        """A block's own `num_frames`/`fps`, else the call's `video_fps`, else the checkpoint's."""
        if block.get("num_frames") is not None:
            return FrameSampling(num_frames=int(block["num_frames"]))
        fps = block.get("fps", video_fps)
        if fps is not None:
            return FrameSampling(fps=float(fps))
        return self.config.video_sampling

    def _expand(
        self,
        prompt: str,
        images: list[ImageFeatures],
        videos: list[_Video],
        audios: list[AudioFeatures],
    ) -> str:
        s = self.tokenizer.special
        groups = {"image": s.image_token, "video": s.video_token, "audio": s.audio_token}
        counts = {kind: prompt.count(token) for kind, token in groups.items()}
        wanted = {"image": len(images), "video": len(videos), "audio": len(audios)}
        for kind in groups:
            if counts[kind] != wanted[kind]:
                raise ChatFormatError(
                    f"The prompt has {counts[kind]} {kind} placeholder(s) for {wanted[kind]} {kind} input(s); "
                    f"media is only rendered in user and model turns, and message text must not contain "
                    f"{groups[kind]!r}."
                )
        replacements = {
            "image": iter(
                f"{s.boi_token}{s.image_token * f.num_soft_tokens}{s.eoi_token}" for f in images
            ),
            "video": iter(
                " ".join(
                    f"{format_timestamp(t)} {s.boi_token}{s.video_token * v.tokens_per_frame}{s.eoi_token}"
                    for t in v.timestamps
                )
                for v in videos
            ),
            "audio": iter(
                f"{s.boa_token}{s.audio_token * a.num_soft_tokens}{s.eoa_token}" for a in audios
            ),
        }
        active = [k for k in groups if wanted[k]]
        if not active:
            return prompt
        pattern = "|".join(f"(?P<{k}>{re.escape(groups[k])})" for k in active)
        return re.sub(pattern, lambda m: next(replacements[m.lastgroup]), prompt)

    def _token_types(self, ids: np.ndarray) -> np.ndarray:
        types = np.zeros_like(ids)
        types[ids == self.image_token_id] = 1
        if self.video_token_id is not None:
            types[ids == self.video_token_id] = 2
        if self.audio_token_id is not None:
            types[ids == self.audio_token_id] = 3
        return types


def order_content(text: str | None, attachments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A user message's content in the model card's order: images and videos, then text, then audio."""
    visual = [a for a in attachments if a.get("type") in ("image", "video")]
    audio = [a for a in attachments if a.get("type") == "audio"]
    other = [a for a in attachments if a not in visual and a not in audio]
    content = visual + other
    if text:
        content.append({"type": "text", "text": text})
    return content + audio


__all__ = ["Processor", "ProcessorConfig", "order_content", "SUPPORTED_BUDGETS"]
