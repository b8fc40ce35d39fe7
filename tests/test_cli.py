"""The command line: --help explains, errors name the bad input; `train` trains as the workflow's train rule."""
import copy
import json
import subprocess
import sys
from pathlib import Path

import yaml

from deepmerge_da.cli import build_parser, train_kwargs
from deepmerge_da.cli import main as cli_main
from helpers import REPO, snakemake, write_toy_pair


def run(*args):
    return subprocess.run([sys.executable, "-m", "deepmerge_da.cli", *args], capture_output=True, text=True)


def test_help_lists_every_step():
    out = run("--help")
    assert out.returncode == 0
    for command in ("synthesize", "prepare", "train", "lr-scan", "evaluate", "predict", "info"):
        assert command in out.stdout


def test_missing_checkpoint_is_named(tmp_path):
    out = run("info", str(tmp_path / "nope.pt"))
    assert out.returncode == 2
    assert "nope.pt" in out.stderr and "does not exist" in out.stderr


def test_help_shows_the_two_line_predict_example():
    out = run("--help")
    assert "--model run2/model.pt \\\n      --out predictions.csv" in out.stdout


# `deepmerge-da train` trains as the workflow's train rule: both call deepmerge_da.config.train_arguments on the
# config checked (and completed with the schema's defaults) as the workflow checks it.
OVERLAY = {"training": {"freeze": ["conv."], "amp": True, "max_epochs_by_network": {"deepmerge": 2},
                        "selection": "negative_entropy"}}


def merged_config(directory: Path, overlay: dict) -> Path:
    """config/config.yaml with ``overlay`` on top, as one file (``deepmerge-da train --config``), without two keys
    set to their schema default (validation fills them in again)."""
    from test_config import layered

    config = layered(yaml.safe_load((REPO / "config/config.yaml").read_text()), copy.deepcopy(overlay))
    del config["training"]["compile"], config["training"]["overrides"]
    path = directory / "merged.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def cli_train_arguments(*args) -> dict:
    """The keyword arguments `deepmerge-da train ARGS` trains with (deepmerge_da.cli.train_kwargs)."""
    return train_kwargs(build_parser().parse_args(["train", *args]))


def test_cli_train_uses_the_train_rule_arguments(workflow_copy, monkeypatch):
    (workflow_copy / "overlay.yaml").write_text(yaml.safe_dump(OVERLAY))
    # The train rule's params.train (common.smk: train_call), for the tl_mmd run, as Snakemake evaluates the config.
    (workflow_copy / "describe.smk").write_text(
        'include: "Snakefile"\n'
        "import json\n"
        "from types import SimpleNamespace as NS\n"
        "call = rules.train.params.train(NS(pair='sim2real', network='deepmerge', method='tl_mmd', seed='1'))\n"
        "print('CALL:', json.dumps(call))\n")
    result = snakemake(workflow_copy, "--list-rules", "-s", "describe.smk", "--configfile", "overlay.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    rule = json.loads(next(s for s in result.stdout.splitlines() if s.startswith("CALL:"))[len("CALL:"):])

    monkeypatch.chdir(REPO)  # the config names its presets file relative to the repository
    config = merged_config(workflow_copy, OVERLAY)
    cli = cli_train_arguments("--source", "s.h5", "--target", "t.h5", "--out", "run", "--pair", "sim2real",
                              "--network", "deepmerge", "--method", "tl_mmd", "--init", "init.pt",
                              "--config", str(config))
    assert cli.pop("threads") == yaml.safe_load((REPO / "config/config.yaml").read_text())["resources"]["train_threads"]
    # The files are the rule's input and output (workflow/scripts/train.py), the rest is params.train.
    assert {k: cli.pop(k) for k in ("source", "target", "out_dir", "init_checkpoint")} == {
        "source": "s.h5", "target": "t.h5", "out_dir": "run", "init_checkpoint": "init.pt"}
    assert cli == rule
    assert (cli["freeze"], cli["amp"], cli["max_epochs"], cli["selection"], cli["compile_model"]) == (
        ["conv."], True, 2, "negative_entropy", False)
    assert cli["hp"]["augment"] is True  # training.augment of config/config.yaml

    # An option given on the command line replaces the config's.
    cli = cli_train_arguments("--source", "s.h5", "--target", "t.h5", "--out", "run", "--pair", "sim2real",
                              "--network", "deepmerge", "--method", "mmd", "--config", str(config),
                              "--epochs", "7", "--selection", "source_accuracy", "--device", "cpu", "--threads", "3",
                              "--compile", "--set", '{"lr": 0.5}')
    assert {k: cli[k] for k in ("max_epochs", "selection", "device", "threads", "compile_model", "init_checkpoint")} \
        == {"max_epochs": 7, "selection": "source_accuracy", "device": "cpu", "threads": 3, "compile_model": True,
            "init_checkpoint": None}
    assert cli["hp"]["lr"] == 0.5


def test_cli_train_tl_mmd_needs_its_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    config = merged_config(tmp_path, {})
    assert cli_main(["train", "--source", "s.h5", "--target", "t.h5", "--out", str(tmp_path / "run"), "--pair",
                     "sim2real", "--network", "deepmerge", "--method", "tl_mmd", "--config", str(config)]) == 2
    assert "--method tl_mmd starts from another run's checkpoint: give it with --init" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_cli_train_checks_the_config(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    config = merged_config(tmp_path, {"training": {"freeze": ["features."]}})
    assert cli_main(["train", "--source", "s.h5", "--target", "t.h5", "--out", str(tmp_path / "run"), "--pair",
                     "sim2sim", "--network", "deepmerge", "--method", "noda", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("deepmerge-da train: error: invalid config at 'training.freeze': freeze prefix 'features.' "
                          "names no parameter of the deepmerge network"), err


def test_cli_train_freezes_as_the_workflow_does(tmp_path, monkeypatch):
    # A real (tiny) run of each kind: training.freeze leaves a run trained from scratch whole and freezes the run
    # initialised from a checkpoint; training.max_epochs_by_network and training.selection apply.
    paths = write_toy_pair(tmp_path)
    monkeypatch.chdir(REPO)
    overlay = {"training": {"freeze": ["conv."], "max_epochs_by_network": {"deepmerge": 1},
                            "selection": "negative_entropy"}}
    config = merged_config(tmp_path, overlay)
    common = ["--source", str(paths["source"]), "--target", str(paths["target"]), "--network", "deepmerge",
              "--config", str(config), "--device", "cpu"]
    assert cli_main(["train", *common, "--out", str(tmp_path / "noda"), "--pair", "sim2sim", "--method", "noda"]) == 0
    assert cli_main(["train", *common, "--out", str(tmp_path / "tl"), "--pair", "sim2real", "--method", "tl_mmd",
                     "--init", str(tmp_path / "noda" / "model.pt")]) == 0
    noda, tl = (json.loads((tmp_path / run / "train.json").read_text()) for run in ("noda", "tl"))
    assert (noda["trainable_parameters"], tl["trainable_parameters"]) == (174_626, 168_098)
    assert noda["epochs_run"] == tl["epochs_run"] == 1 and noda["selection"] == tl["selection"] == "negative_entropy"
