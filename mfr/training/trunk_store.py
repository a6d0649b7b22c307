"""The frozen trunk's features on disk, shared by every run that trains the same head.

Fine-tuning "the last N layers" leaves everything before them a fixed function of the image
(frozen weights, batch norm in inference mode: :func:`mfr.training.siamese.split_trunk`), so
runs that differ only in what trains the head -- loss, learning rate, optimizer, epochs, seed --
read the same trunk features. :func:`trunk_features` computes them once per (network, weights,
N's boundary, preprocessing, precision, backend, batch size, images) for *every* image of the
array, in row order and fixed-size batches (the last padded), and keeps them as
``<store>/trunk_<digest>/<k>.npy`` with ``key.json`` naming what made them; a run then takes its
rows. The features are the same computation as a run's own (exact: the trunk is frozen), only
batched over all images rather than the run's; a run that reads them records so in its
fingerprint (``trunk_store``), since the float sums of a batch follow its composition (to
~1e-6, as ``embed_batch_size``).

:func:`head_embeddings` applies a network's head to stored features: a fine-tuned run embeds
new images with one trunk pass for all runs of its N.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mfr.core.errors import InputError
from mfr.core.progress import progress_bar

__all__ = ["array_digest", "head_embeddings", "trunk_features"]


def array_digest(images: np.ndarray, chunk: int = 256) -> str:
    """sha256 of an image array's shape, dtype and bytes (read in chunks: a memmap stays on
    disk): what identifies the images a store's features were computed from."""
    h = hashlib.sha256(f"{tuple(images.shape)}|{np.dtype(images.dtype).str}".encode())
    for s in range(0, len(images), chunk):
        h.update(np.ascontiguousarray(images[s:s + chunk]).tobytes())
    return h.hexdigest()


def _key_dir(store: Path, key: Mapping[str, Any]) -> tuple[Path, str]:
    text = json.dumps(key, sort_keys=True, default=str)
    return store / f"trunk_{hashlib.sha256(text.encode()).hexdigest()[:16]}", text


def trunk_features(trunk: Any, images: np.ndarray, preprocess: Callable[[Any], Any],
                   batch_size: int, store: str | Path | None = None,
                   key: Mapping[str, Any] | None = None, progress: bool = False,
                   desc: str = "trunk features") -> list[np.ndarray]:
    """`trunk`'s outputs (a Keras model: image -> one or more tensors) for every image of
    `images` (uint8, (N, H, W, 3)), float32, in row order, computed in batches of
    `batch_size` (the last padded with copies of its first image, so no new shape compiles).

    With `store`, they are kept in ``store/trunk_<digest of key>/`` (``0.npy``, ``1.npy``, ...
    and ``key.json``) and read back (memory-mapped) when the same `key` asks again; `key` must
    name everything they depend on (the caller's: network, weights, boundary, preprocessing,
    precision, backend, batch size, images). Written to temporary files and renamed, the key
    last: a store interrupted mid-way is computed again, never half-read."""
    from keras import ops

    from mfr.core.outputs import atomic_path, write_text

    folder = text = None
    if store is not None:
        if not key:
            raise InputError("a trunk store needs the key of what its features depend on")
        folder, text = _key_dir(Path(store), key)
        try:
            stored = json.loads((folder / "key.json").read_text(encoding="utf-8"))
            count = int(stored.pop("_outputs"))
            if json.dumps(stored, sort_keys=True, default=str) == text:
                return [np.load(folder / f"{k}.npy", mmap_mode="r") for k in range(count)]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass  # none yet, or damaged: computed again
    n = len(images)
    chunks: list[list[np.ndarray]] = []
    starts = range(0, n, batch_size)
    for s in progress_bar(starts, progress, total=len(starts), desc=desc):
        batch = np.asarray(images[s:s + batch_size])
        real = len(batch)
        if real < batch_size and n > batch_size:
            batch = np.concatenate([batch, np.repeat(batch[:1], batch_size - real, axis=0)])
        out = trunk(preprocess(ops.convert_to_tensor(batch)), training=False)
        out = out if isinstance(out, list | tuple) else [out]
        chunks.append([np.asarray(ops.convert_to_numpy(o), np.float32)[:real] for o in out])
    features = [np.concatenate(parts) for parts in zip(*chunks, strict=True)] if chunks else []
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        for k, f in enumerate(features):
            with atomic_path(folder / f"{k}.npy") as tmp, open(tmp, "wb") as fh:
                np.save(fh, f)
        write_text(folder / "key.json", json.dumps({**json.loads(text),
                                                    "_outputs": len(features)},
                                                   sort_keys=True, default=str))
        return [np.load(folder / f"{k}.npy", mmap_mode="r") for k in range(len(features))]
    return features


def head_embeddings(head: Any, features: list[np.ndarray], batch_size: int = 256,
                    rows: np.ndarray | None = None) -> np.ndarray:
    """A network head's raw outputs (float32) for the stored trunk `features` (the `rows` of
    them, default all), in batches of `batch_size`."""
    from keras import ops

    idx = np.arange(len(features[0])) if rows is None else np.asarray(rows, np.int64)
    out = []
    for s in range(0, len(idx), batch_size):
        part = [np.asarray(f[idx[s:s + batch_size]]) for f in features]
        y = head(part, training=False)
        out.append(np.asarray(ops.convert_to_numpy(ops.cast(y, "float32"))))
    dim = int(head.output_shape[-1])
    return np.concatenate(out) if out else np.zeros((0, dim), np.float32)
