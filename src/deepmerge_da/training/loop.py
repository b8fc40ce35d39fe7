"""The training loop: one run = (pair, network, method, seed) with its hyperparameters.

Adam with the paper's betas and weight decay; a cyclic one-cycle learning rate (a triangle from lr/10
up to lr and back over ``cycle`` epochs, repeated; Appendix A, Smith & Topin 2019); early stopping
after ``patience`` epochs in which the selection score (the whole source validation split's accuracy by default) has not
risen by more than ``min_delta`` (hyperparameter; 0 by default), so that a gain within the validation split's
selection noise does not keep a finished run going, but never before :func:`earliest_stop` epochs (the rising half of
the first cycle, then ``patience``): while the rate still rises the score may fall, and a run stopped there has not
started to converge; the checkpoint kept is the one with the
best source-validation accuracy (ties broken by the lower validation loss). Target labels are never
used for training or selection (except by ``target_only``, whose "source" is the labelled target);
the target validation accuracy is logged as an oracle only.

Model selection (:mod:`deepmerge_da.training.selection`): every epoch logs every selection criterion as a history
column ``sel_<criterion>``; ``selection`` (default ``source_accuracy``, the paper's rule above) names the one
whose best epoch is kept and that early stopping follows. Every epoch also logs ``test_source_accuracy`` and
``test_target_accuracy``, for REPORTING ONLY (the selection table, :mod:`deepmerge_da.report.selection_report`):
they are never used for training, selection or early stopping.

What inference shares with training (device, seeds, a split as standardised tensors, the forward pass in
evaluation mode) is in :mod:`deepmerge_da.training.runtime`.

Outputs: the kept epoch's weights stay in memory (a copy) and ``model.pt`` is written once, when training ends,
with ``history.csv`` and ``train.json`` (earlier versions rewrote it at every improving epoch). A run whose loss
terms or weights become non-finite stops with :class:`TrainingDiverged`, naming the run, epoch and step, and
writes none of them. ``train.json`` says whether the run stopped early and whether it converged (stopped early,
or kept an epoch within the first :data:`CONVERGED_SHARE` of the epochs it ran), and whether the kept epoch
collapsed to one class on the target validation
split (:func:`collapse_report`; label-free). For ``adabn`` the kept weights get the batch-norm statistics of the
target training split (:func:`deepmerge_da.nn.adabn.reestimate_batchnorm`) before they are written, and the
collapse flag is the adapted network's.
"""
from __future__ import annotations

import csv
import functools
import json
import logging
import math
import os
import time
from pathlib import Path

import torch
from tqdm import tqdm

from deepmerge_da import __version__
from deepmerge_da.grid import CRITERIA
from deepmerge_da.io.atomic import atomic_path, write_text_atomic
from deepmerge_da.io.checkpoint import load_model, nonfinite_tensors, save_checkpoint
from deepmerge_da.nn.adabn import reestimate_batchnorm
from deepmerge_da.nn.methods import StepOutputs, TransferObjective, reestimates_batchnorm_on_target, uses_target
from deepmerge_da.nn.models import build_network, count_trainable_parameters
from deepmerge_da.report.metrics import collapse_report
from deepmerge_da.training.runtime import DomainTensors, load_split, resolve_device, seed_everything
from deepmerge_da.training.selection import column, scores_from_outputs, split_outputs

log = logging.getLogger(__name__)


class TrainingDiverged(ValueError):
    """A training run whose loss or weights became non-finite (NaN or infinite)."""


def cyclic_lr_factor(step: int, steps_per_cycle: int, floor: float = 0.1) -> float:
    """Triangle wave from ``floor`` up to 1 and back down over each cycle."""
    phase = (step % steps_per_cycle) / steps_per_cycle
    return floor + (1.0 - floor) * (1.0 - abs(2.0 * phase - 1.0))


#: The memory layout of the network's weights and batches in training: DeepMerge's eager step at batch 32 on one CPU
#: thread is 1.1-1.2x faster in it (docs/performance.md); results differ from the default layout's in the last bits.
TRAINING_MEMORY_FORMAT = torch.channels_last

#: A run that ran to its epoch cap counts as converged when its kept epoch lies in this first share of its epochs.
CONVERGED_SHARE = 0.75


def earliest_stop(hp: dict) -> int:
    """The fewest epochs a run trains before early stopping may end it: the learning-rate warm-up (the rising half of
    the first one-cycle, ``ceil(cycle / 2)`` epochs), then ``patience`` epochs."""
    return math.ceil(float(hp["cycle"]) / 2) + int(hp["patience"])


def train_run(*, source: str, target: str, out_dir: str, pair: str, network: str, method: str, seed: int,
              hp: dict, max_epochs: int, batch_size: int = 128, device: str = "auto", threads: int = 1,
              init_checkpoint: str | None = None, freeze: list[str] | None = None, amp: bool = False,
              progress: bool = True, selection: str = "source_accuracy", compile_model: bool = False) -> dict:
    """Train one run and write ``model.pt`` (+ ``.sha256``), ``history.csv`` and ``train.json`` to ``out_dir``.

    All three are written when training ends; a run that diverges raises :class:`TrainingDiverged` (naming the
    run, the epoch and the step) and writes none of them.

    ``selection`` (one of :data:`deepmerge_da.grid.CRITERIA`) picks the kept epoch and drives early stopping.
    ``compile_model``: the training steps run the network through ``torch.compile`` (inductor; needs a C
    compiler on CPUs; :func:`compile_for_training`). It compiles once per process (seconds to a minute), then
    steps DeepMerge 1.1-1.8x faster on a CPU (docs/performance.md); float results differ from eager in the last
    bits. Evaluation stays eager.
    ``freeze``: parameter-name prefixes frozen in a model initialised from ``init_checkpoint``
    (:func:`freeze_layers`); a run trained from scratch trains every parameter.
    """
    if selection not in CRITERIA:
        raise ValueError(f"unknown selection criterion {selection!r}; choose one of {', '.join(CRITERIA)}")
    started = time.time()
    torch.set_num_threads(max(1, int(threads)))
    seed_everything(seed)
    dev = resolve_device(device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    # target_only trains on the labelled target domain: for it the target plays the source's role.
    train_path, other_path = (target, source) if method == "target_only" else (source, target)
    src_train, src_val = load_split(train_path, "train", dev), load_split(train_path, "val", dev)
    tgt_train, tgt_val = load_split(other_path, "train", dev), load_split(other_path, "val", dev)
    # Test splits: logged per epoch for reporting only (selection tables); never used to train or select.
    src_test, tgt_test = load_split(train_path, "test", dev), load_split(other_path, "test", dev)
    if method == "target_only":  # log the (labelled) target as "source" and the simulated domain as "target"
        log.info("target_only: training on the labelled target domain of %s", target)

    model = build_network(network, in_channels=src_train.images.shape[1], dropout=float(hp.get("dropout") or 0.0))
    if init_checkpoint:
        init_model, meta = load_model(init_checkpoint)
        if meta["network"] != network:
            raise ValueError(f"{init_checkpoint}: a {meta['network']} checkpoint cannot initialise a {network}")
        model.load_state_dict(init_model.state_dict())
        log.info("initialised from %s", init_checkpoint)
        freeze_layers(model, freeze or [], network)
    model.to(dev, memory_format=TRAINING_MEMORY_FORMAT)
    step_model = compile_for_training(model) if compile_model else model
    objective = TransferObjective(method, model.feature_dim, hp).to(dev)

    steps_per_epoch = max(1, math.ceil(len(src_train) / batch_size))
    optimizer, scheduler = make_optimizer(model, objective, hp, steps_per_epoch)
    generator = torch.Generator().manual_seed(seed)
    total_steps = max_epochs * steps_per_epoch

    history, best, best_epoch = [], None, -1
    gain_reference, since_gain = -math.inf, 0  # the score that a gain > min_delta must beat, and epochs without one
    best_state, best_meta, best_collapse = None, None, None
    patience, min_delta, min_epochs = int(hp["patience"]), float(hp.get("min_delta", 0.0)), earliest_stop(hp)
    run_label = f"{pair}/{network}/{method}/seed{seed}"
    meta = {"pair": pair, "network": network, "method": method, "seed": seed, "hyperparameters": hp,
            "package_version": __version__, "source": str(source), "target": str(target),
            "device": str(dev), "torch_version": torch.__version__, "mixed_precision": amp,
            "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
            "scheduler": {k: os.environ.get(k) for k in ("SLURM_JOB_ID", "CUDA_VISIBLE_DEVICES") if k in os.environ},
            "trainable_parameters": count_trainable_parameters(model),
            "init_checkpoint": str(init_checkpoint) if init_checkpoint else None, "selection": selection,
            "compiled": compile_model,
            "input": {"trained_on": src_train.describe(), "other_domain": tgt_train.describe()}}
    bar = tqdm(range(max_epochs), desc=run_label, disable=not progress)
    stopped_early = False
    for epoch in bar:
        t0 = time.time()
        row = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"]}
        try:
            row.update(train_one_epoch(step_model, objective, optimizer, scheduler, src_train,
                                       tgt_train if uses_target(method) else None, batch_size, generator,
                                       epoch * steps_per_epoch, total_steps, augment=bool(hp.get("augment", False)),
                                       amp=amp, stop_on_nonfinite=True))
        except TrainingDiverged as exc:
            raise TrainingDiverged(f"run {run_label} diverged at epoch {epoch}, {exc}; nothing written") from None
        state = model.state_dict()
        bad = nonfinite_tensors(state)
        if bad:
            raise TrainingDiverged(f"run {run_label} diverged at epoch {epoch}, by its end (step "
                                   f"{(epoch + 1) * steps_per_epoch} of the run): {len(bad)} of {len(state)} weight "
                                   f"tensors hold non-finite values (first: {bad[0]}); nothing written")
        src_out, tgt_out = split_outputs(model, src_val, 512), split_outputs(model, tgt_val, 512)
        row["val_source_accuracy"], row["val_source_loss"] = src_out.accuracy_and_loss()
        row["val_target_accuracy"], row["val_target_loss"] = tgt_out.accuracy_and_loss()
        row.update(scores_from_outputs(src_out, tgt_out))
        # REPORTING ONLY: never read by the selection or early stopping below.
        row["test_source_accuracy"] = split_outputs(model, src_test, 512).accuracy_and_loss()[0]
        row["test_target_accuracy"] = split_outputs(model, tgt_test, 512).accuracy_and_loss()[0]
        row["seconds"] = time.time() - t0
        history.append(row)
        score = row[column(selection)]
        key = (score if math.isfinite(score) else -math.inf, -row["val_source_loss"])
        if best is None or key > best:
            best, best_epoch = key, epoch
            best_state = {k: v.detach().clone() for k, v in state.items()}
            best_meta = dict(meta, epoch=epoch, val_source_accuracy=row["val_source_accuracy"], selection_score=key[0])
            # target_only's "source" is the labelled target: the run's target is the split it trains on.
            target_logits = (src_out if method == "target_only" else tgt_out).logits
            best_collapse = target_collapse(target_logits)
        if key[0] > gain_reference + min_delta:
            gain_reference, since_gain = key[0], 0
        else:
            since_gain += 1
        bar.set_postfix(loss=f"{row.get('train_total', float('nan')):.3f}",
                        val_src=f"{row['val_source_accuracy']:.3f}", val_tgt=f"{row['val_target_accuracy']:.3f}")
        log.info("epoch %d: %s", epoch, ", ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch"))
        # At the cap the run ends anyway: not early.
        if since_gain >= patience and min_epochs <= epoch + 1 < max_epochs:
            log.info("early stop at epoch %d: %s has not risen by more than %g for %d epochs", epoch,
                     column(selection), min_delta, patience)
            stopped_early = True
            break
    if reestimates_batchnorm_on_target(method):
        model.load_state_dict(best_state)
        # In the layout the checkpoint is stored and loaded in (channels-last convolutions round differently), so
        # that reestimate_batchnorm on the saved weights reproduces the saved statistics.
        model.to(memory_format=torch.contiguous_format)
        reestimate_batchnorm(model, tgt_train.images)
        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        meta["batchnorm_statistics"] = best_meta["batchnorm_statistics"] = "target training split (AdaBN)"
        best_collapse = target_collapse(split_outputs(model, tgt_val, 512).logits)
    if best_collapse["target_collapsed"]:
        log.warning("run %s collapsed: its kept epoch %d calls %.1f %% of the target validation images mergers",
                    run_label, best_epoch, 100 * best_collapse["target_predicted_merger_fraction"])
    save_checkpoint(out / "model.pt", best_state, best_meta)
    write_history(out / "history.csv", history)
    summary = dict(meta, best_epoch=best_epoch, epochs_run=len(history), stopped_early=stopped_early,
                   converged=stopped_early or best_epoch + 1 <= CONVERGED_SHARE * len(history),
                   best_val_source_accuracy=history[best_epoch]["val_source_accuracy"], best_selection_score=best[0],
                   **best_collapse, wall_seconds=time.time() - started, threads=torch.get_num_threads())
    write_text_atomic(out / "train.json", json.dumps(summary, indent=2, default=str))
    return summary


def target_collapse(target_logits: torch.Tensor) -> dict:
    """:func:`collapse_report` of the merger calls (p_merger >= 0.5) of a target split's logits."""
    return collapse_report((torch.softmax(target_logits, 1)[:, 1] >= 0.5).cpu().numpy())


def compile_for_training(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` under ``torch.compile`` for the training steps (it shares ``model``'s parameters, which
    :func:`train_run` has already moved to the channels-last layout: inductor then fuses batch norm and pooling for
    it, 4-15 % faster than compiling DeepMerge in the default layout on a CPU; docs/performance.md)."""
    return torch.compile(model)


def freeze_layers(model: torch.nn.Module, prefixes: list[str], network: str) -> None:
    """Freeze the parameters whose names start with one of ``prefixes`` (e.g. ``conv.`` for DeepMerge's conv
    and batch-norm layers); frozen batch-norm layers also keep their running statistics (momentum 0).

    A prefix that names no parameter of ``model`` (a typo would otherwise freeze nothing, silently) raises a
    ValueError naming it and ``network``, the name of ``model``'s network."""
    for prefix in prefixes:
        modules = [module for name, module in model.named_modules() if name and name.startswith(prefix.rstrip("."))]
        params = [param for module in modules for param in module.parameters(recurse=False)]
        if not params:
            children = ", ".join(f"{name}." for name, _ in model.named_children())
            raise ValueError(f"freeze prefix {prefix!r} names no parameter of the {network} network (its top-level "
                             f"modules: {children})")
        for param in params:
            param.requires_grad_(False)
        for module in modules:
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.momentum = 0.0


def make_optimizer(model: torch.nn.Module, objective: TransferObjective, hp: dict, steps_per_epoch: int):
    """Adam over the network and the objective's own parameters, with the cyclic one-cycle schedule."""
    lr = float(hp["lr"])
    groups = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr, "name": "network"}]
    groups += objective.param_groups(lr)
    # foreach: the multi-tensor update, PyTorch's default on GPUs only; on a CPU it takes DeepMerge's Adam step from
    # 4.5 to 3.6 ms with the same weights bit for bit (tests/test_train.py). fused=True is faster still but not exact.
    optimizer = torch.optim.Adam(groups, lr=lr, betas=(float(hp["beta1"]), float(hp["beta2"])),
                                 eps=float(hp["eps"]), weight_decay=float(hp["weight_decay"]), foreach=True)
    steps_per_cycle = max(1, int(round(float(hp["cycle"]) * steps_per_epoch)))
    # One factor for every group, so the domain classifier keeps its lr multiplier through the cycle.
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: cyclic_lr_factor(step, steps_per_cycle))
    return optimizer, scheduler


@functools.lru_cache(maxsize=8)
def dihedral_pixel_index(size: int, device: str) -> torch.Tensor:
    """(8, size * size) source pixel of every output pixel under the 8 symmetries of a size x size square:
    row ``c`` flips the image left-right if ``c >= 4``, then turns it ``c % 4`` times by 90 degrees."""
    grid = torch.arange(size * size).view(size, size)
    rows = [torch.rot90(grid.flip(-1) if c >= 4 else grid, c % 4, dims=(0, 1)).flatten() for c in range(8)]
    return torch.stack(rows).to(device)


def random_dihedral(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image of the batch under one of the 8 symmetries of the square (flips, 90-degree rotations).

    A galaxy's class does not depend on its orientation on the sky; these transforms are exact (no
    interpolation). One ``gather`` moves every pixel of the batch (a third of the cost of flipping and
    rotating each group of images in turn).
    """
    n, channels, height, width = x.shape
    if height != width:
        raise ValueError(f"random_dihedral needs square images, got {height} x {width}")
    choice = torch.randint(0, 8, (n,), generator=generator).to(x.device)
    index = dihedral_pixel_index(height, str(x.device))[choice].view(n, 1, -1).expand(n, channels, -1)
    return torch.gather(x.reshape(n, channels, -1), 2, index).view(n, channels, height, width)


def train_one_epoch(model, objective, optimizer, scheduler, source: DomainTensors, target: DomainTensors | None,
                    batch_size: int, generator: torch.Generator, first_step: int, total_steps: int,
                    augment: bool = False, amp: bool = False, stop_on_nonfinite: bool = False,
                    memory_format: torch.memory_format = TRAINING_MEMORY_FORMAT) -> dict:
    """One pass over the shuffled source training split; returns the epoch's mean loss terms and accuracy.

    With a ``target``, each step also sees as many unlabelled target images, cycling through a shuffled
    target split; both domains go through the network in one batch (shared batch-norm statistics).
    With ``augment``, every image is flipped/rotated by a random symmetry of the square first. With ``amp``,
    the network runs in bfloat16 autocast (mixed precision); the losses are computed in float32.
    Each batch goes to the network in ``memory_format``: by default :data:`TRAINING_MEMORY_FORMAT`, the layout
    :func:`train_run` gives the weights.
    With ``stop_on_nonfinite``, a step whose loss terms are not all finite raises :class:`TrainingDiverged`
    (training does; the learning-rate range scan runs on into divergence by design).
    """
    model.train()
    objective.train()
    dev = source.images.device
    order = torch.randperm(len(source), generator=generator).to(dev)
    target_order = torch.randperm(len(target), generator=generator).to(dev) if target is not None else None
    sums: dict[str, float] = {}
    correct = 0
    step = first_step
    for start in range(0, len(source), batch_size):
        idx = order[start:start + batch_size]
        x, y = source.images[idx], source.labels[idx]
        if augment:
            x = random_dihedral(x, generator)
        progress = min(1.0, step / max(1, total_steps))
        if target is not None:
            tidx = target_order[(torch.arange(len(idx), device=dev) + start) % len(target)]
            xt = random_dihedral(target.images[tidx], generator) if augment else target.images[tidx]
            x = torch.cat([x, xt])
        x = x.contiguous(memory_format=memory_format)
        outputs, terms = optimisation_step(model, objective, optimizer, scheduler, x, y, progress, amp)
        step += 1
        # The terms are Python floats already: checking them costs no device synchronisation.
        if stop_on_nonfinite and not all(map(math.isfinite, terms.values())):
            bad = ", ".join(f"{k} = {v}" for k, v in terms.items() if not math.isfinite(v))
            raise TrainingDiverged(f"step {step - first_step} of {math.ceil(len(source) / batch_size)} (step {step} "
                                   f"of the run): non-finite loss ({bad})")
        correct += (outputs.source_logits.argmax(1) == y).sum().item()
        for key, value in terms.items():
            sums[key] = sums.get(key, 0.0) + value * len(idx)
    row = {f"train_{k}": v / len(source) for k, v in sums.items()}
    row["train_source_accuracy"] = correct / len(source)
    return row


def optimisation_step(model, objective, optimizer, scheduler, x: torch.Tensor, y: torch.Tensor, progress: float,
                      amp: bool = False) -> tuple[StepOutputs, dict]:
    """One optimisation step on a batch whose first ``len(y)`` images are labelled source images and whose
    remaining images, if any, are unlabelled target images; returns the step's outputs and loss terms."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        logits, features = model(x)
    logits, features = logits.float(), features.float()
    n = len(y)
    if len(x) > n:
        outputs = StepOutputs(logits[:n], features[:n], y, logits[n:], features[n:], progress)
    else:
        outputs = StepOutputs(logits, features, y, progress=progress)
    loss, terms = objective(outputs)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()
    return outputs, terms


def write_history(path: Path, rows: list[dict]) -> None:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
