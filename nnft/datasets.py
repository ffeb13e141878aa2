"""Offline data sets for the studies: nothing here downloads.

- :func:`digits`: scikit-learn's 8x8 digits (shipped inside the scikit-learn wheel), pixels / 16,
  in file order (1797 x 64). Stands in for MNIST on a CPU.
- :func:`read_idx`: the IDX format of MNIST / Fashion-MNIST (big-endian magic
  ``0x0000 <dtype> <ndim>``, then ``ndim`` uint32 sizes, then the data), plain or gzipped.
- :func:`fashion_mnist` / :func:`mnist`: the four IDX files from a directory: Fashion-MNIST
  from Debian's ``dataset-fashion-mnist`` package (``apt install dataset-fashion-mnist``;
  ``dpkg -L dataset-fashion-mnist`` lists the files) or ``NNFT_FASHION_MNIST_DIR``;
  MNIST from ``NNFT_MNIST_DIR``.
- :func:`auto_mpg`: vega_datasets' ``cars.json`` (auto-mpg, the 392 complete rows), 9
  standardised features (cylinders, displacement, horsepower, weight, acceleration, year,
  origin one-hot) and standardised MPG, split 80/20 with a seeded permutation.

scikit-learn and vega_datasets are optional (the ``studies`` extra); a missing one is an
ImportError that says how to install it.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from nnft import _validate as v

#: IDX type codes -> numpy dtypes (big-endian)
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
#: where Debian's dataset-fashion-mnist package puts its files
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IDX_NAMES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


class Split(NamedTuple):
    """Inputs ``x (n, d)`` (float64) and targets ``y (n,)`` (int labels or float64)."""

    x: np.ndarray
    y: np.ndarray


def _need(module: str, package: str):
    try:
        return __import__(module)
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(f"this data set needs {package}: pip install {package} "
                          f"(or pip install -e '.[studies]')") from e


def digits() -> Split:
    """scikit-learn's 8x8 digits, ``x = pixels / 16`` (1797 x 64, file order), labels 0-9."""
    _need("sklearn", "scikit-learn")
    from sklearn.datasets import load_digits

    d = load_digits()
    return Split(np.asarray(d.data, np.float64) / 16.0, np.asarray(d.target, np.int64))


def read_idx(path) -> np.ndarray:
    """One IDX file (optionally ``.gz``) as a numpy array of its stored shape and type."""
    path = Path(path)
    v.require(path.is_file(), "path", str(path), "must be an existing IDX file")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    v.require(len(raw) >= 4 and raw[0] == 0 and raw[1] == 0 and raw[2] in IDX_DTYPES,
              "path", str(path), "must be an IDX file (magic 0x0000, a known type code, ndim)")
    dtype, ndim = np.dtype(IDX_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    v.require(len(raw) >= header, "path", str(path), "is truncated inside the IDX header")
    shape = tuple(int(s) for s in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    n = int(np.prod(shape, dtype=np.int64)) if ndim else 1
    v.require(len(raw) - header == n * dtype.itemsize, "path", str(path),
              f"must hold {n} values of {dtype} after the header for shape {shape} "
              f"(it has {len(raw) - header} bytes)")
    return np.frombuffer(raw, dtype, count=n, offset=header).reshape(shape).astype(
        dtype.newbyteorder("="))


def _find(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"),
                 stem.replace("-idx", ".idx") + ".gz"):
        if (directory / name).is_file():
            return directory / name
    hits = sorted(directory.rglob(stem + "*"))
    v.require(bool(hits), "directory", str(directory), f"must contain the IDX file {stem}[.gz]")
    return hits[0]


def idx_dataset(directory, split: str = "train") -> Split:
    """The ``split`` ("train" | "test") of an MNIST-format directory: images flattened and
    divided by 255, integer labels."""
    v.choice("split", split, tuple(IDX_NAMES))
    directory = Path(directory)
    v.require(directory.is_dir(), "directory", str(directory), "must be an existing directory")
    images, labels = (read_idx(_find(directory, s)) for s in IDX_NAMES[split])
    v.require(images.shape[0] == labels.shape[0], "directory", str(directory),
              f"has {images.shape[0]} images but {labels.shape[0]} labels in the {split} split")
    return Split(images.reshape(images.shape[0], -1).astype(np.float64) / 255.0,
                 labels.astype(np.int64))


def fashion_mnist(split: str = "train") -> Split:
    """Fashion-MNIST from ``NNFT_FASHION_MNIST_DIR`` or Debian's ``dataset-fashion-mnist``."""
    env = os.environ.get("NNFT_FASHION_MNIST_DIR")
    directory = Path(env) if env else DEBIAN_FASHION_MNIST
    v.require(directory.is_dir(), "NNFT_FASHION_MNIST_DIR", str(directory),
              "must name a directory with the Fashion-MNIST IDX files (or install Debian's "
              "dataset-fashion-mnist: apt install dataset-fashion-mnist)")
    return idx_dataset(directory, split)


def mnist(split: str = "train") -> Split:
    """MNIST from the directory ``NNFT_MNIST_DIR`` (the four IDX files)."""
    env = os.environ.get("NNFT_MNIST_DIR")
    v.require(bool(env), "NNFT_MNIST_DIR", env, "must be set to a directory with the MNIST "
              "IDX files (nothing is downloaded)")
    return idx_dataset(Path(env), split)


def fashion_mnist_available() -> bool:
    """Whether :func:`fashion_mnist` can find its files."""
    env = os.environ.get("NNFT_FASHION_MNIST_DIR")
    return (Path(env) if env else DEBIAN_FASHION_MNIST).is_dir()


def auto_mpg(seed: int = 0, test_fraction: float = 0.2) -> tuple[Split, Split]:
    """(train, test) of auto-mpg: 9 standardised features, standardised MPG; the split is a
    permutation from ``seed``; the standardisation uses the training rows' mean and sd."""
    _need("vega_datasets", "vega_datasets")
    from vega_datasets import data

    v.require(0 < test_fraction < 1, "test_fraction", test_fraction, "must be in (0, 1)")
    df = data.cars().dropna(subset=["Miles_per_Gallon", "Horsepower"])
    origins = ("USA", "Europe", "Japan")
    x = np.column_stack([df[c].to_numpy(np.float64) for c in (
        "Cylinders", "Displacement", "Horsepower", "Weight_in_lbs", "Acceleration")]
        + [df["Year"].dt.year.to_numpy(np.float64)
           if np.issubdtype(df["Year"].dtype, np.datetime64) else df["Year"].to_numpy(np.float64)]
        + [(df["Origin"] == o).to_numpy(np.float64) for o in origins])
    y = df["Miles_per_Gallon"].to_numpy(np.float64)
    perm = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    te, tr = perm[:n_test], perm[n_test:]
    mu, sd = x[tr].mean(0), x[tr].std(0)
    sd[sd == 0] = 1.0
    ym, ys = y[tr].mean(), y[tr].std()
    x = (x - mu) / sd
    y = (y - ym) / ys
    return Split(x[tr], y[tr]), Split(x[te], y[te])
