"""The thesis's Siamese SENet50 (THESIS.md "Model"), and its exact trunk/head split.

- :func:`set_trainable`: all core layers frozen, then every layer in ``core.layers[-N:]``
  trainable unless it is BatchNormalization -- the thesis's loop, verbatim.
- :func:`pair_distance`: d = sum((l2norm(e_u) - l2norm(e_m))^2), the distance the Siamese
  model outputs and its losses (:mod:`mfr.training.losses`; the thesis's contrastive loss, Eq. 3.4,
  is still importable from here) train on.
- :func:`split_trunk`: with BN in inference mode and the first layers frozen, every layer whose
  output does not depend on a trainable weight is a fixed function of the image. The *trunk*
  maps an image to the frozen tensors that the trainable part consumes (the *boundary*: in
  general several tensors, e.g. for N=10 the BN output feeding the last SE block and the block
  input feeding its shortcut Add); the *head* maps those to the embedding, reusing the core's
  own layer objects (shared weights). ``head(trunk(x)) == core(x)``.
- :func:`build_siamese`: the trainable model. Its inputs are two int32 index vectors (the
  unmasked and the masked image of each pair) into a :class:`FeatureTable` held by the model
  (on the accelerator, so a step moves only indices): preprocessed images for the thesis-style
  path (``net`` = the whole core, both twins computed every step), or trunk features for the
  cached path (``net`` = the head). Everything is ``keras.ops``; no backend is imported.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from mfr.backbones import validate_trainable_layers  # noqa: F401 - re-exported: its old home
from mfr.core.errors import InputError
from mfr.training.losses import contrastive_loss  # noqa: F401 - re-exported: its old home

__all__ = [
    "FeatureTable",
    "PairDistance",
    "TrunkSplit",
    "build_siamese",
    "contrastive_loss",
    "l2_normalize",
    "make_optimizer",
    "pair_distance",
    "set_trainable",
    "split_trunk",
    "trainable_layer_names",
    "trainable_layers",
    "trainable_param_count",
    "validate_trainable_layers",
]

L2_EPSILON = 1e-12  # tf.math.l2_normalize / keras.backend.l2_normalize


# --------------------------------------------------------------------------- trainable set


def _is_bn(layer) -> bool:
    """BatchNormalization, or a layer that is batch norm folded (dlib's affine: its class says
    ``frozen_like_batch_norm``): the thesis's loop leaves both frozen."""
    return (isinstance(layer, keras.layers.BatchNormalization)
            or getattr(layer, "frozen_like_batch_norm", False))


def trainable_layers(core: keras.Model, n: int) -> list:
    """The layers the thesis makes trainable for N (no side effect): ``layers[-N:]`` minus BN,
    those holding weights only (the weightless ones are trainable in name but train nothing)."""
    n = validate_trainable_layers(n, len(core.layers))
    return [layer for layer in core.layers[-n:] if not _is_bn(layer) and layer.weights]


def set_trainable(core: keras.Model, n: int) -> list[str]:
    """The thesis's loop: freeze every core layer, then unfreeze ``layers[-N:]`` except BN.

    Returns the names of the layers that now hold trainable weights, in layer order.
    """
    n = validate_trainable_layers(n, len(core.layers))
    core.trainable = True  # the model flag; layers are set one by one below
    for layer in core.layers:
        layer.trainable = False
    for layer in core.layers[-n:]:
        if not _is_bn(layer):
            layer.trainable = True
    return [layer.name for layer in core.layers if layer.trainable_weights]


def trainable_param_count(layers) -> int:
    return int(sum(int(np.prod(w.shape)) for layer in layers for w in layer.trainable_weights))


def trainable_layer_names(n: int, core: keras.Model | None = None) -> list[tuple[str, int]]:
    """[(layer name, trainable parameters)] for N on `core` (default: SENet50 built with random
    weights: no weights file or data needed)."""
    if core is None:
        from mfr.backbones.vggface import senet50

        core = senet50(weights=None)
    n = validate_trainable_layers(n, len(core.layers))
    return [(layer.name, trainable_param_count([layer])) for layer in trainable_layers(core, n)]


# --------------------------------------------------------------------------- distance, loss


def l2_normalize(x, axis: int = -1):
    """x / sqrt(max(sum(x^2), 1e-12)), as keras.backend.l2_normalize."""
    sq = ops.sum(ops.square(x), axis=axis, keepdims=True)
    return x * ops.rsqrt(ops.maximum(sq, L2_EPSILON))


def pair_distance(e_u, e_m):
    """Sum of squared differences of the L2-normalised embeddings, shape (batch,); in [0, 4]."""
    return ops.sum(ops.square(l2_normalize(e_u) - l2_normalize(e_m)), axis=-1)


def make_optimizer(name: str = "sgd", learning_rate: float = 1e-5, momentum: float = 0.0):
    name = name.lower()
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=learning_rate, momentum=momentum)
    raise InputError(f"optimizer must be one of sgd, adam, rmsprop; got {name!r}")


# --------------------------------------------------------------------------- trunk / head


@dataclass
class TrunkSplit:
    trunk: keras.Model  # image -> boundary tensors (list)
    head: keras.Model  # boundary tensors (list) -> embedding; the core's own layers
    boundary: list[str]  # names of the layers whose outputs are the boundary ("image" = input)
    first_trainable: int  # index in core.layers of the first layer with trainable weights


def _node_of(layer):
    """The layer's node inside `core` (its first inbound node: the core was built once)."""
    return layer._inbound_nodes[0]


def split_trunk(core: keras.Model, n: int | None = None) -> TrunkSplit:
    """Split `core` into a frozen trunk and a head holding every trainable layer.

    Uses the layers' current ``trainable`` flags unless `n` is given (then
    :func:`set_trainable` is applied first). A layer belongs to the head if it holds trainable
    weights or consumes a head tensor; the boundary is every trunk tensor a head layer consumes.
    """
    if n is not None:
        set_trainable(core, n)
    layers = core.layers
    trainable_ids = {id(layer) for layer in layers if layer.trainable_weights}
    if not trainable_ids:
        raise InputError("the core has no trainable weights: nothing to split off")
    head_ids: set[int] = set()
    for layer in layers:  # topological order
        if id(layer) in trainable_ids:
            head_ids.add(id(layer))
            continue
        node = _node_of(layer)
        if any(t._keras_history[0] is not None and id(t._keras_history[0]) in head_ids
               for t in node.input_tensors):
            head_ids.add(id(layer))
    boundary, boundary_names, seen = [], [], set()
    for layer in layers:
        if id(layer) not in head_ids:
            continue
        for t in _node_of(layer).input_tensors:
            producer = t._keras_history[0]
            if id(producer) not in head_ids and id(t) not in seen:
                seen.add(id(t))
                boundary.append(t)
                boundary_names.append(producer.name)
    first = min(i for i, layer in enumerate(layers) if id(layer) in trainable_ids)
    if len(boundary) == 1 and boundary[0] is core.inputs[0]:
        trunk_out = [core.inputs[0]]
        trunk = _IdentityTrunk(core.inputs[0])
    else:
        trunk_out = boundary
        trunk = keras.Model(core.inputs[0], trunk_out, name=f"{core.name}_trunk")
    head = keras.Model(boundary, core.outputs[0], name=f"{core.name}_head")
    return TrunkSplit(trunk, head, boundary_names, first)


def _IdentityTrunk(inp) -> keras.Model:  # noqa: N802 - a factory named like a class
    """Every layer trainable from the first: the trunk is the identity on the image."""
    x = keras.Input(shape=inp.shape[1:], dtype=inp.dtype, name="image")
    return keras.Model(x, [keras.layers.Identity(name="image_identity")(x)], name="identity_trunk")


# --------------------------------------------------------------------------- Siamese model


class FeatureTable(keras.layers.Layer):
    """Per-item inputs held by the model as non-trainable weights; ``call(idx)`` gathers rows.

    Keeps the whole table on the accelerator, so a training step moves only the pair indices.
    """

    def __init__(self, arrays, **kwargs):
        super().__init__(trainable=False, **kwargs)
        self.tables = []
        for i, a in enumerate(arrays):
            self.tables.append(self.add_weight(
                shape=tuple(a.shape), dtype=keras.backend.standardize_dtype(a.dtype),
                trainable=False, name=f"table_{i}", initializer=_ArrayInit(a)))
        self.built = True

    def call(self, idx):
        idx = ops.cast(idx, "int32")
        return [ops.take(t, idx, axis=0) for t in self.tables]

    def compute_output_spec(self, idx):
        return [keras.KerasTensor((idx.shape[0], *t.shape[1:]), dtype=t.dtype)
                for t in self.tables]


class _ArrayInit(keras.initializers.Initializer):
    def __init__(self, array):
        self.array = array

    def __call__(self, shape, dtype=None):
        if tuple(shape) != tuple(self.array.shape):
            raise InputError(f"table shape {tuple(shape)} != array shape {self.array.shape}")
        array, self.array = self.array, None  # the variable holds it now
        return ops.convert_to_tensor(array, dtype=dtype)


class _StackPairs(keras.layers.Layer):
    """[u_idx (B,), m_idx (B,)] -> (2B,): both twins in one batch."""

    def call(self, inputs):
        return ops.concatenate([ops.cast(i, "int32") for i in inputs], axis=0)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor((None,), dtype="int32")


class PairDistance(keras.layers.Layer):
    """Split a (2B, D) embedding batch into its unmasked / masked halves; d per pair. Built
    with dtype float32 (:func:`build_siamese`), so that under ``--precision bf16`` the
    embeddings are cast to float32 before the distance, and the loss sees a float32 d."""

    def call(self, e):
        b = ops.shape(e)[0] // 2
        return pair_distance(e[:b], e[b:])

    def compute_output_spec(self, e):
        return keras.KerasTensor((None,), dtype=self.compute_dtype)


@contextlib.contextmanager
def forgetting_calls(net: keras.Layer) -> Iterator[None]:
    """While the block builds a model around `net`, the calls it makes on `net` are not kept by
    `net` once the block ends.

    A Keras layer called on symbolic tensors keeps a node for the call in ``_inbound_nodes``,
    and the node reaches the calling model's tables: a network shared by the models that several
    runs build (a study's grid) would keep every run's :class:`FeatureTable` alive, one copy of
    the training features a run (measured: +1.0 GB a run on MLFW with MobileFaceNet, N = 5; the
    transfer study ran out of 24 GB). The model built holds its own references to those nodes,
    so it trains and runs as before; only `net`'s list forgets them.
    """
    before = len(net._inbound_nodes)
    try:
        yield
    finally:
        del net._inbound_nodes[before:]


def build_siamese(net: keras.Model, table_arrays, name: str = "siamese") -> keras.Model:
    """(u_idx, m_idx) -> d. `net` (the core, or the head) is called once on both twins'
    inputs concatenated along the batch, with ``training=False`` (BN in inference mode)."""
    u = keras.Input(shape=(), dtype="int32", name="unmasked_idx")
    m = keras.Input(shape=(), dtype="int32", name="masked_idx")
    idx = _StackPairs(name="pair_idx")([u, m])
    table = FeatureTable(table_arrays, name="features")
    with forgetting_calls(net):
        feats = table(idx)
        e = net(feats if len(feats) > 1 else feats[0], training=False)
        d = PairDistance(name="distance", dtype="float32")(e)
        return keras.Model([u, m], d, name=name)
