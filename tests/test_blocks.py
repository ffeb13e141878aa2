"""nnft.engine.blocks: resumable blocks of work (the process pool is covered by test_sgd_phases)."""

import numpy as np
import pytest

from nnft._validate import RunInterrupted
from nnft.engine.blocks import run_blocks

CALLS = []


def _square(x):
    CALLS.append(x)
    return {"x": np.asarray(x) ** 2}


def test_blocks_are_saved_skipped_on_resume_and_stop_after(tmp_path):
    args = [(k,) for k in range(5)]
    paths = [tmp_path / f"b{k}.npz" for k in range(5)]
    CALLS.clear()
    with pytest.raises(RunInterrupted, match="2 of 5 blocks"):
        run_blocks(_square, args, paths, stop_after=2)
    assert CALLS == [0, 1] and [p.exists() for p in paths] == [True, True] + [False] * 3
    out = run_blocks(_square, args, paths, resume=True)
    assert CALLS == [0, 1, 2, 3, 4]  # the finished blocks were loaded, not rerun
    assert [int(r["x"]) for r in out] == [0, 1, 4, 9, 16]
    out = run_blocks(_square, args, paths)  # without resume everything runs again
    assert CALLS[5:] == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="paths"):
        run_blocks(_square, args, paths[:3])
