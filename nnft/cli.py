"""The ``nnft`` command: ``nnft run CARD``, ``nnft validate CARD``, ``nnft --version``.

Thin on purpose: :func:`nnft.cards.load_card` reads the card and
:func:`nnft.pipeline.run_card` does the work. Bad input (a card, a file, an
interrupted run) is reported as one line on stderr,
``nnft: error: <message>``, with exit status 2 (130 after Ctrl-C), never a
traceback.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="nnft",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


def _fail(message: str, code: int = EXIT_ERROR):
    """Print ``nnft: error: <message>`` as one line on stderr and exit with ``code``."""
    typer.echo(f"nnft: error: {' '.join(str(message).split())}", err=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def _reported(resume_hint: str | None = None):
    """Turn bad input into one error line; Ctrl-C into a hint how to resume."""
    from nnft._validate import ConfigError
    from nnft.ensemble import RunInterrupted

    try:
        yield
    except (ConfigError, OSError, RunInterrupted) as err:
        _fail(str(err) or type(err).__name__)
    except KeyboardInterrupt:
        _fail("interrupted" + (f"; {resume_hint}" if resume_hint else ""), EXIT_INTERRUPTED)


def _describe(card) -> str:
    """A one-line summary of a validated card."""
    hp = ", ".join(f"{k}={val}" for k, val in card.architecture.items() if k != "name")
    n_points, d = card.points.shape
    text = (f"{card.name} ({hp}); {card.n_samples:,} networks, seed {card.seed}; "
            f"{n_points} points in d = {d}; orders {', '.join(map(str, card.orders))}")
    if card.widths:
        text += f"; width scan {', '.join(map(str, card.widths))}"
    return text


def _version(value: bool) -> None:
    if value:
        from nnft import __version__

        typer.echo(f"nnft {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Neural-network field theory: sample an architecture's networks, measure its n-point
    functions with errors, compare with exact theory."""


@app.command()
def run(
    card: Annotated[Path, typer.Argument(
        metavar="CARD", help="Model card (TOML), e.g. models/cos-net.toml.",
        show_default=False)],
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Output folder.  [default: runs/<card name>]",
        show_default=False)] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue from the checkpoint in the output folder.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    distributed: Annotated[bool, typer.Option(
        "--distributed", help="Call jax.distributed.initialize() first (one process per "
                              "host of a cluster).")] = False,
) -> None:
    """Run a model card: measure the correlators, compare with theory, write results."""
    out_dir = out if out is not None else Path("runs") / card.stem
    with _reported(resume_hint=f"'nnft run {card} --out {out_dir} --resume' continues from "
                               "the last checkpoint"):
        if distributed:
            _initialize_distributed()
        from nnft.cards import load_card
        from nnft.pipeline import run_card

        loaded = load_card(card)
        run_card(loaded, out_dir, resume=resume, progress=not quiet)


@app.command()
def validate(
    card: Annotated[Path, typer.Argument(metavar="CARD", help="Model card (TOML).",
                                         show_default=False)],
) -> None:
    """Check a model card without running it; print a one-line summary."""
    with _reported():
        from nnft.cards import load_card

        loaded = load_card(card)
        typer.echo(f"{card}: ok: {_describe(loaded)}")


def _initialize_distributed() -> None:
    import jax

    from nnft._validate import ConfigError

    try:
        jax.distributed.initialize()
    except (RuntimeError, ValueError) as err:
        raise ConfigError(f"--distributed: jax.distributed.initialize() failed: {err}") from err


def main() -> None:
    """Entry point of the ``nnft`` script."""
    app(prog_name="nnft")


if __name__ == "__main__":
    main()
