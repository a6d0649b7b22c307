"""Issue 19's losses on images with subject ids: triplet (batch-hard), arcface, cosface,
dlib_metric. Each value against a hand computation in numpy (dlib_metric against its C++
definition transcribed line by line), the P x K batches, training on both backends, resume,
and `mfr train --loss X` end to end with its record, fingerprint and margin head."""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pandas as pd
import pytest
from tiny_models import tiny_senet

from mfr.core.config import StudyConfig
from mfr.core.errors import InputError
from mfr.data.pairs import PairSet
from mfr.training import checkpoints, losses
from mfr.training import fit as training
from mfr.training.image_batches import labelled_images, pk_epoch, pk_sizes
from mfr.training.loss_margin import margin_logits

NEW = ("triplet", "arcface", "cosface", "dlib_metric")


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)


def _unit(x, axis=-1):
    return x / np.sqrt(np.maximum(np.sum(x * x, axis=axis, keepdims=True), 1e-12))


# --------------------------------------------------------------------------- the registry


def test_the_registry_lists_issue_19s_losses_with_their_fields_and_sources():
    assert losses.loss_names() == ["contrastive", *NEW]
    cfg = StudyConfig()
    assert {n: losses.get_loss(n).settings(cfg) for n in NEW} == {
        "triplet": {"triplet_margin": 0.2},
        "arcface": {"arcface_scale": 64.0, "arcface_margin": 0.5},
        "cosface": {"cosface_scale": 64.0, "cosface_margin": 0.35},
        "dlib_metric": {"dlib_metric_threshold": 0.6, "dlib_metric_margin": 0.04}}
    for n in NEW:
        spec = losses.get_loss(n)
        assert (spec.output, spec.batches) == ("embedding", "images_with_ids")
        assert (spec.head is not None) == (n in ("arcface", "cosface"))
    helps = {f: StudyConfig.__dataclass_fields__[f].metadata["help"]
             for n in NEW for f in losses.get_loss(n).fields}
    assert "Hermans" in helps["triplet_margin"] and "Deng" in helps["arcface_margin"]
    assert "Wang" in helps["cosface_scale"] and "loss_metric_" in helps["dlib_metric_threshold"]
    with pytest.raises(ValueError, match="config key arcface_margin"):
        StudyConfig(arcface_margin=2.0)


# --------------------------------------------------------------------------- values


def _triplet_by_hand(ids, e, margin):
    e = _unit(np.asarray(e, np.float64))
    out = []
    for a in range(len(ids)):
        d = np.linalg.norm(e - e[a], axis=1)
        pos = [d[p] for p in range(len(ids)) if ids[p] == ids[a] and p != a]
        neg = [d[n] for n in range(len(ids)) if ids[n] != ids[a]]
        out.append(max(0.0, margin + max(pos, default=0.0) - min(neg)))
    return np.array(out)


def test_triplet_is_batch_hard():
    rng = np.random.default_rng(0)
    ids = np.array([0, 0, 1, 1, 2, 2, 2, 0], "float32")
    e = rng.normal(size=(8, 5)).astype("float32")
    for margin in (0.2, 1.5):
        got = _np(losses.get_loss("triplet").make(StudyConfig(triplet_margin=margin))(ids, e))
        np.testing.assert_allclose(got, _triplet_by_hand(ids, e, margin), rtol=1e-5, atol=1e-6)
    # well separated subjects: no loss
    sep = np.repeat(np.eye(3, 5), 2, axis=0).astype("float32") + 1e-3
    assert _np(losses.get_loss("triplet").make(StudyConfig())(np.repeat([0, 1, 2], 2), sep)).max() == 0


def _margin_ce_by_hand(ids, e, w, kind, s, m):
    cos = np.clip(_unit(e) @ _unit(w, axis=0), -1, 1)
    logits = s * cos
    for i, y in enumerate(ids):
        t = math.acos(cos[i, y])
        if kind == "arcface":
            logits[i, y] = s * (math.cos(t + m) if t + m < math.pi
                                else cos[i, y] - m * math.sin(m))
        else:
            logits[i, y] = s * (cos[i, y] - m)
    z = logits - logits.max(axis=1, keepdims=True)
    return -(z[np.arange(len(ids)), ids] - np.log(np.exp(z).sum(axis=1)))


@pytest.mark.parametrize("kind", ["arcface", "cosface"])
def test_margin_softmax_is_arcface_or_cosface(kind):
    rng = np.random.default_rng(1)
    ids = np.array([0, 2, 1, 2, 3])
    e = rng.normal(size=(5, 6)).astype("float32")
    w = rng.normal(size=(6, 4)).astype("float32")
    w[:, 1] = -e[2] * 3  # one embedding opposite its class: theta + m passes pi (arcface's fallback)
    s, m = (64.0, 0.5) if kind == "arcface" else (64.0, 0.35)
    cfg = StudyConfig(loss=kind)
    logits = margin_logits(e, w, ids, kind, s, m)
    ce = _np(losses.get_loss(kind).make(cfg)(ids.astype("float32"), logits))
    np.testing.assert_allclose(ce, _margin_ce_by_hand(ids, e, w, kind, s, m), rtol=1e-4)
    # the registry's head: the config's scale and margin, one column per subject
    head = losses.get_loss(kind).make_head(cfg.replace(**{f"{kind}_scale": 10.0}), 4)
    head.build([(None, 6), (None,)])
    head.kernel.assign(w)
    got = _np(head([keras.ops.convert_to_tensor(e), keras.ops.convert_to_tensor(ids)]))
    np.testing.assert_allclose(got, _np(margin_logits(e, w, ids, kind, 10.0, m)), rtol=1e-5)
    assert losses.get_loss("triplet").make_head(cfg, 4) is None


def _dlib_loss_metric(x, truth, margin=0.04, dist_thresh=0.6):
    """dlib/dnn/loss.h, loss_metric_::compute_loss_value_and_gradient, the loss value,
    transcribed loop for loop (float32 where dlib's are float)."""
    x = np.asarray(x, np.float32)
    n = len(x)
    temp = x @ x.T  # tt::gemm(0, temp, 1, output_tensor, false, output_tensor, true)
    temp_threshs = []
    num_pos_samps = 0.0001
    num_neg_samps = 0.0001
    for r in range(n):
        xx = temp[r, r]
        for c in range(r + 1, n):
            if truth[r] == truth[c]:
                num_pos_samps += 1
            else:
                num_neg_samps += 1
                d2 = xx + temp[c, c] - 2 * temp[r, c]
                temp_threshs.append(max(d2, np.float32(0)))
    scale = 0.5 / num_pos_samps
    temp_threshs.sort()
    neg_thresh = np.sqrt(np.float32(temp_threshs[int(min(num_pos_samps, num_neg_samps) - 1)]))
    loss = 0.0
    for r in range(n):
        xx = temp[r, r]
        for c in range(n):
            if r == c:
                continue
            d2 = xx + temp[c, c] - 2 * temp[r, c]
            d2 = np.float32(0) if d2 <= 0 else np.sqrt(d2)
            if truth[r] == truth[c]:
                if not d2 < dist_thresh - margin:
                    loss += scale * (d2 - (dist_thresh - margin))
            else:
                if not (d2 > dist_thresh + margin or d2 > neg_thresh):
                    loss += scale * ((dist_thresh + margin) - d2)
    return loss


def test_dlib_metric_is_dlibs_loss_metric():
    rng = np.random.default_rng(2)
    fn = losses.get_loss("dlib_metric").make(StudyConfig())
    for trial in range(6):
        n = (8, 12)[trial % 2]
        ids = rng.integers(0, 3 + trial % 3, n)
        x = (rng.normal(size=(n, 16)) * 0.12).astype("float32")  # distances around 0.6
        want = _dlib_loss_metric(x, ids)
        assert want > 0
        np.testing.assert_allclose(float(_np(fn(ids.astype("float32"), x))), want, rtol=1e-4)
    # only the hardest negatives count: as many as there are positive pairs (here 1)
    ids = np.array([0, 0, 1, 2])
    x = np.array([[0, 0], [0.1, 0], [0.3, 0], [0.5, 0]], "float32")
    want = _dlib_loss_metric(x, ids)
    np.testing.assert_allclose(want, (0.64 - 0.2) / 1.0001, rtol=1e-5)  # pair (0, 2) alone
    np.testing.assert_allclose(float(_np(fn(ids.astype("float32"), x))), want, rtol=1e-5)
    # other threshold and margin: the fields
    fn2 = losses.get_loss("dlib_metric").make(StudyConfig(dlib_metric_threshold=0.3,
                                                          dlib_metric_margin=0.1))
    np.testing.assert_allclose(float(_np(fn2(ids.astype("float32"), x))),
                               _dlib_loss_metric(x, ids, margin=0.1, dist_thresh=0.3), rtol=1e-5)


# --------------------------------------------------------------------------- batches


def test_pk_batches_are_p_subjects_by_k_images_and_seeded():
    assert pk_sizes(8) == (4, 2) and pk_sizes(32) == (8, 4) and pk_sizes(17) == (4, 4)
    with pytest.raises(InputError, match="at least 4"):
        pk_sizes(3)
    ids = np.array([0] * 5 + [1] * 3 + [2] * 1 + [3] * 6)
    a = pk_epoch(ids, 8, seed=1, epoch=0)
    np.testing.assert_array_equal(a, pk_epoch(ids, 8, seed=1, epoch=0))
    assert not np.array_equal(a, pk_epoch(ids, 8, seed=1, epoch=1))
    assert not np.array_equal(a, pk_epoch(ids, 8, seed=2, epoch=0))
    assert len(a) % 8 == 0 and set(a) == set(range(len(ids)))  # every image, whole batches
    for batch in a.reshape(-1, 8):
        groups = ids[batch].reshape(4, 2)
        assert (groups == groups[:, :1]).all()  # K images of one subject per group
    with pytest.raises(InputError, match="at least 2 subjects"):
        pk_epoch(np.zeros(6, int), 8, 0, 0)


def test_labelled_images_are_both_sides_once_with_subjects():
    ps = PairSet(np.array([5, 7, 5]), np.array([9, 9, 8]), np.array([1, 0, 0]),
                 np.array(["b", "a", "b"]), np.array(["b", "b", "c"]))
    rows, ids, names = labelled_images(ps, "train")
    np.testing.assert_array_equal(rows, [5, 7, 8, 9])
    assert names == ["a", "b", "c"] and [names[i] for i in ids] == ["b", "a", "c", "b"]
    with pytest.raises(InputError, match="train pairs: no subject columns"):
        labelled_images(PairSet(ps.u_idx, ps.m_idx, ps.labels), "train")
    with pytest.raises(InputError, match="an image is given two subjects"):
        labelled_images(PairSet(np.array([5, 5]), np.array([8, 9]), np.array([0, 0]),
                                np.array(["a", "b"]), np.array(["c", "c"])), "train")


# --------------------------------------------------------------------------- training


def _tiny(n_img=24, n_subjects=4):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n_img, 32, 32, 3), dtype=np.uint8)
    subj = np.array([f"s{i % n_subjects}" for i in range(n_img)])

    def pairs(n, seed):
        g = np.random.default_rng(seed)
        u, m = g.integers(0, n_img // 2, n), g.integers(n_img // 2, n_img, n)
        return PairSet(u, m, (subj[u] == subj[m]).astype(int), subj[u], subj[m])
    return images, pairs(20, 1), pairs(10, 2), pairs(10, 3)


def _train(loss, out=None, resume=False, epochs=2, **kw):
    images, tr, va, te = _tiny()
    keras.utils.set_random_seed(7)
    model = tiny_senet()
    cfg = StudyConfig(epochs=epochs, batch_size=8, learning_rate=0.01, optimizer="adam",
                      image_size=32, loss=loss, **kw)
    return training.train_siamese(model, 14, images, tr, va, te, config=cfg, out_dir=out,
                                  resume=resume), model


@pytest.mark.backend
@pytest.mark.parametrize("loss", NEW)
def test_each_loss_trains_the_last_n_layers_on_images(loss):
    keras.utils.set_random_seed(7)
    init = [_np(w) for w in tiny_senet().weights]
    res, model = _train(loss)
    assert res.engine == "fit" and len(res.history) == 2
    h = res.history
    assert list(h.columns) == ["epoch", "loss", "val_loss"] and np.isfinite(h[["loss", "val_loss"]]).all().all()
    assert h["loss"].iloc[0] != h["loss"].iloc[1]
    moved = [np.abs(_np(w) - i).max() for w, i in zip(model.weights, init, strict=True)]
    assert max(moved) > 1e-4  # the trainable layers moved
    frozen = {w.path for w in model.weights} - {w.path for w in model.trainable_weights}
    for w, i in zip(model.weights, init, strict=True):
        if w.path in frozen:
            np.testing.assert_array_equal(_np(w), i)
    # then the same evaluation as after Siamese training: unit embeddings, test distances
    assert res.test_distances.shape == (10,) and (res.test_distances <= 4 + 1e-6).all()
    np.testing.assert_allclose(np.linalg.norm(res.embeddings, axis=1), 1.0, rtol=1e-5)


@pytest.mark.backend
def test_thesis_style_equals_cached_on_images():
    r1, m1 = _train("dlib_metric", trunk_cache=True)
    r0, m0 = _train("dlib_metric", trunk_cache=False)
    np.testing.assert_allclose(r1.history[["loss", "val_loss"]], r0.history[["loss", "val_loss"]],
                               rtol=1e-3)  # the same steps; Adam magnifies the float order
    np.testing.assert_allclose(r1.test_distances, r0.test_distances, rtol=1e-2)


@pytest.mark.backend
def test_resume_replays_the_uninterrupted_run_with_the_head(tmp_path):
    full, _ = _train("arcface", out=tmp_path / "full")
    _train("arcface", out=tmp_path / "cut", epochs=1)
    ck = np.load(checkpoints.latest_checkpoint(tmp_path / "cut"))
    assert "w/margin_head/0" in ck.files  # the head is checkpointed with the layers
    resumed, _ = _train("arcface", out=tmp_path / "cut", resume=True)
    assert resumed.resumed_from == 1
    np.testing.assert_allclose(resumed.history[["loss", "val_loss"]],
                               full.history[["loss", "val_loss"]], rtol=1e-5)
    a, b = np.load(tmp_path / "full" / "margin_head.npz"), np.load(tmp_path / "cut" / "margin_head.npz")
    np.testing.assert_allclose(a["kernel"], b["kernel"], rtol=1e-5, atol=1e-7)
    assert list(a["subjects"]) == ["s0", "s1", "s2", "s3"] and a["kernel"].shape == (64, 4)
    # another loss's checkpoint is not resumed
    with pytest.raises(InputError, match="checkpoint made with other settings"):
        _train("cosface", out=tmp_path / "cut", resume=True, epochs=3)


@pytest.mark.backend
def test_the_fused_engines_refuse_images_and_say_so():
    images, tr, _, _ = _tiny()
    cfg = StudyConfig(epochs=1, batch_size=8, image_size=32, loss="triplet")
    if keras.backend.backend() != "jax":
        with pytest.raises(InputError, match="engine must be"):
            training.train_siamese(tiny_senet(), 14, images, tr, config=cfg, engine="fused")
        return
    with pytest.raises(InputError, match="loss 'triplet' trains on images_with_ids .*the fused "
                                         "JAX engine trains the Siamese model"):
        training.train_siamese(tiny_senet(), 14, images, tr, config=cfg, engine="fused")
    with pytest.raises(InputError, match="the data-parallel JAX engine trains the Siamese"):
        training.train_siamese(tiny_senet(), 14, images, tr, config=cfg.replace(data_parallel=True))


def test_image_losses_need_subjects_and_batches_of_four():
    images, tr, _, _ = _tiny()
    cfg = StudyConfig(epochs=1, batch_size=8, image_size=32, loss="triplet")
    with pytest.raises(InputError, match="train pairs: no subject columns"):
        training.train_siamese(tiny_senet(), 14, images, PairSet(tr.u_idx, tr.m_idx, tr.labels),
                               config=cfg)
    with pytest.raises(InputError, match="batch_size 3: .*at least 4"):
        training.train_siamese(tiny_senet(), 14, images, tr, config=cfg.replace(batch_size=3))


# --------------------------------------------------------------------------- mfr train


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from test_training import _study_files

    return _study_files(tmp_path_factory.mktemp("losses"), n_subjects=4)


def test_mfr_train_runs_every_loss_end_to_end(study, tmp_path):
    from mfr.cli import main

    pairs, cache = study
    fps = {}
    for loss in ("contrastive", *NEW):
        out = tmp_path / loss
        assert main(["train", "--loss", loss, "--trainable-layers", "10", "--pairs", str(pairs),
                     "--cache-dir", str(cache), "--weights", "none",
                     "--epochs", "1", "--batch-size", "4", "--learning-rate", "1e-3",
                     "--optimizer", "adam", "--out", str(out), "--no-progress"]) == 0
        dist = pd.read_csv(out / "distances.csv")
        assert list(dist["split"]) == ["val"] * 4 + ["test"] * 12
        assert dist.select_dtypes("number").notna().all().all()
        run = json.loads((out / "run.json").read_text())
        spec = losses.get_loss(loss)
        assert run["loss"]["name"] == loss and run["loss"]["batches"] == spec.batches
        mine = set(spec.fields)
        others = {f for s in losses.LOSSES.values() for f in s.fields} - mine
        assert mine <= set(run["config"]) and not others & set(run["config"])
        assert mine <= set(run["fingerprint"]["settings"])
        assert not others & set(run["fingerprint"]["settings"])
        assert (out / "margin_head.npz").is_file() == (spec.head is not None)
        fps[loss] = json.dumps(run["fingerprint"]["settings"], sort_keys=True)
    assert len(set(fps.values())) == len(fps)  # every loss its own fingerprint
    head = np.load(tmp_path / "arcface" / "margin_head.npz")
    assert list(head["subjects"]) == ["s0", "s1", "s2", "s3"]
    assert json.loads(str(head["loss"]))["arcface_margin"] == 0.5
