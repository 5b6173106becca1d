"""Attachments given as paths on the command line, and the rendered prompt for `--print-prompt`.

`part_for_path(path)` makes one content part of any supported kind (image, audio, video,
document, folder), checked before the model loads: media by its content, documents by
reading them (so an encrypted PDF is refused at once, with its typed message).
`print_prompt(...)` renders what the model would read, without loading weights: long
inputs are prepared from the checkpoint's tokenizer and processor config (a transcription
that would be needed is named, not made), media runs are collapsed (`<|image|>×280`) and
document text is shown.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from app.inputs.facts import ModelFacts
from app.inputs.prepare import Prepared, prepare_messages
from mlx_model.processing.errors import MediaError

DEFAULT_CONTEXT = 32_768  # the engine's default plan, when the settings do not say


def part_for_path(path: str | Path) -> dict[str, Any]:
    """A content part for a file or folder (raises a `MediaError` naming what is wrong)."""
    from app.attachments import sniff_file
    from app.documents import load_document
    from mlx_model.processing.errors import UnsupportedMediaError, describe_source

    path = Path(path)
    if not path.exists():
        raise MediaError(f"“{path}” could not be found.", source=str(path))
    if path.is_dir():
        load_document(path)
        return {"type": "document", "path": str(path), "name": path.name or str(path)}
    try:
        kind, _, _ = sniff_file(path, describe_source(path, "The file"))
    except UnsupportedMediaError:
        load_document(path)  # a document, or its typed refusal
        return {"type": "document", "path": str(path), "name": path.name}
    return {"type": kind, kind: str(path)}


def context_of(checkpoint: str | Path, requested: int | None = None) -> int:
    """The context a load of `checkpoint` plans for: the request, else 32K, within the model's."""
    config = json.loads((Path(checkpoint) / "config.json").read_text(encoding="utf-8"))
    limit = int(
        (config.get("text_config") or config).get("max_position_embeddings", DEFAULT_CONTEXT)
    )
    return min(limit, requested or DEFAULT_CONTEXT)


def collapse_media_runs(prompt: str, special: Any) -> str:
    """`<|image|><|image|>…` -> `<|image|>×280` (and the same for audio and video tokens)."""
    for token in (special.image_token, special.audio_token, special.video_token):
        if not token:
            continue
        pattern = re.compile(f"(?:{re.escape(token)}){{2,}}")
        prompt = pattern.sub(lambda m, t=token: f"{t}×{len(m.group(0)) // len(t)}", prompt)
    return prompt


def render_prompt_text(
    messages: list[dict[str, Any]],
    checkpoint: str | Path,
    *,
    context: int | None = None,
    max_tokens: int = 4096,
    image_budget: int | None = None,
    enable_thinking: bool = False,
) -> tuple[str, Prepared]:
    """(the prompt as the model would read it, media runs collapsed; the preparation)."""
    facts = ModelFacts.from_checkpoint(checkpoint, context_of(checkpoint, context))

    def no_generation(_messages: list[dict[str, Any]], _max_tokens: int) -> str:
        raise RuntimeError("--print-prompt makes no generation")

    prepared = prepare_messages(
        messages,
        facts,
        generate=no_generation,
        max_tokens=max_tokens,
        image_budget=image_budget,
        render_only=True,
    )
    out = facts.processor.apply_chat_template(
        prepared.messages,
        enable_thinking=enable_thinking,
        image_budget=image_budget,
        return_prompt=True,
    )
    return collapse_media_runs(out["prompt"], facts.processor.tokenizer.special), prepared
