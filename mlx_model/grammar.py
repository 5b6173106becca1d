"""Grammars for constrained decoding: JSON, JSON Schema and Gemma 4 tool calls (llguidance).

`OutputConstraint` says what the answer must be: any JSON object (JSON mode), a document
of a JSON Schema, or a forced tool call (`tool_choice` "required" or a named function).
A JSON answer may also leave the choice to call tools first (`with_tools`: the answer is
the JSON document or tool calls, as OpenAI's `response_format` with `tool_choice` "auto").
`grammar_text(constraint, ids)` writes it as an llguidance grammar (Lark syntax) over the
checkpoint's token ids:

- a JSON answer is the schema (llguidance's own JSON Schema compiler) followed by the
  end-of-turn token; whitespace between JSON tokens is at most one space, so a model
  cannot pad forever;
- a tool call is written in Gemma 4's own syntax, which the output parser reads:
  `<|tool_call>call:NAME{key:value,…}<tool_call|>` (bare keys in the order the chat
  template sorts them, strings between `<|"|>` tokens), one or more of them, then
  `<|tool_response>` (the model hands over to the tool runner).

Objects without `additionalProperties` are closed (only the listed keys), as xgrammar and
OpenAI's strict mode do: every document the grammar allows is valid for the schema.
`strict=False` lets llguidance ignore JSON Schema keywords it does not implement;
`strict=True` makes them an error. Tool-call schemas are the client's, read leniently:
keywords the Gemma grammar cannot express (`format`, `not`, …) are left to the tool's own
validation.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import InvalidRequestError

JSONSchema = dict[str, Any]
ConstraintKind = Literal["json_object", "json_schema", "tool_call"]

# Whitespace a JSON answer may have between tokens: none or one space (bounded, so a
# model cannot stall in whitespace; compact and "a": 1 styles both pass).
JSON_WHITESPACE = "[ ]?"
# Keys the Gemma grammar may write bare; others are quoted like strings (as
# `output_parser.render_tool_call` does).
_BARE_KEY = re.compile(r"[^\s:,{}\[\]<>\"]+")
_TOOL_NAME = re.compile(r"[A-Za-z_][\w.-]*")
# The chat template prints a null argument as Jinja does (`None`); the parser reads both.
_NULL = '("null" | "None")'
_ANNOTATIONS = {"title", "description", "default", "examples", "$schema", "$id", "$comment"}


class GrammarError(InvalidRequestError):
    """A constraint that cannot be compiled (bad schema, unknown tool, unsupported keyword):
    a wrong request (kind "invalid_request")."""


@dataclass(frozen=True)
class OutputConstraint:
    """What the answer must be. Build it with the class methods."""

    kind: ConstraintKind
    schema: Mapping[str, Any] | None = None
    strict: bool = True
    tools: tuple[Mapping[str, Any], ...] = ()
    tool_name: str | None = None  # a named function; None = any of `tools`
    parallel: bool = True  # tool calls: one or more (True) or exactly one

    @classmethod
    def json_object(cls) -> OutputConstraint:
        """Any JSON object (OpenAI's `response_format: {"type": "json_object"}`)."""
        return cls("json_object", {"type": "object"}, strict=False)

    @classmethod
    def json_schema(cls, schema: Mapping[str, Any], *, strict: bool = True) -> OutputConstraint:
        """A document of `schema` (`response_format: {"type": "json_schema", ...}`)."""
        if not isinstance(schema, Mapping):
            raise GrammarError("a JSON schema must be an object")
        return cls("json_schema", schema, strict=strict)

    @classmethod
    def tool_call(
        cls,
        tools: Sequence[Mapping[str, Any]],
        name: str | None = None,
        *,
        parallel: bool = True,
    ) -> OutputConstraint:
        """A forced call of one of `tools` (`tool_choice: "required"`) or of `name`.

        `tools` are in the OpenAI / chat-template shape (`{"type": "function",
        "function": {"name", "parameters"}}`) or bare `{"name", "parameters"}`.
        """
        functions = [_function_of(t) for t in tools]
        if not functions:
            raise GrammarError("a forced tool call needs at least one tool")
        names = [f["name"] for f in functions]
        if name is not None and name not in names:
            raise GrammarError(f"tool_choice names {name!r}, which is not among the tools")
        return cls("tool_call", None, tools=tuple(functions), tool_name=name, parallel=parallel)

    def with_tools(
        self, tools: Sequence[Mapping[str, Any]], *, parallel: bool = True
    ) -> OutputConstraint:
        """This JSON answer, or instead calls of `tools` (the model may call tools first)."""
        if self.kind == "tool_call":
            raise GrammarError("a forced tool call cannot also allow other tools")
        functions = tuple(_function_of(t) for t in tools)
        return OutputConstraint(self.kind, self.schema, self.strict, functions, None, parallel)


@dataclass(frozen=True)
class GrammarTokens:
    """The ids of the control tokens a grammar refers to (from the checkpoint's tokenizer)."""

    end_of_turn: int
    tool_call_start: int
    tool_call_end: int
    tool_response_start: int
    string_delimiter: int

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> GrammarTokens:
        """Read the ids from an `mlx_model.processing.Tokenizer`."""
        s = tokenizer.special
        return cls(
            end_of_turn=tokenizer.require_id(s.eot_token),
            tool_call_start=tokenizer.require_id(s.stc_token),
            tool_call_end=tokenizer.require_id(s.etc_token),
            tool_response_start=tokenizer.require_id(s.str_token),
            string_delimiter=tokenizer.require_id(s.escape_token),
        )


def grammar_text(constraint: OutputConstraint, ids: GrammarTokens) -> str:
    """The llguidance grammar (serialized) for the constraint over these token ids."""
    import llguidance

    if constraint.kind == "tool_call":
        lark = _ToolCallGrammar(ids).build(constraint)
    else:
        schema = close_objects(dict(constraint.schema or {}))
        options = {"whitespace_flexible": True, "whitespace_pattern": JSON_WHITESPACE}
        if not constraint.strict:
            options["lenient"] = True
        schema["x-guidance"] = {**schema.get("x-guidance", {}), **options}
        answer = f"answer <[{ids.end_of_turn}]>"
        lark = f"answer: %json {json.dumps(schema)}\n"
        if constraint.tools:
            calls = _ToolCallGrammar(ids).build(constraint, start="calls")
            lark = f"start: {answer} | calls\n{lark}{calls}"
        else:
            lark = f"start: {answer}\n{lark}"
    return llguidance.LLMatcher.grammar_from_lark(lark)


# Subschemas where a narrower schema only narrows what the whole schema accepts.
_POSITIVE_SUBSCHEMAS = (
    "items", "additionalProperties", "contains", "then", "else", "anyOf", "oneOf", "prefixItems",
)  # fmt: skip


def close_objects(schema: Any) -> Any:
    """A copy of the schema where objects with listed properties allow no others.

    JSON Schema lets an object without `additionalProperties` carry any extra key; a
    grammar that allowed them would let a model add keys forever. Only subschemas a valid
    document must match are closed (not those under `not` or `if`), and an object combined
    with `allOf`/`anyOf`/`oneOf` stays open (its keys may come from the combined schemas).
    """
    if isinstance(schema, list):
        return [close_objects(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("properties", "$defs", "definitions", "dependentSchemas", "patternProperties"):
            out[key] = (
                {k: close_objects(v) for k, v in value.items()}
                if isinstance(value, dict)
                else value
            )
        elif key in _POSITIVE_SUBSCHEMAS:
            out[key] = close_objects(value)
        else:
            out[key] = value
    if (
        "properties" in out
        and "additionalProperties" not in out
        and "patternProperties" not in out
        and "unevaluatedProperties" not in out
        and not any(k in out for k in ("allOf", "anyOf", "oneOf"))
    ):
        out["additionalProperties"] = False
    return out


def _function_of(tool: Mapping[str, Any]) -> dict[str, Any]:
    function = tool.get("function", tool) if isinstance(tool, Mapping) else None
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        raise GrammarError("each tool needs a function name")
    name = function["name"]
    if not _TOOL_NAME.fullmatch(name):
        raise GrammarError(f"tool name {name!r} cannot be written in a Gemma tool call")
    parameters = function.get("parameters") or {"type": "object", "properties": {}}
    if not isinstance(parameters, Mapping):
        raise GrammarError(f"the parameters of {name!r} must be a JSON schema object")
    return {"name": name, "parameters": dict(parameters)}


def _lark_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _sort_key(key: str) -> str:
    return key.lower()  # the chat template's `dictsort` (case-insensitive)


@dataclass
class _ToolCallGrammar:
    """Writes tool-call schemas as Lark rules in Gemma 4's tool-call syntax."""

    ids: GrammarTokens
    rules: dict[str, str] = field(default_factory=dict)
    _refs: dict[str, str] = field(default_factory=dict)
    _root: Mapping[str, Any] = field(default_factory=dict)

    def build(self, constraint: OutputConstraint, start: str = "start") -> str:
        """The rules; `start` names the one matching the calls and the hand-over token."""
        t = self.ids
        alternatives = []
        for index, function in enumerate(constraint.tools):
            if constraint.tool_name not in (None, function["name"]):
                continue
            self._root, self._refs = function["parameters"], {}
            arguments = self._object(function["parameters"], f"f{index}")
            head = _lark_string(f"call:{function['name']}")
            self.rules[f"call{index}"] = f"{head} {arguments}"
            alternatives.append(f"call{index}")
        self.rules["call"] = (
            f"<[{t.tool_call_start}]> ({' | '.join(alternatives)}) <[{t.tool_call_end}]>"
        )
        repeat = "call+" if constraint.parallel else "call"
        lines = [f"{start}: {repeat} <[{t.tool_response_start}]>"]
        lines += [f"{name}: {body}" for name, body in self.rules.items()]
        return "\n".join(lines) + "\n"

    # -- values ---------------------------------------------------------------------------

    def value(self, schema: Any, hint: str) -> str:
        """A rule name (or inline expression) matching values of `schema`."""
        if schema is True or schema is None or schema == {}:
            return self._any()
        if schema is False:
            raise GrammarError(f"{hint}: the schema `false` allows no value")
        if not isinstance(schema, Mapping):
            raise GrammarError(f"{hint}: a schema must be an object, got {schema!r}")
        if "$ref" in schema:
            return self._ref(schema["$ref"])
        if "const" in schema:
            return self._literal(schema["const"])
        if "enum" in schema:
            values = schema["enum"]
            if not isinstance(values, list) or not values:
                raise GrammarError(f"{hint}: enum must be a non-empty list")
            return self._rule(hint, " | ".join(self._literal(v) for v in values))
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = [self.value(s, f"{hint}_{i}") for i, s in enumerate(schema[key])]
                return self._rule(hint, " | ".join(options))
        if "allOf" in schema:
            return self.value(_merge_all_of(schema, hint), hint)
        kind = schema.get("type")
        if isinstance(kind, list):
            options = [self.value({**schema, "type": k}, f"{hint}_{k}") for k in kind]
            return self._rule(hint, " | ".join(options))
        if kind is None:
            kind = _implied_type(schema)
        if kind is None:
            return self._any()
        if kind == "string":
            return self._string(schema, hint)
        if kind in ("integer", "number"):
            keys = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
            number = {"type": kind, **{k: schema[k] for k in keys if k in schema}}
            return self._rule(hint, f"%json {json.dumps(number)}")
        if kind == "boolean":
            return '("true" | "false")'
        if kind == "null":
            return _NULL
        if kind == "array":
            return self._array(schema, hint)
        if kind == "object":
            return self._object(schema, hint)
        raise GrammarError(f"{hint}: unknown JSON type {kind!r}")

    def _rule(self, hint: str, body: str, *, terminal: bool = False) -> str:
        """Add a rule (lower-case name) or a terminal (upper-case) with a fresh name."""
        name = re.sub(r"[^a-z0-9_]", "_", hint.lower())
        name = name.upper() if terminal else name
        base, n = name, 1
        while name in self.rules:
            n += 1
            name = f"{base}_{n}"
        self.rules[name] = body
        return name

    def _ref(self, ref: Any) -> str:
        if not isinstance(ref, str) or not ref.startswith("#/"):
            raise GrammarError(f"only local $ref ('#/...') is supported, got {ref!r}")
        if ref in self._refs:
            return self._refs[ref]
        target: Any = self._root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, Mapping) or part not in target:
                raise GrammarError(f"$ref {ref!r} points nowhere")
            target = target[part]
        name = self._rule("ref_" + ref[2:].split("/")[-1], "")  # reserve: refs may recurse
        self._refs[ref] = name
        self.rules[name] = self.value(target, name + "_v")
        return name

    def _string(self, schema: Mapping[str, Any], hint: str) -> str:
        d = self.ids.string_delimiter
        low = int(schema.get("minLength", 0))
        high = schema.get("maxLength")
        if high is not None and int(high) < low:
            raise GrammarError(f"{hint}: maxLength is below minLength")
        body = f"(?s:.{{{low},{'' if high is None else int(high)}}})"
        pattern = schema.get("pattern")
        terminal = f"/{body}/"
        if isinstance(pattern, str):
            import llguidance

            terminal += f" & /{llguidance.regex_to_lark(_anchored(pattern), 'dw')}/"
        # The text of the delimiter token must not appear inside (the parser would end there).
        terminal += r' & ~/(?s:.*)<\|"\|>(?s:.*)/'
        text = self._rule(hint + "_text", terminal, terminal=True)
        return self._rule(hint, f"<[{d}]> {text} <[{d}]>")

    def _array(self, schema: Mapping[str, Any], hint: str) -> str:
        item = self.value(schema.get("items", True), hint + "_item")
        low = int(schema.get("minItems", 0))
        high = schema.get("maxItems")
        if high is not None and int(high) < low:
            raise GrammarError(f"{hint}: maxItems is below minItems")
        if high is not None and int(high) == 0:
            return '"[" "]"'
        more_low = max(low - 1, 0)
        more = f'("," {item}){{{more_low},{"" if high is None else int(high) - 1}}}'
        items = f"{item} {more}"
        if low == 0:
            items = f"({items})?"
        return self._rule(hint, f'"[" {items} "]"')

    def _object(self, schema: Mapping[str, Any], hint: str) -> str:
        properties = schema.get("properties") or {}
        if not isinstance(properties, Mapping):
            raise GrammarError(f"{hint}: properties must be an object")
        required = set(schema.get("required") or ())
        missing = required - set(properties)
        if missing and schema.get("additionalProperties") is False:
            raise GrammarError(f"{hint}: required {sorted(missing)} are not among the properties")
        if not properties:
            # Listed (even as none) properties close the object, as `close_objects` does.
            extra = schema.get("additionalProperties", "properties" not in schema)
            if extra is False:
                return '"{" "}"'
            return self._free_object(extra, hint)
        keys = sorted(properties, key=_sort_key)
        pairs = [f'{self._key(k)} ":" {self.value(properties[k], f"{hint}_{k}")}' for k in keys]
        tails: dict[tuple[int, bool], str] = {}

        def tail(i: int, first: bool) -> str:
            """The keys from i on (each optional one may be left out); "" when none are left.
            A comma goes before a pair unless it is the first of the object."""
            if i == len(keys):
                return ""
            if (i, first) not in tails:
                comma = "" if first else '"," '
                take = f"{comma}{pairs[i]} {tail(i + 1, False)}".strip()
                if keys[i] in required:
                    body = take
                else:
                    rest = tail(i + 1, first)
                    body = f"({take}) | {rest}" if rest else f"({take})?"
                tails[i, first] = self._rule(f"{hint}_k{i}{'f' if first else ''}", body)
            return tails[i, first]

        return self._rule(hint, f'"{{" {tail(0, True)} "}}"')

    def _free_object(self, values: Any, hint: str) -> str:
        value = self.value(values, hint + "_value")
        pair = f'{self._any_key()} ":" {value}'
        return self._rule(hint, f'"{{" ({pair} ("," {pair})*)? "}}"')

    def _key(self, key: str) -> str:
        if _BARE_KEY.fullmatch(key):
            return _lark_string(key)
        if '<|"|>' in key:
            raise GrammarError(f"a property name cannot contain the string delimiter: {key!r}")
        d = self.ids.string_delimiter
        return f"<[{d}]> {_lark_string(key)} <[{d}]>"

    def _literal(self, value: Any) -> str:
        d = self.ids.string_delimiter
        if isinstance(value, str):
            if '<|"|>' in value:
                raise GrammarError(f"an enum string cannot contain the delimiter: {value!r}")
            return f"<[{d}]> {_lark_string(value)} <[{d}]>" if value else f"<[{d}]> <[{d}]>"
        if isinstance(value, bool):
            return '"true"' if value else '"false"'
        if value is None:
            return _NULL
        if isinstance(value, int | float):
            if isinstance(value, float) and not math.isfinite(value):
                raise GrammarError("enum numbers must be finite")
            return _lark_string(json.dumps(value))
        if isinstance(value, Mapping):
            parts = [
                f'{self._key(str(k))} ":" {self._literal(v)}'
                for k, v in sorted(value.items(), key=lambda kv: _sort_key(str(kv[0])))
            ]
            return '"{" ' + ' "," '.join(parts) + ' "}"' if parts else '"{" "}"'
        if isinstance(value, list):
            parts = [self._literal(v) for v in value]
            return '"[" ' + ' "," '.join(parts) + ' "]"' if parts else '"[" "]"'
        raise GrammarError(f"cannot write the enum value {value!r}")

    def _any(self) -> str:
        if "any_value" not in self.rules:
            d = self.ids.string_delimiter
            self.rules["any_value"] = ""  # reserved: the rules below refer back to it
            self.rules["ANY_TEXT"] = r'/(?s:.*)/ & ~/(?s:.*)<\|"\|>(?s:.*)/'
            self.rules["any_string"] = f"<[{d}]> ANY_TEXT <[{d}]>"
            self.rules["any_number"] = '%json {"type": "number"}'
            self.rules["any_array"] = '"[" (any_value ("," any_value)*)? "]"'
            self.rules["any_object"] = '"{" (any_pair ("," any_pair)*)? "}"'
            self.rules["any_pair"] = f'{self._any_key()} ":" any_value'
            self.rules["any_value"] = (
                f'any_string | any_number | "true" | "false" | {_NULL} | any_array | any_object'
            )
        return "any_value"

    def _any_key(self) -> str:
        if "any_key" not in self.rules:
            d = self.ids.string_delimiter
            self.rules["BARE_KEY"] = r'/[^\s:,{}\[\]<>"]+/'
            self.rules["KEY_TEXT"] = r'/(?s:.+)/ & ~/(?s:.*)<\|"\|>(?s:.*)/'
            self.rules["any_key"] = f"BARE_KEY | <[{d}]> KEY_TEXT <[{d}]>"
        return "any_key"


def _implied_type(schema: Mapping[str, Any]) -> str | None:
    if "properties" in schema or "additionalProperties" in schema or "required" in schema:
        return "object"
    if "items" in schema or "minItems" in schema or "maxItems" in schema:
        return "array"
    if "minLength" in schema or "maxLength" in schema or "pattern" in schema:
        return "string"
    if "minimum" in schema or "maximum" in schema:
        return "number"
    return None


def _merge_all_of(schema: Mapping[str, Any], hint: str) -> dict[str, Any]:
    """`allOf` of object or same-typed schemas, merged into one (what tool schemas use)."""
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    for part in schema["allOf"]:
        if not isinstance(part, Mapping):
            raise GrammarError(f"{hint}: allOf members must be schemas")
        for key, value in part.items():
            if key == "properties":
                merged.setdefault("properties", {}).update(value)
            elif key == "required":
                merged["required"] = sorted(set(merged.get("required", [])) | set(value))
            elif key in merged and merged[key] != value and key not in _ANNOTATIONS:
                raise GrammarError(f"{hint}: allOf members disagree on {key!r}")
            else:
                merged[key] = value
    return merged


def _anchored(pattern: str) -> str:
    """A JSON Schema pattern (a search) as a whole-string regex."""
    body = pattern
    head = "" if body.startswith("^") else "(?s:.*)"
    tail = "" if body.endswith("$") and not body.endswith("\\$") else "(?s:.*)"
    body = body[1:] if body.startswith("^") else body
    body = body[:-1] if tail == "" else body
    return f"{head}(?:{body}){tail}"
