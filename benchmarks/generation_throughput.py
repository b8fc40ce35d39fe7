#!/usr/bin/env python
"""Synthetic generation and preprocessing throughput (galaxies/s) and peak memory, for a small sim2sim set.

Stages, called as the workflow's rules call them (workflow/rules/data.smk, workflow/scripts/*.py):

* ``synthesize``: ``deepmerge_da.data.sources.synthesize_sim2sim(params, seed=, threads=, source_path=, target_path=)``
  renders each object once and observes it twice (source: PSF; target: PSF + sky noise), writing two raw HDF5
  files; galaxies/s counts objects (each object gives 2 images). Run for each ``--threads`` value.
* ``prepare source`` / ``prepare target``: ``deepmerge_da.data.preprocess.prepare_file(raw, out, filters=,
  image_size=, fractions=, n_per_class=, seed=)`` (split, class-balancing augmentation, statistics);
  galaxies/s counts the raw objects read, ``images out`` the prepared rows written.

Each stage runs in a fresh (spawned) child process, so that ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` is the
peak of that stage alone; the baseline (RSS after the imports, before the stage) is reported so that the
stage's own increase can be read off, and ``RUSAGE_CHILDREN`` gives the largest render worker when
``threads > 1`` (the synthesiser forks a process pool). Everything is written to a temporary directory.
Prints a table and writes JSON (default benchmarks/results/generation_throughput.json).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import yaml

from deepmerge_da.io.atomic import write_text_atomic


def _rss_mb_now() -> float:
    """Current resident set size of this process (MB), from /proc (Linux); NaN elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def _stage(kind: str, kwargs: dict, queue) -> None:
    """Run one stage in this (child) process and put its timing and memory on ``queue``."""
    import resource

    from deepmerge_da.data.preprocess import prepare_file
    from deepmerge_da.data.sources import synthesize_sim2sim

    raw_objects = None
    if kind == "prepare":
        import h5py

        with h5py.File(kwargs["raw"], "r") as f:
            raw_objects = int(f["labels"].shape[0])
    baseline = _rss_mb_now()
    t0 = time.perf_counter()
    if kind == "synthesize":
        source, target = synthesize_sim2sim(kwargs["params"], seed=kwargs["seed"], threads=kwargs["threads"],
                                            source_path=kwargs["source_path"], target_path=kwargs["target_path"],
                                            progress=False)
        objects, images_out = len(source), len(source) + len(target)
    else:
        prepared = prepare_file(kwargs["raw"], kwargs["out"], filters=kwargs["filters"],
                                image_size=kwargs["image_size"], fractions=kwargs["fractions"],
                                n_per_class=kwargs["n_per_class"], seed=kwargs["seed"], progress=False)
        objects, images_out = raw_objects, len(prepared)
    seconds = time.perf_counter() - t0
    # ru_maxrss is in kilobytes on Linux (bytes on macOS).
    scale = 1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0
    queue.put({"seconds": seconds, "objects": int(objects), "images_out": int(images_out),
               "baseline_rss_mb": baseline,
               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale,
               "peak_rss_children_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / scale})


def run_stage(kind: str, **kwargs) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_stage, args=(kind, kwargs, queue))
    t0 = time.perf_counter()
    proc.start()
    result = queue.get()
    proc.join()
    if proc.exitcode != 0:
        raise RuntimeError(f"stage {kind} failed with exit code {proc.exitcode}")
    result["wall_seconds_with_process_start"] = time.perf_counter() - t0
    return result


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Throughput (galaxies/s) and peak memory (ru_maxrss) of synthetic sim2sim generation "
                    "(synthesize_sim2sim) and preprocessing (prepare_file) for a small set, each stage in a "
                    "fresh process, in a temporary directory. Prints a table and writes JSON.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--n-mergers", type=int, default=200, help="synthetic mergers (objects)")
    p.add_argument("--n-nonmergers", type=int, default=200, help="synthetic non-mergers (objects)")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts for synthesize_sim2sim")
    p.add_argument("--seed", type=int, default=None, help="data seed (default: the config's data.seed)")
    p.add_argument("--config", default="config/config.yaml",
                   help="workflow config: the sim2sim filters, image_size, split_fractions, n_per_class, seed "
                        "(the brief's defaults are used if it is missing)")
    p.add_argument("--out", default="benchmarks/results/generation_throughput.json", help="JSON output")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    data = {"seed": 1, "image_size": 75, "split_fractions": [0.7, 0.1, 0.2],
            "pairs": {"sim2sim": {"filters": ["F814W", "F356W", "F160W"], "n_per_class": None}}}
    if Path(args.config).exists():
        data = yaml.safe_load(Path(args.config).read_text())["data"]
    pair = data["pairs"]["sim2sim"]
    seed = args.seed if args.seed is not None else int(data["seed"])
    params = {"n_mergers": args.n_mergers, "n_nonmergers": args.n_nonmergers}
    threads = [int(t) for t in args.threads.split(",") if t]
    prep = dict(filters=list(pair["filters"]), image_size=int(data["image_size"]),
                fractions=tuple(data["split_fractions"]), n_per_class=pair.get("n_per_class"), seed=seed)
    print(f"sim2sim synthetic: {params}, seed {seed}; prepare: {prep}")

    rows = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="generation_throughput_") as tmp:
        tmp = Path(tmp)
        for t in threads:
            raw = {d: str(tmp / f"t{t}_raw_{d}.h5") for d in ("source", "target")}
            r = run_stage("synthesize", params=params, seed=seed, threads=t, source_path=raw["source"],
                          target_path=raw["target"])
            rows.append(dict(stage="synthesize", threads=t, **r))
            print(f"  synthesize, {t} thread(s): {r['objects'] / r['seconds']:.1f} galaxies/s", flush=True)
        # Prepare what the first synthesis wrote (the result does not depend on its thread count).
        t = threads[0]
        for domain in ("source", "target"):
            r = run_stage("prepare", raw=str(tmp / f"t{t}_raw_{domain}.h5"), out=str(tmp / f"{domain}.h5"), **prep)
            rows.append(dict(stage=f"prepare {domain}", threads=1, **r))
            print(f"  prepare {domain}: {r['objects'] / r['seconds']:.1f} galaxies/s", flush=True)
    load_after = os.getloadavg()

    for r in rows:
        r["galaxies_per_s"] = r["objects"] / r["seconds"]
        r["images_out_per_s"] = r["images_out"] / r["seconds"]
        r["stage_rss_increase_mb"] = r["peak_rss_mb"] - r["baseline_rss_mb"]

    print()
    print(f"Generation and preprocessing, sim2sim, {args.n_mergers} mergers + {args.n_nonmergers} non-mergers")
    header = (f"{'stage':16s} {'thr':>3s} {'galaxies':>8s} {'images out':>10s} {'seconds':>8s} {'galaxies/s':>10s} "
              f"{'peak RSS MB':>11s} {'baseline MB':>11s} {'+stage MB':>9s} {'workers MB':>10s}")
    print(header)
    print("-" * len(header))
    for r in rows:
        workers = f"{r['peak_rss_children_mb']:10.0f}" if r["stage"] == "synthesize" and r["threads"] > 1 \
            else f"{'-':>10s}"
        print(f"{r['stage']:16s} {r['threads']:3d} {r['objects']:8d} {r['images_out']:10d} {r['seconds']:8.2f} "
              f"{r['galaxies_per_s']:10.1f} {r['peak_rss_mb']:11.0f} {r['baseline_rss_mb']:11.0f} "
              f"{r['stage_rss_increase_mb']:9.0f} {workers}")
    print("(galaxies = objects rendered or raw objects read; synthesize writes 2 images per object, prepare "
          "balances/augments; peak RSS = ru_maxrss of the stage's own process, baseline = RSS after imports; "
          "workers = largest forked render worker)")
    print(f"load average before/after: {load_before[0]:.2f} / {load_after[0]:.2f} (shared machine, "
          f"{os.cpu_count()} cores)")

    import torch  # only for the version in the record

    result = {"script": "benchmarks/generation_throughput.py", "argv": sys.argv[1:],
              "environment": {"python": platform.python_version(), "torch": torch.__version__,
                              "cpu_count": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": load_after,
                              "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
              "settings": {"params": params, "seed": seed, "threads": threads, "prepare": dict(prep)},
              "rows": rows}
    out = Path(args.out)
    write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
