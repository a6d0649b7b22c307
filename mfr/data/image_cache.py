"""The image cache: each unique image decoded and resized once, into a memory-mapped uint8 array.

The study's one data flow is: pairs (CSV) -> image cache -> embeddings -> distances -> metrics.
A path that appears in many pairs is decoded and resized once here (:func:`mfr.data.images.load_image`),
embedded once (:mod:`mfr.evaluation.embeddings`), and every pair only looks rows up
(:func:`mfr.data.pairs.pair_indices`).

Layout of a cache directory::

    images.npy   uint8 (N, size, size, 3), RGB; open with mmap (np.lib.format.open_memmap)
    index.csv    path,row  (paths POSIX, relative to the data root, sorted; row = line - 1)
    failed.csv   path,reason  (images that could not be read; skipped, never fatal)
    cache.json   what made it (size, resize method, decoder, data root, fingerprints of the
                 paths and of their files' sizes and modification times, versions);
                 written last, so its presence marks a complete cache

A cache is reused only when it was made the same way from the same files (:func:`reusable`:
the one check `mfr embed` and `mfr train` both make); else it is rebuilt. Its space is reserved
on disk before any image is decoded, so a full disk is an ``OSError`` with a message, never a
crash of the memory-mapped write; temporary files of a killed build are removed by the next.

One process at a time builds or opens a cache folder: its lock (:mod:`mfr.core.locks`,
``.<name>.lock`` beside the folder's real path) is held while a cache is checked, built or
opened, and a second process waits for it (saying whom it waits for), then reuses what the
first built. So two runs sharing a ``--cache-dir`` never delete each other's temporary files or
record. An image that cannot be read is listed and skipped; a failure that is not the image's
(out of memory, too many open files) stops the build, and no cache is recorded.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import sys
import warnings
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mfr.core import locks
from mfr.core.errors import InputError, MissingError, RunFolderError
from mfr.core.outputs import atomic_path, run_metadata, write_csv, write_json
from mfr.core.progress import progress_bar
from mfr.core.provenance import listing_digest
from mfr.core.run_record import read_json_record
from mfr.data.images import DECODERS, RESIZE_METHOD, load_image
from mfr.data.pairs import SPLITS, PathIndex, read_pair_csvs, unique_pair_paths

__all__ = ["CACHE_FORMAT", "ImageCache", "build_image_cache", "build_partition_cache",
           "reusable"]

CACHE_FORMAT = 2
#: The folder's record, written before anything else: mfr made this folder, for which images.
RECORD = ".mfr-image-cache.json"
#: OSErrors of the machine, not of an image: they stop a build instead of being listed
_NOT_THE_IMAGES = (errno.ENOMEM, errno.EMFILE, errno.ENFILE, errno.ENOSPC)


@contextlib.contextmanager
def _locked(cache_dir: Path):
    """The cache folder's lock for the block, waited for; a folder whose parent cannot hold a
    lock file (read-only media) is read without it."""
    try:
        cm = locks.locked(cache_dir, wait=True, what="--cache-dir")
        cm.__enter__()
    except RunFolderError:
        yield
        return
    try:
        yield
    finally:
        cm.__exit__(None, None, None)



@dataclass
class ImageCache(PathIndex):
    """A complete image cache on disk (see the module docstring for the layout); rows of
    :attr:`images` are looked up by path with :meth:`index_of`."""

    cache_dir: Path
    images: np.ndarray  # memmap (N, size, size, 3) uint8, read-only
    paths: list[str]
    failed: pd.DataFrame  # columns path, reason
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cache_dir = Path(self.cache_dir)
        self.what = f"image cache {self.cache_dir}"
        self.failed_paths = frozenset(self.failed["path"])

    @property
    def size(self) -> int:
        return int(self.images.shape[1])

    @classmethod
    def open(cls, cache_dir: str | Path) -> ImageCache:
        """Open a complete cache; FileNotFoundError if `cache_dir` holds none."""
        cache_dir = Path(cache_dir)
        meta_path = cache_dir / "cache.json"
        if not meta_path.is_file():
            raise MissingError(
                f"{meta_path}: no complete image cache here (expected cache.json, written last "
                f"by build_image_cache)"
            )
        meta = read_json_record(meta_path, "the cache.json of an image cache")
        images = np.load(cache_dir / "images.npy", mmap_mode="r")
        index = pd.read_csv(cache_dir / "index.csv", dtype={"path": str, "row": np.int64},
                            keep_default_na=False)
        if not np.array_equal(index["row"].to_numpy(), np.arange(len(index))):
            raise InputError(f"{cache_dir / 'index.csv'}: expected rows 0..N-1 in order")
        if len(index) != images.shape[0]:
            raise InputError(
                f"{cache_dir / 'index.csv'}: {len(index)} paths but images.npy has "
                f"{images.shape[0]} rows"
            )
        failed = _read_failed(cache_dir / "failed.csv")
        return cls(cache_dir, images, index["path"].tolist(), failed, meta)


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
            raise InputError(f"empty image path in the list of paths ({p!r})")
        out.add(s)
    return sorted(out)


def reusable(cache_dir: str | Path, paths: Sequence[str], size: int,
             data_root: str | Path | None, decoder: str) -> ImageCache | None:
    """The cache in `cache_dir` if it is complete, covers `paths`, was made at `size` with
    `decoder` from `data_root` (None: the data root it records) and none of its source files
    changed since (same sizes and modification times); else None."""
    try:
        with _locked(Path(cache_dir)):  # not while another process builds it
            cache = ImageCache.open(cache_dir)
    except (FileNotFoundError, ValueError, OSError, json.JSONDecodeError):
        return None
    m = cache.meta
    root = Path(m.get("data_root", "")) if data_root is None else Path(data_root).resolve()
    if (m.get("format") != CACHE_FORMAT or m.get("resize") != RESIZE_METHOD
            or m.get("size") != size or m.get("data_root") != str(root)
            or m.get("decoder", "pil") != decoder):
        return None
    covered = set(cache.paths) | cache.failed_paths
    if not (m.get("fingerprint") == _fingerprint(paths) or covered.issuperset(paths)):
        return None
    if m.get("sources") != listing_digest(root, sorted(covered)):
        return None  # a source image was added, removed or rewritten since
    return cache


def _open_images(path: Path, shape: tuple[int, ...]) -> np.memmap:
    """A new uint8 .npy of `shape` at `path`, memory-mapped for writing, its space reserved on
    disk first: a memory-mapped write to a full disk is a SIGBUS crash, not an error, so a
    full disk must fail here, as an OSError naming the folder and the size."""
    nbytes = int(np.prod(shape))
    try:
        buf = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
        fd = os.open(path, os.O_RDWR)
        try:
            os.posix_fallocate(fd, 0, buf.offset + buf.nbytes)
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise  # (a filesystem without fallocate is written as before)
        finally:
            os.close(fd)
    except OSError as e:
        raise OSError(e.errno, f"{os.strerror(e.errno or 0)}: cannot write the image cache "
                               f"({nbytes / 1e6:.0f} MB) in {path.parent}") from None
    return buf


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
        raise InputError(f"decoder must be one of {DECODERS}, got {decoder!r}")
    data_root = Path(data_root).resolve()
    if not data_root.is_dir():
        raise MissingError(f"{data_root}: data root is not a directory")
    paths = _normalise_paths(paths)
    if not paths:
        raise InputError(f"no image paths to cache under {data_root}")
    cache_dir = Path(cache_dir)
    with locks.locked(cache_dir, wait=True, what="--cache-dir"):  # one build at a time
        if not rebuild and (cache := reusable(cache_dir, paths, size, data_root,
                                              decoder)) is not None:
            return cache
        made = _claim_cache_folder(cache_dir, data_root, paths)
        try:
            return _build(data_root, paths, cache_dir, size, progress, num_workers, decoder,
                          config)
        except BaseException:
            if made:  # a folder that was empty is left empty
                (cache_dir / RECORD).unlink(missing_ok=True)
            raise


def _build(data_root: Path, paths: list[str], cache_dir: Path, size: int, progress: bool,
           num_workers: int | None, decoder: str, config: Any) -> ImageCache:
    (cache_dir / "cache.json").unlink(missing_ok=True)  # no longer complete from here on
    for stale in cache_dir.glob(".*.tmp"):  # left by a killed build (the lock is ours)
        stale.unlink()
    n = len(paths)
    workers = num_workers or min(4, os.cpu_count() or 1)
    ok = np.zeros(n, dtype=bool)
    failed: list[tuple[str, str]] = []

    def _load(p: str):
        try:
            return load_image(data_root / p, size, decoder), None
        except MemoryError:
            raise  # the machine's, not the image's: never "could not be read"
        except OSError as e:
            if e.errno in _NOT_THE_IMAGES:
                raise
            return None, f"{type(e).__name__}: {e}".replace("\n", " ")
        except Exception as e:  # noqa: BLE001 - any unreadable image is listed, never fatal
            return None, f"{type(e).__name__}: {e}".replace("\n", " ")

    with atomic_path(cache_dir / "images.npy") as tmp:
        buf = _open_images(tmp, (n, size, size, 3))
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
                out = _open_images(compact, (len(keep), size, size, 3))
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
        sources=listing_digest(data_root, paths),
        n_requested=n,
        n_images=len(kept),
        n_failed=len(failed),
    )
    write_json(cache_dir / "cache.json", meta)
    if failed:
        warnings.warn(
            f"{len(failed)} of {n} images could not be read and were skipped; "
            f"see {cache_dir / 'failed.csv'}",
            stacklevel=3,  # the caller of build_image_cache
        )
    return ImageCache.open(cache_dir)


def _claim_cache_folder(cache_dir: Path, data_root: Path, paths: list[str]) -> bool:
    """mfr writes an image cache only into an absent or empty folder, or one whose record it
    made (:data:`RECORD`, or the cache.json of a cache made before records) for the same
    images (data root and paths; another size or decoder, or changed files, is rebuilt in
    place). A user's own folder is refused with one line. An mfr cache of other images (another
    data root or other paths) is rebuilt in place, as before, but said on stderr, not
    silently: a new one beside it would be found by no later step that names this folder, and
    a refusal would stop the documented rebuild of a cache whose data root moved. Returns
    whether the folder was absent or empty (its record is new)."""
    record = cache_dir / RECORD
    if cache_dir.exists() and not cache_dir.is_dir():
        raise InputError(f"{cache_dir}: not a folder (expected an image cache folder)")
    names = sorted(p.name for p in cache_dir.iterdir()) if cache_dir.is_dir() else []
    names = [n for n in names if not (n.startswith(".") and n.endswith(".tmp"))]
    mine = {"data_root": str(data_root), "fingerprint": _fingerprint(paths)}
    if names:
        theirs = None
        for name in (RECORD, "cache.json"):
            try:
                theirs = json.loads((cache_dir / name).read_text(encoding="utf-8"))
                break
            except (OSError, ValueError):
                continue
        if not isinstance(theirs, dict):
            shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
            raise InputError(f"{cache_dir}: holds files that no mfr image cache made "
                             f"({shown}); choose an empty or new --cache-dir")
        same_root = theirs.get("data_root") == mine["data_root"]
        covered = theirs.get("fingerprint") == mine["fingerprint"] or _covers(cache_dir, paths)
        if not (same_root and covered):
            what = (f"images under {theirs.get('data_root')}" if not same_root
                    else "other images")
            print(f"WARNING: {cache_dir}: an image cache of {what}; rebuilt in place for "
                  f"these pairs' images under {data_root} (a run that used it will rebuild "
                  f"it in turn)", file=sys.stderr)
    cache_dir.mkdir(parents=True, exist_ok=True)
    write_json(record, mine)
    return not names


def _covers(cache_dir: Path, paths: list[str]) -> bool:
    """Whether the complete cache in `cache_dir` lists every one of `paths`."""
    try:
        cache = ImageCache.open(cache_dir)
    except (OSError, ValueError):
        return False
    return (set(cache.paths) | cache.failed_paths).issuperset(paths)


def _map(fn, items: list[str], workers: int):
    """`map(fn, items)` in order on `workers` threads (PIL decodes outside the GIL), with at
    most 2 x `workers` items in flight, so a slow item never lets decoded images pile up."""
    if workers <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(max_workers=workers) as ex:
        pending: deque = deque()
        for item in items:
            pending.append(ex.submit(fn, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

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
    object with ``.train``/``.val``/``.test`` DataFrames (:func:`mfr.data.partition.partition`).
    """
    if isinstance(partition, str | Path):
        frames = list(read_pair_csvs(partition, splits).values())
    elif isinstance(partition, dict):
        frames = [partition[s] for s in splits]
    else:
        frames = [getattr(partition, s) for s in splits]
    return build_image_cache(data_root, unique_pair_paths(*frames), cache_dir, size, **kwargs)
