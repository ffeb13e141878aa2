"""The engine: one driver for every source of field values (see :mod:`nnft.engine.drive`).

``drive.py`` the loop; ``checkpoint.py`` the one checkpoint format and fingerprint;
``files.py`` atomic, durable, readable files and the output-folder lock; ``mesh.py``
devices, processes and arrays back on the host; ``memory.py`` the step's memory budget;
``progress.py`` the progress bar; ``blocks.py`` grids of independent work in processes.
"""

from nnft.engine.drive import Draws, Estimator, Run, RunInfo, Source, as_key, drive

__all__ = ["Draws", "Estimator", "Run", "RunInfo", "Source", "as_key", "drive"]
