#!/usr/bin/env python
"""Realism of the sim2real source against real SDSS cutouts, for config overlays (docs/realism.md).

Reads the real post-mergers and a seeded subset of the non-mergers of a cutout directory
(``deepmerge_da.report.realism.real_sets``), renders ``--n`` objects of today's synthetic source, of the source of
each overlay (a YAML file layered like ``--configfile``; only its ``data.pairs.sim2real.synthetic`` section is used)
and of the built-in synthetic SDSS-like target, and writes the realism table, histograms and montage
(``deepmerge_da.report.realism.write_realism_report``) under ``--out``. Each statistic of a synthetic source is also
given as its ratio to the mean of the two real sets; the goal of the calibration is every ratio within 0.75-1.25.

    nice -n 10 python benchmarks/sim2real_realism.py --cutout-dir ../shared/data/sdss-galaxyzoo \\
        --overlay config/examples/sim2real_real_sdss.yaml
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from deepmerge_da.config import load_yaml
from deepmerge_da.data.synthetic import Sim2RealParams, render_sim2real_source
from deepmerge_da.report.realism import CHANNELS, STATISTICS, real_sets, synthetic_sets, write_realism_report

GOAL = 0.25  # relative tolerance of each statistic against the real cutouts


def _source(params: dict, n: int, seed: int, threads: int) -> np.ndarray:
    rendered = render_sim2real_source(Sim2RealParams.from_dict(params).replace(source_n_objects=n), seed=seed,
                                      threads=threads, progress=False)
    return rendered.images[:, [list(rendered.filters).index(b) for b in CHANNELS]]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cutout-dir", required=True)
    ap.add_argument("--overlay", action="append", default=[], help="YAML config overlay (repeatable)")
    ap.add_argument("--n", type=int, default=300, help="objects of each synthetic set")
    ap.add_argument("--max-nonmergers", type=int, default=310, help="real non-mergers (all stage-3 mergers load)")
    ap.add_argument("--seed", type=int, default=1, help="data seed (the target sample uses seed + 1)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/realism")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    t0 = time.perf_counter()
    sets, notes = real_sets(args.cutout_dir, max_nonmergers=args.max_nonmergers, seed=args.seed)
    synthetic = synthetic_sets({}, seed=args.seed, n_objects=args.n, threads=args.threads)
    sets["synthetic source (today)"] = synthetic["synthetic source"]
    for path in args.overlay:
        section = (load_yaml(path).get("data") or {}).get("pairs", {}).get("sim2real", {}).get("synthetic") or {}
        sets[f"synthetic source ({Path(path).stem})"] = _source(section, args.n, args.seed, args.threads)
    sets["synthetic SDSS-like target (built-in)"] = synthetic["synthetic SDSS-like target"]
    description = (f"real: SDSS cutouts '{Path(args.cutout_dir).resolve().name}' (all stage-3 post-mergers, "
                   f"{args.max_nonmergers} non-mergers, seed {args.seed}); synthetic: {args.n} objects each, data "
                   f"seed {args.seed} (target seed {args.seed + 1}); overlays: {', '.join(args.overlay) or 'none'}")
    table = write_realism_report(sets, args.out, description, notes).set_index("set")
    real = table.loc[[name for name in table.index if name.startswith("real")], list(STATISTICS)].mean()
    print(table.to_string(float_format=lambda v: f"{v:.3g}"))
    print(f"\nratio to the real mean (goal: within 1 +- {GOAL:.2f})")
    ratios = table.loc[[n for n in table.index if not n.startswith("real")], list(STATISTICS)] / real
    print(ratios.to_string(float_format=lambda v: f"{v:.2f}"))
    print(f"\n{time.perf_counter() - t0:.0f} s; written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
