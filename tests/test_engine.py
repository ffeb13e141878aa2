"""The one engine: driver, checkpoint format, file guarantees, memory budget."""

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nnft
from nnft._validate import ConfigError, RunInterrupted
from nnft.engine import Draws, Estimator, Source, drive
from nnft.engine import checkpoint as ckpt
from nnft.engine.files import (
    TMP_SUFFIX,
    OutputLocked,
    atomic_write_bytes,
    clean_orphans,
    output_lock,
)
from nnft.engine.memory import fit_chunk, parse_size, working_set


def _toy_source(n_steps=7):
    """A random walk: state = position; draws = the position (2 points), 64 batches."""

    def init(key):
        return {"x": jnp.zeros((64, 2)), "t": jnp.zeros((), jnp.int32)}

    def step(key, state, i):
        x = state["x"] + jax.random.normal(jax.random.fold_in(key, i), (64, 2))
        return {"x": x, "t": state["t"] + 1}, Draws(x[None])

    return Source(init, step, n_steps, {"toy": n_steps}, unit="steps")


def _sum_estimator():
    return Estimator(lambda: jnp.zeros(2), lambda acc, d, i: acc + d.fields.sum((0, 1)),
                     lambda acc: np.asarray(acc))


def test_stop_and_resume_equals_an_uninterrupted_run(tmp_path):
    full = drive(_toy_source(), _sum_estimator(), 3, progress=False)
    path = tmp_path / "ck.npz"
    with pytest.raises(RunInterrupted):
        drive(_toy_source(), _sum_estimator(), 3, checkpoint=path, stop_after=3, progress=False)
    assert ckpt.read_done(path) == 3
    resumed = drive(_toy_source(), _sum_estimator(), 3, checkpoint=path, resume=True,
                    progress=False)
    np.testing.assert_array_equal(resumed.result, full.result)
    np.testing.assert_array_equal(resumed.state["x"], full.state["x"])
    assert resumed.info.resumed_from == 3 and resumed.info.steps_run == 4


def test_resume_refuses_other_work_and_other_layouts(tmp_path):
    path = tmp_path / "ck.npz"
    drive(_toy_source(5), _sum_estimator(), 3, checkpoint=path, progress=False)
    with pytest.raises(ConfigError, match="different work"):
        drive(_toy_source(6), _sum_estimator(), 3, checkpoint=path, resume=True,
              progress=False)
    with pytest.raises(ConfigError, match="different work"):
        drive(_toy_source(5), _sum_estimator(), 4, checkpoint=path, resume=True,
              progress=False)  # another seed: the driver's fingerprint includes the key


def test_checkpoint_round_trip_with_typed_keys(tmp_path):
    tree = {"k": jax.random.split(jax.random.key(5), 3), "a": np.arange(4.0), "n": (np.int64(2),)}
    ckpt.save(tmp_path / "c.npz", tree, work="w", done=4, meta={"units": 10})
    back, done, meta = ckpt.load(tmp_path / "c.npz", tree, work="w")
    assert done == 4 and meta == {"units": 10}
    np.testing.assert_array_equal(jax.random.key_data(back["k"]), jax.random.key_data(tree["k"]))
    np.testing.assert_array_equal(back["a"], tree["a"])
    with pytest.raises(ConfigError, match="another layout"):
        ckpt.load(tmp_path / "c.npz", {"a": np.arange(4.0)}, work="w")
    with np.load(tmp_path / "c.npz", allow_pickle=False) as z:  # no pickles in the format
        assert int(z["__done__"]) == 4


def test_typed_keys_and_integer_seeds_give_the_same_ensemble():
    prior = nnft.CosNet(d=1, width=3)
    pts = [[0.0], [0.4]]
    a = nnft.run_ensemble(prior, pts, 64 * 20, seed=7, progress=False).correlators
    b = nnft.run_ensemble(prior, pts, 64 * 20, seed=jax.random.key(7), progress=False)
    np.testing.assert_array_equal(a.full[2].value, b.correlators.full[2].value)
    with pytest.raises(ConfigError, match="seed"):
        nnft.run_ensemble(prior, pts, 64 * 20, seed=-1, progress=False)


def test_files_get_the_umask_mode_and_orphans_are_cleaned(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
        assert stat.S_IMODE(os.stat(tmp_path / "a.bin").st_mode) == 0o644
        os.umask(0o077)
        atomic_write_bytes(tmp_path / "b.bin", b"x")
        assert stat.S_IMODE(os.stat(tmp_path / "b.bin").st_mode) == 0o600
    finally:
        os.umask(old)
    orphan = tmp_path / f".results.nc.123{TMP_SUFFIX}"
    orphan.write_bytes(b"half")
    assert clean_orphans(tmp_path) == [orphan] and not orphan.exists()


def test_a_locked_output_folder_is_refused(tmp_path):
    with output_lock(tmp_path):
        with pytest.raises(OutputLocked, match="in use by another nnft run"):
            with output_lock(tmp_path):
                pass
    with output_lock(tmp_path):  # released
        pass


_WRITER = textwrap.dedent("""
    import sys, numpy as np
    from nnft.engine import checkpoint as ckpt
    path, i = sys.argv[1], 0
    big = np.random.default_rng(0).normal(size=(500_000,))
    while True:
        i += 1
        ckpt.save(path, {"x": big + i}, work="w", done=i)
        print(i, flush=True)
""")


def test_kill_during_checkpoint_writes_leaves_a_loadable_checkpoint(tmp_path):
    """SIGKILL a process that rewrites a 4 MB checkpoint in a loop, at random moments:
    the file on disk always loads (old or new), and the orphan is cleaned on restart."""
    path = tmp_path / "ck.npz"
    like = {"x": np.zeros(500_000)}
    rng = np.random.default_rng(1)
    for _ in range(2):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)],
                                stdout=subprocess.PIPE, text=True)
        proc.stdout.readline()  # at least one checkpoint is complete
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        tree, done, _ = ckpt.load(path, like, work="w")
        assert done >= 1 and tree["x"][0] == pytest.approx(
            np.random.default_rng(0).normal(size=1)[0] + done)
        clean_orphans(tmp_path)
        assert [p.name for p in tmp_path.iterdir()] == ["ck.npz"]


def test_parse_size():
    assert parse_size("f", "2GiB") == 2 * 2**30
    assert parse_size("f", "512 MiB") == 512 * 2**20
    assert parse_size("f", "1.5GB") == 1_500_000_000
    assert parse_size("f", np.int64(1000)) == 1000
    for bad in ("lots", "-1GiB", "2 parsecs", 0, True):
        with pytest.raises(ConfigError, match="f: got"):
            parse_size("f", bad)


def test_memory_budget_lowers_the_chunk_and_not_the_result():
    """A budget below the working set at the requested chunk lowers it; numbers unchanged."""
    prior = nnft.make_prior("mlp", d=2, depth=2, width=32, activation="relu")
    pts = [[1.0, 0.0], [0.0, 1.0]]
    kw = {"seed": 2, "max_order": 4, "progress": False}
    big = nnft.run_ensemble(prior, pts, 64 * 32, chunk_size=64 * 32, **kw)
    small = nnft.run_ensemble(prior, pts, 64 * 32, chunk_size=64 * 32,
                              memory_limit=2**20, **kw)
    assert big.chunk_size == 64 * 32 and small.chunk_size < 64 * 32
    for o in (2, 4):
        np.testing.assert_allclose(small.correlators.connected[o].value,
                                   big.correlators.connected[o].value, rtol=1e-12, atol=1e-15)


def test_fit_chunk_scales_linearly():
    f = jax.jit(lambda x: jnp.tanh(x[:, :, None] * x[:, None, :]).sum())

    def compile_at(c):
        return f.lower(jax.ShapeDtypeStruct((c, 100), jnp.float32)).compile()

    need = working_set(compile_at(1024))
    chunk, compiled, lowered = fit_chunk(compile_at, 1024, 64, need // 3)
    assert lowered == 1024 and chunk % 64 == 0 and chunk <= 1024 // 3 + 64
    assert working_set(compiled) <= need // 3


_FREE_RUN = textwrap.dedent("""
    import sys, nnft
    prior = nnft.CosNet(d=1, width=6)
    nnft.run_ensemble(prior, [[0.0], [0.5]], 64 * 4000, seed=4, chunk_size=64 * 20,
                      checkpoint_dir=sys.argv[1], checkpoint_every=1, progress=False)
""")


def test_free_source_killed_mid_run_resumes_to_the_same_numbers(tmp_path):
    """kill -9 a free ensemble once its first checkpoints are on disk; resume in-process."""
    proc = subprocess.Popen([sys.executable, "-c", _FREE_RUN, str(tmp_path)])
    path = tmp_path / "checkpoint.npz"
    deadline = time.time() + 120
    while (ckpt.read_done(path) or 0) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = ckpt.read_done(path)
    assert done is not None and done < 200, "the run was not killed mid-way"
    prior = nnft.CosNet(d=1, width=6)
    kw = {"seed": 4, "chunk_size": 64 * 20, "progress": False}
    resumed = nnft.run_ensemble(prior, [[0.0], [0.5]], 64 * 4000, checkpoint_dir=tmp_path,
                                resume=True, **kw)
    assert resumed.info.resumed_from == done * 64 * 20
    fresh = nnft.run_ensemble(prior, [[0.0], [0.5]], 64 * 4000, **kw)
    for o in (2, 4):
        np.testing.assert_array_equal(resumed.correlators.connected[o].value,
                                      fresh.correlators.connected[o].value)
