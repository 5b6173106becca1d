"""Chat messages in two shapes: Hugging Face's (what the engines take) and OpenAI's (the wire).

The Hugging Face shape is the app's own: `{"role", "content"}` with content a string or a
list of parts (`{"type": "text"|"image"|"audio"|"video", ...}`), assistant `tool_calls`
with arguments as objects and `role: tool` messages answering them. The OpenAI shape has
`image_url` and `input_audio` parts and tool-call arguments as JSON text.

- `assistant_message`, `tool_message`, `hf_tool_call`, `openai_tool_call`: the one place
  each of these dicts is built.
- `to_openai_messages`: Hugging Face -> OpenAI (the remote backend sends these); images
  become data URLs, audio base64 WAV.
- `from_openai_messages`: OpenAI -> Hugging Face (the server receives these); media parts
  are decoded by the caller's `image`/`audio` functions, `file` parts (documents) by its
  `document` function into `{"type": "document", ...}` parts; every problem is an
  `AppError` of kind `invalid_request` naming the offending field in `param`.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from app.errors import AppError, ErrorKind
from mlx_model.events import ToolCall

ROLES = ("system", "developer", "user", "assistant", "tool", "function")


def _invalid(message: str, param: str | None = None) -> AppError:
    return AppError(ErrorKind.INVALID_REQUEST, message, param=param)


# --- building messages -----------------------------------------------------------------------


def hf_tool_call(call: ToolCall) -> dict[str, Any]:
    """A tool call as an assistant message carries it (arguments as an object)."""
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": dict(call.arguments)},
    }


def openai_tool_call(call: ToolCall, index: int | None = None) -> dict[str, Any]:
    """A tool call as OpenAI writes it (arguments as JSON text; `index` in stream deltas)."""
    out: dict[str, Any] = {
        "id": call.id,
        "type": "function",
        "function": {
            "name": call.name,
            "arguments": json.dumps(call.arguments, ensure_ascii=False, default=str),
        },
    }
    return {"index": index, **out} if index is not None else out


def assistant_message(
    text: str, thinking: str = "", calls: Sequence[ToolCall] = ()
) -> dict[str, Any]:
    """The assistant message that records a model turn in the conversation."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if thinking:
        message["reasoning_content"] = thinking
    if calls:
        message["tool_calls"] = [hf_tool_call(call) for call in calls]
    return message


def tool_message(call: ToolCall, result: Any = None, error: str | None = None) -> dict[str, Any]:
    """The message answering one tool call: its result, or `{"error": ...}`.

    A list result is wrapped as `{"value": [...]}` (a list content would read as content
    parts); the chat template renders it as it renders Gemma's own inline tool response.
    """
    if error is not None:
        content: Any = {"error": error}
    elif isinstance(result, list | tuple):
        content = {"value": list(result)}
    else:
        content = result
    return {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": content}


def parse_arguments(text: str) -> dict[str, Any]:
    """Tool-call arguments from JSON text (kept as `{"_raw": text}` when they are not JSON)."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {"_raw": text}
    return value if isinstance(value, dict) else {"value": value}


def plain_text(content: Any) -> str:
    """The text of a content that may be a string or a list of parts (media parts dropped)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(
        p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
    )


def json_text(value: Any) -> str:
    """A tool result as text for the wire (strings as they are, anything else as JSON)."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


# --- Hugging Face -> OpenAI ------------------------------------------------------------------


def to_openai_messages(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Hugging Face chat messages (with media parts and tool calls) as OpenAI chat messages."""
    out: list[dict[str, Any]] = []
    pending_ids: dict[str, list[str]] = {}  # tool name -> ids of calls not answered yet
    for message in messages:
        role = message.get("role")
        content = message.get("content")
        if role == "assistant":
            converted: dict[str, Any] = {"role": "assistant", "content": plain_text(content)}
            calls = message.get("tool_calls") or []
            if calls:
                converted["tool_calls"] = []
                for k, raw in enumerate(calls):
                    fn = raw.get("function", raw)
                    arguments = fn.get("arguments", {})
                    if isinstance(arguments, str):
                        arguments = parse_arguments(arguments)
                    call = ToolCall(fn["name"], arguments, raw.get("id") or f"call_{len(out)}_{k}")
                    pending_ids.setdefault(call.name, []).append(call.id)
                    converted["tool_calls"].append(openai_tool_call(call))
            out.append(converted)
            for response in message.get("tool_responses") or []:  # Gemma's native shape
                name = response.get("name", "")
                ids = pending_ids.get(name, [])
                call_id = ids.pop(0) if ids else name
                out.append(
                    {
                        "role": "tool",
                        "tool_call_id": call_id,
                        "content": json_text(response.get("response")),
                    }
                )
        elif role == "tool":
            name = message.get("name", "")
            call_id = message.get("tool_call_id") or ""
            ids = pending_ids.get(name, [])
            if call_id in ids:
                ids.remove(call_id)
            elif not call_id and ids:
                call_id = ids.pop(0)
            out.append(
                {"role": "tool", "tool_call_id": call_id or name, "content": json_text(content)}
            )
        elif role in ("system", "developer"):
            out.append({"role": "system", "content": plain_text(content)})
        elif role == "user":
            out.append({"role": "user", "content": _openai_user_content(content)})
        else:
            raise _invalid(f"unsupported message role {role!r}")
    return out


def _openai_user_content(content: Any) -> Any:
    if content is None or isinstance(content, str):
        return content or ""
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image":
            source = part.get("image", part.get("url", part.get("path")))
            parts.append({"type": "image_url", "image_url": {"url": image_data_url(source)}})
        elif kind == "audio":
            data, fmt = audio_base64(part.get("audio", part.get("path")))
            parts.append({"type": "input_audio", "input_audio": {"data": data, "format": fmt}})
        elif kind == "video":
            raise AppError(
                ErrorKind.UNSUPPORTED,
                "videos cannot be sent to an OpenAI-compatible server; use the local model",
            )
        else:
            raise AppError(ErrorKind.MEDIA, f"unsupported content part {kind!r}")
    return parts


def image_data_url(source: Any) -> str:
    """A data URL for an image given as a path, bytes, PIL image or array."""
    import numpy as np
    from PIL import Image

    if isinstance(source, str) and source.startswith("data:"):
        return source
    if isinstance(source, str | Path):
        raw = Path(source).read_bytes()
        with Image.open(io.BytesIO(raw)) as image:
            fmt = (image.format or "").upper()
        if fmt in ("PNG", "JPEG", "WEBP", "GIF"):
            return f"data:image/{fmt.lower()};base64,{base64.b64encode(raw).decode()}"
        source = Image.open(io.BytesIO(raw))  # HEIC and others: re-encoded as PNG
    if isinstance(source, bytes):
        source = Image.open(io.BytesIO(source))
    if isinstance(source, np.ndarray):
        array = source
        if array.dtype != np.uint8:
            array = np.clip(array * (255 if array.max() <= 1.0 else 1), 0, 255).astype(np.uint8)
        source = Image.fromarray(array)
    if not isinstance(source, Image.Image):
        raise AppError(ErrorKind.MEDIA, f"cannot send an image of type {type(source).__name__}")
    buffer = io.BytesIO()
    source.convert("RGB" if source.mode not in ("RGB", "RGBA", "L") else source.mode).save(
        buffer, format="PNG"
    )
    return f"data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}"


def audio_base64(source: Any) -> tuple[str, str]:
    """(base64 data, format) of an audio clip given as a path or `(samples, rate)`."""
    if isinstance(source, str | Path):
        path = Path(source)
        fmt = path.suffix.lower().lstrip(".") or "wav"
        if fmt in ("wav", "mp3", "flac", "ogg"):
            return base64.b64encode(path.read_bytes()).decode(), fmt
        import soundfile

        samples, rate = soundfile.read(str(path), dtype="float32")
        source = (samples, rate)
    if isinstance(source, tuple) and len(source) == 2:
        import numpy as np
        import soundfile

        samples, rate = np.asarray(source[0], dtype=np.float32), int(source[1])
        buffer = io.BytesIO()
        soundfile.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
        return base64.b64encode(buffer.getvalue()).decode(), "wav"
    raise AppError(ErrorKind.MEDIA, f"cannot send audio of type {type(source).__name__}")


# --- OpenAI -> Hugging Face ------------------------------------------------------------------

ImageLoader = Callable[[str, str], Any]  # (url, param) -> the engine's image part value
AudioLoader = Callable[[Any, str], Any]  # (input_audio object, param) -> (samples, rate)
DocumentLoader = Callable[[Any, str], dict[str, Any]]  # (file object, param) -> part fields


def from_openai_messages(
    messages: Any,
    *,
    image: ImageLoader,
    audio: AudioLoader,
    document: DocumentLoader | None = None,
) -> list[dict[str, Any]]:
    """OpenAI chat messages (already JSON-decoded) as Hugging Face messages; see the docstring."""
    if not isinstance(messages, list) or not messages:
        raise _invalid("`messages` must be a non-empty list.", "messages")
    out: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}  # tool_call id -> function name, to name tool responses
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise _invalid(
                f"`{where}.role` must be one of {', '.join(sorted(ROLES))}.", f"{where}.role"
            )
        role = message["role"]
        content = message.get("content")
        if role in ("system", "developer"):
            out.append({"role": "system", "content": _text_of(content, where)})
        elif role == "user":
            out.append(
                {
                    "role": "user",
                    "content": _hf_user_content(content, where, image, audio, document),
                }
            )
        elif role == "assistant":
            converted: dict[str, Any] = {"role": "assistant", "content": _text_of(content, where)}
            calls = message.get("tool_calls")
            if calls:
                converted["tool_calls"] = [
                    hf_tool_call(call) for call in _tool_calls(calls, where, call_names)
                ]
            out.append(converted)
        else:  # tool (or the deprecated function role)
            call_id = message.get("tool_call_id")
            name = message.get("name") or call_names.get(call_id or "")
            if not name:
                raise _invalid(
                    f"`{where}.tool_call_id` does not match a tool call of an earlier assistant message.",
                    f"{where}.tool_call_id",
                )
            # Kept as text: the chat template renders a string response as it came.
            call = ToolCall(name=name, arguments={}, id=call_id or "")
            out.append(tool_message(call, _text_of(content, where)))
    return out


def _text_of(content: Any, where: str) -> str:
    """Content that must be text: a string or a list of text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            if (
                not isinstance(part, dict)
                or part.get("type") != "text"
                or not isinstance(part.get("text"), str)
            ):
                raise _invalid(
                    f"`{where}.content[{j}]` must be a text part here.", f"{where}.content"
                )
            texts.append(part["text"])
        return "".join(texts)
    raise _invalid(f"`{where}.content` must be a string or a list of parts.", f"{where}.content")


def _hf_user_content(
    content: Any,
    where: str,
    image: ImageLoader,
    audio: AudioLoader,
    document: DocumentLoader | None = None,
) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list) or not content:
        raise _invalid(
            f"`{where}.content` must be a string or a non-empty list of parts.", f"{where}.content"
        )
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        param = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            image_url = part.get("image_url")
            url = image_url.get("url") if isinstance(image_url, dict) else image_url
            if not isinstance(url, str) or not url:
                raise _invalid(f"`{param}.image_url.url` is required.", param)
            parts.append({"type": "image", "image": image(url, param)})
        elif kind == "input_audio":
            parts.append({"type": "audio", "audio": audio(part.get("input_audio"), param)})
        elif kind == "file" and document is not None:
            parts.append({"type": "document", **document(part.get("file"), param)})
        else:
            kinds = (
                "text, image_url, input_audio or file"
                if document
                else "text, image_url or input_audio"
            )
            raise _invalid(f"`{param}` must be a {kinds} part; got {kind!r}.", param)
    return parts


def _tool_calls(calls: Any, where: str, call_names: dict[str, str]) -> list[ToolCall]:
    if not isinstance(calls, list):
        raise _invalid(f"`{where}.tool_calls` must be a list.", f"{where}.tool_calls")
    converted = []
    for k, call in enumerate(calls):
        param = f"{where}.tool_calls[{k}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise _invalid(f"`{param}.function.name` is required.", param)
        arguments = fn.get("arguments", "{}")
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments or "{}")
            except ValueError as exc:
                raise _invalid(
                    f"`{param}.function.arguments` is not valid JSON: {exc}", param
                ) from exc
        if not isinstance(arguments, dict):
            raise _invalid(f"`{param}.function.arguments` must be a JSON object.", param)
        call_id = call.get("id") or ""
        if call_id:
            call_names[call_id] = fn["name"]
        converted.append(ToolCall(name=fn["name"], arguments=arguments, id=call_id))
    return converted
