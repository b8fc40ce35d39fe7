"""Tables of test metrics, ours beside the paper's, as CSV and Markdown."""
from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pandas as pd

from .atomic import write_text_atomic
from .evaluate import METRICS

# Names of the paper's tables -> ours.
PAPER_METHODS = {"noDA": "noda", "MMD": "mmd", "MMD+F+EM": "mmd_fisher_em", "ADA": "ada",
                 "ADA+F+EM": "ada_fisher_em", "TL+MMD": "tl_mmd"}
PAPER_NETWORKS = {"DeepMerge": "deepmerge", "ResNet18": "resnet18"}
PAPER_TABLE = {"sim2sim": "table1_sim2sim.csv", "sim2real": "table2_sim2real.csv"}
KEY = ["pair", "network", "method", "domain"]


def paper_table(pair: str) -> pd.DataFrame:
    """The paper's published metrics for a pair (Table 1 or 2), in our column names."""
    text = resources.files("deepmerge_da").joinpath("data/paper", PAPER_TABLE[pair]).read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    df = pd.read_csv(pd.io.common.StringIO("\n".join(lines)))
    df = df.rename(columns={"experiment": "method"})
    df["method"] = df["method"].map(PAPER_METHODS)
    df["network"] = df["network"].map(PAPER_NETWORKS)
    df["pair"] = pair
    return df[KEY + list(METRICS)]


def collect_metrics(metrics_paths: list[str]) -> pd.DataFrame:
    """One row per run and domain from ``metrics.json`` files."""
    rows = []
    for path in metrics_paths:
        with open(path) as f:
            m = json.load(f)
        for domain in ("source", "target"):
            rows.append({"pair": m["pair"], "network": m["network"], "method": m["method"], "seed": m["seed"],
                         "domain": domain, **{k: m[domain][k] for k in METRICS}})
    return pd.DataFrame(rows)


def pair_table(metrics_paths: list[str], pair: str) -> pd.DataFrame:
    """Our metrics (mean over seeds when there are several) beside the paper's, with the differences."""
    ours = collect_metrics(metrics_paths)
    grouped = ours.groupby(KEY, sort=False)
    table = grouped[list(METRICS)].mean().reset_index()
    table["n_seeds"] = grouped.size().values
    paper = paper_table(pair).rename(columns={m: f"{m}_paper" for m in METRICS})
    table = table.merge(paper, on=KEY, how="left")
    for m in METRICS:
        table[f"{m}_diff"] = table[m] - table[f"{m}_paper"]
    order = {d: i for i, d in enumerate(["source", "target"])}
    table = table.sort_values(["domain", "network"], key=lambda s: s.map(order) if s.name == "domain" else s,
                              kind="stable")
    return table[KEY + list(METRICS) + [f"{m}_paper" for m in METRICS] + [f"{m}_diff" for m in METRICS]
                 + ["n_seeds"]].reset_index(drop=True)


def _fmt(value) -> str:
    return "–" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.2f}"


def to_markdown(table: pd.DataFrame, title: str, data_description: str) -> str:
    """Each metric as 'ours (paper)'."""
    head = ["network", "method", "domain"] + list(METRICS)
    lines = [f"# {title}", "", f"Data: {data_description}.", "",
             "Each cell: ours (paper). Ours: test split of our run"
             + (" (mean over seeds)" if table["n_seeds"].max() > 1 else "") + "; paper: its published value.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in table.iterrows():
        cells = [r.network, r.method, r.domain] + [f"{_fmt(r[m])} ({_fmt(r[f'{m}_paper'])})" for m in METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_pair_table(metrics_paths: list[str], *, pair: str, csv_path: str, md_path: str,
                      data_description: str) -> pd.DataFrame:
    table = pair_table(metrics_paths, pair)
    title = {"sim2sim": "Table 1: simulated-to-simulated test metrics",
             "sim2real": "Table 2: simulated-to-real test metrics"}[pair]
    write_text_atomic(csv_path, f"# {title}. Data: {data_description}\n" + table.to_csv(index=False, float_format="%.4f"))
    write_text_atomic(md_path, to_markdown(table, title, data_description))
    return table
