"""Model selection: each criterion on inputs with known answers, the trainer's per-epoch scores and kept
epoch, and the selection table."""
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepmerge_da.io.checkpoint import load_checkpoint
from deepmerge_da.report.selection_report import selection_table
from deepmerge_da.training import selection as sel
from deepmerge_da.training.loop import train_run
from deepmerge_da.training.runtime import DomainTensors
from helpers import TOY_HP, write_toy_pair

HP = dict(TOY_HP, patience=10)
COLUMNS = {f"sel_{c}" for c in sel.CRITERIA}


def confident(labels, margin=12.0):
    return F.one_hot(labels, 2).float() * margin


def test_accuracies():
    labels = torch.tensor([0, 1, 1, 0])
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [1.0, 0.0]])
    assert sel.source_accuracy(logits, labels) == pytest.approx(0.75)
    assert sel.oracle_target_accuracy(logits, labels) == pytest.approx(0.75)


def test_negative_entropy_is_zero_when_confident_and_minus_log2_when_uniform():
    labels = torch.arange(100) % 2
    assert sel.negative_entropy(confident(labels)) == pytest.approx(0.0, abs=1e-4)
    assert sel.negative_entropy(torch.zeros(100, 2)) == pytest.approx(-math.log(2), abs=1e-6)
    assert sel.negative_entropy(confident(labels, 1.0)) < sel.negative_entropy(confident(labels, 3.0))


def test_information_maximisation_rewards_confident_and_diverse_predictions():
    labels = torch.arange(100) % 2
    assert sel.information_maximisation(confident(labels)) == pytest.approx(math.log(2), abs=1e-4)
    assert sel.information_maximisation(torch.zeros(100, 2)) == pytest.approx(0.0, abs=1e-6)
    one_class = confident(torch.zeros(100, dtype=torch.long))  # confident but not diverse
    assert sel.information_maximisation(one_class) == pytest.approx(0.0, abs=1e-4)
    logits = torch.randn(50, 2, generator=torch.Generator().manual_seed(0)) * 2
    p = logits.softmax(1).numpy()
    mean = p.mean(0)
    expected = -(mean * np.log(mean)).sum() + (p * np.log(p)).sum(1).mean()
    assert sel.information_maximisation(logits) == pytest.approx(expected, abs=1e-5)


def test_soft_neighbourhood_density_formula_and_ordering():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(30, 2, generator=g) * 2
    f = logits.softmax(1).numpy().astype(np.float64)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    expected = []
    for j in range(len(f)):  # row by row, self excluded
        s = np.array([f[j] @ f[k] for k in range(len(f)) if k != j]) / 0.05
        p = np.exp(s - s.max())
        p /= p.sum()
        expected.append(-(p * np.log(p)).sum())
    assert sel.soft_neighbourhood_density(logits) == pytest.approx(np.mean(expected), rel=1e-4)
    # Predictions in two tight clusters have denser neighbourhoods than predictions spread at random.
    labels = torch.arange(200) % 2
    clustered = confident(labels, 6.0) + 0.1 * torch.randn(200, 2, generator=g)
    spread = torch.randn(200, 2, generator=g) * 3.0
    assert sel.soft_neighbourhood_density(clustered) > sel.soft_neighbourhood_density(spread) + 0.1
    assert sel.soft_neighbourhood_density(clustered) <= math.log(199) + 1e-6


def dev_inputs(shift, n=300, d=256, seed=0):
    """Features whose first 10 dimensions set the per-sample loss; the target is shifted along them."""
    rng = np.random.default_rng(seed)
    xs, xt = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    xt[:, :10] += shift
    z = xs[:, :10].sum(1) / np.sqrt(10)  # N(0, 1) on source; the loss grows with z
    labels = torch.as_tensor(rng.integers(0, 2, n))
    logits = torch.zeros(n, 2)
    logits[torch.arange(n), labels] = -torch.as_tensor(z, dtype=torch.float32)
    return xs, logits, labels, xt


def test_deep_embedded_validation_is_the_source_loss_without_shift_and_not_with_one():
    xs, logits, labels, xt = dev_inputs(shift=0.0)
    plain = F.cross_entropy(logits, labels).item()
    state = torch.get_rng_state()
    same = sel.deep_embedded_validation(xs, logits, labels, xt)
    assert torch.equal(state, torch.get_rng_state())  # the trainer's random stream is untouched
    assert same == pytest.approx(-plain, rel=0.05)
    assert sel.deep_embedded_validation(xs, logits, labels, xt) == same  # deterministic
    xs, logits, labels, xt = dev_inputs(shift=1.0)
    plain = F.cross_entropy(logits, labels).item()
    z_target = torch.as_tensor(xt[:, :10].sum(1) / np.sqrt(10))
    true_target_risk = F.softplus(z_target).mean().item()  # the loss these labels would have on the target
    dev_risk = -sel.deep_embedded_validation(xs, logits, labels, xt)
    # Target samples sit where the source loss is high: the estimate moves from the source loss towards it.
    assert plain * 1.5 < dev_risk < true_target_risk


def test_selection_scores_and_select_epoch():
    class Tiny(nn.Module):
        feature_dim = 8

        def __init__(self):
            super().__init__()
            self.body, self.head = nn.Linear(12, 8), nn.Linear(8, 2)

        def forward(self, x):
            f = torch.relu(self.body(x.flatten(1)))
            return self.head(f), f

    torch.manual_seed(0)
    model = Tiny()
    g = torch.Generator().manual_seed(0)
    src = DomainTensors(torch.randn(40, 3, 2, 2, generator=g), torch.arange(40) % 2, np.arange(40).astype(str), {})
    tgt = DomainTensors(torch.randn(30, 3, 2, 2, generator=g) + 1, torch.arange(30) % 2, np.arange(30).astype(str), {})
    scores = sel.selection_scores(model, src, tgt, batch_size=16)
    assert set(scores) == COLUMNS and all(math.isfinite(v) for v in scores.values())
    with torch.no_grad():
        logits_t = model(tgt.images)[0]
    assert scores["sel_negative_entropy"] == pytest.approx(sel.negative_entropy(logits_t), abs=1e-6)
    assert scores["sel_oracle_target_accuracy"] == pytest.approx(sel.oracle_target_accuracy(logits_t, tgt.labels))

    history = pd.DataFrame({"epoch": range(5), "sel_negative_entropy": [-0.5, -0.2, float("nan"), -0.2, -0.4],
                            "val_source_loss": [0.3, 0.5, 0.1, 0.4, 0.2]})
    assert sel.select_epoch(history, "negative_entropy") == 3  # the max; tie -> lower source loss; NaN never wins
    with pytest.raises(ValueError, match="unknown selection criterion"):
        sel.column("nope")


@pytest.fixture(scope="module")
def entropy_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("selection")
    paths = write_toy_pair(tmp, n=80, source_noise=0.3)
    out = tmp / "run"
    summary = train_run(source=str(paths["source"]), target=str(paths["target"]), out_dir=str(out), pair="sim2sim",
                        network="deepmerge", method="mmd", seed=2, hp=HP, max_epochs=3, batch_size=16,
                        device="cpu", progress=False, selection="negative_entropy")
    return out, summary


def test_train_run_logs_every_score_and_keeps_the_selected_epoch(entropy_run):
    out, summary = entropy_run
    history = pd.read_csv(out / "history.csv")
    assert len(history) == 3
    assert COLUMNS | {"test_source_accuracy", "test_target_accuracy", "val_source_accuracy", "val_source_loss",
                      "val_target_accuracy", "val_target_loss"} <= set(history.columns)
    assert history[sorted(COLUMNS)].notna().all().all()
    assert history.test_target_accuracy.between(0, 1).all() and history.test_source_accuracy.between(0, 1).all()
    assert (history.sel_source_accuracy == history.val_source_accuracy).all()
    meta = json.loads((out / "train.json").read_text())
    assert meta["selection"] == "negative_entropy" and meta["best_epoch"] == summary["best_epoch"]
    assert meta["best_epoch"] == sel.select_epoch(history, "negative_entropy")
    assert meta["best_selection_score"] == pytest.approx(history.sel_negative_entropy.max(), rel=1e-6)
    assert meta["best_val_source_accuracy"] == pytest.approx(history.val_source_accuracy[meta["best_epoch"]])
    _, ckpt = load_checkpoint(out / "model.pt")
    assert ckpt["epoch"] == meta["best_epoch"] and ckpt["selection"] == "negative_entropy"


def test_train_run_rejects_an_unknown_criterion(tmp_path):
    with pytest.raises(ValueError, match="unknown selection criterion"):
        train_run(source="x", target="y", out_dir=str(tmp_path), pair="sim2sim", network="deepmerge",
                  method="noda", seed=1, hp=HP, max_epochs=1, selection="target_labels_please")


def test_selection_table_has_one_row_per_criterion(entropy_run, tmp_path):
    out, _ = entropy_run
    table = selection_table([str(out)], tmp_path / "sel.csv", tmp_path / "sel.md", tmp_path / "sel.png",
                            data_description="tiny test pair")
    assert list(table.criterion) == list(sel.CRITERIA)
    history = pd.read_csv(out / "history.csv")
    row = table.set_index("criterion").loc["negative_entropy"]
    best_epoch = json.loads((out / "train.json").read_text())["best_epoch"]
    assert row.selected_test_target_accuracy_mean == pytest.approx(history.test_target_accuracy[best_epoch])
    assert row.oracle_best_test_target_accuracy_mean == pytest.approx(history.test_target_accuracy.max())
    assert (table.regret_mean >= 0).all()
    text = (tmp_path / "sel.csv").read_text()
    assert text.startswith("# ") and "tiny test pair" in text.splitlines()[0]
    csv = pd.read_csv(tmp_path / "sel.csv", comment="#")
    assert len(csv) == len(sel.CRITERIA)
    md = (tmp_path / "sel.md").read_text()
    assert all(c in md for c in sel.CRITERIA) and "tiny test pair" in md
    assert (tmp_path / "sel.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("*.part"))
    with pytest.raises(ValueError, match="no column"):
        (tmp_path / "old").mkdir()
        history.drop(columns=["test_target_accuracy"]).to_csv(tmp_path / "old" / "history.csv", index=False)
        selection_table([str(tmp_path / "old")], tmp_path / "x.csv", tmp_path / "x.md", tmp_path / "x.png", "")


def test_selection_table_leaves_target_only_runs_out(entropy_run, tmp_path):
    # A target_only run trains on the labelled target and logs it as "source", the simulated domain as
    # "target": its test_target_accuracy is not a target accuracy, and it is no domain-adaptation run.
    out, _ = entropy_run
    oracle = tmp_path / "target_only"
    oracle.mkdir()
    history = pd.read_csv(out / "history.csv")
    history.assign(test_target_accuracy=2.0).to_csv(oracle / "history.csv", index=False)  # 2: seen if pooled
    meta = json.loads((out / "train.json").read_text())
    (oracle / "train.json").write_text(json.dumps(dict(meta, method="target_only")))
    table = selection_table([str(out), str(oracle)], tmp_path / "sel.csv", tmp_path / "sel.md", tmp_path / "sel.png",
                            data_description="tiny test pair")
    alone = selection_table([str(out)], tmp_path / "a.csv", tmp_path / "a.md", tmp_path / "a.png", "tiny test pair")
    assert (table.n_runs == 1).all()
    pd.testing.assert_frame_equal(table, alone)
    md = (tmp_path / "sel.md").read_text()
    assert "Left out (1): `sim2sim/deepmerge/target_only/seed2`" in md and "target_only" not in md.split("Left out")[0]
    with pytest.raises(ValueError, match="no domain-adaptation run"):
        selection_table([str(oracle)], tmp_path / "x.csv", tmp_path / "x.md", tmp_path / "x.png", "")
