"""Configuration: a bad key or value stops the run with one message naming it."""
import copy
from pathlib import Path

import pytest
import yaml

from deepmerge_da.config import ConfigError, load_presets, max_epochs, run_hyperparameters, validate_config
from helpers import REPO, TEST_CONFIG, snakemake

SCHEMA = REPO / "workflow/schemas/config.schema.yaml"


@pytest.fixture
def config():
    return yaml.safe_load((REPO / "config/config.yaml").read_text())


def test_default_config_is_valid(config):
    validate_config(config, SCHEMA)


def layered(base: dict, top: dict) -> dict:
    """``top`` merged into ``base`` as Snakemake merges a --configfile (mappings recursively)."""
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            layered(base[key], value)
        else:
            base[key] = value
    return base


@pytest.mark.parametrize("name", ["config/paper_scale.yaml", "config/examples/sim2real_real_sdss.yaml",
                                  "config/examples/sim2sim_resnet18.yaml", ".test/config/config.yaml"])
def test_shipped_configfiles_are_valid_on_top_of_the_default(config, name, monkeypatch):
    top = yaml.safe_load((REPO / name).read_text())
    monkeypatch.chdir(REPO)  # a relative data.sdss.cutout_dir is taken from where Snakemake runs
    cutout_dir = top.get("data", {}).get("sdss", {}).get("cutout_dir")
    if cutout_dir and not Path(cutout_dir).is_dir():
        pytest.skip(f"{name}: no local SDSS cutouts at {REPO / cutout_dir}")
    validate_config(layered(config, top), SCHEMA)


@pytest.mark.parametrize("edit, named", [
    (lambda c: c["training"].update(max_epoch=3), "training"),
    (lambda c: c["training"].update(batch_size=0), "training.batch_size"),
    (lambda c: c["experiments"]["sim2sim"].update(methods=["noda", "dann"]), "experiments.sim2sim.methods.1"),
    (lambda c: c["data"].update(split_fractions=[0.5, 0.1, 0.1]), "data.split_fractions"),
    (lambda c: c["experiments"]["sim2sim"].update(networks=["deepmerge", "resnet18"], seeds={"deepmerge": [1]}),
     "experiments.sim2sim.seeds': no seeds for network 'resnet18'"),
    (lambda c: c["experiments"]["sim2sim"].update(seeds={"deepmerge": [-1]}), "experiments.sim2sim.seeds"),
    (lambda c: c["training"].update(max_epochs_by_network={"resnet18": 0}),
     "training.max_epochs_by_network.resnet18"),
    (lambda c: c["data"]["pairs"]["sim2sim"]["synthetic"].update(tidal_colour=1), "tidal_colour"),
    (lambda c: c["training"]["overrides"].update({"sim2sim": {"deepmerge": {"mmd": {"lr": -1}}}}),
     "training.overrides.sim2sim.deepmerge.mmd.lr"),
])
def test_bad_key_or_value_is_named(config, edit, named):
    bad = copy.deepcopy(config)
    edit(bad)
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        validate_config(bad, SCHEMA)


def test_overrides_apply_on_top_of_presets(config):
    presets = load_presets(REPO / config["presets_file"])
    config["training"]["overrides"] = {"sim2sim": {"deepmerge": {"mmd": {"lr": 0.005}}}}
    hp = run_hyperparameters(config, presets, "sim2sim", "deepmerge", "mmd")
    assert hp["lr"] == 0.005 and hp["beta1"] == 0.7 and hp["lambda_tl"] == 1.0
    assert run_hyperparameters(config, presets, "sim2sim", "deepmerge", "noda")["lr"] == 0.001
    with pytest.raises(ConfigError, match="sim2real/resnet18/mmd"):
        run_hyperparameters(config, presets, "sim2real", "resnet18", "mmd")


def test_epoch_cap_by_network_beats_by_pair_beats_the_global_one(config):
    config["training"].update(max_epochs=7, max_epochs_by_pair={"sim2real": 5}, max_epochs_by_network={"resnet18": 2})
    validate_config(config, SCHEMA)
    assert max_epochs(config, "sim2sim", "deepmerge") == 7
    assert max_epochs(config, "sim2real", "deepmerge") == 5
    assert max_epochs(config, "sim2real", "resnet18") == max_epochs(config, "sim2sim", "resnet18") == 2
    config["training"]["max_epochs_by_pair"] = {"sim2rael": 5}
    with pytest.raises(ConfigError, match=r"training\.max_epochs_by_pair"):
        validate_config(config, SCHEMA)


def test_snakemake_stops_with_one_message(workflow_copy):
    bad = workflow_copy / "bad.yaml"
    bad.write_text("training:\n  batch_size: -4\n")
    result = snakemake(workflow_copy, "-n", "--configfile", str(bad))
    assert result.returncode != 0
    assert "invalid config at 'training.batch_size'" in result.stdout + result.stderr


def test_every_physical_parameter_is_documented():
    from deepmerge_da.data.synthetic import Sim2RealParams, Sim2SimParams

    readme = (REPO / "config/README.md").read_text()
    for params in (Sim2SimParams, Sim2RealParams):
        missing = [k for k in params.describe() if f"`{k}`" not in readme]
        assert not missing, f"config/README.md does not document {missing}"


def test_validation_fills_in_the_schema_defaults(config):
    # The rules and `deepmerge-da` read these keys directly: validation is where their defaults come from.
    for key in ("selection", "amp", "compile", "augment", "freeze", "max_epochs_by_network", "overrides"):
        config["training"].pop(key, None)
    config["resources"] = {"train_threads": 3}
    del config["data"]["sdss"]
    validate_config(config, SCHEMA)
    training = config["training"]
    assert training["selection"] == "source_accuracy" and training["freeze"] == [] and training["overrides"] == {}
    assert training["tl_init"] == {"network": "deepmerge", "method": "mmd", "seed": 1}
    assert config["resources"] == {"train_threads": 3, "synthesize_threads": 2, "train_mem_mb": 4000,
                                   "train_runtime_min": 120, "train_gpus": 0}
    assert config["data"]["sdss"] == {"cutout_dir": None, "max_nonmergers": None, "realism_check": True}
    assert config["data"]["pairs"]["sim2sim"]["n_per_class"] is None
    # A default is copied, never shared between configs.
    other = yaml.safe_load((REPO / "config/config.yaml").read_text())
    validate_config(other, SCHEMA)
    other["training"]["tl_init"]["seed"] = 5
    assert training["tl_init"]["seed"] == 1


def test_a_partial_tl_init_is_merged_with_its_defaults(config):
    config["training"]["tl_init"] = {"seed": 2}
    validate_config(config, SCHEMA)
    assert config["training"]["tl_init"] == {"network": "deepmerge", "method": "mmd", "seed": 2}


def test_a_partial_tl_init_keeps_the_tl_mmd_jobs(workflow_copy):
    (workflow_copy / "partial.yaml").write_text("training:\n  tl_init: {seed: 2}\n")
    result = snakemake(workflow_copy, "-n", "--configfile", TEST_CONFIG, "partial.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = result.stdout.split("\nrule ")
    tl_mmd = [job for job in jobs if "output: results/runs/sim2real/deepmerge/tl_mmd/seed1/model.pt" in job]
    assert len(tl_mmd) == 1, result.stdout[-3000:]
    inputs = next(line for line in tl_mmd[0].splitlines() if line.strip().startswith("input:"))
    assert "results/runs/sim2sim/deepmerge/mmd/seed2/model.pt" in inputs, inputs


def test_the_package_names_are_the_schema_names():
    from deepmerge_da.cli import build_parser
    from deepmerge_da.config import SCHEMA_NAMES, load_schema
    from deepmerge_da.grid import CRITERIA, METHODS, NETWORKS, PAIRS

    raw = yaml.safe_load(SCHEMA.read_text())["$defs"]
    loaded = load_schema(SCHEMA)["$defs"]
    for name, values in SCHEMA_NAMES.items():
        assert "enum" not in raw[name] and loaded[name]["enum"] == list(values)
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    choices = {action.dest: action.choices for action in train._actions if action.choices}
    assert choices == {"pair": PAIRS, "network": NETWORKS, "method": METHODS, "selection": CRITERIA}


@pytest.mark.parametrize("edit, named", [
    (lambda c: c["training"].update(selection="best_epoch"), "'training.selection': 'best_epoch' is not one of"),
    (lambda c: c["training"].update(tl_init={"network": "resnet"}), "'training.tl_init.network': 'resnet'"),
    (lambda c: c["training"].update(tl_init={"method": "tl_mmd"}), "'training.tl_init.method': 'tl_mmd'"),
    (lambda c: c["training"].update(max_epochs_by_network={"resnet": 2}),
     "'training.max_epochs_by_network.resnet': 'resnet' is not one of"),
    (lambda c: c["training"].update(overrides={"sim2sim": {"deepmerge": {"dann": {"lr": 0.1}}}}),
     "'training.overrides.sim2sim.deepmerge.dann': 'dann' is not one of"),
    (lambda c: c["experiments"].update(sim2other=None), "'experiments.sim2other': 'sim2other' is not one of"),
    (lambda c: c["training"].update(freeze=["conv.", "convs."]),
     "'training.freeze': freeze prefix 'convs.' names no parameter of the deepmerge network"),
])
def test_a_name_the_package_does_not_define_is_named_with_its_key(config, edit, named):
    edit(config)
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        validate_config(config, SCHEMA)
