"""Partial reruns on the tiny .test DAG (local Snakemake): after one full run, a changed hyperparameter of one
method reruns only that method's training and evaluation and the table; a deleted model.pt, named as a
target (see below), reruns only its run's training and evaluation and the table. What would run is read
from Snakemake itself, two ways that must agree: the `plan` column of `--summary` (one row per output file)
and the `Job stats` of `-n`. (`--list-changes params` is no help: in snakemake 9.27 it lists outputs of
unchanged jobs too.)"""
from pathlib import Path

import pytest
import yaml

from conftest import job_stats, snakemake

TEST_CONFIG = ".test/config/config.yaml"
RUNS = "results/runs/sim2sim/deepmerge"

pytestmark = pytest.mark.slow


def planned_jobs(workdir: Path, configfile: str, *targets: str) -> set[tuple[str, str]]:
    """(rule, directory of its outputs) of every job that a run would execute, from `snakemake --summary`."""
    out = snakemake(workdir, *targets, "--summary", "--configfile", configfile)  # targets first: --configfile
                                                                                # takes several values
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [line.split("\t") for line in out.stdout.splitlines() if "\t" in line]
    header = rows[0]
    assert header[0] == "output_file" and {"rule", "plan"} <= set(header), header
    col = {name: header.index(name) for name in ("output_file", "rule", "plan")}
    jobs = set()
    for row in rows[1:]:
        assert row[col["plan"]] in ("update pending", "no update"), row
        if row[col["plan"]] == "update pending":
            jobs.add((row[col["rule"]], str(Path(row[col["output_file"]]).parent)))
    return jobs


def dry_run_counts(workdir: Path, configfile: str, *targets: str) -> dict[str, int]:
    """{rule: number of jobs} from the `Job stats` table of `snakemake -n` ({} when nothing is to be done)."""
    out = snakemake(workdir, *targets, "-n", "--configfile", configfile)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout + out.stderr
    if "Job stats:" not in text:
        assert "Nothing to be done" in text, text[-3000:]
        return {}
    return job_stats(text)

def test_partial_reruns(workflow_copy):
    first = snakemake(workflow_copy, "--configfile", TEST_CONFIG)
    assert first.returncode == 0, first.stderr[-5000:]
    assert planned_jobs(workflow_copy, TEST_CONFIG) == set()
    assert dry_run_counts(workflow_copy, TEST_CONFIG) == {}

    # One hyperparameter of one method (mmd's learning rate), in a copy of the test config.
    config = yaml.safe_load((workflow_copy / TEST_CONFIG).read_text())
    config["training"].setdefault("overrides", {}).setdefault("sim2sim", {}).setdefault("deepmerge", {})[
        "mmd"] = {"lr": 0.0005}
    (workflow_copy / "rerun.yaml").write_text(yaml.safe_dump(config))
    assert planned_jobs(workflow_copy, "rerun.yaml") == {
        ("train", f"{RUNS}/mmd/seed1"), ("evaluate", f"{RUNS}/mmd/seed1"), ("table", "results/tables")}
    assert dry_run_counts(workflow_copy, "rerun.yaml") == {"train": 1, "evaluate": 1, "table": 1, "all": 1}

    # One run's checkpoint deleted (the test config again: mmd's runs are up to date with it).
    model = f"{RUNS}/noda/seed1/model.pt"
    (workflow_copy / model).unlink()
    rerun_noda = {("train", f"{RUNS}/noda/seed1"), ("evaluate", f"{RUNS}/noda/seed1"), ("table", "results/tables")}
    # A plain run does not notice: Snakemake (9.27) ignores a missing intermediate file while everything
    # downstream of it is present and up to date (snakemake/snakemake#1978). Should that change, it must
    # schedule exactly this run's jobs.
    assert planned_jobs(workflow_copy, TEST_CONFIG) in (set(), rerun_noda)
    # Naming the missing file beside the default target remakes it and what depends on it, nothing else.
    assert planned_jobs(workflow_copy, TEST_CONFIG, "all", model) == rerun_noda
    assert dry_run_counts(workflow_copy, TEST_CONFIG, "all", model) == {
        "train": 1, "evaluate": 1, "table": 1, "all": 1}
