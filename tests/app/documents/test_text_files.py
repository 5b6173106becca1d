"""Text documents: encodings sniffed, kinds by extension and content, size and binary guards."""

from __future__ import annotations

import os
import time

import pytest

from app.documents import BinaryFileError, DocumentTooLargeError, load_document
from app.documents.text import html_to_text

LEGACY_SOURCE = """# Fonctions utilitaires pour la gestion des commandes et des clients.
# Écrit par François Lefèvre, été 2019. Révisé en décembre.

def prix_total(quantité, prix_unitaire):
    \"\"\"Calcule le prix total d'une commande, taxes comprises (à vérifier).\"\"\"
    # Très important : arrondir au centime près, sinon la comptabilité râle.
    return round(quantité * prix_unitaire * 1.2, 2)

MESSAGE = "Déjà payé ? Merci de vérifier la facture reçue."
"""


def test_code_in_a_legacy_encoding_is_decoded(tmp_path):
    path = tmp_path / "commandes.py"
    path.write_bytes(LEGACY_SOURCE.encode("cp1252"))

    doc = load_document(path)

    assert doc.kind == "code" and doc.language == "Python" and doc.encoding == "cp1252"
    assert "\n".join(c.text for c in doc.chunks) == LEGACY_SOURCE.rstrip("\n")


def test_cyrillic_text_in_a_legacy_encoding_is_decoded(tmp_path):
    text = "Протокол совещания. Обсудили бюджет, сроки и распределение задач между командами.\n" * 3
    path = tmp_path / "protokol.txt"
    path.write_bytes(text.encode("cp1251"))

    doc = load_document(path)

    assert "Обсудили бюджет" in doc.prompt_text()


def test_utf16_text_with_bom_is_decoded(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes("Réunion: ordre du jour\nPoint 1".encode("utf-16"))

    doc = load_document(path)

    assert doc.kind == "text" and "ordre du jour" in doc.prompt_text()


def test_script_without_extension_is_code_by_its_shebang(tmp_path):
    path = tmp_path / "deploy"
    path.write_text("#!/usr/bin/env bash\necho hi\n")

    doc = load_document(path)

    assert (doc.kind, doc.language) == ("code", "shell")


def test_lines_carry_their_numbers(tmp_path):
    path = tmp_path / "long.md"
    paragraphs = [f"Paragraph {i} " + "word " * 60 for i in range(200)]
    path.write_text("\n\n".join(paragraphs))

    doc = load_document(path)

    assert doc.kind == "markdown" and len(doc.chunks) > 1
    lines = path.read_text().split("\n")
    for chunk in doc.chunks:
        a, b = chunk.lines
        assert chunk.label == f"lines {a}–{b}"
        assert chunk.text == "\n".join(lines[a - 1 : b])
    assert doc.chunks[0].lines[0] == 1 and doc.chunks[-1].lines[1] == len(lines)


def test_binary_data_named_like_text_is_refused(tmp_path):
    path = tmp_path / "report.txt"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(4000))

    with pytest.raises(BinaryFileError, match="“report.txt” is not a text file"):
        load_document(path)


def test_two_gigabyte_text_file_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "huge.log"
    with open(path, "wb") as f:  # sparse: 2 GB on paper, nothing on disk
        f.truncate(2 * 1024**3)

    started = time.monotonic()
    with pytest.raises(DocumentTooLargeError, match="“huge.log” is 2.0 GB"):
        load_document(path)
    assert time.monotonic() - started < 1.0


def test_csv_rows_are_chunked_with_the_header_on_each(tmp_path):
    path = tmp_path / "sales.csv"
    rows = ["region;amount;note"] + [f'r{i};{i * 10};"line {i}; quoted"' for i in range(400)]
    path.write_text("\n".join(rows))

    doc = load_document(path)

    assert doc.kind == "csv" and doc.line_count == 401 and len(doc.chunks) > 1
    assert all(c.text.startswith("region;amount;note\n") for c in doc.chunks)
    assert doc.chunks[0].label.startswith("rows 2–")
    assert doc.size_label == "401 rows"


def test_tsv_is_read_by_tabs(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("a\tb\n1\t2\n")

    doc = load_document(path)

    assert doc.kind == "tsv" and "1\t2" in doc.prompt_text()


def test_html_keeps_visible_text_only():
    html = """<!doctype html><html><head><title>Release notes</title>
    <style>p { color: red }</style><script>var secret = 1;</script></head>
    <body><h2>Fixes</h2><p>Crash on &amp; start fixed.</p><ul><li>One</li><li>Two</li></ul>
    </body></html>"""

    text = html_to_text(html)

    assert text.startswith("# Release notes")
    assert "## Fixes" in text and "Crash on & start fixed." in text and "- Two" in text
    assert "secret" not in text and "color" not in text


def test_html_file_by_doctype_without_extension(tmp_path):
    path = tmp_path / "page"
    path.write_text("<!DOCTYPE html><html><body><p>Hello page</p></body></html>")

    doc = load_document(path)

    assert (
        doc.kind == "html" and "Hello page" in doc.prompt_text() and "<p>" not in doc.prompt_text()
    )
