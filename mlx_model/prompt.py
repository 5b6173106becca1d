"""A conversation rendered for the model: token ids, cache keys, media inputs, context policy.

`render_prompt(processor, messages, ...)` runs the chat template and the processor once and
returns a `Prompt`: the processor's named inputs plus the flat ids, the prompt-cache keys
(media placeholders keyed by content) and the multimodal token types. `fit_context` applies
a context policy ("error", or "drop_oldest": drop whole old turns, keep the system prompt).
`media_for_chunk` picks the media inputs whose placeholders fall in one prefill chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ContextOverflowError
from .prompt_cache import audio_features_and_mask, prompt_keys


@dataclass
class Prompt:
    """One rendered prompt: the processor's inputs plus what the cache and the loop need."""

    inputs: dict[str, Any]
    ids: np.ndarray  # (N,)
    keys: np.ndarray  # (N,) cache keys (media placeholders keyed by content)
    token_types: np.ndarray | None  # (N,) mm_token_type_ids
    media_token_ids: dict[str, int | None]  # "image", "video", "audio" -> placeholder id
    text: str | None = None  # the expanded prompt string

    @property
    def length(self) -> int:
        return int(self.ids.shape[0])

    @classmethod
    def from_inputs(
        cls, inputs: dict[str, Any], media_token_ids: dict[str, int | None], text: str | None = None
    ) -> Prompt:
        """A prompt from processor outputs (transformers' key names)."""
        inputs = dict(inputs)
        ids = np.asarray(inputs["input_ids"]).reshape(-1).astype(np.int64)
        types = inputs.get("mm_token_type_ids")
        token_types = None if types is None else np.asarray(types).reshape(-1).astype(np.int64)
        keys = prompt_keys(inputs, media_token_ids)
        return cls(inputs, ids, keys, token_types, dict(media_token_ids), text)


def media_token_ids(config: Any) -> dict[str, int | None]:
    """The checkpoint's placeholder ids for image, video and audio soft tokens."""
    return {
        "image": config.image_token_id,
        "video": config.video_token_id,
        "audio": config.audio_token_id,
    }


def render_prompt(
    processor: Any,
    messages: list[dict[str, Any]],
    media_ids: dict[str, int | None],
    *,
    tools: Sequence[dict[str, Any]] | None = None,
    enable_thinking: bool = False,
    image_budget: int | None = None,
    add_generation_prompt: bool = True,
) -> Prompt:
    """The conversation through the chat template and the processor, as a `Prompt`."""
    kwargs: dict[str, Any] = dict(
        add_generation_prompt=add_generation_prompt, enable_thinking=enable_thinking
    )
    if tools:
        kwargs["tools"] = list(tools)
    if image_budget is not None:
        kwargs["image_budget"] = image_budget
    inputs = dict(processor.apply_chat_template(messages, return_prompt=True, **kwargs))
    text = inputs.pop("prompt", None)
    return Prompt.from_inputs(inputs, media_ids, text)


def fit_context(
    render: Callable[[list[dict[str, Any]]], Prompt],
    messages: list[dict[str, Any]],
    context_limit: int,
    policy: str = "error",
) -> tuple[Prompt, int]:
    """The rendered prompt that fits `context_limit`, and how many messages were dropped.

    With policy "drop_oldest" the oldest turns go first (the system prompt and the last
    user turn stay); `messages` is shortened in place. Otherwise, or when nothing more can
    go, `ContextOverflowError` says by how much it is too long.
    """
    dropped = 0
    while True:
        prompt = render(messages)
        if prompt.length < context_limit:
            return prompt, dropped
        if policy != "drop_oldest":
            raise ContextOverflowError(
                f"the conversation is {prompt.length:,} tokens but the context limit is "
                f"{context_limit:,}; start a new conversation, shorten it, or use the "
                "'drop oldest turns' policy"
            )
        shorter = drop_oldest_turn(messages)
        if shorter is None:
            raise ContextOverflowError(
                f"the last message alone is {prompt.length:,} tokens, over the context "
                f"limit of {context_limit:,}"
            )
        dropped += len(messages) - len(shorter)
        messages[:] = shorter


def drop_oldest_turn(messages: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The conversation without its oldest turn (a user message and the replies to it).

    The system prompt and the last user turn are always kept; None when nothing can go.
    """
    head = 1 if messages and messages[0].get("role") in ("system", "developer") else 0
    user_indices = [i for i in range(head, len(messages)) if messages[i].get("role") == "user"]
    if len(user_indices) < 2:
        return None
    cut = user_indices[1]
    return messages[:head] + messages[cut:]


def media_for_chunk(prompt: Prompt, start: int, end: int) -> dict[str, Any]:
    """The media inputs whose placeholder tokens fall in [start, end), as model kwargs."""
    inputs, ids, token_ids = prompt.inputs, prompt.ids, prompt.media_token_ids
    out: dict[str, Any] = {}

    def item_range(token_id: int | None, counts: list[int], kind: str) -> tuple[int, int]:
        before = int((ids[:start] == token_id).sum())
        inside = int((ids[start:end] == token_id).sum())
        bounds = np.concatenate([[0], np.cumsum(counts)])
        if inside == 0:
            return 0, 0
        first = int(np.searchsorted(bounds, before))
        last = int(np.searchsorted(bounds, before + inside))
        if bounds[first] != before or bounds[last] != before + inside:
            raise ValueError(f"a prefill chunk would split a {kind} item")
        return first, last

    if inputs.get("pixel_values") is not None:
        pixels = np.asarray(inputs["pixel_values"])
        positions = np.asarray(inputs["image_position_ids"])
        counts = [int((p != -1).all(axis=-1).sum()) for p in positions]
        first, last = item_range(token_ids["image"], counts, "image")
        if last > first:
            out["pixel_values"] = pixels[first:last]
            out["image_position_ids"] = positions[first:last]
    if inputs.get("pixel_values_videos") is not None:
        frames = np.asarray(inputs["pixel_values_videos"])
        positions = np.asarray(inputs["video_position_ids"])
        frames = frames.reshape(-1, *frames.shape[-2:])
        positions = positions.reshape(-1, *positions.shape[-2:])
        counts = [int((p != -1).all(axis=-1).sum()) for p in positions]
        first, last = item_range(token_ids["video"], counts, "video frame")
        if last > first:
            out["pixel_values_videos"] = frames[first:last]
            out["video_position_ids"] = positions[first:last]
            out["num_frames_per_video"] = [last - first]
    if inputs.get("input_features") is not None:
        features, mask = audio_features_and_mask(inputs)
        rows = features[mask]  # one row per audio token, in order
        token_id = token_ids["audio"]
        before = int((ids[:start] == token_id).sum())
        inside = int((ids[start:end] == token_id).sum())
        if inside:
            out["input_features"] = rows[before : before + inside][None]
    return out
