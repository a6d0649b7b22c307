"""InsightFace's MobileFaceNet: the MXNet reader, the Keras port, exactness against ncnn, the
ncnn embedder and the weights download."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import socket
import struct
import threading
from pathlib import Path

import keras
import numpy as np
import pytest

from mfr.backbones.download import WeightsDownloadError, release_dir, release_files
from mfr.backbones.facts import WeightFile
from mfr.backbones.formats.mxnet import (
    LIST_MAGIC,
    read_ndarray_list,
    read_params,
    read_symbol,
)
from mfr.backbones.formats.mxnet_keras import build_keras_model, load_mxnet_model
from mfr.backbones.mobilefacenet import BACKBONE
from mfr.core.errors import InputError, MissingError

GRADCAM_LAYER, GRADCAM_SHAPE = BACKBONE.facts.gradcam_layer, (7, 7, 512)
WEIGHTS = BACKBONE.facts.weights
FILES, ENV_DIR = WEIGHTS.files, WEIGHTS.env_dir


def build_mobilefacenet(graph, params=None, **kw):
    return build_keras_model(graph, params, name="mobilefacenet", **kw)


def load_mxnet_mobilefacenet(symbol, params):
    return load_mxnet_model(symbol, params, name="mobilefacenet")


def mobilefacenet_dir():
    return release_dir(WEIGHTS.cache_name, ENV_DIR)


def mobilefacenet_files(progress=True, cache_dir=None, files=FILES, timeout=60.0):
    return release_files(files, WEIGHTS.cache_name, ENV_DIR, cache_dir, progress, timeout)

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
MODELS = SHARED / "models" / "insightface-mobilefacenet"
MLFW_VAL = SHARED / "data" / "mlfw-dev" / "val"
N_LAYERS = 166  # len(model.layers): what "the last N layers" counts
N_PARAMS = 1_022_720  # the file's 1,022,848 values less fc1's fixed gamma (128)


@pytest.fixture(scope="module")
def files() -> dict[str, Path]:
    if not MODELS.is_dir():
        pytest.skip(f"{MODELS} is absent")
    return {f.name: MODELS / f.name for f in FILES}


@pytest.fixture(scope="module")
def graph(files):
    return read_symbol(files["model-symbol.json"])


@pytest.fixture(scope="module")
def params(files):
    return read_params(files["model-0000.params"])


@pytest.fixture(scope="module")
def model(graph, params):
    return build_mobilefacenet(graph, params)


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    """8 real 112x112 ArcFace-aligned photos of 8 people (mlfw-dev/val, mostly masked)."""
    from PIL import Image

    paths = sorted(MLFW_VAL.glob("*/*.jpg"))[::150][:8]
    if len(paths) < 8:
        pytest.skip(f"{MLFW_VAL} is absent")
    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])


# --------------------------------------------------------------------------- hand-written files


def _ndarray_bytes(a: np.ndarray, form: str = "v2", flag: int = 0) -> bytes:
    """One NDArray as MXNet's NDArray::Save (v2/v3) or LegacyLoad (v1, pre-v1) lay it out."""
    ctx = struct.pack("<ii", 1, 0)
    if form in ("v2", "v3"):
        head = struct.pack("<Ii", 0xF993FAC9 if form == "v2" else 0xF993FACA, 0)
        shape = struct.pack("<i", a.ndim) + struct.pack(f"<{a.ndim}q", *a.shape)
    elif form == "v1":
        head, shape = struct.pack("<I", 0xF993FAC8), struct.pack("<i", a.ndim) + struct.pack(
            f"<{a.ndim}q", *a.shape)
    else:  # pre-v1: the ndim is the first word, dims are uint32
        head, shape = b"", struct.pack("<I", a.ndim) + struct.pack(f"<{a.ndim}I", *a.shape)
    return head + shape + ctx + struct.pack("<i", flag) + a.astype(a.dtype.newbyteorder("<")).tobytes()


def _params_bytes(records: list[tuple[str, bytes]], names: bool = True) -> bytes:
    out = struct.pack("<QQQ", LIST_MAGIC, 0, len(records)) + b"".join(r for _, r in records)
    keys = [n.encode() for n, _ in records] if names else []
    out += struct.pack("<Q", len(keys)) + b"".join(struct.pack("<Q", len(k)) + k for k in keys)
    return out


def test_reader_round_trips_every_form(tmp_path):
    rng = np.random.default_rng(0)
    a32 = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    a16 = rng.normal(size=(5,)).astype(np.float16)
    a64 = rng.normal(size=(2, 3)).astype(np.float64)
    scalar = np.array(3.5, np.float32)
    path = tmp_path / "m.params"
    path.write_bytes(_params_bytes([
        ("arg:w", _ndarray_bytes(a32)), ("aux:mean", _ndarray_bytes(a16, "v1", flag=2)),
        ("arg:d", _ndarray_bytes(a64, "legacy", flag=1)), ("s", _ndarray_bytes(scalar, "v3")),
    ]))
    p = read_params(path)
    assert sorted(p.arrays) == ["d", "mean", "s", "w"] and p.aux == {"mean"}
    np.testing.assert_array_equal(p.arrays["w"], a32)
    assert p.arrays["mean"].dtype == np.float16 and p.arrays["d"].dtype == np.float64
    np.testing.assert_array_equal(p.arrays["mean"], a16)
    np.testing.assert_array_equal(p.arrays["d"], a64)
    assert p.arrays["s"].shape == () and float(p.arrays["s"]) == 3.5
    # bfloat16 (flag 12) is widened to float32
    bf = np.array([1.0, -2.5, 0.15625], np.float32)
    raw = (bf.view("<u4") >> 16).astype("<u2")
    path.write_bytes(_params_bytes([("arg:b", _ndarray_bytes(raw, flag=12))]))
    np.testing.assert_array_equal(read_params(path).arrays["b"], bf)
    # an unnamed list (mx.nd.save of a list): names None
    path.write_bytes(_params_bytes([("x", _ndarray_bytes(a32))], names=False))
    assert read_ndarray_list(path)[0][0] is None


def _damaged(data: bytes, damage: str) -> bytes:
    first = 24  # the first array's record starts after magic, reserved, count
    if damage == "truncated":
        return data[: len(data) // 2]
    if damage == "bad_magic":
        return struct.pack("<Q", 0x113) + data[8:]
    if damage == "bad_array_magic":
        return data[:first] + struct.pack("<I", 0xDEADBEEF) + data[first + 4:]
    if damage == "absurd_shape":  # the first dim of the first array (after magic, stype, ndim)
        return data[: first + 12] + struct.pack("<q", 1 << 40) + data[first + 20:]
    if damage == "absurd_count":
        return data[:16] + struct.pack("<Q", 1 << 50) + data[24:]
    if damage == "trailing_bytes":
        return data + b"\0"  # trailing byte
    if damage == "sparse":
        return data[: first + 4] + struct.pack("<i", 1) + data[first + 8:]
    raise AssertionError(damage)


@pytest.mark.parametrize("damage", ["truncated", "bad_magic", "bad_array_magic", "absurd_shape",
                                    "absurd_count", "trailing_bytes", "sparse"])
def test_reader_rejects_damaged_params(files, tmp_path, damage):
    bad = tmp_path / f"{damage}.params"
    bad.write_bytes(_damaged(files["model-0000.params"].read_bytes(), damage))
    with pytest.raises(InputError) as e:
        read_params(bad)
    msg = str(e.value)
    assert "\n" not in msg and str(bad) in msg and "expected" in msg


def test_reader_names_count_and_missing_file(tmp_path):
    a = np.zeros(3, np.float32)
    data = _params_bytes([("arg:a", _ndarray_bytes(a)), ("arg:b", _ndarray_bytes(a))])
    # one name for two arrays
    cut = data.rindex(struct.pack("<Q", 2))
    bad = tmp_path / "names.params"
    bad.write_bytes(data[:cut] + struct.pack("<Q", 1) + struct.pack("<Q", 5) + b"arg:a")
    with pytest.raises(InputError, match="2 names"):
        read_params(bad)
    bad.write_bytes(_params_bytes([("arg:a", _ndarray_bytes(a)), ("aux:a", _ndarray_bytes(a))]))
    with pytest.raises(InputError, match="unique"):
        read_params(bad)
    with pytest.raises(MissingError, match="file not found"):
        read_params(tmp_path / "absent.params")
    with pytest.raises(MissingError, match="file not found"):
        read_symbol(tmp_path / "absent-symbol.json")


@pytest.mark.parametrize("text", ["{not json", '["a list"]', '{"nodes": [], "heads": []}',
                                  '{"nodes": [{"op": "null"}], "heads": [[0, 0, 0]]}',
                                  '{"nodes": [{"op": "null", "name": "data", "inputs": []}], '
                                  '"heads": [[3, 0, 0]]}'])
def test_symbol_reader_rejects_other_json(tmp_path, text):
    bad = tmp_path / "x-symbol.json"
    bad.write_text(text)
    with pytest.raises(InputError) as e:
        read_symbol(bad)
    msg = str(e.value)
    assert "\n" not in msg and str(bad) in msg and "expected" in msg


# --------------------------------------------------------------------------- the real release


def test_reader_on_the_release(graph, params):
    assert len(params.arrays) == 284 and len(params.aux) == 100
    assert params.n_values() == N_PARAMS + 128
    assert params.arrays["conv_1_conv2d_weight"].shape == (64, 3, 3, 3)
    assert params.arrays["conv_6dw7_7_conv2d_weight"].shape == (512, 1, 7, 7)
    assert params.arrays["fc1_weight"].shape == (128, 512)
    assert {n for n in params.aux} == {n for n in params.arrays if n.endswith(("_moving_mean",
                                                                              "_moving_var"))}
    np.testing.assert_array_equal(params.arrays["fc1_gamma"], np.ones(128, np.float32))
    ops = [n.op for n in graph.ops()]
    assert len(graph.nodes) == 432 and len(ops) == 147 and graph.mxnet_version == 10000
    assert {o: ops.count(o) for o in set(ops)} == {
        "_minus_scalar": 1, "_mul_scalar": 1, "Convolution": 49, "BatchNorm": 50,
        "LeakyReLU": 33, "elemwise_add": 12, "FullyConnected": 1}
    assert graph.nodes[graph.heads[0][0]].name == "fc1"
    fc1 = graph.nodes[graph.heads[0][0]]
    assert fc1.attrs["eps"] == "2e-05" and fc1.attrs["fix_gamma"] == "True"


@pytest.mark.backend
def test_layers_names_counts(model):
    names = [x.name for x in model.layers]
    assert len(names) == N_LAYERS and model.count_params() == N_PARAMS
    assert names[:5] == ["data", "_minusscalar0", "_mulscalar0", "conv_1_conv2d_pad",
                         "conv_1_conv2d"]
    assert names[-6:] == ["conv_6sep_relu", "conv_6dw7_7_conv2d", "conv_6dw7_7_batchnorm",
                          "pre_fc1_flatten", "pre_fc1", "fc1"]
    kinds = [type(x).__name__ for x in model.layers]
    assert {k: kinds.count(k) for k in set(kinds)} == {
        "InputLayer": 1, "Rescaling": 2, "ZeroPadding2D": 17, "Conv2D": 32,
        "DepthwiseConv2D": 16, "GlobalDepthwiseConv2D": 1, "BatchNormalization": 50,
        "PReLU": 33, "Add": 12, "Flatten": 1, "Dense": 1}
    # the global depthwise 7x7 on 7x7 computed as a product and a sum: a DepthwiseConv2D still
    gdc = model.get_layer("conv_6dw7_7_conv2d")
    assert type(gdc).__name__ == "GlobalDepthwiseConv2D"
    assert isinstance(gdc, keras.layers.DepthwiseConv2D) and gdc.kernel.shape == (7, 7, 512, 1)
    assert tuple(model.get_layer(GRADCAM_LAYER).output.shape[1:]) == GRADCAM_SHAPE
    assert tuple(model.get_layer("conv_1_conv2d").output.shape[1:]) == (56, 56, 64)  # pad 1/1
    fc1 = model.get_layer("fc1")
    assert not fc1.scale and fc1.epsilon == pytest.approx(2e-5)  # fix_gamma, its own eps
    assert model.get_layer("conv_1_batchnorm").epsilon == pytest.approx(1e-3)  # MXNet's default
    assert model.output.shape[1:] == (128,)


@pytest.mark.backend
def test_last_n_layers_leave_batch_norm_frozen(graph, params):
    from mfr.training.siamese import set_trainable

    m = build_mobilefacenet(graph, params)  # its own copy: the flags change
    assert set_trainable(m, 5) == ["conv_6dw7_7_conv2d", "pre_fc1"]
    names = set_trainable(m, N_LAYERS)
    assert len(names) == 32 + 17 + 33 + 1  # convs, depthwise, PReLUs, dense; no BatchNormalization
    assert not any(isinstance(m.get_layer(n), keras.layers.BatchNormalization) for n in names)


@pytest.mark.backend
@pytest.mark.slow  # under JAX, Keras's random initialisers compile once per weight shape: ~10 s
def test_random_init_builds_and_runs(graph):
    keras.utils.set_random_seed(7)
    a = build_mobilefacenet(graph, input_shape=(112, 112, 3))
    keras.utils.set_random_seed(7)
    b = build_mobilefacenet(graph)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    alpha = a.get_layer("conv_1_relu").get_weights()[0]
    np.testing.assert_array_equal(alpha, np.full_like(alpha, 0.25))  # the graph's __init__
    x = np.random.default_rng(0).uniform(0, 255, (2, 112, 112, 3)).astype(np.float32)
    out = keras.ops.convert_to_numpy(a.predict_on_batch(x))
    assert out.shape == (2, 128) and np.isfinite(out).all()


@pytest.mark.backend
def test_port_matches_ncnn_on_real_photos(model, files, photos):
    from mfr.backbones.embedders.ncnn_mobilefacenet import ncnn_embed

    pytest.importorskip("ncnn")
    ref = ncnn_embed(photos, files["mobilefacenet.param"], files["mobilefacenet.bin"])
    out = keras.ops.convert_to_numpy(model.predict_on_batch(photos.astype(np.float32)))
    out, ref = out.astype(np.float64), ref.astype(np.float64)
    cos = (out * ref).sum(1) / np.linalg.norm(out, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() >= 0.9999, cos
    # measured: 1 - cos <= 6e-10, |diff| <= 7e-5 on lengths 7-11 (most of it ncnn's 0.007812)
    assert np.abs(out - ref).max() <= 1e-3


def test_errors_name_the_node_or_file(graph, params, tmp_path):
    nodes = [dataclasses.replace(n, op="Pooling") if n.name == "conv_6dw7_7_conv2d" else n
             for n in graph.nodes]
    with pytest.raises(InputError, match="conv_6dw7_7_conv2d.*Pooling") as e:
        build_mobilefacenet(dataclasses.replace(graph, nodes=nodes))
    assert "\n" not in str(e.value) and str(graph.path) in str(e.value)
    arrays = dict(params.arrays, conv_1_conv2d_weight=np.zeros((64, 3, 5, 5), np.float32))
    with pytest.raises(InputError, match=r"conv_1_conv2d_weight.*\(64, 3, 3, 3\).*\(64, 3, 5, 5\)"):
        build_mobilefacenet(graph, dataclasses.replace(params, arrays=arrays))
    arrays = {k: v for k, v in params.arrays.items() if k != "pre_fc1_bias"}
    with pytest.raises(InputError, match="pre_fc1_bias.*missing"):
        build_mobilefacenet(graph, dataclasses.replace(params, arrays=arrays))
    arrays = dict(params.arrays, fc7_weight=np.zeros((10, 128), np.float32))
    with pytest.raises(InputError, match="1 more.*fc7_weight"):
        build_mobilefacenet(graph, dataclasses.replace(params, arrays=arrays))


# --------------------------------------------------------------------------- the ncnn embedder


def test_ncnn_embedder(files, photos):
    pytest.importorskip("ncnn")
    from mfr.backbones.embedders.ncnn_mobilefacenet import NcnnMobileFaceNetEmbedder, ncnn_embed

    emb = NcnnMobileFaceNetEmbedder(files["mobilefacenet.param"], files["mobilefacenet.bin"],
                                    image_size=112, face_box="crop")  # already aligned
    out = emb.embed(photos[:3])
    raw = ncnn_embed(photos[:3], files["mobilefacenet.param"], files["mobilefacenet.bin"])
    assert out.shape == (3, 128) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(emb.norms, np.linalg.norm(raw, axis=1), rtol=1e-5)
    assert not emb.flags["failed"].any() and emb.n_images == 3
    d = emb.describe()
    assert d["image_size"] == 112 and d["dim"] == 128 and "non-commercial" in d["weights_licence"]
    with pytest.raises(InputError, match=r"\(N, 112, 112, 3\) uint8"):
        emb.embed(photos[:2].astype(np.float32))
    with pytest.raises(MissingError, match="absent.param"):
        NcnnMobileFaceNetEmbedder(files["mobilefacenet.param"].parent / "absent.param",
                                  files["mobilefacenet.bin"])


# --------------------------------------------------------------------------- the files


def test_files_record_matches_the_release(files, monkeypatch):
    for f in FILES:
        data = files[f.name].read_bytes()
        assert len(data) == f.size and hashlib.sha256(data).hexdigest() == f.sha256
        assert f.url.startswith("https://raw.githubusercontent.com/liguiyuan/mobilefacenet-ncnn/")
    monkeypatch.setenv(ENV_DIR, str(MODELS))
    assert mobilefacenet_dir() == MODELS
    assert mobilefacenet_files(progress=False) == files  # found and checked, nothing fetched


@pytest.mark.backend
def test_load_from_paths(files, model):
    m = load_mxnet_mobilefacenet(files["model-symbol.json"], files["model-0000.params"])
    assert [x.name for x in m.layers] == [x.name for x in model.layers]
    for a, b in zip(m.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


PAYLOADS = {"a.json": b'{"nodes": []}' * 100,
            "b.bin": np.random.default_rng(3).integers(0, 256, 200_000, dtype=np.uint8).tobytes()}


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server API)
        self.server.requests.append((self.path, self.headers.get("Range")))
        body = PAYLOADS.get(self.path.lstrip("/"))
        if body is None:
            self.send_error(404)
            return
        start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0]) \
            if self.headers.get("Range") else 0
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.requests = []
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}/"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _record(base: str, corrupt: str | None = None) -> tuple[WeightFile, ...]:
    return tuple(WeightFile(n, base + n, "0" * 64 if n == corrupt else hashlib.sha256(b).hexdigest(),
                            len(b)) for n, b in PAYLOADS.items())


def test_download_resume_and_cache(server, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    monkeypatch.delenv(ENV_DIR, raising=False)
    cache = tmp_path / "kh" / "models" / "insightface-mobilefacenet"
    assert mobilefacenet_dir() == cache
    cache.mkdir(parents=True)
    (cache / "b.bin.part").write_bytes(PAYLOADS["b.bin"][:12_345])  # an interrupted download
    got = mobilefacenet_files(progress=False, files=_record(server.base))
    assert got == {n: cache / n for n in PAYLOADS}
    assert all(got[n].read_bytes() == b for n, b in PAYLOADS.items())
    assert ("/b.bin", "bytes=12345-") in server.requests and not (cache / "b.bin.part").exists()
    n = len(server.requests)
    assert mobilefacenet_files(progress=False, files=_record(server.base)) == got
    assert len(server.requests) == n  # cached: nothing fetched again


def test_download_sha_mismatch_and_offline(server, tmp_path):
    with pytest.raises(InputError, match="sha256 mismatch"):
        mobilefacenet_files(progress=False, cache_dir=tmp_path, files=_record(server.base, "b.bin"))
    assert not (tmp_path / "b.bin").exists() and (tmp_path / "a.json").is_file()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    offline = _record(f"http://127.0.0.1:{port}/")
    with pytest.raises(WeightsDownloadError) as e:
        mobilefacenet_files(progress=False, cache_dir=tmp_path / "new", files=offline, timeout=5)
    msg = str(e.value)
    assert "\n" not in msg and offline[0].url in msg and str(tmp_path / "new" / "a.json") in msg
    assert ENV_DIR in msg


@pytest.mark.backend
@pytest.mark.parametrize("multiplier,bias", [(1, False), (2, True)])
def test_global_depthwise_is_the_depthwise_convolution(multiplier, bias):
    from mfr.backbones.formats.mxnet_keras import GlobalDepthwiseConv2D

    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 7, 7, 6)).astype("float32")
    plain = keras.layers.DepthwiseConv2D(7, depth_multiplier=multiplier, use_bias=bias)
    mine = GlobalDepthwiseConv2D(7, depth_multiplier=multiplier, use_bias=bias)
    plain.build(x.shape)
    mine.build(x.shape)
    weights = [rng.normal(size=w.shape).astype("float32") for w in plain.get_weights()]
    plain.set_weights(weights)
    mine.set_weights(weights)
    want, got = np.asarray(plain(x)), np.asarray(mine(x))
    assert got.shape == want.shape == (4, 1, 1, 6 * multiplier)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert mine.get_config() == {**plain.get_config(), "name": mine.name}
