"""End to end: the whole DAG on the tiny .test config, with real Snakemake, HDF5 files and training."""
import json

import h5py
import numpy as np
import pandas as pd
import pytest

from conftest import snakemake

TEST_CONFIG = ".test/config/config.yaml"


@pytest.mark.slow
def test_whole_dag_on_tiny_config(workflow_copy):
    dry = snakemake(workflow_copy, "-n", "--configfile", TEST_CONFIG)
    assert dry.returncode == 0, dry.stderr
    for rule in ("synthesize", "prepare", "train", "evaluate", "table"):
        assert rule in dry.stdout

    run = snakemake(workflow_copy, "--configfile", TEST_CONFIG)
    assert run.returncode == 0, run.stderr[-3000:]
    results = workflow_copy / "results"

    for domain in ("source", "target"):
        with h5py.File(results / f"data/sim2sim/{domain}.h5") as f:
            assert f["images"].shape[1:] == (3, 75, 75) and f["images"].dtype == np.float32
            split = f["split"][:]
            ids = f["object_id"].asstr()[:]
            assert set(np.unique(split)) == {0, 1, 2}
            assert all(len(set(split[ids == o])) == 1 for o in np.unique(ids))
            assert list(f.attrs["filters"]) == ["F814W", "F356W", "F160W"]
            assert len(f.attrs["channel_mean"]) == 3

    for method in ("noda", "mmd"):
        run_dir = results / f"runs/sim2sim/deepmerge/{method}/seed1"
        metrics = json.loads((run_dir / "metrics.json").read_text())
        for domain in ("source", "target"):
            assert 0.0 <= metrics[domain]["accuracy"] <= 1.0
            assert metrics[domain]["n"] > 0
        history = pd.read_csv(run_dir / "history.csv")
        assert len(history) == 2 and {"val_source_accuracy", "val_target_accuracy", "lr"} <= set(history)
        assert (workflow_copy / f"logs/train/sim2sim/deepmerge/{method}/seed1.log").stat().st_size > 0
        assert (workflow_copy / f"benchmarks/train/sim2sim/deepmerge/{method}/seed1.tsv").exists()

    table = pd.read_csv(results / "tables/table1_sim2sim.csv", comment="#")
    assert list(table.columns[:10]) == ["pair", "network", "method", "domain", "auc", "accuracy", "precision",
                                        "recall", "f1", "brier"]
    assert {f"{m}_paper" for m in ("auc", "accuracy", "precision", "recall", "f1", "brier")} <= set(table.columns)
    assert len(table) == 4
    row = table[(table.method == "noda") & (table.domain == "target")].iloc[0]
    assert row.accuracy_paper == pytest.approx(0.58)
    assert "synthetic" in (results / "tables/table1_sim2sim.md").read_text()

    again = snakemake(workflow_copy, "-n", "--configfile", TEST_CONFIG)
    assert "Nothing to be done" in again.stdout + again.stderr
