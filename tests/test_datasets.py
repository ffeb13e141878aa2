"""The offline data sets: the IDX reader on files written here, digits and auto-mpg shapes
and standardisation (exact, deterministic checks)."""

import gzip

import numpy as np
import pytest

from nnft import datasets
from nnft._validate import ConfigError


def _write_idx(path, array, code=0x08, compress=False):
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    body = header + array.astype(datasets.IDX_DTYPES[code]).tobytes()
    (gzip.open if compress else open)(path, "wb").write(body)


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("code", [0x08, 0x0C, 0x0D])
def test_idx_round_trip(tmp_path, code, compress):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 200, size=(5, 3, 4)).astype(np.float64)
    path = tmp_path / ("a.idx" + (".gz" if compress else ""))
    _write_idx(path, a, code, compress)
    back = datasets.read_idx(path)
    assert back.shape == (5, 3, 4)
    np.testing.assert_array_equal(back, a)


def test_idx_dataset_directory(tmp_path):
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, size=(7, 4, 4))
    labels = rng.integers(0, 10, size=7)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", imgs, compress=True)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels, compress=True)
    s = datasets.idx_dataset(tmp_path, "test")
    np.testing.assert_allclose(s.x, imgs.reshape(7, 16) / 255.0)
    np.testing.assert_array_equal(s.y, labels)
    with pytest.raises(ConfigError, match="train-images"):
        datasets.idx_dataset(tmp_path, "train")
    with pytest.raises(ConfigError, match="split"):
        datasets.idx_dataset(tmp_path, "validation")


def test_idx_bad_files(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ConfigError, match="IDX file"):
        datasets.read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(bytes([0, 0, 8, 1]) + np.asarray([10], ">u4").tobytes() + b"\x00" * 3)
    with pytest.raises(ConfigError, match="must hold 10 values"):
        datasets.read_idx(short)
    with pytest.raises(ConfigError, match="existing IDX"):
        datasets.read_idx(tmp_path / "missing")


def test_mnist_needs_its_directory(monkeypatch):
    monkeypatch.delenv("NNFT_MNIST_DIR", raising=False)
    with pytest.raises(ConfigError, match="NNFT_MNIST_DIR"):
        datasets.mnist()


def test_digits():
    pytest.importorskip("sklearn")
    s = datasets.digits()
    assert s.x.shape == (1797, 64) and s.x.min() == 0.0 and s.x.max() == 1.0
    np.testing.assert_array_equal(s.y[:10], np.arange(10))


def test_auto_mpg():
    pytest.importorskip("vega_datasets")
    tr, te = datasets.auto_mpg(seed=0)
    assert tr.x.shape == (314, 9) and te.x.shape == (78, 9)
    np.testing.assert_allclose(tr.x.mean(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(tr.x.std(0), 1.0, atol=1e-12)
    assert all(len(np.unique(tr.x[:, j])) == 2 for j in range(6, 9))  # origin one-hot
    assert abs(tr.y.mean()) < 1e-12 and abs(tr.y.std() - 1) < 1e-12
    tr2, _ = datasets.auto_mpg(seed=0)
    np.testing.assert_array_equal(tr.x, tr2.x)
