"""Legacy keras-vggface HDF5 weights (read/write, strict errors) and the weights download."""

from __future__ import annotations

import hashlib
import http.server
import json
import shutil
import socket
import threading
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from mfr.backbones.formats.legacy_h5 import load_legacy_h5, save_legacy_h5
from mfr.backbones.vggface import build_senet50, senet50
from mfr.backbones.vggface.pretrained import (
    VGGFACE2,
    WeightsDownloadError,
    get_weights_file,
    weights_cache_dir,
)
from mfr.backbones.vggface.senet50 import vggface_name

VGGFACE2_SENET50_FILE, VGGFACE2_SENET50_URL = VGGFACE2["file"], VGGFACE2["url"]


def _randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(
                [rng.normal(0, 0.05, w.shape).astype("float32") for w in layer.weights]
            )
            if isinstance(layer, keras.layers.BatchNormalization):
                g, b, mean, var = layer.get_weights()
                layer.set_weights([1 + g, b, mean, 1 + np.abs(var)])
    return model


def _images(n=2, seed=0):
    return np.random.default_rng(seed).uniform(-130, 160, (n, 224, 224, 3)).astype("float32")


def _assert_same_weights(a, b):
    assert [x.name for x in a.layers] == [x.name for x in b.layers]
    for la, lb in zip(a.layers, b.layers, strict=True):
        for wa, wb in zip(la.get_weights(), lb.get_weights(), strict=True):
            np.testing.assert_array_equal(wa, wb, err_msg=la.name)


@pytest.fixture(scope="module")
def source_model():
    return _randomize(build_senet50(kernel_initializer="zeros"), seed=0)


@pytest.fixture(scope="module")
def target_model():
    return build_senet50(kernel_initializer="zeros")


# --------------------------------------------------------------------------- round trip


@pytest.mark.backend
def test_round_trip_through_legacy_h5(source_model, tmp_path, monkeypatch):
    path = save_legacy_h5(source_model, tmp_path / "w.h5", file_name=vggface_name)
    with h5py.File(path, "r") as f:  # keras-vggface layout: '/' names -> nested groups
        names = [n.decode() for n in f.attrs["layer_names"]]
        assert len(names) == 287 and "conv1/7x7_s2/bn" in names
        assert isinstance(f.attrs["keras_version"], bytes | np.bytes_)
        assert "bn" in f["conv1/7x7_s2"]
        assert [n.decode() for n in f["conv1/7x7_s2/bn"].attrs["weight_names"]] == [
            f"conv1/7x7_s2/bn/{w}:0" for w in ("gamma", "beta", "moving_mean", "moving_variance")
        ]
        assert [n.decode() for n in f["conv2_1_1x1_up"].attrs["weight_names"]] == [
            "conv2_1_1x1_up/kernel:0",
            "conv2_1_1x1_up/bias:0",
        ]
        assert f["conv1/7x7_s2"]["conv1/7x7_s2/kernel:0"].shape == (7, 7, 3, 64)
    # weights="vggface2" takes the cached file from $KERAS_HOME/models/vggface (no download)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    cached = tmp_path / "kh" / "models" / "vggface" / VGGFACE2_SENET50_FILE
    cached.parent.mkdir(parents=True)
    shutil.copy(path, cached)
    loaded = senet50(weights="vggface2")
    _assert_same_weights(source_model, loaded)
    x = _images(2)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded.predict_on_batch(x)),
        keras.ops.convert_to_numpy(source_model.predict_on_batch(x)),
    )


# --------------------------------------------------------------------------- hand-written file


def _layer_weight_names(name: str, n: int) -> list[str]:
    kinds = {
        1: ["kernel"],
        2: ["kernel", "bias"],
        4: ["gamma", "beta", "moving_mean", "moving_variance"],
    }
    return [f"{name}/{k}:0" for k in kinds[n]]


def _write_keras_vggface_file(path, layers, under_model_weights=False, chunk_layer_names=False):
    """keras-vggface's Keras 2 layout, written with h5py only: bytes attrs, nested groups."""
    arrays = {}
    rng = np.random.default_rng(7)
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if under_model_weights else f
        f.attrs["keras_version"] = b"2.2.4"
        f.attrs["backend"] = b"tensorflow"
        names = [r["name"] or f"{r['class'].lower()}_{r['index']}" for r in layers]
        encoded = np.array([n.encode("utf8") for n in names])
        if chunk_layer_names:  # Keras 2 splits attributes over the HDF5 header limit
            root.attrs["layer_names0"] = encoded[: len(encoded) // 2]
            root.attrs["layer_names1"] = encoded[len(encoded) // 2 :]
        else:
            root.attrs["layer_names"] = encoded
        for r, name in zip(layers, names, strict=True):
            g = root.create_group(name)  # 'conv1/7x7_s2/bn' -> group bn inside conv1/7x7_s2
            wnames = _layer_weight_names(name, len(r["weights"])) if r["weights"] else []
            g.attrs["weight_names"] = np.array([w.encode("utf8") for w in wnames])
            for wn, shape in zip(wnames, r["weights"], strict=True):
                a = rng.normal(0, 0.05, shape).astype("float32")
                g.create_dataset(wn, data=a)  # i.e. <group>/conv1/7x7_s2/bn/gamma:0
                arrays[(name, wn.rsplit("/", 1)[1])] = a
    return arrays


@pytest.fixture(scope="module")
def reference(reference_layers):
    return json.loads(Path(reference_layers).read_text())["layers"]


@pytest.mark.backend
def test_load_hand_written_keras_vggface_file(reference, target_model, tmp_path):
    path = tmp_path / VGGFACE2_SENET50_FILE
    arrays = _write_keras_vggface_file(path, reference)
    with h5py.File(path, "r") as f:
        assert "conv1/7x7_s2/bn/conv1/7x7_s2/bn/gamma:0" in f  # the nesting Keras 2 produced
    loaded = load_legacy_h5(target_model, path)
    assert len(loaded) == sum(1 for r in reference if r["name"])
    order = {
        1: ["kernel"],
        2: ["kernel", "bias"],
        4: ["gamma", "beta", "moving_mean", "moving_variance"],
    }
    for r in reference:
        if not r["name"]:
            continue
        layer = target_model.get_layer(r["name"].replace("/", "_"))
        for w, kind in zip(layer.get_weights(), order[len(r["weights"])], strict=True):
            np.testing.assert_array_equal(w, arrays[(r["name"], f"{kind}:0")], err_msg=r["name"])


def _tiny(filters=64, extra=False):
    """A two-layer model whose names match the start of SENet50 (cheap strict-load tests)."""
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(
        filters, 7, strides=2, padding="same", use_bias=False, name="conv1_7x7_s2"
    )(inp)
    x = keras.layers.BatchNormalization(epsilon=1e-4, name="conv1_7x7_s2_bn")(x)
    if extra:
        x = keras.layers.Conv2D(4, 1, name="not_in_file")(x)
    return keras.Model(inp, x)


@pytest.mark.backend
@pytest.mark.parametrize("layout", ["model_weights", "chunked_layer_names"])
def test_load_other_keras2_layouts(reference, layout, tmp_path):
    path = tmp_path / "w.h5"
    arrays = _write_keras_vggface_file(
        path,
        reference[:5],
        under_model_weights=layout == "model_weights",
        chunk_layer_names=layout == "chunked_layer_names",
    )
    m = _tiny()
    assert load_legacy_h5(m, path) == ["conv1_7x7_s2", "conv1_7x7_s2_bn"]
    np.testing.assert_array_equal(
        m.get_layer("conv1_7x7_s2").get_weights()[0], arrays[("conv1/7x7_s2", "kernel:0")]
    )
    np.testing.assert_array_equal(
        m.get_layer("conv1_7x7_s2_bn").get_weights()[3],
        arrays[("conv1/7x7_s2/bn", "moving_variance:0")],
    )


# --------------------------------------------------------------------------- strict errors


@pytest.fixture
def small_file(reference, tmp_path):
    path = tmp_path / "small.h5"
    _write_keras_vggface_file(path, reference[:5])
    return path


@pytest.mark.backend
def test_strict_missing_layer(small_file):
    m = _tiny(extra=True)
    with pytest.raises(ValueError, match="not_in_file") as e:
        load_legacy_h5(m, small_file)
    assert str(small_file) in str(e.value) and "(1, 1, 64, 4)" in str(e.value)
    assert load_legacy_h5(m, small_file, strict=False) == ["conv1_7x7_s2", "conv1_7x7_s2_bn"]


@pytest.mark.backend
def test_strict_wrong_shape(small_file):
    with pytest.raises(ValueError, match="conv1_7x7_s2") as e:
        load_legacy_h5(_tiny(filters=32), small_file)
    msg = str(e.value)
    assert str(small_file) in msg and "(7, 7, 3, 32)" in msg and "(7, 7, 3, 64)" in msg
    with pytest.raises(ValueError, match="conv1_7x7_s2"):
        load_legacy_h5(_tiny(filters=32), small_file, strict=False)


@pytest.mark.backend
def test_not_a_legacy_file(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(ValueError, match="layer_names"):
        load_legacy_h5(_tiny(), path)


# --------------------------------------------------------------------------- download

PAYLOAD = np.random.default_rng(3).integers(0, 256, 300_000, dtype=np.uint8).tobytes()


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server API)
        server = self.server
        server.requests.append(dict(self.headers))
        if self.path != "/w.h5":
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and server.honour_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD) - start))
        self.end_headers()
        self.wfile.write(PAYLOAD[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.requests = []
    httpd.honour_range = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/w.h5"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_cache_dir_honours_keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    assert weights_cache_dir() == tmp_path / "kh" / "models" / "vggface"
    monkeypatch.delenv("KERAS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert weights_cache_dir() == tmp_path / "home" / ".keras" / "models" / "vggface"
    assert VGGFACE2_SENET50_URL.endswith("/v2.0/" + VGGFACE2_SENET50_FILE)


def test_fresh_download_into_keras_home(server, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    path = get_weights_file(fname="w.h5", url=server.url, progress=False)
    assert path == tmp_path / "kh" / "models" / "vggface" / "w.h5"
    assert path.read_bytes() == PAYLOAD
    assert not (path.parent / "w.h5.part").exists()
    assert len(server.requests) == 1 and "Range" not in server.requests[0]
    assert get_weights_file(fname="w.h5", url=server.url, progress=False) == path  # once
    assert len(server.requests) == 1


@pytest.mark.parametrize("honour_range", [True, False])
def test_resume_partial_download(server, tmp_path, honour_range):
    server.honour_range = honour_range
    part = tmp_path / "w.h5.part"
    part.write_bytes(PAYLOAD[:123_457])
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    path = get_weights_file(
        fname="w.h5", url=server.url, sha256=sha, cache_dir=tmp_path, progress=False
    )
    assert server.requests[0]["Range"] == "bytes=123457-"
    assert path.read_bytes() == PAYLOAD  # byte-identical, also when the server ignores Range
    assert not part.exists()


def test_sha256_mismatch(server, tmp_path):
    wrong = "0" * 64
    with pytest.raises(ValueError) as e:
        get_weights_file(
            fname="w.h5", url=server.url, sha256=wrong, cache_dir=tmp_path, progress=False
        )
    msg = str(e.value)
    assert str(tmp_path / "w.h5") in msg and wrong in msg
    assert hashlib.sha256(PAYLOAD).hexdigest() in msg
    assert not (tmp_path / "w.h5").exists() and not (tmp_path / "w.h5.part").exists()


def test_cached_file_failing_the_pin_is_fetched_again(server, tmp_path):
    (tmp_path / "w.h5").write_bytes(b"corrupt")
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    path = get_weights_file(
        fname="w.h5", url=server.url, sha256=sha, cache_dir=tmp_path, progress=False
    )
    assert path.read_bytes() == PAYLOAD


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_error_says_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    url = f"http://127.0.0.1:{_closed_port()}/{VGGFACE2_SENET50_FILE}"
    with pytest.raises(WeightsDownloadError) as e:
        get_weights_file(url=url, progress=False, timeout=5)
    msg = str(e.value)
    target = tmp_path / "kh" / "models" / "vggface" / VGGFACE2_SENET50_FILE
    assert "\n" not in msg and str(target) in msg and url in msg
    assert not target.exists()


def test_http_error_is_reported(server, tmp_path):
    with pytest.raises(WeightsDownloadError, match="404"):
        get_weights_file(
            fname="w.h5",
            url=server.url.replace("w.h5", "missing.h5"),
            cache_dir=tmp_path,
            progress=False,
        )
