import h5py
import numpy as np
import pytest

from deepmerge_da.data.preprocess import assign_splits, augment_image, prepare_file, prepare_image_set
from deepmerge_da.io.hdf5 import SPLITS, ImageSet, read_image_set, write_image_set


def raw_set(n_mergers=12, n_nonmergers=40, size=40, seed=0):
    rng = np.random.default_rng(seed)
    n = n_mergers + n_nonmergers
    images = rng.normal(size=(n, 3, size, size)).astype(np.float32)
    images[:, 0] += 5.0  # distinct channel statistics
    labels = np.array([1] * n_mergers + [0] * n_nonmergers, dtype=np.int8)
    ids = np.array([f"obj{i}" for i in range(n)])
    return ImageSet(images, labels, ids, {"filters": ["g", "r", "i"], "pixel_scale": 0.4})


def test_split_is_grouped_by_object_and_stratified():
    ids = np.repeat(np.arange(200).astype(str), 3)  # three views of each object
    labels = np.repeat(np.arange(200) % 2, 3)
    split = assign_splits(ids, labels, (0.7, 0.1, 0.2), seed=3)
    for oid in np.unique(ids):
        assert len(set(split[ids == oid])) == 1
    for label in (0, 1):
        per_object = split[::3][labels[::3] == label]
        assert np.bincount(per_object, minlength=3).tolist() == [70, 10, 20]
    # Same ids and labels in another order give the same split per object (source/target agree).
    perm = np.random.default_rng(0).permutation(len(ids))
    again = assign_splits(ids[perm], labels[perm], (0.7, 0.1, 0.2), seed=3)
    assert np.array_equal(again, split[perm])


def test_split_rejects_bad_fractions_and_conflicting_labels():
    with pytest.raises(ValueError, match="summing to 1"):
        assign_splits(np.array(["a"]), np.array([1]), (0.5, 0.1, 0.1))
    with pytest.raises(ValueError, match="two labels"):
        assign_splits(np.array(["a", "a"]), np.array([1, 0]))


def test_fixed_augmentations_are_exact_symmetries():
    img = np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4)
    rng = np.random.default_rng(0)
    assert np.array_equal(augment_image(img, "flip_vertical", rng)[0], img[:, ::-1])
    assert np.array_equal(augment_image(img, "rot180", rng)[0], img[:, ::-1, ::-1])
    out, name = augment_image(img, "random", rng)
    assert out.shape == img.shape and (name.startswith("rotate") or name.startswith("zoom"))


def test_prepare_balances_splits_without_leaks_and_uses_train_statistics(tmp_path):
    raw = raw_set()
    out = prepare_image_set(raw, filters=["i", "r", "g"], image_size=32, seed=1, progress=False)
    assert out.images.shape[1:] == (3, 32, 32)
    assert out.filters == ["i", "r", "g"]
    for code in SPLITS.values():
        labels = out.labels[out.split == code]
        assert (labels == 1).sum() == (labels == 0).sum() > 0
    # No object in two splits, even through its augmented copies.
    for oid in np.unique(out.object_id):
        assert len(set(out.split[out.object_id == oid])) == 1
    train = out.images[out.split == 0]
    assert np.allclose(out.attrs["channel_mean"], train.mean(axis=(0, 2, 3)), atol=1e-4)
    assert not np.allclose(out.attrs["channel_mean"], out.images.mean(axis=(0, 2, 3)), atol=1e-6)
    # Filters were reordered: the bright g channel is now the last one.
    assert out.attrs["channel_mean"][2] > 4 > out.attrs["channel_mean"][0]


def test_n_per_class_truncates_and_augments():
    out = prepare_image_set(raw_set(), filters=["g", "r", "i"], image_size=40, n_per_class=30, seed=0,
                            progress=False)
    assert (out.labels == 1).sum() == (out.labels == 0).sum() == 30
    assert {"flip_vertical", "none"} <= set(out.augmentation)


def test_hdf5_round_trip_and_atomic_write(tmp_path):
    raw = raw_set(10, 12, 16)
    path = tmp_path / "raw.h5"
    write_image_set(path, raw)
    back = read_image_set(path)
    assert np.array_equal(back.images, raw.images) and back.object_id.tolist() == raw.object_id.tolist()
    assert back.filters == ["g", "r", "i"]
    prepare_file(path, tmp_path / "prep.h5", filters=["g", "r", "i"], image_size=16, seed=0, progress=False)
    with h5py.File(tmp_path / "prep.h5") as f:
        assert set(f) >= {"images", "labels", "object_id", "split"}
        assert f["images"].dtype == np.float32 and f["images"].shape[1:] == (3, 16, 16)
    test = read_image_set(tmp_path / "prep.h5", split="test")
    assert set(test.split) == {2}
    assert not list(tmp_path.glob("*.part"))
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        read_image_set(tmp_path / "nope.h5")
