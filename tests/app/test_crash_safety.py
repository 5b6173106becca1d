"""Crash safety: SIGKILL a process while it streams an answer into the store, then reopen the store.

The child runs the real stack (engine service with the tiny checkpoint, conversation
controller, streaming writer), prints every delta it receives and reports every committed
flush of the answer. After the kill, the database must pass `PRAGMA integrity_check`, every
earlier message must be intact, and the partial answer must be exactly a prefix of what was
streamed holding at least the last flush the child reported: no wall-clock slack. The
0.5 s promise itself (how late a flush may come) is checked deterministically on a fake
clock in tests/app/test_storage_streaming.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from app.storage import open_storage
from app.storage.conversations import INTERRUPTED
from app.streaming_writer import FLUSH_INTERVAL_S

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX-only")

CHILD = textwrap.dedent(
    """
    import json, sys, threading, time
    from app.conversation_controller import ConversationController, MessageDelta
    from app.engine_service import EngineService
    from app.settings import Settings
    from app.storage import open_storage
    from tests.doubles import script_turns, scripted_factory

    data_dir, checkpoint, conversation_id = sys.argv[1], sys.argv[2], int(sys.argv[3])
    lock = threading.Lock()

    def emit(item):  # one line at a time: the engine and the writer threads both report
        with lock:
            sys.stdout.write(json.dumps(item) + "\\n")
            sys.stdout.flush()

    storage = open_storage(data_dir, housekeeping=False)
    service = EngineService(scripted_factory())
    assert service.load(checkpoint).wait(300) and service.is_loaded
    # A random tiny model ends its answer at a random point; the scripted turn forces
    # ordinary words, over and over, so the answer streams until the kill.
    script_turns(service, [("forever", " the cat is in")])
    controller = ConversationController(storage, service, Settings(max_tokens=100000, temperature=0.0))
    update = storage.conversations.update_message

    def reporting_update(message_id, **fields):
        update(message_id, **fields)  # committed when this returns
        if fields.get("text") is not None:
            emit({"flushed": len(fields["text"])})

    storage.conversations.update_message = reporting_update

    def on_event(event):
        if isinstance(event, MessageDelta) and event.text:
            emit({"t": time.time(), "text": event.text})

    controller.subscribe(on_event)
    turn = controller.send(conversation_id, "Write a very long essay.")
    emit({"assistant_id": turn.assistant_message_id})
    turn.wait()
    emit({"finished": turn.status, "error": turn.error})
    """
)


def png_bytes() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def test_sigkill_mid_stream_keeps_earlier_messages_and_the_flushed_partial_answer(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    data_dir = tmp_path / "data"
    with open_storage(data_dir) as storage:
        store = storage.conversations
        picture = png_bytes()
        media = storage.media.add_bytes(picture, kind="image", mime="image/png", ext=".png")
        conv = store.create_conversation("Before the crash")
        earlier = [
            store.add_message(
                conv.id, "user", "Hello!", attachments=[(media.sha256, "image", "p.png")]
            ),
            store.add_message(
                conv.id, "assistant", "Hi, how can I help?", thinking="greet", stats={"x": 1}
            ),
        ]
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    child = subprocess.Popen(
        [sys.executable, str(script), str(data_dir), str(tiny_checkpoint), str(conv.id)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deltas: list[tuple[float, str]] = []
    flushed: list[int] = []  # lengths of the committed flushes, in order
    info: dict = {}

    def read() -> None:
        for line in child.stdout:
            item = json.loads(line)
            if "text" in item:
                deltas.append((item["t"], item["text"]))
            elif "flushed" in item:
                flushed.append(item["flushed"])
            else:
                info.update(item)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        # Let it stream for a while: several flush intervals' worth of text.
        deadline = time.monotonic() + 240
        while len(flushed) < 3 or deltas[-1][0] - deltas[0][0] < 4 * FLUSH_INTERVAL_S:
            assert child.poll() is None, f"child ended early: {child.stderr.read()}"
            assert "finished" not in info, f"the answer ended before it could be killed: {info}"
            assert time.monotonic() < deadline, "the child never streamed"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)
    reader.join(10)
    assert child.returncode == -signal.SIGKILL
    streamed = "".join(text for _, text in deltas)
    # Every flush the child reported was committed before it died (it may have committed
    # one more that it had no time to report).
    must_have = streamed[: max(flushed)]

    with open_storage(data_dir, housekeeping=False) as storage:
        assert storage.db.integrity_check() == "ok"
        store = storage.conversations
        messages = store.messages(conv.id)
        assert messages[: len(earlier)] == earlier
        assert storage.media.path_of(media.sha256).read_bytes() == picture
        question, answer = messages[len(earlier) :]
        assert question.role == "user" and question.text == "Write a very long essay."
        assert answer.id == info["assistant_id"] and answer.status == "streaming"
        assert streamed.startswith(answer.text), "stored text is not what was streamed"
        assert answer.text.startswith(must_have) and len(must_have) > 0
        # At the next start the dead stream is marked interrupted; its text stays.
        assert store.recover_interrupted(stale_after_s=0) == [answer.id]
        recovered = store.get_message(answer.id)
        assert recovered.status == "error" and recovered.error == INTERRUPTED
        assert recovered.text == answer.text
