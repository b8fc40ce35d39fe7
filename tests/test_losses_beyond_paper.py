"""Methods beyond the paper -- MCC, CDAN+E, AdaBN, self-training under an estimated target prior -- against plain
NumPy float64 references written here from the papers' equations (loops on purpose: easy to read), one tiny
training run per method, and the tables' rows of a method the paper does not have."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from deepmerge_da.config import load_presets
from deepmerge_da.io.checkpoint import load_checkpoint
from deepmerge_da.nn.adabn import reestimate_batchnorm
from deepmerge_da.nn.losses import (
    ConditionalDomainAdversarialLoss,
    GradientReversal,
    MinimumClassConfusionLoss,
    SelfTrainingLoss,
    domain_classification_loss,
    estimate_class_prior,
    minimum_class_confusion_loss,
    multilinear_map,
    prior_matching_diversity,
    self_training_loss,
)
from deepmerge_da.nn.methods import StepOutputs, TransferObjective, uses_target
from deepmerge_da.nn.models import build_network
from deepmerge_da.report.metrics import METRICS
from deepmerge_da.report.tables import render_table
from deepmerge_da.training.loop import train_run
from deepmerge_da.training.runtime import load_split
from helpers import REPO, write_toy_pair

PRESETS = load_presets(REPO / "config" / "presets.yaml")
BEYOND = ("mcc", "cdan_e", "adabn", "self_training")


# ---------------------------------------------------------------- NumPy references


def np_softmax(logits):
    out = np.empty_like(logits)
    for i, row in enumerate(logits):
        e = np.exp(row - row.max())
        out[i] = e / e.sum()
    return out


def np_entropy(p):
    return -sum(v * math.log(v) for v in p if v > 0)


def np_mcc(logits, temperature, weights=None):
    """Jin et al. 2020, Eqs. 1-7; ``weights`` given: held fixed (the loss detaches them). Returns (loss, weights)."""
    n, classes = logits.shape
    y = np_softmax(logits / temperature)
    if weights is None:
        raw = np.array([1 + math.exp(-np_entropy(row)) for row in y])
        weights = n * raw / raw.sum()
    confusion = np.zeros((classes, classes))
    for i in range(n):
        for j in range(classes):
            for k in range(classes):
                confusion[j, k] += weights[i] * y[i, j] * y[i, k]
    normalised = np.zeros_like(confusion)
    for j in range(classes):
        for k in range(classes):
            normalised[j, k] = confusion[j, k] / sum(confusion[m, k] for m in range(classes))
    off_diagonal = sum(normalised[j, k] for j in range(classes) for k in range(classes) if j != k)
    return off_diagonal / classes, weights


def np_cdan(fs, zs, ft, zt, weight, bias, conditioning=True):
    """Long et al. 2018 with a linear domain classifier (weight (C*d,), bias): weighted BCE, source 1, target 0."""
    terms = []
    for features, logits, label in ((fs, zs, 1.0), (ft, zt, 0.0)):
        g = np_softmax(logits)
        w = np.array([1 + math.exp(-np_entropy(row)) for row in g]) if conditioning else np.ones(len(g))
        w = len(w) * w / w.sum()
        for gi, fi, wi in zip(g, features, w, strict=True):
            mapped = np.outer(gi, fi).ravel()  # class-major: index c * d + k
            p = 1 / (1 + math.exp(-(mapped @ weight + bias)))
            terms.append(-wi * (label * math.log(p) + (1 - label) * math.log(1 - p)))
    return sum(terms) / len(terms)


def np_em_prior(posteriors, source_prior, iterations=100000, tol=1e-14):
    """Saerens, Latinne & Decaestecker 2002, Sec. 2.2."""
    prior = source_prior.copy()
    for _ in range(iterations):
        adjusted = posteriors * (prior / source_prior)
        adjusted /= adjusted.sum(axis=1, keepdims=True)
        updated = adjusted.mean(axis=0)
        if np.abs(updated - prior).max() < tol:
            return updated
        prior = updated
    return prior


def np_self_training(logits, prior, source_prior, threshold, diversity_weight):
    q = np_softmax(logits + np.log(prior) - np.log(source_prior))
    pseudo = 0.0
    for row in q:
        c = int(np.argmax(row))
        if row[c] >= threshold:
            pseudo -= math.log(row[c])
    mean = q.mean(axis=0)
    kl = sum(m * math.log(m / p) for m, p in zip(mean, prior, strict=True))
    return pseudo / len(q) + diversity_weight * kl


def finite_difference_gradient(f, x, eps=1e-6):
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[index] += eps
        down[index] -= eps
        grad[index] = (f(up) - f(down)) / (2 * eps)
    return grad


def random_logits(n, classes, seed, scale=2.0):
    return np.random.default_rng(seed).normal(size=(n, classes)) * scale


# ---------------------------------------------------------------- MCC


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n, classes", [(9, 2), (5, 4), (1, 3)])
@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_mcc_matches_numpy(dtype, n, classes, temperature):
    logits = random_logits(n, classes, seed=n + classes)
    loss = minimum_class_confusion_loss(torch.tensor(logits, dtype=dtype), temperature)
    assert loss.dtype == dtype and loss.shape == ()
    tolerance = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-10, "atol": 1e-12}
    np.testing.assert_allclose(loss.item(), np_mcc(logits, temperature)[0], **tolerance)
    assert MinimumClassConfusionLoss(temperature)(torch.tensor(logits, dtype=dtype)).item() == loss.item()


def test_mcc_gradient_matches_finite_differences_with_the_weights_held_fixed():
    logits = random_logits(7, 3, seed=4)
    x = torch.tensor(logits, requires_grad=True)
    minimum_class_confusion_loss(x, 2.5).backward()
    _, weights = np_mcc(logits, 2.5)
    expected = finite_difference_gradient(lambda z: np_mcc(z, 2.5, weights)[0], logits)
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-6, atol=1e-9)


def test_mcc_extremes():
    # One confident class per sample: no confusion. Uniform predictions: every normalised entry 1/C.
    confident = torch.tensor([[30.0, 0.0, 0.0], [0.0, 30.0, 0.0], [0.0, 0.0, 30.0], [30.0, 0.0, 0.0]])
    assert minimum_class_confusion_loss(confident, 1.0).item() < 1e-10
    assert minimum_class_confusion_loss(torch.zeros(6, 3), 2.5).item() == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="temperature"):
        minimum_class_confusion_loss(torch.zeros(2, 2), 0.0)


# ---------------------------------------------------------------- CDAN+E


def test_multilinear_map_is_the_class_major_outer_product():
    features, predictions = torch.randn(4, 5), torch.softmax(torch.randn(4, 3), 1)
    mapped = multilinear_map(features, predictions)
    assert mapped.shape == (4, 15)
    for i in range(4):
        np.testing.assert_allclose(mapped[i].numpy(), np.outer(predictions[i], features[i]).ravel(), rtol=1e-6)


def cdan_inputs(n_s=6, n_t=4, d=3, classes=2, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n_s, d)), random_logits(n_s, classes, seed + 1), rng.normal(size=(n_t, d)) + 0.5,
            random_logits(n_t, classes, seed + 2), rng.normal(size=classes * d) * 0.5, 0.1)


@pytest.mark.parametrize("conditioning", [True, False])
@pytest.mark.parametrize("n_s, n_t", [(6, 4), (3, 8), (5, 5)])
def test_cdan_matches_numpy_with_unequal_batches(conditioning, n_s, n_t):
    fs, zs, ft, zt, weight, bias = cdan_inputs(n_s, n_t)
    classifier = torch.nn.Linear(len(weight), 1).double()
    with torch.no_grad():
        classifier.weight.copy_(torch.tensor(weight).view(1, -1))
        classifier.bias.fill_(bias)
    loss_fn = ConditionalDomainAdversarialLoss(classifier, GradientReversal(1.0), entropy_conditioning=conditioning)
    loss = loss_fn(*(torch.tensor(a) for a in (fs, zs, ft, zt)))
    np.testing.assert_allclose(loss.item(), np_cdan(fs, zs, ft, zt, weight, bias, conditioning), rtol=1e-10)
    assert 0.0 <= loss_fn.domain_accuracy <= 1.0
    if not conditioning:  # plain CDAN is DANN's loss on the mapped features
        mapped = [multilinear_map(torch.tensor(f), torch.softmax(torch.tensor(z), 1)) for f, z in ((fs, zs), (ft, zt))]
        dann = domain_classification_loss(classifier(mapped[0]), classifier(mapped[1]))
        np.testing.assert_allclose(loss.item(), dann.item(), rtol=1e-12)


def test_cdan_gradients_reversed_on_features_plain_on_the_classifier_none_on_predictions():
    fs, zs, ft, zt, weight, bias = cdan_inputs(5, 7)
    classifier = torch.nn.Linear(len(weight), 1).double()
    with torch.no_grad():
        classifier.weight.copy_(torch.tensor(weight).view(1, -1))
        classifier.bias.fill_(bias)
    source, target = torch.tensor(fs, requires_grad=True), torch.tensor(ft, requires_grad=True)
    source_logits, target_logits = torch.tensor(zs, requires_grad=True), torch.tensor(zt, requires_grad=True)
    ConditionalDomainAdversarialLoss(classifier, GradientReversal(0.7))(source, source_logits, target,
                                                                       target_logits).backward()
    expected_source = finite_difference_gradient(lambda f: np_cdan(f, zs, ft, zt, weight, bias), fs)
    expected_target = finite_difference_gradient(lambda f: np_cdan(fs, zs, f, zt, weight, bias), ft)
    np.testing.assert_allclose(source.grad.numpy(), -0.7 * expected_source, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(target.grad.numpy(), -0.7 * expected_target, rtol=1e-6, atol=1e-9)
    expected_weight = finite_difference_gradient(lambda w: np_cdan(fs, zs, ft, zt, w, bias), weight)
    np.testing.assert_allclose(classifier.weight.grad.numpy().ravel(), expected_weight, rtol=1e-6, atol=1e-9)
    assert source_logits.grad is None and target_logits.grad is None


def test_cdan_objective_conditions_a_domain_classifier_on_the_full_map():
    hp = PRESETS["sim2sim"]["deepmerge"]["cdan_e"]
    objective = TransferObjective("cdan_e", 8, hp)
    assert objective.adversarial.domain_classifier[0].in_features == 16
    assert [g["name"] for g in objective.param_groups(1e-3)] == ["domain_classifier"]
    assert objective.param_groups(1e-3)[0]["lr"] == pytest.approx(1e-3 * hp["dc_lr_mult"])
    assert objective.reversal_coefficient(0.0) == 0.0  # the Ganin schedule, as ada
    g = torch.Generator().manual_seed(0)
    out = StepOutputs(torch.randn(6, 2, generator=g), torch.randn(6, 8, generator=g), torch.tensor([0, 1] * 3),
                      torch.randn(4, 2, generator=g), torch.randn(4, 8, generator=g), 0.5)
    total, terms = objective(out)
    assert math.isfinite(terms["transfer"]) and 0.0 <= terms["domain_accuracy"] <= 1.0
    assert total.item() == pytest.approx(terms["classification"] + hp["lambda_tl"] * terms["transfer"], rel=1e-6)


# ---------------------------------------------------------------- class prior (Saerens et al. 2002)


def gaussian_mixture_posteriors(merger_fraction, n, seed, source_prior=(0.5, 0.5)):
    """Posteriors of the Bayes classifier for classes N(-1, 1) (0) and N(+1, 1) (1) calibrated to
    ``source_prior``, on ``n`` samples whose merger (class 1) fraction is ``merger_fraction``."""
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < merger_fraction
    x = rng.normal(size=n) + np.where(labels, 1.0, -1.0)
    logit = 2 * x + math.log(source_prior[1] / source_prior[0])
    p_merger = 1 / (1 + np.exp(-logit))
    return np.stack([1 - p_merger, p_merger], axis=1), labels.mean()


@pytest.mark.parametrize("merger_fraction", [0.2, 0.7])
@pytest.mark.parametrize("source_prior", [(0.5, 0.5), (0.6, 0.4)])
def test_em_recovers_a_known_prior(merger_fraction, source_prior):
    posteriors, realised = gaussian_mixture_posteriors(merger_fraction, 20000, 3, source_prior)
    given = None if source_prior == (0.5, 0.5) else torch.tensor(source_prior, dtype=torch.float64)
    naive = posteriors[:, 1].mean()
    estimate = estimate_class_prior(torch.tensor(posteriors, dtype=torch.float32), given)
    assert estimate.dtype == torch.float32 and estimate.shape == (2,)
    assert abs(estimate[1].item() - merger_fraction) < 0.05
    assert abs(estimate[1].item() - realised) < abs(naive - realised)  # better than the mean prediction
    exact = estimate_class_prior(torch.tensor(posteriors), given, max_iter=100000, tol=1e-14)
    np.testing.assert_allclose(exact.numpy(), np_em_prior(posteriors, np.array(source_prior)), rtol=1e-9)


def test_em_keeps_the_source_prior_for_uninformative_posteriors():
    estimate = estimate_class_prior(torch.full((10, 2), 0.5))
    torch.testing.assert_close(estimate, torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="prior"):
        estimate_class_prior(torch.full((10, 2), 0.5), torch.tensor([0.2, 0.2]))


# ---------------------------------------------------------------- self-training


@pytest.mark.parametrize("prior, source_prior", [((0.3, 0.7), None), ((0.8, 0.2), (0.4, 0.6))])
@pytest.mark.parametrize("threshold, diversity_weight", [(0.9, 1.0), (0.6, 0.3)])
def test_self_training_loss_matches_numpy(prior, source_prior, threshold, diversity_weight):
    logits = random_logits(11, 2, seed=7, scale=3.0)
    source = np.array(source_prior or (0.5, 0.5))
    given = None if source_prior is None else torch.tensor(source_prior, dtype=torch.float64)
    loss = self_training_loss(torch.tensor(logits), torch.tensor(prior, dtype=torch.float64), given, threshold,
                              diversity_weight)
    expected = np_self_training(logits, np.array(prior), source, threshold, diversity_weight)
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-10)


def test_self_training_gradient():
    logits = torch.tensor(random_logits(9, 2, seed=3, scale=3.0), requires_grad=True)
    prior = torch.tensor([0.35, 0.65], dtype=torch.float64)
    # Some samples confident, some not; none within the finite-difference step of the threshold.
    assert torch.autograd.gradcheck(lambda z: self_training_loss(z, prior, threshold=0.9), (logits,))


def test_diversity_is_zero_at_the_prior_and_is_shot_s_term_at_the_uniform_prior():
    logits = torch.tensor(random_logits(8, 3, seed=1))
    mean = torch.softmax(logits, 1).mean(0)
    assert prior_matching_diversity(logits, mean).item() == pytest.approx(0.0, abs=1e-12)
    uniform = torch.full((3,), 1 / 3, dtype=torch.float64)
    shot = (mean * mean.log()).sum() + math.log(3)  # SHOT: minus the entropy of the mean prediction, + log C
    assert prior_matching_diversity(logits, uniform).item() == pytest.approx(shot.item(), rel=1e-12)


def test_self_training_without_confident_samples_is_the_diversity_term():
    logits = torch.tensor([[0.1, -0.1], [0.0, 0.2], [0.3, 0.1]], dtype=torch.float64)
    prior = torch.tensor([0.4, 0.6], dtype=torch.float64)
    adjusted = logits + prior.log() - math.log(0.5)
    loss = self_training_loss(logits, prior, threshold=0.9, diversity_weight=2.0)
    assert loss.item() == pytest.approx(2.0 * prior_matching_diversity(adjusted, prior).item(), rel=1e-12)


def test_self_training_module_keeps_a_detached_moving_average_of_batch_estimates():
    loss_fn = SelfTrainingLoss(2, threshold=0.9, diversity_weight=1.0, prior_momentum=0.5).double()
    posteriors, _ = gaussian_mixture_posteriors(0.2, 400, seed=5)
    logits = torch.tensor(np.log(posteriors), requires_grad=True)
    batch_estimate = np_em_prior(posteriors, np.array([0.5, 0.5]), tol=1e-7)
    loss = loss_fn(logits)
    np.testing.assert_allclose(loss_fn.target_prior.numpy(), 0.5 * 0.5 + 0.5 * batch_estimate, atol=1e-5)
    assert not loss_fn.target_prior.requires_grad and 0.0 < loss_fn.confident_fraction < 1.0
    expected = np_self_training(logits.detach().numpy(), loss_fn.target_prior.numpy(), np.array([0.5, 0.5]), 0.9,
                                1.0)
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-10)
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    before = loss_fn.target_prior.clone()
    loss_fn.eval()
    loss_fn(logits)
    assert torch.equal(loss_fn.target_prior, before)  # eval mode leaves the estimate alone
    loss_fn.train()
    for _ in range(60):
        loss_fn(logits)
    assert abs(loss_fn.target_prior[1].item() - 0.2) < 0.05


def test_self_training_prior_is_floored():
    loss_fn = SelfTrainingLoss(2, prior_momentum=1.0, min_prior=1e-3)
    loss = loss_fn(torch.tensor([[40.0, -40.0]] * 4))  # every sample a certain non-merger: EM says prior (1, 0)
    assert loss_fn.target_prior[1].item() == pytest.approx(1e-3 / (1 + 1e-3))
    assert math.isfinite(loss.item())


# ---------------------------------------------------------------- AdaBN


def batchnorm_inputs(model):
    captured = {}
    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    hooks = [layer.register_forward_pre_hook(lambda layer, inputs: captured.setdefault(layer, []).append(
        inputs[0].detach().double().numpy())) for layer in layers]
    return layers, captured, hooks


def channel_statistics(batches):
    x = np.concatenate(batches)
    values = np.moveaxis(x, 1, 0).reshape(x.shape[1], -1)
    return values.mean(axis=1), values.var(axis=1, ddof=1)  # PyTorch keeps the unbiased running variance


@pytest.mark.parametrize("network, size", [("deepmerge", 75), ("resnet18", 32)])
def test_adabn_statistics_are_those_of_every_batchnorm_input_over_the_split(network, size):
    torch.manual_seed(0)
    model = build_network(network, dropout=0.5)
    images = torch.randn(37, 3, size, size) * 2 + 1  # batches of 16, 16 and 5
    model.train()
    model.head.eval()  # a mixed state, to be restored
    before = {k: v.clone() for k, v in model.state_dict().items()}
    layers, captured, hooks = batchnorm_inputs(model)
    reestimate_batchnorm(model, images, batch_size=16)
    for hook in hooks:
        hook.remove()
    for layer in layers:
        assert sum(len(b) for b in captured[layer]) == 37
        mean, var = channel_statistics(captured[layer])
        np.testing.assert_allclose(layer.running_mean.numpy(), mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(layer.running_var.numpy(), var, rtol=1e-5, atol=1e-6)
    after = model.state_dict()
    for key, value in before.items():
        if not key.endswith(("running_mean", "running_var", "num_batches_tracked")):
            assert torch.equal(after[key], value), key
    assert model.training and not model.head.training and all(layer.training for layer in layers)
    if network == "deepmerge":  # the first layer's input depends on no batch norm: computed independently
        with torch.no_grad():
            first = torch.relu(model.conv[0](images)).double().numpy()
        mean, var = channel_statistics([first])
        np.testing.assert_allclose(model.conv[2].running_mean.numpy(), mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(model.conv[2].running_var.numpy(), var, rtol=1e-5, atol=1e-6)


def test_adabn_runs_everything_but_batchnorm_in_eval_mode():
    model = torch.nn.Sequential(torch.nn.Dropout(0.5), torch.nn.BatchNorm1d(4))
    x = torch.randn(50, 4) * 3 + 2
    reestimate_batchnorm(model, x, batch_size=7)  # a last batch of one image joins the one before
    mean, var = channel_statistics([x.double().numpy()])  # dropout off: the raw inputs
    np.testing.assert_allclose(model[1].running_mean.numpy(), mean, rtol=1e-6)
    np.testing.assert_allclose(model[1].running_var.numpy(), var, rtol=1e-6)


# ---------------------------------------------------------------- the presets and tiny training runs


def test_presets_of_the_new_methods():
    for pair, networks in PRESETS.items():
        for network, methods in networks.items():
            assert set(BEYOND) <= set(methods), (pair, network)
            assert methods["mcc"]["mcc_temperature"] == 2.5 and methods["mcc"]["lambda_tl"] == 1.0
            assert methods["cdan_e"]["lambda_tl"] == 1.0 and "reversal" not in methods["cdan_e"]  # Ganin's
            assert methods["self_training"]["confidence_threshold"] == 0.9
            assert methods["self_training"]["lambda_div"] == 1.0
            noda = methods.get("noda", PRESETS["sim2sim"][network]["noda"])
            assert methods["adabn"] == noda  # adabn trains as noda
    assert not uses_target("adabn") and all(uses_target(m) for m in ("mcc", "cdan_e", "self_training"))


@pytest.fixture(scope="module")
def toy_pair(tmp_path_factory):
    return write_toy_pair(tmp_path_factory.mktemp("toy"), n=40)


def tiny_run(pair_paths, out_dir, method):
    return train_run(source=str(pair_paths["source"]), target=str(pair_paths["target"]), out_dir=str(out_dir),
                     pair="sim2sim", network="deepmerge", method=method, seed=2,
                     hp=dict(PRESETS["sim2sim"]["deepmerge"][method]), max_epochs=1, batch_size=8, device="cpu",
                     progress=False)


@pytest.mark.parametrize("method", ["mcc", "cdan_e", "self_training"])
def test_tiny_run_finishes_with_finite_losses(toy_pair, tmp_path, method):
    summary = tiny_run(toy_pair, tmp_path, method)
    history = pd.read_csv(tmp_path / "history.csv")
    assert summary["epochs_run"] == 1 and (tmp_path / "model.pt").exists()
    losses = history[[c for c in history.columns if c.startswith("train_")]]
    assert np.isfinite(losses.to_numpy()).all() and history["train_transfer"].iloc[0] != 0.0
    if method == "cdan_e":
        assert 0.0 <= history["train_domain_accuracy"].iloc[0] <= 1.0
    if method == "self_training":
        assert 0.0 < history["train_estimated_target_merger_fraction"].iloc[0] < 1.0


def test_tiny_adabn_run_is_noda_with_target_batchnorm_statistics(toy_pair, tmp_path):
    noda, adabn = tiny_run(toy_pair, tmp_path / "noda", "noda"), tiny_run(toy_pair, tmp_path / "adabn", "adabn")
    histories = [pd.read_csv(tmp_path / name / "history.csv").drop(columns="seconds") for name in ("noda", "adabn")]
    pd.testing.assert_frame_equal(*histories)
    assert np.isfinite(histories[1].filter(like="train_").to_numpy()).all()
    assert adabn["best_epoch"] == noda["best_epoch"]
    assert adabn["batchnorm_statistics"] == "target training split (AdaBN)" and "batchnorm_statistics" not in noda
    noda_state, _ = load_checkpoint(tmp_path / "noda" / "model.pt")
    adabn_state, meta = load_checkpoint(tmp_path / "adabn" / "model.pt")
    assert meta["batchnorm_statistics"] == "target training split (AdaBN)"
    model = build_network("deepmerge")
    model.load_state_dict(noda_state)
    reestimate_batchnorm(model, load_split(toy_pair["target"], "train").images)
    adapted = model.state_dict()
    for key, value in adabn_state.items():
        if key.endswith(("running_mean", "running_var")):
            torch.testing.assert_close(value, adapted[key], rtol=1e-6, atol=1e-7)
            assert not torch.equal(value, noda_state[key])
        elif not key.endswith("num_batches_tracked"):
            assert torch.equal(value, noda_state[key]), key


# ---------------------------------------------------------------- tables: rows of a method the paper does not have


def write_metrics(directory, method, seed):
    confusion = [[0.8, 0.2], [0.3, 0.7]]
    result = {"pair": "sim2sim", "network": "deepmerge", "method": method, "seed": seed, "target_collapsed": False}
    for domain in ("source", "target"):
        result[domain] = {**{m: 0.5 + 0.01 * seed for m in METRICS}, "confusion_normalised": confusion}
    path = directory / f"{method}_{seed}.json"
    path.write_text(json.dumps(result))
    return str(path)


@pytest.mark.parametrize("kind", ["metrics", "confusion", "seeds"])
def test_tables_mark_methods_beyond_the_paper_and_leave_their_paper_columns_empty(tmp_path, kind):
    paths = [write_metrics(tmp_path, method, seed) for method in ("noda", "mcc") for seed in (1, 2)]
    files = {k: tmp_path / f"{kind}.{k}" for k in ("csv", "md", "tex")}
    table = render_table(paths, kind=kind, pair="sim2sim", csv_path=files["csv"], md_path=files["md"],
                         tex_path=files["tex"], data_description="toy")
    paper = [c for c in table.columns if c.endswith("_paper")]
    assert table.loc[table.method == "mcc", paper].isna().all().all()
    assert table.loc[table.method == "noda", paper].notna().all().all()
    written = pd.read_csv(files["csv"], comment="#")
    assert written.loc[written.method == "mcc", paper].isna().all().all()  # empty cells in the CSV
    md = files["md"].read_text()
    assert "| deepmerge | mcc (beyond the paper) | source |" in md and "| deepmerge | noda | source |" in md
    assert "Methods marked (beyond the paper) are not in the paper" in md
    assert "mcc (beyond the paper)" in files["tex"].read_text()
    only_paper = render_table(paths[:2], kind=kind, pair="sim2sim", csv_path=files["csv"], md_path=files["md"],
                              tex_path=files["tex"], data_description="toy")
    assert "beyond the paper" not in files["md"].read_text() and len(only_paper)
