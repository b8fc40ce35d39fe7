#!/usr/bin/env python
"""Paper-scale training throughput on a GPU, and the projected wall time of the paper's whole grid.

Measures, with OUR trainer (``deepmerge_da.training.loop.train_one_epoch`` + ``TransferObjective`` + ``make_optimizer``,
hyperparameters from config/presets.yaml) on synthetic random 3 x 75 x 75 images resident on the device, batch
128 (+128 target images for DA methods), the training throughput (images/s, source + target images per step)
of DeepMerge and ResNet18 for the methods noda, mmd, ada, in these variants:

* ``fp32``                 the workflow's default (training.amp: false), contiguous (NCHW) tensors;
* ``bf16``                 bfloat16 autocast (training.amp: true);
* ``fp32+cl`` / ``bf16+cl`` the same with ``channels_last`` model and input;
* ``bf16+cl+bench``        (CUDA only) bf16 + channels_last with ``cudnn.benchmark`` on and deterministic
                           algorithms off (train_run asks for deterministic algorithms, as this script does
                           for every other variant).

It also measures evaluation throughput (``predict_logits``, batch 512) for the per-epoch evaluation passes
(validation and test splits of both domains, see EVAL_SPLITS_PER_EPOCH),
then projects the wall time of the paper-scale grid (one run at a time on this device) from the constants below:
sim2sim x {deepmerge, resnet18} x {noda, mmd, mmd_fisher_em, ada, ada_fisher_em} + sim2real x deepmerge x
{noda, mmd, tl_mmd, target_only}. Methods not measured are costed as the measured method with the same
network pass (see COSTED_AS). Data loading (load_split) and process start-up are not included.

Prints torch / CUDA / cuDNN versions and the device, a table, the projection; writes JSON (``--out``).
Smoke check on a CPU (slow, not a measurement): ``python benchmarks/gpu_paper_scale.py --device cpu --steps 3``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from deepmerge_da.config import load_presets, run_hyperparameters
from deepmerge_da.io.atomic import write_text_atomic
from deepmerge_da.nn.methods import TransferObjective, uses_target
from deepmerge_da.nn.models import build_network, count_trainable_parameters
from deepmerge_da.training.loop import make_optimizer, train_one_epoch
from deepmerge_da.training.runtime import DomainTensors, predict_logits, seed_everything

# ---- Paper scale (DeepMerge II, Ciprijanovic et al. 2021) -------------------------------------------------------
IMAGE_SHAPE = (3, 75, 75)   # Sec. 4: three filters, 75 x 75 pixels in both pairs
BATCH_SIZE = 128            # the workflow's training.batch_size
SPLIT = (0.7, 0.1, 0.2)     # Sec. 4.1 / 4.2: train / validation / test
# Sec. 4.1: sim2sim source and target are the same 8120 mergers + 7306 non-mergers (15,426 images per domain).
SIM2SIM_IMAGES = 8120 + 7306
# Sec. 4.2: sim2real source 3000 + 3000 (augmented post-mergers + truncated non-mergers); target 3000 + 3000.
SIM2REAL_IMAGES = 3000 + 3000
SIZES = {pair: {split: int(round(frac * n)) for split, frac in zip(("train", "val", "test"), SPLIT, strict=True)}
         for pair, n in (("sim2sim", SIM2SIM_IMAGES), ("sim2real", SIM2REAL_IMAGES))}
# -> sim2sim: 10,798 train / 1,543 val / 3,085 test per domain; sim2real: 4,200 / 600 / 1,200 per domain.
# Epochs: Appendix A (Tables A2/A3) gives early-stopping patience (DeepMerge 20, ResNet18 15 epochs) but no
# epoch cap; Fig. 5 shows embeddings "after 40 epochs". Assumed here: a run stops around best epoch + patience,
# with the best epoch near 40 for DeepMerge and near 20 for ResNet18 (which overfits earlier, Sec. 6.1), and a
# cap of 100 epochs as the upper bound. The workflow's own cap is training.max_epochs (20 in config.yaml).
TYPICAL_EPOCHS = {"deepmerge": 40 + 20, "resnet18": 20 + 15}
MAX_EPOCHS = 100
# Forward passes per epoch besides training: train_run evaluates the source and target validation splits every
# epoch and, for the selection tables, the test splits too (reporting only); the selection scores computed from
# those outputs are not costed here. The train job's final evaluation (evaluate_run) adds one more pass over both
# test splits per run.
EVAL_SPLITS_PER_EPOCH = ("val", "test")
# Seeds: ten for every DeepMerge experiment (Tables B2 and B4); ResNet18 is reported for seed 1 only (Sec. 5).
SEEDS = {"deepmerge": 10, "resnet18": 1}
GRID = ([("sim2sim", net, m) for net in ("deepmerge", "resnet18")
         for m in ("noda", "mmd", "mmd_fisher_em", "ada", "ada_fisher_em")]
        + [("sim2real", "deepmerge", m) for m in ("noda", "mmd", "tl_mmd", "target_only")])
# Methods costed as another (same network passes; the Fisher / entropy terms are a few small reductions).
COSTED_AS = {"mmd_fisher_em": "mmd", "ada_fisher_em": "ada", "tl_mmd": "mmd", "target_only": "noda"}
VARIANTS = {  # name: (bf16 autocast, channels_last, cudnn.benchmark + non-deterministic)
    "fp32": (False, False, False), "bf16": (True, False, False), "fp32+cl": (False, True, False),
    "bf16+cl": (True, True, False), "bf16+cl+bench": (True, True, True)}
DEFAULT_VARIANT = "fp32"  # what config.yaml runs (amp: false)


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def set_fast(dev: torch.device, fast: bool) -> None:
    """Deterministic algorithms as train_run asks for them (``fast=False``), or cudnn.benchmark instead."""
    torch.use_deterministic_algorithms(not fast, warn_only=True)
    torch.backends.cudnn.benchmark = bool(fast and dev.type == "cuda")


def random_domain(n: int, dev: torch.device, seed: int, channels_last: bool) -> DomainTensors:
    g = torch.Generator(device=dev).manual_seed(seed)
    images = torch.randn((n,) + IMAGE_SHAPE, generator=g, device=dev)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 2, (n,), generator=g, device=dev)
    return DomainTensors(images, labels, np.arange(n).astype(str), {})


def head(d: DomainTensors, n: int, start: int = 0) -> DomainTensors:
    return DomainTensors(d.images[start:start + n], d.labels[start:start + n], d.object_id[start:start + n], d.attrs)


def measure_train(network, method, variant, hp, dev, *, steps, warmup, seed, total_steps) -> dict:
    amp, channels_last, fast = VARIANTS[variant]
    set_fast(dev, fast)
    torch.manual_seed(seed)
    model = build_network(network, in_channels=IMAGE_SHAPE[0], dropout=float(hp.get("dropout") or 0.0)).to(dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    objective = TransferObjective(method, model.feature_dim, hp).to(dev)
    steps_per_epoch = max(1, math.ceil(SIZES["sim2sim"]["train"] / BATCH_SIZE))
    optimizer, scheduler = make_optimizer(model, objective, hp, steps_per_epoch)
    generator = torch.Generator().manual_seed(seed)
    n = (warmup + steps) * BATCH_SIZE
    source = random_domain(n, dev, seed, channels_last)
    target = random_domain(n, dev, seed + 1, channels_last) if uses_target(method) else None
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    if warmup:
        train_one_epoch(model, objective, optimizer, scheduler, head(source, warmup * BATCH_SIZE), target,
                        BATCH_SIZE, generator, 0, total_steps, augment=bool(hp.get("augment")), amp=amp)
    sync(dev)
    t0 = time.perf_counter()
    row = train_one_epoch(model, objective, optimizer, scheduler, head(source, steps * BATCH_SIZE,
                                                                       warmup * BATCH_SIZE),
                          target, BATCH_SIZE, generator, warmup, total_steps, augment=bool(hp.get("augment")),
                          amp=amp)
    sync(dev)
    seconds = time.perf_counter() - t0
    images = steps * BATCH_SIZE * (2 if target is not None else 1)
    out = {"network": network, "method": method, "variant": variant, "amp_bf16": amp,
           "channels_last": channels_last, "cudnn_benchmark_nondeterministic": fast, "steps": steps,
           "warmup_steps": warmup, "images_per_step": images // steps, "seconds": seconds,
           "ms_per_step": 1e3 * seconds / steps, "images_per_s": images / seconds,
           "finite_loss": bool(np.isfinite(row.get("train_total", float("nan")))),
           "peak_memory_mb": (torch.cuda.max_memory_allocated(dev) / 2**20) if dev.type == "cuda" else None,
           "trainable_parameters": count_trainable_parameters(model)}
    del model, objective, optimizer, source, target
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return out


def measure_eval(network, channels_last, dev, *, images, seed) -> float:
    """Images/s of predict_logits (batch 512, float32, as the per-epoch validation of train_run)."""
    set_fast(dev, False)
    torch.manual_seed(seed)
    model = build_network(network, in_channels=IMAGE_SHAPE[0]).to(dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    data = random_domain(images, dev, seed, channels_last)
    predict_logits(model, data.images[:512])  # warm-up
    sync(dev)
    t0 = time.perf_counter()
    predict_logits(model, data.images, 512)
    sync(dev)
    return images / (time.perf_counter() - t0)


def project(train_rate: dict, eval_rate: dict, variant_of) -> dict:
    """Serial wall time of the grid; ``variant_of(network, method)`` picks the variant whose rate is used."""
    runs, typical_s, cap_s = [], 0.0, 0.0
    for pair, network, method in GRID:
        measured = method if (network, method, variant_of(network, method)) in train_rate \
            else COSTED_AS.get(method, method)
        variant = variant_of(network, measured)
        rate = train_rate.get((network, measured, variant))
        if rate is None:
            runs.append({"pair": pair, "network": network, "method": method, "missing": f"{measured}/{variant}"})
            continue
        cl = VARIANTS[variant][1]
        sizes = SIZES[pair]
        k = 2 if uses_target(method) else 1
        train_s = sizes["train"] * k / rate                       # one epoch of optimisation steps
        eval_images = 2 * sum(sizes[split] for split in EVAL_SPLITS_PER_EPOCH)   # source + target
        val_s = eval_images / eval_rate[(network, cl)]            # the per-epoch evaluation passes
        test_s = 2 * sizes["test"] / eval_rate[(network, cl)]     # the final evaluation, once per run
        epoch_s = train_s + val_s
        seeds = SEEDS[network]
        run = {"pair": pair, "network": network, "method": method, "costed_as": measured, "variant": variant,
               "seeds": seeds, "train_images_per_epoch": sizes["train"] * k, "epoch_seconds": epoch_s,
               "run_seconds_typical": TYPICAL_EPOCHS[network] * epoch_s + test_s,
               "run_seconds_cap": MAX_EPOCHS * epoch_s + test_s}
        typical_s += seeds * run["run_seconds_typical"]
        cap_s += seeds * run["run_seconds_cap"]
        runs.append(run)
    missing = [r for r in runs if "missing" in r]
    return {"runs": runs, "n_runs": sum(SEEDS[n] for _, n, _ in GRID),
            "n_runs_not_measured": sum(SEEDS[r["network"]] for r in missing), "complete": not missing,
            "total_hours_typical": typical_s / 3600, "total_hours_cap": cap_s / 3600}


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Paper-scale (3x75x75, batch 128) training throughput of DeepMerge and ResNet18 with our "
                    "train_one_epoch on device-resident random tensors (fp32 / bf16 autocast, channels_last), "
                    "and the projected wall time of the paper's grid. Meant for a GPU; on a CPU only as a smoke "
                    "check (--device cpu --steps 3).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="torch device (cuda, cuda:N, cpu)")
    p.add_argument("--networks", default="deepmerge,resnet18", help="comma-separated networks")
    p.add_argument("--methods", default="noda,mmd,ada",
                   help="comma-separated methods to measure (others are costed as in COSTED_AS)")
    p.add_argument("--variants", default=None,
                   help=f"comma-separated subset of {', '.join(VARIANTS)} (default: all; bf16+cl+bench on CUDA only)")
    p.add_argument("--steps", type=int, default=30, help="timed optimisation steps per row")
    p.add_argument("--warmup", type=int, default=None, help="untimed warm-up steps per row (default 5 on CUDA, "
                                                           "0 on CPU)")
    p.add_argument("--eval-images", type=int, default=None,
                   help="images for the evaluation throughput (default 8192 on CUDA, 512 on CPU)")
    p.add_argument("--config", default="config/config.yaml", help="workflow config (presets_file, overrides)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU smoke check)")
    p.add_argument("--out", default=None,
                   help="JSON output (default benchmarks/results/gpu_paper_scale_<device type>.json)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available; use --device cpu for the smoke check", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    warmup = args.warmup if args.warmup is not None else (5 if dev.type == "cuda" else 0)
    eval_images = args.eval_images or (8192 if dev.type == "cuda" else 512)
    variants = args.variants.split(",") if args.variants else [
        v for v in VARIANTS if dev.type == "cuda" or not VARIANTS[v][2]]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        print(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}", file=sys.stderr)
        return 2
    networks = [n for n in args.networks.split(",") if n]
    methods = [m for m in args.methods.split(",") if m]

    config = yaml.safe_load(Path(args.config).read_text())
    presets = load_presets(config["presets_file"])
    seed_everything(args.seed)

    env = {"torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
           "python": platform.python_version(), "device": str(dev), "threads": torch.get_num_threads(),
           "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
           "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32}
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        env.update(device_name=props.name, capability=f"{props.major}.{props.minor}",
                   memory_gib=round(props.total_memory / 2**30, 1), multiprocessors=props.multi_processor_count,
                   bf16_supported=torch.cuda.is_bf16_supported())
    else:
        env.update(device_name=platform.processor() or platform.machine(), cpu_count=os.cpu_count())
    print(f"torch {env['torch']}, CUDA {env['cuda']}, cuDNN {env['cudnn']}, python {env['python']}")
    print(f"device {dev}: {env['device_name']}" + (f" (sm {env['capability']}, {env['memory_gib']} GiB)"
                                                   if dev.type == "cuda" else " (CPU smoke check, not a measurement)"))
    print(f"paper scale: {IMAGE_SHAPE}, batch {BATCH_SIZE}; sizes per domain {SIZES}; epochs typical "
          f"{TYPICAL_EPOCHS}, cap {MAX_EPOCHS}; seeds {SEEDS}")

    rows = []
    total_steps = MAX_EPOCHS * math.ceil(SIZES["sim2sim"]["train"] / BATCH_SIZE)
    for network in networks:
        for method in methods:
            hp = run_hyperparameters(config, presets, "sim2sim", network, method)
            for variant in variants:
                r = measure_train(network, method, variant, hp, dev, steps=args.steps, warmup=warmup,
                                  seed=args.seed, total_steps=total_steps)
                rows.append(r)
                print(f"  {network:9s} {method:5s} {variant:14s} {r['images_per_s']:9.1f} img/s "
                      f"({r['ms_per_step']:.1f} ms/step)", flush=True)
    eval_rate = {}
    for network in networks:
        for cl in sorted({VARIANTS[v][1] for v in variants}):
            eval_rate[(network, cl)] = measure_eval(network, cl, dev, images=eval_images, seed=args.seed)
    set_fast(dev, False)

    print()
    header = (f"{'network':9s} {'method':6s} {'variant':14s} {'img/step':>8s} {'ms/step':>8s} {'img/s':>9s} "
              f"{'vs fp32':>7s} {'peak MB':>8s}")
    print(header)
    print("-" * len(header))
    rate = {(r["network"], r["method"], r["variant"]): r["images_per_s"] for r in rows}
    for r in rows:
        base = rate.get((r["network"], r["method"], "fp32"))
        rel = f"{r['images_per_s'] / base:6.2f}x" if base else "      -"
        mem = f"{r['peak_memory_mb']:8.0f}" if r["peak_memory_mb"] is not None else f"{'-':>8s}"
        print(f"{r['network']:9s} {r['method']:6s} {r['variant']:14s} {r['images_per_step']:8d} "
              f"{r['ms_per_step']:8.1f} {r['images_per_s']:9.1f} {rel} {mem}")
    print("evaluation (predict_logits, batch 512, fp32): " + ", ".join(
        f"{n}{' channels_last' if cl else ''} {v:.0f} img/s" for (n, cl), v in eval_rate.items()))

    def configured(network, method):
        return DEFAULT_VARIANT if DEFAULT_VARIANT in variants else variants[0]

    def best(network, method):
        cands = [(rate[(network, method, v)], v) for v in variants if (network, method, v) in rate]
        return max(cands)[1] if cands else DEFAULT_VARIANT

    projections = {"as_configured": project(rate, eval_rate, configured),
                   "best_variant": project(rate, eval_rate, best)}
    print()
    print(f"Projected wall time of the paper-scale grid, one run at a time on {env['device_name']} "
          f"({projections['as_configured']['n_runs']} runs; typical = {TYPICAL_EPOCHS} epochs, cap = {MAX_EPOCHS}):")
    print(f"{'pair':8s} {'network':9s} {'method':13s} {'seeds':>5s} {'variant':14s} {'s/epoch':>8s} "
          f"{'run typ. min':>12s} {'all seeds typ. h':>16s}")
    for run in projections["best_variant"]["runs"]:
        if "missing" in run:
            print(f"{run['pair']:8s} {run['network']:9s} {run['method']:13s} not measured ({run['missing']})")
            continue
        print(f"{run['pair']:8s} {run['network']:9s} {run['method']:13s} {run['seeds']:5d} {run['variant']:14s} "
              f"{run['epoch_seconds']:8.2f} {run['run_seconds_typical'] / 60:12.2f} "
              f"{run['seeds'] * run['run_seconds_typical'] / 3600:16.3f}")
    for name, proj in projections.items():
        note = "" if proj["complete"] else f" (INCOMPLETE: {proj['n_runs_not_measured']} runs not measured)"
        print(f"  {name:14s}: {proj['total_hours_typical']:.2f} h typical, {proj['total_hours_cap']:.2f} h at the "
              f"{MAX_EPOCHS}-epoch cap{note}")
    if dev.type != "cuda":
        print("(CPU smoke check: these numbers are not a GPU projection)")

    result = {"script": "benchmarks/gpu_paper_scale.py", "argv": sys.argv[1:], "environment": env,
              "constants": {"image_shape": IMAGE_SHAPE, "batch_size": BATCH_SIZE, "split": SPLIT, "sizes": SIZES,
                            "typical_epochs": TYPICAL_EPOCHS, "max_epochs": MAX_EPOCHS, "seeds": SEEDS,
                            "eval_splits_per_epoch": EVAL_SPLITS_PER_EPOCH,
                            "grid": GRID, "costed_as": COSTED_AS},
              "settings": {"steps": args.steps, "warmup": warmup, "eval_images": eval_images, "variants": variants,
                           "networks": networks, "methods": methods, "augment": True,
                           "images_per_s_counts": "source + target images per optimisation step"},
              "rows": rows, "eval_images_per_s": [{"network": n, "channels_last": cl, "images_per_s": v}
                                                  for (n, cl), v in eval_rate.items()],
              "projection": projections}
    out = Path(args.out or f"benchmarks/results/gpu_paper_scale_{dev.type}.json")
    write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
