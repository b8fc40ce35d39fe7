"""The batch loop of the fetchers: many objects, a few at a time, and a manifest that always says what became of each.

:func:`run_batch` calls ``work(i)`` for each row index ``i`` to do, ``concurrency`` at a time in a thread pool, and
stores what it returns as row ``i``.  ``work`` keeps the failure of its object to its row -- a file system error
included: raised, it would end the whole batch, as any exception ``work`` raises does.  The rows are written as the
manifest CSV (atomic temp + rename) every ``manifest_every_s`` seconds and at the end whatever happens (success,
KeyboardInterrupt, SIGTERM, an unexpected error): the workers are stopped first (those in a request finish it), what
they finished is kept, and a row not done keeps the status it had before (``pending``).  SIGTERM stops the batch,
which then exits with status 128 + SIGTERM (:class:`Terminated`).  :func:`excess_failures` words the error of a
batch in which more objects failed than allowed.

The callers: :mod:`deepmerge_da.data.fetch` (SDSS cutouts) and :mod:`deepmerge_da.data.illustris_api` (the
Illustris API); each passes its row type (a dataclass with ``status`` and ``reason``), manifest columns and work.
"""
from __future__ import annotations

import concurrent.futures as cf
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from deepmerge_da.data.http import remove_stale_parts
from deepmerge_da.io.atomic import atomic_path


class Terminated(SystemExit):
    """A batch stopped by SIGTERM, its manifest written: exits with status 128 + SIGTERM."""

    def __init__(self):
        super().__init__(128 + signal.SIGTERM)


def _write_manifest(rows: Sequence, columns: Sequence[str], path: Path) -> None:
    with atomic_path(path) as tmp:
        pd.DataFrame([asdict(r) for r in rows], columns=columns).to_csv(tmp, index=False)


def run_batch(rows: list, todo: Sequence[int], work: Callable[[int], object], *, manifest_path: str | os.PathLike,
              columns: Sequence[str], concurrency: int, stop: threading.Event, manifest_every_s: float,
              progress: Mapping[str, object] | None, thread_name_prefix: str, handle_sigterm: bool = True,
              on_interrupt: Callable[[str], None] | None = None) -> None:
    """``rows[i] = work(i)`` for each ``i`` of ``todo``, ``concurrency`` at a time; see the module docstring.

    ``rows``: the manifest's rows (dataclass instances, written as ``columns`` to ``manifest_path``); ``stop``: set
    on SIGTERM and when the batch ends, for ``work`` to heed (the caller may clear it afterwards); ``progress``: the
    options of a tqdm bar over all rows (``desc``, ``unit``, ...), None for no bar; ``handle_sigterm``: install the
    SIGTERM handler (possible in the main thread only); ``on_interrupt(cause)``, cause ``"SIGTERM"`` or
    ``"KeyboardInterrupt"``, is called before the workers are stopped.  Once the manifest is written, raises
    :class:`Terminated` after SIGTERM and re-raises a KeyboardInterrupt.
    """
    manifest_path = Path(manifest_path)
    remove_stale_parts(manifest_path.parent, prefix=f".{manifest_path.name}.")  # left by a killed run
    bar = None
    if progress is not None:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(rows), initial=len(rows) - len(todo), **progress)

    # SIGTERM only sets a flag that the main loop polls: an exception raised by the handler could land
    # inside a manifest write and leave its temporary file behind
    old_handler = None
    installed = False
    terminated = threading.Event()
    if handle_sigterm and threading.current_thread() is threading.main_thread():
        def on_term(signum, frame):  # noqa: ARG001
            terminated.set()
            stop.set()

        try:
            old_handler = signal.signal(signal.SIGTERM, on_term)
            installed = True
        except (ValueError, OSError):
            installed = False

    pool = cf.ThreadPoolExecutor(max_workers=max(1, int(concurrency)), thread_name_prefix=thread_name_prefix)
    futures: dict[cf.Future, int] = {}
    interrupted: BaseException | None = None
    try:
        futures = {pool.submit(work, i): i for i in todo}
        pending = set(futures)
        last_write = time.monotonic()
        while pending and not terminated.is_set():
            done, pending = cf.wait(pending, timeout=0.2, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                rows[futures[fut]] = fut.result()
                if bar is not None:
                    bar.update(1)
            if time.monotonic() - last_write >= manifest_every_s:
                _write_manifest(rows, columns, manifest_path)
                last_write = time.monotonic()
    except KeyboardInterrupt as exc:
        interrupted = exc
    finally:
        # reached on success, interruption and unexpected errors alike: stop the workers (those in
        # a request finish it, bounded by their timeout), record what they finished, write the manifest
        if on_interrupt is not None and (interrupted is not None or terminated.is_set()):
            on_interrupt("SIGTERM" if terminated.is_set() else "KeyboardInterrupt")
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        for fut, i in futures.items():
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                rows[i] = fut.result()
        if bar is not None:
            bar.close()
        _write_manifest(rows, columns, manifest_path)
        if installed:
            signal.signal(signal.SIGTERM, old_handler)
    if terminated.is_set():
        raise Terminated()
    if interrupted is not None:
        raise interrupted


def excess_failures(rows: Sequence, *, max_fail_fraction: float, what: str, source: str,
                    manifest_path: str | os.PathLike) -> str | None:
    """The message when more than ``max_fail_fraction`` of ``rows`` failed (``what``: the objects, in words;
    ``source``: where they were downloaded from), else None."""
    failed = Counter(r.reason for r in rows if r.status == "failed")
    n_failed = failed.total()
    if not n_failed or n_failed / len(rows) <= max_fail_fraction:
        return None
    reasons = ", ".join(f"{k}: {v}" for k, v in failed.most_common(5))
    return (f"{n_failed} of {len(rows)} {what} ({n_failed / len(rows):.1%}) failed to download from {source}, more "
            f"than the allowed {max_fail_fraction:.1%} ({reasons}); see the manifest {manifest_path}")
