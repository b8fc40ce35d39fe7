"""Workflow configuration: validation against the JSON schema, presets, and per-run hyperparameters."""
from __future__ import annotations

import os
from pathlib import Path

import jsonschema
import yaml

# Keys every hyperparameter set must have after presets and overrides are merged.
REQUIRED_HYPERPARAMETERS = ("lr", "beta1", "beta2", "eps", "weight_decay", "cycle", "patience")


class ConfigError(ValueError):
    """A configuration value is missing or wrong; the message names the key."""


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def validate_config(config: dict, schema_path: str | os.PathLike) -> None:
    """Raise :class:`ConfigError` naming the first offending key, or return quietly."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    if errors:
        error = errors[0]
        raise ConfigError(f"invalid config at '{_key_path(error)}': {error.message}")
    data = config["data"]
    if abs(sum(data["split_fractions"]) - 1.0) > 1e-6:
        raise ConfigError(f"invalid config at 'data.split_fractions': {data['split_fractions']} does not sum to 1")
    for pair in config.get("experiments", {}):
        if pair not in data["pairs"]:
            raise ConfigError(f"invalid config at 'experiments.{pair}': no 'data.pairs.{pair}' to train on")
    # Physical parameters of the synthetic universe are checked by their own dataclasses.
    from .synthetic import Sim2RealParams, Sim2SimParams

    for pair, params in (("sim2sim", Sim2SimParams), ("sim2real", Sim2RealParams)):
        if pair in data["pairs"]:
            try:
                params.from_dict(data["pairs"][pair]["synthetic"])
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"invalid config at 'data.pairs.{pair}.synthetic': {exc}") from None
    if data["pairs"].get("sim2real", {}).get("source") == "local" and not data.get("sdss", {}).get("cutout_dir"):
        raise ConfigError("invalid config at 'data.sdss.cutout_dir': data.pairs.sim2real.source is 'local' "
                          "but no cutout directory is given")


def load_presets(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"presets file {path} does not exist (config key 'presets_file')")
    presets = yaml.safe_load(path.read_text()).get("presets")
    if not isinstance(presets, dict):
        raise ConfigError(f"presets file {path} has no 'presets' mapping")
    return presets


def run_hyperparameters(config: dict, presets: dict, pair: str, network: str, method: str) -> dict:
    """The preset of (pair, network, method) updated with config overrides and the global switches."""
    try:
        hp = dict(presets[pair][network][method])
    except KeyError:
        raise ConfigError(f"no hyperparameter preset for {pair}/{network}/{method} in "
                          f"'{config['presets_file']}'") from None
    training = config["training"]
    hp["augment"] = bool(training.get("augment", False))
    hp.update(training.get("overrides", {}).get(pair, {}).get(network, {}).get(method, {}))
    missing = [k for k in REQUIRED_HYPERPARAMETERS if k not in hp]
    if missing:
        raise ConfigError(f"hyperparameters of {pair}/{network}/{method} lack {', '.join(missing)}")
    if training["paper_faithful"]:
        hp["paper_faithful"] = True
    return hp
