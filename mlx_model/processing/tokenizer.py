"""Checkpoint tokenizer: `tokenizer.json` through `tokenizers`, special tokens read from the config.

Token *strings* of the Gemma 4 format are published (`<|turn>`, `<|image|>`, ...); their *ids*
always come from the checkpoint's vocabulary. `encode` maps control-token strings in its text to
their ids; `encode_plain` never does; `encode_segments` does so only in the template's structure
(see `plain_text.ContentGuard`). `StreamingDetokenizer` turns generated ids into text deltas that
never end inside a multi-byte character; control tokens are single ids, so they arrive whole.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer as _BackendTokenizer

from .errors import ChatFormatError


@dataclass(frozen=True)
class SpecialTokens:
    """The control-token strings of the Gemma 4 chat and media format.

    Defaults are the published strings; `from_config` overrides them with whatever the
    checkpoint's `tokenizer_config.json` declares under the same attribute names.
    """

    bos_token: str = "<bos>"
    eos_token: str = "<eos>"
    pad_token: str = "<pad>"
    sot_token: str = "<|turn>"  # start of turn
    eot_token: str = "<turn|>"  # end of turn
    soc_token: str = "<|channel>"  # start of channel (thinking)
    eoc_token: str = "<channel|>"
    think_token: str = "<|think|>"
    std_token: str = "<|tool>"  # start of tool declaration
    etd_token: str = "<tool|>"
    stc_token: str = "<|tool_call>"  # start of tool call
    etc_token: str = "<tool_call|>"
    str_token: str = "<|tool_response>"  # start of tool response
    etr_token: str = "<tool_response|>"
    escape_token: str = '<|"|>'  # string delimiter inside tool calls
    image_token: str = "<|image|>"
    boi_token: str = "<|image>"
    eoi_token: str = "<image|>"
    video_token: str = "<|video|>"
    audio_token: str = "<|audio|>"
    boa_token: str = "<|audio>"
    eoa_token: str = "<audio|>"

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SpecialTokens:
        """Read token strings from a `tokenizer_config.json` dict (top level or `extra_special_tokens`)."""
        sources = [config]
        extra = config.get("extra_special_tokens")
        if isinstance(extra, dict):
            sources.append(extra)
        values = {}
        for f in fields(cls):
            for source in sources:
                value = source.get(f.name)
                if isinstance(value, dict):  # {"content": "<bos>", ...} (AddedToken serialisation)
                    value = value.get("content")
                if isinstance(value, str) and value:
                    values[f.name] = value
        return cls(**values)

    def control_strings(self) -> tuple[str, ...]:
        """Every control-token string, longest first (for greedy matching in text)."""
        return tuple(sorted({getattr(self, f.name) for f in fields(self)}, key=len, reverse=True))


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    return data if isinstance(data, dict) else {}


def _as_id_list(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, int):
        return [value]
    return [int(v) for v in value]


class Tokenizer:
    """The checkpoint's tokenizer with the ids of every Gemma 4 control token."""

    def __init__(
        self,
        backend: _BackendTokenizer,
        config: dict[str, Any] | None = None,
        eos_token_ids: list[int] | None = None,
    ):
        self.backend = backend
        self.config = dict(config or {})
        self.special = SpecialTokens.from_config(self.config)
        self.chat_template: str | None = self.config.get("chat_template") or None
        ids = list(eos_token_ids or [])
        for token in (self.special.eos_token, self.special.eot_token, self.special.str_token):
            token_id = self.token_to_id(token)
            if token_id is not None and token_id not in ids:
                ids.append(token_id)
        self.eos_token_ids: tuple[int, ...] = tuple(ids)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> Tokenizer:
        """Load `tokenizer.json` + `tokenizer_config.json`; EOS ids from `generation_config.json`/`config.json`."""
        path = Path(path)
        tokenizer_file = path / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise FileNotFoundError(f"No tokenizer.json in {path}")
        backend = _BackendTokenizer.from_file(str(tokenizer_file))
        config = _read_json(path / "tokenizer_config.json")
        eos: list[int] = []
        generation = _read_json(path / "generation_config.json")
        model_config = _read_json(path / "config.json")
        for source in (generation, model_config, model_config.get("text_config") or {}):
            for token_id in _as_id_list(source.get("eos_token_id")):
                if token_id not in eos:
                    eos.append(token_id)
        return cls(backend, config, eos)

    # -- ids ------------------------------------------------------------------------------

    def token_to_id(self, token: str) -> int | None:
        """Id of a token string, or None when it is not in the vocabulary."""
        return self.backend.token_to_id(token)

    def require_id(self, token: str) -> int:
        """Id of a token string that the format needs; a clear error when the vocabulary lacks it."""
        token_id = self.token_to_id(token)
        if token_id is None:
            raise ChatFormatError(
                f"The tokenizer has no {token!r} token, which the Gemma 4 format needs."
            )
        return token_id

    @property
    def bos_token_id(self) -> int | None:
        return self.token_to_id(self.special.bos_token)

    @property
    def image_token_id(self) -> int | None:
        return self.token_to_id(self.special.image_token)

    @property
    def video_token_id(self) -> int | None:
        return self.token_to_id(self.special.video_token)

    @property
    def audio_token_id(self) -> int | None:
        return self.token_to_id(self.special.audio_token)

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def special_tokens_map(self) -> dict[str, str]:
        """Token strings a chat template may read as variables (`bos_token`, `eos_token`, ...)."""
        out = {f.name: getattr(self.special, f.name) for f in fields(self.special)}
        for key in ("unk_token", "mask_token"):
            value = self.config.get(key)
            if isinstance(value, str):
                out[key] = value
        return out

    # -- text -----------------------------------------------------------------------------

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """Token ids of `text`; control-token strings in it map to their single ids."""
        return self.backend.encode(text, add_special_tokens=add_special_tokens).ids

    @cached_property
    def special_ids(self) -> dict[int, str]:
        """id -> string of every special (control) token of the vocabulary."""
        return {
            int(i): t.content
            for i, t in self.backend.get_added_tokens_decoder().items()
            if t.special
        }

    @cached_property
    def special_pattern(self) -> re.Pattern[str] | None:
        """A regex matching any special token's string (longest first); None without any."""
        strings = sorted(set(self.special_ids.values()), key=len, reverse=True)
        return re.compile("|".join(re.escape(s) for s in strings)) if strings else None

    @cached_property
    def _plain_backend(self) -> _BackendTokenizer:
        plain = _BackendTokenizer.from_str(self.backend.to_str())
        plain.encode_special_tokens = True  # control-token strings are ordinary text here
        return plain

    _plain_lock = threading.Lock()

    def encode_plain(self, text: str) -> list[int]:
        """Token ids of `text` as plain text: a control-token string in it is not a control token."""
        if not text:
            return []
        with self._plain_lock:
            backend = self._plain_backend
        return backend.encode(text, add_special_tokens=False).ids

    def encode_segments(
        self, segments: Iterable[tuple[str, bool]], add_special_tokens: bool = False
    ) -> list[int]:
        """Token ids of `(text, is_content)` pieces: control-token strings become control tokens
        only in pieces that are not content. Adjacent text is tokenized together, so without
        control strings in the content the ids equal `encode` of the joined text."""
        ids = self.encode("", add_special_tokens=True) if add_special_tokens else []
        added = self.backend.get_added_tokens_decoder()
        pending: list[str] = []

        def flush() -> None:
            ids.extend(self.encode_plain("".join(pending)))
            pending.clear()

        for text, is_content in segments:
            if is_content or self.special_pattern is None:
                pending.append(text)
                continue
            pos = 0
            for match in self.special_pattern.finditer(text):
                token_id = self.backend.token_to_id(match.group())
                token = added.get(token_id)
                before = text[pos : match.start()]
                pending.append(before.rstrip() if token is not None and token.lstrip else before)
                flush()
                ids.append(token_id)
                pos = match.end()
                if token is not None and token.rstrip:
                    pos = len(text) - len(text[pos:].lstrip())
            pending.append(text[pos:])
        flush()
        return ids

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        """Text of `ids`; control tokens are kept as their strings unless skipped."""
        return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def detokenizer(self) -> StreamingDetokenizer:
        """A fresh streaming detokenizer for one generation."""
        return StreamingDetokenizer(self)


class StreamingDetokenizer:
    """Incremental ids -> text that never emits half a UTF-8 character.

    Bytes of a multi-byte character can be spread over several byte-fallback tokens;
    the decoder shows an incomplete one as U+FFFD, so text is held back until the
    decoded tail is complete. Control tokens are single ids and come out whole.
    Work per token is bounded: the decoded window is restarted at clean boundaries,
    keeping one token of context so word-initial spaces decode the same way.
    """

    _WINDOW = 24  # restart the window after this many tokens once the tail is clean

    def __init__(self, tokenizer: Tokenizer):
        self._tokenizer = tokenizer
        self.reset()

    def reset(self) -> None:
        self._window: list[int] = []
        self._window_emitted = 0  # chars of decode(window) already emitted
        self.tokens: list[int] = []
        self.text = ""

    def add_token(self, token_id: int) -> str:
        """Add one generated id; return the newly complete text (possibly empty)."""
        self.tokens.append(int(token_id))
        self._window.append(int(token_id))
        decoded = self._tokenizer.decode(self._window)
        if decoded.endswith("\ufffd"):
            return ""  # an incomplete UTF-8 sequence: wait for the next byte token
        delta = decoded[self._window_emitted :]
        self._window_emitted = len(decoded)
        self.text += delta
        if len(self._window) >= self._WINDOW:
            last = self._window[-1:]
            tail = self._tokenizer.decode(last)
            if "\ufffd" in tail:  # the last id is the end of a multi-byte character: no context
                self._window, self._window_emitted = [], 0
            else:
                self._window, self._window_emitted = last, len(tail)
        return delta

    def finalize(self) -> str:
        """Flush whatever is held back (an unfinished character becomes U+FFFD)."""
        decoded = self._tokenizer.decode(self._window)
        delta = decoded[self._window_emitted :]
        self._window = []
        self._window_emitted = 0
        self.text += delta
        return delta
