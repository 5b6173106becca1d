"""`gemma-desk generate` and `gemma-desk chat` on a tiny checkpoint."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from app import terminal_chat
from app.cli import build_parser, main
from app.engines.contract import LocalModel
from mlx_model.engine import Engine
from tests.doubles import scripted_factory


@pytest.fixture(scope="module")
def greedy_reference(tiny_checkpoint):
    engine = Engine.load(tiny_checkpoint, apply_limits=False)
    messages = [{"role": "user", "content": "Hello, how are you today?"}]
    return engine.generate(messages, max_tokens=6, temperature=0.0)


def test_generate_json_prints_one_object_with_the_greedy_tokens(
    tiny_checkpoint, greedy_reference, capsys
):
    code = main(
        ["generate", "--model", str(tiny_checkpoint), "--prompt", "Hello, how are you today?",
         "--max-tokens", "6", "--temperature", "0", "--json"]
    )  # fmt: skip
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"token_ids", "text", "thinking", "tool_calls", "stats"}
    assert out["token_ids"] == greedy_reference.token_ids
    assert out["text"] == greedy_reference.text
    assert out["stats"]["generated_tokens"] == len(out["token_ids"])
    assert {"prefilled_tokens", "cached_tokens", "ttft_s", "stop_reason"} <= set(out["stats"])


def test_generate_with_an_image_and_seed(tiny_checkpoint, tmp_path, capsys):
    from PIL import Image

    image = tmp_path / "pic.png"
    Image.fromarray((np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)).save(
        image
    )
    args = ["generate", "--model", str(tiny_checkpoint), "--prompt", "Describe the picture.",
            "--image", str(image), "--max-tokens", "4", "--seed", "3", "--json"]  # fmt: skip
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["stats"]["prefilled_tokens"] > 20  # the image's soft tokens are in the prompt
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["token_ids"] == first["token_ids"]


def test_generate_reports_a_missing_file(tiny_checkpoint, capsys):
    code = main(
        ["generate", "--model", str(tiny_checkpoint), "--prompt", "x", "--image", "nope.png"]
    )
    assert code == 2
    assert "nope.png" in capsys.readouterr().err


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _chat_args(tiny_checkpoint, *extra):
    return build_parser("chat").parse_args(["--model", str(tiny_checkpoint), *extra])


def test_chat_streams_replies_and_keeps_the_history(tiny_checkpoint):
    history = terminal_chat.MemoryHistory()
    stdin = io.StringIO("Hello, how are you today?\nThank you very much!\n/exit\n")
    out = io.StringIO()
    args = _chat_args(tiny_checkpoint, "--max-tokens", "5", "--temperature", "0")
    assert terminal_chat.run(args, stdin=stdin, stdout=out, history=history) == 0
    roles = [m["role"] for m in history.messages()]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert out.getvalue().count("tokens,") == 2
    assert "\x1b[" not in out.getvalue()  # no ANSI codes when stdout is not a terminal


def test_chat_regen_replaces_the_last_reply(tiny_checkpoint):
    history = terminal_chat.MemoryHistory(system="Gemma runs locally.")
    stdin = io.StringIO("Hello\n/regen\n/exit\n")
    args = _chat_args(tiny_checkpoint, "--max-tokens", "4", "--temperature", "0")
    terminal_chat.run(args, stdin=stdin, stdout=io.StringIO(), history=history)
    assert [m["role"] for m in history.messages()] == ["system", "user", "assistant"]


def test_chat_shows_thinking_dimmed_on_a_terminal(tiny_checkpoint, monkeypatch):
    def load(args):
        engine = scripted_factory()(LocalModel(str(args.model)))
        engine.script(["<|channel>thought\nhmm<channel|>yes"])
        return engine

    monkeypatch.setattr(terminal_chat, "load_engine", load)
    out = _Tty()
    args = _chat_args(tiny_checkpoint, "--think")
    terminal_chat.run(args, stdin=io.StringIO("Hello\n/exit\n"), stdout=out)
    assert f"{terminal_chat.DIM}hmm{terminal_chat.RESET}\nyes" in out.getvalue()


def test_generate_uses_the_canonical_format_unless_told_to_keep_an_outdated_template(
    tiny_checkpoint, tmp_path, monkeypatch, capsys
):
    import hashlib

    from mlx_model.processing import chat_template

    outdated = (
        "{{ bos_token }}<|turn>user\n{{ messages[0]['content'] }}<turn|>\n<|turn>model\n{# old #}"
    )
    for item in tiny_checkpoint.iterdir():
        (tmp_path / item.name).symlink_to(item)
    (tmp_path / "chat_template.jinja").unlink()
    (tmp_path / "chat_template.jinja").write_text(outdated)
    sha = hashlib.sha256(outdated.encode()).hexdigest()
    monkeypatch.setitem(chat_template.STALE_TEMPLATE_SHA256, sha, "2026-05-28")
    base = ["generate", "--model", str(tmp_path), "--prompt", "Hello", "--max-tokens", "1",
            "--temperature", "0", "--json"]  # fmt: skip
    assert main(base) == 0
    canonical = json.loads(capsys.readouterr().out)["stats"]["prefilled_tokens"]
    assert main([*base, "--use-checkpoint-template"]) == 0
    own = json.loads(capsys.readouterr().out)["stats"]["prefilled_tokens"]
    # the canonical prompt ends with the empty thought channel the outdated one lacks
    from mlx_model.processing import Tokenizer

    channel = Tokenizer.from_pretrained(tiny_checkpoint).encode("<|channel>thought\n<channel|>")
    assert canonical == own + len(channel)


def test_generate_never_emits_a_token_the_generation_config_suppresses(
    tiny_checkpoint, greedy_reference, tmp_path, capsys
):
    """The checkpoint suppresses the token greedy decoding would emit first."""
    first = greedy_reference.token_ids[0]
    for item in tiny_checkpoint.iterdir():
        if item.name != "generation_config.json":
            (tmp_path / item.name).symlink_to(item)
    generation = json.loads((tiny_checkpoint / "generation_config.json").read_text())
    (tmp_path / "generation_config.json").write_text(
        json.dumps({**generation, "suppress_tokens": [first]})
    )
    prompt = ["--prompt", "Hello, how are you today?", "--max-tokens", "6", "--json"]
    assert main(["generate", "--model", str(tmp_path), *prompt, "--temperature", "0"]) == 0
    greedy = json.loads(capsys.readouterr().out)["token_ids"]
    assert greedy[0] != first and first not in greedy
    for seed in range(3):  # the checkpoint's own sampling settings
        assert main(["generate", "--model", str(tmp_path), *prompt, "--seed", str(seed)]) == 0
        assert first not in json.loads(capsys.readouterr().out)["token_ids"]
