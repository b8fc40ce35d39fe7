"""Training, checkpoints, evaluation and tables refuse or flag bad states: diverged runs, damaged checkpoints,
collapsed runs; identical weights give identical checkpoint bytes.

Real components throughout: a toy pair (helpers.write_toy_pair) whose target is like its source, two trained
runs (a 2-epoch run that learned, a 1-epoch run still at chance that calls every target image one class), real
evaluations, the ``deepmerge-da`` command.
"""
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from deepmerge_da.cli import main as cli_main
from deepmerge_da.io.checkpoint import load_checkpoint, load_model, save_checkpoint
from deepmerge_da.nn.models import build_network
from deepmerge_da.report.evaluate import evaluate_run
from deepmerge_da.report.tables import render_table
from deepmerge_da.training.loop import train_run
from deepmerge_da.training.runtime import load_split, predict_logits
from helpers import REPO, TOY_HP, write_toy_pair

# (seed, epochs) of the two runs: seed 3 learns in two epochs, seed 1 is still at chance after one.
RUNS = {"learned": (3, 2), "chance": (1, 1)}


def _train(paths, out_dir, seed, epochs):
    return train_run(source=str(paths["source"]), target=str(paths["target"]), out_dir=str(out_dir), pair="sim2sim",
                     network="deepmerge", method="noda", seed=seed, hp=TOY_HP, max_epochs=epochs, batch_size=16,
                     device="cpu", progress=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("robustness")
    paths = write_toy_pair(root, source_noise=1.0)
    out = {"root": root, "paths": paths}
    for name, (seed, epochs) in RUNS.items():
        run_dir = root / name
        _train(paths, run_dir, seed, epochs)
        evaluate_run(checkpoint=str(run_dir / "model.pt"), source=str(paths["source"]), target=str(paths["target"]),
                     metrics_path=str(run_dir / "metrics.json"), predictions_path=str(run_dir / "predictions.csv"))
        out[name] = run_dir
    return out


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# ------------------------------------------------------------------------------------------------ divergence

def test_diverging_training_fails_in_one_line_naming_the_run_and_writes_nothing(runs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)  # the config names its presets file relative to the repository
    out = tmp_path / "diverged"
    rc = cli_main(["train", "--source", str(runs["paths"]["source"]), "--target", str(runs["paths"]["target"]),
                   "--out", str(out), "--pair", "sim2sim", "--network", "deepmerge", "--method", "noda",
                   "--epochs", "2", "--set", '{"lr": 1e8}', "--device", "cpu"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert rc == 2 and "Traceback" not in err
    assert len(errors) == 1, err
    assert errors[0].startswith("deepmerge-da train: error: run sim2sim/deepmerge/noda/seed1 diverged at epoch 0, ")
    assert "step" in errors[0] and "non-finite" in errors[0] and errors[0].endswith("nothing written")
    assert _files(out) == []  # no model.pt, sha256, history.csv, train.json, nor a temporary file


# ------------------------------------------------------------------------------------------------ checkpoints

def _checkpoint_like(runs, path: Path, meta_change=None, weight_change=None) -> Path:
    """A copy of the learned run's checkpoint, saved by save_checkpoint, with its metadata or weights changed."""
    state, meta = load_checkpoint(runs["learned"] / "model.pt")
    if meta_change:
        meta_change(meta)
    model = build_network("deepmerge")
    model.load_state_dict(state)
    if weight_change:
        with torch.no_grad():
            weight_change(model)
    save_checkpoint(path, model, meta)
    return path


def _evaluate(runs, checkpoint: Path, out: Path) -> int:
    return cli_main(["evaluate", str(checkpoint), "--source", str(runs["paths"]["source"]),
                     "--target", str(runs["paths"]["target"]), "--out", str(out)])


def test_checkpoint_with_non_finite_weights_is_refused_by_evaluate_and_predict(runs, tmp_path, capsys):
    def poison(model):
        model.conv[0].weight[0, 0, 0, 0] = float("nan")
        model.head[1].bias[0] = float("inf")

    ckpt = _checkpoint_like(runs, tmp_path / "diverged" / "model.pt", weight_change=poison)
    n_tensors = len(load_checkpoint(ckpt)[0])
    reason = (f"checkpoint {ckpt}: 2 of {n_tensors} tensors hold non-finite values (first: conv.0.weight); "
              "the run diverged")
    assert _evaluate(runs, ckpt, tmp_path / "eval") == 2
    assert _error_lines(capsys.readouterr().err) == [f"deepmerge-da evaluate: error: {reason}"]
    assert _files(tmp_path / "eval") == []

    np.save(tmp_path / "galaxy.npy", np.ones((3, 75, 75), np.float32))
    rc = cli_main(["predict", str(tmp_path / "galaxy.npy"), "--model", str(runs["learned"] / "model.pt"),
                   "--model", str(ckpt), "--out", str(tmp_path / "pred" / "p.csv"), "--no-progress"])
    assert rc == 2
    assert _error_lines(capsys.readouterr().err) == [f"deepmerge-da predict: error: {reason}"]
    assert _files(tmp_path / "pred") == []


def _truncated(runs, path):
    data = (runs["learned"] / "model.pt").read_bytes()
    path.write_bytes(data[: len(data) // 2])


UNREADABLE = {
    "empty": (lambda runs, path: path.write_bytes(b""), "is empty (0 bytes)"),
    "text": (lambda runs, path: path.write_text("model weights are on the other disk\n"), "not a PyTorch checkpoint"),
    "garbage": (lambda runs, path: path.write_bytes(np.random.default_rng(0).bytes(3000)), "not a PyTorch checkpoint"),
    "truncated": (_truncated, "not a PyTorch checkpoint"),
    "pickled module": (lambda runs, path: torch.save(build_network("deepmerge"), path),
                       "objects other than tensors and plain values"),
}


@pytest.mark.parametrize("kind", UNREADABLE)
def test_unreadable_checkpoint_is_a_one_line_error_naming_the_file(runs, tmp_path, capsys, kind):
    make, reason = UNREADABLE[kind]
    ckpt = tmp_path / "model.pt"
    make(runs, ckpt)
    assert cli_main(["info", str(ckpt)]) == 2
    lines = _error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and lines[0].startswith(f"deepmerge-da info: error: checkpoint {ckpt} ")
    assert reason in lines[0]
    assert _evaluate(runs, ckpt, tmp_path / "eval") == 2
    lines = _error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and str(ckpt) in lines[0] and reason in lines[0]


def _drop_input(meta):
    del meta["input"]


BAD_METADATA = {
    "unknown network": (lambda meta: meta.update(network="vgg"), "its metadata names network 'vgg', not one of"),
    "wrong network": (lambda meta: meta.update(network="resnet18"), "its weights do not fit the resnet18 network"),
    "no input": (_drop_input, "does not record its input (no input.trained_on.filters / image_size"),
}


@pytest.mark.parametrize("kind", BAD_METADATA)
def test_checkpoint_whose_metadata_cannot_build_its_network_is_a_one_line_error(runs, tmp_path, capsys, kind):
    change, reason = BAD_METADATA[kind]
    ckpt = _checkpoint_like(runs, tmp_path / "model.pt", meta_change=change)
    assert _evaluate(runs, ckpt, tmp_path / "eval") == 2
    lines = _error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and lines[0].startswith(f"deepmerge-da evaluate: error: checkpoint {ckpt}")
    assert reason in lines[0]


def test_identical_weights_give_byte_identical_checkpoints(runs, tmp_path):
    seed, epochs = RUNS["chance"]
    _train(runs["paths"], tmp_path / "again", seed, epochs)
    for name in ("model.pt", "model.pt.sha256"):
        assert (tmp_path / "again" / name).read_bytes() == (runs["chance"] / name).read_bytes(), name
    state, meta = load_checkpoint(runs["learned"] / "model.pt")
    for name in ("a", "b"):
        save_checkpoint(tmp_path / name / "model.pt", state, meta)
    assert (tmp_path / "a" / "model.pt").read_bytes() == (tmp_path / "b" / "model.pt").read_bytes()


# ------------------------------------------------------------------------------------------------ collapse

def _target_merger_fraction(run_dir: Path, target: Path, split: str) -> float:
    model, _ = load_model(run_dir / "model.pt")
    images = load_split(target, split).images
    return float((torch.softmax(predict_logits(model, images), 1)[:, 1] >= 0.5).float().mean())


def test_train_json_flags_a_run_collapsed_on_the_target_validation_split(runs):
    for name, collapsed in (("learned", False), ("chance", True)):
        summary = json.loads((runs[name] / "train.json").read_text())
        # label-free: recomputed from the kept weights' predictions on the target validation images alone
        fraction = _target_merger_fraction(runs[name], runs["paths"]["target"], "val")
        assert summary["target_predicted_merger_fraction"] == pytest.approx(fraction, abs=1e-12)
        assert summary["target_collapsed"] is collapsed, name
        assert collapsed == (max(fraction, 1 - fraction) >= 0.99)


def test_evaluation_flags_a_run_collapsed_on_the_target_test_split(runs):
    for name, collapsed in (("learned", False), ("chance", True)):
        metrics = json.loads((runs[name] / "metrics.json").read_text())
        predictions = pd.read_csv(runs[name] / "predictions.csv").query("domain == 'target'")
        fraction = float((predictions["p_merger"] >= 0.5).mean())
        assert metrics["target_predicted_merger_fraction"] == pytest.approx(fraction, abs=1e-12)
        assert metrics["target_collapsed"] is collapsed, name
        assert math.isclose(fraction, metrics["target"]["fraction_called_merger"])


def _render(metrics_paths, kind, directory: Path):
    directory.mkdir(exist_ok=True)
    table = render_table([str(p) for p in metrics_paths], kind=kind, pair="sim2sim", csv_path=str(directory / "t.csv"),
                         md_path=str(directory / "t.md"), tex_path=str(directory / "t.tex"), data_description="toy")
    return table, (directory / "t.md").read_text(), (directory / "t.tex").read_text()


def test_tables_flag_collapsed_runs_and_count_collapsed_seeds(runs, tmp_path):
    paths = [runs["learned"] / "metrics.json", runs["chance"] / "metrics.json"]  # seeds 3 and 1
    table, md, tex = _render(paths, "metrics", tmp_path / "metrics")
    # Table 1 shows the lowest seed: the collapsed one, flagged on both of its rows
    assert list(table.columns[:4]) == ["pair", "network", "method", "domain"] and table.columns[-1] == "collapsed"
    assert (table["seed"] == 1).all() and table["collapsed"].eq(True).all()
    assert md.count("| deepmerge | noda (collapsed) |") == 2 and "collapsed run calls at least 99 %" in md
    assert "noda (collapsed)" in tex
    written = pd.read_csv(tmp_path / "metrics" / "t.csv", comment="#")
    assert written["collapsed"].tolist() == [True, True]

    table, md, _ = _render(paths, "confusion", tmp_path / "confusion")
    assert table["collapsed"].eq(True).all() and "noda (collapsed)" in md

    table, md, tex = _render(paths, "seeds", tmp_path / "seeds")
    assert table["n_seeds"].tolist() == [2, 2] and table["n_collapsed"].tolist() == [1, 1]
    assert md.count("| deepmerge | noda (1 of 2 seeds collapsed to one class) |") == 2
    assert "Collapsed seeds are included in the mean" in md and "1 of 2 seeds collapsed" in tex

    # A metrics.json written before the flag existed: unknown, never counted as "none collapsed"
    legacy = json.loads(paths[1].read_text())
    for key in ("target_collapsed", "target_predicted_merger_fraction"):
        del legacy[key]
    (tmp_path / "legacy.json").write_text(json.dumps(legacy))
    table, md, _ = _render([paths[0], tmp_path / "legacy.json"], "seeds", tmp_path / "legacy")
    assert table["n_collapsed"].isna().all() and "seeds collapsed" not in md
    table, md, _ = _render([paths[0], tmp_path / "legacy.json"], "metrics", tmp_path / "legacy_metrics")
    assert table["collapsed"].isna().all() and "(collapsed)" not in md
