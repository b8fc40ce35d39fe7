"""Tables of test metrics, ours beside the paper's, as CSV, Markdown and LaTeX.

Three kinds, each for one pair (sim2sim or sim2real):

- ``metrics`` (Tables 1 and 2): the six metrics of one seed per (network, method), like the paper;
- ``confusion`` (Tables B1 and B3): the normalised confusion matrices of the same runs;
- ``seeds`` (Tables B2 and B4): DeepMerge's metrics as mean and standard deviation over seeds.

Every table has the paper's published value beside ours (``*_paper``) and the difference (``*_diff``).

Collapsed runs -- runs that call at least 99 % of the target test images one class (``target_collapsed`` in their
``metrics.json``, :func:`deepmerge_da.report.metrics.collapse_report`) -- are flagged, never silently averaged in: the
``metrics`` and ``confusion`` tables have a ``collapsed`` column (true on both rows of such a run; empty for a
``metrics.json`` written before the flag existed) and their method cells read ``<method> (collapsed)``; the
``seeds`` tables count them in ``n_collapsed`` and their method cells say e.g. "2 of 3 seeds collapsed to one
class" (those seeds stay in the mean and standard deviation).

Methods the paper does not have (:data:`BEYOND_THE_PAPER`) have empty paper columns and their method cells read
``<method> (beyond the paper)``.
"""
from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pandas as pd

from deepmerge_da.grid import BEYOND_THE_PAPER
from deepmerge_da.io.atomic import write_text_atomic
from deepmerge_da.report.metrics import COLLAPSE_SHARE, METRICS

# Names of the paper's tables -> ours.
PAPER_METHODS = {"noDA": "noda", "MMD": "mmd", "MMD+F+EM": "mmd_fisher_em", "ADA": "ada",
                 "ADA+F+EM": "ada_fisher_em", "TL+MMD": "tl_mmd"}
PAPER_NETWORKS = {"DeepMerge": "deepmerge", "ResNet18": "resnet18"}
PAPER_TABLE = {"sim2sim": "table1_sim2sim.csv", "sim2real": "table2_sim2real.csv"}
KEY = ["pair", "network", "method", "domain"]
# The normalised confusion matrix as the paper's Tables B1/B3 name its cells: P(predicted | true).
CONFUSION = {"p_m_given_m": (1, 1), "p_nm_given_m": (1, 0), "p_m_given_nm": (0, 1), "p_nm_given_nm": (0, 0)}
KINDS = ("metrics", "confusion", "seeds")
TITLES = {
    ("metrics", "sim2sim"): "Table 1: simulated-to-simulated test metrics",
    ("metrics", "sim2real"): "Table 2: simulated-to-real test metrics",
    ("confusion", "sim2sim"): "Table B1: simulated-to-simulated normalised confusion matrices",
    ("confusion", "sim2real"): "Table B3: simulated-to-real normalised confusion matrices",
    ("seeds", "sim2sim"): "Table B2: simulated-to-simulated DeepMerge test metrics over seeds (mean ± std)",
    ("seeds", "sim2real"): "Table B4: simulated-to-real DeepMerge test metrics over seeds (mean ± std)",
}


def _read_paper_csv(name: str) -> pd.DataFrame:
    text = resources.files("deepmerge_da").joinpath("report/paper", name).read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    df = pd.read_csv(pd.io.common.StringIO("\n".join(lines)))
    df = df.rename(columns={"experiment": "method", "dataset": "pair"})
    df["method"] = df["method"].map(PAPER_METHODS)
    if "network" in df:
        df["network"] = df["network"].map(PAPER_NETWORKS)
    return df


def paper_table(pair: str) -> pd.DataFrame:
    """The paper's published metrics for a pair (Table 1 or 2), in our column names."""
    df = _read_paper_csv(PAPER_TABLE[pair])
    df["pair"] = pair
    return df[KEY + list(METRICS)]


def paper_confusion(pair: str) -> pd.DataFrame:
    """Tables B1/B3 of the paper for a pair."""
    df = _read_paper_csv("confusion_B1_B3.csv")
    return df[df["pair"] == pair][KEY + list(CONFUSION)]


def paper_seeds(pair: str) -> pd.DataFrame:
    """Tables B2/B4 of the paper (DeepMerge, ten seeds) for a pair: one row per method and domain."""
    df = _read_paper_csv("tableB2_B4_seeds.csv")
    df = df[df["pair"] == pair]
    rows = []
    for method, group in df.groupby("method", sort=False):
        for domain in ("source", "target"):
            row = {"pair": pair, "network": "deepmerge", "method": method, "domain": domain}
            for _, r in group.iterrows():
                row[r["metric"]] = r[f"{domain}_mean"]
                row[f"{r['metric']}_std"] = r[f"{domain}_std"]
            rows.append(row)
    return pd.DataFrame(rows, columns=KEY + [c for m in METRICS for c in (m, f"{m}_std")])


def collect_metrics(metrics_paths: list[str]) -> pd.DataFrame:
    """One row per run and domain from ``metrics.json`` files (the six metrics, the confusion cells and whether
    the run collapsed on the target: None when the file does not say)."""
    rows = []
    for path in metrics_paths:
        with open(path) as f:
            m = json.load(f)
        for domain in ("source", "target"):
            confusion = m[domain]["confusion_normalised"]
            rows.append({"pair": m["pair"], "network": m["network"], "method": m["method"], "seed": m["seed"],
                         "domain": domain, **{k: m[domain][k] for k in METRICS},
                         **{k: confusion[i][j] for k, (i, j) in CONFUSION.items()},
                         "collapsed": m.get("target_collapsed")})
    return pd.DataFrame(rows, columns=KEY[:3] + ["seed", "domain"] + list(METRICS) + list(CONFUSION) + ["collapsed"])


def _sorted(table: pd.DataFrame) -> pd.DataFrame:
    """Source rows before target rows, networks together, methods in the order the runs came."""
    order = {"source": 0, "target": 1}
    return table.sort_values(["domain", "network"], key=lambda s: s.map(order) if s.name == "domain" else s,
                             kind="stable").reset_index(drop=True)


def _beside_paper(ours: pd.DataFrame, paper: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    table = ours.merge(paper.rename(columns={c: f"{c}_paper" for c in paper.columns if c not in KEY}),
                       on=KEY, how="left")
    for c in columns:
        if f"{c}_paper" not in table:
            table[f"{c}_paper"] = np.nan
        table[f"{c}_diff"] = table[c] - table[f"{c}_paper"]
    return table


def first_seed_runs(ours: pd.DataFrame) -> pd.DataFrame:
    """The run of the lowest seed per (network, method): the paper's Tables 1, 2, B1 and B3 are one seed."""
    first = ours.groupby(["network", "method"], sort=False)["seed"].transform("min")
    return ours[ours["seed"] == first]


def pair_table(metrics_paths: list[str], pair: str) -> pd.DataFrame:
    """Tables 1/2: the metrics of the first seed of each (network, method) beside the paper's."""
    ours = first_seed_runs(collect_metrics(metrics_paths))
    table = ours[KEY + ["seed", "collapsed"] + list(METRICS)].assign(n_seeds=1)
    table = _sorted(_beside_paper(table, paper_table(pair), list(METRICS)))
    return table[KEY + list(METRICS) + [f"{m}_paper" for m in METRICS]
                 + [f"{m}_diff" for m in METRICS] + ["n_seeds", "seed", "collapsed"]]


def confusion_table(metrics_paths: list[str], pair: str) -> pd.DataFrame:
    """Tables B1/B3: normalised confusion cells P(predicted | true) of the first seed beside the paper's."""
    ours = first_seed_runs(collect_metrics(metrics_paths))
    table = _sorted(_beside_paper(ours[KEY + ["seed", "collapsed"] + list(CONFUSION)], paper_confusion(pair),
                                  list(CONFUSION)))
    return table[KEY + list(CONFUSION) + [f"{c}_paper" for c in CONFUSION]
                 + [f"{c}_diff" for c in CONFUSION] + ["seed", "collapsed"]]


def seeds_table(metrics_paths: list[str], pair: str) -> pd.DataFrame:
    """Tables B2/B4: DeepMerge's metrics, mean and sample standard deviation over seeds, beside the paper's."""
    ours = collect_metrics(metrics_paths)
    ours = ours[ours["network"] == "deepmerge"]
    grouped = ours.groupby(KEY, sort=False)
    table = grouped[list(METRICS)].mean()
    table = table.join(grouped[list(METRICS)].std(ddof=1).add_suffix("_std"))
    table["n_seeds"] = grouped.size()
    # Unknown (metrics.json files older than the flag) unless every seed says.
    table["n_collapsed"] = grouped["collapsed"].agg(
        lambda flags: flags.astype(bool).sum() if flags.notna().all() else pd.NA).astype("Int64")
    table = _sorted(_beside_paper(table.reset_index(), paper_seeds(pair), list(METRICS)))
    return table[KEY + [c for m in METRICS for c in (m, f"{m}_std")]
                 + [c for m in METRICS for c in (f"{m}_paper", f"{m}_std_paper")]
                 + [f"{m}_diff" for m in METRICS] + ["n_seeds", "n_collapsed"]]


def _fmt(value, digits: int = 2) -> str:
    return "–" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"


def _paper_mean_std(row, column: str) -> str:
    mean = row[f"{column}_paper"]
    return "–" if np.isnan(mean) else f"{_fmt(mean)} ± {_fmt(row[f'{column}_std_paper'], 3)}"


def _method_cell(row, kind: str) -> str:
    """The method, marked when the paper does not have it, with the collapse flag of its run(s)."""
    notes = ["beyond the paper"] if row.method in BEYOND_THE_PAPER else []
    if kind == "seeds":
        n = row["n_collapsed"]
        if pd.notna(n) and n:
            notes.append(f"{int(n)} of {int(row.n_seeds)} seeds collapsed to one class")
    elif pd.notna(row["collapsed"]) and bool(row["collapsed"]):
        notes.append("collapsed")
    return f"{row.method} ({'; '.join(notes)})" if notes else row.method


def _cells(table: pd.DataFrame, kind: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the human-readable tables: each cell 'ours (paper)'."""
    columns = list(CONFUSION) if kind == "confusion" else list(METRICS)
    head = ["network", "method", "domain"] + columns
    rows = []
    for _, r in table.iterrows():
        if kind == "seeds":
            cells = [f"{_fmt(r[c])} ± {_fmt(r[f'{c}_std'], 3)} ({_paper_mean_std(r, c)})" for c in columns]
        else:
            cells = [f"{_fmt(r[c])} ({_fmt(r[f'{c}_paper'])})" for c in columns]
        rows.append([r.network, _method_cell(r, kind), r.domain] + cells)
    return head, rows


def _legend(kind: str, table: pd.DataFrame) -> str:
    collapsed = (f"A collapsed run calls at least {100 * COLLAPSE_SHARE:g} % of the target test images one class: "
                 "its metrics are those of a constant classifier.")
    beyond = (" Methods marked (beyond the paper) are not in the paper: they have no paper values."
              if table["method"].isin(BEYOND_THE_PAPER).any() else "")
    if kind == "seeds":
        n = sorted(set(table["n_seeds"].astype(int)))
        text = (f"Each cell: ours mean ± std over {', '.join(map(str, n))} seeds (paper: mean ± std over 10 seeds); "
                "test splits.")
        return text + (f" {collapsed} Collapsed seeds are included in the mean ± std."
                       if table["n_collapsed"].fillna(0).gt(0).any() else "") + beyond
    what = "P(predicted class | true class) on the test split" if kind == "confusion" else "test split"
    text = f"Each cell: ours (paper). Ours: {what} of the lowest seed's run; paper: its published value."
    text += f" {collapsed}" if table["collapsed"].eq(True).any() else ""
    text += beyond
    pair = table["pair"].iloc[0] if len(table) else None
    missing = [n for n in PAPER_NETWORKS.values() if pair and n in set(paper_table(pair)["network"])
               and n not in set(table["network"])]
    return text + "".join(f" The paper's {n} rows have no counterpart here: {n} is not in this run's grid "
                          f"(experiments.{pair}.networks); config/paper_scale.yaml trains it." for n in missing)


def to_markdown(table: pd.DataFrame, title: str, data_description: str, kind: str = "metrics") -> str:
    head, rows = _cells(table, kind)
    lines = [f"# {title}", "", f"Data: {data_description}.", "", _legend(kind, table), "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines) + "\n"


def _latex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"),
                 ("±", r"$\pm$"), ("–", "--"), ("|", r"$|$")):
        text = text.replace(a, b)
    return text


def to_latex(table: pd.DataFrame, title: str, data_description: str, kind: str = "metrics") -> str:
    """A ``table`` environment with a booktabs tabular (needs ``\\usepackage{booktabs}``)."""
    head, rows = _cells(table, kind)
    lines = [r"\begin{table*}", r"\centering",
             rf"\caption{{{_latex_escape(title)}. {_latex_escape(_legend(kind, table))} "
             rf"Data: {_latex_escape(data_description)}.}}",
             r"\begin{tabular}{" + "l" * 3 + "c" * (len(head) - 3) + "}", r"\toprule",
             " & ".join(_latex_escape(h) for h in head) + r" \\", r"\midrule"]
    lines += [" & ".join(_latex_escape(c) for c in cells) + r" \\" for cells in rows]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table*}"]
    return "\n".join(lines) + "\n"


BUILDERS = {"metrics": pair_table, "confusion": confusion_table, "seeds": seeds_table}


def render_table(metrics_paths: list[str], *, kind: str, pair: str, csv_path: str, md_path: str, tex_path: str,
                 data_description: str) -> pd.DataFrame:
    """Write one table of ``kind`` (metrics, confusion or seeds) as CSV (first line a ``#`` comment), Markdown
    and LaTeX."""
    if kind not in BUILDERS:
        raise ValueError(f"unknown table kind {kind!r}; choose one of {', '.join(KINDS)}")
    table = BUILDERS[kind](metrics_paths, pair)
    title = TITLES[(kind, pair)]
    write_text_atomic(csv_path, f"# {title}. Data: {data_description}\n"
                      + table.to_csv(index=False, float_format="%.4f"))
    write_text_atomic(md_path, to_markdown(table, title, data_description, kind))
    write_text_atomic(tex_path, to_latex(table, title, data_description, kind))
    return table
