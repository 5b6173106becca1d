"""A long prompt in the window: the streaming message shows how far it is read, Stop cancels
between chunks, and the chunks read stay in the prompt cache."""

from __future__ import annotations

from PySide6.QtCore import Qt

from tests.ui.test_app_integration import assistant_widgets, send_text, wait_idle

LONG = "The quick brown fox jumps over the lazy dog. " * 12
# Small chunks and a low threshold make the tiny model's prompt "long".
TUNING = {"prefill_chunk": 8, "progress_min_tokens": 32}


def answer_again(qtbot, window, backend):
    """Regenerate the last answer and return it once stored."""
    cid = window.conversation_id
    before = backend.messages(cid)[-1].id
    qtbot.mouseClick(assistant_widgets(window)[-1].regenerate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: backend.messages(cid)[-1].id != before, timeout=10_000)
    qtbot.waitUntil(lambda: not backend.messages(cid)[-1].streaming, timeout=30_000)
    wait_idle(qtbot, window)
    return backend.messages(cid)[-1]


def test_stop_while_a_long_prompt_is_read_cancels_between_chunks_and_keeps_them_cached(
    qtbot, window_for, app_backend_for
):
    backend = app_backend_for(delay_s=0.15, tuning=TUNING)
    backend.session.settings_store.update(temperature=0.0)
    window = window_for(backend)
    send_text(qtbot, window, LONG)
    qtbot.waitUntil(
        lambda: (
            bool(assistant_widgets(window)) and assistant_widgets(window)[0].prefill_row.isVisible()
        ),
        timeout=20_000,
    )
    reading = assistant_widgets(window)[0]
    assert reading.prefill_label.text().startswith("Reading the prompt: ")
    assert 0 < reading.prefill_bar.value() < 1000
    assert reading.stop_button.isVisible() and not reading.body.isVisible()

    qtbot.mouseClick(reading.stop_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, window)
    backend.engines[0].delay_s = 0.0
    stopped = backend.messages(window.conversation_id)[-1]
    assert stopped.stats.stop_reason == "cancelled" and stopped.stats.generated_tokens == 0
    assert stopped.stats.prefilled_tokens > 0
    assert not assistant_widgets(window)[-1].prefill_row.isVisible()

    warm = answer_again(qtbot, window, backend)
    assert warm.stats.cached_tokens == stopped.stats.prefilled_tokens  # the chunks read
    backend.session.service.call(lambda engine: engine.engine.prompt_cache.clear()).wait()
    shown = []
    backend.prefill_progress.connect(lambda cid, mid, progress: shown.append(progress))
    cold = answer_again(qtbot, window, backend)
    assert cold.stats.cached_tokens == 0 and cold.text == warm.text
    assert stopped.stats.prefilled_tokens < cold.stats.prefilled_tokens  # stopped part-way
    qtbot.waitUntil(lambda: bool(shown) and shown[-1].done == shown[-1].total)
    last = assistant_widgets(window)[-1]
    qtbot.waitUntil(lambda: not last.message.streaming)
    assert not last.prefill_row.isVisible()  # gave way to the answer
