"""Chat-template selection and rendering (the Gemma 4 turn format).

The checkpoint's own `chat_template.jinja` wins, then a `chat_template` in its
`tokenizer_config.json`, then our `chat_template.jinja` beside this file, which renders
the published format. Rendering uses the same Jinja sandbox settings as transformers
(`trim_blocks`, `lstrip_blocks`, `loopcontrols`, its `tojson`), so a template renders
the same text here as under `AutoProcessor.apply_chat_template`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .errors import ChatFormatError

DEFAULT_TEMPLATE_PATH = Path(__file__).with_name("chat_template.jinja")
_REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")


def default_chat_template() -> str:
    """Our template for the published Gemma 4 format."""
    return DEFAULT_TEMPLATE_PATH.read_text(encoding="utf-8")


def load_chat_template(
    checkpoint: str | Path, tokenizer_config: dict[str, Any] | None = None
) -> str:
    """The template a checkpoint asks for: its `chat_template.jinja`, its tokenizer config's, else ours."""
    path = Path(checkpoint) / "chat_template.jinja"
    if path.is_file():
        return path.read_text(encoding="utf-8")
    template = (tokenizer_config or {}).get("chat_template")
    if isinstance(template, str) and template.strip():
        return template
    if isinstance(template, list):  # [{"name": "default", "template": "..."}]
        for entry in template:
            if isinstance(entry, dict) and entry.get("name") == "default":
                return entry["template"]
    return default_chat_template()


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
