"""The Siamese model: the thesis's trainable set, distance, loss, and the exact trunk/head split."""

from __future__ import annotations

import io
import json

import keras
import numpy as np
import pytest
from tiny_models import tiny_senet

from mfr.core.config import THESIS_TRAINABLE_LAYERS
from mfr.training import siamese


@pytest.fixture(scope="module")
def core():
    from mfr.backbones.vggface import senet50

    keras.utils.set_random_seed(0)
    return senet50(weights=None)


def _thesis_trainable(ref_layers, n):
    """What keras-vggface + the thesis's loop make trainable, from the reference JSON."""
    return [la["name"].replace("/", "_") for la in ref_layers[-n:]
            if la["class"] != "BatchNormalization" and la["weights"]]


def test_trainable_sets_match_keras_vggface(core, reference_layers):
    ref = json.loads(reference_layers.read_text())["layers"]
    assert len(core.layers) == len(ref) == 287
    for n in THESIS_TRAINABLE_LAYERS:
        names = siamese.set_trainable(core, n)
        expected = _thesis_trainable(ref, n)
        assert names == expected, n
        # the same weights, shape by shape
        ref_shapes = {la["name"].replace("/", "_"): [tuple(s) for s in la["weights"]]
                      for la in ref[-n:] if la["name"]}
        got = {la.name: [tuple(w.shape) for w in la.trainable_weights]
               for la in core.layers if la.trainable_weights}
        assert got == {k: ref_shapes[k] for k in expected}
        # nothing else trainable; every BN frozen
        assert all(not la.trainable_weights for la in core.layers[:-n])
        assert all(not la.trainable for la in core.layers
                   if isinstance(la, keras.layers.BatchNormalization))
        count = siamese.trainable_param_count(siamese.trainable_layers(core, n))
        assert count == sum(int(np.prod(w.shape)) for w in core.trainable_weights)
    assert siamese.set_trainable(core, 10) == ["conv5_3_1x1_down", "conv5_3_1x1_up"]
    assert siamese.trainable_param_count(siamese.trainable_layers(core, 10)) == 526_464


@pytest.mark.parametrize("bad", [0, 288, -1, 2.5, True, "10", None])
def test_n_out_of_range(bad):
    with pytest.raises(ValueError, match="trainable layers N"):
        siamese.validate_trainable_layers(bad)


def test_train_rejects_n_before_any_work():
    from mfr.data.pairs import PairSet
    from mfr.training.fit import train_siamese

    model = tiny_senet()
    pairs = PairSet(np.zeros(2, int), np.ones(2, int), np.array([0, 1]))
    with pytest.raises(ValueError, match="must be in 1.."):
        train_siamese(model, len(model.layers) + 1, np.zeros((2, 32, 32, 3), np.uint8), pairs)
    with pytest.raises(ValueError, match="outside"):
        train_siamese(model, 5, np.zeros((1, 32, 32, 3), np.uint8), pairs)


def test_trunk_head_split_senet50(core):
    x = np.random.default_rng(0).normal(0, 60, size=(2, 224, 224, 3)).astype("float32")
    siamese.set_trainable(core, 1)  # no trainable weights
    with pytest.raises(ValueError, match="no trainable weights"):
        siamese.split_trunk(core)
    ref = keras.ops.convert_to_numpy(core(x, training=False))
    for n, boundary in ((10, ["conv5_3_se_reshape", "conv5_3_1x1_increase_bn", "conv5_2_relu"]),
                        (20, ["conv5_2_relu"]),
                        (70, ["conv4_6_1x1_reduce_relu", "conv4_5_relu"])):
        split = siamese.split_trunk(core, n)
        assert split.boundary == boundary
        feats = split.trunk(x, training=False)
        feats = feats if isinstance(feats, list | tuple) else [feats]
        out = split.head(feats if len(feats) > 1 else feats[0], training=False)
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(out), ref)
        # the head trains the core's own variables
        assert [id(v) for v in split.head.trainable_variables] == \
            [id(v) for v in core.trainable_variables]
        assert not split.trunk.trainable_weights


@pytest.mark.backend
def test_trunk_head_split_every_n():
    keras.utils.set_random_seed(1)
    model = tiny_senet()
    x = np.random.default_rng(1).normal(size=(3, 32, 32, 3)).astype("float32")
    ref = keras.ops.convert_to_numpy(model(x, training=False))
    for n in range(1, len(model.layers) + 1):
        if not siamese.trainable_layers(model, n):
            continue
        split = siamese.split_trunk(model, n)
        feats = split.trunk(x, training=False)
        feats = feats if isinstance(feats, list | tuple) else [feats]
        out = keras.ops.convert_to_numpy(split.head(feats if len(feats) > 1 else feats[0],
                                                    training=False))
        np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6, err_msg=f"N={n}")


@pytest.mark.backend
def test_distance_and_contrastive_loss():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 8)).astype("float32"), rng.normal(size=(5, 8)).astype("float32")
    d = keras.ops.convert_to_numpy(siamese.pair_distance(a, b))
    na = a / np.linalg.norm(a, axis=1, keepdims=True)
    nb = b / np.linalg.norm(b, axis=1, keepdims=True)
    np.testing.assert_allclose(d, ((na - nb) ** 2).sum(1), rtol=1e-5)
    assert (d >= 0).all() and (d <= 4).all()
    loss = siamese.contrastive_loss(5.0)
    per = keras.ops.convert_to_numpy(loss(np.array([1.0, 0.0, 1.0, 0.0], "float32"),
                                          np.array([0.0, 1.0, 4.0, 4.0], "float32")))
    np.testing.assert_allclose(per, [0.0, 16.0, 16.0, 1.0])
    # A = 5 > max d = 4: the impostor term never vanishes
    assert keras.ops.convert_to_numpy(loss(np.zeros(1, "float32"), np.full(1, 4.0, "float32")))[0] > 0


def test_dry_run_cli(capsys):
    from mfr.cli import main

    assert main(["train", "--trainable-layers", "10", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [ln.split()[0] for ln in out[1:-1]] == ["conv5_3_1x1_down", "conv5_3_1x1_up"]
    assert out[-1] == "trainable params: 526,464"
    assert main(["train", "--trainable-layers", "300", "--dry-run"]) == 2
    assert "1..287" in capsys.readouterr().err


def test_dry_run_lists_every_setting(core, reference_layers):
    from mfr.commands.train import dry_run

    buf = io.StringIO()
    dry_run((70,), out=buf)
    ref = json.loads(reference_layers.read_text())["layers"]
    listed = [ln.split()[0] for ln in buf.getvalue().splitlines()[1:-1]]
    assert listed == _thesis_trainable(ref, 70)


@pytest.mark.parametrize("build", ["siamese", "images"])
def test_a_network_shared_by_a_grids_models_keeps_none_of_their_tables(build):
    """Each model a grid builds around one network holds its own feature table; the network
    must not keep the calls that built them (a node a call leaves reaches the table: one copy
    of the training features a run, which ran a 48-run study out of memory)."""
    import gc
    import weakref

    from mfr.training.fit_images import build_image_model

    net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    before = len(net._inbound_nodes)
    tables = []
    for seed in range(3):
        table = np.random.default_rng(seed).random((10, 4), dtype=np.float32)
        model = (siamese.build_siamese(net, [table]) if build == "siamese"
                 else build_image_model(net, [table]))
        idx = np.array([0, 1], dtype="int32")
        out = model.predict([idx, idx[::-1]] if build == "siamese" else idx, verbose=0)
        assert np.all(np.isfinite(out))  # the model built runs
        tables.append(weakref.ref(model.get_layer("features")))
        del model
    gc.collect()
    assert len(net._inbound_nodes) == before
    assert [t() for t in tables] == [None, None, None]
