"""The built-in tools, safe by construction: the current date and time, a calculator that
walks the expression's AST (no ``eval``), and reading a text file from a folder the user
granted (paths confined to it, symlinks included; asks for consent)."""

from __future__ import annotations

import ast
import datetime as _dt
import math
import operator
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from app.tools.registry import ToolError, ToolRegistry
from mlx_model.events import ToolCall


def current_datetime(timezone: str | None = None) -> dict[str, str]:
    """Get the current local date and time.

    Args:
        timezone: Optional IANA time zone name such as "Europe/Paris"; local time if omitted.
    """
    if timezone:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            now = _dt.datetime.now(ZoneInfo(timezone))
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ToolError(f"unknown time zone {timezone!r}") from exc
    else:
        now = _dt.datetime.now().astimezone()
    return {
        "datetime": now.isoformat(timespec="seconds"),
        "date": now.date().isoformat(),
        "weekday": now.strftime("%A"),
        "timezone": str(now.tzinfo),
    }


_BINARY_OPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY_OPS: dict[type, Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "exp": math.exp,
    "log": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "floor": math.floor,
    "ceil": math.ceil,
    "factorial": math.factorial,
}
_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}
_MAX_EXPRESSION_CHARS = 500
_MAX_EXPONENT = 10_000
_MAX_FACTORIAL = 1_000


def _evaluate(node: ast.AST) -> float | int:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY_OPS:
        return _UNARY_OPS[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY_OPS:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and (
            abs(right) > _MAX_EXPONENT
            or (abs(left) > 1 and abs(right) * math.log2(abs(left)) > 4096)
        ):
            raise ToolError("exponent too large")
        return _BINARY_OPS[type(node.op)](left, right)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        args = [_evaluate(a) for a in node.args]
        if node.func.id == "factorial" and (not args or abs(args[0]) > _MAX_FACTORIAL):
            raise ToolError("factorial argument too large")
        return _FUNCTIONS[node.func.id](*args)
    raise ToolError(f"unsupported syntax in expression: {ast.dump(node)[:60]}")


def calculator(expression: str) -> dict[str, Any]:
    """Evaluate an arithmetic expression exactly as written.

    Args:
        expression: Numbers, + - * / // % ** and parentheses, the constants pi, e and tau,
            and the functions sqrt, exp, log, log10, log2, sin, cos, tan, asin, acos, atan,
            abs, round, min, max, floor, ceil and factorial.
    """
    if len(expression) > _MAX_EXPRESSION_CHARS:
        raise ToolError(f"expression longer than {_MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.replace("^", "**"), mode="eval")
    except SyntaxError as exc:
        raise ToolError(f"not an arithmetic expression: {exc.msg}") from exc
    try:
        value = _evaluate(tree)
    except ZeroDivisionError as exc:
        raise ToolError("division by zero") from exc
    except (OverflowError, ValueError) as exc:
        raise ToolError(f"cannot evaluate: {exc}") from exc
    return {"expression": expression, "result": value}


def make_read_text_file(
    folders: Iterable[str | Path], max_bytes: int = 256 * 1024
) -> Callable[[str], dict[str, Any]]:
    """A `read_text_file(path)` tool confined to the granted folders."""
    roots = [Path(f).expanduser().resolve(strict=True) for f in folders]

    def read_text_file(path: str) -> dict[str, Any]:
        """Read a UTF-8 text file from a folder the user shared with the assistant.

        Args:
            path: The file's path, relative to a shared folder (or absolute inside one).
        """
        if not roots:
            raise ToolError("no folder has been shared")
        if "\x00" in path:
            raise ToolError("invalid path")
        candidate = Path(path).expanduser()
        attempts = [candidate] if candidate.is_absolute() else [r / candidate for r in roots]
        for attempt in attempts:
            resolved = attempt.resolve()
            root = next((r for r in roots if resolved.is_relative_to(r)), None)
            if root is None or not resolved.is_file():
                continue
            with open(resolved, "rb") as f:
                data = f.read(max_bytes + 1)
            try:
                text = data[:max_bytes].decode("utf-8")
            except UnicodeDecodeError as exc:
                if exc.start < max_bytes - 3:
                    raise ToolError(f"{path} is not a UTF-8 text file") from exc
                text = data[: exc.start].decode("utf-8")
            return {
                "path": str(resolved.relative_to(root)),
                "content": text,
                "truncated": len(data) > max_bytes,
            }
        outside = all(not a.resolve().is_relative_to(r) for a in attempts for r in roots)
        if outside:
            raise ToolError(f"{path} is outside the shared folders")
        raise ToolError(f"no such file in the shared folders: {path}")

    return read_text_file


def builtin_registry(
    granted_folders: Iterable[str | Path] = (),
    *,
    max_steps: int = 8,
    consent: Callable[[ToolCall], bool] | None = None,
) -> ToolRegistry:
    """The safe built-in tools; `read_text_file` only when a folder was granted."""
    registry = ToolRegistry(max_steps=max_steps, consent=consent)
    registry.register(current_datetime)
    registry.register(calculator)
    folders = list(granted_folders)
    if folders:
        registry.register(make_read_text_file(folders), requires_consent=True)
    return registry
