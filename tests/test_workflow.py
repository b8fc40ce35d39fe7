"""End to end: the whole grid of the default run on the tiny .test config, with real Snakemake, HDF5 files and
training, run once per session (the `tiny_run` fixture of conftest.py, shared with tests/test_report.py); then what
a second run and partial reruns would do.

What would run is read from Snakemake itself, two ways that must agree: the `plan` column of `--summary` (one
row per output file) and the `Job stats` of `-n`. (`--list-changes params` is no help: in snakemake 9.27 it
lists outputs of unchanged jobs too.)"""
import json
from importlib import metadata
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from helpers import TEST_CONFIG, job_stats, snakemake

METRICS = ["auc", "accuracy", "precision", "recall", "f1", "brier"]
SIM2SIM = {"deepmerge": ["noda", "mmd", "ada"], "resnet18": ["noda", "mmd", "ada"]}
SIM2REAL = ["noda", "mmd", "tl_mmd", "target_only"]
# The selection job of sim2sim, as planned_jobs names it (one table, one figure).
SELECTION_SIM2SIM = {("selection", "results/tables/selection_sim2sim"),
                     ("selection", "results/figures/sim2sim/selection")}
# The environment stamp is remade whenever a run is.
ENVIRONMENT = ("environment", "results/environment")

pytestmark = pytest.mark.slow


def read_table(path: Path) -> pd.DataFrame:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# ") and "Data:" in first, first
    return pd.read_csv(path, comment="#")


def assert_image(path: Path, min_width: int = 300) -> None:
    """A real picture: the expected size and not blank."""
    with Image.open(path) as image:
        assert image.width >= min_width and image.height >= 150, (path, image.size)
        pixels = np.asarray(image.convert("L"), dtype=float)
    assert pixels.std() > 5, f"{path} looks blank"


def test_prepared_data_and_runs(tiny_run):
    results = tiny_run / "results"
    stamp = json.loads((results / "environment.json").read_text())
    assert stamp["packages"]["torch"] == metadata.version("torch") and stamp["train_threads_per_job"] == 1
    for domain in ("source", "target"):
        with h5py.File(results / f"data/sim2sim/{domain}.h5") as f:
            assert f["images"].shape[1:] == (3, 75, 75) and f["images"].dtype == np.float32
            split = f["split"][:]
            ids = f["object_id"].asstr()[:]
            assert set(np.unique(split)) == {0, 1, 2}
            assert all(len(set(split[ids == o])) == 1 for o in np.unique(ids))
            assert list(f.attrs["filters"]) == ["F814W", "F356W", "F160W"]
            assert len(f.attrs["channel_mean"]) == 3

    for network, methods in SIM2SIM.items():
        for method in methods:
            run_dir = results / f"runs/sim2sim/{network}/{method}/seed1"
            metrics = json.loads((run_dir / "metrics.json").read_text())  # written by the train job itself
            for domain in ("source", "target"):
                assert 0.0 <= metrics[domain]["accuracy"] <= 1.0 and metrics[domain]["n"] > 0
            history = pd.read_csv(run_dir / "history.csv")
            assert len(history) == (2 if network == "deepmerge" else 1)  # training.max_epochs_by_network
            assert {"val_source_accuracy", "val_target_accuracy", "lr"} <= set(history)
            assert (tiny_run / f"logs/train/sim2sim/{network}/{method}/seed1.log").stat().st_size > 0
            assert (tiny_run / f"benchmarks/train/sim2sim/{network}/{method}/seed1.tsv").exists()
    tl = json.loads((results / "runs/sim2real/deepmerge/tl_mmd/seed1/train.json").read_text())
    assert tl["init_checkpoint"] == "results/runs/sim2sim/deepmerge/mmd/seed1/model.pt"


def test_every_table_has_the_expected_rows(tiny_run):
    tables = tiny_run / "results/tables"
    n_sim2sim = sum(len(m) for m in SIM2SIM.values())
    for name, n_runs, pair in (("table1_sim2sim", n_sim2sim, "sim2sim"), ("table2_sim2real", 4, "sim2real")):
        table = read_table(tables / f"{name}.csv")
        assert list(table.columns[:10]) == ["pair", "network", "method", "domain"] + METRICS
        assert {f"{m}_paper" for m in METRICS} | {f"{m}_diff" for m in METRICS} <= set(table.columns)
        assert len(table) == 2 * n_runs and set(table["pair"]) == {pair}
        assert (table["seed"] == 1).all() and (table["n_seeds"] == 1).all()
        assert table[METRICS].notna().all().all()
    table1 = read_table(tables / "table1_sim2sim.csv")
    row = table1[(table1.network == "deepmerge") & (table1.method == "noda") & (table1.domain == "target")].iloc[0]
    assert row.accuracy_paper == pytest.approx(0.58)
    assert row.accuracy_diff == pytest.approx(row.accuracy - 0.58)

    for name, n_runs in (("tableB1_sim2sim_confusion", n_sim2sim), ("tableB3_sim2real_confusion", 4)):
        table = read_table(tables / f"{name}.csv")
        assert len(table) == 2 * n_runs
        # Each row of a confusion matrix normalised per true class sums to one (a class may be empty: 0).
        for true in ("m", "nm"):
            sums = table[f"p_m_given_{true}"] + table[f"p_nm_given_{true}"]
            assert np.all(np.isclose(sums, 1.0) | np.isclose(sums, 0.0)), sums

    b2 = read_table(tables / "tableB2_sim2sim_seeds.csv")
    assert len(b2) == 2 * 3 and set(b2["network"]) == {"deepmerge"} and (b2["n_seeds"] == 2).all()
    assert {f"{m}_std" for m in METRICS} | {f"{m}_std_paper" for m in METRICS} <= set(b2.columns)
    runs = [json.loads((tiny_run / f"results/runs/sim2sim/deepmerge/ada/seed{s}/metrics.json").read_text())
            for s in (1, 2)]
    row = b2[(b2.method == "ada") & (b2.domain == "target")].iloc[0]
    accuracies = [r["target"]["accuracy"] for r in runs]
    assert row.accuracy == pytest.approx(np.mean(accuracies), abs=1e-4)
    assert row.accuracy_std == pytest.approx(np.std(accuracies, ddof=1), abs=1e-4)
    assert (read_table(tables / "tableB4_sim2real_seeds.csv")["n_seeds"] == 1).all()

    for name in ("table1_sim2sim", "tableB1_sim2sim_confusion", "tableB2_sim2sim_seeds", "table2_sim2real"):
        n_rows = len(read_table(tables / f"{name}.csv"))
        md = (tables / f"{name}.md").read_text()
        assert "synthetic" in md and md.count("\n| ") == 1 + n_rows  # header + one line per row
        tex = (tables / f"{name}.tex").read_text()
        assert tex.count(r"\\") == 1 + n_rows and r"\begin{tabular}" in tex and r"\end{table*}" in tex


def test_every_figure_exists_and_is_not_blank(tiny_run):
    figures = tiny_run / "results/figures"
    names = ["sim2sim/examples", "sim2sim/tsne", "sim2sim/gradcam", "sim2real/examples", "sim2real/tsne",
             "sim2real/gradcam"]
    names += [f"sim2sim/{n}_{kind}" for n in SIM2SIM for kind in ("metrics", "roc", "scores")]
    names += [f"sim2real/deepmerge_{kind}" for kind in ("metrics", "roc", "scores")]
    for name in names:
        assert_image(figures / f"{name}.png")
        assert (figures / f"{name}.pdf").read_bytes()[:4] == b"%PDF"
    for pair in ("sim2sim", "sim2real"):
        assert_image(figures / f"{pair}/selection.png")
        selection = read_table(tiny_run / f"results/tables/selection_{pair}.csv")
        assert len(selection) == 6 and "source_accuracy" in set(selection["criterion"])
        assert selection["selected_test_target_accuracy_mean"].between(0, 1).all()
    curves = sorted(p.name for p in (figures / "sim2sim/training").glob("*.png"))
    assert len(curves) == 9 and "resnet18_ada_seed1.png" in curves and "deepmerge_noda_seed2.png" in curves
    for path in (figures / "sim2real/training").glob("*.png"):
        assert_image(path)


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
            output = Path(row[col["output_file"]])
            # A job writes several files: name it by its run directory, or by the file for renders.
            jobs.add((row[col["rule"]], str(output.parent if "runs" in output.parts else output.with_suffix(""))))
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


def test_second_run_does_nothing(tiny_run):
    assert planned_jobs(tiny_run, TEST_CONFIG) == set()
    assert dry_run_counts(tiny_run, TEST_CONFIG) == {}


def test_one_hyperparameter_reruns_only_its_runs_and_their_renders(tiny_run):
    # ResNet18 ADA's learning rate, in a copy of the test config.
    config = yaml.safe_load((tiny_run / TEST_CONFIG).read_text())
    config["training"].setdefault("overrides", {}).setdefault("sim2sim", {}).setdefault("resnet18", {})[
        "ada"] = {"lr": 0.0005}
    (tiny_run / "rerun.yaml").write_text(yaml.safe_dump(config))
    run = "results/runs/sim2sim/resnet18/ada/seed1"
    assert planned_jobs(tiny_run, "rerun.yaml") == {
        ("train", run),
        ("figure_training_curves", "results/figures/sim2sim/training/resnet18_ada_seed1"),
        *{("figure_summary", f"results/figures/sim2sim/resnet18_{kind}") for kind in ("metrics", "roc", "scores")},
        ("table", "results/tables/table1_sim2sim"), ("table", "results/tables/tableB1_sim2sim_confusion"),
        *SELECTION_SIM2SIM, ENVIRONMENT}
    assert dry_run_counts(tiny_run, "rerun.yaml") == {
        "train": 1, "figure_training_curves": 1, "figure_summary": 3, "table": 2, "selection": 1,
        "environment": 1, "all": 1}


def test_a_deleted_checkpoint_is_remade(tiny_run):
    model = "results/runs/sim2sim/deepmerge/noda/seed2/model.pt"
    (tiny_run / model).unlink()
    run = "results/runs/sim2sim/deepmerge/noda/seed2"
    rerun = {("train", run),
             ("figure_training_curves", "results/figures/sim2sim/training/deepmerge_noda_seed2"),
             ("figure_summary", "results/figures/sim2sim/deepmerge_metrics"),
             ("table", "results/tables/tableB2_sim2sim_seeds"), *SELECTION_SIM2SIM, ENVIRONMENT}
    # A plain run remakes it and what depends on it, nothing else: the default target names every run's files,
    # since Snakemake (9.27) by itself ignores a missing intermediate file while everything downstream of it is
    # present and up to date (snakemake/snakemake#1978).
    assert planned_jobs(tiny_run, TEST_CONFIG) == rerun
    assert dry_run_counts(tiny_run, TEST_CONFIG) == {
        "train": 1, "figure_training_curves": 1, "figure_summary": 1, "table": 1, "selection": 1,
        "environment": 1, "all": 1}
