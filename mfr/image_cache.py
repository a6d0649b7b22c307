"""Decode and resize each unique image once, into a memory-mapped uint8 array on disk.

The study's one data flow is: pairs (CSV) -> image cache -> embeddings -> distances -> metrics.
A path that appears in many pairs is decoded and resized once here, embedded once
(:mod:`mfr.embeddings`), and every pair only looks rows up (:func:`pair_indices`).

Layout of a cache directory::

    images.npy   uint8 (N, size, size, 3), RGB; open with mmap (np.lib.format.open_memmap)
    index.csv    path,row  (paths POSIX, relative to the data root, sorted; row = line - 1)
    failed.csv   path,reason  (images that could not be read; skipped, never fatal)
    cache.json   what made it (size, resize method, fingerprint of the paths, versions);
                 written last, so its presence marks a complete cache

Resize: the thesis ran ``tf.image.decode_jpeg`` then ``tf.image.resize(img, (224, 224))``:
bilinear, no antialiasing, half-pixel centres, float32 output. :func:`resize_bilinear`
reproduces that arithmetic exactly in numpy (no backend needed; checked against TensorFlow in
the tests). The cache then rounds to the nearest integer and stores uint8 (``np.rint``, clipped
to [0, 255]): a quantisation of at most 0.5 grey level per channel, against the thesis's float
input. Decoding (:func:`decode_rgb`) is PIL's ``Image.open(...).convert("RGB")`` by default (JPEG,
PNG, ...; EXIF orientation ignored, as ``tf.image.decode_jpeg`` ignores it), whose JPEG IDCT is
libjpeg's accurate one; ``decoder="tf"`` uses TensorFlow's ``decode_jpeg`` with its default fast
IDCT, as the thesis did (needs TensorFlow).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from mfr.outputs import atomic_path, run_metadata, write_csv, write_json
from mfr.partition import COLUMNS as PAIR_COLUMNS
from mfr.partition import read_pairs
from mfr.progress import progress_bar

__all__ = [
    "RESIZE_METHOD",
    "ImageCache",
    "PairIndices",
    "build_image_cache",
    "build_partition_cache",
    "drop_failed_pairs",
    "load_image",
    "pair_indices",
    "read_pair_csvs",
    "resize_bilinear",
    "unique_pair_paths",
]

#: Recorded in cache.json; a cache made with another method is rebuilt, never reused.
RESIZE_METHOD = "tf-bilinear-half-pixel-no-antialias/rint-uint8/v1"
CACHE_FORMAT = 1
SPLITS = ("train", "val", "test")


# --------------------------------------------------------------------------- decode + resize


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
        raise ValueError(f"expected an (H, W, C) image, got shape {img.shape}")
    img = img.astype(np.float32, copy=False)
    in_h, in_w = img.shape[:2]
    y0, y1, ylerp = _interp_weights(in_h, out_h)
    x0, x1, xlerp = _interp_weights(in_w, out_w)
    xl = xlerp[None, :, None]
    rows_top, rows_bottom = img[y0], img[y1]
    top = rows_top[:, x0] + (rows_top[:, x1] - rows_top[:, x0]) * xl
    bottom = rows_bottom[:, x0] + (rows_bottom[:, x1] - rows_bottom[:, x0]) * xl
    return (top + (bottom - top) * ylerp[:, None, None]).astype(np.float32, copy=False)


def quantise(image: np.ndarray) -> np.ndarray:
    """Float [0, 255] image -> uint8, rounding to nearest (half to even) and clipping."""
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


DECODERS = ("pil", "tf")


def decode_rgb(path: str | Path, decoder: str = "pil") -> np.ndarray:
    """Decode an image file to uint8 RGB (H, W, 3).

    ``"pil"`` (default, no backend needed): ``PIL.Image.open(path).convert("RGB")``; for JPEG
    this is libjpeg's accurate integer IDCT (= ``tf.io.decode_jpeg(dct_method="INTEGER_ACCURATE")``).
    ``"tf"``: exactly the thesis's ``tf.io.decode_jpeg(contents, channels=3)`` with TensorFlow's
    default (fast integer) IDCT, ``tf.io.decode_image`` for other formats; needs TensorFlow.
    The two differ on JPEGs by about 1.4 grey levels on average (up to ~15 at edges).
    """
    if decoder == "pil":
        from PIL import Image

        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    if decoder == "tf":
        import tensorflow as tf

        data = Path(path).read_bytes()
        if data[:3] == b"\xff\xd8\xff":
            return tf.io.decode_jpeg(data, channels=3).numpy()
        return tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
    raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")


def load_image(path: str | Path, size: int = 224, decoder: str = "pil") -> np.ndarray:
    """Decode one image file as RGB and resize it like the thesis: uint8 (size, size, 3)."""
    rgb = decode_rgb(path, decoder)
    if rgb.shape[:2] == (size, size):
        return np.ascontiguousarray(rgb, dtype=np.uint8)  # TF's resize is then the identity
    return quantise(resize_bilinear(rgb, size))


# --------------------------------------------------------------------------- the cache


@dataclass
class ImageCache:
    """A complete image cache on disk (see the module docstring for the layout)."""

    cache_dir: Path
    images: np.ndarray  # memmap (N, size, size, 3) uint8, read-only
    paths: list[str]
    failed: pd.DataFrame  # columns path, reason
    meta: dict[str, Any] = field(default_factory=dict)
    _rows: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.cache_dir = Path(self.cache_dir)
        self._rows = {p: i for i, p in enumerate(self.paths)}

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def size(self) -> int:
        return int(self.images.shape[1])

    @property
    def failed_paths(self) -> set[str]:
        return set(self.failed["path"])

    def index_of(self, paths: Iterable[str]) -> np.ndarray:
        """Rows of `paths` in :attr:`images` (int64); ValueError naming any path not cached."""
        return _index_of(self._rows, paths, self.failed_paths, f"image cache {self.cache_dir}")

    @classmethod
    def open(cls, cache_dir: str | Path) -> ImageCache:
        """Open a complete cache; FileNotFoundError if `cache_dir` holds none."""
        cache_dir = Path(cache_dir)
        meta_path = cache_dir / "cache.json"
        if not meta_path.is_file():
            raise FileNotFoundError(
                f"{meta_path}: no complete image cache here (expected cache.json, written last "
                f"by build_image_cache)"
            )
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        images = np.load(cache_dir / "images.npy", mmap_mode="r")
        index = pd.read_csv(cache_dir / "index.csv", dtype={"path": str, "row": np.int64},
                            keep_default_na=False)
        if not np.array_equal(index["row"].to_numpy(), np.arange(len(index))):
            raise ValueError(f"{cache_dir / 'index.csv'}: expected rows 0..N-1 in order")
        if len(index) != images.shape[0]:
            raise ValueError(
                f"{cache_dir / 'index.csv'}: {len(index)} paths but images.npy has "
                f"{images.shape[0]} rows"
            )
        failed = _read_failed(cache_dir / "failed.csv")
        return cls(cache_dir, images, index["path"].tolist(), failed, meta)


def _index_of(rows: dict[str, int], paths: Iterable[str], failed: set[str], what: str) -> np.ndarray:
    paths = [str(p) for p in paths]
    out = np.empty(len(paths), dtype=np.int64)
    missing = []
    for i, p in enumerate(paths):
        r = rows.get(p)
        if r is None:
            missing.append(p)
        else:
            out[i] = r
    if missing:
        uniq = sorted(set(missing))
        bad = [p for p in uniq if p in failed]
        absent = [p for p in uniq if p not in failed]
        parts = []
        if absent:
            parts.append(f"{len(absent)} path(s) not in it, e.g. {absent[:5]}")
        if bad:
            parts.append(f"{len(bad)} path(s) that failed to decode, e.g. {bad[:5]}")
        raise ValueError(f"{what}: " + "; ".join(parts))
    return out


def _read_failed(path: Path) -> pd.DataFrame:
    if not path.is_file():
        return pd.DataFrame({"path": pd.Series([], dtype=str), "reason": pd.Series([], dtype=str)})
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _fingerprint(paths: Sequence[str]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.encode("utf-8") + b"\n")
    return h.hexdigest()


def _normalise_paths(paths: Iterable[str | Path]) -> list[str]:
    out = set()
    for p in paths:
        s = Path(p).as_posix() if isinstance(p, Path) else str(p).replace("\\", "/")
        if not s or s == ".":
            raise ValueError(f"empty image path in the list of paths ({p!r})")
        out.add(s)
    return sorted(out)


def _reusable(cache_dir: Path, paths: list[str], size: int, data_root: Path,
              decoder: str) -> ImageCache | None:
    """The existing cache if it is complete and covers `paths` at `size` from `data_root`."""
    try:
        cache = ImageCache.open(cache_dir)
    except (FileNotFoundError, ValueError, OSError, json.JSONDecodeError):
        return None
    m = cache.meta
    if (m.get("format") != CACHE_FORMAT or m.get("resize") != RESIZE_METHOD
            or m.get("size") != size or m.get("data_root") != str(data_root)
            or m.get("decoder", "pil") != decoder):
        return None
    covered = set(cache.paths) | cache.failed_paths
    if m.get("fingerprint") == _fingerprint(paths) or covered.issuperset(paths):
        return cache
    return None


def build_image_cache(
    data_root: str | Path,
    paths: Iterable[str | Path],
    cache_dir: str | Path,
    size: int = 224,
    *,
    progress: bool = True,
    num_workers: int | None = None,
    rebuild: bool = False,
    decoder: str = "pil",
    config: Any = None,
) -> ImageCache:
    """Decode and resize each unique path (relative to `data_root`) once into `cache_dir`.

    - A complete cache already in `cache_dir` made from the same data root and size whose
      paths include all of `paths` is reused as it is (unless ``rebuild=True``).
    - Images that cannot be read are skipped and listed (``failed.csv``, :attr:`ImageCache.failed`)
      with the reason; the rows of :attr:`ImageCache.images` are the readable ones, in sorted
      path order, so the same inputs give byte-identical files.
    - Written to temporary files and renamed into place, cache.json last: an interrupted build
      leaves no cache that looks complete, and the next call starts again.

    - `decoder`: ``"pil"`` (default) or ``"tf"`` (the thesis's exact JPEG decode), see
      :func:`decode_rgb`.

    Raises FileNotFoundError if `data_root` is not a directory, ValueError if `paths` is empty.
    """
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
    data_root = Path(data_root).resolve()
    if not data_root.is_dir():
        raise FileNotFoundError(f"{data_root}: data root is not a directory")
    paths = _normalise_paths(paths)
    if not paths:
        raise ValueError(f"no image paths to cache under {data_root}")
    cache_dir = Path(cache_dir)
    if not rebuild and (cache := _reusable(cache_dir, paths, size, data_root, decoder)) is not None:
        return cache

    cache_dir.mkdir(parents=True, exist_ok=True)
    (cache_dir / "cache.json").unlink(missing_ok=True)  # no longer complete from here on
    n = len(paths)
    workers = num_workers or min(8, os.cpu_count() or 1)
    ok = np.zeros(n, dtype=bool)
    failed: list[tuple[str, str]] = []

    def _load(p: str):
        try:
            return load_image(data_root / p, size, decoder), None
        except Exception as e:  # noqa: BLE001 - any unreadable image is listed, never fatal
            return None, f"{type(e).__name__}: {e}".replace("\n", " ")

    with atomic_path(cache_dir / "images.npy") as tmp:
        buf = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
        results = _map(_load, paths, workers)
        for i, (img, err) in enumerate(
                progress_bar(results, progress, total=n, desc="decode+resize", unit="img")):
            if err is None:
                buf[i] = img
                ok[i] = True
            else:
                failed.append((paths[i], err))
        buf.flush()
        if not ok.all():  # keep only the readable rows, in path order
            keep = np.flatnonzero(ok)
            with atomic_path(tmp) as compact:
                out = np.lib.format.open_memmap(
                    compact, mode="w+", dtype=np.uint8, shape=(len(keep), size, size, 3)
                )
                for s in range(0, len(keep), 256):
                    out[s:s + 256] = buf[keep[s:s + 256]]
                out.flush()
                del out
        del buf
    kept = [p for p, k in zip(paths, ok, strict=True) if k]
    write_csv(cache_dir / "index.csv", pd.DataFrame({"path": kept, "row": np.arange(len(kept))}))
    write_csv(cache_dir / "failed.csv", pd.DataFrame(failed, columns=["path", "reason"]))
    meta = run_metadata(
        config,
        format=CACHE_FORMAT,
        resize=RESIZE_METHOD,
        size=size,
        decoder=decoder,
        data_root=str(data_root),
        fingerprint=_fingerprint(paths),
        n_requested=n,
        n_images=len(kept),
        n_failed=len(failed),
    )
    write_json(cache_dir / "cache.json", meta)
    if failed:
        import warnings

        warnings.warn(
            f"{len(failed)} of {n} images could not be read and were skipped; "
            f"see {cache_dir / 'failed.csv'}",
            stacklevel=2,
        )
    return ImageCache.open(cache_dir)


def _map(fn, items: list[str], workers: int):
    if workers <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(max_workers=workers) as ex:  # PIL decodes outside the GIL
        yield from ex.map(fn, items)


# --------------------------------------------------------------------------- pairs -> rows


class PairIndices(NamedTuple):
    u_idx: np.ndarray  # int64 rows of the unmasked images
    m_idx: np.ndarray  # int64 rows of the masked images
    labels: np.ndarray  # int64, 1 = genuine (same subject), 0 = impostor


def _check_pairs(pairs: pd.DataFrame, what: str = "pairs") -> None:
    missing = [c for c in ("unmasked_path", "masked_path", "label") if c not in pairs.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; expected {list(PAIR_COLUMNS)}")


def drop_failed_pairs(pairs: pd.DataFrame, index) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split `pairs` into (kept, dropped): dropped pairs have an image in ``index.failed``."""
    _check_pairs(pairs)
    failed = getattr(index, "failed_paths", set())
    if not failed:
        return pairs.reset_index(drop=True), pairs.iloc[:0].copy()
    bad = pairs["unmasked_path"].isin(failed) | pairs["masked_path"].isin(failed)
    return pairs[~bad].reset_index(drop=True), pairs[bad].reset_index(drop=True)


def pair_indices(pairs: pd.DataFrame, index) -> PairIndices:
    """Rows of each pair's two images in `index` (an :class:`ImageCache` or
    :class:`mfr.embeddings.Embeddings`), and the labels.

    Pairs whose image failed to decode are dropped, with a warning giving the count (use
    :func:`drop_failed_pairs` to see which). A path that is neither cached nor failed is an
    error (ValueError naming it): the cache was built for other pairs.
    """
    kept, dropped = drop_failed_pairs(pairs, index)
    if len(dropped):
        import warnings

        warnings.warn(
            f"dropped {len(dropped)} of {len(pairs)} pairs whose image failed to decode",
            stacklevel=2,
        )
    u = index.index_of(kept["unmasked_path"])
    m = index.index_of(kept["masked_path"])
    labels = kept["label"].to_numpy().astype(np.int64)
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"pair labels must be 0 or 1, got {sorted(set(labels.tolist()))}")
    return PairIndices(u, m, labels)


# --------------------------------------------------------------------------- partitions


def read_pair_csvs(pairs_dir: str | Path, splits: Sequence[str] = SPLITS) -> dict[str, pd.DataFrame]:
    """Read ``<pairs_dir>/<split>.csv`` for each split (FileNotFoundError naming a missing one)."""
    pairs_dir = Path(pairs_dir)
    if not pairs_dir.is_dir():
        raise FileNotFoundError(f"{pairs_dir}: pairs directory not found (expected the output "
                                f"directory of `mfr partition`, with train/val/test.csv)")
    return {split: read_pairs(pairs_dir / f"{split}.csv") for split in splits}


def unique_pair_paths(*pair_frames: pd.DataFrame) -> list[str]:
    """Sorted unique image paths of one or more pair tables."""
    paths: set[str] = set()
    for df in pair_frames:
        _check_pairs(df)
        paths.update(df["unmasked_path"].astype(str))
        paths.update(df["masked_path"].astype(str))
    return sorted(paths)


def build_partition_cache(
    data_root: str | Path,
    partition,
    cache_dir: str | Path,
    size: int = 224,
    splits: Sequence[str] = SPLITS,
    **kwargs: Any,
) -> ImageCache:
    """One cache for the union of a partition's splits.

    `partition`: a directory of ``<split>.csv`` files, a mapping split -> DataFrame, or an
    object with ``.train``/``.val``/``.test`` DataFrames (:func:`mfr.partition.partition`).
    """
    if isinstance(partition, str | Path):
        frames = list(read_pair_csvs(partition, splits).values())
    elif isinstance(partition, dict):
        frames = [partition[s] for s in splits]
    else:
        frames = [getattr(partition, s) for s in splits]
    return build_image_cache(data_root, unique_pair_paths(*frames), cache_dir, size, **kwargs)

