"""Files a user can rely on: atomic and durable writes, readable modes, one run per folder.

Every file nnft writes (checkpoints, ``results.nc``, ``summary.json``, plots' data) goes
through :func:`atomic_write`: the bytes go to a temporary file in the same folder, are
``fsync``-ed, and the file is renamed over the target, so a crash or a kill leaves either
the old file or the new one, never half of one. The temporary file gets the mode an
ordinary ``open`` would give (``0o666`` less the umask), so collaborators can read the
results when the umask allows. A temporary file orphaned by a kill is removed by
:func:`clean_orphans` on the next start. A full disk is one line (:class:`DiskFull`).
:func:`output_lock` makes sure two runs cannot write into one folder at once.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

#: suffix of the temporary files (recognised by :func:`clean_orphans`)
TMP_SUFFIX = ".nnft-tmp"
LOCK_FILE = ".nnft.lock"


class DiskFull(OSError):
    """No space left while writing a file (the message names the file)."""


class OutputLocked(OSError):
    """Another run holds the output folder's lock."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """``write(tmp)`` fills a temporary file, which is fsync-ed and renamed onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")
    try:
        write(str(tmp))
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if _is_enospc(err):
            raise DiskFull(errno.ENOSPC, f"no space left on the device writing {path}") from None
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""

    def write(tmp):
        with open(tmp, "wb") as fh:
            fh.write(data)

    atomic_write(path, write)


def _is_enospc(err: BaseException) -> bool:
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            return True
        if "No space left on device" in str(err) or "errno = 28" in str(err):
            return True
        err = err.__cause__ or err.__context__
    return False


def clean_orphans(folder: str | os.PathLike) -> list[Path]:
    """Remove temporary files left in ``folder`` by a killed run; returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for tmp in folder.glob(f".*{TMP_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            removed.append(tmp)
    return removed


@contextlib.contextmanager
def output_lock(folder: str | os.PathLike) -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` (created if missing) for the duration.

    A second run on the same folder gets :class:`OutputLocked` at once (an advisory
    ``flock``: released by the kernel when the holder exits, even after ``kill -9``).
    Orphaned temporary files are cleaned up once the lock is held.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputLocked(errno.EBUSY, f"{folder} is in use by another nnft run "
                                            "(wait for it, or use another --out)") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        clean_orphans(folder)
        yield folder
    finally:
        os.close(fd)
