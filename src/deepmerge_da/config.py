"""Workflow configuration: validation against the JSON schema (which fills in its defaults), presets, per-run
hyperparameters, and the training call of one run (:func:`train_arguments`, the train rule's and
``deepmerge-da train``'s)."""
from __future__ import annotations

import copy
import os
from pathlib import Path

import jsonschema
import yaml

from deepmerge_da.data.published import LAYOUTS
from deepmerge_da.grid import CRITERIA, METHODS, NETWORKS, PAIRS

#: The config schema, relative to the repository root (where Snakemake and ``deepmerge-da`` run).
SCHEMA_PATH = Path("workflow/schemas/config.schema.yaml")
# The schema's $defs whose enum is one of the package's tuples: each list is written once, in the package.
SCHEMA_NAMES = {"pair": PAIRS, "network": NETWORKS, "method": METHODS, "criterion": CRITERIA, "layout": LAYOUTS}
# Keys every hyperparameter set must have after presets and overrides are merged.
REQUIRED_HYPERPARAMETERS = ("lr", "beta1", "beta2", "eps", "weight_decay", "cycle", "patience")
# DeepMerge's head takes 2592 = 32 x 9 x 9 inputs (models.DeepMerge): its three 2x2 poolings (rounding down) must
# leave 9 x 9 maps. ResNet18 pools adaptively and takes every size the schema allows (>= 16 px).
DEEPMERGE_IMAGE_SIZES = range(72, 80)


class ConfigError(ValueError):
    """A configuration value is missing or wrong; the message names the key."""


def _key_path(error: jsonschema.ValidationError) -> str:
    path = list(error.absolute_path)
    if "propertyNames" in error.absolute_schema_path:  # a bad key of a mapping: name it in the path
        path.append(error.instance)
    return ".".join(str(p) for p in path) or "(top level)"


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


def load_schema(schema_path: str | os.PathLike) -> dict:
    """The config schema, its ``$defs`` of the package's names (:data:`SCHEMA_NAMES`) given their ``enum``."""
    schema = load_yaml(schema_path)
    for name, values in SCHEMA_NAMES.items():
        schema["$defs"][name]["enum"] = list(values)
    return schema


def _filling_defaults(validator_class):
    """``validator_class`` that also sets every absent property that has a ``default`` (a copy of it) in each
    mapping it validates, before validating it: nested defaults fill a default mapping, or merge with a partial
    one (``training.tl_init: {seed: 2}`` gets the default network and method)."""
    check_properties = validator_class.VALIDATORS["properties"]

    def properties(validator, properties, instance, schema):
        if validator.is_type(instance, "object"):
            for key, subschema in properties.items():
                if key not in instance and "default" in subschema:
                    instance[key] = copy.deepcopy(subschema["default"])
        yield from check_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": properties})


def validate_config(config: dict, schema_path: str | os.PathLike) -> None:
    """Fill in the schema's defaults of the keys ``config`` lacks (in place), then raise :class:`ConfigError`
    naming the first offending key, or return quietly: the workflow's rules and ``deepmerge-da`` read every key
    with a default directly.

    Relative paths in the config (``data.sdss.cutout_dir``) are taken from the working directory, as
    Snakemake takes them."""
    validator = _filling_defaults(jsonschema.Draft202012Validator)(load_schema(schema_path))
    # best_match looks inside anyOf/oneOf alternatives for the deepest error: the key a user must fix.
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        raise ConfigError(f"invalid config at '{_key_path(error)}': {error.message}")
    data = config["data"]
    if abs(sum(data["split_fractions"]) - 1.0) > 1e-6:
        raise ConfigError(f"invalid config at 'data.split_fractions': {data['split_fractions']} does not sum to 1")
    for pair, grid in config["experiments"].items():
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
    from deepmerge_da.data.synthetic.parameters import ParameterError, Sim2RealParams, Sim2SimParams

    for pair, params in (("sim2sim", Sim2SimParams), ("sim2real", Sim2RealParams)):
        if pair in data["pairs"]:
            try:
                params.from_dict(data["pairs"][pair]["synthetic"])
            except ParameterError as exc:
                raise ConfigError(f"invalid config at 'data.pairs.{pair}.synthetic.{exc.name}': {exc}") from None
    if data["pairs"].get("sim2real", {}).get("source") == "local":
        cutout_dir = data["sdss"]["cutout_dir"]
        if not cutout_dir:
            raise ConfigError("invalid config at 'data.sdss.cutout_dir': data.pairs.sim2real.source is 'local' "
                              "but no cutout directory is given")
        if not Path(cutout_dir).is_dir():
            where = "" if Path(cutout_dir).is_absolute() else f" (relative to {Path.cwd()})"
            raise ConfigError(f"invalid config at 'data.sdss.cutout_dir': no directory {cutout_dir}{where} "
                              "to read the real SDSS cutouts from (data.pairs.sim2real.source is 'local')")
    _check_download_sources(data)
    _check_freeze(config)
    _check_realism_sample(data)


def _check_image_size(config: dict) -> None:
    """data.image_size must fit every network that is trained, the run that initialises tl_mmd included."""
    size = config["data"]["image_size"]
    for pair, grid in config["experiments"].items():
        if not grid:
            continue
        networks = {n: f"experiments.{pair}.networks" for n in grid["networks"]}
        if "tl_mmd" in grid["methods"]:
            networks.setdefault(config["training"]["tl_init"]["network"],
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
        catalogues = data["remote"]["catalogues"]
        for key in ("darg_url", "gz1_url"):
            if not catalogues.get(key):
                raise ConfigError(f"invalid config at 'data.remote.catalogues.{key}': data.pairs.sim2real.source "
                                  "is 'remote' but no URL is given")
    published = data["published"]
    names = [f["name"] for f in published["files"]]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"invalid config at 'data.published.files': file name {repeated[0]!r} is listed twice")
    for pair, pdata in data["pairs"].items():
        if pdata["source"] != "published":
            continue
        for domain in ("source", "target"):
            key = f"data.published.sets.{pair}.{domain}"
            spec = published["sets"].get(pair, {}).get(domain)
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


def _check_realism_sample(data: dict) -> None:
    """The realism check compares sets of at least MIN_OBJECTS: refuse, at start-up, a real sample known to be
    smaller, rather than fail at the end of a run."""
    from deepmerge_da.report.realism import MIN_OBJECTS

    sdss = data["sdss"]
    if sdss["realism_check"] and sdss["cutout_dir"] and (sdss["max_nonmergers"] or MIN_OBJECTS) < MIN_OBJECTS:
        raise ConfigError(f"invalid config at 'data.sdss.max_nonmergers': {sdss['max_nonmergers']} real non-mergers, "
                          f"but the realism check (data.sdss.realism_check) compares sets of at least {MIN_OBJECTS}: "
                          "raise it, or set data.sdss.realism_check: false")


def _check_freeze(config: dict) -> None:
    """Every training.freeze prefix must name parameters of each network that tl_mmd initialises (and freezes)."""
    freeze = config["training"]["freeze"]
    networks = {n for grid in config["experiments"].values() if grid and "tl_mmd" in grid["methods"]
                for n in grid["networks"]}
    if not freeze or not networks:
        return
    # PyTorch only here, when a freeze must be checked: the workflow's start-up and the CLI import this module.
    from deepmerge_da.nn.models import build_network
    from deepmerge_da.training.loop import freeze_layers

    for network in sorted(networks):
        try:
            freeze_layers(build_network(network), freeze, network)
        except ValueError as exc:
            raise ConfigError(f"invalid config at 'training.freeze': {exc}") from None


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
    hp["augment"] = bool(training["augment"])
    if training["patience"] is not None:  # the presets' patience is the paper's, for its epochs of 15,000 images
        hp["patience"] = int(training["patience"])
    hp["min_delta"] = float(training["min_delta"])
    hp.update(training["overrides"].get(pair, {}).get(network, {}).get(method, {}))
    missing = [k for k in REQUIRED_HYPERPARAMETERS if k not in hp]
    if missing:
        raise ConfigError(f"hyperparameters of {pair}/{network}/{method} lack {', '.join(missing)}")
    if training["paper_faithful"]:
        hp["paper_faithful"] = True
    return hp


def max_epochs(config: dict, pair: str, network: str) -> int:
    """The epoch cap of a (pair, network) run: ``training.max_epochs_by_network``, else ``max_epochs_by_pair``, else
    ``max_epochs`` (the network's entry wins: it is there for a network's cost, e.g. ResNet18 on a CPU)."""
    training = config["training"]
    return training["max_epochs_by_network"].get(network, training["max_epochs_by_pair"].get(pair,
                                                                                            training["max_epochs"]))


def train_arguments(config: dict, presets: dict, *, pair: str, network: str, method: str, seed: int) -> dict:
    """The keyword arguments of :func:`deepmerge_da.training.loop.train_run` that train one run of a config
    checked by :func:`validate_config`, all but the files (``source``, ``target``, ``out_dir``,
    ``init_checkpoint``) and ``threads``: the workflow's train rule and ``deepmerge-da train`` both train with them
    (the command line may then override some). Free of paths, so that the rule's params are Snakemake's to compare:
    a params function of a rule's files is left out of its rerun-on-change check."""
    training = config["training"]
    return dict(pair=pair, network=network, method=method, seed=seed,
                hp=run_hyperparameters(config, presets, pair, network, method),
                max_epochs=max_epochs(config, pair, network),
                batch_size=training["batch_size"], device=training["device"],
                freeze=list(training["freeze"]), amp=training["amp"], selection=training["selection"],
                compile_model=training["compile"])
