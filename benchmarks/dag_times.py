#!/usr/bin/env python
"""Where the workflow's time goes: a summary of the benchmark TSV files Snakemake wrote.

Every rule with a ``benchmark:`` directive writes ``benchmarks/<rule>/.../<job>.tsv`` (e.g.
``benchmarks/train/sim2sim/deepmerge/mmd/seed1.tsv``): a header line (``s  h:m:s  max_rss  max_vms  max_uss
max_pss  io_in  io_out  mean_load  cpu_time``) and one line per repetition. This script reads all of them
under ``<workdir>/benchmarks`` and prints

* per rule (= the first path component under benchmarks/): jobs, total / mean / max seconds, share of the
  total, the largest max_rss (MB) and the summed cpu_time;
* every job, slowest first;
* the slowest rules by name;

and writes the same as JSON (default benchmarks/results/dag_times.json). A job benchmarked with repeats
counts the mean of its repetitions. Seconds are summed wall times of jobs: with parallel jobs the workflow's
wall time is shorter than the total.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path

from deepmerge_da.io.atomic import write_text_atomic


def _number(text: str | None) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return math.nan  # "-", "NA", empty
    return value


def read_benchmark(path: Path) -> dict:
    """The mean of a benchmark file's rows for the numeric columns (NaN when a column is missing)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows:
        raise ValueError(f"{path}: no benchmark rows")
    keys = [k for k in rows[0] if k and k != "h:m:s"]
    out = {"repeats": len(rows)}
    for key in keys:
        values = [_number(r.get(key)) for r in rows]
        values = [v for v in values if not math.isnan(v)]
        out[key] = sum(values) / len(values) if values else math.nan
    return out


def collect(bench_dir: Path) -> list[dict]:
    jobs = []
    for path in sorted(bench_dir.rglob("*.tsv")):
        rel = path.relative_to(bench_dir)
        parts = rel.with_suffix("").parts
        rule = parts[0]  # a file directly under benchmarks/ names its rule by its stem
        job = "/".join(parts[1:]) if len(parts) > 1 else ""
        try:
            values = read_benchmark(path)
        except (OSError, ValueError) as exc:
            print(f"skipped {path}: {exc}", file=sys.stderr)
            continue
        jobs.append({"rule": rule, "job": job, "file": str(path), "seconds": values.get("s", math.nan),
                     "max_rss_mb": values.get("max_rss", math.nan), "cpu_time_s": values.get("cpu_time", math.nan),
                     "mean_load": values.get("mean_load", math.nan), "io_in_mb": values.get("io_in", math.nan),
                     "io_out_mb": values.get("io_out", math.nan), "repeats": values["repeats"]})
    return jobs


def _nansum(values) -> float:
    values = [v for v in values if not math.isnan(v)]
    return sum(values) if values else math.nan


def _nanmax(values) -> float:
    values = [v for v in values if not math.isnan(v)]
    return max(values) if values else math.nan


def summarise(jobs: list[dict]) -> list[dict]:
    total = _nansum(j["seconds"] for j in jobs)
    rules = {}
    for j in jobs:
        rules.setdefault(j["rule"], []).append(j)
    out = []
    for rule, members in rules.items():
        seconds = [j["seconds"] for j in members]
        s = _nansum(seconds)
        out.append({"rule": rule, "jobs": len(members), "total_s": s, "mean_s": s / len(members),
                    "max_s": _nanmax(seconds), "share": s / total if total else math.nan,
                    "max_rss_mb": _nanmax(j["max_rss_mb"] for j in members),
                    "cpu_time_s": _nansum(j["cpu_time_s"] for j in members)})
    return sorted(out, key=lambda r: -r["total_s"] if not math.isnan(r["total_s"]) else 0.0)


def _hms(seconds: float) -> str:
    if math.isnan(seconds):
        return "-"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}"


def _json_safe(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Summarise the Snakemake benchmark TSV files of a workflow directory: per-rule total "
                    "seconds, every job sorted by time, the slowest rules; writes JSON.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--workdir", default=".", help="the workflow directory (the one holding benchmarks/)")
    p.add_argument("--benchmarks-dir", default=None,
                   help="directory of the TSV files (default: WORKDIR/benchmarks); the rule is the first path "
                        "component under it")
    p.add_argument("--top", type=int, default=3, help="how many slowest rules to name")
    p.add_argument("--jobs", type=int, default=0, help="print only the N slowest jobs (0: all)")
    p.add_argument("--out", default="benchmarks/results/dag_times.json", help="JSON output ('' to skip)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    bench_dir = Path(args.benchmarks_dir) if args.benchmarks_dir else Path(args.workdir) / "benchmarks"
    if not bench_dir.is_dir():
        print(f"no benchmark directory {bench_dir}", file=sys.stderr)
        return 1
    jobs = collect(bench_dir)
    if not jobs:
        print(f"no *.tsv benchmark files under {bench_dir}", file=sys.stderr)
        return 1
    rules = summarise(jobs)
    total = _nansum(j["seconds"] for j in jobs)

    print(f"Snakemake benchmarks under {bench_dir}: {len(jobs)} jobs, {len(rules)} rules, "
          f"{total:.1f} s summed job time ({_hms(total)})")
    print()
    header = (f"{'rule':12s} {'jobs':>4s} {'total s':>9s} {'h:m:s':>8s} {'share':>6s} {'mean s':>8s} {'max s':>8s} "
              f"{'max_rss MB':>10s} {'cpu_time s':>10s}")
    print(header)
    print("-" * len(header))
    for r in rules:
        print(f"{r['rule']:12s} {r['jobs']:4d} {r['total_s']:9.1f} {_hms(r['total_s']):>8s} "
              f"{100 * r['share']:5.1f}% {r['mean_s']:8.1f} {r['max_s']:8.1f} {r['max_rss_mb']:10.0f} "
              f"{r['cpu_time_s']:10.1f}")
    print()
    ordered = sorted(jobs, key=lambda j: -j["seconds"] if not math.isnan(j["seconds"]) else 0.0)
    shown = ordered[:args.jobs] if args.jobs else ordered
    width = max(len(f"{j['rule']}/{j['job']}") for j in shown)
    print(f"{'job':{width}s} {'s':>8s} {'share':>6s} {'max_rss MB':>10s} {'cpu_time s':>10s}")
    for j in shown:
        name = f"{j['rule']}/{j['job']}" if j["job"] else j["rule"]
        print(f"{name:{width}s} {j['seconds']:8.1f} {100 * j['seconds'] / total:5.1f}% {j['max_rss_mb']:10.0f} "
              f"{j['cpu_time_s']:10.1f}")
    slowest = [r["rule"] for r in rules[:args.top]]
    print()
    print("slowest rules (summed job time): " + ", ".join(
        f"{r['rule']} ({r['total_s']:.0f} s, {100 * r['share']:.0f}%)" for r in rules[:args.top]))

    if args.out:
        result = {"script": "benchmarks/dag_times.py", "argv": sys.argv[1:], "benchmarks_dir": str(bench_dir),
                  "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "total_job_seconds": total,
                  "n_jobs": len(jobs), "slowest_rules": slowest, "rules": rules, "jobs": ordered}
        out = Path(args.out)
        write_text_atomic(out, json.dumps(_json_safe(result), indent=2) + "\n")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
