"""One rich progress bar for every long loop (ensembles, NUTS draws, training steps)."""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def progress_bar(enabled: bool, total: int, description: str, unit: str, done: int = 0):
    """Yields ``advance(n)``, which sets the bar to ``n`` of ``total`` (a no-op if disabled)."""
    if not enabled:
        yield lambda n: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn(unit), TimeRemainingColumn()) as bar:
        task = bar.add_task(description, total=total, completed=done)
        yield lambda n: bar.update(task, completed=n)


def width_label(prior) -> str:
    """``"cos-net N=10"``: how a bar names an architecture."""
    return f"{prior.name} N={getattr(prior, 'width', '?')}"
