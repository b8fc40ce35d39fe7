"""Tests of deepmerge_da.nn.losses against plain NumPy float64 references (loops on purpose: easy to read)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from deepmerge_da.nn.losses import (
    PAPER_CODE_VARIANCES,
    DomainAdversarialLoss,
    DomainClassifier,
    EntropyLoss,
    FisherLoss,
    GradientReversal,
    MMDLoss,
    TotalLoss,
    entropy_loss,
    fisher_loss,
    ganin_coefficient,
    mmd_loss,
    total_loss,
)

DTYPES = [torch.float32, torch.float64]
TOLERANCE = {torch.float32: dict(rtol=1e-4, atol=1e-5), torch.float64: dict(rtol=1e-9, atol=1e-11)}
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))]


def assert_matches(actual: torch.Tensor, expected: float, dtype: torch.dtype) -> None:
    assert actual.dtype == dtype
    np.testing.assert_allclose(actual.item(), expected, **TOLERANCE[dtype])


# ---------------------------------------------------------------- NumPy references


def np_kernel(a, b, variances):
    squared = np.sum((a - b) ** 2)
    return sum(math.exp(-squared / (2 * v)) for v in variances)


def np_mmd(x, y, variances, estimator):
    n, m = len(x), len(y)
    if estimator == "linear":
        pairs = min(n, m) // 2
        h = [
            np_kernel(x[2 * i], x[2 * i + 1], variances)
            + np_kernel(y[2 * i], y[2 * i + 1], variances)
            - np_kernel(x[2 * i], y[2 * i + 1], variances)
            - np_kernel(x[2 * i + 1], y[2 * i], variances)
            for i in range(pairs)
        ]
        return sum(h) / pairs
    cross = sum(np_kernel(x[i], y[j], variances) for i in range(n) for j in range(m)) / (n * m)
    if estimator == "biased":
        ss = sum(np_kernel(x[i], x[j], variances) for i in range(n) for j in range(n)) / n**2
        tt = sum(np_kernel(y[i], y[j], variances) for i in range(m) for j in range(m)) / m**2
    else:
        ss = sum(np_kernel(x[i], x[j], variances) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
        tt = sum(np_kernel(y[i], y[j], variances) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    return ss + tt - 2 * cross


def np_data_driven_variances(x, y, multipliers, bandwidth):
    pooled = np.concatenate([x, y])
    distances = sorted(np.linalg.norm(a - b) for a, b in itertools.combinations(pooled, 2))
    base = distances[(len(distances) - 1) // 2] if bandwidth == "median" else np.mean(distances)
    return [(base * k) ** 2 for k in multipliers]


def np_fisher(h, labels, centers, lambda_w, lambda_b, form, eps=1e-8):
    if centers is None:
        classes = sorted(set(labels.tolist()))
        centers = np.array([h[labels == c].mean(axis=0) for c in classes])
        labels = np.array([classes.index(c) for c in labels])
    within = sum(np.sum((h[i] - centers[labels[i]]) ** 2) for i in range(len(h)))
    global_center = centers.mean(axis=0)
    between = sum(np.sum((c - global_center) ** 2) for c in centers)
    if form == "ratio":
        return lambda_w * within / (lambda_b * between + eps)
    return lambda_w * within - lambda_b * between


def np_entropy(logits):
    total = 0.0
    for row in logits:
        p = np.exp(row - row.max())
        p /= p.sum()
        total += -sum(pi * math.log(pi) for pi in p)
    return total / len(logits)


def random_pair(n, m, d, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=(m, d)) + shift


# ---------------------------------------------------------------- MMD


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("estimator", ["biased", "unbiased", "linear"])
@pytest.mark.parametrize("n, m, d", [(12, 12, 3), (9, 14, 5), (15, 7, 2)])
def test_mmd_fixed_sigmas_matches_numpy(dtype, estimator, n, m, d):
    x, y = random_pair(n, m, d, seed=n * 100 + m, shift=0.5)
    sigmas = [0.5, 1.0, 3.0]
    expected = np_mmd(x, y, [s**2 for s in sigmas], estimator)
    actual = mmd_loss(torch.tensor(x, dtype=dtype), torch.tensor(y, dtype=dtype), sigmas=sigmas, estimator=estimator)
    assert_matches(actual, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("estimator", ["biased", "unbiased", "linear"])
def test_mmd_paper_code_variances_matches_numpy(dtype, estimator):
    x, y = random_pair(10, 13, 4, seed=1, shift=0.3)
    expected = np_mmd(x, y, PAPER_CODE_VARIANCES, estimator)
    actual = mmd_loss(
        torch.tensor(x, dtype=dtype), torch.tensor(y, dtype=dtype), variances=PAPER_CODE_VARIANCES, estimator=estimator
    )
    assert_matches(actual, expected, dtype)


def test_paper_code_variances_are_variances_not_sigmas():
    x, y = (torch.tensor(a) for a in random_pair(8, 8, 3, seed=2, shift=1.0))
    as_variances = mmd_loss(x, y, variances=[4.0, 25.0], estimator="biased")
    as_sigmas = mmd_loss(x, y, sigmas=[2.0, 5.0], estimator="biased")
    torch.testing.assert_close(as_variances, as_sigmas)
    assert len(PAPER_CODE_VARIANCES) == 19


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("estimator", ["biased", "unbiased", "linear"])
@pytest.mark.parametrize("bandwidth", ["median", "mean"])
@pytest.mark.parametrize("n, m", [(11, 8), (10, 10)])
def test_mmd_data_driven_bandwidth_matches_numpy(dtype, estimator, bandwidth, n, m):
    x, y = random_pair(n, m, 4, seed=3 + n, shift=0.7)
    multipliers = (0.25, 0.5, 1.0, 2.0, 4.0)
    expected = np_mmd(x, y, np_data_driven_variances(x, y, multipliers, bandwidth), estimator)
    actual = MMDLoss(estimator=estimator, bandwidth=bandwidth, multipliers=multipliers)(
        torch.tensor(x, dtype=dtype), torch.tensor(y, dtype=dtype)
    )
    assert_matches(actual, expected, dtype)


def test_mmd_near_zero_for_same_distribution_and_positive_for_shifted():
    torch.manual_seed(0)
    source, same, shifted = torch.randn(200, 5), torch.randn(150, 5), torch.randn(150, 5) + 1.0
    unbiased_same = mmd_loss(source, same).item()
    assert abs(unbiased_same) < 0.02
    assert mmd_loss(source, shifted).item() > 0.3
    assert mmd_loss(source, shifted, estimator="linear").item() > 0.1
    assert mmd_loss(source, shifted, estimator="biased").item() > mmd_loss(source, same, estimator="biased").item()


@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
@pytest.mark.parametrize(
    "kernel", [dict(sigmas=[1.0, 2.0]), dict(variances=PAPER_CODE_VARIANCES), dict(bandwidth="median")]
)
def test_mmd_symmetric(estimator, kernel):
    x, y = (torch.tensor(a) for a in random_pair(13, 9, 3, seed=4, shift=0.4))
    forward, backward = mmd_loss(x, y, estimator=estimator, **kernel), mmd_loss(y, x, estimator=estimator, **kernel)
    torch.testing.assert_close(forward, backward)


@pytest.mark.parametrize("device", DEVICES)
def test_mmd_gradient_finite_with_duplicate_points(device):
    source = torch.randn(6, 3, device=device)
    source = torch.cat([source, source[:2]]).requires_grad_()
    target = torch.randn(5, 3, device=device, requires_grad=True)
    loss = mmd_loss(source, target)
    loss.backward()
    assert loss.device.type == device
    assert torch.isfinite(source.grad).all() and torch.isfinite(target.grad).all()
    assert source.grad.abs().sum() > 0


def test_mmd_rejects_bad_options():
    x, y = torch.randn(4, 2), torch.randn(5, 2)
    with pytest.raises(ValueError):
        mmd_loss(x, y, sigmas=[1.0], variances=[1.0])
    with pytest.raises(ValueError):
        mmd_loss(x, y, estimator="quadratic")
    with pytest.raises(ValueError):
        MMDLoss(bandwidth="mode")
    with pytest.raises(ValueError):
        mmd_loss(x[:1], y)
    with pytest.raises(ValueError):
        mmd_loss(x, y, sigmas=[1.0, 0.0])
    with pytest.raises(ValueError):
        mmd_loss(x, y, multipliers=())


# ---------------------------------------------------------------- gradient reversal and DANN


@pytest.mark.parametrize("coeff", [1.0, 0.3])
def test_gradient_reversal_identity_forward_reversed_scaled_gradient(coeff):
    torch.manual_seed(0)
    weights = torch.randn(7, 4)
    x_plain = torch.randn(7, 4, requires_grad=True)
    x_reversed = x_plain.detach().clone().requires_grad_()
    layer = GradientReversal(coeff)

    reversed_out = layer(x_reversed)
    torch.testing.assert_close(reversed_out, x_plain)
    (weights * x_plain.square()).sum().backward()
    (weights * reversed_out.square()).sum().backward()
    torch.testing.assert_close(x_reversed.grad, -coeff * x_plain.grad)


def test_gradient_reversal_coeff_can_change_between_steps():
    layer = GradientReversal()
    x = torch.ones(3, requires_grad=True)
    for coeff in (0.0, 0.5, 2.0):
        layer.coeff = coeff
        x.grad = None
        layer(x).sum().backward()
        torch.testing.assert_close(x.grad, torch.full((3,), -coeff))


def test_ganin_coefficient_schedule():
    assert ganin_coefficient(0.0) == 0.0
    assert ganin_coefficient(1.0) == pytest.approx(1.0, abs=1e-3)
    values = [ganin_coefficient(p) for p in np.linspace(0, 1, 21)]
    assert np.all(np.diff(values) > 0)
    assert ganin_coefficient(0.0, low=0.1, high=0.5) == pytest.approx(0.1)
    assert ganin_coefficient(0.5, gamma=10.0) == pytest.approx(2 / (1 + math.exp(-5)) - 1)


def test_domain_classifier_architecture():
    classifier = DomainClassifier(16)
    linear_shapes = [tuple(layer.weight.shape) for layer in classifier if isinstance(layer, torch.nn.Linear)]
    assert linear_shapes == [(1024, 16), (1024, 1024), (1, 1024)]
    dropouts = [layer.p for layer in classifier if isinstance(layer, torch.nn.Dropout)]
    assert dropouts == [0.5, 0.5]
    assert classifier(torch.randn(3, 16)).shape == (3, 1)


def separable_features(seed=0):
    generator = torch.Generator().manual_seed(seed)
    source = torch.randn(32, 8, generator=generator) + 1.5
    target = torch.randn(24, 8, generator=generator) - 1.5
    return source, target


def test_domain_adversarial_loss_value_and_gradients():
    torch.manual_seed(0)
    source, target = separable_features()
    source.requires_grad_()
    adversarial = DomainAdversarialLoss(DomainClassifier(8, hidden=16, dropout=0.0), GradientReversal(0.7))
    loss = adversarial(source, target)

    logits = adversarial.domain_classifier(torch.cat([source, target])).reshape(-1).detach().double()
    labels = np.r_[np.ones(32), np.zeros(24)]
    probabilities = 1 / (1 + np.exp(-logits.numpy()))
    expected = -np.mean(labels * np.log(probabilities) + (1 - labels) * np.log(1 - probabilities))
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-5)
    expected_accuracy = np.mean((logits.numpy() > 0) == labels.astype(bool))
    assert adversarial.domain_accuracy == pytest.approx(expected_accuracy)

    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in adversarial.parameters())
    # The features see the reversed, scaled gradient of the same loss without the reversal layer.
    plain_source = source.detach().clone().requires_grad_()
    plain_logits = adversarial.domain_classifier(torch.cat([plain_source, target])).reshape(-1)
    torch.nn.functional.binary_cross_entropy_with_logits(plain_logits, torch.tensor(labels).float()).backward()
    torch.testing.assert_close(source.grad, -0.7 * plain_source.grad)


def test_domain_adversarial_loss_is_trainable():
    torch.manual_seed(0)
    source, target = separable_features(seed=1)
    adversarial = DomainAdversarialLoss(DomainClassifier(8, hidden=32))
    optimizer = torch.optim.Adam([adversarial.param_group(lr=1e-2, lr_multiplier=0.5)])
    assert optimizer.param_groups[0]["lr"] == pytest.approx(5e-3)
    assert len(optimizer.param_groups[0]["params"]) == len(list(adversarial.parameters())) == 6

    adversarial.eval()  # deterministic before/after comparison
    initial = adversarial(source, target).item()
    adversarial.train()
    for _ in range(30):
        optimizer.zero_grad()
        adversarial(source, target).backward()
        optimizer.step()
    adversarial.eval()
    final = adversarial(source, target).item()
    assert final < 0.5 * initial
    assert adversarial.domain_accuracy > 0.95


# ---------------------------------------------------------------- Fisher


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("form", ["ratio", "difference"])
@pytest.mark.parametrize("num_classes, n, d", [(2, 20, 4), (3, 31, 6), (5, 12, 3)])
@pytest.mark.parametrize("given_centers", [False, True])
def test_fisher_matches_numpy(dtype, form, num_classes, n, d, given_centers):
    rng = np.random.default_rng(num_classes * n)
    features = rng.normal(size=(n, d))
    labels = rng.integers(0, num_classes, size=n)
    centers = rng.normal(size=(num_classes, d)) if given_centers else None
    lambda_w, lambda_b = 0.01, 2.0
    expected = np_fisher(features, labels, centers, lambda_w, lambda_b, form)
    actual = fisher_loss(
        torch.tensor(features, dtype=dtype),
        torch.tensor(labels),
        centers=None if centers is None else torch.tensor(centers, dtype=dtype),
        lambda_w=lambda_w,
        lambda_b=lambda_b,
        form=form,
    )
    assert_matches(actual, expected, dtype)


def test_fisher_batch_means_use_only_present_classes():
    features = torch.tensor([[0.0, 0.0], [2.0, 0.0], [10.0, 4.0], [10.0, 6.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 7, 7])  # classes 1-6 absent
    # centres (1, 0) and (10, 5): tr(Sw) = 1 + 1 + 1 + 1 = 4, tr(Sb) = 2 * (4.5² + 2.5²) = 53
    assert fisher_loss(features, labels, form="difference").item() == pytest.approx(4.0 - 53.0)
    assert fisher_loss(features, labels).item() == pytest.approx(4.0 / 53.0)


def test_fisher_module_learnable_centers_receive_gradient():
    torch.manual_seed(0)
    module = FisherLoss(num_classes=3, feature_dim=5, lambda_w=0.1, lambda_b=1.0)
    assert isinstance(module.centers, torch.nn.Parameter)
    assert list(module.parameters()) == [module.centers]
    features = torch.randn(12, 5, requires_grad=True)
    labels = torch.arange(12) % 3
    loss = module(features, labels)
    torch.testing.assert_close(loss, fisher_loss(features, labels, module.centers, lambda_w=0.1, lambda_b=1.0))
    loss.backward()
    assert module.centers.grad is not None and module.centers.grad.abs().sum() > 0
    assert features.grad.abs().sum() > 0


def test_fisher_module_batch_means():
    module = FisherLoss(num_classes=2, feature_dim=4, learnable_centers=False, form="difference")
    assert module.centers is None and not list(module.parameters())
    features, labels = torch.randn(10, 4), torch.arange(10) % 2
    torch.testing.assert_close(module(features, labels), fisher_loss(features, labels, form="difference"))


def test_fisher_centers_start_at_unit_variance():
    # The paper code's torch.randn: on the scale of batch-normalised features (0.01 * randn made the ratio ~1e4).
    torch.manual_seed(0)
    centers = FisherLoss(num_classes=2, feature_dim=2592).centers.detach()
    assert abs(centers.mean().item()) < 0.05
    assert 0.95 < centers.std().item() < 1.05


def test_fisher_centers_seeded_by_global_rng():
    torch.manual_seed(5)
    first = FisherLoss(2, 3).centers.detach().clone()
    torch.manual_seed(5)
    torch.testing.assert_close(FisherLoss(2, 3).centers.detach(), first)


# ---------------------------------------------------------------- entropy


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, num_classes", [(1, 2), (17, 2), (9, 5)])
def test_entropy_matches_numpy(dtype, n, num_classes):
    logits = np.random.default_rng(n + num_classes).normal(scale=3.0, size=(n, num_classes))
    actual = entropy_loss(torch.tensor(logits, dtype=dtype))
    assert_matches(actual, np_entropy(logits), dtype)
    assert_matches(EntropyLoss(reduction="sum")(torch.tensor(logits, dtype=dtype)), n * np_entropy(logits), dtype)


def test_entropy_extremes_are_stable():
    saturated = torch.tensor([[1000.0, -1000.0], [-500.0, 500.0]], requires_grad=True)
    loss = entropy_loss(saturated)
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    assert torch.isfinite(saturated.grad).all()
    assert entropy_loss(torch.zeros(4, 3)).item() == pytest.approx(math.log(3))


# ---------------------------------------------------------------- total


def test_total_loss_eq2():
    classification = torch.tensor(0.7, requires_grad=True)
    transfer, fisher, entropy = torch.tensor(0.2), torch.tensor(3.0), torch.tensor(0.4)
    total, logged = total_loss(
        classification, transfer, fisher, entropy, lambda_tl=2.0, lambda_fisher=0.5, lambda_em=0.05
    )
    assert total.item() == pytest.approx(0.7 + 2.0 * 0.2 + 0.5 * 3.0 + 0.05 * 0.4)
    assert logged == pytest.approx(
        {"classification": 0.7, "transfer": 0.2, "fisher": 3.0, "entropy": 0.4, "total": total.item()}
    )
    assert all(isinstance(value, float) for value in logged.values())
    total.backward()
    assert classification.grad.item() == 1.0


def test_total_loss_absent_terms():
    total, logged = TotalLoss(lambda_tl=3.0)(torch.tensor(0.5), transfer=torch.tensor(0.1))
    assert total.item() == pytest.approx(0.8)
    assert set(logged) == {"classification", "transfer", "total"}
    total, logged = total_loss(torch.tensor(0.5))
    assert total.item() == pytest.approx(0.5) and set(logged) == {"classification", "total"}
