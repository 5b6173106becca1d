"""Function calling: a registry of tools with JSON schemas, argument validation and execution.

A tool is a typed Python function; its JSON schema comes from the type hints and its
description from the docstring (first paragraph, plus an ``Args:`` section for the
parameters). The agent loop (`app.engines.agent`) validates each call the model makes
against the schema, executes it (several calls of one turn in parallel) and appends the
result as a tool response. A tool marked `requires_consent` runs only when the registry's
`consent` callback says yes: no callback means no run (fails closed). A result longer than
`max_result_chars` (as JSON) is cut, and the text the model reads says so. The built-in
tools are in `app.tools.builtin`.
"""

from __future__ import annotations

import enum
import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from mlx_model.events import ToolCall

JSONSchema = dict[str, Any]
# What one tool result may put into the prompt (about 16k tokens of English or JSON); the
# agent loop also caps it in tokens (`app.engines.agent.cap_tool_result`).
MAX_RESULT_CHARS = 64_000


def truncation_note(total: int, kept: int, unit: str) -> str:
    """The sentence appended to a cut tool result, so the model (and the user) know."""
    return f"\n[truncated: the tool returned {total:,} {unit}; only the first {kept:,} are shown]"


def cap_result(value: Any, max_chars: int = MAX_RESULT_CHARS) -> Any:
    """`value` itself when its JSON text has at most `max_chars` characters, else that text
    cut to `max_chars` with a `truncation_note`."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if len(text) <= max_chars:
        return value
    return text[:max_chars] + truncation_note(len(text), max_chars, "characters")


class ToolError(Exception):
    """A tool call that cannot run: unknown tool, invalid arguments, refused or failed."""


@dataclass(frozen=True)
class ToolResult:
    """What one executed call returned (`result`) or why it failed (`error`)."""

    call: ToolCall
    result: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def response(self) -> Any:
        """The value written into the tool response the model reads."""
        return {"error": self.error} if self.error is not None else self.result


@dataclass(frozen=True)
class Tool:
    """A callable the model may invoke, with the JSON schema of its keyword arguments."""

    name: str
    description: str
    parameters: JSONSchema
    function: Callable[..., Any]
    requires_consent: bool = False

    def schema(self) -> dict[str, Any]:
        """The OpenAI/Hugging Face tool shape that chat templates take (`tools=[...]`)."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


# --- schemas from Python functions -------------------------------------------------------

_SIMPLE_TYPES: dict[Any, JSONSchema] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    type(None): {"type": "null"},
    Any: {},
}


def _type_schema(annotation: Any) -> JSONSchema:
    """The JSON schema of one Python type annotation."""
    if annotation in _SIMPLE_TYPES:
        return dict(_SIMPLE_TYPES[annotation])
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        values = list(args)
        schema = _type_schema(type(values[0])) if values else {}
        return {**schema, "enum": values}
    if origin in (typing.Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        if len(members) == 1:
            return _type_schema(members[0])
        return {"anyOf": [_type_schema(a) for a in members]}
    if origin in (list, Sequence, tuple, set, frozenset) or annotation in (list, tuple, set):
        schema: JSONSchema = {"type": "array"}
        if args:
            schema["items"] = _type_schema(args[0])
        return schema
    if origin is dict or annotation is dict:
        schema = {"type": "object"}
        if len(args) == 2:
            schema["additionalProperties"] = _type_schema(args[1])
        return schema
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return {"type": "string", "enum": [m.value for m in annotation]}
    raise TypeError(f"cannot derive a JSON schema for the annotation {annotation!r}")


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """(description, {param: description}) from a Google-style docstring."""
    doc = inspect.cleandoc(doc or "")
    description_lines: list[str] = []
    params: dict[str, str] = {}
    section = "description"
    current: str | None = None
    for line in doc.splitlines():
        stripped = line.strip()
        if re.fullmatch(r"(Args|Arguments|Parameters):", stripped):
            section, current = "args", None
            continue
        if re.fullmatch(r"[A-Z][A-Za-z ]*:", stripped) and not line.startswith(" "):
            section, current = "other", None
            continue
        if section == "description":
            description_lines.append(stripped)
        elif section == "args" and stripped:
            match = re.match(r"^(\w+)(?:\s*\([^)]*\))?:\s*(.*)$", stripped)
            if match and line.startswith(" ") and len(line) - len(line.lstrip()) <= 4:
                current = match.group(1)
                params[current] = match.group(2)
            elif current is not None:
                params[current] = f"{params[current]} {stripped}".strip()
    paragraphs = "\n".join(description_lines).strip().split("\n\n")
    description = " ".join(paragraphs[0].split()) if paragraphs and paragraphs[0] else ""
    return description, params


def tool_from_function(
    function: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    requires_consent: bool = False,
) -> Tool:
    """A `Tool` whose schema is derived from the function's type hints and docstring."""
    doc_description, param_docs = _parse_docstring(function.__doc__ or "")
    hints = typing.get_type_hints(function)
    properties: dict[str, JSONSchema] = {}
    required: list[str] = []
    for param in inspect.signature(function).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"tool {function.__name__}: *args/**kwargs have no schema")
        if param.name not in hints:
            raise TypeError(f"tool {function.__name__}: parameter {param.name!r} needs a type hint")
        schema = _type_schema(hints[param.name])
        if param.name in param_docs:
            schema["description"] = param_docs[param.name]
        properties[param.name] = schema
        if param.default is inspect.Parameter.empty:
            required.append(param.name)
    parameters: JSONSchema = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    tool_name = name or function.__name__
    if not re.fullmatch(r"[A-Za-z_][\w-]*", tool_name):
        raise ValueError(f"invalid tool name {tool_name!r}")
    return Tool(
        name=tool_name,
        description=description if description is not None else doc_description,
        parameters=parameters,
        function=function,
        requires_consent=requires_consent,
    )


# --- validation ----------------------------------------------------------------------------

_JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (
        isinstance(v, int) and not isinstance(v, bool) or (isinstance(v, float) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list | tuple),
    "object": lambda v: isinstance(v, dict),
    "null": lambda v: v is None,
}


def schema_errors(value: Any, schema: JSONSchema, where: str = "arguments") -> list[str]:
    """Why `value` does not match the JSON schema (the subset tools use); empty when it does."""
    errors: list[str] = []
    if "anyOf" in schema:
        if all(schema_errors(value, option, where) for option in schema["anyOf"]):
            errors.append(f"{where}: matches none of the allowed types")
        return errors
    expected = schema.get("type")
    if expected is not None:
        allowed = expected if isinstance(expected, list) else [expected]
        if not any(_JSON_TYPES.get(t, lambda v: True)(value) for t in allowed):
            return [f"{where}: expected {' or '.join(allowed)}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} is not one of {schema['enum']!r}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{where}: missing required property {key!r}")
        extra = schema.get("additionalProperties", not properties)
        for key, item in value.items():
            if key in properties:
                errors.extend(schema_errors(item, properties[key], f"{where}.{key}"))
            elif extra is False:
                errors.append(f"{where}: unexpected property {key!r}")
            elif isinstance(extra, dict):
                errors.extend(schema_errors(item, extra, f"{where}.{key}"))
    if isinstance(value, list | tuple) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            errors.extend(schema_errors(item, schema["items"], f"{where}[{index}]"))
    return errors


# --- the registry --------------------------------------------------------------------------


@dataclass
class ToolRegistry:
    """The tools offered to the model, and how their calls are checked and run.

    `max_steps` bounds the agent loop: how many model turns that end in tool calls one
    generation may run before it stops asking for more.
    `consent(call) -> bool` is asked before any tool marked `requires_consent` runs;
    without it such a tool is refused (fails closed). `max_result_chars` caps each result.
    """

    tools: dict[str, Tool] = field(default_factory=dict)
    max_steps: int = 8
    max_workers: int = 4
    consent: Callable[[ToolCall], bool] | None = None
    max_result_chars: int = MAX_RESULT_CHARS

    def register(
        self,
        function: Callable[..., Any] | Tool | None = None,
        *,
        name: str | None = None,
        requires_consent: bool = False,
    ) -> Any:
        """Add a tool (a `Tool` or a typed function); usable as a decorator."""
        if function is None:
            return lambda f: self.register(f, name=name, requires_consent=requires_consent)
        tool = (
            function
            if isinstance(function, Tool)
            else tool_from_function(function, name=name, requires_consent=requires_consent)
        )
        if tool.name in self.tools:
            raise ValueError(f"a tool named {tool.name!r} is already registered")
        self.tools[tool.name] = tool
        return function

    def __contains__(self, name: str) -> bool:
        return name in self.tools

    def __len__(self) -> int:
        return len(self.tools)

    def schemas(self) -> list[dict[str, Any]]:
        """Every tool in the shape the chat template takes."""
        return [tool.schema() for tool in self.tools.values()]

    def validate(self, call: ToolCall) -> Tool:
        """The tool the call names, once its arguments match the schema; else `ToolError`."""
        tool = self.tools.get(call.name)
        if tool is None:
            known = ", ".join(sorted(self.tools)) or "none"
            raise ToolError(f"unknown tool {call.name!r} (available: {known})")
        errors = schema_errors(call.arguments, tool.parameters)
        if errors:
            raise ToolError(f"invalid arguments for {call.name}: " + "; ".join(errors))
        return tool

    def execute(self, call: ToolCall) -> ToolResult:
        """Validate and run one call; failures become a `ToolResult` with an error message."""
        try:
            tool = self.validate(call)
            if tool.requires_consent:
                if self.consent is None:
                    raise ToolError(
                        f"{call.name} needs the user's consent and there is no way to ask here"
                    )
                if not self.consent(call):
                    raise ToolError(f"the user declined to run {call.name}")
            arguments = _coerce(call.arguments, tool.parameters)
            result = tool.function(**arguments)
            return ToolResult(call, result=cap_result(result, self.max_result_chars))
        except ToolError as exc:
            return ToolResult(call, error=cap_result(str(exc), self.max_result_chars))
        except Exception as exc:  # a tool's own failure is reported to the model, not raised
            error = f"{type(exc).__name__}: {exc}"
            return ToolResult(call, error=cap_result(error, self.max_result_chars))

    def execute_all(self, calls: Sequence[ToolCall]) -> list[ToolResult]:
        """Run the calls of one turn (in parallel when there are several), results in order."""
        if len(calls) <= 1:
            return [self.execute(call) for call in calls]
        with ThreadPoolExecutor(max_workers=min(self.max_workers, len(calls))) as pool:
            return list(pool.map(self.execute, calls))


def _coerce(arguments: dict[str, Any], parameters: JSONSchema) -> dict[str, Any]:
    """Integral floats to int where the schema wants an integer (models write `3.0`)."""
    properties = parameters.get("properties", {})
    out = dict(arguments)
    for key, value in arguments.items():
        if properties.get(key, {}).get("type") == "integer" and isinstance(value, float):
            out[key] = int(value)
    return out
