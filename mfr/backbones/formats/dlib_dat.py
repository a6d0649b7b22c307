"""A pure-Python (numpy) reader of dlib's face ResNet file, ``dlib_face_recognition_resnet_model_v1.dat``.

The format, as dlib's sources define it (``dlib/serialize.h``, ``dlib/float_details.h``,
``dlib/cuda/tensor.h``, ``dlib/dnn/core.h``, ``layers.h``, ``input.h``, ``loss.h``):

- integer: a control byte (bit 7: negative; low 4 bits: n, 1..8) then |value| in n
  little-endian bytes (0 is ``01 00``); bool: the character ``'0'`` or ``'1'``; string: its
  length as an integer, then its bytes; float: integer mantissa m then integer exponent e,
  value m * 2**e (e = 32000/32001/32002: +inf/-inf/nan).
- tensor: integer version 2, num_samples, k, nr, nc, then the values as raw little-endian
  float32 (NCHW). An alias tensor (a view into a layer's ``params``): version 1 and its 4 sizes.
- the network is written as dlib deserialises it, by type: ``add_loss_layer`` writes its
  version (1), its loss, then its subnetwork; each ``add_layer`` writes its version, *then its
  subnetwork*, then its own layer and state (bools and tensors); tag and skip wrappers write
  only a version. The file therefore opens with the versions of every wrapper from the output
  down to the input, then the input layer, then the layers from input to output. Tag and
  skip versions are bare integers with no name, so the file can only be read against an
  expected architecture: :func:`expected_layers` (from :data:`STAGES`, dlib's ``anet_type``
  in ``tools/python/src/face_recognition.cpp``) is that architecture, and every version
  string and hyper-parameter read is checked against it.

:func:`read_dlib_net` returns a :class:`DlibNet`: the records in input-to-output order, with
the parameters reshaped (conv filters (out, in, rows, cols) as dlib stores them; affine gamma
and beta per channel; fc weights (inputs, outputs)). Anything else -- a missing or truncated
file, another dlib network, a version this reader does not know -- raises
:class:`mfr.core.errors.InputError` (or :class:`~mfr.core.errors.MissingError`) in one line naming the
file and what was expected.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mfr.core.errors import InputError, MissingError

__all__ = ["GRADCAM_LAYER", "GRADCAM_SHAPE", "STAGES", "WEIGHTS_FILE", "DlibLayer", "DlibNet",
           "default_weights_path", "expected_layers", "read_dlib_net"]

#: the released file, shipped in the PyPI package face_recognition_models
WEIGHTS_FILE = "dlib_face_recognition_resnet_model_v1.dat"

#: dlib's ``input_rgb_image`` means (R, G, B), as stored in the file (float32)
MEAN_RGB = (122.782, 117.001, 104.298)

#: dlib's residual stages, input to output: (stage, blocks, filters, first block downsamples).
#: dlib's ``alevel4`` .. ``alevel0``: ``ares<32>`` x3; ``ares_down<64>`` + ``ares<64>`` x3;
#: ``ares_down<128>`` + ``ares<128>`` x2; ``ares_down<256>`` + ``ares<256>`` x2; ``ares_down<256>``.
STAGES: tuple[tuple[int, int, int, bool], ...] = (
    (2, 3, 32, False),
    (3, 4, 64, True),
    (4, 3, 128, True),
    (5, 3, 256, True),
    (6, 1, 256, True),
)
INPUT_SIZE = 150
STEM_FILTERS = 32
EMBEDDING_SIZE = 128
#: the last layer with a spatial map finer than 2x2, Grad-CAM's (stage 5's output) and its map at
#: 150 px: the last block (res6a) is 2x2, and only its top-left cell holds the conv branch (1x1,
#: zero-filled to 2x2 by add_prev); the other three cells are the pooled shortcut alone
GRADCAM_LAYER = "res5c_relu"
GRADCAM_SHAPE = (4, 4, 256)

#: the record kinds that are dlib ``add_layer``s (the others are tag/skip wrappers)
_ADD_LAYERS = ("con", "affine", "relu", "max_pool", "avg_pool", "add_prev", "fc")
#: the layer versions this reader knows (dlib 19.x/20.x accept these for the layers here)
_VERSIONS = {
    "con": ("con_4", "con_5", "con_6"),
    "affine": ("affine_", "affine_2"),
    "relu": ("relu_", "relu_2"),
    "max_pool": ("max_pool_2",),
    "avg_pool": ("avg_pool_2",),
    "add_prev": ("add_prev_",),
    "fc": ("fc_2", "fc_3"),
}


@dataclass
class DlibLayer:
    """One record of the network: ``kind`` (con, affine, relu, max_pool, avg_pool, add_prev,
    tag, skip, fc), the Keras layer ``name`` it becomes, its ``version`` string as read (tag and
    skip: their integer version), ``hyper`` (sizes, strides, paddings, tag ids) and ``params``
    (numpy float32 arrays)."""

    kind: str
    name: str
    hyper: dict[str, Any]
    version: str = ""
    params: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class DlibNet:
    """A whole file: the input layer's facts, the layers input to output, the loss's facts."""

    path: Path
    input: dict[str, Any]  # version, mean (R, G, B) as float32, size (rows, cols)
    layers: list[DlibLayer]
    loss: dict[str, Any]  # version, margin, distance_threshold

    def of_kind(self, kind: str) -> list[DlibLayer]:
        return [layer for layer in self.layers if layer.kind == kind]

    def by_name(self) -> dict[str, DlibLayer]:
        return {layer.name: layer for layer in self.layers}


def _con(name: str, filters: int, size: int, stride: int) -> DlibLayer:
    # dlib's con_/pool defaults: padding = size/2 at stride 1, else 0
    pad = size // 2 if stride == 1 else 0
    return DlibLayer("con", name, {"num_filters": filters, "nr": size, "nc": size,
                                   "stride_y": stride, "stride_x": stride,
                                   "padding_y": pad, "padding_x": pad})


def _pool(kind: str, name: str, size: int, stride: int) -> DlibLayer:
    pad = size // 2 if stride == 1 else 0
    return DlibLayer(kind, name, {"nr": size, "nc": size, "stride_y": stride, "stride_x": stride,
                                  "padding_y": pad, "padding_x": pad})


def block_prefix(stage: int, block: int) -> str:
    """``res2a``, ``res2b``, ... (block counts from 0)."""
    return f"res{stage}{'abcdefgh'[block]}"


def expected_layers() -> list[DlibLayer]:
    """dlib's ``anet_type`` as records (no parameters), input to output, with their Keras names.

    A block (dlib's ``block``): conv 3x3 (stride 2 in a down block) -> affine -> relu -> conv
    3x3 -> affine. ``ares``: tag1, block, add_prev1 (adds the tag1 input), relu. ``ares_down``:
    tag1, block, tag2, skip1 (back to the tag1 input), avg_pool 2x2/2, add_prev2 (adds the
    block's output), relu.
    """
    out = [_con("conv1", STEM_FILTERS, 7, 2), DlibLayer("affine", "conv1_affine", {}),
           DlibLayer("relu", "conv1_relu", {}), _pool("max_pool", "pool1", 3, 2)]
    for stage, blocks, filters, down in STAGES:
        for b in range(blocks):
            p = block_prefix(stage, b)
            stride = 2 if (down and b == 0) else 1
            out += [DlibLayer("tag", f"{p}_tag1", {"id": 1}),
                    _con(f"{p}_conv1", filters, 3, stride), DlibLayer("affine", f"{p}_conv1_affine", {}),
                    DlibLayer("relu", f"{p}_conv1_relu", {}),
                    _con(f"{p}_conv2", filters, 3, 1), DlibLayer("affine", f"{p}_conv2_affine", {})]
            if stride == 2:
                out += [DlibLayer("tag", f"{p}_tag2", {"id": 2}),
                        DlibLayer("skip", f"{p}_skip1", {"id": 1}),
                        _pool("avg_pool", f"{p}_shortcut_pool", 2, 2),
                        DlibLayer("add_prev", f"{p}_add", {"tag": 2})]
            else:
                out.append(DlibLayer("add_prev", f"{p}_add", {"tag": 1}))
            out.append(DlibLayer("relu", f"{p}_relu", {}))
    # avg_pool_everything: avg_pool_<0,0,1,1> (window = the whole input; padding 0/2 = 0)
    out.append(DlibLayer("avg_pool", "global_pool", {"nr": 0, "nc": 0, "stride_y": 1, "stride_x": 1,
                                                     "padding_y": 0, "padding_x": 0}))
    out.append(DlibLayer("fc", "fc", {"num_outputs": EMBEDDING_SIZE, "bias": False}))
    return out


class _Stream:
    """dlib's primitive types read from bytes; any problem is an InputError naming the file."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.pos, self.path = data, 0, path

    def fail(self, expected: str, found: str | None = None) -> InputError:
        got = f", found {found}" if found is not None else ""
        return InputError(f"{self.path}: not dlib's face ResNet (dlib_face_recognition_resnet_model_v1): "
                          f"expected {expected} at byte {self.pos}{got}")

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise self.fail(what, f"end of file ({len(self.data)} bytes: truncated?)")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def int(self, what: str = "an integer", signed: bool = True) -> int:
        start = self.pos
        ctrl = self.take(1, what)[0]
        n = ctrl & 0x0F
        if n == 0 or n > 8 or ctrl & 0x70 or (ctrl & 0x80 and not signed):
            self.pos = start
            raise self.fail(what, f"control byte 0x{ctrl:02x}")
        value = int.from_bytes(self.take(n, what), "little")
        return -value if ctrl & 0x80 else value

    def version(self, expected: int | tuple[int, ...], what: str) -> int:
        ok = (expected,) if isinstance(expected, int) else expected
        start = self.pos
        v = self.int(f"{what} version {ok}")
        if v not in ok:
            self.pos = start
            raise self.fail(f"{what} version {' or '.join(map(str, ok))}", str(v))
        return v

    def bool(self, what: str) -> bool:
        ch = self.take(1, what)
        if ch not in (b"0", b"1"):
            self.pos -= 1
            raise self.fail(what, repr(ch))
        return ch == b"1"

    def string(self, what: str, max_len: int = 64) -> str:
        start = self.pos
        n = self.int(what, signed=False)
        if n > max_len:
            self.pos = start
            raise self.fail(what, f"a string of {n} bytes")
        raw = self.take(n, what)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            self.pos = start
            raise self.fail(what, repr(raw[:20])) from None

    def name(self, allowed: tuple[str, ...], what: str) -> str:
        start = self.pos
        s = self.string(f"{what} ({' or '.join(allowed)})")
        if s not in allowed:
            self.pos = start
            raise self.fail(f"{what} ({' or '.join(allowed)})", repr(s))
        return s

    def float(self, what: str) -> float:
        m, e = self.int(what), self.int(what)
        if e == 32000:
            return float("inf")
        if e == 32001:
            return float("-inf")
        if e == 32002:
            return float("nan")
        return float(np.ldexp(np.float64(m), e))

    def tensor(self, what: str) -> np.ndarray:
        self.version(2, f"{what} tensor")
        shape = tuple(self.int(f"{what} tensor size") for _ in range(4))
        if min(shape) < 0:
            raise self.fail(f"{what} tensor sizes >= 0", str(shape))
        n = int(np.prod(shape))
        raw = self.take(4 * n, f"{what} tensor data ({n} float32)")
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def alias(self, what: str) -> tuple[int, ...]:
        self.version(1, f"{what} alias tensor")
        return tuple(self.int(f"{what} alias tensor size") for _ in range(4))


def _check(s: _Stream, what: str, found: Any, expected: Any) -> None:
    if found != expected:
        raise s.fail(f"{what} {expected}", str(found))


def _read_details(s: _Stream, spec: DlibLayer, in_channels: int) -> tuple[DlibLayer, int]:
    """One layer's own record (its ``serialize`` in layers.h). Returns it and its out channels."""
    kind, h, what = spec.kind, spec.hyper, f"{spec.name} ({spec.kind}_)"
    rec = DlibLayer(kind, spec.name, dict(h))
    rec.version = s.name(_VERSIONS[kind], f"{what} version")
    if kind == "con":
        params = s.tensor(f"{what} params")
        got = {"num_filters": s.int(), "nr": s.int(), "nc": s.int(), "stride_y": s.int(),
               "stride_x": s.int(), "padding_y": s.int(), "padding_x": s.int()}
        for key, value in h.items():
            _check(s, f"{what} {key}", got[key], value)
        f_shape, b_shape = s.alias(f"{what} filters"), s.alias(f"{what} biases")
        for k in ("learning_rate", "weight_decay", "bias_learning_rate", "bias_weight_decay"):
            s.float(f"{what} {k} multiplier")
        use_bias = s.bool(f"{what} use_bias") if rec.version in ("con_5", "con_6") else True
        if rec.version == "con_6" and s.bool(f"{what} use_relu"):
            raise s.fail(f"{what} without a fused relu", "use_relu=1")
        o = h["num_filters"]
        _check(s, f"{what} filters shape", f_shape, (o, in_channels, h["nr"], h["nc"]))
        n_w = int(np.prod(f_shape))
        _check(s, f"{what} params size", params.size, n_w + (o if use_bias else 0))
        flat = params.reshape(-1)
        rec.params["filters"] = flat[:n_w].reshape(f_shape).copy()
        if use_bias:
            _check(s, f"{what} biases shape", b_shape, (1, o, 1, 1))
            rec.params["biases"] = flat[n_w:].copy()
        else:
            rec.params["biases"] = np.zeros(o, np.float32)
        return rec, o
    if kind == "affine":
        params = s.tensor(f"{what} params")
        g_shape, b_shape = s.alias(f"{what} gamma"), s.alias(f"{what} beta")
        mode = s.int(f"{what} mode")
        disabled = s.bool(f"{what} disabled") if rec.version == "affine_2" else False
        _check(s, f"{what} mode (0: per channel)", mode, 0)
        _check(s, f"{what} disabled", disabled, False)
        _check(s, f"{what} gamma shape", g_shape, (1, in_channels, 1, 1))
        _check(s, f"{what} beta shape", b_shape, (1, in_channels, 1, 1))
        _check(s, f"{what} params size", params.size, 2 * in_channels)
        flat = params.reshape(-1)
        rec.params["gamma"], rec.params["beta"] = flat[:in_channels].copy(), flat[in_channels:].copy()
        return rec, in_channels
    if kind == "relu":
        if rec.version == "relu_2" and s.bool(f"{what} disabled"):
            raise s.fail(f"{what} enabled", "disabled=1")
        return rec, in_channels
    if kind in ("max_pool", "avg_pool"):
        got = {"nr": s.int(), "nc": s.int(), "stride_y": s.int(), "stride_x": s.int(),
               "padding_y": s.int(), "padding_x": s.int()}
        for key, value in h.items():
            _check(s, f"{what} {key}", got[key], value)
        return rec, in_channels
    if kind == "add_prev":
        return rec, in_channels  # the caller knows the channels of both inputs
    if kind == "fc":
        n_out, n_in = s.int(f"{what} num_outputs"), s.int(f"{what} num_inputs")
        params = s.tensor(f"{what} params")
        w_shape, _ = s.alias(f"{what} weights"), s.alias(f"{what} biases")
        bias_mode = s.int(f"{what} bias mode")
        for k in ("learning_rate", "weight_decay", "bias_learning_rate", "bias_weight_decay"):
            s.float(f"{what} {k} multiplier")
        if rec.version == "fc_3":
            s.bool(f"{what} use_bias")
        _check(s, f"{what} num_outputs", n_out, h["num_outputs"])
        _check(s, f"{what} num_inputs", n_in, in_channels)
        _check(s, f"{what} bias mode (1: no bias)", bias_mode, 1)
        _check(s, f"{what} weights shape", w_shape, (n_in, n_out, 1, 1))
        _check(s, f"{what} params shape", params.shape, (n_in, n_out, 1, 1))
        rec.params["weights"] = params.reshape(n_in, n_out).copy()  # output = input @ weights
        return rec, n_out
    raise AssertionError(kind)


def _read_state(s: _Stream, what: str, version: int, bottom: bool) -> None:
    """An ``add_layer``'s state after its layer: three bools and cached tensors (unused here)."""
    for flag in ("this_layer_setup_called", "gradient_input_is_stale",
                 "get_output_and_gradient_input_disabled"):
        s.bool(f"{what} {flag}")
    for t in ("x_grad", "cached_output"):
        s.tensor(f"{what} {t}")
    if bottom:
        s.tensor(f"{what} grad_final")
        if version >= 3:
            s.int(f"{what} sample_expansion_factor")
    elif version == 2:
        s.tensor(f"{what} params_grad")


def read_dlib_net(path: str | Path) -> DlibNet:
    """Read ``dlib_face_recognition_resnet_model_v1.dat`` (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise MissingError(f"{path}: file not found (expected dlib_face_recognition_resnet_model_v1.dat)")
    s = _Stream(path.read_bytes(), path)
    spec = expected_layers()
    # add_loss_layer: version 1, then the loss
    s.version(1, "add_loss_layer")
    loss_version = s.name(("loss_metric_", "loss_metric_2"), "loss layer version")
    loss: dict[str, Any] = {"version": loss_version, "margin": 0.1, "distance_threshold": 0.75}
    if loss_version == "loss_metric_2":
        loss["margin"], loss["distance_threshold"] = s.float("margin"), s.float("distance threshold")
    # the wrappers' versions, output down to input
    versions: dict[int, int] = {}
    for i in range(len(spec) - 1, -1, -1):
        r = spec[i]
        if r.kind in _ADD_LAYERS:
            versions[i] = s.version((2, 3) if i == 0 else (1, 2), f"{r.name} add_layer")
        else:
            versions[i] = s.version(1, f"{r.name} add_{r.kind}_layer")
    # the input layer
    in_version = s.name(("input_rgb_image_sized",), "input layer version")
    mean = tuple(np.float32(s.float(f"input mean {c}")) for c in "RGB")
    size = (s.int("input rows", signed=False), s.int("input cols", signed=False))
    _check(s, "input size", size, (INPUT_SIZE, INPUT_SIZE))
    net_input = {"version": in_version, "mean": mean, "size": size}
    # the layers, input to output; channels tracked for shape checks and add_prev
    layers: list[DlibLayer] = []
    channels, tags, cur = 3, {}, 3
    for i, r in enumerate(spec):
        if r.kind == "tag":
            tags[r.hyper["id"]] = cur
            layers.append(DlibLayer("tag", r.name, dict(r.hyper), str(versions[i])))
            continue
        if r.kind == "skip":
            cur = tags[r.hyper["id"]]
            layers.append(DlibLayer("skip", r.name, dict(r.hyper), str(versions[i])))
            continue
        rec, out = _read_details(s, r, cur)
        if r.kind == "add_prev":
            out = max(cur, tags[r.hyper["tag"]])
        _read_state(s, r.name, versions[i], bottom=i == 0)
        layers.append(rec)
        cur = channels = out
    if s.pos != len(s.data):
        raise s.fail("end of file", f"{len(s.data) - s.pos} more bytes")
    _check(s, "embedding size", channels, EMBEDDING_SIZE)
    return DlibNet(path, net_input, layers, loss)


def default_weights_path() -> Path:
    """The ``.dat`` file inside the installed ``face_recognition_models`` (found without importing
    it: its ``__init__`` needs pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingError(f"{WEIGHTS_FILE}: the package face_recognition_models is not installed "
                           f"(pip install face_recognition_models)")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / WEIGHTS_FILE
    if not path.is_file():
        raise MissingError(f"{path}: file missing from face_recognition_models")
    return path
