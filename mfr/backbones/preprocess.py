"""Input preprocessing, computed from a backbone's facts (:class:`mfr.backbones.base.Preprocessing`).

uint8 (or float in [0, 255]) RGB images, channel-last, become float32 network input: channels
reordered to the record's ``channel_order``, then ``(x - mean) * scale`` per channel, each
left out where the record says None. The modes the registered backbones take:

- ``thesis`` (SENet50): the thesis's pipeline: no flip; keras-vggface's BGR means (91.4953,
  103.8827, 131.0912) subtracted from the R, G, B channels in that order (the network sees
  RGB). Needed to reproduce Table 5.1.
- ``vggface2`` (SENet50): keras-vggface ``preprocess_input(version=2)``, as the released weights
  were trained: RGB -> BGR, then the BGR means.
- ``dlib`` (dlib's ResNet): ``(RGB - mean) / 256`` on its 150x150 face chips (exact: 1/256 is a
  power of two, so the product is the quotient dlib computes).
- ``raw`` (InsightFace's MobileFaceNet): float32 RGB pixels as they are; the network's first
  layers compute ``(x - 127.5) * 0.0078125`` themselves.

Works on numpy arrays (returns numpy float32) and on tensors of the active Keras backend
(returns a backend tensor), via ``keras.ops``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mfr.core.errors import InputError

__all__ = ["apply_preprocessing", "preprocess", "preprocessing_modes"]


def preprocessing_modes() -> dict[str, Any]:
    """Every registered backbone's preprocessing records, by name (the config's choices)."""
    from mfr.backbones import backbone_names, get_backbone

    out: dict[str, Any] = {}
    for name in backbone_names():
        for p in get_backbone(name).facts.preprocessing:
            out.setdefault(p.name, p)
    return out


def preprocess(batch: Any, mode: Any = "thesis") -> Any:
    """`batch` preprocessed by `mode`: a :class:`~mfr.backbones.base.Preprocessing` record, or
    the name of one of the registered backbones' (default ``thesis``, SENet50's)."""
    if isinstance(mode, str):
        modes = preprocessing_modes()
        if mode not in modes:
            raise InputError(f"mode must be one of {tuple(modes)}, got {mode!r}")
        mode = modes[mode]
    return apply_preprocessing(batch, mode)


def apply_preprocessing(batch: Any, spec: Any) -> Any:
    """Channel-last RGB images (..., 3) -> float32 network input, as `spec` (a
    :class:`~mfr.backbones.base.Preprocessing`) says."""
    mean = None if spec.mean is None else np.asarray(spec.mean, dtype=np.float32)
    if isinstance(batch, np.ndarray | np.generic | list | tuple):
        x = np.asarray(batch).astype(np.float32)
        _check_channels(x.shape)
        if spec.channel_order == "BGR":
            x = x[..., ::-1]  # RGB -> BGR
        if mean is not None:
            x = x - mean
        if spec.scale is not None:
            x = x * np.float32(spec.scale)
        return np.ascontiguousarray(x, dtype=np.float32)
    from keras import ops

    x = ops.cast(batch, "float32")
    _check_channels(x.shape)
    if spec.channel_order == "BGR":
        x = ops.flip(x, axis=-1)  # RGB -> BGR
    if mean is not None:
        x = x - ops.convert_to_tensor(mean)
    if spec.scale is not None:
        x = x * float(spec.scale)
    return x


def _check_channels(shape) -> None:
    if len(shape) == 0 or shape[-1] != 3:
        raise InputError(f"expected channel-last RGB images (..., 3), got shape {tuple(shape)}")
