"""Pick a free GPU for a training job on a multi-GPU workstation.

Snakemake counts GPUs (``resources: gpu=1`` against ``--resources gpu=N``) but does not tell a job which
one it got. Each training process therefore claims one device itself: it takes an exclusive ``fcntl`` lock
on ``<lock_dir>/gpu<k>.lock`` for the first free k among the visible devices and keeps it until the process
ends (the kernel drops the lock even if the process is killed, so no stale claims survive a crash).
On a SLURM node the job sees only its own GPUs (``CUDA_VISIBLE_DEVICES``), so the first one is free.
"""
from __future__ import annotations

import fcntl
import os
import tempfile
import time
from pathlib import Path

_held: list = []  # lock files kept open for the life of the process


def default_lock_dir() -> Path:
    return Path(os.environ.get("DEEPMERGE_GPU_LOCK_DIR", Path(tempfile.gettempdir()) / "deepmerge-da-gpu-locks"))


def claim_device(n_devices: int, lock_dir: str | os.PathLike | None = None, wait_s: float = 0.0) -> int:
    """Return the index of a device no other process holds, and hold it; -1 if none is free.

    ``wait_s`` > 0 retries for that long before giving up.
    """
    lock_dir = Path(lock_dir) if lock_dir else default_lock_dir()
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    while True:
        for index in range(n_devices):
            # no `with`: the lock lasts as long as the file stays open (in _held, for the life of the process)
            handle = open(lock_dir / f"gpu{index}.lock", "a+")  # noqa: SIM115
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            _held.append(handle)
            return index
        if time.monotonic() >= deadline:
            return -1
        time.sleep(0.5)
