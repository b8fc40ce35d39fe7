"""Workflow configuration: validation against the JSON schema, presets, and per-run hyperparameters."""
from __future__ import annotations

import os
from pathlib import Path

import jsonschema
import yaml

# Keys every hyperparameter set must have after presets and overrides are merged.
REQUIRED_HYPERPARAMETERS = ("lr", "beta1", "beta2", "eps", "weight_decay", "cycle", "patience")
# DeepMerge's head takes 2592 = 32 x 9 x 9 inputs (models.DeepMerge): its three 2x2 poolings (rounding down) must
# leave 9 x 9 maps. ResNet18 pools adaptively and takes every size the schema allows (>= 16 px).
DEEPMERGE_IMAGE_SIZES = range(72, 80)


class ConfigError(ValueError):
    """A configuration value is missing or wrong; the message names the key."""


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def load_yaml(path: str | os.PathLike):
    """The YAML document in ``path``; a syntax error raises :class:`ConfigError` naming the file and line."""
    path = Path(path)
    try:
        with path.open("rb") as stream:
            return yaml.safe_load(stream)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        if mark is None:  # e.g. bytes that are not UTF-8
            raise ConfigError(f"{path}: invalid YAML: {' '.join(str(exc).split())}") from None
        problem = exc.problem or exc.context
        if exc.context and exc.problem and exc.context_mark:
            problem += f" ({exc.context} from line {exc.context_mark.line + 1})"
        raise ConfigError(f"{path}, line {mark.line + 1}, column {mark.column + 1}: invalid YAML: {problem}") from None


def validate_config(config: dict, schema_path: str | os.PathLike) -> None:
    """Raise :class:`ConfigError` naming the first offending key, or return quietly.

    Relative paths in the config (``data.sdss.cutout_dir``) are taken from the working directory, as
    Snakemake takes them."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    # best_match looks inside anyOf/oneOf alternatives for the deepest error: the key a user must fix.
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        raise ConfigError(f"invalid config at '{_key_path(error)}': {error.message}")
    data = config["data"]
    if abs(sum(data["split_fractions"]) - 1.0) > 1e-6:
        raise ConfigError(f"invalid config at 'data.split_fractions': {data['split_fractions']} does not sum to 1")
    for pair, grid in config.get("experiments", {}).items():
        if grid is None:  # switched off (e.g. by a configfile layered on top)
            continue
        if pair not in data["pairs"]:
            raise ConfigError(f"invalid config at 'experiments.{pair}': no 'data.pairs.{pair}' to train on")
        if isinstance(grid["seeds"], dict):
            for network in grid["networks"]:
                if network not in grid["seeds"]:
                    raise ConfigError(f"invalid config at 'experiments.{pair}.seeds': no seeds for network "
                                      f"{network!r} (give a list per network, or one list for all)")
    _check_image_size(config)
    # Physical parameters of the synthetic universe are checked by their own dataclasses.
    from deepmerge_da.data.synthetic import ParameterError, Sim2RealParams, Sim2SimParams

    for pair, params in (("sim2sim", Sim2SimParams), ("sim2real", Sim2RealParams)):
        if pair in data["pairs"]:
            try:
                params.from_dict(data["pairs"][pair]["synthetic"])
            except ParameterError as exc:
                raise ConfigError(f"invalid config at 'data.pairs.{pair}.synthetic.{exc.name}': {exc}") from None
    if data["pairs"].get("sim2real", {}).get("source") == "local":
        cutout_dir = data.get("sdss", {}).get("cutout_dir")
        if not cutout_dir:
            raise ConfigError("invalid config at 'data.sdss.cutout_dir': data.pairs.sim2real.source is 'local' "
                              "but no cutout directory is given")
        if not Path(cutout_dir).is_dir():
            where = "" if Path(cutout_dir).is_absolute() else f" (relative to {Path.cwd()})"
            raise ConfigError(f"invalid config at 'data.sdss.cutout_dir': no directory {cutout_dir}{where} "
                              "to read the real SDSS cutouts from (data.pairs.sim2real.source is 'local')")
    _check_download_sources(data)


def _check_image_size(config: dict) -> None:
    """data.image_size must fit every network that is trained, the run that initialises tl_mmd included."""
    size = config["data"]["image_size"]
    for pair, grid in config["experiments"].items():
        if not grid:
            continue
        networks = {n: f"experiments.{pair}.networks" for n in grid["networks"]}
        if "tl_mmd" in grid["methods"]:
            networks.setdefault(config["training"].get("tl_init", {}).get("network", "deepmerge"),
                                f"training.tl_init, for tl_mmd in experiments.{pair}.methods")
        if "deepmerge" in networks and size not in DEEPMERGE_IMAGE_SIZES:
            raise ConfigError(f"invalid config at 'data.image_size': DeepMerge (in {networks['deepmerge']}) needs "
                              f"{DEEPMERGE_IMAGE_SIZES.start} to {DEEPMERGE_IMAGE_SIZES.stop - 1} px, its head has "
                              f"2592 inputs (the paper: 75); got {size}")


def _check_download_sources(data: dict) -> None:
    """Cross-key checks of the ``remote`` and ``published`` data sources (see workflow/rules/fetch.smk)."""
    for pair, pdata in data["pairs"].items():
        if pdata["source"] in ("local", "remote") and pair != "sim2real":
            raise ConfigError(f"invalid config at 'data.pairs.{pair}.source': '{pdata['source']}' is only for "
                              "sim2real (its real SDSS target); use synthetic or published")
    if data["pairs"].get("sim2real", {}).get("source") == "remote":
        catalogues = data.get("remote", {}).get("catalogues", {})
        for key in ("darg_url", "gz1_url"):
            if not catalogues.get(key):
                raise ConfigError(f"invalid config at 'data.remote.catalogues.{key}': data.pairs.sim2real.source "
                                  "is 'remote' but no URL is given")
    published = data.get("published", {})
    names = [f["name"] for f in published.get("files", [])]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"invalid config at 'data.published.files': file name {repeated[0]!r} is listed twice")
    for pair, pdata in data["pairs"].items():
        if pdata["source"] != "published":
            continue
        for domain in ("source", "target"):
            key = f"data.published.sets.{pair}.{domain}"
            spec = published.get("sets", {}).get(pair, {}).get(domain)
            if not spec:
                raise ConfigError(f"invalid config at '{key}': data.pairs.{pair}.source is 'published' but no "
                                  f"files are named for its {domain}")
            kinds = {k for k in ("fits", "images", "labels") if k in spec}
            if kinds not in ({"fits"}, {"images", "labels"}):
                raise ConfigError(f"invalid config at '{key}': give either 'fits', or 'images' and 'labels' "
                                  f"(found {', '.join(sorted(kinds)) or 'none'})")
            for kind in sorted(kinds):
                if spec[kind] not in names:
                    raise ConfigError(f"invalid config at '{key}.{kind}': {spec[kind]!r} is not the name of a "
                                      "file in data.published.files")


def load_presets(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"presets file {path} does not exist (config key 'presets_file')")
    document = load_yaml(path)
    presets = document.get("presets") if isinstance(document, dict) else None
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
