from pathlib import Path
from types import SimpleNamespace

from snakemake.exceptions import WorkflowError

from deepmerge_da.config import SCHEMA_PATH, ConfigError, load_presets, train_arguments, validate_config
from deepmerge_da.grid import METHODS, NETWORKS, PAIRS

# Checks the config and fills in the schema's defaults: the rules read every key that has one directly.
try:
    validate_config(config, Path(workflow.basedir) / SCHEMA_PATH)
    PRESETS = load_presets(config["presets_file"])
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

ENV = "../../envs/deepmerge.yaml"
RUN_DIR = "results/runs/{pair}/{network}/{method}/seed{seed}"


wildcard_constraints:
    pair="|".join(PAIRS),
    domain="source|target",
    network="|".join(NETWORKS),
    method="|".join(METHODS),
    seed=r"\d+",


def seeds_of(pair, network):
    """The seeds of a (pair, network): experiments.<pair>.seeds is a list, or a list per network."""
    seeds = config["experiments"][pair]["seeds"]
    return seeds[network] if isinstance(seeds, dict) else seeds


def runs(pair=None, network=None, methods=None, first_seed_only=False):
    """The (pair, network, method, seed) runs of the experiment grid, optionally filtered."""
    return [
        dict(pair=p, network=n, method=m, seed=s)
        for p, grid in config["experiments"].items()
        if grid and pair in (None, p)
        for n in grid["networks"]
        if network in (None, n)
        for m in grid["methods"]
        if methods is None or m in methods
        for s in (seeds_of(p, n)[:1] if first_seed_only else seeds_of(p, n))
    ]


def run_files(name, **selection):
    """One file (e.g. metrics.json) of every selected run."""
    return [f"{RUN_DIR}/{name}".format(**r) for r in runs(**selection)]


def given(options, *keys):
    """The ``keys`` that a config mapping sets: options of a package function whose own defaults apply to the
    others (they are not restated in the schema or the rules)."""
    return {key: options[key] for key in keys if key in options}


def tl_init_checkpoint(wildcards):
    """The checkpoint that initialises a transfer-learning run (config training.tl_init)."""
    if wildcards.method != "tl_mmd":
        return []
    return f"{RUN_DIR}/model.pt".format(pair="sim2sim", **config["training"]["tl_init"])


def train_call(wildcards):
    """The keyword arguments of deepmerge_da.training.loop.train_run for this run but its files and threads: those
    that `deepmerge-da train` trains with too (deepmerge_da.config.train_arguments). A function of the wildcards
    alone, so that Snakemake reruns the run when one of them changes (a function of input or output is left out
    of that check)."""
    return train_arguments(
        config,
        PRESETS,
        pair=wildcards.pair,
        network=wildcards.network,
        method=wildcards.method,
        seed=int(wildcards.seed),
    )


# The pairs to train: a pair's experiments block set to null (e.g. in a configfile on top) switches it off.
TRAINED_PAIRS = [pair for pair, grid in config["experiments"].items() if grid]


# Table name -> (kind, pair); the kinds are explained in deepmerge_da.report.tables.
TABLES = {
    "table1_sim2sim": ("metrics", "sim2sim"),
    "table2_sim2real": ("metrics", "sim2real"),
    "tableB1_sim2sim_confusion": ("confusion", "sim2sim"),
    "tableB3_sim2real_confusion": ("confusion", "sim2real"),
    "tableB2_sim2sim_seeds": ("seeds", "sim2sim"),
    "tableB4_sim2real_seeds": ("seeds", "sim2real"),
}


wildcard_constraints:
    table="|".join(TABLES),


def tables_of(pair):
    """The tables a pair's grid can fill: B2/B4 only aggregate DeepMerge over its seeds."""
    networks = config["experiments"][pair]["networks"]
    return [t for t, (kind, p) in TABLES.items() if p == pair and (kind != "seeds" or "deepmerge" in networks)]


def table_metrics(wildcards):
    kind, pair = TABLES[wildcards.table]
    if kind == "seeds":
        return run_files("metrics.json", pair=pair, network="deepmerge")
    return run_files("metrics.json", pair=pair, first_seed_only=True)


def describe_data(pair):
    """One line that says which data a table came from, by config key and data set name (never a machine's path:
    tables and figures are tracked)."""
    data = config["data"]["pairs"][pair]
    if data["source"] == "local":
        dataset = Path(config["data"]["sdss"]["cutout_dir"]).resolve().name
        return (
            f"{pair}: synthetic source (embedded universe, data seed {config['data']['seed']}); "
            f"target = real SDSS cutouts (data.sdss.cutout_dir, dataset '{dataset}')"
        )
    if data["source"] == "remote":
        return (
            f"{pair}: synthetic source (embedded universe, data seed {config['data']['seed']}); "
            "target = real SDSS cutouts fetched from SkyServer (config data.remote)"
        )
    if data["source"] == "published":
        return f"{pair}: the authors' published images (config data.published), converted to our format"
    if data["source"] == "illustris":
        target = "the same galaxies with sky noise" if pair == "sim2sim" else "the embedded synthetic universe"
        return (
            f"{pair}: Illustris galaxies (SUNRISE images from the Illustris API, config data.illustris), observed as "
            f"configured in data.pairs.{pair}.synthetic; target = {target} (data seed {config['data']['seed']})"
        )
    return (
        f"{pair}: the embedded synthetic universe (data seed {config['data']['seed']}, "
        f"parameters in config data.pairs.{pair}.synthetic) -- not the paper's Illustris data"
    )


# The paper's Fig. 5 (t-SNE) and Figs. 6/7 (Grad-CAM) compare these methods, when the grid has them.
TSNE_METHODS = ("noda", "mmd", "mmd_fisher_em")
GRADCAM_METHODS = {"sim2sim": ("noda", "mmd", "mmd_fisher_em"), "sim2real": ("noda", "tl_mmd", "mmd")}
PAPER_FIGURE = {
    ("sim2sim", "examples"): "Fig. 1",
    ("sim2real", "examples"): "Fig. 2",
    ("sim2sim", "metrics"): "Fig. 3 (left)",
    ("sim2real", "metrics"): "Fig. 4 (left)",
    ("sim2sim", "roc"): "Fig. 3 (right)",
    ("sim2real", "roc"): "Fig. 4 (right)",
    ("sim2sim", "scores"): "Fig. B1",
    ("sim2real", "scores"): "Fig. B2",
    ("sim2sim", "tsne"): "Fig. 5",
    ("sim2real", "tsne"): "Fig. 5 (for sim2real)",
    ("sim2sim", "gradcam"): "Fig. 6",
    ("sim2real", "gradcam"): "Fig. 7",
}


def first_seed_models(pair, methods):
    """{method: model.pt of its lowest seed} for the DeepMerge runs of ``methods`` in the grid (config order)."""
    return {
        r["method"]: f"{RUN_DIR}/model.pt".format(**r)
        for r in runs(pair=pair, network="deepmerge", methods=methods, first_seed_only=True)
    }


def figure_outputs(pair):
    grid = config["experiments"][pair]
    outputs = expand("results/figures/{pair}/examples.{ext}", pair=pair, ext=["png", "pdf"])
    outputs += expand(
        "results/figures/{pair}/{network}_{summary}.{ext}",
        pair=pair,
        network=grid["networks"],
        summary=["metrics", "roc", "scores"],
        ext=["png", "pdf"],
    )
    if first_seed_models(pair, TSNE_METHODS):
        outputs += expand("results/figures/{pair}/tsne.{ext}", pair=pair, ext=["png", "pdf"])
    if first_seed_models(pair, GRADCAM_METHODS[pair]):
        outputs += expand("results/figures/{pair}/gradcam.{ext}", pair=pair, ext=["png", "pdf"])
    outputs += [
        "results/figures/{pair}/training/{network}_{method}_seed{seed}.png".format(**r) for r in runs(pair=pair)
    ]
    return outputs


def caption_params(kind):
    """What every figure's caption and footnote say: the paper's figure and the data behind it."""
    return dict(
        data_description=lambda w: describe_data(w.pair),
        paper_figure=lambda w: PAPER_FIGURE.get((w.pair, kind if kind != "summary" else w.summary), "–"),
    )


PREDICT = config.get("predict") or {}  # absent or null: nothing to predict


def predict_options(name):
    """The options that predict entry ``name`` sets, for deepmerge_da.predict.ensemble.predict (its defaults apply
    to the others); catalogue cutouts come from data.remote.sdss.base_url when that is set and the entry sets none."""
    options = given(PREDICT[name], "threshold", "filters", "normalisation", "sdss_base_url")
    remote_sdss = config["data"]["remote"]["sdss"]
    if "base_url" in remote_sdss:
        options.setdefault("sdss_base_url", remote_sdss["base_url"])
    return options


def predict_outputs():
    """The predictions CSV of every configured `predict` name (none without a `predict` key)."""
    return [f"results/predictions/{name}.csv" for name in PREDICT]


def all_outputs():
    outputs = []
    for pair in TRAINED_PAIRS:
        outputs += expand("results/tables/{table}.{ext}", table=tables_of(pair), ext=["csv", "md", "tex"])
        outputs += figure_outputs(pair)
        outputs += expand("results/tables/selection_{pair}.{ext}", pair=pair, ext=["csv", "md"])
        outputs.append(f"results/figures/{pair}/selection.png")
    # Every file of every run as well, and the checkpoint that initialises tl_mmd (it may be outside the grid):
    # Snakemake does not remake a deleted intermediate file (a run's model.pt) while all that depends on it is up
    # to date (snakemake/snakemake#1978); named here, it is remade.
    outputs += [path.format(**run) for run in runs() for path in rules.train.output]
    outputs += sorted({tl_init_checkpoint(SimpleNamespace(**run)) for run in runs(methods=["tl_mmd"])})
    return outputs + predict_outputs() + REALISM_OUTPUTS + ["results/environment.json"]
