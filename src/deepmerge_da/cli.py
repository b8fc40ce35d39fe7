"""The ``deepmerge-da`` command: each workflow step as a subcommand, for use outside Snakemake.

The whole pipeline is ``snakemake --cores all`` at the repository root; these subcommands run one step
of it by hand (the Snakemake rules call the same functions).
"""
from __future__ import annotations

import argparse
import inspect
import json
import sys

from deepmerge_da import __version__
from deepmerge_da.config import SCHEMA_PATH, load_yaml, validate_config
from deepmerge_da.grid import CRITERIA, METHODS, NETWORKS, PAIRS

EPILOG = """examples:
  deepmerge-da synthesize sim2sim --source raw_source.h5 --target raw_target.h5 --threads 2
  deepmerge-da prepare raw_source.h5 source.h5 --filters F814W F356W F160W
  deepmerge-da train --source source.h5 --target target.h5 --out run/ --network deepmerge --method mmd \\
      --pair sim2sim --config config/config.yaml
  deepmerge-da evaluate run/model.pt --source source.h5 --target target.h5 --out run/
  deepmerge-da lr-scan --source source.h5 --target target.h5 --pair sim2sim --network deepmerge \\
      --method noda --out scan.csv --plot scan.png
  deepmerge-da info run/model.pt
  deepmerge-da fetch my_galaxies.csv --out cutouts/
  deepmerge-da predict 'cutouts/*.jpeg' my_galaxies.csv --model run/model.pt --model run2/model.pt \\
      --out predictions.csv
"""


def _cmd_synthesize(args) -> None:
    from deepmerge_da.data.sources import synthesize_sim2real, synthesize_sim2sim

    params = load_yaml(args.params) if args.params else {}
    if args.pair == "sim2sim":
        synthesize_sim2sim(params, seed=args.seed, threads=args.threads, source_path=args.source,
                           target_path=args.target)
    else:
        for domain, path in (("source", args.source), ("target", args.target)):
            synthesize_sim2real(domain, params, seed=args.seed, threads=args.threads, path=path)


def _cmd_prepare(args) -> None:
    from deepmerge_da.data.preprocess import prepare_file

    prepare_file(args.raw, args.out, filters=args.filters, image_size=args.image_size,
                 fractions=tuple(args.fractions), n_per_class=args.n_per_class, seed=args.seed)


def _validated_config(path: str) -> dict:
    """The config at ``path``, checked and completed with the schema's defaults as the workflow's are (the schema
    and the config's presets_file are read relative to the working directory: the repository root)."""
    config = load_yaml(path)
    validate_config(config, SCHEMA_PATH)
    return config


def train_kwargs(args) -> dict:
    """The keyword arguments of :func:`deepmerge_da.training.loop.train_run` for ``deepmerge-da train ARGS``: the
    workflow's train rule's (:func:`deepmerge_da.config.train_arguments`), an option given here replacing the
    config's."""
    from deepmerge_da.config import load_presets, train_arguments

    if args.method == "tl_mmd" and not args.init:
        raise ValueError("--method tl_mmd starts from another run's checkpoint: give it with --init")
    config = _validated_config(args.config)
    kwargs = train_arguments(config, load_presets(config["presets_file"]), pair=args.pair, network=args.network,
                             method=args.method, seed=args.seed)
    kwargs["hp"].update(json.loads(args.set) if args.set else {})
    given = {"max_epochs": args.epochs, "device": args.device, "selection": args.selection,
             "compile_model": args.compile}
    kwargs.update({key: value for key, value in given.items() if value is not None})
    threads = config["resources"]["train_threads"] if args.threads is None else args.threads
    return dict(kwargs, source=args.source, target=args.target, out_dir=args.out, init_checkpoint=args.init,
                threads=threads)


def _cmd_train(args) -> None:
    from deepmerge_da.training.loop import train_run

    train_run(**train_kwargs(args))


def _cmd_lr_scan(args) -> None:
    from deepmerge_da.config import load_presets, run_hyperparameters
    from deepmerge_da.training.lr_scan import lr_range_scan

    config = _validated_config(args.config)
    hp = run_hyperparameters(config, load_presets(config["presets_file"]), args.pair, args.network, args.method)
    curve = lr_range_scan(source=args.source, target=args.target, network=args.network, method=args.method, hp=hp,
                          out_csv=args.out, epochs=args.epochs, lr_min=args.lr_min, lr_max=args.lr_max,
                          threads=args.threads, device=args.device, plot_path=args.plot)
    best = curve.loc[curve.loss.idxmin()]
    print(f"lowest loss {best.loss:.4f} at lr {best.lr:.3g}: "
          f"one-cycle maximum {best.lr:.3g}, minimum {best.lr / 10:.3g}")


def _cmd_evaluate(args) -> None:
    from deepmerge_da.report.evaluate import evaluate_run

    result = evaluate_run(checkpoint=args.checkpoint, source=args.source, target=args.target,
                          metrics_path=f"{args.out}/metrics.json", predictions_path=f"{args.out}/predictions.csv",
                          threads=args.threads)
    for domain in ("source", "target"):
        print(domain, {k: round(v, 3) for k, v in result[domain].items() if isinstance(v, float)})


def _cmd_predict(args) -> None:
    from deepmerge_da.predict.ensemble import predict
    from deepmerge_da.predict.outputs import skipped_path

    df = predict(args.inputs, args.model, args.out, threshold=args.threshold, batch_size=args.batch_size,
                 device=args.device, progress=not args.no_progress, filters=args.filters,
                 normalisation=args.normalisation, filter_keyword=args.filter_keyword, cache_dir=args.cache_dir,
                 sdss_base_url=args.sdss_base_url, threads=args.threads)
    n_skipped = len(df.attrs.get("skipped", []))
    print(f"{len(df)} classified, {int((df['label'] == 'merger').sum())} mergers (p_merger >= {args.threshold}), "
          f"{n_skipped} skipped -> {args.out}" + (f" (skipped: {skipped_path(args.out)})" if n_skipped else ""))


def _count_or_all(text: str) -> int | None:
    """A positive count, or None for 'all' (an argparse type)."""
    if text == "all":
        return None
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a positive count or 'all': {text!r}")
    return int(text)


def _cmd_fetch(args) -> None:
    import logging

    from deepmerge_da.data.catalogues import LABEL_VALUES, build_selection, read_catalogue_csv
    from deepmerge_da.data.fetch import fetch_cutout_dir

    if args.catalogue is not None and (args.darg or args.gz1):
        raise ValueError("give a catalogue CSV or --darg and --gz1, not both")
    if args.catalogue is not None:
        sel = read_catalogue_csv(args.catalogue, label=None if args.label is None else LABEL_VALUES[args.label])
        catalogue_files = [args.catalogue]
    elif args.darg and args.gz1:
        sel = build_selection(args.darg, args.gz1, n_nonmergers=args.n_nonmergers, seed=args.seed)
        catalogue_files = [args.darg, args.gz1]
    else:
        raise ValueError("give a catalogue CSV, or both --darg and --gz1")
    for note in sel.notes:
        logging.getLogger("deepmerge_da.data.catalogues").info(note)
    if not len(sel.table):
        raise ValueError(f"no usable object in {', '.join(catalogue_files)} ({len(sel.bad)} rows dropped)")
    try:
        report = fetch_cutout_dir(
            sel, args.out, catalogue_files=catalogue_files, base_url=args.base_url, concurrency=args.concurrency,
            rate_per_s=args.rate_per_s or None, timeout_s=args.timeout_s, max_retries=args.max_retries,
            backoff_s=args.backoff_s, max_fail_fraction=args.max_fail_fraction, progress=not args.no_progress,
            allow_redirect_hosts=args.allow_redirect_host)
    except KeyboardInterrupt:
        print(f"deepmerge-da fetch: interrupted; {args.out}/manifest.csv says what was fetched; run the same command "
              f"again to resume", file=sys.stderr)
        raise SystemExit(130) from None
    print(f"{report.n_ok} fetched, {report.n_skipped} already there, {report.n_failed} failed of {report.n_total} "
          f"cutouts ({len(sel.bad)} catalogue rows dropped) -> {args.out} (manifest: {report.manifest_path})")


def _cmd_info(args) -> None:
    from deepmerge_da.io.checkpoint import load_checkpoint

    _, meta = load_checkpoint(args.checkpoint)
    json.dump(meta, sys.stdout, indent=2)
    print()


def _add_run_arguments(p: argparse.ArgumentParser, out_help: str) -> None:
    """The options that name one run's data, network, method and hyperparameters."""
    p.add_argument("--source", required=True, help="prepared source HDF5")
    p.add_argument("--target", required=True, help="prepared target HDF5")
    p.add_argument("--out", required=True, help=out_help)
    p.add_argument("--pair", required=True, choices=PAIRS)
    p.add_argument("--network", required=True, choices=NETWORKS)
    p.add_argument("--method", required=True, choices=METHODS)
    p.add_argument("--config", default="config/config.yaml",
                   help="config whose presets and overrides apply (to train, its training settings too), checked as "
                        "the workflow checks it (default %(default)s; it, its presets_file and the schema are read "
                        "relative to the working directory)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepmerge-da", description=__doc__, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("synthesize", help="render a pair's raw source and target sets from the synthetic universe")
    p.add_argument("pair", choices=PAIRS)
    p.add_argument("--source", required=True, help="output raw source HDF5")
    p.add_argument("--target", required=True, help="output raw target HDF5")
    p.add_argument("--params", help="YAML file of physical parameters (config/README.md lists them)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=_cmd_synthesize)

    p = sub.add_parser("prepare", help="filter order, resize, split by object, augment and balance a raw set")
    p.add_argument("raw", help="raw HDF5 set")
    p.add_argument("out", help="prepared HDF5 set to write")
    p.add_argument("--filters", nargs="+", required=True, help="filter (channel) order of the output")
    p.add_argument("--image-size", type=int, default=75)
    p.add_argument("--fractions", type=float, nargs=3, default=(0.7, 0.1, 0.2), metavar=("TRAIN", "VAL", "TEST"))
    p.add_argument("--n-per-class", type=int, default=None, help="images per class after balancing")
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=_cmd_prepare)

    p = sub.add_parser("train", help="train one run as the workflow's train rule does, from the config")
    _add_run_arguments(p, out_help="run directory for model.pt, history.csv, train.json")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--set", help='JSON of hyperparameters to override, e.g. \'{"lr": 0.002}\'')
    p.add_argument("--epochs", type=int,
                   help="maximum epochs (default: the config's training.max_epochs_by_network, else "
                        "max_epochs_by_pair, else max_epochs)")
    p.add_argument("--init", help="checkpoint to initialise from (transfer learning; training.freeze applies)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction,
                   help="run the training steps through torch.compile (default: the config's training.compile)")
    p.add_argument("--selection", choices=CRITERIA,
                   help="criterion whose best epoch is kept and early stopping follows (default: the config's "
                        "training.selection)")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: the config's training.device)")
    p.add_argument("--threads", type=int, help="PyTorch threads (default: the config's resources.train_threads)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("lr-scan", help="learning-rate range scan: loss against a growing learning rate")
    _add_run_arguments(p, out_help="CSV of epoch, lr, loss")
    p.add_argument("--plot", help="PNG of the curve")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--lr-min", type=float, default=1e-6)
    p.add_argument("--lr-max", type=float, default=1e-1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=_cmd_lr_scan)

    p = sub.add_parser("evaluate", help="test-set metrics of a checkpoint on source and target")
    p.add_argument("checkpoint")
    p.add_argument("--source", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--out", required=True, help="directory for metrics.json and predictions.csv")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=_cmd_evaluate)

    from deepmerge_da.data.fetch import fetch_cutouts
    from deepmerge_da.data.sdss_cutouts import DEFAULT_BASE_URL

    p = sub.add_parser(
        "predict", help="classify your own cutouts (FITS, JPEG/PNG, NPY, or a catalogue CSV) with checkpoints",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Classify images with one or more trained checkpoints. One CSV row per image: id, source,\n"
                    "p_merger, label (merger / non-merger); with several checkpoints also p_merger_std and\n"
                    "p_merger_<i>, and p_merger is their mean. Images get the training preprocessing: the\n"
                    "checkpoint's filter order, resized to its input size, standardised with its training\n"
                    "statistics. Unreadable or unfitting files are skipped with a warning and listed in\n"
                    "<out>.skipped.csv (an error only when nothing could be classified).",
        epilog="inputs:\n"
               "  FITS   one (C,H,W) cube (planes named by FILTER1.. or --filters), or one 2-D image per HDU\n"
               "         named by its FILTER keyword (--filter-keyword)\n"
               "  JPEG, PNG  8-bit RGB = SDSS (i, r, g), read as the SDSS import reads its cutouts\n"
               "  NPY    one (C,H,W) or (H,W,C) array (planes named by --filters)\n"
               "  CSV    a catalogue with id, ra, dec (degrees): SDSS cutouts are fetched into --cache-dir\n"
               "  a directory (its image files) or a quoted glob ('dir/**/*.fits')\n"
               "example:\n"
               "  deepmerge-da predict 'cutouts/*.jpeg' --model results/runs/sim2real/deepmerge/mmd/seed1/model.pt \\\n"
               "      --out predictions.csv")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image file, directory, glob or catalogue CSV")
    p.add_argument("--model", action="append", required=True, metavar="CHECKPOINT",
                   help="a model.pt; repeat for an ensemble (e.g. several seeds)")
    p.add_argument("--out", required=True, help="predictions CSV to write")
    p.add_argument("--filters", nargs="+", metavar="NAME",
                   help="plane names of NPY files and FITS cubes, in their stored order (default: the model's order)")
    p.add_argument("--threshold", type=float, default=0.5, help="label merger when p_merger >= this (default 0.5)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    p.add_argument("--threads", type=int, help="PyTorch CPU threads")
    p.add_argument("--normalisation", choices=["auto", "trained_on", "other_domain"], default="auto",
                   help="whose training statistics standardise the inputs: auto (default) takes the checkpoint's "
                        "domain in the inputs' units (JPEG/PNG: the 8-bit JPEG domain; FITS/NPY: a physical one)")
    p.add_argument("--filter-keyword", default="FILTER", help="FITS header keyword naming a plane's filter")
    p.add_argument("--cache-dir", help="where catalogue cutouts are downloaded (default: <out dir>/cutouts); "
                   "cutouts already there are not fetched again")
    p.add_argument("--sdss-base-url", default=DEFAULT_BASE_URL, help="SDSS cutout service (default %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_predict)

    from deepmerge_da.data.catalogues import build_selection

    fetch_defaults = {k: v.default for k, v in inspect.signature(fetch_cutouts).parameters.items()}
    selection_defaults = {k: v.default for k, v in inspect.signature(build_selection).parameters.items()}
    p = sub.add_parser(
        "fetch", help="download SDSS cutouts for a catalogue into a cutout directory the workflow reads",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Download one SDSS SkyServer JPEG cutout (128 x 128 px, 0.396127 arcsec/px) per catalogue\n"
                    "object into a directory laid out as the workflow reads one (data.sdss.cutout_dir, with\n"
                    "data.pairs.sim2real.source: local), with the downloader of the workflow's fetch_sdss_cutouts\n"
                    "rule: a few requests in flight, a global rate limit, retries with exponential backoff after\n"
                    "timeouts, connection errors, HTTP 5xx and 429, and every answer checked (empty, not a JPEG,\n"
                    "truncated, blank sky or the wrong size is a failure, never kept).",
        epilog="inputs (one of):\n"
               "  CATALOGUE         a CSV: id (or object_id), ra, dec (degrees), label (1 / merger, 0 / non-merger;\n"
               "                    or --label for every row), optionally z; column names are case-insensitive.\n"
               "                    Rows with a bad id, position or label are dropped with a warning.\n"
               "  --darg, --gz1     the paper's selection, as the workflow makes it (rule select_sdss_objects): the\n"
               "                    Darg et al. (2010) post-mergers (stage 3; FITS or CSV) and a seeded random subset\n"
               "                    (--n-nonmergers, --seed) of the Galaxy Zoo 1 non-mergers with f_m < 0.2 and\n"
               "                    0.005 < z < 0.1 (CSV: ID, RAdeg, DEdeg, zsp, P_MG).\n"
               "outputs (in --out):\n"
               "  mergers/<id>.jpeg, nonmergers/<id>.jpeg\n"
               "                    one valid cutout per object, only ever complete under its final name\n"
               "  catalogue.csv     the objects: object_id, ra, dec, label, subdir, z\n"
               "  manifest.csv      one row per object: status (ok, failed, skipped_existing, pending), reason,\n"
               "                    attempts, bytes; rewritten every 10 s and when interrupted\n"
               "  fetched.json      written last, only when at most --max-fail-fraction failed: the counts, the\n"
               "                    failure reasons and the SHA-256 of the input catalogues\n"
               "resume:\n"
               "  Run the same command again: cutouts already there and valid are not requested again; missing,\n"
               "  invalid and failed ones are. An interrupted fetch (Ctrl-C, SIGTERM) writes manifest.csv first.\n"
               "exit status: 0; 2 when an input is wrong or more than --max-fail-fraction of the objects failed (what\n"
               "was fetched, and manifest.csv, stay).\n"
               "examples:\n"
               "  deepmerge-da fetch my_galaxies.csv --out cutouts/ --rate-per-s 2\n"
               "  deepmerge-da fetch --darg darg_mergers.fits --gz1 nonmergers.csv --n-nonmergers 3000 --out sdss/\n"
               "  then, in a config: data: {sdss: {cutout_dir: sdss/}, pairs: {sim2real: {source: local, ...}}}")
    p.add_argument("catalogue", nargs="?", metavar="CATALOGUE", help="catalogue CSV (id, ra, dec, label[, z])")
    p.add_argument("--label", choices=["merger", "non-merger"],
                   help="the label of every row of a CATALOGUE without a label column")
    p.add_argument("--darg", metavar="FILE", help="Darg et al. (2010) merger catalogue (ra1, dec1, stage[, specz1])")
    p.add_argument("--gz1", metavar="FILE", help="Galaxy Zoo 1 non-merger table (ID, RAdeg, DEdeg, zsp, P_MG[, SDSS])")
    p.add_argument("--n-nonmergers", type=_count_or_all, default=selection_defaults["n_nonmergers"], metavar="N",
                   help="size of the seeded random subset of non-mergers (default %(default)s, as the paper; 'all': "
                        "every one that passes the cuts)")
    p.add_argument("--seed", type=int, default=1,
                   help="seed of that subset (default 1, data.seed of the default config)")
    p.add_argument("--out", required=True, metavar="DIR", help="the cutout directory to fill (created if missing)")
    p.add_argument("--base-url", default=DEFAULT_BASE_URL, metavar="URL",
                   help="SDSS cutout service (default %(default)s)")
    p.add_argument("--concurrency", type=int, default=fetch_defaults["concurrency"], metavar="N",
                   help="requests in flight (default %(default)s)")
    p.add_argument("--rate-per-s", type=float, default=fetch_defaults["rate_per_s"], metavar="R",
                   help="request starts per second, all together (default %(default)s; 0: no limit)")
    p.add_argument("--timeout-s", type=float, default=fetch_defaults["timeout_s"], metavar="S",
                   help="seconds to wait for an answer (default %(default)s)")
    p.add_argument("--max-retries", type=int, default=fetch_defaults["max_retries"], metavar="N",
                   help="retries after a timeout, connection error, HTTP 5xx or 429 (default %(default)s)")
    p.add_argument("--backoff-s", type=float, default=fetch_defaults["backoff_s"], metavar="S",
                   help="first retry delay, doubled at each retry, plus up to 10%% jitter; a Retry-After header is "
                        "honoured up to 60 s (default %(default)s)")
    p.add_argument("--max-fail-fraction", type=float, default=fetch_defaults["max_fail_fraction"], metavar="F",
                   help="largest fraction of objects that may fail before the command fails (default %(default)s)")
    p.add_argument("--allow-redirect-host", action="append", default=[], metavar="ORIGIN",
                   help="scheme://host[:port] that a redirect may lead to besides the service's own; repeatable "
                        "(default: none, a redirect to another host fails that object)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_fetch)

    p = sub.add_parser("info", help="print a checkpoint's metadata")
    p.add_argument("checkpoint")
    p.set_defaults(func=_cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from deepmerge_da.io.rulelog import rule_logging

    try:
        with rule_logging(None):
            args.func(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"deepmerge-da {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
