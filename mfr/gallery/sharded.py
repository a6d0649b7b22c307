"""A large gallery enrolled in shards, on the study's executors: one process after the other
(``local``), or Ray tasks on this machine's cores or a cluster's nodes (``ray``,
:class:`mfr.study.executors.ray_executor.RayExecutor`).

The photos to embed (every photo of the folder's identities that the gallery does not hold
as it is: :meth:`mfr.gallery.store.Gallery.enrol`'s plan) are sorted and cut into shards of
``shard_size`` photos, a multiple of :data:`mfr.gallery.photos.CHUNK`; each shard is a step with
no dependencies (:class:`ShardStep`), run by :class:`EmbedShard`: the gallery's embedder built
from its record on the worker (checked against the gallery's signature), the shard's photos
embedded (:func:`mfr.gallery.photos.embed_photos`) into ``<work>/<shard>.npz``. The driver then
reads the shards in order and enrols them as :meth:`~mfr.gallery.store.Gallery.enrol` would have:
shards are contiguous slices of the same sorted list and start on chunk boundaries, so every
chunk embeds the same photos together, and the gallery's bytes are the same as an enrolment in
one process (tested with the local executor). A shard already written (an interrupted run) is
not embedded again. On a cluster the photos, the gallery folder and the weights must be at the
same paths on every node (a shared filesystem), as for `mfr study --executor ray`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mfr.core.errors import InputError

__all__ = ["DEFAULT_SHARD_SIZE", "EmbedShard", "ShardStep", "enrol_sharded"]

DEFAULT_SHARD_SIZE = 1024


@dataclass(frozen=True)
class ShardStep:
    """One shard: its photos ((identity, path), sorted), as an executor's step."""

    name: str
    photos: tuple[tuple[str, str], ...]
    needs: tuple[str, ...] = ()
    after: tuple[str, ...] = ()


@dataclass(frozen=True)
class EmbedShard:
    """The runner of a shard (picklable: a Ray worker builds the embedder itself)."""

    embedder_name: str
    embedder_options: dict[str, Any] = field(hash=False)
    signature: dict[str, Any] = field(hash=False)
    detect: bool
    no_face: str

    def __call__(self, step: ShardStep, context: Any) -> None:
        from mfr.core.outputs import atomic_path
        from mfr.gallery.photos import embed_photos
        from mfr.gallery.signature import embedder_mismatch, make_embedder

        emb = make_embedder(self.embedder_name, self.embedder_options)
        why = embedder_mismatch(self.signature, emb)
        if why is not None:
            raise InputError(f"shard {step.name}: the worker's embedder is not the gallery's "
                             f"({why})")
        e = embed_photos([p for _, p in step.photos], emb, self.detect, self.no_face)
        out = Path(context.out_dir) / f"{step.name}.npz"
        with atomic_path(out) as tmp, open(tmp, "wb") as f:
            np.savez(f, vectors=e.vectors, norms=e.norms, no_face=e.no_face,
                     status=np.array(e.status, dtype=str), finder=np.array(e.finder, dtype=str),
                     notes=np.array(e.notes, dtype=str))


class _Schedule:
    """Every shard runs, except one already written."""

    def __init__(self, work: Path) -> None:
        self.work = work

    def begin(self, step: ShardStep) -> ShardStep | None:
        return None if (self.work / f"{step.name}.npz").is_file() else step

    def end(self, step: ShardStep, seconds: float) -> None:
        return None


def _read_shard(path: Path) -> Any:
    from mfr.gallery.photos import Embedded

    with np.load(path, allow_pickle=False) as f:
        return Embedded(f["vectors"], f["norms"], [str(s) for s in f["status"]],
                        f["no_face"].astype(bool), [str(s) for s in f["finder"]],
                        [str(s) for s in f["notes"]])


def enrol_sharded(gallery: Any, folder: str | Path, executor: Any = None,
                  shard_size: int = DEFAULT_SHARD_SIZE, work_dir: str | Path | None = None,
                  progress: bool = False) -> Any:
    """:meth:`mfr.gallery.store.Gallery.enrol` of `folder` with the photos embedded in shards
    on `executor` (default: the local one). `work_dir` holds the shards until they are
    enrolled (default: ``<gallery folder>/.shards``). Returns the
    :class:`~mfr.gallery.store.Update`."""
    from mfr.gallery import photos as P
    from mfr.gallery.store import Update, _abs
    from mfr.study.executors import LocalExecutor, StepContext

    if not isinstance(shard_size, int) or shard_size < 1 or shard_size % P.CHUNK:
        raise InputError(f"--shard-size must be a positive multiple of {P.CHUNK} (photos are "
                         f"embedded {P.CHUNK} at a time), got {shard_size}")
    folder, plans, passed = gallery._enrol_plans(folder)
    todo = sorted((n, p) for n, plan in plans.items() for p in plan["todo"])
    if work_dir is None:
        if gallery.path is None:
            raise InputError("a sharded enrolment needs a work folder (work_dir) or a gallery "
                             "saved in a folder")
        work_dir = Path(gallery.path) / ".shards"
    key = hashlib.sha256(json.dumps([gallery.signature, gallery.detect, gallery.no_face,
                                     P.CHUNK, shard_size, todo]).encode()).hexdigest()[:16]
    work = Path(work_dir) / key
    work.mkdir(parents=True, exist_ok=True)
    steps = [ShardStep(f"shard_{i // shard_size:05d}", tuple(todo[i:i + shard_size]))
             for i in range(0, len(todo), shard_size)]
    runner = EmbedShard(gallery.embedder_name, gallery.embedder_options, gallery.signature,
                        gallery.detect, gallery.no_face)
    if steps:
        executor = executor or LocalExecutor()
        executor.check()
        executor.run(steps, _Schedule(work), StepContext(out_dir=work, progress=progress),
                     runner)
    given = {}
    for step in steps:
        e = _read_shard(work / f"{step.name}.npz")
        if len(e.status) != len(step.photos):
            raise InputError(f"{work / step.name}.npz: {len(e.status)} photos, the shard has "
                             f"{len(step.photos)} (a damaged shard: delete it)")
        given.update({key_: (e, i) for i, key_ in enumerate(step.photos)})
    update = Update()
    gallery._apply(plans, progress, update, given)
    update.skipped += [("", _abs(p), why) for p, why in passed]
    root = _abs(folder)
    if root not in gallery.roots:
        gallery.roots = sorted([*gallery.roots, root])
    where = {"LocalExecutor": "the local executor", "RayExecutor": "Ray"}.get(
        type(executor).__name__, type(executor).__name__) if steps else "no executor"
    update.notes.append(f"{len(todo)} photos embedded in {len(steps)} shard(s) of at most "
                        f"{shard_size} on {where}")
    shutil.rmtree(work, ignore_errors=True)
    with contextlib.suppress(OSError):  # the work folder, when no other enrolment's is there
        work.parent.rmdir()
    return update
