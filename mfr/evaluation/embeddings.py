"""Embeddings of images, each unique image once, and their files.

:func:`embed_images` takes uint8 images (an :class:`mfr.data.image_cache.ImageCache`'s memmap or any
(N, H, W, 3) array), preprocesses each batch as the backbone says (:mod:`mfr.backbones.preprocess`) and runs the
network with ``model.predict_on_batch`` (Keras 3, any backend), returning L2-normalised float32
embeddings. :class:`Embeddings` holds them with the image path of each row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mfr.core.errors import InputError, MissingError
from mfr.core.integrity import check_recorded
from mfr.core.outputs import run_metadata, save_npy, write_csv, write_json
from mfr.core.progress import progress_bar
from mfr.core.run_record import read_json_record
from mfr.data.pairs import PathIndex
from mfr.evaluation.distances import l2_normalize

__all__ = ["Embeddings", "embed_images", "load_embeddings", "predict_batch", "save_embeddings"]


def predict_batch(model, batch_uint8: np.ndarray, preprocessing: Any,
                  forward: Callable[[np.ndarray], Any] | None = None) -> np.ndarray:
    """One batch: preprocessed (`preprocessing`: a backbone's
    :class:`~mfr.backbones.base.Preprocessing`, or its name, :func:`mfr.backbones.preprocess.
    preprocess`) and run through the model (or `forward`, e.g. a
    :class:`mfr.training.data_parallel.ShardedForward` of it); float32 numpy."""
    from mfr.backbones.preprocess import preprocess

    x = preprocess(np.asarray(batch_uint8), mode=preprocessing)
    return np.asarray((forward or model.predict_on_batch)(x), dtype=np.float32)


def embed_images(
    model,
    images: np.ndarray,
    preprocessing: Any = "thesis",
    batch_size: int = 64,
    progress: bool = True,
    rows: Sequence[int] | np.ndarray | None = None,
    data_parallel: bool = False,
    normalize: bool = True,
) -> np.ndarray:
    """Embed images (N, H, W, 3) uint8 (array or memmap) batch by batch.

    Args:
        model: a Keras model taking preprocessed float32 images (a backbone's network).
        images: uint8 RGB images; read one batch at a time, so a memmap stays on disk.
        preprocessing: the backbone's :class:`~mfr.backbones.base.Preprocessing` (or its name:
            ``"thesis"``, ``"vggface2"``, ...; :func:`mfr.backbones.preprocess.preprocess`).
        batch_size: images per forward pass.
        progress: show a tqdm bar.
        rows: embed only these rows of `images`, in this order (default: all).
        data_parallel: JAX only: each batch sharded across every device
            (:class:`mfr.training.data_parallel.ShardedForward`); the same embeddings.
        normalize: L2-normalise the rows (False: the network's raw output).

    Returns:
        float32 (n, D) embeddings, each row L2-normalised (``tf.math.l2_normalize``'s epsilon)
        unless `normalize` is False.
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    if images.ndim != 4 or images.shape[-1] != 3:
        raise InputError(f"expected (N, H, W, 3) images, got shape {tuple(images.shape)}")
    order = np.arange(len(images)) if rows is None else np.asarray(rows, dtype=np.int64)
    n = len(order)
    contiguous = rows is None
    starts = range(0, n, batch_size)
    chunks = []
    forward = None
    if data_parallel:
        from mfr.training.data_parallel import ShardedForward

        forward = ShardedForward(model)
    for s in progress_bar(starts, progress, desc="embed", unit="batch"):
        sel = slice(s, s + batch_size) if contiguous else order[s:s + batch_size]
        chunks.append(predict_batch(model, np.asarray(images[sel]), preprocessing, forward))
    if not chunks:
        out_dim = model.output_shape[-1]
        return np.zeros((0, out_dim), dtype=np.float32)
    out = np.concatenate(chunks).astype(np.float32, copy=False)
    return l2_normalize(out) if normalize else out


# --------------------------------------------------------------------------- save / load


@dataclass
class Embeddings(PathIndex):
    """Embeddings with the image paths of their rows (:meth:`index_of` looks rows up)."""

    vectors: np.ndarray  # (N, D) float32
    paths: list[str]
    meta: dict[str, Any] = field(default_factory=dict)
    what = "embeddings"

    def __post_init__(self) -> None:
        if len(self.vectors) != len(self.paths):
            raise InputError(f"{len(self.vectors)} embeddings but {len(self.paths)} paths")


def save_embeddings(
    out_dir: str | Path,
    emb: np.ndarray,
    paths: Sequence[str],
    meta: dict[str, Any] | None = None,
    config: Any = None,
) -> Path:
    """Write ``embeddings.npy``, ``index.csv`` (path,row) and ``run.json`` (config, versions,
    `meta`) into `out_dir`; returns `out_dir`."""
    out_dir = Path(out_dir)
    emb = np.asarray(emb, dtype=np.float32)
    paths = [str(p) for p in paths]
    if len(emb) != len(paths):
        raise InputError(f"{len(emb)} embeddings but {len(paths)} paths")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "run.json").unlink(missing_ok=True)  # written last: marks a complete set
    save_npy(out_dir / "embeddings.npy", emb)
    write_csv(out_dir / "index.csv", pd.DataFrame({"path": paths, "row": np.arange(len(paths))}))
    write_json(out_dir / "run.json", run_metadata(config, n_images=len(paths),
                                                  dim=int(emb.shape[1]) if emb.ndim == 2 else 0,
                                                  **(meta or {})))
    return out_dir


def load_embeddings(out_dir: str | Path) -> Embeddings:
    """Read what :func:`save_embeddings` wrote."""
    out_dir = Path(out_dir)
    run = out_dir / "run.json"
    if not run.is_file():
        raise MissingError(f"{run}: no complete embeddings here (expected embeddings.npy, "
                                f"index.csv and run.json from save_embeddings)")
    index = pd.read_csv(check_recorded(out_dir / "index.csv"), dtype={"path": str},
                        keep_default_na=False)
    vectors = np.load(check_recorded(out_dir / "embeddings.npy"), allow_pickle=False)
    if len(index) != len(vectors):
        raise InputError(f"{out_dir / 'index.csv'}: {len(index)} paths but embeddings.npy has "
                         f"{len(vectors)} rows")
    return Embeddings(vectors, index["path"].tolist(),
                      read_json_record(run, "the run.json of saved embeddings"))
