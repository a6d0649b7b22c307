"""The model and data of the losses that train on images with subject ids (triplet, ArcFace,
CosFace, dlib_metric; :mod:`mfr.training.losses`), for :func:`mfr.training.fit.train_siamese`.

The model maps a batch of image indices (rows of a :class:`mfr.training.siamese.FeatureTable, call_on_table`:
cached trunk features, or preprocessed images thesis-style, as the Siamese model's) to the
network's embeddings, the same trainable layers as the Siamese model's for the same N; a
class-margin loss adds its head (inputs: the indices and the subject ids; output: logits).
Batches are P subjects x K images (:mod:`mfr.training.image_batches`). After training the
val and test images are embedded and compared exactly as after Siamese training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from mfr.core.outputs import atomic_path
from mfr.data.pairs import PairSet
from mfr.training.image_batches import labelled_images, pk_epoch, pk_sizes
from mfr.training.siamese import FeatureTable, forgetting_calls

__all__ = ["ImageSets", "build_image_model", "image_sets", "save_margin_head"]

#: where a class-margin loss's head is saved in the run folder
MARGIN_HEAD_FILE = "margin_head.npz"


@dataclass
class ImageSets:
    """The training and validation images (model rows) with their subject ids."""

    train_rows: np.ndarray
    train_ids: np.ndarray
    subjects: list[str]  # the training subjects, by id
    val_rows: np.ndarray | None
    val_ids: np.ndarray | None

    def epoch(self, batch_size: int, seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray, int]:
        """One epoch's (model rows, ids, images per batch): :func:`pk_epoch`."""
        p, k = pk_sizes(batch_size)
        pos = pk_epoch(self.train_ids, batch_size, seed, epoch)
        return self.train_rows[pos].astype(np.int32), self.train_ids[pos], p * k

    def val_batches(self, batch_size: int, seed: int) -> tuple[np.ndarray, np.ndarray, int] | None:
        """The validation batches, the same every epoch (epoch 0's draw), or None when the
        val images are of fewer than 2 subjects."""
        if self.val_ids is None or len(np.unique(self.val_ids)) < 2:
            return None
        p, k = pk_sizes(batch_size)
        pos = pk_epoch(self.val_ids, batch_size, seed, 0)
        return self.val_rows[pos].astype(np.int32), self.val_ids[pos], p * k


def image_sets(train: PairSet, val: PairSet | None, head: bool) -> ImageSets:
    """The images of the `train` and `val` pairs (indexing model rows), each once, with subject
    ids: the training subjects numbered in name order; a val subject not among them gets an id
    after theirs, or, for a class-margin loss (`head`: its classes are the training subjects),
    its images are left out of the validation loss."""
    rows, ids, names = labelled_images(train, "train")
    val_rows = val_ids = None
    if val is not None:
        vrows, vids, vnames = labelled_images(val, "val")
        known = {n: i for i, n in enumerate(names)}
        extra = {n: len(names) + j for j, n in enumerate(n for n in vnames if n not in known)}
        mapped = np.array([known.get(n, extra.get(n)) for n in vnames], dtype=np.int64)[vids]
        keep = mapped < len(names) if head else np.ones(len(mapped), dtype=bool)
        val_rows, val_ids = vrows[keep], mapped[keep]
    return ImageSets(rows, ids, names, val_rows, val_ids)


def build_image_model(net: keras.Model, table_arrays, head: keras.layers.Layer | None = None,
                      name: str = "embedder") -> keras.Model:
    """idx -> the network's raw embeddings; with a `head`, [idx, ids] -> its logits. `net` runs
    with ``training=False`` (BN in inference mode), as in the Siamese model."""
    idx = keras.Input(shape=(), dtype="int32", name="image_idx")
    with forgetting_calls(net):  # `net` is shared by the runs of a grid: see there
        feats = FeatureTable(table_arrays, name="features")(idx)
        e = net(feats if len(feats) > 1 else feats[0], training=False)
        if head is None:
            return keras.Model(idx, e, name=name)
        ids = keras.Input(shape=(), dtype="int32", name="subject_id")
        return keras.Model([idx, ids], head([e, ids]), name=name)


def save_margin_head(out_dir: str | Path, head: Any, subjects: list[str],
                     record: dict[str, Any]) -> Path:
    """Write the trained class-margin head (``kernel``: (embedding dim, subjects), as trained;
    the loss normalises its columns) with its subjects (``subjects[j]`` is column j) and the
    loss's record (JSON)."""
    import json

    path = Path(out_dir) / MARGIN_HEAD_FILE
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, kernel=keras.ops.convert_to_numpy(head.kernel).astype(np.float32),
                 subjects=np.array(subjects, dtype=str),
                 loss=np.array(json.dumps(record, sort_keys=True)))
    return path
