"""Embedders behind one interface (mfr.backbones.embedders), dlib's on real MFR2 photos, and
`mfr evaluate --data-root` on an MFR2 tree."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from mfr.backbones.embedders import check_images, embedder_names, get_embedder

A2, A4 = "AdrianDunbar/AdrianDunbar_0002.png", "AdrianDunbar/AdrianDunbar_0004.png"  # no-mask
A1 = "AdrianDunbar/AdrianDunbar_0001.png"  # surgical mask: dlib finds no face in it
B3, C3 = "ArifAlvi/ArifAlvi_0003.png", "BenAffleck/BenAffleck_0003.png"  # no-mask
SUBSET = ("EmmanuelMacron", "RoyCooper", "ZuzanaCaputova")  # 20 photos; pairs.txt has both classes


def test_registry_and_input_checks():
    assert {"senet50", "dlib_reference", "dlib_resnet"} <= set(embedder_names())
    with pytest.raises(ValueError, match="unknown embedder 'x'"):
        get_embedder("x")
    with pytest.raises(ValueError, match=r"expected \(N, 160, 160, 3\) uint8"):
        check_images(np.zeros((2, 160, 160, 3), np.float32), 160, "dlib embedder")
    with pytest.raises(FileNotFoundError, match="not a finished `mfr train` run folder"):
        get_embedder("senet50", run_dir="/nonexistent")


@pytest.fixture(scope="module")
def dlib_embedder():
    pytest.importorskip("dlib")
    pytest.importorskip("face_recognition_models")
    return get_embedder("dlib_reference")


def test_dlib_genuine_nearer_than_impostor(mfr2_dev, dlib_embedder):
    from mfr.data.images import load_image

    root = mfr2_dev / "mfr2"
    x = np.stack([load_image(root / p, 160) for p in (A2, A4, B3, C3, A1)])
    v = dlib_embedder.embed(x)
    assert v.shape == (5, 128) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-6)
    d = ((v[:, None] - v[None]) ** 2).sum(-1)
    genuine = d[0, 1]  # two unmasked photos of one person
    impostors = [d[0, 2], d[0, 3], d[1, 2], d[1, 3]]
    assert genuine < 0.17 and genuine < min(impostors) - 0.03, (genuine, impostors)
    # the masked photo: no face found, the whole image is the box: flagged, never a crash
    assert dlib_embedder.flags["no_face_detected"].tolist() == [False, False, False, False, True]
    assert dlib_embedder.describe()["n_no_face_detected"] >= 1


def test_dlib_never_crashes_on_a_non_face(dlib_embedder):
    x = np.zeros((2, 160, 160, 3), np.uint8)
    x[1] = np.random.default_rng(0).integers(0, 256, (160, 160, 3), dtype=np.uint8)
    v = dlib_embedder.embed(x)
    assert np.isfinite(v).all() and dlib_embedder.flags["no_face_detected"].all()


def _mfr2_subset(src: Path, dst: Path, subjects=SUBSET) -> Path:
    """An MFR2 tree of a few identities: links to the real photos, filtered labels/pairs."""
    dst.mkdir(parents=True)
    for s in subjects:
        (dst / s).symlink_to(src / s, target_is_directory=True)
    labels = [ln for ln in (src / "mfr2_labels.txt").read_text().splitlines()
              if ln.split(",")[0] in subjects]
    (dst / "mfr2_labels.txt").write_text("\n".join(labels) + "\n")
    pairs = [ln for ln in (src / "pairs.txt").read_text().splitlines()
             if all(t in subjects for t in ln.split() if not t.isdigit())]
    (dst / "pairs.txt").write_text("\n".join(pairs) + "\n")
    return dst


def test_evaluate_dataset_dlib_on_mfr2(mfr2_dev, dlib_embedder, tmp_path):
    from sklearn.metrics import roc_auc_score

    from mfr.core.config import StudyConfig
    from mfr.study.steps import evaluate_dataset_step

    root = _mfr2_subset(mfr2_dev / "mfr2", tmp_path / "mfr2")
    out = tmp_path / "out"
    ev = evaluate_dataset_step(StudyConfig(bootstrap_resamples=100), root, "mfr2", out,
                               embedder="dlib_reference", progress=False)
    m = json.loads((out / "metrics.json").read_text())
    assert m == json.loads(json.dumps(ev.metrics))
    for name in ("mfr2_pairs", "masked_vs_unmasked"):
        for key in ("auc", "eer", "fnmr_at_fmr_1pct", "fnmr_at_fmr_0_1pct", "gmean", "imean",
                    "median_genuine", "median_impostor", "n_genuine", "n_impostor"):
            assert key in m[name], (name, key)
    # independent counts: labels -> masked / unmasked per subject; pairs.txt kinds
    masked = {}
    for ln in (root / "mfr2_labels.txt").read_text().splitlines():
        name, i, kind = (t.strip() for t in ln.split(","))
        masked[(name, int(i))] = kind != "no-mask"
    n_m = {s: sum(v for (n, _), v in masked.items() if n == s) for s in SUBSET}
    n_u = {s: sum(not v for (n, _), v in masked.items() if n == s) for s in SUBSET}
    mvu = m["masked_vs_unmasked"]
    assert mvu["n_genuine"] == sum(n_m[s] * n_u[s] for s in SUBSET)
    assert mvu["n_genuine"] + mvu["n_impostor"] == sum(n_m.values()) * sum(n_u.values())
    kinds = []
    for ln in (root / "pairs.txt").read_text().splitlines():
        t = ln.split()
        a, b = ((t[0], int(t[1])), (t[0], int(t[2]))) if len(t) == 3 else \
            ((t[0], int(t[1])), (t[2], int(t[3])))
        kinds.append((masked[a] != masked[b], a[0] == b[0]))
    mvu_lines = [same for mixed, same in kinds if mixed]
    assert m["mfr2_pairs"]["n_genuine"] == sum(mvu_lines)
    assert m["mfr2_pairs"]["n_impostor"] == len(mvu_lines) - sum(mvu_lines)
    assert m["mfr2_pairs_all"]["n_pairs"] == len(kinds)
    # the numbers from the written distances, by scikit-learn directly
    d = pd.read_csv(out / "distances.csv")
    x = d[d["split"] == "masked_vs_unmasked"]
    # the top-level numbers: dlib's own distance (face_recognition's face_distance: Euclidean
    # on the raw descriptors); the thesis's distance of unit vectors beside it
    assert m["default_distance"] == mvu["distance"] == "euclidean_raw"
    assert mvu["auc"] == pytest.approx(roc_auc_score(x["label"], -x["euclidean_raw"]))
    assert mvu["median_genuine"] == pytest.approx(
        x.loc[x.label == 1, "euclidean_raw"].median(), abs=1e-6)
    assert mvu["median_genuine"] < mvu["median_impostor"] and mvu["auc"] > 0.5
    unit = mvu["by_distance"]["sum_squared"]
    assert unit["auc"] == pytest.approx(roc_auc_score(x["label"], -x["sum_squared"]))
    assert (x["euclidean_raw"] > x["sum_squared"] ** 0.5).all()  # descriptors are longer than 1
    ours = m["mfr2_pairs"]
    assert ours["n_impostor"] > 0 and ours["median_genuine"] < ours["median_impostor"]
    assert mvu["ci"]["auc"]["n_valid"] == 100 and m["bootstrap"]["unit"] == "subject"
    assert len(m["no_face_detected"]) == m["embedder"]["n_no_face_detected"] > 0
    assert m["identification"]["sum_squared"]["n_gallery_subjects"] == 3
    assert "| mfr2_pairs " in (out / "metrics.md").read_text()
    assert {"roc.png", "det.png", "cmc.svg", "thresholds.json", "run.json"} <= \
        {p.name for p in out.iterdir()}


@pytest.mark.slow
def test_senet50_embedder_loads_a_train_run(tmp_path):
    """run_dir: base weights from the run's config (random init, seeded) + its trained layers."""
    import keras

    from mfr.backbones.formats.legacy_h5 import save_legacy_h5
    from mfr.backbones.vggface import senet50
    from mfr.core.outputs import write_json

    keras.utils.set_random_seed(7)
    core = senet50(weights=None)
    layer = core.get_layer("conv5_3_1x1_up")
    layer.set_weights([w * 2 for w in layer.get_weights()])
    save_legacy_h5(SimpleNamespace(layers=[layer], name=core.name), tmp_path / "final_trainable.h5")
    write_json(tmp_path / "run.json", {"trainable_layers": 10, "config": {
        "weights": None, "seed": 7, "preprocessing": "thesis", "pooling": "avg",
        "image_size": 224}})
    x = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    tuned = get_embedder("senet50", run_dir=tmp_path)
    v = tuned.embed(x)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    got = tuned.model.get_layer("conv5_3_1x1_up").get_weights()
    for a, b in zip(got, layer.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert tuned.describe()["random_init"] and tuned.describe()["run_dir"] == str(tmp_path)
