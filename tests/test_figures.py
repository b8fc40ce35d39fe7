"""Figures and Grad-CAM, on a tiny prepared pair, a 1-epoch checkpoint and its real evaluation outputs."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from deepmerge_da.io.checkpoint import load_model
from deepmerge_da.io.hdf5 import ImageSet, write_image_set
from deepmerge_da.report import figures, image_figures
from deepmerge_da.report.evaluate import evaluate_run
from deepmerge_da.report.gradcam import GradCAM, gradcam_maps
from deepmerge_da.training.loop import train_run
from deepmerge_da.training.runtime import load_split
from helpers import TOY_HP

N = 40           # images per domain: 16 train, 8 val, 16 test
SPLIT = np.repeat(np.array([0, 1, 2], dtype=np.int8), [16, 8, 16])
FOOT = figures.FOOTNOTE_PX


def _galaxies(rng, labels, size=75):
    """Positive Gaussian blobs; mergers have a second, offset blob."""
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    images = np.zeros((len(labels), 3, size, size), dtype=np.float32)
    for i, label in enumerate(labels):
        cx, cy, s = 37 + rng.normal(0, 3), 37 + rng.normal(0, 3), rng.uniform(3, 6)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s ** 2))
        if label:
            ox, oy = rng.uniform(-15, 15, size=2)
            blob = blob + 0.7 * np.exp(-((xx - cx - ox) ** 2 + (yy - cy - oy) ** 2) / (2 * (0.7 * s) ** 2))
        images[i] = blob[None] * np.array([1.0, 2.0, 3.0], dtype=np.float32)[:, None, None] * 50
    return images


def _write(path, images, labels, ids, source):
    train = images[SPLIT == 0]
    attrs = {"filters": ["F814W", "F356W", "F160W"], "pixel_scale": 0.06, "units": "nJy/pixel",
             "data_source": f"test {source}", "channel_mean": train.mean(axis=(0, 2, 3)),
             "channel_std": train.std(axis=(0, 2, 3))}
    write_image_set(path, ImageSet(images, labels, ids, attrs, split=SPLIT.copy()))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("figures")
    rng = np.random.default_rng(0)
    labels = (np.arange(N) % 2).astype(np.int8)
    ids = np.array([f"obj{i:03d}" for i in range(N)])
    pristine = _galaxies(rng, labels)
    noisy = pristine + rng.normal(0, 5.0, size=pristine.shape).astype(np.float32)
    # The target lists the same objects in another order: matching must go by object id.
    order = rng.permutation(N)
    order = np.concatenate([order[SPLIT[order] == s] for s in (0, 1, 2)])  # keep each object's split
    paths = {"source": tmp / "source.h5", "target": tmp / "target.h5"}
    _write(paths["source"], pristine, labels, ids, "source")
    _write(paths["target"], noisy[order], labels[order], ids[order], "target")
    out = {"tmp": tmp, **{k: str(v) for k, v in paths.items()}, "metrics": {}, "predictions": {}, "ckpt": {}}
    for method in ("noda", "mmd"):
        d = tmp / method
        train_run(source=out["source"], target=out["target"], out_dir=str(d), pair="sim2sim", network="deepmerge",
                  method=method, seed=1, hp=TOY_HP, max_epochs=1, batch_size=8, device="cpu", progress=False)
        evaluate_run(checkpoint=str(d / "model.pt"), source=out["source"], target=out["target"],
                     metrics_path=str(d / "metrics.json"), predictions_path=str(d / "predictions.csv"))
        out["metrics"][method] = str(d / "metrics.json")
        out["predictions"][method] = str(d / "predictions.csv")
        out["ckpt"][method] = str(d / "model.pt")
    out["history"] = str(tmp / "mmd" / "history.csv")
    return out


def check_png(path, size, returned=None):
    image = Image.open(path)
    assert image.size == size
    if returned is not None:
        assert tuple(returned) == size
    pixels = np.asarray(image.convert("L"), dtype=float)
    assert pixels.std() > 10, "the figure looks blank"
    return pixels


def check_pdf(path):
    assert path.read_bytes()[:4] == b"%PDF"


def test_examples_grid_matches_objects_across_domains(run):
    png, pdf = run["tmp"] / "ex.png", run["tmp"] / "ex.pdf"
    size = image_figures.plot_examples(run["source"], run["target"], str(png), str(pdf), "tiny test pair",
                                       n_per_class=3)
    check_png(png, (108 + 3 * 192, 36 + 4 * 192 + FOOT), size)
    check_pdf(pdf)
    source, target = image_figures.load_domain(run["source"]), image_figures.load_domain(run["target"])
    src, tgt = image_figures.select_pairs(source, target, 3, np.random.default_rng(0), label=1)
    assert len(src) == 3 and list(source.object_id[src]) == list(target.object_id[tgt])
    assert (source.labels[src] == 1).all() and (target.labels[tgt] == 1).all()
    # Physical units come back from the standardised tensors.
    raw = source.physical(src)
    assert raw.min() >= -1e-3 and raw.max() > 10


def test_log_stretch_is_monotonic_in_unit_range():
    x = np.concatenate([[-5.0, 0.0], np.logspace(-6, 2, 98)]).reshape(1, 10, 10)
    y = figures.log_stretch(x)
    assert y.min() == 0.0 and y.max() == 1.0 and y[0, 0, 0] == 0.0
    assert (np.diff(y.ravel()[2:]) >= 0).all()
    assert (figures.log_stretch(-np.ones((3, 4, 4))) == 0).all()
    assert figures.display_image(np.ones((3, 8, 8))).shape == (8, 8, 3)


def test_metric_bars_with_seed_lists(run, tmp_path):
    other = json.loads(Path(run["metrics"]["mmd"]).read_text())
    for domain in ("source", "target"):
        other[domain]["accuracy"] = min(1.0, other[domain]["accuracy"] + 0.1)
    (tmp_path / "m2.json").write_text(json.dumps(other))
    png, pdf = tmp_path / "bars.png", tmp_path / "bars.pdf"
    size = figures.plot_metric_bars({"noDA": run["metrics"]["noda"],
                                     "MMD": [run["metrics"]["mmd"], str(tmp_path / "m2.json")]},
                                    str(png), str(pdf), "tiny test pair, test split")
    check_png(png, (1080, 480 + FOOT), size)
    check_pdf(pdf)
    stats = figures._read_metrics([run["metrics"]["mmd"], str(tmp_path / "m2.json")])
    assert stats["source"]["accuracy"][1] > 0


def test_roc_and_score_histograms(run, tmp_path):
    size = figures.plot_roc(run["predictions"], str(tmp_path / "roc.png"), str(tmp_path / "roc.pdf"), "tiny")
    check_png(tmp_path / "roc.png", (660, 600 + FOOT), size)
    check_pdf(tmp_path / "roc.pdf")
    size = figures.plot_score_histograms(run["predictions"], str(tmp_path / "h.png"), None, "tiny")
    check_png(tmp_path / "h.png", (816, 48 + 240 * 2 + FOOT), size)
    assert not (tmp_path / "h.pdf").exists()


def test_training_curves_tolerate_new_columns(run, tmp_path):
    size = figures.plot_training_curves(run["history"], str(tmp_path / "tc.png"), "sim2sim/deepmerge/mmd", "tiny")
    check_png(tmp_path / "tc.png", (1560, 432 + FOOT), size)
    # Added columns (selection/test scores, a term that can be negative) are plotted by their prefix.
    hist = tmp_path / "history.csv"
    hist.write_text("epoch,lr,train_total,train_fisher,train_source_accuracy,val_source_accuracy,"
                    "val_target_accuracy,sel_target_accuracy,test_target_loss,seconds\n"
                    "0,1e-4,1.0,-0.5,0.5,0.5,0.5,0.4,0.7,1\n1,1e-3,0.5,-0.2,0.7,0.6,0.55,0.5,0.6,1\n")
    groups = figures._history_groups(["epoch", "lr", "train_total", "train_fisher", "train_domain_accuracy",
                                      "val_source_loss", "sel_target_accuracy", "test_target_loss", "seconds"])
    assert groups == {"loss": ["train_total", "train_fisher", "val_source_loss", "test_target_loss"],
                      "accuracy": ["train_domain_accuracy", "sel_target_accuracy"], "lr": ["lr"]}
    figures.plot_training_curves(str(hist), str(tmp_path / "tc2.png"), "extra columns", "tiny")
    check_png(tmp_path / "tc2.png", (1560, 432 + FOOT))


def test_tsne_before_and_after_training(run, tmp_path):
    png, pdf = tmp_path / "tsne.png", tmp_path / "tsne.pdf"
    size = image_figures.plot_tsne({"before training": None, "noDA": run["ckpt"]["noda"]}, run["source"], run["target"],
                             str(png), str(pdf), "tiny", n_per_domain=12, seed=0)
    check_png(png, (792, 36 + 360 * 2 + FOOT), size)
    check_pdf(pdf)


def test_gradcam_figure_and_maps(run, tmp_path):
    png, pdf = tmp_path / "gc.png", tmp_path / "gc.pdf"
    size = image_figures.plot_gradcam({"noDA": run["ckpt"]["noda"], "MMD": run["ckpt"]["mmd"]}, run["source"],
                                run["target"], str(png), str(pdf), "tiny", n_images=2)
    check_png(png, (108 + 3 * 192, 36 + 4 * 192 + FOOT), size)
    check_pdf(pdf)
    model, _ = load_model(run["ckpt"]["mmd"])
    images = load_split(run["source"], "test").images[:6]
    maps = gradcam_maps(model, images, target_class=1)
    assert maps.shape == (6, 75, 75) and maps.dtype == np.float32
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    assert all(m.std() > 0 for m in maps if m.max() > 0) and maps.std() > 0
    # Evaluation mode: an image's map does not depend on the rest of the batch.
    np.testing.assert_allclose(gradcam_maps(model, images[2:3])[0], maps[2], atol=1e-5)
    # The hook leaves the network's output unchanged and is removed afterwards.
    with torch.no_grad():
        before = model(images)[0]
    with GradCAM(model) as cam:
        cam(images)
    with torch.no_grad():
        assert torch.equal(model(images)[0], before)
    assert not model.last_conv._forward_hooks


class Tiny(nn.Module):
    """conv (followed by an in-place ReLU) -> mean over pixels -> linear: Grad-CAM is known in closed form."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        f = self.relu(self.conv(x)).mean(dim=(2, 3))
        return self.fc(f), f


def test_gradcam_follows_equations_12_13_and_finds_the_blob():
    torch.manual_seed(0)
    model = Tiny()
    with torch.no_grad():
        model.conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1) * torch.full((1, 1, 3, 3), 1 / 9))
        model.conv.bias.copy_(torch.tensor([0.0, 0.1]))
        model.fc.weight.copy_(torch.tensor([[0.0, 1.0], [2.0, -1.0]]))
    x = torch.zeros(2, 1, 20, 20)
    x[0, 0, 3:7, 13:17] = 5.0   # top-right blob
    x[1, 0, 14:18, 2:6] = 5.0   # bottom-left blob
    with GradCAM(model, model.conv) as cam:
        raw = cam.raw(x, target_class=1)
    # Closed form: A = conv(x); dy1/dA_k = w_1k * [A_k > 0] / Z; alpha = mean over pixels; L = ReLU(sum alpha A).
    with torch.no_grad():
        a = model.conv(x)
        grad = model.fc.weight[1].view(1, 2, 1, 1) * (a > 0).float() / (20 * 20)
        expected = torch.relu((grad.mean(dim=(2, 3), keepdim=True) * a).sum(1))
    torch.testing.assert_close(raw, expected)
    maps = gradcam_maps(model, x, target_class=1, layer=model.conv)
    assert maps.shape == (2, 20, 20) and maps.min() >= 0 and maps.max() == pytest.approx(1.0)
    for m, (r0, c0) in zip(maps, [(3, 13), (14, 2)], strict=True):
        r, c = np.unravel_index(m.argmax(), m.shape)
        assert r0 - 1 <= r <= r0 + 4 and c0 - 1 <= c <= c0 + 4
        inside = np.zeros_like(m, dtype=bool)
        inside[r0:r0 + 4, c0:c0 + 4] = True
        assert m[inside].mean() > 5 * m[~inside].mean()
    # Class 0 reads the (inverted) channel 1, positive only away from the blobs: its map avoids them.
    other = gradcam_maps(model, x, target_class=0, layer=model.conv)
    assert other[0, 4:6, 14:16].max() < 0.05 and other[0, 10, 5] > 0.5


def test_gradcam_on_resnet18_layer4_has_input_size():
    from deepmerge_da.nn.models import build_network

    torch.manual_seed(0)
    model = build_network("resnet18")
    maps = gradcam_maps(model, torch.randn(2, 3, 75, 75))
    assert maps.shape == (2, 75, 75) and maps.min() >= 0.0 and maps.max() <= 1.0


def test_examples_with_two_filters_show_each_filter(tmp_path):
    rng = np.random.default_rng(1)
    labels = (np.arange(N) % 2).astype(np.int8)
    ids = np.array([f"g{i}" for i in range(N)])
    images = _galaxies(rng, labels)[:, :2]
    for name, extra in (("s", 0.0), ("t", 3.0)):
        noisy = images + extra * rng.normal(size=images.shape).astype(np.float32)
        train = noisy[SPLIT == 0]
        attrs = {"filters": ["g", "r"], "channel_mean": train.mean(axis=(0, 2, 3)),
                 "channel_std": train.std(axis=(0, 2, 3))}
        write_image_set(tmp_path / f"{name}.h5", ImageSet(noisy, labels, ids, attrs, split=SPLIT.copy()))
    size = image_figures.plot_examples(str(tmp_path / "s.h5"), str(tmp_path / "t.h5"), str(tmp_path / "ex2.png"), None,
                                 "two filters", n_per_class=2)
    check_png(tmp_path / "ex2.png", (108 + 4 * 192, 36 + 4 * 192 + FOOT), size)
