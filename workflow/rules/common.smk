from pathlib import Path

from snakemake.exceptions import WorkflowError

from deepmerge_da.config import ConfigError, load_presets, run_hyperparameters, validate_config
from deepmerge_da.methods import METHODS


try:
    validate_config(config, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml")
    PRESETS = load_presets(config["presets_file"])
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

ENV = "../../envs/deepmerge.yaml"
RUN_DIR = "results/runs/{pair}/{network}/{method}/seed{seed}"


wildcard_constraints:
    pair="sim2sim|sim2real",
    domain="source|target",
    network="deepmerge|resnet18",
    method="|".join(METHODS),
    seed=r"\d+",


def sim2real_synthetic_domains():
    """The sim2real domains rendered by the synthetic universe (the target may be real cutouts)."""
    pairs = config["data"]["pairs"]
    return "source|target" if pairs.get("sim2real", {}).get("source", "synthetic") == "synthetic" else "source"


def runs(pair=None):
    """Every (pair, network, method, seed) of the experiment grid, optionally of one pair."""
    return [
        dict(pair=p, network=n, method=m, seed=s)
        for p, grid in config["experiments"].items()
        if pair in (None, p)
        for n in grid["networks"]
        for m in grid["methods"]
        for s in grid["seeds"]
    ]


def run_hp(wildcards):
    return run_hyperparameters(config, PRESETS, wildcards.pair, wildcards.network, wildcards.method)


def tl_init_checkpoint(wildcards):
    """The checkpoint that initialises a transfer-learning run (config training.tl_init)."""
    if wildcards.method != "tl_mmd":
        return []
    init = config["training"].get("tl_init", {"network": "deepmerge", "method": "mmd", "seed": 1})
    return f"{RUN_DIR}/model.pt".format(pair="sim2sim", **init)


TABLES = {"sim2sim": "table1_sim2sim", "sim2real": "table2_sim2real"}
PAIR_OF_TABLE = {table: pair for pair, table in TABLES.items()}


wildcard_constraints:
    table="|".join(TABLES.values()),


def describe_data(pair):
    """One line that says which data a table came from."""
    data = config["data"]["pairs"][pair]
    if data["source"] == "local":
        return (f"{pair}: synthetic source (embedded universe, data seed {config['data']['seed']}); "
                f"target = real SDSS cutouts from {config['data']['sdss']['cutout_dir']}")
    if data["source"] == "remote":
        return (f"{pair}: synthetic source (embedded universe, data seed {config['data']['seed']}); "
                "target = real SDSS cutouts fetched from SkyServer (config data.remote)")
    if data["source"] == "published":
        return f"{pair}: the authors' published images (config data.published), converted to our format"
    return (f"{pair}: the embedded synthetic universe (data seed {config['data']['seed']}, "
            f"parameters in config data.pairs.{pair}.synthetic) -- not the paper's Illustris data")


def all_outputs():
    outputs = []
    for pair in config["experiments"]:
        outputs += expand("results/tables/{table}.{ext}", table=TABLES[pair], ext=["csv", "md"])
    return outputs
