"""LaTeX math to readable Unicode text, without a browser; malformed input stays raw.

`find_math` locates complete `$...$`, `$$...$$`, `\\(...\\)` and `\\[...\\]` spans (an
unclosed one, as while an answer streams, is simply not found and so stays raw text).
`latex_to_unicode` turns the common subset (Greek, operators, relations, sub/superscripts,
fractions, roots, blackboard letters, `\\text`) into Unicode, and returns None for input
it cannot parse (unbalanced braces, dangling `^`), so the caller shows the source instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SYMBOLS = {
    # Greek
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "varepsilon": "ε",
    "zeta": "ζ", "eta": "η", "theta": "θ", "vartheta": "ϑ", "iota": "ι", "kappa": "κ",
    "lambda": "λ", "mu": "μ", "nu": "ν", "xi": "ξ", "pi": "π", "varpi": "ϖ", "rho": "ρ",
    "sigma": "σ", "varsigma": "ς", "tau": "τ", "upsilon": "υ", "phi": "φ", "varphi": "φ",
    "chi": "χ", "psi": "ψ", "omega": "ω", "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ",
    "Lambda": "Λ", "Xi": "Ξ", "Pi": "Π", "Sigma": "Σ", "Upsilon": "Υ", "Phi": "Φ",
    "Psi": "Ψ", "Omega": "Ω",
    # operators and relations
    "times": "×", "cdot": "·", "div": "÷", "pm": "±", "mp": "∓", "ast": "∗", "star": "⋆",
    "circ": "∘", "bullet": "•", "le": "≤", "leq": "≤", "ge": "≥", "geq": "≥", "neq": "≠",
    "ne": "≠", "approx": "≈", "equiv": "≡", "sim": "∼", "simeq": "≃", "cong": "≅",
    "propto": "∝", "ll": "≪", "gg": "≫", "in": "∈", "notin": "∉", "ni": "∋", "subset": "⊂",
    "supset": "⊃", "subseteq": "⊆", "supseteq": "⊇", "cup": "∪", "cap": "∩",
    "setminus": "∖", "emptyset": "∅", "varnothing": "∅", "forall": "∀", "exists": "∃",
    "neg": "¬", "lnot": "¬", "land": "∧", "wedge": "∧", "lor": "∨", "vee": "∨",
    "oplus": "⊕", "otimes": "⊗", "perp": "⊥", "parallel": "∥", "mid": "∣",
    "to": "→", "rightarrow": "→", "leftarrow": "←", "Rightarrow": "⇒", "Leftarrow": "⇐",
    "leftrightarrow": "↔", "Leftrightarrow": "⇔", "iff": "⇔", "implies": "⇒", "mapsto": "↦",
    "infty": "∞", "partial": "∂", "nabla": "∇", "sum": "∑", "prod": "∏", "coprod": "∐",
    "int": "∫", "iint": "∬", "iiint": "∭", "oint": "∮", "ldots": "…", "cdots": "⋯",
    "dots": "…", "vdots": "⋮", "ddots": "⋱", "prime": "′", "degree": "°", "angle": "∠",
    "hbar": "ℏ", "ell": "ℓ", "Re": "ℜ", "Im": "ℑ", "aleph": "ℵ", "langle": "⟨",
    "rangle": "⟩", "lfloor": "⌊", "rfloor": "⌋", "lceil": "⌈", "rceil": "⌉",
    "lvert": "|", "rvert": "|", "vert": "|", "Vert": "‖", "|": "‖",
    "quad": "  ", "qquad": "    ", ",": " ", ";": " ", ":": " ", "!": "", " ": " ",
    "{": "{", "}": "}", "%": "%", "$": "$", "&": "&", "#": "#", "_": "_",
    "sin": "sin", "cos": "cos", "tan": "tan", "log": "log", "ln": "ln", "exp": "exp",
    "lim": "lim", "max": "max", "min": "min", "det": "det", "arg": "arg", "sup": "sup",
    "inf": "inf", "gcd": "gcd", "mod": "mod", "bmod": "mod", "sinh": "sinh", "cosh": "cosh",
    "tanh": "tanh", "arcsin": "arcsin", "arccos": "arccos", "arctan": "arctan",
}  # fmt: skip
BLACKBOARD = {"R": "ℝ", "N": "ℕ", "Z": "ℤ", "Q": "ℚ", "C": "ℂ", "P": "ℙ", "E": "𝔼", "1": "𝟙"}
SUPERSCRIPT = str.maketrans("0123456789+-=()nijkxyTt", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁿⁱʲᵏˣʸᵀᵗ")
SUBSCRIPT = str.maketrans("0123456789+-=()aeijkmnoprstuvx", "₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎ₐₑᵢⱼₖₘₙₒₚᵣₛₜᵤᵥₓ")
SUPERSCRIPT_CHARS = set("0123456789+-=()nijkxyTt")
SUBSCRIPT_CHARS = set("0123456789+-=()aeijkmnoprstuvx")
IGNORED = {"left", "right", "big", "Big", "bigg", "Bigg", "displaystyle", "limits", "nolimits"}
TEXT_COMMANDS = {"text", "mathrm", "textrm", "mathit", "mathbf", "textbf", "operatorname",
                 "mathsf", "mathtt", "boldsymbol", "bm"}  # fmt: skip


@dataclass(frozen=True)
class MathSpan:
    start: int
    end: int
    source: str  # the formula without delimiters
    display: bool


_PATTERNS = [
    (re.compile(r"\$\$(.+?)\$\$", re.S), True),
    (re.compile(r"\\\[(.+?)\\\]", re.S), True),
    (re.compile(r"\\\((.+?)\\\)", re.S), False),
    # $...$: no space just inside the dollars, not followed by a digit ("$5 and $6").
    (re.compile(r"(?<![\\$])\$(?=[^\s$])([^$\n]+?)(?<=[^\s\\])\$(?![\d$])"), False),
]
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)


def find_math(text: str) -> list[MathSpan]:
    """Complete math spans in `text`, outside inline code, in order and non-overlapping."""
    taken = [(m.start(), m.end()) for m in _CODE_SPAN.finditer(text)]
    spans: list[MathSpan] = []
    for pattern, display in _PATTERNS:
        for match in pattern.finditer(text):
            start, end = match.span()
            if any(start < b and a < end for a, b in taken):
                continue
            taken.append((start, end))
            spans.append(MathSpan(start, end, match.group(1).strip(), display))
    return sorted(spans, key=lambda span: span.start)


class _Malformed(ValueError):
    pass


class _Parser:
    def __init__(self, source: str) -> None:
        self.s = source
        self.i = 0

    def parse_until(self, closer: str | None) -> str:
        out: list[str] = []
        while self.i < len(self.s):
            ch = self.s[self.i]
            if closer is not None and ch == closer:
                self.i += 1
                return "".join(out)
            if ch == "}":
                raise _Malformed("unbalanced }")
            out.append(self.atom_or_script(out))
        if closer is not None:
            raise _Malformed("unclosed {")
        return "".join(out)

    def group(self) -> str:
        """A braced group or a single token (the argument of ^, _, \\frac...)."""
        self.skip_spaces()
        if self.i >= len(self.s):
            raise _Malformed("missing argument")
        if self.s[self.i] == "{":
            self.i += 1
            return self.parse_until("}")
        return self.atom_or_script([])

    def skip_spaces(self) -> None:
        while self.i < len(self.s) and self.s[self.i] == " ":
            self.i += 1

    def atom_or_script(self, before: list[str]) -> str:
        ch = self.s[self.i]
        if ch in "^_":
            self.i += 1
            arg = self.group()
            return _script(arg, superscript=ch == "^")
        if ch == "{":
            self.i += 1
            return self.parse_until("}")
        if ch == "\\":
            return self.command()
        if ch == "~":
            self.i += 1
            return " "
        self.i += 1
        return ch

    def command(self) -> str:
        match = re.compile(r"\\([A-Za-z]+|.)").match(self.s, self.i)
        if not match:
            raise _Malformed("lone backslash")
        self.i = match.end()
        name = match.group(1)
        if name in IGNORED:
            return ""
        if name == "frac" or name == "dfrac" or name == "tfrac":
            num, den = self.group(), self.group()
            return f"{_wrap(num)}⁄{_wrap(den)}" if len(num) + len(den) > 2 else f"{num}⁄{den}"
        if name == "sqrt":
            self.skip_spaces()
            index = ""
            if self.i < len(self.s) and self.s[self.i] == "[":
                close = self.s.find("]", self.i)
                if close < 0:
                    raise _Malformed("unclosed [")
                index = self.s[self.i + 1 : close].translate(SUPERSCRIPT)
                self.i = close + 1
            arg = self.group()
            return f"{index}√({arg})" if len(arg) > 1 else f"{index}√{arg}"
        if name in TEXT_COMMANDS:
            return self.group()
        if name == "mathbb":
            arg = self.group()
            return "".join(BLACKBOARD.get(c, c) for c in arg)
        if name in ("hat", "bar", "vec", "dot", "tilde", "overline"):
            arg = self.group()
            mark = {"hat": "\u0302", "bar": "\u0304", "vec": "\u20d7", "dot": "\u0307",
                    "tilde": "\u0303", "overline": "\u0305"}[name]  # fmt: skip
            return "".join(c + mark for c in arg)
        if name in ("begin", "end"):
            self.group()
            return ""
        if name == "\\":
            return "; "
        if name in SYMBOLS:
            return SYMBOLS[name]
        return "\\" + name  # unknown command: keep it readable as written


def _wrap(text: str) -> str:
    return text if len(text) <= 1 or text.isalnum() else f"({text})"


def _script(arg: str, superscript: bool) -> str:
    chars = SUPERSCRIPT_CHARS if superscript else SUBSCRIPT_CHARS
    if arg and all(c in chars for c in arg):
        return arg.translate(SUPERSCRIPT if superscript else SUBSCRIPT)
    if arg == "′" or arg == "\\prime":
        return "′"
    return ("^" if superscript else "_") + (arg if len(arg) == 1 else f"({arg})")


def latex_to_unicode(source: str) -> str | None:
    """Readable Unicode for a LaTeX formula, or None when it is malformed."""
    try:
        text = _Parser(source.replace("\n", " ")).parse_until(None)
    except _Malformed:
        return None
    return re.sub(r"\s+", " ", text).strip()
