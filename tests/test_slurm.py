"""The tiny .test workflow through profiles/slurm on a real SLURM (one node on localhost, set up by
tests/slurm_cluster.py), then the same workflow run locally: every job must have gone through the scheduler,
training jobs must have been given a GPU, and both runs must produce the same data and metrics.

Needs root and apt-get (or SLURM + munge already installed); skipped otherwise. See docs/cluster.md.
"""
import json
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np
import pytest

from helpers import copy_workflow, job_stats, snakemake
from slurm_cluster import ClusterUnavailable, SlurmCluster

# The tiny config, cut to two sim2sim runs: every kind of rule, few jobs.
TEST_CONFIG = (".test/config/config.yaml", ".test/config/small.yaml")
LOCAL_RULES = {"all", "table", "selection", "environment", "figure_examples", "figure_summary",
               "figure_training_curves"}
SLURM_RUN_LIMIT_S = 360  # the tiny DAG through SLURM takes about 200 s on 2 cores (5 levels x the plugin's polls)
NEEDS_MEMORY_MB = 4000  # the largest mem_mb of a rule (synthesize, prepare, train)
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster():
    c = SlurmCluster(gpus=1)
    if c.memory_mb < NEEDS_MEMORY_MB:
        pytest.skip(f"the rules ask SLURM for {NEEDS_MEMORY_MB} MB a job; this machine offers {c.memory_mb} MB")
    try:
        c.start()
    except ClusterUnavailable as exc:
        pytest.skip(f"no SLURM test cluster: {exc}")
    try:
        yield c
    finally:
        c.stop()  # scancel every job, then stop exactly the daemons it started


def fresh_copy(dest):
    dest.mkdir(parents=True)
    return copy_workflow(dest)  # Snakefile, workflow/, config/, envs/, profiles/, .test/


def read_prepared(path):
    with h5py.File(path) as f:
        return {key: f[key][:] for key in ("images", "labels", "split")}


def test_tiny_workflow_on_slurm_matches_local(cluster, tmp_path):
    slurm_dir, local_dir = fresh_copy(tmp_path / "slurm"), fresh_copy(tmp_path / "local")
    # The local reference run goes on beside the SLURM run, which mostly waits for the plugin's polls.
    with ThreadPoolExecutor(1) as pool:
        local_run = pool.submit(snakemake, local_dir, "--configfile", *TEST_CONFIG)
        # What a user sets for her cluster: the partition (profiles/slurm reads SLURM_PARTITION). The other
        # two options only make the test quicker / inspectable: poll SLURM 2 s after submitting (default 40 s),
        # and keep the SLURM logs of successful jobs.
        env = dict(cluster.env, SLURM_PARTITION=cluster.partition)
        cmd = ["timeout", "-k", "30", str(SLURM_RUN_LIMIT_S), sys.executable, "-m", "snakemake",
               "--profile", str(slurm_dir / "profiles/slurm"), "--configfile", *TEST_CONFIG,
               "--slurm-init-seconds-before-status-checks", "2", "--slurm-keep-successful-logs"]
        started = time.monotonic()
        run = subprocess.run(cmd, cwd=slurm_dir, env=env, capture_output=True, text=True)
        cluster_seconds = time.monotonic() - started
        local = local_run.result()
    log = run.stdout + run.stderr
    submitted = SUBMITTED.findall(log)
    print(f"SLURM part: {cluster_seconds:.1f} s, exit {run.returncode}; SLURM job ids: "
          + ", ".join(f"{slurm_id} ({path.split('/slurm_logs/')[-1].split('/')[0]})"
                      for _, slurm_id, path in submitted))
    assert run.returncode == 0, f"snakemake on SLURM failed (exit {run.returncode}):\n{log[-5000:]}"
    assert local.returncode == 0, f"local snakemake failed:\n{local.stderr[-5000:]}"

    # Every job but the workflow's local rules (`all`, tables and quick plots: seconds of work) went through
    # sbatch, once, and completed in SLURM.
    expected = {rule: n for rule, n in job_stats(log).items() if rule not in LOCAL_RULES}
    assert {"prepare", "train", "figure_tsne", "figure_gradcam"} <= set(expected), expected
    assert set(job_stats(log)) >= LOCAL_RULES
    assert any(rule.startswith("synthesize") for rule in expected), expected
    by_rule: dict[str, list[str]] = {}
    for _, slurm_id, path in submitted:
        rule = re.search(r"/slurm_logs/rule_([^/]+)/", path).group(1)
        by_rule.setdefault(rule, []).append(slurm_id)
        assert Path(path).is_relative_to(slurm_dir / ".snakemake/slurm_logs") and Path(path).exists(), path
    assert {rule: len(ids) for rule, ids in by_rule.items()} == expected, (by_rule, expected)
    for _, slurm_id, _ in submitted:
        assert "JobState=COMPLETED" in cluster.show_job(slurm_id), cluster.show_job(slurm_id)

    # Training jobs, and only they, were allocated the node's GPU, and their tasks saw CUDA_VISIBLE_DEVICES.
    gpu_env = cluster.gpu_env_by_job()
    for rule, ids in by_rule.items():
        for slurm_id in ids:
            info = cluster.show_job(slurm_id)
            if rule == "train":
                assert "JOB_GRES=gpu:1" in info, info
                assert gpu_env.get(slurm_id) == "0", (slurm_id, gpu_env)
            else:
                assert "JOB_GRES=(null)" in info, info
                assert gpu_env.get(slurm_id) == "unset", (slurm_id, gpu_env)

    # The local run: identical prepared data and identical metrics (CPU training is deterministic).
    for domain in ("source", "target"):
        on_slurm = read_prepared(slurm_dir / f"results/data/sim2sim/{domain}.h5")
        at_home = read_prepared(local_dir / f"results/data/sim2sim/{domain}.h5")
        for key in on_slurm:
            assert np.array_equal(on_slurm[key], at_home[key]), f"{domain}.h5 {key} differ"
    runs = sorted(p.relative_to(slurm_dir) for p in (slurm_dir / "results/runs").rglob("metrics.json"))
    assert len(runs) == expected["train"]  # each training job also writes its run's metrics.json
    for rel in runs:
        assert json.loads((slurm_dir / rel).read_text()) == json.loads((local_dir / rel).read_text()), rel
