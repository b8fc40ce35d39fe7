#!/usr/bin/env python
"""Training throughput on CPU: our trainer against a naive per-image DataLoader baseline, in one process.

For each (network, method) the script runs the same number of optimisation steps (after a short warm-up)

* with OUR trainer, exactly as ``train_run`` trains: ``deepmerge_da.training.runtime.load_split`` (the whole train
  split as one contiguous, standardised tensor, as it gives it), the network in the channels-last memory format
  and ``deepmerge_da.training.loop.train_one_epoch`` with its default ``memory_format`` (channels-last batches;
  batched random flips / 90-degree rotations by index);
* with the PREVIOUS trainer (``previous`` rows, every DeepMerge method): the same, but as the trainer was before
  the channels-last change and the narrower domain classifier: the network in the default (contiguous) layout,
  ``train_one_epoch(..., memory_format=torch.contiguous_format)``, and the hyperparameters with those of
  ``PREVIOUS_TRAINER`` (``dc_hidden: 1024``, the paper code's width and ``TransferObjective``'s default, where
  DeepMerge's sim2sim ``ada`` and ``ada_fisher_em`` presets now have 256; methods without a domain classifier
  differ in the layout only), and Adam's single-tensor update (``PREVIOUS_ADAM``; ``make_optimizer`` now asks for
  the multi-tensor one, which gives the same weights). ResNet18 gets these rows with ``--resnet-previous``;
* with a NAIVE baseline written the way such code usually is: a ``torch.utils.data.Dataset`` that reads ONE
  image at a time from the HDF5 file with h5py, standardises it, applies per-sample torchvision transforms
  (RandomHorizontalFlip, RandomVerticalFlip, random 90-degree rotation), and a
  ``DataLoader(batch_size=128, shuffle=True, num_workers=0)`` per domain; the objective (``TransferObjective``),
  optimiser and schedule (``make_optimizer``) and the step are the same, and so is the model, except that its
  pooling layers are ``nn.MaxPool2d(2)`` as usually written where ours are ``MaxPool2x2`` (the same results,
  computed faster on CPU: ``deepmerge_da.nn.pooling``); its model and DataLoader batches stay in the default
  (contiguous) layout (it calls ``optimisation_step``, which is layout-neutral, directly).

Images/s counts source + target images per optimisation step (a DA step of batch 128 sees 256 images).
The machine may be shared: the trainers of one (network, method) are timed in alternating blocks of ``--steps``
steps (round robin, ``--repeats`` rounds) and each keeps its fastest block, so they see the same disturbance.

It also counts DeepMerge's forward FLOPs from its layer shapes (forward hooks; conv 2*Cin*k*k*Cout*Hout*Wout,
linear 2*in*out; training = 3 x forward), measures an SGEMM ceiling (``torch.mm`` of float32 n x n matrices,
best of several, same thread count) and reports our achieved GFLOP/s and its fraction of that ceiling; and it
measures candidate speed-ups of our trainer for DeepMerge noda without changing ``src/``: 1 vs 2 threads (plus
augment=False as a diagnostic). The ``ours+compile`` rows compile today's channels-last model as
``training.compile: true`` does (``compile_for_training``). The summary gives ours / previous per (network,
method) and what the previous trainer differs in (the layout; plus ``dc_hidden`` where the preset differs).

Writes a JSON file (default benchmarks/results/train_throughput.json). Data: the prepared sim2sim pair of the
workflow (results/data/sim2sim/{source,target}.h5, read only) when present, else a small generated pair in a
temporary directory.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from deepmerge_da.config import load_presets, run_hyperparameters
from deepmerge_da.io.atomic import write_text_atomic
from deepmerge_da.io.hdf5 import SPLITS, ImageSet, write_image_set
from deepmerge_da.nn.methods import TransferObjective, uses_target
from deepmerge_da.nn.models import build_network
from deepmerge_da.nn.pooling import with_nn_max_pool2d
from deepmerge_da.report.environment import cpu_model
from deepmerge_da.training.loop import (
    TRAINING_MEMORY_FORMAT,
    compile_for_training,
    make_optimizer,
    optimisation_step,
    train_one_epoch,
)
from deepmerge_da.training.runtime import DomainTensors, load_split, seed_everything

PAIR = "sim2sim"
SPEEDUP_THRESHOLD = 1.05  # a variant "pays off" when it is at least 5 % faster (smaller gaps are noise here)
# The previous trainer (the "previous" rows): the default (contiguous) memory format for the network and its
# batches where ours uses channels-last, and these hyperparameters, in which today's presets may differ from it
# (the previous trainer's values: TransferObjective's defaults and the paper code's).
PREVIOUS_TRAINER = {"dc_hidden": 1024}
PREVIOUS_ADAM = {"foreach": False}  # PyTorch's CPU default, as the previous trainer's optimiser ran
PREVIOUS_MEMORY_FORMAT = torch.contiguous_format
OURS_MEMORY_FORMAT = TRAINING_MEMORY_FORMAT  # what train_run gives the network and train_one_epoch the batches


def previous_hp(hp: dict) -> dict:
    """``hp`` with the previous trainer's values where they differ (a key ``hp`` lacks keeps its default, which
    is the previous trainer's value)."""
    return {**hp, **{key: value for key, value in PREVIOUS_TRAINER.items() if hp.get(key, value) != value}}


def format_name(memory_format: torch.memory_format) -> str:
    return str(memory_format).removeprefix("torch.")


# --------------------------------------------------------------------------------------------------------------
# The naive baseline
# --------------------------------------------------------------------------------------------------------------
class RandomRot90(nn.Module):
    """Rotate a (C, H, W) tensor by a random multiple of 90 degrees."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = int(torch.randint(0, 4, (1,)))
        return torch.rot90(x, k, dims=(-2, -1))


class NaiveH5Dataset(Dataset):
    """One image per ``__getitem__``, read from the HDF5 file, standardised and transformed per sample."""

    def __init__(self, path: str, split: str = "train", transform=None):
        self.path = path
        with h5py.File(path, "r") as f:
            self.rows = np.flatnonzero(f["split"][:] == SPLITS[split])
            self.mean = np.asarray(f.attrs["channel_mean"], dtype=np.float32)[:, None, None]
            self.std = np.asarray(f.attrs["channel_std"], dtype=np.float32)[:, None, None]
        self.transform = transform
        self.file = None  # opened lazily (the usual pattern, so that DataLoader workers each get their own)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        if self.file is None:
            self.file = h5py.File(self.path, "r")
        row = int(self.rows[i])
        image = self.file["images"][row]
        label = int(self.file["labels"][row])
        x = torch.from_numpy((image - self.mean) / self.std)
        if self.transform is not None:
            x = self.transform(x)
        return x, label


def naive_transform() -> T.Compose:
    return T.Compose([T.RandomHorizontalFlip(), T.RandomVerticalFlip(), RandomRot90()])


class Batches:
    """Endless iterator over a DataLoader (a new shuffled epoch when one ends); times the loading."""

    def __init__(self, loader: DataLoader):
        self.loader, self.it, self.seconds = loader, iter(loader), 0.0

    def next(self):
        t0 = time.perf_counter()
        try:
            batch = next(self.it)
        except StopIteration:
            self.it = iter(self.loader)
            batch = next(self.it)
        self.seconds += time.perf_counter() - t0
        return batch


def naive_steps(model, objective, optimizer, scheduler, src: Batches, tgt: Batches | None, steps: int,
                first_step: int, total_steps: int) -> int:
    """``steps`` optimisation steps, our ``optimisation_step`` fed by the DataLoaders; returns the images seen."""
    model.train()
    objective.train()
    seen = 0
    for i in range(steps):
        x, y = src.next()
        if tgt is not None:
            xt, _ = tgt.next()
            x = torch.cat([x, xt])
        progress = min(1.0, (first_step + i) / max(1, total_steps))
        out, _ = optimisation_step(model, objective, optimizer, scheduler, x, y, progress)  # the same step as ours
        _ = (out.source_logits.argmax(1) == y).sum().item()  # the usual running accuracy
        seen += len(x)
    return seen


# --------------------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------------------
def subset(data: DomainTensors, n: int, generator: torch.Generator) -> DomainTensors:
    """``n`` images of ``data`` (a random order, repeated if ``n`` exceeds the split) as a new DomainTensors.

    ``train_one_epoch`` makes one pass over its source, so a source of steps * batch images is exactly
    ``steps`` optimisation steps.
    """
    perm = torch.randperm(len(data), generator=generator)
    idx = perm[torch.arange(n) % len(data)]
    return DomainTensors(data.images[idx].contiguous(), data.labels[idx], data.object_id[idx.numpy()], data.attrs)


def forward_flops(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, list[dict]]:
    """Forward FLOPs per image of the conv and linear layers, from the shapes seen by forward hooks."""
    layers: list[dict] = []

    def hook(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            flops = 2 * (module.in_channels // module.groups) * kh * kw * module.out_channels \
                * output.shape[-2] * output.shape[-1]
            shape = list(output.shape[1:])
        else:
            flops = 2 * module.in_features * module.out_features
            shape = [module.out_features]
        layers.append({"layer": names[module], "type": type(module).__name__, "output": shape, "flops": int(flops)})

    names = {m: n for n, m in model.named_modules()}
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros((1,) + tuple(input_shape)))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return sum(layer["flops"] for layer in layers), layers


def sgemm_gflops(n: int, threads: int, repeats: int) -> float:
    """Best-of-``repeats`` GFLOP/s of a float32 n x n matrix product with ``threads`` threads."""
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    c = torch.empty(n, n)
    torch.mm(a, b, out=c)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b, out=c)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e9


def make_small_pair(directory: Path, n: int, seed: int = 0) -> tuple[str, str]:
    """A small prepared-like pair (split column and channel_mean/std attributes) when no workflow data exist."""
    rng = np.random.default_rng(seed)
    paths = []
    for domain, noise in (("source", 0.2), ("target", 1.0)):
        labels = (np.arange(n) % 2).astype(np.int8)
        images = rng.normal(scale=noise, size=(n, 3, 75, 75)).astype(np.float32)
        images[:, :, 30:45, 30:45] += labels[:, None, None, None] * 3.0
        split = rng.choice(np.array([0, 1, 2], np.int8), size=n, p=[0.7, 0.1, 0.2])
        train = images[split == 0]
        attrs = {"filters": ["F814W", "F356W", "F160W"], "pixel_scale": 0.06, "units": "arbitrary",
                 "data_source": "benchmarks/train_throughput.py: random images", "image_size": 75,
                 "channel_mean": train.mean(axis=(0, 2, 3)).astype(np.float32),
                 "channel_std": train.std(axis=(0, 2, 3)).astype(np.float32)}
        path = directory / f"{domain}.h5"
        write_image_set(path, ImageSet(images, labels, np.arange(n).astype(str), attrs, split=split))
        paths.append(str(path))
    return paths[0], paths[1]


# --------------------------------------------------------------------------------------------------------------
# The two trainers, as runners that can be timed block by block (interleaved, see main)
# --------------------------------------------------------------------------------------------------------------
def build(network: str, method: str, hp: dict, in_channels: int, steps_per_epoch: int, seed: int,
          channels_last: bool = False, textbook: bool = False):
    torch.manual_seed(seed)
    model = build_network(network, in_channels=in_channels, dropout=float(hp.get("dropout") or 0.0))
    if textbook:
        model = with_nn_max_pool2d(model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    objective = TransferObjective(method, model.feature_dim, hp)
    optimizer, scheduler = make_optimizer(model, objective, hp, steps_per_epoch)
    return model, objective, optimizer, scheduler


class OursRunner:
    """Our trainer: whole splits as tensors (as ``load_split`` gives them), ``train_one_epoch`` over
    ``steps * batch`` source images per block.

    By default exactly today's trainer (a channels-last network, ``train_one_epoch``'s default ``memory_format``);
    with ``previous``, the previous trainer's layout: a contiguous network and contiguous batches (the caller
    passes the previous trainer's ``hp``)."""

    def __init__(self, network, method, hp, src: DomainTensors, tgt: DomainTensors, *, batch, seed, threads,
                 total_steps, previous=False, augment=True, compile_model=False):
        self.batch, self.threads, self.total_steps, self.augment = batch, threads, total_steps, augment
        self.memory_format = PREVIOUS_MEMORY_FORMAT if previous else OURS_MEMORY_FORMAT
        steps_per_epoch = max(1, math.ceil(len(src) / batch))
        self.parts = build(network, method, hp, src.images.shape[1], steps_per_epoch, seed,
                           channels_last=not previous)
        if previous:
            for group in self.parts[2].param_groups:
                group.update(PREVIOUS_ADAM)
        if compile_model:  # as train_run(compile_model=True): today's channels-last model, compiled
            self.parts = (compile_for_training(self.parts[0]),) + self.parts[1:]
        self.generator = torch.Generator().manual_seed(seed)
        self.target = tgt if uses_target(method) else None
        self.src, self.step, self.previous = src, 0, previous

    def run(self, steps: int) -> dict:
        torch.set_num_threads(self.threads)
        data = subset(self.src, steps * self.batch, self.generator)  # prepared outside the timed region
        # ours: train_one_epoch's default memory_format (channels-last), as train_run calls it
        layout = {"memory_format": PREVIOUS_MEMORY_FORMAT} if self.previous else {}
        t0 = time.perf_counter()
        train_one_epoch(*self.parts, data, self.target, self.batch, self.generator, self.step, self.total_steps,
                        augment=self.augment, **layout)
        seconds = time.perf_counter() - t0
        self.step += steps
        return {"seconds": seconds, "images": steps * self.batch * (2 if self.target is not None else 1),
                "loader_seconds": None}


class NaiveRunner:
    """The naive pipeline: per-image h5py Dataset + DataLoader per domain, the same model/objective/step."""

    def __init__(self, network, method, hp, source_path, target_path, *, batch, seed, threads, total_steps):
        self.threads, self.total_steps = threads, total_steps
        torch.manual_seed(seed)
        src_set = NaiveH5Dataset(source_path, "train", naive_transform())
        with h5py.File(source_path, "r") as f:
            in_channels = f["images"].shape[1]
        self.parts = build(network, method, hp, in_channels, max(1, math.ceil(len(src_set) / batch)), seed,
                           textbook=True)
        # drop_last: source and target batches must pair up one to one
        self.src = Batches(DataLoader(src_set, batch_size=batch, shuffle=True, num_workers=0, drop_last=True))
        self.tgt = None
        if uses_target(method):
            tgt_set = NaiveH5Dataset(target_path, "train", naive_transform())
            self.tgt = Batches(DataLoader(tgt_set, batch_size=batch, shuffle=True, num_workers=0, drop_last=True))
        self.step = 0

    def run(self, steps: int) -> dict:
        torch.set_num_threads(self.threads)
        self.src.seconds = 0.0
        if self.tgt is not None:
            self.tgt.seconds = 0.0
        t0 = time.perf_counter()
        images = naive_steps(*self.parts, self.src, self.tgt, steps, self.step, self.total_steps)
        seconds = time.perf_counter() - t0
        self.step += steps
        return {"seconds": seconds, "images": images,
                "loader_seconds": self.src.seconds + (self.tgt.seconds if self.tgt is not None else 0.0)}


# --------------------------------------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Training throughput (images/s, source+target images per step) of our trainer "
                    "(load_split + train_one_epoch, channels-last) against a naive per-image h5py Dataset + "
                    "DataLoader baseline and the previous trainer (contiguous layout, dc_hidden 1024), DeepMerge's "
                    "GFLOP/s against an SGEMM ceiling, and candidate CPU speed-ups (1 vs 2 threads). Prints a "
                    "table and writes JSON.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--source", default="results/data/sim2sim/source.h5",
                   help="prepared source HDF5 (read only); a small random pair is generated if it or --target "
                        "is missing")
    p.add_argument("--target", default="results/data/sim2sim/target.h5", help="prepared target HDF5 (read only)")
    p.add_argument("--config", default="config/config.yaml", help="workflow config (training.max_epochs, "
                                                                  "training.batch_size, presets_file)")
    p.add_argument("--presets", default=None, help="presets file (default: the config's presets_file)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads for both trainers")
    p.add_argument("--batch-size", type=int, default=128, help="source images per step (DA steps add as many "
                                                               "target images)")
    p.add_argument("--steps", type=int, default=4, help="timed optimisation steps per block, DeepMerge rows")
    p.add_argument("--repeats", type=int, default=8,
                   help="timed blocks per DeepMerge row, taken in turn with the other rows of the same method; the "
                        "fastest block counts (on a shared machine, the least disturbed one)")
    p.add_argument("--warmup", type=int, default=2, help="untimed warm-up steps of each DeepMerge row")
    p.add_argument("--deepmerge-methods", default="noda,mmd,ada", help="comma-separated DeepMerge methods")
    p.add_argument("--resnet-methods", default="noda,mmd",
                   help="comma-separated ResNet18 methods ('' to skip ResNet18)")
    p.add_argument("--resnet-steps", type=int, default=2, help="timed steps per ResNet18 row")
    p.add_argument("--resnet-warmup", type=int, default=1, help="warm-up steps per ResNet18 row")
    p.add_argument("--resnet-repeats", type=int, default=2, help="timed blocks per ResNet18 row")
    p.add_argument("--no-naive", action="store_true", help="skip the naive baseline rows")
    p.add_argument("--resnet-previous", action="store_true",
                   help="also time the previous trainer for the ResNet18 methods (DeepMerge's always are)")
    p.add_argument("--no-compile", action="store_true", help="skip the 'ours+compile' rows (torch.compile)")
    p.add_argument("--no-variants", action="store_true", help="skip the threads / augment rows")
    p.add_argument("--sgemm-n", type=int, default=2048, help="matrix side of the SGEMM ceiling")
    p.add_argument("--sgemm-repeats", type=int, default=7, help="SGEMM repetitions (the best is kept)")
    p.add_argument("--synthetic-n", type=int, default=1024, help="images per domain of the generated pair")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default="benchmarks/results/train_throughput.json", help="JSON output")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    config = yaml.safe_load(Path(args.config).read_text())
    presets = load_presets(args.presets or config["presets_file"])
    max_epochs = int(config["training"]["max_epochs"])
    batch = args.batch_size
    seed_everything(args.seed)  # as train_run does (deterministic algorithms where they exist)
    torch.set_num_threads(args.threads)

    tmp = None
    source, target = args.source, args.target
    if not (Path(source).exists() and Path(target).exists()):
        tmp = tempfile.TemporaryDirectory(prefix="train_throughput_")
        source, target = make_small_pair(Path(tmp.name), args.synthetic_n)
        print(f"[data] {args.source} or {args.target} missing: generated a random pair of {args.synthetic_n} "
              f"images per domain in {tmp.name}")

    t0 = time.perf_counter()
    src = load_split(source, "train")
    tgt = load_split(target, "train")
    load_seconds = time.perf_counter() - t0
    print(f"[data] {source} / {target}: train split {len(src)} + {len(tgt)} images {tuple(src.images.shape[1:])}; "
          f"load_split of both: {load_seconds:.2f} s (once per run; not in the step timings)")
    load_before = os.getloadavg()

    # FLOPs and the SGEMM ceiling ----------------------------------------------------------------------------
    flops = {}
    for network in ("deepmerge", "resnet18"):
        fwd, layers = forward_flops(build_network(network, in_channels=src.images.shape[1]),
                                    tuple(src.images.shape[1:]))
        flops[network] = {"forward_flops_per_image": fwd, "train_flops_per_image": 3 * fwd,
                          "layers": layers if network == "deepmerge" else f"{len(layers)} conv/linear layers"}
    thread_counts = sorted({1, args.threads})
    sgemm_first = {t: sgemm_gflops(args.sgemm_n, t, args.sgemm_repeats) for t in thread_counts}
    sgemm = sgemm_first
    torch.set_num_threads(args.threads)
    print(f"[flops] DeepMerge forward {flops['deepmerge']['forward_flops_per_image'] / 1e6:.2f} MFLOP/image, "
          f"training {flops['deepmerge']['train_flops_per_image'] / 1e6:.2f} MFLOP/image; ResNet18 (75x75) forward "
          f"{flops['resnet18']['forward_flops_per_image'] / 1e6:.1f} MFLOP/image")
    per_threads = ", ".join(f"{t} thread{'s' if t > 1 else ''} {g:.1f} GFLOP/s" for t, g in sgemm.items())
    print(f"[sgemm] float32 {args.sgemm_n}x{args.sgemm_n} torch.mm, best of {args.sgemm_repeats}: {per_threads}")

    # The rows: grouped by (network, method); within a group the trainers run their timed blocks in turn
    # (round robin), so that all of them see the same share of whatever else runs on this machine.
    def hyperparameters(network: str, method: str) -> dict:
        hp = run_hyperparameters(config, presets, PAIR, network, method)
        hp["augment"] = True
        return hp

    def previous(network: str, method: str) -> tuple:
        """The "previous" row: the previous trainer's layout and hyperparameters."""
        return "previous", {"previous": True, "hp": previous_hp(hyperparameters(network, method))}

    groups = []  # (network, method, [(impl, options)])
    for method in [m for m in args.deepmerge_methods.split(",") if m]:
        impls = [("ours", {}), previous("deepmerge", method)] + ([] if args.no_naive else [("naive", {})])
        if not args.no_compile:
            impls.append(("ours+compile", {"compile": True}))
        if method == "noda" and not args.no_variants:
            other = 1 if args.threads != 1 else 2
            impls += [(f"ours threads={other}", {"threads": other}), ("ours augment=False", {"augment": False})]
        groups.append(("deepmerge", method, impls))
    for method in [m for m in args.resnet_methods.split(",") if m]:
        groups.append(("resnet18", method, [("ours", {})] + ([previous("resnet18", method)] if args.resnet_previous
                                                             else []) + ([] if args.no_naive else [("naive", {})])))

    rows = []
    total_steps = max_epochs * max(1, math.ceil(len(src) / batch))
    for network, method, impls in groups:
        hp = hyperparameters(network, method)
        steps, warmup, repeats = ((args.steps, args.warmup, args.repeats) if network == "deepmerge" else
                                  (args.resnet_steps, args.resnet_warmup, args.resnet_repeats))
        runners = []
        for impl, opts in impls:
            common = dict(batch=batch, seed=args.seed, threads=opts.get("threads", args.threads),
                          total_steps=total_steps)
            if impl == "naive":
                runner = NaiveRunner(network, method, hp, source, target, **common)
            else:
                runner = OursRunner(network, method, opts.get("hp", hp), src, tgt,
                                    previous=opts.get("previous", False),
                                    augment=opts.get("augment", True), compile_model=opts.get("compile", False),
                                    **common)
            if warmup or opts.get("compile"):  # a compiled runner compiles in its first step: never timed
                runner.run(max(1, warmup))
            runners.append((impl, opts, runner, []))
        for _ in range(repeats):
            for _, _, runner, blocks in runners:
                blocks.append(runner.run(steps))
        torch.set_num_threads(args.threads)
        for impl, opts, runner, blocks in runners:
            r = min(blocks, key=lambda b: b["seconds"])  # the least disturbed block
            rate = r["images"] / r["seconds"]
            gflops = rate * flops[network]["train_flops_per_image"] / 1e9
            memory_format = (PREVIOUS_MEMORY_FORMAT if impl == "naive" or opts.get("previous")
                             else OURS_MEMORY_FORMAT)  # the naive baseline: contiguous model and DataLoader batches
            row = {"network": network, "method": method, "impl": impl, "threads": runner.threads, "steps": steps,
                   "memory_format": format_name(memory_format),
                   "adam_foreach": runner.parts[2].param_groups[0]["foreach"],
                   "hp_differs": ({k: {"ours": hp.get(k), "previous": v} for k, v in opts["hp"].items()
                                   if hp.get(k) != v} if "hp" in opts else None),
                   "repeats": repeats, "block_seconds": [b["seconds"] for b in blocks], "warmup_steps": warmup,
                   "batch_size": batch, "images_per_step": r["images"] // steps,
                   "seconds": r["seconds"], "ms_per_step": 1e3 * r["seconds"] / steps, "images_per_s": rate,
                   "loader_seconds": r["loader_seconds"], "network_gflops_per_s": gflops}
            rows.append(row)
            print(f"  {network:9s} {method:5s} {impl:20s} {rate:8.1f} img/s  ({row['ms_per_step']:.0f} ms/step)",
                  flush=True)
        del runners
    load_after = os.getloadavg()
    # The ceiling again at the end: the best of both is the least disturbed by other processes.
    sgemm_last = {t: sgemm_gflops(args.sgemm_n, t, args.sgemm_repeats) for t in thread_counts}
    torch.set_num_threads(args.threads)
    sgemm = {t: max(sgemm_first[t], sgemm_last[t]) for t in thread_counts}
    for r in rows:
        r["fraction_of_sgemm"] = r["network_gflops_per_s"] / sgemm[r["threads"]] if r["threads"] in sgemm else None

    # Summary -----------------------------------------------------------------------------------------------
    def find(network, method, impl):
        return next((r for r in rows if (r["network"], r["method"], r["impl"]) == (network, method, impl)), None)

    ratios = []
    for network, method in dict.fromkeys((r["network"], r["method"]) for r in rows):
        naive = find(network, method, "naive")
        for impl in ("ours", "ours+compile"):
            ours = find(network, method, impl)
            if ours and naive:
                ratios.append({"network": network, "method": method, "trainer": impl,
                               "ours_images_per_s": ours["images_per_s"], "naive_images_per_s": naive["images_per_s"],
                               "ours_over_naive": ours["images_per_s"] / naive["images_per_s"],
                               "naive_loader_fraction": naive["loader_seconds"] / naive["seconds"]})
    # ours / previous trainer: measured for every DeepMerge method (ResNet18 with --resnet-previous)
    vs_previous = []
    for network, method in dict.fromkeys((r["network"], r["method"]) for r in rows):
        ours, prev = find(network, method, "ours"), find(network, method, "previous")
        if ours is None:
            continue
        differs = ({"memory_format": {"ours": ours["memory_format"], "previous": prev["memory_format"]},
                    "adam_foreach": {"ours": ours["adam_foreach"], "previous": prev["adam_foreach"]},
                    **prev["hp_differs"]} if prev else None)
        vs_previous.append({
            "network": network, "method": method, "ours_images_per_s": ours["images_per_s"],
            "previous_images_per_s": prev["images_per_s"] if prev else None,
            "ours_over_previous": ours["images_per_s"] / prev["images_per_s"] if prev else None,
            "previous_differs_in": differs,
            "note": "measured" if prev else "not measured (--resnet-previous)"})
    base = find("deepmerge", "noda", "ours")
    speedups = []
    if base:
        for r in rows:
            if r["network"] == "deepmerge" and r["method"] == "noda" and r["impl"].startswith("ours") \
                    and r is not base:
                s = {"variant": r["impl"], "images_per_s": r["images_per_s"],
                     "speedup_vs_ours": r["images_per_s"] / base["images_per_s"],
                     "images_per_s_per_thread": r["images_per_s"] / r["threads"],
                     "baseline_images_per_s_per_thread": base["images_per_s"] / base["threads"]}
                if r["impl"].startswith("ours threads"):
                    # On a shared box, N one-thread jobs side by side beat one N-thread job when the per-thread
                    # rate is higher; report both views.
                    s["pays_off"] = (s["speedup_vs_ours"] >= SPEEDUP_THRESHOLD) or (
                        r["threads"] < base["threads"] and s["images_per_s_per_thread"]
                        >= SPEEDUP_THRESHOLD * s["baseline_images_per_s_per_thread"])
                    s["pays_off_as"] = ("faster single run" if s["speedup_vs_ours"] >= SPEEDUP_THRESHOLD else
                                        "more images/s per core (run jobs side by side)" if s["pays_off"] else "no")
                elif r["impl"].endswith("augment=False"):
                    s["pays_off"] = None  # a diagnostic (the cost of the batched augmentation), not a speed-up
                    s["pays_off_as"] = "diagnostic: cost of augmentation"
                else:
                    s["pays_off"] = s["speedup_vs_ours"] >= SPEEDUP_THRESHOLD
                    s["pays_off_as"] = "faster single run" if s["pays_off"] else "no"
                speedups.append(s)

    print()
    print(f"Training throughput, {PAIR}, batch {batch} (+{batch} target images for DA methods), augment on, "
          f"{args.threads} threads unless stated; SGEMM ceiling {sgemm[args.threads]:.1f} GFLOP/s; ours: "
          f"{format_name(OURS_MEMORY_FORMAT)}, previous and naive: {format_name(PREVIOUS_MEMORY_FORMAT)}")
    header = (f"{'network':9s} {'method':6s} {'trainer':20s} {'thr':>3s} {'steps':>5s} {'img/step':>8s} "
              f"{'ms/step':>8s} {'img/s':>8s} {'GFLOP/s':>8s} {'%SGEMM':>7s} {'loader%':>7s}")
    print(header)
    print("-" * len(header))
    for r in rows:
        frac = f"{100 * r['fraction_of_sgemm']:6.1f}%" if r["fraction_of_sgemm"] is not None else "      -"
        loader = f"{100 * r['loader_seconds'] / r['seconds']:6.1f}%" if r["loader_seconds"] is not None \
            else "      -"
        print(f"{r['network']:9s} {r['method']:6s} {r['impl']:20s} {r['threads']:3d} {r['steps']:5d} "
              f"{r['images_per_step']:8d} {r['ms_per_step']:8.1f} {r['images_per_s']:8.1f} "
              f"{r['network_gflops_per_s']:8.2f} {frac} {loader}")
    print("(GFLOP/s: network conv+linear FLOPs x 3 per image; loss heads such as the ADA domain classifier and "
          "the MMD kernels are not counted)")
    if ratios:
        print()
        print(f"{'network':9s} {'method':6s} {'trainer':13s} {'img/s':>8s} {'naive img/s':>11s} {'ours/naive':>10s} "
              f"{'naive time in loader':>20s}")
        for q in ratios:
            print(f"{q['network']:9s} {q['method']:6s} {q['trainer']:13s} {q['ours_images_per_s']:8.1f} "
                  f"{q['naive_images_per_s']:11.1f} {q['ours_over_naive']:9.2f}x "
                  f"{100 * q['naive_loader_fraction']:19.1f}%")
    if vs_previous:
        print()
        print(f"{'network':9s} {'method':13s} {'ours img/s':>10s} {'previous img/s':>14s} {'ours/previous':>13s}  "
              f"previous trainer")
        for q in vs_previous:
            prev = f"{q['previous_images_per_s']:14.1f}" if q["previous_images_per_s"] is not None else f"{'-':>14s}"
            ratio = f"{q['ours_over_previous']:12.2f}x" if q["ours_over_previous"] is not None else f"{'-':>13s}"
            what = (", ".join(f"{k} {d['previous']} (ours {d['ours']})" for k, d in q["previous_differs_in"].items())
                    if q["previous_differs_in"] is not None else q["note"])
            print(f"{q['network']:9s} {q['method']:13s} {q['ours_images_per_s']:10.1f} {prev} {ratio}  {what}")
    if base:
        print()
        print(f"DeepMerge noda, ours: {base['network_gflops_per_s']:.2f} GFLOP/s = "
              f"{100 * base['fraction_of_sgemm']:.1f}% of the {args.threads}-thread SGEMM ceiling "
              f"({sgemm[args.threads]:.1f} GFLOP/s)")
    if speedups:
        print()
        print(f"{'candidate (DeepMerge noda)':28s} {'img/s':>8s} {'vs ours':>8s} {'img/s/thread':>12s}  pays off?")
        for s in speedups:
            print(f"{s['variant']:28s} {s['images_per_s']:8.1f} {s['speedup_vs_ours']:7.2f}x "
                  f"{s['images_per_s_per_thread']:12.1f}  {s['pays_off_as']}")
        print(f"(baseline 'ours': {base['images_per_s']:.1f} img/s, {base['images_per_s'] / base['threads']:.1f} "
              f"img/s/thread; 'pays off' = at least {100 * (SPEEDUP_THRESHOLD - 1):.0f}% better)")
    print(f"\nload average before/after: {load_before[0]:.2f} / {load_after[0]:.2f} "
          f"(other processes share this machine's {os.cpu_count()} cores)")

    result = {
        "script": "benchmarks/train_throughput.py", "argv": sys.argv[1:],
        "environment": {"torch": torch.__version__, "python": platform.python_version(), "cpu": cpu_model(),
                        "cpu_count": os.cpu_count(), "threads": args.threads,
                        "loadavg_before": load_before, "loadavg_after": load_after,
                        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
        "data": {"source": str(source), "target": str(target), "generated": tmp is not None,
                 "train_source_images": len(src), "train_target_images": len(tgt),
                 "image_shape": list(src.images.shape[1:]), "load_split_seconds_both": load_seconds},
        "settings": {"pair": PAIR, "batch_size": batch, "augment": True, "steps": args.steps,
                     "repeats": args.repeats, "warmup": args.warmup, "resnet_steps": args.resnet_steps,
                     "resnet_warmup": args.resnet_warmup, "resnet_repeats": args.resnet_repeats,
                     "seed": args.seed, "max_epochs_for_schedule": max_epochs,
                     "images_per_s_counts": "source + target images per optimisation step"},
        "flops": flops, "sgemm": {"n": args.sgemm_n, "repeats": args.sgemm_repeats,
                                  "gflops_per_s_by_threads": {str(k): v for k, v in sgemm.items()},
                                  "first": {str(k): v for k, v in sgemm_first.items()},
                                  "last": {str(k): v for k, v in sgemm_last.items()},
                                  "note": "best of a measurement before and one after the rows"},
        "rows": rows, "ours_vs_naive": ratios, "ours_vs_previous": vs_previous,
        "previous_trainer": {**PREVIOUS_TRAINER, "memory_format": format_name(PREVIOUS_MEMORY_FORMAT)},
        "ours_memory_format": format_name(OURS_MEMORY_FORMAT), "candidate_speedups": speedups,
        "speedup_threshold": SPEEDUP_THRESHOLD,
    }
    out = Path(args.out)
    write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
