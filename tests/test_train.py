"""Training: every method's learnable parameter groups learn; the same seed gives the same run."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from deepmerge_da.grid import METHODS
from deepmerge_da.io.checkpoint import load_checkpoint
from deepmerge_da.nn.methods import TRANSFER, TransferObjective, uses_target
from deepmerge_da.nn.models import build_network
from deepmerge_da.training.loop import (
    cyclic_lr_factor,
    earliest_stop,
    make_optimizer,
    random_dihedral,
    train_one_epoch,
    train_run,
)
from deepmerge_da.training.runtime import DomainTensors
from helpers import TOY_HP, write_toy_pair


def domain(n, shift, seed, size=32):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    images = torch.randn(n, 3, size, size, generator=g) + shift
    images[:, :, 10:20, 10:20] += labels.view(-1, 1, 1, 1) * 2.0
    return DomainTensors(images, labels, np.arange(n).astype(str), {})


@pytest.mark.parametrize("network", ["deepmerge", "resnet18"])
@pytest.mark.parametrize("method", [m for m in METHODS if m not in ("tl_mmd", "target_only")])
def test_every_parameter_group_that_should_learn_changes(method, network):
    torch.manual_seed(0)
    size = 75 if network == "deepmerge" else 32
    model = build_network(network)
    objective = TransferObjective(method, model.feature_dim, TOY_HP)
    optimizer, scheduler = make_optimizer(model, objective, TOY_HP, steps_per_epoch=2)
    names = [g["name"] for g in optimizer.param_groups]
    adversarial = TRANSFER[method] in ("adversarial", "conditional_adversarial")
    expected = {"network"} | ({"domain_classifier"} if adversarial else set()) \
        | ({"fisher_centers"} if "fisher" in method else set())
    assert set(names) == expected
    before = [[p.detach().clone() for p in g["params"]] for g in optimizer.param_groups]
    target = domain(16, 1.0, 2, size) if uses_target(method) else None
    row = train_one_epoch(model, objective, optimizer, scheduler, domain(16, 0.0, 1, size), target,
                          batch_size=8, generator=torch.Generator().manual_seed(0), first_step=0, total_steps=4)
    for group, old in zip(optimizer.param_groups, before, strict=True):
        changed = sum(not torch.equal(p.detach(), o) for p, o in zip(group["params"], old, strict=True))
        assert changed == len(old), f"{group['name']}: only {changed}/{len(old)} tensors changed"
    assert np.isfinite(row["train_total"])
    if uses_target(method):
        assert row["train_transfer"] != 0.0
    if adversarial:
        assert 0.0 <= row["train_domain_accuracy"] <= 1.0
    # The domain classifier keeps its learning-rate multiplier under the schedule.
    lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
    if "domain_classifier" in lrs:
        assert lrs["domain_classifier"] == pytest.approx(TOY_HP["dc_lr_mult"] * lrs["network"])


def test_cyclic_schedule_is_a_triangle():
    values = [cyclic_lr_factor(s, 10) for s in range(21)]
    assert values[0] == pytest.approx(0.1) and values[5] == pytest.approx(1.0) and values[10] == pytest.approx(0.1)
    assert values[:6] == sorted(values[:6])


def test_random_dihedral_applies_one_exact_symmetry_per_image():
    x = torch.arange(5 * 2 * 7 * 7, dtype=torch.float32).view(5, 2, 7, 7)
    out = random_dihedral(x, torch.Generator().manual_seed(4))
    choices = torch.randint(0, 8, (5,), generator=torch.Generator().manual_seed(4))  # the draws it made
    for image, result, c in zip(x, out, choices.tolist(), strict=True):
        expected = torch.rot90(image.flip(-1) if c >= 4 else image, c % 4, dims=(-2, -1))
        assert torch.equal(result, expected)
    assert len(set(choices.tolist())) > 1
    with pytest.raises(ValueError, match="square"):
        random_dihedral(torch.zeros(2, 1, 4, 5), torch.Generator())


def test_same_seed_gives_identical_run_on_cpu(tmp_path):
    paths = write_toy_pair(tmp_path)
    results = []
    for name in ("a", "b"):
        summary = train_run(source=str(paths["source"]), target=str(paths["target"]), out_dir=str(tmp_path / name),
                            pair="sim2sim", network="deepmerge", method="mmd", seed=3, hp=TOY_HP, max_epochs=3,
                            batch_size=16, device="cpu", progress=False)
        results.append((tmp_path / name / "history.csv").read_text())
        assert summary["epochs_run"] == 3 and summary["device"] == "cpu"
    assert _without_times(results[0]) == _without_times(results[1])
    meta = json.loads((tmp_path / "a" / "train.json").read_text())
    assert meta["input"]["trained_on"]["filters"] == ["a", "b", "c"]


def _without_times(history: str) -> list[list[str]]:
    rows = [line.split(",") for line in history.splitlines()]
    drop = rows[0].index("seconds")
    return [r[:drop] + r[drop + 1:] for r in rows]


def test_lr_range_scan_writes_a_growing_curve(tmp_path):
    from deepmerge_da.training.lr_scan import lr_range_scan

    paths = write_toy_pair(tmp_path)
    curve = lr_range_scan(source=str(paths["source"]), target=str(paths["target"]), network="deepmerge",
                          method="noda", hp=TOY_HP, out_csv=str(tmp_path / "scan.csv"), epochs=3, lr_min=1e-5,
                          lr_max=1e-1, batch_size=16, plot_path=str(tmp_path / "scan.png"))
    assert len(curve) == 3 and curve.lr.is_monotonic_increasing
    assert curve.lr.iloc[-1] == pytest.approx(1e-1, rel=1e-6)
    assert (tmp_path / "scan.png").stat().st_size > 1000


def test_freezing_conv_layers_keeps_weights_and_batch_norm_statistics():
    from deepmerge_da.training.loop import freeze_layers

    model = build_network("deepmerge")
    freeze_layers(model, ["conv."], "deepmerge")
    objective = TransferObjective("noda", model.feature_dim, TOY_HP)
    optimizer, scheduler = make_optimizer(model, objective, TOY_HP, steps_per_epoch=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_one_epoch(model, objective, optimizer, scheduler, domain(16, 0.0, 1, 75), None, batch_size=8,
                    generator=torch.Generator().manual_seed(0), first_step=0, total_steps=2)
    after = model.state_dict()
    conv_keys = [k for k in before if k.startswith("conv.") and "num_batches" not in k]
    assert conv_keys and all(torch.equal(before[k], after[k]) for k in conv_keys)
    assert not torch.equal(before["head.1.weight"], after["head.1.weight"])


def test_mixed_precision_step_learns_with_float32_losses():
    torch.manual_seed(0)
    model = build_network("deepmerge")
    objective = TransferObjective("mmd", model.feature_dim, TOY_HP)
    optimizer, scheduler = make_optimizer(model, objective, TOY_HP, steps_per_epoch=2)
    before = model.head[1].weight.detach().clone()
    row = train_one_epoch(model, objective, optimizer, scheduler, domain(16, 0.0, 1, 75), domain(16, 1.0, 2, 75),
                          batch_size=8, generator=torch.Generator().manual_seed(0), first_step=0, total_steps=2,
                          amp=True)
    assert np.isfinite(row["train_total"]) and row["train_transfer"] != 0.0
    assert not torch.equal(before, model.head[1].weight)


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                    reason="torch.compile on CPU needs a C compiler")
def test_compiled_training_steps_match_eager(tmp_path):
    paths = write_toy_pair(tmp_path)
    histories = {}
    for compiled in (False, True):
        out = tmp_path / f"compiled_{compiled}"
        summary = train_run(source=str(paths["source"]), target=str(paths["target"]), out_dir=str(out),
                            pair="sim2sim", network="deepmerge", method="mmd", seed=3, hp=TOY_HP, max_epochs=1,
                            batch_size=16, device="cpu", threads=1, progress=False, compile_model=compiled)
        assert summary["compiled"] is compiled
        history = pd.read_csv(out / "history.csv")
        histories[compiled] = history[[c for c in history if c.endswith("_loss") or c in (
            "train_total", "train_classification", "train_transfer")]]
    # Fused kernels change the float rounding, not the computation: the same losses to float32 precision.
    assert len(histories[True].columns) == 5
    pd.testing.assert_frame_equal(histories[True], histories[False], rtol=1e-4)
    # Trained in the channels-last layout, the weights are stored contiguous and load into a plain network.
    state, meta = load_checkpoint(tmp_path / "compiled_True" / "model.pt")
    assert meta["compiled"] is True
    weight = state["conv.0.weight"]
    assert weight.is_contiguous()
    network = build_network("deepmerge", in_channels=3)
    network.load_state_dict(state)
    assert torch.equal(network.conv[0].weight, weight)


def test_channels_last_steps_match_the_default_layout():
    # The trainer's layout changes the float rounding, not the computation: the same losses of a step to float32
    # precision (later steps drift apart by more: Adam's normalised updates amplify last-bit differences).
    source, target = domain(16, 0.0, 1, 75), domain(16, 1.0, 2, 75)
    rows = {}
    for layout in (torch.contiguous_format, torch.channels_last):
        torch.manual_seed(0)
        model = build_network("deepmerge").to(memory_format=layout)
        objective = TransferObjective("mmd", model.feature_dim, TOY_HP)
        optimizer, scheduler = make_optimizer(model, objective, TOY_HP, steps_per_epoch=1)
        rows[layout] = train_one_epoch(model, objective, optimizer, scheduler, source, target, 16,
                                       torch.Generator().manual_seed(0), 0, 1, augment=True, memory_format=layout)
    assert rows[torch.contiguous_format].keys() == rows[torch.channels_last].keys()
    for key, value in rows[torch.contiguous_format].items():
        assert rows[torch.channels_last][key] == pytest.approx(value, rel=1e-4), key


def test_the_multi_tensor_adam_gives_the_single_tensor_weights_bit_for_bit():
    # make_optimizer uses foreach=True for its speed on CPUs; the tracked runs were trained with the single-tensor
    # update, so the two must agree exactly, discriminator and Fisher-centre groups included.
    source, target = domain(16, 0.0, 1, 75), domain(16, 1.0, 2, 75)
    weights = {}
    for foreach in (True, False):
        torch.manual_seed(0)
        model = build_network("deepmerge").to(memory_format=torch.channels_last)
        objective = TransferObjective("ada_fisher_em", model.feature_dim, TOY_HP)
        optimizer, scheduler = make_optimizer(model, objective, TOY_HP, steps_per_epoch=2)
        for group in optimizer.param_groups:
            group["foreach"] = foreach
        train_one_epoch(model, objective, optimizer, scheduler, source, target, 8, torch.Generator().manual_seed(0),
                        0, 2, augment=True)
        weights[foreach] = [p.detach().clone() for p in [*model.parameters(), *objective.parameters()]]
    assert len(weights[True]) > len(list(model.parameters())), "the objective's own parameters are compared too"
    for fast, single in zip(weights[True], weights[False], strict=True):
        assert torch.equal(fast, single)


def test_a_run_stops_after_patience_epochs_without_a_gain_above_min_delta(tmp_path):
    paths = write_toy_pair(tmp_path)
    hp = dict(TOY_HP, patience=2, min_delta=1.0)  # no accuracy can rise by more than 1: only epoch 0 is a gain
    summary = train_run(source=str(paths["source"]), target=str(paths["target"]), out_dir=str(tmp_path / "run"),
                        pair="sim2sim", network="deepmerge", method="noda", seed=3, hp=hp, max_epochs=6,
                        batch_size=16, device="cpu", progress=False)
    assert summary["epochs_run"] == 3 and summary["stopped_early"] is True and summary["converged"] is True
    assert len(pd.read_csv(tmp_path / "run" / "history.csv")) == 3
    # Patience running out at the epoch cap is not an early stop: the run ended at its cap.
    summary = train_run(source=str(paths["source"]), target=str(paths["target"]), out_dir=str(tmp_path / "full"),
                        pair="sim2sim", network="deepmerge", method="noda", seed=3, hp=hp, max_epochs=3,
                        batch_size=16, device="cpu", progress=False)
    assert summary["epochs_run"] == 3 and summary["stopped_early"] is False
    assert summary["converged"] is (summary["best_epoch"] + 1 <= 0.75 * 3)
    # Not while the learning rate still rises: a 6-epoch cycle warms up for 3 epochs, then patience runs (2 + 3).
    warm = dict(hp, cycle=6)
    assert earliest_stop(warm) == 5
    summary = train_run(source=str(paths["source"]), target=str(paths["target"]), out_dir=str(tmp_path / "warm"),
                        pair="sim2sim", network="deepmerge", method="noda", seed=3, hp=warm, max_epochs=7,
                        batch_size=16, device="cpu", progress=False)
    assert summary["epochs_run"] == 5 and summary["stopped_early"] is True


def test_freeze_applies_only_to_a_run_initialised_from_a_checkpoint(tmp_path):
    # training.freeze is one setting of the whole grid: a run trained from scratch trains every parameter (it froze
    # DeepMerge's conv layers at their random initialisation), a run initialised from a checkpoint (tl_mmd) keeps
    # the frozen layers of that checkpoint.
    paths = write_toy_pair(tmp_path)
    common = dict(source=str(paths["source"]), target=str(paths["target"]), network="deepmerge", seed=1, hp=TOY_HP,
                  max_epochs=1, batch_size=16, device="cpu", progress=False, freeze=["conv."])
    n_parameters = sum(p.numel() for p in build_network("deepmerge").parameters())
    scratch = train_run(**common, out_dir=str(tmp_path / "noda"), pair="sim2sim", method="noda")
    assert scratch["trainable_parameters"] == n_parameters == 174_626
    init = tmp_path / "noda" / "model.pt"
    tl = train_run(**common, out_dir=str(tmp_path / "tl"), pair="sim2real", method="tl_mmd", init_checkpoint=str(init))
    assert tl["trainable_parameters"] == 168_098
    before, after = load_checkpoint(init)[0], load_checkpoint(tmp_path / "tl" / "model.pt")[0]
    conv = [k for k in before if k.startswith("conv.") and "num_batches" not in k]  # weights, batch-norm statistics
    assert conv and all(torch.equal(before[k], after[k]) for k in conv)


@pytest.mark.parametrize("network, prefix", [("deepmerge", "features."), ("resnet18", "conv."),
                                             ("deepmerge", "conv.9")])
def test_a_freeze_prefix_that_names_no_parameter_is_an_error(network, prefix):
    from deepmerge_da.training.loop import freeze_layers

    with pytest.raises(ValueError, match=rf"freeze prefix '{prefix}' names no parameter of the {network} network"):
        freeze_layers(build_network(network), ["head.", prefix], network)

