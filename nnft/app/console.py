"""The console of ``nnft run``: one rich Console, silent on all but process 0, and the
line that says what a ``--resume`` continued from."""

from __future__ import annotations


def make_console(console=None, writer: bool = True):
    """``console`` (default a new rich Console); a silent one on non-writing processes."""
    from rich.console import Console

    if not writer:
        return Console(quiet=True)
    return console if console is not None else Console()


def print_resume(console, result, out_dir, total: int, unit: str) -> None:
    """After a ``--resume``: where the run continued from, or that it started fresh.

    Reads ``result.resumed_from`` (or ``result.info.resumed_from``: the units done when
    the run started, None for a fresh start) and the checkpoint's path; prints nothing
    when the result does not say.
    """
    src = result if hasattr(result, "resumed_from") else getattr(result, "info", None)
    if src is None or not hasattr(src, "resumed_from"):
        return
    done = src.resumed_from
    if done is None:
        console.print(f"no checkpoint in {out_dir}: starting fresh")
        return
    checkpoint = getattr(src, "checkpoint", None) or out_dir
    console.print(f"resuming from {checkpoint} ({done:,} of {total:,} {unit} done)")
