"""Writing files so that a reader never sees half of one: write a temporary name, then rename.

Temporary files are ``.<name>.<random>.part`` beside the destination, so a run killed mid-write leaves
only names that no rule reads (and that the fetcher removes at start).  They are created with mode 0o666 less the
umask, as ``open()`` creates files (:func:`mkstemp_beside`), so the renamed file is as readable as any other the
process writes (``tempfile.mkstemp`` would make every output 0o600).
"""
from __future__ import annotations

import os
import secrets
from contextlib import contextmanager, suppress
from pathlib import Path

PART_SUFFIX = ".part"
_CREATE_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def mkstemp_beside(path: str | os.PathLike) -> tuple[int, str]:
    """Create a new temporary file ``.<name>.<random>.part`` beside ``path``; return its open descriptor and name.

    Like ``tempfile.mkstemp`` (exclusive creation, never follows a link), but with mode 0o666: the kernel applies
    the umask (or the directory's default ACL) at creation, as for ``open()``.  The umask is not read: reading it
    means setting it, and it is process-wide, so a file another thread creates meanwhile would get the wrong mode.
    """
    path = Path(path)
    for _ in range(100):
        name = str(path.parent / f".{path.name}.{secrets.token_hex(4)}{PART_SUFFIX}")
        try:
            return os.open(name, _CREATE_FLAGS, 0o666), name
        except FileExistsError:
            continue
    raise FileExistsError(f"no unused temporary name for {path} after 100 tries")


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    name = None
    try:
        # the name is bound as soon as the file exists, so an interrupt (Ctrl-C) anywhere after that
        # still removes it
        fd, name = mkstemp_beside(path)
        os.close(fd)
        yield Path(name)
        os.replace(name, path)
    finally:
        if name is not None:
            with suppress(FileNotFoundError):
                os.unlink(name)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
