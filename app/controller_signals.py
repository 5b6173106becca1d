"""Qt signals for the conversation controller: which message changed, queued to the receiver's thread.

`ControllerSignals(controller)` is a QObject (QtCore only). Signals:
`message_added(conversation_id, message_id, role)`,
`message_delta(conversation_id, message_id, text, thinking)`,
`message_progress(conversation_id, message_id, done, total, eta_s)` (eta_s None: unknown),
`message_finished(conversation_id, message_id, status, error)` (error "" when none),
`turn_finished(Turn)`, `input_progressed(InputProgressed)` (a transcription's progress or a
note about a long input), and `event(object)` with every controller event.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from app.conversation_controller import (
    ControllerEvent,
    ConversationController,
    InputProgressed,
    MessageAdded,
    MessageDelta,
    MessageFinished,
    MessageProgress,
    TurnFinished,
)


class ControllerSignals(QObject):
    """Qt face of a `ConversationController`."""

    event = Signal(object)
    message_added = Signal(int, int, str)
    message_delta = Signal(int, int, str, str)
    message_progress = Signal(int, int, int, int, object)
    message_finished = Signal(int, int, str, str)
    turn_finished = Signal(object)
    input_progressed = Signal(object)

    def __init__(self, controller: ConversationController, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self._unsubscribe = controller.subscribe(self._relay)
        self.destroyed.connect(self._unsubscribe)

    def disconnect_controller(self) -> None:
        self._unsubscribe()

    def _relay(self, ev: ControllerEvent) -> None:
        self.event.emit(ev)
        if isinstance(ev, MessageAdded):
            self.message_added.emit(ev.conversation_id, ev.message_id, ev.role)
        elif isinstance(ev, MessageDelta):
            self.message_delta.emit(ev.conversation_id, ev.message_id, ev.text, ev.thinking)
        elif isinstance(ev, MessageProgress):
            self.message_progress.emit(
                ev.conversation_id, ev.message_id, ev.done, ev.total, ev.eta_s
            )
        elif isinstance(ev, MessageFinished):
            self.message_finished.emit(ev.conversation_id, ev.message_id, ev.status, ev.error or "")
        elif isinstance(ev, TurnFinished):
            self.turn_finished.emit(ev.turn)
        elif isinstance(ev, InputProgressed):
            self.input_progressed.emit(ev)
