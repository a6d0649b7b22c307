"""Legacy Keras 2 HDF5 weights files, read and written by layer name: SENet50's released
weights (keras-vggface's ``rcmalli_vggface_tf_notop_senet50.h5``) and every backbone's trained
layers (a run's ``final_trainable.h5``).

A Keras 2 ``save_weights`` HDF5 file's layout:

- root attributes ``layer_names`` (bytes, every layer in model order; Keras 2 splits very long
  lists into ``layer_names0``, ``layer_names1``, ...), ``backend``, ``keras_version``;
- one group per layer, named like the layer. keras-vggface names contain '/', so
  ``conv1/7x7_s2/bn`` is the nested group ``bn`` inside ``conv1/7x7_s2``;
- the group's attribute ``weight_names`` lists its datasets in order (conv: kernel[, bias];
  BN: gamma, beta, moving_mean, moving_variance), as paths relative to the group, e.g.
  ``conv1/7x7_s2/bn/gamma:0``. Read through ``weight_names`` only: the group ``conv1/7x7_s2``
  also contains the nested group of ``conv1/7x7_s2/bn``.

A full-model save (``model.save``) puts the same structure under ``model_weights/``; both are
read. Model layers are matched to file groups through the original names (Keras 3 layer name =
original name with '/' replaced by '_', :func:`keras_name`); a backbone whose file names differ
from its Keras names passes its own ``file_name`` mapping (SENet50's is
:func:`mfr.backbones.vggface.senet50.vggface_name`, built from the original names, never by
replacing '_' by '/').
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import keras
import numpy as np

from mfr.core.errors import InputError
from mfr.core.outputs import atomic_path

__all__ = ["file_layer_names", "keras_name", "load_legacy_h5", "save_legacy_h5"]


def keras_name(file_name: str) -> str:
    """A file's layer name -> the Keras 3 name ('/' -> '_': Keras 3 forbids '/')."""
    return file_name.replace("/", "_")


def _same(name: str) -> str:
    return name


# --------------------------------------------------------------------------- HDF5 read


def _decode(value) -> str:
    return value.decode("utf8") if isinstance(value, bytes | np.bytes_) else str(value)


def _read_str_list(group: h5py.Group, name: str) -> list[str] | None:
    """An attribute holding a list of strings, including Keras 2's chunked ``name0, name1``."""
    if name in group.attrs:
        chunks = [group.attrs[name]]
    elif f"{name}0" in group.attrs:
        chunks, i = [], 0
        while f"{name}{i}" in group.attrs:
            chunks.append(group.attrs[f"{name}{i}"])
            i += 1
    else:
        return None
    out: list[str] = []
    for chunk in chunks:
        out.extend(_decode(v) for v in np.atleast_1d(np.asarray(chunk)).tolist())
    return out


def _weights_root(f: h5py.File, path) -> tuple[h5py.Group, list[str]]:
    for root in (f, f.get("model_weights")):
        if isinstance(root, h5py.Group):
            names = _read_str_list(root, "layer_names")
            if names is not None:
                return root, names
    raise InputError(
        f"{path}: not a legacy Keras HDF5 weights file (no 'layer_names' attribute at the root "
        "or under 'model_weights/')"
    )


def _read_file_layers(path) -> dict[str, tuple[str, list[str], list[np.ndarray]]]:
    """{keras name: (original name, weight names, arrays)} for every weighted layer in the file.

    A file h5py cannot read (empty, truncated, not HDF5) is an InputError naming it.
    """
    try:
        return _read_layers(path)
    except OSError as e:
        raise InputError(f"{path}: not a readable HDF5 weights file ({' '.join(str(e).split())}); "
                         f"expected keras-vggface's legacy .h5 weights (a truncated download? "
                         f"delete it and fetch it again)") from None


def file_layer_names(path) -> list[str]:
    """The layer names a legacy weights file lists (no weights are read); InputError when it
    cannot be read as one."""
    try:
        with h5py.File(path, "r") as f:
            return _weights_root(f, path)[1]
    except OSError as e:
        raise InputError(f"{path}: not a readable HDF5 weights file ({' '.join(str(e).split())}); "
                         f"expected keras-vggface's legacy .h5 weights") from None


def _read_layers(path) -> dict[str, tuple[str, list[str], list[np.ndarray]]]:
    out: dict[str, tuple[str, list[str], list[np.ndarray]]] = {}
    with h5py.File(path, "r") as f:
        root, layer_names = _weights_root(f, path)
        for name in layer_names:
            if name not in root:
                raise InputError(
                    f"{path}: layer {name!r} is listed in layer_names but has no group"
                )
            group = root[name]
            weight_names = _read_str_list(group, "weight_names") or []
            if not weight_names:
                continue
            arrays = []
            for wn in weight_names:
                if wn not in group:
                    raise InputError(f"{path}: layer {name!r}: dataset {wn!r} is missing")
                arrays.append(np.asarray(group[wn]))
            key = keras_name(name)
            if key in out and out[key][0] != name:
                raise InputError(
                    f"{path}: layers {out[key][0]!r} and {name!r} both map to Keras name {key!r}"
                )
            out[key] = (name, weight_names, arrays)
    return out


def _leaf_layers(model) -> list:
    """All layers, descending into nested models (e.g. SENet50 inside a Siamese wrapper)."""
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out.extend(_leaf_layers(layer))
        elif layer not in out:
            out.append(layer)
    return out


def _weighted_layers(model) -> list:
    return [layer for layer in _leaf_layers(model) if layer.weights]


def _short(weight_name: str) -> str:
    """'conv1/7x7_s2/bn/gamma:0' -> 'gamma'."""
    return weight_name.rsplit("/", 1)[-1].split(":", 1)[0]


def load_legacy_h5(model, path, strict: bool = True,
                   file_name: Callable[[str], str] = _same) -> list[str]:
    """Load a keras-vggface / Keras 2 legacy HDF5 weights file into ``model``, by layer name.

    Every weighted layer of ``model`` (nested models included) is looked up in the file under
    its file name (``file_name(layer name)``: keras-vggface's original name for SENet50). With ``strict=True`` a layer missing from the file, a
    different number of weights or a different shape raises a ValueError naming the layer, the
    file, what was expected and what was found; with ``strict=False`` missing layers are
    skipped (shape mismatches still raise). Layers in the file but not in the model are ignored.

    Returns the names of the model layers that were loaded.
    """
    path = Path(path)
    file_layers = _read_file_layers(path)
    loaded: list[str] = []
    for layer in _weighted_layers(model):
        expected = [tuple(w.shape) for w in layer.weights]
        entry = file_layers.get(layer.name)
        if entry is None:
            if strict:
                raise InputError(
                    f"{path}: layer {layer.name!r} (file name {file_name(layer.name)!r}, "
                    f"expected weight shapes {expected}) is not in the file"
                )
            continue
        orig, weight_names, arrays = entry
        found = [tuple(a.shape) for a in arrays]
        # Put the file's arrays in the layer's weight order when the names allow it
        # (kernel/bias, gamma/beta/moving_mean/moving_variance); else keep the file's order.
        file_short = [_short(wn) for wn in weight_names]
        model_short = [w.name for w in layer.weights]
        if sorted(file_short) == sorted(model_short) and len(set(file_short)) == len(file_short):
            arrays = [arrays[file_short.index(n)] for n in model_short]
            found = [tuple(a.shape) for a in arrays]
        if found != expected:
            raise InputError(
                f"{path}: layer {layer.name!r} (file group {orig!r}): expected weight shapes "
                f"{expected} ({model_short}), found {found} ({weight_names})"
            )
        layer.set_weights(arrays)
        loaded.append(layer.name)
    return loaded


# --------------------------------------------------------------------------- HDF5 write


def _str_attr(names: list[str]) -> np.ndarray:
    return np.array([n.encode("utf8") for n in names], dtype=bytes)


def save_legacy_h5(model, path, file_name: Callable[[str], str] = _same) -> Path:
    """Write ``model``'s weights in keras-vggface's legacy Keras 2 HDF5 layout.

    Groups and weight names use ``file_name(layer name)`` (SENet50's: the original keras-vggface
    names, with '/', hence nested groups), e.g. group ``conv1/7x7_s2/bn`` with ``weight_names`` ``[b"conv1/7x7_s2/bn/gamma:0",
    ...]``; root attributes ``layer_names``, ``backend``, ``keras_version``. Nested models
    (e.g. a Siamese wrapper around SENet50) are flattened to their layers. Written to a
    temporary file and renamed into place.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    layers = _leaf_layers(model)
    names = [file_name(layer.name) for layer in layers]
    if len(set(names)) != len(names):
        raise InputError(f"{path}: duplicate layer names in {model.name!r}")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["layer_names"] = _str_attr(names)
        f.attrs["backend"] = np.bytes_(keras.backend.backend().encode("utf8"))
        f.attrs["keras_version"] = np.bytes_(keras.__version__.encode("utf8"))
        for layer, name in zip(layers, names, strict=True):
            group = f.require_group(name)
            weight_names = [f"{name}/{w.name}:0" for w in layer.weights]
            group.attrs["weight_names"] = _str_attr(weight_names)
            for wn, w in zip(weight_names, layer.weights, strict=True):
                group.create_dataset(wn, data=keras.ops.convert_to_numpy(w))
    return path
