"""Text files: plain text, Markdown, source code, CSV/TSV and HTML, in any encoding.

The size limit is checked before a byte is read. Bytes are decoded as UTF-8 (with or without
a BOM) or UTF-16/32 by BOM when they are, otherwise in the encoding charset-normalizer finds;
NUL bytes or no plausible encoding mean binary data, whatever the file is called.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
from html.parser import HTMLParser
from pathlib import Path

from .errors import BinaryFileError, CorruptDocumentError, DocumentTooLargeError, format_bytes
from .model import Document, chunk_lines, line_range

MAX_TEXT_BYTES = 64 * 1024 * 1024
SNIFF_BYTES = 8192

MARKDOWN_EXTENSIONS = {".md", ".markdown", ".mdown", ".mkd", ".rst", ".adoc"}
HTML_EXTENSIONS = {".html", ".htm", ".xhtml"}
TABLE_EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv"}
TEXT_EXTENSIONS = {".txt", ".text", ".log", ".srt", ".vtt", ".tex", ".bib", ".org", ".nfo"}
CODE_LANGUAGES = {
    ".py": "Python", ".pyi": "Python", ".ipynb": "Jupyter notebook (JSON)",
    ".js": "JavaScript", ".mjs": "JavaScript", ".cjs": "JavaScript", ".jsx": "JavaScript",
    ".ts": "TypeScript", ".tsx": "TypeScript", ".java": "Java", ".kt": "Kotlin",
    ".kts": "Kotlin", ".scala": "Scala", ".go": "Go", ".rs": "Rust", ".c": "C", ".h": "C",
    ".cc": "C++", ".cpp": "C++", ".cxx": "C++", ".hpp": "C++", ".hh": "C++", ".m": "Objective-C",
    ".mm": "Objective-C++", ".swift": "Swift", ".cs": "C#", ".fs": "F#", ".vb": "Visual Basic",
    ".rb": "Ruby", ".php": "PHP", ".pl": "Perl", ".pm": "Perl", ".lua": "Lua", ".r": "R",
    ".jl": "Julia", ".dart": "Dart", ".ex": "Elixir", ".exs": "Elixir", ".erl": "Erlang",
    ".hs": "Haskell", ".ml": "OCaml", ".clj": "Clojure", ".el": "Emacs Lisp", ".lisp": "Lisp",
    ".sh": "shell", ".bash": "shell", ".zsh": "shell", ".fish": "fish", ".ps1": "PowerShell",
    ".bat": "batch", ".sql": "SQL", ".css": "CSS", ".scss": "SCSS", ".less": "Less",
    ".vue": "Vue", ".svelte": "Svelte", ".json": "JSON", ".jsonl": "JSON Lines",
    ".yaml": "YAML", ".yml": "YAML", ".toml": "TOML", ".ini": "INI", ".cfg": "INI",
    ".conf": "config", ".xml": "XML", ".proto": "Protocol Buffers", ".graphql": "GraphQL",
    ".gradle": "Gradle", ".cmake": "CMake", ".mk": "Makefile", ".dockerfile": "Dockerfile",
    ".tf": "Terraform", ".nix": "Nix", ".zig": "Zig", ".nim": "Nim", ".sol": "Solidity",
    ".asm": "assembly", ".s": "assembly", ".v": "Verilog", ".vhd": "VHDL", ".f90": "Fortran",
    ".jinja": "Jinja", ".j2": "Jinja", ".diff": "diff", ".patch": "diff",
}  # fmt: skip
CODE_FILENAMES = {
    "makefile": "Makefile", "dockerfile": "Dockerfile", "cmakelists.txt": "CMake",
    "gemfile": "Ruby", "rakefile": "Ruby", "justfile": "just", "procfile": "Procfile",
    ".gitignore": "gitignore", ".editorconfig": "INI", ".env.example": "dotenv",
}  # fmt: skip
SHEBANG_LANGUAGES = {"python": "Python", "node": "JavaScript", "ruby": "Ruby", "perl": "Perl",
                     "bash": "shell", "sh": "shell", "zsh": "shell"}  # fmt: skip


def text_kind(path: Path, head: bytes = b"") -> tuple[str, str | None]:
    """(kind, language) of a text file from its name, and a shebang line for scripts."""
    suffix = path.suffix.lower()
    lower = path.name.lower()
    if suffix in MARKDOWN_EXTENSIONS:
        return "markdown", None
    if suffix in HTML_EXTENSIONS:
        return "html", None
    if suffix in TABLE_EXTENSIONS:
        return TABLE_EXTENSIONS[suffix], None
    if lower in CODE_FILENAMES:
        return "code", CODE_FILENAMES[lower]
    if suffix in CODE_LANGUAGES:
        return "code", CODE_LANGUAGES[suffix]
    if head.startswith(b"#!"):
        first = head.split(b"\n", 1)[0].decode("ascii", "replace")
        words = first[2:].replace("/usr/bin/env", " ").split()
        program = os.path.basename(words[0]) if words else ""
        for key, language in SHEBANG_LANGUAGES.items():
            if program.startswith(key):
                return "code", language
        return "code", "script"
    lowered = head[:512].lstrip().lower()
    if lowered.startswith((b"<!doctype html", b"<html")):
        return "html", None
    return "text", None


def check_size(path: Path, name: str, max_bytes: int) -> int:
    """The file's size; raises `DocumentTooLargeError` over `max_bytes` (nothing is read)."""
    size = path.stat().st_size
    if size > max_bytes:
        raise DocumentTooLargeError(
            f"“{name}” is {format_bytes(size)}; text files can be at most {format_bytes(max_bytes)}.",
            source=str(path),
            limit=f"{max_bytes} bytes",
        )
    return size


_BOMS = [
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
]


def looks_binary(data: bytes) -> bool:
    """NUL bytes in the first 8 KB (and no UTF-16/32 BOM): binary, as git decides."""
    head = data[:SNIFF_BYTES]
    return b"\x00" in head and not any(head.startswith(bom) for bom, _ in _BOMS)


def decode_text(data: bytes, name: str, source: str | None = None) -> tuple[str, str]:
    """(text, encoding) of a file's bytes; raises `BinaryFileError` for binary data."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding), encoding
            except UnicodeDecodeError:
                break
    if looks_binary(data):
        raise _binary(name, source)
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    matches = list(from_bytes(data))
    if not matches:
        raise _binary(name, source)
    # Among encodings that read about as cleanly as the best one ("chaos"), the one whose
    # text fits a language best ("coherence") wins: short Western texts otherwise come out
    # as a Baltic or Central European code page that differs in a few letters.
    clean = [m for m in matches if m.chaos <= matches[0].chaos + 0.05]
    best = max(clean, key=lambda m: m.coherence)
    text = str(best)
    # Control characters other than whitespace are a sign of a wrong guess on binary data.
    controls = sum(1 for ch in text[:SNIFF_BYTES] if ord(ch) < 32 and ch not in "\t\n\r\f\v")
    if controls > max(4, len(text[:SNIFF_BYTES]) // 100):
        raise _binary(name, source)
    return text, best.encoding


def _binary(name: str, source: str | None) -> BinaryFileError:
    return BinaryFileError(
        f"“{name}” is not a text file (it holds binary data); attach text, Markdown, source code, "
        "CSV, HTML, PDF or DOCX documents.",
        source=source,
    )


def read_text_file(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    max_bytes: int = MAX_TEXT_BYTES,
    kind: str | None = None,
) -> Document:
    """Read a text, Markdown, code, CSV/TSV or HTML file (kind from `text_kind` unless given)."""
    path = Path(path)
    name = name or path.name
    check_size(path, name, max_bytes)
    data = path.read_bytes()
    text, encoding = decode_text(data, name, str(path))
    language = None
    if kind is None:
        kind, language = text_kind(path, data[:SNIFF_BYTES])
    document = parse_text(text, kind, name, source=str(path))
    document.language = language
    document.encoding = encoding
    return document


def parse_text(text: str, kind: str, name: str, source: str | None = None) -> Document:
    """Turn decoded text of a `kind` into a `Document` with line- or row-ranged chunks."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if kind in ("csv", "tsv"):
        return _table(text, kind, name, source)
    if kind == "html":
        text = html_to_text(text)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    chunks = chunk_lines(lines, line_range)
    return Document(name=name, kind=kind, chunks=chunks, line_count=len(lines), source=source)


def _table(text: str, kind: str, name: str, source: str | None) -> Document:
    """Rows re-written one per line (quoted fields kept); the header heads every chunk."""
    delimiter = "\t" if kind == "tsv" else _sniff_delimiter(text)
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error as exc:
        raise CorruptDocumentError(f"“{name}” is not a valid {kind.upper()} table: {exc}.") from exc
    rows = [r for r in rows if r]
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    lines = []
    for row in rows:
        writer.writerow(row)
        lines.append(out.getvalue().rstrip("\n"))
        out.seek(0)
        out.truncate()
    if len(lines) > 1:
        chunks = chunk_lines(
            lines[1:], lambda a, b: line_range(a, b, "rows"), first_line=2, header=lines[0]
        )
    else:
        chunks = chunk_lines(lines, lambda a, b: line_range(a, b, "rows"))
    return Document(name=name, kind=kind, chunks=chunks, line_count=len(lines), source=source)


def _sniff_delimiter(text: str) -> str:
    try:
        return csv.Sniffer().sniff(text[:SNIFF_BYTES], delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


class _HTMLText(HTMLParser):
    """Visible text of an HTML page, a line break at each block element."""

    SKIP = {"script", "style", "noscript", "template", "svg", "head"}
    BLOCKS = {
        "p", "div", "br", "li", "ul", "ol", "tr", "table", "section", "article", "header",
        "footer", "nav", "aside", "main", "h1", "h2", "h3", "h4", "h5", "h6", "pre",
        "blockquote", "hr", "dt", "dd", "figcaption", "title",
    }  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in self.SKIP:
            self.skipping += 1
        if tag in self.BLOCKS:
            self.parts.append("\n")
        if tag in ("h1", "h2", "h3", "h4", "h5", "h6") and not self.skipping:
            self.parts.append("#" * int(tag[1]) + " ")
        if tag == "li" and not self.skipping:
            self.parts.append("- ")
        if tag in ("td", "th"):
            self.parts.append(" | ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in self.SKIP and self.skipping:
            self.skipping -= 1
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self.skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """The page's title and visible text, whitespace collapsed within lines, blank runs merged."""
    parser = _HTMLText()
    parser.feed(html)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).split("\n")]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    title = " ".join(parser.title.split())
    body = "\n".join(out).strip("\n")
    return f"# {title}\n\n{body}" if title else body
