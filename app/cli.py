"""The `gemma-desk` command: one entry point, one subcommand per job (the GUI by default).

Each subcommand lives in its own module, which provides `add_arguments(parser)` and
`run(args) -> int`. Modules are imported only when their subcommand runs, so
`gemma-desk generate` never pays for Qt and `gemma-desk` (GUI) never pays for the server.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "gui": ("ui.launch", "open the desktop app (the default)"),
    "chat": ("app.terminal_chat", "chat with the model in the terminal"),
    "generate": ("app.terminal_generate", "generate one answer, for scripts"),
    "transcribe": ("app.terminal_transcribe", "transcribe a recording of any length"),
    "serve": ("app.server.command", "serve an OpenAI-compatible API on this machine"),
    "convert": ("mlx_model.convert", "write a quantized copy of a checkpoint"),
    "plan": ("app.plan_command", "show the memory plan for a checkpoint"),
    "export": ("app.export_command", "export a chat (Markdown, JSON) or all of them (zip)"),
    "import": ("app.import_command", "import chats exported as JSON or a zip of them"),
    "models": ("app.models.command", "list the models on this Mac, or download one"),
    "mcp": ("app.mcp_command", "list the MCP servers, or import Claude Desktop's"),
    "make-test-checkpoint": (
        "mlx_model.testing.checkpoint_factory",
        "write a tiny random Gemma 4 unified checkpoint (for trying the app offline)",
    ),
}
DEFAULT_SUBCOMMAND = "gui"


def build_parser(subcommand: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"gemma-desk {subcommand}", description=SUBCOMMANDS[subcommand][1]
    )
    module = importlib.import_module(SUBCOMMANDS[subcommand][0])
    module.add_arguments(parser)
    parser.set_defaults(_run=module.run)
    return parser


def usage() -> str:
    lines = ["usage: gemma-desk [--version] [SUBCOMMAND] [OPTIONS]", "", "subcommands:"]
    width = max(len(name) for name in SUBCOMMANDS)
    for name, (_, help_text) in SUBCOMMANDS.items():
        lines.append(f"  {name.ljust(width)}  {help_text}")
    lines.append("")
    lines.append(
        "With no subcommand the desktop app opens; `gemma-desk SUBCOMMAND --help` for options."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv and argv[0] in ("-V", "--version"):
        from app.version import version

        print(f"gemma-desk {version()}")
        return 0
    if argv and argv[0] in SUBCOMMANDS:
        subcommand, rest = argv[0], argv[1:]
    else:
        subcommand, rest = DEFAULT_SUBCOMMAND, argv
    args = build_parser(subcommand).parse_args(rest)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        return 130
