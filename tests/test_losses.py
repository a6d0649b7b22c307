"""The loss registry: lookup, the contrastive loss as Eq. 3.4, the config field, the engines'
loss from the registry, a loss on other batches refused, subjects kept with the pairs, and the
loss's settings in a training run's fingerprint and record."""

from __future__ import annotations

import dataclasses
import inspect
import json
from types import SimpleNamespace

import keras
import numpy as np
import pandas as pd
import pytest
from tiny_models import tiny_senet

from mfr.core.config import StudyConfig, load_config
from mfr.core.errors import InputError, MissingError
from mfr.data.pairs import PairSet, PathIndex, pair_indices
from mfr.training import fit as training
from mfr.training import losses, siamese

#: a loss on images with subject ids (as issue 19's will be): registered only in a test
_ON_IDS = dict(output="embedding", batches="images_with_ids")


def _eq_3_4(y, d, margin):
    """Eq. 3.4 by hand: y*d^2 + (1-y)*max(0, A-d)^2."""
    y, d = np.asarray(y, np.float64), np.asarray(d, np.float64)
    return y * d ** 2 + (1 - y) * np.maximum(0.0, margin - d) ** 2


# --------------------------------------------------------------------------- the registry


def test_registry_lookup():
    assert losses.loss_names() == ["contrastive", "triplet", "arcface", "cosface", "dlib_metric"]
    spec = losses.get_loss("contrastive")
    assert spec is losses.LOSSES["contrastive"] and spec.name == "contrastive"
    assert (spec.output, spec.batches, spec.fields) == ("distance", "pairs", ("margin",))
    assert "Eq. 3.4" in spec.source
    # the entry's fields are its factory's keyword arguments, so make() can pass them
    module, _, name = spec.factory.partition(":")
    factory = getattr(__import__(module, fromlist=[name]), name)
    assert tuple(inspect.signature(factory).parameters) == spec.fields
    assert siamese.contrastive_loss is losses.contrastive_loss  # its old home still works


def test_unknown_loss_is_one_line_naming_the_losses():
    with pytest.raises(InputError, match=r"unknown loss 'softmax'; expected one of contrastive, "
                                         r"triplet, arcface, cosface, dlib_metric$"):
        losses.get_loss("softmax")


def test_a_bad_entry_is_refused():
    with pytest.raises(ValueError, match="batches must be one of"):
        losses.LossSpec("x", output="distance", batches="triplets", params=(), source="",
                        factory="m:f")
    with pytest.raises(ValueError, match="output must be one of"):
        losses.LossSpec("x", output="logits", batches="pairs", params=(), source="",
                        factory="m:f")
    with pytest.raises(ValueError, match="module:function"):
        losses.LossSpec("x", output="distance", batches="pairs", params=(), source="",
                        factory="f")
    with pytest.raises(ValueError, match="a head is 'module:function' and needs output"):
        losses.LossSpec("x", output="distance", batches="pairs", params=(), source="",
                        factory="m:f", head="m:h")


@pytest.mark.backend
def test_contrastive_is_eq_3_4():
    y = np.array([1, 0, 1, 0, 1, 0, 0], "float32")
    d = np.array([0.0, 0.0, 0.5, 0.5, 4.0, 4.0, 2.75], "float32")
    for margin in (5.0, 1.0, 3.0):
        fn = losses.get_loss("contrastive").make(StudyConfig(margin=margin))
        got = keras.ops.convert_to_numpy(fn(y, d))
        np.testing.assert_allclose(got, _eq_3_4(y, d, margin), rtol=1e-6)
    # an impostor farther than the margin costs nothing: never with the thesis's 5 > max d = 4
    for margin, zero in ((1.0, True), (5.0, False)):
        fn = losses.get_loss("contrastive").make(StudyConfig(margin=margin))
        assert bool(keras.ops.convert_to_numpy(fn(y[5:6], d[5:6]))[0] == 0.0) is zero


# --------------------------------------------------------------------------- the config field


def test_loss_config_field(tmp_path):
    assert StudyConfig().loss == "contrastive" == losses.DEFAULT_LOSS
    assert StudyConfig(loss="contrastive").to_dict()["loss"] == "contrastive"
    with pytest.raises(ValueError, match=r"config key loss: expected one of contrastive, "
                                         r"triplet, arcface, cosface, dlib_metric, got 'softmax'"):
        StudyConfig(loss="softmax")
    profile = tmp_path / "p.yaml"
    profile.write_text("loss: sphereface\n")
    with pytest.raises(InputError, match=r"p\.yaml: config key loss: expected one of contrastive"):
        load_config(profile)


def test_loss_flag_on_train(capsys):
    from mfr.cli import main

    with pytest.raises(SystemExit) as e:
        main(["train", "--loss", "softmax", "--dry-run"])
    assert e.value.code == 2 and "invalid choice: 'softmax'" in capsys.readouterr().err


# --------------------------------------------------------------------------- settings


def test_fingerprint_of_a_contrastive_run_is_the_one_before_the_registry():
    from mfr.study.steps.settings import train_settings

    cfg = StudyConfig(margin=2.5)
    assert losses.loss_settings(cfg) == {"margin": 2.5}
    # the keys runs recorded before the registry: their fingerprints stand
    assert training.resume_fingerprint(cfg, 10, 99) == {
        "margin": 2.5, "optimizer": "sgd", "learning_rate": 1e-5, "momentum": 0.0,
        "batch_size": 32, "seed": 2021, "preprocessing": "thesis", "trainable_layers": 10,
        "n_train": 99}
    # the step's fingerprint: embed_batch_size joined it (issue 20: it changes the last digit)
    assert train_settings(cfg) == {"backbone": "senet50", "image_size": 224, "decoder": "pil",
                                   "embed_batch_size": 64, "precision": "float32",
                                   "preprocessing": "thesis", "pooling": "avg", "margin": 2.5,
                                   "optimizer": "sgd", "learning_rate": 1e-5, "momentum": 0.0,
                                   "batch_size": 32, "seed": 2021}


def test_another_loss_records_its_name_and_only_its_own_fields(monkeypatch):
    other = losses.LossSpec("scaled", params=(losses.LossParam("scale", 30.0, "test"),),
                            source="test",
                            factory="mfr.training.losses:contrastive_loss", **_ON_IDS)
    monkeypatch.setitem(losses.LOSSES, "scaled", other)
    cfg = SimpleNamespace(loss="scaled", margin=5.0, scale=30.0)
    assert losses.loss_settings(cfg) == {"loss": "scaled", "scale": 30.0}  # no margin
    assert other.record(cfg) == {"name": "scaled", "output": "embedding",
                                 "batches": "images_with_ids", "source": "test", "scale": 30.0}


# --------------------------------------------------------------------------- the engines


def _tiny(n_img=12):
    images = np.random.default_rng(0).integers(0, 256, (n_img, 32, 32, 3), dtype=np.uint8)
    r = np.random.default_rng(1)
    tr = PairSet(r.integers(0, 6, 8), r.integers(6, 12, 8), r.integers(0, 2, 8))
    return images, tr


@pytest.mark.backend
def test_every_engine_gets_the_loss_from_the_registry(monkeypatch):
    """Each engine (fit on any backend; fused and data-parallel under JAX) trains with the
    function the registry's factory makes, with the config's margin."""
    made, calls = [], []
    real = losses.contrastive_loss

    def spy(margin):
        made.append(margin)
        fn = real(margin)

        def loss(y, d):
            calls.append(1)  # at trace time, under a compiled step
            return fn(y, d)
        return loss

    monkeypatch.setattr(losses, "contrastive_loss", spy)
    images, tr = _tiny()
    runs = [("fit", False)]
    if keras.backend.backend() == "jax":
        runs += [("fused", False), ("fused", True)]
    for engine, dp in runs:
        made.clear()
        calls.clear()
        keras.utils.set_random_seed(7)
        cfg = StudyConfig(epochs=1, batch_size=4, learning_rate=0.1, image_size=32, margin=2.5,
                          data_parallel=dp)
        training.train_siamese(tiny_senet(), 14, images, tr, config=cfg, engine=engine)
        assert made and set(made) == {2.5} and calls, (engine, dp, made, len(calls))


@pytest.mark.backend
def test_fused_engine_loss_is_eq_3_4():
    if keras.backend.backend() != "jax":
        pytest.skip("the fused engines run under JAX")
    from mfr.training.data_parallel import DataParallelJaxEngine
    from mfr.training.jax_engine import FusedJaxEngine

    y = np.array([1, 0, 0, 1], "float32")
    d = np.array([0.5, 0.5, 3.0, 2.0], "float32")
    cfg = StudyConfig(margin=3.0)
    for cls in (FusedJaxEngine, DataParallelJaxEngine):
        engine = cls(keras.Sequential([keras.layers.Dense(1)]), losses.get_loss("contrastive"), cfg)
        got = keras.ops.convert_to_numpy(engine.loss_fn(y, d))
        np.testing.assert_allclose(got, _eq_3_4(y, d, 3.0), rtol=1e-6)


@pytest.mark.backend
def test_a_loss_on_images_with_ids_is_refused_by_the_pair_engines(monkeypatch, tmp_path):
    from mfr.study.steps.train import train_step
    from mfr.training.jax_engine import FusedJaxEngine

    ids = dataclasses.replace(losses.get_loss("contrastive"), **_ON_IDS)
    msg = r"loss 'contrastive' trains on images_with_ids with a model that outputs an embedding; "
    # the engine itself, before it needs JAX or a model
    with pytest.raises(InputError, match=msg + "the fused JAX engine trains the Siamese model"):
        FusedJaxEngine(None, ids, StudyConfig())
    monkeypatch.setitem(losses.LOSSES, "contrastive", ids)
    images, tr = _tiny()
    # issue 19: model.fit and `mfr train` train such a loss (tests/test_losses_images.py); the
    # fused engines still refuse it, before any work (pairs without subjects are not read)
    if keras.backend.backend() == "jax":
        with pytest.raises(InputError, match=msg + "the fused JAX engine trains"):
            training.train_siamese(tiny_senet(), 14, images, tr,
                                   config=StudyConfig(image_size=32), engine="fused")
    with pytest.raises(MissingError, match="no_pairs: pairs directory not found"):
        train_step(StudyConfig(weights=None), 10, tmp_path / "no_pairs", out_dir=tmp_path / "o")


# --------------------------------------------------------------------------- subjects


class _Index(PathIndex):
    what = "test index"

    def __init__(self, paths):
        self.paths = paths


def _table():
    return pd.DataFrame({"unmasked_path": ["u/a.png", "u/b.png", "u/a.png"],
                         "masked_path": ["m/a.png", "m/a.png", "m/b.png"],
                         "label": [1, 0, 0], "unmasked_subject": ["alice", "bob", "alice"],
                         "masked_subject": ["alice", "alice", "bob"]})


def test_pair_set_keeps_subjects():
    ps = pair_indices(_table(), _Index(["m/a.png", "m/b.png", "u/a.png", "u/b.png"]))
    u, m, y = ps  # unpacks as before
    np.testing.assert_array_equal(u, [2, 3, 2])
    np.testing.assert_array_equal(m, [0, 0, 1])
    assert list(ps.u_subject) == ["alice", "bob", "alice"]
    assert list(ps.m_subject) == ["alice", "alice", "bob"]
    t = ps.take(np.array([2, 0]))
    assert list(t.u_subject) == ["alice", "alice"] and list(t.m_subject) == ["bob", "alice"]
    np.testing.assert_array_equal(t.u_idx, [2, 2])
    np.testing.assert_array_equal(t.labels, [0, 1])
    assert list(ps.take(slice(1, None)).m_subject) == ["alice", "bob"]
    # a table without subject columns: none, and take keeps none
    bare = pair_indices(_table().drop(columns=["unmasked_subject", "masked_subject"]),
                        _Index(["m/a.png", "m/b.png", "u/a.png", "u/b.png"]))
    assert bare.u_subject is None and bare.take(np.array([0])).m_subject is None
    with pytest.raises(InputError, match="m_subject has 1 entries for 2 pairs"):
        PairSet(np.zeros(2, int), np.ones(2, int), np.array([0, 1]), np.array(["a", "b"]),
                np.array(["a"]))


def test_training_keeps_subjects_through_its_checks_and_reindexing():
    ps = PairSet(np.array([5, 7, 5]), np.array([9, 9, 8]), np.array([1, 0, 0]),
                 np.array(["a", "b", "a"]), np.array(["a", "a", "c"]))
    other = PairSet(np.array([7]), np.array([8]), np.array([1]), np.array(["b"]), np.array(["c"]))
    checked = training._check_pairs("train", ps, 10)
    assert checked.labels.dtype == np.float32 and list(checked.m_subject) == ["a", "a", "c"]
    rows, (a, b) = training.compact_pair_rows(checked, other)
    np.testing.assert_array_equal(rows, [5, 7, 8, 9])
    np.testing.assert_array_equal(a.u_idx, [0, 1, 0])
    assert list(a.u_subject) == ["a", "b", "a"] and list(b.m_subject) == ["c"]


# --------------------------------------------------------------------------- the run record


@pytest.mark.backend
def test_train_run_records_its_loss(tmp_path):
    """`mfr train`'s run.json: the config's loss, the entry's record, and the fingerprint's
    settings with the loss's own field (margin) and, for contrastive, no name (as before)."""
    from test_training import _study_files

    from mfr.study.steps.train import train_step

    pairs, cache = _study_files(tmp_path)
    cfg = StudyConfig(weights=None, epochs=1, batch_size=4, margin=4.5)
    train_step(cfg, 10, pairs, out_dir=tmp_path / "run", cache_dir=cache, progress=False)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["config"]["loss"] == "contrastive" and run["config"]["margin"] == 4.5
    assert run["loss"] == {"name": "contrastive", "output": "distance", "batches": "pairs",
                           "source": losses.get_loss("contrastive").source, "margin": 4.5}
    settings = run["fingerprint"]["settings"]
    assert settings["margin"] == 4.5 and "loss" not in settings
