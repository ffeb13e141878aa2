"""The ``nnft`` command: ``nnft run CARD``, ``nnft validate CARD``, ``nnft --version``.

Thin on purpose: :func:`nnft.app.cards.load_card` reads the card and
:func:`nnft.app.pipeline.run_card` does the work. Bad input (a card, a file, an
interrupted run) is reported as one line on stderr,
``nnft: error: <message>``, with exit status 2 (130 after Ctrl-C), never a
traceback.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="nnft",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: "[default: ...]" kept, no <bool> metavars on flags
)

_SET_HELP = ("Override a card entry, e.g. --set sampling.seed=3 or --set "
             "correlators.orders=[2,4] (TOML values; repeatable; validated like the card).")

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


def _fail(message: str, code: int = EXIT_ERROR):
    """Print ``nnft: error: <message>`` as one line on stderr and exit with ``code``."""
    typer.echo(f"nnft: error: {' '.join(str(message).split())}", err=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def _reported(resume_hint: str | None = None):
    """Turn bad input into one error line; Ctrl-C into a hint how to resume."""
    from nnft._validate import ConfigError, RunInterrupted

    try:
        yield
    except OSError as err:  # "[Errno 28] ..." reads better without the number
        text = str(err) if err.strerror is None else err.strerror
        _fail(text + (f": {err.filename}" if err.filename is not None else ""))
    except (ConfigError, RunInterrupted) as err:
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
    overrides: Annotated[list[str] | None, typer.Option(
        "--set", metavar="SECTION.KEY=VALUE", help=_SET_HELP, show_default=False)] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue from the checkpoint in the output folder.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q",
                                        help="No progress bar or progress lines.")] = False,
    distributed: Annotated[bool, typer.Option(
        "--distributed", help="Call jax.distributed.initialize() first (one process per "
                              "host; SLURM and other clusters are detected without the "
                              "three options below). Only process 0 prints and writes.")] = False,
    coordinator: Annotated[str | None, typer.Option(
        "--coordinator", metavar="HOST:PORT", help="With --distributed: the address of "
                                                   "process 0.", show_default=False)] = None,
    num_processes: Annotated[int | None, typer.Option(
        "--num-processes", metavar="N", help="With --distributed: how many processes.",
        show_default=False)] = None,
    process_id: Annotated[int | None, typer.Option(
        "--process-id", metavar="I", help="With --distributed: this process's index, "
                                          "0 .. N-1.", show_default=False)] = None,
) -> None:
    """Run a model card: measure the correlators, compare with theory, write results."""
    out_dir = out if out is not None else Path("runs") / card.stem
    with _reported(resume_hint=f"'nnft run {card} --out {out_dir} --resume' continues from "
                               "the last checkpoint"):
        cluster = _cluster_options(distributed, coordinator, num_processes, process_id)
        if distributed:
            _initialize_distributed(**cluster)
        from nnft.app.cards import load_card
        from nnft.app.pipeline import run_card
        from nnft.engine.progress import default_logging

        default_logging()
        loaded = load_card(card, overrides or ())
        run_card(loaded, out_dir, resume=resume, progress=not quiet)


@app.command()
def validate(
    card: Annotated[Path, typer.Argument(metavar="CARD", help="Model card (TOML).",
                                         show_default=False)],
    overrides: Annotated[list[str] | None, typer.Option(
        "--set", metavar="SECTION.KEY=VALUE", help=_SET_HELP, show_default=False)] = None,
) -> None:
    """Check a model card without running it; print a one-line summary."""
    with _reported():
        from nnft.app.cards import load_card

        loaded = load_card(card, overrides or ())
        typer.echo(f"{card}: ok: {_describe(loaded)}")


def _cluster_options(distributed: bool, coordinator, num_processes, process_id) -> dict:
    """The checked ``jax.distributed.initialize`` arguments that were given."""
    from nnft._validate import ConfigError

    given = {"--coordinator": coordinator, "--num-processes": num_processes,
             "--process-id": process_id}
    named = [flag for flag, val in given.items() if val is not None]
    if named and not distributed:
        raise ConfigError(f"{named[0]}: only with --distributed")
    if coordinator is not None:
        host, _, port = coordinator.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"--coordinator: got {coordinator!r}; must be HOST:PORT, "
                              "e.g. 127.0.0.1:12345")
    if num_processes is not None and num_processes < 1:
        raise ConfigError(f"--num-processes: got {num_processes}; must be an integer >= 1")
    if process_id is not None and (process_id < 0 or (num_processes is not None
                                                      and process_id >= num_processes)):
        limit = f"0 .. {num_processes - 1}" if num_processes is not None else ">= 0"
        raise ConfigError(f"--process-id: got {process_id}; must be {limit}")
    return {"coordinator_address": coordinator, "num_processes": num_processes,
            "process_id": process_id}


def _initialize_distributed(**cluster) -> None:
    """``jax.distributed.initialize`` with the given arguments (none: auto-detected, e.g.
    SLURM); CPU collectives over gloo, so that CPU-only processes can all-gather."""
    import jax

    from nnft._validate import ConfigError

    if "JAX_CPU_COLLECTIVES_IMPLEMENTATION" not in os.environ:  # the user's choice wins
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(**{k: val for k, val in cluster.items() if val is not None})
    except (RuntimeError, ValueError) as err:
        raise ConfigError(f"--distributed: jax.distributed.initialize() failed: {err}") from err


def main() -> None:
    """Entry point of the ``nnft`` script."""
    app(prog_name="nnft")


if __name__ == "__main__":
    main()
