"""Input preprocessing for SENet50 (THESIS.md "Input").

Inputs are RGB images already resized to 224x224 (uint8, or float in [0, 255]).

- ``mode="vggface2"``: keras-vggface ``preprocess_input(version=2)``, the convention the
  released weights were trained with: flip RGB -> BGR, then subtract
  :data:`VGGFACE2_MEAN_BGR` = (91.4953, 103.8827, 131.0912) per channel (BGR order).
- ``mode="thesis"``: the thesis's pipeline: no flip; the same three numbers are subtracted from
  the R, G, B channels in that order (so the network sees RGB). Needed to reproduce Table 5.1.
- ``mode="dlib"``: dlib's ResNet (:mod:`mfr.backbones.dlib_resnet`): ``(RGB - mean) / 256``
  on its 150x150 face chips (exact: the division is by a power of two).
"""

from __future__ import annotations

import numpy as np
from keras import ops

from mfr.backbones.formats.dlib_dat import MEAN_RGB as DLIB_MEAN_RGB
from mfr.backbones.vggface.senet50 import PRETRAINED
from mfr.core.errors import InputError

__all__ = ["preprocess", "VGGFACE2_MEAN_BGR", "MODES"]

#: keras-vggface version=2 channel means, in BGR order.
VGGFACE2_MEAN_BGR: tuple[float, float, float] = PRETRAINED["vggface2"]["mean"]
MODES = ("thesis", "vggface2", "dlib")


def preprocess(batch, mode: str = "thesis"):
    """Channel-last RGB images (..., 3) -> float32 network input.

    Works on numpy arrays (returns a numpy float32 array) and on tensors of the active Keras
    backend (returns a backend tensor), via ``keras.ops``.
    """
    if mode not in MODES:
        raise InputError(f"mode must be one of {MODES}, got {mode!r}")
    mean = np.asarray(DLIB_MEAN_RGB if mode == "dlib" else VGGFACE2_MEAN_BGR, dtype=np.float32)
    if isinstance(batch, np.ndarray | np.generic | list | tuple):
        x = np.asarray(batch).astype(np.float32)
        _check_channels(x.shape)
        if mode == "vggface2":
            x = x[..., ::-1]  # RGB -> BGR
        if mode == "dlib":
            return np.ascontiguousarray((x - mean) / np.float32(256), dtype=np.float32)
        return np.ascontiguousarray(x - mean, dtype=np.float32)
    x = ops.cast(batch, "float32")
    _check_channels(x.shape)
    if mode == "vggface2":
        x = ops.flip(x, axis=-1)  # RGB -> BGR
    if mode == "dlib":
        return (x - ops.convert_to_tensor(mean)) / 256.0
    return x - ops.convert_to_tensor(mean)


def _check_channels(shape) -> None:
    if len(shape) == 0 or shape[-1] != 3:
        raise InputError(f"expected channel-last RGB images (..., 3), got shape {tuple(shape)}")
