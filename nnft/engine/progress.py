"""Progress of every long loop (ensembles, NUTS draws, training steps, blocks).

On a terminal: one rich bar (remaining time while it runs, the elapsed time once it is
done). Elsewhere (a batch job, a pipe, a log file): a line on the ``"nnft"`` logger
every :data:`LOG_EVERY` of the work, ``cos-net N=10: 300,000 of 1,000,000 networks
(30%), 0:00:12 elapsed, about 0:00:28 left``. Messages go through the standard
:mod:`logging` module, so ``logging.getLogger("nnft").setLevel(logging.WARNING)``
silences them and any handler redirects them; when the program has configured no
logging at all, :func:`default_logging` gives the logger one stderr handler at INFO.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import sys
import time

log = logging.getLogger("nnft")

#: Progress lines off a terminal: one per this fraction of the work.
LOG_EVERY = 0.05


def default_logging() -> logging.Logger:
    """The ``"nnft"`` logger, given a stderr handler at INFO when nothing is configured
    (neither it nor the root logger has handlers and its level is unset)."""
    if not log.handlers and not logging.getLogger().handlers and log.level == logging.NOTSET:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("nnft: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    return log


def _is_terminal() -> bool:
    from rich.console import Console

    return Console().is_terminal


def _clock(seconds: float) -> str:
    return str(datetime.timedelta(seconds=round(max(seconds, 0.0))))


class _Lines:
    """Progress as log lines, one per :data:`LOG_EVERY` of ``total`` and one at the end."""

    def __init__(self, total: int, description: str, unit: str, done: int):
        self.total, self.description, self.unit = max(int(total), 1), description, unit
        self.start_done, self.t0 = done, time.perf_counter()
        self.next, self.logged = self._next_mark(done), done
        default_logging().info(f"{description}: starting, {self.total:,} {unit}"
                               + (f", resuming at {done:,}" if done else ""))

    def _next_mark(self, n: int) -> int:
        step = max(1, round(LOG_EVERY * self.total))
        return (n // step + 1) * step

    def __call__(self, n: int) -> None:
        if (n < self.next and n < self.total) or self.logged == n:
            return
        self.next, self.logged = self._next_mark(n), n
        elapsed = time.perf_counter() - self.t0
        text = (f"{self.description}: {n:,} of {self.total:,} {self.unit} "
                f"({100 * n / self.total:.0f}%), {_clock(elapsed)} elapsed")
        ran = n - self.start_done
        if n < self.total and ran > 0:
            text += f", about {_clock(elapsed * (self.total - n) / ran)} left"
        log.info(text)


@contextlib.contextmanager
def progress_bar(enabled: bool, total: int, description: str, unit: str, done: int = 0):
    """Yields ``advance(n)``, which sets the progress to ``n`` of ``total`` (a no-op if
    disabled): a rich bar on a terminal, log lines elsewhere."""
    if not enabled:
        yield lambda n: None
        return
    if not _is_terminal():
        yield _Lines(total, description, unit, done)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn(unit), _times_column()) as bar:
        task = bar.add_task(description, total=total, completed=done)
        yield lambda n: bar.update(task, completed=n)


def _times_column():
    """``0:00:12 elapsed, 0:00:28 left`` while running, ``0:00:40 elapsed`` when done."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class Times(ProgressColumn):
        def render(self, task):
            elapsed = task.finished_time if task.finished else task.elapsed
            text = f"{_clock(elapsed or 0.0)} elapsed"
            if not task.finished and task.time_remaining is not None:
                text += f", {_clock(task.time_remaining)} left"
            return Text(text, style="progress.elapsed")

    return Times()


def width_label(prior) -> str:
    """``"cos-net N=10"``: how a bar names an architecture."""
    return f"{prior.name} N={getattr(prior, 'width', '?')}"
