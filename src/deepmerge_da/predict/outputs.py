"""The CSVs :func:`deepmerge_da.predict.ensemble.predict` writes: the predictions and ``<out>.skipped.csv``."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from deepmerge_da.io.atomic import atomic_path

SKIPPED_COLUMNS = ["source", "id", "reason"]


def write_csv(df: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.9g")


def skipped_path(out_csv: str | os.PathLike) -> Path:
    """``<out>.skipped.csv`` beside the predictions CSV (``preds.csv`` -> ``preds.skipped.csv``)."""
    out = Path(out_csv)
    return out.with_name((out.name[:-4] if out.name.lower().endswith(".csv") else out.name) + ".skipped.csv")
