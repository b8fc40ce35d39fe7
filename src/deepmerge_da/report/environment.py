"""The environment a run was made in: package versions, Python, CPU, threads, the code's git commit.

Floating-point results of training depend on it (BLAS kernels, thread counts, the CPU's vector units), so every
results/ tree carries one stamp (``results/environment.json``, rule ``environment``) and the report shows it.
Torch-free on purpose: the stamp job should start in a second.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from deepmerge_da.io.atomic import write_text_atomic

# The distributions whose versions can change a number in a table (and the workflow engine that ran them).
PACKAGES = ("deepmerge-da", "torch", "torchvision", "numpy", "scipy", "h5py", "astropy", "galsim", "pillow",
            "scikit-learn", "matplotlib", "pandas", "snakemake", "snakemake-executor-plugin-slurm")
# Variables that set how many threads the numerical libraries use.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE")


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit(repo: str | os.PathLike = ".") -> str | None:
    """The checkout's commit, with ``-dirty`` when tracked code differs from it (None outside git)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "src", "workflow",
                                "Snakefile", "config"], cwd=repo, capture_output=True, text=True, timeout=10,
                               check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def environment_stamp(train_threads: int | None = None, repo: str | os.PathLike = ".") -> dict:
    """What made a results/ tree: code commit, packages, Python, platform, CPU and thread settings."""
    return {
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(repo),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "train_threads_per_job": train_threads,
        "thread_variables": {k: os.environ[k] for k in THREAD_VARIABLES if k in os.environ},
        "packages": package_versions(),
    }


def write_environment_stamp(path: str | os.PathLike, train_threads: int | None = None) -> dict:
    stamp = environment_stamp(train_threads)
    write_text_atomic(path, json.dumps(stamp, indent=2) + "\n")
    return stamp

