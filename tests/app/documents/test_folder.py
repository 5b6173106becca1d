"""A folder as one codebase: .gitignore respected (nested too), binaries skipped."""

from __future__ import annotations

import pytest

from app.documents import EmptyDocumentError, load_document


def test_folder_respects_gitignore_and_skips_binaries(tmp_path):
    root = tmp_path / "proj"
    (root / "src" / "gen").mkdir(parents=True)
    (root / "build").mkdir()
    (root / ".git").mkdir()
    (root / ".gitignore").write_text("build/\n*.log\n")
    (root / "src" / ".gitignore").write_text("gen/\n!keep.log\n")
    (root / "src" / "main.py").write_text("def main():\n    return 42\n")
    (root / "src" / "gen" / "auto.py").write_text("GENERATED = True\n")
    (root / "src" / "keep.log").write_text("kept by the negation\n")
    (root / "build" / "out.js").write_text("compiled()\n")
    (root / "debug.log").write_text("noise\n")
    (root / ".git" / "config").write_text("[core]\n")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(64))
    (root / "README.md").write_text("# Project\n")

    doc = load_document(root)

    assert doc.kind == "codebase" and doc.name == "proj"
    assert doc.files == [".gitignore", "README.md", "src/.gitignore", "src/keep.log", "src/main.py"]
    assert doc.skipped == ["logo.png (binary)"]
    main = next(c for c in doc.chunks if c.path == "src/main.py")
    assert main.label == "src/main.py, lines 1–2"
    assert doc.chunks[0].label == "files" and "src/main.py (2 lines, Python)" in doc.chunks[0].text
    assert "--- src/main.py, lines 1–2 ---\ndef main():" in doc.prompt_text()


def test_folder_with_nothing_readable_is_an_error(tmp_path):
    (tmp_path / "a.bin").write_bytes(bytes(range(256)))

    with pytest.raises(EmptyDocumentError, match="no text or source files"):
        load_document(tmp_path)
