"""Embeddings (each unique image once), save/load, and `mfr embed` end to end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mfr.data.pairs import pair_indices, parse_splits
from mfr.evaluation.distances import pair_distances
from mfr.evaluation.embeddings import Embeddings, embed_images, load_embeddings, save_embeddings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from thesis_style import thesis_style_pair_distances  # noqa: E402


def _tiny_model(dim: int = 24, seed: int = 0, size: int = 32):
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(8, 3, strides=2)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(dim)(x))


def _images(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


@pytest.mark.backend
def test_embeddings_are_l2_normalised_and_batch_invariant():
    model, imgs = _tiny_model(), _images(7)
    one = embed_images(model, imgs, batch_size=64, progress=False)
    several = embed_images(model, imgs, batch_size=3, progress=False)
    assert one.shape == (7, 24) and one.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(one, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(one, several, atol=1e-6)
    rows = embed_images(model, imgs, batch_size=2, progress=True, rows=[5, 0, 5])
    np.testing.assert_allclose(rows, one[[5, 0, 5]], atol=1e-6)
    # preprocessing: "vggface2" flips channels, so it changes the result
    flipped = embed_images(model, imgs, preprocessing="vggface2", progress=False)
    same = embed_images(model, np.ascontiguousarray(imgs[..., ::-1]), progress=False)
    np.testing.assert_allclose(flipped, same, atol=1e-6)  # BGR flip, then the same means
    assert not np.allclose(flipped, one, atol=1e-3)


@pytest.mark.backend
def test_memmap_input(tmp_path):
    model, imgs = _tiny_model(), _images(5, seed=1)
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.uint8, shape=imgs.shape)
    mm[:] = imgs
    mm.flush()
    ro = np.load(tmp_path / "x.npy", mmap_mode="r")
    np.testing.assert_allclose(embed_images(model, ro, batch_size=2, progress=False),
                               embed_images(model, imgs, progress=False), atol=1e-6)
    with pytest.raises(ValueError, match="batch_size"):
        embed_images(model, imgs, batch_size=0)
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        embed_images(model, imgs[..., :2])


@pytest.mark.backend
def test_thesis_style_per_pair_path_gives_the_same_distances():
    model, imgs = _tiny_model(), _images(4, seed=2)
    u = np.array([0, 0, 1, 2, 3, 0, 1])
    m = np.array([1, 2, 3, 3, 0, 0, 2])
    emb = embed_images(model, imgs, progress=False)
    once = pair_distances(emb, u, m)
    per_pair = thesis_style_pair_distances(model, imgs[u], imgs[m], batch_size=3)
    np.testing.assert_allclose(per_pair, once, atol=1e-5)


def test_save_load_roundtrip(tmp_path):
    emb = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    paths = ["a/1.jpg", "b/2.jpg", "c/3.jpg"]
    save_embeddings(tmp_path / "e", emb, paths, meta={"note": "x"}, config={"seed": 1})
    got = load_embeddings(tmp_path / "e")
    np.testing.assert_array_equal(got.vectors, emb)
    assert got.paths == paths and got.meta["note"] == "x" and got.meta["config"] == {"seed": 1}
    assert "versions" in got.meta and "keras" in got.meta["versions"]
    np.testing.assert_array_equal(got.index_of(["c/3.jpg", "a/1.jpg"]), [2, 0])
    with pytest.raises(ValueError, match="not in it.*zz"):
        got.index_of(["zz"])
    pairs = pd.DataFrame({"unmasked_path": ["a/1.jpg"], "masked_path": ["c/3.jpg"], "label": [1]})
    u, m, y = pair_indices(pairs, got)
    assert (u[0], m[0], y[0]) == (0, 2, 1)
    with pytest.raises(FileNotFoundError, match="run.json"):
        load_embeddings(tmp_path / "absent")
    with pytest.raises(ValueError, match="3 embeddings but 2 paths"):
        Embeddings(emb, paths[:2])


def test_parse_splits():
    assert parse_splits("test") == ["test"]
    assert parse_splits("all") == ["train", "val", "test"]
    assert parse_splits("val, test") == ["val", "test"]
    with pytest.raises(ValueError, match="split"):
        parse_splits("dev")


# ---------------------------------------------------------------- mfr embed, end to end


@pytest.fixture
def pairs_dir(tmp_path):
    """6 images (3 subjects x unmasked/masked, one corrupt extra) and hand-made pair CSVs."""
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    rows = []
    for s in ("s0", "s1", "s2"):
        for side in ("u", "m"):
            p = root / side / s / "0.jpg"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (60, 50, 3), dtype=np.uint8)).save(p)
    (root / "m" / "s2" / "bad.jpg").write_bytes(b"\xff\xd8\xff truncated")
    for a in ("s0", "s1", "s2"):
        for b in ("s0", "s1", "s2"):
            rows.append((f"u/{a}/0.jpg", f"m/{b}/0.jpg", int(a == b), a, b))
    rows.append(("u/s0/0.jpg", "m/s2/bad.jpg", 0, "s0", "s2"))
    cols = ["unmasked_path", "masked_path", "label", "unmasked_subject", "masked_subject"]
    out = tmp_path / "pairs"
    out.mkdir()
    test = pd.DataFrame(rows, columns=cols)
    test.to_csv(out / "test.csv", index=False)
    test.iloc[:2].to_csv(out / "train.csv", index=False)
    test.iloc[2:3].to_csv(out / "val.csv", index=False)
    (out / "run.json").write_text(json.dumps({"data_root": str(root)}))
    return out


@pytest.mark.backend
def test_cli_embed_end_to_end(pairs_dir, tmp_path, capsys):
    from mfr.cli import main

    cache = tmp_path / "cache"
    args = ["embed", "--pairs", str(pairs_dir), "--weights", "none", "--embed-batch-size", "8",
            "--cache-dir", str(cache), "--no-progress"]
    with pytest.warns(UserWarning):
        assert main([*args, "--out", str(tmp_path / "a")]) == 0
    captured = capsys.readouterr()
    assert "RANDOM WEIGHTS" in captured.err and "1.278899" in captured.out
    out = tmp_path / "a"
    d = pd.read_csv(out / "distances.csv")
    assert list(d.columns) == ["split", "unmasked_path", "masked_path", "label",
                               "unmasked_subject", "masked_subject", "sum_squared", "cosine",
                               "l2", "l1"]
    assert len(d) == 9 and (d["split"] == "test").all()  # the pair with bad.jpg is dropped
    assert d["sum_squared"].between(0, 4).all()
    np.testing.assert_allclose(d["sum_squared"], 2 * d["cosine"], atol=2e-6)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["random_weights"] is True and "RANDOM WEIGHTS" in summary["warning"]
    assert summary["n_pairs_dropped"] == 1 and summary["n_images_failed"] == 1
    ss = summary["splits"]["test"]["sum_squared"]
    assert ss["n_genuine"] == 3 and ss["n_impostor"] == 6
    assert ss["median_genuine"] == pytest.approx(d[d.label == 1]["sum_squared"].median(), abs=1e-6)
    assert summary["thesis_table_5_1_pretrained"]["gap"] == 0.288911
    md = (out / "summary.md").read_text()
    assert "WARNING" in md and "0.989988" in md
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["weights"] is None and run["random_weights"] is True
    assert "versions" in run and run["failed_images"][0]["path"] == "m/s2/bad.jpg"
    emb = load_embeddings(out / "embeddings")
    assert emb.vectors.shape == (6, 2048) and emb.paths == sorted(emb.paths)
    # again into another folder: the cache is reused and the outputs are byte-identical
    cache_json = (cache / "cache.json").read_bytes()
    with pytest.warns(UserWarning):
        assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert (cache / "cache.json").read_bytes() == cache_json
    for name in ("distances.csv", "summary.json", "summary.md"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_cli_embed_bad_input(pairs_dir, tmp_path, capsys):
    from mfr.cli import main

    assert main(["embed", "--pairs", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "nope: pairs directory not found" in capsys.readouterr().err
    assert main(["embed", "--pairs", str(pairs_dir), "--out", str(tmp_path / "o"),
                 "--split", "dev"]) == 2
    assert "split must be one of" in capsys.readouterr().err
    (pairs_dir / "test.csv").unlink()
    assert main(["embed", "--pairs", str(pairs_dir), "--out", str(tmp_path / "o"),
                 "--weights", "none"]) == 2
    assert "test.csv" in capsys.readouterr().err
    assert main(["embed", "--pairs", str(pairs_dir), "--out", str(tmp_path / "o"),
                 "--split", "val", "--weights", str(tmp_path / "w.h5")]) == 2
    assert "w.h5: weights file not found" in capsys.readouterr().err
