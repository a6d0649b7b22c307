"""Image files: one way to open, bound, decode and orient them, for every command.

The image cache (embed, train, evaluate), Grad-CAM's images, `mfr mask`, `mfr verify` and the
partition's header check all read images here:

- only a regular file is opened (:func:`mfr.core.readers.paths.require_file`): a FIFO, a
  device, a folder or a symlink loop is refused before ``open``, never a hang;
- a pixel bound, :data:`MAX_PIXELS`, checked on the header before any pixel is decoded (PIL's
  decompression-bomb guard made an explicit one-line error, the same on every path);
- one orientation policy, :data:`ORIENTATION`: the EXIF orientation tag is applied, so the face
  is upright as any viewer shows it, whichever decoder (:func:`orient`, the same numpy
  transposition after PIL's or TensorFlow's decode);
- every failure of the decoder on the file's bytes (truncated, corrupt, not an image, an
  exotic format PIL chokes on) is one :class:`InputError` naming the file: the image cache
  lists it as a failed image, `mfr verify` prints it; no other exception leaves.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mfr.core.errors import InputError, MfrError
from mfr.core.readers.paths import require_file, shown
from mfr.core.readers.text import excerpt

__all__ = ["EXPECTED", "MAX_PIXELS", "ORIENTATION", "Header", "decode", "image_problem",
           "open_image", "orient", "pil_rgb", "read_header"]

#: At most this many pixels (width x height) in an image: 2**27 = 134 million, above a 100 MP
#: medium-format camera (11,648 x 8,736) and far above any face photo; one decoded RGB copy
#: of it is 400 MB. PIL's own guard (89 million, a warning; twice that, an error) is replaced
#: by this one, the same for every reader.
MAX_PIXELS = 1 << 27
#: The orientation policy: the EXIF orientation tag (0x0112) is applied.
ORIENTATION = "exif-upright"
EXPECTED = "expected an image file: JPEG, PNG, BMP, WebP, ..."
_ORIENTATION_TAG = 0x0112


@dataclass(frozen=True)
class Header:
    """What an image's header says: its stored size (before orientation), PIL mode, frames,
    and EXIF orientation (1: as stored)."""

    width: int
    height: int
    mode: str
    frames: int
    orientation: int


def _bad_data(path: Path, e: BaseException) -> InputError:
    from PIL import Image, UnidentifiedImageError

    if isinstance(e, UnidentifiedImageError):
        return InputError(f"{shown(str(path))}: not an image file PIL can read (corrupt, empty "
                          f"or another kind of file; {EXPECTED})")
    if isinstance(e, Image.DecompressionBombError):
        return InputError(f"{shown(str(path))}: too many pixels (over {MAX_PIXELS:,}; a face "
                          f"photo has far fewer)")
    if isinstance(e, PermissionError):
        return InputError(f"{shown(str(path))}: cannot be read ({e.strerror})")
    text = " ".join(str(e).split())[:160]
    return InputError(f"{shown(str(path))}: unreadable image data ({type(e).__name__}: {text}; "
                      f"{EXPECTED})")


@contextlib.contextmanager
def open_image(path: str | Path) -> Iterator[Any]:
    """A PIL image of regular file `path`, its size checked against :data:`MAX_PIXELS`
    (nothing decoded yet); InputError / MissingError naming the file for anything else."""
    from PIL import Image

    p = require_file(path, EXPECTED)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(p)
    except MfrError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure of the parser on these bytes
        raise _bad_data(p, e) from None
    with im:
        w, h = im.size
        if w <= 0 or h <= 0:
            raise InputError(f"{shown(str(p))}: an image of {w}x{h} pixels ({EXPECTED})")
        if w * h > MAX_PIXELS:
            raise InputError(f"{shown(str(p))}: {w}x{h} = {w * h:,} pixels, over the bound of "
                             f"{MAX_PIXELS:,} (a face photo has far fewer)")
        yield im


def _header(im: Any) -> Header:
    try:
        orientation = int(im.getexif().get(_ORIENTATION_TAG, 1) or 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block: the image as stored
        orientation = 1
    return Header(im.size[0], im.size[1], im.mode, int(getattr(im, "n_frames", 1) or 1),
                  orientation if 1 <= orientation <= 8 else 1)


def read_header(path: str | Path) -> Header:
    """The :class:`Header` of image `path` (a header read: cheap), the bound checked."""
    p = Path(path)
    try:
        with open_image(p) as im:
            return _header(im)
    except MfrError:
        raise
    except Exception as e:  # noqa: BLE001
        raise _bad_data(p, e) from None


def image_problem(path: str | Path) -> str | None:
    """None if `path` is an image whose header can be read within the bound, else why not
    (the reason alone, without the path): for listings that skip and list."""
    try:
        read_header(path)
    except MfrError as e:
        text = str(e)
        prefix = f"{shown(str(Path(path)))}: "
        return text[len(prefix):] if text.startswith(prefix) else text
    return None


def pil_rgb(im: Any) -> np.ndarray:
    """A PIL image as uint8 RGB; 16- and 32-bit greyscale scaled to 8 bits (PIL's
    ``convert("RGB")`` clips them at 255, turning a 16-bit photo almost white)."""
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or a.max(initial=0) > 255 else 255.0
        grey = np.clip(np.rint(a * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(im if im.mode == "RGB" else im.convert("RGB"))  # no extra copy


def orient(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """`rgb` (H, W, C) turned upright by EXIF orientation `orientation` (1-8; PIL's
    ``ImageOps.exif_transpose``, done in numpy so every decoder gets the same)."""
    if orientation == 2:
        out = rgb[:, ::-1]
    elif orientation == 3:
        out = rgb[::-1, ::-1]
    elif orientation == 4:
        out = rgb[::-1]
    elif orientation == 5:
        out = rgb.transpose(1, 0, 2)
    elif orientation == 6:
        out = np.rot90(rgb, k=-1)
    elif orientation == 7:
        out = rgb[::-1, ::-1].transpose(1, 0, 2)
    elif orientation == 8:
        out = np.rot90(rgb, k=1)
    else:
        return rgb
    return np.ascontiguousarray(out)


def decode(path: str | Path, decoder: str = "pil") -> tuple[np.ndarray, Header]:
    """Image `path` as uint8 RGB (H, W, 3), upright (:data:`ORIENTATION`), and its header.

    ``decoder="pil"``: PIL (libjpeg's accurate IDCT for JPEG); ``"tf"``: TensorFlow's
    ``decode_jpeg`` / ``decode_image`` (the thesis's; needs TensorFlow), the header and the
    bound still read by PIL first. Any failure: InputError naming the file."""
    p = Path(path)
    if decoder not in ("pil", "tf"):
        raise InputError(f"decoder must be one of ('pil', 'tf'), got {excerpt(decoder, 40)}")
    try:
        with open_image(p) as im:
            header = _header(im)
            if decoder == "pil":
                im.load()
                rgb = pil_rgb(im)
        if decoder == "tf":
            rgb = _tf_decode(p)
    except MfrError:
        raise
    except MemoryError:
        raise InputError(f"{shown(str(p))}: not enough memory to decode it") from None
    except Exception as e:  # noqa: BLE001 - any failure of a decoder on these bytes
        raise _bad_data(p, e) from None
    return orient(rgb, header.orientation), header


def _tf_decode(path: Path) -> np.ndarray:
    import tensorflow as tf

    data = path.read_bytes()
    if data[:3] == b"\xff\xd8\xff":
        return tf.io.decode_jpeg(data, channels=3).numpy()
    return tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
