"""Answering over text longer than the context: split into parts that fit, answer each, combine.

`split_lines(lines, budget, count)` packs whole lines (transcript segments, document lines)
into parts of at most `budget` tokens; `map_reduce(parts, task, generate, ...)` asks
`generate(prompt) -> text` the task for each part (`map_parts`), then combines the partial
answers in as few requests as fit, repeating until one answer remains (`reduce_answers`,
which can also stop as soon as the answers fit a given number of tokens, for a caller that
combines the last ones itself).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .clips import format_clock
from .transcript import Transcript

TokenCounter = Callable[[str], int]

MAP_PROMPT = (
    "{what}, part {index} of {total}{span}:\n\n{text}\n\n"
    "Task: {task}\n"
    "Do the task for this part only. If this part holds nothing relevant to it, say so in one "
    "line. Keep the timestamps of what you cite."
)
REDUCE_PROMPT = (
    "The task below was done separately for {total} consecutive parts of {what_lower}. "
    "Here are the partial answers, in order:\n\n{answers}\n\n"
    "Task: {task}\n"
    "Combine the partial answers into one answer to the task, as if written over the whole. "
    "Drop parts that found nothing; keep timestamps."
)


@dataclass(frozen=True)
class Part:
    """A slice of the text that fits the budget, with the time span it covers when known."""

    text: str
    start_s: float | None = None
    end_s: float | None = None

    @property
    def span(self) -> str:
        if self.start_s is None or self.end_s is None:
            return ""
        return f" ({format_clock(self.start_s)}–{format_clock(self.end_s)})"


def split_lines(lines: Sequence[str], budget: int, count: TokenCounter) -> list[list[int]]:
    """Indices of `lines` grouped into consecutive parts of at most `budget` tokens each.

    A line longer than the budget alone becomes a part of its own (the caller cuts it).
    """
    if budget <= 0:
        raise ValueError("budget must be positive")
    parts: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i, line in enumerate(lines):
        cost = count(line + "\n")
        if current and used + cost > budget:
            parts.append(current)
            current, used = [], 0
        current.append(i)
        used += cost
    if current:
        parts.append(current)
    return parts


def transcript_parts(transcript: Transcript, budget: int, count: TokenCounter) -> list[Part]:
    """The transcript's `[12:30] words` lines in parts of at most `budget` tokens."""
    segments = [s for s in transcript.segments if s.text.strip()]
    lines = [f"[{format_clock(s.start_s)}] {s.text}" for s in segments]
    return [
        Part(
            "\n".join(lines[i] for i in group),
            segments[group[0]].start_s,
            segments[group[-1]].end_s,
        )
        for group in split_lines(lines, budget, count)
    ]


@dataclass(frozen=True)
class MapReduceProgress:
    stage: str  # "map" or "reduce"
    done: int
    total: int

    @property
    def message(self) -> str:
        verb = "reading part" if self.stage == "map" else "combining answers"
        return f"{verb} {self.done} of {self.total}"


class Cancelled(Exception):
    """`map_reduce` was cancelled; `partial` holds the answers obtained so far."""

    def __init__(self, partial: list[str]):
        super().__init__("cancelled")
        self.partial = partial


def map_parts(
    parts: Sequence[Part],
    task: str,
    generate: Callable[[str], str],
    *,
    what: str = "A transcript",
    on_progress: Callable[[MapReduceProgress], None] | None = None,
    cancel: threading.Event | Callable[[], bool] | None = None,
) -> list[str]:
    """The task's answer for each part, in order (raises `Cancelled` between requests)."""
    answers: list[str] = []
    for i, part in enumerate(parts, 1):
        if _is_set(cancel):
            raise Cancelled(answers)
        prompt = MAP_PROMPT.format(
            what=what, index=i, total=len(parts), span=part.span, text=part.text, task=task
        )
        answers.append(generate(prompt).strip())
        if on_progress is not None:
            on_progress(MapReduceProgress("map", i, len(parts)))
    return answers


def reduce_answers(
    answers: Sequence[str],
    task: str,
    generate: Callable[[str], str],
    *,
    count: TokenCounter,
    budget: int,
    what: str = "A transcript",
    fits: int | None = None,
    on_progress: Callable[[MapReduceProgress], None] | None = None,
    cancel: threading.Event | Callable[[], bool] | None = None,
) -> list[str]:
    """Combine neighbouring answers (each request within `budget`) until one is left, or,
    with `fits`, until all of them take at most `fits` tokens as answer blocks."""
    answers = list(answers)

    def done() -> bool:
        if len(answers) <= 1:
            return True
        return fits is not None and count(answer_blocks(answers)) <= fits

    while not done():
        overhead = count(_reduce_prompt(task, what, len(answers), []))
        groups = split_lines(
            [_answer_block(i, a) for i, a in enumerate(answers)], max(1, budget - overhead), count
        )
        if len(groups) == len(answers):
            groups = [list(range(len(answers)))[k : k + 2] for k in range(0, len(answers), 2)]
        combined: list[str] = []
        for step, group in enumerate(groups, 1):
            if _is_set(cancel):
                raise Cancelled(combined + answers)
            if len(group) == 1:
                combined.append(answers[group[0]])
                continue
            chosen = [answers[k] for k in group]
            combined.append(generate(_reduce_prompt(task, what, len(chosen), chosen)).strip())
            if on_progress is not None:
                on_progress(MapReduceProgress("reduce", step, len(groups)))
        answers = combined
    return answers


def map_reduce(
    parts: Sequence[Part],
    task: str,
    generate: Callable[[str], str],
    *,
    count: TokenCounter,
    budget: int,
    what: str = "A transcript",
    on_progress: Callable[[MapReduceProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> str:
    """Answer `task` over `parts` (see the module docstring); `budget` bounds every prompt.

    Raises `Cancelled` (with the partial answers) when `cancel` is set between requests.
    """
    answers = map_parts(parts, task, generate, what=what, on_progress=on_progress, cancel=cancel)
    return reduce_answers(
        answers, task, generate, count=count, budget=budget, what=what,
        on_progress=on_progress, cancel=cancel,
    )[0]  # fmt: skip


def answer_blocks(answers: Sequence[str], spans: Sequence[str] = ()) -> str:
    """Partial answers as the prompt shows them: `Part 1 (00:00–12:30):` then the answer."""
    return "\n".join(
        _answer_block(i, a, spans[i] if i < len(spans) else "") for i, a in enumerate(answers)
    )


def _is_set(cancel: threading.Event | Callable[[], bool] | None) -> bool:
    if cancel is None:
        return False
    return cancel.is_set() if isinstance(cancel, threading.Event) else bool(cancel())


def _answer_block(index: int, answer: str, span: str = "") -> str:
    return f"Part {index + 1}{span}:\n{answer}\n"


def _reduce_prompt(task: str, what: str, total: int, answers: Sequence[str]) -> str:
    return REDUCE_PROMPT.format(
        total=total,
        what_lower=what[0].lower() + what[1:],
        answers="\n".join(_answer_block(i, a) for i, a in enumerate(answers)),
        task=task,
    )
