"""Logging for workflow rules: everything a step says (log records, warnings, progress bars, tracebacks)
goes to the rule's log file, so that ``logs/<rule>/...`` tells what happened."""
from __future__ import annotations

import contextlib
import logging
import traceback
from pathlib import Path


@contextlib.contextmanager
def rule_logging(path: str | None, level: int = logging.INFO):
    """Send logging and stderr to ``path`` for the duration of the block (no-op when ``path`` is None)."""
    if not path:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", buffering=1) as stream, contextlib.redirect_stderr(stream):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(level)
        logging.captureWarnings(True)
        try:
            yield
        except BaseException:
            traceback.print_exc(file=stream)
            raise
        finally:
            root.removeHandler(handler)
