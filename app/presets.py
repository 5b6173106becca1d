"""Assistants (presets): a name, a system prompt, sampling settings, thinking on or off and
tools on or off, chosen when a chat starts.

A few useful ones are built in (`BUILTIN_PRESETS`); the user's own live in the database's
`presets` table (`PresetStore`). Starting a chat from a preset copies its system prompt and
options into the chat (`Conversation.system_prompt` and `.options`, with `preset`: its
name), so editing or removing a preset later never changes a chat already under way, and
the chat's own settings can be changed on their own.

The options are those of `CHAT_OPTION_NAMES`; a sampling field left out means the
Settings' value (itself "the model's default" when empty).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from app.options import FIELD_NAMES, GenerationOptions, OptionError
from app.storage.database import Database

# A chat's own options: generation options (over the Settings'), thinking, tools on/off,
# and the name of the preset the chat started from.
GENERATION_OPTION_NAMES = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty",
                           "max_tokens")  # fmt: skip
CHAT_OPTION_NAMES = (*GENERATION_OPTION_NAMES, "thinking", "tools", "preset")
MAX_NAME_LENGTH = 60


class PresetError(ValueError):
    """A preset the store refuses (no name, a built-in's name, a bad option); says why."""


def generation_overrides(options: dict[str, Any]) -> dict[str, Any]:
    """Chat options as `GenerationOptions` keywords (thinking becomes `enable_thinking`)."""
    chosen = {k: v for k, v in options.items() if k in FIELD_NAMES and v is not None}
    if options.get("thinking") is not None:
        chosen["enable_thinking"] = bool(options["thinking"])
    return chosen


def check_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options without empty values; `OptionError` names a bad one (by the one set of
    limits) or an unknown name."""
    unknown = set(options) - set(CHAT_OPTION_NAMES)
    if unknown:
        name = sorted(unknown)[0]
        raise OptionError(name, f"There is no chat option called {name!r}.")
    for name in ("thinking", "tools"):
        if options.get(name) is not None and not isinstance(options[name], bool):
            raise OptionError(name, f"{name} must be true or false; got {options[name]!r}.")
    GenerationOptions().merged(generation_overrides(options))
    return {k: v for k, v in options.items() if v is not None}


@dataclass(frozen=True)
class Preset:
    """One assistant; `options` as in `CHAT_OPTION_NAMES` (without `preset`)."""

    name: str
    system_prompt: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    builtin: bool = False

    def chat_options(self) -> dict[str, Any]:
        """What a chat started from this preset keeps as its own options."""
        return {**self.options, "preset": self.name}


BUILTIN_PRESETS: tuple[Preset, ...] = (
    Preset(
        "Meeting notes",
        "You turn meeting transcripts, recordings and rough notes into clear minutes. Start "
        "with a two-sentence summary, then list the decisions, then the action items as "
        "'- [ ] owner: task (due date)'. Keep names and numbers exactly as given; never "
        "invent an owner or a date. Ask for the missing ones at the end.",
        {"temperature": 0.3, "thinking": False},
        "Minutes from a transcript or recording: summary, decisions, action items.",
        builtin=True,
    ),
    Preset(
        "Code reviewer",
        "You are a careful senior code reviewer. For the code or diff you are given, list "
        "the problems in order of importance: bugs and security issues first, then "
        "correctness at the edges, then readability. For each, quote the line, say why it "
        "matters and show the fix as a short code block. Say plainly when the code is fine.",
        {"temperature": 0.2, "thinking": True},
        "Bugs first, then edge cases and readability, each with a fix.",
        builtin=True,
    ),
    Preset(
        "Translator",
        "You are a translator. Translate what you are given into English, or into the "
        "language the user names, keeping the meaning, tone and formatting. Reply with the "
        "translation only; add a short note after it only for a phrase that has no direct "
        "equivalent.",
        {"temperature": 0.1, "thinking": False, "tools": False},
        "Into English or the language you name; the translation only.",
        builtin=True,
    ),
)


class PresetStore:
    """The built-in presets and the user's own (in the database)."""

    def __init__(self, db: Database, *, clock: Any = time.time) -> None:
        self.db = db
        self._clock = clock

    def list(self) -> list[Preset]:
        """Built-in presets first, then the user's, by name."""
        rows = self.db.query("SELECT * FROM presets ORDER BY name COLLATE NOCASE")
        own = [
            Preset(r["name"], r["system_prompt"], json.loads(r["options"] or "{}")) for r in rows
        ]
        return [*BUILTIN_PRESETS, *own]

    def get(self, name: str) -> Preset:
        for preset in self.list():
            if preset.name == name:
                return preset
        raise PresetError(f"There is no assistant called “{name}”.")

    def save(self, preset: Preset, *, replacing: str | None = None) -> Preset:
        """Add the user's preset, or change the one named `replacing` (renaming it)."""
        name = " ".join(preset.name.split())
        if not name:
            raise PresetError("An assistant needs a name.")
        if len(name) > MAX_NAME_LENGTH:
            raise PresetError(f"An assistant's name has at most {MAX_NAME_LENGTH} characters.")
        if any(b.name.lower() == name.lower() for b in BUILTIN_PRESETS):
            raise PresetError(f"“{name}” is a built-in assistant; choose another name.")
        options = {k: v for k, v in check_options(dict(preset.options)).items() if k != "preset"}
        now = self._clock()
        with self.db.transaction() as conn:
            taken = conn.execute(
                "SELECT name FROM presets WHERE name = ? COLLATE NOCASE", (name,)
            ).fetchone()
            if taken is not None and taken[0] != replacing:
                raise PresetError(f"There is already an assistant called “{taken[0]}”.")
            values = (name, preset.system_prompt, json.dumps(options), now)
            if replacing is not None:
                cur = conn.execute(
                    "UPDATE presets SET name = ?, system_prompt = ?, options = ?, updated_at = ?"
                    " WHERE name = ?",
                    (*values, replacing),
                )
                if cur.rowcount == 0:
                    raise PresetError(f"There is no assistant called “{replacing}” to change.")
            else:
                conn.execute(
                    "INSERT INTO presets (name, system_prompt, options, updated_at, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (*values, now),
                )
        return Preset(name, preset.system_prompt, options)

    def delete(self, name: str) -> None:
        """Remove one of the user's presets (chats started from it keep their settings)."""
        if any(b.name == name for b in BUILTIN_PRESETS):
            raise PresetError(f"“{name}” is built in and cannot be removed.")
        self.db.execute("DELETE FROM presets WHERE name = ?", (name,))
