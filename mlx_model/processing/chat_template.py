"""Chat-template selection and rendering (the Gemma 4 turn format).

Which template renders a checkpoint's conversations (`select_chat_template`):

- ours (`chat_template.jinja` beside this file), which renders Google's canonical Gemma 4
  chat format (2026-07-09) byte for byte, when the checkpoint ships no template, ships
  Google's canonical one, or ships a known outdated Gemma 4 template (identified by the
  sha256 of its text as shipped; logged once);
- the checkpoint's own (`chat_template.jinja`, else `chat_template` in `tokenizer_config.json`)
  when it is anything else (a fine-tune's own format), or when the caller forces it
  (`use_checkpoint_template=True`, the `--use-checkpoint-template` flag).

Nothing is written into the model folder. Rendering uses the same Jinja sandbox settings as
transformers (`trim_blocks`, `lstrip_blocks`, `loopcontrols`, its `tojson`), so a template
renders the same text here as under `AutoProcessor.apply_chat_template`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, is_dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .errors import ChatFormatError

log = logging.getLogger(__name__)

DEFAULT_TEMPLATE_PATH = Path(__file__).with_name("chat_template.jinja")
_REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")

# sha256 of Google's canonical Gemma 4 chat template (google/gemma-4-{12B,26B-A4B,31B}-it,
# published 2026-07-09, 18,683 bytes).
CANONICAL_TEMPLATE_SHA256 = "ae53464bf3be25802b3a5b37def7fd89667067d7577049b3b2d74c4d8de4c6d4"
# Earlier Gemma 4 templates still shipped by some conversions (mlx-community's among them).
STALE_TEMPLATE_SHA256 = {
    "94899c0f917d93f6fe81c95744d1e8ddab2d21d39228d2e4aec1fb2a25bff413": "2026-04-30",
    "36e3a42e5cf14cd0020e72d92e1fdd9970f59b82170e421f0cbe1bb42bead3f0": "2026-05-28",
}
_logged_stale: set[str] = set()

TemplateSource = Literal["ours", "checkpoint"]


@dataclass(frozen=True)
class ChatTemplateChoice:
    """The template that renders a checkpoint's conversations, and why."""

    text: str
    source: TemplateSource
    reason: Literal["absent", "canonical", "stale", "custom", "forced"]
    checkpoint_sha256: str | None = None  # of the checkpoint's template as shipped


def default_chat_template() -> str:
    """Our template: Google's canonical Gemma 4 chat format."""
    return DEFAULT_TEMPLATE_PATH.read_text(encoding="utf-8")


def template_sha256(text: str | bytes) -> str:
    """sha256 of a template's text as shipped (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8") if isinstance(text, str) else text).hexdigest()


def checkpoint_chat_template(
    checkpoint: str | Path, tokenizer_config: dict[str, Any] | None = None
) -> str | None:
    """The template a checkpoint ships: its `chat_template.jinja`, else its tokenizer config's."""
    path = Path(checkpoint) / "chat_template.jinja"
    if path.is_file():
        return path.read_bytes().decode("utf-8")
    template = (tokenizer_config or {}).get("chat_template")
    if isinstance(template, str) and template.strip():
        return template
    if isinstance(template, list):  # [{"name": "default", "template": "..."}]
        for entry in template:
            if isinstance(entry, dict) and entry.get("name") == "default":
                return entry["template"]
    return None


def select_chat_template(
    checkpoint: str | Path,
    tokenizer_config: dict[str, Any] | None = None,
    *,
    use_checkpoint_template: bool = False,
) -> ChatTemplateChoice:
    """Choose the template for a checkpoint (see the module docstring)."""
    shipped = checkpoint_chat_template(checkpoint, tokenizer_config)
    if shipped is None:
        return ChatTemplateChoice(default_chat_template(), "ours", "absent")
    sha = template_sha256(shipped)
    if use_checkpoint_template:
        return ChatTemplateChoice(shipped, "checkpoint", "forced", sha)
    if sha == CANONICAL_TEMPLATE_SHA256:
        return ChatTemplateChoice(default_chat_template(), "ours", "canonical", sha)
    if sha in STALE_TEMPLATE_SHA256:
        if sha not in _logged_stale:
            _logged_stale.add(sha)
            log.warning(
                "%s ships an outdated Gemma 4 chat template (%s, sha256 %s...); using Google's "
                "canonical chat format instead (--use-checkpoint-template keeps the checkpoint's)",
                checkpoint,
                STALE_TEMPLATE_SHA256[sha],
                sha[:8],
            )
        return ChatTemplateChoice(default_chat_template(), "ours", "stale", sha)
    return ChatTemplateChoice(shipped, "checkpoint", "custom", sha)


def load_chat_template(
    checkpoint: str | Path,
    tokenizer_config: dict[str, Any] | None = None,
    *,
    use_checkpoint_template: bool = False,
) -> str:
    """The text of `select_chat_template`'s choice."""
    return select_chat_template(
        checkpoint, tokenizer_config, use_checkpoint_template=use_checkpoint_template
    ).text


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(
    x: Any, ensure_ascii: bool = False, indent=None, separators=None, sort_keys=False
) -> str:
    return json.dumps(
        x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


@lru_cache(maxsize=8)
def _compile(template: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env.from_string(template)


def plain_data(value: Any) -> Any:
    """Rebuild `value` from JSON types only; media objects (arrays, images) become a placeholder string."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, dict):
        return {plain_data(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_data(v) for v in value]
    if isinstance(value, tuple):
        return tuple(plain_data(v) for v in value)
    if is_dataclass(value) and not isinstance(value, type):
        return plain_data(asdict(value))
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # NumPy scalar
        return plain_data(value.item())
    return f"<{type(value).__name__}>"


def normalize_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copy messages as the template sees them: None-valued keys dropped, reasoning aliased."""
    if not isinstance(messages, (list, tuple)) or not messages:
        raise ChatFormatError("A conversation needs at least one message.")
    out = []
    for message in messages:
        if not isinstance(message, dict) or "role" not in message:
            raise ChatFormatError("Each message must be a dict with a 'role'.")
        message = {k: v for k, v in message.items() if v is not None}
        reasoning = next(
            (message[k] for k in _REASONING_FIELDS if message.get(k) is not None), None
        )
        if reasoning is not None:
            message = {"thinking": reasoning, **message, "reasoning_content": reasoning}
        out.append(message)
    return out


def render_chat_template(
    template: str,
    messages: list[dict[str, Any]],
    *,
    tools: list[dict[str, Any]] | None = None,
    add_generation_prompt: bool = True,
    enable_thinking: bool = False,
    special_tokens: dict[str, str] | None = None,
    **extra: Any,
) -> str:
    """Render `messages` (Hugging Face chat shape) to the prompt string."""
    chat = plain_data(normalize_messages(messages))
    variables = {**(special_tokens or {}), **plain_data(extra)}
    try:
        return _compile(template).render(
            messages=chat,
            tools=plain_data(tools) if tools is not None else None,
            documents=None,
            add_generation_prompt=add_generation_prompt,
            enable_thinking=enable_thinking,
            **variables,
        )
    except jinja2.exceptions.TemplateError as exc:
        raise ChatFormatError(f"The chat template could not render these messages: {exc}") from exc
