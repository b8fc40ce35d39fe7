"""What the tests share besides fixtures (those are in conftest.py): the repository's paths, running Snakemake
on a copy of the workflow, a toy prepared pair and the hyperparameters of short training runs on it.

pytest puts tests/ on ``sys.path`` (``pythonpath`` in pyproject.toml): ``from helpers import ...``.
"""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ("Snakefile", "workflow", "config", "envs", "profiles", ".test")
TEST_CONFIG = ".test/config/config.yaml"
# The local copy of real SDSS cutouts beside the checkout (shared/, not part of the project): tests that read it
# are skipped where it is absent.
REAL_SDSS = (REPO / ".." / "shared" / "data" / "sdss-galaxyzoo").resolve()
needs_real_sdss = pytest.mark.skipif(not (REAL_SDSS / "darg_mergers.fits").is_file(),
                                     reason=f"local SDSS cutout copy not found at {REAL_SDSS}")

# Hyperparameters (deepmerge_da.config.run_hyperparameters' keys) of the tests' short training runs.
TOY_HP = {"lr": 1e-3, "beta1": 0.7, "beta2": 0.8, "eps": 1e-8, "weight_decay": 1e-4, "cycle": 2, "patience": 5,
          "lambda_tl": 1.0, "lambda_w": 0.01, "lambda_b": 1.0, "lambda_em": 0.05, "dc_lr_mult": 0.5}


def copy_workflow(dest: Path) -> Path:
    """A copy of the workflow (not of results/) in which a test can run Snakemake."""
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name)
        else:
            shutil.copy(src, dest / name)
    return dest


def snakemake(workdir: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)


def job_stats(log: str) -> dict[str, int]:
    """The first `Job stats:` table Snakemake printed: {rule: count}."""
    lines = log[log.index("Job stats:"):].splitlines()[3:]
    stats = {}
    for line in lines:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        stats[parts[0]] = int(parts[1])
    return stats


def write_toy_pair(directory: Path, n: int = 60, source_noise: float = 0.0) -> dict[str, Path]:
    """A prepared source/target pair of ``n`` 75x75 images each: mergers carry a bright central square; the
    target adds unit Gaussian noise (the source ``source_noise``). Filters a, b, c."""
    from deepmerge_da.data.preprocess import prepare_image_set
    from deepmerge_da.io.hdf5 import ImageSet, write_image_set

    rng = np.random.default_rng(0)
    paths = {}
    for dom, noise in (("source", source_noise), ("target", 1.0)):
        labels = (np.arange(n) % 2).astype(np.int8)
        images = rng.normal(size=(n, 3, 75, 75)).astype(np.float32) * noise
        images[:, :, 30:45, 30:45] += labels[:, None, None, None] * 3.0
        raw = ImageSet(images, labels, np.arange(n).astype(str), {"filters": ["a", "b", "c"]})
        paths[dom] = directory / f"{dom}.h5"
        write_image_set(paths[dom], prepare_image_set(raw, filters=["a", "b", "c"], image_size=75, progress=False))
    return paths
