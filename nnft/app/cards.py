"""Model cards: a TOML file in, a validated :class:`Card` out.

A card has three required sections and one optional one::

    [architecture]   name = "cos-net" (a key of nnft.priors.REGISTRY) + its hyperparameters
    [sampling]       n_samples, seed = 0, chunk_size = 65536, n_batches = 64,
                     memory_limit = "2GiB" (optional: an upper bound on a step's memory)
    [correlators]    points (a list of d-vectors), orders = [2, 4], connected = true,
                     estimator = "auto" | "direct" | "readout" | "neuron" (nnft.readout)
    [scan]           widths = [2, 4, 8]   (optional: run the card at each width)

The hyperparameters allowed in ``[architecture]`` are the constructor fields of
the prior's dataclass (``dataclasses.fields(prior_class(name))``), so a new
architecture needs no change here; the prior's own constructor validates the
values. Every bad entry raises one :class:`~nnft._validate.ConfigError` whose
message names the key, the bad value and what is allowed, e.g.
``architecture.width: got -3; must be an integer >= 1``.

The optional sections ``[interaction]``, ``[mcmc]`` and ``[training]`` are parsed
in :mod:`nnft.app.sections`. New sections are added as one parser in
:data:`SECTIONS` plus the :class:`Card` fields it fills.
"""

from __future__ import annotations

import collections.abc
import copy
import dataclasses
import math
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from nnft import _validate as v
from nnft._validate import ConfigError, did_you_mean
from nnft.app import sections
from nnft.engine.memory import parse_size
from nnft.priors import REGISTRY, Prior, prior_class
from nnft.readout import choose

try:  # python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - python 3.10
    import tomli as tomllib

#: The most points a card may ask for, by its highest order (one table for cards and the
#: API: :data:`nnft._validate.MAX_POINTS`).
MAX_POINTS = v.MAX_POINTS
ORDERS = tuple(MAX_POINTS)
DEFAULT_ORDERS = (2, 4)
MIN_SAMPLES = 64


@dataclasses.dataclass(frozen=True, eq=False)
class Card:
    """A validated model card.

    ``architecture`` holds the card's ``[architecture]`` table (``name`` included,
    lists as lists); ``points`` is a read-only ``(P, d)`` float64 array; ``widths``
    is the sorted width scan or None; ``raw`` is the parsed TOML as it was read.
    """

    architecture: dict
    n_samples: int
    seed: int
    chunk_size: int
    n_batches: int
    points: np.ndarray
    orders: tuple[int, ...]
    connected: bool
    widths: tuple[int, ...] | None
    source: str
    raw: dict = dataclasses.field(repr=False)
    #: validated ``[interaction]`` / ``[mcmc]`` / ``[training]`` sections (None when absent),
    #: parsed in nnft.app.sections: an Interaction, an MCMCConfig, a TrainingSection
    interaction: typing.Any = None
    mcmc: typing.Any = None
    training: typing.Any = None
    #: ``[sampling] memory_limit`` in bytes (None: the engine's default budget)
    memory_limit: int | None = None
    #: ``[correlators] estimator`` as written (default ``direct``; ``auto``: the strongest valid one,
    #: :func:`nnft.readout.choose`)
    estimator: str = "direct"

    @property
    def name(self) -> str:
        """The architecture's card name, e.g. ``"cos-net"``."""
        return self.architecture["name"]

    @property
    def max_order(self) -> int:
        """The highest order measured (moments are accumulated up to it)."""
        return max(self.orders)

    def prior(self, width: int | None = None) -> Prior:
        """The card's prior; with ``width``, the same architecture at that width."""
        hp = {k: val for k, val in self.architecture.items() if k != "name"}
        if width is not None:
            hp["width"] = width
        return _build_prior(self.name, hp)

    def to_dict(self) -> dict:
        """The validated card as plain TOML-like data (defaults filled in)."""
        out = {
            "architecture": copy.deepcopy(self.architecture),
            "sampling": {"n_samples": self.n_samples, "seed": self.seed,
                         "chunk_size": self.chunk_size, "n_batches": self.n_batches},
            "correlators": {"points": self.points.tolist(), "orders": list(self.orders),
                            "connected": self.connected, "estimator": self.estimator},
        }
        if self.memory_limit is not None:
            out["sampling"]["memory_limit"] = self.memory_limit
        if self.widths is not None:
            out["scan"] = {"widths": list(self.widths)}
        for section in ("interaction", "mcmc", "training"):
            if section in self.raw:
                out[section] = copy.deepcopy(self.raw[section])
        return out


# -- entry points ---------------------------------------------------------------------
def load_card(path, overrides=()) -> Card:
    """Read and validate the card at ``path``; every problem is one ConfigError line
    that starts with the path. ``overrides``: ``"section.key=value"`` strings (the command
    line's ``--set``; values in TOML syntax, bare words as strings) applied before the
    card is validated."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the card ({err.strerror or err})") from err
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a UTF-8 text file (byte {err.start}); a card is "
                          "TOML text") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML: {err}") from None
    for text in overrides:
        apply_override(raw, text)
    try:
        return parse_card(raw, source=str(path))
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def parse_card(data: Mapping, source: str = "<dict>") -> Card:
    """Validate parsed card data (a dict of sections) into a :class:`Card`."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"card: got {data!r}; must be a table of sections "
                          f"({', '.join(SECTIONS)})")
    for key, value in data.items():
        if key not in SECTIONS:
            what = f"section [{key}]" if isinstance(value, Mapping) else f"top-level key {key!r}"
            raise ConfigError(f"card: unknown {what}; allowed sections: "
                              f"{', '.join(SECTIONS)}{did_you_mean(key, SECTIONS)}")
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: got {value!r}; must be a table (a [{key}] section)")
    missing = [f"{section}.{key}" for section, keys in REQUIRED.items() for key in keys
               if key not in data.get(section, {})]
    if missing:
        raise ConfigError(f"card: missing required field(s) {', '.join(missing)}")

    fields: dict = {"source": str(source), "raw": copy.deepcopy(dict(data))}
    for section, parse in SECTIONS.items():
        table = data.get(section)
        fields.update(parse(None if table is None else dict(table), fields))
    sections.check_estimator(fields)
    return Card(**{k: val for k, val in fields.items() if not k.startswith("_")})


def apply_override(raw: dict, text: str) -> None:
    """Set ``section.key = value`` in parsed card data from ``"section.key=value"``.

    The value is read as TOML (``3``, ``1e6``, ``true``, ``[2, 4]``, ``"x"``); a bare word
    that is not TOML is a string (``architecture.name=cos-net``). The card's validation
    then checks it like any other entry.
    """
    name, sep, value = str(text).partition("=")
    keys = name.strip().split(".")
    if not sep or len(keys) != 2 or not all(keys):
        raise ConfigError(f"--set: got {text!r}; must be SECTION.KEY=VALUE, e.g. "
                          "sampling.seed=3")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    section, key = keys
    table = raw.setdefault(section, {})
    if not isinstance(table, dict):
        raise ConfigError(f"--set {name}: {section} is not a table in the card")
    table[key] = parsed


# -- sections ---------------------------------------------------------------------------
def _architecture(table: dict, card: dict) -> dict:
    name = table["name"]
    v.require(isinstance(name, str), "architecture.name", name,
              "must be a string; allowed values: " + ", ".join(REGISTRY))
    try:
        cls = prior_class(name)
    except ImportError as err:
        raise ConfigError(f"architecture.name: got {name!r}; its module cannot be imported "
                          f"({err})") from err
    init = [f.name for f in dataclasses.fields(cls) if f.init]
    _known_keys("architecture", table, ["name", *init])
    hints = _type_hints(cls)
    architecture = {"name": name}
    for key, value in table.items():
        if key != "name":
            architecture[key] = _check_type(f"architecture.{key}", value, hints.get(key))
    prior = _build_prior(name, {k: val for k, val in architecture.items() if k != "name"})
    return {"architecture": architecture, "_prior": prior}


def _sampling(table: dict, card: dict) -> dict:
    _known_keys("sampling", table, ["n_samples", "seed", "chunk_size", "n_batches",
                                    "memory_limit"])
    n_batches = v.positive_int("sampling.n_batches", table.get("n_batches", 64), minimum=2)
    n_samples = table["n_samples"]
    least = max(MIN_SAMPLES, n_batches)
    v.require(_is_int(n_samples) and n_samples >= least, "sampling.n_samples", n_samples,
              f"must be an integer >= {least}"
              + (f" (sampling.n_batches = {n_batches})" if n_batches > MIN_SAMPLES else ""))
    return {
        "n_samples": n_samples,
        "seed": v.positive_int("sampling.seed", table.get("seed", 0), minimum=0),
        "chunk_size": v.positive_int("sampling.chunk_size", table.get("chunk_size", 65536)),
        "n_batches": n_batches,
        "memory_limit": (None if "memory_limit" not in table
                         else parse_size("sampling.memory_limit", table["memory_limit"])),
    }


def _correlators(table: dict, card: dict) -> dict:
    _known_keys("correlators", table, ["points", "orders", "connected", "estimator"])
    d = card["_prior"].input_dim
    points = _points(table["points"], d)

    orders = table.get("orders", list(DEFAULT_ORDERS))
    v.require(isinstance(orders, list) and len(orders) > 0, "correlators.orders", orders,
              f"must be a non-empty list of integers from {ORDERS[0]} to {ORDERS[-1]}")
    for i, order in enumerate(orders):
        v.require(_is_int(order) and order in ORDERS, f"correlators.orders[{i}]", order,
                  f"must be an integer from {ORDERS[0]} to {ORDERS[-1]}")
    orders = tuple(sorted(set(orders)))
    top = max(orders)
    v.points_for_order("correlators.points", len(points), top, "max(correlators.orders)")

    connected = table.get("connected", True)
    v.require(isinstance(connected, bool), "correlators.connected", connected,
              "must be true or false")
    estimator = table.get("estimator", "direct")
    choose(card["_prior"], estimator, "correlators.estimator")
    return {"points": points, "orders": orders, "connected": connected,
            "estimator": estimator}


def _scan(table: dict | None, card: dict) -> dict:
    if table is None:
        return {"widths": None}
    _known_keys("scan", table, ["widths"])
    if "widths" not in table:
        raise ConfigError("card: missing required field(s) scan.widths")
    widths = table["widths"]
    v.require(isinstance(widths, list), "scan.widths", widths,
              "must be a list of at least 2 distinct integers >= 1")
    for i, w in enumerate(widths):
        v.positive_int(f"scan.widths[{i}]", w)
    v.require(len(set(widths)) == len(widths) and len(widths) >= 2, "scan.widths", widths,
              "must be at least 2 distinct integers >= 1 (no repeats)")
    architecture = card["architecture"]
    init = {f.name for f in dataclasses.fields(type(card["_prior"])) if f.init}
    v.require("width" in init, "scan.widths", widths,
              f"architecture {architecture['name']!r} has no width hyperparameter to scan")
    hp = {k: val for k, val in architecture.items() if k != "name"}
    for w in widths:
        try:
            _build_prior(architecture["name"], {**hp, "width": w})
        except ConfigError as err:
            raise ConfigError(f"scan.widths: at width {w}: {err}") from None
    return {"widths": tuple(sorted(widths))}


def _optional(section: str, parse_section):
    """An optional section: ``{section: None}`` when absent, else the parsed section."""

    def parse(table: dict | None, card: dict) -> dict:
        return {section: None if table is None else parse_section(table, card)}

    parse.__name__ = f"_{section}"
    return parse


#: section name -> parser ``(table or None when absent, fields so far) -> Card fields``,
#: run in this order; keys starting with "_" are shared with later parsers, not stored.
SECTIONS: dict[str, Callable[[dict, dict], dict]] = {
    "architecture": _architecture,
    "sampling": _sampling,
    "correlators": _correlators,
    "scan": _scan,
    "interaction": _optional("interaction", sections.parse_interaction_section),
    "mcmc": _optional("mcmc", sections.parse_mcmc_section),
    "training": _optional("training", sections.parse_training_section),
}
#: required keys of the required sections
REQUIRED = {"architecture": ("name",), "sampling": ("n_samples",), "correlators": ("points",)}


# -- helpers ----------------------------------------------------------------------------
def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _known_keys(section: str, table: dict, allowed: list[str]) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{section}.{key}: unknown key; allowed keys in [{section}]: "
                              f"{', '.join(allowed)}{did_you_mean(key, allowed)}")


def _build_prior(name: str, hyperparameters: dict) -> Prior:
    """The prior ``name``; its constructor's errors come back prefixed ``architecture.``."""
    cls = prior_class(name)
    hp = {k: tuple(val) if isinstance(val, list) else val for k, val in hyperparameters.items()}
    try:
        return cls(**hp)
    except ConfigError as err:
        msg = str(err)
        raise ConfigError(msg if msg.startswith("architecture") else f"architecture.{msg}") \
            from None
    except (TypeError, ValueError) as err:
        raise ConfigError(f"architecture: {name} rejected {hp}: {err}") from None


def _type_hints(cls) -> dict:
    try:
        return typing.get_type_hints(cls)
    except (NameError, TypeError, AttributeError):  # unresolvable: the constructor checks
        return {}


_DESCRIBE = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
             list: "a list"}


def _accepted(annotation) -> tuple[type, ...] | None:
    """The TOML value types an annotation admits, or None when it cannot be told."""
    if annotation is None:
        return None
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        members = typing.get_args(annotation)
    elif origin is typing.Literal:
        members = tuple(type(a) for a in typing.get_args(annotation))
    else:
        members = (annotation,)
    out: list[type] = []
    for m in members:
        base = typing.get_origin(m) or m
        if m is type(None) or base is collections.abc.Callable:
            continue  # no TOML value is None or a callable
        if m in (bool, int, float, str):
            out.append(m)
        elif base in (list, tuple, collections.abc.Sequence):
            out.append(list)
        else:
            return None
    return tuple(dict.fromkeys(out)) or None


def _check_type(field: str, value, annotation):
    """``value`` if its type fits ``annotation`` (an int for a float field becomes a float)."""
    accepted = _accepted(annotation)
    if accepted is None:
        return value
    fits = {bool: lambda x: isinstance(x, bool), int: _is_int, float: _is_real,
            str: lambda x: isinstance(x, str), list: lambda x: isinstance(x, list)}
    v.require(any(fits[t](value) for t in accepted), field, value,
              "must be " + " or ".join(_DESCRIBE[t] for t in accepted))
    if float in accepted and int not in accepted and _is_int(value):
        return float(value)
    return value


def _points(points, d: int) -> np.ndarray:
    """``points``: a non-empty list of d-vectors (numbers too when d = 1) -> ``(P, d)``."""
    shape = "numbers or 1-vectors" if d == 1 else f"{d}-vectors"
    v.require(isinstance(points, list) and len(points) > 0, "correlators.points", points,
              f"must be a non-empty list of {shape} (architecture.d = {d})")
    rows = []
    for i, p in enumerate(points):
        if d == 1 and _is_real(p):
            p = [p]
        v.require(isinstance(p, list) and len(p) == d and all(_is_real(x) for x in p),
                  f"correlators.points[{i}]", p,
                  ("must be a number or a list of 1 number" if d == 1 else
                   f"must be a list of {d} numbers") + f" (architecture.d = {d})")
        v.require(all(math.isfinite(x) for x in p), f"correlators.points[{i}]", p,
                  "must be finite numbers")
        rows.append([float(x) for x in p])
    arr = np.array(rows, dtype=np.float64)
    arr.flags.writeable = False
    return arr
