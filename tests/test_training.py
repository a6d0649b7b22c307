"""Siamese training: cached == thesis-style, resume == uninterrupted, NaN guard, bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import keras
import numpy as np
import pandas as pd
import pytest
from tiny_models import tiny_senet

from mfr.core.config import StudyConfig
from mfr.data.pairs import PairSet
from mfr.training import checkpoints, losses, siamese
from mfr.training import fit as training
from mfr.training.fit import NonFiniteLossError, train_siamese

ROOT = Path(__file__).resolve().parent.parent


def _pairs(n, seed, n_img):
    r = np.random.default_rng(seed)
    half = n_img // 2
    return PairSet(r.integers(0, half, n), r.integers(half, n_img, n), r.integers(0, 2, n))


def _tiny_data(n_img=12, size=32):
    images = np.random.default_rng(0).integers(0, 256, size=(n_img, size, size, 3), dtype=np.uint8)
    return images, _pairs(10, 1, n_img), _pairs(6, 2, n_img), _pairs(6, 3, n_img)


def _weights(model):
    return [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]


def _run_tiny(trunk_cache, n=14, epochs=2, lr=0.5, out=None, resume=False, seed_model=7,
              engine="auto", **kw):
    images, tr, va, te = _tiny_data()
    keras.utils.set_random_seed(seed_model)
    model = tiny_senet()
    cfg = StudyConfig(epochs=epochs, batch_size=4, learning_rate=lr, trunk_cache=trunk_cache,
                      image_size=32, margin=kw.pop("margin", 5.0), **kw)
    res = train_siamese(model, n, images, tr, va, te, config=cfg, out_dir=out, resume=resume,
                        engine=engine)
    return res, model


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))


def _assert_same_run(r1, m1, r0, m0, tol):
    h1, h0 = r1.history[["loss", "val_loss"]].to_numpy(), r0.history[["loss", "val_loss"]].to_numpy()
    assert _rel(h1, h0) <= tol, (h1, h0)
    for a, b in zip(_weights(m1), _weights(m0), strict=True):
        assert _rel(a, b) <= tol
    assert _rel(r1.test_distances, r0.test_distances) <= max(tol, 1e-4)


@pytest.mark.backend
def test_cached_equals_thesis_style_tiny():
    keras.utils.set_random_seed(7)
    init = _weights(siamese.set_trainable(m := tiny_senet(), 14) and m)
    r1, m1 = _run_tiny(True)
    r0, m0 = _run_tiny(False)
    assert r1.path == "cached" and r0.path == "thesis-style"
    assert r1.trainable_layers == r0.trainable_layers and len(r1.history) == 2
    # training moved the weights, and the losses changed between epochs
    assert max(_rel(a, b) for a, b in zip(_weights(m0), init, strict=True)) > 1e-3
    assert r0.history["loss"].iloc[0] != r0.history["loss"].iloc[1]
    _assert_same_run(r1, m1, r0, m0, 1e-4)


@pytest.mark.backend
def test_fused_jax_engine_equals_fit():
    if keras.backend.backend() != "jax":
        with pytest.raises(ValueError, match="under JAX"):
            _run_tiny(True, engine="fused")
        return
    images, tr, va, te = _tiny_data()
    runs = []
    for engine, spe in (("fit", 1), ("fused", 1), ("fused", 2)):
        keras.utils.set_random_seed(7)
        model = tiny_senet()
        cfg = StudyConfig(epochs=2, batch_size=3, learning_rate=0.5, image_size=32,
                          steps_per_execution=spe)  # 10 pairs: 3 full batches + 1 of 1
        runs.append((train_siamese(model, 14, images, tr, va, te, config=cfg, engine=engine),
                     model))
    r0, m0 = runs[0]
    for r1, m1 in runs[1:]:
        _assert_same_run(r1, m1, r0, m0, 1e-5)


@pytest.mark.backend
@pytest.mark.slow
def test_cached_equals_thesis_style_senet50():
    """The real network, N=10, 8 images at 224, 2 epochs: same losses and weights."""
    from mfr.backbones.vggface import senet50

    images = np.random.default_rng(0).integers(0, 256, size=(8, 224, 224, 3), dtype=np.uint8)
    tr, va = _pairs(8, 1, 8), _pairs(4, 2, 8)
    runs = []
    for cache in (True, False):
        keras.utils.set_random_seed(1)
        core = senet50(weights=None)
        cfg = StudyConfig(epochs=2, batch_size=4, learning_rate=5.0, trunk_cache=cache,
                          embed_batch_size=8)
        res = train_siamese(core, 10, images, tr, va, tr, config=cfg)
        runs.append((res, core))
    (r1, m1), (r0, m0) = runs
    assert r1.history["loss"].iloc[0] != r1.history["loss"].iloc[1]
    _assert_same_run(r1, m1, r0, m0, 1e-4)


@pytest.mark.backend
def test_resume_equals_uninterrupted(tmp_path):
    full, mf = _run_tiny(True, epochs=3, out=tmp_path / "full")
    _run_tiny(True, epochs=1, out=tmp_path / "cut")
    assert checkpoints.latest_checkpoint(tmp_path / "cut").name == "epoch_001.npz"
    with pytest.raises(ValueError, match="resume"):
        _run_tiny(True, epochs=3, out=tmp_path / "cut")
    with pytest.raises(ValueError, match="other settings"):
        _run_tiny(True, epochs=3, out=tmp_path / "cut", resume=True, lr=0.25)
    # resumed with the other path: the same computation
    res, mr = _run_tiny(False, epochs=3, out=tmp_path / "cut", resume=True)
    assert res.resumed_from == 1 and list(res.history["epoch"]) == [1, 2, 3]
    _assert_same_run(res, mr, full, mf, 1e-5)
    a = pd.read_csv(tmp_path / "full" / "history.csv")
    b = pd.read_csv(tmp_path / "cut" / "history.csv")
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-5)


@pytest.mark.backend
def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    _run_tiny(True, epochs=1, out=tmp_path)
    ckpt = tmp_path / "checkpoints" / "epoch_001.npz"
    good = ckpt.read_bytes()
    with monkeypatch.context() as mp:  # a loss that turns NaN in the resumed epoch
        mp.setattr(losses, "contrastive_loss", lambda margin: lambda y, d: d * float("nan"))
        with pytest.raises(NonFiniteLossError, match=r"epoch 2, batch 1 of 3"):
            _run_tiny(True, epochs=2, out=tmp_path, resume=True)
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("*.npz")) == ["epoch_001.npz"]
    assert ckpt.read_bytes() == good
    assert len(pd.read_csv(tmp_path / "history.csv")) == 1
    res, _ = _run_tiny(True, epochs=2, out=tmp_path, resume=True)
    assert len(res.history) == 2 and res.resumed_from == 1


@pytest.mark.backend
def test_infinite_loss_stops_at_first_batch(tmp_path, monkeypatch):
    # the config bounds the margin, so an infinite loss comes from the loss itself here
    monkeypatch.setattr(losses, "contrastive_loss", lambda margin: lambda y, d: d + float("inf"))
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, batch 1 of 3"):
        _run_tiny(True, epochs=2, out=tmp_path)
    assert not (tmp_path / "checkpoints").exists()


def test_epoch_order():
    a = training.epoch_order(2021, 0, 50)
    assert sorted(a) == list(range(50))
    np.testing.assert_array_equal(a, training.epoch_order(2021, 0, 50))
    assert not np.array_equal(a, training.epoch_order(2021, 1, 50))


# --------------------------------------------------------------------------- `mfr train`


def _study_files(root: Path, n_subjects=3) -> tuple[Path, Path]:
    """A tiny partition (pairs CSVs) and its image cache on disk."""
    from PIL import Image

    from mfr.data.image_cache import build_image_cache

    data = root / "data"
    rng = np.random.default_rng(0)
    rows = []
    for side in ("unmasked", "masked"):
        for s in range(n_subjects):
            p = data / side / f"s{s}" / "0.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)).save(p)
    for su in range(n_subjects):
        for sm in range(n_subjects):
            rows.append({"unmasked_path": f"unmasked/s{su}/0.png", "masked_path": f"masked/s{sm}/0.png",
                         "label": int(su == sm), "unmasked_subject": f"s{su}",
                         "masked_subject": f"s{sm}"})
    df = pd.DataFrame(rows)
    pairs = root / "pairs"
    pairs.mkdir()
    df.to_csv(pairs / "train.csv", index=False)
    df.iloc[:4].to_csv(pairs / "val.csv", index=False)
    df.iloc[4:].to_csv(pairs / "test.csv", index=False)
    paths = sorted(set(df["unmasked_path"]) | set(df["masked_path"]))
    build_image_cache(data, paths, root / "cache")
    return pairs, root / "cache"


def _cli(args, check=True):
    p = subprocess.run([sys.executable, "-m", "mfr.cli", "train", *map(str, args)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    if check:
        assert p.returncode == 0, p.stderr[-3000:]
    return p


def _kill_after_first_checkpoint(args) -> subprocess.CompletedProcess:
    """Run `mfr train`, SIGKILL it as soon as its first checkpoint is on disk (mid-run)."""
    out = Path(args[args.index("--out") + 1])
    proc = subprocess.Popen([sys.executable, "-m", "mfr.cli", "train", *map(str, args)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while checkpoints.latest_checkpoint(out) is None and proc.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.002)
    proc.kill()
    stdout, stderr = proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def _final(out: Path) -> dict[str, np.ndarray]:
    got = {}
    with h5py.File(out / "final_trainable.h5", "r") as f:
        f.visititems(lambda k, v: got.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset) else None)
    return got


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return _study_files(tmp_path_factory.mktemp("study"))


def test_train_cli_resume_after_kill(study, tmp_path):
    pairs, cache = study
    epochs = 12  # enough that the kill lands mid-run
    common = ["--trainable-layers", 10, "--pairs", pairs, "--cache-dir", cache,
              "--weights", "none", "--epochs", epochs, "--batch-size", 4, "--learning-rate", 5.0,
              "--no-progress"]
    _cli([*common, "--out", tmp_path / "full"])
    killed = _kill_after_first_checkpoint([*common, "--out", tmp_path / "cut"])
    assert killed.returncode == -9
    left = [p.name for p in (tmp_path / "cut" / "checkpoints").glob("*.npz")]
    assert len(left) == 1 and left[0] != f"epoch_{epochs:03d}.npz"  # the latest only, mid-run
    refused = _cli([*common, "--out", tmp_path / "cut"], check=False)
    assert refused.returncode == 2 and "--resume" in refused.stderr
    _cli([*common, "--out", tmp_path / "cut", "--resume"])
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert (full / "history.csv").read_bytes() == (cut / "history.csv").read_bytes()
    assert (full / "distances.csv").read_bytes() == (cut / "distances.csv").read_bytes()
    a, b = _final(full), _final(cut)
    assert sorted(a) == sorted(b) and len(a) == 4
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    h = pd.read_csv(full / "history.csv")
    assert list(h.columns) == ["epoch", "loss", "val_loss"] and len(h) == epochs
    assert h["loss"].nunique() == epochs
    d = pd.read_csv(full / "distances.csv")
    assert list(d["split"]) == ["val"] * 4 + ["test"] * 5 and d["sum_squared"].between(0, 4).all()
    assert {p.name for p in (full / "embeddings").iterdir()} == {"embeddings.npy", "index.csv",
                                                              "run.json"}
    assert {"sum_squared", "cosine", "l2", "l1"} <= set(d.columns)
    assert set(json.loads((full / "summary.json").read_text())["splits"]) == {"val", "test"}
    summary = json.loads((full / "summary.json").read_text())["splits"]["test"]["sum_squared"]
    assert {"median_genuine", "median_impostor", "gap"} <= set(summary)
    # the fine-tuned model loads from the base weights + final_trainable.h5
    from mfr.backbones.formats.legacy_h5 import load_legacy_h5
    from mfr.backbones.vggface import senet50

    core = senet50(weights=None)
    assert load_legacy_h5(core, full / "final_trainable.h5", strict=False) == \
        ["conv5_3_1x1_down", "conv5_3_1x1_up"]


@pytest.mark.stderr_lines
def test_train_cli_partition_must_match_cache(study, tmp_path):
    """The cache is used only when made from the pairs' own, unchanged images: else rebuilt
    from the data root (an image it lacks is listed and its pair dropped), or, with no data
    root to rebuild it from, a one-line error before any slow work."""
    pairs, cache = study
    other = tmp_path / "pairs"
    other.mkdir()
    for split in ("train", "val", "test"):
        df = pd.read_csv(pairs / f"{split}.csv")
        if split == "test":
            # an image that is not there, of a subject of its own (an impostor pair)
            df.loc[0, ["masked_path", "masked_subject", "label"]] = [
                "masked/nobody/0.png", "nobody", 0]
        df.to_csv(other / f"{split}.csv", index=False)
    data = Path(json.loads((cache / "cache.json").read_text())["data_root"])
    moved = tmp_path / "moved_data"
    shutil.copytree(data, moved)
    from mfr.data.image_cache import build_image_cache

    paths = sorted(p.relative_to(moved).as_posix() for p in moved.rglob("*.png"))
    build_image_cache(moved, paths, tmp_path / "cache", progress=False)
    shutil.rmtree(moved)  # the cache's data root is gone: nothing to rebuild it from
    common = ["--trainable-layers", 10, "--pairs", other, "--cache-dir", tmp_path / "cache",
              "--weights", "none", "--epochs", 1, "--no-progress"]
    p = _cli([*common, "--out", tmp_path / "o"], check=False)
    assert p.returncode == 2 and "no image cache made from these pairs' images" in p.stderr
    assert "masked/nobody/0.png" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
    # with the data root: rebuilt; the image that is not there is listed, its pair dropped
    p = _cli([*common, "--data-root", data, "--out", tmp_path / "o"])
    assert "dropped 1 pairs" in p.stderr
    failed = pd.read_csv(tmp_path / "cache" / "failed.csv")
    assert list(failed["path"]) == ["masked/nobody/0.png"]
    d = pd.read_csv(tmp_path / "o" / "distances.csv")
    assert (d["split"] == "test").sum() == 4 and set(d["split"]) == {"val", "test"}
