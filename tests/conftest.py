import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ("Snakefile", "workflow", "config", "envs", "profiles", ".test")
TEST_CONFIG = ".test/config/config.yaml"


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
    from deepmerge_da.io.hdf5 import ImageSet, write_image_set
    from deepmerge_da.data.preprocess import prepare_image_set

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


@pytest.fixture
def workflow_copy(tmp_path):
    return copy_workflow(tmp_path)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A copy of the workflow in which the whole grid of the tiny TEST_CONFIG has run, once per session (minutes):
    results/, logs/, benchmarks/ and Snakemake's metadata. Shared: a test may add files beside the workflow or
    delete intermediate ones (tests/test_workflow.py deletes one model.pt), never change a result."""
    workdir = copy_workflow(tmp_path_factory.mktemp("tiny"))
    dry = snakemake(workdir, "-n", "--configfile", TEST_CONFIG)
    assert dry.returncode == 0, dry.stderr[-3000:]
    run = snakemake(workdir, "--configfile", TEST_CONFIG, timeout=1200)
    assert run.returncode == 0, run.stderr[-5000:]
    return workdir
