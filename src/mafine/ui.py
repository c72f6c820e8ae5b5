"""Terminal output: one console, and progress that stays readable outside a terminal."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mafine.errors import StdoutClosed


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """A closed stdout stops the command as an interruption does (rich would exit 1
        silently); the console prints nothing more (the CLI's guard says why it stopped)."""
        self.quiet = True
        raise StdoutClosed()


console = _Console(highlight=False, soft_wrap=True, markup=False)
error_console = Console(stderr=True, highlight=False, markup=False)


class ProgressLine:
    """Advance a count; in a terminal a live bar, elsewhere (Colab shell cells, CI logs) a plain
    line at every 10%, so logs are not flooded with redraws."""

    def __init__(self, label: str, total: int, progress: Progress | None) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._progress = progress
        self._task = progress.add_task(label, total=total) if progress else None
        self._next_report = 0.1

    def advance(self, amount: int = 1) -> None:
        self.done += amount
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, amount)
            return
        fraction = self.done / self.total if self.total else 1.0
        if fraction >= self._next_report or self.done == self.total:
            console.print(f"{self.label}: {self.done}/{self.total}")
            while self._next_report <= fraction:
                self._next_report += 0.1


def live_output() -> bool:
    """Whether live redraws are welcome: a real terminal, not a Colab `!` cell (a pty that
    shows every redraw as a new line), CI, or a dumb terminal. MAFINE_PROGRESS=plain|live
    decides instead when set."""
    choice = os.environ.get("MAFINE_PROGRESS", "").lower()
    if choice in {"plain", "live"}:
        return choice == "live"
    if os.environ.get("COLAB_RELEASE_TAG") or os.environ.get("CI"):
        return False
    return console.is_terminal and os.environ.get("TERM") != "dumb"


@contextmanager
def progress(label: str, total: int) -> Iterator[ProgressLine]:
    if not live_output():
        yield ProgressLine(label, total, None)
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        yield ProgressLine(label, total, bar)
