"""The model-selection table: over finished runs of one pair, which target *test* accuracy each selection
criterion (:mod:`deepmerge_da.training.selection`) would have selected.

It reads each run's ``history.csv`` (the per-epoch ``sel_<criterion>`` scores and ``test_target_accuracy``, logged
for reporting only) and ``train.json``, and writes the table as CSV and Markdown with a PNG figure: per criterion,
the target test accuracy of the epoch it selects, its regret against the best epoch, and its rank correlation
with the target test accuracy.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from deepmerge_da.grid import CRITERIA, ORACLES
from deepmerge_da.io.atomic import atomic_path, write_text_atomic
from deepmerge_da.training.selection import column, select_epoch

TABLE_COLUMNS = ["criterion", "uses_target_labels", "n_runs", "selected_test_target_accuracy_mean",
                 "selected_test_target_accuracy_std", "regret_mean", "regret_std",
                 "oracle_best_test_target_accuracy_mean", "spearman_pooled", "spearman_per_run_mean", "selected_epochs"]


#: Methods whose runs are left out of the table: ``target_only`` trains on the labelled target, logged as its
#: "source", and logs the simulated domain as its "target" (:func:`deepmerge_da.training.loop.train_run`), so its
#: target columns are not target accuracies; trained on target labels, it is an oracle, not domain adaptation.
LEFT_OUT_METHODS = ("target_only",)


def _run_label(meta: dict, run_dir: Path) -> str:
    if {"pair", "network", "method", "seed"} <= set(meta):
        return f"{meta['pair']}/{meta['network']}/{meta['method']}/seed{meta['seed']}"
    return str(run_dir)


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr

    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def _nanstat(values, fn) -> float:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if fn == "std":
        return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
    return float(np.mean(values)) if len(values) else float("nan")


def selection_table(run_dirs: list[str], out_csv, out_md, out_png, data_description: str):
    """What each criterion would select over finished runs, as CSV, Markdown and a PNG figure.

    For each run directory (``history.csv`` with ``sel_*`` and ``test_target_accuracy`` columns, and
    ``train.json``) and each criterion: the epoch the criterion selects among the logged epochs (its highest
    score, ties to the lower source validation loss), the target **test** accuracy of that epoch, and the
    regret against the run's best epoch by target test accuracy (the oracle). Over runs: mean and standard
    deviation of both, and the Spearman rank correlation between the criterion and the target test accuracy,
    over all epochs of all runs pooled and as the mean of the per-run correlations (NaN where a run has fewer
    than 3 epochs or a constant column). The logged epochs are those the training run reached under its own
    ``selection`` criterion's early stopping. Runs of a method in :data:`LEFT_OUT_METHODS` (by ``train.json``)
    are left out, and the Markdown names them. Returns the table (one row per criterion).
    """
    import pandas as pd

    runs, left_out = [], []
    for run_dir in map(Path, run_dirs):
        history = pd.read_csv(run_dir / "history.csv")
        meta_path = run_dir / "train.json"
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        missing = [c for c in [column(c) for c in CRITERIA] + ["test_target_accuracy"] if c not in history]
        if missing:
            raise ValueError(f"{run_dir / 'history.csv'}: no column(s) {', '.join(missing)}; "
                             "was it written before selection scores were logged? Retrain the run.")
        if len(history) == 0:
            raise ValueError(f"{run_dir / 'history.csv'}: no epochs")
        if meta.get("method") in LEFT_OUT_METHODS:
            left_out.append(_run_label(meta, run_dir))
        else:
            runs.append((_run_label(meta, run_dir), meta, history))
    if not runs:
        raise ValueError("selection_table got no domain-adaptation run"
                         + (f" (left out: {', '.join(left_out)})" if left_out else ""))

    rows, details = [], []
    for criterion in CRITERIA:
        selected, regrets, oracle_best, per_run_rho, epochs = [], [], [], [], []
        pooled_x, pooled_y = [], []
        for label, _, history in runs:
            test = history["test_target_accuracy"].astype(float).to_numpy()
            score = history[column(criterion)].astype(float).to_numpy()
            i = select_epoch(history, criterion)
            best = float(np.nanmax(test)) if np.isfinite(test).any() else float("nan")
            selected.append(test[i])
            oracle_best.append(best)
            regrets.append(best - test[i])
            epoch = int(history["epoch"].iloc[i]) if "epoch" in history else i
            epochs.append(f"{label}:{epoch}")
            per_run_rho.append(_spearman(score, test))
            pooled_x.append(score)
            pooled_y.append(test)
            details.append({"criterion": criterion, "run": label, "selected_epoch": epoch,
                            "test_target_accuracy": test[i], "oracle_best": best, "regret": best - test[i]})
        rows.append({
            "criterion": criterion, "uses_target_labels": criterion in ORACLES, "n_runs": len(runs),
            "selected_test_target_accuracy_mean": _nanstat(selected, "mean"),
            "selected_test_target_accuracy_std": _nanstat(selected, "std"),
            "regret_mean": _nanstat(regrets, "mean"), "regret_std": _nanstat(regrets, "std"),
            "oracle_best_test_target_accuracy_mean": _nanstat(oracle_best, "mean"),
            "spearman_pooled": _spearman(np.concatenate(pooled_x), np.concatenate(pooled_y)),
            "spearman_per_run_mean": _nanstat(per_run_rho, "mean"),
            "selected_epochs": "; ".join(epochs),
        })
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    title = "Model selection: target test accuracy of the epoch each criterion selects"
    write_text_atomic(out_csv, f"# {title}. Data: {data_description}\n"
                      + table.to_csv(index=False, float_format="%.4f"))
    write_text_atomic(out_md, _selection_markdown(table, pd.DataFrame(details), title, data_description,
                                                  [label for label, _, _ in runs], left_out))
    _selection_figure(table, out_png, title)
    return table


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def _selection_markdown(table, details, title: str, data_description: str, labels: list[str],
                        left_out: list[str]) -> str:
    lines = [f"# {title}", "", f"Data: {data_description}.", "",
             f"Runs ({len(labels)}): " + ", ".join(f"`{label}`" for label in labels) + ".", ""]
    if left_out:
        lines += [f"Left out ({len(left_out)}): " + ", ".join(f"`{label}`" for label in left_out) + ": "
                  + ", ".join(f"`{m}`" for m in LEFT_OUT_METHODS) + " trains on the target's labels (an oracle, "
                  "not domain adaptation) and logs the simulated domain as its target.", ""]
    lines += ["Each criterion selects, within each run, the logged epoch with its highest validation score (ties: "
              "lower source validation loss). *Selected*: target **test** accuracy of that epoch (mean ± std over "
              "runs); *regret*: the run's best target test accuracy over its epochs minus the selected one; "
              "*ρ*: Spearman rank correlation between the criterion and the target test accuracy, over all epochs "
              "of all runs pooled and the mean of per-run values. Every criterion is oriented so that higher is "
              "better. `oracle_target_accuracy` reads target validation labels: a reference, not a usable "
              "criterion. Target test accuracies are logged per epoch for this table only; they are never used "
              "for training or selection.", "",
              "| criterion | selected | regret | oracle best | ρ pooled | ρ per run |",
              "|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        name = f"{r.criterion} (oracle)" if r.uses_target_labels else r.criterion
        lines.append(f"| {name} | {_fmt(r.selected_test_target_accuracy_mean)} ± "
                     f"{_fmt(r.selected_test_target_accuracy_std)} | {_fmt(r.regret_mean)} ± {_fmt(r.regret_std)} | "
                     f"{_fmt(r.oracle_best_test_target_accuracy_mean)} | {_fmt(r.spearman_pooled, 2)} | "
                     f"{_fmt(r.spearman_per_run_mean, 2)} |")
    lines += ["", "## Selected epoch per run", "", "| criterion | run | epoch | target test accuracy | regret |",
              "|---|---|---|---|---|"]
    for _, d in details.iterrows():
        lines.append(f"| {d.criterion} | `{d.run}` | {d.selected_epoch} | {_fmt(d.test_target_accuracy)} | "
                     f"{_fmt(d.regret)} |")
    return "\n".join(lines) + "\n"


def _selection_figure(table, out_png, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [c.replace("_", " ") for c in table.criterion]
    y = np.arange(len(table))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 0.55 * len(table) + 2.2), sharey=True)
    colours = ["0.6" if oracle else "C0" for oracle in table.uses_target_labels]
    ax1.barh(y, table.selected_test_target_accuracy_mean, xerr=table.selected_test_target_accuracy_std.fillna(0),
             color=colours, capsize=3)
    oracle = table.oracle_best_test_target_accuracy_mean.iloc[0]
    if math.isfinite(oracle):
        ax1.axvline(oracle, color="k", ls="--", lw=1, label=f"best epoch per run (oracle), mean {oracle:.3f}")
        ax1.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=8, frameon=False)
    low = np.nanmin(np.r_[table.selected_test_target_accuracy_mean.to_numpy(dtype=float), oracle])
    ax1.set_xlim(max(0.0, (low if math.isfinite(low) else 0.5) - 0.1), 1.0)
    ax1.set_yticks(y, names)
    ax1.invert_yaxis()
    ax1.set_xlabel("target test accuracy of the selected epoch (mean ± std over runs)")
    h = 0.38
    ax2.barh(y - h / 2, table.spearman_pooled.fillna(0), height=h, label="pooled over runs", color="C1")
    ax2.barh(y + h / 2, table.spearman_per_run_mean.fillna(0), height=h, label="mean per run", color="C2")
    ax2.axvline(0, color="k", lw=0.8)
    ax2.set_xlim(-1, 1)
    ax2.set_xlabel("Spearman ρ with target test accuracy")
    ax2.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=8, frameon=False, ncol=2)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
