"""Grad-CAM of the pair score, the attention share, the deletion test, and `mfr gradcam`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pandas as pd
import pytest

from mfr.explain import attention
from mfr.explain.gradcam import FEATURE_LAYER, gradcam, pair_distance, upsample

ROOT = Path(__file__).resolve().parent.parent
needs_tf = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                              reason="Grad-CAM (tf-keras-vis) needs the TensorFlow backend")


# --------------------------------------------------------------------------- numbers of a map


def test_attention_share_of_a_hand_made_map():
    cam = np.ones((10, 8))
    cam[:3] = 2.0  # rows 0-2 weigh 2, rows 3-9 weigh 1
    assert attention.attention_share(cam, 3) == pytest.approx(48 / (48 + 56))
    assert attention.attention_share(cam, 0) == 0.0
    assert attention.attention_share(cam, 10) == 1.0
    assert np.isnan(attention.attention_share(np.zeros((4, 4)), 2))
    with pytest.raises(ValueError, match="negative"):
        attention.attention_share(-cam, 3)
    with pytest.raises(ValueError, match="outside"):
        attention.attention_share(cam, 11)


def test_upsample_keeps_a_map_nonnegative_and_its_layout():
    cam = np.zeros((7, 7), np.float32)
    cam[:3] = 1.0
    big = upsample(cam, (224, 224))
    assert big.shape == (224, 224) and big.min() >= 0
    assert attention.attention_share(big, 112) > 0.95


def test_regions_have_the_same_size_and_are_seeded():
    cam = np.arange(100, dtype=np.float32).reshape(10, 10)
    top = attention.top_region(cam, 0.2)
    assert top.sum() == 20 and top[8:].all() and not top[:8].any()  # the 20 highest pixels
    draws = attention.random_regions((10, 10), 0.2, (3, 3), np.random.default_rng(1), 4)
    again = attention.random_regions((10, 10), 0.2, (3, 3), np.random.default_rng(1), 4)
    assert all(r.sum() == 20 for r in draws)
    assert all(np.array_equal(a, b) for a, b in zip(draws, again, strict=True))
    assert not np.array_equal(draws[0], draws[1])
    with pytest.raises(ValueError, match="deletion fraction"):
        attention.top_region(cam, 1.0)


def test_bootstrap_ci_is_seeded_and_brackets_the_mean():
    v = np.array([0.1, 0.5, 0.9, 0.4, np.nan])
    mean, low, high = attention.bootstrap_ci(v, seed=3)
    assert mean == pytest.approx(0.475) and low < mean < high
    assert attention.bootstrap_ci(v, seed=3) == (mean, low, high)
    assert attention.bootstrap_ci([0.3, 0.3, 0.3], seed=0) == pytest.approx((0.3, 0.3, 0.3))
    assert all(np.isnan(attention.bootstrap_ci([np.nan], seed=0)))


def test_pair_distance_is_the_thesis_distance():
    a, b = np.array([[3.0, 4.0]]), np.array([[0.0, 2.0]])
    assert pair_distance(a, b)[0] == pytest.approx((0.6 - 0) ** 2 + (0.8 - 1) ** 2)


# --------------------------------------------------------------------------- tiny models

SIZE = 32


def _top_half_model(constant: bool = False) -> keras.Model:
    """Its embedding depends only on the top half of the image (the input's bottom half is
    zeroed first); `constant`: an embedding that does not depend on the image at all."""
    from keras import layers

    keras.utils.set_random_seed(7)
    mask = np.zeros((1, SIZE, SIZE, 1), np.float32)
    mask[:, :SIZE // 2] = 1.0
    inp = keras.Input((SIZE, SIZE, 3))
    x = layers.Lambda(lambda t: t * mask, name="top_half_only")(inp)
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="c1")(x)
    x = layers.Conv2D(32, 3, strides=2, padding="same", name="c2")(x)
    x = layers.Activation("relu", name="features")(x)  # 8 x 8
    if constant:
        x = layers.Lambda(lambda t: t * 0.0, name="ignore_image")(x)
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(8, bias_initializer="ones", name="embedding")(x)
    return keras.Model(inp, out)


def _inputs(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, SIZE, SIZE, 3)).astype(np.float32)


def _maps_and_deletion(model, x, refs):
    from mfr.explain.gradcam import embed_preprocessed

    cams = gradcam(model, x, refs, layer="features")
    rows = []
    for i, cam in enumerate(cams):
        big = upsample(cam, (SIZE, SIZE))
        d = attention.deletion_test(lambda b: embed_preprocessed(model, b), x[i], refs[i], big,
                                    cam.shape, 0.2, np.random.default_rng([0, i]), 5)
        rows.append({"setting": "tiny", "label": "tiny", "role": "masked", "line_how": "fixed",
                     "line_fraction": 0.5, "share_above": attention.attention_share(big, SIZE // 2),
                     **d})
    return cams, pd.DataFrame(rows)


@needs_tf
def test_cam_concentrates_where_the_score_looks_and_passes_deletion():
    from mfr.explain.gradcam import embed_preprocessed

    model = _top_half_model()
    x = _inputs(6)
    refs = embed_preprocessed(model, _inputs(6, seed=1))
    cams, table = _maps_and_deletion(model, x, refs)
    assert cams.shape == (6, 8, 8)  # the layer's grid, before resizing
    shares = table["share_above"].dropna()
    assert len(shares) >= 5 and (shares > 0.85).all(), table["share_above"].tolist()
    summary = attention.summarise(table, seed=0)
    assert summary["maps_pass_deletion_test"].all(), table["margin"].tolist()
    assert summary["deletion_margin_ci_low"].iloc[0] > 0


@needs_tf
def test_deletion_test_fails_a_map_that_points_elsewhere():
    from mfr.explain.gradcam import embed_preprocessed

    model = _top_half_model()
    x = _inputs(4)
    refs = embed_preprocessed(model, _inputs(4, seed=1))
    embed = lambda b: embed_preprocessed(model, b)  # noqa: E731
    for i in range(4):
        bottom = np.zeros((SIZE, SIZE), np.float32)
        bottom[SIZE // 2:] = np.random.default_rng(i).random((SIZE // 2, SIZE)) + 1.0
        d = attention.deletion_test(embed, x[i], refs[i], bottom, (8, 8), 0.2,
                                    np.random.default_rng(i), 5)
        assert d["change_top"] == pytest.approx(0.0, abs=1e-6)  # the score never sees there
        assert d["abs_change_random"] > 1e-6 and d["margin"] < 0


@needs_tf
def test_a_score_independent_of_the_image_has_no_map_and_fails():
    from mfr.explain.gradcam import embed_preprocessed

    model = _top_half_model(constant=True)
    x = _inputs(3)
    refs = embed_preprocessed(model, _inputs(3, seed=1)) + 0.1
    cams, table = _maps_and_deletion(model, x, refs)
    assert not cams.any()
    summary = attention.summarise(table, seed=0)
    assert summary["n_zero_maps"].iloc[0] == 3
    assert not summary["maps_pass_deletion_test"].iloc[0]


@needs_tf
def test_gradcam_matches_a_hand_written_gradient_on_the_given_layer():
    import tensorflow as tf

    from mfr.explain.gradcam import embed_preprocessed

    model = _top_half_model()
    x = _inputs(2)
    refs = embed_preprocessed(model, _inputs(2, seed=1))
    sub = keras.Model(model.input, [model.get_layer("features").output, model.output])
    with tf.GradientTape() as tape:
        feats, emb = sub(x)
        tape.watch(feats)
        e = emb / tf.norm(emb, axis=-1, keepdims=True)
        score = -tf.reduce_sum(tf.square(e - refs), axis=-1)
    g = tape.gradient(score, feats).numpy()
    expected = np.maximum((feats.numpy() * g.mean(axis=(1, 2), keepdims=True)).sum(-1), 0)
    np.testing.assert_allclose(gradcam(model, x, refs, layer="features"), expected,
                               rtol=1e-4, atol=1e-7)
    with pytest.raises(ValueError, match="no layer 'nope'"):
        gradcam(model, x, refs, layer="nope")
    with pytest.raises(ValueError, match="spatial"):
        gradcam(model, x, refs, layer="embedding")


@needs_tf
def test_senet50_map_comes_from_the_last_block_not_an_se_conv():
    """SENet50 at 224: the map is conv5_3_relu's 7x7 grid; tf-keras-vis left alone would take
    the last conv layer, an SE 1x1 conv on a 1x1 map."""
    from tf_keras_vis.gradcam import Gradcam

    from mfr.backbones.vggface import preprocess, senet50
    from mfr.explain.gradcam import _score, embed_preprocessed

    keras.utils.set_random_seed(2021)
    core = senet50(weights=None)
    img = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    x = preprocess(img)
    ref = embed_preprocessed(core, x[1:])
    assert core.get_layer(FEATURE_LAYER).output.shape[1:3] == (7, 7)
    cam = gradcam(core, x[:1], ref)
    assert cam.shape == (1, 7, 7) and cam.min() >= 0 and cam.max() > 0
    default = Gradcam(core, clone=False)(_score(ref), x[:1], expand_cam=False,
                                          normalize_cam=False)
    assert np.asarray(default).shape[1:] == (1, 1)


# --------------------------------------------------------------------------- run folders


def _run_json(d: Path, **meta) -> Path:
    d.mkdir(parents=True)
    (d / "run.json").write_text(json.dumps(meta))
    return d


def test_find_settings_orders_and_labels_a_study(tmp_path):
    from mfr.core.config import StudyConfig
    from mfr.explain.setting_maps import find_settings

    rnd = StudyConfig(weights=None).to_dict()
    _run_json(tmp_path / "baseline", command="embed", config=rnd)
    _run_json(tmp_path / "train_N20", trainable_layers=20, config=rnd)
    _run_json(tmp_path / "train_N10", trainable_layers=10, config=rnd)
    (tmp_path / "train_Nx").mkdir()
    found = find_settings(tmp_path)
    assert [s.name for s in found] == ["baseline", "train_N10", "train_N20"]
    assert [s.label for s in found] == ["SENet50 random init", "last 10 layers (random init)",
                                        "last 20 layers (random init)"]
    assert all(s.random_init for s in found)
    pre = _run_json(tmp_path / "vgg" / "baseline", command="embed",
                    config=StudyConfig().to_dict())
    assert find_settings(pre.parent)[0].label == "SENet50 pre-trained"
    with pytest.raises(FileNotFoundError, match="no baseline/run.json"):
        find_settings(tmp_path / "train_Nx")


def test_select_pairs_is_seeded_genuine_and_one_subject_first():
    from mfr.explain.setting_maps import select_pairs

    rows = []
    for s in ("a", "b", "c"):
        for m in range(3):
            for u in range(2):
                rows.append((f"u/{s}/{u}.jpg", f"m/{s}/{m}.jpg", 1, s, s))
        rows.append((f"u/{s}/0.jpg", "m/z/0.jpg", 0, s, "z"))
    pairs = pd.DataFrame(rows, columns=["unmasked_path", "masked_path", "label",
                                        "unmasked_subject", "masked_subject"])
    got = select_pairs(pairs, seed=5)
    assert len(got) == 9 and (got["label"] == 1).all() and got["masked_path"].is_unique
    assert set(got["masked_subject"][:3]) == {"a", "b", "c"}
    assert got.equals(select_pairs(pairs.sample(frac=1, random_state=0), seed=5))
    assert not got.equals(select_pairs(pairs, seed=6))


def test_load_run_core_puts_the_trained_layers_on_the_seeded_base(tmp_path):
    from mfr.backbones.base import load_run_model as load_run_core
    from mfr.backbones.formats.legacy_h5 import save_legacy_h5
    from mfr.backbones.vggface.pretrained import senet50
    from mfr.core.config import StudyConfig
    from mfr.training import siamese

    cfg = StudyConfig(weights=None, seed=11)
    run = tmp_path / "train_N10"
    keras.utils.set_random_seed(11)
    core = senet50(weights=None)
    names = siamese.set_trainable(core, 10)
    layers = [core.get_layer(n) for n in names]
    for layer in layers:
        layer.set_weights([w + 1.0 for w in layer.get_weights()])
    _run_json(run, trainable_layers=10, trainable_layer_names=names, config=cfg.to_dict())
    with pytest.raises(FileNotFoundError, match="final_trainable.h5"):
        load_run_core(run)
    save_legacy_h5(SimpleNamespace(layers=layers, name=core.name), run / "final_trainable.h5")
    loaded = load_run_core(run)
    for a, b in zip(core.weights, loaded.weights, strict=True):  # trained and base layers
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)
    (run / "run.json").write_text(json.dumps({"trainable_layers": 10, "config": cfg.to_dict(),
                                              "trainable_layer_names": names + ["conv1_7x7_s2"]}))
    with pytest.raises(ValueError, match="trainable_layer_names"):
        load_run_core(run)


# --------------------------------------------------------------------------- the command


def _mfr(*args: str, backend: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "mfr.cli", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300)


@pytest.mark.stderr_lines
def test_gradcam_under_jax_says_so_in_one_line(tmp_path):
    pytest.importorskip("jax")
    r = _mfr("gradcam", "--study", str(tmp_path), backend="jax")
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines == [lines[-1]] and "needs the TensorFlow backend" in lines[-1], r.stderr
    code = ("import sys, mfr.explain.gradcam, mfr.explain.setting_maps, mfr.explain.attention, mfr.data.faces, "
            "mfr.commands.gradcam; print('tensorflow' in sys.modules)\n"
            "try:\n    mfr.data.faces.detect_faces(__import__('numpy').zeros((40, 40, 3)))\n"
            "except mfr.data.faces.FaceDetectorBackendError as e:\n    print(e)")
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.stdout.splitlines()[0] == "False", out.stderr
    assert "face detection (mtcnn 1.0) needs the TensorFlow backend" in out.stdout, out.stderr


@needs_tf
@pytest.mark.slow
def test_mfr_gradcam_on_a_study_twice_gives_the_same_bytes(tmp_path):
    from mfr.cli import main
    from mfr.core.config import load_config
    from mfr.study.steps import embed_step, prepare_sample

    cfg = load_config("demo")
    sample = prepare_sample(tmp_path / "study", cfg, n_subjects=3, image_size=64)
    embed_step(cfg, sample.pairs_dir, tmp_path / "study" / "baseline", progress=False)
    outs = []
    for k in (1, 2):
        out = tmp_path / f"gc{k}"
        assert main(["gradcam", "--study", str(tmp_path / "study"), "--n-images", "1",
                     "--random-draws", "2", "--out", str(out), "--no-progress"]) == 0
        outs.append(out)
    for name in ("attention.csv", "deletion.csv", "attention_summary.csv",
                 "attention_summary.md", "run.json"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    att = pd.read_csv(outs[0] / "attention.csv")
    assert list(att["role"]) == ["masked", "unmasked"] and (att["label"] == "SENet50 random init").all()
    assert att["share_above"].between(0, 1).all()
    summary = pd.read_csv(outs[0] / "attention_summary.csv")
    assert "maps_pass_deletion_test" in summary.columns
    assert "Random initialisation" in (outs[0] / "attention_summary.md").read_text()
    assert {p.name for p in outs[0].glob("*.png")} == {
        "overlays_masked.png", "overlays_unmasked.png", "attention_share.png"}
    meta = json.loads((outs[0] / "run.json").read_text())
    assert meta["command"] == "gradcam" and meta["layer"] == FEATURE_LAYER
    assert meta["skipped_pairs"] == []

    # A bare core read from the data root (no cache there): a corrupt image is skipped, listed,
    # and the next candidate pair is explained instead.
    first = meta["pairs"][0]["masked_path"]
    root = Path(json.loads((sample.pairs_dir / "run.json").read_text())["data_root"])
    (root / first).write_bytes(b"not an image")
    out = tmp_path / "gc3"
    assert main(["gradcam", "--weights", "none", "--pairs", str(sample.pairs_dir), "--out",
                 str(out), "--n-images", "1", "--random-draws", "2", "--no-progress"]) == 0
    meta = json.loads((out / "run.json").read_text())
    assert [s["masked_path"] for s in meta["skipped_pairs"]] == [first]
    assert meta["n_images"] == 1 and meta["pairs"][0]["masked_path"] != first
    assert meta["settings"][0]["label"] == "SENet50 random init"
