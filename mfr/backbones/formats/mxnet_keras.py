"""An MXNet face network in Keras 3: an interpreter of the MXNet symbol graph
(:func:`mfr.backbones.formats.mxnet.read_symbol`) with the weights of its ``.params``
(:func:`mfr.backbones.formats.mxnet.read_params`), one Keras layer per MXNet node, named as the
node, over the ops InsightFace's networks use (``_minus_scalar``, ``_plus_scalar``,
``_mul_scalar``, ``Convolution`` including ``num_group`` = depthwise, ``BatchNorm``,
``LeakyReLU`` prelu, ``elemwise_add``, ``FullyConnected``); any other op is a one-line
InputError. Every weight shape is checked against the graph. Keras 3 only (``keras.layers``), so
it runs under TensorFlow and JAX. A backbone released as MXNet files (InsightFace's
MobileFaceNet, :mod:`mfr.backbones.mobilefacenet`; its ResNets would be next) builds its network
with :func:`build_keras_model`.

MXNet's rules, reproduced (each checked against MXNet's sources and against the ncnn
conversion of MobileFaceNet, :mod:`mfr.backbones.embedders.ncnn_mobilefacenet`):

- The graph's input normalisation (MobileFaceNet's ``(x - 127.5) * 0.0078125``) is kept inside
  the model, as ``Rescaling`` layers named after the nodes (``_minusscalar0``,
  ``_mulscalar0``): the model takes raw RGB 0-255 (float32, NHWC). Both are exact in float32
  (127.5 and 2**-7 are representable), as MXNet's. The ncnn conversion writes the scale with
  printf's ``%f``, ``0.007812``: its input is 0.99994 times MXNet's. That constant is nearly all
  of the port-vs-ncnn difference: on the 1,207 photos of mlfw-dev/val
  (``benchmarks/bench_mobilefacenet.py``), 1 - cosine is at most 4e-9 (max |diff| 2.4e-4 on
  embeddings of length 5-14); built with 0.007812, the port agrees with ncnn to 1 - cosine <=
  9e-13 (max |diff| 4e-6). Either way far inside 0.9999, and the verification metrics agree
  (AUC to 2e-7); the port keeps MXNet's exact 0.0078125.
- ``Convolution`` pads ``pad`` on both sides (``pad=(1, 1)`` at stride 2 on 112 px: 56 px
  rows, 1 + (112 + 2 - 3) // 2); Keras ``"same"`` would pad 0 above and 1 below at stride 2. So
  a padded conv is an explicit ``ZeroPadding2D`` (named ``<node>_pad``) and a ``"valid"`` conv.
  ``num_group`` equal to the input channels is ``DepthwiseConv2D``; MXNet's weights
  (out, in/group, kh, kw) become Keras's (kh, kw, in, out) / (kh, kw, in, multiplier).
- ``BatchNorm``: MXNet's defaults are ``eps=1e-3`` and ``fix_gamma=True`` (``batch_norm-inl.h``);
  MobileFaceNet's nodes say ``fix_gamma=False`` and no eps (1e-3) except the last, ``fc1``
  (``eps=2e-05``, ``fix_gamma=True``: gamma is 1 whatever is stored; here it is stored as 1).
  ``fix_gamma=True`` is a BatchNormalization without ``scale``: gamma is 1 and stays 1 when
  fine-tuned, as in MXNet. ncnn's conversion folds eps into the stored variance (its .bin
  holds ``moving_var + 1e-3``, and ``+ 2e-05`` for fc1, checked).
- ``LeakyReLU`` prelu: ``x > 0 ? x : gamma[c] * x`` (``mshadow_op::xelu``), a ``PReLU`` with
  one alpha per channel (shared over rows and columns); Keras's ``relu(x) - alpha * relu(-x)``
  gives the same bits.
- ``FullyConnected`` (``flatten=True``) flattens NCHW in (C, H, W) order; Keras flattens NHWC in
  (H, W, C) order, so the weight's columns are permuted to match (an identity for
  MobileFaceNet: its input is 1x1x512). The flatten is a ``Flatten`` layer named
  ``<node>_flatten``.

Batch norm is kept as ``BatchNormalization`` layers, not folded into the convolutions: the
study fine-tunes "the last N layers" with batch norm frozen
(:func:`mfr.training.siamese.set_trainable` recognises ``BatchNormalization``), so a folded
network would train the BN's scale as part of the conv kernel and count different layers; and
the layer-by-layer correspondence with MXNet's (and ncnn's) nodes is what makes the port
checkable. The cost is one multiply-add per activation at inference beside each conv's. On a
CPU the port is several times slower than ncnn per image (``benchmarks/bench_mobilefacenet.py``;
TensorFlow's and XLA's CPU depthwise convolutions are the likely cause): it exists to be
fine-tuned, ncnn is the faster way to embed with the released net.

A depthwise convolution whose kernel covers its whole input (stride 1, no padding: MobileFaceNet's
global depthwise layer, ``conv_6dw7_7``, 7x7 on 7x7) is a :class:`GlobalDepthwiseConv2D`: the same
weights and the same sum, computed as one product and a sum over the window. Measured on this
project's CPU, TensorFlow's gradient of a depthwise convolution (``DepthwiseConv2dNativeBackpropFilter``)
took 34 ms a step for that layer at 128 images against 7.6 ms for the product and sum, and that
layer is in every fine-tuned head (N >= 5); the outputs differ by float summation order only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import layers

from mfr.backbones.formats.mxnet import (
    MxnetParams,
    SymbolGraph,
    SymbolNode,
    attr_bool,
    attr_float,
    attr_int,
    attr_tuple,
    read_params,
    read_symbol,
)
from mfr.core.errors import InputError

__all__ = ["OPS", "GlobalDepthwiseConv2D", "build_keras_model", "load_mxnet_model"]


@keras.saving.register_keras_serializable(package="mfr")
class GlobalDepthwiseConv2D(layers.DepthwiseConv2D):
    """A ``DepthwiseConv2D`` (the same weights, shapes and config) whose kernel covers its whole
    input, stride 1, no padding: each output channel is the sum over the window of input times
    kernel, computed as such (see the module docstring for why)."""

    def call(self, inputs):
        k = self.kernel  # (kh, kw, C, depth_multiplier)
        out = keras.ops.sum(keras.ops.expand_dims(inputs, -1) * k, axis=(1, 2))  # (B, C, dm)
        out = keras.ops.reshape(out, (-1, 1, 1, k.shape[2] * k.shape[3]))
        if self.use_bias:
            out = out + self.bias
        return self.activation(out) if self.activation is not None else out

#: the MXNet ops the interpreter knows
OPS = ("_minus_scalar", "_plus_scalar", "_mul_scalar", "Convolution", "BatchNorm", "LeakyReLU",
       "elemwise_add", "_Plus", "FullyConnected")


class _Graph:
    """The graph turned into Keras layers; `params` records, per Keras layer, the MXNet
    variables its weights come from and how (``_convert``)."""

    def __init__(self, graph: SymbolGraph, input_shape: tuple[int, int, int],
                 init: str | None = None) -> None:
        self.graph, self.path = graph, graph.path
        self.tensors: dict[tuple[int, int], Any] = {}
        #: Keras layer name -> [(kind, MXNet variable name, expected MXNet shape)]
        self.params: dict[str, list[tuple[str, str, tuple[int, ...]]]] = {}
        self.input_shape = input_shape
        #: kernels' initializer: Keras's defaults, or "zeros" when a file overwrites them all
        #: (random initialisers cost a compilation per shape under JAX: seconds)
        self.init = {} if init is None else {"kernel_initializer": init}
        self.inputs: list[Any] = []
        self.names = {n.name for n in graph.nodes}

    def fail(self, node: SymbolNode, expected: str, found: Any = None) -> InputError:
        got = f", found {found}" if found is not None else ""
        return InputError(f"{self.path}: node {node.name!r} ({node.op}): expected {expected}{got}")

    def variable(self, node: SymbolNode, k: int) -> str:
        """The name of the k-th input of `node`, which must be a variable (a parameter)."""
        if k >= len(node.inputs):
            raise self.fail(node, f"at least {k + 1} inputs", len(node.inputs))
        src = self.graph.nodes[node.inputs[k][0]]
        if src.op != "null":
            raise self.fail(node, f"input {k} to be a parameter", f"the output of {src.name!r}")
        return src.name

    def data(self, node: SymbolNode, k: int = 0):
        """The Keras tensor of the k-th input of `node` (a variable there becomes the Input)."""
        if k >= len(node.inputs):
            raise self.fail(node, f"at least {k + 1} inputs", len(node.inputs))
        key = node.inputs[k]
        if key not in self.tensors:
            src = self.graph.nodes[key[0]]
            if src.op != "null":
                raise self.fail(node, "its inputs computed before it", src.name)
            if self.inputs:
                raise self.fail(node, "one data input", f"a second one, {src.name!r}")
            self.tensors[key] = keras.Input(self.input_shape, dtype="float32",
                                            name=_keras_name(src.name))
            self.inputs.append(self.tensors[key])
        return self.tensors[key]

    def extra_name(self, node: SymbolNode, suffix: str) -> str:
        name = f"{node.name}{suffix}"
        if name in self.names:
            raise self.fail(node, f"no other node named {name!r} (the name of its {suffix[1:]} "
                                  f"layer)")
        return _keras_name(name)

    # -- ops ---------------------------------------------------------------------------------

    def scalar(self, node: SymbolNode):
        s = attr_float(node, "scalar", float("nan"), self.path)
        if not np.isfinite(s):
            raise self.fail(node, "a finite 'scalar'", node.attrs.get("scalar"))
        x = self.data(node)
        if node.op == "_mul_scalar":
            return layers.Rescaling(scale=s, offset=0.0, name=_keras_name(node.name))(x)
        offset = -s if node.op == "_minus_scalar" else s
        return layers.Rescaling(scale=1.0, offset=offset, name=_keras_name(node.name))(x)

    def convolution(self, node: SymbolNode):
        p = self.path
        kernel = attr_tuple(node, "kernel", graph_path=p)
        if len(kernel) != 2:
            raise self.fail(node, "a 2-D kernel", kernel)
        stride = attr_tuple(node, "stride", (1, 1), p) or (1, 1)
        dilate = attr_tuple(node, "dilate", (1, 1), p) or (1, 1)
        pad = attr_tuple(node, "pad", (0, 0), p) or (0, 0)
        filters = attr_int(node, "num_filter", graph_path=p)
        groups = attr_int(node, "num_group", 1, p)
        bias = not attr_bool(node, "no_bias", False, p)
        if node.attrs.get("layout", "NCHW") not in ("NCHW", "None"):
            raise self.fail(node, "layout NCHW", node.attrs["layout"])
        if len(stride) != 2 or len(dilate) != 2 or len(pad) != 2 or min(kernel + stride + dilate) < 1 \
                or min(pad) < 0 or filters < 1:
            raise self.fail(node, "2-D positive kernel/stride/dilate, pad >= 0, num_filter >= 1",
                            dict(node.attrs))
        x = self.data(node)
        c_in = int(x.shape[-1])
        if any(pad):
            x = layers.ZeroPadding2D(((pad[0], pad[0]), (pad[1], pad[1])),
                                     name=self.extra_name(node, "_pad"))(x)
        name = _keras_name(node.name)
        weight = self.variable(node, 1)
        if groups == 1:
            out = layers.Conv2D(filters, kernel, strides=stride, padding="valid",
                                dilation_rate=dilate, use_bias=bias, name=name, **self.init)(x)
            self.params[name] = [("conv", weight, (filters, c_in, *kernel))]
        elif groups == c_in and filters % c_in == 0:
            whole = (tuple(stride) == (1, 1) and tuple(dilate) == (1, 1) and not any(pad)
                     and tuple(x.shape[1:3]) == tuple(kernel))
            kind = GlobalDepthwiseConv2D if whole else layers.DepthwiseConv2D
            out = kind(kernel, strides=stride, padding="valid",
                                         depth_multiplier=filters // c_in, dilation_rate=dilate,
                                         use_bias=bias, name=name,
                                         **{k.replace("kernel", "depthwise"): v
                                            for k, v in self.init.items()})(x)
            self.params[name] = [("depthwise", weight, (filters, 1, *kernel), (c_in,))]
        else:
            raise self.fail(node, f"num_group 1 or {c_in} (depthwise: the input channels)", groups)
        if bias:
            self.params[name].append(("copy", self.variable(node, 2), (filters,)))
        return out

    def batchnorm(self, node: SymbolNode):
        p = self.path
        axis = attr_int(node, "axis", 1, p)
        x = self.data(node)
        if axis != 1 and not (axis == -1 and len(x.shape) == 2):
            raise self.fail(node, "axis 1 (the channels)", axis)
        fix_gamma = attr_bool(node, "fix_gamma", True, p)  # MXNet's default is True
        eps = attr_float(node, "eps", 1e-3, p)  # MXNet's default
        momentum = attr_float(node, "momentum", 0.9, p)
        name = _keras_name(node.name)
        out = layers.BatchNormalization(axis=-1, epsilon=eps, momentum=momentum, center=True,
                                        scale=not fix_gamma, name=name)(x)
        c = (int(x.shape[-1]),)
        gamma, beta, mean, var = (self.variable(node, k) for k in range(1, 5))
        # fix_gamma: the stored gamma is read (MXNet needs it in the file) but not used
        self.params[name] = [("ignored" if fix_gamma else "copy", gamma, c), ("copy", beta, c),
                             ("copy", mean, c), ("copy", var, c)]
        return out

    def leakyrelu(self, node: SymbolNode):
        act = node.attrs.get("act_type", "leaky")
        x = self.data(node)
        name = _keras_name(node.name)
        if act == "leaky":
            return layers.LeakyReLU(negative_slope=attr_float(node, "slope", 0.25, self.path),
                                    name=name)(x)
        if act != "prelu":
            raise self.fail(node, "act_type prelu or leaky", act)
        gamma = self.variable(node, 1)
        init = _constant_init(self.graph.nodes[node.inputs[1][0]], 0.25)
        shared = list(range(1, len(x.shape) - 1)) or None
        out = layers.PReLU(alpha_initializer=keras.initializers.Constant(init),
                           shared_axes=shared, name=name)(x)
        self.params[name] = [("alpha", gamma, (int(x.shape[-1]),))]
        return out

    def add(self, node: SymbolNode):
        if len(node.inputs) != 2:
            raise self.fail(node, "2 inputs", len(node.inputs))
        a, b = self.data(node, 0), self.data(node, 1)
        if tuple(a.shape[1:]) != tuple(b.shape[1:]):
            raise self.fail(node, "inputs of one shape", f"{a.shape[1:]} and {b.shape[1:]}")
        return layers.Add(name=_keras_name(node.name))([a, b])

    def fully_connected(self, node: SymbolNode):
        p = self.path
        units = attr_int(node, "num_hidden", graph_path=p)
        bias = not attr_bool(node, "no_bias", False, p)
        if not attr_bool(node, "flatten", True, p):
            raise self.fail(node, "flatten=True", node.attrs.get("flatten"))
        x = self.data(node)
        spatial = tuple(int(d) for d in x.shape[1:-1])
        c = int(x.shape[-1])
        if spatial:
            x = layers.Flatten(name=self.extra_name(node, "_flatten"))(x)
        name = _keras_name(node.name)
        out = layers.Dense(units, use_bias=bias, name=name, **self.init)(x)
        n_in = c * int(np.prod(spatial)) if spatial else c
        self.params[name] = [("dense", self.variable(node, 1), (units, n_in), (c, *spatial))]
        if bias:
            self.params[name].append(("copy", self.variable(node, 2), (units,)))
        return out

    def build(self, name: str) -> keras.Model:
        handlers = {"_minus_scalar": self.scalar, "_plus_scalar": self.scalar,
                    "_mul_scalar": self.scalar, "Convolution": self.convolution,
                    "BatchNorm": self.batchnorm, "LeakyReLU": self.leakyrelu,
                    "elemwise_add": self.add, "_Plus": self.add,
                    "FullyConnected": self.fully_connected}
        for i, node in enumerate(self.graph.nodes):
            if node.op == "null":
                continue
            if node.op not in handlers:
                raise self.fail(node, f"one of the ops {', '.join(OPS)}", f"op {node.op!r}")
            self.tensors[(i, 0)] = handlers[node.op](node)
        outputs = []
        for head in self.graph.heads:
            if head not in self.tensors:
                raise InputError(f"{self.path}: expected the head {list(head)} to be an output "
                                 f"of an op (output 0)")
            outputs.append(self.tensors[head])
        if not self.inputs:
            raise InputError(f"{self.path}: expected a data input (a variable fed to an op)")
        return keras.Model(self.inputs[0], outputs[0] if len(outputs) == 1 else outputs, name=name)


def _keras_name(name: str) -> str:
    """Keras 3 refuses '/' in layer names (MXNet's Gluon exports use it)."""
    return name.replace("/", "_")


def _constant_init(var: SymbolNode, default: float) -> float:
    """The value of a variable's ``__init__`` attribute when it is ``["Constant", {"value": v}]``
    (InsightFace's PReLU gammas: 0.25), else `default`."""
    try:
        kind, args = json.loads(var.attrs.get("__init__", "null") or "null")
        if str(kind).lower() == "constant":
            return float(args["value"])
    except (TypeError, ValueError, KeyError):
        pass
    return default


def _convert(kind: str, array: np.ndarray, layout: tuple[int, ...] = ()) -> np.ndarray:
    """An MXNet array as the Keras weight of the same role."""
    a = np.asarray(array, dtype=np.float32)
    if kind == "conv":  # (out, in, kh, kw) -> (kh, kw, in, out)
        return a.transpose(2, 3, 1, 0)
    if kind == "depthwise":  # (in * mult, 1, kh, kw) -> (kh, kw, in, mult)
        (c_in,) = layout  # output channel c * mult + m is channel c's m-th filter
        return a.reshape(c_in, a.shape[0] // c_in, *a.shape[2:]).transpose(2, 3, 0, 1)
    if kind == "alpha":  # (C,) -> PReLU's alpha, broadcast over the shared axes
        return a
    if kind == "dense":  # (units, C*H*W in NCHW order) -> (H*W*C in NHWC order, units)
        units = a.shape[0]
        if len(layout) > 1:
            c, *spatial = layout
            a = a.reshape(units, c, *spatial).transpose(0, *range(2, 2 + len(spatial)), 1)
        return a.reshape(units, -1).T
    return a


def _set_weights(model: keras.Model, graph: SymbolGraph, params: MxnetParams,
                 plan: dict[str, list]) -> None:
    """Copy every parameter of `graph` from `params` into `model` (built from `graph`; `plan`:
    which variables go where, :attr:`_Graph.params`), checking each shape; an array missing from
    the file, one of another shape, or an array the graph does not use is an InputError naming
    the file."""
    used: set[str] = set()
    for layer_name, entries in plan.items():
        layer = model.get_layer(layer_name)
        values = []
        for kind, var, mx_shape, *layout in entries:
            if var not in params.arrays:
                raise InputError(f"{params.path}: expected the parameter {var!r} of "
                                 f"{graph.path.name} (layer {layer_name!r}), missing")
            array = params.arrays[var]
            if tuple(array.shape) != tuple(mx_shape):
                raise InputError(f"{params.path}: expected {var!r} of shape {tuple(mx_shape)} "
                                 f"(layer {layer_name!r}), found {tuple(array.shape)}")
            used.add(var)
            if kind != "ignored":
                values.append(_convert(kind, array, *layout))
        targets = layer.get_weights()
        values = [v.reshape(t.shape) for v, t in zip(values, targets, strict=True)]
        layer.set_weights(values)
    extra = sorted(set(params.arrays) - used)
    if extra:
        raise InputError(f"{params.path}: expected only the parameters of {graph.path.name}, found "
                         f"{len(extra)} more (e.g. {extra[:3]})")


def build_keras_model(symbol: SymbolGraph | str | Path, params: MxnetParams | str | Path | None = None,
                      input_shape: tuple[int, int, int] = (112, 112, 3),
                      name: str = "mxnet") -> keras.Model:
    """The Keras model of an MXNet graph (a :class:`SymbolGraph` or a ``-symbol.json`` path),
    with the weights of `params` (a ``.params`` path or :class:`MxnetParams`), or Keras's own
    initialisation (seeded by the caller: ``keras.utils.set_random_seed``) when None.

    Takes float32 raw RGB 0-255, (N, H, W, 3) (the graph normalises it); returns the graph's
    head (MobileFaceNet's: the (N, 128) embedding, not normalised). Layer names are the MXNet node names (see the module docstring
    for the extra ``_pad`` and ``_flatten`` layers).
    """
    graph = symbol if isinstance(symbol, SymbolGraph) else read_symbol(symbol)
    g = _Graph(graph, tuple(int(d) for d in input_shape), None if params is None else "zeros")
    model = g.build(name)
    if params is not None:
        params = params if isinstance(params, MxnetParams) else read_params(params)
        _set_weights(model, graph, params, g.params)
    return model


def load_mxnet_model(symbol_path: str | Path, params_path: str | Path,
                     input_shape: tuple[int, int, int] = (112, 112, 3),
                     name: str = "mxnet") -> keras.Model:
    """:func:`build_keras_model` from the two files of an MXNet checkpoint (e.g.
    ``model-symbol.json`` and ``model-0000.params``)."""
    return build_keras_model(read_symbol(symbol_path), read_params(params_path),
                             input_shape=input_shape, name=name)
