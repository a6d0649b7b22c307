"""The image cache: decode + resize once per unique image, failures listed, reuse, atomicity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import mfr.data.image_cache as ic
from mfr.data.image_cache import ImageCache, build_image_cache, build_partition_cache
from mfr.data.images import load_image, resize_bilinear
from mfr.data.pairs import (
    COLUMNS,
    drop_failed_pairs,
    pair_indices,
    read_pair_csvs,
    unique_pair_paths,
)


def _write(root, rel, arr, fmt=None):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format=fmt)
    return rel


def _rand(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.fixture
def tree(tmp_path):
    """3 unmasked (PNG), 2 masked (PNG, one 224x224) images and 10 pairs."""
    root = tmp_path / "data"
    u = [_write(root, f"u/s{i}/0.png", _rand((40 + i, 30 + 2 * i, 3), i)) for i in range(3)]
    m = [_write(root, "m/s0/0.png", _rand((50, 50, 3), 10)),
         _write(root, "m/s1/0.png", _rand((224, 224, 3), 11))]
    rows = [(a, b, int(a.split("/")[1] == b.split("/")[1]), a.split("/")[1], b.split("/")[1])
            for a in u for b in m]
    rows += [(u[0], m[0], 1, "s0", "s0")] * 4
    pairs = pd.DataFrame(rows, columns=COLUMNS)
    return root, pairs


# ---------------------------------------------------------------- decode + resize values


def test_resize_bilinear_by_hand():
    # 1x2 -> 1x4, half-pixel centres: source x = (i + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25
    img = np.array([[[0.0], [100.0]]], dtype=np.float32)
    out = resize_bilinear(img, (1, 4))[0, :, 0]
    np.testing.assert_allclose(out, [0.0, 25.0, 75.0, 100.0])
    same = _rand((7, 9, 3))
    np.testing.assert_array_equal(resize_bilinear(same, (7, 9)), same.astype(np.float32))


@pytest.mark.parametrize("shape", [(160, 160, 3), (37, 53, 3), (300, 411, 3), (1, 1, 3)])
def test_resize_matches_tensorflow(shape):
    tf = pytest.importorskip("tensorflow")
    img = _rand(shape, 3)
    ours = resize_bilinear(img, 224)
    ref = tf.image.resize(img, (224, 224)).numpy()  # bilinear, antialias=False, half-pixel
    np.testing.assert_array_equal(ours, ref)


def test_load_image_is_rounded_tf_resize(tmp_path):
    tf = pytest.importorskip("tensorflow")
    img = _rand((61, 47, 3), 5)
    Image.fromarray(img).save(tmp_path / "a.png")
    got = load_image(tmp_path / "a.png", 224)
    assert got.dtype == np.uint8 and got.shape == (224, 224, 3)
    ref = tf.image.resize(tf.io.decode_png(tf.io.read_file(str(tmp_path / "a.png"))), (224, 224))
    np.testing.assert_array_equal(got, np.clip(np.rint(ref.numpy()), 0, 255).astype(np.uint8))
    assert np.abs(got - ref.numpy()).max() <= 0.5  # the documented quantisation


def test_load_image_converts_to_rgb(tmp_path):
    Image.fromarray(_rand((20, 20), 1), mode="L").save(tmp_path / "g.jpg")
    Image.fromarray(_rand((20, 20, 4), 2), mode="RGBA").save(tmp_path / "a.png")
    assert load_image(tmp_path / "g.jpg", 32).shape == (32, 32, 3)
    assert load_image(tmp_path / "a.png", 32).shape == (32, 32, 3)


def test_real_mfr2_images_match_tensorflow(mfr2_dev, tmp_path):
    tf = pytest.importorskip("tensorflow")
    root = mfr2_dev / "rmfrd_layout"
    files = sorted(root.rglob("*.jpg"))[:3]
    rels = [f.relative_to(root).as_posix() for f in files]
    pil = build_image_cache(root, rels, tmp_path / "pil", progress=False)
    tfc = build_image_cache(root, rels, tmp_path / "tf", progress=False, decoder="tf")
    assert tfc.meta["decoder"] == "tf"
    for rel, f in zip(rels, files, strict=True):
        data = tf.io.read_file(str(f))
        for cache, dct in ((pil, "INTEGER_ACCURATE"), (tfc, "")):  # "" = TF's default (thesis)
            ref = tf.image.resize(tf.io.decode_jpeg(data, channels=3, dct_method=dct), (224, 224))
            ref = np.clip(np.rint(ref.numpy()), 0, 255).astype(np.uint8)
            np.testing.assert_array_equal(cache.images[cache.index_of([rel])[0]], ref)


# ---------------------------------------------------------------- the cache


def test_each_unique_image_decoded_once(tree, tmp_path, monkeypatch):
    root, pairs = tree
    calls = []
    real = ic.load_image
    monkeypatch.setattr(ic, "load_image", lambda p, size=224, decoder="pil": calls.append(p) or real(p, size))
    paths = list(pairs["unmasked_path"]) + list(pairs["masked_path"])  # 30 entries, 5 unique
    cache = build_image_cache(root, paths, tmp_path / "c", progress=False)
    assert len(calls) == 5 and len(set(calls)) == 5
    assert cache.paths == sorted(set(paths)) == unique_pair_paths(pairs)
    assert cache.images.shape == (5, 224, 224, 3) and cache.images.dtype == np.uint8
    assert isinstance(cache.images, np.memmap)
    i = cache.index_of(["m/s1/0.png"])[0]
    np.testing.assert_array_equal(cache.images[i], load_image(root / "m/s1/0.png"))
    reopened = ImageCache.open(tmp_path / "c")
    np.testing.assert_array_equal(reopened.images, cache.images)


def test_pair_indices(tree, tmp_path):
    root, pairs = tree
    cache = build_image_cache(root, unique_pair_paths(pairs), tmp_path / "c", progress=False)
    u, m, y = pair_indices(pairs, cache)
    assert [cache.paths[k] for k in u] == list(pairs["unmasked_path"])
    assert [cache.paths[k] for k in m] == list(pairs["masked_path"])
    np.testing.assert_array_equal(y, pairs["label"].to_numpy())
    assert u.dtype == np.int64


def test_corrupt_image_skipped_and_listed(tree, tmp_path):
    root, pairs = tree
    (root / "m/s0/0.png").write_bytes(b"not an image at all")
    with pytest.warns(UserWarning, match="1 of 5 images could not be read"):
        cache = build_image_cache(root, unique_pair_paths(pairs), tmp_path / "c", progress=False)
    assert len(cache) == 4 and cache.images.shape[0] == 4
    assert list(cache.failed["path"]) == ["m/s0/0.png"]
    assert "not an image file PIL can read" in cache.failed["reason"][0]  # the one image reader's words
    on_disk = pd.read_csv(tmp_path / "c" / "failed.csv")
    assert list(on_disk["path"]) == ["m/s0/0.png"]
    # pairs with that image are dropped, with a count
    kept, dropped = drop_failed_pairs(pairs, cache)
    assert len(dropped) == (pairs["masked_path"] == "m/s0/0.png").sum() == 7
    with pytest.warns(UserWarning, match="dropped 7 of 10 pairs"):
        u, m, y = pair_indices(pairs, cache)
    assert len(u) == len(m) == len(y) == 3
    with pytest.raises(ValueError, match="failed to decode.*m/s0/0.png"):
        cache.index_of(["m/s0/0.png"])
    # a missing file is a failure too, not a crash
    cache2 = build_image_cache(root, ["u/s0/0.png", "nope/0.png"], tmp_path / "c2", progress=False)
    assert list(cache2.failed["path"]) == ["nope/0.png"]


def test_index_of_names_missing_paths(tree, tmp_path):
    root, pairs = tree
    cache = build_image_cache(root, ["u/s0/0.png", "u/s1/0.png"], tmp_path / "c", progress=False)
    np.testing.assert_array_equal(cache.index_of(["u/s1/0.png", "u/s0/0.png"]), [1, 0])
    with pytest.raises(ValueError, match=r"not in it.*m/s9/x\.png"):
        cache.index_of(["u/s0/0.png", "m/s9/x.png"])


def test_cache_reused_not_rebuilt(tree, tmp_path, monkeypatch):
    root, pairs = tree
    paths = unique_pair_paths(pairs)
    build_image_cache(root, paths, tmp_path / "c", progress=False)
    before = {p.name: p.read_bytes() for p in (tmp_path / "c").iterdir()}

    def boom(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(ic, "load_image", boom)
    again = build_image_cache(root, paths, tmp_path / "c", progress=False)  # same paths
    subset = build_image_cache(root, paths[:2], tmp_path / "c", progress=False)  # covered
    assert again.paths == subset.paths == paths
    assert {p.name: p.read_bytes() for p in (tmp_path / "c").iterdir()} == before
    calls = []
    monkeypatch.setattr(ic, "load_image", lambda p, size=224, decoder="pil": calls.append(p)
                        or np.zeros((size, size, 3), np.uint8))
    build_image_cache(root, paths, tmp_path / "c", size=112, progress=False)  # another size
    assert len(calls) == 5


def test_same_inputs_give_identical_files(tree, tmp_path):
    root, pairs = tree
    paths = unique_pair_paths(pairs)
    build_image_cache(root, paths, tmp_path / "a", progress=False)
    build_image_cache(root, list(reversed(paths)), tmp_path / "b", progress=False, num_workers=1)
    for name in ("images.npy", "index.csv", "failed.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_interrupted_build_leaves_no_complete_cache(tree, tmp_path, monkeypatch):
    root, pairs = tree
    paths = unique_pair_paths(pairs)
    real = ic.load_image
    calls = []

    def flaky(p, size=224, decoder="pil"):
        calls.append(p)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(p, size)

    monkeypatch.setattr(ic, "load_image", flaky)
    with pytest.raises(KeyboardInterrupt):
        build_image_cache(root, paths, tmp_path / "c", progress=False, num_workers=1)
    assert not (tmp_path / "c" / "cache.json").exists()
    assert not (tmp_path / "c" / "images.npy").exists()
    with pytest.raises(FileNotFoundError, match="cache.json"):
        ImageCache.open(tmp_path / "c")
    monkeypatch.setattr(ic, "load_image", real)
    assert len(build_image_cache(root, paths, tmp_path / "c", progress=False)) == 5


def test_partition_cache_is_the_union(tree, tmp_path):
    root, pairs = tree
    part = {"train": pairs.iloc[:3], "val": pairs.iloc[3:4], "test": pairs.iloc[4:6]}
    cache = build_partition_cache(root, part, tmp_path / "c", progress=False)
    assert cache.paths == unique_pair_paths(*part.values())
    for s, df in part.items():
        df.to_csv(tmp_path / f"{s}.csv", index=False)
    from_dir = build_partition_cache(root, tmp_path, tmp_path / "c", progress=False)
    assert from_dir.paths == cache.paths


def test_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="data root"):
        build_image_cache(tmp_path / "absent", ["a.png"], tmp_path / "c")
    with pytest.raises(ValueError, match="no image paths"):
        build_image_cache(tmp_path, [], tmp_path / "c")
    with pytest.raises(FileNotFoundError, match=r"val\.csv"):
        read_pair_csvs(tmp_path, ["val"])
