"""Writing files so that a reader never sees half of one: write a temporary name, then rename.

Temporary files are ``.<name>.<random>.part`` beside the destination, so a run killed mid-write leaves
only names that no rule reads (and that the fetcher removes at start).
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

PART_SUFFIX = ".part"


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    name = None
    try:
        # the name is bound as soon as the file exists, so an interrupt (Ctrl-C) anywhere after that
        # still removes it
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=PART_SUFFIX, dir=path.parent)
        os.close(fd)
        yield Path(name)
        os.replace(name, path)
    finally:
        if name is not None:
            try:
                os.unlink(name)
            except FileNotFoundError:
                pass


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
