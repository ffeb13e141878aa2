"""What an MCMC run does: :class:`MCMCConfig`, validated at construction."""

from __future__ import annotations

import dataclasses
import math

from nnft import _validate as v

SAMPLERS = ("blackjax", "numpyro")


@dataclasses.dataclass(frozen=True)
class MCMCConfig:
    """What a run does: ``sampler`` (blackjax | numpyro), ``chains``, ``warmup`` and
    ``samples`` draws per chain, ``seed``; NUTS settings ``target_accept`` and
    ``max_tree_depth``; ``checkpoint_every`` draws per chunk; whether the cross-checks
    from free draws run (``reweighting``, ``perturbation``)."""

    sampler: str = "blackjax"
    chains: int = 8
    warmup: int = 1000
    samples: int = 2000
    seed: int = 0
    target_accept: float = 0.8
    max_tree_depth: int = 10
    checkpoint_every: int = 500
    reweighting: bool = True
    perturbation: bool = True

    def __post_init__(self):
        v.choice("sampler", self.sampler, SAMPLERS)
        v.positive_int("chains", self.chains)
        v.positive_int("warmup", self.warmup, minimum=10)
        v.positive_int("samples", self.samples, minimum=10)
        object.__setattr__(self, "seed", v.seed("seed", self.seed))
        v.require(v.is_real(self.target_accept)
                  and 0 < self.target_accept < 1, "target_accept", self.target_accept,
                  "must be a number in (0, 1)")
        v.positive_int("max_tree_depth", self.max_tree_depth)
        v.require(self.max_tree_depth <= 15, "max_tree_depth", self.max_tree_depth,
                  "must be at most 15 (2^15 leapfrog steps per draw)")
        v.positive_int("checkpoint_every", self.checkpoint_every)
        for name in ("reweighting", "perturbation"):
            v.require(isinstance(getattr(self, name), bool), name, getattr(self, name),
                      "must be true or false")
        object.__setattr__(self, "target_accept", float(self.target_accept))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def chunking(samples: int, every: int) -> tuple[int, int]:
    """``(n_chunks, draws per chunk)`` for ``samples`` draws in chunks of at most ``every``."""
    n_chunks = math.ceil(samples / every)
    return n_chunks, math.ceil(samples / n_chunks)
