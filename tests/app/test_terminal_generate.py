"""`gemma-desk generate` on a tiny checkpoint: one answer, through the same session as the app."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from app.cli import main
from mlx_model.engine import Engine


@pytest.fixture(scope="module")
def greedy_reference(tiny_checkpoint):
    engine = Engine.load(tiny_checkpoint, apply_limits=False)
    messages = [{"role": "user", "content": "Hello, how are you today?"}]
    return engine.generate(messages, max_tokens=6, temperature=0.0)


def generate(tiny_checkpoint, tmp_path, *flags: str) -> list[str]:
    return ["generate", "--data-dir", str(tmp_path / "data"), "--model", str(tiny_checkpoint),
            *flags]  # fmt: skip


def test_json_prints_one_object_with_the_greedy_tokens(
    tiny_checkpoint, tmp_path, greedy_reference, capsys
):
    args = generate(tiny_checkpoint, tmp_path, "--prompt", "Hello, how are you today?",
                    "--max-tokens", "6", "--temperature", "0", "--json")  # fmt: skip
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"token_ids", "text", "thinking", "tool_calls", "stats"}
    assert out["token_ids"] == greedy_reference.token_ids
    assert out["text"] == greedy_reference.text
    assert out["stats"]["generated_tokens"] == len(out["token_ids"])
    assert {"prefilled_tokens", "cached_tokens", "ttft_s", "stop_reason"} <= set(out["stats"])


def test_an_image_and_a_seed_give_the_same_tokens_twice(tiny_checkpoint, tmp_path, capsys):
    from PIL import Image

    image = tmp_path / "pic.png"
    pixels = (np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(image)
    args = generate(tiny_checkpoint, tmp_path, "--prompt", "Describe the picture.",
                    "--image", str(image), "--max-tokens", "4", "--seed", "3", "--json")  # fmt: skip
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["stats"]["prefilled_tokens"] > 20  # the image's soft tokens are in the prompt
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["token_ids"] == first["token_ids"]


def test_the_settings_generation_options_apply_unless_a_flag_overrides_them(
    tiny_checkpoint, tmp_path, capsys
):
    from app.session import AppSession

    with AppSession(tmp_path / "data") as session:
        session.apply_settings({"max_tokens": 3, "temperature": 0.0})
    args = generate(tiny_checkpoint, tmp_path, "--prompt", "Hi", "--json")
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["stats"]["generated_tokens"] <= 3
    assert main([*args, "--max-tokens", "5"]) == 0
    assert json.loads(capsys.readouterr().out)["stats"]["generated_tokens"] <= 5


def test_an_option_out_of_its_range_is_refused_by_the_flag(tiny_checkpoint, tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        main(generate(tiny_checkpoint, tmp_path, "--prompt", "x", "--temperature", "3"))
    assert caught.value.code == 2
    assert "--temperature" in capsys.readouterr().err


def test_a_missing_file_is_named(tiny_checkpoint, tmp_path, capsys):
    args = generate(tiny_checkpoint, tmp_path, "--prompt", "x", "--image", "nope.png")
    assert main(args) == 2
    assert "nope.png" in capsys.readouterr().err


def test_the_canonical_format_is_used_unless_told_to_keep_an_outdated_template(
    tiny_checkpoint, tmp_path, monkeypatch, capsys
):
    import hashlib

    from mlx_model.processing import Tokenizer, chat_template

    outdated = (
        "{{ bos_token }}<|turn>user\n{{ messages[0]['content'] }}<turn|>\n<|turn>model\n{# old #}"
    )
    folder = tmp_path / "model"
    folder.mkdir()
    for item in tiny_checkpoint.iterdir():
        (folder / item.name).symlink_to(item)
    (folder / "chat_template.jinja").unlink()
    (folder / "chat_template.jinja").write_text(outdated)
    sha = hashlib.sha256(outdated.encode()).hexdigest()
    monkeypatch.setitem(chat_template.STALE_TEMPLATE_SHA256, sha, "2026-05-28")
    base = generate(folder, tmp_path, "--prompt", "Hello", "--max-tokens", "1",
                    "--temperature", "0", "--json")  # fmt: skip
    assert main(base) == 0
    canonical = json.loads(capsys.readouterr().out)["stats"]["prefilled_tokens"]
    assert main([*base, "--use-checkpoint-template"]) == 0
    own = json.loads(capsys.readouterr().out)["stats"]["prefilled_tokens"]
    # the canonical prompt ends with the empty thought channel the outdated one lacks
    channel = Tokenizer.from_pretrained(tiny_checkpoint).encode("<|channel>thought\n<channel|>")
    assert canonical == own + len(channel)


def test_a_token_the_generation_config_suppresses_is_never_emitted(
    tiny_checkpoint, greedy_reference, tmp_path, capsys
):
    """The checkpoint suppresses the token greedy decoding would emit first."""
    first = greedy_reference.token_ids[0]
    folder = tmp_path / "model"
    folder.mkdir()
    for item in tiny_checkpoint.iterdir():
        if item.name != "generation_config.json":
            (folder / item.name).symlink_to(item)
    generation = json.loads((tiny_checkpoint / "generation_config.json").read_text())
    (folder / "generation_config.json").write_text(
        json.dumps({**generation, "suppress_tokens": [first]})
    )
    prompt = ["--prompt", "Hello, how are you today?", "--max-tokens", "6", "--json"]
    assert main([*generate(folder, tmp_path, *prompt), "--temperature", "0"]) == 0
    greedy = json.loads(capsys.readouterr().out)["token_ids"]
    assert greedy[0] != first and first not in greedy
    for seed in range(3):  # the checkpoint's own sampling settings
        assert main([*generate(folder, tmp_path, *prompt), "--seed", str(seed)]) == 0
        assert first not in json.loads(capsys.readouterr().out)["token_ids"]


def test_json_schema_makes_the_random_models_answer_a_valid_document(
    tiny_checkpoint, tmp_path, capsys
):
    import jsonschema

    schema = {
        "type": "object",
        "properties": {
            "mood": {"enum": ["happy", "sad"]},
            "score": {"type": "integer", "minimum": 1, "maximum": 5},
        },
        "required": ["mood", "score"],
    }
    path = tmp_path / "mood.json"
    path.write_text(json.dumps(schema))
    args = generate(tiny_checkpoint, tmp_path, "--prompt", "How are you?", "--json-schema",
                    str(path), "--max-tokens", "80", "--seed", "2")  # fmt: skip
    assert main(args) == 0
    jsonschema.validate(json.loads(capsys.readouterr().out), schema)


def test_a_json_schema_file_that_is_not_a_schema_is_named(tiny_checkpoint, tmp_path, capsys):
    path = tmp_path / "list.json"
    path.write_text("[1, 2]")
    args = generate(tiny_checkpoint, tmp_path, "--prompt", "x", "--json-schema", str(path))
    assert main(args) == 2
    assert "list.json" in capsys.readouterr().err


def test_a_long_prompt_prints_how_far_it_is_read_to_stderr(
    tiny_checkpoint, tmp_path, capsys, monkeypatch
):
    import mlx_model.engine

    monkeypatch.setattr(mlx_model.engine, "PREFILL_PROGRESS_MIN_TOKENS", 256)
    prompt = "The quick brown fox jumps over the lazy dog. " * 60  # two prefill chunks
    args = generate(tiny_checkpoint, tmp_path, "--prompt", prompt, "--max-tokens", "2", "--json")
    assert main(args) == 0
    captured = capsys.readouterr()
    total = json.loads(captured.out)["stats"]["prefilled_tokens"]
    lines = captured.err.splitlines()
    assert lines[0].startswith(f"Reading the prompt: 512 of {total:,} tokens (")
    assert "s left" in lines[0]  # the time left, estimated from the first chunk
    assert lines[-1] == f"Reading the prompt: {total:,} of {total:,} tokens (100%)"


def test_a_short_prompt_prints_no_progress(tiny_checkpoint, tmp_path, capsys):
    assert main(generate(tiny_checkpoint, tmp_path, "--prompt", "Hi", "--max-tokens", "2")) == 0
    assert "Reading the prompt" not in capsys.readouterr().err


# -- attachments of any kind, and the prompt they make -----------------------------------------


def test_print_prompt_shows_the_documents_and_collapses_media_runs(
    tiny_checkpoint, tmp_path, capsys
):
    from tests.app.document_sources import scanned_page, write_docx, write_pdf

    pdf = write_pdf(tmp_path / "report.pdf", ["Revenue grew by 12 percent.", scanned_page("x")])
    docx = write_docx(tmp_path / "notes.docx", ["Ship the beta on Monday."])
    code = tmp_path / "prix.py"
    code.write_bytes("def prix(quantité):\n    return quantité * 2\n".encode("cp1252"))
    repo = tmp_path / "repo"
    (repo / "build").mkdir(parents=True)
    (repo / ".gitignore").write_text("build/\n")
    (repo / "main.py").write_text("print('kept')\n")
    (repo / "build" / "out.py").write_text("print('ignored')\n")
    args = generate(tiny_checkpoint, tmp_path, "--prompt", "Summarize.", "--print-prompt",
                    "--attach", str(pdf), str(docx), str(code), str(repo))  # fmt: skip

    assert main(args) == 0
    prompt = capsys.readouterr().out
    assert "=== report.pdf (PDF, 2 pages) ===" in prompt and "Revenue grew by 12 percent." in prompt
    assert re.search(
        r"--- page 2 \(scanned: shown as an image\) ---<\|image><\|image\|>×\d+", prompt
    )
    assert "Ship the beta on Monday." in prompt
    assert "def prix(quantité):" in prompt  # decoded from cp1252
    assert "print('kept')" in prompt and "ignored" not in prompt
    assert prompt.rstrip().endswith("<|channel>thought\n<channel|>")


def test_an_encrypted_pdf_is_refused_before_the_model_loads(tiny_checkpoint, tmp_path, capsys):
    from tests.app.document_sources import write_pdf

    locked = write_pdf(tmp_path / "locked.pdf", ["secret"], user_password="pw")
    args = generate(tiny_checkpoint, tmp_path, "--prompt", "x", "--attach", str(locked))

    assert main(args) == 2
    assert "locked.pdf" in capsys.readouterr().err


def test_print_prompt_of_a_300_page_pdf_uses_the_pages_around_the_question(
    tiny_checkpoint, tmp_path, long_pdf, capsys
):
    path, page, fact = long_pdf
    args = generate(tiny_checkpoint, tmp_path, "--prompt", "What is the Nightingale vault code?",
                    "--attach", str(path), "--context", "4096", "--print-prompt")  # fmt: skip

    assert main(args) == 0
    captured = capsys.readouterr()
    assert fact in captured.out and f"--- page {page} ---" in captured.out
    assert "--- page 1 ---" not in captured.out
    assert "most relevant to the question were used: manual.pdf: pages" in captured.err


def test_print_prompt_of_a_five_minute_video_shows_five_segments_with_timestamps(
    tiny_checkpoint, tmp_path, five_minute_video, capsys
):
    args = generate(tiny_checkpoint, tmp_path, "--prompt", "What happens?", "--attach",
                    str(five_minute_video), "--context", "32768", "--print-prompt")  # fmt: skip

    assert main(args) == 0
    prompt = capsys.readouterr().out
    labels = [prompt.index(f"Segment {k + 1} (0{k}:00–0{k + 1}:00):") for k in range(5)]
    assert labels == sorted(labels)
    stamps = re.findall(r"(\d\d:\d\d) <\|image><\|video\|>×\d+<image\|>", prompt)
    assert len(stamps) == 5 * 32 and stamps[0] == "00:00" and stamps[32] == "01:00"
    sounds = re.findall(r"Sound from (\d\d:\d\d):<\|audio>", prompt)
    assert sounds == [f"0{s // 60}:{s % 60:02d}" for s in range(0, 300, 30)]


def test_an_attached_document_is_read_by_the_model(tiny_checkpoint, tmp_path, capsys):
    notes = tmp_path / "notes.md"
    notes.write_text("# Plan\n\n" + "The launch is on Friday. " * 40)
    args = generate(tiny_checkpoint, tmp_path, "--prompt", "When is the launch?", "--attach",
                    str(notes), "--max-tokens", "2", "--json")  # fmt: skip

    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["stats"]["prefilled_tokens"] > 200 and "notes" not in out
