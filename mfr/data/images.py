"""Decode an image file and resize it exactly as the thesis did: uint8 RGB in, uint8 RGB out.

The thesis ran ``tf.image.decode_jpeg`` then ``tf.image.resize(img, (224, 224))``: bilinear, no
antialiasing, half-pixel centres, float32 output. :func:`resize_bilinear` reproduces that
arithmetic exactly in numpy (no backend needed; checked against TensorFlow in the tests), and
:func:`load_image` rounds the result to uint8 (``np.rint``, clipped to [0, 255]): a quantisation
of at most 0.5 grey level per channel, against the thesis's float input.

Decoding (:func:`decode_rgb`, :func:`mfr.core.readers.images.decode`) is PIL's by default (JPEG,
PNG, ...), whose JPEG IDCT is libjpeg's accurate one; ``decoder="tf"`` uses TensorFlow's
``decode_jpeg`` with its default fast IDCT, as the thesis did (needs TensorFlow). Either way the
EXIF orientation tag is applied (the one policy of every reader of images, the same in `mfr
verify`): the thesis's ``tf.image.decode_jpeg`` ignored it, which changes nothing on its data
(none of the 11,832 development photos in shared/data carries a tag other than 1, measured)
but would show a phone photo's face sideways.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mfr.core.errors import InputError
from mfr.core.readers.images import decode, pil_rgb

__all__ = ["DECODERS", "MIN_SIZE", "RESIZE_METHOD", "decode_rgb", "load_image", "quantise", "resize_bilinear"]

#: What :func:`load_image` computes; the image cache records it and never reuses a cache made
#: with another method.
RESIZE_METHOD = "exif-upright/tf-bilinear-half-pixel-no-antialias/rint-uint8/v2"
DECODERS = ("pil", "tf")


def _interp_weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TensorFlow's ``compute_interpolation_weights`` with ``HalfPixelScaler``."""
    scale = np.float32(in_size) / np.float32(out_size)
    pos = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(pos)
    lower = np.maximum(floor, 0).astype(np.intp)
    upper = np.minimum(np.ceil(pos), in_size - 1).astype(np.intp)
    lerp = (pos - floor).astype(np.float32)
    return lower, upper, lerp


def resize_bilinear(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """``tf.image.resize(image, size)`` (bilinear, antialias=False) in numpy; float32 out.

    Same arithmetic as TensorFlow's ResizeBilinear kernel with half-pixel centres:
    source coordinate ``(i + 0.5) * in/out - 0.5``, neighbours clamped to the image, and
    ``top + (bottom - top) * y_lerp`` of the horizontal lerps, in float32.
    """
    out_h, out_w = (size, size) if isinstance(size, int) else size
    img = np.asarray(image)
    if img.ndim != 3:
        raise InputError(f"expected an (H, W, C) image, got shape {img.shape}")
    in_h, in_w = img.shape[:2]
    y0, y1, ylerp = _interp_weights(in_h, out_h)
    x0, x1, xlerp = _interp_weights(in_w, out_w)
    xl = xlerp[None, :, None]
    # Gather the needed rows first, then convert: the same float32 values, without a float32
    # copy of a whole (possibly 6000x6000) image.
    rows_top = img[y0].astype(np.float32, copy=False)
    rows_bottom = img[y1].astype(np.float32, copy=False)
    top = rows_top[:, x0] + (rows_top[:, x1] - rows_top[:, x0]) * xl
    bottom = rows_bottom[:, x0] + (rows_bottom[:, x1] - rows_bottom[:, x0]) * xl
    return (top + (bottom - top) * ylerp[:, None, None]).astype(np.float32, copy=False)


def quantise(image: np.ndarray) -> np.ndarray:
    """Float [0, 255] image -> uint8, rounding to nearest (half to even) and clipping."""
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


#: Smaller images are refused (listed as failed), not upscaled silently.
MIN_SIZE = 16


#: PIL image -> uint8 RGB (kept here under its old name: :func:`mfr.core.readers.images.pil_rgb`)
_pil_rgb = pil_rgb


def decode_rgb(path: str | Path, decoder: str = "pil") -> np.ndarray:
    """Decode an image file to uint8 RGB (H, W, 3), upright: :func:`mfr.core.readers.images.decode`
    (a regular file only, a pixel bound, the EXIF orientation applied; one InputError naming the
    file for anything it cannot read).

    ``"pil"`` (default, no backend needed): PIL; for JPEG this is libjpeg's accurate integer
    IDCT (= ``tf.io.decode_jpeg(dct_method="INTEGER_ACCURATE")``); 16-bit greyscale is scaled to
    8 bits, not clipped.
    ``"tf"``: exactly the thesis's ``tf.io.decode_jpeg(contents, channels=3)`` with TensorFlow's
    default (fast integer) IDCT, ``tf.io.decode_image`` for other formats; needs TensorFlow.
    The two differ on JPEGs by about 1.4 grey levels on average (up to ~15 at edges).
    """
    return decode(path, decoder)[0]


def load_image(path: str | Path, size: int = 224, decoder: str = "pil") -> np.ndarray:
    """Decode one image file as RGB and resize it like the thesis: uint8 (size, size, 3).

    An image smaller than :data:`MIN_SIZE` pixels on a side is an InputError (the caller
    lists it), not a silent upscale of a thumbnail or a broken file.
    """
    rgb = decode_rgb(path, decoder)
    if min(rgb.shape[:2]) < MIN_SIZE:
        raise InputError(f"image is {rgb.shape[1]}x{rgb.shape[0]} px, smaller than the "
                         f"minimum {MIN_SIZE} px")
    if rgb.shape[:2] == (size, size):
        return np.ascontiguousarray(rgb, dtype=np.uint8)  # TF's resize is then the identity
    return quantise(resize_bilinear(rgb, size))
