"""The application layer: model cards, running a card end to end, the ``nnft`` command.

``cards`` (a TOML file in, a validated :class:`~nnft.app.cards.Card` out), ``sections``
(the ``[interaction]``, ``[mcmc]`` and ``[training]`` parsers), ``pipeline``
(:func:`~nnft.app.pipeline.run_card`: files and console output), ``mcmc_run`` and
``training_run`` (the same for MCMC and training cards), ``cli`` (``nnft run``).
Only this layer knows about cards, output folders and the console; the compute
modules below never import it.
"""

from nnft.app.cards import Card, load_card, parse_card
from nnft.app.pipeline import run_card

__all__ = ["Card", "load_card", "parse_card", "run_card"]
