"""`gemma-desk chat`: the app's conversation in the terminal, on the same session and store."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from app import terminal_chat
from app.cli import build_parser
from app.session import AppSession
from app.views import message_views
from tests.doubles import LOOPBACK_API_KEY, scripted_factory

MCP_SERVER = Path(__file__).with_name("mcp_test_server.py")


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def chat(tiny_checkpoint, data_dir, monkeypatch):
    """Run `gemma-desk chat` on the tiny checkpoint; `scripts` are the model's next turns."""

    def run(lines: str, *flags: str, scripts=(), out=None, model=True) -> str:
        def factory(spec, progress=None):
            engine = scripted_factory()(spec, progress)
            if scripts and hasattr(engine, "script"):
                engine.script(list(scripts))
            return engine

        monkeypatch.setattr(
            terminal_chat, "AppSession", lambda d: AppSession(d, engine_factory=factory)
        )
        model_flags = ["--model", str(tiny_checkpoint)] if model else []
        args = build_parser("chat").parse_args(
            ["--data-dir", str(data_dir), *model_flags, "--max-tokens", "6", *flags]
        )
        out = out if out is not None else io.StringIO()
        assert terminal_chat.run(args, stdin=io.StringIO(lines), stdout=out) == 0
        return out.getvalue()

    return run


def saved(data_dir) -> list:
    """Every conversation in the store, as the GUI lists them, with its messages as shown."""
    with AppSession(data_dir) as session:
        store = session.storage.conversations
        return [
            (conv, message_views(session.storage, conv.id)) for conv in store.list_conversations()
        ]


def test_a_chat_is_saved_to_the_store_the_gui_shows(chat, data_dir):
    out = chat("Hello, how are you today?\nThank you very much!\n/exit\n", scripts=["Fine", "Bye"])
    [(conversation, views)] = saved(data_dir)
    assert conversation.title == "Hello, how are you today?"
    assert [(v.role, v.text) for v in views] == [
        ("user", "Hello, how are you today?"), ("assistant", "Fine"),
        ("user", "Thank you very much!"), ("assistant", "Bye"),
    ]  # fmt: skip
    assert out.count("tokens,") == 2
    assert "\x1b[" not in out  # no ANSI codes when stdout is not a terminal


def test_continue_picks_up_a_saved_conversation(chat, data_dir):
    chat("First question\n/exit\n", scripts=["First answer"])
    [(conversation, _)] = saved(data_dir)
    assert f"{conversation.id}  First question" in chat("", "--list")
    out = chat("Second question\n/exit\n", "--continue", str(conversation.id), scripts=["Again"])
    assert "Continuing “First question”" in out
    [(again, views)] = saved(data_dir)
    assert again.id == conversation.id
    assert [v.text for v in views] == ["First question", "First answer", "Second question", "Again"]


def test_nothing_starting_with_a_slash_reaches_the_model(chat, data_dir):
    out = chat(
        "/help\n/nonsense here\n/think maybe\n//etc/hosts is a file\n/exit\n", scripts=["Ok"]
    )
    assert "/image PATH" in out  # the help
    assert "Unknown command /nonsense here" in out and "Unknown command /think maybe" in out
    [(_, views)] = saved(data_dir)
    assert [v.text for v in views if v.role == "user"] == ["/etc/hosts is a file"]


def test_attachments_go_with_the_next_message(chat, data_dir, tmp_path):
    from PIL import Image

    picture = tmp_path / "cat.png"
    Image.new("RGB", (32, 24), (200, 100, 0)).save(picture)
    out = chat(f"/audio {picture}\n/image {picture}\nWhat is this?\n/exit\n", scripts=["A cat"])
    assert "cat.png is image, not audio" in out
    [(_, views)] = saved(data_dir)
    user = next(v for v in views if v.role == "user")
    assert [(a.kind, a.filename) for a in user.attachments] == [("image", "cat.png")]


def test_think_and_system_change_the_next_answer(chat, data_dir):
    out = chat(
        "/system Answer in French.\n/think on\nHello\n/exit\n",
        "--max-tokens",
        "40",
        scripts=["<|channel>thought\nhmm<channel|>yes"],
        out=_Tty(),
    )
    assert f"{terminal_chat.DIM}hmm{terminal_chat.RESET}\nyes" in out
    with AppSession(data_dir) as session:
        [conversation] = session.storage.conversations.list_conversations()
        assert session.controller.render(conversation.id)[0] == {
            "role": "system",
            "content": "Answer in French.",
        }


def test_regen_keeps_one_current_answer(chat, data_dir):
    chat("Hello\n/regen\n/exit\n", scripts=["One", "Two"])
    [(_, views)] = saved(data_dir)
    assert [(v.role, v.text) for v in views] == [("user", "Hello"), ("assistant", "Two")]


def test_mcp_tools_run_with_the_same_approval_as_in_the_app(chat, data_dir):
    with AppSession(data_dir) as session:
        server = {"name": "calc", "command": [sys.executable, str(MCP_SERVER)]}
        session.apply_settings({"mcp_servers": [server]})
    out = chat(
        "Add 2 and 3\ny\n/exit\n",
        "--max-tokens",
        "60",
        scripts=[("tool", "add", {"a": 2, "b": 3}), "Five"],
    )
    assert "Gemma wants to run the tool “add” of the MCP server “calc”" in out
    assert "[tool] add({'a': 2, 'b': 3}) -> 5" in out
    [(_, views)] = saved(data_dir)
    assert views[-1].text == "Five" and views[-2].tools[0].result == 5


def test_always_allowing_a_tool_in_the_terminal_is_remembered(chat, data_dir):
    with AppSession(data_dir) as session:
        server = {"name": "calc", "command": [sys.executable, str(MCP_SERVER)]}
        session.apply_settings({"mcp_servers": [server]})
    script = [("tool", "add", {"a": 2, "b": 3}), "Five", ("tool", "add", {"a": 1, "b": 1}), "Two"]
    out = chat("Add 2 and 3\nalways\nAdd 1 and 1\n/exit\n", "--max-tokens", "60", scripts=script)
    assert out.count("Allow it? [y/N/always]") == 1  # the second call was not asked
    assert "[tool] add({'a': 1, 'b': 1}) -> 2" in out
    with AppSession(data_dir) as session:
        assert session.settings.mcp_allowed_tools == ("calc/add",)


def test_a_declined_tool_does_not_run(chat, data_dir):
    with AppSession(data_dir) as session:
        server = {"name": "calc", "command": [sys.executable, str(MCP_SERVER)]}
        session.apply_settings({"mcp_servers": [server]})
    out = chat(
        "Add 2 and 3\nn\n/exit\n",
        "--max-tokens",
        "60",
        scripts=[("tool", "add", {"a": 2, "b": 3}), "Sorry"],
    )
    assert "the user declined to run add" in out


def test_the_remote_backend_answers_the_chat(chat, data_dir, loopback_server, loopback_service):
    from tests.doubles import script_turns

    with AppSession(data_dir) as session:
        session.apply_settings({"remote_api_key": LOOPBACK_API_KEY})
    script_turns(loopback_service, ["From the server"])
    out = chat("Hi\n/exit\n", "--remote", loopback_server.url, "--max-tokens", "40", model=False)
    assert "From the server" in out
    [(_, views)] = saved(data_dir)
    assert views[-1].text == "From the server"


def test_the_answer_line_says_how_many_drafted_guesses_were_kept(
    chat, tiny_checkpoint_with_assistant
):
    model = ["--model", str(tiny_checkpoint_with_assistant)]
    out = chat("Hello\n", *model, model=False, scripts=["The sky is blue."])
    assert "% of guesses kept" in out
    assert "guesses" not in chat("Hello\n", *model, "--no-draft", model=False)


def test_how_far_a_long_prompt_is_read_goes_to_stderr(chat, monkeypatch, capsys):
    import mlx_model.engine

    monkeypatch.setattr(mlx_model.engine, "PREFILL_PROGRESS_MIN_TOKENS", 8)
    out = chat("Hello there, how are you?\n", scripts=["Fine."])
    assert "Fine." in out and "Reading the prompt" not in out
    assert "Reading the prompt: " in capsys.readouterr().err
