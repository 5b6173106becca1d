"""An answer's numbers under it: speed, and how many of the drafter's guesses were kept."""

from __future__ import annotations

from app.engines.contract import GenerationStats
from app.views import MessageView


def test_a_finished_answer_shows_its_speed_and_the_guesses_kept(qtbot):
    from ui.message_widget import MessageWidget

    stats = GenerationStats(generated_tokens=20, decode_tps=31.25)
    stats.extra["speculative"] = {"drafted": 16, "accepted": 12, "acceptance_rate": 0.75,
                                  "mean_accepted_length": 1.5}  # fmt: skip
    message = MessageView("1", "assistant", text="Hi", streaming=True, stats=stats)
    widget = MessageWidget(message)
    qtbot.addWidget(widget)
    widget.refresh()
    assert widget.stats_label.text() == ""  # nothing while it streams
    message.streaming = False
    widget.refresh()
    assert widget.stats_label.text() == "31.2 tok/s · 75% of guesses kept"
    assert "16 tokens drafted, 12 accepted" in widget.stats_label.toolTip()
