"""Bad configuration and input files are refused at start-up (or when read) with one line naming the file, key
and value: the checks common.smk runs (validate_config, load_presets), real `snakemake -n` where the workflow's
working directory matters, and real truncated HDF5 files through the `deepmerge-da` command."""
import copy
import os

import numpy as np
import pytest
import torch
import yaml

from deepmerge_da.cli import main as cli_main
from deepmerge_da.config import DEEPMERGE_IMAGE_SIZES, ConfigError, load_presets, validate_config
from deepmerge_da.io.hdf5 import ImageSet, read_image_set, write_image_set
from deepmerge_da.nn.models import build_network
from helpers import REPO, snakemake

SCHEMA = REPO / "workflow/schemas/config.schema.yaml"


@pytest.fixture
def config():
    return yaml.safe_load((REPO / "config/config.yaml").read_text())


def refused(config: dict, edit) -> str:
    """The message of the ConfigError that ``config`` edited by ``edit`` raises."""
    bad = copy.deepcopy(config)
    edit(bad)
    with pytest.raises(ConfigError) as error:
        validate_config(bad, SCHEMA)
    message = str(error.value)
    assert "\n" not in message, message
    return message


@pytest.mark.parametrize("key", ["methods", "networks", "seeds"])
def test_an_empty_grid_list_is_refused(config, key):
    message = refused(config, lambda c: c["experiments"]["sim2real"].update({key: []}))
    assert f"'experiments.sim2real.{key}'" in message and "non-empty" in message


def test_an_empty_split_is_refused(config):
    message = refused(config, lambda c: c["data"].update(split_fractions=[1.0, 0.0, 0.0]))
    assert "'data.split_fractions." in message and "0.0" in message


def test_deepmerge_sizes_are_those_its_head_takes():
    net = build_network("deepmerge").eval()
    for size in (DEEPMERGE_IMAGE_SIZES.start - 1, *DEEPMERGE_IMAGE_SIZES, DEEPMERGE_IMAGE_SIZES.stop):
        try:
            net(torch.zeros(1, 3, size, size))
            fits = True
        except RuntimeError:
            fits = False
        assert fits == (size in DEEPMERGE_IMAGE_SIZES), size
    # ResNet18 pools adaptively: the schema's smallest size trains (batch norm in training mode included).
    assert build_network("resnet18").train()(torch.zeros(2, 3, 16, 16))[0].shape == (2, 2)


@pytest.mark.parametrize("size", [64, 80, 100, 128])
def test_an_image_size_deepmerge_cannot_take_is_refused(config, size):
    message = refused(config, lambda c: c["data"].update(image_size=size))
    assert "'data.image_size'" in message and "DeepMerge" in message and f"got {size}" in message


def test_an_image_size_is_checked_against_the_networks_that_train(config):
    resnet_only = {"networks": ["resnet18"], "methods": ["noda"], "seeds": [1]}
    for size in (16, 64, 128):
        ok = copy.deepcopy(config)
        ok["data"]["image_size"] = size
        ok["experiments"] = {"sim2sim": resnet_only, "sim2real": None}
        validate_config(ok, SCHEMA)
    # A DeepMerge checkpoint that initialises tl_mmd is trained too, though no grid lists deepmerge.
    message = refused(config, lambda c: (
        c["data"].update(image_size=64),
        c["experiments"].update(sim2sim=None, sim2real=dict(resnet_only, methods=["noda", "tl_mmd"])),
        c["training"].update(tl_init={"network": "deepmerge", "method": "mmd", "seed": 1})))
    assert "'data.image_size'" in message and "training.tl_init" in message


@pytest.mark.parametrize("pair, key, value, expected", [
    ("sim2sim", "n_mergers", "forty", "n_mergers must be an integer, got 'forty'"),
    ("sim2sim", "mag_range", [24.5, 22.0], "lower bound 24.5 > upper bound 22.0"),
    ("sim2sim", "n_nonmergers", -5, "got -5"),
    ("sim2real", "target_re_kpc", [1.5, "six"], "must be a number, got 'six'"),
    ("sim2real", "jpeg_quality", True, "must be an integer, got True"),
])
def test_a_bad_physical_parameter_is_named_by_its_key(config, pair, key, value, expected):
    message = refused(config, lambda c: c["data"]["pairs"][pair]["synthetic"].update({key: value}))
    assert message.startswith(f"invalid config at 'data.pairs.{pair}.synthetic.{key}': "), message
    assert expected in message


def test_a_broken_presets_file_names_file_and_line(tmp_path):
    presets = tmp_path / "presets.yaml"
    presets.write_text("presets:\n  sim2sim:\n    deepmerge: {noda: {lr: 0.001}\n    resnet18: {}\n")
    with pytest.raises(ConfigError, match=rf"{presets}, line 4, column \d+: invalid YAML"):
        load_presets(presets)


def test_a_broken_configfile_is_located_by_snakemake_verbose(workflow_copy):
    # Snakemake 9 reads --configfile before any code of the workflow runs, and its one-line error names neither
    # the file nor the line; --verbose shows PyYAML's message, which does (config/README.md says so).
    (workflow_copy / "my.yaml").write_text("training:\n  batch_size: [4\n  max_epochs: 2\n")
    result = snakemake(workflow_copy, "-n", "--verbose", "--configfile", "my.yaml")
    assert result.returncode != 0
    assert 'in "my.yaml", line 3, column 13' in result.stdout + result.stderr


def test_a_broken_default_config_names_file_and_line(workflow_copy):
    # config/config.yaml is the file users edit; the Snakefile reads it with our loader before Snakemake's.
    default = workflow_copy / "config/config.yaml"
    default.write_text(default.read_text() + "extra: [1, 2\n")
    result = snakemake(workflow_copy, "-n")
    assert result.returncode != 0
    assert "config/config.yaml, line " in result.stdout + result.stderr
    assert "invalid YAML: expected ',' or ']'" in result.stdout + result.stderr


def test_a_local_cutout_dir_is_checked_and_named_by_its_base_name(workflow_copy, tmp_path):
    local = {"data": {"pairs": {"sim2real": {"source": "local", "filters": ["i", "r", "g"],
                                            "synthetic": {"source_n_objects": 60}}},
                      "sdss": {"cutout_dir": "no/such/cutouts"}}}
    (workflow_copy / "local.yaml").write_text(yaml.safe_dump(local))
    result = snakemake(workflow_copy, "-n", "--configfile", "local.yaml")
    assert result.returncode != 0
    assert "invalid config at 'data.sdss.cutout_dir': no directory no/such/cutouts" in result.stdout + result.stderr

    # With a directory there: what tables and figures say of their data names the key and the directory's base
    # name, not the path on this machine (a Snakefile that includes the workflow prints describe_data).
    cutouts = tmp_path / "my-cutouts"
    cutouts.mkdir()
    local["data"]["sdss"]["cutout_dir"] = str(cutouts)
    (workflow_copy / "local.yaml").write_text(yaml.safe_dump(local))
    (workflow_copy / "describe.smk").write_text('include: "Snakefile"\nprint("DATA:", describe_data("sim2real"))\n')
    result = snakemake(workflow_copy, "--list-rules", "-s", "describe.smk", "--configfile", "local.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(s for s in result.stdout.splitlines() if s.startswith("DATA:"))
    assert "(data.sdss.cutout_dir, dataset 'my-cutouts')" in line and str(tmp_path) not in line, line


def write_set(path, split=None, attrs=None, n=40):
    rng = np.random.default_rng(0)
    data = ImageSet(rng.normal(size=(n, 3, 75, 75)).astype(np.float32), (np.arange(n) % 2).astype(np.int8),
                    np.arange(n).astype(str), {"filters": ["a", "b", "c"], **(attrs or {})}, split=split)
    write_image_set(path, data)
    return path


@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_a_truncated_hdf5_file_is_named_by_the_command(tmp_path, capsys, keep):
    raw = write_set(tmp_path / "raw.h5")
    with open(raw, "r+b") as f:
        f.truncate(int(os.path.getsize(raw) * keep))
    assert cli_main(["prepare", str(raw), str(tmp_path / "prepared.h5"), "--filters", "a", "b", "c"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"deepmerge-da prepare: error: {raw}: ") and "truncated" in err, err
    assert "\n" not in err and not (tmp_path / "prepared.h5").exists()


def test_a_missing_dataset_or_attribute_names_file_and_name(tmp_path):
    split = (np.arange(40) % 5 == 0).astype(np.int8) * 2
    # A prepared set (it has a split) without its training statistics: training would stop on a bare KeyError.
    prepared = write_set(tmp_path / "prepared.h5", split=split, attrs={"channel_std": np.ones(3, np.float32)})
    with pytest.raises(ValueError, match=f"{prepared}: attribute 'channel_mean' is missing"):
        read_image_set(prepared, split="test")
    raw = write_set(tmp_path / "raw.h5")
    with pytest.raises(ValueError, match=f"{raw}: no 'split' dataset"):
        read_image_set(raw, split="train")
