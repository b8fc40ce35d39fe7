"""Configuration: a bad key or value stops the run with one message naming it."""
import copy
from pathlib import Path

import pytest
import yaml

from conftest import REPO, snakemake
from deepmerge_da.config import ConfigError, load_presets, run_hyperparameters, validate_config

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
