"""The settings as a form: one `SettingField` per setting, with its section, label, help,
editor kind and range (the generation fields' ranges are the options' one set of limits).

The GUI's settings dialog builds its editors from these; `SettingsStore.update` checks
what comes back with the same rules.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin, get_type_hints

from app.options import IMAGE_BUDGETS, LIMITS
from app.settings import DEFAULTS, REMOTE_FIELDS, SERVER_FIELDS, Settings


@dataclass
class SettingField:
    """One setting as the settings dialog edits it."""

    key: str
    label: str
    value: Any
    kind: (
        str  # "bool" | "int" | "float" | "str" | "choice" | "path" | "dir" | "json" | "secret" ...
    )
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    help: str = ""
    section: str = "General"


SECTIONS = {
    "Model": (
        "model_path",
        "precision",
        "context_length",
        "kv_cache_bits",
        "use_checkpoint_template",
        "speculative_decoding",
        "keep_alive",
    ),  # fmt: skip
    "Generation": (
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "repetition_penalty",
        "max_tokens",
        "seed",
        "system_prompt",
        "thinking",
        "vision_budget",
    ),  # fmt: skip
    "Devices": ("mic_device", "camera_device"),
    "Backend": REMOTE_FIELDS,
    "Tools": ("mcp_servers", "mcp_allowed_tools"),
    "Server": SERVER_FIELDS,
    "Interface": ("theme", "send_with_enter", "dictation_mode"),
}
LABELS = {
    "model_path": "Model folder", "kv_cache_bits": "KV cache bits (empty: full precision)",
    "use_checkpoint_template": "Use the checkpoint's own chat template",
    "speculative_decoding": "Faster answers (speculative decoding)",
    "keep_alive": "Unload the model when idle for",
    "top_p": "Top-p", "top_k": "Top-k", "min_p": "Min-p", "max_tokens": "Maximum answer tokens",
    "thinking": "Let the model think first", "vision_budget": "Default image detail (tokens)",
    "mic_device": "Microphone", "camera_device": "Camera", "server_enabled": "Local API server",
    "server_host": "Server address", "server_port": "Server port", "server_api_key": "API key",
    "theme": "Appearance", "send_with_enter": "Return sends the message",
    "backend": "Run the model on", "remote_url": "Remote server URL",
    "remote_model": "Remote model", "remote_api_key": "Remote API key",
    "mcp_servers": "MCP servers (JSON)", "dictation_mode": "Dictation mode (push-to-talk transcribes)",
    "mcp_allowed_tools": "MCP tools always allowed (JSON)",
}  # fmt: skip
HELP = {
    "backend": "local: the model on this computer. remote: an OpenAI-compatible server "
    "(vLLM, LM Studio, another Gemma Desk) at the URL below.",
    "remote_url": "The server's OpenAI base URL, e.g. http://gpu-box:8000/v1.",
    "remote_model": "The model id the server serves; empty: the first one it lists.",
    "remote_api_key": "Write env:NAME to read the key from the environment variable NAME "
    "instead of storing it.",
    "mcp_servers": 'A JSON list, e.g. [{"name": "notes", "command": ["npx", "-y", '
    '"@modelcontextprotocol/server-filesystem", "/Users/me/Notes"]}, {"name": "web", '
    '"url": "http://127.0.0.1:8000/mcp", "trusted": true}]. Gemma asks before each call '
    "to a server that is not trusted.",
    "mcp_allowed_tools": 'Tools that run without asking, as "server/tool" (chosen with '
    '"Always Allow This Tool"); remove one to be asked again.',
    "dictation_mode": "Push-to-talk puts a transcript in the message field instead of "
    "attaching the recording.",
    "speculative_decoding": "The model's small assistant (its drafter) guesses a few words "
    "ahead and the model checks them all at once: the same answers, sooner. Used when the "
    "assistant is downloaded (beside the model or in the Hugging Face cache) and both fit in "
    "memory. Applies when the model is next loaded.",
    "keep_alive": "How long the model stays in memory with nothing to do, e.g. 30m, 2h, 600 "
    "(seconds) or never. It loads again, in a few seconds, with your next message.",
    "use_checkpoint_template": "Off: a checkpoint that ships an outdated Gemma 4 chat template "
    "is talked to in Google's current format. On: its own template is used as it is. Applies "
    "when the model is next loaded.",
}


def setting_fields(current: Settings, secrets_location: str = "") -> list[SettingField]:
    """Every setting as a form field, in the settings' order; `secrets_location` (where the
    keys and MCP credentials are kept) is said in their help."""
    hints = get_type_hints(Settings)
    section_of = {key: section for section, keys in SECTIONS.items() for key in keys}
    fields = []
    for f in dataclasses.fields(Settings):
        kind, choices = _kind(f.name, hints[f.name])
        default = getattr(DEFAULTS, f.name)
        help_text = f"Default: {default!r}" if default not in (None, "", ()) else "Default: none"
        if f.name in HELP:
            help_text = f"{HELP[f.name]} {help_text}"
        if secrets_location and (kind == "secret" or f.name == "mcp_servers"):
            what = "Headers and env values are" if kind == "json" else "The key is"
            help_text = f"{help_text} {what} kept in {secrets_location}."
        limit = LIMITS.get(f.name)
        fields.append(
            SettingField(
                key=f.name,
                label=LABELS.get(f.name, f.name.replace("_", " ").capitalize()),
                value=getattr(current, f.name),
                kind=kind,
                choices=choices,
                minimum=limit.low if limit is not None else None,
                maximum=limit.high if limit is not None else None,
                help=help_text,
                section=section_of.get(f.name, "Other"),
            )
        )
    return fields


def _kind(name: str, annotation: Any) -> tuple[str, tuple[Any, ...]]:
    if get_origin(annotation) is Literal:
        return "choice", get_args(annotation)
    args = [a for a in get_args(annotation) if a is not type(None)]
    base = args[0] if args else annotation
    special = {
        "kv_cache_bits": ("choice", (None, 8, 4)),
        "vision_budget": ("choice", IMAGE_BUDGETS),
        "model_path": ("dir", ()),
        "mcp_servers": ("json", ()),
        "mcp_allowed_tools": ("json", ()),
    }
    if name in special:
        return special[name]
    if name.endswith("api_key"):
        return "secret", ()
    if base is bool:
        return "bool", ()
    optional = type(None) in get_args(annotation)
    if base is int:
        return ("optional_int" if optional else "int"), ()
    if base is float:
        return ("optional_float" if optional else "float"), ()
    return ("optional_str" if optional else "str"), ()
