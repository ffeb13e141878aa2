"""What every benchmark records next to its numbers: when, where, with what."""

from __future__ import annotations

import datetime
import os
import platform
import sys

import jax
import numpy as np


def metadata() -> dict:
    dev = jax.devices()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "jax": jax.__version__, "numpy": np.__version__,
        "python": platform.python_version(), "backend": jax.default_backend(),
        "device_kind": dev[0].device_kind, "device_count": len(dev),
        "cpu_count": os.cpu_count(), "platform": platform.platform(),
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "command": " ".join(sys.argv),
    }
