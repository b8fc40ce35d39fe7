"""sim2real with a real SDSS target read from a local cutout directory, through the real workflow."""
import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from helpers import REAL_SDSS, snakemake


@pytest.mark.slow
@pytest.mark.skipif(not REAL_SDSS.exists(), reason=f"no local SDSS cutouts at {REAL_SDSS}")
def test_sim2real_on_real_cutouts(workflow_copy):
    cfg = yaml.safe_load((workflow_copy / "config/config.yaml").read_text())
    cfg["data"]["pairs"]["sim2real"] = {"source": "local", "filters": ["i", "r", "g"], "n_per_class": 60,
                                        "synthetic": {"source_n_objects": 60}}
    # 40 non-mergers: too few for the realism check (at least 100 per set), which is refused at start-up.
    cfg["data"]["sdss"] = {"cutout_dir": str(REAL_SDSS), "max_nonmergers": 40}
    (workflow_copy / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    refused = snakemake(workflow_copy, "-n")
    assert refused.returncode != 0
    assert "invalid config at 'data.sdss.max_nonmergers': 40 real non-mergers, but the realism check" in (
        refused.stdout + refused.stderr)
    cfg["data"]["sdss"]["realism_check"] = False
    cfg["experiments"] = {"sim2real": {"networks": ["deepmerge"], "methods": ["noda", "target_only"], "seeds": [1]}}
    cfg["training"].update(max_epochs=1, batch_size=32)
    (workflow_copy / "config/config.yaml").write_text(yaml.safe_dump(cfg))

    dry = snakemake(workflow_copy, "-n")
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "import_sdss_cutouts" in dry.stdout and "synthesize_sim2real" in dry.stdout

    run = snakemake(workflow_copy)
    assert run.returncode == 0, run.stderr[-3000:]
    results = workflow_copy / "results"
    with h5py.File(results / "data/sim2real/raw/target.h5") as f:
        ids = f["object_id"].asstr()[:]
        assert "real SDSS" in f.attrs["data_source"]
        assert list(f.attrs["filters"]) == ["i", "r", "g"]
        # Known-bad files of the local copy (empty, blank) are never used.
        assert not {"darg-1943", "darg-1290", "darg-1942"} & set(ids)
        assert int(f["labels"][:].sum()) > 250  # the stage-3 post-mergers that decode
    with h5py.File(results / "data/sim2real/target.h5") as f:
        labels, split, ids = f["labels"][:], f["split"][:], f["object_id"].asstr()[:]
        assert f["images"].shape[1:] == (3, 75, 75)
        assert (labels == 1).sum() == (labels == 0).sum() == 60
        assert all(len(set(split[ids == o])) == 1 for o in np.unique(ids))
    log = (workflow_copy / "logs/import/sdss_cutouts.log").read_text()
    assert "rejected" in log
    table = pd.read_csv(results / "tables/table2_sim2real.csv", comment="#")
    assert set(table.method) == {"noda", "target_only"} and len(table) == 4
    assert "real SDSS cutouts" in (results / "tables/table2_sim2real.md").read_text()
    metrics = json.loads(Path(results / "runs/sim2real/deepmerge/target_only/seed1/metrics.json").read_text())
    assert metrics["target"]["n"] > 0
